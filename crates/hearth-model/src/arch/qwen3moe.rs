//! Qwen3-MoE (Qwen team 2025, "Qwen3 Technical Report"; Qwen3-30B-A3B, Qwen3-235B-A22B): the
//! Qwen3 block (QK-norm, rotary on halves, no biases) with a mixture of experts in every layer:
//! a softmax over all experts' router logits, the top `expert_used_count`, their weights divided
//! by their sum (the model's `norm_topk_prob`; a file's `qwen3moe.expert_weights_norm` overrides
//! it), no shared expert.

use hearth_gguf::Metadata;

use crate::arch::experts::Rule;
use crate::config::{Activation, Config, RopeStyle, Shapes};
use crate::Result;

pub(crate) const EXPERTS: Rule = Rule {
    norm_weights: true,
    shared: false,
};

pub fn config(md: &Metadata, shapes: &Shapes) -> Result<Config> {
    let mut c = Config::common(md, "qwen3moe", shapes)?;
    c.rope_style = RopeStyle::Halves;
    c.activation = Activation::Silu;
    c.qk_norm = true;
    Ok(c)
}
