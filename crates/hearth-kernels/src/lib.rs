//! Hearth's compute kernels: block formats, dequantization, dot products, the matmul that
//! every projection runs through, and the thread pool.
//!
//! # Numerics contract (batch invariance)
//! Every output element of [`matmul()`] on a row-major matrix equals one call of [`vec_dot`]
//! on one weight row and one quantized activation row, and on a [packed] matrix the packed
//! scalar reference of the pair (see the [`packed`] module docs), bit for bit: for batches the
//! multi-token tile kernels compute it with exactly `vec_dot`'s operations in `vec_dot`'s order
//! (see the [`matmul`](mod@matmul) module docs). The SIMD level is chosen once per process
//! ([`simd::level`]), so a given (row, token) pair produces the same bits whatever the batch
//! size, the token's place in the batch or the thread count. Threads split output rows, never
//! the reduction: the rows are cut into chunks that threads claim as they come free
//! ([`ThreadPool::run_chunks`]), so which thread computes a row varies from call to call and
//! never matters.
//!
//! # Layout: by instruction set, imports pointing down
//! - `types` (errors, [`QMatrix`], the multi-token operands `Tile` and `SharedOut`) and
//!   [`simd`] (the level, detected once at run time: AVX2+FMA, optionally AVX-512 VNNI, on
//!   x86-64; NEON, optionally dotprod and i8mm, on aarch64; scalar everywhere) import nothing above them.
//! - `formats/`: each format's block layout and portable scalar reference, which defines the
//!   bits every instruction set must reproduce: `legacy` (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 and the
//!   Q8_0 / Q8_1 activations), `kquants` (Q2_K..Q6_K and Q8_K), `iquants` (IQ4_NL, IQ4_XS and
//!   MXFP4, the table-coded 4-bit formats), `iq23` (IQ2_XXS, IQ2_XS, IQ3_XXS, IQ3_S, on the
//!   lattices of `iqgrids`, generated from the `gguf` package's constants), `float` (F32, F16, BF16 and the
//!   attention helpers), `exp` (the exponential), `packed/` (groups of eight interleaved rows,
//!   for the legacy and K-quant formats), and [`math`], the elementary functions the rest of the
//!   forward pass needs, Hearth's own so that every platform rounds alike.
//! - `x86/`: the AVX2 and AVX-512 VNNI kernels of every format, the single-token ones
//!   (`legacy`, `kquants`, `iquants`, `iq23`, `float`, `exp`), the multi-token tiles (`legacy_tile`,
//!   `kquants_tile`) and the packed ones (`packed_legacy`, `packed_kquants`).
//! - `arm/`: the same kernels for aarch64, on NEON with the dot-product and i8mm extensions
//!   where the CPU has them (`ext` wraps those two instructions).
//! - `dispatch`: the one place that maps a level to kernels, including the public row entry
//!   points ([`vec_dot`], [`quantize_row`], [`dequantize_row`]) and the attention and
//!   exponential helpers, which are such mappings.
//! - The drivers: [`matmul`](mod@matmul) and [`packed`] (threads, cache blocking, packing), and
//!   [`pool`], the persistent thread pool.
//! - `testing` (hidden): per-level entry points for the tests and benchmarks, not API.

#[cfg(target_arch = "aarch64")]
mod arm;
mod dispatch;
mod formats;
pub mod matmul;
pub mod packed;
pub mod pool;
pub mod simd;
#[doc(hidden)]
pub mod testing;
mod types;
#[cfg(target_arch = "x86_64")]
mod x86;

pub use dispatch::{axpy_keys, axpy_rows, dot_f32_rows, round_to_f16};
pub use dispatch::{dequantize_row, quantize_row, vec_dot};
pub use dispatch::{exp_sub, exp_sub_rows, swiglu, xor_words};
pub use formats::exp::exp_f32;
pub use formats::math;
pub use hearth_gguf::GgmlType;
pub use matmul::{matmul, quantize_activations};
pub use pool::{physical_cores, ThreadPool};
pub use types::{activation_type, is_supported, row_bytes, Error, QMatrix, Result, SUPPORTED};
