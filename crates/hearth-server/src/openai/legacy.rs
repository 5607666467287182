//! OpenAI's legacy function calling (`functions`, `function_call`, `role: "function"`), which
//! older apps and libraries still send: mapped onto tools before anything else reads the
//! request, and the answer given back in the legacy shape (`message.function_call`,
//! `finish_reason: "function_call"`) when the request used it.

use serde_json::{json, Value};

use super::{ChatRequest, FunctionCallChoice, NamedFunction, Tool, ToolCall, ToolChoice};
use crate::error::{ApiError, AppResult};

/// Rewrites `req`'s legacy fields as tools; true when it declared `functions` (the reply then
/// takes the legacy shape). Legacy turns in the history (an assistant's `function_call`, a
/// `function` message with its result) become tool calls and tool results either way.
pub(crate) fn map_functions(req: &mut ChatRequest) -> AppResult<bool> {
    history(req);
    let Some(functions) = req.functions.take() else {
        if req.function_call.is_some() {
            return Err(ApiError::invalid(
                "function_call",
                "`function_call` needs `functions` to choose from",
            ));
        }
        return Ok(false);
    };
    if req.tools.is_some() {
        return Err(ApiError::invalid(
            "functions",
            "send either `tools` or the legacy `functions`, not both",
        ));
    }
    let choice = match req.function_call.take() {
        None => None,
        Some(FunctionCallChoice::Mode(m)) if m == "auto" || m == "none" => {
            Some(ToolChoice::Mode(m))
        }
        Some(FunctionCallChoice::Mode(m)) => {
            return Err(ApiError::invalid(
                "function_call",
                format!(
                    "`function_call` must be \"auto\", \"none\" or {{\"name\": ...}}; got {m:?}"
                ),
            ))
        }
        Some(FunctionCallChoice::Named(NamedFunction { name })) => {
            if !functions.iter().any(|f| f.name == name) {
                let names: Vec<&str> = functions.iter().map(|f| f.name.as_str()).collect();
                return Err(ApiError::invalid(
                    "function_call",
                    format!(
                        "`function_call` names {name:?}, which is not among the functions ({})",
                        names.join(", ")
                    ),
                ));
            }
            Some(ToolChoice::Named {
                kind: "function".into(),
                function: NamedFunction { name },
            })
        }
    };
    if choice.is_some() && req.tool_choice.is_some() {
        return Err(ApiError::invalid(
            "function_call",
            "send either `tool_choice` or the legacy `function_call`, not both",
        ));
    }
    req.tools = Some(
        functions
            .into_iter()
            .map(|function| Tool {
                kind: "function".into(),
                function,
            })
            .collect(),
    );
    if choice.is_some() {
        req.tool_choice = choice;
    }
    Ok(true)
}

/// Legacy turns as tool turns: each assistant `function_call` gets an id, and the `function`
/// message after it answers that id.
fn history(req: &mut ChatRequest) {
    let mut last_id = None;
    for (i, m) in req.messages.iter_mut().enumerate() {
        if let Some(call) = m.function_call.take() {
            let id = format!("call_{i}");
            last_id = Some(id.clone());
            m.tool_calls.get_or_insert_with(Vec::new).push(ToolCall {
                id,
                kind: "function".into(),
                function: call,
            });
        }
        if m.role == "function" {
            m.role = "tool".into();
            if m.tool_call_id.is_none() {
                m.tool_call_id = last_id.clone();
            }
        }
    }
}

/// The message's `function_call` (the first call; the legacy shape has room for one).
pub(crate) fn message_call(calls: &[Value]) -> Option<Value> {
    calls.first().map(|c| c["function"].clone())
}

/// A streamed delta in the legacy shape: a tool call's delta becomes `function_call` (the
/// first call only), content passes unchanged.
pub(crate) fn delta(delta: Value) -> Option<Value> {
    match delta.get("tool_calls").and_then(Value::as_array) {
        None => Some(delta),
        Some(calls) => calls
            .iter()
            .find(|c| c["index"] == 0)
            .map(|c| json!({"function_call": c["function"]})),
    }
}
