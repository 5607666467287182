//! The multi-token tile kernels: every (row, token) output equals the single-token `vec_dot`
//! bit for bit, for every tile shape, tail and block count (the batch-invariance contract the
//! engine's bit-for-bit tests rely on).

use crate::common::*;
use hearth_kernels::testing::dot_tile;
use hearth_kernels::{activation_type, row_bytes, vec_dot, GgmlType};

/// The types with tile kernels, and block counts that exercise every accumulator phase
/// (fewer blocks than accumulators, non-multiples of four, and a real row length).
const CASES: [(GgmlType, &[usize]); 8] = [
    (GgmlType::Q4_0, &[1, 3, 4, 5, 18, 1030]),
    (GgmlType::Q4_1, &[1, 3, 4, 5, 18]),
    (GgmlType::Q5_0, &[1, 2, 6, 9, 20]),
    (GgmlType::Q5_1, &[1, 2, 6, 9]),
    (GgmlType::Q8_0, &[1, 3, 7, 8, 18]),
    (GgmlType::Q4_K, &[1, 2, 3]),
    (GgmlType::Q5_K, &[1, 2, 3]),
    (GgmlType::Q6_K, &[1, 2, 3]),
];

#[test]
fn tile_outputs_equal_vec_dot_bit_for_bit() {
    let mut r = rng(61);
    let mut checked = 0usize;
    for (ty, block_counts) in CASES {
        let act = activation_type(ty).unwrap();
        for &nb in block_counts {
            let n = nb * ty.block_size();
            for rows in [1usize, 3, 5, 7] {
                let w: Vec<u8> = (0..rows)
                    .flat_map(|_| random_bytes_row(&mut r, ty, n))
                    .collect();
                for tokens in 1..=8usize {
                    let x: Vec<u8> = (0..tokens)
                        .flat_map(|_| activation_row(&mut r, ty, n))
                        .collect();
                    let mut out = vec![f32::NAN; rows * tokens];
                    if !dot_tile(ty, n, &w, rows, &x, tokens, &mut out) {
                        eprintln!("{ty}: no tile kernel at this SIMD level, nothing to compare");
                        break;
                    }
                    let (wrb, xrb) = (row_bytes(ty, n), row_bytes(act, n));
                    for t in 0..tokens {
                        for row in 0..rows {
                            let want = vec_dot(
                                ty,
                                n,
                                &w[row * wrb..(row + 1) * wrb],
                                &x[t * xrb..(t + 1) * xrb],
                            );
                            let got = out[t * rows + row];
                            assert_eq!(
                                got.to_bits(),
                                want.to_bits(),
                                "{ty} n={n}: row {row} of {rows}, token {t} of {tokens}: \
                                 {got} vs vec_dot {want}"
                            );
                            checked += 1;
                        }
                    }
                }
            }
        }
    }
    eprintln!("{checked} tile outputs checked against vec_dot");
}

#[test]
fn tile_keeps_signed_zero_and_extreme_quants() {
    // All-zero activations give -0.0 or +0.0 lanes depending on the order of additions, and
    // all-ones weight bytes reach the largest quants: both must still match vec_dot exactly.
    let mut r = rng(62);
    for (ty, block_counts) in CASES {
        let n = block_counts[block_counts.len() - 1] * ty.block_size();
        let rows = 3;
        let mut w: Vec<u8> = (0..rows)
            .flat_map(|_| random_bytes_row(&mut r, ty, n))
            .collect();
        // Saturate the first row's quant bytes while keeping its f16 scales finite: copy the
        // scales of a fresh random row over an all-ones row.
        let wrb = row_bytes(ty, n);
        let scales = random_bytes_row(&mut r, ty, n);
        for (i, b) in w[..wrb].iter_mut().enumerate() {
            *b = if is_scale_byte(ty, i % ty.type_size()) {
                scales[i]
            } else {
                0xff
            };
        }
        let act = activation_type(ty).unwrap();
        let xrb = row_bytes(act, n);
        let mut x = vec![0u8; 2 * xrb];
        hearth_kernels::quantize_row(act, &vec![0.0; n], &mut x[..xrb]).unwrap();
        hearth_kernels::quantize_row(act, &vec![-1.0; n], &mut x[xrb..]).unwrap();
        let mut out = vec![f32::NAN; rows * 2];
        if !dot_tile(ty, n, &w, rows, &x, 2, &mut out) {
            continue;
        }
        for t in 0..2 {
            for row in 0..rows {
                let want = vec_dot(
                    ty,
                    n,
                    &w[row * wrb..(row + 1) * wrb],
                    &x[t * xrb..(t + 1) * xrb],
                );
                assert_eq!(
                    out[t * rows + row].to_bits(),
                    want.to_bits(),
                    "{ty}: row {row}, token {t}"
                );
            }
        }
    }
}

/// Whether byte `i` of a block of `ty` belongs to an f16 scale field.
fn is_scale_byte(ty: GgmlType, i: usize) -> bool {
    use GgmlType::*;
    match ty {
        Q4_0 | Q5_0 | Q8_0 => i < 2,
        Q4_1 | Q5_1 | Q4_K | Q5_K => i < 4,
        Q6_K => (208..210).contains(&i),
        _ => false,
    }
}
