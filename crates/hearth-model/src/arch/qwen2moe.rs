//! Qwen2-MoE (Qwen1.5-MoE-A2.7B, Qwen2-57B-A14B): the Qwen2 block (Q/K/V biases, rotary on
//! halves) with a mixture of experts in every layer: a softmax over all experts' router logits
//! and the top `expert_used_count` weighted by their probabilities as they are (not
//! renormalised), plus a shared expert every token runs, a gated MLP whose output is scaled by
//! `sigmoid(ffn_gate_inp_shexp · x)`.

use hearth_gguf::Metadata;

use crate::arch::experts::Rule;
use crate::config::{Activation, Config, RopeStyle, Shapes};
use crate::Result;

pub(crate) const EXPERTS: Rule = Rule {
    norm_weights: false,
    shared: true,
};

pub fn config(md: &Metadata, shapes: &Shapes) -> Result<Config> {
    let mut c = Config::common(md, "qwen2moe", shapes)?;
    c.rope_style = RopeStyle::Halves;
    c.activation = Activation::Silu;
    c.qkv_bias = true;
    Ok(c)
}
