//! Multi-token tiles for the i-quants that multiply Q8_K activations (IQ4_XS, IQ2_XXS, IQ2_XS,
//! IQ3_XXS, IQ3_S), AVX2: one weight row × up to [`TOKENS`] activation rows per call, each
//! 32-element chunk's weights decoded once (the table lookup or lattice gather is most of a
//! single-token dot's work) and multiplied with every token's activations.
//!
//! # Same bits as `vec_dot`
//! Per chunk the single-token kernels form `madd(maddubs(u, sign(y, s)), scales)`: exact i32
//! lanes, the same integers on either level (IQ4_XS's VNNI `vec_dot` reaches them with
//! `vpdpbusd` and a multiply). Each token here keeps its own lanes and accumulator and performs
//! the single-token kernel's float operations on them in block order: `d = d_x · d_w` (times
//! the lattice factor), one FMA per block, the same final reduction.

#![allow(clippy::needless_range_loop)]

use std::arch::x86_64::*;

use super::iquants::{levels, table};
use super::legacy::{f16_at, hsum, load32};
use crate::formats::iq23::factor;
use crate::formats::iquants::{iq4xs_scale, KV_IQ4NL};
use crate::types::Tile;
use hearth_gguf::GgmlType;

/// Tokens per tile; the last `n % TOKENS` tokens run as a narrower tile.
pub(crate) const TOKENS: usize = 4;

/// Whether `ty` has a tile kernel here.
pub(crate) fn supports(ty: GgmlType) -> bool {
    use GgmlType::*;
    matches!(ty, IQ4_XS | IQ2_XXS | IQ2_XS | IQ3_XXS | IQ3_S)
}

/// Every (row, token) product of `rows` weight rows and `tokens` Q8_K activation rows, each
/// equal to `vec_dot` of the pair bit for bit (on the AVX2 and the AVX-512 VNNI level).
///
/// # Safety
/// As `crate::x86::legacy_tile::dot_tile`, with `ty` one that [`supports`] accepts and Q8_K
/// activations.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn dot_tile(ty: GgmlType, nb: usize, t: &Tile, rows: usize, tokens: usize) {
    let mut t0 = 0;
    while t0 < tokens {
        let nt = (tokens - t0).min(TOKENS);
        for r in 0..rows {
            let tile = t.at(r, t0);
            // SAFETY: row `r` and tokens `t0..t0 + nt` are inside the caller's ranges.
            unsafe {
                match nt {
                    1 => kernel::<1>(ty, nb, &tile),
                    2 => kernel::<2>(ty, nb, &tile),
                    3 => kernel::<3>(ty, nb, &tile),
                    _ => kernel::<4>(ty, nb, &tile),
                }
            }
        }
        t0 += nt;
    }
}

/// One row and `T` tokens.
///
/// # Safety
/// As [`dot_tile`], for one row and `T` tokens.
#[inline(always)]
unsafe fn kernel<const T: usize>(ty: GgmlType, nb: usize, t: &Tile) {
    let wbs = ty.type_size();
    let f = factor(ty);
    // SAFETY (whole body): block `i < nb` of the row and of each token `tt < T` is readable
    // (caller's contract); the offsets are the block layouts the single-token kernels read.
    unsafe {
        let kv = table(&KV_IQ4NL);
        let mut acc = [_mm256_setzero_ps(); T];
        for i in 0..nb {
            let wb = t.w.add(i * wbs);
            let xb: [*const u8; T] = std::array::from_fn(|tt| t.x.add(tt * t.xrb + i * 292));
            let dw = f16_at(wb);
            let mut lanes = [_mm256_setzero_si256(); T];
            for c in 0..8 {
                let (u, s, sc) = if ty == GgmlType::IQ4_XS {
                    let block = std::slice::from_raw_parts(wb, 136);
                    let q = levels(kv, wb.add(8 + 16 * c));
                    let sc = _mm256_set1_epi16(iq4xs_scale(block, c) as i16);
                    (_mm256_sign_epi8(q, q), q, sc)
                } else {
                    let (g, s, sc) = super::iq23::chunk(ty, wb, c);
                    (
                        _mm256_setr_epi64x(g[0], g[1], g[2], g[3]),
                        _mm256_setr_epi64x(s[0], s[1], s[2], s[3]),
                        _mm256_setr_m128i(_mm_set1_epi16(sc[0]), _mm_set1_epi16(sc[1])),
                    )
                };
                for tt in 0..T {
                    let y = _mm256_sign_epi8(load32(xb[tt].add(4 + 32 * c)), s);
                    let p = _mm256_madd_epi16(_mm256_maddubs_epi16(u, y), sc);
                    lanes[tt] = _mm256_add_epi32(lanes[tt], p);
                }
            }
            for tt in 0..T {
                let yd = (xb[tt] as *const f32).read_unaligned();
                let d = if ty == GgmlType::IQ4_XS {
                    yd * dw
                } else {
                    yd * dw * f
                };
                acc[tt] =
                    _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(lanes[tt]), acc[tt]);
            }
        }
        for tt in 0..T {
            *t.out.add(tt * t.ostride) = hsum(acc[tt]);
        }
    }
}
