//! F32, F16 and BF16 rows.
//!
//! Activations for these weights are stored in the weight's own format (an F16 weight row is
//! multiplied by an F16 activation row, as llama.cpp does), and products are accumulated in
//! f32. Conversions from f32 round to nearest, ties to even, like ggml.
//!
//! Both the scalar and the AVX2 kernels keep eight independent partial sums per lane group so
//! the reduction order is fixed by `n` alone, never by where a row sits in a batch.

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
/// each): eight partial sums folded pairwise, every level's order.
#[inline]
pub(crate) fn vec_dot_scalar(ty: GgmlType, w: &[u8], x: &[u8]) -> f32 {
    match ty {
        GgmlType::F32 => dot_scalar(w, x, 4, |b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        GgmlType::F16 => dot_scalar(w, x, 2, |b| f16_to_f32(u16::from_le_bytes([b[0], b[1]]))),
        GgmlType::BF16 => dot_scalar(w, x, 2, |b| bf16_to_f32(u16::from_le_bytes([b[0], b[1]]))),
        other => unreachable!("float::vec_dot called with {other}"),
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
