//! Weights re-laid out in groups of eight interleaved rows ("packed"): what the bytes mean
//! and the scalar reference that defines every packed kernel's bits. One file per format
//! family; the kernels are in `x86::packed_legacy` and `x86::packed_kquants` (and their
//! `arm::` namesakes), the driver (packing a matrix, threads, choosing the kernel) in
//! `crate::packed`.

pub(crate) mod kquants;
pub(crate) mod legacy;

use hearth_gguf::GgmlType;

/// Rows per packed group.
pub const GROUP: usize = 8;

/// Most blocks per row a packed tensor may have (the kernels keep per-block activation terms
/// of a token tile on the stack). Longer rows stay row-major.
pub(crate) const MAX_BLOCKS: usize = 1024;

/// The scalar reference for one group and one activation row.
pub(crate) fn dot_ref(ty: GgmlType, nb: usize, group: &[u8], x: &[u8]) -> [f32; GROUP] {
    if legacy::supports(ty) {
        legacy::dot_ref(ty, nb, group, x)
    } else {
        kquants::dot_ref(ty, nb, group, x)
    }
}
