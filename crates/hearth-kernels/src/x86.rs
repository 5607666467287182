//! The x86-64 kernels: AVX2 (+FMA, F16C), and AVX-512 VNNI (with VL and BW) where a format's
//! integer sums gain from it. One file per format family; within a file the two levels are one
//! generic body compiled twice (the `IntDot` / `ScaleAcc` / `Step` traits), so they give the same
//! bits as each other and as the scalar reference in `formats`. Only `dispatch` calls in here,
//! after checking the level.

pub(crate) mod exp;
pub(crate) mod float;
pub(crate) mod iq23;
pub(crate) mod iq_tile;
pub(crate) mod iquants;
pub(crate) mod kquants;
pub(crate) mod kquants_tile;
pub(crate) mod legacy;
pub(crate) mod legacy_tile;
pub(crate) mod packed_kquants;
pub(crate) mod packed_legacy;
pub(crate) mod read;
