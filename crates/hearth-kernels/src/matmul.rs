//! Quantized matrix × activations: the one routine every projection runs through.
//!
//! `out[t][r] = vec_dot(W[r], x[t])` for weight rows `r` and activation rows `t` on row-major
//! weights. A [packed](crate::packed) matrix goes to the packed kernels instead, whose outputs
//! are defined by the packed scalar reference; everything below about tiles and `vec_dot`
//! concerns row-major weights (floats, and types or shapes that are not packable).
//!
//! # Batch invariance
//! Each output element equals one [`crate::vec_dot`] call on one weight row and one activation
//! row, bit for bit, so its bits depend on nothing but those two rows: not on how many tokens
//! are in the batch, where the token sits, or how many threads run. Threads therefore split
//! **rows** (contiguous ranges whose bounds depend only on `rows` and the thread count), never
//! the reduction over `cols`.
//!
//! # Tiles (prompt processing)
//! One token at a time, every weight block is loaded, unpacked and its scale converted once
//! per token. For batches, AVX2 tile kernels (`legacy::tile` for Q4_0/Q4_1/Q5_0/Q5_1/Q8_0:
//! 2 rows × 4 tokens; `kquants::tile` for Q4_K/Q5_K/Q6_K: 1 row × 4 tokens) unpack each weight
//! block once for all the tile's tokens. Each (row, token) pair keeps its own accumulators and
//! performs exactly the single-token kernel's integer products (exact) and float operations
//! in the same order, which is why the bits do not change; tail tokens (`n % 4`) and the odd
//! last row run as narrower tiles of the same code. [`dot_tile`] exposes the tiles so tests
//! check them against `vec_dot`. Decode (one token) keeps the single-token kernels, which
//! interleave four accumulators per row for latency and give the same bits.
//!
//! # Cache blocking
//! With many tokens, a thread walks its rows in small groups sized to stay in L1, and runs
//! every token against the group before moving on, so each weight byte comes from memory once
//! per matmul instead of once per token. Within a group the tiles walk four tokens at a time
//! over all its rows, so those tokens' activations stay in L1 too.

use crate::simd::Level;
use crate::{activation_type, row_bytes, vec_dot, Error, GgmlType, Result, ThreadPool};

/// A weight matrix in its GGUF type: `rows` rows of `cols` elements (GGUF `ne0 = cols`,
/// `ne1 = rows`), stored row-major, or `packed` in groups of eight interleaved rows
/// ([`crate::packed::pack_into`]).
#[derive(Clone, Copy, Debug)]
pub struct QMatrix<'a> {
    pub ty: GgmlType,
    pub data: &'a [u8],
    pub rows: usize,
    pub cols: usize,
    pub packed: bool,
}

impl<'a> QMatrix<'a> {
    /// A matrix view, checking that `ty` is supported, `cols` is a whole number of blocks and
    /// `data` holds exactly `rows` rows.
    pub fn new(ty: GgmlType, data: &'a [u8], rows: usize, cols: usize) -> Result<QMatrix<'a>> {
        activation_type(ty)?;
        let block = ty.block_size();
        if !cols.is_multiple_of(block) {
            return Err(Error::BadLength { ty, n: cols, block });
        }
        let want = rows * row_bytes(ty, cols);
        if data.len() != want {
            return Err(Error::BadBuffer {
                ty,
                n: rows * cols,
                got: data.len(),
                want,
            });
        }
        Ok(QMatrix {
            ty,
            data,
            rows,
            cols,
            packed: false,
        })
    }

    /// A view of a matrix [packed](crate::packed::pack_into), checking its shape as
    /// [`QMatrix::new`] does and that it is [packable](crate::packed::packable).
    pub fn packed(ty: GgmlType, data: &'a [u8], rows: usize, cols: usize) -> Result<QMatrix<'a>> {
        if !crate::packed::packable(ty, rows, cols) {
            return Err(Error::NotPackable { ty, rows, cols });
        }
        let m = QMatrix::new(ty, data, rows, cols)?;
        Ok(QMatrix { packed: true, ..m })
    }

    /// Bytes of one row.
    pub fn row_bytes(&self) -> usize {
        row_bytes(self.ty, self.cols)
    }

    /// The encoded bytes of row `r` of a row-major matrix.
    ///
    /// # Panics
    /// If the matrix is packed (its rows are interleaved; see [`QMatrix::dequantize_row`]).
    pub fn row(&self, r: usize) -> &'a [u8] {
        assert!(!self.packed, "QMatrix::row on a packed matrix");
        let rb = self.row_bytes();
        &self.data[r * rb..(r + 1) * rb]
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
            crate::dequantize_row(self.ty, scratch, out)
        } else {
            crate::dequantize_row(self.ty, &self.data[r * rb..(r + 1) * rb], out)
        }
    }
}

/// Weight bytes a thread keeps hot while it runs every token over them (half of a typical
/// 32 KB L1d, leaving room for the activation row being read).
const GROUP_BYTES: usize = 16 * 1024;

/// `out[t * w.rows + r] = vec_dot(w.row(r), xq.row(t))` for `n_tokens` activation rows `xq`
/// encoded as `activation_type(w.ty)`, each `row_bytes(act, w.cols)` long.
///
/// # Panics
/// If `w.ty` is unsupported or a buffer size does not match `w`'s shape and `n_tokens`
/// (a programming error in the caller; [`QMatrix::new`] and [`quantize_activations`] produce
/// the right sizes).
pub fn matmul(pool: &ThreadPool, w: &QMatrix<'_>, xq: &[u8], n_tokens: usize, out: &mut [f32]) {
    let act = activation_type(w.ty).unwrap_or_else(|e| panic!("matmul: {e}"));
    let wrb = w.row_bytes();
    let xrb = row_bytes(act, w.cols);
    assert_eq!(
        w.data.len(),
        w.rows * wrb,
        "matmul: weight bytes for {} x {} {}",
        w.rows,
        w.cols,
        w.ty
    );
    assert_eq!(
        xq.len(),
        n_tokens * xrb,
        "matmul: activation bytes for {n_tokens} tokens of {} {act}",
        w.cols
    );
    assert_eq!(
        out.len(),
        n_tokens * w.rows,
        "matmul: output length for {n_tokens} tokens x {} rows",
        w.rows
    );
    if n_tokens == 0 || w.rows == 0 {
        return;
    }
    if w.packed {
        return crate::packed::matmul_packed(pool, w, xq, n_tokens, out);
    }

    let rows = w.rows;
    // Even, so row pairs of the tile kernels never straddle two groups.
    let group = (GROUP_BYTES / wrb.max(1)).clamp(2, 64) & !1;
    let out_ptr = SharedOut(out.as_mut_ptr());
    // Decode (one token) keeps the single-token kernels: they interleave four accumulators
    // per row, which a one-column tile cannot, and give the same bits anyway.
    let tile = if n_tokens > 1 {
        tile_kernel(crate::simd::level(), w.ty)
    } else {
        None
    };
    let nb = w.cols / w.ty.block_size();
    pool.run(|ti, nt| {
        let (r0, r1) = (ti * rows / nt, (ti + 1) * rows / nt);
        let out_ptr = &out_ptr;
        let mut g0 = r0;
        while g0 < r1 {
            let g1 = (g0 + group).min(r1);
            if let Some(kernel) = tile {
                let t = Tile {
                    w: w.data[g0 * wrb..].as_ptr(),
                    wrb,
                    x: xq.as_ptr(),
                    xrb,
                    out: out_ptr.0.wrapping_add(g0),
                    ostride: rows,
                };
                // SAFETY: `tile_kernel` returned this kernel for `w.ty` on the process's
                // level, so the CPU has its features. Rows `g0..g1` of `w` and the
                // `n_tokens` rows of `xq` hold `nb` blocks each (lengths checked above);
                // outputs `(r, t)` for `r` in `g0..g1` are inside `out` and belong to this
                // thread alone (as in the loop below).
                unsafe { kernel(w.ty, nb, &t, g1 - g0, n_tokens) };
            } else {
                for t in 0..n_tokens {
                    let x = &xq[t * xrb..(t + 1) * xrb];
                    for r in g0..g1 {
                        let v = vec_dot(w.ty, w.cols, &w.data[r * wrb..(r + 1) * wrb], x);
                        // SAFETY: `t < n_tokens` and `r < rows`, so the index is inside
                        // `out` (length checked above). Thread `ti` only writes rows in its
                        // own range `[r0, r1)`, and the ranges of different threads are
                        // disjoint, so no two threads write the same element; `out` is
                        // borrowed mutably for the whole `run`, which returns only after
                        // every thread is done.
                        unsafe { *out_ptr.0.add(t * rows + r) = v };
                    }
                }
            }
            g0 = g1;
        }
    });
}

/// One tile's operands for the multi-token kernels: weight rows and activation rows at fixed
/// byte strides, and output element `(r, t)` at `out + t * ostride + r`.
#[derive(Clone, Copy)]
pub(crate) struct Tile {
    pub w: *const u8,
    pub wrb: usize,
    pub x: *const u8,
    pub xrb: usize,
    pub out: *mut f32,
    pub ostride: usize,
}

impl Tile {
    /// The same tile moved by `r` rows and `t` tokens (pointer arithmetic only; the kernels
    /// dereference within the caller's ranges).
    #[inline(always)]
    pub fn at(&self, r: usize, t: usize) -> Tile {
        Tile {
            w: self.w.wrapping_add(r * self.wrb),
            x: self.x.wrapping_add(t * self.xrb),
            out: self.out.wrapping_add(t * self.ostride + r),
            ..*self
        }
    }
}

/// A multi-token kernel: `(ty, blocks per row, operands, rows, tokens)`. Its safety contract
/// is `legacy::tile::dot_tile`'s.
type TileFn = unsafe fn(GgmlType, usize, &Tile, usize, usize);

/// The multi-token kernel for weights of type `ty` at `level`, if there is one. Each of its
/// outputs equals the single-token [`vec_dot`] at that level bit for bit.
fn tile_kernel(level: Level, ty: GgmlType) -> Option<TileFn> {
    match level {
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 if crate::legacy::tile::supports(ty) => Some(crate::legacy::tile::dot_tile),
        #[cfg(target_arch = "x86_64")]
        Level::Avx512Vnni if crate::legacy::tile::supports(ty) => {
            Some(crate::legacy::tile::dot_tile_vnni)
        }
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 if crate::kquants::tile::supports(ty) => Some(crate::kquants::tile::dot_tile),
        #[cfg(target_arch = "x86_64")]
        Level::Avx512Vnni if crate::kquants::tile::supports(ty) => {
            Some(crate::kquants::tile::dot_tile_vnni)
        }
        _ => None,
    }
}

/// `out[t * rows + r]` = the product of weight row `r` of `w` (`rows` rows of `n` elements of
/// `ty`) with activation row `t` of `x` (`tokens` rows encoded as `activation_type(ty)`),
/// computed by the multi-token tile kernel [`matmul`] uses for batches. Returns `false`, and
/// writes nothing, when `ty` has no tile kernel at the process's SIMD level. Every element
/// equals [`vec_dot`] on its pair bit for bit; this entry point exists to test exactly that.
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
/// (as [`crate::simd::vec_dot_at`] does for `vec_dot`). Returns `false`, and writes nothing,
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
    let Some(kernel) = tile_kernel(level, ty) else {
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

/// The output pointer shared by the threads of one matmul (each writes disjoint elements).
struct SharedOut(*mut f32);
// SAFETY: threads write disjoint elements through it (see `matmul`), and the pointee outlives
// the `run` call that uses it.
unsafe impl Sync for SharedOut {}

/// Encodes `x` (`x.len() / cols` rows of `cols` f32) as `act_ty`, one row after another, into
/// `out`, which is resized to fit; its capacity never shrinks, so a reused buffer stops
/// allocating once it has seen the largest batch.
pub fn quantize_activations(
    act_ty: GgmlType,
    x: &[f32],
    cols: usize,
    out: &mut Vec<u8>,
) -> Result<()> {
    if cols == 0 || !x.len().is_multiple_of(cols) {
        return Err(Error::NotWholeRows { len: x.len(), cols });
    }
    let block = act_ty.block_size();
    if !cols.is_multiple_of(block) {
        return Err(Error::BadLength {
            ty: act_ty,
            n: cols,
            block,
        });
    }
    let rb = row_bytes(act_ty, cols);
    let n_tokens = x.len() / cols;
    out.resize(n_tokens * rb, 0);
    for (src, dst) in x.chunks_exact(cols).zip(out.chunks_exact_mut(rb)) {
        crate::quantize_row(act_ty, src, dst)?;
    }
    Ok(())
}
