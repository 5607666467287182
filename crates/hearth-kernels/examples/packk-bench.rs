//! Packed Q4_K / Q6_K against row-major, one thread, per SIMD level.
//!
//! ```text
//! cargo run --release -p hearth-kernels --example packk-bench
//! ```
//!
//! For each shape and token count (1: decode, 64: a prompt tile) it times
//! `packed::matmul_at` on the packed matrix and the row-major kernels on the same rows
//! (`simd::vec_dot_at` per row for one token, `matmul::dot_tile_at` for 64), at the AVX2 and,
//! where the CPU has it, the AVX-512 VNNI level, alternating so that load from other
//! processes hits both alike. It prints the fastest of the runs as nanoseconds per (8-row
//! group × 256-value super-block × token), the figure least disturbed on a shared machine.
//! The 256 × 3584 matrix stays in L2 (kernel speed); the 4096 × 4096 one does not (decode is
//! then bounded by memory bandwidth as much as by the kernel).

use hearth_kernels::simd::{detect, Level};
use hearth_kernels::testing;
use hearth_kernels::testing::dot_tile_at;
use hearth_kernels::testing::vec_dot_at;
use hearth_kernels::{packed, quantize_row, row_bytes, GgmlType, ThreadPool};
use std::time::Instant;

/// Deterministic pseudo-random values in [-1, 1) (xorshift; no `rand` needed).
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

/// `n` rows of `cols` values quantized as `ty`.
fn quantized(ty: GgmlType, n: usize, cols: usize, seed: u64) -> Vec<u8> {
    let rb = row_bytes(ty, cols);
    let mut out = vec![0u8; n * rb];
    let v = values(n * cols, seed);
    for (src, dst) in v.chunks_exact(cols).zip(out.chunks_exact_mut(rb)) {
        quantize_row(ty, src, dst).expect("row sizes match the shape");
    }
    out
}

/// Seconds per call of `f`: the fastest of `runs` timings, each repeating `f` `reps` times.
fn best(runs: usize, reps: usize, f: &mut dyn FnMut()) -> f64 {
    (0..runs)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..reps {
                f();
            }
            t.elapsed().as_secs_f64() / reps as f64
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    if !detect().has_avx2() {
        println!("no AVX2 on this CPU: the packed K-quant kernels are AVX2 / AVX-512 VNNI only");
        return;
    }
    let mut levels = vec![Level::Avx2];
    if detect() == Level::Avx512Vnni {
        levels.push(Level::Avx512Vnni);
    }
    let pool = ThreadPool::new(1);
    println!("ns per (8-row group x block x token), one thread, fastest run");
    for (rows, cols) in [(256, 3584), (4096, 4096)] {
        for ty in [GgmlType::Q4_K, GgmlType::Q6_K] {
            let w = quantized(ty, rows, cols, 1);
            let mut wp = vec![0u8; w.len()];
            packed::pack_into(ty, rows, cols, &w, &mut wp).expect("a packable shape");
            let rb = row_bytes(ty, cols);
            for tokens in [1usize, 64] {
                let xq = quantized(GgmlType::Q8_K, tokens, cols, 2);
                let mut out = vec![0f32; rows * tokens];
                let units = (rows / 8 * (cols / 256) * tokens) as f64;
                // About 20 ms per timing.
                let reps = ((20e6 / (units * 30.0)) as usize).max(1);
                if tokens == 1 && rows <= 256 {
                    // The portable level runs the scalar reference `dot_ref`.
                    let mut run_ref = || {
                        let (n, x) = (tokens, &xq[..]);
                        testing::packed_matmul_at(
                            Level::Scalar,
                            &pool,
                            ty,
                            &wp,
                            rows,
                            cols,
                            x,
                            n,
                            &mut out,
                        );
                    };
                    let t = best(3, 1, &mut run_ref);
                    println!(
                        "{ty} {rows:>4} x {cols} {tokens:>2} tok Scalar: packed {:6.1}",
                        t * 1e9 / units
                    );
                }
                for &level in &levels {
                    let mut run_packed = || {
                        let (n, x) = (tokens, &xq[..]);
                        testing::packed_matmul_at(
                            level, &pool, ty, &wp, rows, cols, x, n, &mut out,
                        );
                    };
                    let mut out2 = vec![0f32; rows * tokens];
                    let mut run_rows = || {
                        if tokens == 1 {
                            for (r, o) in w.chunks_exact(rb).zip(out2.iter_mut()) {
                                *o = vec_dot_at(level, ty, cols, r, &xq).unwrap_or(f32::NAN);
                            }
                        } else {
                            dot_tile_at(level, ty, cols, &w, rows, &xq, tokens, &mut out2);
                        }
                    };
                    let (mut tp, mut tr) = (f64::INFINITY, f64::INFINITY);
                    for _ in 0..5 {
                        tp = tp.min(best(1, reps, &mut run_packed));
                        tr = tr.min(best(1, reps, &mut run_rows));
                    }
                    println!(
                        "{ty} {rows:>4} x {cols} {tokens:>2} tok {level:?}: packed {:6.1}  \
                         row-major {:6.1}  ({:.2}x)",
                        tp * 1e9 / units,
                        tr * 1e9 / units,
                        tr / tp
                    );
                }
            }
        }
    }
}
