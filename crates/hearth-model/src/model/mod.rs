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
//! - `forward`: the batched forward pass top to bottom (embeddings, each layer's two residual
//!   branches, logits), the feed-forward kinds, the projections and the [`Workspace`];
//! - `moe`: a mixture-of-experts feed-forward (router, experts batched over the tokens routed
//!   to each, the weighted sum), its experts left in the mapped file;
//! - `attention`: the attention branch (Q, K and V, RoPE, the cache write, `wo`) and causal
//!   attention over the paged KV cache, split across threads.

mod attention;
mod forward;
mod load;
mod moe;
mod pack;

use std::path::Path;

use hearth_gguf::{GgmlType, Gguf};
use hearth_kernels::QMatrix;

use crate::config::Config;
use crate::ops::Rope;
use crate::Result;

pub use forward::Workspace;

/// A weight matrix: `rows` rows of `cols` elements, row-major in the mapped file, or packed
/// (`hearth_kernels::packed`) at `packed` in the model's packed arena. Shape comments on weights
/// are `(rows, cols)`: outputs by inputs, so `y = W · x` maps `cols` floats to `rows`.
#[derive(Clone, Debug)]
struct Weight {
    index: usize,
    ty: GgmlType,
    rows: usize,
    cols: usize,
    /// The first of the tensor's rows this weight is: a fused tensor (Phi-3's `attn_qkv`, its
    /// gate and up in one `ffn_up`) is several weights over one tensor's rows.
    first_row: usize,
    packed: Option<std::ops::Range<usize>>,
}

impl Weight {
    /// The weight's bytes within its tensor's.
    fn byte_range(&self) -> std::ops::Range<usize> {
        let row = hearth_kernels::row_bytes(self.ty, self.cols);
        self.first_row * row..(self.first_row + self.rows) * row
    }
}

/// One decoder layer, two pre-norm residual branches:
/// `h = x + attn_post_norm(attention(attn_norm(x)))`, then
/// `out = h + ffn_post_norm(ffn(ffn_norm(h)))`.
///
/// What every architecture has is a plain field; what some lack is an `Option` of everything that
/// comes and goes together; what differs in kind (the feed-forward) is an enum.
#[derive(Debug)]
struct Layer {
    /// RMS norm weights before attention: (n_embd).
    attn_norm: Vec<f32>,
    attn: Attention,
    /// RMS norm on the attention output before the residual add (Gemma 3): (n_embd).
    attn_post_norm: Option<Vec<f32>>,
    /// RMS norm weights before the feed-forward: (n_embd).
    ffn_norm: Vec<f32>,
    ffn: FeedForward,
    /// RMS norm on the feed-forward output before the residual add (Gemma 3): (n_embd).
    ffn_post_norm: Option<Vec<f32>>,
}

/// Grouped-query attention's weights: `n_head` query heads share `n_kv_head` key/value heads.
#[derive(Debug)]
struct Attention {
    /// (n_head * head_dim, n_embd)
    wq: Weight,
    /// (n_kv_head * head_dim, n_embd)
    wk: Weight,
    /// (n_kv_head * v_head_dim, n_embd)
    wv: Weight,
    /// (n_embd, n_head * v_head_dim)
    wo: Weight,
    /// Biases on the Q, K and V projections (Qwen2).
    bias: Option<QkvBias>,
    /// Per-head RMS norms on queries and keys before RoPE (Qwen3, Gemma 3).
    qk_norm: Option<QkNorm>,
}

#[derive(Debug)]
struct QkvBias {
    /// (n_head * head_dim)
    bq: Vec<f32>,
    /// (n_kv_head * head_dim)
    bk: Vec<f32>,
    /// (n_kv_head * v_head_dim)
    bv: Vec<f32>,
}

#[derive(Debug)]
struct QkNorm {
    /// (head_dim), shared by every query head.
    q_norm: Vec<f32>,
    /// (head_dim), shared by every key head.
    k_norm: Vec<f32>,
}

/// A layer's feed-forward network, one variant per kind; the forward pass matches on it.
#[derive(Debug)]
enum FeedForward {
    /// One gated MLP: `down · (act(gate · x) ⊙ (up · x))`, `act` being SiLU (SwiGLU) or GELU
    /// (GeGLU) by [`Config::activation`](crate::config::Config::activation).
    Dense {
        /// (n_ff, n_embd)
        gate: Weight,
        /// (n_ff, n_embd)
        up: Weight,
        /// (n_embd, n_ff)
        down: Weight,
    },
    /// A mixture of experts (`moe`): a router and `n_expert` gated MLPs, each token running
    /// the few its router picks.
    Moe(Box<moe::Moe>),
}

impl Layer {
    /// The layer's matrices, in the order they are laid out in the packed arena.
    fn matrices_mut(&mut self) -> Vec<&mut Weight> {
        let Attention { wq, wk, wv, wo, .. } = &mut self.attn;
        let mut out = vec![wq, wk, wv, wo];
        match &mut self.ffn {
            FeedForward::Dense { gate, up, down } => out.extend([gate, up, down]),
            FeedForward::Moe(moe) => out.extend(moe.matrices_mut()),
        }
        out
    }
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
    /// The file's RoPE frequency factors, from which `rope_full` is built for the context.
    rope_factors: load::RopeFactors,
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

    /// Prepares the model for sequences of up to `n_ctx` positions: refuses a context beyond
    /// what it was trained for unless its file declares RoPE scaling that reaches it
    /// ([`Config::check_ctx`]), and picks Phi-3's long RoPE factors beyond its original
    /// context, the short ones within it, as llama.cpp does per context. Without a call the
    /// model is prepared for its training context.
    pub fn set_context(&mut self, n_ctx: usize) -> Result<()> {
        self.config.check_ctx(n_ctx)?;
        self.rope_full = load::full_rope(&self.config, &self.rope_factors, n_ctx);
        Ok(())
    }

    /// The network's hyper-parameters.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The underlying file (metadata for the tokenizer and template).
    pub fn gguf(&self) -> &Gguf {
        &self.gguf
    }

    /// Whether its matrices were packed at load (see `hearth_kernels::packed`): products over
    /// packed rows round differently from row-major ones, so tests that compare bits across
    /// machines need to know which layout ran.
    pub fn packed(&self) -> bool {
        self.arena.is_some()
    }

    fn mat(&self, w: &Weight) -> QMatrix<'_> {
        let (data, packed) = match (&w.packed, &self.arena) {
            (Some(range), Some(arena)) => (&arena[range.clone()], true),
            _ => (
                &self.gguf.tensor_data(&self.gguf.tensors()[w.index])[w.byte_range()],
                false,
            ),
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
