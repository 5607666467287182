//! Matmul: each element equals one `vec_dot`, bit for bit, whatever the batch size, token
//! position and thread count.

use crate::common::*;
use hearth_kernels::matmul::quantize_activations;
use hearth_kernels::{
    activation_type, matmul, row_bytes, vec_dot, GgmlType, QMatrix, ThreadPool, SUPPORTED,
};

const ROWS: usize = 37;
const COLS: usize = 512;
const TOKENS: usize = 64;

fn weights(ty: GgmlType, seed: u64) -> Vec<u8> {
    let mut r = rng(seed);
    // Random bytes reach every quant code and work for types without a weight quantizer.
    (0..ROWS)
        .flat_map(|_| random_bytes_row(&mut r, ty, COLS))
        .collect()
}

#[test]
fn matmul_is_batch_invariant_for_every_supported_type() {
    let pools: Vec<ThreadPool> = (1..=3).map(ThreadPool::new).collect();
    let mut failures = Vec::new();
    for (k, &ty) in SUPPORTED.iter().enumerate() {
        // Catch per type so one unfinished module does not hide the others' results.
        let res = std::panic::catch_unwind(|| check_type(ty, k as u64, &pools));
        if let Err(p) = res {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failures.push(format!("{ty}: {msg}"));
        }
    }
    assert!(
        failures.is_empty(),
        "batch invariance failed:\n{}",
        failures.join("\n")
    );
}

fn check_type(ty: GgmlType, seed: u64, pools: &[ThreadPool]) {
    let act = activation_type(ty).unwrap();
    let wdata = weights(ty, 100 + seed);
    let w = QMatrix::new(ty, &wdata, ROWS, COLS).unwrap();
    let mut r = rng(200 + seed);
    let x = random_values(&mut r, TOKENS * COLS);
    let mut xq = Vec::new();
    quantize_activations(act, &x, COLS, &mut xq).unwrap();
    let xrb = row_bytes(act, COLS);

    // The definition: one vec_dot per element.
    let want: Vec<u32> = (0..TOKENS)
        .flat_map(|t| (0..ROWS).map(move |r| (t, r)))
        .map(|(t, r)| vec_dot(ty, COLS, w.row(r), &xq[t * xrb..(t + 1) * xrb]).to_bits())
        .collect();

    for pool in pools {
        for n in [1usize, 7, 64] {
            for start in [0, 5, TOKENS - n] {
                if start + n > TOKENS {
                    continue;
                }
                let mut out = vec![f32::NAN; n * ROWS];
                matmul(pool, &w, &xq[start * xrb..(start + n) * xrb], n, &mut out);
                for t in 0..n {
                    for row in 0..ROWS {
                        let got = out[t * ROWS + row].to_bits();
                        let exp = want[(start + t) * ROWS + row];
                        assert_eq!(
                            got,
                            exp,
                            "{ty}: token {} of a batch of {n} at {start}, row {row}, {} threads: {} vs {}",
                            t,
                            pool.n_threads(),
                            f32::from_bits(got),
                            f32::from_bits(exp)
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn matmul_matches_decoded_product() {
    // Sanity of the layout: out[t][r] is row r against token t.
    let ty = GgmlType::Q8_0;
    let wdata = weights(ty, 1);
    let w = QMatrix::new(ty, &wdata, ROWS, COLS).unwrap();
    let x = random_values(&mut rng(2), 3 * COLS);
    let mut xq = Vec::new();
    quantize_activations(GgmlType::Q8_0, &x, COLS, &mut xq).unwrap();
    let mut out = vec![0f32; 3 * ROWS];
    matmul(&ThreadPool::new(2), &w, &xq, 3, &mut out);
    for t in 0..3 {
        for r in 0..ROWS {
            let wr = dequant(ty, w.row(r), COLS);
            let exact: f64 = wr
                .iter()
                .zip(&x[t * COLS..(t + 1) * COLS])
                .map(|(&a, &b)| a as f64 * b as f64)
                .sum();
            let abs: f64 = wr
                .iter()
                .zip(&x[t * COLS..(t + 1) * COLS])
                .map(|(&a, &b)| (a as f64 * b as f64).abs())
                .sum();
            // Activation quantization error dominates: about 1/254 of each |x| per element.
            assert!(
                (out[t * ROWS + r] as f64 - exact).abs() <= 0.01 * abs,
                "t={t} r={r}"
            );
        }
    }
}

#[test]
fn quantize_activations_reuses_its_buffer() {
    let x = random_values(&mut rng(3), 8 * 64);
    let mut buf = Vec::new();
    quantize_activations(GgmlType::Q8_0, &x, 64, &mut buf).unwrap();
    assert_eq!(buf.len(), 8 * row_bytes(GgmlType::Q8_0, 64));
    let cap = buf.capacity();
    let ptr = buf.as_ptr();
    quantize_activations(GgmlType::Q8_0, &x[..64], 64, &mut buf).unwrap();
    assert_eq!(buf.len(), row_bytes(GgmlType::Q8_0, 64));
    assert_eq!(
        (buf.capacity(), buf.as_ptr()),
        (cap, ptr),
        "no reallocation for a smaller batch"
    );
    // Rows are encoded independently: the one-token buffer is the first row of the batch.
    let mut again = Vec::new();
    quantize_activations(GgmlType::Q8_0, &x, 64, &mut again).unwrap();
    assert_eq!(&buf[..], &again[..buf.len()]);

    let err = quantize_activations(GgmlType::Q8_0, &x[..100], 64, &mut buf).unwrap_err();
    assert!(
        err.to_string().contains("100") && err.to_string().contains("64"),
        "{err}"
    );
    assert!(quantize_activations(GgmlType::Q8_0, &x[..48], 48, &mut buf).is_err());
}

#[test]
fn qmatrix_new_checks_shape() {
    let data = vec![0u8; 2 * 18];
    assert!(QMatrix::new(GgmlType::Q4_0, &data, 2, 32).is_ok());
    assert!(QMatrix::new(GgmlType::Q4_0, &data, 3, 32).is_err());
    assert!(QMatrix::new(GgmlType::Q4_0, &data, 2, 16).is_err());
    assert!(QMatrix::new(GgmlType::IQ1_S, &data, 2, 256).is_err());
}
