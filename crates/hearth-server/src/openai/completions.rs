//! `POST /v1/completions`: text continued from a prompt (text or token ids, one or a list of
//! them) in `n` choices per prompt (`choices.rs`), whole or streamed, with the endpoint's older
//! logprobs shape.

use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::response::sse::Event as SseEvent;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::choices::{self, Counts, Event};
use super::{check_n, fingerprint, CompletionRequest, Prompt, StopSpec, TokenLogprob, Usage};
use crate::body::{body, parse_body_async};
use crate::error::{ApiError, AppResult};
use crate::generation::offload;
use crate::generation::{
    check_model, data, max_tokens_in, new_id, sampler, sse, stops, unix_time, Piece, Plan,
};

/// Most choices (prompts × `n`) one request may ask for: each is a sequence in the batch, and
/// a request that asks for more than the engine runs at once only waits in the queue.
const MAX_CHOICES: usize = 32;
use crate::AppState;

pub(crate) async fn completions(
    State(state): State<Arc<AppState>>,
    raw: Result<Bytes, BytesRejection>,
) -> AppResult<Response> {
    let raw = body(&state, raw)?;
    let req: CompletionRequest = parse_body_async(raw).await?;
    let served = state.served();
    check_model(&state, &served, &req.model)?;
    let n = check_n(req.n)?;
    if req.best_of.is_some_and(|b| b > 1) {
        return Err(ApiError::invalid(
            "best_of",
            "`best_of` > 1 is not supported",
        ));
    }
    if req.echo.unwrap_or(false) {
        return Err(ApiError::invalid("echo", "`echo` is not supported"));
    }
    if req.suffix.as_deref().is_some_and(|s| !s.is_empty()) {
        return Err(ApiError::invalid(
            "suffix",
            "`suffix` (fill-in-the-middle) is not supported",
        ));
    }
    let logprobs = match req.logprobs {
        Some(n) if n > 5 => {
            return Err(ApiError::invalid(
                "logprobs",
                format!("`logprobs` must be between 0 and 5; got {n}"),
            ))
        }
        n => n.map(|n| n as usize),
    };
    let texts_or_ids: Vec<Result<&str, &[u32]>> = match &req.prompt {
        Prompt::Text(t) => vec![Ok(t)],
        Prompt::Texts(v) => v.iter().map(|t| Ok(t.as_str())).collect(),
        Prompt::Tokens(ids) => vec![Err(ids)],
        Prompt::TokenLists(v) => v.iter().map(|ids| Err(ids.as_slice())).collect(),
    };
    if texts_or_ids.is_empty() {
        return Err(ApiError::invalid(
            "prompt",
            "`prompt` must hold at least one prompt",
        ));
    }
    if texts_or_ids.len() * n > MAX_CHOICES {
        return Err(ApiError::invalid(
            "prompt",
            format!(
                "{} prompts × n = {n} asks for {} choices; at most {MAX_CHOICES} per request. Send several requests.",
                texts_or_ids.len(),
                texts_or_ids.len() * n
            ),
        ));
    }
    let many = texts_or_ids.len() > 1;
    // A list of prompts names each one in its errors, as `prompt[i]`.
    let param = |i: usize| {
        if many {
            format!("prompt[{i}]")
        } else {
            "prompt".to_string()
        }
    };
    let stops = stops(req.stop.clone().map(StopSpec::into_vec))?;
    let sampler = sampler(&served, &req.sampling())?;
    let mut plans = Vec::with_capacity(texts_or_ids.len() * n);
    for (i, p) in texts_or_ids.into_iter().enumerate() {
        let prompt = match p {
            Ok(text) => offload::encode(&served, text).await?,
            Err(ids) => ids.to_vec(),
        };
        if prompt.is_empty() {
            return Err(ApiError::invalid(param(i), "the prompt is empty"));
        }
        if let Some(&bad) = prompt.iter().find(|&&t| t as usize >= served.n_vocab) {
            return Err(ApiError::invalid(
                param(i),
                format!(
                    "token id {bad} is out of range: the vocabulary has {} tokens",
                    served.n_vocab
                ),
            ));
        }
        // OpenAI's completions default is 16 tokens; -1 asks for what the context has room for.
        let asked = match req.max_tokens {
            None => Some(16),
            Some(limit) => limit.asked(),
        };
        let max_tokens = max_tokens_in(&served, &param(i), prompt.len(), "max_tokens", asked)?;
        for j in 0..n {
            plans.push(Plan {
                prompt: prompt.clone(),
                max_tokens,
                stops: stops.clone(),
                // Each choice draws its own sample; with a seed, the whole set repeats.
                sampler: hearth_model::SamplerConfig {
                    seed: sampler.seed.wrapping_add(j as u64),
                    ..sampler.clone()
                },
                logprobs,
                constraint: None,
            });
        }
    }
    let guard = state.metrics.enter();
    let mut running = choices::start(&state, &served, plans, n).await?;
    let id = new_id("cmpl");
    let created = unix_time(SystemTime::now());
    let model = served.model_id.clone();
    let chunk = move |index: usize, text: &str, lps: Option<Value>, finish: Option<&str>| {
        json!({
            "id": id,
            "object": "text_completion",
            "created": created,
            "model": model,
            "system_fingerprint": fingerprint(),
            "choices": [{"index": index, "text": text, "logprobs": lps, "finish_reason": finish}],
        })
    };
    if req.stream.unwrap_or(false) {
        let include_usage = req.stream_options.as_ref().is_some_and(|o| o.include_usage);
        let (tx, rx) = mpsc::channel::<SseEvent>(64);
        tokio::spawn(async move {
            let _guard = guard;
            let len = running.len;
            let mut finish = vec!["stop"; len];
            let mut offsets = vec![0; len];
            let mut counts = vec![Counts::default(); len];
            let mut ended = 0;
            while ended < len {
                let Some(event) = running.next().await else {
                    let e = ApiError::internal("the engine stopped before the reply was complete");
                    let _ = tx.send(SseEvent::default().data(e.body_json())).await;
                    return;
                };
                let ev = match event {
                    Event::Failed(e) => {
                        let _ = tx.send(SseEvent::default().data(e.body_json())).await;
                        return;
                    }
                    Event::Piece(i, Piece::Done { finish_reason }) => {
                        finish[i] = finish_reason;
                        continue;
                    }
                    Event::Piece(_, Piece::Queued { .. }) => continue,
                    Event::Piece(
                        i,
                        Piece::Text {
                            text,
                            logprobs: lps,
                        },
                    ) => {
                        let lp = logprobs.map(|_| legacy_logprobs(&lps, &mut offsets[i]));
                        chunk(i, &text, lp, None)
                    }
                    Event::Ended { index, counts: c } => {
                        counts[index] = c;
                        ended += 1;
                        chunk(index, "", None, Some(finish[index]))
                    }
                };
                if tx.send(data(&ev)).await.is_err() {
                    return;
                }
            }
            if include_usage {
                // OpenAI sends usage in a chunk of its own after the choices' last ones.
                let mut last = chunk(0, "", None, None);
                last["choices"] = json!([]);
                last["usage"] = json!(usage(running.usage(&counts)));
                if tx.send(data(&last)).await.is_err() {
                    return;
                }
            }
            let _ = tx.send(SseEvent::default().data("[DONE]")).await;
        });
        return Ok(sse(rx));
    }
    let _guard = guard;
    let (done, counts) = running.collect().await?;
    let choices: Vec<Value> = done
        .into_iter()
        .enumerate()
        .map(|(index, c)| {
            let mut offset = 0;
            let lp = logprobs.map(|_| legacy_logprobs(&c.logprobs, &mut offset));
            chunk(index, &c.text, lp, Some(c.finish))["choices"][0].clone()
        })
        .collect();
    let mut v = chunk(0, "", None, None);
    v["choices"] = Value::Array(choices);
    v["usage"] = json!(usage(counts));
    Ok(Json(v).into_response())
}

fn usage(c: Counts) -> Usage {
    Usage::new(c.prompt_tokens, c.completion_tokens, c.cached_tokens)
}

/// The completions endpoint's older logprobs shape.
fn legacy_logprobs(lps: &[TokenLogprob], offset: &mut usize) -> Value {
    let mut tokens = Vec::new();
    let mut token_logprobs = Vec::new();
    let mut top = Vec::new();
    let mut offsets = Vec::new();
    for lp in lps {
        tokens.push(lp.token.clone());
        token_logprobs.push(lp.logprob);
        let mut m = serde_json::Map::new();
        for t in &lp.top_logprobs {
            m.insert(t.token.clone(), json!(t.logprob));
        }
        top.push(Value::Object(m));
        offsets.push(*offset);
        *offset += lp.token.len();
    }
    json!({"tokens": tokens, "token_logprobs": token_logprobs, "top_logprobs": top, "text_offset": offsets})
}
