//! The packed K-quants' kernels (Q4_K, Q6_K in groups of eight rows; layout and scalar
//! reference in `formats::packed::kquants`) on NEON, with `sdot` where the CPU has the
//! dot-product extension, and `smmla` for pairs of tokens where it has i8mm (a lone token
//! runs the `sdot` code there). Each is generic over `T` (or `2P`), the tokens of one pass:
//! a packed block's quants and scales are loaded and unpacked once per pass, and every token
//! keeps its own i32 sums and f32 accumulators (rows 0–3 and 4–7 in two vectors).
//!
//! Integer sums: per sub-block and row, [`Dot`] over the sub-block's units (Q4_K codes 0..15
//! as they are; Q6_K codes minus 32 in the register, so no `bsums` correction), then a
//! multiply-add by the sub-block's scales as i32 lanes. Q4_K's mins go against the
//! activation's `bsums` pairs in i32. All of it is exact, so it equals the reference's sums.
//!
//! Then per block and token: `d_w·d_x` as one f32 multiply per lane, the i32 → f32
//! conversion, and `vfmaq_f32` / `vfmsq_f32` (`acc − a·b` with one rounding, which is
//! `fma(−a, b, acc)` exactly): [`dot_ref`]'s operations in its order.

// The kernels index several parallel per-token arrays of constant size at once; index ranges
// say that more plainly than zipped iterators.
#![allow(clippy::needless_range_loop)]

use super::packed_legacy::{bcast4, f16x8, load2, scale_add, store8, Dot, DotProd, Neon};
use super::packed_legacy::{mm_acc, mm_rows, mm_split, mm_x};
use crate::formats::kquants::{Q8K, Q8K_BSUMS, Q8K_QS};
use crate::formats::packed::kquants::*;
use crate::types::Tile;
use hearth_gguf::GgmlType;
use std::arch::aarch64::*;

/// Tokens per pass at most.
const TOKENS: usize = 4;

/// The 8 outputs of every group `g < groups` against every token `k < tokens` (see
/// `formats::packed::kquants`): group `g`'s packed bytes at `t.w + g * t.wrb`, token `k`'s
/// Q8_K row at `t.x + k * t.xrb`, outputs at `t.out + k * t.ostride + 8 * g + (0..8)`.
/// Each output equals [`dot_ref`] bit for bit. Tokens run 4 per pass, the rest in one
/// narrower pass; each pass walks every group, so its activations stay in L1 while the
/// groups stream past.
///
/// # Safety
/// `ty` is [supported](supports); each group holds `nb` packed blocks, each token row `nb`
/// Q8_K blocks, and the outputs are writable and not read or written by anyone else during
/// the call.
#[target_feature(enable = "neon")]
pub(crate) unsafe fn tile_neon(ty: GgmlType, nb: usize, t: &Tile, groups: usize, tokens: usize) {
    // SAFETY: forwarded from the caller.
    unsafe { tiles::<Neon, false>(ty, nb, t, groups, tokens) }
}

/// [`tile_neon`] with `sdot`: bit-identical outputs.
///
/// # Safety
/// As [`tile_neon`], and the CPU has the dot-product extension.
#[target_feature(enable = "neon")]
pub(crate) unsafe fn tile_dot(ty: GgmlType, nb: usize, t: &Tile, groups: usize, tokens: usize) {
    // SAFETY: forwarded from the caller.
    unsafe { tiles::<DotProd, false>(ty, nb, t, groups, tokens) }
}

/// [`tile_dot`] with `smmla` for pairs of tokens (two rows × two tokens × eight bytes per
/// instruction); a lone token runs the `sdot` code. Bit-identical outputs.
///
/// # Safety
/// As [`tile_neon`], and the CPU has the dot-product and int8 matrix-multiply extensions.
#[target_feature(enable = "neon")]
pub(crate) unsafe fn tile_i8mm(ty: GgmlType, nb: usize, t: &Tile, groups: usize, tokens: usize) {
    // SAFETY: forwarded from the caller.
    unsafe { tiles::<DotProd, true>(ty, nb, t, groups, tokens) }
}

/// # Safety
/// As [`tile_neon`], with `D`'s features (and i8mm for `MM`).
#[inline(always)]
unsafe fn tiles<D: Dot, const MM: bool>(
    ty: GgmlType,
    nb: usize,
    t: &Tile,
    groups: usize,
    tokens: usize,
) {
    let q4 = ty == GgmlType::Q4_K;
    let mut k = 0;
    while k < tokens {
        let n = (tokens - k).min(TOKENS);
        for g in 0..groups {
            let p = Pass::new(nb, t, g, k);
            let mut done = 0;
            while done < n {
                let p = p.at_token(done);
                // SAFETY: group `g < groups` and tokens `k + done..k + n` are inside the
                // caller's ranges.
                done += unsafe {
                    match n - done {
                        4 if MM && q4 => q4k_mm::<2>(&p),
                        4 if MM => q6k_mm::<2>(&p),
                        2 | 3 if MM && q4 => q4k_mm::<1>(&p),
                        2 | 3 if MM => q6k_mm::<1>(&p),
                        4 if q4 => q4k::<D, 4>(&p),
                        3 if q4 => q4k::<D, 3>(&p),
                        2 if q4 => q4k::<D, 2>(&p),
                        _ if q4 => q4k::<D, 1>(&p),
                        4 => q6k::<D, 4>(&p),
                        3 => q6k::<D, 3>(&p),
                        2 => q6k::<D, 2>(&p),
                        _ => q6k::<D, 1>(&p),
                    }
                };
            }
        }
        k += n;
    }
}

/// One pass: one packed group (`nb` blocks at `w`) against consecutive tokens (at `x`, `xrb`
/// apart), outputs at `out + k * ostride + (0..8)`.
#[derive(Clone, Copy)]
struct Pass {
    nb: usize,
    w: *const u8,
    x: *const u8,
    xrb: usize,
    out: *mut f32,
    ostride: usize,
}

impl Pass {
    /// Group `g` of `t` against the tokens from `k` on (pointer arithmetic only).
    #[inline(always)]
    fn new(nb: usize, t: &Tile, g: usize, k: usize) -> Pass {
        Pass {
            nb,
            w: t.w.wrapping_add(g * t.wrb),
            x: t.x.wrapping_add(k * t.xrb),
            xrb: t.xrb,
            out: t.out.wrapping_add(k * t.ostride + ROWS * g),
            ostride: t.ostride,
        }
    }

    /// The same pass from token `k` on.
    #[inline(always)]
    fn at_token(&self, k: usize) -> Pass {
        Pass {
            x: self.x.wrapping_add(k * self.xrb),
            out: self.out.wrapping_add(k * self.ostride),
            ..*self
        }
    }

    /// Q8_K block `b` of token `k`.
    #[inline(always)]
    fn xb(&self, k: usize, b: usize) -> *const u8 {
        self.x.wrapping_add(k * self.xrb + b * Q8K)
    }
}

// Safety of the helpers: each reads the bytes its doc names at its pointer, a packed block or
// a Q8_K block inside the ranges the calling kernel's contract covers.

/// The Q8_K block's `d`.
#[inline(always)]
unsafe fn q8_d(xb: *const u8) -> f32 {
    // SAFETY: the block's first four bytes are its f32 `d`.
    unsafe { (xb as *const f32).read_unaligned() }
}

/// Q4_K's scales and mins of the packed block at `wb` (from its planes, see the module docs
/// of `formats::packed::kquants`), sub-block `j`'s as i32 lanes for rows 0–3 and 4–7.
#[inline(always)]
unsafe fn q4k_scales_mins(wb: *const u8) -> ([[int32x4_t; 2]; 8], [[int32x4_t; 2]; 8]) {
    let m4 = vdupq_n_u8(0x0f);
    let m30 = vdupq_n_u8(0x30);
    // SAFETY: the three planes are inside the block.
    let (a, b, h) = unsafe {
        (
            load2(wb.add(Q4_PLANE_A)),
            load2(wb.add(Q4_PLANE_B)),
            load2(wb.add(Q4_PLANE_H)),
        )
    };
    // `S` bytes 0..64 and `M` bytes 0..64, sixteen per register.
    let mut s = [vdupq_n_u8(0); 4];
    let mut m = [vdupq_n_u8(0); 4];
    for i in 0..2 {
        let hh = h[i];
        s[i] = vorrq_u8(
            vandq_u8(a[i], m4),
            vshlq_n_u8::<4>(vandq_u8(hh, vdupq_n_u8(3))),
        );
        m[i] = vorrq_u8(vshrq_n_u8::<4>(a[i]), vandq_u8(vshlq_n_u8::<2>(hh), m30));
        s[2 + i] = vorrq_u8(vandq_u8(b[i], m4), vandq_u8(hh, m30));
        m[2 + i] = vorrq_u8(vshrq_n_u8::<4>(b[i]), vandq_u8(vshrq_n_u8::<2>(hh), m30));
    }
    let widen = |v: uint16x8_t| {
        [
            vreinterpretq_s32_u32(vmovl_u16(vget_low_u16(v))),
            vreinterpretq_s32_u32(vmovl_high_u16(v)),
        ]
    };
    let mut sc = [[vdupq_n_s32(0); 2]; 8];
    let mut mn = [[vdupq_n_s32(0); 2]; 8];
    for i in 0..4 {
        // `S[8j + r]`: register `i` holds sub-blocks `2i` and `2i + 1`, eight rows each.
        sc[2 * i] = widen(vmovl_u8(vget_low_u8(s[i])));
        sc[2 * i + 1] = widen(vmovl_high_u8(s[i]));
        // `M[16i + 2r + k]`: register `i` holds mins `2i + k` of rows 0..8 as pairs; as
        // u32 lanes, `2i` is the low half and `2i + 1` the high half.
        let pairs = [
            vreinterpretq_u32_u16(vmovl_u8(vget_low_u8(m[i]))),
            vreinterpretq_u32_u16(vmovl_high_u8(m[i])),
        ];
        for half in 0..2 {
            let v = pairs[half];
            mn[2 * i][half] = vreinterpretq_s32_u32(vandq_u32(v, vdupq_n_u32(0xffff)));
            mn[2 * i + 1][half] = vreinterpretq_s32_u32(vshrq_n_u32::<16>(v));
        }
    }
    (sc, mn)
}

/// Q4_K's `msum` of the eight rows against the Q8_K block at `xb`: `Σ_j m[j]·(bsums[2j] +
/// bsums[2j + 1])`, in i32 (exact whatever the `bsums`).
#[inline(always)]
unsafe fn q4k_msum(mn: &[[int32x4_t; 2]; 8], xb: *const u8) -> [int32x4_t; 2] {
    // SAFETY: the 16 i16 `bsums` are inside the block.
    let bs = unsafe {
        [
            vreinterpretq_s16_u8(vld1q_u8(xb.add(Q8K_BSUMS))),
            vreinterpretq_s16_u8(vld1q_u8(xb.add(Q8K_BSUMS + 16))),
        ]
    };
    let mut pair = [0i32; 8];
    // SAFETY: `pair` holds eight i32.
    unsafe {
        vst1q_s32(pair.as_mut_ptr(), vpaddlq_s16(bs[0]));
        vst1q_s32(pair.as_mut_ptr().add(4), vpaddlq_s16(bs[1]));
    }
    let mut msum = [vdupq_n_s32(0); 2];
    for j in 0..8 {
        for half in 0..2 {
            msum[half] = vmlaq_n_s32(msum[half], mn[j][half], pair[j]);
        }
    }
    msum
}

/// Q4_K against `T` tokens.
///
/// # Safety
/// As [`tile_neon`] for the pass's group and `T` tokens, with `D`'s features.
#[inline(always)]
unsafe fn q4k<D: Dot, const T: usize>(p: &Pass) -> usize {
    let m4 = vdupq_n_u8(0x0f);
    let zero = vdupq_n_s32(0);
    let mut acc = [[vdupq_n_f32(0.0); 2]; T];
    for b in 0..p.nb {
        // SAFETY: block `b` of the group and of the `T` tokens' rows is readable (the
        // caller's contract); every offset below is inside its block.
        unsafe {
            let wb = p.w.add(b * Q4_BLOCK);
            let (sc, mn) = q4k_scales_mins(wb);
            let mut isum = [[zero; 2]; T];
            for q in 0..4 {
                // Sub-blocks 2q (low nibbles) and 2q + 1 (high nibbles).
                let (mut lo, mut hi) = ([[zero; 2]; T], [[zero; 2]; T]);
                for c in 0..8 {
                    let v = load2(wb.add(Q4_QS + 32 * (8 * q + c)));
                    let ql = [
                        vreinterpretq_s8_u8(vandq_u8(v[0], m4)),
                        vreinterpretq_s8_u8(vandq_u8(v[1], m4)),
                    ];
                    let qh = [
                        vreinterpretq_s8_u8(vshrq_n_u8::<4>(v[0])),
                        vreinterpretq_s8_u8(vshrq_n_u8::<4>(v[1])),
                    ];
                    for k in 0..T {
                        let xq = p.xb(k, b).add(Q8K_QS + 64 * q + 4 * c);
                        let (x0, x1) = (bcast4(xq), bcast4(xq.add(32)));
                        for h in 0..2 {
                            lo[k][h] = D::dot(lo[k][h], ql[h], x0);
                            hi[k][h] = D::dot(hi[k][h], qh[h], x1);
                        }
                    }
                }
                for k in 0..T {
                    for h in 0..2 {
                        let s = vmlaq_s32(isum[k][h], lo[k][h], sc[2 * q][h]);
                        isum[k][h] = vmlaq_s32(s, hi[k][h], sc[2 * q + 1][h]);
                    }
                }
            }
            q4k_finish(&mut acc, isum, &mn, wb, p, b);
        }
    }
    store_all(p, acc)
}

/// Q4_K's float steps of block `b` (packed at `wb`) for `T` tokens with exact sums `isum`.
///
/// # Safety
/// The packed block at `wb` and block `b` of the pass's `T` tokens are readable.
#[inline(always)]
unsafe fn q4k_finish<const T: usize>(
    acc: &mut [[float32x4_t; 2]; T],
    isum: [[int32x4_t; 2]; T],
    mn: &[[int32x4_t; 2]; 8],
    wb: *const u8,
    p: &Pass,
    b: usize,
) {
    // SAFETY: the caller's contract; `d` and `dmin` are inside the block.
    unsafe {
        let (dw, dminw) = (f16x8(wb.add(Q4_D)), f16x8(wb.add(Q4_DMIN)));
        for k in 0..T {
            let xb = p.xb(k, b);
            let msum = q4k_msum(mn, xb);
            let d = q8_d(xb);
            scale_add(&mut acc[k], isum[k], dw, d);
            let dx = vdupq_n_f32(d);
            for h in 0..2 {
                let dd = vmulq_f32(dminw[h], dx);
                acc[k][h] = vfmsq_f32(acc[k][h], vcvtq_f32_s32(msum[h]), dd);
            }
        }
    }
}

/// Stores the `T` tokens' outputs of the pass; returns `T`.
///
/// # Safety
/// The group's eight outputs of each of the pass's `T` tokens are writable.
#[inline(always)]
unsafe fn store_all<const T: usize>(p: &Pass, acc: [[float32x4_t; 2]; T]) -> usize {
    for k in 0..T {
        // SAFETY: the caller's contract.
        unsafe { store8(p.out.add(k * p.ostride), acc[k]) };
    }
    T
}

/// Q4_K against `2P` tokens with `smmla`: units `2m` and `2m + 1` of a sub-block pair hold
/// activation quants `8m..8m + 8` in order (low nibbles; high nibbles 32 further), so
/// they zip into `smmla` row pairs (see `packed_legacy::mm_rows`).
///
/// # Safety
/// As [`tile_i8mm`] for the pass's group and `2P` tokens.
#[inline(always)]
unsafe fn q4k_mm<const P: usize>(p: &Pass) -> usize {
    let m4 = vdupq_n_u8(0x0f);
    let zero = vdupq_n_s32(0);
    let mut acc = [[[vdupq_n_f32(0.0); 2]; 2]; P];
    for b in 0..p.nb {
        // SAFETY: block `b` of the group and of the `2P` tokens' rows is readable (the
        // caller's contract); every offset below is inside its block; the CPU has i8mm.
        unsafe {
            let wb = p.w.add(b * Q4_BLOCK);
            let (sc, mn) = q4k_scales_mins(wb);
            // [pair][token of the pair][rows 0–3, 4–7]
            let mut isum = [[[zero; 2]; 2]; P];
            for q in 0..4 {
                // Sub-blocks 2q (low nibbles) and 2q + 1 (high nibbles): [pair][row pair].
                let (mut lo, mut hi) = ([[zero; 4]; P], [[zero; 4]; P]);
                for m in 0..4 {
                    let v0 = load2(wb.add(Q4_QS + 32 * (8 * q + 2 * m)));
                    let v1 = load2(wb.add(Q4_QS + 32 * (8 * q + 2 * m + 1)));
                    let low = |v: [uint8x16_t; 2]| v.map(|v| vreinterpretq_s8_u8(vandq_u8(v, m4)));
                    let high =
                        |v: [uint8x16_t; 2]| v.map(|v| vreinterpretq_s8_u8(vshrq_n_u8::<4>(v)));
                    let rl = mm_rows(low(v0), low(v1));
                    let rh = mm_rows(high(v0), high(v1));
                    for pq in 0..P {
                        let x0 = p.xb(2 * pq, b).add(Q8K_QS + 64 * q + 8 * m);
                        let x1 = p.xb(2 * pq + 1, b).add(Q8K_QS + 64 * q + 8 * m);
                        mm_acc(&mut lo[pq], &rl, mm_x(x0, x1));
                        mm_acc(&mut hi[pq], &rh, mm_x(x0.add(32), x1.add(32)));
                    }
                }
                for pq in 0..P {
                    let (sl, sh) = (mm_split(lo[pq]), mm_split(hi[pq]));
                    for j in 0..2 {
                        for h in 0..2 {
                            let s = vmlaq_s32(isum[pq][j][h], sl[j][h], sc[2 * q][h]);
                            isum[pq][j][h] = vmlaq_s32(s, sh[j][h], sc[2 * q + 1][h]);
                        }
                    }
                }
            }
            for pq in 0..P {
                q4k_finish(&mut acc[pq], isum[pq], &mn, wb, &p.at_token(2 * pq), b);
            }
        }
    }
    for pq in 0..P {
        // SAFETY: the outputs of the pass's `2P` tokens are writable.
        unsafe { store_all(&p.at_token(2 * pq), acc[pq]) };
    }
    2 * P
}

/// Q6_K's codes minus 32 of unit `c` of half `h`, all rows, for quarters `2tp` and
/// `2tp + 1` of the half (elements `128h + 32t + 4c + 0..4`): nibble `tp` of the `ql` unit
/// of quarter `t % 2`, with bit pair `t` of the `qh` unit as bits 4–5 (GGUF's element
/// order, see `q6k_sum`).
#[inline(always)]
unsafe fn q6k_codes(wb: *const u8, h: usize, c: usize, tp: usize) -> [[int8x16_t; 2]; 2] {
    // SAFETY: the unit's 96 bytes are inside the block.
    let (ql0, ql1, qh) = unsafe {
        let unit = wb.add(Q6_CODES + 96 * (8 * h + c));
        (load2(unit), load2(unit.add(32)), load2(unit.add(64)))
    };
    let m4 = vdupq_n_u8(0x0f);
    let m30 = vdupq_n_u8(0x30);
    let bias = vdupq_n_s8(32);
    let mut out = [[vdupq_n_s8(0); 2]; 2];
    for half in 0..2 {
        let (c0, c1) = if tp == 0 {
            (
                vorrq_u8(
                    vandq_u8(ql0[half], m4),
                    vandq_u8(vshlq_n_u8::<4>(qh[half]), m30),
                ),
                vorrq_u8(
                    vandq_u8(ql1[half], m4),
                    vandq_u8(vshlq_n_u8::<2>(qh[half]), m30),
                ),
            )
        } else {
            (
                vorrq_u8(vshrq_n_u8::<4>(ql0[half]), vandq_u8(qh[half], m30)),
                vorrq_u8(
                    vshrq_n_u8::<4>(ql1[half]),
                    vshrq_n_u8::<2>(vandq_u8(qh[half], vdupq_n_u8(0xc0))),
                ),
            )
        };
        out[0][half] = vsubq_s8(vreinterpretq_s8_u8(c0), bias);
        out[1][half] = vsubq_s8(vreinterpretq_s8_u8(c1), bias);
    }
    out
}

/// Q6_K's scales of sub-block `2i + k` as i32 lanes for rows 0–3 and 4–7 (the packed
/// scales hold `(s[2i], s[2i + 1])` pairs per row).
#[inline(always)]
unsafe fn q6k_scales(wb: *const u8, i: usize, k: usize) -> [int32x4_t; 2] {
    // SAFETY: the 16 bytes of pair `i` are inside the block's scales.
    let v = unsafe { vreinterpretq_s8_u8(vld1q_u8(wb.add(Q6_SC + 16 * i))) };
    let pairs = [
        vreinterpretq_s32_s16(vmovl_s8(vget_low_s8(v))),
        vreinterpretq_s32_s16(vmovl_high_s8(v)),
    ];
    // Little-endian: `s[2i]` is the low i16 of each lane, `s[2i + 1]` the high one.
    pairs.map(|v| {
        if k == 0 {
            vshrq_n_s32::<16>(vshlq_n_s32::<16>(v))
        } else {
            vshrq_n_s32::<16>(v)
        }
    })
}

/// Q6_K against `T` tokens. Sub-block `j = 8h + 2t + cc` covers units `4cc..4cc + 4` of
/// quarter `t` of half `h`.
///
/// # Safety
/// As [`tile_neon`] for the pass's group and `T` tokens, with `D`'s features.
#[inline(always)]
unsafe fn q6k<D: Dot, const T: usize>(p: &Pass) -> usize {
    let zero = vdupq_n_s32(0);
    let mut acc = [[vdupq_n_f32(0.0); 2]; T];
    for b in 0..p.nb {
        // SAFETY: block `b` of the group and of the `T` tokens' rows is readable (the
        // caller's contract); every offset below is inside its block.
        unsafe {
            let wb = p.w.add(b * Q6_BLOCK);
            let mut isum = [[zero; 2]; T];
            for h in 0..2 {
                for cc in 0..2 {
                    for tp in 0..2 {
                        // [quarter 2tp + tl][token][rows 0–3, 4–7]
                        let mut s = [[[zero; 2]; T]; 2];
                        for c in 4 * cc..4 * cc + 4 {
                            let q = q6k_codes(wb, h, c, tp);
                            for k in 0..T {
                                let xq = p.xb(k, b).add(Q8K_QS + 128 * h + 4 * c);
                                for tl in 0..2 {
                                    let x = bcast4(xq.add(32 * (2 * tp + tl)));
                                    for half in 0..2 {
                                        s[tl][k][half] = D::dot(s[tl][k][half], q[tl][half], x);
                                    }
                                }
                            }
                        }
                        for tl in 0..2 {
                            let sc = q6k_scales(wb, 4 * h + 2 * tp + tl, cc);
                            for k in 0..T {
                                for half in 0..2 {
                                    isum[k][half] =
                                        vmlaq_s32(isum[k][half], s[tl][k][half], sc[half]);
                                }
                            }
                        }
                    }
                }
            }
            q6k_finish(&mut acc, isum, wb, p, b);
        }
    }
    store_all(p, acc)
}

/// Q6_K's float steps of block `b` (packed at `wb`) for `T` tokens with exact sums `isum`.
///
/// # Safety
/// The packed block at `wb` and block `b` of the pass's `T` tokens are readable.
#[inline(always)]
unsafe fn q6k_finish<const T: usize>(
    acc: &mut [[float32x4_t; 2]; T],
    isum: [[int32x4_t; 2]; T],
    wb: *const u8,
    p: &Pass,
    b: usize,
) {
    // SAFETY: the caller's contract; `d` is inside the block.
    unsafe {
        let dw = f16x8(wb.add(Q6_D));
        for k in 0..T {
            scale_add(&mut acc[k], isum[k], dw, q8_d(p.xb(k, b)));
        }
    }
}

/// Q6_K against `2P` tokens with `smmla`: units `2m` and `2m + 1` of a quarter hold its
/// activation quants `8m..8m + 8` in order, so they zip into `smmla` row pairs.
///
/// # Safety
/// As [`tile_i8mm`] for the pass's group and `2P` tokens.
#[inline(always)]
unsafe fn q6k_mm<const P: usize>(p: &Pass) -> usize {
    let zero = vdupq_n_s32(0);
    let mut acc = [[[vdupq_n_f32(0.0); 2]; 2]; P];
    for b in 0..p.nb {
        // SAFETY: block `b` of the group and of the `2P` tokens' rows is readable (the
        // caller's contract); every offset below is inside its block; the CPU has i8mm.
        unsafe {
            let wb = p.w.add(b * Q6_BLOCK);
            // [pair][token of the pair][rows 0–3, 4–7]
            let mut isum = [[[zero; 2]; 2]; P];
            for h in 0..2 {
                for cc in 0..2 {
                    for tp in 0..2 {
                        // [quarter 2tp + tl][pair][row pair]
                        let mut s = [[[zero; 4]; P]; 2];
                        for m in 2 * cc..2 * cc + 2 {
                            let q0 = q6k_codes(wb, h, 2 * m, tp);
                            let q1 = q6k_codes(wb, h, 2 * m + 1, tp);
                            for tl in 0..2 {
                                let rows = mm_rows(q0[tl], q1[tl]);
                                let off = Q8K_QS + 128 * h + 32 * (2 * tp + tl) + 8 * m;
                                for pq in 0..P {
                                    let x0 = p.xb(2 * pq, b).add(off);
                                    let x1 = p.xb(2 * pq + 1, b).add(off);
                                    mm_acc(&mut s[tl][pq], &rows, mm_x(x0, x1));
                                }
                            }
                        }
                        for tl in 0..2 {
                            let sc = q6k_scales(wb, 4 * h + 2 * tp + tl, cc);
                            for pq in 0..P {
                                let st = mm_split(s[tl][pq]);
                                for j in 0..2 {
                                    for half in 0..2 {
                                        isum[pq][j][half] =
                                            vmlaq_s32(isum[pq][j][half], st[j][half], sc[half]);
                                    }
                                }
                            }
                        }
                    }
                }
            }
            for pq in 0..P {
                q6k_finish(&mut acc[pq], isum[pq], wb, &p.at_token(2 * pq), b);
            }
        }
    }
    for pq in 0..P {
        // SAFETY: the outputs of the pass's `2P` tokens are writable.
        unsafe { store_all(&p.at_token(2 * pq), acc[pq]) };
    }
    2 * P
}

/// The kernels of every ARM level this CPU has against the scalar reference, on the
/// reference's own extreme blocks (all codes and scales at their limits, activations at
/// −128 and 127).
#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::packed::kquants::tests_support::*;
    use crate::simd::{supported, Level};
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    /// A kernel under test.
    type Kernel = unsafe fn(GgmlType, usize, &Tile, usize, usize);

    /// The kernels this CPU can run, by name.
    fn kernels() -> Vec<(&'static str, Kernel)> {
        let mut k: Vec<(&'static str, Kernel)> = Vec::new();
        if supported(Level::Neon) {
            k.push(("neon", tile_neon));
        }
        if supported(Level::NeonDot) {
            k.push(("dotprod", tile_dot));
        }
        if supported(Level::NeonI8mm) {
            k.push(("i8mm", tile_i8mm));
        }
        assert!(!k.is_empty(), "every aarch64 CPU has NEON");
        k
    }

    /// Runs every kernel on `groups` packed groups × the `tokens` rows of `xq` and checks
    /// each output's bits against `dot_ref`, and that nothing outside the outputs is written.
    fn check_kernels(ty: GgmlType, nb: usize, packed: &[u8], xq: &[u8], tokens: usize) {
        let gb = ROWS * nb * ty.type_size();
        let groups = packed.len() / gb;
        let xrb = nb * Q8K;
        let ostride = ROWS * groups + 3;
        let sentinel = -1234.5f32;
        let want: Vec<[f32; 8]> = (0..groups * tokens)
            .map(|i| {
                let (g, k) = (i / tokens, i % tokens);
                dot_ref(
                    ty,
                    nb,
                    &packed[g * gb..(g + 1) * gb],
                    &xq[k * xrb..(k + 1) * xrb],
                )
            })
            .collect();
        for (name, kernel) in kernels() {
            let mut out = vec![sentinel; tokens * ostride];
            let t = Tile {
                w: packed.as_ptr(),
                wrb: gb,
                x: xq.as_ptr(),
                xrb,
                out: out.as_mut_ptr(),
                ostride,
            };
            // SAFETY: `kernels` returned only kernels this CPU supports; the buffers hold
            // `groups` packed groups, `tokens` Q8_K rows and `tokens * ostride` outputs.
            unsafe { kernel(ty, nb, &t, groups, tokens) };
            for k in 0..tokens {
                for c in 0..ostride {
                    let got = out[k * ostride + c];
                    if c >= ROWS * groups {
                        assert_eq!(got, sentinel, "{name} {ty} wrote column {c}");
                        continue;
                    }
                    let w = want[(c / ROWS) * tokens + k][c % ROWS];
                    assert_eq!(
                        got.to_bits(),
                        w.to_bits(),
                        "{name} {ty} nb={nb} groups={groups} tokens={tokens} token {k} \
                         row {c}: {got} vs reference {w}"
                    );
                }
            }
        }
    }

    #[test]
    fn kernels_equal_the_reference_bit_for_bit() {
        let mut rng = StdRng::seed_from_u64(10);
        for ty in TYPES {
            for nb in 1..=2 {
                for groups in 1..=2 {
                    let packed = pack_all(ty, nb, &random_rows(ty, nb * groups, &mut rng));
                    // `random_rows` makes 8 rows of `nb * groups` blocks: the same bytes as
                    // `groups` groups of 8 rows of `nb` blocks.
                    let xq = random_x(nb, 17, &mut rng);
                    for tokens in 1..=17 {
                        check_kernels(ty, nb, &packed, &xq[..tokens * nb * Q8K], tokens);
                    }
                }
            }
        }
    }

    #[test]
    fn kernels_equal_the_reference_on_extreme_blocks() {
        let (mut rng, nb) = (StdRng::seed_from_u64(12), 2);
        for ty in TYPES {
            for rows in extreme_rows(ty, 2 * nb, &mut rng) {
                let packed = pack_all(ty, nb, &rows);
                let mut xq = extreme_x(nb, &mut rng);
                xq.extend(random_x(nb, 4, &mut rng));
                let tokens = xq.len() / (nb * Q8K);
                for t in [1, 2, 3, 4, tokens] {
                    check_kernels(ty, nb, &packed, &xq[..t * nb * Q8K], t);
                }
            }
        }
    }
}
