//! The K-quants' single-token kernels (Q2_K..Q6_K against Q8_K; layouts, lanes and scalar
//! reference in `formats::kquants`): AVX2, and AVX-512 VNNI for the scale step. Each walks a
//! block in 32-byte chunks: `maddubs` multiplies unsigned weight quants with signed activation
//! quants into i16 pairs, `madd` with the chunk's scales widens them into the 8 i32 lanes of
//! `formats::kquants`' docs.
//!
//! Q4_K, Q5_K and Q6_K are generic over that scale step ([`ScaleAcc`], shared with the
//! tiles) and compiled twice: [`vec_dot`] with `madd` + add, [`vec_dot_vnni`] with one
//! `vpdpwssd`. The i32 lanes are exact either way (see `ScaleAcc`), and every f32 step is
//! the same code, so both give the same bits. Q2_K and Q3_K run their AVX2 code on both.

use crate::formats::kquants::{
    k4_unpack, q3k_unpack, Q2K, Q3K, Q4K, Q5K, Q6K, Q8K, Q8K_BSUMS, Q8K_QS,
};
use hearth_gguf::GgmlType;
use std::arch::x86_64::*;

/// `s + madd(a, b)` per i32 lane: the sub-block scales (`a`, i16) times the i16 pair sums of
/// `maddubs` (`b`), accumulated into the block's lane sums `s`.
///
/// # Same bits on both levels
/// `madd` cannot overflow here (its one overflowing case is both pairs `-32768 · -32768`, and
/// the scales are at most 63 for Q4_K/Q5_K, an i8 for Q6_K), and i32 addition wraps in both
/// instruction sets, so `vpdpwssd` (the two products added to `s`) gives exactly the AVX2
/// lanes. Only the integer lane sums change instructions; the f32 steps are shared code.
/// The single-token `vec_dot` kernels above and the tiles (`x86::kquants_tile`) are generic
/// over it.
pub(super) trait ScaleAcc {
    /// Whether the single-token kernels should keep several lane-sum accumulators per block
    /// (added together at the block's end: exact i32, so the same lanes). `vpdpwssd` reads
    /// and writes its accumulator, so one accumulator would chain every product of a block
    /// through its latency; `madd` + add only chains the cheap add.
    const SPLIT: bool;
    /// `s + madd(a, b)`.
    ///
    /// # Safety
    /// The CPU has this implementation's features.
    unsafe fn acc(s: __m256i, a: __m256i, b: __m256i) -> __m256i;
    /// `s + (madd(a1, b1) + madd(a2, b2))`.
    ///
    /// # Safety
    /// As [`ScaleAcc::acc`].
    unsafe fn acc2(s: __m256i, a1: __m256i, b1: __m256i, a2: __m256i, b2: __m256i) -> __m256i;
}

/// AVX2: `madd`, then add (the instructions the single-token kernel uses).
pub(super) struct Madd;

impl ScaleAcc for Madd {
    const SPLIT: bool = false;

    #[inline(always)]
    unsafe fn acc(s: __m256i, a: __m256i, b: __m256i) -> __m256i {
        _mm256_add_epi32(s, _mm256_madd_epi16(a, b))
    }

    #[inline(always)]
    unsafe fn acc2(s: __m256i, a1: __m256i, b1: __m256i, a2: __m256i, b2: __m256i) -> __m256i {
        let (p1, p2) = (_mm256_madd_epi16(a1, b1), _mm256_madd_epi16(a2, b2));
        _mm256_add_epi32(s, _mm256_add_epi32(p1, p2))
    }
}

/// AVX-512 VNNI: one `vpdpwssd` per product.
pub(super) struct Vnni;

/// `s + madd(a, b)` in one instruction.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512vnni,avx512vl,avx512bw")]
fn dpwssd(s: __m256i, a: __m256i, b: __m256i) -> __m256i {
    _mm256_dpwssd_epi32(s, a, b)
}

impl ScaleAcc for Vnni {
    const SPLIT: bool = true;

    #[inline(always)]
    unsafe fn acc(s: __m256i, a: __m256i, b: __m256i) -> __m256i {
        // SAFETY: the caller's contract (AVX-512 VNNI and VL).
        unsafe { dpwssd(s, a, b) }
    }

    #[inline(always)]
    unsafe fn acc2(s: __m256i, a1: __m256i, b1: __m256i, a2: __m256i, b2: __m256i) -> __m256i {
        // SAFETY: as in `acc`.
        unsafe { dpwssd(dpwssd(s, a1, b1), a2, b2) }
    }
}

/// # Safety
/// The CPU must support AVX2, FMA and F16C, and `w` and `x` must hold at least `nb`
/// blocks of `ty` and of Q8_K respectively.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn vec_dot(ty: GgmlType, nb: usize, w: &[u8], x: &[u8]) -> f32 {
    // SAFETY: forwarded from the caller.
    unsafe { dot::<Madd>(ty, nb, w, x) }
}

/// [`vec_dot`] with AVX-512 VNNI's `vpdpwssd` for the scale step; same bits.
///
/// # Safety
/// As [`vec_dot`], and the CPU also has AVX-512 VNNI, VL and BW.
#[target_feature(enable = "avx2,fma,f16c,avx512vnni,avx512vl,avx512bw")]
pub(crate) unsafe fn vec_dot_vnni(ty: GgmlType, nb: usize, w: &[u8], x: &[u8]) -> f32 {
    // SAFETY: forwarded from the caller.
    unsafe { dot::<Vnni>(ty, nb, w, x) }
}

/// The body of [`vec_dot`] with scale step `W`.
///
/// # Safety
/// As [`vec_dot`]; the CPU has `W`'s features.
#[inline(always)]
unsafe fn dot<W: ScaleAcc>(ty: GgmlType, nb: usize, w: &[u8], x: &[u8]) -> f32 {
    use GgmlType::*;
    let (w, x) = (w.as_ptr(), x.as_ptr());
    match ty {
        Q2_K => dot_q2k(nb, w, x),
        Q3_K => dot_q3k(nb, w, x),
        Q4_K => dot_q4k::<W>(nb, w, x),
        Q5_K => dot_q5k::<W>(nb, w, x),
        Q6_K => dot_q6k::<W>(nb, w, x),
        other => unreachable!("kquants::vec_dot on {other}"),
    }
}

// The helpers are `inline(always)` without their own `target_feature`: inlined into the
// kernels, their intrinsics compile with the kernels' features.

#[inline(always)]
pub(super) unsafe fn load(p: *const u8) -> __m256i {
    _mm256_loadu_si256(p as *const __m256i)
}

/// f16 → f32 with F16C (exact, like the scalar path's `half` conversion).
#[inline(always)]
pub(super) unsafe fn f16_ptr(p: *const u8) -> f32 {
    let bits = u16::from_le_bytes([*p, *p.add(1)]);
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32)))
}

#[inline(always)]
pub(super) unsafe fn f32_ptr(p: *const u8) -> f32 {
    f32::from_bits(u32::from_le((p as *const u32).read_unaligned()))
}

#[inline(always)]
pub(super) unsafe fn words(w: [u32; 4]) -> __m128i {
    _mm_setr_epi32(w[0] as i32, w[1] as i32, w[2] as i32, w[3] as i32)
}

/// `acc + d · float(lanes)`, fused as in the scalar path.
#[inline(always)]
unsafe fn add_lanes(acc: __m256, d: f32, lanes: __m256i) -> __m256 {
    _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(lanes), acc)
}

/// `((a0+a4) + (a2+a6)) + ((a1+a5) + (a3+a7))`, the scalar path's `hsum8`.
#[inline(always)]
pub(super) unsafe fn hsum8(a: __m256) -> f32 {
    let t = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    let u = _mm_add_ps(t, _mm_movehl_ps(t, t));
    _mm_cvtss_f32(_mm_add_ss(u, _mm_movehdup_ps(u)))
}

/// Shuffle mask that spreads i16 scale `2i` over the low 128 bits and `2i + 1` over the
/// high 128 bits of a vector whose two halves both hold the same 8 i16 scales (the two
/// 16-element groups of one 32-byte chunk).
#[inline(always)]
pub(super) unsafe fn pair_mask(i: usize) -> __m256i {
    let lo = (4 * i as i16) | ((4 * i as i16 + 1) << 8);
    _mm256_setr_m128i(_mm_set1_epi16(lo), _mm_set1_epi16(lo + 0x0202))
}

/// Shuffle mask that spreads i16 scale `i` (of 8, in both halves) over all 16 lanes.
#[inline(always)]
pub(super) unsafe fn splat_mask(i: usize) -> __m256i {
    _mm256_set1_epi16((2 * i as i16) | ((2 * i as i16 + 1) << 8))
}

/// The 128 six-bit quants of half `j` (0 or 1) of a Q6_K block at `wb`, as four 32-byte
/// chunks of unsigned values 0..64: low nibbles from `ql`, two high bits from `qh`.
/// Shared by `vec_dot` and the tiles so both unpack with the same operations.
#[inline(always)]
pub(super) unsafe fn q6k_chunks(wb: *const u8, j: usize) -> [__m256i; 4] {
    let m4 = _mm256_set1_epi8(0x0f);
    let m3 = _mm256_set1_epi8(3);
    let ql0 = load(wb.add(64 * j));
    let ql1 = load(wb.add(64 * j + 32));
    let qh = load(wb.add(128 + 32 * j));
    [
        _mm256_or_si256(
            _mm256_and_si256(ql0, m4),
            _mm256_slli_epi16(_mm256_and_si256(qh, m3), 4),
        ),
        _mm256_or_si256(
            _mm256_and_si256(ql1, m4),
            _mm256_slli_epi16(_mm256_and_si256(qh, _mm256_set1_epi8(12)), 2),
        ),
        _mm256_or_si256(
            _mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4),
            _mm256_and_si256(qh, _mm256_set1_epi8(48)),
        ),
        _mm256_or_si256(
            _mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
            _mm256_srli_epi16(_mm256_and_si256(qh, _mm256_set1_epi8(-64)), 2),
        ),
    ]
}

/// The 16-group i16 values `v16` split for `pair_mask`: (groups 0..8 in both halves,
/// groups 8..16 in both halves).
#[inline(always)]
pub(super) unsafe fn scales_halves(v16: __m256i) -> [__m256i; 2] {
    let lo = _mm256_castsi256_si128(v16);
    let hi = _mm256_extracti128_si256(v16, 1);
    [_mm256_setr_m128i(lo, lo), _mm256_setr_m128i(hi, hi)]
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_q2k(nb: usize, w: *const u8, x: *const u8) -> f32 {
    let m3 = _mm256_set1_epi8(3);
    let m4 = _mm_set1_epi8(0x0f);
    let masks = [pair_mask(0), pair_mask(1), pair_mask(2), pair_mask(3)];
    let (mut acc, mut acc_m) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    for i in 0..nb {
        let (wb, xb) = (w.add(i * Q2K), x.add(i * Q8K));
        let yd = f32_ptr(xb);
        let (d, dmin) = (yd * f16_ptr(wb.add(80)), -(yd * f16_ptr(wb.add(82))));
        let packed = _mm_loadu_si128(wb as *const __m128i);
        let scales = scales_halves(_mm256_cvtepu8_epi16(_mm_and_si128(packed, m4)));
        let mins = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(packed, 4), m4));
        let m = _mm256_madd_epi16(mins, load(xb.add(Q8K_BSUMS)));
        let mut q8 = xb.add(Q8K_QS);
        let mut s = _mm256_setzero_si256();
        for (j, sc) in scales.iter().enumerate() {
            let bits = load(wb.add(16 + 32 * j));
            let q = [
                _mm256_and_si256(bits, m3),
                _mm256_and_si256(_mm256_srli_epi16(bits, 2), m3),
                _mm256_and_si256(_mm256_srli_epi16(bits, 4), m3),
                _mm256_and_si256(_mm256_srli_epi16(bits, 6), m3),
            ];
            for (t, qt) in q.iter().enumerate() {
                let p = _mm256_maddubs_epi16(*qt, load(q8));
                let p = _mm256_madd_epi16(_mm256_shuffle_epi8(*sc, masks[t]), p);
                s = _mm256_add_epi32(s, p);
                q8 = q8.add(32);
            }
        }
        acc = add_lanes(acc, d, s);
        acc_m = add_lanes(acc_m, dmin, m);
    }
    hsum8(_mm256_add_ps(acc, acc_m))
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_q3k(nb: usize, w: *const u8, x: *const u8) -> f32 {
    let m3 = _mm256_set1_epi8(3);
    let m4 = _mm256_set1_epi8(4);
    let masks = [pair_mask(0), pair_mask(1), pair_mask(2), pair_mask(3)];
    let (mut acc, acc_m) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    for i in 0..nb {
        let (wb, xb) = (w.add(i * Q3K), x.add(i * Q8K));
        let d = f32_ptr(xb) * f16_ptr(wb.add(108));
        let sc = words(q3k_unpack(std::slice::from_raw_parts(wb.add(96), 12)));
        let sc = _mm_sub_epi8(sc, _mm_set1_epi8(32));
        let scales = scales_halves(_mm256_cvtepi8_epi16(sc));
        // Inverted high bits: a clear bit means "subtract 4". Bit b of each byte is
        // consumed at step b, shifting right once per step.
        let mut nh = _mm256_xor_si256(load(wb), _mm256_set1_epi8(-1));
        let mut q8 = xb.add(Q8K_QS);
        let mut s = _mm256_setzero_si256();
        for (j, sc) in scales.iter().enumerate() {
            let bits = load(wb.add(32 + 32 * j));
            let low = [
                _mm256_and_si256(bits, m3),
                _mm256_and_si256(_mm256_srli_epi16(bits, 2), m3),
                _mm256_and_si256(_mm256_srli_epi16(bits, 4), m3),
                _mm256_and_si256(_mm256_srli_epi16(bits, 6), m3),
            ];
            for (t, lt) in low.iter().enumerate() {
                let sub = _mm256_and_si256(_mm256_slli_epi16(nh, 2), m4);
                nh = _mm256_srli_epi16(nh, 1);
                let y = load(q8);
                let p =
                    _mm256_sub_epi16(_mm256_maddubs_epi16(*lt, y), _mm256_maddubs_epi16(sub, y));
                let p = _mm256_madd_epi16(_mm256_shuffle_epi8(*sc, masks[t]), p);
                s = _mm256_add_epi32(s, p);
                q8 = q8.add(32);
            }
        }
        acc = add_lanes(acc, d, s);
    }
    hsum8(_mm256_add_ps(acc, acc_m))
}

/// Scales (8 i16, in both halves) and the `M` lanes of a Q4_K/Q5_K block.
#[inline(always)]
unsafe fn k4_block(wb: *const u8, xb: *const u8) -> (__m256i, __m256i) {
    let v = words(k4_unpack(std::slice::from_raw_parts(wb.add(4), 12)));
    let scales = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(v));
    // Each min covers two 16-element groups: duplicate it into both i16 slots of a pair.
    let dup = _mm_setr_epi8(8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15);
    let m16 = _mm256_cvtepu8_epi16(_mm_shuffle_epi8(v, dup));
    (scales, _mm256_madd_epi16(m16, load(xb.add(Q8K_BSUMS))))
}

#[inline(always)]
unsafe fn dot_q4k<W: ScaleAcc>(nb: usize, w: *const u8, x: *const u8) -> f32 {
    let m4 = _mm256_set1_epi8(0x0f);
    let masks: [__m256i; 8] = std::array::from_fn(|i| splat_mask(i));
    let (mut acc, mut acc_m) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    for i in 0..nb {
        let (wb, xb) = (w.add(i * Q4K), x.add(i * Q8K));
        let yd = f32_ptr(xb);
        let (d, dmin) = (yd * f16_ptr(wb), -(yd * f16_ptr(wb.add(2))));
        let (scales, m) = k4_block(wb, xb);
        let q8 = xb.add(Q8K_QS);
        let (mut s, mut s2) = (_mm256_setzero_si256(), _mm256_setzero_si256());
        for j in 0..4 {
            let bits = load(wb.add(16 + 32 * j));
            let lo = _mm256_maddubs_epi16(_mm256_and_si256(bits, m4), load(q8.add(64 * j)));
            let hi = _mm256_maddubs_epi16(
                _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4),
                load(q8.add(64 * j + 32)),
            );
            let sc_lo = _mm256_shuffle_epi8(scales, masks[2 * j]);
            let sc_hi = _mm256_shuffle_epi8(scales, masks[2 * j + 1]);
            if W::SPLIT {
                s = W::acc(s, sc_lo, lo);
                s2 = W::acc(s2, sc_hi, hi);
            } else {
                s = W::acc2(s, sc_lo, lo, sc_hi, hi);
            }
        }
        if W::SPLIT {
            s = _mm256_add_epi32(s, s2);
        }
        acc = add_lanes(acc, d, s);
        acc_m = add_lanes(acc_m, dmin, m);
    }
    hsum8(_mm256_add_ps(acc, acc_m))
}

#[inline(always)]
unsafe fn dot_q5k<W: ScaleAcc>(nb: usize, w: *const u8, x: *const u8) -> f32 {
    let m4 = _mm256_set1_epi8(0x0f);
    let m16 = _mm256_set1_epi8(16);
    let masks: [__m256i; 8] = std::array::from_fn(|i| splat_mask(i));
    let (mut acc, mut acc_m) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    for i in 0..nb {
        let (wb, xb) = (w.add(i * Q5K), x.add(i * Q8K));
        let yd = f32_ptr(xb);
        let (d, dmin) = (yd * f16_ptr(wb), -(yd * f16_ptr(wb.add(2))));
        let (scales, m) = k4_block(wb, xb);
        // High bits: bits 2j and 2j+1 of each byte belong to chunk j; shift right by 2
        // per chunk so they are always read from bits 0 and 1.
        let mut hb = load(wb.add(16));
        let q8 = xb.add(Q8K_QS);
        let (mut s, mut s2) = (_mm256_setzero_si256(), _mm256_setzero_si256());
        for j in 0..4 {
            let bits = load(wb.add(48 + 32 * j));
            let q_lo = _mm256_or_si256(
                _mm256_and_si256(bits, m4),
                _mm256_and_si256(_mm256_slli_epi16(hb, 4), m16),
            );
            let q_hi = _mm256_or_si256(
                _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4),
                _mm256_and_si256(_mm256_slli_epi16(hb, 3), m16),
            );
            hb = _mm256_srli_epi16(hb, 2);
            let lo = _mm256_maddubs_epi16(q_lo, load(q8.add(64 * j)));
            let hi = _mm256_maddubs_epi16(q_hi, load(q8.add(64 * j + 32)));
            let sc_lo = _mm256_shuffle_epi8(scales, masks[2 * j]);
            let sc_hi = _mm256_shuffle_epi8(scales, masks[2 * j + 1]);
            if W::SPLIT {
                s = W::acc(s, sc_lo, lo);
                s2 = W::acc(s2, sc_hi, hi);
            } else {
                s = W::acc2(s, sc_lo, lo, sc_hi, hi);
            }
        }
        if W::SPLIT {
            s = _mm256_add_epi32(s, s2);
        }
        acc = add_lanes(acc, d, s);
        acc_m = add_lanes(acc_m, dmin, m);
    }
    hsum8(_mm256_add_ps(acc, acc_m))
}

#[inline(always)]
unsafe fn dot_q6k<W: ScaleAcc>(nb: usize, w: *const u8, x: *const u8) -> f32 {
    let masks = [pair_mask(0), pair_mask(1), pair_mask(2), pair_mask(3)];
    let (mut acc, acc_m) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    for i in 0..nb {
        let (wb, xb) = (w.add(i * Q6K), x.add(i * Q8K));
        let d = f32_ptr(xb) * f16_ptr(wb.add(208));
        let sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(wb.add(192) as *const __m128i));
        let scales = scales_halves(sc16);
        let offset = _mm256_slli_epi32(_mm256_madd_epi16(sc16, load(xb.add(Q8K_BSUMS))), 5);
        let q8 = xb.add(Q8K_QS);
        let mut s = _mm256_setzero_si256();
        let mut split = [_mm256_setzero_si256(); 4];
        for (j, sc) in scales.iter().enumerate() {
            let q = q6k_chunks(wb, j);
            for (t, qt) in q.iter().enumerate() {
                let p = _mm256_maddubs_epi16(*qt, load(q8.add(128 * j + 32 * t)));
                let scm = _mm256_shuffle_epi8(*sc, masks[t]);
                if W::SPLIT {
                    split[t] = W::acc(split[t], scm, p);
                } else {
                    s = W::acc(s, scm, p);
                }
            }
        }
        if W::SPLIT {
            let [a, b, c, e] = split;
            s = _mm256_add_epi32(_mm256_add_epi32(a, b), _mm256_add_epi32(c, e));
        }
        acc = add_lanes(acc, d, _mm256_sub_epi32(s, offset));
    }
    hsum8(_mm256_add_ps(acc, acc_m))
}
