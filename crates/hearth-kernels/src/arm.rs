//! The aarch64 kernels: NEON (Advanced SIMD, on every 64-bit ARM CPU), with the dot-product
//! (`sdot`) and int8 matrix-multiply (`smmla`) extensions where the CPU has them. One file per
//! format family, as in `x86/`; each kernel gives the same bits as the scalar reference in
//! `formats`, so an ARM machine computes what an x86 one does. Only `dispatch` calls in here,
//! after checking the level.
//!
//! NEON vectors hold four f32 where AVX2 holds eight: where a scalar reference keeps eight
//! lanes (the layout the x86 kernels set), a NEON kernel keeps two `float32x4_t` halves and
//! combines them in the reference's order.

pub(crate) mod exp;
pub(crate) mod ext;
pub(crate) mod float;
pub(crate) mod kquants;
pub(crate) mod kquants_tile;
pub(crate) mod legacy;
pub(crate) mod legacy_tile;
pub(crate) mod packed_kquants;
pub(crate) mod packed_legacy;
