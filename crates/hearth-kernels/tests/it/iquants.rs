//! The i-quants and MXFP4: every SIMD level against the scalar reference, bit for bit, the
//! reference against an f64 dot of the decoded rows, the extreme codes, and the test encoder
//! (IQ4_NL, IQ4_XS and MXFP4 have one; the lattice types are tested on random bytes only).
//! (Decoding against the `gguf` package is in `fixtures`, batch invariance in `matmul`.)

use crate::common::*;
use hearth_kernels::simd::{self, Level};
use hearth_kernels::testing;
use hearth_kernels::{activation_type, dequantize_row, quantize_row, row_bytes, vec_dot, GgmlType};

const ENCODED: [GgmlType; 3] = [GgmlType::IQ4_NL, GgmlType::IQ4_XS, GgmlType::MXFP4];
const TYPES: [GgmlType; 7] = [
    GgmlType::IQ4_NL,
    GgmlType::IQ4_XS,
    GgmlType::MXFP4,
    GgmlType::IQ2_XXS,
    GgmlType::IQ2_XS,
    GgmlType::IQ3_XXS,
    GgmlType::IQ3_S,
];

/// Row kinds to test: encoded values where the type has an encoder, and random bytes.
fn kinds(ty: GgmlType) -> &'static [bool] {
    if ENCODED.contains(&ty) {
        &[false, true]
    } else {
        &[true]
    }
}

/// Row lengths: one block, odd block counts (the 8-block and 4-block loops' tails), and a
/// model's width.
fn sizes(ty: GgmlType) -> Vec<usize> {
    let b = ty.block_size();
    [1, 3, 7, 9, 13, 16]
        .iter()
        .map(|k| k * b)
        .chain([4096])
        .collect()
}

fn rows_for(ty: GgmlType, seed: u64, n: usize, raw: bool) -> (Vec<u8>, Vec<u8>) {
    let mut r = rng(seed);
    let w = if raw {
        random_bytes_row(&mut r, ty, n)
    } else {
        quantized_row(&mut r, ty, n)
    };
    (w, activation_row(&mut r, ty, n))
}

#[test]
fn every_level_equals_the_scalar_reference_bit_for_bit() {
    let levels = simd::simd_levels();
    for (k, &ty) in TYPES.iter().enumerate() {
        for n in sizes(ty) {
            for &raw in kinds(ty) {
                let (w, x) = rows_for(ty, 300 + 13 * k as u64 + n as u64, n, raw);
                let s = testing::vec_dot_at(Level::Scalar, ty, n, &w, &x).unwrap();
                for &level in &levels {
                    let v = testing::vec_dot_at(level, ty, n, &w, &x).unwrap();
                    assert_eq!(
                        s.to_bits(),
                        v.to_bits(),
                        "{ty} n={n} raw={raw}: scalar {s} vs {level:?} {v}"
                    );
                }
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
fn dot_equals_the_decoded_rows_dot() {
    for (k, &ty) in TYPES.iter().enumerate() {
        let act = activation_type(ty).unwrap();
        for n in sizes(ty) {
            for &raw in kinds(ty) {
                let (w, x) = rows_for(ty, 900 + 7 * k as u64 + n as u64, n, raw);
                let (wf, xf) = (dequant(ty, &w, n), dequant(act, &x, n));
                let dot: f64 = wf.iter().zip(&xf).map(|(&a, &b)| a as f64 * b as f64).sum();
                let abs: f64 = wf
                    .iter()
                    .zip(&xf)
                    .map(|(&a, &b)| (a as f64 * b as f64).abs())
                    .sum();
                let got = testing::vec_dot_at(Level::Scalar, ty, n, &w, &x).unwrap() as f64;
                let tol = 4e-6 * abs + 1e-30;
                assert!(
                    (got - dot).abs() <= tol,
                    "{ty} n={n} raw={raw}: {got} vs f64 {dot} (tolerance {tol:e})"
                );
            }
        }
    }
}

#[test]
fn extreme_codes_and_activations_do_not_saturate() {
    // The level of largest magnitude (-127 for IQ4, -12 for MXFP4, the last lattice point with
    // every sign negative and the scale 15 for IQ2 / IQ3) everywhere, IQ4_XS's scale at -32,
    // against activations of ±127: the largest integer products every level must sum exactly.
    let levels = simd::simd_levels();
    for ty in TYPES {
        let act = activation_type(ty).unwrap();
        let n = 2 * ty.block_size();
        let mut w = vec![0u8; row_bytes(ty, n)];
        for b in w.chunks_exact_mut(ty.type_size()) {
            match ty {
                GgmlType::IQ4_NL => {
                    b[0..2].copy_from_slice(&half::f16::from_f32(0.01).to_le_bytes());
                    b[2..].fill(0x00);
                }
                GgmlType::IQ4_XS => {
                    b[0..2].copy_from_slice(&half::f16::from_f32(0.01).to_le_bytes());
                    b[2..8].fill(0x00); // every 6-bit scale 0, i.e. -32
                    b[8..].fill(0x00);
                }
                GgmlType::MXFP4 => {
                    b[0] = 120;
                    b[1..].fill(0xff); // code 15, level -12
                }
                _ => {
                    b[0..2].copy_from_slice(&half::f16::from_f32(0.01).to_le_bytes());
                    b[2..].fill(0xff);
                }
            }
        }
        for sign in [1.0f32, -1.0] {
            let x = encode(act, &vec![sign; n]);
            let s = testing::vec_dot_at(Level::Scalar, ty, n, &w, &x).unwrap();
            let (wf, xf) = (dequant(ty, &w, n), dequant(act, &x, n));
            let dot: f64 = wf.iter().zip(&xf).map(|(&a, &b)| a as f64 * b as f64).sum();
            assert!(
                (s as f64 - dot).abs() <= 1e-5 * dot.abs(),
                "{ty} sign {sign}: {s} vs {dot}"
            );
            for &level in &levels {
                let v = testing::vec_dot_at(level, ty, n, &w, &x).unwrap();
                assert_eq!(
                    s.to_bits(),
                    v.to_bits(),
                    "{ty} sign {sign} {level:?}: {s} vs {v}"
                );
            }
        }
    }
}

#[test]
fn the_encoder_round_trips_within_the_formats_precision() {
    for ty in [GgmlType::IQ2_XXS, GgmlType::IQ3_S] {
        // No encoder for the lattice types (ggml's needs an importance search): said plainly.
        let err = quantize_row(ty, &[0.0; 256], &mut vec![0u8; row_bytes(ty, 256)]);
        assert!(err.is_err(), "{ty}");
    }
    // A 4-bit non-linear code keeps a row to about a tenth of its RMS (MXFP4, with a
    // power-of-two scale and only three magnitude bits, to about 0.14); a broken encoder (wrong
    // nibble order, scale or table) is off by about the whole RMS.
    for ty in ENCODED {
        let n = 1024;
        let x = random_values(&mut rng(44), n);
        let mut b = vec![0u8; row_bytes(ty, n)];
        quantize_row(ty, &x, &mut b).unwrap();
        let mut y = vec![0f32; n];
        dequantize_row(ty, &b, &mut y).unwrap();
        let err = (x.iter().zip(&y).map(|(a, b)| (a - b).powi(2)).sum::<f32>() / n as f32).sqrt();
        let rms = (x.iter().map(|a| a * a).sum::<f32>() / n as f32).sqrt();
        let bound = if ty == GgmlType::MXFP4 { 0.16 } else { 0.12 };
        assert!(err < bound * rms, "{ty}: RMS error {err} for RMS {rms}");
    }
}

#[test]
fn a_zero_row_gives_zero() {
    for ty in TYPES {
        let n = 512;
        let mut w = vec![0u8; row_bytes(ty, n)];
        if !ENCODED.contains(&ty) {
            // Lattice points are never zero: a zero row is one whose scale `d` is zero.
            w = random_bytes_row(&mut rng(6), ty, n);
            for b in w.chunks_exact_mut(ty.type_size()) {
                b[0..2].fill(0);
            }
        }
        let (_, x) = rows_for(ty, 5, n, true);
        // IQ4_NL / IQ4_XS with d = 0 and MXFP4 with codes 0 (its level 0).
        assert_eq!(vec_dot(ty, n, &w, &x), 0.0, "{ty}");
    }
}

fn encode(ty: GgmlType, values: &[f32]) -> Vec<u8> {
    let mut out = vec![0u8; row_bytes(ty, values.len())];
    quantize_row(ty, values, &mut out).expect("encode activations");
    out
}

#[test]
fn q8_k_i_quant_tiles_equal_vec_dot_bit_for_bit() {
    // The multi-token tiles (x86-64) of the i-quants that multiply Q8_K activations: every
    // (row, token) output is the single-token `vec_dot`'s bits, for every tile width and tail.
    let has_tiles = simd::level() != Level::Scalar && cfg!(target_arch = "x86_64");
    let mut r = rng(62);
    for ty in [
        GgmlType::IQ4_XS,
        GgmlType::IQ2_XXS,
        GgmlType::IQ2_XS,
        GgmlType::IQ3_XXS,
        GgmlType::IQ3_S,
    ] {
        let act = activation_type(ty).unwrap();
        for nb in [1usize, 2, 5] {
            let n = nb * ty.block_size();
            let (wrb, xrb) = (row_bytes(ty, n), row_bytes(act, n));
            let rows = 3;
            let w: Vec<u8> = (0..rows)
                .flat_map(|_| random_bytes_row(&mut r, ty, n))
                .collect();
            for tokens in 1..=9usize {
                let x: Vec<u8> = (0..tokens)
                    .flat_map(|_| activation_row(&mut r, ty, n))
                    .collect();
                let mut out = vec![f32::NAN; rows * tokens];
                let ran = testing::dot_tile(ty, n, &w, rows, &x, tokens, &mut out);
                assert_eq!(
                    ran, has_tiles,
                    "{ty}: a tile kernel on x86-64's SIMD levels"
                );
                if !ran {
                    continue;
                }
                for t in 0..tokens {
                    for row in 0..rows {
                        let want = vec_dot(ty, n, &w[row * wrb..][..wrb], &x[t * xrb..][..xrb]);
                        let got = out[t * rows + row];
                        assert_eq!(
                            got.to_bits(),
                            want.to_bits(),
                            "{ty} nb={nb}: row {row}, token {t} of {tokens}: {got} vs {want}"
                        );
                    }
                }
            }
        }
    }
}
