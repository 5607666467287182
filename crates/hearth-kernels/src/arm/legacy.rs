//! The 32-element formats' single-token kernels (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0; layouts and
//! scalar reference in `formats::legacy`) and the Q8_0 / Q8_1 activation encoder, on NEON.
//!
//! A block's 32 weight codes become two signed-byte vectors (elements 0–15 and 16–31; the
//! codes fit in i8 once Q4_0 / Q5_0 subtract their offset), and the 32 activation quants two
//! more. The reference's eight exact lane sums (lane `k` the four products of elements
//! `4k..4k + 4`) are then two `int32x4_t`, formed by `sdot` where the CPU has the dot-product
//! extension ([`Sdot`]) or by widening multiplies and pairwise adds ([`Mull`]); both are exact,
//! so both levels give the same lanes. Everything after them is one f32 code path that does
//! what `formats::legacy::dot_scalar` does, in its order: each lane converted, one fused
//! multiply-add with `d_w · d_x` into accumulator `i % 4` (two `float32x4_t` halves of the
//! reference's eight lanes), the halves reduced as the reference reduces them.

use crate::simd::Level;
use std::arch::aarch64::*;

/// Four f16 values (bits) widened to f32 with `fcvtl`, which every aarch64 CPU has: exact, like
/// the reference's software conversion, and one instruction for four scales.
#[inline]
#[target_feature(enable = "neon")]
pub(super) fn f16x4(h: [u16; 4]) -> float32x4_t {
    let bits =
        u64::from(h[0]) | u64::from(h[1]) << 16 | u64::from(h[2]) << 32 | u64::from(h[3]) << 48;
    super::ext::widen_f16(vcreate_u16(bits))
}

/// The little-endian u16 at `p`.
///
/// # Safety
/// `p` points at two readable bytes.
#[inline(always)]
pub(super) unsafe fn u16_at(p: *const u8) -> u16 {
    // SAFETY: the caller's contract.
    u16::from_le(unsafe { (p as *const u16).read_unaligned() })
}

/// The f16 at `p` as f32.
///
/// # Safety
/// As [`u16_at`].
#[inline(always)]
pub(super) unsafe fn f16_at(p: *const u8) -> f32 {
    // SAFETY: forwarded from the caller.
    super::ext::f16_to_f32(unsafe { u16_at(p) })
}

/// The integer dot at the heart of every kernel here: lane `k` of the result is the exact sum
/// of the four products `a[4k + j] · b[4k + j]`, `j < 4`, of signed bytes. The kernels are
/// generic over it, one instance per level.
pub(super) trait IntDot {
    /// The level whose single-token kernel uses this dot.
    const LEVEL: Level;
    /// The four lane sums.
    ///
    /// # Safety
    /// The CPU has the features of [`IntDot::LEVEL`].
    unsafe fn dot4(a: int8x16_t, b: int8x16_t) -> int32x4_t;
}

/// Plain NEON: `smull` / `smull2` into sixteen i16 products (each at most 128² in magnitude,
/// so exact), `saddlp` pairs them into i32, `addp` pairs those: the four lane sums.
pub(super) struct Mull;

impl IntDot for Mull {
    const LEVEL: Level = Level::Neon;

    #[inline(always)]
    unsafe fn dot4(a: int8x16_t, b: int8x16_t) -> int32x4_t {
        let lo = vmull_s8(vget_low_s8(a), vget_low_s8(b));
        let hi = vmull_high_s8(a, b);
        vpaddq_s32(vpaddlq_s16(lo), vpaddlq_s16(hi))
    }
}

/// The dot-product extension: one `sdot` forms the four lane sums.
pub(super) struct Sdot;

impl IntDot for Sdot {
    const LEVEL: Level = Level::NeonDot;

    #[inline(always)]
    unsafe fn dot4(a: int8x16_t, b: int8x16_t) -> int32x4_t {
        // SAFETY: the caller guarantees the dot-product extension.
        unsafe { super::ext::sdot(vdupq_n_s32(0), a, b) }
    }
}

/// The 16 packed bytes at `p` as codes 0..=15: low nibbles (elements 0–15), high nibbles
/// (elements 16–31), as the block layout orders them.
///
/// # Safety
/// `p` points at 16 readable bytes.
#[inline(always)]
pub(super) unsafe fn nibbles(p: *const u8) -> [uint8x16_t; 2] {
    // SAFETY: the caller's contract.
    let v = unsafe { vld1q_u8(p) };
    [vandq_u8(v, vdupq_n_u8(0x0f)), vshrq_n_u8::<4>(v)]
}

/// The fifth bits of a Q5 block (`qh`, bit `j` for element `j`) as 0x10 in the bytes of the
/// elements that have them, 0 elsewhere.
#[inline]
#[target_feature(enable = "neon")]
pub(super) fn fifth_bits(qh: u32) -> [uint8x16_t; 2] {
    const IDX: [[u8; 16]; 2] = [
        [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1],
        [2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3],
    ];
    const BIT: [u8; 16] = [1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128];
    let q = vreinterpretq_u8_u32(vdupq_n_u32(qh));
    // SAFETY: the constant arrays hold 16 bytes each.
    let (bit, i0, i1) = unsafe {
        (
            vld1q_u8(BIT.as_ptr()),
            vld1q_u8(IDX[0].as_ptr()),
            vld1q_u8(IDX[1].as_ptr()),
        )
    };
    // Byte `e` gets byte `e / 8` of `qh`; testing bit `e % 8` gives all ones where it is set.
    let hi = |idx| vandq_u8(vtstq_u8(vqtbl1q_u8(q, idx), bit), vdupq_n_u8(0x10));
    [hi(i0), hi(i1)]
}

/// Signed weight codes of one block of each format, elements 0–15 and 16–31.
pub(super) mod unpack {
    use super::*;

    /// Q4_0: nibbles at byte 2, less 8.
    ///
    /// # Safety
    /// `b` points at a whole Q4_0 block (and likewise for the others below).
    #[inline(always)]
    pub(in crate::arm) unsafe fn q4_0(b: *const u8) -> [int8x16_t; 2] {
        // SAFETY: the nibbles lie inside the block.
        let [lo, hi] = unsafe { nibbles(b.add(2)) };
        let off = vdupq_n_s8(8);
        [
            vsubq_s8(vreinterpretq_s8_u8(lo), off),
            vsubq_s8(vreinterpretq_s8_u8(hi), off),
        ]
    }

    /// Q5_0: `qh` at byte 2, nibbles at byte 6, less 16.
    ///
    /// # Safety
    /// As [`q4_0`].
    #[inline(always)]
    pub(in crate::arm) unsafe fn q5_0(b: *const u8) -> [int8x16_t; 2] {
        // SAFETY: `qh` and the nibbles lie inside the block.
        let ([lo, hi], [h0, h1]) = unsafe {
            let qh = u32::from_le((b.add(2) as *const u32).read_unaligned());
            (nibbles(b.add(6)), fifth_bits(qh))
        };
        let off = vdupq_n_s8(16);
        [
            vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(lo, h0)), off),
            vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(hi, h1)), off),
        ]
    }

    /// Q8_0: 32 signed quants at byte 2.
    ///
    /// # Safety
    /// As [`q4_0`].
    #[inline(always)]
    pub(in crate::arm) unsafe fn q8_0(b: *const u8) -> [int8x16_t; 2] {
        // SAFETY: the quants lie inside the block.
        unsafe {
            [
                vld1q_s8(b.add(2) as *const i8),
                vld1q_s8(b.add(18) as *const i8),
            ]
        }
    }

    /// Q4_1: nibbles at byte 4 (codes 0..=15, no offset: the minimum is a separate term).
    ///
    /// # Safety
    /// As [`q4_0`].
    #[inline(always)]
    pub(in crate::arm) unsafe fn q4_1(b: *const u8) -> [int8x16_t; 2] {
        // SAFETY: the nibbles lie inside the block.
        let [lo, hi] = unsafe { nibbles(b.add(4)) };
        [vreinterpretq_s8_u8(lo), vreinterpretq_s8_u8(hi)]
    }

    /// Q5_1: `qh` at byte 4, nibbles at byte 8 (codes 0..=31).
    ///
    /// # Safety
    /// As [`q4_0`].
    #[inline(always)]
    pub(in crate::arm) unsafe fn q5_1(b: *const u8) -> [int8x16_t; 2] {
        // SAFETY: `qh` and the nibbles lie inside the block.
        let ([lo, hi], [h0, h1]) = unsafe {
            let qh = u32::from_le((b.add(4) as *const u32).read_unaligned());
            (nibbles(b.add(8)), fifth_bits(qh))
        };
        [
            vreinterpretq_s8_u8(vorrq_u8(lo, h0)),
            vreinterpretq_s8_u8(vorrq_u8(hi, h1)),
        ]
    }
}

/// The eight lane sums of one block, as f32 (exact: each is below 2^24 in magnitude).
///
/// # Safety
/// As [`IntDot::dot4`].
#[inline(always)]
pub(super) unsafe fn lanes<D: IntDot>(w: [int8x16_t; 2], y: [int8x16_t; 2]) -> [float32x4_t; 2] {
    // SAFETY: forwarded from the caller.
    unsafe {
        [
            vcvtq_f32_s32(D::dot4(w[0], y[0])),
            vcvtq_f32_s32(D::dot4(w[1], y[1])),
        ]
    }
}

/// The 32 activation quants at `p`.
///
/// # Safety
/// `p` points at 32 readable bytes.
#[inline(always)]
pub(super) unsafe fn quants(p: *const u8) -> [int8x16_t; 2] {
    // SAFETY: the caller's contract.
    unsafe { [vld1q_s8(p as *const i8), vld1q_s8(p.add(16) as *const i8)] }
}

/// The reference's final step for one (row, token): `v = (a0 + a1) + (a2 + a3)` lane by lane,
/// given as its two halves `lo` (lanes 0–3) and `hi` (lanes 4–7), summed
/// `((v0 + v4) + (v2 + v6)) + ((v1 + v5) + (v3 + v7))`.
#[inline]
#[target_feature(enable = "neon")]
pub(super) fn hsum(lo: float32x4_t, hi: float32x4_t) -> f32 {
    let s = vaddq_f32(lo, hi);
    vaddv_f32(vadd_f32(vget_low_f32(s), vget_high_f32(s)))
}

/// `Σ_blocks` of one row of weights (`wbs`-byte blocks, signed codes from `unpack`) against
/// one activation row (Q8_0, or Q8_1 with `OFFSET`, for Q4_1 / Q5_1: their `m_w · s_x` terms
/// go into four scalar sums as in the reference).
///
/// # Safety
/// The CPU has the features of `D::LEVEL`; `w` holds `nb` blocks of `wbs` bytes that `unpack`
/// reads inside, `x` `nb` activation blocks.
#[inline(always)]
unsafe fn dot_row<D: IntDot, const OFFSET: bool>(
    nb: usize,
    w: &[u8],
    wbs: usize,
    x: &[u8],
    unpack: impl Fn(*const u8) -> [int8x16_t; 2],
) -> f32 {
    let xbs = if OFFSET { 36 } else { 34 };
    let (wp, xp) = (w.as_ptr(), x.as_ptr());
    let zero = vdupq_n_f32(0.0);
    let mut acc = [[zero; 2]; 4];
    let mut summs = [0.0f32; 4];
    // Block `i` into accumulator `k = i % 4` with scale `d` (and `ms = m_w · s_x`).
    let block = |acc: &mut [float32x4_t; 2], i: usize, d: f32| {
        // SAFETY: block `i < nb` lies inside `w` and `x` (caller's contract); the activation
        // quants follow the scale(s) at byte `xbs - 32`.
        let l = unsafe {
            let (wb, xb) = (wp.add(i * wbs), xp.add(i * xbs));
            lanes::<D>(unpack(wb), quants(xb.add(xbs - 32)))
        };
        acc[0] = vfmaq_n_f32(acc[0], l[0], d);
        acc[1] = vfmaq_n_f32(acc[1], l[1], d);
    };
    // SAFETY (closure): block `i < nb` lies inside both rows; each starts with its f16 scale,
    // the second f16 (m / s) at byte 2.
    let h = |p: *const u8, i: usize, bs: usize, off: usize| unsafe { u16_at(p.add(i * bs + off)) };
    let mut i = 0;
    // Four blocks at a time, their scales converted together: the products `d_w · d_x` are the
    // same f32 multiplications as one at a time.
    while i + 4 <= nb {
        let s4 = |p, bs, off| f16x4(std::array::from_fn(|k| h(p, i + k, bs, off)));
        let mut ds = [0f32; 4];
        // SAFETY: `ds` holds four f32.
        unsafe { vst1q_f32(ds.as_mut_ptr(), vmulq_f32(s4(wp, wbs, 0), s4(xp, xbs, 0))) };
        for (k, a) in acc.iter_mut().enumerate() {
            block(a, i + k, ds[k]);
        }
        if OFFSET {
            let mut ms = [0f32; 4];
            // SAFETY: `ms` holds four f32.
            unsafe { vst1q_f32(ms.as_mut_ptr(), vmulq_f32(s4(wp, wbs, 2), s4(xp, xbs, 2))) };
            for (s, m) in summs.iter_mut().zip(ms) {
                *s += m;
            }
        }
        i += 4;
    }
    for (k, j) in (i..nb).enumerate() {
        // SAFETY: block `j < nb` lies inside both rows.
        let f = |p: *const u8, bs, off| unsafe { f16_at(p.add(j * bs + off)) };
        block(&mut acc[k], j, f(wp, wbs, 0) * f(xp, xbs, 0));
        if OFFSET {
            summs[k] += f(wp, wbs, 2) * f(xp, xbs, 2);
        }
    }
    let v = |h: usize| {
        vaddq_f32(
            vaddq_f32(acc[0][h], acc[1][h]),
            vaddq_f32(acc[2][h], acc[3][h]),
        )
    };
    let sum = hsum(v(0), v(1));
    if OFFSET {
        sum + ((summs[0] + summs[1]) + (summs[2] + summs[3]))
    } else {
        sum
    }
}

/// The dot product of `nb` blocks of weight type `ty` with its activations, on the level of
/// `D`.
///
/// # Safety
/// The CPU has the features of `D::LEVEL`; `w` and `x` hold `nb` blocks of `ty` and of its
/// activation type (Q8_0, or Q8_1 for Q4_1 / Q5_1).
#[inline(always)]
unsafe fn vec_dot<D: IntDot>(ty: hearth_gguf::GgmlType, nb: usize, w: &[u8], x: &[u8]) -> f32 {
    use hearth_gguf::GgmlType::*;
    // SAFETY: forwarded from the caller; each unpacker is given whole blocks of its type.
    unsafe {
        match ty {
            Q4_0 => dot_row::<D, false>(nb, w, 18, x, |b| unpack::q4_0(b)),
            Q5_0 => dot_row::<D, false>(nb, w, 22, x, |b| unpack::q5_0(b)),
            Q8_0 => dot_row::<D, false>(nb, w, 34, x, |b| unpack::q8_0(b)),
            Q4_1 => dot_row::<D, true>(nb, w, 20, x, |b| unpack::q4_1(b)),
            Q5_1 => dot_row::<D, true>(nb, w, 24, x, |b| unpack::q5_1(b)),
            other => unreachable!("legacy::vec_dot called with {other}"),
        }
    }
}

/// [`vec_dot`] on plain NEON.
///
/// # Safety
/// `w` and `x` hold `nb` blocks of `ty` and of its activation type (NEON itself is on every
/// aarch64 CPU).
#[target_feature(enable = "neon")]
pub(crate) unsafe fn vec_dot_neon(ty: hearth_gguf::GgmlType, nb: usize, w: &[u8], x: &[u8]) -> f32 {
    // SAFETY: forwarded from the caller.
    unsafe { vec_dot::<Mull>(ty, nb, w, x) }
}

/// [`vec_dot`] with the dot-product extension; the same bits as [`vec_dot_neon`].
///
/// # Safety
/// As [`vec_dot_neon`], and the CPU has the dot-product extension.
#[target_feature(enable = "neon")]
pub(crate) unsafe fn vec_dot_sdot(ty: hearth_gguf::GgmlType, nb: usize, w: &[u8], x: &[u8]) -> f32 {
    // SAFETY: forwarded from the caller.
    unsafe { vec_dot::<Sdot>(ty, nb, w, x) }
}

/// [`crate::formats::legacy::quantize_q8_row`] on NEON, giving the same bytes: the maximum of
/// |x| does not depend on evaluation order, `d` and `1/d` are the same scalar operations,
/// `fcvtns` rounds `x · id` to the nearest integer with ties to even as `round_ties_even` does,
/// and the codes are within ±127 so narrowing is exact. (Only non-finite inputs, which no sane
/// activation holds, could encode differently.)
///
/// # Safety
/// `src` holds whole blocks of 32 and `dst` exactly their encoding.
#[target_feature(enable = "neon")]
pub(crate) unsafe fn quantize_q8_row(src: &[f32], dst: &mut [u8], with_sum: bool) {
    let bs = if with_sum { 36 } else { 34 };
    let qoff = bs - 32;
    for (x, b) in src.chunks_exact(32).zip(dst.chunks_exact_mut(bs)) {
        // SAFETY: `x` holds 32 f32.
        let v: [float32x4_t; 8] =
            std::array::from_fn(|k| unsafe { vld1q_f32(x.as_ptr().add(4 * k)) });
        let m01 = vmaxq_f32(
            vmaxq_f32(vabsq_f32(v[0]), vabsq_f32(v[1])),
            vmaxq_f32(vabsq_f32(v[2]), vabsq_f32(v[3])),
        );
        let m23 = vmaxq_f32(
            vmaxq_f32(vabsq_f32(v[4]), vabsq_f32(v[5])),
            vmaxq_f32(vabsq_f32(v[6]), vabsq_f32(v[7])),
        );
        let amax = vmaxvq_f32(vmaxq_f32(m01, m23));
        let d = amax / 127.0;
        let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
        let q: [int32x4_t; 8] = std::array::from_fn(|k| vcvtnq_s32_f32(vmulq_n_f32(v[k], id)));
        let h: [int16x8_t; 4] =
            std::array::from_fn(|k| vcombine_s16(vmovn_s32(q[2 * k]), vmovn_s32(q[2 * k + 1])));
        let bytes = [
            vcombine_s8(vmovn_s16(h[0]), vmovn_s16(h[1])),
            vcombine_s8(vmovn_s16(h[2]), vmovn_s16(h[3])),
        ];
        // SAFETY: `b` holds a whole block; its 32 quants start at `qoff`.
        unsafe {
            vst1q_s8(b.as_mut_ptr().add(qoff) as *mut i8, bytes[0]);
            vst1q_s8(b.as_mut_ptr().add(qoff + 16) as *mut i8, bytes[1]);
        }
        b[0..2].copy_from_slice(&half::f16::from_f32(d).to_le_bytes());
        if with_sum {
            let s = q.iter().fold(vdupq_n_s32(0), |s, &v| vaddq_s32(s, v));
            let sum = vaddvq_s32(s);
            b[2..4].copy_from_slice(&half::f16::from_f32(d * sum as f32).to_le_bytes());
        }
    }
}
