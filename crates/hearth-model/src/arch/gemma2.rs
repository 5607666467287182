//! Gemma 2 (Gemma Team 2024, "Gemma 2: Improving Open Language Models at a Practical Size").
//!
//! Differences from the llama block, each matching llama.cpp's `gemma2` graph:
//! - token embeddings are multiplied by √d_model, and the output is the embedding table (tied);
//! - RMS norms on the attention and feed-forward outputs before each residual add ("post
//!   norms"; the GGUF converter already folded Gemma's `1 + w` into the stored weights), but no
//!   per-head norms on queries and keys (Gemma 3 added those);
//! - GeGLU with the tanh approximation of GELU;
//! - local/global attention alternating: even layers see a sliding window (4096 by default),
//!   odd layers everything;
//! - attention scores soft-capped before softmax, `50 · tanh(s / 50)`, and the final logits
//!   `30 · tanh(z / 30)` (`attn_logit_softcapping`, `final_logit_softcapping`);
//! - rotary on halves; queries scaled by 1/√head_dim after RoPE (1/√(d_model/n_head) for the
//!   27B), with no further scaling of the scores.

use hearth_gguf::Metadata;

use crate::config::{positive, Activation, Config, Keys, RopeStyle, Shapes};
use crate::Result;

pub fn config(md: &Metadata, shapes: &Shapes) -> Result<Config> {
    let mut c = Config::common(md, "gemma2", shapes)?;
    let k = Keys { md, arch: "gemma2" };
    c.rope_style = RopeStyle::Halves;
    c.activation = Activation::GeluTanh;
    c.post_norms = true;
    c.embd_scale = (c.n_embd as f32).sqrt();
    // llama.cpp: the 27B (46 layers) scales by d_model / n_head, every other size by head_dim.
    let q_den = if c.n_layer == 46 {
        c.n_embd / c.n_head
    } else {
        c.head_dim
    };
    c.q_scale = 1.0 / (q_den as f32).sqrt();
    c.attn_scale = 1.0;
    // llama.cpp: local layers share the global base and scale unless `rope.freq_base_swa` says.
    c.rope_base_swa = k.opt_f32("rope.freq_base_swa")?.unwrap_or(c.rope_base);
    positive(k.key("rope.freq_base_swa"), c.rope_base_swa)?;
    c.rope_scale_swa = c.rope_scale;
    // llama.cpp: a window of 4096 and a pattern of 2 (local, global, local, ...) unless the
    // file says otherwise.
    let window = k.opt_usize("attention.sliding_window")?.unwrap_or(4096);
    if window > 0 {
        c.sliding_window = Some(window);
        let pattern = k
            .opt_usize("attention.sliding_window_pattern")?
            .unwrap_or(2);
        c.layer_is_swa = (0..c.n_layer)
            .map(|il| pattern == 0 || il % pattern < pattern - 1)
            .collect();
    }
    let attn_cap = k.opt_f32("attn_logit_softcapping")?.unwrap_or(50.0);
    positive(k.key("attn_logit_softcapping"), attn_cap)?;
    c.attn_softcap = Some(attn_cap);
    let final_cap = k.opt_f32("final_logit_softcapping")?.unwrap_or(30.0);
    positive(k.key("final_logit_softcapping"), final_cap)?;
    c.final_logit_softcap = Some(final_cap);
    Ok(c)
}
