//! Integration tests for `hearth-kernels` (one binary; one module per concern).

mod common;
mod contention;
mod dot;
mod fixtures;
mod float_levels;
mod iquants;
mod levels;
mod matmul;
mod packed;
mod pool;
mod quant;
mod tile;
