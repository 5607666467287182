//! K-quants: the 256-element "super-block" formats Q2_K..Q6_K and the Q8_K activation format.
//!
//! # Formats
//! Byte layouts are ggml's (`block_q*_K` in `ggml-common.h`); blocks are read from raw bytes,
//! never cast to structs, because GGUF tensor data is only 32-byte aligned and a row may start
//! anywhere inside a mapped file. All multi-byte fields are little-endian.
//!
//! | type | bytes | layout                                               | value                  |
//! |------|-------|------------------------------------------------------|------------------------|
//! | Q2_K | 84    | scales[16] (4-bit scale, 4-bit min), qs[64], d, dmin | d·s·q − dmin·m         |
//! | Q3_K | 110   | hmask[32], qs[64], scales[12] (16 × 6 bit), d        | d·(s−32)·(q−4·¬h)      |
//! | Q4_K | 144   | d, dmin, scales[12] (8 × 6-bit scale + min), qs[128] | d·s·q − dmin·m         |
//! | Q5_K | 176   | d, dmin, scales[12], qh[32], qs[128]                 | d·s·(q+16h) − dmin·m   |
//! | Q6_K | 210   | ql[128], qh[64], scales[16] (i8), d                  | d·s·(q−32)             |
//! | Q8_K | 292   | d (f32), qs[256] (i8), bsums[16] (i16)               | d·q                    |
//!
//! # Dot products and the reduction order
//! A weight row is multiplied with an activation row in Q8_K. Within a block every product is
//! an exact integer; the only rounding happens when a block's integers become f32. To make
//! that rounding identical on every code path, each block's integer sum is kept in **8 lanes**:
//! the term for element `e` of the block goes to lane `(e % 32) / 4`, which is where AVX2's
//! `maddubs`/`madd` pair puts it when the block is walked in 32-byte chunks. Per block, lane
//! `k` adds `d · S[k]` to an f32 accumulator `A[k]` and, for the types with mins, `dmin · M[k]`
//! to a second accumulator `B[k]` (`M[k] = m[2k]·bsum[2k] + m[2k+1]·bsum[2k+1]` over the
//! sixteen 16-element groups; two accumulators keep the loop-carried chains short), each with
//! one fused multiply-add (`f32::mul_add`, `vfmadd`, NEON `vfmaq`: one rounding everywhere).
//! At the end `C[k] = A[k] + B[k]` (B is zero for Q3_K and Q6_K) and the result is
//! `((C0+C4) + (C2+C6)) + ((C1+C5) + (C3+C7))`. The scalar path computes exactly these lanes,
//! so the scalar and AVX2 results are bit-identical and depend only on `n` — the
//! batch-invariance contract in the crate docs. A NEON path must keep the same lanes. (On
//! x86 builds without FMA, `mul_add` in the scalar path is a libm call; that path only runs
//! when forced or on pre-2013 CPUs.)
//!
//! Q6_K's quants are stored with a +32 offset; both paths multiply the unsigned quants and
//! subtract `32 · (s[2k]·bsum[2k] + s[2k+1]·bsum[2k+1])` from lane `k`, so they rely on the
//! activation's bsums, which [`quantize`] always writes.
//!
//! # Quantization
//! Q8_K follows ggml's `quantize_row_q8_K_ref` exactly (scale `-127/max` where `max` is the
//! signed value of largest magnitude, round half to even), so activations match llama.cpp's
//! bit for bit. The weight formats are encoded with ggml's reference algorithms
//! (`quantize_row_q*_K_ref`, no importance matrix), reproduced operation for operation so the
//! bytes are the same; they serve tests and re-quantization tools, not the hot path.

use crate::types::{Error, Result};
use half::f16;
use hearth_gguf::GgmlType;
use hearth_gguf::QK_K;

/// Bytes per block of each format (checked against `GgmlType::type_size` in the tests).
pub(crate) const Q2K: usize = 84;
pub(crate) const Q3K: usize = 110;
pub(crate) const Q4K: usize = 144;
pub(crate) const Q5K: usize = 176;
pub(crate) const Q6K: usize = 210;
pub(crate) const Q8K: usize = 292;

/// Decodes one block into 256 floats.
type DequantBlock = fn(&[u8], &mut [f32]);
/// Encodes 256 floats into one block.
type QuantBlock = fn(&[f32], &mut [u8]);
/// The two sets of 8 f32 lanes of a dot product: scaled quant sums and min terms.
#[derive(Default)]
struct Acc {
    s: [f32; 8],
    m: [f32; 8],
}

/// Adds one (weight block, Q8_K block) pair to the lanes.
type DotBlock = fn(&[u8], &[u8], &mut Acc);

/// Offsets inside a Q8_K block.
pub(crate) const Q8K_QS: usize = 4;
pub(crate) const Q8K_BSUMS: usize = 4 + QK_K;

#[inline(always)]
fn f16_at(b: &[u8], off: usize) -> f32 {
    f16::from_bits(u16::from_le_bytes([b[off], b[off + 1]])).to_f32()
}

#[inline(always)]
pub(crate) fn f32_at(b: &[u8], off: usize) -> f32 {
    f32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

/// Round half to even exactly as ggml's `nearest_int` does (adding 1.5·2²³ pushes the value
/// into the range where the f32 spacing is 1, so the hardware rounding mode does the work).
/// Valid for |v| ≤ 2²², which every caller guarantees by construction (values are scaled
/// quants of at most a few hundred).
#[inline(always)]
fn nearest_int(v: f32) -> i32 {
    let t = v + 12_582_912.0;
    (t.to_bits() & 0x007f_ffff) as i32 - 0x0040_0000
}

#[inline(always)]
fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

const LOW6: u32 = 0x3f3f_3f3f;
const LOW4: u32 = 0x0f0f_0f0f;
const LOW2: u32 = 0x0303_0303;

/// The 8 six-bit scales and 8 six-bit mins of Q4_K/Q5_K, packed in 12 bytes: bytes 0..4 hold
/// scales 0..4 (low 6 bits) and the top 2 bits of scales 4..8; bytes 4..8 the same for mins;
/// bytes 8..12 the low 4 bits of scales 4..8 (low nibble) and mins 4..8 (high nibble).
/// Unpacked four bytes at a time into 16 bytes (scales 0..8, then mins 0..8), the form the
/// SIMD kernels load into one register.
#[inline(always)]
pub(crate) fn k4_unpack(s: &[u8]) -> [u32; 4] {
    let (a0, a1, a2) = (u32_at(s, 0), u32_at(s, 4), u32_at(s, 8));
    [
        a0 & LOW6,
        (a2 & LOW4) | (((a0 >> 6) & LOW2) << 4),
        a1 & LOW6,
        ((a2 >> 4) & LOW4) | (((a1 >> 6) & LOW2) << 4),
    ]
}

/// [`k4_unpack`] as (scales, mins).
#[inline(always)]
fn k4_scales_mins(s: &[u8]) -> ([u8; 8], [u8; 8]) {
    let w = k4_unpack(s);
    let b = |i: usize| w[i / 4].to_le_bytes()[i % 4];
    (std::array::from_fn(b), std::array::from_fn(|i| b(8 + i)))
}

/// The 16 six-bit Q3_K scales with their +32 offset still on. Bytes 0..8 hold the low 4 bits
/// (scales 0..8 in the low nibbles, 8..16 in the high nibbles); bytes 8..12 the top 2 bits,
/// scale `j` at bit `2·(j/4)` of byte `8 + j%4`. Unpacked four bytes at a time.
#[inline(always)]
pub(crate) fn q3k_unpack(s: &[u8]) -> [u32; 4] {
    let (a0, a1, a2) = (u32_at(s, 0), u32_at(s, 4), u32_at(s, 8));
    [
        (a0 & LOW4) | ((a2 & LOW2) << 4),
        (a1 & LOW4) | (((a2 >> 2) & LOW2) << 4),
        ((a0 >> 4) & LOW4) | (((a2 >> 4) & LOW2) << 4),
        ((a1 >> 4) & LOW4) | (((a2 >> 6) & LOW2) << 4),
    ]
}

/// The 16 Q3_K scales, offset removed (−32..31).
#[inline(always)]
fn q3k_scales(s: &[u8]) -> [i8; 16] {
    let w = q3k_unpack(s);
    std::array::from_fn(|j| w[j / 4].to_le_bytes()[j % 4] as i8 - 32)
}

// ---------------------------------------------------------------------------------------------
// Dequantization (scalar: used for embeddings lookups and tests, not in the matmul hot path).
// Each formula keeps ggml's order of f32 operations (`(d·s)·q − dmin·m`), so results equal
// `dequantize_row_q*_K` bit for bit.
// ---------------------------------------------------------------------------------------------

pub(crate) fn dequantize(ty: GgmlType, src: &[u8], dst: &mut [f32]) {
    use GgmlType::*;
    let (bytes, f): (usize, DequantBlock) = match ty {
        Q2_K => (Q2K, dequant_q2k),
        Q3_K => (Q3K, dequant_q3k),
        Q4_K => (Q4K, dequant_q4k),
        Q5_K => (Q5K, dequant_q5k),
        Q6_K => (Q6K, dequant_q6k),
        Q8_K => (Q8K, dequant_q8k),
        // lib.rs routes only the K types here.
        other => unreachable!("kquants::dequantize on {other}"),
    };
    for (b, y) in src.chunks_exact(bytes).zip(dst.chunks_exact_mut(QK_K)) {
        f(b, y);
    }
}

fn dequant_q2k(b: &[u8], y: &mut [f32]) {
    let (scales, qs) = (&b[0..16], &b[16..80]);
    let (d, dmin) = (f16_at(b, 80), f16_at(b, 82));
    for (e, v) in y.iter_mut().enumerate() {
        let sc = scales[e / 16];
        let q = (qs[32 * (e / 128) + e % 32] >> (2 * ((e / 32) % 4))) & 3;
        *v = (d * (sc & 0x0f) as f32) * q as f32 - dmin * (sc >> 4) as f32;
    }
}

fn dequant_q3k(b: &[u8], y: &mut [f32]) {
    let (hmask, qs) = (&b[0..32], &b[32..96]);
    let sc = q3k_scales(&b[96..108]);
    let d = f16_at(b, 108);
    for (e, v) in y.iter_mut().enumerate() {
        let l = e % 32;
        let low = (qs[32 * (e / 128) + l] >> (2 * ((e / 32) % 4))) & 3;
        let high = hmask[l] >> (e / 32) & 1;
        let q = low as i32 - if high == 1 { 0 } else { 4 };
        *v = (d * sc[e / 16] as f32) * q as f32;
    }
}

fn dequant_q4k(b: &[u8], y: &mut [f32]) {
    let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
    let (sc, mn) = k4_scales_mins(&b[4..16]);
    let qs = &b[16..144];
    for (e, v) in y.iter_mut().enumerate() {
        let g = e / 32;
        let q = (qs[32 * (e / 64) + e % 32] >> (4 * (g % 2))) & 0x0f;
        *v = (d * sc[g] as f32) * q as f32 - dmin * mn[g] as f32;
    }
}

fn dequant_q5k(b: &[u8], y: &mut [f32]) {
    let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
    let (sc, mn) = k4_scales_mins(&b[4..16]);
    let (qh, qs) = (&b[16..48], &b[48..176]);
    for (e, v) in y.iter_mut().enumerate() {
        let (g, l) = (e / 32, e % 32);
        let q = ((qs[32 * (e / 64) + l] >> (4 * (g % 2))) & 0x0f) | (((qh[l] >> g) & 1) << 4);
        *v = (d * sc[g] as f32) * q as f32 - dmin * mn[g] as f32;
    }
}

/// The signed 6-bit Q6_K quant of element `e` (−32..31).
#[inline(always)]
fn q6k_quant(ql: &[u8], qh: &[u8], e: usize) -> i8 {
    let (half, t, l) = (e / 128, (e / 32) % 4, e % 32);
    let low = (ql[64 * half + 32 * (t % 2) + l] >> (4 * (t / 2))) & 0x0f;
    let high = (qh[32 * half + l] >> (2 * t)) & 3;
    (low | (high << 4)) as i8 - 32
}

fn dequant_q6k(b: &[u8], y: &mut [f32]) {
    let (ql, qh, scales) = (&b[0..128], &b[128..192], &b[192..208]);
    let d = f16_at(b, 208);
    for (e, v) in y.iter_mut().enumerate() {
        *v = (d * scales[e / 16] as i8 as f32) * q6k_quant(ql, qh, e) as f32;
    }
}

fn dequant_q8k(b: &[u8], y: &mut [f32]) {
    let d = f32_at(b, 0);
    for (v, &q) in y.iter_mut().zip(&b[Q8K_QS..Q8K_QS + QK_K]) {
        *v = d * q as i8 as f32;
    }
}

// ---------------------------------------------------------------------------------------------
// Quantization
// ---------------------------------------------------------------------------------------------

pub(crate) fn quantize(ty: GgmlType, src: &[f32], dst: &mut [u8]) -> Result<()> {
    use GgmlType::*;
    let (bytes, f): (usize, QuantBlock) = match ty {
        Q8_K => (Q8K, quant_q8k),
        Q2_K => (Q2K, quant_q2k),
        Q3_K => (Q3K, quant_q3k),
        Q4_K => (Q4K, quant_q4k),
        Q5_K => (Q5K, quant_q5k),
        Q6_K => (Q6K, quant_q6k),
        other => return Err(Error::Unsupported(other)),
    };
    for (x, b) in src.chunks_exact(QK_K).zip(dst.chunks_exact_mut(bytes)) {
        f(x, b);
    }
    Ok(())
}

/// ggml's `quantize_row_q8_K_ref`: `d = max / -127` for the signed value `max` of largest
/// magnitude (so that value becomes exactly −127), quants rounded half to even, and the sums
/// of each 16 quants for the weight formats' min/offset terms.
fn quant_q8k(x: &[f32], b: &mut [u8]) {
    let mut max = 0.0f32;
    let mut amax = 0.0f32;
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    if amax == 0.0 {
        // ggml leaves bsums untouched here; zero them so the block is fully defined.
        b.fill(0);
        return;
    }
    let iscale = -127.0 / max;
    let (head, rest) = b.split_at_mut(Q8K_QS);
    let (qs, bsums) = rest.split_at_mut(QK_K);
    for (q, &v) in qs.iter_mut().zip(x) {
        *q = nearest_int(iscale * v).min(127) as i8 as u8;
    }
    for (g, out) in bsums.chunks_exact_mut(2).enumerate() {
        let sum: i32 = qs[16 * g..16 * g + 16]
            .iter()
            .map(|&q| q as i8 as i32)
            .sum();
        // 16 quants of magnitude ≤ 127 sum to at most 2032: always fits an i16.
        out.copy_from_slice(&(sum as i16).to_le_bytes());
    }
    head.copy_from_slice(&(1.0 / iscale).to_le_bytes());
}

// Weight quantizers: ggml's reference ("_ref") algorithms, step for step and in the same f32
// operation order, so that Hearth writes the same bytes as `quantize_row_q*_K_ref`. Each
// searches per-group scales (and mins) that minimise a weighted error, then quantizes those
// with 4, 6 or 8 bits against the super-block `d`/`dmin`, then re-rounds the quants against
// the scales as they will be decoded.

/// Groups whose largest magnitude is below this are stored as zero (ggml's `GROUP_MAX_EPS`).
const GROUP_MAX_EPS: f32 = 1e-15;

#[inline(always)]
fn put_f16(b: &mut [u8], off: usize, v: f32) {
    b[off..off + 2].copy_from_slice(&f16::from_f32(v).to_le_bytes());
}

/// The signed value of largest magnitude (the first one on ties) and that magnitude.
fn signed_max(x: &[f32]) -> (f32, f32) {
    let (mut max, mut amax) = (0.0f32, 0.0f32);
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    (max, amax)
}

/// Scale and min for an asymmetric group `x ≈ scale·L − min` with `L` in `0..=nmax`
/// (ggml's `make_qkx2_quants`): start from the min/max fit, then try `nstep + 1` stretched
/// scales, solving the weighted least-squares (scale, min) for each rounding; keep the best.
/// Returns `(scale, min)` with `min ≥ 0` meaning an offset of `−min`.
#[allow(clippy::too_many_arguments)]
fn fit_scale_min(
    x: &[f32],
    weights: &[f32],
    nmax: i32,
    levels: &mut [u8],
    rmin: f32,
    rdelta: f32,
    nstep: i32,
    use_mad: bool,
) -> (f32, f32) {
    let n = x.len();
    let (mut min, mut max) = (x[0], x[0]);
    let mut sum_w = weights[0];
    let mut sum_x = sum_w * x[0];
    for i in 1..n {
        min = min.min(x[i]);
        max = max.max(x[i]);
        sum_w += weights[i];
        sum_x += weights[i] * x[i];
    }
    if min > 0.0 {
        min = 0.0;
    }
    if max == min {
        levels.fill(0);
        return (0.0, -min);
    }
    let err = |d: f32| if use_mad { d.abs() } else { d * d };
    let mut iscale = nmax as f32 / (max - min);
    let mut scale = 1.0 / iscale;
    let mut best_error = 0.0f32;
    for i in 0..n {
        let l = nearest_int(iscale * (x[i] - min)).clamp(0, nmax);
        levels[i] = l as u8;
        best_error += weights[i] * err(scale * l as f32 + min - x[i]);
    }
    let mut aux = [0u8; 32];
    for is in 0..=nstep {
        iscale = (rmin + rdelta * is as f32 + nmax as f32) / (max - min);
        let (mut sum_l, mut sum_l2, mut sum_xl) = (0.0f32, 0.0f32, 0.0f32);
        for i in 0..n {
            let l = nearest_int(iscale * (x[i] - min)).clamp(0, nmax);
            aux[i] = l as u8;
            let (w, l) = (weights[i], l as f32);
            sum_l += w * l;
            sum_l2 += w * l * l;
            sum_xl += w * l * x[i];
        }
        let det = sum_w * sum_l2 - sum_l * sum_l;
        if det > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let mut cur_error = 0.0f32;
            for i in 0..n {
                cur_error += weights[i] * err(this_scale * aux[i] as f32 + this_min - x[i]);
            }
            if cur_error < best_error {
                levels.copy_from_slice(&aux[..n]);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    (scale, -min)
}

/// Symmetric group scale with `L` in `-nmax..nmax` stored as `L + nmax`, weighted by `x²`
/// (ggml's `make_qx_quants` with `rmse_type = 1`): the least-squares scale for the plain
/// rounding, then for 18 nudged scales, keeping the best.
fn fit_scale_symmetric(x: &[f32], nmax: i32, levels: &mut [i8]) -> f32 {
    let (max, amax) = signed_max(x);
    if amax < GROUP_MAX_EPS {
        levels.fill(0);
        return 0.0;
    }
    let round = |iscale: f32, v: f32| nearest_int(iscale * v).clamp(-nmax, nmax - 1);
    let mut iscale = -nmax as f32 / max;
    let (mut sumlx, mut suml2) = (0.0f32, 0.0f32);
    for (lv, &v) in levels.iter_mut().zip(x) {
        let l = round(iscale, v);
        *lv = (l + nmax) as i8;
        let w = v * v;
        sumlx += w * v * l as f32;
        suml2 += w * l as f32 * l as f32;
    }
    let mut scale = if suml2 != 0.0 { sumlx / suml2 } else { 0.0 };
    let mut best = scale * sumlx;
    for is in (-9..=9).filter(|&is| is != 0) {
        iscale = -(nmax as f32 + 0.1 * is as f32) / max;
        let (mut sumlx, mut suml2) = (0.0f32, 0.0f32);
        for &v in x {
            let l = round(iscale, v) as f32;
            let w = v * v;
            sumlx += w * v * l;
            suml2 += w * l * l;
        }
        if suml2 > 0.0 && sumlx * sumlx > best * suml2 {
            for (lv, &v) in levels.iter_mut().zip(x) {
                *lv = (nmax + round(iscale, v)) as i8;
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    scale
}

/// Q3_K's group scale (ggml's `make_q3_quants` with `do_rmse`): start from the plain
/// rounding, then move single quants while that lowers the `x²`-weighted error, up to 5
/// sweeps. Levels come back as `L + nmax`.
fn fit_scale_q3(x: &[f32], nmax: i32, levels: &mut [i8]) -> f32 {
    let (max, amax) = signed_max(x);
    if amax < GROUP_MAX_EPS {
        levels.fill(0);
        return 0.0;
    }
    let iscale = -nmax as f32 / max;
    let (mut sumlx, mut suml2) = (0.0f32, 0.0f32);
    for (lv, &v) in levels.iter_mut().zip(x) {
        let l = nearest_int(iscale * v).clamp(-nmax, nmax - 1);
        *lv = l as i8;
        let w = v * v;
        sumlx += w * v * l as f32;
        suml2 += w * l as f32 * l as f32;
    }
    for _ in 0..5 {
        let mut changed = false;
        for (lv, &v) in levels.iter_mut().zip(x) {
            let w = v * v;
            let old = *lv as f32;
            let mut slx = sumlx - w * v * old;
            if slx > 0.0 {
                let mut sl2 = suml2 - w * old * old;
                let new_l = nearest_int(v * sl2 / slx).clamp(-nmax, nmax - 1);
                if new_l != *lv as i32 {
                    slx += w * v * new_l as f32;
                    sl2 += w * new_l as f32 * new_l as f32;
                    if sl2 > 0.0 && slx * slx * suml2 > sumlx * sumlx * sl2 {
                        *lv = new_l as i8;
                        sumlx = slx;
                        suml2 = sl2;
                        changed = true;
                    }
                }
            }
        }
        if !changed {
            break;
        }
    }
    for lv in levels.iter_mut() {
        *lv += nmax as i8;
    }
    if suml2 > 0.0 {
        sumlx / suml2
    } else {
        0.0
    }
}

/// Packs 2-bit levels: byte `l` of each 32-byte run holds elements `l`, `l+32`, `l+64`,
/// `l+96` of its 128-element half, lowest bits first (Q2_K and Q3_K low bits).
fn pack_2bit(levels: &[u8; QK_K], qs: &mut [u8]) {
    for half in 0..2 {
        for l in 0..32 {
            let e = 128 * half + l;
            qs[32 * half + l] =
                levels[e] | (levels[e + 32] << 2) | (levels[e + 64] << 4) | (levels[e + 96] << 6);
        }
    }
}

fn quant_q2k(x: &[f32], b: &mut [u8]) {
    let mut levels = [0u8; QK_K];
    let (mut scales, mut mins) = ([0f32; 16], [0f32; 16]);
    let mut weights = [0f32; 16];
    for g in 0..16 {
        let xs = &x[16 * g..16 * g + 16];
        for (w, &v) in weights.iter_mut().zip(xs) {
            *w = v.abs();
        }
        let lv = &mut levels[16 * g..16 * g + 16];
        (scales[g], mins[g]) = fit_scale_min(xs, &weights, 3, lv, -0.5, 0.1, 15, true);
    }
    let max_scale = scales.iter().fold(0f32, |m, &s| if s > m { s } else { m });
    let max_min = mins.iter().fold(0f32, |m, &s| if s > m { s } else { m });
    b.fill(0);
    if max_scale > 0.0 {
        let iscale = 15.0 / max_scale;
        for g in 0..16 {
            b[g] = nearest_int(iscale * scales[g]) as u8;
        }
        put_f16(b, 80, max_scale / 15.0);
    }
    if max_min > 0.0 {
        let iscale = 15.0 / max_min;
        for g in 0..16 {
            b[g] |= (nearest_int(iscale * mins[g]) << 4) as u8;
        }
        put_f16(b, 82, max_min / 15.0);
    }
    let (d, dmin) = (f16_at(b, 80), f16_at(b, 82));
    for (g, &sm) in b[..16].iter().enumerate() {
        let dl = d * (sm & 0x0f) as f32;
        if dl == 0.0 {
            continue;
        }
        let ml = dmin * (sm >> 4) as f32;
        for e in 16 * g..16 * g + 16 {
            levels[e] = nearest_int((x[e] + ml) / dl).clamp(0, 3) as u8;
        }
    }
    pack_2bit(&levels, &mut b[16..80]);
}

fn quant_q3k(x: &[f32], b: &mut [u8]) {
    let mut levels = [0i8; QK_K];
    let mut scales = [0f32; 16];
    let (mut max_scale, mut amax) = (0f32, 0f32);
    for g in 0..16 {
        scales[g] = fit_scale_q3(&x[16 * g..16 * g + 16], 4, &mut levels[16 * g..16 * g + 16]);
        if scales[g].abs() > amax {
            amax = scales[g].abs();
            max_scale = scales[g];
        }
    }
    b.fill(0);
    if max_scale != 0.0 {
        let iscale = -32.0 / max_scale;
        let s = &mut b[96..108];
        for (j, &sc) in scales.iter().enumerate() {
            let l = ((nearest_int(iscale * sc) as i8).clamp(-32, 31) + 32) as u8;
            if j < 8 {
                s[j] = l & 0x0f;
            } else {
                s[j - 8] |= (l & 0x0f) << 4;
            }
            s[8 + j % 4] |= (l >> 4) << (2 * (j / 4));
        }
        put_f16(b, 108, 1.0 / iscale);
    }
    let d_all = f16_at(b, 108);
    let sc = q3k_scales(&b[96..108]);
    for (g, &s) in sc.iter().enumerate() {
        let d = d_all * s as f32;
        if d == 0.0 {
            continue;
        }
        for e in 16 * g..16 * g + 16 {
            levels[e] = (nearest_int(x[e] / d).clamp(-4, 3) + 4) as i8;
        }
    }
    // High bit of element e goes to bit e/32 of hmask byte e%32; the low 2 bits as Q2_K.
    let mut low = [0u8; QK_K];
    for (e, &l) in levels.iter().enumerate() {
        let l = l as u8;
        if l > 3 {
            b[e % 32] |= 1 << (e / 32);
        }
        low[e] = l & 3;
    }
    pack_2bit(&low, &mut b[32..96]);
}

/// Shared by Q4_K (`nmax` 15) and Q5_K (`nmax` 31): returns the final levels after packing
/// the scales/mins into `b[4..16]` and `d`/`dmin` into `b[0..4]`.
fn quant_k4(x: &[f32], b: &mut [u8], nmax: i32, rmin: f32, nstep: i32) -> [u8; QK_K] {
    let mut levels = [0u8; QK_K];
    let (mut scales, mut mins) = ([0f32; 8], [0f32; 8]);
    let mut weights = [0f32; 32];
    for g in 0..8 {
        let xs = &x[32 * g..32 * g + 32];
        let sum_x2: f32 = xs.iter().fold(0.0, |s, &v| s + v * v);
        let av_x = (sum_x2 / 32.0).sqrt();
        for (w, &v) in weights.iter_mut().zip(xs) {
            *w = av_x + v.abs();
        }
        let lv = &mut levels[32 * g..32 * g + 32];
        (scales[g], mins[g]) = fit_scale_min(xs, &weights, nmax, lv, rmin, 0.1, nstep, false);
    }
    let max_scale = scales.iter().fold(0f32, |m, &s| if s > m { s } else { m });
    let max_min = mins.iter().fold(0f32, |m, &s| if s > m { s } else { m });
    let inv_scale = if max_scale > 0.0 {
        63.0 / max_scale
    } else {
        0.0
    };
    let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
    let s = &mut b[4..16];
    s.fill(0);
    for j in 0..8 {
        let ls = (nearest_int(inv_scale * scales[j]) as u8).min(63);
        let lm = (nearest_int(inv_min * mins[j]) as u8).min(63);
        if j < 4 {
            s[j] = ls;
            s[j + 4] = lm;
        } else {
            s[j + 4] = (ls & 0x0f) | ((lm & 0x0f) << 4);
            s[j - 4] |= (ls >> 4) << 6;
            s[j] |= (lm >> 4) << 6;
        }
    }
    put_f16(b, 0, max_scale / 63.0);
    put_f16(b, 2, max_min / 63.0);
    let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
    let (sc, mn) = k4_scales_mins(&b[4..16]);
    for g in 0..8 {
        let dl = d * sc[g] as f32;
        if dl == 0.0 {
            continue;
        }
        let dm = dmin * mn[g] as f32;
        for e in 32 * g..32 * g + 32 {
            levels[e] = nearest_int((x[e] + dm) / dl).clamp(0, nmax) as u8;
        }
    }
    levels
}

fn quant_q4k(x: &[f32], b: &mut [u8]) {
    let levels = quant_k4(x, b, 15, -1.0, 20);
    for half in 0..4 {
        for l in 0..32 {
            let e = 64 * half + l;
            b[16 + 32 * half + l] = levels[e] | (levels[e + 32] << 4);
        }
    }
}

fn quant_q5k(x: &[f32], b: &mut [u8]) {
    let levels = quant_k4(x, b, 31, -0.5, 15);
    b[16..48].fill(0);
    for pair in 0..4 {
        for l in 0..32 {
            let (lo, hi) = (levels[64 * pair + l], levels[64 * pair + 32 + l]);
            b[16 + l] |= ((lo >> 4) << (2 * pair)) | ((hi >> 4) << (2 * pair + 1));
            b[48 + 32 * pair + l] = (lo & 0x0f) | ((hi & 0x0f) << 4);
        }
    }
}

fn quant_q6k(x: &[f32], b: &mut [u8]) {
    let mut levels = [0i8; QK_K];
    let mut scales = [0f32; 16];
    let (mut max_scale, mut max_abs) = (0f32, 0f32);
    for g in 0..16 {
        let lv = &mut levels[16 * g..16 * g + 16];
        scales[g] = fit_scale_symmetric(&x[16 * g..16 * g + 16], 32, lv);
        if scales[g].abs() > max_abs {
            max_abs = scales[g].abs();
            max_scale = scales[g];
        }
    }
    b.fill(0);
    if max_abs < GROUP_MAX_EPS {
        return;
    }
    let iscale = -128.0 / max_scale;
    put_f16(b, 208, 1.0 / iscale);
    for g in 0..16 {
        b[192 + g] = nearest_int(iscale * scales[g]).min(127) as i8 as u8;
    }
    let d_all = f16_at(b, 208);
    for g in 0..16 {
        let d = d_all * b[192 + g] as i8 as f32;
        if d == 0.0 {
            continue;
        }
        for e in 16 * g..16 * g + 16 {
            levels[e] = (nearest_int(x[e] / d).clamp(-32, 31) + 32) as i8;
        }
    }
    for half in 0..2 {
        for l in 0..32 {
            let e = 128 * half + l;
            let q: [u8; 4] = std::array::from_fn(|t| levels[e + 32 * t] as u8);
            b[64 * half + l] = (q[0] & 0x0f) | ((q[2] & 0x0f) << 4);
            b[64 * half + 32 + l] = (q[1] & 0x0f) | ((q[3] & 0x0f) << 4);
            b[128 + 32 * half + l] =
                (q[0] >> 4) | ((q[1] >> 4) << 2) | ((q[2] >> 4) << 4) | ((q[3] >> 4) << 6);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Dot products
// ---------------------------------------------------------------------------------------------

/// The portable reference: exactly the lanes and float operations of the SIMD kernels.
pub(crate) fn vec_dot_scalar(ty: GgmlType, n: usize, w: &[u8], x: &[u8]) -> f32 {
    use GgmlType::*;
    let nb = n / QK_K;
    let (bytes, block): (usize, DotBlock) = match ty {
        Q2_K => (Q2K, dot_block_q2k),
        Q3_K => (Q3K, dot_block_q3k),
        Q4_K => (Q4K, dot_block_q4k),
        Q5_K => (Q5K, dot_block_q5k),
        Q6_K => (Q6K, dot_block_q6k),
        // `activation_type` admits only the five weight formats above.
        other => unreachable!("kquants::vec_dot on {other}"),
    };
    let mut acc = Acc::default();
    for (wb, xb) in w.chunks_exact(bytes).zip(x.chunks_exact(Q8K)).take(nb) {
        block(wb, xb, &mut acc);
    }
    hsum8(&std::array::from_fn(|k| acc.s[k] + acc.m[k]))
}

/// The fixed final reduction of the 8 f32 lanes (the order AVX2's halving sum produces).
#[inline(always)]
fn hsum8(a: &[f32; 8]) -> f32 {
    let t = [a[0] + a[4], a[1] + a[5], a[2] + a[6], a[3] + a[7]];
    (t[0] + t[2]) + (t[1] + t[3])
}

/// `S[k] = Σ sc16[e/16] · q[e] · y[e]` over the elements `e` with `(e % 32) / 4 == k`.
#[inline(always)]
fn lane_sums(q: &[i8; QK_K], y: &[u8], sc16: &[i32; 16]) -> [i32; 8] {
    let mut s = [0i32; 8];
    for chunk in 0..8 {
        for (k, lane) in s.iter_mut().enumerate() {
            let e0 = 32 * chunk + 4 * k;
            let sc = sc16[e0 / 16];
            let mut p = 0i32;
            for e in e0..e0 + 4 {
                p += q[e] as i32 * y[e] as i8 as i32;
            }
            *lane += sc * p;
        }
    }
    s
}

/// `M[k] = m16[2k]·bsum[2k] + m16[2k+1]·bsum[2k+1]` (the `madd` of 16 i16 pairs).
#[inline(always)]
fn lane_group_sums(m16: &[i32; 16], xb: &[u8]) -> [i32; 8] {
    let bsum = |g: usize| i16::from_le_bytes([xb[Q8K_BSUMS + 2 * g], xb[Q8K_BSUMS + 2 * g + 1]]);
    let mut out = [0i32; 8];
    for (k, o) in out.iter_mut().enumerate() {
        *o = m16[2 * k] * bsum(2 * k) as i32 + m16[2 * k + 1] * bsum(2 * k + 1) as i32;
    }
    out
}

#[inline(always)]
fn add_lanes(acc: &mut [f32; 8], d: f32, lanes: &[i32; 8]) {
    for (a, &l) in acc.iter_mut().zip(lanes) {
        *a = d.mul_add(l as f32, *a);
    }
}

fn dot_block_q2k(wb: &[u8], xb: &[u8], acc: &mut Acc) {
    let yd = f32_at(xb, 0);
    let (d, dmin) = (yd * f16_at(wb, 80), -(yd * f16_at(wb, 82)));
    let mut q = [0i8; QK_K];
    for (e, v) in q.iter_mut().enumerate() {
        *v = ((wb[16 + 32 * (e / 128) + e % 32] >> (2 * ((e / 32) % 4))) & 3) as i8;
    }
    let sc16: [i32; 16] = std::array::from_fn(|g| (wb[g] & 0x0f) as i32);
    let m16: [i32; 16] = std::array::from_fn(|g| (wb[g] >> 4) as i32);
    add_lanes(&mut acc.s, d, &lane_sums(&q, &xb[Q8K_QS..], &sc16));
    add_lanes(&mut acc.m, dmin, &lane_group_sums(&m16, xb));
}

fn dot_block_q3k(wb: &[u8], xb: &[u8], acc: &mut Acc) {
    let d = f32_at(xb, 0) * f16_at(wb, 108);
    let mut q = [0i8; QK_K];
    for (e, v) in q.iter_mut().enumerate() {
        let l = e % 32;
        let low = (wb[32 + 32 * (e / 128) + l] >> (2 * ((e / 32) % 4))) & 3;
        let high = (wb[l] >> (e / 32)) & 1;
        *v = low as i8 - if high == 1 { 0 } else { 4 };
    }
    let sc = q3k_scales(&wb[96..108]);
    let sc16: [i32; 16] = std::array::from_fn(|g| sc[g] as i32);
    add_lanes(&mut acc.s, d, &lane_sums(&q, &xb[Q8K_QS..], &sc16));
}

fn dot_block_q4k(wb: &[u8], xb: &[u8], acc: &mut Acc) {
    let yd = f32_at(xb, 0);
    let (d, dmin) = (yd * f16_at(wb, 0), -(yd * f16_at(wb, 2)));
    let (sc, mn) = k4_scales_mins(&wb[4..16]);
    let mut q = [0i8; QK_K];
    for (e, v) in q.iter_mut().enumerate() {
        *v = ((wb[16 + 32 * (e / 64) + e % 32] >> (4 * ((e / 32) % 2))) & 0x0f) as i8;
    }
    let sc16: [i32; 16] = std::array::from_fn(|g| sc[g / 2] as i32);
    let m16: [i32; 16] = std::array::from_fn(|g| mn[g / 2] as i32);
    add_lanes(&mut acc.s, d, &lane_sums(&q, &xb[Q8K_QS..], &sc16));
    add_lanes(&mut acc.m, dmin, &lane_group_sums(&m16, xb));
}

fn dot_block_q5k(wb: &[u8], xb: &[u8], acc: &mut Acc) {
    let yd = f32_at(xb, 0);
    let (d, dmin) = (yd * f16_at(wb, 0), -(yd * f16_at(wb, 2)));
    let (sc, mn) = k4_scales_mins(&wb[4..16]);
    let mut q = [0i8; QK_K];
    for (e, v) in q.iter_mut().enumerate() {
        let (g, l) = (e / 32, e % 32);
        let low = (wb[48 + 32 * (e / 64) + l] >> (4 * (g % 2))) & 0x0f;
        *v = (low | (((wb[16 + l] >> g) & 1) << 4)) as i8;
    }
    let sc16: [i32; 16] = std::array::from_fn(|g| sc[g / 2] as i32);
    let m16: [i32; 16] = std::array::from_fn(|g| mn[g / 2] as i32);
    add_lanes(&mut acc.s, d, &lane_sums(&q, &xb[Q8K_QS..], &sc16));
    add_lanes(&mut acc.m, dmin, &lane_group_sums(&m16, xb));
}

fn dot_block_q6k(wb: &[u8], xb: &[u8], acc: &mut Acc) {
    let d = f32_at(xb, 0) * f16_at(wb, 208);
    let (ql, qh) = (&wb[0..128], &wb[128..192]);
    // Unsigned quants (0..63) as the SIMD path multiplies them; the +32 offset comes off
    // through the bsums below.
    let mut q = [0i8; QK_K];
    for (e, v) in q.iter_mut().enumerate() {
        *v = q6k_quant(ql, qh, e) + 32;
    }
    let sc16: [i32; 16] = std::array::from_fn(|g| wb[192 + g] as i8 as i32);
    let mut s = lane_sums(&q, &xb[Q8K_QS..], &sc16);
    let offset = lane_group_sums(&sc16, xb);
    for (s, o) in s.iter_mut().zip(offset) {
        *s -= o << 5;
    }
    add_lanes(&mut acc.s, d, &s);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_sizes_match_the_type_table() {
        let sizes = [
            (GgmlType::Q2_K, Q2K),
            (GgmlType::Q3_K, Q3K),
            (GgmlType::Q4_K, Q4K),
        ];
        let more = [
            (GgmlType::Q5_K, Q5K),
            (GgmlType::Q6_K, Q6K),
            (GgmlType::Q8_K, Q8K),
        ];
        for (ty, bytes) in sizes.into_iter().chain(more) {
            assert_eq!(ty.type_size(), bytes, "{ty}");
            assert_eq!(ty.block_size(), QK_K, "{ty}");
        }
    }

    #[test]
    fn nearest_int_rounds_half_to_even() {
        for v in [
            -4.5f32, -3.5, -2.5, -0.5, 0.0, 0.5, 1.5, 2.5, 126.5, -127.49, 3.999, -0.4,
        ] {
            assert_eq!(nearest_int(v), v.round_ties_even() as i32, "{v}");
        }
    }
}
