//! Multi-token tiles for Q4_K, Q5_K and Q6_K (AVX2, and AVX2 with AVX-512 VNNI): one weight
//! row × up to `TOKENS` activation rows per call, each super-block's quants and scales unpacked
//! once for all tokens. The body is generic over the scale multiply-accumulate ([`ScaleAcc`])
//! and compiled once per level ([`dot_tile`], [`dot_tile_vnni`]).
//!
//! # Same bits as `vec_dot`
//! Per block the single-token kernel forms the eight i32 lane sums `S` (and for Q4_K/Q5_K the
//! mins' lanes `M`), then performs one FMA `A += d · S` (and `B += dmin · M`), and at the end
//! reduces `A + B` with the fixed halving sum (see `formats::kquants`). The lane sums are
//! exact integers, so summing a chunk's products in any order gives the same `S`; each token
//! here keeps its own `S`, `A`, `B` and performs the same float operations on them in block
//! order, so every (row, token) output equals `vec_dot` bit for bit.

// The loops index several parallel per-(row, token) arrays of constant size at once; index
// ranges say that more plainly than zipped iterators.
#![allow(clippy::needless_range_loop)]

use super::kquants::{
    f16_ptr, f32_ptr, hsum8, load, pair_mask, q6k_chunks, scales_halves, splat_mask, words, Madd,
    ScaleAcc, Vnni,
};
use crate::formats::kquants::{k4_unpack, Q4K, Q5K, Q6K, Q8K, Q8K_BSUMS, Q8K_QS};
use crate::types::Tile;
use hearth_gguf::GgmlType;
use std::arch::x86_64::*;

/// Tokens per tile; the last `n % TOKENS` tokens run as a narrower tile.
pub(crate) const TOKENS: usize = 4;

/// Whether `ty` has a tile kernel here.
pub(crate) fn supports(ty: GgmlType) -> bool {
    use GgmlType::*;
    matches!(ty, Q4_K | Q5_K | Q6_K)
}

/// Every (row, token) product of `rows` weight rows and `tokens` Q8_K activation rows, each
/// equal to the AVX2 `vec_dot` of the pair bit for bit.
///
/// # Safety
/// As `crate::x86::legacy_tile::dot_tile`, with `ty` one that [`supports`] accepts and Q8_K
/// activations.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn dot_tile(ty: GgmlType, nb: usize, t: &Tile, rows: usize, tokens: usize) {
    // SAFETY: forwarded from the caller.
    unsafe { tiles::<Madd>(ty, nb, t, rows, tokens) }
}

/// [`dot_tile`] with AVX-512 VNNI's `vpdpwssd` for the scale multiply-accumulate: each output
/// equals the (AVX2) `vec_dot` bit for bit, like [`dot_tile`]'s.
///
/// # Safety
/// As [`dot_tile`], and the CPU also has AVX-512 VNNI, VL and BW.
#[target_feature(enable = "avx2,fma,f16c,avx512vnni,avx512vl,avx512bw")]
pub(crate) unsafe fn dot_tile_vnni(ty: GgmlType, nb: usize, t: &Tile, rows: usize, tokens: usize) {
    // SAFETY: forwarded from the caller.
    unsafe { tiles::<Vnni>(ty, nb, t, rows, tokens) }
}

/// The body of [`dot_tile`] with scale accumulation `W`.
///
/// # Safety
/// As [`dot_tile`]; the CPU has `W`'s features.
#[inline(always)]
unsafe fn tiles<W: ScaleAcc>(ty: GgmlType, nb: usize, t: &Tile, rows: usize, tokens: usize) {
    let mut t0 = 0;
    while t0 < tokens {
        let nt = (tokens - t0).min(TOKENS);
        for r in 0..rows {
            let tile = t.at(r, t0);
            // SAFETY: row `r` and tokens `t0..t0 + nt` are inside the caller's ranges.
            unsafe {
                match nt {
                    1 => kernel::<W, 1>(ty, nb, &tile),
                    2 => kernel::<W, 2>(ty, nb, &tile),
                    3 => kernel::<W, 3>(ty, nb, &tile),
                    _ => kernel::<W, 4>(ty, nb, &tile),
                }
            }
        }
        t0 += nt;
    }
}

/// # Safety
/// As [`dot_tile`], for one row and `T` tokens.
#[inline(always)]
unsafe fn kernel<W: ScaleAcc, const T: usize>(ty: GgmlType, nb: usize, t: &Tile) {
    // SAFETY: forwarded from the caller.
    unsafe {
        match ty {
            GgmlType::Q4_K => tile_q4k::<W, T, false>(nb, t),
            GgmlType::Q5_K => tile_q4k::<W, T, true>(nb, t),
            GgmlType::Q6_K => tile_q6k::<W, T>(nb, t),
            other => unreachable!("K-quant tile on {other}"),
        }
    }
}

/// Q4_K, or Q5_K when `FIVE` (a fifth bit per quant from `qh`).
///
/// # Safety
/// As [`kernel`].
#[inline(always)]
unsafe fn tile_q4k<W: ScaleAcc, const T: usize, const FIVE: bool>(nb: usize, t: &Tile) {
    let (wbs, qs_off) = if FIVE { (Q5K, 48) } else { (Q4K, 16) };
    let m4 = _mm256_set1_epi8(0x0f);
    let bit4 = _mm256_set1_epi8(16);
    // SAFETY (whole body): block `i < nb` of the row and of each token `tt < T` is readable
    // (caller's contract); the offsets are the Q4_K / Q5_K / Q8_K field positions used by the
    // single-token kernels.
    unsafe {
        let masks: [__m256i; 8] = std::array::from_fn(|i| splat_mask(i));
        let zero = _mm256_setzero_ps();
        let (mut acc, mut acc_m) = ([zero; T], [zero; T]);
        for i in 0..nb {
            let wb = t.w.add(i * wbs);
            let xb: [*const u8; T] = std::array::from_fn(|tt| t.x.add(tt * t.xrb + i * Q8K));
            let (dw, dminw) = (f16_ptr(wb), f16_ptr(wb.add(2)));
            let mut s = [_mm256_setzero_si256(); T];
            let (scales, m16) = k4_scales_mins(wb);
            let mut hb = if FIVE {
                load(wb.add(16))
            } else {
                _mm256_setzero_si256()
            };
            for j in 0..4 {
                let bits = load(wb.add(qs_off + 32 * j));
                let mut q_lo = _mm256_and_si256(bits, m4);
                let mut q_hi = _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4);
                if FIVE {
                    q_lo = _mm256_or_si256(q_lo, _mm256_and_si256(_mm256_slli_epi16(hb, 4), bit4));
                    q_hi = _mm256_or_si256(q_hi, _mm256_and_si256(_mm256_slli_epi16(hb, 3), bit4));
                    hb = _mm256_srli_epi16(hb, 2);
                }
                let sc_lo = _mm256_shuffle_epi8(scales, masks[2 * j]);
                let sc_hi = _mm256_shuffle_epi8(scales, masks[2 * j + 1]);
                for tt in 0..T {
                    let q8 = xb[tt].add(Q8K_QS + 64 * j);
                    let lo = _mm256_maddubs_epi16(q_lo, load(q8));
                    let hi = _mm256_maddubs_epi16(q_hi, load(q8.add(32)));
                    s[tt] = W::acc2(s[tt], sc_lo, lo, sc_hi, hi);
                }
            }
            for tt in 0..T {
                let yd = f32_ptr(xb[tt]);
                let (d, dmin) = (yd * dw, -(yd * dminw));
                let m = _mm256_madd_epi16(m16, load(xb[tt].add(Q8K_BSUMS)));
                acc[tt] = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(s[tt]), acc[tt]);
                acc_m[tt] = _mm256_fmadd_ps(_mm256_set1_ps(dmin), _mm256_cvtepi32_ps(m), acc_m[tt]);
            }
        }
        for tt in 0..T {
            *t.out.add(tt * t.ostride) = hsum8(_mm256_add_ps(acc[tt], acc_m[tt]));
        }
    }
}

/// The eight i16 scales of a Q4_K/Q5_K block in both halves, and its mins duplicated into
/// i16 pairs: `k4_block` split so that only the mins' product with the bsums is per token.
#[inline(always)]
unsafe fn k4_scales_mins(wb: *const u8) -> (__m256i, __m256i) {
    // SAFETY: `wb` is a whole Q4_K/Q5_K block (caller's contract); its scales are bytes 4..16.
    unsafe {
        let v = words(k4_unpack(std::slice::from_raw_parts(wb.add(4), 12)));
        let scales = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(v));
        let dup = _mm_setr_epi8(8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15);
        (scales, _mm256_cvtepu8_epi16(_mm_shuffle_epi8(v, dup)))
    }
}

/// Q6_K.
///
/// # Safety
/// As [`kernel`].
#[inline(always)]
unsafe fn tile_q6k<W: ScaleAcc, const T: usize>(nb: usize, t: &Tile) {
    // SAFETY (whole body): block `i < nb` of the row and of each token `tt < T` is readable
    // (caller's contract); offsets are the Q6_K / Q8_K field positions.
    unsafe {
        let masks = [pair_mask(0), pair_mask(1), pair_mask(2), pair_mask(3)];
        let zero = _mm256_setzero_ps();
        let mut acc = [zero; T];
        for i in 0..nb {
            let wb = t.w.add(i * Q6K);
            let xb: [*const u8; T] = std::array::from_fn(|tt| t.x.add(tt * t.xrb + i * Q8K));
            let dw = f16_ptr(wb.add(208));
            let sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(wb.add(192) as *const __m128i));
            let scales = scales_halves(sc16);
            let mut s = [_mm256_setzero_si256(); T];
            for (j, sc) in scales.iter().enumerate() {
                let q = q6k_chunks(wb, j);
                for (k, qk) in q.iter().enumerate() {
                    let scm = _mm256_shuffle_epi8(*sc, masks[k]);
                    for tt in 0..T {
                        let y = load(xb[tt].add(Q8K_QS + 128 * j + 32 * k));
                        s[tt] = W::acc(s[tt], scm, _mm256_maddubs_epi16(*qk, y));
                    }
                }
            }
            for tt in 0..T {
                let d = f32_ptr(xb[tt]) * dw;
                let offset =
                    _mm256_slli_epi32(_mm256_madd_epi16(sc16, load(xb[tt].add(Q8K_BSUMS))), 5);
                let lanes = _mm256_cvtepi32_ps(_mm256_sub_epi32(s[tt], offset));
                acc[tt] = _mm256_fmadd_ps(_mm256_set1_ps(d), lanes, acc[tt]);
            }
        }
        for tt in 0..T {
            // `+ 0.0` as the single-token kernel adds its (zero) mins accumulator: it turns a
            // -0.0 lane into +0.0, so it is part of the bits.
            *t.out.add(tt * t.ostride) = hsum8(_mm256_add_ps(acc[tt], zero));
        }
    }
}
