//! Llama (Touvron et al. 2023, "LLaMA: Open and Efficient Foundation Language Models"), also
//! SmolLM2, Llama 2/3 and Mistral: pre-RMSNorm decoder, rotary embeddings on adjacent pairs
//! (the GGUF converter permutes Q/K rows for that layout), grouped-query attention, SwiGLU.

use hearth_gguf::Metadata;

use crate::config::{Activation, Config, RopeStyle, Shapes};
use crate::Result;

pub fn config(md: &Metadata, shapes: &Shapes) -> Result<Config> {
    let mut c = Config::common(md, "llama", shapes)?;
    c.rope_style = RopeStyle::Interleaved;
    c.activation = Activation::Silu;
    Ok(c)
}
