//! `POST /v1/chat/completions`: messages through the chat template (tools and structured output
//! through `tools.rs`), then the reply whole or as `chat.completion.chunk` events.

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

use super::tools::ToolPlan;
use super::{check_n, fingerprint, ChatRequest, Content, StopSpec, TokenLogprob, Usage};
use crate::body::{body, parse_body_async};
use crate::error::{ApiError, AppResult};
use crate::generation::offload;
use crate::generation::{
    check_model, collect, data, max_tokens, new_id, sampler, sse, start_generation, stops,
    unix_time, Generation, Piece, Plan,
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
    let req: ChatRequest = parse_body_async(raw).await?;
    let served = state.served();
    check_model(&state, &served, &req.model)?;
    check_n(req.n)?;
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
        (Some(n), _) => ("max_completion_tokens", Some(n)),
        (None, n) => ("max_tokens", n),
    };
    let max_tokens = max_tokens(&served, prompt.len(), param, asked)?;
    let constraint = tools.constraint(&served, &req)?;
    let plan = Plan {
        prompt,
        max_tokens,
        stops: stops(req.stop.clone().map(StopSpec::into_vec))?,
        sampler: sampler(&served, &req.sampling())?,
        logprobs,
        constraint,
    };
    let guard = state.metrics.enter();
    let gen = start_generation(&state, &served, plan)?;
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
            tools,
        };
        tokio::spawn(async move {
            let _guard = guard;
            ctx.run(gen, tx).await;
        });
        return Ok(sse(rx));
    }
    let _guard = guard;
    let (text, lps, finish, gen) = collect(gen).await?;
    let (content, calls) = tools.finish(&text);
    let finish_reason = if calls.is_empty() {
        finish
    } else {
        "tool_calls"
    };
    let mut message = json!({"role": "assistant", "content": content});
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    let usage = Usage::new(gen.prompt_tokens, gen.completion_tokens, gen.cached_tokens);
    Ok(Json(json!({
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": served.model_id,
        "system_fingerprint": fingerprint(),
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": logprobs.map(|_| json!({"content": lps, "refusal": null})),
            "finish_reason": finish_reason,
        }],
        "usage": usage,
    }))
    .into_response())
}

struct ChatStream {
    id: String,
    created: u64,
    model: String,
    include_usage: bool,
    logprobs: bool,
    tools: ToolPlan,
}

impl ChatStream {
    fn chunk(
        &self,
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
                "index": 0,
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

    async fn run(self, mut gen: Generation, tx: mpsc::Sender<SseEvent>) {
        // Every send failing means the client left: returning drops `gen`, which cancels.
        if tx
            .send(data(&self.chunk(
                json!({"role": "assistant", "content": ""}),
                None,
                None,
            )))
            .await
            .is_err()
        {
            return;
        }
        let mut stream_tools = self.tools.streamer();
        let mut finish = "stop";
        while let Some(piece) = gen.next().await {
            match piece {
                Err(e) => {
                    let _ = tx.send(SseEvent::default().data(e.body_json())).await;
                    return;
                }
                Ok(Piece::Done { finish_reason }) => finish = finish_reason,
                Ok(Piece::Queued { .. }) => {}
                Ok(Piece::Text { text, logprobs }) => {
                    let out = stream_tools.push(&text);
                    let lp = self.logprobs.then_some(logprobs);
                    for delta in out.deltas(lp) {
                        if tx
                            .send(data(&self.chunk(delta.0, delta.1, None)))
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                }
            }
        }
        let tail = stream_tools.finish();
        let called = tail.called;
        for delta in tail.deltas(None) {
            if tx
                .send(data(&self.chunk(delta.0, delta.1, None)))
                .await
                .is_err()
            {
                return;
            }
        }
        let finish = if called { "tool_calls" } else { finish };
        if tx
            .send(data(&self.chunk(json!({}), None, Some(finish))))
            .await
            .is_err()
        {
            return;
        }
        if self.include_usage {
            let usage = Usage::new(gen.prompt_tokens, gen.completion_tokens, gen.cached_tokens);
            let v = json!({
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "system_fingerprint": fingerprint(),
                "choices": [],
                "usage": usage,
            });
            if tx.send(data(&v)).await.is_err() {
                return;
            }
        }
        let _ = tx.send(SseEvent::default().data("[DONE]")).await;
    }
}
