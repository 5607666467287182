// y = x / rms(x) * g, one workgroup per row; the squares are summed in a fixed tree.
struct Params { n: u32, eps: f32, wg_x: u32, rows: u32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> g: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

var<workgroup> red: array<f32, 64>;

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
    // Rows past 65535 workgroups fold into wid.y.
    let row = wid.x + wid.y * p.wg_x;
    if (row >= p.rows) {
        return;
    }
    let base = row * p.n;
    var s = 0.0;
    for (var i = lid; i < p.n; i += 64u) {
        let v = x[base + i];
        s = fma(v, v, s);
    }
    red[lid] = s;
    workgroupBarrier();
    for (var k = 32u; k > 0u; k >>= 1u) {
        if (lid < k) {
            red[lid] += red[lid + k];
        }
        workgroupBarrier();
    }
    let scale = 1.0 / sqrt(red[0] / f32(p.n) + p.eps);
    for (var i = lid; i < p.n; i += 64u) {
        y[base + i] = x[base + i] * scale * g[i];
    }
}
