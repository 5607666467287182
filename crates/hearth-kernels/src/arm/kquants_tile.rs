//! Multi-token tiles for Q4_K, Q5_K and Q6_K on aarch64 (the types the x86 tiles cover): one
//! weight row × up to [`TOKENS`] activation rows per call, each super-block's quants and scales
//! unpacked once for all its tokens.
//!
//! # Same bits as `vec_dot`
//! The tiles run the very kernels `arm::kquants::vec_dot` runs, with `T` tokens instead of one:
//! each token keeps its own i32 lanes and f32 accumulators and performs the same float
//! operations on them in block order (the lanes are exact integers, so forming them in a
//! different order of chunks changes nothing). Every (row, token) output therefore equals
//! `vec_dot` of the pair, and the scalar reference, bit for bit.
//!
//! There is no i8mm variant: `smmla` sums eight byte products into each lane, but the reference
//! keeps sums of four consecutive bytes apart (each becomes an f32 lane of its own), so at most
//! half of its products could be useful: no more than one `sdot` gives. The i8mm level runs the
//! dot-product tiles.

use super::kquants::{q4k, q6k, Lanes, Mull, Sdot};
use crate::types::Tile;
use hearth_gguf::GgmlType;

/// Tokens per tile; the last `n % TOKENS` tokens run as a narrower tile.
pub(crate) const TOKENS: usize = 4;

/// Whether `ty` has a tile kernel here.
pub(crate) fn supports(ty: GgmlType) -> bool {
    use GgmlType::*;
    matches!(ty, Q4_K | Q5_K | Q6_K)
}

/// Every (row, token) product of `rows` weight rows and `tokens` Q8_K activation rows, each
/// equal to the NEON `vec_dot` of the pair bit for bit.
///
/// # Safety
/// `ty` is one [`supports`] accepts; for `r < rows` the `nb` blocks of `ty` at
/// `t.w + r * t.wrb`, and for `k < tokens` the `nb` Q8_K blocks at `t.x + k * t.xrb`, are
/// readable; the outputs `t.out + k * t.ostride + r` are writable and no one else accesses them
/// meanwhile.
#[target_feature(enable = "neon")]
pub(crate) unsafe fn dot_tile(ty: GgmlType, nb: usize, t: &Tile, rows: usize, tokens: usize) {
    // SAFETY: forwarded from the caller.
    unsafe { tiles::<Mull>(ty, nb, t, rows, tokens) }
}

/// [`dot_tile`] with the dot-product extension's `sdot`: each output equals the dot-product
/// `vec_dot` (and so the plain NEON one) bit for bit.
///
/// # Safety
/// As [`dot_tile`], and the CPU has the dot-product extension.
#[target_feature(enable = "neon")]
pub(crate) unsafe fn dot_tile_sdot(ty: GgmlType, nb: usize, t: &Tile, rows: usize, tokens: usize) {
    // SAFETY: forwarded from the caller.
    unsafe { tiles::<Sdot>(ty, nb, t, rows, tokens) }
}

/// The body of [`dot_tile`] with integer lanes `L`.
///
/// # Safety
/// As [`dot_tile`]; the CPU has `L`'s features.
#[inline(always)]
unsafe fn tiles<L: Lanes>(ty: GgmlType, nb: usize, t: &Tile, rows: usize, tokens: usize) {
    let mut t0 = 0;
    while t0 < tokens {
        let nt = (tokens - t0).min(TOKENS);
        for r in 0..rows {
            let tile = t.at(r, t0);
            // SAFETY: row `r` and tokens `t0..t0 + nt` are inside the caller's ranges.
            unsafe {
                match nt {
                    1 => kernel::<L, 1>(ty, nb, &tile),
                    2 => kernel::<L, 2>(ty, nb, &tile),
                    3 => kernel::<L, 3>(ty, nb, &tile),
                    _ => kernel::<L, 4>(ty, nb, &tile),
                }
            }
        }
        t0 += nt;
    }
}

/// One row against `T` tokens.
///
/// # Safety
/// As [`dot_tile`], for the row at `t.w` and the `T` tokens from `t.x`.
#[inline(always)]
unsafe fn kernel<L: Lanes, const T: usize>(ty: GgmlType, nb: usize, t: &Tile) {
    // SAFETY: the row and the `T` token rows are readable and the `T` outputs writable
    // (caller's contract); pointer arithmetic stays inside them.
    unsafe {
        let x: [*const u8; T] = std::array::from_fn(|tt| t.x.add(tt * t.xrb));
        let out = match ty {
            GgmlType::Q4_K => q4k::<L, T, false>(nb, t.w, x),
            GgmlType::Q5_K => q4k::<L, T, true>(nb, t.w, x),
            GgmlType::Q6_K => q6k::<L, T>(nb, t.w, x),
            other => unreachable!("K-quant tile on {other}"),
        };
        for (tt, v) in out.into_iter().enumerate() {
            *t.out.add(tt * t.ostride) = v;
        }
    }
}
