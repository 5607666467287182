//! Routes and handlers of the OpenAI-compatible API.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Request as HttpRequest, State};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::sse::Event as SseEvent;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hearth_model::chat::ChatMessage;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::body::body;
use crate::body::parse_body_async;
use crate::error::{ApiError, AppResult};
use crate::generation::{
    check_model, collect, data, max_tokens, new_id, sampler, sse, start_generation, stops,
    unix_time, Generation, Piece, Plan,
};
use crate::openai::{
    ChatRequest, CompletionRequest, Content, Prompt, StopSpec, TokenLogprob, Usage,
};
use crate::AppState;

pub fn router(state: Arc<AppState>) -> Router {
    let limit = state.body_limit;
    let v1 = Router::new()
        .route("/v1/models", get(models))
        .route("/v1/models/{id}", get(model_info))
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/completions", post(completions))
        .route("/v1/embeddings", post(crate::embeddings::embeddings))
        // Metrics show what the household asks and how often: the same rule as the API.
        .route("/metrics", get(metrics))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_key));
    let mut app = Router::new().merge(v1).route("/health", get(health));
    app = if state.household.is_some() {
        app.merge(crate::household::router())
    } else {
        app.fallback(not_found)
    };
    app.layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::access::guard,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), log_request))
        .with_state(state)
}

/// One log line and one metrics count per request.
async fn log_request(State(state): State<Arc<AppState>>, req: HttpRequest, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let started = Instant::now();
    let resp = next.run(req).await;
    let status = resp.status();
    // Known paths only, so a scanner cannot grow the metrics without bound.
    let endpoint = match path.as_str() {
        "/v1/chat/completions"
        | "/v1/completions"
        | "/v1/embeddings"
        | "/v1/models"
        | "/health"
        | "/metrics" => path.as_str(),
        p if p.starts_with("/v1/models/") => "/v1/models/{id}",
        _ => "other",
    };
    state.metrics.request(endpoint, status.as_u16());
    tracing::info!(
        "{method} {path} {} {:.1}ms",
        status.as_u16(),
        started.elapsed().as_secs_f64() * 1e3
    );
    resp
}

async fn require_key(State(state): State<Arc<AppState>>, req: HttpRequest, next: Next) -> Response {
    if v1_allowed(&state, req.headers()) {
        return next.run(req).await;
    }
    let message = match (crate::auth::bearer(req.headers()).is_some(), state.household.is_some()) {
        (true, _) => "Incorrect API key provided.",
        (false, false) => "This server requires an API key: send it as `Authorization: Bearer KEY`.",
        (false, true) => "This server requires an API key: the household's owner creates one in Settings → Apps; send it as `Authorization: Bearer KEY`.",
    };
    ApiError::unauthorized(message).into_response()
}

/// The `/v1` rule (also `/metrics`): a configured key always works; with a household, so do its
/// API keys and a logged-in session that sends its CSRF token, and once the household is set up nothing else does (not even on
/// loopback); without a household, [`crate::Auth`] decides alone.
fn v1_allowed(state: &AppState, headers: &axum::http::HeaderMap) -> bool {
    if state.auth.required() && state.auth.allows(headers) {
        return true;
    }
    let Some(h) = state.household.as_ref() else {
        return state.auth.allows(headers);
    };
    if let Some(key) = crate::auth::bearer(headers) {
        if h.store.verify_api_key(key).unwrap_or(false) {
            return true;
        }
    }
    // The page's session works too, with its CSRF token: a cookie alone would let any page
    // the person visits use the API in their name.
    if crate::household::session_with_csrf(h, headers).is_some() {
        return true;
    }
    !h.is_set_up() && state.auth.open()
}

async fn not_found(req: HttpRequest) -> ApiError {
    ApiError::not_found(format!(
        "no route for {} {}",
        req.method(),
        req.uri().path()
    ))
}

async fn health(State(state): State<Arc<AppState>>) -> Json<Value> {
    let served = state.served();
    Json(json!({
        "status": if state.shutting_down.load(Ordering::Relaxed) { "stopping" } else { "ok" },
        "model": served.model_id,
        "ctx": served.ctx,
        "queue_depth": served.scheduler.queue_depth(),
    }))
}

async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

fn model_object(id: &str, created: u64) -> Value {
    json!({"id": id, "object": "model", "created": created, "owned_by": "hearth"})
}

async fn models(State(state): State<Arc<AppState>>) -> Json<Value> {
    let created = unix_time(state.started);
    let mut data = vec![model_object(&state.served().model_id, created)];
    if let Some(e) = &state.embed {
        data.push(model_object(&e.id, created));
    }
    Json(json!({"object": "list", "data": data}))
}

async fn model_info(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> AppResult<Json<Value>> {
    let served = state.served();
    if id == served.model_id || state.embed.as_ref().is_some_and(|e| e.id == id) {
        return Ok(Json(model_object(&id, unix_time(state.started))));
    }
    Err(ApiError::model_not_found(&id, &state.model_ids(&served)))
}

fn check_n(n: Option<u64>) -> AppResult<()> {
    match n {
        None | Some(1) => Ok(()),
        Some(0) => Err(ApiError::invalid("n", "`n` must be at least 1")),
        Some(n) => Err(ApiError::invalid(
            "n",
            format!("n = {n} is not supported: Hearth returns one choice per request; send {n} requests instead (with different seeds)"),
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// Chat

fn chat_messages(req: &ChatRequest) -> AppResult<Vec<ChatMessage>> {
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

async fn chat_completions(
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
    let tools = crate::tools::ToolPlan::new(&served, &req)?;
    let messages = tools.prepare_messages(template, messages);
    let prompt = crate::generation::offload::chat_prompt(
        served.clone(),
        messages,
        tools.template_tools().cloned(),
    )
    .await?;
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

fn fingerprint() -> String {
    format!("hearth-{}", env!("CARGO_PKG_VERSION"))
}

struct ChatStream {
    id: String,
    created: u64,
    model: String,
    include_usage: bool,
    logprobs: bool,
    tools: crate::tools::ToolPlan,
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

// ---------------------------------------------------------------------------------------------
// Completions

async fn completions(
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
        Prompt::Text(t) => crate::generation::offload::encode(&served, t).await?,
        Prompt::Texts(v) if v.len() == 1 => {
            crate::generation::offload::encode(&served, &v[0]).await?
        }
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
