// Softmax of each row in place, one workgroup per row: the maximum, then exp(x - max) and its
// sum in a fixed tree, then the division.
struct Params { n: u32, wg_x: u32, rows: u32, _c: u32 }
@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<uniform> p: Params;

var<workgroup> red: array<f32, 64>;

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
    // Rows past 65535 workgroups fold into wid.y.
    let row = wid.x + wid.y * p.wg_x;
    if (row >= p.rows) {
        return;
    }
    let base = row * p.n;
    var m = -3.4028235e38;
    for (var i = lid; i < p.n; i += 64u) {
        m = max(m, x[base + i]);
    }
    red[lid] = m;
    workgroupBarrier();
    for (var k = 32u; k > 0u; k >>= 1u) {
        if (lid < k) {
            red[lid] = max(red[lid], red[lid + k]);
        }
        workgroupBarrier();
    }
    let mx = red[0];
    workgroupBarrier();
    var s = 0.0;
    for (var i = lid; i < p.n; i += 64u) {
        let e = exp(x[base + i] - mx);
        x[base + i] = e;
        s += e;
    }
    red[lid] = s;
    workgroupBarrier();
    for (var k = 32u; k > 0u; k >>= 1u) {
        if (lid < k) {
            red[lid] += red[lid + k];
        }
        workgroupBarrier();
    }
    let inv = 1.0 / red[0];
    for (var i = lid; i < p.n; i += 64u) {
        x[base + i] = x[base + i] * inv;
    }
}
