//! Weights re-laid out at load in groups of eight interleaved rows ("packed"), and the one
//! kernel family that serves both decode and prompt processing on them.
//!
//! # Why
//! On row-major weights every (row, token, block) pays its own float work: the block's integer
//! dot product is reduced across SIMD lanes, converted, scaled and accumulated per row. Packed,
//! the eight rows of a group sit side by side inside each block: one 32-byte load holds four
//! quant bytes of each of the eight rows, a broadcast of the matching four activation bytes and
//! one `vpdpbusd` (or `maddubs` + `madd`) add four products to each row's own i32 lane. After
//! the block, lane `r` already holds row `r`'s exact integer sum, so the conversion, the scale
//! multiply and the FMA run once for eight rows, and nothing is reduced horizontally.
//!
//! # Memory
//! A packed matrix takes exactly the bytes of its rows. [`pack_into`] writes it to a buffer of
//! the caller's; a model packs one tensor at a time and releases the file's pages of each
//! behind it, so packing needs no second copy of the weights and has no peak beyond one
//! tensor.
//!
//! # Numerics (batch invariance)
//! Each output is defined by a scalar reference per type (`formats::packed::legacy::dot_ref`,
//! `formats::packed::kquants::dot_ref`): exact i32 sums per block, then for each block in order one f32 FMA of
//! the converted sum with `d_w · d_x` (plus the formats' offset terms, also FMAs in a fixed
//! order). The SIMD kernels perform exactly those float operations in that order, lane by lane,
//! so every output's bits depend only on its weight row and activation row: not on the number
//! of tokens, their order, the thread count or the SIMD level. Decode and prompt processing
//! run the same kernels. The results differ in the last bits from the row-major `vec_dot`
//! (another summation order), which is why a tensor is either packed or not for the life of
//! the model, never both.

use crate::dispatch::dequantize_row;
use crate::formats::packed::{dot_ref, kquants, legacy, MAX_BLOCKS};
use crate::pool::ThreadPool;
use crate::simd::Level;
use crate::types::{activation_type, row_bytes, Error, QMatrix, Result, SharedOut, Tile};
use hearth_gguf::GgmlType;

pub use crate::formats::packed::GROUP;

/// Weight bytes a thread works through with one token tile before moving to the next tile,
/// so the tiles after the first find them in L2.
const CHUNK_BYTES: usize = 128 * 1024;

/// Whether a `rows` × `cols` matrix of `ty` can be packed: a type with packed kernels, whole
/// groups of rows and not too many blocks per row.
pub fn packable(ty: GgmlType, rows: usize, cols: usize) -> bool {
    let block = ty.block_size();
    (legacy::supports(ty) || kquants::supports(ty))
        && rows > 0
        && rows.is_multiple_of(GROUP)
        && cols > 0
        && cols.is_multiple_of(block)
        && cols / block <= MAX_BLOCKS
}

/// Whether packing pays off on this process's SIMD level: it has packed kernels. The portable
/// level would run the scalar reference, slower than its row-major kernels, so there a model
/// keeps the row layout.
pub fn has_kernels() -> bool {
    let level = crate::simd::level();
    crate::dispatch::packed_kernel(level, GgmlType::Q4_0).is_some()
        && crate::dispatch::packed_kernel(level, GgmlType::Q4_K).is_some()
}

/// Packs `src` (`rows` row-major rows of `cols` elements of `ty`) into `dst` (the same
/// size).
pub fn pack_into(ty: GgmlType, rows: usize, cols: usize, src: &[u8], dst: &mut [u8]) -> Result<()> {
    check_packable(ty, rows, cols, src.len())?;
    check_packable(ty, rows, cols, dst.len())?;
    let nb = cols / ty.block_size();
    let gb = GROUP * row_bytes(ty, cols);
    for (s, d) in src.chunks_exact(gb).zip(dst.chunks_exact_mut(gb)) {
        if legacy::supports(ty) {
            legacy::pack_group(ty, nb, s, d);
        } else {
            kquants::pack_group(ty, nb, s, d);
        }
    }
    Ok(())
}

// `QMatrix` lives with the shared types; the constructor and the row decoder that need the
// packed layout live here, so the shared types import nothing above them.
impl<'a> QMatrix<'a> {
    /// A view of a matrix [packed](crate::packed::pack_into), checking its shape as
    /// [`QMatrix::new`] does and that it is [packable](crate::packed::packable).
    pub fn packed(ty: GgmlType, data: &'a [u8], rows: usize, cols: usize) -> Result<QMatrix<'a>> {
        if !crate::packed::packable(ty, rows, cols) {
            return Err(Error::NotPackable { ty, rows, cols });
        }
        let m = QMatrix::new(ty, data, rows, cols)?;
        Ok(QMatrix { packed: true, ..m })
    }

    /// Decodes row `r` to f32 into `out` (`cols` values); a packed row is first gathered
    /// into `scratch` in its original encoding.
    ///
    /// # Panics
    /// If `r` is not a row of the matrix.
    pub fn dequantize_row(&self, r: usize, scratch: &mut Vec<u8>, out: &mut [f32]) -> Result<()> {
        let rb = self.row_bytes();
        assert!(r < self.rows, "row {r} of a {}-row matrix", self.rows);
        if self.packed {
            scratch.resize(rb, 0);
            crate::packed::unpack_row(self.ty, self.cols, self.data, r, scratch);
            dequantize_row(self.ty, scratch, out)
        } else {
            dequantize_row(self.ty, &self.data[r * rb..(r + 1) * rb], out)
        }
    }
}

/// Writes row `r` of a packed matrix (`data`, `cols` elements of `ty` per row) back in its
/// original GGUF encoding into `out` (`row_bytes(ty, cols)` bytes): for embedding lookups and
/// the exact reference mode.
///
/// # Panics
/// If `r` is not a row of `data` or `out` has the wrong size.
pub fn unpack_row(ty: GgmlType, cols: usize, data: &[u8], r: usize, out: &mut [u8]) {
    let nb = cols / ty.block_size();
    let rb = row_bytes(ty, cols);
    assert_eq!(out.len(), rb, "unpack_row: output bytes for {cols} {ty}");
    let gb = GROUP * rb;
    let (g, lane) = (r / GROUP, r % GROUP);
    let group = &data[g * gb..(g + 1) * gb];
    if legacy::supports(ty) {
        legacy::unpack_row(ty, nb, group, lane, out);
    } else {
        kquants::unpack_row(ty, nb, group, lane, out);
    }
}

pub(crate) fn check_packable(ty: GgmlType, rows: usize, cols: usize, len: usize) -> Result<()> {
    if !packable(ty, rows, cols) {
        return Err(Error::NotPackable { ty, rows, cols });
    }
    let want = rows * row_bytes(ty, cols);
    if len != want {
        return Err(Error::BadBuffer {
            ty,
            n: rows * cols,
            got: len,
            want,
        });
    }
    Ok(())
}

/// [`crate::matmul`] on a packed matrix: threads claim chunks of whole groups.
pub(crate) fn matmul_packed(
    pool: &ThreadPool,
    w: &QMatrix<'_>,
    xq: &[u8],
    n_tokens: usize,
    out: &mut [f32],
) {
    let level = crate::simd::level();
    run(level, pool, w, xq, n_tokens, out);
}

pub(crate) fn run(
    level: Level,
    pool: &ThreadPool,
    w: &QMatrix<'_>,
    xq: &[u8],
    n_tokens: usize,
    out: &mut [f32],
) {
    // `QMatrix`'s fields are public, so a matrix marked packed may not be one the kernels can
    // read: check it here, once per matmul, since the kernels' unchecked loads rely on it.
    if let Err(e) = check_packable(w.ty, w.rows, w.cols, w.data.len()) {
        panic!("matmul on a packed matrix: {e}");
    }
    let act = activation_type(w.ty).unwrap_or_else(|e| panic!("matmul: {e}"));
    let xrb = row_bytes(act, w.cols);
    let gb = GROUP * w.row_bytes();
    let groups = w.rows / GROUP;
    let nb = w.cols / w.ty.block_size();
    let chunk = (CHUNK_BYTES / gb).max(1);
    let kernel = crate::dispatch::packed_kernel(level, w.ty);
    let out_ptr = SharedOut(out.as_mut_ptr());
    let n_chunks = crate::matmul::chunks_for(pool, groups);
    pool.run_chunks(n_chunks, |_, c| {
        let (g0, g1) = (c * groups / n_chunks, (c + 1) * groups / n_chunks);
        let out_ptr = &out_ptr;
        let mut c0 = g0;
        while c0 < g1 {
            let c1 = (c0 + chunk).min(g1);
            match kernel {
                Some(kernel) => {
                    let t = Tile {
                        w: w.data[c0 * gb..].as_ptr(),
                        wrb: gb,
                        x: xq.as_ptr(),
                        xrb,
                        out: out_ptr.0.wrapping_add(c0 * GROUP),
                        ostride: w.rows,
                    };
                    // SAFETY: `kernel` was chosen for `w.ty` at the process's level, so the
                    // CPU has its features. Groups `c0..c1` lie inside `w.data` (its length
                    // is `rows * row_bytes`, checked by the caller), the `n_tokens`
                    // activation rows inside `xq`, and outputs `(8 g + r, t)` for `g` in
                    // `c0..c1` inside `out`; they belong to this chunk alone, since chunks'
                    // ranges of groups are disjoint and each chunk runs once, and
                    // `run_chunks` returns only when every chunk is done.
                    unsafe { kernel(w.ty, nb, &t, c1 - c0, n_tokens) };
                }
                None => {
                    for g in c0..c1 {
                        let group = &w.data[g * gb..(g + 1) * gb];
                        for t in 0..n_tokens {
                            let v = dot_ref(w.ty, nb, group, &xq[t * xrb..(t + 1) * xrb]);
                            for (r, v) in v.into_iter().enumerate() {
                                // SAFETY: `t < n_tokens` and `8 g + r < rows`, inside `out`;
                                // disjoint per chunk as above.
                                unsafe { *out_ptr.0.add(t * w.rows + g * GROUP + r) = v };
                            }
                        }
                    }
                }
            }
            c0 = c1;
        }
    });
}
