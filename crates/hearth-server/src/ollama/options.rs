//! Ollama's `options` onto Hearth's sampler, length and stop strings.
//!
//! Options that only concern how Ollama loads or runs a model (`num_gpu`, `num_thread`,
//! `use_mmap`, `num_batch`...) and ones Ollama itself no longer reads (`tfs_z`,
//! `penalize_newline`) are ignored, as Ollama ignores options it does not know. Options that
//! would change the answer and that Hearth cannot honour are refused with a 400 that names
//! them: Mirostat, `typical_p` below 1, and a `num_ctx` larger than the context the server runs.

use hearth_model::SamplerConfig;
use serde::Deserialize;

use crate::error::{ApiError, AppResult};
use crate::generation::{max_tokens, sampler, stops, SamplingFields};
use crate::Served;

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Options {
    #[serde(default)]
    pub num_ctx: Option<i64>,
    #[serde(default)]
    pub num_predict: Option<i64>,
    #[serde(default)]
    pub temperature: Option<f32>,
    #[serde(default)]
    pub top_k: Option<i64>,
    #[serde(default)]
    pub top_p: Option<f32>,
    #[serde(default)]
    pub min_p: Option<f32>,
    #[serde(default)]
    pub typical_p: Option<f32>,
    #[serde(default)]
    pub seed: Option<i64>,
    #[serde(default)]
    pub repeat_penalty: Option<f32>,
    #[serde(default)]
    pub repeat_last_n: Option<i64>,
    #[serde(default)]
    pub presence_penalty: Option<f32>,
    #[serde(default)]
    pub frequency_penalty: Option<f32>,
    #[serde(default)]
    pub mirostat: Option<i64>,
    #[serde(default)]
    pub stop: Option<Vec<String>>,
}

/// What the options make of one generation.
pub(crate) struct Shaped {
    pub sampler: SamplerConfig,
    pub max_tokens: usize,
    pub stops: Vec<String>,
}

/// The checks that need no prompt: done before the template runs, so a refused option costs
/// nothing.
pub(crate) fn check(served: &Served, o: &Options) -> AppResult<()> {
    match o.num_ctx {
        Some(n) if n < 1 => {
            return Err(ApiError::invalid(
                "options.num_ctx",
                format!("`options.num_ctx` must be at least 1; got {n}"),
            ))
        }
        Some(n) if n as u64 > served.ctx as u64 => {
            return Err(ApiError::invalid(
                "options.num_ctx",
                format!(
                    "`options.num_ctx` = {n} is larger than the {} tokens of context this server runs with: Hearth serves one context for every request, set when it starts (`hearth serve --ctx N`). Send num_ctx {} or less, or leave it out.",
                    served.ctx, served.ctx
                ),
            ))
        }
        _ => {}
    }
    if let Some(m) = o.mirostat.filter(|&m| m != 0) {
        return Err(ApiError::invalid(
            "options.mirostat",
            format!("`options.mirostat` = {m} is not supported: Hearth samples with temperature, top_k, top_p and min_p. Leave mirostat at 0."),
        ));
    }
    if let Some(p) = o.typical_p.filter(|&p| p < 1.0) {
        return Err(ApiError::invalid(
            "options.typical_p",
            format!("`options.typical_p` = {p} is not supported: Hearth has no locally typical sampling. Leave typical_p at 1 (off), or use top_p or min_p."),
        ));
    }
    Ok(())
}

/// The sampler, length and stops for a prompt of `prompt_len` tokens.
pub(crate) fn shape(served: &Served, o: &Options, prompt_len: usize) -> AppResult<Shaped> {
    check(served, o)?;
    let fields = SamplingFields {
        temperature: o.temperature,
        top_p: o.top_p,
        // Ollama (llama.cpp) draws a random seed for a negative one.
        seed: o.seed.filter(|&s| s >= 0),
        presence_penalty: o.presence_penalty,
        frequency_penalty: o.frequency_penalty,
        logit_bias: None,
        // 0 or less turns top-k off, as in llama.cpp.
        top_k: o.top_k.map(|k| k.max(0) as usize),
        min_p: o.min_p,
        repeat_penalty: o.repeat_penalty,
    };
    let mut sampler = sampler(served, &fields).map_err(under_options)?;
    if let Some(n) = o.repeat_last_n {
        // -1: the whole context, as in Ollama; more than the context is the whole context too.
        sampler.penalty_last_n = if n < 0 {
            served.ctx
        } else {
            (n as u64).min(served.ctx as u64) as usize
        };
    }
    // num_predict: 0 or less means "until the context is full", as in Ollama's runner.
    let asked = o.num_predict.filter(|&n| n > 0).map(|n| n as u64);
    let mut max = max_tokens(served, prompt_len, "options.num_predict", asked)?;
    if let Some(n) = o.num_ctx {
        let n = n as usize;
        if prompt_len >= n {
            return Err(ApiError::invalid(
                "options.num_ctx",
                format!("the prompt is {prompt_len} tokens; `options.num_ctx` is {n}. Shorten the conversation or raise num_ctx (this server runs {} tokens).", served.ctx),
            )
            .with_code("context_length_exceeded"));
        }
        max = max.min(n - prompt_len);
    }
    Ok(Shaped {
        sampler,
        max_tokens: max,
        stops: stops(o.stop.clone()).map_err(under_options)?,
    })
}

/// A sampler field's error, named as Ollama clients send it (`options.temperature`), in the
/// message too: Ollama's error shape has nowhere else to name it.
fn under_options(mut e: ApiError) -> ApiError {
    if let Some(p) = e.param.take() {
        let (bare, named) = (format!("`{p}`"), format!("`options.{p}`"));
        e.message = if e.message.contains(&bare) {
            e.message.replace(&bare, &named)
        } else {
            format!("{named}: {}", e.message)
        };
        e.param = Some(format!("options.{p}"));
    }
    e
}
