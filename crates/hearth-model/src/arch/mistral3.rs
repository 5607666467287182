//! Mistral's newer dense models (Ministral 3, Mistral Small 3.x as converted by llama.cpp's
//! `mistral3`): the llama block (rotary on adjacent pairs, SwiGLU, grouped-query attention)
//! with, where the file declares them:
//! - YaRN scaling with its own `rope.scaling.yarn_beta_fast`/`_slow` and
//!   `yarn_log_multiplier` (llama.cpp reads these keys for this architecture only);
//! - Llama 4's attention temperature (`attention.temperature_scale`): queries at position `p`
//!   times `1 + scale · ln(⌊p / n⌋ + 1)` after RoPE, `n` the original context.

use hearth_gguf::Metadata;

use crate::config::{
    positive, sane, yarn_attn_factor, Activation, AttnTemperature, Config, Keys, RopeScaling,
    RopeStyle, Shapes,
};
use crate::Result;

pub fn config(md: &Metadata, shapes: &Shapes) -> Result<Config> {
    let mut c = Config::common(md, "mistral3", shapes)?;
    let k = Keys {
        md,
        arch: "mistral3",
    };
    c.rope_style = RopeStyle::Interleaved;
    c.activation = Activation::Silu;
    if let Some(b) = k.opt_f32("rope.scaling.yarn_beta_fast")? {
        positive(k.key("rope.scaling.yarn_beta_fast"), b)?;
        c.rope_beta_fast = b;
    }
    if let Some(b) = k.opt_f32("rope.scaling.yarn_beta_slow")? {
        positive(k.key("rope.scaling.yarn_beta_slow"), b)?;
        c.rope_beta_slow = b;
    }
    let log_mul = k
        .opt_f32("rope.scaling.yarn_log_multiplier")?
        .unwrap_or(0.0);
    sane(
        log_mul.is_finite() && log_mul >= 0.0,
        k.key("rope.scaling.yarn_log_multiplier"),
        log_mul,
        "must be a finite number, zero or above",
    )?;
    if c.rope_scaling == RopeScaling::Yarn && log_mul != 0.0 {
        let file_factor = k.opt_f32("rope.scaling.attn_factor")?.unwrap_or(1.0);
        c.rope_attn_factor = yarn_attn_factor(c.rope_scale, log_mul) * file_factor;
    }
    let temp = k.opt_f32("attention.temperature_scale")?.unwrap_or(0.0);
    sane(
        temp.is_finite(),
        k.key("attention.temperature_scale"),
        temp,
        "must be a finite number",
    )?;
    if temp != 0.0 {
        c.attn_temperature = Some(AttnTemperature {
            scale: temp,
            floor: c.rope_orig_ctx,
        });
    }
    Ok(c)
}
