//! Qwen2 / Qwen2.5 (Yang et al. 2024, "Qwen2 Technical Report"): the llama block with biases on
//! the Q, K and V projections and rotary embeddings on halves ("NeoX" style).

use hearth_gguf::Metadata;

use crate::config::{Activation, Config, RopeStyle, Shapes};
use crate::Result;

pub fn config(md: &Metadata, shapes: &Shapes) -> Result<Config> {
    let mut c = Config::common(md, "qwen2", shapes)?;
    c.rope_style = RopeStyle::Halves;
    c.activation = Activation::Silu;
    c.qkv_bias = true;
    Ok(c)
}
