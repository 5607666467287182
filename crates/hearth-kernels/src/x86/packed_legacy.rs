//! The packed 32-element formats' kernels (Q4_0, Q4_1, Q5_0, Q8_0 in groups of eight rows;
//! layout and scalar reference in `formats::packed::legacy`), AVX2 and AVX-512 VNNI: one body
//! generic over the integer dot step ([`Step`]) and the format (`KIND`), compiled once per
//! level.

// Per-token accumulator arrays of constant size are indexed in step with each other.
#![allow(clippy::needless_range_loop)]

use crate::formats::packed::legacy::format;
use crate::formats::packed::{GROUP, MAX_BLOCKS};
use crate::types::Tile;
use hearth_gguf::GgmlType;
use std::arch::x86_64::*;
use std::mem::MaybeUninit;

const Q4_0: u8 = 0;
const Q4_1: u8 = 1;
const Q5_0: u8 = 2;
const Q8_0: u8 = 3;

/// The integer dot step of a level: four u8 × i8 products added to each i32 lane.
pub(super) trait Step {
    /// Tokens per tile.
    const TOKENS: usize;
    /// `acc + Σ₄ u · x` per lane (`u` unsigned codes ≤ 31).
    ///
    /// # Safety
    /// The CPU has this level's features.
    unsafe fn dot(acc: __m256i, u: __m256i, x: __m256i) -> __m256i;
    /// Prepares a register of Q8_0 quants (signed) for [`Step::dot_q8`].
    ///
    /// # Safety
    /// As [`Step::dot`].
    unsafe fn prep_q8(w: __m256i) -> __m256i;
    /// `acc + Σ₄ w · x` for prepared Q8_0 quants, less `Q8_BIAS · Σ₄ x`.
    ///
    /// # Safety
    /// As [`Step::dot`].
    unsafe fn dot_q8(acc: __m256i, w: __m256i, x: __m256i) -> __m256i;
    /// What [`Step::dot_q8`] adds per unit of activation (corrected once per block).
    const Q8_BIAS: i32;
}

pub(super) struct Avx2;
impl Step for Avx2 {
    const TOKENS: usize = 4;
    const Q8_BIAS: i32 = 0;
    #[inline(always)]
    unsafe fn dot(acc: __m256i, u: __m256i, x: __m256i) -> __m256i {
        // Pairs of products are at most 2 · 31 · 128, far from i16 saturation.
        let p = _mm256_madd_epi16(_mm256_maddubs_epi16(u, x), _mm256_set1_epi16(1));
        _mm256_add_epi32(acc, p)
    }
    #[inline(always)]
    unsafe fn prep_q8(w: __m256i) -> __m256i {
        w
    }
    #[inline(always)]
    unsafe fn dot_q8(acc: __m256i, w: __m256i, x: __m256i) -> __m256i {
        // |w| · sign(x, w) = w · x, with |w| unsigned; x is never −128 (the Q8 encoders
        // produce −127..=127), so the sign flip is exact.
        let p = _mm256_maddubs_epi16(_mm256_abs_epi8(w), _mm256_sign_epi8(x, w));
        _mm256_add_epi32(acc, _mm256_madd_epi16(p, _mm256_set1_epi16(1)))
    }
}

pub(super) struct Vnni;
impl Step for Vnni {
    const TOKENS: usize = 8;
    const Q8_BIAS: i32 = 128;
    #[inline(always)]
    unsafe fn dot(acc: __m256i, u: __m256i, x: __m256i) -> __m256i {
        _mm256_dpbusd_epi32(acc, u, x)
    }
    #[inline(always)]
    unsafe fn prep_q8(w: __m256i) -> __m256i {
        // w + 128 as an unsigned byte; the block's 128 · Σ x is subtracted afterwards.
        _mm256_xor_si256(w, _mm256_set1_epi8(-128))
    }
    #[inline(always)]
    unsafe fn dot_q8(acc: __m256i, w: __m256i, x: __m256i) -> __m256i {
        _mm256_dpbusd_epi32(acc, w, x)
    }
}

/// AVX2 kernel for the packed legacy formats: for `g < groups` and `k < tokens`, the eight
/// outputs of group `g` against activation row `k`, each equal to `dot_ref` bit for bit.
///
/// # Safety
/// The CPU has AVX2, FMA and F16C; `ty` is one `supports` accepts and `nb ≤ MAX_BLOCKS`;
/// the `groups` packed groups at `t.w + g * t.wrb` (`nb` blocks each) and the `tokens`
/// activation rows at `t.x + k * t.xrb` (Q8_0, or Q8_1 for Q4_1) are readable; outputs
/// `t.out + k * t.ostride + 8g + r` are writable and no one else accesses them meanwhile.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn tile_avx2(ty: GgmlType, nb: usize, t: &Tile, groups: usize, tokens: usize) {
    // SAFETY: forwarded from the caller.
    unsafe { dispatch::<Avx2>(ty, nb, t, groups, tokens) }
}

/// [`tile_avx2`] with AVX-512 VNNI's `vpdpbusd` (on ymm registers) and tiles of eight
/// tokens: the same outputs bit for bit.
///
/// # Safety
/// As [`tile_avx2`], and the CPU also has AVX-512 VNNI, VL and BW.
#[target_feature(enable = "avx2,fma,f16c,avx512vnni,avx512vl,avx512bw")]
pub(crate) unsafe fn tile_vnni(ty: GgmlType, nb: usize, t: &Tile, groups: usize, tokens: usize) {
    // SAFETY: forwarded from the caller.
    unsafe { dispatch::<Vnni>(ty, nb, t, groups, tokens) }
}

#[inline(always)]
unsafe fn dispatch<S: Step>(ty: GgmlType, nb: usize, t: &Tile, groups: usize, tokens: usize) {
    // SAFETY: forwarded from the caller.
    unsafe {
        match ty {
            GgmlType::Q4_0 => tiles::<S, Q4_0>(ty, nb, t, groups, tokens),
            GgmlType::Q4_1 => tiles::<S, Q4_1>(ty, nb, t, groups, tokens),
            GgmlType::Q5_0 => tiles::<S, Q5_0>(ty, nb, t, groups, tokens),
            GgmlType::Q8_0 => tiles::<S, Q8_0>(ty, nb, t, groups, tokens),
            other => unreachable!("packed legacy kernel on {other}"),
        }
    }
}

/// Per-(block, token) activation terms of one token tile, `[block][token]`: the scale
/// `d_x`, Q8_1's `s_x`, and the bias correction `bias · Σ x` (i32).
struct Terms {
    dx: [MaybeUninit<f32>; MAX_BLOCKS * 8],
    sx: [MaybeUninit<f32>; MAX_BLOCKS * 8],
    corr: [MaybeUninit<i32>; MAX_BLOCKS * 8],
}

/// The sum of the 32 activation quants at `p` (exact).
///
/// # Safety
/// 32 bytes at `p` are readable; the CPU has AVX2.
#[inline(always)]
unsafe fn sum32(p: *const u8) -> i32 {
    // SAFETY: the caller's contract.
    let x = unsafe { _mm256_loadu_si256(p as *const __m256i) };
    let p16 = _mm256_maddubs_epi16(_mm256_set1_epi8(1), x);
    let p32 = _mm256_madd_epi16(p16, _mm256_set1_epi16(1));
    let s = _mm_add_epi32(
        _mm256_castsi256_si128(p32),
        _mm256_extracti128_si256(p32, 1),
    );
    let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b01_00_11_10));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b10_11_00_01));
    _mm_cvtsi128_si32(s)
}

/// # Safety
/// Two readable bytes at `p`; the CPU has F16C.
#[inline(always)]
unsafe fn f16_at(p: *const u8) -> f32 {
    // SAFETY: the caller's contract.
    let bits = u16::from_le(unsafe { (p as *const u16).read_unaligned() });
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(bits))))
}

/// # Safety
/// As [`tile_avx2`] with the features of `S`.
#[inline(always)]
unsafe fn tiles<S: Step, const KIND: u8>(
    ty: GgmlType,
    nb: usize,
    t: &Tile,
    groups: usize,
    tokens: usize,
) {
    let f = format(ty);
    let (xbs, xqs) = if KIND == Q4_1 { (36, 4) } else { (34, 2) };
    let bias = match KIND {
        Q8_0 => S::Q8_BIAS,
        _ => f.bias,
    };
    let mut terms = Terms {
        dx: [MaybeUninit::uninit(); MAX_BLOCKS * 8],
        sx: [MaybeUninit::uninit(); MAX_BLOCKS * 8],
        corr: [MaybeUninit::uninit(); MAX_BLOCKS * 8],
    };
    let tt = S::TOKENS;
    let mut t0 = 0;
    while t0 < tokens {
        let nt = (tokens - t0).min(tt);
        for b in 0..nb {
            for k in 0..nt {
                // SAFETY: block `b < nb` of token `t0 + k < tokens` is readable: d at
                // byte 0, s (Q8_1) at 2, the quants at `xqs`.
                unsafe {
                    let xb = t.x.add((t0 + k) * t.xrb + b * xbs);
                    terms.dx[b * tt + k].write(f16_at(xb));
                    if KIND == Q4_1 {
                        terms.sx[b * tt + k].write(f16_at(xb.add(2)));
                    }
                    if bias != 0 {
                        terms.corr[b * tt + k].write(bias * sum32(xb.add(xqs)));
                    }
                }
            }
        }
        let terms_p = (
            terms.dx.as_ptr() as *const f32,
            terms.sx.as_ptr() as *const f32,
            terms.corr.as_ptr() as *const i32,
        );
        for g in 0..groups {
            let sub = Tile {
                w: t.w.wrapping_add(g * t.wrb),
                x: t.x.wrapping_add(t0 * t.xrb),
                out: t.out.wrapping_add(t0 * t.ostride + g * GROUP),
                ..*t
            };
            // SAFETY: group `g < groups` and tokens `t0..t0 + nt` are inside the caller's
            // ranges; the terms of tokens `0..nt` of every block are initialized above.
            unsafe {
                let mut k = 0;
                while k < nt {
                    let sub = Tile {
                        x: sub.x.wrapping_add(k * t.xrb),
                        out: sub.out.wrapping_add(k * t.ostride),
                        ..sub
                    };
                    let p = (terms_p.0.add(k), terms_p.1.add(k), terms_p.2.add(k));
                    k += match nt - k {
                        n if n >= 8 => group::<S, KIND, 8>(nb, &sub, tt, p, bias),
                        n if n >= 4 => group::<S, KIND, 4>(nb, &sub, tt, p, bias),
                        n if n >= 2 => group::<S, KIND, 2>(nb, &sub, tt, p, bias),
                        _ => group::<S, KIND, 1>(nb, &sub, tt, p, bias),
                    };
                }
            }
        }
        t0 += nt;
    }
}

/// The high bits of register `e` of a Q5_0 block from its plane `h` (module docs).
#[inline(always)]
unsafe fn high_bits(h: __m256i, e: usize) -> __m256i {
    let v = match e {
        0 => _mm256_slli_epi16::<4>(h),
        1 => _mm256_slli_epi16::<3>(h),
        2 => _mm256_slli_epi16::<2>(h),
        3 => _mm256_slli_epi16::<1>(h),
        4 => h,
        5 => _mm256_srli_epi16::<1>(h),
        6 => _mm256_srli_epi16::<2>(h),
        _ => _mm256_srli_epi16::<3>(h),
    };
    _mm256_and_si256(v, _mm256_set1_epi8(0x10))
}

/// One group against `T` tokens (`T` ≤ the tile's width); returns `T`.
///
/// # Safety
/// As [`tile_avx2`] for one group and `T` tokens; `terms.k` points at token 0's terms,
/// the terms of block `b` being `stride` elements after block `b - 1`'s.
#[inline(always)]
unsafe fn group<S: Step, const KIND: u8, const T: usize>(
    nb: usize,
    t: &Tile,
    stride: usize,
    terms: (*const f32, *const f32, *const i32),
    bias: i32,
) -> usize {
    let ts = match KIND {
        Q4_0 => 18,
        Q4_1 => 20,
        Q5_0 => 22,
        _ => 34,
    };
    let chunks = match KIND {
        Q4_1 => 32,
        Q5_0 => 48,
        _ => 16,
    };
    let (xbs, xqs) = if KIND == Q4_1 { (36, 4) } else { (34, 2) };
    let low = _mm256_set1_epi8(0x0f);
    let mut acc = [_mm256_setzero_ps(); T];
    for b in 0..nb {
        // SAFETY: block `b` of the group and of each of the `T` activation rows is
        // readable (the caller's contract); the terms of (b, k) are initialized.
        unsafe {
            let pb = t.w.add(b * GROUP * ts);
            let wd = _mm256_cvtph_ps(_mm_loadu_si128(pb as *const __m128i));
            let mut sa = [_mm256_setzero_si256(); T];
            let mut sb = [_mm256_setzero_si256(); T];
            let plane = if KIND == Q5_0 {
                _mm256_loadu_si256(pb.add(16) as *const __m256i)
            } else {
                _mm256_setzero_si256()
            };
            for c in 0..4 {
                // Registers `2c` and `2c + 1` (Q8_0: chunks `2c` and `2c + 1`), and
                // the activation bytes they multiply.
                let (u0, u1, o0, o1) = if KIND == Q8_0 {
                    let w0 = _mm256_loadu_si256(pb.add(chunks + 64 * c) as *const __m256i);
                    let w1 = _mm256_loadu_si256(pb.add(chunks + 64 * c + 32) as *const __m256i);
                    (S::prep_q8(w0), S::prep_q8(w1), 8 * c, 8 * c + 4)
                } else {
                    let v = _mm256_loadu_si256(pb.add(chunks + 32 * c) as *const __m256i);
                    let mut u0 = _mm256_and_si256(v, low);
                    let mut u1 = _mm256_and_si256(_mm256_srli_epi16::<4>(v), low);
                    if KIND == Q5_0 {
                        u0 = _mm256_or_si256(u0, high_bits(plane, 2 * c));
                        u1 = _mm256_or_si256(u1, high_bits(plane, 2 * c + 1));
                    }
                    (u0, u1, 4 * c, 4 * c + 16)
                };
                for k in 0..T {
                    let xq = t.x.add(k * t.xrb + b * xbs + xqs);
                    let x0 = _mm256_set1_epi32((xq.add(o0) as *const i32).read_unaligned());
                    let x1 = _mm256_set1_epi32((xq.add(o1) as *const i32).read_unaligned());
                    if KIND == Q8_0 {
                        sa[k] = S::dot_q8(sa[k], u0, x0);
                        sb[k] = S::dot_q8(sb[k], u1, x1);
                    } else {
                        sa[k] = S::dot(sa[k], u0, x0);
                        sb[k] = S::dot(sb[k], u1, x1);
                    }
                }
            }
            let wm = if KIND == Q4_1 {
                _mm256_cvtph_ps(_mm_loadu_si128(pb.add(16) as *const __m128i))
            } else {
                _mm256_setzero_ps()
            };
            for k in 0..T {
                let mut s = _mm256_add_epi32(sa[k], sb[k]);
                if bias != 0 {
                    s = _mm256_sub_epi32(s, _mm256_set1_epi32(*terms.2.add(b * stride + k)));
                }
                let d = _mm256_mul_ps(wd, _mm256_set1_ps(*terms.0.add(b * stride + k)));
                acc[k] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), d, acc[k]);
                if KIND == Q4_1 {
                    let sx = _mm256_set1_ps(*terms.1.add(b * stride + k));
                    acc[k] = _mm256_fmadd_ps(wm, sx, acc[k]);
                }
            }
        }
    }
    for k in 0..T {
        // SAFETY: the group's eight outputs of token `k` are writable (caller's contract).
        unsafe { _mm256_storeu_ps(t.out.add(k * t.ostride), acc[k]) };
    }
    T
}
