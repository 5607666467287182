//! The one place that maps a SIMD level to kernels. Every kernel family has a portable
//! definition in `formats` and, per instruction set, kernels in a folder of their own (`x86/`);
//! the functions here take the [`Level`] the process chose once ([`crate::simd::level`]) or,
//! for tests, an explicit one, and call that level's kernel. Adding an instruction set means
//! adding its folder and one arm per function here.
//!
//! Each function's `level` must be [`Level::Scalar`] or one that [`crate::simd::supported`]
//! accepts on this CPU: the SIMD arms rely on it for their `unsafe` calls.

use crate::formats::{kquants, legacy};
use crate::simd::Level;
use crate::types::Tile;
use crate::{GgmlType, Result};
use hearth_gguf::QK_K;

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
// K-quants (Q2_K … Q6_K against Q8_K)
// ---------------------------------------------------------------------------------------------

/// Dot product of a K-quant weight row with a Q8_K activation row. All levels give the same
/// bits (see `formats::kquants`).
pub(crate) fn kquant_dot(level: Level, ty: GgmlType, n: usize, w: &[u8], x: &[u8]) -> f32 {
    let nb = n / QK_K;
    // The SIMD kernels read through raw pointers, so the sizes are checked in release builds
    // too: one comparison per row is noise next to a row's work.
    assert!(
        w.len() >= nb * ty.type_size() && x.len() >= nb * kquants::Q8K,
        "{ty} vec_dot of {n} elements on {} weight bytes and {} activation bytes",
        w.len(),
        x.len()
    );
    match level {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Level::Avx2` comes only from `simd::detect`, which checked AVX2, FMA and
        // F16C; the assertion above guarantees `nb` whole blocks in both buffers.
        Level::Avx2 => unsafe { crate::x86::kquants::vec_dot(ty, nb, w, x) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above, and `simd::detect` also checked AVX-512 VNNI, VL and BW for
        // `Level::Avx512Vnni`. Same bits as the AVX2 kernel (see `x86::kquants::vec_dot_vnni`).
        Level::Avx512Vnni => unsafe { crate::x86::kquants::vec_dot_vnni(ty, nb, w, x) },
        // NEON: an aarch64 kernel slots in here, keeping the 8-lane layout of `formats::kquants`.
        _ => kquants::vec_dot_scalar(ty, n, w, x),
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
        Level::Avx2 if crate::x86::kquants_tile::supports(ty) => {
            Some(crate::x86::kquants_tile::dot_tile)
        }
        #[cfg(target_arch = "x86_64")]
        Level::Avx512Vnni if crate::x86::kquants_tile::supports(ty) => {
            Some(crate::x86::kquants_tile::dot_tile_vnni)
        }
        _ => None,
    }
}

/// The K-quant kernels of every level against the scalar reference.
#[cfg(test)]
mod kquants_tests {
    use super::*;
    use half::f16;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    const K_TYPES: [GgmlType; 5] = [
        GgmlType::Q2_K,
        GgmlType::Q3_K,
        GgmlType::Q4_K,
        GgmlType::Q5_K,
        GgmlType::Q6_K,
    ];

    /// Random valid blocks (finite f16 scales) against a Q8_K row of random activations.
    fn random_pair(ty: GgmlType, nb: usize, rng: &mut StdRng) -> (Vec<u8>, Vec<u8>) {
        let mut w = vec![0u8; nb * ty.type_size()];
        rng.fill(&mut w[..]);
        let offsets: &[usize] = match ty {
            GgmlType::Q2_K => &[80, 82],
            GgmlType::Q3_K => &[108],
            GgmlType::Q6_K => &[208],
            _ => &[0, 2],
        };
        for block in w.chunks_exact_mut(ty.type_size()) {
            for &off in offsets {
                let d = f16::from_f32(rng.gen_range(-0.05f32..0.05));
                block[off..off + 2].copy_from_slice(&d.to_le_bytes());
            }
        }
        let x: Vec<f32> = (0..nb * QK_K)
            .map(|_| rng.gen_range(-3.0f32..3.0))
            .collect();
        let mut xq = vec![0u8; nb * kquants::Q8K];
        kquants::quantize(GgmlType::Q8_K, &x, &mut xq).unwrap();
        (w, xq)
    }

    #[test]
    fn avx2_and_scalar_give_identical_bits() {
        if !crate::simd::detect().has_avx2() {
            eprintln!("no AVX2 on this CPU: nothing to compare");
            return;
        }
        let mut rng = StdRng::seed_from_u64(42);
        for ty in K_TYPES {
            for nb in [1, 2, 5, 16] {
                for _ in 0..20 {
                    let (w, xq) = random_pair(ty, nb, &mut rng);
                    let n = nb * QK_K;
                    let scalar = kquant_dot(Level::Scalar, ty, n, &w, &xq);
                    let fast = kquant_dot(Level::Avx2, ty, n, &w, &xq);
                    assert_eq!(
                        scalar.to_bits(),
                        fast.to_bits(),
                        "{ty} n={n}: {scalar} vs {fast}"
                    );
                }
            }
        }
    }

    #[test]
    fn extreme_quants_do_not_saturate() {
        // All weight bits set (largest quants and scales) against ±127 activations: the
        // i16 pair sums of `maddubs` must not saturate on any path.
        for ty in K_TYPES {
            let mut w = vec![0xffu8; 2 * ty.type_size()];
            let (mut rng, nb) = (StdRng::seed_from_u64(1), 2);
            let (w_rand, _) = random_pair(ty, nb, &mut rng);
            // Keep the f16 scales finite: copy them from a random valid row.
            let offsets: &[usize] = match ty {
                GgmlType::Q2_K => &[80, 82],
                GgmlType::Q3_K => &[108],
                GgmlType::Q6_K => &[208],
                _ => &[0, 2],
            };
            for b in 0..nb {
                for &off in offsets {
                    let o = b * ty.type_size() + off;
                    w[o..o + 2].copy_from_slice(&w_rand[o..o + 2]);
                }
            }
            for sign in [1.0f32, -1.0] {
                let x = vec![sign; nb * QK_K];
                let mut xq = vec![0u8; nb * kquants::Q8K];
                kquants::quantize(GgmlType::Q8_K, &x, &mut xq).unwrap();
                let n = nb * QK_K;
                let mut wf = vec![0f32; n];
                let mut xf = vec![0f32; n];
                kquants::dequantize(ty, &w, &mut wf);
                kquants::dequantize(GgmlType::Q8_K, &xq, &mut xf);
                let want: f64 = wf.iter().zip(&xf).map(|(&a, &b)| a as f64 * b as f64).sum();
                let mag: f64 = wf
                    .iter()
                    .zip(&xf)
                    .map(|(&a, &b)| (a as f64 * b as f64).abs())
                    .sum();
                for level in [Level::Scalar, crate::simd::detect()] {
                    let got = kquant_dot(level, ty, n, &w, &xq) as f64;
                    assert!(
                        (got - want).abs() <= 2e-6 * mag,
                        "{ty} {level:?}: {got} vs {want}"
                    );
                }
            }
        }
    }
}
