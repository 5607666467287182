//! The packed 32-element formats' kernels (Q4_0, Q4_1, Q5_0, Q8_0 in groups of eight rows;
//! layout and scalar reference in `formats::packed::legacy`) on NEON, with `sdot` where the
//! CPU has the dot-product extension and `smmla` for pairs of tokens where it has i8mm.
//!
//! A 32-byte chunk of a packed block is two NEON registers: rows 0–3 and rows 4–7, four
//! bytes per row in each i32 lane. Every format's codes are turned into signed weight values
//! in the register (Q4_0: code − 8, Q5_0: code − 16), so the block's exact i32 sum needs no
//! bias correction; how it is formed ([`Dot`], or `smmla`) does not change it. The float
//! steps are the reference's, lane by lane on the two halves: `d_w · d_x` (one multiply),
//! the i32 → f32 conversion (round to nearest), `vfmaq_f32` where the reference fuses.

// Per-token accumulator arrays of constant size are indexed in step with each other.
#![allow(clippy::needless_range_loop)]

use crate::formats::float::f16_to_f32;
use crate::formats::packed::{GROUP, MAX_BLOCKS};
use crate::types::Tile;
use hearth_gguf::GgmlType;
use std::arch::aarch64::*;
use std::mem::MaybeUninit;

const Q4_0: u8 = 0;
const Q4_1: u8 = 1;
const Q5_0: u8 = 2;
const Q8_0: u8 = 3;

/// Tokens per pass: each pass walks every group with its tokens' activations in L1.
const TOKENS: usize = 4;

/// The integer dot step of a level: `acc[r] + Σ_{k<4} w[4r + k] · x[4r + k]` for each i32
/// lane `r`, products of signed bytes. Exact for every input.
pub(super) trait Dot {
    /// # Safety
    /// The CPU has this level's features.
    unsafe fn dot(acc: int32x4_t, w: int8x16_t, x: int8x16_t) -> int32x4_t;
}

/// Plain NEON: widening multiplies (each product fits i16), then two pairwise adds.
pub(super) struct Neon;
impl Dot for Neon {
    #[inline(always)]
    unsafe fn dot(acc: int32x4_t, w: int8x16_t, x: int8x16_t) -> int32x4_t {
        let lo = vpaddlq_s16(vmull_s8(vget_low_s8(w), vget_low_s8(x)));
        let hi = vpaddlq_s16(vmull_high_s8(w, x));
        vaddq_s32(acc, vpaddq_s32(lo, hi))
    }
}

/// The dot-product extension: one `sdot`.
pub(super) struct DotProd;
impl Dot for DotProd {
    #[inline(always)]
    unsafe fn dot(acc: int32x4_t, w: int8x16_t, x: int8x16_t) -> int32x4_t {
        // SAFETY: the caller guarantees the dot-product extension (this level's feature).
        unsafe { crate::arm::ext::sdot(acc, w, x) }
    }
}

/// Eight f16 at `p` as two f32 halves (lanes 0–3, 4–7), exactly: `fcvtl` widens f16 to f32
/// without rounding (subnormals included: conversions ignore the flush-to-zero control), as
/// `f16_to_f32` does (`arm::ext`, since its intrinsic needs the unstable f16 types).
///
/// # Safety
/// 16 bytes at `p` are readable.
#[inline(always)]
pub(super) unsafe fn f16x8(p: *const u8) -> [float32x4_t; 2] {
    // SAFETY: the caller's contract covers the load.
    let h = vreinterpretq_u16_u8(unsafe { vld1q_u8(p) });
    [
        super::ext::widen_f16(vget_low_u16(h)),
        super::ext::widen_f16_high(h),
    ]
}

/// The i32 at `p` (any alignment) in every lane, as bytes: four activation quants for
/// every row.
///
/// # Safety
/// Four bytes at `p` are readable.
#[inline(always)]
pub(super) unsafe fn bcast4(p: *const u8) -> int8x16_t {
    // SAFETY: the caller's contract.
    vreinterpretq_s8_s32(vdupq_n_s32(unsafe { (p as *const i32).read_unaligned() }))
}

/// A 32-byte run at `p` as its two registers (rows 0–3, rows 4–7).
///
/// # Safety
/// 32 bytes at `p` are readable.
#[inline(always)]
pub(super) unsafe fn load2(p: *const u8) -> [uint8x16_t; 2] {
    // SAFETY: the caller's contract.
    unsafe { [vld1q_u8(p), vld1q_u8(p.add(16))] }
}

/// The four f32 accumulators' steps of one block for one token, both halves:
/// `acc = fma(s, d_w · d_x, acc)`.
#[inline(always)]
pub(super) unsafe fn scale_add(
    acc: &mut [float32x4_t; 2],
    s: [int32x4_t; 2],
    dw: [float32x4_t; 2],
    dx: f32,
) {
    let dx = vdupq_n_f32(dx);
    for h in 0..2 {
        acc[h] = vfmaq_f32(acc[h], vcvtq_f32_s32(s[h]), vmulq_f32(dw[h], dx));
    }
}

/// Stores a token's eight outputs.
///
/// # Safety
/// Eight f32 at `out` are writable.
#[inline(always)]
pub(super) unsafe fn store8(out: *mut f32, acc: [float32x4_t; 2]) {
    // SAFETY: the caller's contract.
    unsafe {
        vst1q_f32(out, acc[0]);
        vst1q_f32(out.add(4), acc[1]);
    }
}

/// Plain NEON kernel for the packed legacy formats: for `g < groups` and `k < tokens`, the
/// eight outputs of group `g` against activation row `k`, each equal to `dot_ref` bit for bit.
///
/// # Safety
/// `ty` is one `formats::packed::legacy::supports` accepts and `nb ≤ MAX_BLOCKS`; the
/// `groups` packed groups at `t.w + g * t.wrb` (`nb` blocks each) and the `tokens`
/// activation rows at `t.x + k * t.xrb` (Q8_0, or Q8_1 for Q4_1) are readable; outputs
/// `t.out + k * t.ostride + 8g + r` are writable and no one else accesses them meanwhile.
#[target_feature(enable = "neon")]
pub(crate) unsafe fn tile_neon(ty: GgmlType, nb: usize, t: &Tile, groups: usize, tokens: usize) {
    // SAFETY: forwarded from the caller.
    unsafe { dispatch::<Neon, false>(ty, nb, t, groups, tokens) }
}

/// [`tile_neon`] with `sdot`: the same outputs bit for bit.
///
/// # Safety
/// As [`tile_neon`], and the CPU has the dot-product extension.
#[target_feature(enable = "neon")]
pub(crate) unsafe fn tile_dot(ty: GgmlType, nb: usize, t: &Tile, groups: usize, tokens: usize) {
    // SAFETY: forwarded from the caller.
    unsafe { dispatch::<DotProd, false>(ty, nb, t, groups, tokens) }
}

/// [`tile_dot`] with `smmla` for pairs of tokens (two rows × two tokens × eight bytes per
/// instruction); a lone token runs the `sdot` code. The same outputs bit for bit.
///
/// # Safety
/// As [`tile_neon`], and the CPU has the dot-product and int8 matrix-multiply extensions.
#[target_feature(enable = "neon")]
pub(crate) unsafe fn tile_i8mm(ty: GgmlType, nb: usize, t: &Tile, groups: usize, tokens: usize) {
    // SAFETY: forwarded from the caller.
    unsafe { dispatch::<DotProd, true>(ty, nb, t, groups, tokens) }
}

#[inline(always)]
unsafe fn dispatch<D: Dot, const MM: bool>(
    ty: GgmlType,
    nb: usize,
    t: &Tile,
    groups: usize,
    tokens: usize,
) {
    // SAFETY: forwarded from the caller.
    unsafe {
        match ty {
            GgmlType::Q4_0 => tiles::<D, MM, Q4_0>(nb, t, groups, tokens),
            GgmlType::Q4_1 => tiles::<D, MM, Q4_1>(nb, t, groups, tokens),
            GgmlType::Q5_0 => tiles::<D, MM, Q5_0>(nb, t, groups, tokens),
            GgmlType::Q8_0 => tiles::<D, MM, Q8_0>(nb, t, groups, tokens),
            other => unreachable!("packed legacy kernel on {other}"),
        }
    }
}

/// Bytes of one original block of the format, of one activation block, and the offset of
/// the activation quants in it.
const fn sizes(kind: u8) -> (usize, usize, usize) {
    match kind {
        Q4_0 => (18, 34, 2),
        Q4_1 => (20, 36, 4),
        Q5_0 => (22, 34, 2),
        _ => (34, 34, 2),
    }
}

/// One pass's view: a group's packed blocks, its tokens' rows, their cached scales.
#[derive(Clone, Copy)]
struct Pass {
    w: *const u8,
    x: *const u8,
    xrb: usize,
    out: *mut f32,
    ostride: usize,
    /// `d_x` of block `b`, token `k` at `[b * TOKENS + k]`; Q8_1's `s_x` likewise.
    dx: *const f32,
    sx: *const f32,
}

impl Pass {
    /// The same pass from token `k` on.
    #[inline(always)]
    fn at_token(&self, k: usize) -> Pass {
        Pass {
            x: self.x.wrapping_add(k * self.xrb),
            out: self.out.wrapping_add(k * self.ostride),
            dx: self.dx.wrapping_add(k),
            sx: self.sx.wrapping_add(k),
            ..*self
        }
    }
}

/// # Safety
/// As [`tile_neon`] with the features of `D` (and i8mm for `MM`).
#[inline(always)]
unsafe fn tiles<D: Dot, const MM: bool, const KIND: u8>(
    nb: usize,
    t: &Tile,
    groups: usize,
    tokens: usize,
) {
    let (_, xbs, _) = sizes(KIND);
    // Only the entries of the pass's blocks and tokens are written and read.
    let mut dx = [MaybeUninit::<f32>::uninit(); MAX_BLOCKS * TOKENS];
    let mut sx = [MaybeUninit::<f32>::uninit(); MAX_BLOCKS * TOKENS];
    let mut t0 = 0;
    while t0 < tokens {
        let nt = (tokens - t0).min(TOKENS);
        for b in 0..nb {
            for k in 0..nt {
                // SAFETY: block `b < nb` of token `t0 + k < tokens` is readable: d at byte 0,
                // s (Q8_1) at 2.
                let xb = unsafe { t.x.add((t0 + k) * t.xrb + b * xbs) };
                let f16 = |o: usize| {
                    // SAFETY: as above.
                    f16_to_f32(u16::from_le(unsafe {
                        (xb.add(o) as *const u16).read_unaligned()
                    }))
                };
                dx[b * TOKENS + k].write(f16(0));
                if KIND == Q4_1 {
                    sx[b * TOKENS + k].write(f16(2));
                }
            }
        }
        for g in 0..groups {
            let p = Pass {
                w: t.w.wrapping_add(g * t.wrb),
                x: t.x.wrapping_add(t0 * t.xrb),
                xrb: t.xrb,
                out: t.out.wrapping_add(t0 * t.ostride + g * GROUP),
                ostride: t.ostride,
                dx: dx.as_ptr() as *const f32,
                sx: sx.as_ptr() as *const f32,
            };
            // SAFETY: group `g < groups` and tokens `t0..t0 + nt` are inside the caller's
            // ranges; the scales of tokens `0..nt` of every block are cached above.
            unsafe {
                let mut k = 0;
                while k < nt {
                    let q = p.at_token(k);
                    k += match nt - k {
                        n if MM && n >= 4 => pairs::<KIND, 2>(nb, &q),
                        n if MM && n >= 2 => pairs::<KIND, 1>(nb, &q),
                        4 => group::<D, KIND, 4>(nb, &q),
                        3 => group::<D, KIND, 3>(nb, &q),
                        2 => group::<D, KIND, 2>(nb, &q),
                        _ => group::<D, KIND, 1>(nb, &q),
                    };
                }
            }
        }
        t0 += nt;
    }
}

/// Q5_0's fifth bits of register `e` (`0x10` where set) from its plane (module docs of
/// `formats::packed::legacy`): bit `e` of each byte moved to bit 4.
#[inline(always)]
unsafe fn high_bits(h: uint8x16_t, e: usize) -> uint8x16_t {
    let v = match e {
        0 => vshlq_n_u8::<4>(h),
        1 => vshlq_n_u8::<3>(h),
        2 => vshlq_n_u8::<2>(h),
        3 => vshlq_n_u8::<1>(h),
        4 => h,
        5 => vshrq_n_u8::<1>(h),
        6 => vshrq_n_u8::<2>(h),
        _ => vshrq_n_u8::<3>(h),
    };
    vandq_u8(v, vdupq_n_u8(0x10))
}

/// The signed weight values of registers `2c` and `2c + 1` of block `pb` (each as its two
/// halves), and the offsets of the activation quants they multiply.
///
/// # Safety
/// The packed block at `pb` is readable.
#[inline(always)]
unsafe fn registers<const KIND: u8>(pb: *const u8, c: usize) -> ([[int8x16_t; 2]; 2], [usize; 2]) {
    let chunks = match KIND {
        Q4_1 => 32,
        Q5_0 => 48,
        _ => 16,
    };
    // SAFETY: the chunks and the plane lie inside the packed block (layout in the module
    // docs of `formats::packed::legacy`).
    unsafe {
        if KIND == Q8_0 {
            let w0 = load2(pb.add(chunks + 64 * c));
            let w1 = load2(pb.add(chunks + 64 * c + 32));
            let s = |w: [uint8x16_t; 2]| [vreinterpretq_s8_u8(w[0]), vreinterpretq_s8_u8(w[1])];
            return ([s(w0), s(w1)], [8 * c, 8 * c + 4]);
        }
        let v = load2(pb.add(chunks + 32 * c));
        let plane = if KIND == Q5_0 {
            load2(pb.add(16))
        } else {
            [vdupq_n_u8(0); 2]
        };
        let bias = vdupq_n_s8(match KIND {
            Q4_0 => 8,
            Q5_0 => 16,
            _ => 0,
        });
        let mut out = [[vdupq_n_s8(0); 2]; 2];
        for h in 0..2 {
            for half in 0..2 {
                let mut u = if h == 0 {
                    vandq_u8(v[half], vdupq_n_u8(0x0f))
                } else {
                    vshrq_n_u8::<4>(v[half])
                };
                if KIND == Q5_0 {
                    u = vorrq_u8(u, high_bits(plane[half], 2 * c + h));
                }
                out[h][half] = vsubq_s8(vreinterpretq_s8_u8(u), bias);
            }
        }
        (out, [4 * c, 4 * c + 16])
    }
}

/// One group against `T` tokens with [`Dot`]; returns `T`.
///
/// # Safety
/// As [`tile_neon`] for one group and `T` tokens, with `D`'s features; the pass's scales of
/// its `T` tokens are cached for every block.
#[inline(always)]
unsafe fn group<D: Dot, const KIND: u8, const T: usize>(nb: usize, p: &Pass) -> usize {
    let (ts, xbs, xqs) = sizes(KIND);
    let mut acc = [[vdupq_n_f32(0.0); 2]; T];
    for b in 0..nb {
        // SAFETY: block `b` of the group and of each of the `T` activation rows is
        // readable, and its cached scales are set (the caller's contract).
        unsafe {
            let pb = p.w.add(b * GROUP * ts);
            let mut s = [[vdupq_n_s32(0); 2]; T];
            for c in 0..4 {
                let (w, o) = registers::<KIND>(pb, c);
                for k in 0..T {
                    let xq = p.x.add(k * p.xrb + b * xbs + xqs);
                    for h in 0..2 {
                        let x = bcast4(xq.add(o[h]));
                        s[k][0] = D::dot(s[k][0], w[h][0], x);
                        s[k][1] = D::dot(s[k][1], w[h][1], x);
                    }
                }
            }
            finish_block::<KIND, T>(pb, &mut acc, s, p, b);
        }
    }
    for k in 0..T {
        // SAFETY: the group's eight outputs of token `k` are writable (caller's contract).
        unsafe { store8(p.out.add(k * p.ostride), acc[k]) };
    }
    T
}

/// The float steps of block `b` for `T` tokens with exact sums `s` (rows 0–3, 4–7).
///
/// # Safety
/// The packed block at `pb` is readable; the scales of block `b` of the pass's `T` tokens
/// are cached.
#[inline(always)]
unsafe fn finish_block<const KIND: u8, const T: usize>(
    pb: *const u8,
    acc: &mut [[float32x4_t; 2]; T],
    s: [[int32x4_t; 2]; T],
    p: &Pass,
    b: usize,
) {
    // SAFETY: the caller's contract; `d` at 0 and Q4_1's `m` at 16 are in the block.
    unsafe {
        let wd = f16x8(pb);
        let wm = if KIND == Q4_1 {
            f16x8(pb.add(16))
        } else {
            [vdupq_n_f32(0.0); 2]
        };
        for k in 0..T {
            scale_add(&mut acc[k], s[k], wd, *p.dx.add(b * TOKENS + k));
            if KIND == Q4_1 {
                let sx = vdupq_n_f32(*p.sx.add(b * TOKENS + k));
                for h in 0..2 {
                    acc[k][h] = vfmaq_f32(acc[k][h], wm[h], sx);
                }
            }
        }
    }
}

/// Two registers `a`, `b` (each as rows 0–3, rows 4–7) as `smmla`'s row pairs: rows
/// (0, 1), (2, 3), (4, 5), (6, 7), eight bytes per row, `a`'s four then `b`'s.
///
/// # Safety
/// NEON (every aarch64 CPU).
#[inline(always)]
pub(super) unsafe fn mm_rows(a: [int8x16_t; 2], b: [int8x16_t; 2]) -> [int8x16_t; 4] {
    let (a, b) = (
        a.map(|v| vreinterpretq_s32_s8(v)),
        b.map(|v| vreinterpretq_s32_s8(v)),
    );
    [
        vreinterpretq_s8_s32(vzip1q_s32(a[0], b[0])),
        vreinterpretq_s8_s32(vzip2q_s32(a[0], b[0])),
        vreinterpretq_s8_s32(vzip1q_s32(a[1], b[1])),
        vreinterpretq_s8_s32(vzip2q_s32(a[1], b[1])),
    ]
}

/// Two tokens' eight activation quants (at `x0`, `x1`) as `smmla`'s other operand.
///
/// # Safety
/// Eight bytes at `x0` and at `x1` are readable.
#[inline(always)]
pub(super) unsafe fn mm_x(x0: *const u8, x1: *const u8) -> int8x16_t {
    // SAFETY: the caller's contract.
    unsafe { vcombine_s8(vld1_s8(x0 as *const i8), vld1_s8(x1 as *const i8)) }
}

/// `m[r] += rows[r] · x` for the four row pairs: lanes (r, t0), (r, t1), (r + 1, t0),
/// (r + 1, t1) of each.
///
/// # Safety
/// The CPU has i8mm.
#[inline(always)]
pub(super) unsafe fn mm_acc(m: &mut [int32x4_t; 4], rows: &[int8x16_t; 4], x: int8x16_t) {
    for r in 0..4 {
        // SAFETY: the caller's contract.
        m[r] = unsafe { crate::arm::ext::smmla(m[r], rows[r], x) };
    }
}

/// The four row-pair accumulators of [`mm_acc`] as `[token][rows 0–3, 4–7]`.
///
/// # Safety
/// NEON (every aarch64 CPU).
#[inline(always)]
pub(super) unsafe fn mm_split(m: [int32x4_t; 4]) -> [[int32x4_t; 2]; 2] {
    [
        [vuzp1q_s32(m[0], m[1]), vuzp1q_s32(m[2], m[3])],
        [vuzp2q_s32(m[0], m[1]), vuzp2q_s32(m[2], m[3])],
    ]
}

/// One group against `2P` tokens with `smmla`; returns `2P`. Registers `(A, B)` whose
/// activation quants are contiguous (`A`'s four then `B`'s) are zipped into row pairs of
/// eight bytes (`zip1`: rows 0, 1; `zip2`: rows 2, 3), and each token pair's eight bytes
/// form the other operand: one instruction gives two rows × two tokens.
///
/// # Safety
/// As [`tile_i8mm`] for one group and `2P` tokens; the pass's scales of its tokens are
/// cached for every block.
#[inline(always)]
unsafe fn pairs<const KIND: u8, const P: usize>(nb: usize, p: &Pass) -> usize {
    let (ts, xbs, xqs) = sizes(KIND);
    let mut acc = [[[vdupq_n_f32(0.0); 2]; 2]; P];
    for b in 0..nb {
        // SAFETY: block `b` of the group and of each of the `2P` activation rows is
        // readable, and its cached scales are set (the caller's contract); the CPU has i8mm.
        unsafe {
            let pb = p.w.add(b * GROUP * ts);
            // [pair][rows 0–1, 2–3, 4–5, 6–7]: lanes (r, t0), (r, t1), (r+1, t0), (r+1, t1).
            let mut m = [[vdupq_n_s32(0); 4]; P];
            for i in 0..2 {
                let (w0, o0) = registers::<KIND>(pb, 2 * i);
                let (w1, o1) = registers::<KIND>(pb, 2 * i + 1);
                // Q8_0: registers 4i..4i+4 are chunks 4i..4i+4, quants 16i.. in order;
                // 4-bit: chunks 2i and 2i + 1 of one nibble are quants 8i + 16h.. in order.
                let ab = if KIND == Q8_0 {
                    [(w0[0], w0[1], o0[0]), (w1[0], w1[1], o1[0])]
                } else {
                    [(w0[0], w1[0], o0[0]), (w0[1], w1[1], o0[1])]
                };
                for (a, bb, off) in ab {
                    let rows = mm_rows(a, bb);
                    for q in 0..P {
                        let x0 = p.x.add(2 * q * p.xrb + b * xbs + xqs + off);
                        mm_acc(&mut m[q], &rows, mm_x(x0, x0.add(p.xrb)));
                    }
                }
            }
            let s = m.map(|m| mm_split(m));
            for q in 0..P {
                let sub = p.at_token(2 * q);
                finish_block::<KIND, 2>(pb, &mut acc[q], s[q], &sub, b);
            }
        }
    }
    for q in 0..P {
        for j in 0..2 {
            // SAFETY: the group's eight outputs of token `2q + j` are writable.
            unsafe { store8(p.out.add((2 * q + j) * p.ostride), acc[q][j]) };
        }
    }
    2 * P
}
