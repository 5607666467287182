//! OpenAI's Responses API: `POST /v1/responses`, `GET` and `DELETE /v1/responses/{id}`,
//! `GET /v1/responses/{id}/input_items`.
//!
//! A request becomes the same [`Plan`] a chat completion makes (`plan.rs`: items to chat
//! messages, tools and `text.format` through chat's tool-call plan), runs on the shared
//! generation core, and answers as a `response` object or as Responses' typed stream events
//! (`stream.rs`). Wire shapes and input normalization are in `wire.rs`.
//!
//! Stored responses (`store`, true unless the request says false) are what
//! `previous_response_id` continues from: the earlier conversation, input and output, never the
//! earlier `instructions` (as OpenAI does). They belong to the caller that made them
//! ([`Caller::owner`]): another caller's id is a 404 like a missing one. `store.rs` keeps them
//! in the household's database, or without a household in memory (the newest
//! [`store::MEMORY_LIMIT`]).

mod plan;
mod store;
mod stream;
mod wire;

use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::response::sse::Event as SseEvent;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::mpsc;

pub use store::MemoryResponses;

use crate::auth::Caller;
use crate::body::{body, parse_body_async};
use crate::error::{ApiError, AppResult};
use crate::generation::offload;
use crate::generation::{
    check_model, collect, max_tokens, sampler, sse, start_generation, unix_time, Plan,
    SamplingFields,
};
use crate::AppState;
use store::Record;
use wire::{function_call_item, message_item, random_id, ResponsesRequest};

/// The request's fields that every `response` object echoes, and where it will be stored.
#[derive(Clone)]
pub(crate) struct Shell {
    id: String,
    created: i64,
    model: String,
    instructions: Option<String>,
    tools: Value,
    tool_choice: Value,
    text: Value,
    temperature: f32,
    top_p: f32,
    max_output_tokens: Option<u64>,
    metadata: Value,
    previous_response_id: Option<String>,
    store: bool,
    parallel_tool_calls: bool,
    /// Who stores it (when `store`), the conversation before it, and its own input.
    owner: String,
    context: Vec<Value>,
    input: Vec<Value>,
}

/// Token counts for `usage`.
pub(crate) struct Counts {
    prompt: usize,
    completion: usize,
    cached: usize,
}

impl Shell {
    /// The `response` object: `status` "in_progress" (no usage yet), "completed" or
    /// "incomplete" (cut by the token limit).
    fn object(&self, status: &str, output: &[Value], counts: Option<&Counts>) -> Value {
        let usage = counts.map(|c| {
            json!({
                "input_tokens": c.prompt,
                "input_tokens_details": {"cached_tokens": c.cached, "cache_write_tokens": 0},
                "output_tokens": c.completion,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": c.prompt + c.completion,
            })
        });
        let done = status != "in_progress";
        json!({
            "id": self.id,
            "object": "response",
            "created_at": self.created,
            "completed_at": if status == "completed" { json!(unix_time(SystemTime::now())) } else { Value::Null },
            "status": status,
            "background": false,
            "error": null,
            "incomplete_details": if status == "incomplete" { json!({"reason": "max_output_tokens"}) } else { Value::Null },
            "instructions": self.instructions,
            "max_output_tokens": self.max_output_tokens,
            "model": self.model,
            "output": output,
            "parallel_tool_calls": self.parallel_tool_calls,
            "previous_response_id": self.previous_response_id,
            "reasoning": {"effort": null, "summary": null},
            "store": self.store,
            "temperature": self.temperature,
            "text": self.text,
            "tool_choice": self.tool_choice,
            "tools": self.tools,
            "top_p": self.top_p,
            "truncation": "disabled",
            "usage": if done { usage.unwrap_or(Value::Null) } else { Value::Null },
            "metadata": self.metadata,
        })
    }

    /// Keeps the finished response for `previous_response_id` and `GET`, unless `store: false`.
    fn keep(&self, state: &AppState, response: &Value) -> AppResult<()> {
        if !self.store {
            return Ok(());
        }
        store::save(
            state,
            &self.owner,
            Record {
                id: self.id.clone(),
                created: self.created,
                context: self.context.clone(),
                input: self.input.clone(),
                response: response.clone(),
            },
        )
    }
}

/// The output items of a finished reply: its text as a message (unless the reply was only
/// calls), then its calls.
pub(crate) fn output_items(content: &Value, calls: &[Value], status: &str) -> Vec<Value> {
    let mut out = Vec::new();
    if let Some(text) = content
        .as_str()
        .filter(|t| !t.is_empty() || calls.is_empty())
    {
        out.push(message_item(random_id("msg"), "assistant", text, status));
    }
    for c in calls {
        out.push(call_item(c));
    }
    out
}

/// A chat-shaped tool call (`{"id", "function": {"name", "arguments"}}`) as an output item.
pub(crate) fn call_item(c: &Value) -> Value {
    let f = &c["function"];
    function_call_item(
        random_id("fc"),
        c["id"].as_str().unwrap_or(""),
        f["name"].as_str().unwrap_or(""),
        f["arguments"].as_str().unwrap_or(""),
    )
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("Response with id '{id}' not found."))
}

pub(crate) async fn create(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    raw: Result<Bytes, BytesRejection>,
) -> AppResult<Response> {
    let raw = body(&state, raw)?;
    let req: ResponsesRequest = parse_body_async(raw).await?;
    wire::refuse_unsupported(&req)?;
    let served = state.served();
    check_model(&state, &served, &req.model)?;
    let Some(template) = served.template.as_ref() else {
        return Err(ApiError::invalid(
            "model",
            format!("{} is a base model without a chat template: it only continues text. Use /v1/completions with it.", served.model_id),
        ));
    };
    let owner = caller.owner();
    let input = wire::normalize_input(req.input.as_ref())?;
    let context = match &req.previous_response_id {
        None => Vec::new(),
        Some(id) => match store::load(&state, &owner, id)? {
            Some(prev) => prev.conversation(),
            None => {
                return Err(ApiError {
                    param: Some("previous_response_id".into()),
                    ..ApiError::not_found(format!("Previous response with id '{id}' not found."))
                })
            }
        },
    };
    wire::check_outputs_answer_calls(&context, &input)?;
    let chat = plan::chat_request(&req)?;
    let tools = plan::tool_plan(&served, &chat)?;
    let mut items = context.clone();
    items.extend(input.iter().cloned());
    let messages = plan::chat_messages(req.instructions.as_deref(), &items);
    if messages.is_empty() {
        return Err(ApiError::invalid(
            "input",
            "the conversation is empty: `input` needs at least one item",
        ));
    }
    let messages = tools.prepare_messages(template, messages);
    let prompt =
        offload::chat_prompt(served.clone(), messages, tools.template_tools().cloned()).await?;
    let max_tokens = max_tokens(
        &served,
        prompt.len(),
        "max_output_tokens",
        req.max_output_tokens,
    )?;
    let constraint = tools
        .constraint(&served, &chat)
        .map_err(plan::responses_names)?;
    let sampler = sampler(
        &served,
        &SamplingFields {
            temperature: req.temperature,
            top_p: req.top_p,
            seed: req.seed,
            ..SamplingFields::default()
        },
    )?;
    let shell = Shell {
        id: random_id("resp"),
        created: unix_time(SystemTime::now()) as i64,
        model: served.model_id.clone(),
        instructions: req.instructions.clone(),
        tools: Value::Array(
            req.tools
                .iter()
                .flatten()
                .map(|t| {
                    json!({"type": "function", "name": t["name"],
                       "description": t.get("description").cloned().unwrap_or(Value::Null),
                       "parameters": t.get("parameters").cloned().unwrap_or(Value::Null),
                       "strict": t.get("strict").cloned().unwrap_or(json!(true))})
                })
                .collect(),
        ),
        tool_choice: req.tool_choice.clone().unwrap_or(json!("auto")),
        text: json!({"format": req.text.as_ref().and_then(|t| t.format.clone())
            .unwrap_or_else(|| json!({"type": "text"})), "verbosity": "medium"}),
        temperature: sampler.temperature,
        top_p: sampler.top_p,
        max_output_tokens: req.max_output_tokens,
        metadata: json!(req.metadata.clone().unwrap_or_default()),
        previous_response_id: req.previous_response_id.clone(),
        store: req.store.unwrap_or(true),
        parallel_tool_calls: req.parallel_tool_calls.unwrap_or(true),
        owner,
        context,
        input,
    };
    let plan = Plan {
        prompt,
        max_tokens,
        stops: Vec::new(),
        sampler,
        logprobs: None,
        constraint,
    };
    let guard = state.metrics.enter();
    let gen = start_generation(&state, &served, plan)?;
    if req.stream.unwrap_or(false) {
        let (tx, rx) = mpsc::channel::<SseEvent>(64);
        let run = stream::ResponseStream::new(shell, tools, state.clone(), tx);
        tokio::spawn(async move {
            let _guard = guard;
            run.run(gen).await;
        });
        return Ok(sse(rx));
    }
    let _guard = guard;
    let (text, _, finish, gen) = collect(gen).await?;
    let (content, calls) = tools.finish(&text);
    let status = if finish == "length" && calls.is_empty() {
        "incomplete"
    } else {
        "completed"
    };
    let output = output_items(&content, &calls, status);
    let counts = Counts {
        prompt: gen.prompt_tokens,
        completion: gen.completion_tokens,
        cached: gen.cached_tokens,
    };
    let response = shell.object(status, &output, Some(&counts));
    shell.keep(&state, &response)?;
    Ok(Json(response).into_response())
}

#[derive(Debug, Deserialize)]
pub(crate) struct RetrieveQuery {
    #[serde(default)]
    stream: Option<bool>,
}

pub(crate) async fn retrieve(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Query(q): Query<RetrieveQuery>,
) -> AppResult<Response> {
    if q.stream == Some(true) {
        return Err(ApiError::invalid(
            "stream",
            "Hearth does not replay a stored response as a stream: get it without `stream`",
        )
        .with_code("unsupported_parameter"));
    }
    let r = store::load(&state, &caller.owner(), &id)?.ok_or_else(|| not_found(&id))?;
    Ok(Json(r.response).into_response())
}

pub(crate) async fn delete(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> AppResult<Response> {
    if !store::delete(&state, &caller.owner(), &id)? {
        return Err(not_found(&id));
    }
    Ok(Json(json!({"id": id, "object": "response", "deleted": true})).into_response())
}

#[derive(Debug, Deserialize)]
pub(crate) struct ItemsQuery {
    #[serde(default)]
    after: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
    #[serde(default)]
    order: Option<String>,
}

/// A stored response's own input items, newest first unless `order=asc`, `limit` (1 to 100,
/// default 20) at a time after the item `after`.
pub(crate) async fn input_items(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Query(q): Query<ItemsQuery>,
) -> AppResult<Response> {
    let limit = q.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::invalid(
            "limit",
            format!("`limit` must be between 1 and 100; got {limit}"),
        ));
    }
    let mut items = store::load(&state, &caller.owner(), &id)?
        .ok_or_else(|| not_found(&id))?
        .input;
    match q.order.as_deref() {
        None | Some("desc") => items.reverse(),
        Some("asc") => {}
        Some(other) => {
            return Err(ApiError::invalid(
                "order",
                format!("`order` must be \"asc\" or \"desc\"; got {other:?}"),
            ))
        }
    }
    if let Some(after) = &q.after {
        let Some(at) = items.iter().position(|it| it["id"] == after.as_str()) else {
            return Err(ApiError::invalid(
                "after",
                format!("no input item {after:?} in response {id}"),
            ));
        };
        items.drain(..=at);
    }
    let has_more = items.len() > limit;
    items.truncate(limit);
    Ok(Json(json!({
        "object": "list",
        "data": items,
        "first_id": items.first().map(|it| it["id"].clone()),
        "last_id": items.last().map(|it| it["id"].clone()),
        "has_more": has_more,
    }))
    .into_response())
}
