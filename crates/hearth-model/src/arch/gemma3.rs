//! Gemma 3 (Gemma Team 2025, "Gemma 3 Technical Report").
//!
//! Differences from the llama block, each matching llama.cpp's `gemma3` graph:
//! - token embeddings are multiplied by √d_model;
//! - RMS norms on queries and keys per head (QK-norm), and on the attention and feed-forward
//!   outputs before each residual add ("post norms"); the GGUF converter already folded Gemma's
//!   `1 + w` norm convention into the stored weights;
//! - GeGLU with the tanh approximation of GELU;
//! - local/global attention: five sliding-window layers, then one global layer (layers 5, 11, 17
//!   of the 270M are global); a key j is visible to query i on local layers iff i − j < window;
//! - RoPE base 10 000 on local layers and `rope.freq_base` (1 000 000) on global ones, on halves;
//! - queries scaled by 1/√head_dim after RoPE (1/√(d_model/n_head) for the 27B only), with no
//!   further scaling of the scores.

use hearth_gguf::Metadata;

use crate::config::{positive, Activation, Config, Keys, RopeStyle, Shapes};
use crate::Result;

pub fn config(md: &Metadata, shapes: &Shapes) -> Result<Config> {
    let mut c = Config::common(md, "gemma3", shapes)?;
    let k = Keys { md, arch: "gemma3" };
    c.rope_style = RopeStyle::Halves;
    c.activation = Activation::GeluTanh;
    c.qk_norm = true;
    c.post_norms = true;
    c.embd_scale = (c.n_embd as f32).sqrt();
    // llama.cpp: the 27B (62 layers) scales by d_model / n_head, every other size by head_dim.
    let q_den = if c.n_layer == 62 {
        c.n_embd / c.n_head
    } else {
        c.head_dim
    };
    c.q_scale = 1.0 / (q_den as f32).sqrt();
    c.attn_scale = 1.0;
    // llama.cpp: local layers use base 10 000 unless `rope.freq_base_swa` says otherwise, and
    // no linear scaling.
    c.rope_base_swa = k.opt_f32("rope.freq_base_swa")?.unwrap_or(10_000.0);
    positive(k.key("rope.freq_base_swa"), c.rope_base_swa)?;
    if let Some(window) = k.opt_usize("attention.sliding_window")?.filter(|w| *w > 0) {
        c.sliding_window = Some(window);
        // llama.cpp: a pattern of 6 (five local layers, then a global one) unless the file says.
        let pattern = k
            .opt_usize("attention.sliding_window_pattern")?
            .unwrap_or(6);
        c.layer_is_swa = (0..c.n_layer)
            .map(|il| pattern == 0 || il % pattern < pattern - 1)
            .collect();
    }
    c.final_logit_softcap = k.opt_f32("final_logit_softcapping")?.filter(|v| *v != 0.0);
    if let Some(cap) = c.final_logit_softcap {
        positive(k.key("final_logit_softcapping"), cap)?;
    }
    Ok(c)
}
