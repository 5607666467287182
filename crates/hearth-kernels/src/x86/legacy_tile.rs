//! Multi-token tiles for the 32-element formats (AVX2, and AVX2 with AVX-512 VNNI): `R` weight
//! rows × `T` activation rows per call, each weight block loaded and unpacked once for all `T`
//! tokens. The body is generic over the integer dot ([`IntDot`]) and compiled once per level
//! ([`dot_tile`], [`dot_tile_vnni`]); each level's tiles match that level's `vec_dot`, and the
//! two levels match each other (see `IntDot`).
//!
//! # Same bits as `vec_dot`
//! The single-token kernel (`super::legacy::dot_sym` / `dot_offset`) sends block `i` to f32
//! accumulator `i % 4` with one FMA of `d_w · d_x` (one f32 multiplication) times the block's
//! eight i32 lane sums, then reduces `(a0 + a1) + (a2 + a3)` and sums the vector horizontally
//! (plus, for the offset formats, four scalar sums of `m_w · s_x` reduced the same way). Only
//! the order *within* one accumulator matters for the bits, not how the four accumulators'
//! updates interleave. So a tile walks accumulator `k` at a time over blocks
//! `k, k + 4, k + 8, …`: each (row, token) pair then needs one live accumulator instead of
//! four, which lets `R · T` pairs sit in registers, and every pair performs exactly the
//! single-token kernel's operations in its order. The integer per-block sums are exact, so
//! sharing a token's bias term (`IntDot::bias_term`) between rows changes nothing either.

// The loops index several parallel per-(row, token) arrays of constant size at once; index
// ranges say that more plainly than zipped iterators.
#![allow(clippy::needless_range_loop)]

use super::legacy::{bits_to_bytes, f16_at, hsum, load32, nibbles, IntDot, Madd, Vnni};
use crate::simd::Level;
use crate::types::Tile;
use hearth_gguf::GgmlType;
use std::arch::x86_64::*;

/// Tokens per tile; the last `n % TOKENS` tokens run as a narrower tile.
pub(crate) const TOKENS: usize = 4;

/// Whether `ty` has a tile kernel here.
pub(crate) fn supports(ty: GgmlType) -> bool {
    use GgmlType::*;
    matches!(ty, Q4_0 | Q4_1 | Q5_0 | Q5_1 | Q8_0)
}

/// Most blocks per row whose activation scales a tile keeps converted on the stack (rows up to
/// 32768 elements); longer rows run through the single-token kernel, with the same bits.
const MAX_BLOCKS: usize = 1024;

/// The stack buffer of activation scales, 32-byte aligned.
#[repr(align(32))]
struct Scales([std::mem::MaybeUninit<f32>; 2 * TOKENS * MAX_BLOCKS]);

/// Every (row, token) product of `rows` weight rows and `tokens` activation rows, each equal to
/// the AVX2 `vec_dot` of the pair bit for bit.
///
/// # Safety
/// The CPU has AVX2, FMA and F16C; `ty` is one [`supports`] accepts; for `r < rows` the
/// `nb` blocks of `ty` at `t.w + r * t.wrb`, and for `k < tokens` the `nb` activation blocks
/// (Q8_0 or Q8_1, as `activation_type(ty)`) at `t.x + k * t.xrb`, are readable; the outputs
/// `t.out + k * t.ostride + r` are writable and no one else accesses them meanwhile.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn dot_tile(ty: GgmlType, nb: usize, t: &Tile, rows: usize, tokens: usize) {
    // SAFETY: forwarded from the caller.
    unsafe { tiles::<Madd>(ty, nb, t, rows, tokens) }
}

/// [`dot_tile`] with AVX-512 VNNI: each output equals the VNNI `vec_dot` (and so the AVX2
/// one) bit for bit.
///
/// # Safety
/// As [`dot_tile`], and the CPU also has AVX-512 VNNI, VL and BW.
#[target_feature(enable = "avx2,fma,f16c,avx512vnni,avx512vl,avx512bw")]
pub(crate) unsafe fn dot_tile_vnni(ty: GgmlType, nb: usize, t: &Tile, rows: usize, tokens: usize) {
    // SAFETY: forwarded from the caller.
    unsafe { tiles::<Vnni>(ty, nb, t, rows, tokens) }
}

/// The body of [`dot_tile`] with integer dot `D`.
///
/// # Safety
/// As [`dot_tile`]; the CPU has the features of `D::LEVEL`.
#[inline(always)]
unsafe fn tiles<D: IntDot>(ty: GgmlType, nb: usize, t: &Tile, rows: usize, tokens: usize) {
    let offset = matches!(ty, GgmlType::Q4_1 | GgmlType::Q5_1);
    let xbs = if offset { 36 } else { 34 };
    if nb > MAX_BLOCKS {
        // SAFETY: forwarded from the caller.
        return unsafe { one_by_one::<D>(ty, nb, t, rows, tokens, xbs) };
    }
    // The activation scales `d` (and `s` for the offset formats) of one token tile as f32,
    // `[block][token]`, converted once and shared by every row pair of the tile. Lanes of
    // tokens past the tile's width are set to zero: their products are computed and dropped.
    // Only the first `nb` blocks are written (zeroing all 32 KB would add a memset per row
    // group); aligned so that each block's four scales are one aligned 16-byte vector.
    let mut scales = Scales([std::mem::MaybeUninit::<f32>::uninit(); 2 * TOKENS * MAX_BLOCKS]);
    let (ds, ss) = scales.0.split_at_mut(TOKENS * MAX_BLOCKS);
    // Token tiles outermost: their activations (a few KB) stay in L1 while the caller's row
    // group (sized for L1 too) is walked.
    let mut t0 = 0;
    while t0 < tokens {
        let nt = (tokens - t0).min(TOKENS);
        for i in 0..nb {
            for tt in 0..TOKENS {
                let (d, s) = if tt < nt {
                    // SAFETY: block `i < nb` of token `t0 + tt < tokens` is readable: d at
                    // byte 0, s (Q8_1) at byte 2.
                    unsafe {
                        let xb = t.x.add((t0 + tt) * t.xrb + i * xbs);
                        (f16_at(xb), if offset { f16_at(xb.add(2)) } else { 0.0 })
                    }
                } else {
                    (0.0, 0.0)
                };
                ds[i * TOKENS + tt].write(d);
                ss[i * TOKENS + tt].write(s);
            }
        }
        let (ds, ss) = (ds.as_ptr() as *const f32, ss.as_ptr() as *const f32);
        let mut r0 = 0;
        while r0 < rows {
            // Three rows run as two and one (no three-row kernel to compile).
            let nr = match (rows - r0).min(D::TILE_ROWS) {
                3 => 2,
                nr => nr,
            };
            let tile = t.at(r0, t0);
            // SAFETY: rows `r0..r0 + nr` and tokens `t0..t0 + nt` are inside the caller's
            // ranges, so the caller's contract covers this sub-tile; `ds` / `ss` hold the
            // scales of its `nb` blocks.
            unsafe { shape::<D>(ty, nb, &tile, nr, nt, ds, ss) };
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
            // output, and the CPU features of `D::LEVEL`, whose single-token kernel this calls
            // (the one `vec_dot` runs at that level).
            unsafe {
                let w = std::slice::from_raw_parts(t.w.add(r * t.wrb), nb * wbs);
                let x = std::slice::from_raw_parts(t.x.add(tt * t.xrb), nb * xbs);
                *t.out.add(tt * t.ostride + r) = match D::LEVEL {
                    Level::Avx512Vnni => super::legacy::vnni::vec_dot(ty, nb, w, x),
                    _ => super::legacy::madd::vec_dot(ty, nb, w, x),
                };
            }
        }
    }
}

/// Dispatches one tile of `nr ≤ 4` rows and `nt ≤ TOKENS` tokens to its monomorphized
/// kernel (constant sizes keep the accumulators in registers).
///
/// # Safety
/// As [`dot_tile`], for `nr` rows and `nt` tokens.
#[inline(always)]
unsafe fn shape<D: IntDot>(
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
            match nt {
                1 => kernel::<D, $r, 1>(ty, nb, t, ds, ss),
                2 => kernel::<D, $r, 2>(ty, nb, t, ds, ss),
                3 => kernel::<D, $r, 3>(ty, nb, t, ds, ss),
                _ => kernel::<D, $r, 4>(ty, nb, t, ds, ss),
            }
        };
    }
    // SAFETY: forwarded from the caller.
    unsafe {
        match nr {
            1 => go!(1),
            2 => go!(2),
            _ => go!(4),
        }
    }
}

/// # Safety
/// As [`dot_tile`], for `R` rows and `T` tokens; `ds` and `ss` point at the tile's
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
    // SAFETY (closures): each is called with a pointer to a whole weight block of its type:
    // Q4_0 nibbles at byte 2; Q5_0 qh at 2, nibbles at 6; Q8_0 quants at 2; Q4_1 nibbles at 4;
    // Q5_1 qh at 4, nibbles at 8. The callers' contracts are forwarded unchanged.
    unsafe {
        match ty {
            Q4_0 => tile_blocks::<D, R, T, 8, false>(nb, t, 18, ds, ss, |b| nibbles(b.add(2))),
            Q5_0 => tile_blocks::<D, R, T, 16, false>(nb, t, 22, ds, ss, |b| {
                let qh = (b.add(2) as *const u32).read_unaligned().to_le();
                let hi = _mm256_and_si256(bits_to_bytes(qh), _mm256_set1_epi8(0x10));
                _mm256_or_si256(nibbles(b.add(6)), hi)
            }),
            Q8_0 => tile_blocks::<D, R, T, 0, false>(nb, t, 34, ds, ss, |b| load32(b.add(2))),
            Q4_1 => tile_blocks::<D, R, T, 0, true>(nb, t, 20, ds, ss, |b| nibbles(b.add(4))),
            Q5_1 => tile_blocks::<D, R, T, 0, true>(nb, t, 24, ds, ss, |b| {
                let qh = (b.add(4) as *const u32).read_unaligned().to_le();
                let hi = _mm256_and_si256(bits_to_bytes(qh), _mm256_set1_epi8(0x10));
                _mm256_or_si256(nibbles(b.add(8)), hi)
            }),
            other => unreachable!("legacy tile on {other}"),
        }
    }
}

/// The eight lane sums of one block, as the single-token kernel forms them: with an offset
/// (`OFFSET`, Q4_1 / Q5_1) the unsigned codes times `y`; for `BIAS > 0` unsigned codes minus
/// the bias (`IntDot::biased`, its bias term `by` computed once per
/// token); otherwise signed Q8_0 quants (the sign moved onto `y`).
#[inline(always)]
unsafe fn products<D: IntDot, const BIAS: i8, const OFFSET: bool>(
    u: __m256i,
    y: __m256i,
    by: __m256i,
) -> __m256 {
    // SAFETY: register arithmetic on the features of `D::LEVEL` (the caller's contract).
    unsafe {
        if OFFSET {
            D::us8(u, y)
        } else if BIAS == 0 {
            super::legacy::dot_ss8::<D>(u, y)
        } else {
            D::biased(u, y, by)
        }
    }
}

/// The f16 at byte `off` of block `i` of each of the `n ≤ 2` weight rows, in lane
/// `r * TOKENS + t` for every `t` (so a multiply with the activation scales `[t0..t3, t0..t3]`
/// gives every (row, token) product at once), converted to f32.
///
/// # Safety
/// Block `i` of rows `0..n` is readable at byte `off..off + 2`.
#[inline(always)]
unsafe fn weight_scales(t: &Tile, i: usize, wbs: usize, off: usize, n: usize) -> __m256 {
    let mut h = 0u32;
    for r in 0..n {
        // SAFETY: the caller's contract.
        let v = unsafe { (t.w.add(r * t.wrb + i * wbs + off) as *const u16).read_unaligned() };
        h |= u32::from(u16::from_le(v)) << (16 * r);
    }
    let v = _mm256_castps128_ps256(_mm_cvtph_ps(_mm_cvtsi32_si128(h as i32)));
    let idx = if n == 1 {
        _mm256_setzero_si256()
    } else {
        _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1)
    };
    _mm256_permutevar8x32_ps(v, idx)
}

/// A tile of `R` rows × `T` tokens for one of the 32-element formats: scaled by `d` only
/// against Q8_0 (34-byte blocks), or with a minimum (`OFFSET`) against Q8_1 (36-byte blocks),
/// `Σ (d q + m) d_x q_x = d d_x Σ q q_x + m s_x`, the `m s_x` terms summed in four accumulators
/// exactly as the single-token kernel does.
///
/// # Safety
/// As [`kernel`]; `unpack(b)` reads only inside the `wbs`-byte block at `b`.
#[inline(always)]
unsafe fn tile_blocks<
    D: IntDot,
    const R: usize,
    const T: usize,
    const BIAS: i8,
    const OFFSET: bool,
>(
    nb: usize,
    t: &Tile,
    wbs: usize,
    ds: *const f32,
    ss: *const f32,
    unpack: impl Fn(*const u8) -> __m256i,
) {
    let (xbs, qoff) = if OFFSET { (36, 4) } else { (34, 2) };
    let zero = _mm256_setzero_ps();
    // `(a0 + a1) + (a2 + a3)` as the single-token kernel reduces, formed pass by pass so only
    // the two halves are kept (a 4 × R × T array of partial results cost a 2 KB memset and its
    // stores on every tile). Passes `k >= nb` leave their accumulator zero, as there.
    let mut half01 = [[zero; T]; R];
    let mut half23 = [[zero; T]; R];
    // Row pairs: the (row, token) scales of rows `2h, 2h + 1` fill vector `h`.
    let pairs = R.div_ceil(2);
    let mut summs = [[zero; 2]; 4];
    for k in 0..4 {
        let mut acc = [[zero; T]; R];
        let mut summ = [zero; 2];
        let mut i = k;
        while i < nb {
            let mut wq = [_mm256_setzero_si256(); R];
            for (r, q) in wq.iter_mut().enumerate() {
                // SAFETY: block `i < nb` of row `r < R` is readable (caller's contract).
                *q = unsafe { unpack(t.w.add(r * t.wrb + i * wbs)) };
            }
            // Every `d_w · d_x` of the block in one multiplication per row pair: lane
            // `r * TOKENS + t` of `dv` holds exactly the product the single-token kernel forms
            // for (r, t).
            let mut dv = [0f32; 16];
            for h in 0..pairs {
                let n = (R - 2 * h).min(2);
                let th = t.at(2 * h, 0);
                // SAFETY: `ds` / `ss` hold `TOKENS` initialized scales for each of the `nb`
                // blocks at 16-byte aligned addresses (see `Scales`); the weight scales d
                // (byte 0) and m (byte 2) are inside block `i` of rows `2h..2h + n`; `dv` has
                // room for eight f32 at `8 h`.
                unsafe {
                    let dx = _mm256_broadcast_ps(&*(ds.add(i * TOKENS) as *const __m128));
                    let d = _mm256_mul_ps(weight_scales(&th, i, wbs, 0, n), dx);
                    _mm256_storeu_ps(dv.as_mut_ptr().add(8 * h), d);
                    if OFFSET {
                        let sx = _mm256_broadcast_ps(&*(ss.add(i * TOKENS) as *const __m128));
                        let ms = _mm256_mul_ps(weight_scales(&th, i, wbs, 2, n), sx);
                        summ[h] = _mm256_add_ps(summ[h], ms);
                    }
                }
            }
            for tt in 0..T {
                // SAFETY: block `i < nb` of token `tt < T` is readable; quants at `qoff`.
                let y = unsafe { load32(t.x.add(tt * t.xrb + i * xbs + qoff)) };
                let by = if BIAS == 0 {
                    y
                } else {
                    // SAFETY: register arithmetic (the caller's contract covers `D::LEVEL`).
                    unsafe { D::bias_term(BIAS, y) }
                };
                for r in 0..R {
                    // SAFETY: register arithmetic only (`D::LEVEL` is the caller's contract).
                    let q = unsafe { products::<D, BIAS, OFFSET>(wq[r], y, by) };
                    let dk = _mm256_set1_ps(dv[r * TOKENS + tt]);
                    acc[r][tt] = _mm256_fmadd_ps(dk, q, acc[r][tt]);
                }
            }
            i += 4;
        }
        let half = if k < 2 { &mut half01 } else { &mut half23 };
        for r in 0..R {
            for tt in 0..T {
                half[r][tt] = if k % 2 == 0 {
                    acc[r][tt]
                } else {
                    _mm256_add_ps(half[r][tt], acc[r][tt])
                };
            }
        }
        summs[k] = summ;
    }
    let mut sv = [[0f32; 16]; 4];
    for (s, v) in sv.iter_mut().zip(summs) {
        // SAFETY: `s` holds sixteen f32.
        unsafe {
            _mm256_storeu_ps(s.as_mut_ptr(), v[0]);
            _mm256_storeu_ps(s.as_mut_ptr().add(8), v[1]);
        }
    }
    for r in 0..R {
        for tt in 0..T {
            let mut v = hsum(_mm256_add_ps(half01[r][tt], half23[r][tt]));
            if OFFSET {
                let s = |k: usize| sv[k][r * TOKENS + tt];
                v += (s(0) + s(1)) + (s(2) + s(3));
            }
            // SAFETY: output `(r, tt)` of this tile is writable (caller's contract).
            unsafe { *t.out.add(tt * t.ostride + r) = v };
        }
    }
}
