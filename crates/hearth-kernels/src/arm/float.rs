//! The float formats' kernels (F32, F16, BF16 dots, F16 widening; definitions in
//! `formats::float`) and the attention helpers, with NEON. The reference's accumulators are
//! four groups of eight lanes; here each group is two `float32x4_t` (lanes 0–3 and 4–7), with
//! `vfmaq_f32` where the reference fuses and a separate multiply and add where it does not.
//! They have no integer dot, so every ARM level runs them.
//!
//! The f16 conversions (`fcvtl`, `fcvtn`) come from `arm::ext`: their intrinsics take
//! `float16x4_t`, unstable on the stable toolchain.

use super::ext::{round_f16, widen_f16, widen_f16_high as widen_hi};
use crate::formats::float::{bf16_to_f32, f16_to_f32};
use std::arch::aarch64::*;

/// Eight f32 lanes: lanes 0–3, then 4–7.
type V8 = [float32x4_t; 2];

/// The four f16 in the low half of `h` widened to f32 (exact).
#[inline(always)]
fn widen_lo(h: uint16x8_t) -> float32x4_t {
    // SAFETY: NEON is part of every aarch64 target.
    widen_f16(unsafe { vget_low_u16(h) })
}

#[inline(always)]
fn fma8(acc: V8, w: V8, x: V8) -> V8 {
    // SAFETY: NEON is part of every aarch64 target.
    unsafe { [vfmaq_f32(acc[0], w[0], x[0]), vfmaq_f32(acc[1], w[1], x[1])] }
}

/// `formats::float::fold`: `(a0 + a1) + (a2 + a3)` lane by lane, lane `l` plus lane `l + 4`,
/// then `(s0 + s2) + (s1 + s3)`.
#[inline(always)]
fn fold(acc: &[V8; 4]) -> f32 {
    // SAFETY: NEON is part of every aarch64 target; registers only.
    unsafe {
        let half = |h: usize| {
            vaddq_f32(
                vaddq_f32(acc[0][h], acc[1][h]),
                vaddq_f32(acc[2][h], acc[3][h]),
            )
        };
        let s = vaddq_f32(half(0), half(1));
        vpadds_f32(vadd_f32(vget_low_f32(s), vget_high_f32(s)))
    }
}

/// The F32 / F16 order of `formats::float::dot_lanes`: `load(p, i)` widens the eight elements
/// at element `i` of `p`, `scalar(b, i)` element `i` of `b`.
///
/// # Safety
/// `w` and `x` hold `n` elements each of the type `load` reads.
#[inline(always)]
unsafe fn dot_body(
    n: usize,
    w: &[u8],
    x: &[u8],
    load: impl Fn(*const u8, usize) -> V8,
    scalar: impl Fn(&[u8], usize) -> f32,
) -> f32 {
    let (wp, xp) = (w.as_ptr(), x.as_ptr());
    // SAFETY: NEON is part of every aarch64 target.
    let zero = unsafe { vdupq_n_f32(0.0) };
    let mut acc = [[zero; 2]; 4];
    let mut i = 0;
    while i + 32 <= n {
        for (k, a) in acc.iter_mut().enumerate() {
            *a = fma8(*a, load(wp, i + 8 * k), load(xp, i + 8 * k));
        }
        i += 32;
    }
    while i + 8 <= n {
        acc[0] = fma8(acc[0], load(wp, i), load(xp, i));
        i += 8;
    }
    let mut sum = fold(&acc);
    while i < n {
        sum += scalar(w, i) * scalar(x, i);
        i += 1;
    }
    sum
}

/// Widens f16 to f32 eight at a time (the KV cache's value rows).
///
/// # Safety
/// `src` holds `dst.len()` f16 values.
pub(crate) unsafe fn dequant_f16(src: &[u8], dst: &mut [f32]) {
    let n = dst.len();
    debug_assert_eq!(src.len(), 2 * n);
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: i + 8 <= n, so 16 bytes at 2i are inside `src` and 8 floats at i inside
        // `dst`; the load is of bytes, so it needs no alignment.
        unsafe {
            let h = vreinterpretq_u16_u8(vld1q_u8(src.as_ptr().add(2 * i)));
            let d = dst.as_mut_ptr().add(i);
            vst1q_f32(d, widen_lo(h));
            vst1q_f32(d.add(4), widen_hi(h));
        }
        i += 8;
    }
    while i < n {
        dst[i] = f16_to_f32(u16::from_le_bytes([src[2 * i], src[2 * i + 1]]));
        i += 1;
    }
}

/// # Safety
/// `w` and `x` hold `n` f32 each.
pub(crate) unsafe fn dot_f32(n: usize, w: &[u8], x: &[u8]) -> f32 {
    // SAFETY (the loads): `dot_body` asks only for eight elements ending at or before element
    // `n`, and both slices hold `n`; they load bytes, so the rows need no alignment.
    unsafe {
        dot_body(
            n,
            w,
            x,
            |p, i| {
                let p = p.add(4 * i);
                [
                    vreinterpretq_f32_u8(vld1q_u8(p)),
                    vreinterpretq_f32_u8(vld1q_u8(p.add(16))),
                ]
            },
            |b, i| f32::from_le_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]]),
        )
    }
}

/// # Safety
/// `w` and `x` hold `n` f16 each.
pub(crate) unsafe fn dot_f16(n: usize, w: &[u8], x: &[u8]) -> f32 {
    // SAFETY: as in `dot_f32`, for 16 bytes of f16 bits per load.
    unsafe {
        dot_body(
            n,
            w,
            x,
            |p, i| {
                let h = vreinterpretq_u16_u8(vld1q_u8(p.add(2 * i)));
                [widen_lo(h), widen_hi(h)]
            },
            |b, i| f16_to_f32(u16::from_le_bytes([b[2 * i], b[2 * i + 1]])),
        )
    }
}

/// BF16 in `formats::float::dot_bf16`'s order: a 32-bit lane of a load holds an even and an
/// odd element; shifting left by 16 gives the even one as f32, masking the low half the odd one.
///
/// # Safety
/// `w` and `x` hold `n` bf16 each.
pub(crate) unsafe fn dot_bf16(n: usize, w: &[u8], x: &[u8]) -> f32 {
    let (wp, xp) = (w.as_ptr(), x.as_ptr());
    // SAFETY: NEON is part of every aarch64 target.
    let (zero, mask) = unsafe { (vdupq_n_f32(0.0), vdupq_n_u32(0xffff_0000)) };
    let mut acc = [[zero; 2]; 4];
    // SAFETY (both closures): registers only.
    let even = |v: [uint32x4_t; 2]| unsafe {
        [
            vreinterpretq_f32_u32(vshlq_n_u32::<16>(v[0])),
            vreinterpretq_f32_u32(vshlq_n_u32::<16>(v[1])),
        ]
    };
    let odd = |v: [uint32x4_t; 2]| unsafe {
        [
            vreinterpretq_f32_u32(vandq_u32(v[0], mask)),
            vreinterpretq_f32_u32(vandq_u32(v[1], mask)),
        ]
    };
    let mut i = 0;
    while i + 32 <= n {
        for h in 0..2 {
            // SAFETY: elements `i + 16h .. i + 16h + 16` are inside both rows (i + 32 <= n);
            // byte loads need no alignment.
            let (a, b) = unsafe {
                let ld = |p: *const u8| vreinterpretq_u32_u8(vld1q_u8(p));
                let (wa, xa) = (wp.add(2 * (i + 16 * h)), xp.add(2 * (i + 16 * h)));
                ([ld(wa), ld(wa.add(16))], [ld(xa), ld(xa.add(16))])
            };
            acc[2 * h] = fma8(acc[2 * h], even(a), even(b));
            acc[2 * h + 1] = fma8(acc[2 * h + 1], odd(a), odd(b));
        }
        i += 32;
    }
    let mut sum = fold(&acc);
    while i < n {
        let ld = |b: &[u8]| bf16_to_f32(u16::from_le_bytes([b[2 * i], b[2 * i + 1]]));
        sum += ld(w) * ld(x);
        i += 1;
    }
    sum
}

/// [`crate::dot_f32_rows`]: queries three at a time, each with `dot_body`'s accumulators and
/// order, the key loaded once for all three.
///
/// # Safety
/// `k` holds `n` values and `q` holds `out.len()` rows of `n`.
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
#[inline(always)]
unsafe fn rows<const R: usize>(n: usize, k: &[f32], q: &[f32], out: &mut [f32]) {
    let (kp, qp) = (k.as_ptr(), q.as_ptr());
    // SAFETY (every load in this function): element `t` is read only for t < n, from the key
    // and from rows `r < R` of `q`, which start at `r * n`.
    let ld = |p: *const f32, t: usize| unsafe { [vld1q_f32(p.add(t)), vld1q_f32(p.add(t + 4))] };
    // SAFETY: NEON is part of every aarch64 target.
    let zero = unsafe { vdupq_n_f32(0.0) };
    let mut acc = [[[zero; 2]; 4]; R];
    let mut i = 0;
    while i + 32 <= n {
        for j in 0..4 {
            let kv = ld(kp, i + 8 * j);
            for (r, a) in acc.iter_mut().enumerate() {
                // SAFETY: `qp + r * n` is row `r`, inside `q`.
                let qv = ld(unsafe { qp.add(r * n) }, i + 8 * j);
                a[j] = fma8(a[j], kv, qv);
            }
        }
        i += 32;
    }
    while i + 8 <= n {
        let kv = ld(kp, i);
        for (r, a) in acc.iter_mut().enumerate() {
            // SAFETY: as above.
            let qv = ld(unsafe { qp.add(r * n) }, i);
            a[0] = fma8(a[0], kv, qv);
        }
        i += 8;
    }
    for (r, a) in acc.iter().enumerate() {
        let mut sum = fold(a);
        for t in i..n {
            sum += k[t] * q[r * n + t];
        }
        out[r] = sum;
    }
}

/// [`crate::axpy_keys`]: 64 columns of `y` (sixteen registers) at a time walk every key, each
/// element getting `y + p·x` as a multiplication then an addition.
///
/// # Safety
/// `xs` holds whole rows of `y.len()` and `p` a value every `stride` for each of them.
pub(crate) unsafe fn axpy_keys(xs: &[f32], p: &[f32], stride: usize, y: &mut [f32]) {
    let n = y.len();
    let rows = xs.len() / n;
    let mut c = 0;
    while c + 64 <= n {
        // SAFETY: columns c..c + 64 are inside `y` and every row of `xs`; `p` holds the rows'
        // probabilities (caller's contract).
        unsafe {
            let yp = y.as_mut_ptr().add(c);
            let mut acc = [vdupq_n_f32(0.0); 16];
            for (i, a) in acc.iter_mut().enumerate() {
                *a = vld1q_f32(yp.add(4 * i));
            }
            for k in 0..rows {
                let pv = vdupq_n_f32(*p.get_unchecked(k * stride));
                let xp = xs.as_ptr().add(k * n + c);
                for (i, a) in acc.iter_mut().enumerate() {
                    *a = vaddq_f32(*a, vmulq_f32(pv, vld1q_f32(xp.add(4 * i))));
                }
            }
            for (i, a) in acc.iter().enumerate() {
                vst1q_f32(yp.add(4 * i), *a);
            }
        }
        c += 64;
    }
    while c + 4 <= n {
        // SAFETY: as above, for columns c..c + 4.
        unsafe {
            let yp = y.as_mut_ptr().add(c);
            let mut a = vld1q_f32(yp);
            for k in 0..rows {
                let pv = vdupq_n_f32(*p.get_unchecked(k * stride));
                a = vaddq_f32(a, vmulq_f32(pv, vld1q_f32(xs.as_ptr().add(k * n + c))));
            }
            vst1q_f32(yp, a);
        }
        c += 4;
    }
    for col in c..n {
        for k in 0..rows {
            y[col] += p[k * stride] * xs[k * n + col];
        }
    }
}

/// [`crate::axpy_rows`]: sixteen then four lanes at a time, `y + p·x` as a multiplication then
/// an addition, exactly the scalar operations.
///
/// # Safety
/// `y` holds `p.len()` rows of `x.len()`.
pub(crate) unsafe fn axpy_rows(x: &[f32], p: &[f32], y: &mut [f32]) {
    let n = x.len();
    for (r, &pr) in p.iter().enumerate() {
        let yr = &mut y[r * n..(r + 1) * n];
        // SAFETY: NEON is part of every aarch64 target.
        let pv = unsafe { vdupq_n_f32(pr) };
        let mut i = 0;
        while i + 16 <= n {
            // SAFETY: i + 16 <= n for both `x` and the row `yr`.
            unsafe {
                for j in 0..4 {
                    let t = i + 4 * j;
                    let xv = vld1q_f32(x.as_ptr().add(t));
                    let yv = vld1q_f32(yr.as_ptr().add(t));
                    vst1q_f32(yr.as_mut_ptr().add(t), vaddq_f32(yv, vmulq_f32(pv, xv)));
                }
            }
            i += 16;
        }
        while i + 4 <= n {
            // SAFETY: i + 4 <= n for both.
            unsafe {
                let xv = vld1q_f32(x.as_ptr().add(i));
                let yv = vld1q_f32(yr.as_ptr().add(i));
                vst1q_f32(yr.as_mut_ptr().add(i), vaddq_f32(yv, vmulq_f32(pv, xv)));
            }
            i += 4;
        }
        for t in i..n {
            yr[t] += pr * x[t];
        }
    }
}

/// [`crate::round_to_f16`]: `fcvtn` (round to nearest even) then `fcvtl`, four at a time, the
/// tail through one padded vector so it takes the same instructions.
pub(crate) fn round_to_f16(x: &mut [f32]) {
    let mut chunks = x.chunks_exact_mut(4);
    for c in &mut chunks {
        // SAFETY: `c` holds four f32.
        unsafe { vst1q_f32(c.as_mut_ptr(), round_f16(vld1q_f32(c.as_ptr()))) };
    }
    let rest = chunks.into_remainder();
    if !rest.is_empty() {
        let mut t = [0f32; 4];
        t[..rest.len()].copy_from_slice(rest);
        // SAFETY: `t` holds four f32.
        unsafe { vst1q_f32(t.as_mut_ptr(), round_f16(vld1q_f32(t.as_ptr()))) };
        let k = rest.len();
        rest.copy_from_slice(&t[..k]);
    }
}
