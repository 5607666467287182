//! Dot products: every SIMD level against the scalar reference (bit for bit), and all of them
//! against an f64 dot of the decoded rows.

use crate::common::*;
use hearth_kernels::simd::{self, Level};
use hearth_kernels::testing;
use hearth_kernels::{activation_type, vec_dot, GgmlType};

/// `Σ|w_i x_i|` and `Σ w_i x_i` in f64 over the decoded rows.
fn reference(ty: GgmlType, n: usize, w: &[u8], x: &[u8]) -> (f64, f64) {
    let act = activation_type(ty).unwrap();
    let (wf, xf) = (dequant(ty, w, n), dequant(act, x, n));
    let dot = wf.iter().zip(&xf).map(|(&a, &b)| a as f64 * b as f64).sum();
    let abs = wf
        .iter()
        .zip(&xf)
        .map(|(&a, &b)| (a as f64 * b as f64).abs())
        .sum();
    (dot, abs)
}

/// Extra error from Q8_1's sum field `s = f16(d * Σq)`, which offset types (Q4_1, Q5_1) use
/// in place of the exact sum: half an f16 ulp of `|m * s|` per block.
fn q8_1_sum_error(ty: GgmlType, w: &[u8], x: &[u8]) -> f64 {
    if !matches!(ty, GgmlType::Q4_1 | GgmlType::Q5_1) {
        return 0.0;
    }
    let f16 = |b: &[u8], o: usize| half::f16::from_le_bytes([b[o], b[o + 1]]).to_f32() as f64;
    w.chunks_exact(ty.type_size())
        .zip(x.chunks_exact(36))
        .map(|(wb, xb)| (f16(wb, 2) * f16(xb, 2)).abs() * 2f64.powi(-10))
        .sum()
}

const SIZES: [usize; 5] = [32, 64, 256, 576, 4096];

fn rows_for(ty: GgmlType, seed: u64, n: usize, raw: bool) -> (Vec<u8>, Vec<u8>) {
    let mut r = rng(seed);
    let w = if raw {
        random_bytes_row(&mut r, ty, n)
    } else {
        quantized_row(&mut r, ty, n)
    };
    (w, activation_row(&mut r, ty, n))
}

/// The SIMD levels this CPU runs; prints a note when there are none.
fn levels() -> Vec<Level> {
    let levels = simd::simd_levels();
    if levels.is_empty() {
        eprintln!("no SIMD level on this CPU: nothing to compare with the scalar reference");
    }
    levels
}

#[test]
fn simd_matches_scalar() {
    // Every level gives the scalar reference's bits, on quantized and on random-byte rows.
    let levels = levels();
    for (k, &ty) in MINE.iter().enumerate() {
        for &n in &SIZES {
            for raw in [false, true] {
                let (w, x) = rows_for(ty, 1000 + k as u64 * 17 + n as u64, n, raw);
                let s = testing::vec_dot_at(Level::Scalar, ty, n, &w, &x).unwrap();
                for &level in &levels {
                    let v = testing::vec_dot_at(level, ty, n, &w, &x).unwrap();
                    assert_eq!(
                        s.to_bits(),
                        v.to_bits(),
                        "{ty} n={n} raw={raw}: scalar {s} vs {level:?} {v}"
                    );
                }
            }
        }
    }
}

#[test]
fn float_tails_match_scalar() {
    // Float rows may have any length; check the remainder handling of the SIMD loops (every
    // level equals the scalar reference bit for bit, see `float_levels`).
    for ty in [GgmlType::F32, GgmlType::F16, GgmlType::BF16] {
        for n in [1, 7, 8, 9, 31, 33, 63, 100] {
            let (w, x) = rows_for(ty, 77 + n as u64, n, false);
            let s = testing::vec_dot_at(Level::Scalar, ty, n, &w, &x).unwrap();
            let (dot, abs) = reference(ty, n, &w, &x);
            assert!(
                (s as f64 - dot).abs() <= 1e-6 * abs + 1e-30,
                "{ty} n={n}: {s} vs {dot}"
            );
            for level in simd::simd_levels() {
                let v = testing::vec_dot_at(level, ty, n, &w, &x).unwrap();
                assert_eq!(s.to_bits(), v.to_bits(), "{ty} n={n} {level:?}: {s} vs {v}");
            }
        }
    }
}

#[test]
fn vec_dot_matches_decoded_dot() {
    for (k, &ty) in MINE.iter().enumerate() {
        for &n in &SIZES {
            for raw in [false, true] {
                let (w, x) = rows_for(ty, 5000 + k as u64 * 31 + n as u64, n, raw);
                let (dot, abs) = reference(ty, n, &w, &x);
                let tol = 4e-6 * abs + q8_1_sum_error(ty, &w, &x) + 1e-30;
                for level in std::iter::once(Level::Scalar).chain(simd::simd_levels()) {
                    let got = testing::vec_dot_at(level, ty, n, &w, &x).unwrap() as f64;
                    assert!(
                        (got - dot).abs() <= tol,
                        "{ty} n={n} raw={raw} {level:?}: {got} vs f64 {dot} (tolerance {tol:e})"
                    );
                }
                // The public entry point is the process's level.
                let public = vec_dot(ty, n, &w, &x);
                let expect = testing::vec_dot_at(simd::level(), ty, n, &w, &x).unwrap();
                assert_eq!(
                    public.to_bits(),
                    expect.to_bits(),
                    "{ty} n={n}: public vec_dot"
                );
            }
        }
    }
}

#[test]
fn vec_dot_of_zero_row_is_zero() {
    for &ty in &MINE {
        let n = 64;
        let w = vec![0u8; hearth_kernels::row_bytes(ty, n)];
        let (_, x) = rows_for(ty, 9, n, false);
        assert_eq!(vec_dot(ty, n, &w, &x), 0.0, "{ty}");
    }
}
