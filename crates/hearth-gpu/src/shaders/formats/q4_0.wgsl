// Q4_0 weights (d: f16, 16 bytes: element j in the low nibble of byte j, element j + 16 in the
// high one, less 8), Q8_0 activations.
const UNIT: u32 = 32u;
fn unit_dot(wr: u32, xr: u32, u: u32, acc: f32) -> f32 {
    let wo = wr + 18u * u;
    let xo = xr + 34u * u;
    var s = 0i;
    for (var j = 0u; j < 16u; j++) {
        let b = wb(wo + 2u + j);
        s += (i32(b & 15u) - 8i) * xi8(xo + 2u + j);
        s += (i32(b >> 4u) - 8i) * xi8(xo + 18u + j);
    }
    return fma(wf16(wo) * xf16(xo), f32(s), acc);
}
