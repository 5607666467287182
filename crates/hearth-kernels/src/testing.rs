//! Entry points for tests and benchmarks, not part of the API: each runs one kernel family on an
//! explicit SIMD level (or a multi-token tile on its own), so the integration tests can compare
//! every level with the scalar reference bit for bit in one process. Hidden from the docs;
//! names and signatures may change with the tests.

use crate::dispatch::quantize_row;
use crate::packed::GROUP;
use crate::pool::ThreadPool;
use crate::simd::Level;
use crate::types::{activation_type, row_bytes, QMatrix, Tile};
use hearth_gguf::GgmlType;

/// [`crate::vec_dot`] on an explicit level, for comparing the SIMD kernels with the portable
/// ones in one process. Covers the float, legacy, K-quant and i-quant block types; returns `None` for
/// other types, or when this CPU does not [support](crate::simd::supported) `level`.
///
/// # Panics
/// If `w` or `x` is not exactly one row of `n` elements of its type (this is a test and
/// benchmark helper, so sizes are checked even in release builds).
pub fn vec_dot_at(level: Level, weight: GgmlType, n: usize, w: &[u8], x: &[u8]) -> Option<f32> {
    use GgmlType::*;
    if !crate::simd::supported(level) {
        return None;
    }
    assert_eq!(w.len(), row_bytes(weight, n), "weight row size");
    let act = activation_type(weight).ok()?;
    assert_eq!(x.len(), row_bytes(act, n), "activation row size");
    match weight {
        F32 | F16 | BF16 => Some(crate::dispatch::float_dot(level, weight, n, w, x)),
        Q4_0 | Q4_1 | Q5_0 | Q5_1 | Q8_0 => {
            Some(crate::dispatch::legacy_dot(level, weight, n, w, x))
        }
        Q2_K | Q3_K | Q4_K | Q5_K | Q6_K => {
            Some(crate::dispatch::kquant_dot(level, weight, n, w, x))
        }
        IQ4_NL | IQ4_XS | MXFP4 => Some(crate::dispatch::iquant_dot(level, weight, n, w, x)),
        IQ2_XXS | IQ2_XS | IQ3_XXS | IQ3_S => {
            Some(crate::dispatch::iq23_dot(level, weight, n, w, x))
        }
        _ => None,
    }
}

/// [`crate::quantize_row`] on an explicit level (the activation formats Q8_0 / Q8_1 have
/// SIMD encoders that must give the same bytes as the portable ones). Other types ignore the
/// level. Returns `None` when this CPU does not [support](crate::simd::supported) `level`.
pub fn quantize_row_at(
    level: Level,
    ty: GgmlType,
    src: &[f32],
    dst: &mut [u8],
) -> Option<crate::Result<()>> {
    use GgmlType::*;
    if !crate::simd::supported(level) {
        return None;
    }
    match ty {
        Q8_0 | Q8_1 => {
            let block = ty.block_size();
            if !src.len().is_multiple_of(block) || dst.len() != row_bytes(ty, src.len()) {
                return Some(quantize_row(ty, src, dst)); // reports the size error
            }
            Some(crate::dispatch::legacy_quantize(level, ty, src, dst))
        }
        _ => Some(quantize_row(ty, src, dst)),
    }
}

/// `out[t * rows + r]` = the product of weight row `r` of `w` (`rows` rows of `n` elements of
/// `ty`) with activation row `t` of `x` (`tokens` rows encoded as `activation_type(ty)`),
/// computed by the multi-token tile kernel [`crate::matmul()`] uses for batches. Returns `false`, and
/// writes nothing, when `ty` has no tile kernel at the process's SIMD level. Every element
/// equals [`crate::vec_dot`] on its pair bit for bit; this entry point exists to test exactly that.
///
/// # Panics
/// If a buffer does not have the size the shapes give (or `ty` is unsupported).
pub fn dot_tile(
    ty: GgmlType,
    n: usize,
    w: &[u8],
    rows: usize,
    x: &[u8],
    tokens: usize,
    out: &mut [f32],
) -> bool {
    dot_tile_at(crate::simd::level(), ty, n, w, rows, x, tokens, out)
}

/// [`dot_tile`] on an explicit SIMD level, for comparing the levels' tiles in one process
/// (as [`vec_dot_at`] does for `vec_dot`). Returns `false`, and writes nothing,
/// when `ty` has no tile kernel at `level` or this CPU does not
/// [support](crate::simd::supported) `level`.
///
/// # Panics
/// As [`dot_tile`].
#[allow(clippy::too_many_arguments)]
pub fn dot_tile_at(
    level: Level,
    ty: GgmlType,
    n: usize,
    w: &[u8],
    rows: usize,
    x: &[u8],
    tokens: usize,
    out: &mut [f32],
) -> bool {
    let act = activation_type(ty).unwrap_or_else(|e| panic!("dot_tile: {e}"));
    let (wrb, xrb) = (row_bytes(ty, n), row_bytes(act, n));
    assert!(
        n.is_multiple_of(ty.block_size()),
        "dot_tile: {n} elements of {ty}"
    );
    assert_eq!(
        w.len(),
        rows * wrb,
        "dot_tile: weight bytes for {rows} rows"
    );
    assert_eq!(
        x.len(),
        tokens * xrb,
        "dot_tile: activation bytes for {tokens} tokens"
    );
    assert_eq!(out.len(), rows * tokens, "dot_tile: output length");
    if !crate::simd::supported(level) {
        return false;
    }
    let Some(kernel) = crate::dispatch::tile_kernel(level, ty) else {
        return false;
    };
    let t = Tile {
        w: w.as_ptr(),
        wrb,
        x: x.as_ptr(),
        xrb,
        out: out.as_mut_ptr(),
        ostride: rows,
    };
    // SAFETY: the kernel matches `level`, which this CPU supports (checked above); the
    // buffers hold exactly `rows` and `tokens` whole rows and `rows * tokens` outputs (asserted
    // above), and `out` is borrowed mutably for the call.
    unsafe { kernel(ty, n / ty.block_size(), &t, rows, tokens) };
    true
}

/// [`crate::matmul()`] of a packed matrix on an explicit SIMD level, for comparing the levels'
/// kernels with the scalar reference in one process. `data` is packed ([`crate::packed::pack_into`]); returns
/// `false`, writing nothing, when this CPU does not [support](crate::simd::supported) `level`.
///
/// # Panics
/// If a buffer's size does not match the shapes, or the shape is not [`packable`](crate::packed::packable).
#[allow(clippy::too_many_arguments)]
pub fn packed_matmul_at(
    level: Level,
    pool: &ThreadPool,
    ty: GgmlType,
    data: &[u8],
    rows: usize,
    cols: usize,
    xq: &[u8],
    n_tokens: usize,
    out: &mut [f32],
) -> bool {
    if let Err(e) = crate::packed::check_packable(ty, rows, cols, data.len()) {
        panic!("testing::packed_matmul_at: {e}");
    }
    let act = activation_type(ty).unwrap_or_else(|e| panic!("testing::packed_matmul_at: {e}"));
    assert_eq!(
        xq.len(),
        n_tokens * row_bytes(act, cols),
        "activation bytes"
    );
    assert_eq!(out.len(), n_tokens * rows, "output length");
    if !crate::simd::supported(level) {
        return false;
    }
    let w = QMatrix {
        ty,
        data,
        rows,
        cols,
        packed: true,
    };
    if n_tokens > 0 {
        crate::packed::run(level, pool, &w, xq, n_tokens, out);
    }
    true
}

/// The scalar reference output of row `r` of a packed matrix against one activation row `x`:
/// the definition every kernel level must equal bit for bit.
///
/// # Panics
/// If the sizes do not match or the shape is not [`packable`](crate::packed::packable).
pub fn packed_dot_reference(ty: GgmlType, cols: usize, data: &[u8], r: usize, x: &[u8]) -> f32 {
    let rb = row_bytes(ty, cols);
    let rows = data.len() / rb;
    if let Err(e) = crate::packed::check_packable(ty, rows, cols, data.len()) {
        panic!("testing::packed_dot_reference: {e}");
    }
    let act = activation_type(ty).unwrap_or_else(|e| panic!("testing::packed_dot_reference: {e}"));
    assert_eq!(x.len(), row_bytes(act, cols), "activation bytes");
    let g = r / GROUP;
    let group = &data[g * GROUP * rb..(g + 1) * GROUP * rb];
    crate::formats::packed::dot_ref(ty, cols / ty.block_size(), group, x)[r % GROUP]
}

/// [`crate::xor_words`] on an explicit level; `None` when this CPU does not
/// [support](crate::simd::supported) `level`.
pub fn xor_words_at(level: Level, buf: &[u8]) -> Option<u64> {
    crate::simd::supported(level).then(|| crate::dispatch::xor_words_at(level, buf))
}

/// The portable reference of [`crate::xor_words`].
pub fn xor_words_reference(buf: &[u8]) -> u64 {
    crate::formats::read::xor_words(buf)
}
