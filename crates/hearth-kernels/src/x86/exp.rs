//! [`crate::exp_f32`] eight lanes at a time with AVX2 + FMA (definition and constants in
//! `formats::exp`), and the softmax and SwiGLU loops built on it: every lane performs the
//! scalar definition's operations in its order.

use crate::formats::exp::{C, HI, LN2_HI, LN2_LO, LO, LOG2E};
use std::arch::x86_64::*;

/// [`crate::exp_f32`] on eight lanes: the same operations in the same order. `maxps` and
/// `minps` return their second operand when either is NaN, so the lane goes second: a NaN
/// stays NaN, as through `f32::clamp` (and NEON's `fmax`), instead of becoming `exp(LO)`.
#[inline(always)]
unsafe fn exp8(x: __m256) -> __m256 {
    let x = _mm256_min_ps(_mm256_set1_ps(HI), _mm256_max_ps(_mm256_set1_ps(LO), x));
    let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm256_mul_ps(
        x,
        _mm256_set1_ps(LOG2E),
    ));
    let r = _mm256_fmadd_ps(n, _mm256_set1_ps(-LN2_HI), x);
    let r = _mm256_fmadd_ps(n, _mm256_set1_ps(-LN2_LO), r);
    let mut p = _mm256_set1_ps(C[0]);
    for c in &C[1..] {
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(*c));
    }
    let one = _mm256_set1_ps(1.0);
    p = _mm256_fmadd_ps(p, r, one);
    p = _mm256_fmadd_ps(p, r, one);
    let e = _mm256_slli_epi32::<23>(_mm256_add_epi32(
        _mm256_cvtps_epi32(n),
        _mm256_set1_epi32(127),
    ));
    _mm256_mul_ps(p, _mm256_castsi256_ps(e))
}

/// # Safety
/// The CPU has AVX2, FMA and F16C; the slices have one length.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn exp_sub_rows(x: &mut [f32], m: &[f32], sum: &mut [f32]) {
    let n = x.len();
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: i + 8 <= n for all three slices.
        unsafe {
            let v = _mm256_sub_ps(
                _mm256_loadu_ps(x.as_ptr().add(i)),
                _mm256_loadu_ps(m.as_ptr().add(i)),
            );
            let e = exp8(v);
            _mm256_storeu_ps(x.as_mut_ptr().add(i), e);
            let s = _mm256_loadu_ps(sum.as_ptr().add(i));
            _mm256_storeu_ps(sum.as_mut_ptr().add(i), _mm256_add_ps(s, e));
        }
        i += 8;
    }
    if i < n {
        // The tail through one padded vector, so it takes the same lane operations.
        let (mut tx, mut tm, mut ts) = ([0f32; 8], [0f32; 8], [0f32; 8]);
        let k = n - i;
        tx[..k].copy_from_slice(&x[i..]);
        tm[..k].copy_from_slice(&m[i..]);
        ts[..k].copy_from_slice(&sum[i..]);
        // SAFETY: the three arrays hold eight f32 each.
        unsafe { exp_sub_rows(&mut tx, &tm, &mut ts) };
        x[i..].copy_from_slice(&tx[..k]);
        sum[i..].copy_from_slice(&ts[..k]);
    }
}

/// # Safety
/// The CPU has AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn exp_sub(x: &mut [f32], m: f32) {
    let n = x.len();
    let mv = _mm256_set1_ps(m);
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: i + 8 <= n.
        unsafe {
            let v = _mm256_sub_ps(_mm256_loadu_ps(x.as_ptr().add(i)), mv);
            _mm256_storeu_ps(x.as_mut_ptr().add(i), exp8(v));
        }
        i += 8;
    }
    if i < n {
        let mut t = [0f32; 8];
        let k = n - i;
        t[..k].copy_from_slice(&x[i..]);
        // SAFETY: `t` holds eight f32.
        unsafe { exp_sub(&mut t, m) };
        x[i..].copy_from_slice(&t[..k]);
    }
}
/// # Safety
/// The CPU has AVX2, FMA and F16C; the slices have one length.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn swiglu(gate: &mut [f32], up: &[f32]) {
    let n = gate.len();
    let one = _mm256_set1_ps(1.0);
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: i + 8 <= n for both slices.
        unsafe {
            let x = _mm256_loadu_ps(gate.as_ptr().add(i));
            let e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), x));
            let s = _mm256_div_ps(x, _mm256_add_ps(one, e));
            let u = _mm256_loadu_ps(up.as_ptr().add(i));
            _mm256_storeu_ps(gate.as_mut_ptr().add(i), _mm256_mul_ps(s, u));
        }
        i += 8;
    }
    if i < n {
        let (mut tg, mut tu) = ([0f32; 8], [0f32; 8]);
        let k = n - i;
        tg[..k].copy_from_slice(&gate[i..]);
        tu[..k].copy_from_slice(&up[i..]);
        // SAFETY: both arrays hold eight f32.
        unsafe { swiglu(&mut tg, &tu) };
        gate[i..].copy_from_slice(&tg[..k]);
    }
}
