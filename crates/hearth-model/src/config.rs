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

/// How the file stretches RoPE beyond the positions the model was first trained on
/// (`rope.scaling.type`; llama.cpp reads a missing type as linear, which with no factor is
/// plain RoPE).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RopeScaling {
    /// Positions as they are.
    None,
    /// Positions divided by `rope.scaling.factor` (Chen et al. 2023, "Extending Context Window
    /// of Large Language Models via Positional Interpolation").
    Linear,
    /// YaRN (Peng et al. 2023, "YaRN: Efficient Context Window Extension of Large Language
    /// Models"): high frequencies kept, low ones interpolated, a ramp between, and the
    /// attention sharpened by a magnitude factor. Qwen2.5/Qwen3 and Mistral's newer models.
    Yarn,
}

/// Llama 4's attention temperature (Mistral's newer models): queries at position `p` are
/// multiplied by `1 + scale · ln(⌊p / floor⌋ + 1)`, so far positions stay sharp.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AttnTemperature {
    pub scale: f32,
    pub floor: usize,
}

impl AttnTemperature {
    /// The multiplier at position `pos`, computed as llama.cpp does (the floor in f32, the
    /// logarithm in f64).
    pub fn at(&self, pos: usize) -> f32 {
        let steps = (pos as f32 / self.floor as f32).floor();
        (hearth_kernels::math::ln_f64(f64::from(steps) + 1.0) * f64::from(self.scale) + 1.0) as f32
    }
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
    /// Position scaling (1 / `rope.scaling.factor`) on full-attention layers.
    pub rope_scale: f32,
    /// Position scaling on sliding-window layers (Gemma 3: none; Gemma 2: as on full ones).
    pub rope_scale_swa: f32,
    /// How positions beyond the original training are reached.
    pub rope_scaling: RopeScaling,
    /// The context the RoPE frequencies were first trained for
    /// (`rope.scaling.original_context_length`, else `context_length`): YaRN's correction
    /// dimensions come from it, and Phi-3 picks its long factors beyond it.
    pub rope_orig_ctx: usize,
    /// YaRN's mix between interpolated and original angles (1 with YaRN, else 0).
    pub rope_ext_factor: f32,
    /// Multiplier on RoPE's cosines and sines (YaRN's magnitude correction, Phi-3's
    /// `rope.scaling.attn_factor`), before ggml's own YaRN factor (see [`crate::ops::Rope`]).
    pub rope_attn_factor: f32,
    /// YaRN's correction range, in rotations over the original context.
    pub rope_beta_fast: f32,
    pub rope_beta_slow: f32,
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
    /// `tanh` soft-capping of the attention scores before softmax (Gemma 2).
    pub attn_softcap: Option<f32>,
    /// Position-dependent query temperature (Mistral 3).
    pub attn_temperature: Option<AttnTemperature>,
    /// The feed-forward's gate and up projections are one `ffn_up` tensor, gate rows first
    /// (Phi-3).
    pub fused_gate_up: bool,
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
    /// Rows of `blk.0.attn_qkv.weight` where Q, K and V are one tensor (Phi-3); then the three
    /// above are 0 until the head counts split it ([`Shapes::split_qkv`]).
    pub qkv_rows: Option<u64>,
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
        // Q, K and V as one tensor, as llama.cpp accepts for any architecture, when the
        // separate ones are absent.
        let fused = find("blk.0.attn_q.weight").is_err() && find("blk.0.attn_qkv.weight").is_ok();
        let (q_rows, k_rows, v_rows, qkv_rows) = if fused {
            (0, 0, 0, Some(matrix("blk.0.attn_qkv.weight")?.1))
        } else {
            (
                matrix("blk.0.attn_q.weight")?.1,
                matrix("blk.0.attn_k.weight")?.1,
                matrix("blk.0.attn_v.weight")?.1,
                None,
            )
        };
        Ok(Shapes {
            n_embd,
            n_vocab,
            layers,
            q_rows,
            k_rows,
            v_rows,
            ff_rows: match find("blk.0.ffn_up_exps.weight") {
                Ok(_) if find("blk.0.ffn_up.weight").is_err() => None,
                _ => Some(matrix("blk.0.ffn_up.weight")?.1),
            },
            qkv_rows,
        })
    }

    /// A fused QKV tensor's rows split by the head counts and widths, checked to add up.
    fn split_qkv(&self, key: String, value: usize, q: u64, k: u64, v: u64) -> Result<Shapes> {
        let Some(total) = self.qkv_rows else {
            return Ok(self.clone());
        };
        agree(q + k + v == total, key, value, || {
            format!(
                "blk.0.attn_qkv.weight has {total} rows, not the {q} + {k} + {v} of the query, key and value heads"
            )
        })?;
        Ok(Shapes {
            q_rows: q,
            k_rows: k,
            v_rows: v,
            ..self.clone()
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

/// The attention factor llama.cpp's context hands ggml's rope under YaRN, before the file's own
/// `rope.scaling.attn_factor`: YaRN's magnitude `0.1 ln(factor) + 1` (or, with a
/// `yarn_log_multiplier`, the ratio of two such magnitudes), divided by the same magnitude
/// again because ggml's rope multiplies it back in. Each step rounded in f32 as there.
pub(crate) fn yarn_attn_factor(scale: f32, log_mul: f32) -> f32 {
    let ln = |x: f32| hearth_kernels::math::ln_f64(f64::from(x)) as f32;
    let factor = 1.0 / scale;
    let mscale = |m: f32| {
        if factor <= 1.0 {
            1.0
        } else {
            0.1 * m * ln(factor) + 1.0
        }
    };
    let mut a = if log_mul != 0.0 {
        mscale(1.0) / mscale(log_mul)
    } else {
        mscale(1.0)
    };
    a *= 1.0 / (1.0 + 0.1 * ln(factor));
    a
}

/// The `rope.scaling.*` keys, read as llama.cpp reads them (`llama_model_loader` and
/// `llama_context`'s constructor), with the attention factor it passes to `ggml_rope_ext`.
struct RopeKeys {
    kind: RopeScaling,
    scale: f32,
    orig_ctx: usize,
    ext_factor: f32,
    attn_factor: f32,
}

impl RopeKeys {
    fn read(k: &Keys<'_>, ctx_train: usize) -> Result<RopeKeys> {
        let type_key = k.key("rope.scaling.type");
        let kind = match k.md.opt_str(&type_key)? {
            // llama.cpp: a missing type is linear (a factor of 1 unless one is given).
            None | Some("linear") => RopeScaling::Linear,
            Some("none") => RopeScaling::None,
            Some("yarn") => RopeScaling::Yarn,
            Some(other) => {
                return Err(Error::BadHyperParameter {
                    key: type_key,
                    value: other.to_string(),
                    why: "Hearth knows the RoPE scaling types none, linear and yarn",
                })
            }
        };
        // llama.cpp: `rope.scaling.factor`, else the older `rope.scale_linear`; 0 means none.
        let factor = match k.opt_f32("rope.scaling.factor")? {
            Some(f) => Some((k.key("rope.scaling.factor"), f)),
            None => k
                .opt_f32("rope.scale_linear")?
                .map(|f| (k.key("rope.scale_linear"), f)),
        };
        let mut scale = match factor {
            Some((_, 0.0)) => 1.0,
            Some((key, f)) => {
                sane(
                    f.is_finite() && f >= 1.0,
                    key,
                    f,
                    "must be at least 1 (a RoPE scaling factor stretches the context)",
                )?;
                1.0 / f
            }
            None => 1.0,
        };
        if kind == RopeScaling::None {
            scale = 1.0;
        }
        // A factor of 1 stretches nothing: no different from plain RoPE.
        let kind = if scale == 1.0 && kind == RopeScaling::Linear {
            RopeScaling::None
        } else {
            kind
        };
        let orig_key = k.key("rope.scaling.original_context_length");
        let orig_ctx = k
            .opt_usize("rope.scaling.original_context_length")?
            .unwrap_or(ctx_train);
        sane(
            (1..=MAX_CONTEXT).contains(&orig_ctx),
            orig_key,
            orig_ctx,
            "must be between 1 and 16777216 positions",
        )?;
        let ext_factor = if kind == RopeScaling::Yarn { 1.0 } else { 0.0 };
        let mut attn_factor = if ext_factor != 0.0 {
            yarn_attn_factor(scale, 0.0)
        } else {
            1.0
        };
        let attn_key = k.key("rope.scaling.attn_factor");
        let file_factor = k.opt_f32("rope.scaling.attn_factor")?.unwrap_or(1.0);
        positive(attn_key, file_factor)?;
        attn_factor *= file_factor;
        Ok(RopeKeys {
            kind,
            scale,
            orig_ctx,
            ext_factor,
            attn_factor,
        })
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
        let shapes = &shapes.split_qkv(
            k.key("attention.head_count_kv"),
            n_kv_head,
            rows(n_head, head_dim),
            rows(n_kv_head, head_dim),
            rows(n_kv_head, v_head_dim),
        )?;
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
        // llama.cpp: the trained context defaults to 2048 for very old files without it.
        let ctx_train = k.opt_usize("context_length")?.unwrap_or(2048);
        sane(
            (1..=MAX_CONTEXT).contains(&ctx_train),
            k.key("context_length"),
            ctx_train,
            "must be between 1 and 16777216 positions",
        )?;
        let rope = RopeKeys::read(&k, ctx_train)?;
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
            rope_scale: rope.scale,
            rope_scale_swa: 1.0,
            rope_scaling: rope.kind,
            rope_orig_ctx: rope.orig_ctx,
            rope_ext_factor: rope.ext_factor,
            rope_attn_factor: rope.attn_factor,
            rope_beta_fast: 32.0,
            rope_beta_slow: 1.0,
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
            attn_softcap: None,
            attn_temperature: None,
            fused_gate_up: false,
        })
    }

    /// The longest context this model runs: its training context, or as far as its declared
    /// RoPE scaling stretches the original one (`rope.scaling.original_context_length`, else
    /// `context_length`, times `rope.scaling.factor`), whichever is longer. Beyond it, the
    /// positions are ones the model has never seen, and its answers degrade into noise.
    pub fn max_ctx(&self) -> usize {
        let stretched = match self.rope_scaling {
            RopeScaling::None => 0,
            RopeScaling::Linear | RopeScaling::Yarn => {
                (self.rope_orig_ctx as f64 / f64::from(self.rope_scale)).floor() as usize
            }
        };
        self.ctx_train.max(stretched).min(MAX_CONTEXT)
    }

    /// `Ok` when a context of `ctx` positions is within [`Config::max_ctx`], else an error
    /// that names the trained length and what the file declares.
    pub fn check_ctx(&self, ctx: usize) -> Result<()> {
        if ctx <= self.max_ctx() {
            return Ok(());
        }
        Err(Error::ContextTooLong {
            ctx,
            trained: self.ctx_train,
            max: self.max_ctx(),
            scaling: match self.rope_scaling {
                RopeScaling::None => "declares no RoPE scaling to go further",
                RopeScaling::Linear => "declares linear RoPE scaling only that far",
                RopeScaling::Yarn => "declares YaRN RoPE scaling only that far",
            },
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
