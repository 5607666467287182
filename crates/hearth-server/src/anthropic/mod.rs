//! The Anthropic Messages API: `POST /v1/messages` (whole or streamed with Anthropic's event
//! types) and `POST /v1/messages/count_tokens`, so apps written for Claude's API run against
//! Hearth unchanged.
//!
//! Requests map onto the same chat template and tool-call plan as OpenAI's chat
//! (`request.rs`), and run on the shared generation core; only the shapes are Anthropic's:
//! content blocks (`text`, `tool_use`, `tool_result`), `stop_reason`, the SSE events
//! (`stream.rs`) and errors (`error.rs`). What Hearth cannot do (images, documents, extended
//! thinking, server tools) is a 400 that names the field.

mod error;
mod request;
mod stream;
mod types;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::response::sse::Event as SseEvent;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use tokio::sync::mpsc;

pub(crate) use error::response as error_response;
use types::MessagesRequest;

use crate::body::{body, parse_body_async};
use crate::error::{ApiError, AppResult};
use crate::generation::{
    check_model, collect, max_tokens, sampler, sse, start_generation, stops, Generation, Plan,
    SamplingFields,
};
use crate::AppState;

/// Anthropic's limit on `stop_sequences` is larger; Hearth's stop-string matcher takes 16.
const MAX_STOPS: usize = 16;

fn message_id() -> String {
    format!("msg_{:024x}", rand::random::<u128>() >> 32)
}

fn tool_use_id() -> String {
    format!("toolu_{:024x}", rand::random::<u128>() >> 32)
}

/// `POST /v1/messages`.
pub(crate) async fn messages(
    State(state): State<Arc<AppState>>,
    raw: Result<Bytes, BytesRejection>,
) -> Response {
    match messages_inner(state, raw).await {
        Ok(r) => r,
        Err(e) => error_response(&e),
    }
}

/// `POST /v1/messages/count_tokens`: the prompt's length, as the model would read it.
pub(crate) async fn count_tokens(
    State(state): State<Arc<AppState>>,
    raw: Result<Bytes, BytesRejection>,
) -> Response {
    let inner = async {
        let req: MessagesRequest = parse_body_async(body(&state, raw)?).await?;
        let served = state.served();
        check_model(&state, &served, &req.model)?;
        let p = request::prompt(&served, &req).await?;
        Ok::<_, ApiError>(Json(json!({"input_tokens": p.tokens.len()})).into_response())
    };
    match inner.await {
        Ok(r) => r,
        Err(e) => error_response(&e),
    }
}

async fn messages_inner(
    state: Arc<AppState>,
    raw: Result<Bytes, BytesRejection>,
) -> AppResult<Response> {
    let req: MessagesRequest = parse_body_async(body(&state, raw)?).await?;
    let served = state.served();
    check_model(&state, &served, &req.model)?;
    // Anthropic requires it (there is no "as long as the context allows").
    let asked = req
        .max_tokens
        .ok_or_else(|| ApiError::invalid("max_tokens", "Field required"))?;
    let stop_list = req.stop_sequences.clone().unwrap_or_default();
    if stop_list.len() > MAX_STOPS {
        return Err(ApiError::invalid(
            "stop_sequences",
            format!(
                "Hearth takes at most {MAX_STOPS} `stop_sequences`; got {}",
                stop_list.len()
            ),
        ));
    }
    if let Some(t) = req.temperature {
        // Anthropic's range (OpenAI's goes to 2).
        if !(0.0..=1.0).contains(&t) {
            return Err(ApiError::invalid(
                "temperature",
                format!("`temperature` must be between 0 and 1; got {t}"),
            ));
        }
    }
    let p = request::prompt(&served, &req).await?;
    if p.tokens.len() >= served.ctx {
        // Anthropic's own wording, which its clients and apps look for.
        return Err(ApiError::bad_request(format!(
                "prompt is too long: {} tokens > {} maximum (the context Hearth serves with; start it with a larger --ctx)",
                p.tokens.len(),
                served.ctx - 1
        )));
    }
    let prompt_len = p.tokens.len();
    let room_bound = max_tokens(&served, prompt_len, "max_tokens", Some(asked))?;
    let plan = Plan {
        max_tokens: room_bound,
        stops: stops(Some(stop_list))?,
        sampler: sampler(
            &served,
            &SamplingFields {
                temperature: req.temperature,
                top_p: req.top_p,
                top_k: req.top_k,
                ..SamplingFields::default()
            },
        )?,
        logprobs: None,
        constraint: p
            .tools
            .constraint(&served, &p.chat)
            .map_err(anthropic_names)?,
        prompt: p.tokens,
    };
    let guard = state.metrics.enter();
    let gen = start_generation(&state, &served, plan)?;
    let reply = Reply {
        id: message_id(),
        model: served.model_id.clone(),
        one_call: p.one_call,
        // The context, not `max_tokens`, is what will cut a reply that runs to the end.
        context_bound: (room_bound as u64) < asked,
    };
    if req.stream.unwrap_or(false) {
        let (tx, rx) = mpsc::channel::<SseEvent>(64);
        let tools = p.tools;
        tokio::spawn(async move {
            let _guard = guard;
            stream::run(reply, tools, gen, tx).await;
        });
        return Ok(sse(rx));
    }
    let _guard = guard;
    let (text, _, finish, gen) = collect(gen).await?;
    let (content, calls) = p.tools.finish(&text);
    let mut blocks = Vec::new();
    if let Some(t) = content.as_str().filter(|t| !t.is_empty()) {
        blocks.push(json!({"type": "text", "text": t}));
    }
    let calls = if reply.one_call && !calls.is_empty() {
        &calls[..1]
    } else {
        &calls[..]
    };
    for c in calls {
        let (name, input) = call_parts(c);
        blocks.push(json!({"type": "tool_use", "id": tool_use_id(), "name": name, "input": input}));
    }
    if blocks.is_empty() {
        blocks.push(json!({"type": "text", "text": ""}));
    }
    let (stop_reason, stop_sequence) = reply.stop_reason(finish, !calls.is_empty(), &gen);
    Ok(Json(json!({
        "id": reply.id,
        "type": "message",
        "role": "assistant",
        "model": reply.model,
        "content": blocks,
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "usage": usage(&gen),
    }))
    .into_response())
}

/// The tool-call plan names OpenAI's fields; these are their Anthropic names.
fn anthropic_names(mut e: ApiError) -> ApiError {
    if e.param
        .as_deref()
        .is_some_and(|p| p.starts_with("response_format"))
    {
        e.param = Some("output_config.format.schema".into());
    }
    e
}

/// What the stream and the whole reply share.
pub(crate) struct Reply {
    id: String,
    model: String,
    one_call: bool,
    context_bound: bool,
}

impl Reply {
    /// `stop_reason` and `stop_sequence` from how the generation ended.
    fn stop_reason(&self, finish: &str, called: bool, gen: &Generation) -> (&'static str, Value) {
        if called {
            return ("tool_use", Value::Null);
        }
        match (&gen.stop_sequence, finish) {
            (_, "length") if self.context_bound => ("model_context_window_exceeded", Value::Null),
            (_, "length") => ("max_tokens", Value::Null),
            (Some(s), _) => ("stop_sequence", Value::String(s.clone())),
            _ => ("end_turn", Value::Null),
        }
    }
}

/// A parsed call (OpenAI's shape, arguments as JSON text) as `tool_use`'s name and input object.
fn call_parts(c: &Value) -> (Value, Value) {
    let f = &c["function"];
    let input = f["arguments"]
        .as_str()
        .and_then(|a| serde_json::from_str::<Value>(a).ok())
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({}));
    (f["name"].clone(), input)
}

fn usage(gen: &Generation) -> Value {
    json!({
        "input_tokens": gen.prompt_tokens,
        "output_tokens": gen.completion_tokens,
        // Hearth's prefix cache reuses earlier prompts' blocks by itself, with no separate
        // write to pay for.
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": gen.cached_tokens,
    })
}
