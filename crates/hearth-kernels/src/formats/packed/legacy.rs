//! Packed Q4_0, Q4_1, Q5_0 and Q8_0 (32-element blocks; Q8_0 activations, Q8_1 for Q4_1).
//!
//! # Layout of one packed block (the eight rows' block `b`, `8 · type_size` bytes)
//! - bytes 0..16: the rows' `d` (f16), row `r` at `2r`; Q4_1 then the rows' `m` at 16..32.
//! - Q5_0: a 32-byte high-bit plane at 16..48 (see below).
//! - the quants in 32-byte chunks, each holding four bytes of every row (row `r` at `4r`):
//!   Q8_0 has eight chunks, chunk `c` = quants `4c..4c+4`; the 4-bit formats have four,
//!   chunk `c` = the row's bytes `4c..4c+4`, whose low nibbles are elements `4c + k` and high
//!   nibbles elements `16 + 4c + k`.
//!
//! So "register `e`" (0..8) of a block, `e = 2c + h`, holds for each row the four elements
//! `4c + k + 16h` (4-bit formats: nibble `h` of chunk `c`) or `4e + k` (Q8_0: chunk `e`), and
//! its four products with the activation are one `vpdpbusd` against the activation's four
//! bytes broadcast. For Q5_0 the plane's byte `4r + k` has bit `e` set when the element of
//! register `e` at byte `k` of row `r` has its fifth bit set, so register `e`'s high bits are
//! the plane shifted by `4 - e` within 16-bit lanes and masked with 0x10: no per-bit spreading.
//!
//! # Arithmetic (the definition; [`dot_ref`] is its scalar form)
//! For each block in order, with `s` the exact i32 `Σ w_i x_i` over the block's signed weight
//! values `w` (Q4_0: code − 8, Q5_0: code − 16, Q8_0: the quant, Q4_1: the code):
//! `acc = fma(s as f32, d_w · d_x, acc)`, and for Q4_1 then `acc = fma(m_w, s_x, acc)` with the
//! Q8_1 block's `s_x` (= `d_x Σ x_i` as stored).

use super::GROUP;
use hearth_gguf::GgmlType;

/// Whether `ty` is packed by this module.
pub(crate) fn supports(ty: GgmlType) -> bool {
    use GgmlType::*;
    matches!(ty, Q4_0 | Q4_1 | Q5_0 | Q8_0)
}

/// Where the parts of a format's original block and packed block are.
#[derive(Clone, Copy)]
pub(crate) struct Format {
    /// Bytes of one original block.
    pub(crate) ts: usize,
    /// Offset of `qs` in the original block.
    pub(crate) qs: usize,
    /// Offset of the quants' chunks in the packed block.
    pub(crate) chunks: usize,
    /// The bias subtracted from the codes (Q4_0: 8, Q5_0: 16), 0 for none.
    pub(crate) bias: i32,
}

pub(crate) fn format(ty: GgmlType) -> Format {
    use GgmlType::*;
    match ty {
        Q4_0 => Format {
            ts: 18,
            qs: 2,
            chunks: 16,
            bias: 8,
        },
        Q4_1 => Format {
            ts: 20,
            qs: 4,
            chunks: 32,
            bias: 0,
        },
        Q5_0 => Format {
            ts: 22,
            qs: 6,
            chunks: 48,
            bias: 16,
        },
        Q8_0 => Format {
            ts: 34,
            qs: 2,
            chunks: 16,
            bias: 0,
        },
        other => unreachable!("packed legacy format of {other}"),
    }
}

/// The element of a row held at byte `k` of register `e` (see the module docs).
#[inline(always)]
fn element(q8: bool, e: usize, k: usize) -> usize {
    if q8 {
        4 * e + k
    } else {
        4 * (e / 2) + k + 16 * (e % 2)
    }
}

/// Packs the eight original rows `src` (`nb` blocks each) into `dst`.
pub(crate) fn pack_group(ty: GgmlType, nb: usize, src: &[u8], dst: &mut [u8]) {
    let f = format(ty);
    let rb = nb * f.ts;
    let pbs = GROUP * f.ts;
    for b in 0..nb {
        let pb = &mut dst[b * pbs..(b + 1) * pbs];
        for r in 0..GROUP {
            let ob = &src[r * rb + b * f.ts..r * rb + (b + 1) * f.ts];
            pb[2 * r..2 * r + 2].copy_from_slice(&ob[0..2]);
            match ty {
                GgmlType::Q4_1 => pb[16 + 2 * r..18 + 2 * r].copy_from_slice(&ob[2..4]),
                GgmlType::Q5_0 => {
                    let qh = u32::from_le_bytes([ob[2], ob[3], ob[4], ob[5]]);
                    for k in 0..4 {
                        let mut byte = 0u8;
                        for e in 0..8 {
                            byte |= (((qh >> element(false, e, k)) & 1) as u8) << e;
                        }
                        pb[16 + 4 * r + k] = byte;
                    }
                }
                _ => {}
            }
            let n_chunks = if ty == GgmlType::Q8_0 { 8 } else { 4 };
            for c in 0..n_chunks {
                let at = f.chunks + 32 * c + 4 * r;
                pb[at..at + 4].copy_from_slice(&ob[f.qs + 4 * c..f.qs + 4 * c + 4]);
            }
        }
    }
}

/// Writes row `r` of a packed group back in its original encoding into `dst`.
pub(crate) fn unpack_row(ty: GgmlType, nb: usize, group: &[u8], r: usize, dst: &mut [u8]) {
    let f = format(ty);
    let pbs = GROUP * f.ts;
    for b in 0..nb {
        let pb = &group[b * pbs..(b + 1) * pbs];
        let ob = &mut dst[b * f.ts..(b + 1) * f.ts];
        ob[0..2].copy_from_slice(&pb[2 * r..2 * r + 2]);
        match ty {
            GgmlType::Q4_1 => ob[2..4].copy_from_slice(&pb[16 + 2 * r..18 + 2 * r]),
            GgmlType::Q5_0 => {
                let mut qh = 0u32;
                for k in 0..4 {
                    let byte = pb[16 + 4 * r + k];
                    for e in 0..8 {
                        qh |= u32::from((byte >> e) & 1) << element(false, e, k);
                    }
                }
                ob[2..6].copy_from_slice(&qh.to_le_bytes());
            }
            _ => {}
        }
        let n_chunks = if ty == GgmlType::Q8_0 { 8 } else { 4 };
        for c in 0..n_chunks {
            let at = f.chunks + 32 * c + 4 * r;
            ob[f.qs + 4 * c..f.qs + 4 * c + 4].copy_from_slice(&pb[at..at + 4]);
        }
    }
}

fn f16_at(b: &[u8], off: usize) -> f32 {
    crate::formats::float::f16_to_f32(u16::from_le_bytes([b[off], b[off + 1]]))
}

/// The signed weight values of one original block.
fn values(ty: GgmlType, ob: &[u8]) -> [i32; 32] {
    let f = format(ty);
    let mut w = [0i32; 32];
    if ty == GgmlType::Q8_0 {
        for (v, &q) in w.iter_mut().zip(&ob[f.qs..f.qs + 32]) {
            *v = i32::from(q as i8);
        }
        return w;
    }
    let qh = if ty == GgmlType::Q5_0 {
        u32::from_le_bytes([ob[2], ob[3], ob[4], ob[5]])
    } else {
        0
    };
    for j in 0..16 {
        let byte = ob[f.qs + j];
        w[j] = i32::from(byte & 0x0f) | (((qh >> j) & 1) << 4) as i32;
        w[j + 16] = i32::from(byte >> 4) | (((qh >> (j + 16)) & 1) << 4) as i32;
    }
    for v in &mut w {
        *v -= f.bias;
    }
    w
}

/// The scalar reference: the eight rows of a packed group against one activation row `x`
/// (Q8_0, or Q8_1 for Q4_1), by the arithmetic in the module docs.
pub(crate) fn dot_ref(ty: GgmlType, nb: usize, group: &[u8], x: &[u8]) -> [f32; GROUP] {
    let f = format(ty);
    let offset = ty == GgmlType::Q4_1;
    let (xbs, xqs) = if offset { (36, 4) } else { (34, 2) };
    let mut acc = [0f32; GROUP];
    let mut ob = vec![0u8; f.ts];
    for b in 0..nb {
        let xb = &x[b * xbs..(b + 1) * xbs];
        let dx = f16_at(xb, 0);
        for (r, a) in acc.iter_mut().enumerate() {
            unpack_row(ty, 1, &group[b * GROUP * f.ts..], r, &mut ob);
            let w = values(ty, &ob);
            let s: i32 = w
                .iter()
                .zip(&xb[xqs..xqs + 32])
                .map(|(&w, &q)| w * i32::from(q as i8))
                .sum();
            *a = (s as f32).mul_add(f16_at(&ob, 0) * dx, *a);
            if offset {
                *a = f16_at(&ob, 2).mul_add(f16_at(xb, 2), *a);
            }
        }
    }
    acc
}
