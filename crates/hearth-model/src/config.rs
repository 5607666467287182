//! Hyper-parameters of a decoder-only transformer, read from GGUF metadata.
//!
//! Every architecture file turns `{arch}.*` keys into a [`Config`]. Where the file leaves a value
//! out, the default is the one llama.cpp uses, written next to it.

use hearth_gguf::Metadata;

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
    /// The parts every llama-family architecture shares, with llama.cpp's defaults.
    pub(crate) fn common(md: &Metadata, arch: &str, n_vocab: usize) -> Result<Config> {
        let k = Keys { md, arch };
        let n_embd = k.usize("embedding_length")?;
        let n_head = k.usize("attention.head_count")?;
        if n_head == 0 || n_embd % n_head != 0 {
            return Err(Error::BadHyperParameter {
                key: k.key("attention.head_count"),
                value: n_head.to_string(),
                why: "must be non-zero and divide embedding_length",
            });
        }
        // llama.cpp: head_count_kv defaults to head_count (no grouped-query attention).
        let n_kv_head = k.opt_usize("attention.head_count_kv")?.unwrap_or(n_head);
        if n_kv_head == 0 || n_head % n_kv_head != 0 {
            return Err(Error::BadHyperParameter {
                key: k.key("attention.head_count_kv"),
                value: n_kv_head.to_string(),
                why: "must be non-zero and divide head_count",
            });
        }
        // llama.cpp: key/value head widths default to embedding_length / head_count.
        let head_dim = k
            .opt_usize("attention.key_length")?
            .unwrap_or(n_embd / n_head);
        let v_head_dim = k.opt_usize("attention.value_length")?.unwrap_or(head_dim);
        let rope_dim = k.opt_usize("rope.dimension_count")?.unwrap_or(head_dim);
        if rope_dim > head_dim || rope_dim % 2 != 0 {
            return Err(Error::BadHyperParameter {
                key: k.key("rope.dimension_count"),
                value: rope_dim.to_string(),
                why: "must be even and at most the head width",
            });
        }
        // llama.cpp: rope base 10 000 when absent.
        let rope_base = k.opt_f32("rope.freq_base")?.unwrap_or(10_000.0);
        let rope_scale = match md.opt_str(&k.key("rope.scaling.type"))? {
            Some("linear") => {
                let f = k.opt_f32("rope.scaling.factor")?.unwrap_or(1.0);
                if f > 0.0 {
                    1.0 / f
                } else {
                    1.0
                }
            }
            _ => 1.0,
        };
        // llama.cpp: the trained context defaults to 2048 for very old files without it.
        let ctx_train = k.opt_usize("context_length")?.unwrap_or(2048);
        let rms_eps = k
            .opt_f32("attention.layer_norm_rms_epsilon")?
            .unwrap_or(1e-5);
        let n_layer = k.usize("block_count")?;
        Ok(Config {
            arch: arch.to_string(),
            n_layer,
            n_embd,
            n_head,
            n_kv_head,
            head_dim,
            v_head_dim,
            n_ff: k.usize("feed_forward_length")?,
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
