// Gated activations in place: gate = act(gate) * up, SwiGLU (act = SiLU) or GEGLU (act = GELU,
// tanh form).
struct Params { n: u32, gelu: u32, wg_x: u32, _a: u32 }
@group(0) @binding(0) var<storage, read_write> gate: array<f32>;
@group(0) @binding(1) var<storage, read> up: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

fn gelu_tanh(v: f32) -> f32 {
    // tanh through exp of a negative argument, which cannot overflow.
    let z = 0.7978846 * v * (1.0 + 0.044715 * v * v);
    let e = exp(-2.0 * abs(z));
    let t = sign(z) * (1.0 - e) / (1.0 + e);
    return 0.5 * v * (1.0 + t);
}

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
    let i = (wid.x + wid.y * p.wg_x) * 64u + lid;
    if (i >= p.n) {
        return;
    }
    let g = gate[i];
    if (p.gelu != 0u) {
        gate[i] = gelu_tanh(g) * up[i];
    } else {
        gate[i] = g / (1.0 + exp(-g)) * up[i];
    }
}
