//! Phi-3 and Phi-4 (Abdin et al. 2024, "Phi-3 Technical Report"): the llama block with
//! - Q, K and V in one `attn_qkv` tensor and the feed-forward's gate and up in one `ffn_up`
//!   (gate rows first), as the GGUF converter writes them;
//! - rotary on halves, possibly on part of each head (`rope.dimension_count`, Phi-4-mini);
//! - queries scaled by 1/√head_dim after RoPE, with no further scaling of the scores;
//! - for the 128k models, "LongRoPE" (Ding et al. 2024): per-pair frequency divisors
//!   `rope_factors_short` within the original context and `rope_factors_long` beyond it
//!   (llama.cpp chooses per context, from `rope.scaling.original_context_length`), and
//!   cosines and sines times `rope.scaling.attn_factor`.
//!
//! llama.cpp disables the sliding window some Phi-3 files declare; so does Hearth, so the two
//! compute the same thing.

use hearth_gguf::Metadata;

use crate::config::{Activation, Config, RopeStyle, Shapes};
use crate::Result;

pub fn config(md: &Metadata, shapes: &Shapes) -> Result<Config> {
    // `ffn_up` holds the gate's rows and the up projection's: twice the feed-forward width.
    let shapes = Shapes {
        ff_rows: shapes.ff_rows.map(|r| r / 2),
        ..shapes.clone()
    };
    let mut c = Config::common(md, "phi3", &shapes)?;
    c.rope_style = RopeStyle::Halves;
    c.activation = Activation::Silu;
    c.fused_gate_up = true;
    c.q_scale = 1.0 / (c.head_dim as f32).sqrt();
    c.attn_scale = 1.0;
    Ok(c)
}
