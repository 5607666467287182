//! The 2- and 3-bit i-quants, IQ2_XXS, IQ2_XS, IQ3_XXS and IQ3_S: each group of 8 (IQ2) or 4
//! (IQ3) weights is one point of a fixed lattice (the tables in `iqgrids`, decoded from the
//! `gguf` package's constants), with a sign pattern and a 4-bit scale per 32 (IQ2_XS: per 16)
//! weights. 256-element blocks, multiplied with Q8_K activations.
//!
//! Block layouts (little-endian; ggml's `block_iq2_xxs` ... `block_iq3_s`), for the 32-element
//! chunk `c` of a block:
//!
//! | type | bytes | fields | chunk `c` |
//! |------|-------|--------|-----------|
//! | IQ2_XXS | 66 | `d: f16`, 8 × (`a: u32`, `b: u32`) | points `IQ2XXS[a.byte(l)]`, signs `KSIGNS[(b >> 7l) & 127]` (l < 4), scale `b >> 28` |
//! | IQ2_XS | 74 | `d: f16`, `qs: [u16; 32]`, `scales: [u8; 8]` | points `IQ2XS[q & 511]`, signs `KSIGNS[q >> 9]` for `q = qs[4c + l]`; scale nibble 0 of `scales[c]` for elements 0..16, nibble 1 for 16..32 |
//! | IQ3_XXS | 98 | `d: f16`, `qs: [u8; 64]`, 8 × `b: u32` | points `IQ3XXS[qs[8c + k]]` (k < 8), signs `KSIGNS[(b >> 7l) & 127]`, scale `b >> 28` |
//! | IQ3_S | 110 | `d: f16`, `qs: [u8; 64]`, `qh: [u8; 8]`, `signs: [u8; 32]`, `scales: [u8; 4]` | points `IQ3S[qs[8c + k] \| bit k of qh[c] << 8]`, signs `signs[4c + l]`, scale nibble `c % 2` of `scales[c / 2]` |
//!
//! A sign byte covers 8 consecutive weights (bit `j` set: weight `j` negative). Decoding
//! follows the `gguf` package's operations exactly (checked bit for bit by the fixtures): the
//! group scale is `(d · (0.5 + s)) · 0.25` (IQ2), `(d · (0.5 + s)) · 0.5` (IQ3_XXS) or
//! `d · (1 + 2s)` (IQ3_S), then times the point's value, then the sign.
//!
//! # Dot products
//! Every scale is `(2s + 1) · d · f` with `f` = 1/8 (IQ2), 1/4 (IQ3_XXS) or 1 (IQ3_S), so a
//! block's products are exact integers `(2s + 1) · point · ±y` in the K-quant lanes (lane `k`
//! of a chunk holds elements `4k..4k + 4`), added over the chunks in i32; the block then adds
//! `(d_x · d_w) · f` times each lane to its f32 lane with one FMA, and the eight lanes reduce
//! as in `formats::kquants`.

use hearth_gguf::{GgmlType, QK_K};

use crate::formats::iqgrids::{IQ2XS_GRID, IQ2XXS_GRID, IQ3S_GRID, IQ3XXS_GRID, KSIGNS};
use crate::formats::kquants::{self, Q8K, Q8K_QS};

#[inline(always)]
fn rd_f16(b: &[u8], off: usize) -> f32 {
    crate::formats::float::f16_to_f32(u16::from_le_bytes([b[off], b[off + 1]]))
}

#[inline(always)]
fn rd_u32(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

/// One 32-element chunk: its points' values (unsigned), the sign of each element (bit `j`
/// set: element `j` negative), and the 4-bit scales of its two halves.
pub(crate) struct Chunk {
    pub grid: [u8; 32],
    pub neg: u32,
    pub scales: [u32; 2],
}

/// The lattice point `idx` of an 8-value grid, as bytes.
#[inline(always)]
fn p8(grid: &[u64], idx: usize) -> [u8; 8] {
    grid[idx].to_le_bytes()
}

/// Decodes chunk `c` of block `b` of type `ty`.
#[inline(always)]
pub(crate) fn chunk(ty: GgmlType, b: &[u8], c: usize) -> Chunk {
    let mut grid = [0u8; 32];
    let mut neg = 0u32;
    let scales;
    match ty {
        GgmlType::IQ2_XXS => {
            let (a, s) = (rd_u32(b, 2 + 8 * c), rd_u32(b, 6 + 8 * c));
            for l in 0..4 {
                grid[8 * l..8 * l + 8]
                    .copy_from_slice(&p8(&IQ2XXS_GRID, (a >> (8 * l)) as u8 as usize));
                neg |= (KSIGNS[((s >> (7 * l)) & 127) as usize] as u32) << (8 * l);
            }
            scales = [s >> 28; 2];
        }
        GgmlType::IQ2_XS => {
            for l in 0..4 {
                let o = 2 + 2 * (4 * c + l);
                let q = u16::from_le_bytes([b[o], b[o + 1]]);
                grid[8 * l..8 * l + 8].copy_from_slice(&p8(&IQ2XS_GRID, (q & 511) as usize));
                neg |= (KSIGNS[(q >> 9) as usize] as u32) << (8 * l);
            }
            let s = b[66 + c] as u32;
            scales = [s & 0x0f, s >> 4];
        }
        GgmlType::IQ3_XXS => {
            for k in 0..8 {
                let p = IQ3XXS_GRID[b[2 + 8 * c + k] as usize].to_le_bytes();
                grid[4 * k..4 * k + 4].copy_from_slice(&p);
            }
            let s = rd_u32(b, 66 + 4 * c);
            for l in 0..4 {
                neg |= (KSIGNS[((s >> (7 * l)) & 127) as usize] as u32) << (8 * l);
            }
            scales = [s >> 28; 2];
        }
        GgmlType::IQ3_S => {
            let qh = b[66 + c] as usize;
            for k in 0..8 {
                let idx = b[2 + 8 * c + k] as usize | (((qh >> k) & 1) << 8);
                grid[4 * k..4 * k + 4].copy_from_slice(&IQ3S_GRID[idx].to_le_bytes());
            }
            neg = rd_u32(b, 74 + 4 * c);
            let s = ((b[106 + c / 2] >> (4 * (c % 2))) & 0x0f) as u32;
            scales = [s; 2];
        }
        other => unreachable!("iq23::chunk called with {other}"),
    }
    Chunk { grid, neg, scales }
}

/// The factor `f` of the module docs.
#[inline(always)]
pub(crate) fn factor(ty: GgmlType) -> f32 {
    match ty {
        GgmlType::IQ2_XXS | GgmlType::IQ2_XS => 0.125,
        GgmlType::IQ3_XXS => 0.25,
        _ => 1.0,
    }
}

/// The `gguf` package's group scale for 4-bit scale `s` (see the module docs).
#[inline(always)]
fn group_scale(ty: GgmlType, d: f32, s: u32) -> f32 {
    match ty {
        GgmlType::IQ2_XXS | GgmlType::IQ2_XS => d * (0.5 + s as f32) * 0.25,
        GgmlType::IQ3_XXS => d * (0.5 + s as f32) * 0.5,
        _ => d * (1 + 2 * s) as f32,
    }
}

pub(crate) fn dequantize(ty: GgmlType, src: &[u8], dst: &mut [f32]) {
    let bs = ty.type_size();
    for (b, out) in src.chunks_exact(bs).zip(dst.chunks_exact_mut(QK_K)) {
        let d = rd_f16(b, 0);
        for (c, out) in out.chunks_exact_mut(32).enumerate() {
            let ch = chunk(ty, b, c);
            let db = [
                group_scale(ty, d, ch.scales[0]),
                group_scale(ty, d, ch.scales[1]),
            ];
            for (j, o) in out.iter_mut().enumerate() {
                let v = db[j / 16] * ch.grid[j] as f32;
                *o = if (ch.neg >> j) & 1 == 1 { -v } else { v };
            }
        }
    }
}

/// The portable reference dot product with a Q8_K row (see the module docs).
pub(crate) fn dot_scalar(ty: GgmlType, nb: usize, w: &[u8], x: &[u8]) -> f32 {
    let bs = ty.type_size();
    let f = factor(ty);
    let mut acc = [0.0f32; 8];
    for (wb, xb) in w.chunks_exact(bs).zip(x.chunks_exact(Q8K)).take(nb) {
        let d = kquants::f32_at(xb, 0) * rd_f16(wb, 0) * f;
        let y = &xb[Q8K_QS..Q8K_QS + QK_K];
        let mut lanes = [0i32; 8];
        for c in 0..8 {
            let ch = chunk(ty, wb, c);
            for (k, lane) in lanes.iter_mut().enumerate() {
                let p: i32 = (4 * k..4 * k + 4)
                    .map(|j| {
                        let v = ch.grid[j] as i32 * (y[32 * c + j] as i8 as i32);
                        if (ch.neg >> j) & 1 == 1 {
                            -v
                        } else {
                            v
                        }
                    })
                    .sum();
                *lane += (2 * ch.scales[k / 4] as i32 + 1) * p;
            }
        }
        for (a, &l) in acc.iter_mut().zip(&lanes) {
            *a = d.mul_add(l as f32, *a);
        }
    }
    let t = [
        acc[0] + acc[4],
        acc[1] + acc[5],
        acc[2] + acc[6],
        acc[3] + acc[7],
    ];
    (t[0] + t[2]) + (t[1] + t[3])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_sizes_match_the_layouts() {
        for (ty, size) in [
            (GgmlType::IQ2_XXS, 66),
            (GgmlType::IQ2_XS, 74),
            (GgmlType::IQ3_XXS, 98),
            (GgmlType::IQ3_S, 110),
        ] {
            assert_eq!(ty.type_size(), size, "{ty}");
            assert_eq!(ty.block_size(), QK_K, "{ty}");
        }
    }

    #[test]
    fn sign_patterns_have_an_even_number_of_minus_signs() {
        for (i, &s) in KSIGNS.iter().enumerate() {
            assert_eq!(s & 127, i as u8);
            assert_eq!(s.count_ones() % 2, 0, "KSIGNS[{i}] = {s:#x}");
        }
    }
}
