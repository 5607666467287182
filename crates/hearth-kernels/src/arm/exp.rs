//! [`crate::exp_f32`] four lanes at a time with NEON (definition and constants in
//! `formats::exp`), and the softmax and SwiGLU loops built on it: every lane performs the
//! scalar definition's operations in its order, with `vfmaq_f32` where it uses `mul_add`.

use crate::formats::exp::{C, HI, LN2_HI, LN2_LO, LO, LOG2E};
use std::arch::aarch64::*;

/// [`crate::exp_f32`] on four lanes: the same operations in the same order. `vmaxq_f32` and
/// `vminq_f32` return NaN for a NaN lane, as `f32::clamp` does; `vrndnq_f32` rounds to
/// nearest, ties to even, as `round_ties_even`; `n` is integral and within ±127, so the
/// conversion to i32 is exact.
#[inline(always)]
fn exp4(x: float32x4_t) -> float32x4_t {
    // SAFETY: NEON is part of every aarch64 target; registers only.
    unsafe {
        let x = vminq_f32(vmaxq_f32(x, vdupq_n_f32(LO)), vdupq_n_f32(HI));
        let n = vrndnq_f32(vmulq_f32(x, vdupq_n_f32(LOG2E)));
        let r = vfmaq_f32(x, n, vdupq_n_f32(-LN2_HI));
        let r = vfmaq_f32(r, n, vdupq_n_f32(-LN2_LO));
        let mut p = vdupq_n_f32(C[0]);
        for c in &C[1..] {
            p = vfmaq_f32(vdupq_n_f32(*c), p, r);
        }
        let one = vdupq_n_f32(1.0);
        p = vfmaq_f32(one, p, r);
        p = vfmaq_f32(one, p, r);
        let e = vshlq_n_s32::<23>(vaddq_s32(vcvtq_s32_f32(n), vdupq_n_s32(127)));
        vmulq_f32(p, vreinterpretq_f32_s32(e))
    }
}

/// # Safety
/// The slices have one length (checked by the caller).
pub(crate) unsafe fn exp_sub_rows(x: &mut [f32], m: &[f32], sum: &mut [f32]) {
    let n = x.len();
    let mut i = 0;
    while i + 4 <= n {
        // SAFETY: i + 4 <= n for all three slices.
        unsafe {
            let e = exp4(vsubq_f32(
                vld1q_f32(x.as_ptr().add(i)),
                vld1q_f32(m.as_ptr().add(i)),
            ));
            vst1q_f32(x.as_mut_ptr().add(i), e);
            let s = vld1q_f32(sum.as_ptr().add(i));
            vst1q_f32(sum.as_mut_ptr().add(i), vaddq_f32(s, e));
        }
        i += 4;
    }
    if i < n {
        // The tail through one padded vector, so it takes the same lane operations.
        let (mut tx, mut tm, mut ts) = ([0f32; 4], [0f32; 4], [0f32; 4]);
        let k = n - i;
        tx[..k].copy_from_slice(&x[i..]);
        tm[..k].copy_from_slice(&m[i..]);
        ts[..k].copy_from_slice(&sum[i..]);
        // SAFETY: the three arrays hold four f32 each.
        unsafe { exp_sub_rows(&mut tx, &tm, &mut ts) };
        x[i..].copy_from_slice(&tx[..k]);
        sum[i..].copy_from_slice(&ts[..k]);
    }
}

pub(crate) fn exp_sub(x: &mut [f32], m: f32) {
    let n = x.len();
    // SAFETY: NEON is part of every aarch64 target.
    let mv = unsafe { vdupq_n_f32(m) };
    let mut i = 0;
    while i + 4 <= n {
        // SAFETY: i + 4 <= n.
        unsafe {
            let v = vsubq_f32(vld1q_f32(x.as_ptr().add(i)), mv);
            vst1q_f32(x.as_mut_ptr().add(i), exp4(v));
        }
        i += 4;
    }
    if i < n {
        let mut t = [0f32; 4];
        let k = n - i;
        t[..k].copy_from_slice(&x[i..]);
        exp_sub(&mut t, m);
        x[i..].copy_from_slice(&t[..k]);
    }
}

/// # Safety
/// The slices have one length (checked by the caller).
pub(crate) unsafe fn swiglu(gate: &mut [f32], up: &[f32]) {
    let n = gate.len();
    let mut i = 0;
    while i + 4 <= n {
        // SAFETY: i + 4 <= n for both slices.
        unsafe {
            let x = vld1q_f32(gate.as_ptr().add(i));
            let e = exp4(vnegq_f32(x));
            let s = vdivq_f32(x, vaddq_f32(vdupq_n_f32(1.0), e));
            let u = vld1q_f32(up.as_ptr().add(i));
            vst1q_f32(gate.as_mut_ptr().add(i), vmulq_f32(s, u));
        }
        i += 4;
    }
    if i < n {
        let (mut tg, mut tu) = ([0f32; 4], [0f32; 4]);
        let k = n - i;
        tg[..k].copy_from_slice(&gate[i..]);
        tu[..k].copy_from_slice(&up[i..]);
        // SAFETY: both arrays hold four f32.
        unsafe { swiglu(&mut tg, &tu) };
        gate[i..].copy_from_slice(&tg[..k]);
    }
}
