//! Tools and structured output for one chat request: how they reach the prompt, which
//! constraint enforces them, and how calls come back out of the text (whole or streamed).
//!
//! When the model's chat template renders `tools` (Qwen2.5 and other Hermes-format templates),
//! tools, calls and results go through the template. When it does not (SmolLM2's ignores them),
//! Hearth writes the tool list into the system message in the same Hermes format, turns earlier
//! calls into `<tool_call>` text and results into `<tool_response>` turns, so the model sees one
//! consistent format and hearth-grammar's parser reads its answer either way.

use std::sync::Arc;

use hearth_grammar::{tools as fmt, Constraint, GrammarEnv, ToolMode, ToolSpec};
use hearth_model::chat::{ChatMessage, ChatTemplate};
use hearth_model::TokenConstraint;
use serde_json::{json, Value};

use super::{ChatRequest, TokenLogprob, ToolChoice};
use crate::error::ApiError;
use crate::Served;

/// What the request asks for besides plain text.
pub struct ToolPlan {
    specs: Vec<ToolSpec>,
    mode: ToolMode,
    /// The request's `tools`, passed to templates that render them.
    raw_tools: Option<Value>,
    through_template: bool,
    format: Format,
}

enum Format {
    Text,
    JsonObject,
    JsonSchema(Value),
}

impl ToolPlan {
    pub(crate) fn new(state: &Served, req: &ChatRequest) -> Result<ToolPlan, ApiError> {
        let mut specs = Vec::new();
        for (i, t) in req.tools.iter().flatten().enumerate() {
            if t.kind != "function" {
                return Err(ApiError::invalid(
                    format!("tools[{i}].type"),
                    format!(
                        "tools of type {:?} are not supported; use \"function\"",
                        t.kind
                    ),
                ));
            }
            let params = t
                .function
                .parameters
                .clone()
                .unwrap_or_else(|| json!({"type": "object", "properties": {}}));
            if !params.is_object() {
                return Err(ApiError::invalid(
                    format!("tools[{i}].function.parameters"),
                    "`parameters` must be a JSON schema object",
                ));
            }
            specs.push(ToolSpec {
                name: t.function.name.clone(),
                description: t.function.description.clone(),
                parameters: params,
            });
        }
        let mode = match &req.tool_choice {
            None if specs.is_empty() => ToolMode::None,
            None => ToolMode::Auto,
            Some(ToolChoice::Mode(m)) => match m.as_str() {
                "auto" => ToolMode::Auto,
                "none" => ToolMode::None,
                "required" => ToolMode::Required,
                other => {
                    return Err(ApiError::invalid(
                        "tool_choice",
                        format!("`tool_choice` must be \"auto\", \"none\", \"required\" or a named function; got {other:?}"),
                    ))
                }
            },
            Some(ToolChoice::Named { kind, function }) => {
                if kind != "function" {
                    return Err(ApiError::invalid(
                        "tool_choice.type",
                        format!("`tool_choice.type` must be \"function\"; got {kind:?}"),
                    ));
                }
                ToolMode::Named(function.name.clone())
            }
        };
        if specs.is_empty() && matches!(mode, ToolMode::Required | ToolMode::Named(_)) {
            return Err(ApiError::invalid(
                "tool_choice",
                "`tool_choice` asks for a tool call, but `tools` is empty",
            ));
        }
        if let ToolMode::Named(name) = &mode {
            if !specs.iter().any(|s| &s.name == name) {
                let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
                return Err(ApiError::invalid(
                    "tool_choice.function.name",
                    format!(
                        "`tool_choice` names {name:?}, which is not among the tools ({})",
                        names.join(", ")
                    ),
                ));
            }
        }
        let format = match &req.response_format {
            None => Format::Text,
            Some(f) => match f.kind.as_str() {
                "text" => Format::Text,
                "json_object" => Format::JsonObject,
                "json_schema" => {
                    let schema = f
                        .json_schema
                        .as_ref()
                        .and_then(|j| j.schema.clone())
                        .ok_or_else(|| {
                            ApiError::invalid(
                                "response_format.json_schema.schema",
                                "`response_format` of type json_schema needs `json_schema.schema`",
                            )
                        })?;
                    Format::JsonSchema(schema)
                }
                other => {
                    return Err(ApiError::invalid(
                        "response_format.type",
                        format!("`response_format.type` must be text, json_object or json_schema; got {other:?}"),
                    ))
                }
            },
        };
        if !matches!(format, Format::Text)
            && matches!(mode, ToolMode::Required | ToolMode::Named(_))
        {
            return Err(ApiError::invalid(
                "response_format",
                "`response_format` and a forced `tool_choice` cannot both shape the reply",
            ));
        }
        let through_template = state
            .template
            .as_ref()
            .is_some_and(ChatTemplate::uses_tools);
        let raw_tools = req.tools.as_ref().map(|_| {
            Value::Array(
                specs
                    .iter()
                    .map(|s| {
                        json!({"type": "function", "function": {
                        "name": s.name, "description": s.description, "parameters": s.parameters}})
                    })
                    .collect(),
            )
        });
        Ok(ToolPlan {
            specs,
            mode,
            raw_tools,
            through_template,
            format,
        })
    }

    /// Whether tool calls may appear in the reply.
    fn calls_possible(&self) -> bool {
        !self.specs.is_empty() && self.mode != ToolMode::None
    }

    /// Tools for the template, when it renders them itself.
    pub fn template_tools(&self) -> Option<&Value> {
        if self.through_template && self.calls_possible() {
            self.raw_tools.as_ref()
        } else {
            None
        }
    }

    /// The conversation as the template should see it.
    pub fn prepare_messages(
        &self,
        _template: &ChatTemplate,
        mut msgs: Vec<ChatMessage>,
    ) -> Vec<ChatMessage> {
        if self.through_template {
            return msgs;
        }
        // Earlier calls and results in the Hermes text format, whether or not tools are offered now.
        for m in &mut msgs {
            if let Some(Value::Array(calls)) = m.tool_calls.take() {
                let mut text = m.content.take().unwrap_or_default();
                for c in calls {
                    let f = &c["function"];
                    let call = json!({"name": f["name"], "arguments": f["arguments"]});
                    if !text.is_empty() {
                        text.push('\n');
                    }
                    text.push_str(&format!("{}\n{call}\n{}", fmt::OPEN, fmt::CLOSE));
                }
                m.content = Some(text);
            }
            if m.role == "tool" {
                m.role = "user".into();
                let body = m.content.take().unwrap_or_default();
                m.content = Some(format!("<tool_response>\n{body}\n</tool_response>"));
                m.tool_call_id = None;
            }
        }
        if self.calls_possible() {
            let prompt = fmt::system_prompt(&self.specs);
            match msgs.first_mut() {
                Some(first) if first.role == "system" => {
                    let text = first.content.take().unwrap_or_default();
                    first.content = Some(if text.is_empty() {
                        prompt
                    } else {
                        format!("{text}\n\n{prompt}")
                    });
                }
                _ => msgs.insert(0, ChatMessage::new("system", &prompt)),
            }
        }
        msgs
    }

    /// The constraint that enforces the tool choice or response format.
    pub fn constraint(
        &self,
        state: &Served,
        _req: &ChatRequest,
    ) -> Result<Option<Box<dyn TokenConstraint>>, ApiError> {
        let wants_tools = self.calls_possible();
        if !wants_tools && matches!(self.format, Format::Text) {
            return Ok(None);
        }
        let env: Arc<GrammarEnv> = state.grammar()?;
        let c = match (&self.format, wants_tools) {
            (_, true) if self.mode != ToolMode::Auto || matches!(self.format, Format::Text) => {
                Constraint::tool_calls(&env, &self.specs, &self.mode)
                    .map_err(|e| ApiError::invalid("tools", e.to_string()))?
            }
            (Format::JsonObject, _) => Some(
                Constraint::json_object(&env)
                    .map_err(|e| ApiError::invalid("response_format", e.to_string()))?,
            ),
            (Format::JsonSchema(s), _) => Some(Constraint::json_schema(&env, s).map_err(|e| {
                ApiError::invalid("response_format.json_schema.schema", e.to_string())
            })?),
            (Format::Text, _) => None,
        };
        Ok(c.map(|c| Box::new(c) as Box<dyn TokenConstraint>))
    }

    /// Splits a finished reply into content (null when only calls) and OpenAI tool calls.
    pub fn finish(&self, text: &str) -> (Value, Vec<Value>) {
        if !self.calls_possible() {
            return (Value::String(text.to_string()), Vec::new());
        }
        let mut parsed = fmt::parse(text);
        let calls: Vec<Value> = parsed.calls.iter().map(call_json).collect();
        // A call cut off by max_tokens after complete ones is not shown as text.
        if !calls.is_empty() {
            if let Some(open) = parsed.content.find(fmt::OPEN) {
                parsed.content.truncate(open);
                parsed.content = parsed.content.trim_end().to_string();
            }
        }
        let content = if parsed.content.is_empty() && !calls.is_empty() {
            Value::Null
        } else {
            Value::String(parsed.content)
        };
        (content, calls)
    }

    pub fn streamer(&self) -> Streamer {
        Streamer {
            active: self.calls_possible(),
            text: String::new(),
            sent: 0,
            calls_sent: 0,
        }
    }
}

fn call_id() -> String {
    format!("call_{:016x}", rand::random::<u64>())
}

fn call_json(c: &fmt::Call) -> Value {
    json!({"id": call_id(), "type": "function", "function": {"name": c.name, "arguments": c.arguments}})
}

/// Streams content while holding back anything that may be a tool call; each call goes out as
/// one delta once it is complete.
pub struct Streamer {
    active: bool,
    text: String,
    /// Bytes of `text` already sent as content.
    sent: usize,
    calls_sent: usize,
}

/// Deltas to send now.
pub struct Out {
    content: String,
    logprobs: Option<Vec<TokenLogprob>>,
    calls: Vec<(usize, fmt::Call)>,
    /// Whether the reply held tool calls (set at the end).
    pub called: bool,
}

impl Out {
    /// `(delta, logprobs)` pairs in order.
    pub fn deltas(
        self,
        logprobs: Option<Vec<TokenLogprob>>,
    ) -> Vec<(Value, Option<Vec<TokenLogprob>>)> {
        let mut out = Vec::new();
        let lp = logprobs.or(self.logprobs);
        if !self.content.is_empty() || lp.as_ref().is_some_and(|l| !l.is_empty()) {
            out.push((json!({"content": self.content}), lp));
        }
        for (index, c) in self.calls {
            out.push((
                json!({"tool_calls": [{"index": index, "id": call_id(), "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments}}]}),
                None,
            ));
        }
        out
    }
}

impl Streamer {
    pub fn push(&mut self, piece: &str) -> Out {
        self.text.push_str(piece);
        if !self.active {
            let content = self.text[self.sent..].to_string();
            self.sent = self.text.len();
            return Out {
                content,
                logprobs: None,
                calls: Vec::new(),
                called: false,
            };
        }
        let held = fmt::held_back(&self.text);
        let safe = self.text.len() - held;
        let content = if safe > self.sent {
            self.text[self.sent..safe].to_string()
        } else {
            String::new()
        };
        self.sent = self.sent.max(safe);
        // Calls complete so far (closing tag seen) go out as they finish.
        let tail = &self.text[self.sent..];
        let calls = match tail.rfind(fmt::CLOSE) {
            Some(i) => new_calls(&tail[..i + fmt::CLOSE.len()], &mut self.calls_sent),
            None => Vec::new(),
        };
        Out {
            content,
            logprobs: None,
            calls,
            called: false,
        }
    }

    /// The end of the reply: held text that was not a call, and calls without a closing tag.
    pub fn finish(&mut self) -> Out {
        if !self.active {
            return Out {
                content: String::new(),
                logprobs: None,
                calls: Vec::new(),
                called: false,
            };
        }
        let rest = self.text[self.sent..].to_string();
        let calls = new_calls(&rest, &mut self.calls_sent);
        let called = self.calls_sent > 0;
        // Text around calls is not repeated: only a held tail that held no call is content.
        let content = if self.calls_sent == 0 {
            rest
        } else {
            String::new()
        };
        self.sent = self.text.len();
        Out {
            content,
            logprobs: None,
            calls,
            called,
        }
    }
}

/// The calls in `text` beyond the first `*sent`, numbered from 0 over the whole text.
fn new_calls(text: &str, sent: &mut usize) -> Vec<(usize, fmt::Call)> {
    let new: Vec<(usize, fmt::Call)> = fmt::parse(text)
        .calls
        .into_iter()
        .enumerate()
        .skip(*sent)
        .collect();
    *sent += new.len();
    new
}
