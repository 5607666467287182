//! The workload of `scripts/insn-count`: one kernel on one SIMD level, repeated, so that an
//! instruction counter around the whole process (a qemu TCG plugin) gives instructions per
//! block as the difference between two repetition counts (setup cancels out).
//!
//! ```text
//! insn-count LEVEL KIND TYPE REPS
//!   LEVEL  scalar | avx2 | vnni | neon | dotprod | i8mm
//!   KIND   dot     one `vec_dot` over a row of BLOCKS blocks of TYPE
//!          packed  one token through a packed group of 8 rows of BLOCKS blocks (the decode
//!                  kernel), counted per row and block
//!   TYPE   q4_0 | q4_1 | q5_0 | q5_1 | q8_0 | q2_k | q3_k | q4_k | q5_k | q6_k | f16 | bf16
//! ```
//!
//! It prints the number of blocks one repetition covers; a level this CPU lacks is an error.

use std::hint::black_box;

use hearth_kernels::simd::{supported, Level};
use hearth_kernels::testing::{packed_matmul_at, vec_dot_at};
use hearth_kernels::{activation_type, quantize_row, row_bytes, GgmlType, ThreadPool};

/// Elements per row: 32 blocks of 256 (or 256 of 32), like a small model's hidden size.
const COLS: usize = 8192;

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

fn quantized(ty: GgmlType, rows: usize, seed: u64) -> Vec<u8> {
    let src = values(rows * COLS, seed);
    let rb = row_bytes(ty, COLS);
    let mut out = vec![0u8; rows * rb];
    for (r, dst) in out.chunks_exact_mut(rb).enumerate() {
        quantize_row(ty, &src[r * COLS..(r + 1) * COLS], dst).expect("quantize");
    }
    out
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [level, kind, ty, reps] = args.as_slice() else {
        eprintln!("usage: insn-count LEVEL dot|packed TYPE REPS");
        std::process::exit(2);
    };
    let level = match level.as_str() {
        "scalar" => Level::Scalar,
        "avx2" => Level::Avx2,
        "vnni" => Level::Avx512Vnni,
        "neon" => Level::Neon,
        "dotprod" => Level::NeonDot,
        "i8mm" => Level::NeonI8mm,
        other => panic!("unknown level {other}"),
    };
    assert!(supported(level), "this CPU lacks {level:?}");
    let ty = match ty.to_ascii_uppercase().as_str() {
        "Q4_0" => GgmlType::Q4_0,
        "Q4_1" => GgmlType::Q4_1,
        "Q5_0" => GgmlType::Q5_0,
        "Q5_1" => GgmlType::Q5_1,
        "Q8_0" => GgmlType::Q8_0,
        "Q2_K" => GgmlType::Q2_K,
        "Q3_K" => GgmlType::Q3_K,
        "Q4_K" => GgmlType::Q4_K,
        "Q5_K" => GgmlType::Q5_K,
        "Q6_K" => GgmlType::Q6_K,
        "F16" => GgmlType::F16,
        "BF16" => GgmlType::BF16,
        other => panic!("unknown type {other}"),
    };
    let reps: usize = reps.parse().expect("REPS");
    let act = activation_type(ty).expect("activation type");
    let x = quantized(act, 1, 2);
    let blocks = COLS / ty.block_size();
    match kind.as_str() {
        "dot" => {
            let w = quantized(ty, 1, 1);
            let mut sum = 0.0;
            for _ in 0..reps {
                sum += vec_dot_at(level, ty, COLS, black_box(&w), black_box(&x)).expect("dot");
            }
            black_box(sum);
            println!("{blocks}");
        }
        "packed" => {
            const ROWS: usize = 8;
            let w = quantized(ty, ROWS, 1);
            let mut packed = vec![0u8; w.len()];
            hearth_kernels::packed::pack_into(ty, ROWS, COLS, &w, &mut packed).expect("pack");
            let pool = ThreadPool::new(1);
            let mut out = [0f32; ROWS];
            for _ in 0..reps {
                let x = black_box(&x);
                assert!(packed_matmul_at(
                    level, &pool, ty, &packed, ROWS, COLS, x, 1, &mut out
                ));
                black_box(&out);
            }
            println!("{}", ROWS * blocks);
        }
        other => panic!("unknown kind {other}"),
    }
}
