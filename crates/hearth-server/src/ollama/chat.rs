//! `POST /api/chat` and `POST /api/generate`.
//!
//! A chat is mapped onto an OpenAI chat request and goes through the same steps as
//! `/v1/chat/completions` (messages, tool plan, template, constraint), so for the same
//! messages and sampling both APIs give the same tokens. `/api/generate` is one user turn
//! through the template (with `system`), or the prompt as it is with `raw: true`.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use hearth_model::chat::ChatMessage;
use serde_json::{json, Value};

use super::options::{self, Options};
use super::reply::Reply;
use super::types::{ChatRequest, GenerateRequest};
use super::{base_name, model_not_found, rfc3339};
use crate::body::{body, parse_body_async};
use crate::error::{ApiError, AppResult};
use crate::generation::{offload, Plan};
use crate::openai::chat::chat_messages;
use crate::openai::tools::ToolPlan;
use crate::{AppState, Served};

/// `name` must be the chat model in service (with or without `:latest`). `action` is what
/// Ollama says an embedding model does not support ("chat", "generate").
fn check_model(state: &AppState, served: &Served, name: &str, action: &str) -> AppResult<()> {
    let base = base_name(name);
    if base == served.model_id {
        Ok(())
    } else if state.embed.as_ref().is_some_and(|e| e.id == base) {
        Err(ApiError::invalid(
            "model",
            format!("\"{name}\" does not support {action}: it is an embedding model; send it to /api/embed. For text, use \"{}\".", served.model_id),
        ))
    } else {
        Err(model_not_found(name))
    }
}

/// `think`: the served models do not reason in a separate channel; Ollama refuses it the same
/// way for a model that does not.
fn check_think(model: &str, think: &Option<Value>) -> AppResult<()> {
    match think {
        None | Some(Value::Null) | Some(Value::Bool(false)) => Ok(()),
        Some(Value::String(s)) if s.is_empty() => Ok(()),
        Some(_) => Err(ApiError::invalid(
            "think",
            format!("\"{model}\" does not support thinking"),
        )),
    }
}

fn logprobs(on: Option<bool>, top: Option<u64>) -> AppResult<Option<usize>> {
    match (on.unwrap_or(false), top) {
        (_, Some(n)) if n > 20 => Err(ApiError::invalid(
            "top_logprobs",
            format!("`top_logprobs` must be between 0 and 20; got {n}"),
        )),
        (true, n) => Ok(Some(n.unwrap_or(0) as usize)),
        (false, _) => Ok(None),
    }
}

/// Ollama's `format` as OpenAI's `response_format`: "json", or a JSON schema.
fn response_format(format: &Option<Value>) -> AppResult<Value> {
    match format {
        None | Some(Value::Null) => Ok(Value::Null),
        Some(Value::String(s)) if s.is_empty() => Ok(Value::Null),
        Some(Value::String(s)) if s == "json" => Ok(json!({"type": "json_object"})),
        Some(schema @ Value::Object(_)) => Ok(json!({
            "type": "json_schema",
            "json_schema": {"name": "format", "schema": schema},
        })),
        Some(other) => Err(ApiError::invalid(
            "format",
            format!("`format` must be \"json\" or a JSON schema object; got {other}"),
        )),
    }
}

/// A tool-plan error about `response_format` named as Ollama's `format`.
fn as_format(mut e: ApiError) -> ApiError {
    if e.param
        .as_deref()
        .is_some_and(|p| p.starts_with("response_format"))
    {
        e.param = Some("format".into());
        e.message = format!("`format`: {}", e.message);
    }
    e
}

/// The chat as an OpenAI chat request: tool calls' arguments become JSON text, `tool_name`
/// becomes `name`. Built as JSON so every OpenAI field keeps its default and its checks.
fn openai_request(req: &ChatRequest) -> AppResult<crate::openai::ChatRequest> {
    let mut messages = Vec::with_capacity(req.messages.len());
    for (i, m) in req.messages.iter().enumerate() {
        if m.images.as_ref().is_some_and(|v| !v.is_empty()) {
            return Err(ApiError::invalid(
                format!("messages[{i}].images"),
                "images are not supported: the model Hearth serves reads text only",
            ));
        }
        let mut v = json!({"role": m.role, "content": m.content.clone().unwrap_or_default()});
        if let Some(calls) = &m.tool_calls {
            v["tool_calls"] = calls
                .iter()
                .enumerate()
                .map(|(j, c)| {
                    let args = match &c.function.arguments {
                        Value::String(s) => s.clone(),
                        Value::Null => "{}".to_string(),
                        other => other.to_string(),
                    };
                    json!({"id": format!("call_{i}_{j}"), "type": "function",
                           "function": {"name": c.function.name, "arguments": args}})
                })
                .collect();
        }
        if let Some(name) = &m.tool_name {
            v["name"] = json!(name);
        }
        messages.push(v);
    }
    let mut v = json!({"model": req.model, "messages": messages});
    if let Some(tools) = &req.tools {
        v["tools"] = json!(tools);
    }
    let format = response_format(&req.format)?;
    if !format.is_null() {
        v["response_format"] = format;
    }
    crate::body::parse_body(v.to_string().as_bytes())
}

/// Ollama's answer to a request with nothing to generate: the model is loaded (Hearth's always
/// is). Asked to unload it (`keep_alive: 0`), say that Hearth does not.
fn loaded(model: &str, chat: bool, keep_alive: &Option<Value>) -> AppResult<Response> {
    let zero = match keep_alive {
        Some(Value::Number(n)) => n.as_f64() == Some(0.0),
        Some(Value::String(s)) => matches!(s.trim(), "0" | "0s" | "0m" | "0h"),
        _ => false,
    };
    if zero {
        return Err(ApiError::invalid(
            "keep_alive",
            "Hearth keeps the model it serves loaded for as long as it runs; it cannot unload it on request",
        ));
    }
    let mut v = json!({"model": model, "created_at": rfc3339(SystemTime::now())});
    if chat {
        v["message"] = json!({"role": "assistant", "content": ""});
    } else {
        v["response"] = json!("");
    }
    v["done"] = json!(true);
    v["done_reason"] = json!("load");
    Ok(Json(v).into_response())
}

pub(crate) async fn chat(
    State(state): State<Arc<AppState>>,
    raw: Result<Bytes, BytesRejection>,
) -> AppResult<Response> {
    let started = Instant::now();
    let raw = body(&state, raw)?;
    let req: ChatRequest = parse_body_async(raw).await?;
    let served = state.served();
    check_model(&state, &served, &req.model, "chat")?;
    check_think(&req.model, &req.think)?;
    let opts = req.options.clone().unwrap_or_default();
    options::check(&served, &opts)?;
    if req.messages.is_empty() {
        return loaded(&req.model, true, &req.keep_alive);
    }
    let Some(template) = served.template.as_ref() else {
        return Err(ApiError::invalid(
            "model",
            format!("\"{}\" is a base model without a chat template: it only continues text. Use /api/generate with `raw: true`.", req.model),
        ));
    };
    let lp = logprobs(req.logprobs, req.top_logprobs)?;
    let oreq = openai_request(&req)?;
    let messages = chat_messages(&oreq)?;
    let tools = ToolPlan::new(&served, &oreq).map_err(as_format)?;
    let messages = tools.prepare_messages(template, messages);
    let prompt =
        offload::chat_prompt(served.clone(), messages, tools.template_tools().cloned()).await?;
    let reply = Reply {
        chat: true,
        model: req.model.clone(),
        tools,
        stream: req.stream.unwrap_or(true),
        logprobs: lp.is_some(),
        started,
    };
    finish(&state, &served, &oreq, &opts, prompt, lp, reply).await
}

pub(crate) async fn generate(
    State(state): State<Arc<AppState>>,
    raw: Result<Bytes, BytesRejection>,
) -> AppResult<Response> {
    let started = Instant::now();
    let raw = body(&state, raw)?;
    let req: GenerateRequest = parse_body_async(raw).await?;
    let served = state.served();
    check_model(&state, &served, &req.model, "generate")?;
    check_think(&req.model, &req.think)?;
    let opts = req.options.clone().unwrap_or_default();
    options::check(&served, &opts)?;
    refuse_unsupported(&req)?;
    let prompt = req.prompt.clone().unwrap_or_default();
    if prompt.is_empty() {
        return loaded(&req.model, false, &req.keep_alive);
    }
    let system = req.system.clone().filter(|s| !s.is_empty());
    let raw_mode = req.raw.unwrap_or(false);
    let tokens = match (&served.template, raw_mode) {
        (Some(_), false) => {
            let mut messages = Vec::new();
            if let Some(s) = &system {
                messages.push(ChatMessage::new("system", s));
            }
            messages.push(ChatMessage::new("user", &prompt));
            offload::chat_prompt(served.clone(), messages, None).await?
        }
        (None, false) if system.is_some() => {
            return Err(ApiError::invalid(
                "system",
                format!("\"{}\" is a base model without a chat template, so there is nowhere to put `system`: put it in the prompt (the model continues text as it is).", req.model),
            ))
        }
        // A base model continues the text as it is, like Ollama's `{{ .Prompt }}` template.
        _ => offload::encode(&served, &prompt).await?,
    };
    let lp = logprobs(req.logprobs, req.top_logprobs)?;
    let mut v = json!({"model": req.model, "messages": []});
    let format = response_format(&req.format)?;
    if !format.is_null() {
        v["response_format"] = format;
    }
    let oreq: crate::openai::ChatRequest = crate::body::parse_body(v.to_string().as_bytes())?;
    let tools = ToolPlan::new(&served, &oreq).map_err(as_format)?;
    let reply = Reply {
        chat: false,
        model: req.model.clone(),
        tools,
        stream: req.stream.unwrap_or(true),
        logprobs: lp.is_some(),
        started,
    };
    finish(&state, &served, &oreq, &opts, tokens, lp, reply).await
}

/// The parts of a generate request Hearth cannot honour, each a 400 naming its field.
fn refuse_unsupported(req: &GenerateRequest) -> AppResult<()> {
    if req.suffix.as_ref().is_some_and(|s| !s.is_empty()) {
        return Err(ApiError::invalid(
            "suffix",
            "`suffix` (fill-in-the-middle) is not supported: Hearth continues the prompt only",
        ));
    }
    if req.images.as_ref().is_some_and(|v| !v.is_empty()) {
        return Err(ApiError::invalid(
            "images",
            "images are not supported: the model Hearth serves reads text only",
        ));
    }
    if req.template.as_ref().is_some_and(|s| !s.is_empty()) {
        return Err(ApiError::invalid(
            "template",
            "`template` is not supported: Hearth renders prompts with the model's own chat template. Send the prompt already formatted with `raw: true` instead.",
        ));
    }
    if req.context.as_ref().is_some_and(|v| !v.is_empty()) {
        return Err(ApiError::invalid(
            "context",
            "`context` is not supported: Hearth does not continue from returned token context. Send the conversation to /api/chat as messages instead.",
        ));
    }
    Ok(())
}

/// The options over the prompt, the constraint, and the reply.
async fn finish(
    state: &Arc<AppState>,
    served: &Arc<Served>,
    oreq: &crate::openai::ChatRequest,
    opts: &Options,
    prompt: Vec<u32>,
    logprobs: Option<usize>,
    reply: Reply,
) -> AppResult<Response> {
    let shaped = options::shape(served, opts, prompt.len())?;
    let constraint = reply.tools.constraint(served, oreq).map_err(as_format)?;
    let plan = Plan {
        prompt,
        max_tokens: shaped.max_tokens,
        stops: shaped.stops,
        sampler: shaped.sampler,
        logprobs,
        constraint,
    };
    reply.run(state, served, plan).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_json_and_schema_map_onto_response_format() {
        assert_eq!(response_format(&None).expect("none"), Value::Null);
        assert_eq!(
            response_format(&Some(json!(""))).expect("empty"),
            Value::Null
        );
        assert_eq!(
            response_format(&Some(json!("json"))).expect("json")["type"],
            "json_object"
        );
        let schema = json!({"type": "object", "properties": {"a": {"type": "integer"}}});
        let f = response_format(&Some(schema.clone())).expect("schema");
        assert_eq!(f["json_schema"]["schema"], schema);
        let e = response_format(&Some(json!("yaml"))).expect_err("yaml");
        assert_eq!(e.param.as_deref(), Some("format"));
    }

    #[test]
    fn tool_call_arguments_become_json_text_for_the_template() {
        let req: ChatRequest = serde_json::from_value(json!({
            "model": "m",
            "messages": [
                {"role": "user", "content": "weather?"},
                {"role": "assistant", "content": "", "tool_calls": [
                    {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
                {"role": "tool", "content": "sunny", "tool_name": "get_weather"},
            ],
        }))
        .expect("request");
        let o = openai_request(&req).expect("maps");
        let calls = o.messages[1].tool_calls.as_ref().expect("calls");
        assert_eq!(calls[0].function.arguments, r#"{"city":"Paris"}"#);
        assert_eq!(o.messages[2].name.as_deref(), Some("get_weather"));
        let msgs = chat_messages(&o).expect("messages");
        assert_eq!(
            msgs[1].tool_calls.as_ref().expect("calls")[0]["function"]["arguments"]["city"],
            "Paris"
        );
    }

    #[test]
    fn images_are_refused_naming_the_message() {
        let req: ChatRequest = serde_json::from_value(json!({
            "model": "m",
            "messages": [{"role": "user", "content": "what is this?", "images": ["aGk="]}],
        }))
        .expect("request");
        let e = openai_request(&req).expect_err("images");
        assert_eq!(e.param.as_deref(), Some("messages[0].images"));
    }

    #[test]
    fn thinking_is_refused_as_ollama_refuses_it() {
        assert!(check_think("m", &None).is_ok());
        assert!(check_think("m", &Some(json!(false))).is_ok());
        let e = check_think("m", &Some(json!(true))).expect_err("think");
        assert_eq!(e.message, "\"m\" does not support thinking");
        assert!(check_think("m", &Some(json!("high"))).is_err());
    }
}
