//! `POST /v1/completions`: text continued from a prompt (text or token ids), whole or streamed,
//! with the endpoint's older logprobs shape.

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

use super::{check_n, fingerprint, CompletionRequest, Prompt, StopSpec, TokenLogprob, Usage};
use crate::body::{body, parse_body_async};
use crate::error::{ApiError, AppResult};
use crate::generation::offload;
use crate::generation::{
    check_model, collect, data, max_tokens, new_id, sampler, sse, start_generation, stops,
    unix_time, Piece, Plan,
};
use crate::AppState;

pub(crate) async fn completions(
    State(state): State<Arc<AppState>>,
    raw: Result<Bytes, BytesRejection>,
) -> AppResult<Response> {
    let raw = body(&state, raw)?;
    let req: CompletionRequest = parse_body_async(raw).await?;
    let served = state.served();
    check_model(&state, &served, &req.model)?;
    check_n(req.n)?;
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
    let prompt: Vec<u32> = match &req.prompt {
        Prompt::Text(t) => offload::encode(&served, t).await?,
        Prompt::Texts(v) if v.len() == 1 => offload::encode(&served, &v[0]).await?,
        Prompt::Tokens(ids) => ids.clone(),
        Prompt::TokenLists(v) if v.len() == 1 => v[0].clone(),
        _ => {
            return Err(ApiError::invalid(
                "prompt",
                "one prompt per request: send several requests for several prompts",
            ))
        }
    };
    if prompt.is_empty() {
        return Err(ApiError::invalid("prompt", "the prompt is empty"));
    }
    if let Some(&bad) = prompt.iter().find(|&&t| t as usize >= served.n_vocab) {
        return Err(ApiError::invalid(
            "prompt",
            format!(
                "token id {bad} is out of range: the vocabulary has {} tokens",
                served.n_vocab
            ),
        ));
    }
    // OpenAI's completions default is 16 tokens.
    let max_tokens = max_tokens(
        &served,
        prompt.len(),
        "max_tokens",
        Some(req.max_tokens.unwrap_or(16)),
    )?;
    let plan = Plan {
        prompt,
        max_tokens,
        stops: stops(req.stop.clone().map(StopSpec::into_vec))?,
        sampler: sampler(&served, &req.sampling())?,
        logprobs,
        constraint: None,
    };
    let guard = state.metrics.enter();
    let mut gen = start_generation(&state, &served, plan)?;
    let id = new_id("cmpl");
    let created = unix_time(SystemTime::now());
    let model = served.model_id.clone();
    let chunk = move |text: &str, lps: Option<Value>, finish: Option<&str>| {
        json!({
            "id": id,
            "object": "text_completion",
            "created": created,
            "model": model,
            "system_fingerprint": fingerprint(),
            "choices": [{"index": 0, "text": text, "logprobs": lps, "finish_reason": finish}],
        })
    };
    if req.stream.unwrap_or(false) {
        let include_usage = req.stream_options.as_ref().is_some_and(|o| o.include_usage);
        let (tx, rx) = mpsc::channel::<SseEvent>(64);
        tokio::spawn(async move {
            let _guard = guard;
            let mut finish = "stop";
            let mut offset = 0;
            while let Some(piece) = gen.next().await {
                let ev = match piece {
                    Err(e) => {
                        let _ = tx.send(SseEvent::default().data(e.body_json())).await;
                        return;
                    }
                    Ok(Piece::Done { finish_reason }) => {
                        finish = finish_reason;
                        continue;
                    }
                    Ok(Piece::Queued { .. }) => continue,
                    Ok(Piece::Text {
                        text,
                        logprobs: lps,
                    }) => {
                        let lp = logprobs.map(|_| legacy_logprobs(&lps, &mut offset));
                        chunk(&text, lp, None)
                    }
                };
                if tx.send(data(&ev)).await.is_err() {
                    return;
                }
            }
            let mut last = chunk("", None, Some(finish));
            if include_usage {
                last["usage"] = json!(Usage::new(
                    gen.prompt_tokens,
                    gen.completion_tokens,
                    gen.cached_tokens
                ));
            }
            if tx.send(data(&last)).await.is_ok() {
                let _ = tx.send(SseEvent::default().data("[DONE]")).await;
            }
        });
        return Ok(sse(rx));
    }
    let _guard = guard;
    let (text, lps, finish, gen) = collect(gen).await?;
    let mut offset = 0;
    let lp = logprobs.map(|_| legacy_logprobs(&lps, &mut offset));
    let mut v = chunk(&text, lp, Some(finish));
    v["usage"] = json!(Usage::new(
        gen.prompt_tokens,
        gen.completion_tokens,
        gen.cached_tokens
    ));
    Ok(Json(v).into_response())
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
