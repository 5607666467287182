//! Multi-token tiles for the 32-element formats on NEON (with the dot-product extension where
//! the CPU has it): `R` weight rows × `T` activation rows per call, each weight block loaded and
//! unpacked once for all `T` tokens. The body is generic over the integer dot (`IntDot`) and
//! compiled once per level ([`dot_tile_neon`], [`dot_tile_sdot`]).
//!
//! # Same bits as `vec_dot`
//! The reference (`formats::legacy::dot_scalar`, which `arm::legacy` follows) sends block `i`
//! to accumulator `i % 4` with one fused multiply-add of `d_w · d_x` (one f32 multiplication)
//! per lane sum, then reduces `(a0 + a1) + (a2 + a3)` and the eight lanes in a fixed order
//! (plus, for the offset formats, four scalar sums of `m_w · s_x` reduced the same way). Only the
//! order *within* one accumulator matters for the bits, not how the four accumulators' updates
//! interleave. So a tile walks accumulator `k` at a time over blocks `k, k + 4, k + 8, …`:
//! each (row, token) pair then needs one live accumulator (two vectors) instead of four, which
//! lets `R · T` pairs sit in registers, and every pair performs exactly the reference's
//! operations in its order. The integer lane sums are exact whichever instruction forms them.

// The loops index several parallel per-(row, token) arrays of constant size at once; index
// ranges say that more plainly than zipped iterators.
#![allow(clippy::needless_range_loop)]

use super::legacy::{f16x4, hsum, lanes, quants, u16_at, unpack, IntDot, Mull, Sdot};
use crate::simd::Level;
use crate::types::Tile;
use hearth_gguf::GgmlType;
use std::arch::aarch64::*;

/// Tokens per tile; the last `n % TOKENS` tokens run as a narrower tile.
pub(crate) const TOKENS: usize = 4;

/// Weight rows per tile: 2 × 4 pairs of two accumulator vectors fill half of the 32 NEON
/// registers, leaving the rest for the unpacked weights, one token's quants and temporaries.
const ROWS: usize = 2;

/// Whether `ty` has a tile kernel here.
pub(crate) fn supports(ty: GgmlType) -> bool {
    use GgmlType::*;
    matches!(ty, Q4_0 | Q4_1 | Q5_0 | Q5_1 | Q8_0)
}

/// Most blocks per row whose activation scales a tile keeps converted on the stack (rows up to
/// 32768 elements); longer rows run through the single-token kernel, with the same bits.
const MAX_BLOCKS: usize = 1024;

/// The stack buffer of activation scales, aligned for vector loads.
#[repr(align(16))]
struct Scales([std::mem::MaybeUninit<f32>; 2 * TOKENS * MAX_BLOCKS]);

/// Every (row, token) product of `rows` weight rows and `tokens` activation rows, each equal to
/// the NEON `vec_dot` of the pair (and so to the scalar reference) bit for bit.
///
/// # Safety
/// `ty` is one [`supports`] accepts; for `r < rows` the `nb` blocks of `ty` at
/// `t.w + r * t.wrb`, and for `k < tokens` the `nb` activation blocks (Q8_0 or Q8_1, as
/// `activation_type(ty)`) at `t.x + k * t.xrb`, are readable; the outputs
/// `t.out + k * t.ostride + r` are writable and no one else accesses them meanwhile.
#[target_feature(enable = "neon")]
pub(crate) unsafe fn dot_tile_neon(ty: GgmlType, nb: usize, t: &Tile, rows: usize, tokens: usize) {
    // SAFETY: forwarded from the caller.
    unsafe { tiles::<Mull, false>(ty, nb, t, rows, tokens) }
}

/// [`dot_tile_neon`] with `sdot`: the same bits.
///
/// # Safety
/// As [`dot_tile_neon`], and the CPU has the dot-product extension.
#[target_feature(enable = "neon")]
pub(crate) unsafe fn dot_tile_sdot(ty: GgmlType, nb: usize, t: &Tile, rows: usize, tokens: usize) {
    // SAFETY: forwarded from the caller.
    unsafe { tiles::<Sdot, false>(ty, nb, t, rows, tokens) }
}

/// [`dot_tile_neon`] with `smmla`, two rows × two tokens per instruction: the same bits.
///
/// `smmla` sums eight products where the reference's lanes sum four, so each weight operand
/// carries one lane's four bytes and four zeros per row of the instruction (see
/// [`tile_mmla`]): half of its multiplies are of zeros, and it forms as many lane sums per
/// instruction as `sdot` does, with the f32 scales of a token pair in one vector.
///
/// # Safety
/// As [`dot_tile_neon`], and the CPU has the int8 matrix-multiply extension (and so the
/// dot-product one, whose single-token kernel the longest rows fall back to).
#[target_feature(enable = "neon")]
pub(crate) unsafe fn dot_tile_i8mm(ty: GgmlType, nb: usize, t: &Tile, rows: usize, tokens: usize) {
    // SAFETY: forwarded from the caller.
    unsafe { tiles::<Sdot, true>(ty, nb, t, rows, tokens) }
}

/// The body of the tiles with integer dot `D`, or `smmla` with `MMLA`.
///
/// # Safety
/// As [`dot_tile_neon`]; the CPU has the features of `D::LEVEL`, and i8mm with `MMLA`.
#[inline(always)]
unsafe fn tiles<D: IntDot, const MMLA: bool>(
    ty: GgmlType,
    nb: usize,
    t: &Tile,
    rows: usize,
    tokens: usize,
) {
    let offset = matches!(ty, GgmlType::Q4_1 | GgmlType::Q5_1);
    let xbs = if offset { 36 } else { 34 };
    if nb > MAX_BLOCKS {
        // SAFETY: forwarded from the caller.
        return unsafe { one_by_one::<D>(ty, nb, t, rows, tokens, xbs) };
    }
    // The activation scales `d` (and `s` for the offset formats) of one token tile as f32,
    // `[block][token]`, converted once and shared by every row pair. Lanes of tokens past the
    // tile's width are zero: their products are computed and dropped.
    let mut scales = Scales([std::mem::MaybeUninit::<f32>::uninit(); 2 * TOKENS * MAX_BLOCKS]);
    let (ds, ss) = scales.0.split_at_mut(TOKENS * MAX_BLOCKS);
    let mut t0 = 0;
    while t0 < tokens {
        let nt = (tokens - t0).min(TOKENS);
        for i in 0..nb {
            // SAFETY (closure): block `i < nb` of token `t0 + tt < tokens` is readable: d at
            // byte 0, s (Q8_1) at byte 2.
            let h = |tt: usize, off: usize| {
                if tt < nt {
                    unsafe { u16_at(t.x.add((t0 + tt) * t.xrb + i * xbs + off)) }
                } else {
                    0
                }
            };
            let d = f16x4(std::array::from_fn(|tt| h(tt, 0)));
            let s = if offset {
                f16x4(std::array::from_fn(|tt| h(tt, 2)))
            } else {
                vdupq_n_f32(0.0)
            };
            // SAFETY: `ds` and `ss` have room for `TOKENS` f32 at block `i < MAX_BLOCKS`.
            unsafe {
                vst1q_f32(ds.as_mut_ptr().add(i * TOKENS) as *mut f32, d);
                vst1q_f32(ss.as_mut_ptr().add(i * TOKENS) as *mut f32, s);
            }
        }
        let (ds, ss) = (ds.as_ptr() as *const f32, ss.as_ptr() as *const f32);
        let mut r0 = 0;
        while r0 < rows {
            let nr = (rows - r0).min(ROWS);
            let tile = t.at(r0, t0);
            // SAFETY: rows `r0..r0 + nr` and tokens `t0..t0 + nt` are inside the caller's
            // ranges, so the caller's contract covers this sub-tile; `ds` / `ss` hold the
            // scales of its `nb` blocks.
            unsafe { shape::<D, MMLA>(ty, nb, &tile, nr, nt, ds, ss) };
            r0 += nr;
        }
        t0 += nt;
    }
}

/// The tile as one single-token kernel call per (row, token), for rows too long for the
/// stack buffer of scales.
///
/// # Safety
/// As [`tiles`].
#[inline(never)]
unsafe fn one_by_one<D: IntDot>(
    ty: GgmlType,
    nb: usize,
    t: &Tile,
    rows: usize,
    tokens: usize,
    xbs: usize,
) {
    let wbs = ty.type_size();
    for tt in 0..tokens {
        for r in 0..rows {
            // SAFETY: the caller's contract: `nb` whole blocks per row and token, a writable
            // output, and the CPU features of `D::LEVEL`, whose single-token kernel this calls.
            unsafe {
                let w = std::slice::from_raw_parts(t.w.add(r * t.wrb), nb * wbs);
                let x = std::slice::from_raw_parts(t.x.add(tt * t.xrb), nb * xbs);
                *t.out.add(tt * t.ostride + r) = match D::LEVEL {
                    Level::Neon => super::legacy::vec_dot_neon(ty, nb, w, x),
                    _ => super::legacy::vec_dot_sdot(ty, nb, w, x),
                };
            }
        }
    }
}

/// Dispatches one tile of `nr ≤ ROWS` rows and `nt ≤ TOKENS` tokens to its monomorphized
/// kernel (constant sizes keep the accumulators in registers).
///
/// # Safety
/// As [`tiles`], for `nr` rows and `nt` tokens.
#[inline(always)]
unsafe fn shape<D: IntDot, const MMLA: bool>(
    ty: GgmlType,
    nb: usize,
    t: &Tile,
    nr: usize,
    nt: usize,
    ds: *const f32,
    ss: *const f32,
) {
    macro_rules! go {
        ($r:literal) => {
            match (MMLA, nt) {
                (false, 1) => kernel::<D, $r, 1>(ty, nb, t, ds, ss),
                (false, 2) => kernel::<D, $r, 2>(ty, nb, t, ds, ss),
                (false, 3) => kernel::<D, $r, 3>(ty, nb, t, ds, ss),
                (false, _) => kernel::<D, $r, 4>(ty, nb, t, ds, ss),
                (true, 1) => kernel_mmla::<$r, 1>(ty, nb, t, ds, ss),
                (true, 2) => kernel_mmla::<$r, 2>(ty, nb, t, ds, ss),
                (true, 3) => kernel_mmla::<$r, 3>(ty, nb, t, ds, ss),
                (true, _) => kernel_mmla::<$r, 4>(ty, nb, t, ds, ss),
            }
        };
    }
    // SAFETY: forwarded from the caller.
    unsafe {
        match nr {
            1 => go!(1),
            _ => go!(2),
        }
    }
}

/// # Safety
/// As [`dot_tile_neon`], for `R` rows and `T` tokens; `ds` and `ss` point at the tile's
/// activation scales, `TOKENS` initialized f32 per block for `nb` blocks.
#[inline(always)]
unsafe fn kernel<D: IntDot, const R: usize, const T: usize>(
    ty: GgmlType,
    nb: usize,
    t: &Tile,
    ds: *const f32,
    ss: *const f32,
) {
    use GgmlType::*;
    // SAFETY (closures): each unpacker is given whole weight blocks of its type; the callers'
    // contracts are forwarded unchanged.
    unsafe {
        match ty {
            Q4_0 => tile_blocks::<D, R, T, false>(nb, t, 18, ds, ss, |b| unpack::q4_0(b)),
            Q5_0 => tile_blocks::<D, R, T, false>(nb, t, 22, ds, ss, |b| unpack::q5_0(b)),
            Q8_0 => tile_blocks::<D, R, T, false>(nb, t, 34, ds, ss, |b| unpack::q8_0(b)),
            Q4_1 => tile_blocks::<D, R, T, true>(nb, t, 20, ds, ss, |b| unpack::q4_1(b)),
            Q5_1 => tile_blocks::<D, R, T, true>(nb, t, 24, ds, ss, |b| unpack::q5_1(b)),
            other => unreachable!("legacy tile on {other}"),
        }
    }
}

/// `acc + l · dv[lane]`, fused, for a lane index that is constant once the token loop unrolls.
#[inline]
#[target_feature(enable = "neon")]
fn fma_lane(acc: float32x4_t, l: float32x4_t, dv: float32x4_t, lane: usize) -> float32x4_t {
    match lane {
        0 => vfmaq_laneq_f32::<0>(acc, l, dv),
        1 => vfmaq_laneq_f32::<1>(acc, l, dv),
        2 => vfmaq_laneq_f32::<2>(acc, l, dv),
        _ => vfmaq_laneq_f32::<3>(acc, l, dv),
    }
}

/// The weight f16 at byte `off` of block `i` of rows `0..R`, in lanes `0..R`, as f32.
///
/// # Safety
/// Block `i` of rows `0..R` is readable at byte `off..off + 2`.
#[inline(always)]
unsafe fn row_scales<const R: usize>(t: &Tile, i: usize, wbs: usize, off: usize) -> float32x4_t {
    // SAFETY: the caller's contract.
    f16x4(std::array::from_fn(|r| {
        if r < R {
            unsafe { u16_at(t.w.add(r * t.wrb + i * wbs + off)) }
        } else {
            0
        }
    }))
}

/// Lane `r` of `v`, for an `r` that is constant once the row loop unrolls.
#[inline]
#[target_feature(enable = "neon")]
fn lane(v: float32x4_t, r: usize) -> f32 {
    match r {
        0 => vgetq_lane_f32::<0>(v),
        1 => vgetq_lane_f32::<1>(v),
        2 => vgetq_lane_f32::<2>(v),
        _ => vgetq_lane_f32::<3>(v),
    }
}

/// A tile of `R` rows × `T` tokens for one of the 32-element formats: scaled by `d` only
/// against Q8_0 (34-byte blocks), or with a minimum (`OFFSET`) against Q8_1 (36-byte blocks),
/// `Σ (d q + m) d_x q_x = d d_x Σ q q_x + m s_x`, the `m s_x` terms summed in four accumulators
/// exactly as the reference does.
///
/// # Safety
/// As [`kernel`]; `unpack(b)` reads only inside the `wbs`-byte block at `b`.
#[inline(always)]
unsafe fn tile_blocks<D: IntDot, const R: usize, const T: usize, const OFFSET: bool>(
    nb: usize,
    t: &Tile,
    wbs: usize,
    ds: *const f32,
    ss: *const f32,
    unpack: impl Fn(*const u8) -> [int8x16_t; 2],
) {
    let (xbs, qoff) = if OFFSET { (36, 4) } else { (34, 2) };
    let zero = vdupq_n_f32(0.0);
    // `(a0 + a1) + (a2 + a3)` as the reference reduces, formed pass by pass so only the two
    // halves are kept. Passes `k >= nb` leave their accumulator zero, as there.
    let mut half01 = [[[zero; 2]; T]; R];
    let mut half23 = [[[zero; 2]; T]; R];
    // Per pass and row: the `m_w · s_x` sums of the tile's tokens, lane `t` for token `t`.
    let mut summs = [[zero; R]; 4];
    for k in 0..4 {
        let mut acc = [[[zero; 2]; T]; R];
        let mut summ = [zero; R];
        let mut i = k;
        while i < nb {
            // SAFETY: block `i < nb` of row `r < R` is readable (caller's contract).
            let wq: [[int8x16_t; 2]; R] =
                std::array::from_fn(|r| unsafe { unpack(t.w.add(r * t.wrb + i * wbs)) });
            // Every `d_w · d_x` of the block, one f32 multiplication each: lane `tt` of
            // `dv[r]` is exactly the product the reference forms for (r, tt).
            // SAFETY: `ds` / `ss` hold `TOKENS` initialized scales for each of the `nb` blocks;
            // the weight scales d (byte 0) and m (byte 2) are inside block `i` of rows `0..R`.
            let dv: [float32x4_t; R] = unsafe {
                let dx = vld1q_f32(ds.add(i * TOKENS));
                let dw = row_scales::<R>(t, i, wbs, 0);
                if OFFSET {
                    let sx = vld1q_f32(ss.add(i * TOKENS));
                    let mw = row_scales::<R>(t, i, wbs, 2);
                    for r in 0..R {
                        summ[r] = vaddq_f32(summ[r], vmulq_n_f32(sx, lane(mw, r)));
                    }
                }
                std::array::from_fn(|r| vmulq_n_f32(dx, lane(dw, r)))
            };
            for tt in 0..T {
                // SAFETY: block `i < nb` of token `tt < T` is readable; quants at `qoff`.
                let y = unsafe { quants(t.x.add(tt * t.xrb + i * xbs + qoff)) };
                for r in 0..R {
                    // SAFETY: register arithmetic on the features of `D::LEVEL` (the caller's
                    // contract).
                    let l = unsafe { lanes::<D>(wq[r], y) };
                    let a = &mut acc[r][tt];
                    a[0] = fma_lane(a[0], l[0], dv[r], tt);
                    a[1] = fma_lane(a[1], l[1], dv[r], tt);
                }
            }
            i += 4;
        }
        let half = if k < 2 { &mut half01 } else { &mut half23 };
        for r in 0..R {
            for tt in 0..T {
                for h in 0..2 {
                    half[r][tt][h] = if k % 2 == 0 {
                        acc[r][tt][h]
                    } else {
                        vaddq_f32(half[r][tt][h], acc[r][tt][h])
                    };
                }
            }
        }
        summs[k] = summ;
    }
    for r in 0..R {
        for tt in 0..T {
            let (a, b) = (half01[r][tt], half23[r][tt]);
            let mut v = hsum(vaddq_f32(a[0], b[0]), vaddq_f32(a[1], b[1]));
            if OFFSET {
                let s = |k: usize| lane(summs[k][r], tt);
                v += (s(0) + s(1)) + (s(2) + s(3));
            }
            // SAFETY: output `(r, tt)` of this tile is writable (caller's contract).
            unsafe { *t.out.add(tt * t.ostride + r) = v };
        }
    }
}

/// [`kernel`] with `smmla` ([`tile_mmla`]).
///
/// # Safety
/// As [`kernel`], and the CPU has the int8 matrix-multiply extension.
#[inline(always)]
unsafe fn kernel_mmla<const R: usize, const T: usize>(
    ty: GgmlType,
    nb: usize,
    t: &Tile,
    ds: *const f32,
    ss: *const f32,
) {
    use GgmlType::*;
    // SAFETY (closures): as in `kernel`.
    unsafe {
        match ty {
            Q4_0 => tile_mmla::<R, T, false>(nb, t, 18, ds, ss, |b| unpack::q4_0(b)),
            Q5_0 => tile_mmla::<R, T, false>(nb, t, 22, ds, ss, |b| unpack::q5_0(b)),
            Q8_0 => tile_mmla::<R, T, false>(nb, t, 34, ds, ss, |b| unpack::q8_0(b)),
            Q4_1 => tile_mmla::<R, T, true>(nb, t, 20, ds, ss, |b| unpack::q4_1(b)),
            Q5_1 => tile_mmla::<R, T, true>(nb, t, 24, ds, ss, |b| unpack::q5_1(b)),
            other => unreachable!("legacy tile on {other}"),
        }
    }
}

/// [`tile_blocks`] with `smmla`. For lane pair `m` (lanes `2m`, `2m + 1`: bytes `8m..8m + 8` of
/// a block) the weight operand of row `r` is `[lane 2m, 0000 | 0000, lane 2m + 1]` and the
/// activation operand of tokens `t0, t1` is `[t0's bytes 8m..8m + 8 | t1's]`, so the four i32
/// results are exactly the reference's lane sums `[(t0, 2m), (t1, 2m), (t0, 2m + 1),
/// (t1, 2m + 1)]`. The padded weights serve every token pair and the paired activations every
/// row. Each f32 lane then gets the reference's fused multiply-add with its own `d_w · d_x`
/// (the pair's scales `[d0, d1, d0, d1]` in one vector); after the passes, lane pair `m` holds
/// `v_2m` and `v_2m+1` of both tokens, and `(V0 + V2) + (V1 + V3)` followed by adding the two
/// halves is the reference's `((v0 + v4) + (v2 + v6)) + ((v1 + v5) + (v3 + v7))` for each
/// token.
///
/// # Safety
/// As [`tile_blocks`], and the CPU has the int8 matrix-multiply extension.
#[inline(always)]
unsafe fn tile_mmla<const R: usize, const T: usize, const OFFSET: bool>(
    nb: usize,
    t: &Tile,
    wbs: usize,
    ds: *const f32,
    ss: *const f32,
    unpack: impl Fn(*const u8) -> [int8x16_t; 2],
) {
    // Indices past 15 read as zero in `tbl`.
    const PAD: [[u8; 16]; 2] = [
        [0, 1, 2, 3, 99, 99, 99, 99, 99, 99, 99, 99, 4, 5, 6, 7],
        [8, 9, 10, 11, 99, 99, 99, 99, 99, 99, 99, 99, 12, 13, 14, 15],
    ];
    let (xbs, qoff) = if OFFSET { (36, 4) } else { (34, 2) };
    let pairs = T.div_ceil(2);
    // SAFETY: the constant arrays hold 16 bytes each.
    let pad = unsafe { [vld1q_u8(PAD[0].as_ptr()), vld1q_u8(PAD[1].as_ptr())] };
    let zero = vdupq_n_f32(0.0);
    let no_token = [vdupq_n_s8(0); 2];
    let mut half01 = [[[zero; 4]; 2]; R];
    let mut half23 = [[[zero; 4]; 2]; R];
    let mut summs = [[zero; R]; 4];
    for k in 0..4 {
        let mut acc = [[[zero; 4]; 2]; R];
        let mut summ = [zero; R];
        let mut i = k;
        while i < nb {
            let wa: [[int8x16_t; 4]; R] = std::array::from_fn(|r| {
                // SAFETY: block `i < nb` of row `r < R` is readable (caller's contract).
                let w = unsafe { unpack(t.w.add(r * t.wrb + i * wbs)) };
                let p = |v: int8x16_t, idx| vqtbl1q_s8(v, idx);
                [
                    p(w[0], pad[0]),
                    p(w[0], pad[1]),
                    p(w[1], pad[0]),
                    p(w[1], pad[1]),
                ]
            });
            // SAFETY: as in `tile_blocks`.
            let (dxp, dw) = unsafe {
                let dx = vld1q_f32(ds.add(i * TOKENS));
                let dw = row_scales::<R>(t, i, wbs, 0);
                if OFFSET {
                    let sx = vld1q_f32(ss.add(i * TOKENS));
                    let mw = row_scales::<R>(t, i, wbs, 2);
                    for r in 0..R {
                        summ[r] = vaddq_f32(summ[r], vmulq_n_f32(sx, lane(mw, r)));
                    }
                }
                let (lo, hi) = (vget_low_f32(dx), vget_high_f32(dx));
                ([vcombine_f32(lo, lo), vcombine_f32(hi, hi)], dw)
            };
            for p in 0..pairs {
                // SAFETY: block `i < nb` of tokens `2p, 2p + 1 < T` is readable; a token past
                // the tile's width multiplies zeros, and its outputs are dropped.
                let (y0, y1) = unsafe {
                    let y = |tt: usize| quants(t.x.add(tt * t.xrb + i * xbs + qoff));
                    (
                        y(2 * p),
                        if 2 * p + 1 < T {
                            y(2 * p + 1)
                        } else {
                            no_token
                        },
                    )
                };
                let two = |a: int8x16_t, b: int8x16_t, hi: bool| {
                    let (a, b) = (vreinterpretq_s64_s8(a), vreinterpretq_s64_s8(b));
                    vreinterpretq_s8_s64(if hi {
                        vzip2q_s64(a, b)
                    } else {
                        vzip1q_s64(a, b)
                    })
                };
                let b = [
                    two(y0[0], y1[0], false),
                    two(y0[0], y1[0], true),
                    two(y0[1], y1[1], false),
                    two(y0[1], y1[1], true),
                ];
                for r in 0..R {
                    let dv = vmulq_n_f32(dxp[p], lane(dw, r));
                    for m in 0..4 {
                        // SAFETY: the caller guarantees i8mm.
                        let s = unsafe { super::ext::smmla(vdupq_n_s32(0), wa[r][m], b[m]) };
                        acc[r][p][m] = vfmaq_f32(acc[r][p][m], vcvtq_f32_s32(s), dv);
                    }
                }
            }
            i += 4;
        }
        let half = if k < 2 { &mut half01 } else { &mut half23 };
        for r in 0..R {
            for p in 0..pairs {
                for m in 0..4 {
                    half[r][p][m] = if k % 2 == 0 {
                        acc[r][p][m]
                    } else {
                        vaddq_f32(half[r][p][m], acc[r][p][m])
                    };
                }
            }
        }
        summs[k] = summ;
    }
    for r in 0..R {
        for p in 0..pairs {
            let v: [float32x4_t; 4] =
                std::array::from_fn(|m| vaddq_f32(half01[r][p][m], half23[r][p][m]));
            let u = vaddq_f32(vaddq_f32(v[0], v[2]), vaddq_f32(v[1], v[3]));
            let both = vadd_f32(vget_low_f32(u), vget_high_f32(u));
            for (j, tt) in [(0, 2 * p), (1, 2 * p + 1)] {
                if tt >= T {
                    continue;
                }
                let mut v = if j == 0 {
                    vget_lane_f32::<0>(both)
                } else {
                    vget_lane_f32::<1>(both)
                };
                if OFFSET {
                    let s = |k: usize| lane(summs[k][r], tt);
                    v += (s(0) + s(1)) + (s(2) + s(3));
                }
                // SAFETY: output `(r, tt)` of this tile is writable (caller's contract).
                unsafe { *t.out.add(tt * t.ostride + r) = v };
            }
        }
    }
}
