// Q6_K weights (210 bytes: ql[128] low nibbles, qh[64] two high bits, 16 x i8 scales, d: f16),
// Q8_K activations. Group j (32 elements) of a super-block is quarter k = j % 4 of half
// n = j / 4: low nibbles of ql[64n + 32(k & 1) ..] (high nibbles for k >= 2), bits 2k of
// qh[32n ..], scales 8n + 2k (first 16) and 8n + 2k + 1 (last 16); codes less 32.
const UNIT: u32 = 32u;
fn unit_dot(wr: u32, xr: u32, u: u32, acc: f32) -> f32 {
    let sb = u / 8u;
    let j = u % 8u;
    let n = j / 4u;
    let k = j % 4u;
    let wo = wr + 210u * sb;
    let xo = xr + 292u * sb;
    let lo = wo + 64u * n + 32u * (k & 1u);
    let shift = 4u * (k / 2u);
    let ho = wo + 128u + 32u * n;
    var s0 = 0i;
    var s1 = 0i;
    for (var l = 0u; l < 16u; l++) {
        let q0 = ((wb(lo + l) >> shift) & 15u) | (((wb(ho + l) >> (2u * k)) & 3u) << 4u);
        let q1 = ((wb(lo + l + 16u) >> shift) & 15u) | (((wb(ho + l + 16u) >> (2u * k)) & 3u) << 4u);
        s0 += (i32(q0) - 32i) * xi8(xo + 4u + 32u * j + l);
        s1 += (i32(q1) - 32i) * xi8(xo + 20u + 32u * j + l);
    }
    let sc = wo + 192u + 8u * n + 2u * k;
    let s = wi8(sc) * s0 + wi8(sc + 1u) * s1;
    return fma(wf16(wo + 208u) * xf32(xo), f32(s), acc);
}
