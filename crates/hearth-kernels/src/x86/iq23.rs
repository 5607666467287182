//! IQ2_XXS, IQ2_XS, IQ3_XXS and IQ3_S against Q8_K with AVX2 (layouts and scalar reference in
//! `formats::iq23`). Each 32-element chunk's lattice points are gathered from the tables into
//! one register of unsigned bytes, its signs become a register of ±1 bytes that `psignb` moves
//! onto the activations, and `maddubs` + `madd` with the chunk's integer scales `2s + 1` give
//! the reference's exact i32 lanes (`maddubs` pairs are at most `2 · 62 · 127`: no
//! saturation). Q8_K quants are within ±127, so negating one never overflows. The AVX-512 VNNI
//! level runs this kernel too: the integer work is in the gathers, not the multiplies.

use std::arch::x86_64::*;

use super::legacy::{f16_at, hsum, load32};
use crate::formats::iq23::factor;
use crate::formats::iqgrids::{IQ2XS_GRID, IQ2XXS_GRID, IQ3S_GRID, IQ3XXS_GRID, KSIGNS};
use hearth_gguf::GgmlType;

/// For each 8-bit sign pattern, 8 bytes of ±1 (`0xff` where the bit is set).
static SIGN_BYTES: [u64; 256] = {
    let mut t = [0u64; 256];
    let mut i = 0;
    while i < 256 {
        let mut j = 0;
        while j < 8 {
            let byte: u64 = if (i >> j) & 1 == 1 { 0xff } else { 0x01 };
            t[i] |= byte << (8 * j);
            j += 1;
        }
        i += 1;
    }
    t
};

/// [`SIGN_BYTES`] of each 7-bit sign index's pattern (`KSIGNS`), one lookup instead of two.
static KSIGN_BYTES: [u64; 128] = {
    let mut t = [0u64; 128];
    let mut i = 0;
    while i < 128 {
        t[i] = SIGN_BYTES[KSIGNS[i] as usize];
        i += 1;
    }
    t
};

/// Chunk `c` of the block at `b`: its points as unsigned bytes, its signs as ±1 bytes, and the
/// integer scales `2s + 1` of its two halves.
///
/// # Safety
/// `b` points at a whole block of `ty`, and `c < 8`.
#[inline(always)]
pub(super) unsafe fn chunk(ty: GgmlType, b: *const u8, c: usize) -> ([i64; 4], [i64; 4], [i16; 2]) {
    // SAFETY (all reads): offsets within the block's layout for chunk `c < 8` (see
    // `formats::iq23`); the table indices are masked or at most 8 or 9 bits, within the tables.
    unsafe {
        let u8_at = |off: usize| *b.add(off);
        let u16_at = |off: usize| u16::from_le((b.add(off) as *const u16).read_unaligned());
        let u32_at = |off: usize| u32::from_le((b.add(off) as *const u32).read_unaligned());
        let ks = |bits: u32, l: usize| {
            *KSIGN_BYTES.get_unchecked(((bits >> (7 * l)) & 127) as usize) as i64
        };
        let pair = |lo: u32, hi: u32| (lo as u64 | (hi as u64) << 32) as i64;
        match ty {
            GgmlType::IQ2_XXS => {
                let (a, s) = (u32_at(2 + 8 * c), u32_at(6 + 8 * c));
                let g = |l: usize| *IQ2XXS_GRID.get_unchecked((a >> (8 * l)) as u8 as usize) as i64;
                let sc = (2 * (s >> 28) + 1) as i16;
                (
                    [g(0), g(1), g(2), g(3)],
                    [ks(s, 0), ks(s, 1), ks(s, 2), ks(s, 3)],
                    [sc; 2],
                )
            }
            GgmlType::IQ2_XS => {
                let q: [u16; 4] = std::array::from_fn(|l| u16_at(2 + 8 * c + 2 * l));
                let g = |l: usize| *IQ2XS_GRID.get_unchecked((q[l] & 511) as usize) as i64;
                let s = |l: usize| *KSIGN_BYTES.get_unchecked((q[l] >> 9) as usize) as i64;
                let sc = u8_at(66 + c) as i16;
                (
                    [g(0), g(1), g(2), g(3)],
                    [s(0), s(1), s(2), s(3)],
                    [2 * (sc & 0x0f) + 1, 2 * (sc >> 4) + 1],
                )
            }
            GgmlType::IQ3_XXS => {
                let g = |k: usize| *IQ3XXS_GRID.get_unchecked(u8_at(2 + 8 * c + k) as usize);
                let s = u32_at(66 + 4 * c);
                let sc = (2 * (s >> 28) + 1) as i16;
                (
                    [
                        pair(g(0), g(1)),
                        pair(g(2), g(3)),
                        pair(g(4), g(5)),
                        pair(g(6), g(7)),
                    ],
                    [ks(s, 0), ks(s, 1), ks(s, 2), ks(s, 3)],
                    [sc; 2],
                )
            }
            GgmlType::IQ3_S => {
                let qh = u8_at(66 + c) as usize;
                let g = |k: usize| {
                    *IQ3S_GRID.get_unchecked(u8_at(2 + 8 * c + k) as usize | (((qh >> k) & 1) << 8))
                };
                let s = |l: usize| *SIGN_BYTES.get_unchecked(u8_at(74 + 4 * c + l) as usize) as i64;
                let sc = 2 * ((u8_at(106 + c / 2) >> (4 * (c % 2))) & 0x0f) as i16 + 1;
                (
                    [
                        pair(g(0), g(1)),
                        pair(g(2), g(3)),
                        pair(g(4), g(5)),
                        pair(g(6), g(7)),
                    ],
                    [s(0), s(1), s(2), s(3)],
                    [sc; 2],
                )
            }
            // Another type's block has another layout: reading it as one of these would read
            // past it. Callers dispatch only the four types above here.
            _ => unreachable!("no lattice chunk decoder for {ty:?}"),
        }
    }
}

/// The dot product of `nb` blocks of `ty` (IQ2_XXS, IQ2_XS, IQ3_XXS or IQ3_S) with `nb`
/// Q8_K blocks; the scalar reference's bits.
///
/// # Safety
/// The CPU has AVX2, FMA and F16C; `w` and `x` hold at least `nb` blocks of `ty` and of Q8_K.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn vec_dot(ty: GgmlType, nb: usize, w: &[u8], x: &[u8]) -> f32 {
    let f = factor(ty);
    let mut acc = _mm256_setzero_ps();
    for (wb, xb) in w
        .chunks_exact(ty.type_size())
        .zip(x.chunks_exact(292))
        .take(nb)
    {
        let yd = f32::from_le_bytes([xb[0], xb[1], xb[2], xb[3]]);
        // SAFETY: `wb` starts with its f16 scale.
        let d = yd * unsafe { f16_at(wb.as_ptr()) } * f;
        let mut lanes = _mm256_setzero_si256();
        for c in 0..8 {
            // SAFETY: `wb` is a whole block of `ty` and `c < 8`.
            let (g, s, sc) = unsafe { chunk(ty, wb.as_ptr(), c) };
            let g = _mm256_setr_epi64x(g[0], g[1], g[2], g[3]);
            let s = _mm256_setr_epi64x(s[0], s[1], s[2], s[3]);
            // SAFETY: chunk `c`'s 32 activation quants start at byte 4 + 32c of the 292-byte
            // Q8_K block.
            let y = _mm256_sign_epi8(unsafe { load32(xb.as_ptr().add(4 + 32 * c)) }, s);
            let sc = _mm256_setr_m128i(_mm_set1_epi16(sc[0]), _mm_set1_epi16(sc[1]));
            let p = _mm256_madd_epi16(_mm256_maddubs_epi16(g, y), sc);
            lanes = _mm256_add_epi32(lanes, p);
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(lanes), acc);
    }
    hsum(acc)
}
