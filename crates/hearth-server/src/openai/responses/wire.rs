//! The Responses request as clients send it, and its input in one normalized item shape.
//!
//! Input items are normalized once, when they arrive, into the shapes the API also returns
//! (`message` with `input_text`/`output_text` parts, `function_call`, `function_call_output`,
//! each with an id), so a stored conversation, a new request's input and a response's output
//! are one list that `plan.rs` turns into chat messages.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::error::{ApiError, AppResult};

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ResponsesRequest {
    pub model: String,
    #[serde(default)]
    pub input: Option<Value>,
    #[serde(default)]
    pub instructions: Option<String>,
    #[serde(default)]
    pub tools: Option<Vec<Value>>,
    #[serde(default)]
    pub tool_choice: Option<Value>,
    #[serde(default)]
    pub text: Option<TextConfig>,
    #[serde(default)]
    pub max_output_tokens: Option<u64>,
    #[serde(default)]
    pub temperature: Option<f32>,
    #[serde(default)]
    pub top_p: Option<f32>,
    /// An extension (chat has it): fixes the sampler's random stream.
    #[serde(default)]
    pub seed: Option<i64>,
    #[serde(default)]
    pub metadata: Option<HashMap<String, String>>,
    #[serde(default)]
    pub store: Option<bool>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub previous_response_id: Option<String>,
    #[serde(default)]
    pub parallel_tool_calls: Option<bool>,
    // Refused when set: Hearth does not do these (see `refuse_unsupported`).
    #[serde(default)]
    pub background: Option<bool>,
    #[serde(default)]
    pub reasoning: Option<Value>,
    #[serde(default)]
    pub conversation: Option<Value>,
    #[serde(default)]
    pub prompt: Option<Value>,
    #[serde(default)]
    pub truncation: Option<String>,
    #[serde(default)]
    pub include: Option<Vec<String>>,
    #[serde(default)]
    pub top_logprobs: Option<u64>,
    #[serde(default)]
    pub max_tool_calls: Option<u64>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct TextConfig {
    #[serde(default)]
    pub format: Option<Value>,
    #[serde(default)]
    pub verbosity: Option<String>,
}

fn unsupported(param: &str, message: impl Into<String>) -> ApiError {
    ApiError::invalid(param, message).with_code("unsupported_parameter")
}

/// Parts of the Responses API that Hearth does not do, each a 400 naming its field rather than
/// an answer that silently differs from what the client asked for.
pub(crate) fn refuse_unsupported(req: &ResponsesRequest) -> AppResult<()> {
    if req.background == Some(true) {
        return Err(unsupported(
            "background",
            "Hearth does not run background responses: send the request without `background` (with `stream: true` to see progress)",
        ));
    }
    let set = |v: &Option<Value>| match v {
        None | Some(Value::Null) => false,
        Some(Value::Object(m)) => m.values().any(|v| !v.is_null()),
        Some(_) => true,
    };
    if set(&req.reasoning) {
        return Err(unsupported(
            "reasoning",
            "Hearth does not do `reasoning` settings: its models answer directly; leave `reasoning` out",
        ));
    }
    if set(&req.conversation) {
        return Err(unsupported(
            "conversation",
            "Hearth keeps no conversation objects: continue a conversation with `previous_response_id`",
        ));
    }
    if set(&req.prompt) {
        return Err(unsupported(
            "prompt",
            "Hearth has no stored prompt templates: send the text as `instructions` and `input`",
        ));
    }
    if req.truncation.as_deref() == Some("auto") {
        return Err(unsupported(
            "truncation",
            "Hearth does not drop earlier input to fit the context (`truncation: \"auto\"`): a conversation longer than the context is an error; use \"disabled\" or leave it out",
        ));
    }
    if let Some(include) = &req.include {
        if let Some(i) = include
            .iter()
            .position(|s| s == "message.output_text.logprobs")
        {
            return Err(unsupported(
                &format!("include[{i}]"),
                "Hearth does not return logprobs through the Responses API: use /v1/chat/completions with `logprobs: true`",
            ));
        }
    }
    if req.top_logprobs.is_some_and(|n| n > 0) {
        return Err(unsupported(
            "top_logprobs",
            "Hearth does not return logprobs through the Responses API: use /v1/chat/completions with `logprobs: true`",
        ));
    }
    if req.max_tool_calls.is_some() {
        return Err(unsupported(
            "max_tool_calls",
            "Hearth does not limit the number of tool calls; leave `max_tool_calls` out",
        ));
    }
    if let Some(t) = &req.text {
        if let Some(v) = t.verbosity.as_deref().filter(|v| *v != "medium") {
            return Err(unsupported(
                "text.verbosity",
                format!("Hearth's models have no verbosity setting; got {v:?}: leave `text.verbosity` out"),
            ));
        }
    }
    if let Some(m) = &req.metadata {
        if m.len() > 16 {
            return Err(ApiError::invalid(
                "metadata",
                format!("`metadata` holds at most 16 pairs; got {}", m.len()),
            ));
        }
        if let Some((k, v)) = m
            .iter()
            .find(|(k, v)| k.chars().count() > 64 || v.chars().count() > 512)
        {
            return Err(ApiError::invalid(
                "metadata",
                format!("`metadata` keys are at most 64 characters and values at most 512; {k:?} has a {}-character key and a {}-character value", k.chars().count(), v.chars().count()),
            ));
        }
    }
    Ok(())
}

pub(crate) fn random_id(prefix: &str) -> String {
    format!("{prefix}_{:032x}", rand::random::<u128>())
}

/// A message item as the API returns it: assistant text is `output_text`, the rest `input_text`.
pub(crate) fn message_item(id: String, role: &str, text: &str, status: &str) -> Value {
    let part = if role == "assistant" {
        json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
    } else {
        json!({"type": "input_text", "text": text})
    };
    json!({"id": id, "type": "message", "role": role, "status": status, "content": [part]})
}

pub(crate) fn function_call_item(id: String, call_id: &str, name: &str, arguments: &str) -> Value {
    json!({"id": id, "type": "function_call", "status": "completed",
           "call_id": call_id, "name": name, "arguments": arguments})
}

fn field<'a>(item: &'a Map<String, Value>, at: &str, name: &str) -> AppResult<&'a str> {
    match item.get(name) {
        Some(Value::String(s)) => Ok(s),
        None | Some(Value::Null) => Err(ApiError::invalid(
            format!("{at}.{name}"),
            format!("`{at}` needs `{name}` (a string)"),
        )),
        Some(other) => Err(ApiError::invalid(
            format!("{at}.{name}"),
            format!("`{at}.{name}` must be a string; got {other}"),
        )),
    }
}

/// The text of a content list: `input_text` and `output_text` parts; anything else is a 400.
fn parts_text(parts: &[Value], at: &str) -> AppResult<String> {
    let mut text = String::new();
    for (j, p) in parts.iter().enumerate() {
        let at = format!("{at}[{j}]");
        let Some(p) = p.as_object() else {
            return Err(ApiError::invalid(at, "a content part must be an object"));
        };
        let kind = p.get("type").and_then(Value::as_str).unwrap_or("");
        match kind {
            "input_text" | "output_text" | "text" => text.push_str(field(p, &at, "text")?),
            "input_image" | "input_file" | "input_audio" => {
                return Err(unsupported(
                    &format!("{at}.type"),
                    format!("Hearth does not take {kind} content: its models read text only; send `input_text` parts"),
                ))
            }
            other => {
                return Err(ApiError::invalid(
                    format!("{at}.type"),
                    format!("content parts of type {other:?} are not supported: send `input_text` (or, from the assistant, `output_text`) parts"),
                ))
            }
        }
    }
    Ok(text)
}

/// The request's `input` as normalized items.
pub(crate) fn normalize_input(input: Option<&Value>) -> AppResult<Vec<Value>> {
    let items = match input {
        None | Some(Value::Null) => {
            return Err(ApiError::invalid(
                "input",
                "`input` is required: a string, or a list of input items",
            ))
        }
        Some(Value::String(s)) => {
            return Ok(vec![message_item(random_id("msg"), "user", s, "completed")])
        }
        Some(Value::Array(items)) => items,
        Some(other) => {
            return Err(ApiError::invalid(
                "input",
                format!("`input` must be a string or a list of input items; got {other}"),
            ))
        }
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let at = format!("input[{i}]");
        let Some(obj) = item.as_object() else {
            return Err(ApiError::invalid(at, "an input item must be an object"));
        };
        let kind = match obj.get("type") {
            None | Some(Value::Null) => "message",
            Some(Value::String(s)) => s.as_str(),
            Some(other) => {
                return Err(ApiError::invalid(
                    format!("{at}.type"),
                    format!("`type` must be a string; got {other}"),
                ))
            }
        };
        let id = |prefix: &str| match obj.get("id") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            _ => random_id(prefix),
        };
        out.push(match kind {
            "message" => {
                let role = field(obj, &at, "role")?;
                if !matches!(role, "user" | "assistant" | "system" | "developer") {
                    return Err(ApiError::invalid(
                        format!("{at}.role"),
                        format!("unknown role {role:?}: use user, assistant, system or developer"),
                    ));
                }
                let text = match obj.get("content") {
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Array(parts)) => parts_text(parts, &format!("{at}.content"))?,
                    _ => {
                        return Err(ApiError::invalid(
                            format!("{at}.content"),
                            "a message needs `content`: a string or a list of `input_text` parts",
                        ))
                    }
                };
                message_item(id("msg"), role, &text, "completed")
            }
            "function_call" => function_call_item(
                id("fc"),
                field(obj, &at, "call_id")?,
                field(obj, &at, "name")?,
                field(obj, &at, "arguments")?,
            ),
            "function_call_output" => {
                let call_id = field(obj, &at, "call_id")?;
                let output = match obj.get("output") {
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Array(parts)) => parts_text(parts, &format!("{at}.output"))?,
                    _ => {
                        return Err(ApiError::invalid(
                            format!("{at}.output"),
                            "a function_call_output needs `output`: the function's result as a string",
                        ))
                    }
                };
                json!({"id": id("fco"), "type": "function_call_output", "status": "completed",
                       "call_id": call_id, "output": output})
            }
            "item_reference" => {
                return Err(unsupported(
                    &format!("{at}.type"),
                    "Hearth does not resolve item references: send the item itself, or continue with `previous_response_id`",
                ))
            }
            other => {
                return Err(unsupported(
                    &format!("{at}.type"),
                    format!("Hearth does not take input items of type {other:?}: it takes message, function_call and function_call_output items"),
                ))
            }
        });
    }
    Ok(out)
}

/// Every `function_call_output` answers a `function_call` earlier in the conversation.
pub(crate) fn check_outputs_answer_calls(context: &[Value], input: &[Value]) -> AppResult<()> {
    let mut calls: Vec<&str> = context
        .iter()
        .filter(|it| it["type"] == "function_call")
        .filter_map(|it| it["call_id"].as_str())
        .collect();
    for (i, item) in input.iter().enumerate() {
        match item["type"].as_str() {
            Some("function_call") => calls.extend(item["call_id"].as_str()),
            Some("function_call_output") => {
                let id = item["call_id"].as_str().unwrap_or("");
                if !calls.contains(&id) {
                    return Err(ApiError::invalid(
                        format!("input[{i}].call_id"),
                        format!("No tool call found for function call output with call_id {id}: send the function_call item too, or continue with the `previous_response_id` that made the call"),
                    ));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_input_is_one_user_message() {
        let items = normalize_input(Some(&json!("Hello"))).unwrap();
        assert_eq!(items.len(), 1);
        assert_eq!(items[0]["role"], "user");
        assert_eq!(items[0]["content"][0]["type"], "input_text");
        assert_eq!(items[0]["content"][0]["text"], "Hello");
    }

    #[test]
    fn message_parts_and_tool_items_normalize() {
        let items = normalize_input(Some(&json!([
            {"role": "developer", "content": [{"type": "input_text", "text": "Be brief. "},
                                               {"type": "input_text", "text": "Use tools."}]},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "ok"}]},
            {"type": "function_call", "call_id": "call_1", "name": "f", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "42"},
        ])))
        .unwrap();
        assert_eq!(items[0]["content"][0]["text"], "Be brief. Use tools.");
        assert_eq!(items[1]["content"][0]["type"], "output_text");
        assert_eq!(items[2]["call_id"], "call_1");
        assert_eq!(items[3]["output"], "42");
        check_outputs_answer_calls(&[], &items).unwrap();
    }

    #[test]
    fn an_output_without_its_call_names_the_field() {
        let items = normalize_input(Some(&json!([
            {"type": "function_call_output", "call_id": "call_9", "output": "42"}
        ])))
        .unwrap();
        let e = check_outputs_answer_calls(&[], &items).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("input[0].call_id"));
    }

    #[test]
    fn image_input_is_refused_naming_the_part() {
        let e = normalize_input(Some(&json!([
            {"role": "user", "content": [{"type": "input_image", "image_url": "data:,"}]}
        ])))
        .unwrap_err();
        assert_eq!(e.param.as_deref(), Some("input[0].content[0].type"));
        assert!(e.message.contains("Hearth does not"), "{}", e.message);
    }
}
