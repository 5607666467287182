//! The pre-norm decoder every supported architecture is an instance of, and its batched forward
//! pass.
//!
//! One call of [`Model::forward`] processes a batch of tokens from several sequences, each with
//! its own position and KV cache — prompt chunks and single decode tokens mixed. Weights stay
//! quantized: the matrices with packed kernels are re-laid once at load into groups of eight
//! interleaved rows in one anonymous arena (the same number of bytes; the file's pages are
//! released behind each slice); the rest stay in the memory-mapped file; the small norm vectors
//! and biases are copied.
//!
//! # Batch invariance
//! For every output element the floating-point operations are the same whatever the batch size,
//! a token's place in the batch, the prompt-chunk boundaries and the thread count: norms, RoPE
//! and activation quantization are per token; every projection goes through
//! `hearth_kernels::matmul`, whose elements each depend only on one weight row and one
//! activation row (a `vec_dot`, or the packed reference on packed matrices); threads split output
//! rows or (token, head) pairs, never a reduction; K and V are written to the cache (as f16)
//! before any query of the batch reads them, and attention walks positions in order.
//!
//! # Layout
//! - this file: what a loaded model holds (its weights, layer by layer) and its accessors;
//! - `load`: reading a GGUF file into a [`Model`], every tensor's shape checked;
//! - `pack`: re-laying the matrices into the packed arena at load;
//! - `forward`: the batched forward pass, its projections and its [`Workspace`];
//! - `attention`: causal attention over the paged KV cache, split across threads.

mod attention;
mod forward;
mod load;
mod pack;

use std::path::Path;

use hearth_gguf::{GgmlType, Gguf};
use hearth_kernels::QMatrix;

use crate::config::Config;
use crate::ops::Rope;
use crate::Result;

pub use forward::Workspace;

/// A weight matrix: `rows` rows of `cols` elements, row-major in the mapped file, or packed
/// (`hearth_kernels::packed`) at `packed` in the model's packed arena.
#[derive(Clone, Debug)]
struct Weight {
    index: usize,
    ty: GgmlType,
    rows: usize,
    cols: usize,
    packed: Option<std::ops::Range<usize>>,
}

#[derive(Debug)]
struct Layer {
    attn_norm: Vec<f32>,
    wq: Weight,
    wk: Weight,
    wv: Weight,
    wo: Weight,
    bq: Option<Vec<f32>>,
    bk: Option<Vec<f32>>,
    bv: Option<Vec<f32>>,
    q_norm: Option<Vec<f32>>,
    k_norm: Option<Vec<f32>>,
    attn_post_norm: Option<Vec<f32>>,
    ffn_norm: Vec<f32>,
    gate: Weight,
    up: Weight,
    down: Weight,
    ffn_post_norm: Option<Vec<f32>>,
}

/// A loaded model: configuration plus weights mapped from its GGUF file.
pub struct Model {
    gguf: Gguf,
    /// The packed weights (anonymous memory; empty when nothing is packed).
    arena: Option<memmap2::MmapMut>,
    config: Config,
    tok_embd: Weight,
    output: Weight,
    output_norm: Vec<f32>,
    layers: Vec<Layer>,
    rope_full: Rope,
    rope_swa: Rope,
    /// Reference mode: f32 weights and activations, no activation quantization (see
    /// [`Model::set_exact`]).
    exact: bool,
}

/// One token of a batch.
#[derive(Clone, Copy, Debug)]
pub struct BatchItem {
    pub token: u32,
    /// Position in its sequence.
    pub pos: usize,
    /// Index into the `seqs` slice given to [`Model::forward`].
    pub seq: usize,
    /// Whether logits are wanted for this token.
    pub logits: bool,
}

impl Model {
    /// Maps `path` and builds the model it describes.
    pub fn open(path: impl AsRef<Path>) -> Result<Model> {
        Model::from_gguf(Gguf::open(path)?)
    }

    /// Switches the reference mode on or off. In it every projection dequantizes its weight rows
    /// to f32 and multiplies them with unquantized f32 activations: slow, but free of the
    /// activation quantization whose rounding makes small models' logits jump by tenths, so
    /// tests can check the network itself tightly against an independent float64
    /// implementation. Off by default.
    pub fn set_exact(&mut self, exact: bool) {
        self.exact = exact;
    }

    /// The network's hyper-parameters.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The underlying file (metadata for the tokenizer and template).
    pub fn gguf(&self) -> &Gguf {
        &self.gguf
    }

    fn mat(&self, w: &Weight) -> QMatrix<'_> {
        let (data, packed) = match (&w.packed, &self.arena) {
            (Some(range), Some(arena)) => (&arena[range.clone()], true),
            _ => (self.gguf.tensor_data(&self.gguf.tensors()[w.index]), false),
        };
        QMatrix {
            ty: w.ty,
            data,
            rows: w.rows,
            cols: w.cols,
            packed,
        }
    }
}
