//! Quantized matrix × activations (being written).
use crate::{GgmlType, ThreadPool};

/// A weight matrix stored row-major in its GGUF type: `rows` rows of `cols` elements
/// (GGUF `ne0 = cols`, `ne1 = rows`).
#[derive(Clone, Copy, Debug)]
pub struct QMatrix<'a> {
    pub ty: GgmlType,
    pub data: &'a [u8],
    pub rows: usize,
    pub cols: usize,
}

/// `out[t * w.rows + r] = vec_dot(w.row(r), xq.row(t))` for `n_tokens` activation rows `xq`
/// encoded as `activation_type(w.ty)`, each `row_bytes(act, w.cols)` long.
pub fn matmul(pool: &ThreadPool, w: &QMatrix<'_>, xq: &[u8], n_tokens: usize, out: &mut [f32]) {
    let _ = (pool, w, xq, n_tokens, out);
    todo!()
}
