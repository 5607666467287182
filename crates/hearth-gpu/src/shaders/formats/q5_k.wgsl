// Q5_K weights (176 bytes: d, dmin, 12 bytes of scales and mins, qh[32]: bit j of byte l is
// the fifth bit of element l of group j, then 128 bytes of nibbles as Q4_K), Q8_K activations.
const UNIT: u32 = 32u;
fn unit_dot(wr: u32, xr: u32, u: u32, acc: f32) -> f32 {
    let sb = u / 8u;
    let j = u % 8u;
    let wo = wr + 176u * sb;
    let xo = xr + 292u * sb;
    let sm = scale_min_k4(wo + 4u, j);
    let qo = wo + 48u + 32u * (j / 2u);
    let shift = 4u * (j % 2u);
    var s = 0i;
    for (var l = 0u; l < 32u; l++) {
        let q = ((wb(qo + l) >> shift) & 15u) | (((wb(wo + 16u + l) >> j) & 1u) << 4u);
        s += i32(q) * xi8(xo + 4u + 32u * j + l);
    }
    let dx = xf32(xo);
    let a = fma(wf16(wo) * dx, f32(i32(sm.x) * s), acc);
    return fma(-(wf16(wo + 2u) * dx), f32(i32(sm.y) * q8k_group_sum(xo, j)), a);
}
