//! Each block format's layout and portable (scalar) reference: what the bytes mean and the
//! exact operations every instruction set's kernels must reproduce bit for bit. Nothing here
//! depends on an instruction set; the SIMD kernels live in one folder per set (`x86/`), and
//! `dispatch` picks between them and these references.

pub(crate) mod exp;
pub(crate) mod float;
pub(crate) mod iq23;
pub(crate) mod iqgrids;
pub(crate) mod iquants;
pub(crate) mod kquants;
pub(crate) mod legacy;
pub mod math;
pub(crate) mod packed;
pub(crate) mod read;
