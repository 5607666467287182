//! From an Anthropic request to the prompt: `system` and content blocks into chat messages
//! (`tool_use` as the assistant's tool calls, `tool_result` as tool turns), tools and
//! `tool_choice` onto the OpenAI chat's tool-call plan, so both families put tools into prompts,
//! constrain calls and parse them one way.

use std::collections::HashMap;
use std::sync::Arc;

use hearth_model::chat::ChatMessage;
use serde_json::{json, Value};

use super::types::{Block, Content, MessagesRequest, System, ToolResultContent};
use crate::error::{ApiError, AppResult};
use crate::generation::offload;
use crate::openai::tools::ToolPlan;
use crate::openai::ChatRequest;
use crate::Served;

/// A request read into what generation needs.
pub(crate) struct Prompt {
    pub tokens: Vec<u32>,
    pub tools: ToolPlan,
    /// The request's `chat` view (tool constraint).
    pub chat: ChatRequest,
    /// `tool_choice.disable_parallel_tool_use`: at most one `tool_use` in the reply.
    pub one_call: bool,
}

/// Renders the request's conversation with the served model's template, tools included.
pub(crate) async fn prompt(served: &Arc<Served>, req: &MessagesRequest) -> AppResult<Prompt> {
    refuse_unsupported(req)?;
    let Some(template) = served.template.as_ref() else {
        return Err(ApiError::invalid(
            "model",
            format!(
                "{} is a base model without a chat template: it only continues text, through /v1/completions",
                served.model_id
            ),
        ));
    };
    let (messages, prefill) = chat_messages(req)?;
    let chat = chat_request(req)?;
    let tools = ToolPlan::new(served, &chat)?;
    let messages = tools.prepare_messages(template, messages);
    let mut tokens =
        offload::chat_prompt(served.clone(), messages, tools.template_tools().cloned()).await?;
    if let Some(text) = prefill {
        // The reply continues the assistant's own start, as Anthropic's prefill does.
        tokens.extend(served.tokenizer.encode(&text, false, false));
    }
    let one_call = req
        .tool_choice
        .as_ref()
        .and_then(|c| c.disable_parallel_tool_use)
        .unwrap_or(false);
    Ok(Prompt {
        tokens,
        tools,
        chat,
        one_call,
    })
}

/// Fields that would change the answer in ways Hearth cannot honour.
fn refuse_unsupported(req: &MessagesRequest) -> AppResult<()> {
    if let Some(t) = &req.thinking {
        if t.kind != "disabled" {
            return Err(ApiError::invalid(
                "thinking",
                "extended thinking is not supported by Hearth: leave out `thinking` (or send {\"type\": \"disabled\"})",
            ));
        }
    }
    if req.mcp_servers.as_ref().is_some_and(|v| !v.is_empty()) {
        return Err(ApiError::invalid(
            "mcp_servers",
            "MCP servers are not supported by Hearth: run the tools in your app and pass them as `tools`",
        ));
    }
    if req
        .output_config
        .as_ref()
        .is_some_and(|o| o.effort.is_some())
    {
        return Err(ApiError::invalid(
            "output_config.effort",
            "`effort` is not supported by Hearth: the model has one way of answering; leave it out",
        ));
    }
    if req.container.is_some() {
        return Err(ApiError::invalid(
            "container",
            "code-execution containers are not supported by Hearth",
        ));
    }
    Ok(())
}

/// The OpenAI chat request the tool-call plan reads: the same tools and choice in OpenAI's
/// shape. Built as JSON so that it keeps up with fields the chat request gains.
fn chat_request(req: &MessagesRequest) -> AppResult<ChatRequest> {
    let mut tools = Vec::new();
    for (i, t) in req.tools.iter().flatten().enumerate() {
        match t.kind.as_deref() {
            None | Some("custom") => {}
            Some(other) => {
                return Err(ApiError::invalid(
                    format!("tools.{i}.type"),
                    format!("Anthropic's server tools (here {other:?}) are not supported by Hearth: only your own tools, with `name`, `description` and `input_schema`"),
                ))
            }
        }
        let schema = t.input_schema.as_ref().ok_or_else(|| {
            ApiError::invalid(format!("tools.{i}.input_schema"), "Field required")
        })?;
        if !schema.is_object() {
            return Err(ApiError::invalid(
                format!("tools.{i}.input_schema"),
                "`input_schema` must be a JSON schema object",
            ));
        }
        tools.push(json!({"type": "function", "function": {
            "name": t.name, "description": t.description, "parameters": schema}}));
    }
    let choice = match &req.tool_choice {
        None => Value::Null,
        Some(c) => match c.kind.as_str() {
            "auto" => json!("auto"),
            "any" => json!("required"),
            "none" => json!("none"),
            "tool" => {
                let name = c.name.as_deref().ok_or_else(|| {
                    ApiError::invalid("tool_choice.name", "Field required for type \"tool\"")
                })?;
                if !req.tools.iter().flatten().any(|t| t.name == name) {
                    return Err(ApiError::invalid(
                        "tool_choice.name",
                        format!("`tool_choice.name` is {name:?}, which is not among `tools`"),
                    ));
                }
                json!({"type": "function", "function": {"name": name}})
            }
            other => {
                return Err(ApiError::invalid(
                    "tool_choice.type",
                    format!("`tool_choice.type` must be \"auto\", \"any\", \"tool\" or \"none\"; got {other:?}"),
                ))
            }
        },
    };
    if tools.is_empty() && matches!(choice.as_str(), Some("required")) {
        return Err(ApiError::invalid(
            "tool_choice",
            "`tool_choice` asks for a tool call, but `tools` is empty",
        ));
    }
    let format = match req.output_config.as_ref().and_then(|o| o.format.as_ref()) {
        None => None,
        Some(f) if f.kind == "json_schema" => {
            let schema = f.schema.clone().ok_or_else(|| {
                ApiError::invalid("output_config.format.schema", "Field required")
            })?;
            if matches!(choice.as_str(), Some("required")) || choice.is_object() {
                return Err(ApiError::invalid(
                    "output_config.format",
                    "`output_config.format` and a `tool_choice` that forces a tool call cannot both shape the reply",
                ));
            }
            Some(
                json!({"type": "json_schema", "json_schema": {"name": "output", "schema": schema}}),
            )
        }
        Some(f) => {
            return Err(ApiError::invalid(
                "output_config.format.type",
                format!(
                    "`output_config.format.type` must be \"json_schema\"; got {:?}",
                    f.kind
                ),
            ))
        }
    };
    let mut chat = json!({"model": req.model, "messages": []});
    if let Some(f) = format {
        chat["response_format"] = f;
    }
    if !tools.is_empty() {
        chat["tools"] = Value::Array(tools);
    }
    if !choice.is_null() {
        chat["tool_choice"] = choice;
    }
    serde_json::from_value(chat)
        .map_err(|e| ApiError::internal(format!("mapping the tools failed: {e}")))
}

/// The unsupported-block error for `field` (a block's `type`).
fn unsupported_block(field: String, kind: &str) -> ApiError {
    let why = match kind {
        "image" | "document" => "this model reads text only",
        "thinking" | "redacted_thinking" => "Hearth does not think in separate blocks",
        _ => "Hearth reads text, tool_use and tool_result blocks",
    };
    ApiError::invalid(
        field,
        format!("content blocks of type {kind:?} are not supported: {why}"),
    )
}

fn block_text(b: &Block, at: &str) -> AppResult<String> {
    b.text
        .clone()
        .ok_or_else(|| ApiError::invalid(format!("{at}.text"), "Field required"))
}

/// The text of a system prompt or tool result given as blocks: text blocks only.
fn texts(blocks: &[Block], at: &str) -> AppResult<String> {
    let mut out = Vec::new();
    for (j, b) in blocks.iter().enumerate() {
        let at = format!("{at}.{j}");
        if b.kind != "text" {
            return Err(unsupported_block(format!("{at}.type"), &b.kind));
        }
        out.push(block_text(b, &at)?);
    }
    Ok(out.join("\n"))
}

/// The conversation as chat messages, and the text of a final assistant turn that the reply
/// continues (Anthropic's prefill).
pub(crate) fn chat_messages(
    req: &MessagesRequest,
) -> AppResult<(Vec<ChatMessage>, Option<String>)> {
    let mut out = Vec::new();
    match &req.system {
        Some(System::Text(t)) if !t.is_empty() => out.push(ChatMessage::new("system", t)),
        Some(System::Blocks(b)) if !b.is_empty() => {
            out.push(ChatMessage::new("system", &texts(b, "system")?))
        }
        _ => {}
    }
    if req.messages.is_empty() {
        return Err(ApiError::invalid(
            "messages",
            "`messages` must hold at least one message",
        ));
    }
    // tool_use ids to names, for the tool turns that answer them.
    let mut names: HashMap<String, String> = HashMap::new();
    let mut prefill = None;
    let last = req.messages.len() - 1;
    for (i, m) in req.messages.iter().enumerate() {
        let at = format!("messages.{i}");
        match m.role.as_str() {
            "user" => user_turn(&mut out, &m.content, &at, &names)?,
            "assistant" => {
                let (text, calls) = assistant_turn(&m.content, &at, &mut names)?;
                if i == last && calls.is_empty() {
                    if text.ends_with(char::is_whitespace) {
                        return Err(ApiError::invalid(
                            format!("{at}.content"),
                            "final assistant content cannot end with trailing whitespace",
                        ));
                    }
                    prefill = Some(text);
                    continue;
                }
                let mut msg = ChatMessage::new("assistant", &text);
                if text.is_empty() && !calls.is_empty() {
                    msg.content = None;
                }
                if !calls.is_empty() {
                    msg.tool_calls = Some(Value::Array(calls));
                }
                out.push(msg);
            }
            other => {
                return Err(ApiError::invalid(
                    format!("{at}.role"),
                    format!("unknown role {other:?}: messages are \"user\" or \"assistant\"; the system prompt goes in the top-level `system`"),
                ))
            }
        }
    }
    Ok((out, prefill))
}

fn user_turn(
    out: &mut Vec<ChatMessage>,
    content: &Content,
    at: &str,
    names: &HashMap<String, String>,
) -> AppResult<()> {
    let blocks = match content {
        Content::Text(t) => {
            out.push(ChatMessage::new("user", t));
            return Ok(());
        }
        Content::Blocks(b) => b,
    };
    if blocks.is_empty() {
        return Err(ApiError::invalid(
            format!("{at}.content"),
            "a message needs at least one content block",
        ));
    }
    let mut text: Vec<String> = Vec::new();
    for (j, b) in blocks.iter().enumerate() {
        let at = format!("{at}.content.{j}");
        match b.kind.as_str() {
            "text" => text.push(block_text(b, &at)?),
            "tool_result" => {
                if !text.is_empty() {
                    out.push(ChatMessage::new("user", &text.join("\n")));
                    text.clear();
                }
                let id = b.tool_use_id.clone().ok_or_else(|| {
                    ApiError::invalid(format!("{at}.tool_use_id"), "Field required")
                })?;
                let mut body = match &b.content {
                    None => String::new(),
                    Some(ToolResultContent::Text(t)) => t.clone(),
                    Some(ToolResultContent::Blocks(bs)) => texts(bs, &format!("{at}.content"))?,
                };
                if b.is_error == Some(true) {
                    // The prompt formats have no error flag: say it in the text the model reads.
                    body = format!("Error: {body}");
                }
                out.push(ChatMessage {
                    role: "tool".into(),
                    content: Some(body),
                    tool_calls: None,
                    name: names.get(&id).cloned(),
                    tool_call_id: Some(id),
                });
            }
            "tool_use" => {
                return Err(ApiError::invalid(
                    format!("{at}.type"),
                    "`tool_use` blocks come from the assistant; a user message answers them with `tool_result`",
                ))
            }
            other => return Err(unsupported_block(format!("{at}.type"), other)),
        }
    }
    if !text.is_empty() {
        out.push(ChatMessage::new("user", &text.join("\n")));
    }
    Ok(())
}

/// The assistant's text and its tool calls (OpenAI's shape with the arguments as an object,
/// as templates expect them).
fn assistant_turn(
    content: &Content,
    at: &str,
    names: &mut HashMap<String, String>,
) -> AppResult<(String, Vec<Value>)> {
    let blocks = match content {
        Content::Text(t) => return Ok((t.clone(), Vec::new())),
        Content::Blocks(b) => b,
    };
    let mut text = Vec::new();
    let mut calls = Vec::new();
    for (j, b) in blocks.iter().enumerate() {
        let at = format!("{at}.content.{j}");
        match b.kind.as_str() {
            "text" => text.push(block_text(b, &at)?),
            "tool_use" => {
                let field = |f: &str| ApiError::invalid(format!("{at}.{f}"), "Field required");
                let id = b.id.clone().ok_or_else(|| field("id"))?;
                let name = b.name.clone().ok_or_else(|| field("name"))?;
                let input = b.input.clone().ok_or_else(|| field("input"))?;
                if !input.is_object() {
                    return Err(ApiError::invalid(
                        format!("{at}.input"),
                        "`input` must be an object",
                    ));
                }
                names.insert(id.clone(), name.clone());
                calls.push(json!({"id": id, "type": "function",
                    "function": {"name": name, "arguments": input}}));
            }
            "tool_result" => {
                return Err(ApiError::invalid(
                    format!("{at}.type"),
                    "`tool_result` blocks belong in a user message",
                ))
            }
            other => return Err(unsupported_block(format!("{at}.type"), other)),
        }
    }
    Ok((text.join("\n"), calls))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(v: Value) -> MessagesRequest {
        serde_json::from_value(v).expect("request parses")
    }

    #[test]
    fn tool_use_and_tool_result_become_calls_and_tool_turns() {
        let r = req(json!({
            "model": "m", "max_tokens": 5,
            "system": [{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Be kind.", "cache_control": {"type": "ephemeral"}}],
            "messages": [
                {"role": "user", "content": "Weather in Oslo?"},
                {"role": "assistant", "content": [
                    {"type": "text", "text": "Let me check."},
                    {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Oslo"}}]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "-3 C"}]},
                    {"type": "text", "text": "Thanks"}]},
            ]
        }));
        let (msgs, prefill) = chat_messages(&r).unwrap();
        assert!(prefill.is_none());
        let roles: Vec<&str> = msgs.iter().map(|m| m.role.as_str()).collect();
        assert_eq!(roles, ["system", "user", "assistant", "tool", "user"]);
        assert_eq!(msgs[0].content.as_deref(), Some("Be brief.\nBe kind."));
        let calls = msgs[2].tool_calls.as_ref().unwrap();
        assert_eq!(calls[0]["function"]["arguments"], json!({"city": "Oslo"}));
        assert_eq!(msgs[3].tool_call_id.as_deref(), Some("toolu_1"));
        assert_eq!(msgs[3].name.as_deref(), Some("weather"));
        assert_eq!(msgs[3].content.as_deref(), Some("-3 C"));
    }

    #[test]
    fn a_final_assistant_turn_is_a_prefill() {
        let r = req(json!({"model": "m", "messages": [
            {"role": "user", "content": "Count"}, {"role": "assistant", "content": "1, 2,"}]}));
        let (msgs, prefill) = chat_messages(&r).unwrap();
        assert_eq!(msgs.len(), 1);
        assert_eq!(prefill.as_deref(), Some("1, 2,"));
        let r = req(json!({"model": "m", "messages": [
            {"role": "user", "content": "Count"}, {"role": "assistant", "content": "1, 2, "}]}));
        let e = chat_messages(&r).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("messages.1.content"));
    }

    #[test]
    fn images_and_thinking_blocks_are_refused_by_field() {
        let r = req(
            json!({"model": "m", "messages": [{"role": "user", "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AA=="}}]}]}),
        );
        let e = chat_messages(&r).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("messages.0.content.1.type"));
        assert!(e.message.contains("\"image\""), "{}", e.message);
        let r = req(
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
            "thinking": {"type": "enabled", "budget_tokens": 2048}}),
        );
        assert_eq!(
            refuse_unsupported(&r).unwrap_err().param.as_deref(),
            Some("thinking")
        );
    }

    #[test]
    fn tools_and_choice_map_onto_the_chat_plan() {
        let r = req(json!({"model": "m", "messages": [],
            "tools": [{"name": "weather", "description": "d", "input_schema": {"type": "object"}}],
            "tool_choice": {"type": "tool", "name": "weather"}}));
        let chat = chat_request(&r).unwrap();
        let tools = chat.tools.unwrap();
        assert_eq!(tools[0].function.name, "weather");
        assert!(matches!(
            chat.tool_choice,
            Some(crate::openai::ToolChoice::Named { .. })
        ));
        let r = req(json!({"model": "m", "messages": [],
            "tools": [{"type": "web_search_20250305", "name": "web_search"}]}));
        assert_eq!(
            chat_request(&r).unwrap_err().param.as_deref(),
            Some("tools.0.type")
        );
        let r = req(json!({"model": "m", "messages": [],
            "tools": [{"name": "weather", "input_schema": {"type": "object"}}],
            "tool_choice": {"type": "tool", "name": "other"}}));
        assert_eq!(
            chat_request(&r).unwrap_err().param.as_deref(),
            Some("tool_choice.name")
        );
    }
}
