//! Micro-benchmarks for the kernels: thread-pool overhead and matmul throughput.
//!
//! ```text
//! cargo run --release -p hearth-kernels --example kbench            # best SIMD level
//! HEARTH_SIMD=scalar cargo run --release -p hearth-kernels --example kbench
//! cargo run --release -p hearth-kernels --example kbench -- 4       # 4 threads
//!
//! cargo run --release -p hearth-kernels --example kbench -- 2 tiles # tiles vs vec_dot only
//! cargo run --release -p hearth-kernels --example kbench -- 1 levels # VNNI vs AVX2 tiles, vec_dot
//! ```
//!
//! The `tiles` section times `matmul` (the multi-token tile kernels for batches) against the
//! same matmul done as one `vec_dot` per (row, token) — the loop `matmul` ran before the tiles —
//! on the projection shapes of SmolLM2-135M and Gemma-3-270M.
//!
//! The `levels` section times the tile kernels, then one-token `vec_dot` over every row (the
//! decode path; 32-element formats, and Q4_K/Q5_K/Q6_K on 7B and Gemma 3 shapes), on one thread at
//! the AVX2 and the AVX-512 VNNI level in the same process (alternating, so load hits both alike) and
//! prints the fastest and the median run of each; the minimum is the figure least disturbed by
//! other processes on a shared machine.
//!
//! Timings are medians of repeated runs; on a loaded machine they are upper bounds.

use hearth_kernels::matmul::quantize_activations;
use hearth_kernels::simd::Level;
use hearth_kernels::testing::dot_tile_at;
use hearth_kernels::{
    activation_type, matmul, quantize_row, row_bytes, vec_dot, GgmlType, QMatrix, ThreadPool,
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

/// Weights of `ty` shaped like a model's: quantized from random values where a quantizer
/// exists, else bytes with small scales.
fn weights(ty: GgmlType, rows: usize, cols: usize) -> Vec<u8> {
    let mut w = vec![0u8; rows * row_bytes(ty, cols)];
    let src = values(rows * cols, 1);
    for (r, chunk) in w.chunks_exact_mut(row_bytes(ty, cols)).enumerate() {
        if quantize_row(ty, &src[r * cols..(r + 1) * cols], chunk).is_err() {
            chunk
                .iter_mut()
                .enumerate()
                .for_each(|(i, b)| *b = (i * 37 + r) as u8 & 0x3f);
        }
    }
    w
}

/// The output pointer of [`per_token`], shared by its threads.
struct Out(*mut f32);
// SAFETY: threads write disjoint rows through it, and `out` outlives the `run` call.
unsafe impl Sync for Out {}

/// The matmul as one `vec_dot` per (row, token), rows split between threads: what `matmul`
/// did before the tile kernels, kept here as the baseline they are measured against.
fn per_token(pool: &ThreadPool, m: &QMatrix<'_>, xq: &[u8], tokens: usize, out: &mut [f32]) {
    let xrb = xq.len() / tokens;
    let rows = m.rows;
    let group = (16 * 1024 / m.row_bytes()).clamp(2, 64);
    let out = Out(out.as_mut_ptr());
    pool.run(|ti, nt| {
        let out = &out;
        let (r0, r1) = (ti * rows / nt, (ti + 1) * rows / nt);
        for g0 in (r0..r1).step_by(group) {
            for t in 0..tokens {
                let x = &xq[t * xrb..(t + 1) * xrb];
                for r in g0..(g0 + group).min(r1) {
                    let v = vec_dot(m.ty, m.cols, m.row(r), x);
                    // SAFETY: `t * rows + r` is inside `out` (tokens × rows), and only this
                    // thread writes rows `r0..r1`.
                    unsafe { *out.0.add(t * rows + r) = v };
                }
            }
        }
    });
}

fn time(reps: usize, mut f: impl FnMut()) -> Duration {
    f();
    median(
        (0..reps)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed()
            })
            .collect(),
    )
}

/// `matmul` (tile kernels) against [`per_token`] on one shape; checks they agree bit for bit.
fn bench_tiles(pool: &ThreadPool, ty: GgmlType, rows: usize, cols: usize, tokens: usize) {
    let act = activation_type(ty).expect("supported");
    let w = weights(ty, rows, cols);
    let m = QMatrix::new(ty, &w, rows, cols).expect("shape");
    let mut xq = Vec::new();
    quantize_activations(act, &values(tokens * cols, 2), cols, &mut xq).expect("activations");
    let (mut a, mut b) = (vec![0f32; tokens * rows], vec![0f32; tokens * rows]);
    let reps = (50_000_000 / (rows * cols * tokens)).clamp(5, 200);
    // Interleave the two so load changes on a shared machine hit both alike.
    let (mut ta, mut tb) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        ta.push(time(reps / 3 + 1, || matmul(pool, &m, &xq, tokens, &mut a)));
        tb.push(time(reps / 3 + 1, || {
            per_token(pool, &m, &xq, tokens, &mut b)
        }));
    }
    let (ta, tb) = (median(ta), median(tb));
    let same = a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits());
    let gops = |t: Duration| 2.0 * (rows * cols * tokens) as f64 / t.as_secs_f64() / 1e9;
    println!(
        "tiles {:<5} {rows:>5}x{cols:<5} tokens {tokens:>3}: tile {:>9.1?} ({:>5.1} GOP/s)  \
         per-token {:>9.1?} ({:>5.1} GOP/s)  speed-up {:.2}x  bits {}",
        ty.name(),
        ta,
        gops(ta),
        tb,
        gops(tb),
        tb.as_secs_f64() / ta.as_secs_f64(),
        if same { "equal" } else { "DIFFER" }
    );
}

/// The whole `rows × tokens` product through `dot_tile_at` on one thread, at the AVX2 and the
/// VNNI level alternately; checks both give the same bits.
fn bench_levels(ty: GgmlType, rows: usize, cols: usize, tokens: usize) {
    let act = activation_type(ty).expect("supported");
    let w = weights(ty, rows, cols);
    let mut xq = Vec::new();
    quantize_activations(act, &values(tokens * cols, 2), cols, &mut xq).expect("activations");
    let mut outs = [vec![0f32; tokens * rows], vec![0f32; tokens * rows]];
    let levels = [Level::Avx2, Level::Avx512Vnni];
    let mut samples = [Vec::new(), Vec::new()];
    let reps = (100_000_000 / (rows * cols * tokens)).clamp(20, 400);
    for _ in 0..reps {
        for k in 0..2 {
            let t = Instant::now();
            let ok = dot_tile_at(levels[k], ty, cols, &w, rows, &xq, tokens, &mut outs[k]);
            samples[k].push(t.elapsed());
            assert!(ok, "{ty}: no tile kernel at {:?}", levels[k]);
        }
    }
    let same = outs[0]
        .iter()
        .zip(&outs[1])
        .all(|(a, b)| a.to_bits() == b.to_bits());
    let [a, v] = samples.map(|mut s| {
        s.sort();
        (s[0], s[s.len() / 2])
    });
    println!(
        "levels {:<5} {rows:>5}x{cols:<5} tokens {tokens:>3}: AVX2 min {:>9.1?} med {:>9.1?}  \
         VNNI min {:>9.1?} med {:>9.1?}  speed-up min {:.2}x med {:.2}x  bits {}",
        ty.name(),
        a.0,
        a.1,
        v.0,
        v.1,
        a.0.as_secs_f64() / v.0.as_secs_f64(),
        a.1.as_secs_f64() / v.1.as_secs_f64(),
        if same { "equal" } else { "DIFFER" }
    );
}

/// One token through every row with `simd::vec_dot_at` (the decode path) on one thread, at
/// the AVX2 and the VNNI level alternately; checks both give the same bits.
fn bench_levels_vec_dot(ty: GgmlType, rows: usize, cols: usize) {
    let act = activation_type(ty).expect("supported");
    let w = weights(ty, rows, cols);
    let rb = row_bytes(ty, cols);
    let mut xq = Vec::new();
    quantize_activations(act, &values(cols, 2), cols, &mut xq).expect("activations");
    let mut outs = [vec![0f32; rows], vec![0f32; rows]];
    let levels = [Level::Avx2, Level::Avx512Vnni];
    let mut samples = [Vec::new(), Vec::new()];
    // About 0.4 G multiply-adds per level: 400 passes over the small shapes, 5 over a 7B
    // feed-forward matrix.
    let reps = (400_000_000 / (rows * cols)).clamp(5, 400);
    for _ in 0..reps {
        for k in 0..2 {
            let t = Instant::now();
            for (r, o) in outs[k].iter_mut().enumerate() {
                let row = &w[r * rb..(r + 1) * rb];
                *o = hearth_kernels::testing::vec_dot_at(levels[k], ty, cols, row, &xq)
                    .expect("legacy or K-quant type on a supported level");
            }
            samples[k].push(t.elapsed());
        }
    }
    let same = outs[0]
        .iter()
        .zip(&outs[1])
        .all(|(a, b)| a.to_bits() == b.to_bits());
    let [a, v] = samples.map(|mut s| {
        s.sort();
        (s[0], s[s.len() / 2])
    });
    println!(
        "vec_dot {:<5} {rows:>5}x{cols:<5} 1 token: AVX2 min {:>9.1?} med {:>9.1?}  \
         VNNI min {:>9.1?} med {:>9.1?}  speed-up min {:.2}x med {:.2}x  bits {}",
        ty.name(),
        a.0,
        a.1,
        v.0,
        v.1,
        a.0.as_secs_f64() / v.0.as_secs_f64(),
        a.1.as_secs_f64() / v.1.as_secs_f64(),
        if same { "equal" } else { "DIFFER" }
    );
}

fn bench_matmul(pool: &ThreadPool, ty: GgmlType, rows: usize, cols: usize, tokens: usize) {
    let act = activation_type(ty).expect("supported");
    let w = weights(ty, rows, cols);
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
    if std::env::args().nth(2).as_deref() == Some("levels") {
        if !hearth_kernels::simd::supported(Level::Avx512Vnni) {
            println!("no AVX-512 VNNI on this CPU: nothing to compare");
            return;
        }
        use GgmlType::*;
        // The legacy shapes of the `tiles` section.
        let shapes = [
            (Q4_1, 576, 576),
            (Q4_1, 1536, 576),
            (Q4_1, 576, 1536),
            (Q4_0, 1536, 576),
            (Q8_0, 1536, 576),
            (Q5_0, 1024, 640),
            (Q5_0, 2048, 640),
            (Q8_0, 256, 640),
            (Q4_K, 640, 1024),
            (Q4_K, 640, 2048),
            (Q5_K, 640, 2048),
            (Q6_K, 640, 2048),
        ];
        for (ty, rows, cols) in shapes {
            for tokens in [7, 64] {
                bench_levels(ty, rows, cols, tokens);
            }
        }
        for ty in [Q4_0, Q4_1, Q5_0, Q5_1, Q8_0] {
            bench_levels_vec_dot(ty, 1536, 576);
        }
        // K-quant decode shapes (rows x row length): a 7B model's 3584-element rows (q/o
        // projection, and 512 rows that stay in cache) and 18944-element rows (down
        // projection), Gemma 3 270M's 1024- and 2048-element rows (its 640-element rows are not
        // K-quants: 640 is not a multiple of 256).
        for ty in [Q4_K, Q5_K, Q6_K] {
            for (rows, cols) in [
                (512, 3584),
                (3584, 3584),
                (3584, 18944),
                (640, 1024),
                (640, 2048),
            ] {
                bench_levels_vec_dot(ty, rows, cols);
            }
        }
        return;
    }
    if std::env::args().nth(2).as_deref() == Some("tiles") {
        let pool = ThreadPool::new(threads);
        use GgmlType::*;
        // (type, rows, cols): SmolLM2-135M Q4_1 (+ its Q4_0 / Q8_0 requantizations), then
        // Gemma-3-270M Q4_K_M's Q5_0, Q8_0, Q4_K and Q6_K projections.
        let shapes = [
            (Q4_1, 192, 576),
            (Q4_1, 576, 576),
            (Q4_1, 1536, 576),
            (Q4_1, 576, 1536),
            (Q4_0, 1536, 576),
            (Q8_0, 1536, 576),
            (Q5_0, 256, 640),
            (Q5_0, 1024, 640),
            (Q5_0, 2048, 640),
            (Q8_0, 256, 640),
            (Q4_K, 640, 1024),
            (Q4_K, 640, 2048),
            (Q6_K, 640, 2048),
            (Q5_K, 640, 2048),
        ];
        for (ty, rows, cols) in shapes {
            for tokens in [7, 64] {
                bench_tiles(&pool, ty, rows, cols, tokens);
            }
        }
        return;
    }
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
