//! The single-token dot (the decode path) of the table-coded 4-bit formats against Q4_0 and
//! Q4_K, per level, on one thread:
//!
//! ```text
//! cargo run --release -p hearth-kernels --example iqbench [ROWS COLS]
//! ```
//!
//! For each type it runs `vec_dot` of one activation row against every row of a ROWS x COLS
//! matrix (default 4096 x 4096, 8-14 MB of weights: larger than the caches, as in a model) and
//! prints the fastest and the median pass in GB/s of weight bytes and in elements per
//! nanosecond. Levels alternate pass by pass, so load on a shared machine hits them alike; the
//! fastest pass is the figure least disturbed by it. Then, at the process's level, a 64-token
//! `matmul` on one thread (the prompt path: tile kernels for Q4_0 and Q4_K, one `vec_dot` per
//! pair for the i-quants and MXFP4), in weight-row products per nanosecond.

use hearth_kernels::matmul::quantize_activations;
use hearth_kernels::simd::{self, Level};
use hearth_kernels::testing::vec_dot_at;
use hearth_kernels::{
    activation_type, matmul, quantize_row, row_bytes, GgmlType, QMatrix, ThreadPool,
};
use std::time::{Duration, Instant};

/// Deterministic pseudo-random values in [-1, 1) (no dependency on `rand` here).
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

fn encode(ty: GgmlType, x: &[f32]) -> Vec<u8> {
    let mut out = vec![0u8; row_bytes(ty, x.len())];
    quantize_row(ty, x, &mut out).expect("encode");
    out
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("ROWS COLS"))
        .collect();
    let (rows, cols) = match args[..] {
        [r, c] => (r, c),
        _ => (4096, 4096),
    };
    let levels: Vec<Level> = std::iter::once(Level::Scalar)
        .chain(simd::simd_levels())
        .collect();
    println!("{rows} x {cols}, one thread; GB/s of weights (best / median of 15 passes)");
    let mut batches = Vec::new();
    for ty in [
        GgmlType::Q4_0,
        GgmlType::Q4_K,
        GgmlType::IQ4_NL,
        GgmlType::IQ4_XS,
        GgmlType::MXFP4,
        GgmlType::IQ2_XXS,
        GgmlType::IQ2_XS,
        GgmlType::IQ3_XXS,
        GgmlType::IQ3_S,
    ] {
        let act = activation_type(ty).unwrap();
        let rb = row_bytes(ty, cols);
        // Types without an encoder (the lattice i-quants) time random blocks with a modest `d`.
        let w: Vec<u8> = (0..rows)
            .flat_map(|r| {
                let mut row = vec![0u8; rb];
                if quantize_row(ty, &values(cols, 17 + r as u64), &mut row).is_err() {
                    let v = values(rb, 29 + r as u64);
                    for (b, v) in row.iter_mut().zip(v) {
                        *b = (v.to_bits() >> 7) as u8;
                    }
                    for block in row.chunks_exact_mut(ty.type_size()) {
                        block[0..2].copy_from_slice(&half::f16::from_f32(0.001).to_le_bytes());
                    }
                }
                row
            })
            .collect();
        let x = encode(act, &values(cols, 3));
        let mut times: Vec<Vec<Duration>> = vec![Vec::new(); levels.len()];
        let mut sink = 0f32;
        for pass in 0..15 {
            for (li, &level) in levels.iter().enumerate() {
                // The scalar level is slow: time it on every third pass only.
                if level == Level::Scalar && pass % 3 != 0 {
                    continue;
                }
                let t0 = Instant::now();
                for r in 0..rows {
                    sink += vec_dot_at(level, ty, cols, &w[r * rb..(r + 1) * rb], &x).unwrap();
                }
                times[li].push(t0.elapsed());
            }
        }
        let bytes = (rows * rb) as f64;
        let mut line = format!("{:<7}", ty.name());
        for (level, mut t) in levels.iter().zip(times) {
            t.sort();
            let gbs = |d: Duration| bytes / d.as_secs_f64() / 1e9;
            let best = t[0];
            line += &format!(
                "  {level:?} {:6.2} / {:6.2} ({:5.2} el/ns)",
                gbs(best),
                gbs(t[t.len() / 2]),
                (rows * cols) as f64 / best.as_nanos() as f64
            );
        }
        println!("{line}  [{:.1} MB; sink {sink:.1}]", bytes / 1e6);
        batches.push((ty, w, act));
    }
    let pool = ThreadPool::new(1);
    let tokens = 64;
    let mut xq = Vec::new();
    println!("{tokens}-token matmul, one thread: element products per ns (best / median of 5)");
    for (ty, w, act) in &batches {
        quantize_activations(*act, &values(tokens * cols, 5), cols, &mut xq).unwrap();
        let m = QMatrix::new(*ty, w, rows, cols).unwrap();
        let mut out = vec![0f32; tokens * rows];
        let mut t: Vec<Duration> = (0..5)
            .map(|_| {
                let t0 = Instant::now();
                matmul(&pool, &m, &xq, tokens, &mut out);
                t0.elapsed()
            })
            .collect();
        t.sort();
        let rate = |d: Duration| (rows * cols * tokens) as f64 / d.as_nanos() as f64;
        println!("{:<7} {:6.2} / {:6.2}", ty.name(), rate(t[0]), rate(t[2]));
    }
}
