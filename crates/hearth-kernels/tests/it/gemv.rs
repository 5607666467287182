//! The one-token (decoding) kernels: `matmul` with one token, and `gemv_at` at every SIMD
//! level this CPU supports (a level without such kernels returns `false` and is skipped), equal the single-token `vec_dot` of each row bit for bit (the
//! batch-invariance contract: a row's product in decoding must equal the same product in a
//! prompt batch). Row counts that are not multiples of the kernel's row group make the
//! remainder path run.

use crate::common::*;
use hearth_kernels::matmul::gemv_at;
use hearth_kernels::simd::{self, Level};
use hearth_kernels::{activation_type, matmul, row_bytes, vec_dot, GgmlType, QMatrix, ThreadPool};
use rand::rngs::StdRng;
use rand::Rng;

const TYPES: [GgmlType; 5] = [
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
];

/// Block counts: fewer than the four accumulators, non-multiples of four, real row lengths
/// (576 and 1536 columns) and one longer than the tiles' scale buffer.
const BLOCKS: [usize; 8] = [1, 2, 3, 4, 5, 18, 48, 1030];

const ROWS: [usize; 6] = [1, 7, 8, 9, 17, 23];

/// An f16 scale of any magnitude from subnormal to the largest finite, either sign, or zero.
fn extreme_scale(rng: &mut StdRng) -> [u8; 2] {
    let v = match rng.gen_range(0..5) {
        0 => 0.0,
        1 => 65504.0,
        2 => 6.0e-8, // the smallest f16 subnormal
        3 => 2f32.powf(rng.gen_range(-24.0..15.0)),
        _ => 1.0,
    };
    let sign = if rng.gen_bool(0.5) { -1.0 } else { 1.0 };
    half::f16::from_f32(sign * v).to_le_bytes()
}

/// Offsets of a block's f16 fields in the weight types and in Q8_0 / Q8_1.
fn scale_fields(ty: GgmlType) -> &'static [usize] {
    match ty {
        GgmlType::Q4_1 | GgmlType::Q5_1 | GgmlType::Q8_1 => &[0, 2],
        _ => &[0],
    }
}

/// A row whose quant bytes are all `fill` (or random when `None`) and whose scales are extreme.
fn extreme_row(rng: &mut StdRng, ty: GgmlType, n: usize, fill: Option<u8>) -> Vec<u8> {
    let mut row = vec![0u8; row_bytes(ty, n)];
    match fill {
        Some(b) => row.fill(b),
        None => rng.fill(&mut row[..]),
    }
    for block in row.chunks_exact_mut(ty.type_size()) {
        for &off in scale_fields(ty) {
            block[off..off + 2].copy_from_slice(&extreme_scale(rng));
        }
    }
    row
}

/// Weights for one case: quantized rows, random-byte rows and extreme rows, mixed.
fn weights(rng: &mut StdRng, ty: GgmlType, n: usize, rows: usize) -> Vec<u8> {
    (0..rows)
        .flat_map(|r| match r % 5 {
            0 => quantized_row(rng, ty, n),
            1 | 2 => random_bytes_row(rng, ty, n),
            3 => extreme_row(rng, ty, n, None),
            _ => {
                let fill = [0x00, 0xff, 0x80, 0x7f][rng.gen_range(0..4)];
                extreme_row(rng, ty, n, Some(fill))
            }
        })
        .collect()
}

/// Activations: quantized, or raw bytes (every quant including -128) with extreme scales.
fn activations(rng: &mut StdRng, ty: GgmlType, n: usize) -> Vec<u8> {
    if rng.gen_bool(0.5) {
        activation_row(rng, ty, n)
    } else {
        let act = activation_type(ty).unwrap();
        let fill = if rng.gen_bool(0.3) { Some(0x80) } else { None };
        extreme_row(rng, act, n, fill)
    }
}

#[test]
fn gemv_equals_vec_dot_at_every_level() {
    let mut r = rng(71);
    let mut checked = 0usize;
    for level in [Level::Scalar, Level::Avx2, Level::Avx512Vnni] {
        if !simd::supported(level) {
            eprintln!("{level:?}: not supported by this CPU, skipped");
            continue;
        }
        for ty in TYPES {
            let act = activation_type(ty).unwrap();
            for nb in BLOCKS {
                let n = nb * 32;
                for rows in ROWS {
                    let w = weights(&mut r, ty, n, rows);
                    let x = activations(&mut r, ty, n);
                    let mut out = vec![f32::NAN; rows];
                    if !gemv_at(level, ty, n, &w, rows, &x, &mut out) {
                        // Only the VNNI level has one-token kernels; the others decode with
                        // `vec_dot` itself.
                        assert_ne!(level, Level::Avx512Vnni, "{ty}: no one-token kernel");
                        break;
                    }
                    assert_eq!(x.len(), row_bytes(act, n));
                    let wrb = row_bytes(ty, n);
                    for (row, got) in out.iter().enumerate() {
                        let wr = &w[row * wrb..(row + 1) * wrb];
                        let want = simd::vec_dot_at(level, ty, n, wr, &x).unwrap();
                        assert_eq!(
                            got.to_bits(),
                            want.to_bits(),
                            "{level:?} {ty} n={n}: row {row} of {rows}: {got} vs vec_dot {want}"
                        );
                        checked += 1;
                    }
                }
            }
        }
    }
    eprintln!("{checked} one-token outputs checked against vec_dot");
}

#[test]
fn one_token_matmul_equals_vec_dot() {
    let mut r = rng(72);
    let pools = [ThreadPool::new(1), ThreadPool::new(3)];
    for ty in TYPES {
        for nb in [1usize, 5, 18] {
            let n = nb * 32;
            for rows in [1usize, 9, 23, 70] {
                let w = weights(&mut r, ty, n, rows);
                let x = activations(&mut r, ty, n);
                let m = QMatrix::new(ty, &w, rows, n).unwrap();
                for pool in &pools {
                    let mut out = vec![f32::NAN; rows];
                    matmul(pool, &m, &x, 1, &mut out);
                    for (row, got) in out.iter().enumerate() {
                        let want = vec_dot(ty, n, m.row(row), &x);
                        assert_eq!(
                            got.to_bits(),
                            want.to_bits(),
                            "{ty} n={n}: row {row} of {rows}, {} threads",
                            pool.n_threads()
                        );
                    }
                }
            }
        }
    }
}
