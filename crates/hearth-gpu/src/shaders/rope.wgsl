// Rotary embedding in place, one invocation per (token, head, pair). The host computes each
// token's cosines and sines with Hearth's own sin/cos (as the CPU engine does), so the angles
// agree with the CPU to the bit; only the rotation itself runs here.
struct Params { tokens: u32, heads: u32, head_dim: u32, half: u32, halves: u32, wg_x: u32, _a: u32, _b: u32 }
@group(0) @binding(0) var<storage, read_write> x: array<f32>;
// Per token: half cosines, then half sines.
@group(0) @binding(1) var<storage, read> cs: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
    let id = (wid.x + wid.y * p.wg_x) * 64u + lid;
    if (id >= p.tokens * p.heads * p.half) {
        return;
    }
    let i = id % p.half;
    let head = (id / p.half) % p.heads;
    let tok = id / (p.half * p.heads);
    let base = (tok * p.heads + head) * p.head_dim;
    var a = base + 2u * i;
    var b = a + 1u;
    if (p.halves != 0u) {
        a = base + i;
        b = base + i + p.half;
    }
    let c = cs[tok * 2u * p.half + i];
    let s = cs[tok * 2u * p.half + p.half + i];
    let x0 = x[a];
    let x1 = x[b];
    x[a] = x0 * c - x1 * s;
    x[b] = x0 * s + x1 * c;
}
