// Q8_0 weights (d: f16, 32 x i8), Q8_0 activations: one block per unit, its 32 products
// summed exactly in i32.
const UNIT: u32 = 32u;
fn unit_dot(wr: u32, xr: u32, u: u32, acc: f32) -> f32 {
    let wo = wr + 34u * u;
    let xo = xr + 34u * u;
    var s = 0i;
    for (var j = 0u; j < 32u; j++) {
        s += wi8(wo + 2u + j) * xi8(xo + 2u + j);
    }
    return fma(wf16(wo) * xf16(xo), f32(s), acc);
}
