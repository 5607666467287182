//! Quantized matrix × activations: the one routine every projection runs through.
//!
//! `out[t][r] = vec_dot(W[r], x[t])` for weight rows `r` and activation rows `t`.
//!
//! # Batch invariance
//! Each output element is exactly one [`crate::vec_dot`] call on one weight row and one
//! activation row, so its bits depend on nothing but those two rows: not on how many tokens
//! are in the batch, where the token sits, or how many threads run. Threads therefore split
//! **rows** (contiguous ranges whose bounds depend only on `rows` and the thread count), never
//! the reduction over `cols`.
//!
//! # Cache blocking
//! With many tokens, a thread walks its rows in small groups sized to stay in L1, and runs
//! every token against the group before moving on, so each weight byte comes from memory once
//! per matmul instead of once per token. The activations (a few KB per token) stay in L2.

use crate::{activation_type, row_bytes, vec_dot, Error, GgmlType, Result, ThreadPool};

/// A weight matrix stored row-major in its GGUF type: `rows` rows of `cols` elements
/// (GGUF `ne0 = cols`, `ne1 = rows`).
#[derive(Clone, Copy, Debug)]
pub struct QMatrix<'a> {
    pub ty: GgmlType,
    pub data: &'a [u8],
    pub rows: usize,
    pub cols: usize,
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
        })
    }

    /// Bytes of one row.
    pub fn row_bytes(&self) -> usize {
        row_bytes(self.ty, self.cols)
    }

    /// The encoded bytes of row `r`.
    pub fn row(&self, r: usize) -> &'a [u8] {
        let rb = self.row_bytes();
        &self.data[r * rb..(r + 1) * rb]
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

    let rows = w.rows;
    let group = (GROUP_BYTES / wrb.max(1)).clamp(1, 64);
    let out_ptr = SharedOut(out.as_mut_ptr());
    pool.run(|ti, nt| {
        let (r0, r1) = (ti * rows / nt, (ti + 1) * rows / nt);
        let out_ptr = &out_ptr;
        let mut g0 = r0;
        while g0 < r1 {
            let g1 = (g0 + group).min(r1);
            for t in 0..n_tokens {
                let x = &xq[t * xrb..(t + 1) * xrb];
                for r in g0..g1 {
                    let v = vec_dot(w.ty, w.cols, &w.data[r * wrb..(r + 1) * wrb], x);
                    // SAFETY: `t < n_tokens` and `r < rows`, so the index is inside `out`
                    // (length checked above). Thread `ti` only writes rows in its own range
                    // `[r0, r1)`, and the ranges of different threads are disjoint, so no
                    // two threads write the same element; `out` is borrowed mutably for the
                    // whole `run`, which returns only after every thread is done.
                    unsafe { *out_ptr.0.add(t * rows + r) = v };
                }
            }
            g0 = g1;
        }
    });
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
