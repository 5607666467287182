//! `POST /v1/chat/completions`: messages through the chat template (tools and structured output
//! through `tools.rs`, legacy `functions` through `legacy.rs`), then `n` choices (`choices.rs`)
//! whole or as `chat.completion.chunk` events.

use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::response::sse::Event as SseEvent;
use axum::response::{IntoResponse, Response};
use axum::Json;
use hearth_model::chat::ChatMessage;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::choices::{self, Choices, Counts, Event};
use super::tools::{Streamer, ToolPlan};
use super::{check_n, fingerprint, legacy, ChatRequest, Content, StopSpec, TokenLogprob, Usage};
use crate::body::{body, parse_body_async};
use crate::error::{ApiError, AppResult};
use crate::generation::offload;
use crate::generation::{
    check_model, data, max_tokens, new_id, sampler, sse, stops, unix_time, Piece, Plan,
};
use crate::AppState;

/// The request's messages for the chat template (also Ollama's `/api/chat`, mapped onto a
/// [`ChatRequest`]).
pub(crate) fn chat_messages(req: &ChatRequest) -> AppResult<Vec<ChatMessage>> {
    if req.messages.is_empty() {
        return Err(ApiError::invalid(
            "messages",
            "`messages` must hold at least one message",
        ));
    }
    req.messages
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let role = match m.role.as_str() {
                "system" | "developer" => "system",
                "user" => "user",
                "assistant" => "assistant",
                "tool" => "tool",
                other => {
                    return Err(ApiError::invalid(
                        format!("messages[{i}].role"),
                        format!("unknown role {other:?}: use system, developer, user, assistant or tool"),
                    ))
                }
            };
            let content = match &m.content {
                None => None,
                Some(Content::Text(t)) => Some(t.clone()),
                Some(Content::Parts(parts)) => {
                    let mut text = String::new();
                    for (j, p) in parts.iter().enumerate() {
                        match (p.kind.as_str(), &p.text) {
                            ("text", Some(t)) => text.push_str(t),
                            ("text", None) => {
                                return Err(ApiError::invalid(
                                    format!("messages[{i}].content[{j}].text"),
                                    "a text part needs `text`",
                                ))
                            }
                            (kind, _) => {
                                return Err(ApiError::invalid(
                                    format!("messages[{i}].content[{j}].type"),
                                    format!("content parts of type {kind:?} are not supported: this model reads text only"),
                                ))
                            }
                        }
                    }
                    Some(text)
                }
            };
            if content.is_none() && m.tool_calls.is_none() {
                return Err(ApiError::invalid(
                    format!("messages[{i}].content"),
                    "a message needs `content` (or, from the assistant, `tool_calls`)",
                ));
            }
            let tool_calls = m.tool_calls.as_ref().map(|calls| {
                Value::Array(
                    calls
                        .iter()
                        .map(|c| {
                            // Templates expect the arguments as an object, as llama.cpp passes them.
                            let args = serde_json::from_str::<Value>(&c.function.arguments)
                                .unwrap_or_else(|_| Value::String(c.function.arguments.clone()));
                            json!({"id": c.id, "type": "function",
                                   "function": {"name": c.function.name, "arguments": args}})
                        })
                        .collect(),
                )
            });
            Ok(ChatMessage {
                role: role.to_string(),
                content,
                tool_calls,
                tool_call_id: m.tool_call_id.clone(),
                name: m.name.clone(),
            })
        })
        .collect()
}

pub(crate) async fn chat_completions(
    State(state): State<Arc<AppState>>,
    raw: Result<Bytes, BytesRejection>,
) -> AppResult<Response> {
    let raw = body(&state, raw)?;
    let mut req: ChatRequest = parse_body_async(raw).await?;
    let served = state.served();
    check_model(&state, &served, &req.model)?;
    let n = check_n(req.n)?;
    let legacy = legacy::map_functions(&mut req)?;
    let Some(template) = served.template.as_ref() else {
        return Err(ApiError::invalid(
            "model",
            format!("{} is a base model without a chat template: it only continues text. Use /v1/completions with it.", served.model_id),
        ));
    };
    let logprobs = match (req.logprobs.unwrap_or(false), req.top_logprobs) {
        (_, Some(n)) if n > 20 => {
            return Err(ApiError::invalid(
                "top_logprobs",
                format!("`top_logprobs` must be between 0 and 20; got {n}"),
            ))
        }
        (false, Some(_)) => {
            return Err(ApiError::invalid(
                "top_logprobs",
                "`top_logprobs` needs `logprobs: true`",
            ))
        }
        (true, n) => Some(n.unwrap_or(0) as usize),
        (false, None) => None,
    };
    let messages = chat_messages(&req)?;
    let tools = ToolPlan::new(&served, &req)?;
    let messages = tools.prepare_messages(template, messages);
    let prompt =
        offload::chat_prompt(served.clone(), messages, tools.template_tools().cloned()).await?;
    let (param, asked) = match (req.max_completion_tokens, req.max_tokens) {
        (Some(n), _) => ("max_completion_tokens", n.asked()),
        (None, n) => ("max_tokens", n.and_then(|n| n.asked())),
    };
    let max_tokens = max_tokens(&served, prompt.len(), param, asked)?;
    let stops = stops(req.stop.clone().map(StopSpec::into_vec))?;
    let sampler = sampler(&served, &req.sampling())?;
    let mut plans = Vec::with_capacity(n);
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
            constraint: tools.constraint(&served, &req)?,
        });
    }
    let guard = state.metrics.enter();
    let running = choices::start(&state, &served, plans, n).await?;
    let id = new_id("chatcmpl");
    let created = unix_time(SystemTime::now());
    if req.stream.unwrap_or(false) {
        let include_usage = req.stream_options.as_ref().is_some_and(|o| o.include_usage);
        let (tx, rx) = mpsc::channel::<SseEvent>(64);
        let ctx = ChatStream {
            id,
            created,
            model: served.model_id.clone(),
            include_usage,
            logprobs: logprobs.is_some(),
            legacy,
            tools,
        };
        tokio::spawn(async move {
            let _guard = guard;
            ctx.run(running, tx).await;
        });
        return Ok(sse(rx));
    }
    let _guard = guard;
    let (done, counts) = running.collect().await?;
    let choices: Vec<Value> = done
        .into_iter()
        .enumerate()
        .map(|(index, c)| {
            let (content, calls) = tools.finish(&c.text);
            let mut message = json!({"role": "assistant", "content": content});
            let finish_reason = match (calls.is_empty(), legacy) {
                (true, _) => c.finish,
                (false, false) => {
                    message["tool_calls"] = Value::Array(calls);
                    "tool_calls"
                }
                (false, true) => {
                    message["function_call"] = legacy::message_call(&calls).unwrap_or_default();
                    "function_call"
                }
            };
            json!({
                "index": index,
                "message": message,
                "logprobs": logprobs.map(|_| json!({"content": c.logprobs, "refusal": null})),
                "finish_reason": finish_reason,
            })
        })
        .collect();
    Ok(Json(json!({
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": served.model_id,
        "system_fingerprint": fingerprint(),
        "choices": choices,
        "usage": usage(counts),
    }))
    .into_response())
}

fn usage(c: Counts) -> Usage {
    Usage::new(c.prompt_tokens, c.completion_tokens, c.cached_tokens)
}

struct ChatStream {
    id: String,
    created: u64,
    model: String,
    include_usage: bool,
    logprobs: bool,
    /// The request used legacy `functions`: calls go out as `function_call` deltas.
    legacy: bool,
    tools: ToolPlan,
}

impl ChatStream {
    fn chunk(
        &self,
        index: usize,
        delta: Value,
        logprobs: Option<Vec<TokenLogprob>>,
        finish: Option<&str>,
    ) -> Value {
        let mut v = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": fingerprint(),
            "choices": [{
                "index": index,
                "delta": delta,
                "logprobs": logprobs.map(|c| json!({"content": c, "refusal": null})),
                "finish_reason": finish,
            }],
        });
        if self.include_usage {
            v["usage"] = Value::Null;
        }
        v
    }

    /// Sends choice `index`'s deltas; false when the client left.
    async fn send_deltas(
        &self,
        tx: &mpsc::Sender<SseEvent>,
        index: usize,
        deltas: Vec<(Value, Option<Vec<TokenLogprob>>)>,
    ) -> bool {
        for (delta, lp) in deltas {
            let delta = if self.legacy {
                match legacy::delta(delta) {
                    Some(d) => d,
                    None => continue,
                }
            } else {
                delta
            };
            if tx
                .send(data(&self.chunk(index, delta, lp, None)))
                .await
                .is_err()
            {
                return false;
            }
        }
        true
    }

    async fn run(self, mut running: Choices, tx: mpsc::Sender<SseEvent>) {
        // Every send failing means the client left: returning drops the choices, which cancels.
        let n = running.len;
        for index in 0..n {
            let role = self.chunk(
                index,
                json!({"role": "assistant", "content": ""}),
                None,
                None,
            );
            if tx.send(data(&role)).await.is_err() {
                return;
            }
        }
        let mut streamers: Vec<Streamer> = (0..n).map(|_| self.tools.streamer()).collect();
        let mut finish = vec!["stop"; n];
        let mut counts = vec![Counts::default(); n];
        let mut ended = 0;
        while ended < n {
            let Some(event) = running.next().await else {
                let e = crate::error::ApiError::internal(
                    "the engine stopped before the reply was complete",
                );
                let _ = tx.send(SseEvent::default().data(e.body_json())).await;
                return;
            };
            match event {
                Event::Failed(e) => {
                    let _ = tx.send(SseEvent::default().data(e.body_json())).await;
                    return;
                }
                Event::Piece(i, Piece::Done { finish_reason }) => finish[i] = finish_reason,
                Event::Piece(_, Piece::Queued { .. }) => {}
                Event::Piece(i, Piece::Text { text, logprobs }) => {
                    let out = streamers[i].push(&text);
                    let lp = self.logprobs.then_some(logprobs);
                    if !self.send_deltas(&tx, i, out.deltas(lp)).await {
                        return;
                    }
                }
                Event::Ended { index, counts: c } => {
                    counts[index] = c;
                    ended += 1;
                    let tail = streamers[index].finish();
                    let called = tail.called;
                    if !self.send_deltas(&tx, index, tail.deltas(None)).await {
                        return;
                    }
                    let reason = match (called, self.legacy) {
                        (false, _) => finish[index],
                        (true, false) => "tool_calls",
                        (true, true) => "function_call",
                    };
                    let last = self.chunk(index, json!({}), None, Some(reason));
                    if tx.send(data(&last)).await.is_err() {
                        return;
                    }
                }
            }
        }
        if self.include_usage {
            let v = json!({
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "system_fingerprint": fingerprint(),
                "choices": [],
                "usage": usage(running.usage(&counts)),
            });
            if tx.send(data(&v)).await.is_err() {
                return;
            }
        }
        let _ = tx.send(SseEvent::default().data("[DONE]")).await;
    }
}
