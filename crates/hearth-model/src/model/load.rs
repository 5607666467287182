//! Reading a GGUF file into a [`Model`]: the configuration from its metadata, then every
//! tensor the configuration implies, its shape and type checked before use.

use hearth_gguf::{Gguf, TensorInfo};

use super::moe::Moe;
use super::pack::{pack_weights, packing_enabled};
use super::{Attention, FeedForward, Layer, Model, QkNorm, QkvBias, Weight};
use crate::config::Config;
use crate::ops::{Rope, RopeScaling};
use crate::{arch, Error, Result};

impl Model {
    /// Builds the model described by an opened GGUF file, packing its matrices (see
    /// `pack_weights`).
    pub fn from_gguf(gguf: Gguf) -> Result<Model> {
        let md = gguf.metadata();
        let config = arch::config(md, gguf.tensors())?;
        let n_vocab = config.n_vocab;
        let c = &config;
        let mut tok_embd = weight(&gguf, "token_embd.weight", c.n_embd, n_vocab)?;
        let mut output = match gguf.tensor("output.weight") {
            Some(_) => weight(&gguf, "output.weight", c.n_embd, n_vocab)?,
            None => tok_embd.clone(),
        };
        let output_norm = vector(&gguf, "output_norm.weight", c.n_embd)?;
        let mut layers = (0..c.n_layer)
            .map(|il| layer(&gguf, c, il))
            .collect::<Result<Vec<Layer>>>()?;
        let tied = output.index == tok_embd.index;
        let mut model_weights: Vec<&mut Weight> =
            layers.iter_mut().flat_map(Layer::matrices_mut).collect();
        // An untied embedding table is only looked up row by row, so it stays row-major;
        // a tied one is also the output projection and is packed with it.
        model_weights.push(&mut output);
        let arena = if packing_enabled() {
            pack_weights(&gguf, &mut model_weights)?
        } else {
            None
        };
        if tied {
            tok_embd.packed = output.packed.clone();
        }
        let c = &config;
        let rope_factors = rope_factors(&gguf, c)?;
        let rope_full = full_rope(c, &rope_factors, c.ctx_train);
        // Sliding-window layers: their own base and scale, no frequency factors (llama.cpp
        // hands them to every layer, but no architecture here has both).
        let rope_swa = Rope::scaled(
            c.rope_style,
            c.rope_dim,
            c.rope_base_swa,
            RopeScaling {
                freq_scale: c.rope_scale_swa,
                factors: None,
                ..scaling(c)
            },
        );
        Ok(Model {
            gguf,
            arena,
            config,
            tok_embd,
            output,
            output_norm,
            layers,
            rope_full,
            rope_swa,
            rope_factors,
            exact: false,
        })
    }
}

/// The RoPE frequency factors a file carries (`rot_dim / 2` divisors, one per rotated pair).
#[derive(Debug)]
pub(super) enum RopeFactors {
    None,
    /// `rope_freqs.weight`: Llama 3.1+'s factors, for every context.
    Fixed(Vec<f32>),
    /// Phi-3's `rope_factors_short.weight` and `rope_factors_long.weight`: the long ones for
    /// contexts beyond the original training context.
    LongShort {
        long: Vec<f32>,
        short: Vec<f32>,
    },
}

fn rope_factors(g: &Gguf, c: &Config) -> Result<RopeFactors> {
    let n = c.rope_dim / 2;
    if g.tensor("rope_freqs.weight").is_some() {
        return Ok(RopeFactors::Fixed(factors(g, "rope_freqs.weight", n)?));
    }
    match (
        g.tensor("rope_factors_long.weight"),
        g.tensor("rope_factors_short.weight"),
    ) {
        (None, None) => Ok(RopeFactors::None),
        _ => Ok(RopeFactors::LongShort {
            long: factors(g, "rope_factors_long.weight", n)?,
            short: factors(g, "rope_factors_short.weight", n)?,
        }),
    }
}

/// Frequency factors: divisors of angles, so each must be a finite number above zero.
fn factors(g: &Gguf, name: &str, n: usize) -> Result<Vec<f32>> {
    let v = vector(g, name, n)?;
    if let Some(bad) = v.iter().find(|f| !(f.is_finite() && **f > 0.0)) {
        return Err(Error::BadHyperParameter {
            key: name.to_string(),
            value: bad.to_string(),
            why: "RoPE frequency factors must be finite numbers above zero",
        });
    }
    Ok(v)
}

/// The configuration's RoPE scaling, without frequency factors.
fn scaling(c: &Config) -> RopeScaling {
    RopeScaling {
        freq_scale: c.rope_scale,
        ext_factor: c.rope_ext_factor,
        attn_factor: c.rope_attn_factor,
        orig_ctx: c.rope_orig_ctx,
        beta_fast: c.rope_beta_fast,
        beta_slow: c.rope_beta_slow,
        factors: None,
    }
}

/// RoPE of the full-attention layers for contexts of `n_ctx` positions (llama.cpp's
/// `get_rope_factors`: the long factors once a sequence's context exceeds the original one).
pub(super) fn full_rope(c: &Config, f: &RopeFactors, n_ctx: usize) -> Rope {
    let factors = match f {
        RopeFactors::None => None,
        RopeFactors::Fixed(v) => Some(v.clone()),
        RopeFactors::LongShort { long, short } => Some(if n_ctx > c.rope_orig_ctx {
            long.clone()
        } else {
            short.clone()
        }),
    };
    Rope::scaled(
        c.rope_style,
        c.rope_dim,
        c.rope_base,
        RopeScaling {
            factors,
            ..scaling(c)
        },
    )
}

/// Layer `il`'s tensors (`blk.{il}.*`), read in the order the layer uses them, so a file
/// missing several names the first.
fn layer(g: &Gguf, c: &Config, il: usize) -> Result<Layer> {
    let n = |s: &str| format!("blk.{il}.{s}");
    // A tensor only some architectures have, read when the configuration says it is there.
    let optional = |name: &str, len: usize, on: bool| -> Result<Option<Vec<f32>>> {
        on.then(|| vector(g, &n(name), len)).transpose()
    };
    let q_dim = c.n_head * c.head_dim;
    let attn_norm = vector(g, &n("attn_norm.weight"), c.n_embd)?;
    let (wq, wk, wv) =
        if g.tensor(&n("attn_q.weight")).is_none() && g.tensor(&n("attn_qkv.weight")).is_some() {
            // One tensor, Q's rows then K's then V's (llama.cpp's `build_qkv` views).
            let [wq, wk, wv] = split(
                weight(
                    g,
                    &n("attn_qkv.weight"),
                    c.n_embd,
                    q_dim + c.kv_dim_k() + c.kv_dim_v(),
                )?,
                [q_dim, c.kv_dim_k(), c.kv_dim_v()],
            );
            (wq, wk, wv)
        } else {
            (
                weight(g, &n("attn_q.weight"), c.n_embd, q_dim)?,
                weight(g, &n("attn_k.weight"), c.n_embd, c.kv_dim_k())?,
                weight(g, &n("attn_v.weight"), c.n_embd, c.kv_dim_v())?,
            )
        };
    let wo = weight(
        g,
        &n("attn_output.weight"),
        c.n_head * c.v_head_dim,
        c.n_embd,
    )?;
    let bias = if c.qkv_bias {
        Some(QkvBias {
            bq: vector(g, &n("attn_q.bias"), q_dim)?,
            bk: vector(g, &n("attn_k.bias"), c.kv_dim_k())?,
            bv: vector(g, &n("attn_v.bias"), c.kv_dim_v())?,
        })
    } else {
        None
    };
    let qk_norm = if c.qk_norm {
        Some(QkNorm {
            q_norm: vector(g, &n("attn_q_norm.weight"), c.head_dim)?,
            k_norm: vector(g, &n("attn_k_norm.weight"), c.head_dim)?,
        })
    } else {
        None
    };
    let attn_post_norm = optional("post_attention_norm.weight", c.n_embd, c.post_norms)?;
    let ffn_norm = vector(g, &n("ffn_norm.weight"), c.n_embd)?;
    let ffn = match &c.experts {
        Some(x) => FeedForward::Moe(Box::new(Moe::load(g, c, x, il)?)),
        None if c.fused_gate_up => {
            // Gate rows first, then up (ggml's `swiglu` of one tensor: silu of its first half
            // times its second).
            let [gate, up] = split(
                weight(g, &n("ffn_up.weight"), c.n_embd, 2 * c.n_ff)?,
                [c.n_ff, c.n_ff],
            );
            FeedForward::Dense {
                gate,
                up,
                down: weight(g, &n("ffn_down.weight"), c.n_ff, c.n_embd)?,
            }
        }
        None => FeedForward::Dense {
            gate: weight(g, &n("ffn_gate.weight"), c.n_embd, c.n_ff)?,
            up: weight(g, &n("ffn_up.weight"), c.n_embd, c.n_ff)?,
            down: weight(g, &n("ffn_down.weight"), c.n_ff, c.n_embd)?,
        },
    };
    let ffn_post_norm = optional("post_ffw_norm.weight", c.n_embd, c.post_norms)?;
    Ok(Layer {
        attn_norm,
        attn: Attention {
            wq,
            wk,
            wv,
            wo,
            bias,
            qk_norm,
        },
        attn_post_norm,
        ffn_norm,
        ffn,
        ffn_post_norm,
    })
}

/// A fused tensor's weight cut into consecutive runs of `rows` rows.
fn split<const N: usize>(whole: Weight, rows: [usize; N]) -> [Weight; N] {
    let mut first = whole.first_row;
    rows.map(|r| {
        let w = Weight {
            first_row: first,
            rows: r,
            ..whole.clone()
        };
        first += r;
        w
    })
}

pub(super) fn find<'a>(g: &'a Gguf, name: &str) -> Result<&'a TensorInfo> {
    g.tensor(name)
        .ok_or_else(|| Error::MissingTensor(name.to_string()))
}

fn dim(t: &TensorInfo, i: usize) -> u64 {
    t.dims.get(i).copied().unwrap_or(1)
}

/// A weight of `cols` inputs and `rows` outputs (GGUF dims `[cols, rows]`).
pub(super) fn weight(g: &Gguf, name: &str, cols: usize, rows: usize) -> Result<Weight> {
    let info = find(g, name)?;
    if dim(info, 0) as usize != cols || dim(info, 1) as usize != rows || info.dims.len() > 2 {
        return Err(Error::BadShape {
            name: name.to_string(),
            expected: vec![cols as u64, rows as u64],
            found: info.dims.clone(),
        });
    }
    if !hearth_kernels::is_supported(info.ty) {
        return Err(Error::UnsupportedTensorType {
            name: name.to_string(),
            ty: info.ty,
            supported: hearth_kernels::SUPPORTED
                .iter()
                .map(|t| t.name())
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    let index = g
        .tensors()
        .iter()
        .position(|t| t.name == name)
        .ok_or_else(|| Error::MissingTensor(name.to_string()))?;
    Ok(Weight {
        index,
        ty: info.ty,
        rows,
        cols,
        first_row: 0,
        packed: None,
    })
}

/// A small vector (norm weights, biases) decoded to f32.
fn vector(g: &Gguf, name: &str, len: usize) -> Result<Vec<f32>> {
    let info = find(g, name)?;
    if info.n_elements() != len as u64 {
        return Err(Error::BadShape {
            name: name.to_string(),
            expected: vec![len as u64],
            found: info.dims.clone(),
        });
    }
    let mut out = vec![0f32; len];
    hearth_kernels::dequantize_row(info.ty, g.tensor_data(info), &mut out)?;
    Ok(out)
}
