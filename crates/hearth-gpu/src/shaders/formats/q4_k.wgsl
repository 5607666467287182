// Q4_K weights (144 bytes: d, dmin: f16, 12 bytes of 6-bit scales and mins, 128 bytes of
// nibbles: group 2c in the low nibbles of bytes 32c..32c+32, group 2c+1 in the high ones),
// Q8_K activations: d_w d_x sc sum(q x) - dmin_w d_x m sum(x), both sums exact in i32.
const UNIT: u32 = 32u;
fn unit_dot(wr: u32, xr: u32, u: u32, acc: f32) -> f32 {
    let sb = u / 8u;
    let j = u % 8u;
    let wo = wr + 144u * sb;
    let xo = xr + 292u * sb;
    let sm = scale_min_k4(wo + 4u, j);
    let qo = wo + 16u + 32u * (j / 2u);
    let shift = 4u * (j % 2u);
    var s = 0i;
    for (var l = 0u; l < 32u; l++) {
        s += i32((wb(qo + l) >> shift) & 15u) * xi8(xo + 4u + 32u * j + l);
    }
    let dx = xf32(xo);
    let a = fma(wf16(wo) * dx, f32(i32(sm.x) * s), acc);
    return fma(-(wf16(wo + 2u) * dx), f32(i32(sm.y) * q8k_group_sum(xo, j)), a);
}
