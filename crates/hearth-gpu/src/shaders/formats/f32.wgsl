// F32 weights, F32 activations: one element per unit.
const UNIT: u32 = 1u;
fn unit_dot(wr: u32, xr: u32, u: u32, acc: f32) -> f32 {
    return fma(wf32(wr + 4u * u), xf32(xr + 4u * u), acc);
}
