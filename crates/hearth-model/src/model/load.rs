//! Reading a GGUF file into a [`Model`]: the configuration from its metadata, then every
//! tensor the configuration implies, its shape and type checked before use.

use hearth_gguf::{Gguf, TensorInfo};

use super::pack::{pack_weights, packing_enabled};
use super::{Layer, Model, Weight};
use crate::ops::Rope;
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
        let q_dim = c.n_head * c.head_dim;
        let mut layers = Vec::with_capacity(c.n_layer);
        for i in 0..c.n_layer {
            let n = |s: &str| format!("blk.{i}.{s}");
            let opt_vec = |name: &str, len: usize, on: bool| -> Result<Option<Vec<f32>>> {
                if on {
                    vector(&gguf, &n(name), len).map(Some)
                } else {
                    Ok(None)
                }
            };
            layers.push(Layer {
                attn_norm: vector(&gguf, &n("attn_norm.weight"), c.n_embd)?,
                wq: weight(&gguf, &n("attn_q.weight"), c.n_embd, q_dim)?,
                wk: weight(&gguf, &n("attn_k.weight"), c.n_embd, c.kv_dim_k())?,
                wv: weight(&gguf, &n("attn_v.weight"), c.n_embd, c.kv_dim_v())?,
                wo: weight(
                    &gguf,
                    &n("attn_output.weight"),
                    c.n_head * c.v_head_dim,
                    c.n_embd,
                )?,
                bq: opt_vec("attn_q.bias", q_dim, c.qkv_bias)?,
                bk: opt_vec("attn_k.bias", c.kv_dim_k(), c.qkv_bias)?,
                bv: opt_vec("attn_v.bias", c.kv_dim_v(), c.qkv_bias)?,
                q_norm: opt_vec("attn_q_norm.weight", c.head_dim, c.qk_norm)?,
                k_norm: opt_vec("attn_k_norm.weight", c.head_dim, c.qk_norm)?,
                attn_post_norm: opt_vec("post_attention_norm.weight", c.n_embd, c.post_norms)?,
                ffn_norm: vector(&gguf, &n("ffn_norm.weight"), c.n_embd)?,
                gate: weight(&gguf, &n("ffn_gate.weight"), c.n_embd, c.n_ff)?,
                up: weight(&gguf, &n("ffn_up.weight"), c.n_embd, c.n_ff)?,
                down: weight(&gguf, &n("ffn_down.weight"), c.n_ff, c.n_embd)?,
                ffn_post_norm: opt_vec("post_ffw_norm.weight", c.n_embd, c.post_norms)?,
            });
        }
        let tied = output.index == tok_embd.index;
        let mut model_weights: Vec<&mut Weight> = Vec::new();
        for l in &mut layers {
            let Layer {
                wq,
                wk,
                wv,
                wo,
                gate,
                up,
                down,
                ..
            } = l;
            model_weights.extend([wq, wk, wv, wo, gate, up, down]);
        }
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
        let rope_full = Rope::new(c.rope_style, c.rope_dim, c.rope_base, c.rope_scale);
        let rope_swa = Rope::new(c.rope_style, c.rope_dim, c.rope_base_swa, 1.0);
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
            exact: false,
        })
    }
}

fn find<'a>(g: &'a Gguf, name: &str) -> Result<&'a TensorInfo> {
    g.tensor(name)
        .ok_or_else(|| Error::MissingTensor(name.to_string()))
}

fn dim(t: &TensorInfo, i: usize) -> u64 {
    t.dims.get(i).copied().unwrap_or(1)
}

/// A weight of `cols` inputs and `rows` outputs (GGUF dims `[cols, rows]`).
fn weight(g: &Gguf, name: &str, cols: usize, rows: usize) -> Result<Weight> {
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
