//! The non-linear 4-bit formats: IQ4_NL and IQ4_XS (codes index a fixed table of 16 signed
//! levels, denser near zero, instead of a uniform grid) and MXFP4 (the OCP microscaling FP4:
//! E2M1 codes under a power-of-two E8M0 scale, gpt-oss's expert format).
//!
//! Block layouts (little-endian, no padding; ggml's `block_iq4_nl`, `block_iq4_xs`,
//! `block_mxfp4`):
//!
//! | type | elements | bytes | fields | value |
//! |------|----------|-------|--------|-------|
//! | IQ4_NL | 32 | 18 | `d: f16`, `qs: [u8; 16]` | `d · K[q]` |
//! | IQ4_XS | 256 | 136 | `d: f16`, `scales_h: u16`, `scales_l: [u8; 4]`, `qs: [u8; 128]` | `(d · (s − 32)) · K[q]` |
//! | MXFP4 | 32 | 17 | `e: u8`, `qs: [u8; 16]` | `2^(e − 128) · M[q]` |
//!
//! `K` is [`KV_IQ4NL`] and `M` is [`KV_MXFP4`] (the E2M1 values doubled, so they are integers;
//! the scale's exponent is one less to match). In every 32-element group element `j` is the
//! low nibble of byte `j` and element `j + 16` its high nibble, as in Q4_0. IQ4_XS's eight
//! groups each have a 6-bit scale `s`: its low four bits are nibble `g % 2` of
//! `scales_l[g / 2]`, its high two bits are bits `2g..2g + 2` of `scales_h`. Decoding follows
//! the `gguf` Python package operation for operation (IQ4_XS rounds `d · (s − 32)` to f32
//! before multiplying the level), which the committed fixtures check bit for bit.
//!
//! # Dot products
//! All levels are small integers (|K| ≤ 127, |M| ≤ 12), so a block's products with 8-bit
//! activations are exact i32 sums, as for Q8_0. IQ4_NL and MXFP4 multiply Q8_0 activations
//! (llama.cpp's pairing) and follow the legacy formats' order exactly (eight lane sums per
//! block, `d_w · d_x` then one FMA into accumulator `i % 4`, the same final reduction: see
//! `formats::legacy::dot_scalar`). IQ4_XS multiplies Q8_K activations and follows the K-quant
//! lanes (`formats::kquants`): lane `k` of a block sums `(s_g − 32) · K[q_e] · y_e` over the
//! elements `e` with `(e % 32) / 4 == k`, and adds it times `d_x · d_w` with one FMA.
//!
//! # Quantization
//! The encoders here are simple (the nearest level under a scale fitted to the block's largest
//! value, without ggml's importance-weighted search); they build test weights and are never on
//! a model's path, so their bytes need not match llama.cpp's quantizer.

use hearth_gguf::{GgmlType, QK_K};

use crate::formats::kquants::{self, Q8K, Q8K_QS};

/// IQ4_NL's and IQ4_XS's 16 levels (`kvalues_iq4nl` in ggml; the `gguf` package's
/// `IQ4_NL.kvalues`).
pub(crate) const KV_IQ4NL: [i8; 16] = [
    -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113,
];

/// MXFP4's 16 levels: the E2M1 values 0, 0.5, 1, 1.5, 2, 3, 4, 6 and their negatives, doubled.
pub(crate) const KV_MXFP4: [i8; 16] = [0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12];

const QK: usize = 32;
pub(crate) const IQ4NL: usize = 18;
pub(crate) const IQ4XS: usize = 136;
pub(crate) const MXFP4: usize = 17;

/// The E8M0 scale `e` halved (`2^(e − 128)`), exactly: ggml's `ggml_e8m0_to_fp32_half`. The
/// two smallest scales are subnormal f32 values.
#[inline(always)]
pub(crate) fn e8m0_half(e: u8) -> f32 {
    let bits = if e < 2 {
        0x0020_0000u32 << e
    } else {
        (e as u32 - 1) << 23
    };
    f32::from_bits(bits)
}

#[inline(always)]
fn rd_f16(b: &[u8], off: usize) -> f32 {
    crate::formats::float::f16_to_f32(u16::from_le_bytes([b[off], b[off + 1]]))
}

/// The 6-bit scale of group `g` of an IQ4_XS block, less its offset of 32.
#[inline(always)]
pub(crate) fn iq4xs_scale(b: &[u8], g: usize) -> i32 {
    let h = u16::from_le_bytes([b[2], b[3]]);
    let lo = (b[4 + g / 2] >> (4 * (g % 2))) & 0x0f;
    let hi = ((h >> (2 * g)) & 3) as u8;
    (lo | (hi << 4)) as i32 - 32
}

/// The 32 levels of one group whose 16 code bytes start at `qs`.
#[inline(always)]
fn levels(b: &[u8], qs: usize, table: &[i8; 16]) -> [i8; QK] {
    std::array::from_fn(|j| {
        let byte = b[qs + j % 16];
        table[((byte >> (4 * (j / 16))) & 0x0f) as usize]
    })
}

pub(crate) fn dequantize(ty: GgmlType, src: &[u8], dst: &mut [f32]) {
    match ty {
        GgmlType::IQ4_NL => {
            for (b, out) in src.chunks_exact(IQ4NL).zip(dst.chunks_exact_mut(QK)) {
                let d = rd_f16(b, 0);
                for (o, &q) in out.iter_mut().zip(&levels(b, 2, &KV_IQ4NL)) {
                    *o = d * q as f32;
                }
            }
        }
        GgmlType::MXFP4 => {
            for (b, out) in src.chunks_exact(MXFP4).zip(dst.chunks_exact_mut(QK)) {
                let d = e8m0_half(b[0]);
                for (o, &q) in out.iter_mut().zip(&levels(b, 1, &KV_MXFP4)) {
                    *o = d * q as f32;
                }
            }
        }
        GgmlType::IQ4_XS => {
            for (b, out) in src.chunks_exact(IQ4XS).zip(dst.chunks_exact_mut(QK_K)) {
                let d = rd_f16(b, 0);
                for (g, out) in out.chunks_exact_mut(QK).enumerate() {
                    let dl = d * iq4xs_scale(b, g) as f32;
                    for (o, &q) in out.iter_mut().zip(&levels(b, 8 + 16 * g, &KV_IQ4NL)) {
                        *o = dl * q as f32;
                    }
                }
            }
        }
        other => unreachable!("iquants::dequantize called with {other}"),
    }
}

/// The scale of a 32-element weight block, before it is multiplied by the activation's.
#[inline(always)]
fn weight_scale(ty: GgmlType, b: &[u8]) -> f32 {
    if ty == GgmlType::MXFP4 {
        e8m0_half(b[0])
    } else {
        rd_f16(b, 0)
    }
}

/// IQ4_NL or MXFP4 against Q8_0, the portable reference (the legacy formats' order: see the
/// module docs).
pub(crate) fn dot_scalar_32(ty: GgmlType, nb: usize, w: &[u8], x: &[u8]) -> f32 {
    let (wbs, qs, table) = match ty {
        GgmlType::IQ4_NL => (IQ4NL, 2, &KV_IQ4NL),
        GgmlType::MXFP4 => (MXFP4, 1, &KV_MXFP4),
        other => unreachable!("iquants::dot_scalar_32 called with {other}"),
    };
    let mut acc = [[0.0f32; 8]; 4];
    for i in 0..nb {
        let wb = &w[i * wbs..(i + 1) * wbs];
        let xb = &x[i * 34..(i + 1) * 34];
        let d = weight_scale(ty, wb) * rd_f16(xb, 0);
        let q = levels(wb, qs, table);
        let a = &mut acc[i % 4];
        for (k, lane) in a.iter_mut().enumerate() {
            let s: i32 = (4 * k..4 * k + 4)
                .map(|j| q[j] as i32 * (xb[2 + j] as i8 as i32))
                .sum();
            *lane = d.mul_add(s as f32, *lane);
        }
    }
    let v: [f32; 8] = std::array::from_fn(|k| (acc[0][k] + acc[1][k]) + (acc[2][k] + acc[3][k]));
    ((v[0] + v[4]) + (v[2] + v[6])) + ((v[1] + v[5]) + (v[3] + v[7]))
}

/// IQ4_XS against Q8_K, the portable reference (the K-quant lanes: see the module docs).
pub(crate) fn dot_scalar_iq4xs(nb: usize, w: &[u8], x: &[u8]) -> f32 {
    let mut acc = [0.0f32; 8];
    for (wb, xb) in w.chunks_exact(IQ4XS).zip(x.chunks_exact(Q8K)).take(nb) {
        let d = kquants::f32_at(xb, 0) * rd_f16(wb, 0);
        let y = &xb[Q8K_QS..Q8K_QS + QK_K];
        let mut lanes = [0i32; 8];
        for g in 0..8 {
            let q = levels(wb, 8 + 16 * g, &KV_IQ4NL);
            let sc = iq4xs_scale(wb, g);
            for (k, lane) in lanes.iter_mut().enumerate() {
                let p: i32 = (4 * k..4 * k + 4)
                    .map(|j| q[j] as i32 * (y[32 * g + j] as i8 as i32))
                    .sum();
                *lane += sc * p;
            }
        }
        for (a, &l) in acc.iter_mut().zip(&lanes) {
            *a = d.mul_add(l as f32, *a);
        }
    }
    let t = [
        acc[0] + acc[4],
        acc[1] + acc[5],
        acc[2] + acc[6],
        acc[3] + acc[7],
    ];
    (t[0] + t[2]) + (t[1] + t[3])
}

/// The index of the level of `table` nearest `v` (the first on a tie).
fn nearest(table: &[i8; 16], v: f32) -> u8 {
    let mut best = 0;
    for (k, &t) in table.iter().enumerate() {
        if (t as f32 - v).abs() < (table[best] as f32 - v).abs() {
            best = k;
        }
    }
    best as u8
}

/// The element of largest magnitude, with its sign.
fn signed_max(x: &[f32]) -> f32 {
    x.iter()
        .fold(0.0f32, |m, &v| if v.abs() > m.abs() { v } else { m })
}

/// Writes 32 codes as Q4_0-order nibbles at `qs`.
fn pack(codes: impl Fn(usize) -> u8, b: &mut [u8], qs: usize) {
    for j in 0..16 {
        b[qs + j] = codes(j) | (codes(j + 16) << 4);
    }
}

/// Encodes a row of IQ4_NL, IQ4_XS or MXFP4 weights (see the module docs: for tests).
pub(crate) fn quantize(ty: GgmlType, src: &[f32], dst: &mut [u8]) {
    match ty {
        GgmlType::IQ4_NL => {
            for (x, b) in src.chunks_exact(QK).zip(dst.chunks_exact_mut(IQ4NL)) {
                // The largest element maps to the level -127.
                let d = half::f16::from_f32(signed_max(x) / -127.0);
                b[0..2].copy_from_slice(&d.to_le_bytes());
                let id = if d.to_f32() != 0.0 {
                    1.0 / d.to_f32()
                } else {
                    0.0
                };
                pack(|j| nearest(&KV_IQ4NL, x[j] * id), b, 2);
            }
        }
        GgmlType::MXFP4 => {
            for (x, b) in src.chunks_exact(QK).zip(dst.chunks_exact_mut(MXFP4)) {
                // The `gguf` package's encoder: the scale puts the largest magnitude among the
                // top levels (exponent floor(log2 amax) − 2), then the nearest level.
                let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                let e = if amax > 0.0 {
                    (amax.log2().floor() as i32 - 2 + 127).clamp(0, 254) as u8
                } else {
                    0
                };
                b[0] = e;
                let d = e8m0_half(e);
                pack(|j| nearest(&KV_MXFP4, x[j] / d), b, 1);
            }
        }
        GgmlType::IQ4_XS => {
            for (x, b) in src.chunks_exact(QK_K).zip(dst.chunks_exact_mut(IQ4XS)) {
                // Each group's own scale (largest element to level -127), then one super-block
                // scale that maps the largest of those to the 6-bit scale -32.
                let groups: [f32; 8] =
                    std::array::from_fn(|g| signed_max(&x[32 * g..32 * g + 32]) / -127.0);
                let d = half::f16::from_f32(signed_max(&groups) / -32.0);
                let df = d.to_f32();
                b[0..2].copy_from_slice(&d.to_le_bytes());
                b[2..8].fill(0);
                let mut h = 0u16;
                for (g, &s) in groups.iter().enumerate() {
                    let ls = if df != 0.0 {
                        ((s / df).round() as i32).clamp(-32, 31) + 32
                    } else {
                        32
                    };
                    b[4 + g / 2] |= ((ls & 0x0f) as u8) << (4 * (g % 2));
                    h |= ((ls >> 4) as u16) << (2 * g);
                    let dl = df * (ls - 32) as f32;
                    let id = if dl != 0.0 { 1.0 / dl } else { 0.0 };
                    let xg = &x[32 * g..32 * g + 32];
                    pack(|j| nearest(&KV_IQ4NL, xg[j] * id), b, 8 + 16 * g);
                }
                b[2..4].copy_from_slice(&h.to_le_bytes());
            }
        }
        other => unreachable!("iquants::quantize called with {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_sizes_match_the_type_table() {
        assert_eq!(GgmlType::IQ4_NL.type_size(), IQ4NL);
        assert_eq!(GgmlType::IQ4_XS.type_size(), IQ4XS);
        assert_eq!(GgmlType::MXFP4.type_size(), MXFP4);
        assert_eq!(GgmlType::IQ4_XS.block_size(), QK_K);
    }

    #[test]
    fn e8m0_half_is_two_to_the_e_minus_128() {
        for e in 0..=255u8 {
            assert_eq!(e8m0_half(e), 2f64.powi(e as i32 - 128) as f32, "e = {e}");
        }
    }
}
