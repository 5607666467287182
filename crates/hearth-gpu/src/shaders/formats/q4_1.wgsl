// Q4_1 weights (d, m: f16, 16 bytes of nibbles as Q4_0, no offset), Q8_1 activations (d, and
// s = d * sum of the codes): d_w d_x sum(q_w q_x) + m_w s_x.
const UNIT: u32 = 32u;
fn unit_dot(wr: u32, xr: u32, u: u32, acc: f32) -> f32 {
    let wo = wr + 20u * u;
    let xo = xr + 36u * u;
    var s = 0i;
    for (var j = 0u; j < 16u; j++) {
        let b = wb(wo + 4u + j);
        s += i32(b & 15u) * xi8(xo + 4u + j);
        s += i32(b >> 4u) * xi8(xo + 20u + j);
    }
    let a = fma(wf16(wo) * xf16(xo), f32(s), acc);
    return fma(wf16(wo + 2u), xf16(xo + 2u), a);
}
