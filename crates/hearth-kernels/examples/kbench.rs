//! Micro-benchmarks for the kernels: thread-pool overhead and matmul throughput.
//!
//! ```text
//! cargo run --release -p hearth-kernels --example kbench            # best SIMD level
//! HEARTH_SIMD=scalar cargo run --release -p hearth-kernels --example kbench
//! cargo run --release -p hearth-kernels --example kbench -- 4       # 4 threads
//! ```
//!
//! Timings are medians of repeated runs; on a loaded machine they are upper bounds.

use hearth_kernels::matmul::quantize_activations;
use hearth_kernels::{
    activation_type, matmul, quantize_row, row_bytes, GgmlType, QMatrix, ThreadPool,
};
use std::time::{Duration, Instant};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

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

fn pool_overhead(threads: usize) {
    let pool = ThreadPool::new(threads);
    let sink = std::sync::atomic::AtomicUsize::new(0);
    let job = |i: usize, _| {
        sink.fetch_add(i, std::sync::atomic::Ordering::Relaxed);
    };
    for _ in 0..10_000 {
        pool.run(job);
    }
    // Time single calls: on a busy machine the median shows scheduling delays, the lower
    // percentiles what the pool costs when its threads are on a CPU.
    let mut samples: Vec<Duration> = (0..20_000)
        .map(|_| {
            let t = Instant::now();
            pool.run(job);
            t.elapsed()
        })
        .collect();
    samples.sort();
    let pct = |p: usize| samples[samples.len() * p / 100];
    println!(
        "pool: {threads} threads, run() overhead per call: min {:?}, p10 {:?}, p50 {:?}, p90 {:?}",
        samples[0],
        pct(10),
        pct(50),
        pct(90)
    );
}

fn bench_matmul(pool: &ThreadPool, ty: GgmlType, rows: usize, cols: usize, tokens: usize) {
    let act = activation_type(ty).expect("supported");
    let mut w = vec![0u8; rows * row_bytes(ty, cols)];
    let src = values(rows * cols, 1);
    // Weight quantizers exist for the float and legacy types; K types use their scales as-is.
    for (r, chunk) in w.chunks_exact_mut(row_bytes(ty, cols)).enumerate() {
        if quantize_row(ty, &src[r * cols..(r + 1) * cols], chunk).is_err() {
            chunk
                .iter_mut()
                .enumerate()
                .for_each(|(i, b)| *b = (i * 37 + r) as u8 & 0x3f);
        }
    }
    let m = QMatrix::new(ty, &w, rows, cols).expect("shape");
    let mut xq = Vec::new();
    quantize_activations(act, &values(tokens * cols, 2), cols, &mut xq).expect("activations");
    let mut out = vec![0f32; tokens * rows];
    let reps = (20_000_000 / (rows * cols * tokens)).clamp(3, 200);
    matmul(pool, &m, &xq, tokens, &mut out);
    let mut samples = Vec::new();
    for _ in 0..reps {
        let t = Instant::now();
        matmul(pool, &m, &xq, tokens, &mut out);
        samples.push(t.elapsed());
    }
    let t = median(samples);
    let gops = 2.0 * (rows * cols * tokens) as f64 / t.as_secs_f64() / 1e9;
    let gbs = w.len() as f64 / t.as_secs_f64() / 1e9;
    println!(
        "matmul {:<5} {rows:>5}x{cols:<5} tokens {tokens:>3}: {:>9.1?}  {gops:>6.1} GOP/s  weights {gbs:>5.1} GB/s",
        ty.name(),
        t
    );
}

fn main() {
    let threads: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    println!("SIMD level: {:?}", hearth_kernels::simd::level());
    pool_overhead(2);
    if threads != 2 {
        pool_overhead(threads);
    }
    for act in [GgmlType::Q8_0, GgmlType::Q8_1] {
        let x = values(16 * 1536, 3);
        let mut buf = Vec::new();
        let reps = 2000;
        let t = Instant::now();
        for _ in 0..reps {
            quantize_activations(act, &x, 1536, &mut buf).expect("quantize");
        }
        let per_row = t.elapsed() / (reps * 16);
        println!(
            "quantize_activations {}: {per_row:?} per row of 1536",
            act.name()
        );
    }
    for act in [GgmlType::Q8_0, GgmlType::Q8_1] {
        let x = values(16 * 1536, 3);
        let mut buf = Vec::new();
        let reps = 2000;
        let t = Instant::now();
        for _ in 0..reps {
            quantize_activations(act, &x, 1536, &mut buf).expect("quantize");
        }
        let per_row = t.elapsed() / (reps * 16);
        println!(
            "quantize_activations {}: {per_row:?} per row of 1536",
            act.name()
        );
    }
    let pool = ThreadPool::new(threads);
    use GgmlType::*;
    for ty in [F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q6_K] {
        for tokens in [1, 16] {
            bench_matmul(&pool, ty, 576, 1536, tokens);
        }
    }
}
