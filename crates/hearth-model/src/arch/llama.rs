//! Llama (Touvron et al. 2023, "LLaMA: Open and Efficient Foundation Language Models"), also
//! SmolLM2, Llama 2/3 and Mistral: pre-RMSNorm decoder, rotary embeddings on adjacent pairs
//! (the GGUF converter permutes Q/K rows for that layout), grouped-query attention, SwiGLU.

use hearth_gguf::Metadata;

use crate::config::{Activation, Config, RopeStyle};
use crate::Result;

pub fn config(md: &Metadata, n_vocab: usize) -> Result<Config> {
    let mut c = Config::common(md, "llama", n_vocab)?;
    c.rope_style = RopeStyle::Interleaved;
    c.activation = Activation::Silu;
    Ok(c)
}
