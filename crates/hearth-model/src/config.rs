//! Hyper-parameters of a decoder-only transformer, read from GGUF metadata.
//!
//! Every architecture file turns `{arch}.*` keys into a [`Config`]. Where the file leaves a value
//! out, the default is the one llama.cpp uses, written next to it.
//!
//! Metadata is only a claim: every value is checked against the shapes of the file's tensors
//! ([`Shapes`]) or against sane bounds before anything is sized from it, so a file that says
//! `block_count = 2^31` is refused instead of making Hearth reserve a terabyte.

use std::collections::BTreeSet;

use hearth_gguf::{Metadata, TensorInfo};

use crate::{Error, Result};

/// How rotary position embeddings pair up dimensions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RopeStyle {
    /// Adjacent pairs `(2i, 2i+1)` — llama's GGUF layout (the converter permutes Q/K for it).
    Interleaved,
    /// Halves `(i, i + d/2)` — "NeoX" style: Qwen2, Qwen3, Gemma 3.
    Halves,
}

/// The feed-forward activation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// `silu(gate) * up` (SwiGLU).
    Silu,
    /// `gelu_tanh(gate) * up` (GeGLU), Gemma.
    GeluTanh,
}

/// Everything the forward pass needs to know about the network's shape.
#[derive(Clone, Debug)]
pub struct Config {
    /// `general.architecture`.
    pub arch: String,
    pub n_layer: usize,
    /// Model width (`d_model`).
    pub n_embd: usize,
    pub n_head: usize,
    pub n_kv_head: usize,
    /// Width of one query/key head.
    pub head_dim: usize,
    /// Width of one value head.
    pub v_head_dim: usize,
    /// Hidden width of the feed-forward block.
    pub n_ff: usize,
    pub n_vocab: usize,
    /// Context length the model was trained for.
    pub ctx_train: usize,
    pub rms_eps: f32,
    pub rope_style: RopeStyle,
    /// Dimensions of each head that rotate (the rest pass through).
    pub rope_dim: usize,
    /// RoPE base for full-attention layers.
    pub rope_base: f32,
    /// RoPE base for sliding-window layers.
    pub rope_base_swa: f32,
    /// Position scaling (1 / linear factor) on full-attention layers.
    pub rope_scale: f32,
    /// Multiplier on `q·k` scores (1/√head_dim unless the architecture says otherwise).
    pub attn_scale: f32,
    /// Multiplier on queries after RoPE, before they meet keys (Gemma scales queries instead of
    /// scores; kept separate because the two round differently in f16).
    pub q_scale: f32,
    /// Multiplier on token embeddings (Gemma: √d_model).
    pub embd_scale: f32,
    /// Sliding window (key j visible to query i iff i − j < window) and which layers use it.
    pub sliding_window: Option<usize>,
    pub layer_is_swa: Vec<bool>,
    pub activation: Activation,
    /// Q/K/V projections carry biases (Qwen2).
    pub qkv_bias: bool,
    /// Per-head RMS norms on queries and keys before RoPE (Qwen3, Gemma 3).
    pub qk_norm: bool,
    /// RMS norms on the attention and feed-forward outputs before the residual add (Gemma 3).
    pub post_norms: bool,
    /// `tanh` soft-capping of the final logits, when the model uses it.
    pub final_logit_softcap: Option<f32>,
    /// The mixture of experts every layer's feed-forward is, for MoE models
    /// (`crate::arch::experts`); `None` for dense ones.
    pub experts: Option<crate::arch::experts::Experts>,
}

/// The longest training context accepted (16M positions; the longest real ones are about 10M).
/// Beyond it, sizes computed from the context would only be overflow waiting to happen.
pub const MAX_CONTEXT: usize = 1 << 24;

/// What the file's tensors say about the network's shape, read before any hyper-parameter is
/// trusted.
#[derive(Clone, Debug)]
pub struct Shapes {
    /// `token_embd.weight` is `[n_embd, n_vocab]`.
    pub n_embd: u64,
    pub n_vocab: u64,
    /// The distinct `N` of the `blk.N.*` tensors.
    pub layers: BTreeSet<u64>,
    /// Rows of `blk.0`'s Q, K and V projections, and of its feed-forward up projection (none
    /// in a mixture of experts, whose widths `crate::arch::experts` checks).
    pub q_rows: u64,
    pub k_rows: u64,
    pub v_rows: u64,
    pub ff_rows: Option<u64>,
}

impl Shapes {
    /// Reads the shapes every supported architecture has.
    pub fn read(tensors: &[TensorInfo]) -> Result<Shapes> {
        let find = |name: &str| -> Result<&TensorInfo> {
            tensors
                .iter()
                .find(|t| t.name == name)
                .ok_or_else(|| Error::MissingTensor(name.to_string()))
        };
        let matrix = |name: &str| -> Result<(u64, u64)> {
            let t = find(name)?;
            match t.dims[..] {
                [cols, rows] => Ok((cols, rows)),
                _ => Err(Error::NotAMatrix {
                    name: name.to_string(),
                    found: t.dims.clone(),
                }),
            }
        };
        let (n_embd, n_vocab) = matrix("token_embd.weight")?;
        let layers = tensors
            .iter()
            .filter_map(|t| t.name.strip_prefix("blk."))
            .filter_map(|rest| rest.split('.').next()?.parse::<u64>().ok())
            .collect();
        Ok(Shapes {
            n_embd,
            n_vocab,
            layers,
            q_rows: matrix("blk.0.attn_q.weight")?.1,
            k_rows: matrix("blk.0.attn_k.weight")?.1,
            v_rows: matrix("blk.0.attn_v.weight")?.1,
            ff_rows: match find("blk.0.ffn_up_exps.weight") {
                Ok(_) if find("blk.0.ffn_up.weight").is_err() => None,
                _ => Some(matrix("blk.0.ffn_up.weight")?.1),
            },
        })
    }

    /// The layers, as a person would count them.
    fn layers_text(&self) -> String {
        match (self.layers.first(), self.layers.last()) {
            (Some(first), Some(last)) => format!(
                "the file has tensors for {} layers (blk.{first} to blk.{last})",
                self.layers.len()
            ),
            _ => "the file has no layer tensors (blk.N)".to_string(),
        }
    }
}

/// `Err` naming `key` unless `ok`.
pub(crate) fn agree(
    ok: bool,
    key: String,
    value: impl ToString,
    tensors: impl FnOnce() -> String,
) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(Error::HyperParameterMismatch {
            key,
            value: value.to_string(),
            tensors: tensors(),
        })
    }
}

/// `Err` naming `key` unless `ok`, for values no tensor shows.
pub(crate) fn sane(ok: bool, key: String, value: impl ToString, why: &'static str) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(Error::BadHyperParameter {
            key,
            value: value.to_string(),
            why,
        })
    }
}

/// A float that must be finite and above zero.
pub(crate) fn positive(key: String, v: f32) -> Result<()> {
    sane(
        v.is_finite() && v > 0.0,
        key,
        v,
        "must be a finite number above zero",
    )
}

/// Reads `{arch}.{key}` helpers with errors that name the key.
pub(crate) struct Keys<'a> {
    pub md: &'a Metadata,
    pub arch: &'a str,
}

impl Keys<'_> {
    pub fn key(&self, k: &str) -> String {
        format!("{}.{}", self.arch, k)
    }
    pub fn usize(&self, k: &str) -> Result<usize> {
        Ok(self.md.u32(&self.key(k))? as usize)
    }
    pub fn opt_usize(&self, k: &str) -> Result<Option<usize>> {
        Ok(self.md.opt_u32(&self.key(k))?.map(|v| v as usize))
    }
    pub fn opt_f32(&self, k: &str) -> Result<Option<f32>> {
        Ok(self.md.opt_f32(&self.key(k))?)
    }
}

impl Config {
    /// The parts every llama-family architecture shares, with llama.cpp's defaults, each checked
    /// against `shapes` (or sane bounds) as it is read.
    pub(crate) fn common(md: &Metadata, arch: &str, shapes: &Shapes) -> Result<Config> {
        let k = Keys { md, arch };
        let n_embd = k.usize("embedding_length")?;
        agree(
            n_embd as u64 == shapes.n_embd,
            k.key("embedding_length"),
            n_embd,
            || format!("token_embd.weight is {} wide", shapes.n_embd),
        )?;
        // Checked before anything per layer is made: this is the number that sizes the most.
        let n_layer = k.usize("block_count")?;
        agree(
            n_layer >= 1 && n_layer as u64 == shapes.layers.len() as u64,
            k.key("block_count"),
            n_layer,
            || shapes.layers_text(),
        )?;
        let n_head = k.usize("attention.head_count")?;
        sane(
            n_head != 0 && n_embd % n_head == 0,
            k.key("attention.head_count"),
            n_head,
            "must be non-zero and divide embedding_length",
        )?;
        // llama.cpp: head_count_kv defaults to head_count (no grouped-query attention).
        let n_kv_head = k.opt_usize("attention.head_count_kv")?.unwrap_or(n_head);
        sane(
            n_kv_head != 0 && n_head % n_kv_head == 0,
            k.key("attention.head_count_kv"),
            n_kv_head,
            "must be non-zero and divide head_count",
        )?;
        // llama.cpp: key/value head widths default to embedding_length / head_count.
        let key_length = k.opt_usize("attention.key_length")?;
        let head_dim = key_length.unwrap_or(n_embd / n_head);
        let value_length = k.opt_usize("attention.value_length")?;
        let v_head_dim = value_length.unwrap_or(head_dim);
        // Products of two u32 values cannot overflow a u64.
        let rows = |heads: usize, width: usize| heads as u64 * width as u64;
        // Where the head widths come from, for messages.
        let key_width = match key_length {
            Some(_) => "key_length",
            None => "(embedding_length / head_count)",
        };
        let value_width = match value_length {
            Some(_) => "value_length",
            None => "the key width",
        };
        let projection = |tensor: &'static str,
                          found: u64,
                          heads: &'static str,
                          n: usize,
                          width: &'static str,
                          w: usize| {
            move || {
                format!(
                    "{tensor} has {found} rows, not {heads} × {width} = {n} × {w} = {}",
                    rows(n, w)
                )
            }
        };
        // When the projections agree with the head counts on one width, a stated width that
        // differs is the wrong value.
        let width_of = |rows: u64, heads: usize| {
            rows.is_multiple_of(heads as u64)
                .then(|| rows / heads as u64)
        };
        if let (Some(kl), Some(w)) = (key_length, width_of(shapes.q_rows, n_head)) {
            agree(
                kl as u64 == w || shapes.k_rows != w * n_kv_head as u64,
                k.key("attention.key_length"),
                kl,
                || {
                    format!(
                        "blk.0.attn_q.weight and blk.0.attn_k.weight hold heads {w} wide ({} and {} rows for {n_head} and {n_kv_head} heads)",
                        shapes.q_rows, shapes.k_rows
                    )
                },
            )?;
        }
        if let (Some(vl), Some(w)) = (value_length, width_of(shapes.v_rows, n_kv_head)) {
            agree(
                vl as u64 == w || shapes.k_rows != rows(n_kv_head, head_dim),
                k.key("attention.value_length"),
                vl,
                || {
                    format!(
                        "blk.0.attn_v.weight holds heads {w} wide ({} rows for {n_kv_head} heads)",
                        shapes.v_rows
                    )
                },
            )?;
        }
        agree(
            head_dim != 0 && rows(n_head, head_dim) == shapes.q_rows,
            k.key("attention.head_count"),
            n_head,
            projection(
                "blk.0.attn_q.weight",
                shapes.q_rows,
                "head_count",
                n_head,
                key_width,
                head_dim,
            ),
        )?;
        agree(
            rows(n_kv_head, head_dim) == shapes.k_rows,
            k.key("attention.head_count_kv"),
            n_kv_head,
            projection(
                "blk.0.attn_k.weight",
                shapes.k_rows,
                "head_count_kv",
                n_kv_head,
                key_width,
                head_dim,
            ),
        )?;
        agree(
            v_head_dim != 0 && rows(n_kv_head, v_head_dim) == shapes.v_rows,
            k.key("attention.head_count_kv"),
            n_kv_head,
            projection(
                "blk.0.attn_v.weight",
                shapes.v_rows,
                "head_count_kv",
                n_kv_head,
                value_width,
                v_head_dim,
            ),
        )?;
        let rope_dim = k.opt_usize("rope.dimension_count")?.unwrap_or(head_dim);
        sane(
            rope_dim <= head_dim && rope_dim % 2 == 0,
            k.key("rope.dimension_count"),
            rope_dim,
            "must be even and at most the head width",
        )?;
        let n_ff = k.usize("feed_forward_length")?;
        if let Some(ff_rows) = shapes.ff_rows {
            agree(
                n_ff as u64 == ff_rows,
                k.key("feed_forward_length"),
                n_ff,
                || format!("blk.0.ffn_up.weight has {ff_rows} rows"),
            )?;
        }
        // llama.cpp: rope base 10 000 when absent.
        let rope_base = k.opt_f32("rope.freq_base")?.unwrap_or(10_000.0);
        positive(k.key("rope.freq_base"), rope_base)?;
        let rope_scale = match md.opt_str(&k.key("rope.scaling.type"))? {
            Some("linear") => {
                // llama.cpp: a factor of 0 means no scaling.
                let f = k.opt_f32("rope.scaling.factor")?.unwrap_or(1.0);
                if f == 0.0 {
                    1.0
                } else {
                    positive(k.key("rope.scaling.factor"), f)?;
                    1.0 / f
                }
            }
            _ => 1.0,
        };
        // llama.cpp: the trained context defaults to 2048 for very old files without it.
        let ctx_train = k.opt_usize("context_length")?.unwrap_or(2048);
        sane(
            (1..=MAX_CONTEXT).contains(&ctx_train),
            k.key("context_length"),
            ctx_train,
            "must be between 1 and 16777216 positions",
        )?;
        let rms_eps = k
            .opt_f32("attention.layer_norm_rms_epsilon")?
            .unwrap_or(1e-5);
        positive(k.key("attention.layer_norm_rms_epsilon"), rms_eps)?;
        let n_vocab = shapes.n_vocab as usize;
        Ok(Config {
            arch: arch.to_string(),
            n_layer,
            n_embd,
            n_head,
            n_kv_head,
            head_dim,
            v_head_dim,
            n_ff,
            n_vocab,
            ctx_train,
            rms_eps,
            rope_style: RopeStyle::Interleaved,
            rope_dim,
            rope_base,
            rope_base_swa: rope_base,
            rope_scale,
            attn_scale: 1.0 / (head_dim as f32).sqrt(),
            q_scale: 1.0,
            embd_scale: 1.0,
            sliding_window: None,
            layer_is_swa: vec![false; n_layer],
            activation: Activation::Silu,
            qkv_bias: false,
            qk_norm: false,
            post_norms: false,
            final_logit_softcap: None,
            experts: None,
        })
    }

    /// Width of the K rows one layer stores per token.
    pub fn kv_dim_k(&self) -> usize {
        self.n_kv_head * self.head_dim
    }

    /// Width of the V rows one layer stores per token.
    pub fn kv_dim_v(&self) -> usize {
        self.n_kv_head * self.v_head_dim
    }
}
