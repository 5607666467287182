//! One-token kernels (decoding) for the 32-element formats at the AVX-512 VNNI level: `R = 4`
//! weight rows against one activation row per call (AVX-512VL's 32 ymm registers hold their
//! 16 accumulators), so each activation block (its scale `d`, for Q8_1 also `s`, its 32
//! quants and the bias term of Q4_0 / Q5_0) is loaded once for `R` rows, and the `R` weight scales of a block are converted by one `vcvtph2ps` and
//! multiplied by `d_x` in one vector multiplication.
//!
//! # Same bits as `vec_dot`
//! The single-token kernel (`super::avx2::dot_sym` / `dot_offset`) sends block `i` to f32
//! accumulator `i % 4` with one FMA of `d_w · d_x` (one f32 multiplication) times the block's
//! eight i32 lane sums as f32, reduces `(a0 + a1) + (a2 + a3)` and sums horizontally, plus for
//! the offset formats four scalar sums of `m_w · s_x` reduced the same way. This kernel keeps
//! those four accumulators for each of its rows, walks the blocks in order and performs for
//! every row exactly those float operations in that order (lane `r` of a 4-lane vector per
//! accumulator holds row `r`'s `m_w · s_x` sum; lane-wise adds are the same scalar adds). The
//! integer lane sums are exact however they are formed, so sharing the bias term between rows
//! changes nothing.
//!
//! # Memory
//! Decoding reads every weight once per token, mostly from DRAM. Blocks are walked in order
//! (a walk over one accumulator at a time, as the tiles do, measured up to 3x slower on
//! weights from DRAM), and the group of rows `AHEAD` groups on, one contiguous run of bytes,
//! is prefetched while a group computes: with `R` rows read side by side, the hardware stream
//! prefetcher alone left the kernel slower than one row at a time on large matrices.
//!
//! # AVX2
//! The body is generic over the integer dot, but only VNNI uses it: with AVX2's 16 registers
//! (two rows per group) it measured no faster than `vec_dot` per row on most shapes and half
//! as fast on a 262144 × 640 Q8_0 matrix from DRAM, so the AVX2 level keeps `vec_dot`.

use super::avx2::{bits_to_bytes, f16_at, hsum, load32, nibbles, IntDot, Vnni};
use crate::matmul::Tile;
use crate::GgmlType;
use std::arch::x86_64::*;

/// How many row groups ahead of the one being computed the weights are prefetched.
const AHEAD: usize = 2;

/// Whether `ty` has a one-token kernel here.
pub(crate) fn supports(ty: GgmlType) -> bool {
    super::tile::supports(ty)
}

/// `out[r]` = the product of weight row `r` (at `t.w + r * t.wrb`) with the one activation row
/// at `t.x`, for `r < rows`, each equal to the VNNI `vec_dot` of the pair (and so the AVX2
/// one) bit for bit. Rows past the last whole group of four run through that `vec_dot`.
///
/// # Safety
/// The CPU has AVX2, FMA, F16C and AVX-512 VNNI, VL and BW; `ty` is one [`supports`] accepts;
/// for `r < rows` the `nb` blocks of `ty` at `t.w + r * t.wrb`, and the `nb` activation blocks
/// (Q8_0 or Q8_1, as `activation_type(ty)`) at `t.x`, are readable; the outputs `t.out + r`
/// are writable and no one else accesses them meanwhile.
#[target_feature(enable = "avx2,fma,f16c,avx512vnni,avx512vl,avx512bw")]
pub(crate) unsafe fn gemv_vnni(ty: GgmlType, nb: usize, t: &Tile, rows: usize) {
    // SAFETY: forwarded from the caller.
    unsafe { groups::<Vnni, 4>(ty, nb, t, rows) }
}

/// The body of [`gemv_vnni`] with integer dot `D` and `R` rows per group.
///
/// # Safety
/// As [`gemv_vnni`]; the CPU has the features of `D::LEVEL`.
#[inline(always)]
unsafe fn groups<D: IntDot, const R: usize>(ty: GgmlType, nb: usize, t: &Tile, rows: usize) {
    use GgmlType::*;
    let full = rows - rows % R;
    let mut r0 = 0;
    while r0 < full {
        let g = t.at(r0, 0);
        // The group's rows are one contiguous run of bytes; fetch the run `AHEAD` groups on
        // while this one computes (see the module docs: without it the interleaved rows
        // measured 3x slower than one row at a time on weights from DRAM).
        let ahead = (r0 + AHEAD * R).min(rows);
        let end = (ahead + R).min(rows);
        let (p0, p1) = (
            t.w.wrapping_add(ahead * t.wrb),
            t.w.wrapping_add(end * t.wrb),
        );
        let mut p = p0;
        while p < p1 {
            // SAFETY: a prefetch is a hint that never faults; the addresses are inside rows
            // `ahead..end` of the caller's range anyway.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(p as *const i8) };
            p = p.wrapping_add(64);
        }
        // SAFETY (closures): each is called with a pointer to a whole weight block of its
        // type: Q4_0 nibbles at byte 2; Q5_0 qh at 2, nibbles at 6; Q8_0 quants at 2; Q4_1
        // nibbles at 4; Q5_1 qh at 4, nibbles at 8. Rows `r0..r0 + R` are inside the
        // caller's range, so its contract covers them.
        unsafe {
            match ty {
                Q4_0 => rows_blocks::<D, R, 8, false>(nb, &g, 18, |b| nibbles(b.add(2))),
                Q5_0 => rows_blocks::<D, R, 16, false>(nb, &g, 22, |b| {
                    let qh = (b.add(2) as *const u32).read_unaligned().to_le();
                    let hi = _mm256_and_si256(bits_to_bytes(qh), _mm256_set1_epi8(0x10));
                    _mm256_or_si256(nibbles(b.add(6)), hi)
                }),
                Q8_0 => rows_blocks::<D, R, 0, false>(nb, &g, 34, |b| load32(b.add(2))),
                Q4_1 => rows_blocks::<D, R, 0, true>(nb, &g, 20, |b| nibbles(b.add(4))),
                Q5_1 => rows_blocks::<D, R, 0, true>(nb, &g, 24, |b| {
                    let qh = (b.add(4) as *const u32).read_unaligned().to_le();
                    let hi = _mm256_and_si256(bits_to_bytes(qh), _mm256_set1_epi8(0x10));
                    _mm256_or_si256(nibbles(b.add(8)), hi)
                }),
                other => unreachable!("legacy gemv on {other}"),
            }
        }
        r0 += R;
    }
    if full < rows {
        let xbs = if matches!(ty, Q4_1 | Q5_1) { 36 } else { 34 };
        let wbs = ty.type_size();
        for r in full..rows {
            // SAFETY: the caller's contract: `nb` whole blocks in row `r` and in the
            // activation row, and a writable output.
            unsafe {
                let w = std::slice::from_raw_parts(t.w.add(r * t.wrb), nb * wbs);
                let x = std::slice::from_raw_parts(t.x, nb * xbs);
                *t.out.add(r) = super::vec_dot_at(D::LEVEL, ty, nb * 32, w, x);
            }
        }
    }
}

/// The f16 at byte `off` of block `i` of each of the `R ≤ 4` weight rows, lane `r` from row
/// `r`, converted to f32 by one instruction.
///
/// # Safety
/// Block `i` of rows `0..R` is readable at byte `off..off + 2`.
#[inline(always)]
unsafe fn weight_scales<const R: usize>(t: &Tile, i: usize, wbs: usize, off: usize) -> __m128 {
    let mut h = 0u64;
    for r in 0..R {
        // SAFETY: the caller's contract.
        let v = unsafe { (t.w.add(r * t.wrb + i * wbs + off) as *const u16).read_unaligned() };
        h |= u64::from(u16::from_le(v)) << (16 * r);
    }
    _mm_cvtph_ps(_mm_cvtsi64_si128(h as i64))
}

/// `R` rows × one token for one of the 32-element formats: scaled by `d` only against Q8_0
/// (34-byte blocks; `BIAS` is the code offset of Q4_0 / Q5_0, 0 for Q8_0's signed quants), or
/// with a minimum (`OFFSET`) against Q8_1 (36-byte blocks),
/// `Σ (d q + m) d_x q_x = d d_x Σ q q_x + m s_x`.
///
/// # Safety
/// As [`gemv_vnni`] for `R` rows; `unpack(b)` reads only inside the `wbs`-byte block at `b`.
#[inline(always)]
unsafe fn rows_blocks<D: IntDot, const R: usize, const BIAS: i8, const OFFSET: bool>(
    nb: usize,
    t: &Tile,
    wbs: usize,
    unpack: impl Fn(*const u8) -> __m256i,
) {
    let zero = _mm256_setzero_ps();
    let mut acc = [[zero; 4]; R];
    // Lane `r`: row `r`'s sum of `m_w · s_x` over the blocks of accumulator `k`.
    let mut summs = [_mm_setzero_ps(); 4];
    // Block `i` feeds accumulator `i % 4` of every row, in order.
    // (`k` is a constant in every unrolled call, so the accumulators stay in registers.)
    let mut i = 0;
    while i + 4 <= nb {
        for k in 0..4 {
            // SAFETY: block `i + k < nb` (caller's contract forwarded).
            unsafe { block::<D, R, BIAS, OFFSET>(t, wbs, &unpack, i + k, k, &mut acc, &mut summs) };
        }
        i += 4;
    }
    for k in 0..4 {
        if i + k < nb {
            // SAFETY: as above.
            unsafe { block::<D, R, BIAS, OFFSET>(t, wbs, &unpack, i + k, k, &mut acc, &mut summs) };
        }
    }
    let mut sv = [[0f32; 4]; 4];
    for (s, v) in sv.iter_mut().zip(summs) {
        // SAFETY: `s` holds four f32.
        unsafe { _mm_storeu_ps(s.as_mut_ptr(), v) };
    }
    for r in 0..R {
        let a = &acc[r];
        let mut v = hsum(_mm256_add_ps(
            _mm256_add_ps(a[0], a[1]),
            _mm256_add_ps(a[2], a[3]),
        ));
        if OFFSET {
            let s = |k: usize| sv[k][r];
            v += (s(0) + s(1)) + (s(2) + s(3));
        }
        // SAFETY: output `r` is writable (caller's contract).
        unsafe { *t.out.add(r) = v };
    }
}

/// Block `i` of the `R` rows into accumulator `k` of each (and, with `OFFSET`, lane `r` of
/// `summs[k]`), with exactly the single-token kernel's float operations.
///
/// # Safety
/// As [`rows_blocks`], and `i < nb`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn block<D: IntDot, const R: usize, const BIAS: i8, const OFFSET: bool>(
    t: &Tile,
    wbs: usize,
    unpack: &impl Fn(*const u8) -> __m256i,
    i: usize,
    k: usize,
    acc: &mut [[__m256; 4]; R],
    summs: &mut [__m128; 4],
) {
    let (xbs, qoff) = if OFFSET { (36, 4) } else { (34, 2) };
    // SAFETY: block `i < nb` of the activation row and of rows `0..R` is readable
    // (caller's contract): scales d at byte 0, m / s at byte 2, x's quants at `qoff`.
    unsafe {
        let xb = t.x.add(i * xbs);
        let y = load32(xb.add(qoff));
        // Lane `r` is exactly the product `d_w · d_x` the single-token kernel forms.
        let d = _mm_mul_ps(weight_scales::<R>(t, i, wbs, 0), _mm_set1_ps(f16_at(xb)));
        if OFFSET {
            let sx = _mm_set1_ps(f16_at(xb.add(2)));
            let ms = _mm_mul_ps(weight_scales::<R>(t, i, wbs, 2), sx);
            summs[k] = _mm_add_ps(summs[k], ms);
        }
        let mut dv = [0f32; 4];
        _mm_storeu_ps(dv.as_mut_ptr(), d);
        let by = if BIAS == 0 { y } else { D::bias_term(BIAS, y) };
        for r in 0..R {
            let u = unpack(t.w.add(r * t.wrb + i * wbs));
            let q = if OFFSET {
                D::us8(u, y)
            } else if BIAS == 0 {
                super::avx2::dot_ss8::<D>(u, y)
            } else {
                D::biased(u, y, by)
            };
            acc[r][k] = _mm256_fmadd_ps(_mm256_broadcast_ss(&dv[r]), q, acc[r][k]);
        }
    }
}
