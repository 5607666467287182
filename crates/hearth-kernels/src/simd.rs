//! Run-time SIMD level (being written).

/// The instruction set the kernels use, chosen once per process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Scalar,
    Avx2,
}

/// The level in force for this process.
pub fn level() -> Level {
    Level::Scalar
}
