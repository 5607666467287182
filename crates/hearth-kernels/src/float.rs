//! F32, F16 and BF16 rows.
//!
//! Activations for these weights are stored in the weight's own format (an F16 weight row is
//! multiplied by an F16 activation row, as llama.cpp does), and products are accumulated in
//! f32. Conversions from f32 round to nearest, ties to even, like ggml.
//!
//! Both the scalar and the AVX2 kernels keep eight independent partial sums per lane group so
//! the reduction order is fixed by `n` alone, never by where a row sits in a batch.

use crate::simd::Level;
use crate::{GgmlType, Result};
use half::f16;

pub(crate) fn dequantize(ty: GgmlType, src: &[u8], dst: &mut [f32]) {
    match ty {
        GgmlType::F32 => {
            for (d, s) in dst.iter_mut().zip(src.chunks_exact(4)) {
                *d = f32::from_le_bytes([s[0], s[1], s[2], s[3]]);
            }
        }
        GgmlType::F16 => {
            #[cfg(target_arch = "x86_64")]
            if crate::simd::level().has_avx2() {
                // SAFETY: `Level::Avx2` (or the VNNI level above it) means `simd::detect` found AVX2, FMA and F16C on this
                // CPU; lib.rs checked that `src` holds exactly `dst.len()` f16 values.
                unsafe { avx2::dequant_f16(src, dst) };
                return;
            }
            // NEON: `vcvt_f32_f16` would widen four at a time here.
            for (d, s) in dst.iter_mut().zip(src.chunks_exact(2)) {
                *d = f16_to_f32(u16::from_le_bytes([s[0], s[1]]));
            }
        }
        GgmlType::BF16 => {
            for (d, s) in dst.iter_mut().zip(src.chunks_exact(2)) {
                *d = bf16_to_f32(u16::from_le_bytes([s[0], s[1]]));
            }
        }
        other => unreachable!("float::dequantize called with {other}"),
    }
}

pub(crate) fn quantize(ty: GgmlType, src: &[f32], dst: &mut [u8]) -> Result<()> {
    match ty {
        GgmlType::F32 => {
            for (d, s) in dst.chunks_exact_mut(4).zip(src) {
                d.copy_from_slice(&s.to_le_bytes());
            }
        }
        GgmlType::F16 => {
            for (d, s) in dst.chunks_exact_mut(2).zip(src) {
                d.copy_from_slice(&f16::from_f32(*s).to_le_bytes());
            }
        }
        GgmlType::BF16 => {
            for (d, s) in dst.chunks_exact_mut(2).zip(src) {
                d.copy_from_slice(&f32_to_bf16(*s).to_le_bytes());
            }
        }
        other => unreachable!("float::quantize called with {other}"),
    }
    Ok(())
}

/// Exact f16 → f32 in portable code that inlines into the scalar loops (`half`'s
/// conversion dispatches at run time on x86 and costs a call per value).
#[inline(always)]
pub(crate) fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h & 0x8000) as u32) << 16;
    let em = (h & 0x7fff) as u32;
    let mag = if em >= 0x7c00 {
        // Infinity or NaN: all-ones exponent, payload moved to the top of the f32 fraction.
        0x7f80_0000 | ((em & 0x3ff) << 13)
    } else if em >= 0x0400 {
        // Normal: rebias the exponent from 15 to 127.
        (em << 13) + ((127 - 15) << 23)
    } else {
        // Zero or subnormal: em × 2^-24 is exact in f32.
        (em as f32 * f32::from_bits(0x3380_0000)).to_bits()
    };
    f32::from_bits(sign | mag)
}

/// bf16 is the top half of an f32, so widening is exact.
#[inline(always)]
pub(crate) fn bf16_to_f32(bits: u16) -> f32 {
    f32::from_bits((bits as u32) << 16)
}

/// Round to nearest even, NaN kept quiet (ggml's `GGML_FP32_TO_BF16`).
#[inline]
pub(crate) fn f32_to_bf16(x: f32) -> u16 {
    let u = x.to_bits();
    if u & 0x7fff_ffff > 0x7f80_0000 {
        return ((u >> 16) | 64) as u16;
    }
    ((u + (0x7fff + ((u >> 16) & 1))) >> 16) as u16
}

#[inline]
pub(crate) fn vec_dot(ty: GgmlType, n: usize, w: &[u8], x: &[u8]) -> f32 {
    vec_dot_at(crate::simd::level(), ty, n, w, x)
}

/// `level` must be [`Level::Scalar`] or a level [`crate::simd::detect`] reported.
#[inline]
pub(crate) fn vec_dot_at(level: Level, ty: GgmlType, n: usize, w: &[u8], x: &[u8]) -> f32 {
    let esize = ty.type_size();
    let (w, x) = (&w[..n * esize], &x[..n * esize]);
    match level {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Level::Avx2` and `Level::Avx512Vnni` are only produced by `simd::detect`,
        // which checked that this CPU has AVX2, FMA and F16C (and passed by callers only when
        // `simd::supported`); the slices were cut to exactly `n` elements above. The float
        // formats have no integer dot, so the VNNI level runs the AVX2 kernels.
        Level::Avx2 | Level::Avx512Vnni => unsafe {
            match ty {
                GgmlType::F32 => avx2::dot_f32(n, w, x),
                GgmlType::F16 => avx2::dot_f16(n, w, x),
                GgmlType::BF16 => avx2::dot_bf16(n, w, x),
                other => unreachable!("float::vec_dot called with {other}"),
            }
        },
        // NEON: an aarch64 arm would dispatch to `vfmaq_f32` / `vcvt_f32_f16` kernels here.
        _ => match ty {
            GgmlType::F32 => dot_scalar(w, x, 4, |b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            GgmlType::F16 => dot_scalar(w, x, 2, |b| f16_to_f32(u16::from_le_bytes([b[0], b[1]]))),
            GgmlType::BF16 => {
                dot_scalar(w, x, 2, |b| bf16_to_f32(u16::from_le_bytes([b[0], b[1]])))
            }
            other => unreachable!("float::vec_dot called with {other}"),
        },
    }
}

/// Portable dot product with eight partial sums (which the compiler can keep in one vector
/// register) folded pairwise at the end.
#[inline(always)]
fn dot_scalar(w: &[u8], x: &[u8], esize: usize, load: impl Fn(&[u8]) -> f32) -> f32 {
    const LANES: usize = 8;
    let mut acc = [0.0f32; LANES];
    let step = LANES * esize;
    let mut wc = w.chunks_exact(step);
    let mut xc = x.chunks_exact(step);
    for (wb, xb) in (&mut wc).zip(&mut xc) {
        for l in 0..LANES {
            let (a, b) = (load(&wb[l * esize..]), load(&xb[l * esize..]));
            // Not `mul_add`: without the FMA target feature that is a slow libm call.
            acc[l] += a * b;
        }
    }
    let mut tail = 0.0f32;
    for (a, b) in wc
        .remainder()
        .chunks_exact(esize)
        .zip(xc.remainder().chunks_exact(esize))
    {
        tail += load(a) * load(b);
    }
    let s4 = [
        acc[0] + acc[4],
        acc[1] + acc[5],
        acc[2] + acc[6],
        acc[3] + acc[7],
    ];
    (s4[0] + s4[2]) + (s4[1] + s4[3]) + tail
}

/// `out[r] = dot(k, q[r·n .. (r+1)·n])` for every row `r` of `q`: one key against several
/// queries (attention scores), each equal bit for bit to [`crate::vec_dot`] of the F32 rows,
/// and so to the F16 dot of the f16 values the rows were widened from. The key is loaded once
/// for all the queries instead of once per call.
///
/// # Panics
/// If `k` is shorter than `n` or `q` does not hold `out.len()` rows of `n`.
pub fn dot_f32_rows(n: usize, k: &[f32], q: &[f32], out: &mut [f32]) {
    assert!(k.len() >= n, "dot_f32_rows: key of {} for n = {n}", k.len());
    assert_eq!(
        q.len(),
        out.len() * n,
        "dot_f32_rows: queries for {} rows of {n}",
        out.len()
    );
    let k = &k[..n];
    match crate::simd::level() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: these levels are only produced by `simd::detect`, which found AVX2, FMA and
        // F16C; the lengths were checked above.
        Level::Avx2 | Level::Avx512Vnni => unsafe { avx2::dot_f32_rows(n, k, q, out) },
        _ => {
            let kb: &[u8] = bytemuck::cast_slice(k);
            for (o, qr) in out.iter_mut().zip(q.chunks_exact(n.max(1))) {
                *o = vec_dot_at(
                    Level::Scalar,
                    GgmlType::F32,
                    n,
                    kb,
                    bytemuck::cast_slice(qr),
                );
            }
        }
    }
}

/// `y += p[k · stride] · x_k` for each row `x_k` of `xs` (rows of `y.len()`), in row order:
/// one attention output accumulating a run of value rows, with the probabilities of its token
/// `stride` apart (key-major scores). Each element gets exactly [`axpy_rows`]'s operations
/// (`y + p·x`, the product rounded first) in the same key order, so the bits are those of one
/// `axpy_rows` call per key; but `y` stays in registers across the keys instead of being
/// loaded and stored once per key.
///
/// # Panics
/// If `xs` is not whole rows of `y.len()` or `p` has fewer than `(rows − 1) · stride + 1`
/// values.
pub fn axpy_keys(xs: &[f32], p: &[f32], stride: usize, y: &mut [f32]) {
    let n = y.len();
    if n == 0 {
        return;
    }
    assert!(xs.len().is_multiple_of(n), "axpy_keys: rows of {n}");
    let rows = xs.len() / n;
    if rows == 0 {
        return;
    }
    assert!(
        p.len() > (rows - 1) * stride,
        "axpy_keys: {} probabilities for {rows} rows {stride} apart",
        p.len()
    );
    match crate::simd::level() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `dot_f32_rows`; the lengths were checked above.
        Level::Avx2 | Level::Avx512Vnni => unsafe { avx2::axpy_keys(xs, p, stride, y) },
        _ => {
            for (k, x) in xs.chunks_exact(n).enumerate() {
                let pk = p[k * stride];
                for (a, &b) in y.iter_mut().zip(x) {
                    *a += pk * b;
                }
            }
        }
    }
}

/// `y[r] += p[r] · x` for every row `r` of `y` (rows of `x.len()`): one value row added into
/// several attention outputs. Each element is `y + p·x` with the product rounded first (a
/// multiplication, then an addition, never a fused multiply-add), on every level.
///
/// # Panics
/// If `y` does not hold `p.len()` rows of `x.len()`.
pub fn axpy_rows(x: &[f32], p: &[f32], y: &mut [f32]) {
    let n = x.len();
    assert_eq!(
        y.len(),
        p.len() * n,
        "axpy_rows: outputs for {} rows of {n}",
        p.len()
    );
    match crate::simd::level() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `dot_f32_rows`; the lengths were checked above.
        Level::Avx2 | Level::Avx512Vnni => unsafe { avx2::axpy_rows(x, p, y) },
        _ => {
            for (yr, &pr) in y.chunks_exact_mut(n.max(1)).zip(p) {
                for (a, &b) in yr.iter_mut().zip(x) {
                    *a += pr * b;
                }
            }
        }
    }
}

/// Rounds every value to the nearest f16 (ties to even) and widens it back: exactly
/// `half::f16::from_f32(x).to_f32()` for each, eight at a time with F16C where available
/// (attention rounds its probabilities so, as llama.cpp multiplies V by f16 probabilities).
pub fn round_to_f16(x: &mut [f32]) {
    match crate::simd::level() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: these levels are only produced by `simd::detect`, which found F16C.
        Level::Avx2 | Level::Avx512Vnni => unsafe { avx2::round_to_f16(x) },
        _ => {
            for v in x {
                *v = f16::from_f32(*v).to_f32();
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    //! AVX2 + FMA + F16C kernels: 32 elements per step in four independent accumulators
    //! (FMA latency is 4 cycles, so one accumulator would stall).
    use super::{bf16_to_f32, f16_to_f32};
    use std::arch::x86_64::*;

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn hsum(v: __m256) -> f32 {
        let lo = _mm256_castps256_ps128(v);
        let hi = _mm256_extractf128_ps(v, 1);
        let s = _mm_add_ps(lo, hi);
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_movehdup_ps(s));
        _mm_cvtss_f32(s)
    }

    /// Generic body: `load(p, i)` widens 8 elements starting at element `i` of `p`.
    #[inline(always)]
    unsafe fn dot_body(
        n: usize,
        w: &[u8],
        x: &[u8],
        load: impl Fn(*const u8, usize) -> __m256,
        scalar: impl Fn(&[u8], usize) -> f32,
    ) -> f32 {
        let (wp, xp) = (w.as_ptr(), x.as_ptr());
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut i = 0;
        while i + 32 <= n {
            for (k, a) in acc.iter_mut().enumerate() {
                *a = _mm256_fmadd_ps(load(wp, i + 8 * k), load(xp, i + 8 * k), *a);
            }
            i += 32;
        }
        while i + 8 <= n {
            acc[0] = _mm256_fmadd_ps(load(wp, i), load(xp, i), acc[0]);
            i += 8;
        }
        let v = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
        let mut sum = hsum(v);
        while i < n {
            sum += scalar(w, i) * scalar(x, i);
            i += 1;
        }
        sum
    }

    /// Widens f16 to f32 eight at a time (the KV cache's value rows, every position of every
    /// attention head, go through this).
    ///
    /// # Safety
    /// The CPU has F16C and AVX; `src` holds `dst.len()` f16 values.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn dequant_f16(src: &[u8], dst: &mut [f32]) {
        let n = dst.len();
        debug_assert_eq!(src.len(), 2 * n);
        let mut i = 0;
        while i + 8 <= n {
            // SAFETY: i + 8 <= n, so 16 bytes at 2i are inside `src` and 8 floats at i inside
            // `dst`; both loads/stores are unaligned forms.
            let h = _mm_loadu_si128(src.as_ptr().add(2 * i) as *const __m128i);
            _mm256_storeu_ps(dst.as_mut_ptr().add(i), _mm256_cvtph_ps(h));
            i += 8;
        }
        while i < n {
            dst[i] = f16_to_f32(u16::from_le_bytes([src[2 * i], src[2 * i + 1]]));
            i += 1;
        }
    }

    /// # Safety
    /// The CPU has AVX2, FMA and F16C; `w` and `x` hold `n` f32 each.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn dot_f32(n: usize, w: &[u8], x: &[u8]) -> f32 {
        dot_body(
            n,
            w,
            x,
            // SAFETY (all loads below): `dot_body` only asks for 8 elements ending at or
            // before element `n`, and both slices hold `n` elements; loads are unaligned.
            |p, i| unsafe { _mm256_loadu_ps(p.add(4 * i) as *const f32) },
            |b, i| f32::from_le_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]]),
        )
    }

    /// # Safety
    /// The CPU has AVX2, FMA and F16C; `w` and `x` hold `n` f16 each.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn dot_f16(n: usize, w: &[u8], x: &[u8]) -> f32 {
        dot_body(
            n,
            w,
            x,
            |p, i| unsafe { _mm256_cvtph_ps(_mm_loadu_si128(p.add(2 * i) as *const __m128i)) },
            |b, i| f16_to_f32(u16::from_le_bytes([b[2 * i], b[2 * i + 1]])),
        )
    }

    /// BF16 without widening shuffles: a 32-byte load holds 16 values; shifting each 32-bit
    /// lane left by 16 gives the even elements as f32 and masking the low half gives the odd
    /// ones, and even pairs with even, odd with odd. Everything stays off the shuffle port
    /// (`vpmovzxwd` was the bottleneck).
    ///
    /// # Safety
    /// The CPU has AVX2, FMA and F16C; `w` and `x` hold `n` bf16 each.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn dot_bf16(n: usize, w: &[u8], x: &[u8]) -> f32 {
        let (wp, xp) = (w.as_ptr(), x.as_ptr());
        let hi_mask = _mm256_set1_epi32(0xffff_0000u32 as i32);
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut i = 0;
        while i + 32 <= n {
            for h in 0..2 {
                // SAFETY: elements `i + 16h .. i + 16h + 16` are inside both rows (i + 32 <= n).
                let (a, b) = unsafe {
                    (
                        _mm256_loadu_si256(wp.add(2 * (i + 16 * h)) as *const __m256i),
                        _mm256_loadu_si256(xp.add(2 * (i + 16 * h)) as *const __m256i),
                    )
                };
                let even = |v| _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
                let odd = |v| _mm256_castsi256_ps(_mm256_and_si256(v, hi_mask));
                acc[2 * h] = _mm256_fmadd_ps(even(a), even(b), acc[2 * h]);
                acc[2 * h + 1] = _mm256_fmadd_ps(odd(a), odd(b), acc[2 * h + 1]);
            }
            i += 32;
        }
        let v = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
        let mut sum = hsum(v);
        while i < n {
            let ld = |b: &[u8]| bf16_to_f32(u16::from_le_bytes([b[2 * i], b[2 * i + 1]]));
            sum += ld(w) * ld(x);
            i += 1;
        }
        sum
    }

    /// `super::axpy_keys`: 64 columns of `y` (eight registers) at a time walk every key.
    ///
    /// # Safety
    /// The CPU has AVX2; `xs` holds whole rows of `y.len()` and `p` a value every `stride`
    /// for each of them (checked by the caller).
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn axpy_keys(xs: &[f32], p: &[f32], stride: usize, y: &mut [f32]) {
        let n = y.len();
        let rows = xs.len() / n;
        let mut c = 0;
        while c + 64 <= n {
            // SAFETY: columns c..c + 64 are inside `y` and every row of `xs`; `p` holds the
            // rows' probabilities (caller's contract).
            unsafe {
                let yp = y.as_mut_ptr().add(c);
                let mut acc = [_mm256_setzero_ps(); 8];
                for (i, a) in acc.iter_mut().enumerate() {
                    *a = _mm256_loadu_ps(yp.add(8 * i));
                }
                for k in 0..rows {
                    let pv = _mm256_set1_ps(*p.get_unchecked(k * stride));
                    let xp = xs.as_ptr().add(k * n + c);
                    for (i, a) in acc.iter_mut().enumerate() {
                        let xv = _mm256_loadu_ps(xp.add(8 * i));
                        *a = _mm256_add_ps(*a, _mm256_mul_ps(pv, xv));
                    }
                }
                for (i, a) in acc.iter().enumerate() {
                    _mm256_storeu_ps(yp.add(8 * i), *a);
                }
            }
            c += 64;
        }
        while c + 8 <= n {
            // SAFETY: as above, for columns c..c + 8.
            unsafe {
                let yp = y.as_mut_ptr().add(c);
                let mut a = _mm256_loadu_ps(yp);
                for k in 0..rows {
                    let pv = _mm256_set1_ps(*p.get_unchecked(k * stride));
                    let xv = _mm256_loadu_ps(xs.as_ptr().add(k * n + c));
                    a = _mm256_add_ps(a, _mm256_mul_ps(pv, xv));
                }
                _mm256_storeu_ps(yp, a);
            }
            c += 8;
        }
        for col in c..n {
            for k in 0..rows {
                y[col] += p[k * stride] * xs[k * n + col];
            }
        }
    }

    /// [`super::dot_f32_rows`]: queries three at a time, each with `dot_body`'s four
    /// accumulators, the same loads, FMAs, reduction and tail in the same order, so every
    /// output equals `dot_f32` of its pair bit for bit.
    ///
    /// # Safety
    /// The CPU has AVX2, FMA and F16C; `k` holds `n` values and `q` holds `out.len()` rows of
    /// `n`.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn dot_f32_rows(n: usize, k: &[f32], q: &[f32], out: &mut [f32]) {
        let mut r = 0;
        while r + 3 <= out.len() {
            // SAFETY: rows r..r+3 are inside `q` (caller's contract).
            unsafe { rows::<3>(n, k, &q[r * n..], &mut out[r..r + 3]) };
            r += 3;
        }
        match out.len() - r {
            // SAFETY: as above, for the last one or two rows.
            2 => unsafe { rows::<2>(n, k, &q[r * n..], &mut out[r..]) },
            1 => unsafe { rows::<1>(n, k, &q[r * n..], &mut out[r..]) },
            _ => {}
        }
    }

    /// # Safety
    /// As [`dot_f32_rows`], for `R` rows of `q` and `out`.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn rows<const R: usize>(n: usize, k: &[f32], q: &[f32], out: &mut [f32]) {
        let (kp, qp) = (k.as_ptr(), q.as_ptr());
        let mut acc = [[_mm256_setzero_ps(); 4]; R];
        let mut i = 0;
        while i + 32 <= n {
            for j in 0..4 {
                // SAFETY: elements i + 8j .. i + 8j + 8 < n are inside the key and every row.
                let kv = unsafe { _mm256_loadu_ps(kp.add(i + 8 * j)) };
                for (r, a) in acc.iter_mut().enumerate() {
                    // SAFETY: as above, row `r` starts at `r * n`.
                    let qv = unsafe { _mm256_loadu_ps(qp.add(r * n + i + 8 * j)) };
                    a[j] = _mm256_fmadd_ps(kv, qv, a[j]);
                }
            }
            i += 32;
        }
        while i + 8 <= n {
            // SAFETY: i + 8 <= n.
            let kv = unsafe { _mm256_loadu_ps(kp.add(i)) };
            for (r, a) in acc.iter_mut().enumerate() {
                // SAFETY: as above.
                let qv = unsafe { _mm256_loadu_ps(qp.add(r * n + i)) };
                a[0] = _mm256_fmadd_ps(kv, qv, a[0]);
            }
            i += 8;
        }
        for (r, a) in acc.iter().enumerate() {
            let v = _mm256_add_ps(_mm256_add_ps(a[0], a[1]), _mm256_add_ps(a[2], a[3]));
            let mut sum = hsum(v);
            for t in i..n {
                sum += k[t] * q[r * n + t];
            }
            out[r] = sum;
        }
    }

    /// [`super::round_to_f16`] with F16C: `vcvtps2ph` (round to nearest even) then `vcvtph2ps`.
    ///
    /// # Safety
    /// The CPU has F16C and AVX.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn round_to_f16(x: &mut [f32]) {
        let n = x.len();
        let mut i = 0;
        while i + 8 <= n {
            // SAFETY: i + 8 <= n, so eight floats at `i` are inside `x`.
            unsafe {
                let p = x.as_mut_ptr().add(i);
                let h = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(_mm256_loadu_ps(p));
                _mm256_storeu_ps(p, _mm256_cvtph_ps(h));
            }
            i += 8;
        }
        for v in &mut x[i..] {
            *v = half::f16::from_f32(*v).to_f32();
        }
    }

    /// [`super::axpy_rows`]: eight lanes at a time, `y + p·x` as a multiplication then an
    /// addition, exactly the scalar operations.
    ///
    /// # Safety
    /// The CPU has AVX2; `y` holds `p.len()` rows of `x.len()`.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn axpy_rows(x: &[f32], p: &[f32], y: &mut [f32]) {
        let n = x.len();
        for (r, &pr) in p.iter().enumerate() {
            let yr = &mut y[r * n..(r + 1) * n];
            let pv = _mm256_set1_ps(pr);
            let mut i = 0;
            while i + 8 <= n {
                // SAFETY: i + 8 <= n for both `x` and the row `yr`.
                unsafe {
                    let xv = _mm256_loadu_ps(x.as_ptr().add(i));
                    let yv = _mm256_loadu_ps(yr.as_ptr().add(i));
                    _mm256_storeu_ps(
                        yr.as_mut_ptr().add(i),
                        _mm256_add_ps(yv, _mm256_mul_ps(pv, xv)),
                    );
                }
                i += 8;
            }
            for t in i..n {
                yr[t] += pr * x[t];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_to_f32_is_exact_for_every_value() {
        for h in 0..=u16::MAX {
            let want = f16::from_bits(h).to_f32();
            let got = f16_to_f32(h);
            assert!(
                got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                "{h:#06x}: {got:e} vs {want:e}"
            );
        }
    }

    #[test]
    fn rows_kernels_equal_one_call_per_row_bit_for_bit() {
        let mut seed = 0x9e3779b97f4a7c15u64;
        let mut rnd = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            ((seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 8.0
        };
        for n in [1, 7, 8, 31, 32, 40, 64, 100, 256] {
            for rows in 0..8 {
                let k: Vec<f32> = (0..n).map(|_| rnd()).collect();
                let q: Vec<f32> = (0..rows * n).map(|_| rnd()).collect();
                let mut out = vec![0f32; rows];
                dot_f32_rows(n, &k, &q, &mut out);
                for r in 0..rows {
                    let want = crate::vec_dot(
                        GgmlType::F32,
                        n,
                        bytemuck::cast_slice(&k),
                        bytemuck::cast_slice(&q[r * n..(r + 1) * n]),
                    );
                    assert_eq!(
                        out[r].to_bits(),
                        want.to_bits(),
                        "n {n} rows {rows} row {r}"
                    );
                }
                let p: Vec<f32> = (0..rows).map(|_| rnd()).collect();
                let mut y: Vec<f32> = (0..rows * n).map(|_| rnd()).collect();
                let mut want = y.clone();
                axpy_rows(&k, &p, &mut y);
                for r in 0..rows {
                    for t in 0..n {
                        want[r * n + t] += p[r] * k[t];
                    }
                }
                assert_eq!(
                    bytemuck::cast_slice::<f32, u32>(&y),
                    bytemuck::cast_slice::<f32, u32>(&want),
                    "axpy n {n} rows {rows}"
                );
            }
        }
    }

    #[test]
    fn axpy_keys_equals_one_axpy_rows_call_per_key_bit_for_bit() {
        let mut seed = 0x2545f4914f6cdd1du64;
        let mut rnd = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            ((seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 8.0
        };
        for n in [1, 7, 8, 63, 64, 72, 128, 200, 256] {
            for keys in [0, 1, 2, 5, 33] {
                for stride in [1, 3, 16] {
                    let xs: Vec<f32> = (0..keys * n).map(|_| rnd()).collect();
                    let p: Vec<f32> = (0..keys * stride).map(|_| rnd()).collect();
                    let y0: Vec<f32> = (0..n).map(|_| rnd()).collect();
                    let mut want = y0.clone();
                    for k in 0..keys {
                        axpy_rows(
                            &xs[k * n..(k + 1) * n],
                            &p[k * stride..k * stride + 1],
                            &mut want,
                        );
                    }
                    let mut y = y0.clone();
                    axpy_keys(&xs, &p, stride, &mut y);
                    assert_eq!(
                        bytemuck::cast_slice::<f32, u32>(&y),
                        bytemuck::cast_slice::<f32, u32>(&want),
                        "n {n} keys {keys} stride {stride}"
                    );
                }
            }
        }
    }

    #[test]
    fn round_to_f16_equals_half_for_every_f16_neighbourhood() {
        // Around every finite f16: the value itself, its midpoints with the neighbours (ties),
        // and values just off them, plus overflow, subnormals and zeros.
        let mut xs = vec![
            0.0f32, -0.0, 65504.0, 65520.0, 70000.0, -70000.0, 1e-8, 6e-8, 3e-8,
        ];
        for h in 0..0x7c00u16 {
            let a = f16::from_bits(h).to_f32();
            let b = f16::from_bits(h + 1).to_f32();
            let mid = (a + b) / 2.0;
            for v in [
                a,
                mid,
                f32::from_bits(mid.to_bits() + 1),
                f32::from_bits(mid.to_bits().saturating_sub(1)),
            ] {
                xs.push(v);
                xs.push(-v);
            }
        }
        let want: Vec<u32> = xs
            .iter()
            .map(|&v| f16::from_f32(v).to_f32().to_bits())
            .collect();
        let mut got = xs.clone();
        round_to_f16(&mut got);
        let got: Vec<u32> = got.iter().map(|v| v.to_bits()).collect();
        assert_eq!(got.len(), want.len());
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(g, w, "x = {:e}", xs[i]);
        }
    }
}
