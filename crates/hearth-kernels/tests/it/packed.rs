//! Packed (eight interleaved rows) weights: packing is lossless, the scalar reference computes
//! the dot product it claims to, and every SIMD level's kernels equal the reference bit for
//! bit for every token count, group count and thread count (the batch-invariance contract of
//! packed matmuls: decode and prompt tiles run the same arithmetic).

use crate::common::*;
use hearth_kernels::packed::{self, GROUP};
use hearth_kernels::simd::{self, Level};
use hearth_kernels::testing;
use hearth_kernels::{activation_type, row_bytes, GgmlType, QMatrix, ThreadPool};
use rand::Rng;

const TYPES: [GgmlType; 6] = [
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q8_0,
    GgmlType::Q4_K,
    GgmlType::Q6_K,
];

/// Block counts per type: one block, a few, and a real row width.
fn block_counts(ty: GgmlType) -> &'static [usize] {
    if ty.block_size() == 256 {
        &[1, 2, 3, 14]
    } else {
        &[1, 2, 5, 18]
    }
}

/// Rows of random bytes (every code appears) with modest f16 scales.
fn weights(rng: &mut rand::rngs::StdRng, ty: GgmlType, rows: usize, n: usize) -> Vec<u8> {
    (0..rows)
        .flat_map(|_| random_bytes_row(rng, ty, n))
        .collect()
}

fn packed_weights(ty: GgmlType, orig: &[u8], rows: usize, n: usize) -> Vec<u8> {
    let mut data = vec![0u8; orig.len()];
    packed::pack_into(ty, rows, n, orig, &mut data).unwrap();
    data
}

#[test]
fn packing_is_lossless() {
    let mut r = rng(71);
    for ty in TYPES {
        for &nb in block_counts(ty) {
            let n = nb * ty.block_size();
            let rows = 3 * GROUP;
            let orig = weights(&mut r, ty, rows, n);
            let mut data = vec![0u8; orig.len()];
            packed::pack_into(ty, rows, n, &orig, &mut data).unwrap();
            assert_ne!(data, orig, "{ty} nb={nb}: packing changed nothing");
            let rb = row_bytes(ty, n);
            let mut row = vec![0u8; rb];
            for i in 0..rows {
                packed::unpack_row(ty, n, &data, i, &mut row);
                assert_eq!(row, orig[i * rb..(i + 1) * rb], "{ty} nb={nb} row {i}");
            }
            // The matrix view decodes packed rows as the row-major ones.
            let m = QMatrix::packed(ty, &data, rows, n).unwrap();
            let (mut got, mut scratch) = (vec![0f32; n], Vec::new());
            for i in [0, 5, rows - 1] {
                m.dequantize_row(i, &mut scratch, &mut got).unwrap();
                assert_eq!(got, dequant(ty, &orig[i * rb..(i + 1) * rb], n));
            }
        }
    }
}

#[test]
fn shapes_that_cannot_be_packed_are_refused() {
    assert!(packed::packable(GgmlType::Q4_0, 16, 64));
    assert!(
        !packed::packable(GgmlType::Q4_0, 12, 64),
        "rows not a multiple of 8"
    );
    assert!(!packed::packable(GgmlType::Q5_1, 16, 64), "no packed Q5_1");
    assert!(
        !packed::packable(GgmlType::F16, 16, 64),
        "floats stay row-major"
    );
    assert!(
        !packed::packable(GgmlType::Q8_0, 8, 32 * 1025),
        "too many blocks"
    );
    let data = vec![0u8; 12 * row_bytes(GgmlType::Q4_0, 64)];
    let mut dst = data.clone();
    let err = packed::pack_into(GgmlType::Q4_0, 12, 64, &data, &mut dst).unwrap_err();
    assert!(err.to_string().contains("12 x 64"), "{err}");
    assert!(QMatrix::packed(GgmlType::Q4_0, &data, 12, 64).is_err());
}

#[test]
fn the_reference_computes_the_dot_product() {
    let mut r = rng(72);
    for ty in TYPES {
        let act = activation_type(ty).unwrap();
        for &nb in block_counts(ty) {
            let n = nb * ty.block_size();
            let orig: Vec<u8> = (0..GROUP)
                .flat_map(|_| quantized_row(&mut r, ty, n))
                .collect();
            let mut data = vec![0u8; orig.len()];
            packed::pack_into(ty, GROUP, n, &orig, &mut data).unwrap();
            let x = activation_row(&mut r, ty, n);
            let xf = dequant(act, &x, n);
            let rb = row_bytes(ty, n);
            for i in 0..GROUP {
                let wf = dequant(ty, &orig[i * rb..(i + 1) * rb], n);
                let want: f64 = wf.iter().zip(&xf).map(|(&a, &b)| a as f64 * b as f64).sum();
                let scale: f64 = wf
                    .iter()
                    .zip(&xf)
                    .map(|(&a, &b)| (a as f64 * b as f64).abs())
                    .sum();
                let got = testing::packed_dot_reference(ty, n, &data, i, &x) as f64;
                assert!(
                    (got - want).abs() <= 1e-3 * scale + 1e-6,
                    "{ty} nb={nb} row {i}: reference {got} vs exact {want} (scale {scale})"
                );
            }
        }
    }
}

/// The portable level and every SIMD level this CPU runs, x86 or ARM.
fn levels() -> Vec<Level> {
    let mut l = vec![Level::Scalar];
    l.extend(simd::simd_levels());
    l
}

/// Every level's kernels against the reference, bit for bit: token counts across the tile
/// widths and their tails, several groups, one and two threads.
#[test]
fn every_level_equals_the_reference_bit_for_bit() {
    let mut r = rng(73);
    let pools = [ThreadPool::new(1), ThreadPool::new(2)];
    for ty in TYPES {
        let act = activation_type(ty).unwrap();
        for &nb in block_counts(ty) {
            let n = nb * ty.block_size();
            let rows = 3 * GROUP;
            let data = packed_weights(ty, &weights(&mut r, ty, rows, n), rows, n);
            for tokens in 1usize..=17 {
                let x: Vec<u8> = (0..tokens)
                    .flat_map(|_| activation_row(&mut r, ty, n))
                    .collect();
                let xrb = row_bytes(act, n);
                let want: Vec<u32> = (0..tokens * rows)
                    .map(|i| {
                        let (t, row) = (i / rows, i % rows);
                        testing::packed_dot_reference(ty, n, &data, row, &x[t * xrb..(t + 1) * xrb])
                            .to_bits()
                    })
                    .collect();
                for level in levels() {
                    for pool in &pools {
                        let mut out = vec![f32::NAN; tokens * rows];
                        assert!(testing::packed_matmul_at(
                            level, pool, ty, &data, rows, n, &x, tokens, &mut out,
                        ));
                        let got: Vec<u32> = out.iter().map(|v| v.to_bits()).collect();
                        assert_eq!(
                            got,
                            want,
                            "{ty} nb={nb} tokens={tokens} {level:?} {} threads",
                            pool.n_threads()
                        );
                    }
                }
            }
        }
    }
}

/// The extremes of every field: all codes 0 or maximal (Q8_0 quants −128 and 127),
/// activations at ±127, huge, tiny, negative and zero scales.
#[test]
fn extreme_blocks_equal_the_reference_on_every_level() {
    let mut r = rng(74);
    let pool = ThreadPool::new(1);
    let scales = [1.0f32, -1.0, 60000.0, -65504.0, 6.0e-8, -3.0e-5, 0.0];
    for ty in TYPES {
        let act = activation_type(ty).unwrap();
        let nb = 3;
        let n = nb * ty.block_size();
        for fill in [0x00u8, 0xff, 0x80, 0x7f] {
            let mut orig = weights(&mut r, ty, GROUP, n);
            set_all_bytes_but_scales(ty, &mut orig, fill, &mut r, &scales);
            let data = packed_weights(ty, &orig, GROUP, n);
            let fills = [127i8, -127, 0];
            let x: Vec<u8> = fills
                .iter()
                .flat_map(|&q| {
                    let mut x = activation_row(&mut r, ty, n);
                    set_activation_quants(act, &mut x, q);
                    x
                })
                .collect();
            let xrb = x.len() / fills.len();
            let want: Vec<u32> = (0..fills.len() * GROUP)
                .map(|i| {
                    let xt = &x[(i / GROUP) * xrb..(i / GROUP + 1) * xrb];
                    testing::packed_dot_reference(ty, n, &data, i % GROUP, xt).to_bits()
                })
                .collect();
            for level in simd::simd_levels() {
                // Each activation row alone, then all three as one batch (on i8mm an
                // `smmla` pair of different rows, then a lone one).
                let runs = (0..fills.len()).map(|t| (t, 1)).chain([(0, fills.len())]);
                for (t0, tokens) in runs {
                    let xs = &x[t0 * xrb..(t0 + tokens) * xrb];
                    let mut out = vec![f32::NAN; tokens * GROUP];
                    assert!(testing::packed_matmul_at(
                        level, &pool, ty, &data, GROUP, n, xs, tokens, &mut out
                    ));
                    let got: Vec<u32> = out.iter().map(|v| v.to_bits()).collect();
                    assert_eq!(
                        got,
                        want[t0 * GROUP..(t0 + tokens) * GROUP],
                        "{ty} fill {fill:#x} x {:?} {level:?}",
                        &fills[t0..t0 + tokens]
                    );
                }
            }
        }
    }
}

/// The f16 scale fields of one block of `ty`.
fn scale_fields(ty: GgmlType) -> &'static [usize] {
    match ty {
        GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 => &[0],
        GgmlType::Q4_1 | GgmlType::Q4_K => &[0, 2],
        GgmlType::Q6_K => &[208],
        other => panic!("scale_fields: {other}"),
    }
}

/// Sets every byte of every block to `fill` except the f16 scales, which are drawn from
/// `scales`.
fn set_all_bytes_but_scales(
    ty: GgmlType,
    data: &mut [u8],
    fill: u8,
    r: &mut rand::rngs::StdRng,
    scales: &[f32],
) {
    for block in data.chunks_exact_mut(ty.type_size()) {
        block.fill(fill);
        for &off in scale_fields(ty) {
            let s = scales[r.gen_range(0..scales.len())];
            block[off..off + 2].copy_from_slice(&half::f16::from_f32(s).to_le_bytes());
        }
    }
}

/// Sets every activation quant to `q`, keeping the block scales (and recomputing Q8_K's block
/// sums, which the K-quant kernels read).
fn set_activation_quants(act: GgmlType, x: &mut [u8], q: i8) {
    match act {
        GgmlType::Q8_0 => x.chunks_exact_mut(34).for_each(|b| b[2..].fill(q as u8)),
        GgmlType::Q8_1 => x.chunks_exact_mut(36).for_each(|b| b[4..].fill(q as u8)),
        GgmlType::Q8_K => x.chunks_exact_mut(292).for_each(|b| {
            b[4..260].fill(q as u8);
            for j in 0..16 {
                let s = (16 * i16::from(q)).to_le_bytes();
                b[260 + 2 * j..262 + 2 * j].copy_from_slice(&s);
            }
        }),
        other => panic!("set_activation_quants: {other}"),
    }
}

/// The public `matmul` on packed weights, at this process's level: each token's outputs
/// are the same bits whatever the batch it comes in, its place there and the thread count,
/// and equal the reference.
#[test]
fn packed_matmul_is_batch_invariant() {
    let mut r = rng(75);
    let pools = [ThreadPool::new(1), ThreadPool::new(2)];
    let (rows, tokens) = (2 * GROUP, 19);
    for ty in TYPES {
        let act = activation_type(ty).unwrap();
        let n = 2 * ty.block_size();
        let data = packed_weights(ty, &weights(&mut r, ty, rows, n), rows, n);
        let w = QMatrix::packed(ty, &data, rows, n).unwrap();
        let xrb = row_bytes(act, n);
        let x: Vec<u8> = (0..tokens)
            .flat_map(|_| activation_row(&mut r, ty, n))
            .collect();
        let want: Vec<u32> = (0..tokens * rows)
            .map(|i| {
                let (t, row) = (i / rows, i % rows);
                testing::packed_dot_reference(ty, n, &data, row, &x[t * xrb..(t + 1) * xrb])
                    .to_bits()
            })
            .collect();
        for pool in &pools {
            for batch in [1usize, 2, 3, 5, 8, 19] {
                for start in [0, 1, tokens - batch]
                    .into_iter()
                    .filter(|s| s + batch <= tokens)
                {
                    let mut out = vec![f32::NAN; batch * rows];
                    let xs = &x[start * xrb..(start + batch) * xrb];
                    hearth_kernels::matmul(pool, &w, xs, batch, &mut out);
                    let got: Vec<u32> = out.iter().map(|v| v.to_bits()).collect();
                    assert_eq!(
                        got,
                        want[start * rows..(start + batch) * rows],
                        "{ty}: batch of {batch} at {start}, {} threads",
                        pool.n_threads()
                    );
                }
            }
        }
    }
}

/// Every SIMD level, x86 or ARM, has packed kernels for both format families, so a model
/// packs its weights there; only the portable level keeps the row layout.
#[test]
fn every_simd_level_has_packed_kernels() {
    assert_eq!(packed::has_kernels(), simd::level() != Level::Scalar);
}

#[test]
#[should_panic(expected = "matmul on a packed matrix")]
fn a_matrix_marked_packed_that_cannot_be_is_refused() {
    // `QMatrix`'s fields are public: a caller can mark any matrix packed. The packed kernels'
    // unchecked loads must never see one they cannot read (Q5_1 has no packed layout; a K-quant
    // kernel reading its rows would run far past the buffer), so matmul refuses it.
    let (ty, rows, cols) = (GgmlType::Q5_1, 8, 256);
    let data = vec![0u8; rows * row_bytes(ty, cols)];
    let w = QMatrix {
        ty,
        data: &data,
        rows,
        cols,
        packed: true,
    };
    let act = activation_type(ty).unwrap();
    let xq = vec![0u8; row_bytes(act, cols)];
    let mut out = vec![0f32; rows];
    hearth_kernels::matmul(&ThreadPool::new(1), &w, &xq, 1, &mut out);
}
