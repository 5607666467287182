// y[tok][row] = dot(weight row, activation row of tok), for a tile of R rows x T tokens per
// workgroup. Slot `me` always sums units me, me + WG, ... of a pair in that order, and the
// workgroup then adds the threads' sums in a fixed tree, so every output element gets the same
// float operations in the same order whatever R, T, the batch or the element's place in it:
// matrix-vector (T = 1) and matrix-matrix agree bit for bit. The weight and activation bytes
// are read from u32 words because WGSL has no byte type (blocks like Q8_0's 34 bytes are not
// word-aligned). `me` is the thread's slot in the sum: its local index, or on the subgroup path
// its place in subgroup order (see reduce_subgroup.wgsl).

struct Params {
    rows: u32,
    cols: u32,
    tokens: u32,
    w_row_bytes: u32,
    x_row_bytes: u32,
    wg_x: u32,
    out_stride: u32,
    out_row0: u32,
}

@group(0) @binding(0) var<storage, read> w: array<u32>;
@group(0) @binding(1) var<storage, read> x: array<u32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

const WG: u32 = 32u;
const R: u32 = {R}u;
const T: u32 = {T}u;
const RT: u32 = {RT}u;

var<workgroup> red: array<f32, {RED}>;

fn wb(o: u32) -> u32 { return (w[o >> 2u] >> ((o & 3u) * 8u)) & 0xffu; }
fn xb(o: u32) -> u32 { return (x[o >> 2u] >> ((o & 3u) * 8u)) & 0xffu; }
fn w16(o: u32) -> u32 { return (w[o >> 2u] >> ((o & 2u) * 8u)) & 0xffffu; }
fn x16(o: u32) -> u32 { return (x[o >> 2u] >> ((o & 2u) * 8u)) & 0xffffu; }
fn wf16(o: u32) -> f32 { return unpack2x16float(w16(o)).x; }
fn xf16(o: u32) -> f32 { return unpack2x16float(x16(o)).x; }
fn wf32(o: u32) -> f32 { return bitcast<f32>(w[o >> 2u]); }
fn xf32(o: u32) -> f32 { return bitcast<f32>(x[o >> 2u]); }
fn wi8(o: u32) -> i32 { return (i32(wb(o)) << 24u) >> 24u; }
fn xi8(o: u32) -> i32 { return (i32(xb(o)) << 24u) >> 24u; }
fn xi16(o: u32) -> i32 { return (i32(x16(o)) << 16u) >> 16u; }

{FORMAT}

@compute @workgroup_size(32)
fn main(
    @builtin(local_invocation_index) lid: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    {SUBGROUP_ARGS}
) {
{ME}
    let row0 = (wid.x + wid.z * p.wg_x) * R;
    let tok0 = wid.y * T;
    var acc: array<f32, RT>;
    let nu = p.cols / UNIT;
    for (var u = me; u < nu; u += WG) {
        for (var r = 0u; r < R; r++) {
            let row = row0 + r;
            if (row < p.rows) {
                let wr = row * p.w_row_bytes;
                for (var t = 0u; t < T; t++) {
                    let tok = tok0 + t;
                    if (tok < p.tokens) {
                        acc[r * T + t] = unit_dot(wr, tok * p.x_row_bytes, u, acc[r * T + t]);
                    }
                }
            }
        }
    }
{REDUCE}
    if (lid < RT) {
        let row = row0 + lid / T;
        let tok = tok0 + lid % T;
        if (row < p.rows && tok < p.tokens) {
            y[tok * p.out_stride + p.out_row0 + row] = total;
        }
    }
}
