//! The one place that maps a SIMD level to kernels. Every kernel family has a portable
//! definition in `formats` and, per instruction set, kernels in a folder of their own (`x86/`);
//! the functions here take the [`Level`] the process chose once ([`crate::simd::level`]) or,
//! for tests, an explicit one, and call that level's kernel. Adding an instruction set means
//! adding its folder and one arm per function here.
//!
//! Each function's `level` must be [`Level::Scalar`] or one that [`crate::simd::supported`]
//! accepts on this CPU: the SIMD arms rely on it for their `unsafe` calls.

use crate::formats::legacy;
use crate::simd::Level;
use crate::types::Tile;
use crate::{GgmlType, Result};

// ---------------------------------------------------------------------------------------------
// The 32-element formats (Q4_0 … Q8_0, Q8_1)
// ---------------------------------------------------------------------------------------------

/// Encodes a row of a 32-element format (weights for tests, or Q8_0 / Q8_1 activations).
/// Every level gives the same bytes.
pub(crate) fn legacy_quantize(
    level: Level,
    ty: GgmlType,
    src: &[f32],
    dst: &mut [u8],
) -> Result<()> {
    if matches!(ty, GgmlType::Q8_0 | GgmlType::Q8_1) {
        let with_sum = ty == GgmlType::Q8_1;
        match level {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Level::Avx2` / `Level::Avx512Vnni` come only from `simd::detect`, which
            // checked AVX2, FMA and F16C (the encoder has no integer dot: AVX2 at both levels).
            Level::Avx2 | Level::Avx512Vnni => unsafe {
                crate::x86::legacy::quantize_q8_row(src, dst, with_sum)
            },
            _ => legacy::quantize_q8_row(src, dst, with_sum),
        }
        return Ok(());
    }
    legacy::quantize_weights(ty, src, dst);
    Ok(())
}

/// Dot product of a row of Q4_0, Q4_1, Q5_0, Q5_1 or Q8_0 weights with its Q8_0 / Q8_1
/// activations; every level gives the same bits.
#[inline]
pub(crate) fn legacy_dot(level: Level, ty: GgmlType, n: usize, w: &[u8], x: &[u8]) -> f32 {
    let nb = n / 32;
    let act = if matches!(ty, GgmlType::Q4_1 | GgmlType::Q5_1) {
        GgmlType::Q8_1
    } else {
        GgmlType::Q8_0
    };
    // Cutting both slices to exactly `nb` blocks is what makes the unchecked SIMD loads sound.
    let w = &w[..nb * ty.type_size()];
    let x = &x[..nb * act.type_size()];
    match level {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Level::Avx2` comes only from `simd::detect`, which checked AVX2, FMA and
        // F16C; `w` and `x` hold exactly `nb` blocks of their types (cut above).
        Level::Avx2 => unsafe { crate::x86::legacy::madd::vec_dot(ty, nb, w, x) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above; `Level::Avx512Vnni` means `simd::detect` also found AVX-512 VNNI,
        // VL and BW. Same bits as the AVX2 arm (see `x86::legacy::IntDot`).
        Level::Avx512Vnni => unsafe { crate::x86::legacy::vnni::vec_dot(ty, nb, w, x) },
        // NEON: an aarch64 arm goes here (`vdotq_s32` with the "dotprod" feature, else
        // `vmull_s8` + `vpadalq_s16`), scaling once per block exactly like the scalar code.
        _ => legacy::dot_scalar(ty, nb, w, x),
    }
}

// ---------------------------------------------------------------------------------------------
// Multi-token tiles (row-major weights)
// ---------------------------------------------------------------------------------------------

/// A multi-token kernel: `(ty, blocks per row, operands, rows, tokens)`. Its safety contract
/// is `x86::legacy_tile::dot_tile`'s.
pub(crate) type TileFn = unsafe fn(GgmlType, usize, &Tile, usize, usize);

/// The multi-token kernel for weights of type `ty` at `level`, if there is one. Each of its
/// outputs equals the single-token [`crate::vec_dot`] at that level bit for bit.
pub(crate) fn tile_kernel(level: Level, ty: GgmlType) -> Option<TileFn> {
    match level {
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 if crate::x86::legacy_tile::supports(ty) => {
            Some(crate::x86::legacy_tile::dot_tile)
        }
        #[cfg(target_arch = "x86_64")]
        Level::Avx512Vnni if crate::x86::legacy_tile::supports(ty) => {
            Some(crate::x86::legacy_tile::dot_tile_vnni)
        }
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 if crate::kquants::tile::supports(ty) => Some(crate::kquants::tile::dot_tile),
        #[cfg(target_arch = "x86_64")]
        Level::Avx512Vnni if crate::kquants::tile::supports(ty) => {
            Some(crate::kquants::tile::dot_tile_vnni)
        }
        _ => None,
    }
}
