// Q5_0 weights (d: f16, qh: 32 fifth bits, 16 bytes of nibbles as Q4_0, less 16), Q8_0
// activations.
const UNIT: u32 = 32u;
fn unit_dot(wr: u32, xr: u32, u: u32, acc: f32) -> f32 {
    let wo = wr + 22u * u;
    let xo = xr + 34u * u;
    let qh = w16(wo + 2u) | (w16(wo + 4u) << 16u);
    var s = 0i;
    for (var j = 0u; j < 16u; j++) {
        let b = wb(wo + 6u + j);
        let lo = (b & 15u) | (((qh >> j) & 1u) << 4u);
        let hi = (b >> 4u) | (((qh >> (j + 16u)) & 1u) << 4u);
        s += (i32(lo) - 16i) * xi8(xo + 2u + j);
        s += (i32(hi) - 16i) * xi8(xo + 18u + j);
    }
    return fma(wf16(wo) * xf16(xo), f32(s), acc);
}
