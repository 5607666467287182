//! IQ4_NL, IQ4_XS and MXFP4 single-token kernels (layouts and scalar reference in
//! `formats::iquants`): AVX2, and the same kernels with AVX-512 VNNI. A block's 4-bit codes
//! become its signed levels with one `pshufb` through the 16-entry table; from there IQ4_NL and
//! MXFP4 are Q8_0 blocks with another scale and reuse the legacy loop and its integer dot
//! ([`IntDot`]: the levels are at most 127 in magnitude, so `maddubs` cannot saturate and both
//! levels give the same bits), and IQ4_XS walks its eight 32-element groups like a K-quant,
//! multiplying each group's i32 lane sums by its 6-bit scale before one FMA per block.

use std::arch::x86_64::*;

use super::legacy::{
    dot_ss8, dot_sym, dpbusd, f16_at, f16x8, hsum, load32, nibbles, IntDot, Madd, Vnni,
};
use crate::formats::iquants::{e8m0_half, iq4xs_scale, KV_IQ4NL, KV_MXFP4};

/// The 16 levels of `table` in both 128-bit halves, for `pshufb`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn table(t: &[i8; 16]) -> __m256i {
    // SAFETY: `t` is 16 readable bytes.
    _mm256_broadcastsi128_si256(unsafe { _mm_loadu_si128(t.as_ptr() as *const __m128i) })
}

/// The 32 signed levels of a group whose 16 code bytes start at `p`.
///
/// # Safety
/// `p` points at 16 readable bytes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn levels(table: __m256i, p: *const u8) -> __m256i {
    // SAFETY: forwarded from the caller.
    _mm256_shuffle_epi8(table, unsafe { nibbles(p) })
}

/// [`e8m0_half`] of the bytes at `p + k * stride` for `k` in 0..8.
///
/// # Safety
/// Each of those bytes is readable.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn e8m0_half8(p: *const u8, stride: usize) -> __m256 {
    // SAFETY: the caller guarantees the eight bytes are readable.
    let b = |k: usize| i32::from(unsafe { p.add(k * stride).read() });
    let e = _mm256_setr_epi32(b(0), b(1), b(2), b(3), b(4), b(5), b(6), b(7));
    let one = _mm256_set1_epi32(1);
    // Normal scales: exponent field `e - 1`. The two smallest are subnormal: 2^21 ulps << e.
    let normal = _mm256_slli_epi32(_mm256_sub_epi32(e, one), 23);
    let subnormal = _mm256_sllv_epi32(_mm256_set1_epi32(0x0020_0000), e);
    let small = _mm256_cmpgt_epi32(_mm256_set1_epi32(2), e);
    _mm256_castsi256_ps(_mm256_blendv_epi8(normal, subnormal, small))
}

/// IQ4_NL × Q8_0 with dot `D`.
///
/// # Safety
/// See `legacy::dot_sym`; the CPU has the features of `D::LEVEL`.
#[inline(always)]
unsafe fn iq4_nl<D: IntDot>(nb: usize, w: &[u8], x: &[u8]) -> f32 {
    // SAFETY: the caller's contract covers the features.
    let t = unsafe { table(&KV_IQ4NL) };
    // SAFETY (closure): `b` is an IQ4_NL block: 16 code bytes at byte 2.
    unsafe { dot_sym(nb, w, 18, x, |b, y| dot_ss8::<D>(levels(t, b.add(2)), y)) }
}

/// MXFP4 × Q8_0 with dot `D`: `dot_sym`'s loop with the E8M0 weight scale. Block `i` goes to
/// accumulator `i % 4` with `e8m0_half(e) · d_x` (one multiplication) on every path.
///
/// # Safety
/// The CPU has the features of `D::LEVEL`; `w` holds `nb` MXFP4 blocks, `x` `nb` Q8_0 blocks.
#[inline(always)]
unsafe fn mxfp4<D: IntDot>(nb: usize, w: &[u8], x: &[u8]) -> f32 {
    let (wp, xp) = (w.as_ptr(), x.as_ptr());
    // SAFETY: the caller's contract covers the features.
    let t = unsafe { table(&KV_MXFP4) };
    // The eight i32 lane sums (as f32) of block `i`.
    let products = |i: usize| {
        // SAFETY: block `i < nb` lies inside `w` and `x`: codes at byte 1 of the weight
        // block, quants at byte 2 of the activation block.
        unsafe { dot_ss8::<D>(levels(t, wp.add(i * 17 + 1)), load32(xp.add(i * 34 + 2))) }
    };
    // SAFETY: as in `products`; both blocks start with their scale.
    let scale = |i: usize| unsafe { e8m0_half(*wp.add(i * 17)) * f16_at(xp.add(i * 34)) };
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    while i + 8 <= nb {
        // SAFETY: blocks `i..i + 8` lie inside `w` and `x`; each starts with its scale.
        let d8 =
            unsafe { _mm256_mul_ps(e8m0_half8(wp.add(i * 17), 17), f16x8(xp.add(i * 34), 34)) };
        let mut ds = [0f32; 8];
        // SAFETY: `ds` holds eight f32.
        unsafe { _mm256_storeu_ps(ds.as_mut_ptr(), d8) };
        for (k, d) in ds.iter().enumerate() {
            acc[k % 4] = _mm256_fmadd_ps(_mm256_broadcast_ss(d), products(i + k), acc[k % 4]);
        }
        i += 8;
    }
    for (k, j) in (i..nb).enumerate() {
        acc[k % 4] = _mm256_fmadd_ps(_mm256_set1_ps(scale(j)), products(j), acc[k % 4]);
    }
    hsum(_mm256_add_ps(
        _mm256_add_ps(acc[0], acc[1]),
        _mm256_add_ps(acc[2], acc[3]),
    ))
}

/// A group's eight i32 lane sums times its scale, exactly, on each level.
trait Scaled: IntDot {
    /// `sc · Σ u × y` per lane (`u = |level|`, `y` the activation with the level's sign).
    ///
    /// # Safety
    /// The CPU has the features of [`IntDot::LEVEL`].
    unsafe fn scaled(u: __m256i, y: __m256i, sc: i32) -> __m256i;
}

impl Scaled for Madd {
    /// `maddubs` pairs are at most `2 · 127 · 128` (no saturation), and `madd` with the scale
    /// sums `sc · pair` two at a time: the same i32 lane as the reference.
    #[inline(always)]
    unsafe fn scaled(u: __m256i, y: __m256i, sc: i32) -> __m256i {
        _mm256_madd_epi16(_mm256_maddubs_epi16(u, y), _mm256_set1_epi16(sc as i16))
    }
}

impl Scaled for Vnni {
    #[inline(always)]
    unsafe fn scaled(u: __m256i, y: __m256i, sc: i32) -> __m256i {
        // SAFETY: the caller's contract: this CPU has AVX-512 VNNI and VL.
        let s = unsafe { dpbusd(_mm256_setzero_si256(), u, y) };
        _mm256_mullo_epi32(s, _mm256_set1_epi32(sc))
    }
}

/// IQ4_XS × Q8_K with dot `D`.
///
/// # Safety
/// The CPU has the features of `D::LEVEL`; `w` holds `nb` IQ4_XS blocks, `x` `nb` Q8_K
/// blocks.
#[inline(always)]
unsafe fn iq4_xs<D: Scaled>(nb: usize, w: &[u8], x: &[u8]) -> f32 {
    // SAFETY: the caller's contract covers the features.
    let t = unsafe { table(&KV_IQ4NL) };
    let mut acc = _mm256_setzero_ps();
    for (wb, xb) in w.chunks_exact(136).zip(x.chunks_exact(292)).take(nb) {
        let yd = f32::from_le_bytes([xb[0], xb[1], xb[2], xb[3]]);
        // SAFETY: `wb` starts with its f16 scale.
        let d = yd * unsafe { f16_at(wb.as_ptr()) };
        let mut lanes = _mm256_setzero_si256();
        for g in 0..8 {
            // SAFETY: group `g`'s 16 code bytes start at byte 8 + 16g of the 136-byte block,
            // its 32 activation quants at byte 4 + 32g of the 292-byte Q8_K block; the
            // features are the caller's contract.
            lanes = _mm256_add_epi32(lanes, unsafe {
                let q = levels(t, wb.as_ptr().add(8 + 16 * g));
                let y = load32(xb.as_ptr().add(4 + 32 * g));
                D::scaled(
                    _mm256_sign_epi8(q, q),
                    _mm256_sign_epi8(y, q),
                    iq4xs_scale(wb, g),
                )
            });
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(lanes), acc);
    }
    hsum(acc)
}

/// The single-token entry points of one level (see `legacy`'s `kernels!`).
macro_rules! kernels {
    ($(#[$doc:meta])* $name:ident, $features:literal, $dot:ty) => {
        $(#[$doc])*
        pub(crate) mod $name {
            use super::*;

            /// The dot product of `nb` blocks of weight type `ty` with its activations.
            ///
            /// # Safety
            /// The CPU has the features of this level; `w` and `x` hold `nb` blocks of
            /// `ty` and of its activation type (Q8_0, or Q8_K for IQ4_XS).
            #[target_feature(enable = $features)]
            pub(crate) unsafe fn vec_dot(
                ty: hearth_gguf::GgmlType,
                nb: usize,
                w: &[u8],
                x: &[u8],
            ) -> f32 {
                use hearth_gguf::GgmlType::*;
                // SAFETY: forwarded from the caller.
                unsafe {
                    match ty {
                        IQ4_NL => iq4_nl::<$dot>(nb, w, x),
                        IQ4_XS => iq4_xs::<$dot>(nb, w, x),
                        MXFP4 => mxfp4::<$dot>(nb, w, x),
                        other => unreachable!("iquants::vec_dot called with {other}"),
                    }
                }
            }
        }
    };
}

kernels!(
    /// AVX2 (+FMA, F16C): `maddubs` + `madd`.
    madd,
    "avx2,fma,f16c",
    Madd
);
kernels!(
    /// AVX2 plus AVX-512 VNNI / VL / BW: `vpdpbusd`.
    vnni,
    "avx2,fma,f16c,avx512vnni,avx512vl,avx512bw",
    Vnni
);
