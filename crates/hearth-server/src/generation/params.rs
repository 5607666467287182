//! Request fields every API family maps onto a generation, checked one way: a bad value is a
//! 400 that names its field.

use std::collections::HashMap;

use hearth_model::SamplerConfig;

use crate::error::{ApiError, AppResult};
use crate::{AppState, Served};

/// Sampling fields shared by chat and completions (copied out of either request; the requests
/// list them inline rather than through `#[serde(flatten)]`, which would lose the field names
/// in type errors).
#[derive(Debug, Clone, Default)]
pub struct SamplingFields {
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub seed: Option<i64>,
    pub presence_penalty: Option<f32>,
    pub frequency_penalty: Option<f32>,
    pub logit_bias: Option<HashMap<String, f32>>,
    pub top_k: Option<usize>,
    pub min_p: Option<f32>,
    pub repeat_penalty: Option<f32>,
}

/// `model` must name the chat model in service.
/// The tag Ollama gives a model named without one.
pub(crate) const LATEST_TAG: &str = ":latest";

/// `name` without Ollama's default tag: `smollm2-135m:latest` is `smollm2-135m`. Ollama's API
/// lists models so, and clients that know Ollama (Open WebUI) send that name to `/v1` too: the
/// same model. Any other tag is another model.
pub(crate) fn untagged(name: &str) -> &str {
    name.strip_suffix(LATEST_TAG).unwrap_or(name)
}

pub(crate) fn check_model(state: &AppState, served: &Served, model: &str) -> AppResult<()> {
    let model = untagged(model);
    if model == served.model_id {
        Ok(())
    } else if state.embed.as_ref().is_some_and(|e| e.id == model) {
        // It exists, so "does not exist" (with itself in the list) would be wrong.
        Err(ApiError::invalid(
            "model",
            format!(
                "`{model}` is an embedding model: send it to /v1/embeddings. For text, use `{}`.",
                served.model_id
            ),
        ))
    } else {
        Err(ApiError::model_not_found(model, &state.model_ids(served)))
    }
}

fn in_range(param: &str, v: Option<f32>, lo: f32, hi: f32) -> AppResult<()> {
    match v {
        Some(x) if !(lo..=hi).contains(&x) => Err(ApiError::invalid(
            param,
            format!("`{param}` must be between {lo} and {hi}; got {x}"),
        )),
        _ => Ok(()),
    }
}

/// The request's sampling fields over the model's defaults.
pub(crate) fn sampler(state: &Served, s: &SamplingFields) -> AppResult<SamplerConfig> {
    in_range("temperature", s.temperature, 0.0, 2.0)?;
    in_range("top_p", s.top_p, 0.0, 1.0)?;
    in_range("presence_penalty", s.presence_penalty, -2.0, 2.0)?;
    in_range("frequency_penalty", s.frequency_penalty, -2.0, 2.0)?;
    in_range("min_p", s.min_p, 0.0, 1.0)?;
    in_range("repeat_penalty", s.repeat_penalty, 0.0, 10.0)?;
    let mut bias = Vec::new();
    if let Some(map) = &s.logit_bias {
        for (k, &v) in map {
            let id: u32 = k.parse().map_err(|_| {
                ApiError::invalid(
                    "logit_bias",
                    format!("`logit_bias` keys are token ids; got {k:?}"),
                )
            })?;
            if id as usize >= state.n_vocab {
                return Err(ApiError::invalid(
                    "logit_bias",
                    format!("token id {id} in `logit_bias` is out of range: the vocabulary has {} tokens", state.n_vocab),
                ));
            }
            if !(-100.0..=100.0).contains(&v) {
                return Err(ApiError::invalid(
                    "logit_bias",
                    format!(
                        "`logit_bias` values must be between -100 and 100; got {v} for token {id}"
                    ),
                ));
            }
            bias.push((id, v));
        }
        // HashMap order is random; the sampler adds in this order, so fix it.
        bias.sort_by_key(|b| b.0);
    }
    let d = &state.defaults;
    Ok(SamplerConfig {
        temperature: s.temperature.unwrap_or(d.temperature),
        top_p: s.top_p.unwrap_or(d.top_p),
        top_k: s.top_k.unwrap_or(d.top_k),
        min_p: s.min_p.unwrap_or(d.min_p),
        repeat_penalty: s.repeat_penalty.unwrap_or(d.repeat_penalty),
        presence_penalty: s.presence_penalty.unwrap_or(0.0),
        frequency_penalty: s.frequency_penalty.unwrap_or(0.0),
        logit_bias: bias,
        seed: s.seed.map_or_else(rand::random, |v| v as u64),
        ..d.clone()
    })
}

/// The tokens to generate: what `param` asks for, at most what the context has room for.
pub(crate) fn max_tokens(
    state: &Served,
    prompt_len: usize,
    param: &str,
    asked: Option<u64>,
) -> AppResult<usize> {
    max_tokens_in(state, "messages", prompt_len, param, asked)
}

/// [`max_tokens`] for a prompt held in the request field `prompt_param` (named by the error
/// when the prompt leaves no room).
pub(crate) fn max_tokens_in(
    state: &Served,
    prompt_param: &str,
    prompt_len: usize,
    param: &str,
    asked: Option<u64>,
) -> AppResult<usize> {
    if prompt_len >= state.ctx {
        return Err(ApiError::context_overflow_in(
            prompt_param,
            prompt_len,
            state.ctx,
        ));
    }
    let room = state.ctx - prompt_len;
    match asked {
        Some(0) => Err(ApiError::invalid(
            param,
            format!("`{param}` must be at least 1"),
        )),
        Some(n) => Ok((n.min(usize::MAX as u64) as usize).min(room)),
        None => Ok(room),
    }
}

/// The request's stop strings (16 at most).
pub(crate) fn stops(stop: Option<Vec<String>>) -> AppResult<Vec<String>> {
    let v = stop.unwrap_or_default();
    if v.len() > 16 {
        return Err(ApiError::invalid(
            "stop",
            format!("at most 16 stop sequences; got {}", v.len()),
        ));
    }
    Ok(v)
}
