//! From a Responses request to the same [`Plan`] a chat completion makes: the conversation
//! (earlier responses, instructions, input items) as chat messages through the model's
//! template, and tools, `tool_choice` and `text.format` through chat's tool-call plan
//! (`openai/tools.rs`), which reads them in chat's shapes: the flat Responses shapes are
//! mapped onto those here, and its errors name the Responses fields.

use hearth_model::chat::ChatMessage;
use serde_json::{json, Value};

use super::super::tools::ToolPlan;
use super::super::ChatRequest;
use super::wire::ResponsesRequest;
use crate::error::{ApiError, AppResult};
use crate::Served;

/// Chat's view of the request's tools, `tool_choice` and `text.format`.
pub(crate) fn chat_request(req: &ResponsesRequest) -> AppResult<ChatRequest> {
    let mut tools = Vec::new();
    for (i, t) in req.tools.iter().flatten().enumerate() {
        let at = format!("tools[{i}]");
        let Some(t) = t.as_object() else {
            return Err(ApiError::invalid(at, "a tool must be an object"));
        };
        match t.get("type").and_then(Value::as_str) {
            Some("function") => {}
            Some(kind) => {
                return Err(ApiError::invalid(
                    format!("{at}.type"),
                    format!("Hearth does not run built-in tools such as {kind:?}: it offers the model only your own `function` tools"),
                )
                .with_code("unsupported_parameter"))
            }
            None => {
                return Err(ApiError::invalid(
                    format!("{at}.type"),
                    "a tool needs `type`: \"function\"",
                ))
            }
        }
        let Some(name) = t.get("name").and_then(Value::as_str) else {
            let hint = if t.contains_key("function") {
                ": Responses function tools are flat ({\"type\": \"function\", \"name\", \"parameters\"}), not chat's nested `function` object"
            } else {
                ""
            };
            return Err(ApiError::invalid(
                format!("{at}.name"),
                format!("a function tool needs `name` (a string){hint}"),
            ));
        };
        let mut function = json!({"name": name});
        for key in ["description", "parameters", "strict"] {
            if let Some(v) = t.get(key).filter(|v| !v.is_null()) {
                function[key] = v.clone();
            }
        }
        tools.push(json!({"type": "function", "function": function}));
    }
    let tool_choice = match &req.tool_choice {
        None | Some(Value::Null) => Value::Null,
        Some(Value::String(s)) => Value::String(s.clone()),
        Some(Value::Object(o)) => match o.get("type").and_then(Value::as_str) {
            Some("function") => match o.get("name").and_then(Value::as_str) {
                Some(name) => json!({"type": "function", "function": {"name": name}}),
                None => {
                    return Err(ApiError::invalid(
                        "tool_choice.name",
                        "`tool_choice` of type function needs `name`",
                    ))
                }
            },
            other => {
                return Err(ApiError::invalid(
                    "tool_choice.type",
                    format!("Hearth's `tool_choice` is \"auto\", \"none\", \"required\" or {{\"type\": \"function\", \"name\": ...}}; it has no built-in or allowed-tools choices (got type {:?})", other.unwrap_or("")),
                )
                .with_code("unsupported_parameter"))
            }
        },
        Some(other) => {
            return Err(ApiError::invalid(
                "tool_choice",
                format!("`tool_choice` must be a string or an object; got {other}"),
            ))
        }
    };
    let format = req.text.as_ref().and_then(|t| t.format.as_ref());
    let response_format = match format {
        None | Some(Value::Null) => Value::Null,
        Some(f) => match f.get("type").and_then(Value::as_str) {
            Some("text") => json!({"type": "text"}),
            Some("json_object") => json!({"type": "json_object"}),
            Some("json_schema") => {
                let Some(schema) = f.get("schema").filter(|s| s.is_object()) else {
                    return Err(ApiError::invalid(
                        "text.format.schema",
                        "`text.format` of type json_schema needs `schema` (a JSON schema object)",
                    ));
                };
                json!({"type": "json_schema", "json_schema": {
                    "name": f.get("name").cloned().unwrap_or(Value::Null),
                    "schema": schema,
                    "strict": f.get("strict").cloned().unwrap_or(Value::Null)}})
            }
            other => {
                return Err(ApiError::invalid(
                    "text.format.type",
                    format!(
                        "`text.format.type` must be text, json_object or json_schema; got {:?}",
                        other.unwrap_or("")
                    ),
                ))
            }
        },
    };
    let chat = json!({
        "model": req.model,
        "messages": [],
        "tools": if tools.is_empty() && req.tools.is_none() { Value::Null } else { Value::Array(tools) },
        "tool_choice": tool_choice,
        "response_format": response_format,
    });
    serde_json::from_value(chat).map_err(|e| ApiError::bad_request(e.to_string()))
}

/// Chat's field names in a tool-plan error, as the Responses request spells them.
pub(crate) fn responses_names(mut e: ApiError) -> ApiError {
    const NAMES: [(&str, &str); 4] = [
        ("response_format.json_schema.schema", "text.format.schema"),
        ("response_format", "text.format"),
        ("tool_choice.function.name", "tool_choice.name"),
        (".function.parameters", ".parameters"),
    ];
    for (chat, responses) in NAMES {
        if let Some(p) = &e.param {
            if p.contains(chat) {
                e.param = Some(p.replace(chat, responses));
            }
        }
        e.message = e
            .message
            .replace(&format!("`{chat}`"), &format!("`{responses}`"));
    }
    e
}

/// The tool plan for `chat` (from [`chat_request`]), its errors in Responses' names.
pub(crate) fn tool_plan(served: &Served, chat: &ChatRequest) -> AppResult<ToolPlan> {
    ToolPlan::new(served, chat).map_err(responses_names)
}

/// The conversation as chat messages: `instructions` as the system message, then every item.
pub(crate) fn chat_messages(instructions: Option<&str>, items: &[Value]) -> Vec<ChatMessage> {
    let mut msgs: Vec<ChatMessage> = Vec::new();
    if let Some(text) = instructions.filter(|t| !t.is_empty()) {
        msgs.push(ChatMessage::new("system", text));
    }
    // Function names by call id, for the results' `name`.
    let mut names: Vec<(&str, &str)> = Vec::new();
    for item in items {
        match item["type"].as_str() {
            Some("message") => {
                let role = match item["role"].as_str() {
                    Some("developer") | Some("system") => "system",
                    Some("assistant") => "assistant",
                    _ => "user",
                };
                let text: String = item["content"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|p| p["text"].as_str())
                    .collect();
                msgs.push(ChatMessage::new(role, &text));
            }
            Some("function_call") => {
                let name = item["name"].as_str().unwrap_or("");
                let call_id = item["call_id"].as_str().unwrap_or("");
                names.push((call_id, name));
                let raw = item["arguments"].as_str().unwrap_or("");
                // Templates expect the arguments as an object, as chat passes them.
                let args = serde_json::from_str::<Value>(raw)
                    .unwrap_or_else(|_| Value::String(raw.to_string()));
                let call = json!({"id": call_id, "type": "function",
                                  "function": {"name": name, "arguments": args}});
                // Calls right after an assistant turn belong to that turn.
                match msgs.last_mut() {
                    Some(last) if last.role == "assistant" => match &mut last.tool_calls {
                        Some(Value::Array(calls)) => calls.push(call),
                        _ => last.tool_calls = Some(Value::Array(vec![call])),
                    },
                    _ => msgs.push(ChatMessage {
                        role: "assistant".into(),
                        content: None,
                        tool_calls: Some(Value::Array(vec![call])),
                        ..ChatMessage::default()
                    }),
                }
            }
            Some("function_call_output") => {
                let call_id = item["call_id"].as_str().unwrap_or("");
                let name = names
                    .iter()
                    .rev()
                    .find(|(id, _)| *id == call_id)
                    .map(|(_, n)| n.to_string());
                msgs.push(ChatMessage {
                    role: "tool".into(),
                    content: Some(item["output"].as_str().unwrap_or("").to_string()),
                    tool_call_id: Some(call_id.to_string()),
                    name,
                    ..ChatMessage::default()
                });
            }
            _ => {}
        }
    }
    msgs
}

#[cfg(test)]
mod tests {
    use super::super::wire::normalize_input;
    use super::*;

    fn request(v: Value) -> ResponsesRequest {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn flat_function_tools_become_chat_tools() {
        let chat = chat_request(&request(json!({
            "model": "m", "input": "hi",
            "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}, "strict": true}],
            "tool_choice": {"type": "function", "name": "f"},
            "text": {"format": {"type": "json_schema", "name": "x", "schema": {"type": "object"}}},
        })))
        .unwrap();
        let tools = chat.tools.unwrap();
        assert_eq!(tools[0].function.name, "f");
        assert_eq!(tools[0].function.strict, Some(true));
        assert!(chat.response_format.is_some());
    }

    #[test]
    fn built_in_tools_are_refused_naming_the_tool() {
        let e = chat_request(&request(json!({
            "model": "m", "input": "hi", "tools": [{"type": "web_search"}],
        })))
        .unwrap_err();
        assert_eq!(e.param.as_deref(), Some("tools[0].type"));
        assert!(e.message.contains("web_search"), "{}", e.message);
    }

    #[test]
    fn chat_shaped_tools_are_told_to_be_flat() {
        let e = chat_request(&request(json!({
            "model": "m", "input": "hi",
            "tools": [{"type": "function", "function": {"name": "f"}}],
        })))
        .unwrap_err();
        assert_eq!(e.param.as_deref(), Some("tools[0].name"));
        assert!(e.message.contains("flat"), "{}", e.message);
    }

    #[test]
    fn calls_join_the_assistant_turn_and_results_carry_the_name() {
        let items = normalize_input(Some(&json!([
            {"role": "user", "content": "weather?"},
            {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": "{\"city\":\"Paris\"}"},
            {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
        ])))
        .unwrap();
        let msgs = chat_messages(Some("Be brief."), &items);
        let roles: Vec<&str> = msgs.iter().map(|m| m.role.as_str()).collect();
        assert_eq!(roles, ["system", "user", "assistant", "tool"]);
        assert_eq!(
            msgs[2].tool_calls.as_ref().unwrap()[0]["function"]["arguments"]["city"],
            "Paris"
        );
        assert_eq!(msgs[3].name.as_deref(), Some("get_weather"));
    }

    #[test]
    fn tool_plan_errors_use_responses_names() {
        let e = responses_names(ApiError::invalid(
            "response_format.json_schema.schema",
            "`response_format` is wrong",
        ));
        assert_eq!(e.param.as_deref(), Some("text.format.schema"));
        assert_eq!(e.message, "`text.format` is wrong");
    }
}
