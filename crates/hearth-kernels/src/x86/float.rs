//! The float formats' kernels (F32, F16, BF16 dots, F16 widening; definitions in
//! `formats::float`) and the attention helpers, with AVX2 + FMA + F16C: 32 elements per step in
//! four independent accumulators (FMA latency is 4 cycles, so one accumulator would stall). They
//! have no integer dot, so the AVX-512 VNNI level runs them too.

use crate::formats::float::{bf16_to_f32, f16_to_f32};
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
pub(crate) unsafe fn dequant_f16(src: &[u8], dst: &mut [f32]) {
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
pub(crate) unsafe fn dot_f32(n: usize, w: &[u8], x: &[u8]) -> f32 {
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
pub(crate) unsafe fn dot_f16(n: usize, w: &[u8], x: &[u8]) -> f32 {
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
pub(crate) unsafe fn dot_bf16(n: usize, w: &[u8], x: &[u8]) -> f32 {
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

/// [`crate::axpy_keys`]: 64 columns of `y` (eight registers) at a time walk every key.
///
/// # Safety
/// The CPU has AVX2; `xs` holds whole rows of `y.len()` and `p` a value every `stride`
/// for each of them (checked by the caller).
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn axpy_keys(xs: &[f32], p: &[f32], stride: usize, y: &mut [f32]) {
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

/// [`crate::dot_f32_rows`]: queries three at a time, each with `dot_body`'s four
/// accumulators, the same loads, FMAs, reduction and tail in the same order, so every
/// output equals `dot_f32` of its pair bit for bit.
///
/// # Safety
/// The CPU has AVX2, FMA and F16C; `k` holds `n` values and `q` holds `out.len()` rows of
/// `n`.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn dot_f32_rows(n: usize, k: &[f32], q: &[f32], out: &mut [f32]) {
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

/// [`crate::round_to_f16`] with F16C: `vcvtps2ph` (round to nearest even) then `vcvtph2ps`.
///
/// # Safety
/// The CPU has F16C and AVX.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn round_to_f16(x: &mut [f32]) {
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

/// [`crate::axpy_rows`]: eight lanes at a time, `y + p·x` as a multiplication then an
/// addition, exactly the scalar operations.
///
/// # Safety
/// The CPU has AVX2; `y` holds `p.len()` rows of `x.len()`.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn axpy_rows(x: &[f32], p: &[f32], y: &mut [f32]) {
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
