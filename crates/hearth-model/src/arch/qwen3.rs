//! Qwen3 (Qwen team 2025, "Qwen3 Technical Report"): no projection biases; per-head RMS norms on
//! queries and keys before rotary embeddings ("QK-norm"); rotary on halves.

use hearth_gguf::Metadata;

use crate::config::{Activation, Config, RopeStyle, Shapes};
use crate::Result;

pub fn config(md: &Metadata, shapes: &Shapes) -> Result<Config> {
    let mut c = Config::common(md, "qwen3", shapes)?;
    c.rope_style = RopeStyle::Halves;
    c.activation = Activation::Silu;
    c.qk_norm = true;
    Ok(c)
}
