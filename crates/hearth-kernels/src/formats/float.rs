//! F32, F16 and BF16 rows.
//!
//! Activations for these weights are stored in the weight's own format (an F16 weight row is
//! multiplied by an F16 activation row, as llama.cpp does), and products are accumulated in
//! f32. Conversions from f32 round to nearest, ties to even, like ggml.
//!
//! The dot products' reference keeps the SIMD kernels' accumulators: four groups of eight
//! lanes, fused multiply-adds where the kernels fuse, and their final folding, so every level
//! on every architecture gives the same bits, and the order is fixed by `n` alone, never by
//! where a row sits in a batch. `f32::mul_add` is correctly rounded everywhere (a hardware
//! instruction on aarch64 and where the target has FMA, `fmaf` from the C library otherwise).

use crate::types::Result;
use half::f16;
use hearth_gguf::GgmlType;

pub(crate) fn dequantize(ty: GgmlType, src: &[u8], dst: &mut [f32]) {
    match ty {
        GgmlType::F32 => {
            for (d, s) in dst.iter_mut().zip(src.chunks_exact(4)) {
                *d = f32::from_le_bytes([s[0], s[1], s[2], s[3]]);
            }
        }
        GgmlType::F16 => {
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

/// The portable dot product of two rows of one float type (`w` and `x` exactly `n` values
/// each), in the order every level follows (see [`dot_lanes`]; BF16 pairs its elements
/// differently, see [`dot_bf16`]).
#[inline]
pub(crate) fn vec_dot_scalar(ty: GgmlType, w: &[u8], x: &[u8]) -> f32 {
    let f32_at = |b: &[u8], i: usize| {
        f32::from_le_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]])
    };
    let u16_at = |b: &[u8], i: usize| u16::from_le_bytes([b[2 * i], b[2 * i + 1]]);
    match ty {
        GgmlType::F32 => dot_lanes(w.len() / 4, |i| (f32_at(w, i), f32_at(x, i))),
        GgmlType::F16 => dot_lanes(w.len() / 2, |i| {
            (f16_to_f32(u16_at(w, i)), f16_to_f32(u16_at(x, i)))
        }),
        GgmlType::BF16 => dot_bf16(w.len() / 2, |i| {
            (bf16_to_f32(u16_at(w, i)), bf16_to_f32(u16_at(x, i)))
        }),
        other => unreachable!("float::vec_dot called with {other}"),
    }
}

/// Partial sums per accumulator lane: the SIMD kernels hold them as four accumulators of eight
/// f32 lanes (FMA latency needs several independent chains), one AVX2 register or two NEON
/// registers each.
const LANES: usize = 8;
type Acc = [[f32; LANES]; 4];

/// The F32 and F16 order, given `pair(i)` = (w_i, x_i): each 32-element step adds element
/// `i + 8k + l` into lane `l` of accumulator `k` with a fused multiply-add; then 8-element
/// steps into accumulator 0; then [`fold`]; then the last `n mod 8` products, each rounded
/// before its addition, in element order.
#[inline(always)]
fn dot_lanes(n: usize, pair: impl Fn(usize) -> (f32, f32)) -> f32 {
    let mut acc: Acc = [[0.0; LANES]; 4];
    let mut i = 0;
    while i + 32 <= n {
        for (k, a) in acc.iter_mut().enumerate() {
            for (l, s) in a.iter_mut().enumerate() {
                let (w, x) = pair(i + LANES * k + l);
                *s = w.mul_add(x, *s);
            }
        }
        i += 32;
    }
    while i + LANES <= n {
        for (l, s) in acc[0].iter_mut().enumerate() {
            let (w, x) = pair(i + l);
            *s = w.mul_add(x, *s);
        }
        i += LANES;
    }
    let mut sum = fold(&acc);
    for t in i..n {
        let (w, x) = pair(t);
        sum += w * x;
    }
    sum
}

/// The BF16 order, which lets the SIMD kernels widen without shuffles: a 32-bit lane of a
/// 16-element load holds one even and one odd element, so in each 32-element step the pair at
/// `i + 16h + 2l` goes into lane `l` of accumulator `2h` and the one after it into accumulator
/// `2h + 1`. No 8-element steps: everything past the last whole 32 is the scalar tail.
#[inline(always)]
fn dot_bf16(n: usize, pair: impl Fn(usize) -> (f32, f32)) -> f32 {
    let mut acc: Acc = [[0.0; LANES]; 4];
    let mut i = 0;
    while i + 32 <= n {
        for (h, two) in acc.chunks_exact_mut(2).enumerate() {
            let (even, odd) = two.split_at_mut(1);
            for (l, (se, so)) in even[0].iter_mut().zip(&mut odd[0]).enumerate() {
                let e = i + 16 * h + 2 * l;
                let ((w0, x0), (w1, x1)) = (pair(e), pair(e + 1));
                *se = w0.mul_add(x0, *se);
                *so = w1.mul_add(x1, *so);
            }
        }
        i += 32;
    }
    let mut sum = fold(&acc);
    for t in i..n {
        let (w, x) = pair(t);
        sum += w * x;
    }
    sum
}

/// The accumulators to one sum: `(a0 + a1) + (a2 + a3)` lane by lane, then lane `l` plus lane
/// `l + 4`, then `(s0 + s2) + (s1 + s3)` (the AVX2 kernels' 256 → 128 → 64 → 32-bit halving).
#[inline(always)]
fn fold(acc: &Acc) -> f32 {
    let v: [f32; LANES] =
        std::array::from_fn(|l| (acc[0][l] + acc[1][l]) + (acc[2][l] + acc[3][l]));
    let s: [f32; 4] = std::array::from_fn(|l| v[l] + v[l + 4]);
    (s[0] + s[2]) + (s[1] + s[3])
}

// The portable definitions of the attention helpers (public, with their contracts, in
// `dispatch`): every level performs exactly these operations per element.

/// `out[r] = dot(k, q_r)` with the F32 [`vec_dot_scalar`] (`k` is exactly `n` values).
pub(crate) fn dot_f32_rows(n: usize, k: &[f32], q: &[f32], out: &mut [f32]) {
    let kb: &[u8] = bytemuck::cast_slice(k);
    for (o, qr) in out.iter_mut().zip(q.chunks_exact(n.max(1))) {
        *o = vec_dot_scalar(GgmlType::F32, kb, bytemuck::cast_slice(qr));
    }
}

/// `y += p[k · stride] · x_k` for each row `x_k` of `xs`, in row order.
pub(crate) fn axpy_keys(xs: &[f32], p: &[f32], stride: usize, y: &mut [f32]) {
    let n = y.len();
    for (k, x) in xs.chunks_exact(n).enumerate() {
        let pk = p[k * stride];
        for (a, &b) in y.iter_mut().zip(x) {
            *a += pk * b;
        }
    }
}

/// `y[r] += p[r] · x` for every row `r` of `y`.
pub(crate) fn axpy_rows(x: &[f32], p: &[f32], y: &mut [f32]) {
    let n = x.len();
    for (yr, &pr) in y.chunks_exact_mut(n.max(1)).zip(p) {
        for (a, &b) in yr.iter_mut().zip(x) {
            *a += pr * b;
        }
    }
}

/// Each value rounded to the nearest f16 and widened back.
pub(crate) fn round_to_f16(x: &mut [f32]) {
    for v in x {
        *v = f16::from_f32(*v).to_f32();
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
}
