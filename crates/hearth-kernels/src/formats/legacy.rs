//! The 32-element block formats: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 weights and the Q8_0 / Q8_1
//! activation formats.
//!
//! Block layouts (little-endian, no padding, so blocks are read at any byte offset):
//!
//! | type | bytes | fields |
//! |------|-------|--------|
//! | Q4_0 | 18 | `d: f16`, `qs: [u8; 16]` — element `j` is the low nibble of `qs[j]`, element `j + 16` the high nibble; value `d * (q - 8)` |
//! | Q4_1 | 20 | `d: f16`, `m: f16`, `qs: [u8; 16]` — value `d * q + m` |
//! | Q5_0 | 22 | `d: f16`, `qh: u32`, `qs: [u8; 16]` — bit `j` of `qh` is the fifth bit of element `j`; value `d * (q - 16)` |
//! | Q5_1 | 24 | `d: f16`, `m: f16`, `qh: u32`, `qs: [u8; 16]` — value `d * q + m` |
//! | Q8_0 | 34 | `d: f16`, `qs: [i8; 32]` — value `d * q` |
//! | Q8_1 | 36 | `d: f16`, `s: f16`, `qs: [i8; 32]` — value `d * q`; `s = d * Σq` so an offset weight's `m` term needs no pass over `qs` |
//!
//! Weight quantizers follow ggml's reference (`quantize_row_*_ref`) so test weights look like
//! real model weights. The activation quantizers (Q8_0, Q8_1) follow what llama.cpp's x86 CPU
//! backend runs: `d = amax / 127`, `q = round_half_even(x * (127 / amax))`. They are the same
//! code whatever the SIMD level, so activations are bit-identical on every path.
//!
//! The AVX2 / AVX-512 VNNI kernels of these formats are in `x86::legacy` and
//! `x86::legacy_tile`, the NEON ones in `arm::legacy` and `arm::legacy_tile`; `dispatch`
//! chooses between them and the scalar code here.
//!
//! Dot products multiply integer quants first (exact in i32) and scale in f32 afterwards, as
//! llama.cpp does, but in eight lane sums per block and four accumulators whose order
//! [`dot_scalar`] fixes: the order the x86 kernels chose for speed, which every level on every
//! architecture follows so that a model gives the same bits everywhere.

use half::f16;
use hearth_gguf::GgmlType;

const QK: usize = 32;

#[inline(always)]
fn rd_f16(b: &[u8], off: usize) -> f32 {
    crate::formats::float::f16_to_f32(u16::from_le_bytes([b[off], b[off + 1]]))
}

#[inline(always)]
fn rd_u32(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

#[inline(always)]
fn wr_f16(b: &mut [u8], off: usize, v: f32) {
    b[off..off + 2].copy_from_slice(&f16::from_f32(v).to_le_bytes());
}

/// Unpacks the 32 integer quants of one block (`qs` at `qs_off`, optional `qh` at `qh_off`)
/// into `q`, before any offset is subtracted.
#[inline(always)]
fn unpack(block: &[u8], qs_off: usize, qh: Option<u32>, q: &mut [i32; QK]) {
    for j in 0..QK / 2 {
        let b = block[qs_off + j];
        q[j] = (b & 0x0f) as i32;
        q[j + 16] = (b >> 4) as i32;
    }
    if let Some(qh) = qh {
        for (j, v) in q.iter_mut().enumerate() {
            *v |= (((qh >> j) & 1) << 4) as i32;
        }
    }
}

pub(crate) fn dequantize(ty: GgmlType, src: &[u8], dst: &mut [f32]) {
    let bs = ty.type_size();
    let mut q = [0i32; QK];
    for (b, out) in src.chunks_exact(bs).zip(dst.chunks_exact_mut(QK)) {
        let d = rd_f16(b, 0);
        match ty {
            GgmlType::Q4_0 => {
                unpack(b, 2, None, &mut q);
                for (o, &v) in out.iter_mut().zip(&q) {
                    *o = (v - 8) as f32 * d;
                }
            }
            GgmlType::Q4_1 => {
                let m = rd_f16(b, 2);
                unpack(b, 4, None, &mut q);
                for (o, &v) in out.iter_mut().zip(&q) {
                    // Separate multiply and add (no FMA), as ggml's reference and gguf-py do.
                    *o = v as f32 * d + m;
                }
            }
            GgmlType::Q5_0 => {
                unpack(b, 6, Some(rd_u32(b, 2)), &mut q);
                for (o, &v) in out.iter_mut().zip(&q) {
                    *o = (v - 16) as f32 * d;
                }
            }
            GgmlType::Q5_1 => {
                let m = rd_f16(b, 2);
                unpack(b, 8, Some(rd_u32(b, 4)), &mut q);
                for (o, &v) in out.iter_mut().zip(&q) {
                    // Separate multiply and add (no FMA), as ggml's reference and gguf-py do.
                    *o = v as f32 * d + m;
                }
            }
            GgmlType::Q8_0 | GgmlType::Q8_1 => {
                let off = if ty == GgmlType::Q8_0 { 2 } else { 4 };
                for (o, &v) in out.iter_mut().zip(&b[off..off + QK]) {
                    *o = v as i8 as f32 * d;
                }
            }
            other => unreachable!("legacy::dequantize called with {other}"),
        }
    }
}

/// Encodes a row of Q4_0, Q4_1, Q5_0 or Q5_1 weights (ggml's reference quantizers). The Q8_0 /
/// Q8_1 activation formats go through [`quantize_q8_row`] or its SIMD twin (`crate::dispatch`).
pub(crate) fn quantize_weights(ty: GgmlType, src: &[f32], dst: &mut [u8]) {
    let bs = ty.type_size();
    for (x, b) in src.chunks_exact(QK).zip(dst.chunks_exact_mut(bs)) {
        match ty {
            GgmlType::Q4_0 => quantize_sym(x, b, 4),
            GgmlType::Q5_0 => quantize_sym(x, b, 5),
            GgmlType::Q4_1 => quantize_offset(x, b, 4),
            GgmlType::Q5_1 => quantize_offset(x, b, 5),
            other => unreachable!("legacy::quantize called with {other}"),
        }
    }
}

/// Q4_0 / Q5_0 (ggml reference): the element of largest magnitude maps exactly to the most
/// negative code, `d = max / -2^(bits-1)`.
fn quantize_sym(x: &[f32], b: &mut [u8], bits: u32) {
    let half = (1 << (bits - 1)) as f32;
    let top = (1u8 << bits) - 1;
    let (mut amax, mut max) = (0.0f32, 0.0f32);
    for &v in x {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    let d = max / -half;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    wr_f16(b, 0, d);
    // `as i8` truncates toward zero like C's `(int8_t)`; the value is >= 0.5 here.
    let code = |v: f32| ((v * id + half + 0.5) as i8 as u8).min(top);
    pack(x, b, 0, bits, code);
}

/// Q4_1 / Q5_1 (ggml reference): codes span `[min, max]` in `2^bits - 1` steps.
fn quantize_offset(x: &[f32], b: &mut [u8], bits: u32) {
    let top = (1u8 << bits) - 1;
    let (mut min, mut max) = (f32::MAX, -f32::MAX);
    for &v in x {
        min = if v < min { v } else { min };
        max = if v > max { v } else { max };
    }
    let d = (max - min) / top as f32;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    wr_f16(b, 0, d);
    wr_f16(b, 2, min);
    let code = |v: f32| (((v - min) * id + 0.5) as i8 as u8).min(top);
    pack(x, b, 2, bits, code);
}

/// Writes the nibbles (and for 5-bit types the `qh` word) after `extra` bytes that follow `d`.
fn pack(x: &[f32], b: &mut [u8], extra: usize, bits: u32, code: impl Fn(f32) -> u8) {
    let qs_off = 2 + extra + if bits == 5 { 4 } else { 0 };
    let mut qh = 0u32;
    for j in 0..QK / 2 {
        let (c0, c1) = (code(x[j]), code(x[j + 16]));
        b[qs_off + j] = (c0 & 0x0f) | ((c1 & 0x0f) << 4);
        qh |= (((c0 >> 4) & 1) as u32) << j;
        qh |= (((c1 >> 4) & 1) as u32) << (j + 16);
    }
    if bits == 5 {
        let off = 2 + extra;
        b[off..off + 4].copy_from_slice(&qh.to_le_bytes());
    }
}

/// A row of Q8_0 / Q8_1 activations, portable version (the definition of their bytes).
pub(crate) fn quantize_q8_row(src: &[f32], dst: &mut [u8], with_sum: bool) {
    let bs = if with_sum { 36 } else { 34 };
    for (x, b) in src.chunks_exact(QK).zip(dst.chunks_exact_mut(bs)) {
        quantize_q8(x, b, with_sum);
    }
}

/// Q8_0 / Q8_1 as llama.cpp's x86 backend quantizes activations (see the module docs).
fn quantize_q8(x: &[f32], b: &mut [u8], with_sum: bool) {
    let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
    wr_f16(b, 0, d);
    let off = if with_sum { 4 } else { 2 };
    let mut sum = 0i32;
    for (o, &v) in b[off..off + QK].iter_mut().zip(x) {
        let q = (v * id).round_ties_even() as i32;
        sum += q;
        *o = q as i8 as u8;
    }
    if with_sum {
        wr_f16(b, 2, d * sum as f32);
    }
}

/// The portable reference, the definition of the bits every level gives.
///
/// Each block's 32 products `w_j · x_j` (weight codes less their offset of 8 or 16 for
/// Q4_0 / Q5_0) form eight exact i32 lane sums, lane `k` the four products of elements
/// `4k..4k + 4`. Block `i` adds its lanes, converted to f32 and multiplied by `d_w · d_x` (one
/// f32 multiplication) with one fused multiply-add each, into accumulator `i % 4`, eight lanes
/// wide; four independent chains are what lets the SIMD kernels keep their FMAs in flight. The
/// accumulators then reduce as `(a0 + a1) + (a2 + a3)` lane by lane, and the eight lanes as
/// `((v0 + v4) + (v2 + v6)) + ((v1 + v5) + (v3 + v7))` (a 256-bit vector's halves, then pairs).
/// Q4_1 / Q5_1 add `m_w · s_x` per block into four scalar sums of their own (block `i` into sum
/// `i % 4`), reduced `(s0 + s1) + (s2 + s3)` and added last.
pub(crate) fn dot_scalar(ty: GgmlType, nb: usize, w: &[u8], x: &[u8]) -> f32 {
    use GgmlType::*;
    let offset = matches!(ty, Q4_1 | Q5_1);
    let (wbs, xbs) = (ty.type_size(), if offset { 36 } else { 34 });
    let mut acc = [[0.0f32; 8]; 4];
    let mut summs = [0.0f32; 4];
    let mut q = [0i32; QK];
    for i in 0..nb {
        let wb = &w[i * wbs..(i + 1) * wbs];
        let xb = &x[i * xbs..(i + 1) * xbs];
        let d = rd_f16(wb, 0) * rd_f16(xb, 0);
        match ty {
            Q4_0 => {
                unpack(wb, 2, None, &mut q);
                q.iter_mut().for_each(|v| *v -= 8);
            }
            Q5_0 => {
                unpack(wb, 6, Some(rd_u32(wb, 2)), &mut q);
                q.iter_mut().for_each(|v| *v -= 16);
            }
            Q8_0 => {
                for (v, &b) in q.iter_mut().zip(&wb[2..2 + QK]) {
                    *v = b as i8 as i32;
                }
            }
            Q4_1 => unpack(wb, 4, None, &mut q),
            Q5_1 => unpack(wb, 8, Some(rd_u32(wb, 4)), &mut q),
            other => unreachable!("legacy::vec_dot called with {other}"),
        }
        let xq = &xb[xbs - QK..];
        let a = &mut acc[i % 4];
        for (k, lane) in a.iter_mut().enumerate() {
            let s: i32 = (4 * k..4 * k + 4)
                .map(|j| q[j] * (xq[j] as i8 as i32))
                .sum();
            *lane = d.mul_add(s as f32, *lane);
        }
        if offset {
            summs[i % 4] += rd_f16(wb, 2) * rd_f16(xb, 2);
        }
    }
    let v: [f32; 8] = std::array::from_fn(|k| (acc[0][k] + acc[1][k]) + (acc[2][k] + acc[3][k]));
    let sum = ((v[0] + v[4]) + (v[2] + v[6])) + ((v[1] + v[5]) + (v[3] + v[7]));
    if offset {
        sum + ((summs[0] + summs[1]) + (summs[2] + summs[3]))
    } else {
        sum
    }
}
