//! The packed K-quants' kernels (Q4_K, Q6_K in groups of eight rows; layout and scalar
//! reference in `formats::packed::kquants`), AVX2 and AVX-512 VNNI. Each is generic over `T`, the tokens of one pass:
//! a packed block's quants and scales are loaded and unpacked once per pass, and every
//! token keeps its own i32 sums and f32 accumulator (8 rows in one vector).
//!
//! Integer sums, per level:
//! - AVX2: `maddubs` (unsigned quant × signed activation, pairs added into i16) then
//!   `add_epi16` over the chunks of a sub-block, then `madd` with the sub-block scale
//!   duplicated as an i16 pair. Bounds: a Q4_K pair is at most 2·15·128 = 3840 and eight
//!   chunks 30720; a Q6_K pair 2·63·128 = 16128, so Q6_K adds only two chunks (32256)
//!   before each `madd`. Nothing saturates. Q6_K's offset, −32·Σ_j s[j]·bsums[j], is
//!   one `madd` per pair of sub-blocks (scale pairs against broadcast bsums pairs).
//! - VNNI: `vpdpbusd` (four products into the i32 lane) per chunk, then `mullo` by the
//!   sub-block scale. Q4_K's high nibbles are used in place (`q & 0xf0`, i.e. 16·q), with
//!   the low-nibble sub-blocks' scales multiplied by 16 to match; the block sum is then
//!   16·isum (|·| ≤ 16·8·63·32·15·128 < 2³¹) and an arithmetic shift by 4 is exact.
//!   Q6_K's sub-block sums start at −32·bsums[j] instead of 0.
//!
//! Then per block and token: `d_w·d_x` as one f32 multiply (eight rows' `d_w` by the
//! broadcast `d_x`), `cvtepi32_ps`, and `fmadd` / `fnmadd`: [`dot_ref`]'s
//! operations in its order.

// The kernels index several parallel per-token arrays of constant size at once; index ranges
// say that more plainly than zipped iterators.
#![allow(clippy::needless_range_loop)]

use crate::formats::kquants::{Q8K, Q8K_BSUMS, Q8K_QS};
use crate::formats::packed::kquants::*;
use crate::types::Tile;
use hearth_gguf::GgmlType;
use std::arch::x86_64::*;

/// The 8 outputs of every group `g < groups` against every token `k < tokens` (see
/// `formats::packed::kquants`): group `g`'s packed bytes at `t.w + g * t.wrb`, token `k`'s
/// Q8_K row at `t.x + k * t.xrb`, outputs at `t.out + k * t.ostride + 8 * g + (0..8)`.
/// Each output equals [`dot_ref`] bit for bit. Tokens run 4 per pass (tails as 2, 1);
/// each pass walks every group, so its activations stay in L1 while the groups (which
/// the caller sizes for L2) stream past.
///
/// # Safety
/// The CPU has AVX2, FMA and F16C; `ty` is [supported](supports); each group holds
/// `nb` packed blocks, each token row `nb` Q8_K blocks, and the outputs are writable
/// and not read or written by anyone else during the call.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn tile_avx2(ty: GgmlType, nb: usize, t: &Tile, groups: usize, tokens: usize) {
    let mut k = 0;
    while k < tokens {
        let n = pass_width(tokens - k, 4);
        for g in 0..groups {
            let p = Pass::new(nb, t, g, k);
            match (ty, n) {
                (GgmlType::Q4_K, 4) => q4k_avx2::<4>(&p),
                (GgmlType::Q4_K, 2) => q4k_avx2::<2>(&p),
                (GgmlType::Q4_K, _) => q4k_avx2::<1>(&p),
                (_, 4) => q6k_avx2::<4>(&p),
                (_, 2) => q6k_avx2::<2>(&p),
                _ => q6k_avx2::<1>(&p),
            }
        }
        k += n;
    }
}

/// [`tile_avx2`] with AVX-512 VNNI (`vpdpbusd`, `vpdpwssd` on ymm): Q4_K 8 tokens per
/// pass, Q6_K 4 (its four quarters' sums per token fill the registers sooner; measured
/// faster than 8), tails as 4, 2, 1; bit-identical outputs.
///
/// # Safety
/// As [`tile_avx2`], and the CPU also has AVX-512 VNNI, VL and BW.
#[target_feature(enable = "avx2,fma,f16c,avx512vnni,avx512vl,avx512bw")]
pub(crate) unsafe fn tile_vnni(ty: GgmlType, nb: usize, t: &Tile, groups: usize, tokens: usize) {
    let widest = if ty == GgmlType::Q4_K { 8 } else { 4 };
    let mut k = 0;
    while k < tokens {
        let n = pass_width(tokens - k, widest);
        for g in 0..groups {
            let p = Pass::new(nb, t, g, k);
            match (ty, n) {
                (GgmlType::Q4_K, 8) => q4k_vnni::<8>(&p),
                (GgmlType::Q4_K, 4) => q4k_vnni::<4>(&p),
                (GgmlType::Q4_K, 2) => q4k_vnni::<2>(&p),
                (GgmlType::Q4_K, _) => q4k_vnni::<1>(&p),
                (_, 4) => q6k_vnni::<4>(&p),
                (_, 2) => q6k_vnni::<2>(&p),
                _ => q6k_vnni::<1>(&p),
            }
        }
        k += n;
    }
}

/// How far ahead of the block being computed each block prefetches its own size in cache
/// lines. Decode on one token is bound by memory, and a profile puts most of the kernel's time
/// on the first use of a weight load: the core waits on lines the hardware prefetchers have
/// not brought (they start over at every 4 KiB page). One kilobyte (about a block) ahead
/// streamed 5 to 10 points closer to the read probe than none, for Q4_K and Q6_K alike, on the
/// same 1.5 GB of weights alternating in one process; 4–8 KiB ahead was slower than none. A
/// prefetch is a hint: it changes no result.
const PREFETCH_AHEAD: usize = 1024;

/// Prefetches the cache lines of `len` bytes [`PREFETCH_AHEAD`] bytes past `wb`. The address may
/// lie past the weights (the last blocks of a matrix): a prefetch never faults, and
/// `wrapping_add` makes no claim that it is in bounds.
#[inline(always)]
unsafe fn prefetch_ahead(wb: *const u8, len: usize) {
    let mut at = 0;
    while at < len {
        _mm_prefetch::<_MM_HINT_T0>(wb.wrapping_add(PREFETCH_AHEAD + at) as *const i8);
        at += 64;
    }
}

/// Tokens in the next pass: the largest power of two up to `widest` and `left`.
#[inline(always)]
fn pass_width(left: usize, widest: usize) -> usize {
    let mut n = widest;
    while n > left {
        n /= 2;
    }
    n
}

/// One pass: one packed group (`nb` blocks at `w`) against `T` consecutive tokens (at
/// `x`, `xrb` apart), outputs at `out + k * ostride + (0..8)`.
struct Pass {
    nb: usize,
    w: *const u8,
    x: *const u8,
    xrb: usize,
    out: *mut f32,
    ostride: usize,
}

impl Pass {
    /// Group `g` of `t` against the tokens from `k` on (pointer arithmetic only).
    #[inline(always)]
    fn new(nb: usize, t: &Tile, g: usize, k: usize) -> Pass {
        Pass {
            nb,
            w: t.w.wrapping_add(g * t.wrb),
            x: t.x.wrapping_add(k * t.xrb),
            xrb: t.xrb,
            out: t.out.wrapping_add(k * t.ostride + ROWS * g),
            ostride: t.ostride,
        }
    }

    /// Q8_K block `b` of token `k`.
    #[inline(always)]
    fn xb(&self, k: usize, b: usize) -> *const u8 {
        self.x.wrapping_add(k * self.xrb + b * Q8K)
    }
}

// Helpers are `inline(always)` without `target_feature`: inlined into the kernels, their
// intrinsics compile with the kernels' features. (No closures in the kernels: those are
// not inlined with the features.)
//
// Safety of the helpers: each is `unsafe` because it runs intrinsics, which need the
// calling kernel's features (every caller is one of the `#[target_feature]` kernels
// below), and, where it takes a pointer, because it reads the bytes its doc names at that
// pointer: a packed block or a Q8_K block inside the ranges the kernel's own safety
// contract covers.

#[inline(always)]
unsafe fn load(p: *const u8) -> __m256i {
    _mm256_loadu_si256(p as *const __m256i)
}

/// The 4 bytes at `p` in every i32 lane (one broadcast load).
#[inline(always)]
unsafe fn bcast4(p: *const u8) -> __m256i {
    _mm256_set1_epi32((p as *const i32).read_unaligned())
}

/// 8 f16 at `p` as f32 (exact, like `half`'s conversion).
#[inline(always)]
unsafe fn f16x8(p: *const u8) -> __m256 {
    _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i))
}

/// The Q8_K block's `d` in every lane.
#[inline(always)]
unsafe fn dx(xb: *const u8) -> __m256 {
    _mm256_set1_ps((xb as *const f32).read_unaligned())
}

/// i32 lanes holding values in i16 range, as the i16 pair `(v, v)` for `madd`.
#[inline(always)]
unsafe fn dup16(v: __m256i) -> __m256i {
    let low = _mm256_and_si256(v, _mm256_set1_epi32(0xffff));
    _mm256_or_si256(low, _mm256_slli_epi32(v, 16))
}

/// The first `f32` step of a block for one token, 8 rows: `acc = fma(isum, d_w·d_x, acc)`
/// (`dd` = `d_w·d_x`, one f32 multiply per lane, as in the reference).
#[inline(always)]
unsafe fn scale_add(acc: __m256, isum: __m256i, dd: __m256) -> __m256 {
    _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), dd, acc)
}

/// Q4_K's second step: `acc = fma(−msum, dmin_w·d_x, acc)`; `fnmadd` computes
/// `−(a·b) + c` with one rounding, which is `fma(−a, b, c)` exactly.
#[inline(always)]
unsafe fn min_sub(acc: __m256, msum: __m256i, dd: __m256) -> __m256 {
    _mm256_fnmadd_ps(_mm256_cvtepi32_ps(msum), dd, acc)
}

/// Q4_K's scales and mins from the planes of the packed block at `wb` (module docs): the
/// scales of sub-block `j` as i32 lanes (one per row), and the mins `(m[2i], m[2i + 1])`
/// as i16 pairs per row lane, for `madd` against bsums pairs.
#[inline(always)]
unsafe fn q4k_scales_mins(wb: *const u8) -> ([__m256i; 8], [__m256i; 4]) {
    let m4 = _mm256_set1_epi8(0x0f);
    let m30 = _mm256_set1_epi8(0x30);
    let a = load(wb.add(Q4_PLANE_A));
    let b = load(wb.add(Q4_PLANE_B));
    let h = load(wb.add(Q4_PLANE_H));
    // 16-bit shifts move bits across bytes; each result is masked to its byte's bits.
    let s0 = _mm256_or_si256(
        _mm256_and_si256(a, m4),
        _mm256_slli_epi16(_mm256_and_si256(h, _mm256_set1_epi8(3)), 4),
    );
    let m0 = _mm256_or_si256(
        _mm256_and_si256(_mm256_srli_epi16(a, 4), m4),
        _mm256_and_si256(_mm256_slli_epi16(h, 2), m30),
    );
    let s1 = _mm256_or_si256(_mm256_and_si256(b, m4), _mm256_and_si256(h, m30));
    let m1 = _mm256_or_si256(
        _mm256_and_si256(_mm256_srli_epi16(b, 4), m4),
        _mm256_and_si256(_mm256_srli_epi16(h, 2), m30),
    );
    // `S` bytes 8j..8j + 8 are sub-block j's scales: quarters of s0 (j < 4) and s1.
    let s = [
        _mm256_castsi256_si128(s0),
        _mm256_extracti128_si256(s0, 1),
        _mm256_castsi256_si128(s1),
        _mm256_extracti128_si256(s1, 1),
    ];
    let mut sc = [_mm256_setzero_si256(); 8];
    for i in 0..4 {
        sc[2 * i] = _mm256_cvtepu8_epi32(s[i]);
        sc[2 * i + 1] = _mm256_cvtepu8_epi32(_mm_unpackhi_epi64(s[i], s[i]));
    }
    let mn = [
        _mm256_cvtepu8_epi16(_mm256_castsi256_si128(m0)),
        _mm256_cvtepu8_epi16(_mm256_extracti128_si256(m0, 1)),
        _mm256_cvtepu8_epi16(_mm256_castsi256_si128(m1)),
        _mm256_cvtepu8_epi16(_mm256_extracti128_si256(m1, 1)),
    ];
    (sc, mn)
}

/// The bsums of a Q8_K block as the i16 pairs `(B[2i], B[2i + 1])` broadcast, for
/// `i` in 0..4, where `B[j] = bsums[2j] + bsums[2j + 1]` (|B| ≤ 4096: no overflow).
#[inline(always)]
unsafe fn q4k_bsum_pairs(xb: *const u8) -> [__m256i; 4] {
    let bs = load(xb.add(Q8K_BSUMS));
    // Per 128-bit half: B[0..4] (low half) / B[4..8] (high half), twice each.
    let h = _mm256_hadd_epi16(bs, bs);
    [
        _mm256_permutevar8x32_epi32(h, _mm256_set1_epi32(0)),
        _mm256_permutevar8x32_epi32(h, _mm256_set1_epi32(1)),
        _mm256_permutevar8x32_epi32(h, _mm256_set1_epi32(4)),
        _mm256_permutevar8x32_epi32(h, _mm256_set1_epi32(5)),
    ]
}

/// Q4_K on AVX2.
///
/// # Safety
/// As [`tile_avx2`], for the pass's group and `T` tokens.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4k_avx2<const T: usize>(p: &Pass) {
    let m4 = _mm256_set1_epi8(0x0f);
    let zero = _mm256_setzero_si256();
    let mut acc = [_mm256_setzero_ps(); T];
    for b in 0..p.nb {
        let wb = p.w.add(b * Q4_BLOCK);
        prefetch_ahead(wb, Q4_BLOCK);
        let (mut sc, mn) = q4k_scales_mins(wb);
        for j in 0..8 {
            sc[j] = dup16(sc[j]);
        }
        let mut isum = [zero; T];
        for q in 0..4 {
            let (mut lo, mut hi) = ([zero; T], [zero; T]);
            for c in 0..8 {
                let v = load(wb.add(Q4_QS + 32 * (8 * q + c)));
                let ql = _mm256_and_si256(v, m4);
                let qh = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
                for k in 0..T {
                    let xq = p.xb(k, b).add(Q8K_QS + 64 * q + 4 * c);
                    lo[k] = _mm256_add_epi16(lo[k], _mm256_maddubs_epi16(ql, bcast4(xq)));
                    hi[k] = _mm256_add_epi16(hi[k], _mm256_maddubs_epi16(qh, bcast4(xq.add(32))));
                }
            }
            for k in 0..T {
                let s = _mm256_add_epi32(
                    _mm256_madd_epi16(lo[k], sc[2 * q]),
                    _mm256_madd_epi16(hi[k], sc[2 * q + 1]),
                );
                isum[k] = _mm256_add_epi32(isum[k], s);
            }
        }
        let (dw, dminw) = (f16x8(wb.add(Q4_D)), f16x8(wb.add(Q4_DMIN)));
        for k in 0..T {
            let xb = p.xb(k, b);
            let bp = q4k_bsum_pairs(xb);
            let mut msum = _mm256_madd_epi16(mn[0], bp[0]);
            for i in 1..4 {
                msum = _mm256_add_epi32(msum, _mm256_madd_epi16(mn[i], bp[i]));
            }
            let d = dx(xb);
            acc[k] = scale_add(acc[k], isum[k], _mm256_mul_ps(dw, d));
            acc[k] = min_sub(acc[k], msum, _mm256_mul_ps(dminw, d));
        }
    }
    for k in 0..T {
        _mm256_storeu_ps(p.out.add(k * p.ostride), acc[k]);
    }
}

/// Q4_K with VNNI. For one token the chunks alternate between two accumulators per
/// sub-block so consecutive `vpdpbusd` do not wait on each other.
///
/// # Safety
/// As [`tile_vnni`], for the pass's group and `T` tokens.
#[target_feature(enable = "avx2,fma,f16c,avx512vnni,avx512vl,avx512bw")]
unsafe fn q4k_vnni<const T: usize>(p: &Pass) {
    let m4 = _mm256_set1_epi8(0x0f);
    let mf0 = _mm256_set1_epi8(0xf0u8 as i8);
    let zero = _mm256_setzero_si256();
    let mut acc = [_mm256_setzero_ps(); T];
    for b in 0..p.nb {
        let wb = p.w.add(b * Q4_BLOCK);
        prefetch_ahead(wb, Q4_BLOCK);
        let (mut sc, mn) = q4k_scales_mins(wb);
        // Even sub-blocks come from low nibbles (q), odd ones from `q & 0xf0` (16q).
        for j in (0..8).step_by(2) {
            sc[j] = _mm256_slli_epi32(sc[j], 4);
        }
        let mut isum = [zero; T];
        for q in 0..4 {
            let (mut lo, mut hi) = ([zero; T], [zero; T]);
            let (mut lo2, mut hi2) = ([zero; T], [zero; T]);
            for c in 0..8 {
                let v = load(wb.add(Q4_QS + 32 * (8 * q + c)));
                let (ql, qh) = (_mm256_and_si256(v, m4), _mm256_and_si256(v, mf0));
                for k in 0..T {
                    let xq = p.xb(k, b).add(Q8K_QS + 64 * q + 4 * c);
                    let (xl, xh) = (bcast4(xq), bcast4(xq.add(32)));
                    if T == 1 && c % 2 == 1 {
                        lo2[k] = _mm256_dpbusd_epi32(lo2[k], ql, xl);
                        hi2[k] = _mm256_dpbusd_epi32(hi2[k], qh, xh);
                    } else {
                        lo[k] = _mm256_dpbusd_epi32(lo[k], ql, xl);
                        hi[k] = _mm256_dpbusd_epi32(hi[k], qh, xh);
                    }
                }
            }
            for k in 0..T {
                if T == 1 {
                    lo[k] = _mm256_add_epi32(lo[k], lo2[k]);
                    hi[k] = _mm256_add_epi32(hi[k], hi2[k]);
                }
                let s = _mm256_add_epi32(
                    _mm256_mullo_epi32(lo[k], sc[2 * q]),
                    _mm256_mullo_epi32(hi[k], sc[2 * q + 1]),
                );
                isum[k] = _mm256_add_epi32(isum[k], s);
            }
        }
        let (dw, dminw) = (f16x8(wb.add(Q4_D)), f16x8(wb.add(Q4_DMIN)));
        for k in 0..T {
            let xb = p.xb(k, b);
            let bp = q4k_bsum_pairs(xb);
            let mut msum = _mm256_dpwssd_epi32(zero, mn[0], bp[0]);
            msum = _mm256_dpwssd_epi32(msum, mn[1], bp[1]);
            let mut msum2 = _mm256_dpwssd_epi32(zero, mn[2], bp[2]);
            msum2 = _mm256_dpwssd_epi32(msum2, mn[3], bp[3]);
            let d = dx(xb);
            // 16·isum is exact (see the module docs), so the shift is an exact division.
            let is = _mm256_srai_epi32(isum[k], 4);
            acc[k] = scale_add(acc[k], is, _mm256_mul_ps(dw, d));
            let ms = _mm256_add_epi32(msum, msum2);
            acc[k] = min_sub(acc[k], ms, _mm256_mul_ps(dminw, d));
        }
    }
    for k in 0..T {
        _mm256_storeu_ps(p.out.add(k * p.ostride), acc[k]);
    }
}

/// Q6_K's unsigned 6-bit codes of unit `c` of half `h`, all rows, for the four quarters
/// `t` of the half (elements `128h + 32t + 4c + 0..4`): the low (`t < 2`) or high nibbles
/// of the `ql` unit of quarter `t % 2`, with bit pair `t` of the `qh` unit as bits 4–5
/// (GGUF's element order, see `q6k_sum`).
#[inline(always)]
unsafe fn q6k_codes(wb: *const u8, h: usize, c: usize) -> [__m256i; 4] {
    let m4 = _mm256_set1_epi8(0x0f);
    let unit = wb.add(Q6_CODES + 96 * (8 * h + c));
    let (ql0, ql1, qh) = (load(unit), load(unit.add(32)), load(unit.add(64)));
    // 16-bit shifts move bits across bytes; each result is masked to its byte's bits.
    let h0 = _mm256_slli_epi16(_mm256_and_si256(qh, _mm256_set1_epi8(0x03)), 4);
    let h1 = _mm256_slli_epi16(_mm256_and_si256(qh, _mm256_set1_epi8(0x0c)), 2);
    let h2 = _mm256_and_si256(qh, _mm256_set1_epi8(0x30));
    let h3 = _mm256_srli_epi16(_mm256_and_si256(qh, _mm256_set1_epi8(0xc0u8 as i8)), 2);
    [
        _mm256_or_si256(_mm256_and_si256(ql0, m4), h0),
        _mm256_or_si256(_mm256_and_si256(ql1, m4), h1),
        _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4), h2),
        _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4), h3),
    ]
}

/// The packed Q6_K scales of sub-blocks `2i`, `2i + 1` as i16 pairs per row lane.
#[inline(always)]
unsafe fn q6k_scale_pairs(wb: *const u8, i: usize) -> __m256i {
    _mm256_cvtepi8_epi16(_mm_loadu_si128(wb.add(Q6_SC + 16 * i) as *const __m128i))
}

/// Q6_K on AVX2. Sub-block `j = 8h + 2t + cc` covers units `4cc..4cc + 4` of quarter `t`
/// of half `h`; each pair of units' `maddubs` is summed in i16 (at most 2·2·63·128 =
/// 32256), then `madd` with the `(s[j], s[j])` scale pair.
///
/// # Safety
/// As [`tile_avx2`], for the pass's group and `T` tokens.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q6k_avx2<const T: usize>(p: &Pass) {
    let zero = _mm256_setzero_si256();
    // Byte shuffles (indices within each 128-bit half) that copy the first / second
    // i16 of each i32 lane over both.
    let w = |i: i32| (4 * i) | ((4 * i + 1) << 8) | ((4 * i) << 16) | ((4 * i + 1) << 24);
    let dup_lo = _mm256_setr_epi32(w(0), w(1), w(2), w(3), w(0), w(1), w(2), w(3));
    let dup_hi = _mm256_add_epi8(dup_lo, _mm256_set1_epi8(2));
    let mut acc = [_mm256_setzero_ps(); T];
    for b in 0..p.nb {
        let wb = p.w.add(b * Q6_BLOCK);
        prefetch_ahead(wb, Q6_BLOCK);
        let mut isum = [zero; T];
        let mut sc = [zero; 16];
        for i in 0..8 {
            let pair = q6k_scale_pairs(wb, i);
            sc[2 * i] = _mm256_shuffle_epi8(pair, dup_lo);
            sc[2 * i + 1] = _mm256_shuffle_epi8(pair, dup_hi);
            for k in 0..T {
                let bs = bcast4(p.xb(k, b).add(Q8K_BSUMS + 4 * i));
                isum[k] = _mm256_add_epi32(isum[k], _mm256_madd_epi16(pair, bs));
            }
        }
        for k in 0..T {
            // −32 · Σ_j s[j] · bsums[j]: |Σ| ≤ 16·128·2048, so ·32 fits.
            isum[k] = _mm256_sub_epi32(zero, _mm256_slli_epi32(isum[k], 5));
        }
        for h in 0..2 {
            for cc in 0..2 {
                for half in 0..2 {
                    let mut s = [[zero; T]; 4];
                    for c in 4 * cc + 2 * half..4 * cc + 2 * half + 2 {
                        let q = q6k_codes(wb, h, c);
                        for k in 0..T {
                            let xq = p.xb(k, b).add(Q8K_QS + 128 * h + 4 * c);
                            for t in 0..4 {
                                let m = _mm256_maddubs_epi16(q[t], bcast4(xq.add(32 * t)));
                                s[t][k] = _mm256_add_epi16(s[t][k], m);
                            }
                        }
                    }
                    for t in 0..4 {
                        let sj = sc[8 * h + 2 * t + cc];
                        for k in 0..T {
                            let m = _mm256_madd_epi16(s[t][k], sj);
                            isum[k] = _mm256_add_epi32(isum[k], m);
                        }
                    }
                }
            }
        }
        let dw = f16x8(wb.add(Q6_D));
        for k in 0..T {
            let d = dx(p.xb(k, b));
            acc[k] = scale_add(acc[k], isum[k], _mm256_mul_ps(dw, d));
        }
    }
    for k in 0..T {
        _mm256_storeu_ps(p.out.add(k * p.ostride), acc[k]);
    }
}

/// Q6_K with VNNI: each sub-block's `vpdpbusd` chain starts at −32·bsums[j] and is then
/// multiplied by the sub-block's scales (`mullo`).
///
/// # Safety
/// As [`tile_vnni`], for the pass's group and `T` tokens.
#[target_feature(enable = "avx2,fma,f16c,avx512vnni,avx512vl,avx512bw")]
unsafe fn q6k_vnni<const T: usize>(p: &Pass) {
    let zero = _mm256_setzero_si256();
    let mut acc = [_mm256_setzero_ps(); T];
    let mut bias = [[0i32; 16]; T];
    for b in 0..p.nb {
        let wb = p.w.add(b * Q6_BLOCK);
        prefetch_ahead(wb, Q6_BLOCK);
        for k in 0..T {
            let bs = p.xb(k, b).add(Q8K_BSUMS);
            let lo = _mm256_cvtepi16_epi32(_mm_loadu_si128(bs as *const __m128i));
            let hi = _mm256_cvtepi16_epi32(_mm_loadu_si128(bs.add(16) as *const __m128i));
            let out = bias[k].as_mut_ptr() as *mut __m256i;
            _mm256_storeu_si256(out, _mm256_sub_epi32(zero, _mm256_slli_epi32(lo, 5)));
            _mm256_storeu_si256(out.add(1), _mm256_sub_epi32(zero, _mm256_slli_epi32(hi, 5)));
        }
        let mut sc = [zero; 16];
        for i in 0..8 {
            let pair = q6k_scale_pairs(wb, i);
            sc[2 * i] = _mm256_srai_epi32(_mm256_slli_epi32(pair, 16), 16);
            sc[2 * i + 1] = _mm256_srai_epi32(pair, 16);
        }
        let mut isum = [zero; T];
        for h in 0..2 {
            for cc in 0..2 {
                let mut s = [[zero; T]; 4];
                for t in 0..4 {
                    for k in 0..T {
                        s[t][k] = _mm256_set1_epi32(bias[k][8 * h + 2 * t + cc]);
                    }
                }
                for c in 4 * cc..4 * cc + 4 {
                    let q = q6k_codes(wb, h, c);
                    for k in 0..T {
                        let xq = p.xb(k, b).add(Q8K_QS + 128 * h + 4 * c);
                        for t in 0..4 {
                            s[t][k] = _mm256_dpbusd_epi32(s[t][k], q[t], bcast4(xq.add(32 * t)));
                        }
                    }
                }
                for t in 0..4 {
                    let sj = sc[8 * h + 2 * t + cc];
                    for k in 0..T {
                        isum[k] = _mm256_add_epi32(isum[k], _mm256_mullo_epi32(s[t][k], sj));
                    }
                }
            }
        }
        let dw = f16x8(wb.add(Q6_D));
        for k in 0..T {
            let d = dx(p.xb(k, b));
            acc[k] = scale_add(acc[k], isum[k], _mm256_mul_ps(dw, d));
        }
    }
    for k in 0..T {
        _mm256_storeu_ps(p.out.add(k * p.ostride), acc[k]);
    }
}

/// The kernels of every level this CPU has against the scalar reference.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::packed::kquants::tests_support::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    /// A kernel under test.
    type Kernel = unsafe fn(GgmlType, usize, &Tile, usize, usize);

    /// The kernels this CPU can run, by name.
    fn kernels() -> Vec<(&'static str, Kernel)> {
        use crate::simd::{detect, Level};
        let mut k: Vec<(&'static str, Kernel)> = Vec::new();
        if detect().has_avx2() {
            k.push(("avx2", tile_avx2));
        }
        if detect() == Level::Avx512Vnni {
            k.push(("vnni", tile_vnni));
        }
        if k.is_empty() {
            eprintln!("no AVX2 on this CPU: only the reference is tested");
        }
        k
    }

    /// Runs every kernel on `groups` packed groups × the `tokens` rows of `xq` and checks
    /// each output's bits against `dot_ref`, and that nothing outside the outputs is written.
    fn check_kernels(ty: GgmlType, nb: usize, packed: &[u8], xq: &[u8], tokens: usize) {
        let gb = ROWS * nb * ty.type_size();
        let groups = packed.len() / gb;
        let xrb = nb * Q8K;
        let ostride = ROWS * groups + 3;
        let sentinel = -1234.5f32;
        let want: Vec<[f32; 8]> = (0..groups * tokens)
            .map(|i| {
                let (g, k) = (i / tokens, i % tokens);
                dot_ref(
                    ty,
                    nb,
                    &packed[g * gb..(g + 1) * gb],
                    &xq[k * xrb..(k + 1) * xrb],
                )
            })
            .collect();
        for (name, kernel) in kernels() {
            let mut out = vec![sentinel; tokens * ostride];
            let t = Tile {
                w: packed.as_ptr(),
                wrb: gb,
                x: xq.as_ptr(),
                xrb,
                out: out.as_mut_ptr(),
                ostride,
            };
            // SAFETY: `kernels` returned only kernels this CPU supports; the buffers hold
            // `groups` packed groups, `tokens` Q8_K rows and `tokens * ostride` outputs.
            unsafe { kernel(ty, nb, &t, groups, tokens) };
            for k in 0..tokens {
                for c in 0..ostride {
                    let got = out[k * ostride + c];
                    if c >= ROWS * groups {
                        assert_eq!(got, sentinel, "{name} {ty} wrote column {c}");
                        continue;
                    }
                    let w = want[(c / ROWS) * tokens + k][c % ROWS];
                    assert_eq!(
                        got.to_bits(),
                        w.to_bits(),
                        "{name} {ty} nb={nb} groups={groups} tokens={tokens} token {k} \
                         row {c}: {got} vs reference {w}"
                    );
                }
            }
        }
    }

    #[test]
    fn kernels_equal_the_reference_bit_for_bit() {
        let mut rng = StdRng::seed_from_u64(10);
        for ty in TYPES {
            for nb in 1..=3 {
                for groups in 1..=3 {
                    let packed = pack_all(ty, nb, &random_rows(ty, nb * groups, &mut rng));
                    // `random_rows` makes 8 rows of `nb * groups` blocks: the same bytes as
                    // `groups` groups of 8 rows of `nb` blocks.
                    let xq = random_x(nb, 17, &mut rng);
                    for tokens in 1..=17 {
                        check_kernels(ty, nb, &packed, &xq[..tokens * nb * Q8K], tokens);
                    }
                }
            }
        }
    }

    #[test]
    fn kernels_equal_the_reference_at_a_real_width() {
        // 3584 values per row (Qwen-style hidden size), two groups.
        let (mut rng, nb) = (StdRng::seed_from_u64(11), 14);
        for ty in TYPES {
            let packed = pack_all(ty, nb, &random_rows(ty, 2 * nb, &mut rng));
            let xq = random_x(nb, 17, &mut rng);
            for tokens in [1, 2, 3, 4, 5, 8, 9, 12, 16, 17] {
                check_kernels(ty, nb, &packed, &xq[..tokens * nb * Q8K], tokens);
            }
        }
    }

    #[test]
    fn kernels_equal_the_reference_on_extreme_blocks() {
        let (mut rng, nb) = (StdRng::seed_from_u64(12), 2);
        for ty in TYPES {
            for rows in extreme_rows(ty, 2 * nb, &mut rng) {
                let packed = pack_all(ty, nb, &rows);
                let mut xq = extreme_x(nb, &mut rng);
                xq.extend(random_x(nb, 4, &mut rng));
                let tokens = xq.len() / (nb * Q8K);
                for t in [1, 2, 4, tokens] {
                    check_kernels(ty, nb, &packed, &xq[..t * nb * Q8K], t);
                }
            }
        }
    }
}
