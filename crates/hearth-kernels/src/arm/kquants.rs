//! The K-quants' kernels on aarch64 (Q2_K..Q6_K against Q8_K; layouts, lanes and scalar
//! reference in `formats::kquants`): plain NEON, and NEON with the dot-product extension.
//!
//! # The lanes
//! The reference keeps each block's integer sum in eight i32 lanes, the term of element `e` in
//! lane `(e % 32) / 4`: walking a block in 32-byte chunks, the first 16 bytes of a chunk feed
//! lanes 0..4 and the last 16 lanes 4..8, four consecutive bytes per lane. Here the eight lanes
//! are two `int32x4_t` halves (and the f32 accumulators two `float32x4_t` halves), so one
//! 16-byte half-chunk maps onto one vector lane for lane: `sdot` sums exactly those four bytes
//! into each lane, and without it `vmull_s8` and two pairwise adds (`vpaddq_s16`) form the
//! same four-byte sums (at most 4 · 63 · 128 = 32256 in magnitude, so i16 holds them) before
//! `vmlal` widens them times the sub-block scale. A half-chunk never straddles two 16-element
//! groups, so each half takes one scale. How the exact integers are formed is free; the i32
//! lanes equal the reference's ([`Lanes`]).
//!
//! # The f32 steps
//! Per block and half, `A += float(S) · d` and `B += float(M) · dmin` with one `vfmaq_f32`
//! each (the reference's `mul_add`), and at the end `C = A + B` (B stays zero for Q3_K and Q6_K
//! and is still added: it turns a `-0.0` lane into `+0.0`) and the reference's halving sum
//! `((C0+C4) + (C2+C6)) + ((C1+C5) + (C3+C7))`: the same roundings on the same values. So the
//! results equal `vec_dot_scalar`'s (and the x86 kernels') bit for bit.
//!
//! # One body for one token and for tiles
//! Each format's kernel is written for `T` tokens against one weight row (the block's quants
//! and scales are unpacked once for all of them); [`vec_dot`] runs it with `T = 1` and the tiles
//! (`arm::kquants_tile`) with up to four tokens, so the tiles are `vec_dot` by construction.
//! With one token the chunks alternate between two sets of i32 accumulators (added at the block's
//! end, exact), so a block's multiply-accumulates do not all wait on one register; with several
//! tokens the tokens give that independence.

// The loops index several parallel per-token arrays of constant size at once; index ranges
// say that more plainly than zipped iterators.
#![allow(clippy::needless_range_loop)]

use crate::arm::ext::sdot;
use crate::formats::kquants::{
    k4_unpack, q3k_unpack, Q2K, Q3K, Q4K, Q5K, Q6K, Q8K, Q8K_BSUMS, Q8K_QS,
};
use hearth_gguf::GgmlType;
use std::arch::aarch64::*;
use std::arch::asm;

/// How a level forms the i32 lanes of one 32-byte chunk and adds them, times the scales of
/// its two 16-byte halves, to a block's lane sums.
///
/// The scales travel as vector lanes picked by index, so the compiler takes each one from a
/// lane (a multiply by element, a lane duplicate or a load-and-replicate) instead of moving
/// it through a general-purpose register once per chunk.
pub(super) trait Lanes {
    /// A block's 16 group scales in the form [`Lanes::chunk`] reads them.
    type Scales: Copy;

    /// The 16 i16 group scales `v` (groups 0..8, then 8..16) as [`Lanes::Scales`].
    fn scales(v: [int16x8_t; 2]) -> Self::Scales;

    /// `s[h][k] += sc[g[h]] · Σ_{j<4} q[h][4k+j] · y[h][4k+j]` for both halves `h`.
    ///
    /// # Safety
    /// The CPU has this implementation's features.
    unsafe fn chunk(
        s: &mut [int32x4_t; 2],
        q: [int8x16_t; 2],
        y: [int8x16_t; 2],
        sc: &Self::Scales,
        g: [usize; 2],
    );
}

/// Plain NEON: widening byte products and pairwise adds.
pub(super) struct Mull;

impl Lanes for Mull {
    type Scales = [int16x8_t; 2];

    #[inline(always)]
    fn scales(v: [int16x8_t; 2]) -> Self::Scales {
        v
    }

    #[inline(always)]
    unsafe fn chunk(
        s: &mut [int32x4_t; 2],
        q: [int8x16_t; 2],
        y: [int8x16_t; 2],
        sc: &Self::Scales,
        g: [usize; 2],
    ) {
        // SAFETY: NEON is part of every aarch64 CPU; registers only.
        unsafe {
            // Products of bytes 0..8 and 8..16 of each half (|q| ≤ 63 and |y| ≤ 128 keep every
            // sum below in i16), then sums of 2 and of 4 consecutive bytes: lanes 0..4 of the
            // first half, then lanes 0..4 of the second.
            let p: [int16x8_t; 2] = std::array::from_fn(|h| {
                vpaddq_s16(
                    vmull_s8(vget_low_s8(q[h]), vget_low_s8(y[h])),
                    vmull_high_s8(q[h], y[h]),
                )
            });
            let v = vpaddq_s16(p[0], p[1]);
            s[0] = vmlal_n_s16(s[0], vget_low_s16(v), lane16(sc, g[0]));
            s[1] = vmlal_high_n_s16(s[1], v, lane16(sc, g[1]));
        }
    }
}

/// The dot-product extension: one `sdot` per half.
pub(super) struct Sdot;

impl Lanes for Sdot {
    type Scales = [int32x4_t; 4];

    #[inline(always)]
    fn scales(v: [int16x8_t; 2]) -> Self::Scales {
        // SAFETY: NEON is baseline on aarch64; registers only.
        let w = unsafe {
            [
                vmovl_s16(vget_low_s16(v[0])),
                vmovl_high_s16(v[0]),
                vmovl_s16(vget_low_s16(v[1])),
                vmovl_high_s16(v[1]),
            ]
        };
        // An empty `asm!` hides that these lanes are widened i16: the compiler would otherwise
        // re-widen one duplicated i16 lane per chunk instead of multiplying by a 32-bit lane.
        w.map(|mut x| {
            // SAFETY: no instruction; the register keeps its value.
            unsafe {
                asm!(
                    "/* {x:v} */",
                    x = inout(vreg) x,
                    options(pure, nomem, nostack, preserves_flags)
                )
            };
            x
        })
    }

    #[inline(always)]
    unsafe fn chunk(
        s: &mut [int32x4_t; 2],
        q: [int8x16_t; 2],
        y: [int8x16_t; 2],
        sc: &Self::Scales,
        g: [usize; 2],
    ) {
        // SAFETY: the caller's contract (the dot-product extension); registers only.
        unsafe {
            let z = vdupq_n_s32(0);
            s[0] = vmlaq_n_s32(s[0], sdot(z, q[0], y[0]), lane32(sc, g[0]));
            s[1] = vmlaq_n_s32(s[1], sdot(z, q[1], y[1]), lane32(sc, g[1]));
        }
    }
}

/// Lane `g` of 16 i16 lanes.
#[inline(always)]
fn lane16(v: &[int16x8_t; 2], g: usize) -> i16 {
    // SAFETY: two `int16x8_t` are 16 plain i16 lanes in order.
    let a: [i16; 16] = unsafe { std::mem::transmute(*v) };
    a[g]
}

/// Lane `g` of 16 i32 lanes.
#[inline(always)]
fn lane32(v: &[int32x4_t; 4], g: usize) -> i32 {
    // SAFETY: four `int32x4_t` are 16 plain i32 lanes in order.
    let a: [i32; 16] = unsafe { std::mem::transmute(*v) };
    a[g]
}

/// The dot product of `nb` blocks of `ty` with `nb` Q8_K blocks, plain NEON.
///
/// # Safety
/// `w` and `x` hold at least `nb` blocks of `ty` and of Q8_K respectively, and `ty` is a
/// K-quant weight type (Q2_K..Q6_K).
#[target_feature(enable = "neon")]
pub(crate) unsafe fn vec_dot(ty: GgmlType, nb: usize, w: &[u8], x: &[u8]) -> f32 {
    // SAFETY: forwarded from the caller.
    unsafe { kernel::<Mull, 1>(ty, nb, w.as_ptr(), [x.as_ptr()])[0] }
}

/// [`vec_dot`] with the dot-product extension's `sdot` for the integer sums; same bits.
///
/// # Safety
/// As [`vec_dot`], and the CPU has the dot-product extension.
#[target_feature(enable = "neon")]
pub(crate) unsafe fn vec_dot_sdot(ty: GgmlType, nb: usize, w: &[u8], x: &[u8]) -> f32 {
    // SAFETY: forwarded from the caller.
    unsafe { kernel::<Sdot, 1>(ty, nb, w.as_ptr(), [x.as_ptr()])[0] }
}

/// The products of one weight row (`nb` blocks of `ty` at `w`) with `T` Q8_K rows (`nb`
/// blocks at each of `x`), each equal to the scalar reference bit for bit.
///
/// # Safety
/// Those blocks are readable, `ty` is a K-quant weight type, and the CPU has `L`'s features.
#[inline(always)]
unsafe fn kernel<L: Lanes, const T: usize>(
    ty: GgmlType,
    nb: usize,
    w: *const u8,
    x: [*const u8; T],
) -> [f32; T] {
    use GgmlType::*;
    // SAFETY: forwarded from the caller.
    unsafe {
        match ty {
            Q2_K => q2k::<L, T>(nb, w, x),
            Q3_K => q3k::<L, T>(nb, w, x),
            Q4_K => q4k::<L, T, false>(nb, w, x),
            Q5_K => q4k::<L, T, true>(nb, w, x),
            Q6_K => q6k::<L, T>(nb, w, x),
            other => unreachable!("kquants::vec_dot on {other}"),
        }
    }
}

// The helpers are `inline(always)`: inlined into the kernels, their intrinsics compile with
// the kernels' features. Each reads only what its caller says is readable.

#[inline(always)]
unsafe fn load(p: *const u8) -> uint8x16_t {
    // SAFETY: the caller's 16 readable bytes at `p` (NEON loads need no alignment).
    unsafe { vld1q_u8(p) }
}

/// Two 16-byte loads: a 32-byte chunk as its halves.
#[inline(always)]
unsafe fn load2(p: *const u8) -> [uint8x16_t; 2] {
    // SAFETY: the caller's 32 readable bytes at `p`.
    unsafe { [load(p), load(p.add(16))] }
}

/// A Q8_K block's 32 activation quants of chunk `c`.
#[inline(always)]
unsafe fn y_chunk(xb: *const u8, c: usize) -> [int8x16_t; 2] {
    // SAFETY: `xb` is a whole Q8_K block (caller's contract) and `c < 8`.
    unsafe {
        let [a, b] = load2(xb.add(Q8K_QS + 32 * c));
        [vreinterpretq_s8_u8(a), vreinterpretq_s8_u8(b)]
    }
}

#[inline(always)]
fn s8(v: [uint8x16_t; 2]) -> [int8x16_t; 2] {
    // SAFETY: a register reinterpretation (NEON is baseline on aarch64).
    unsafe { [vreinterpretq_s8_u8(v[0]), vreinterpretq_s8_u8(v[1])] }
}

/// An f16 field as f32 (`arm::ext::f16_to_f32`, the base instruction set's `fcvt`).
///
/// # Safety
/// `p` points at two readable bytes.
#[inline(always)]
unsafe fn f16_at(p: *const u8) -> f32 {
    // SAFETY: the caller's 2 readable bytes at `p`.
    super::ext::f16_to_f32(unsafe { u16::from_le_bytes([*p, *p.add(1)]) })
}

#[inline(always)]
unsafe fn f32_at(p: *const u8) -> f32 {
    // SAFETY: the caller's 4 readable bytes at `p`.
    unsafe { f32::from_le_bytes(std::ptr::read_unaligned(p as *const [u8; 4])) }
}

/// Twelve bytes at `p` unpacked four at a time (`k4_unpack` / `q3k_unpack`), as 16 bytes.
#[inline(always)]
unsafe fn unpack12(p: *const u8, f: fn(&[u8]) -> [u32; 4]) -> [u8; 16] {
    // SAFETY: the caller's 12 readable bytes at `p`.
    let w = f(unsafe { std::slice::from_raw_parts(p, 12) });
    let mut out = [0u8; 16];
    for (o, v) in out.chunks_exact_mut(4).zip(w) {
        o.copy_from_slice(&v.to_le_bytes());
    }
    out
}

/// The i16 group sums of a Q8_K block: groups 0..8 and 8..16.
#[inline(always)]
unsafe fn bsums(xb: *const u8) -> [int16x8_t; 2] {
    // SAFETY: `xb` is a whole Q8_K block; its 16 little-endian i16 sums are bytes 260..292.
    unsafe {
        [
            vreinterpretq_s16_u8(load(xb.add(Q8K_BSUMS))),
            vreinterpretq_s16_u8(load(xb.add(Q8K_BSUMS + 16))),
        ]
    }
}

/// `m[2k]·b[2k] + m[2k+1]·b[2k+1]` for the 16 groups as two halves of four lanes (the
/// reference's `lane_group_sums`).
#[inline(always)]
fn group_lanes(m: [int16x8_t; 2], b: [int16x8_t; 2]) -> [int32x4_t; 2] {
    // SAFETY: NEON is baseline on aarch64; registers only.
    unsafe {
        std::array::from_fn(|h| {
            vpaddq_s32(
                vmull_s16(vget_low_s16(m[h]), vget_low_s16(b[h])),
                vmull_high_s16(m[h], b[h]),
            )
        })
    }
}

/// `acc + float(lanes) · d`, fused as the reference's `d.mul_add(lanes, acc)`.
#[inline(always)]
fn add_lanes(acc: &mut [float32x4_t; 2], d: f32, lanes: [int32x4_t; 2]) {
    // SAFETY: NEON is baseline on aarch64; registers only.
    unsafe {
        let dv = vdupq_n_f32(d);
        for h in 0..2 {
            acc[h] = vfmaq_f32(acc[h], vcvtq_f32_s32(lanes[h]), dv);
        }
    }
}

/// `hsum8(A + B)`: `C = A + B`, then `((C0+C4) + (C2+C6)) + ((C1+C5) + (C3+C7))`.
#[inline(always)]
fn finish(a: [float32x4_t; 2], b: [float32x4_t; 2]) -> f32 {
    // SAFETY: NEON is baseline on aarch64; registers only.
    unsafe {
        let c = [vaddq_f32(a[0], b[0]), vaddq_f32(a[1], b[1])];
        let t = vaddq_f32(c[0], c[1]);
        let u = vadd_f32(vget_low_f32(t), vget_high_f32(t));
        vget_lane_f32::<0>(u) + vget_lane_f32::<1>(u)
    }
}

/// The accumulator set chunk `c` of a block adds to (see the module docs: two sets for one
/// token, one for several).
#[inline(always)]
const fn set<const T: usize>(c: usize) -> usize {
    if T == 1 {
        c % 2
    } else {
        0
    }
}

/// Both accumulator sets of each token, added (exact i32).
#[inline(always)]
fn merge<const T: usize>(s: &[[[int32x4_t; 2]; 2]; T]) -> [[int32x4_t; 2]; T] {
    // SAFETY: NEON is baseline on aarch64; registers only.
    unsafe {
        std::array::from_fn(|tt| {
            [
                vaddq_s32(s[tt][0][0], s[tt][1][0]),
                vaddq_s32(s[tt][0][1], s[tt][1][1]),
            ]
        })
    }
}

/// The four 2-bit fields of each byte of a 32-byte chunk, lowest first (Q2_K / Q3_K low bits).
#[inline(always)]
fn crumbs(b: [uint8x16_t; 2]) -> [[uint8x16_t; 2]; 4] {
    // SAFETY: NEON is baseline on aarch64; registers only.
    unsafe {
        let m3 = vdupq_n_u8(3);
        let f = |v: uint8x16_t| {
            [
                vandq_u8(v, m3),
                vandq_u8(vshrq_n_u8::<2>(v), m3),
                vandq_u8(vshrq_n_u8::<4>(v), m3),
                vshrq_n_u8::<6>(v),
            ]
        };
        let (a, c) = (f(b[0]), f(b[1]));
        std::array::from_fn(|t| [a[t], c[t]])
    }
}

/// Q2_K: 2-bit quants, 16 groups with a 4-bit scale and a 4-bit min each.
///
/// # Safety
/// As [`kernel`].
#[inline(always)]
unsafe fn q2k<L: Lanes, const T: usize>(nb: usize, w: *const u8, x: [*const u8; T]) -> [f32; T] {
    // SAFETY (whole body): block `i < nb` of the row and of each token is readable (caller's
    // contract); the offsets are the Q2_K / Q8_K field positions of `formats::kquants`.
    unsafe {
        let zf = [vdupq_n_f32(0.0); 2];
        let zi = [vdupq_n_s32(0); 2];
        let (mut acc, mut acc_m) = ([zf; T], [zf; T]);
        for i in 0..nb {
            let wb = w.add(i * Q2K);
            let xb: [*const u8; T] = std::array::from_fn(|tt| x[tt].add(i * Q8K));
            let packed = load(wb);
            let sc = vandq_u8(packed, vdupq_n_u8(0x0f));
            let sc = L::scales([
                vreinterpretq_s16_u16(vmovl_u8(vget_low_u8(sc))),
                vreinterpretq_s16_u16(vmovl_high_u8(sc)),
            ]);
            let mins = vshrq_n_u8::<4>(packed);
            let m16 = [
                vreinterpretq_s16_u16(vmovl_u8(vget_low_u8(mins))),
                vreinterpretq_s16_u16(vmovl_high_u8(mins)),
            ];
            let mut s = [[zi; 2]; T];
            for h in 0..2 {
                let q = crumbs(load2(wb.add(16 + 32 * h)));
                for t in 0..4 {
                    let c = 4 * h + t;
                    let g = [2 * c, 2 * c + 1];
                    for tt in 0..T {
                        L::chunk(
                            &mut s[tt][set::<T>(c)],
                            s8(q[t]),
                            y_chunk(xb[tt], c),
                            &sc,
                            g,
                        );
                    }
                }
            }
            let s = merge(&s);
            let (dw, dminw) = (f16_at(wb.add(80)), f16_at(wb.add(82)));
            for tt in 0..T {
                let yd = f32_at(xb[tt]);
                let (d, dmin) = (yd * dw, -(yd * dminw));
                add_lanes(&mut acc[tt], d, s[tt]);
                add_lanes(&mut acc_m[tt], dmin, group_lanes(m16, bsums(xb[tt])));
            }
        }
        std::array::from_fn(|tt| finish(acc[tt], acc_m[tt]))
    }
}

/// Q3_K: 2 low bits and an inverted high bit (a clear bit subtracts 4), 16 groups with 6-bit
/// scales stored with a +32 offset.
///
/// # Safety
/// As [`kernel`].
#[inline(always)]
unsafe fn q3k<L: Lanes, const T: usize>(nb: usize, w: *const u8, x: [*const u8; T]) -> [f32; T] {
    // SAFETY (whole body): as in `q2k`, with the Q3_K field positions.
    unsafe {
        let zf = [vdupq_n_f32(0.0); 2];
        let zi = [vdupq_n_s32(0); 2];
        let four = vdupq_n_u8(4);
        let (mut acc, acc_m) = ([zf; T], [zf; T]);
        for i in 0..nb {
            let wb = w.add(i * Q3K);
            let xb: [*const u8; T] = std::array::from_fn(|tt| x[tt].add(i * Q8K));
            let raw = unpack12(wb.add(96), q3k_unpack);
            let sc = vsubq_s8(vreinterpretq_s8_u8(vld1q_u8(raw.as_ptr())), vdupq_n_s8(32));
            let sc = L::scales([vmovl_s8(vget_low_s8(sc)), vmovl_high_s8(sc)]);
            // Bit c of each hmask byte belongs to chunk c: inverted, then shifted right once
            // per chunk, so bit 0 always says whether to subtract 4.
            let mut nh = load2(wb).map(|v| vmvnq_u8(v));
            let mut s = [[zi; 2]; T];
            for h in 0..2 {
                let low = crumbs(load2(wb.add(32 + 32 * h)));
                for t in 0..4 {
                    let c = 4 * h + t;
                    let q: [int8x16_t; 2] = std::array::from_fn(|k| {
                        let sub = vandq_u8(vshlq_n_u8::<2>(nh[k]), four);
                        vreinterpretq_s8_u8(vsubq_u8(low[t][k], sub))
                    });
                    nh = nh.map(|v| vshrq_n_u8::<1>(v));
                    let g = [2 * c, 2 * c + 1];
                    for tt in 0..T {
                        L::chunk(&mut s[tt][set::<T>(c)], q, y_chunk(xb[tt], c), &sc, g);
                    }
                }
            }
            let s = merge(&s);
            let dw = f16_at(wb.add(108));
            for tt in 0..T {
                add_lanes(&mut acc[tt], f32_at(xb[tt]) * dw, s[tt]);
            }
        }
        std::array::from_fn(|tt| finish(acc[tt], acc_m[tt]))
    }
}

/// Q4_K, or Q5_K when `FIVE` (a fifth bit per quant from `qh`): 8 sub-blocks of 32 with 6-bit
/// scales and mins.
///
/// # Safety
/// As [`kernel`].
#[inline(always)]
pub(super) unsafe fn q4k<L: Lanes, const T: usize, const FIVE: bool>(
    nb: usize,
    w: *const u8,
    x: [*const u8; T],
) -> [f32; T] {
    let (bs, qs) = if FIVE { (Q5K, 48) } else { (Q4K, 16) };
    // SAFETY (whole body): as in `q2k`, with the Q4_K / Q5_K field positions.
    unsafe {
        let zf = [vdupq_n_f32(0.0); 2];
        let zi = [vdupq_n_s32(0); 2];
        let m4 = vdupq_n_u8(0x0f);
        let bit4 = vdupq_n_u8(16);
        let (mut acc, mut acc_m) = ([zf; T], [zf; T]);
        for i in 0..nb {
            let wb = w.add(i * bs);
            let xb: [*const u8; T] = std::array::from_fn(|tt| x[tt].add(i * Q8K));
            // Scales 0..8, then mins 0..8.
            let u = unpack12(wb.add(4), k4_unpack);
            let both = vld1q_u8(u.as_ptr());
            // Scale `c` is lane `c`: chunk `c` is sub-block `c` in both halves.
            let sc = L::scales([
                vreinterpretq_s16_u16(vmovl_u8(vget_low_u8(both))),
                vdupq_n_s16(0),
            ]);
            let mn = vreinterpretq_s16_u16(vmovl_high_u8(both));
            // High bits (Q5_K): bits 2j and 2j+1 of each byte belong to chunks 2j and 2j+1;
            // shifted right by 2 per pair so they are always read from bits 0 and 1.
            let mut hb = if FIVE {
                load2(wb.add(16))
            } else {
                [vdupq_n_u8(0); 2]
            };
            let mut s = [[zi; 2]; T];
            for j in 0..4 {
                let bits = load2(wb.add(qs + 32 * j));
                let mut lo = bits.map(|v| vandq_u8(v, m4));
                let mut hi = bits.map(|v| vshrq_n_u8::<4>(v));
                if FIVE {
                    for k in 0..2 {
                        lo[k] = vorrq_u8(lo[k], vandq_u8(vshlq_n_u8::<4>(hb[k]), bit4));
                        hi[k] = vorrq_u8(hi[k], vandq_u8(vshlq_n_u8::<3>(hb[k]), bit4));
                        hb[k] = vshrq_n_u8::<2>(hb[k]);
                    }
                }
                let (cl, ch) = (2 * j, 2 * j + 1);
                for tt in 0..T {
                    L::chunk(
                        &mut s[tt][set::<T>(cl)],
                        s8(lo),
                        y_chunk(xb[tt], cl),
                        &sc,
                        [cl; 2],
                    );
                    L::chunk(
                        &mut s[tt][set::<T>(ch)],
                        s8(hi),
                        y_chunk(xb[tt], ch),
                        &sc,
                        [ch; 2],
                    );
                }
            }
            let s = merge(&s);
            let (dw, dminw) = (f16_at(wb), f16_at(wb.add(2)));
            for tt in 0..T {
                let yd = f32_at(xb[tt]);
                let (d, dmin) = (yd * dw, -(yd * dminw));
                // Each min covers groups 2k and 2k+1: M[k] = m[k] · (b[2k] + b[2k+1]), the
                // reference's two products summed (the pair sums, |·| ≤ 4096, fit i16).
                let b = bsums(xb[tt]);
                let pb = vpaddq_s16(b[0], b[1]);
                let m = [
                    vmull_s16(vget_low_s16(pb), vget_low_s16(mn)),
                    vmull_high_s16(pb, mn),
                ];
                add_lanes(&mut acc[tt], d, s[tt]);
                add_lanes(&mut acc_m[tt], dmin, m);
            }
        }
        std::array::from_fn(|tt| finish(acc[tt], acc_m[tt]))
    }
}

/// Q6_K: 6-bit quants stored with a +32 offset, 16 groups with i8 scales. The unsigned
/// quants are multiplied and `32 · (s[2k]·b[2k] + s[2k+1]·b[2k+1])` comes off lane `k`, as in
/// the reference.
///
/// # Safety
/// As [`kernel`].
#[inline(always)]
pub(super) unsafe fn q6k<L: Lanes, const T: usize>(
    nb: usize,
    w: *const u8,
    x: [*const u8; T],
) -> [f32; T] {
    // SAFETY (whole body): as in `q2k`, with the Q6_K field positions.
    unsafe {
        let zf = [vdupq_n_f32(0.0); 2];
        let zi = [vdupq_n_s32(0); 2];
        let m4 = vdupq_n_u8(0x0f);
        let (m3, m12, m48, m192) = (
            vdupq_n_u8(3),
            vdupq_n_u8(12),
            vdupq_n_u8(48),
            vdupq_n_u8(192),
        );
        let (mut acc, acc_m) = ([zf; T], [zf; T]);
        for i in 0..nb {
            let wb = w.add(i * Q6K);
            let xb: [*const u8; T] = std::array::from_fn(|tt| x[tt].add(i * Q8K));
            let scv = vreinterpretq_s8_u8(load(wb.add(192)));
            let sc16 = [vmovl_s8(vget_low_s8(scv)), vmovl_high_s8(scv)];
            let sc = L::scales(sc16);
            let mut s = [[zi; 2]; T];
            for h in 0..2 {
                let ql0 = load2(wb.add(64 * h));
                let ql1 = load2(wb.add(64 * h + 32));
                let qh = load2(wb.add(128 + 32 * h));
                // Chunk t of this half: low nibbles of ql0, ql1, then high nibbles; high bits
                // 2t, 2t+1 of qh moved to bits 4, 5.
                let q: [[uint8x16_t; 2]; 4] = [
                    std::array::from_fn(|k| {
                        vorrq_u8(vandq_u8(ql0[k], m4), vshlq_n_u8::<4>(vandq_u8(qh[k], m3)))
                    }),
                    std::array::from_fn(|k| {
                        vorrq_u8(vandq_u8(ql1[k], m4), vshlq_n_u8::<2>(vandq_u8(qh[k], m12)))
                    }),
                    std::array::from_fn(|k| {
                        vorrq_u8(vshrq_n_u8::<4>(ql0[k]), vandq_u8(qh[k], m48))
                    }),
                    std::array::from_fn(|k| {
                        vorrq_u8(
                            vshrq_n_u8::<4>(ql1[k]),
                            vshrq_n_u8::<2>(vandq_u8(qh[k], m192)),
                        )
                    }),
                ];
                for t in 0..4 {
                    let c = 4 * h + t;
                    let g = [2 * c, 2 * c + 1];
                    for tt in 0..T {
                        L::chunk(
                            &mut s[tt][set::<T>(c)],
                            s8(q[t]),
                            y_chunk(xb[tt], c),
                            &sc,
                            g,
                        );
                    }
                }
            }
            let s = merge(&s);
            let dw = f16_at(wb.add(208));
            for tt in 0..T {
                let o = group_lanes(sc16, bsums(xb[tt]));
                let lanes = [
                    vsubq_s32(s[tt][0], vshlq_n_s32::<5>(o[0])),
                    vsubq_s32(s[tt][1], vshlq_n_s32::<5>(o[1])),
                ];
                add_lanes(&mut acc[tt], f32_at(xb[tt]) * dw, lanes);
            }
        }
        std::array::from_fn(|tt| finish(acc[tt], acc_m[tt]))
    }
}

#[cfg(test)]
mod tests {
    use super::f16_at;

    #[test]
    fn fcvt_equals_the_reference_conversion_for_every_f16() {
        // The reference converts scales with the `half` crate (in software on CPUs without
        // FP16); the kernels' `fcvt` must agree on every pattern, subnormals and NaNs included.
        for bits in 0..=u16::MAX {
            let b = bits.to_le_bytes();
            // SAFETY: `b` holds the two bytes read.
            let got = unsafe { f16_at(b.as_ptr()) };
            let want = half::f16::from_bits(bits).to_f32();
            assert_eq!(got.to_bits(), want.to_bits(), "f16 bits {bits:#06x}");
        }
    }
}
