//! Llama (Touvron et al. 2023, "LLaMA: Open and Efficient Foundation Language Models"), also
//! SmolLM2, Llama 2/3 and Mistral: pre-RMSNorm decoder, rotary embeddings on adjacent pairs
//! (the GGUF converter permutes Q/K rows for that layout), grouped-query attention, SwiGLU.

use hearth_gguf::Metadata;

use crate::arch::experts::Rule;
use crate::config::{Activation, Config, RopeStyle, Shapes};
use crate::Result;

/// Mixtral (Jiang et al. 2024, "Mixtral of Experts") is this block with a mixture of experts
/// (`llama.expert_count`): top-2 of 8, a softmax over the two chosen router logits (llama.cpp:
/// a softmax over all, then the chosen two divided by their sum, which is the same).
pub(crate) const EXPERTS: Rule = Rule {
    norm_weights: true,
    shared: false,
};

pub fn config(md: &Metadata, shapes: &Shapes) -> Result<Config> {
    let mut c = Config::common(md, "llama", shapes)?;
    c.rope_style = RopeStyle::Interleaved;
    c.activation = Activation::Silu;
    Ok(c)
}
