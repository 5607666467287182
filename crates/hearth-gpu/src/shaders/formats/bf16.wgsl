// BF16 weights, BF16 activations: a bfloat16 is the top half of an f32.
const UNIT: u32 = 1u;
fn unit_dot(wr: u32, xr: u32, u: u32, acc: f32) -> f32 {
    let a = bitcast<f32>(w16(wr + 2u * u) << 16u);
    let b = bitcast<f32>(x16(xr + 2u * u) << 16u);
    return fma(a, b, acc);
}
