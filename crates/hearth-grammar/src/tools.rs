//! Tool calls in the Hermes / Qwen2.5 wire format: the prompt text that offers tools, the grammar
//! that makes a model's calls well formed, and the parser that takes them back out of the text.
//!
//! A call is written as
//!
//! ```text
//! <tool_call>
//! {"name": "get_weather", "arguments": {"city": "Paris"}}
//! </tool_call>
//! ```
//!
//! and several calls follow one another separated by a newline. The grammar lets the newlines
//! inside the tags be left out (`<tool_call>{...}</tool_call>`), as models trained on other
//! variants write them, and `tools::parse` reads both. Chat templates for this format
//! (Qwen2.5, Hermes) render tools the same way, so a model's own habits and Hearth's grammar
//! agree.
//!
//! The grammar is a Lark grammar for llguidance with one `%json` schema covering every callable
//! tool: `anyOf` over objects whose `name` is a constant and whose `arguments` is that tool's
//! parameter schema, its own `$ref`s rebased onto the place it sits (see `schema::embed`). For
//! [`ToolMode::Auto`] free text comes first; a lazy terminal ends it at the first `<tool_call>`,
//! from where the call must follow the grammar. The grammar alone decides what is allowed, so a
//! token that completes the trigger and carries more bytes is lexed like any other; the
//! free-text shortcut in the crate root only saves computing the mask before the trigger, where
//! the answer is known.

use serde_json::{json, Value};

use crate::{schema, Error, ToolMode, ToolSpec};

/// Opens a tool call.
pub const OPEN: &str = "<tool_call>";
/// Closes a tool call.
pub const CLOSE: &str = "</tool_call>";

/// Text Hearth adds to the system message when the chat template does not render tools itself.
pub fn system_prompt(tools: &[ToolSpec]) -> String {
    let mut out = String::from(
        "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n\
         You are provided with function signatures within <tools></tools> XML tags:\n<tools>",
    );
    for t in tools {
        let mut function = serde_json::Map::new();
        function.insert("name".to_string(), Value::String(t.name.clone()));
        if let Some(d) = &t.description {
            function.insert("description".to_string(), Value::String(d.clone()));
        }
        function.insert("parameters".to_string(), t.parameters.clone());
        let entry = json!({"type": "function", "function": Value::Object(function)});
        out.push('\n');
        out.push_str(&entry.to_string());
    }
    out.push_str(
        "\n</tools>\n\nFor each function call, return a json object with function name and \
         arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n\
         {\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call>",
    );
    out
}

/// One tool call taken from generated text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    pub name: String,
    /// The arguments object as compact JSON text (OpenAI's `function.arguments`).
    pub arguments: String,
}

/// Generated text split into what the user sees and the calls the model made.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Parsed {
    /// The text outside the calls, trimmed. A block that does not hold a well-formed call stays
    /// here as text rather than being dropped.
    pub content: String,
    pub calls: Vec<Call>,
}

/// Splits generated text into plain content and tool calls.
///
/// A call whose closing tag is missing (generation stopped at the end token right after the
/// JSON) still counts when the JSON is complete.
pub fn parse(text: &str) -> Parsed {
    let mut content = String::new();
    let mut calls = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find(OPEN) {
        content.push_str(&rest[..open]);
        let after = &rest[open + OPEN.len()..];
        let (body, next) = match after.find(CLOSE) {
            Some(close) => (&after[..close], &after[close + CLOSE.len()..]),
            None => (after, ""),
        };
        match parse_call(body) {
            Some(call) => calls.push(call),
            None => content.push_str(&rest[open..rest.len() - next.len()]),
        }
        rest = next;
    }
    content.push_str(rest);
    Parsed {
        content: content.trim().to_string(),
        calls,
    }
}

/// Reads `{"name": ..., "arguments": {...}}` (arguments may also arrive as a JSON string that
/// holds the object, as some models write it).
fn parse_call(body: &str) -> Option<Call> {
    let v: Value = serde_json::from_str(body.trim()).ok()?;
    let name = v.get("name")?.as_str()?.to_string();
    let arguments = match v.get("arguments") {
        None => "{}".to_string(),
        Some(Value::String(s)) => {
            let inner: Value = serde_json::from_str(s).ok()?;
            inner.to_string()
        }
        Some(a @ Value::Object(_)) => a.to_string(),
        Some(_) => return None,
    };
    Some(Call { name, arguments })
}

/// For streaming: how many bytes at the end of `text` might be the start of a tool call and must
/// be held back.
///
/// Everything from the first `<tool_call>` on is held (a call never streams as content); without
/// one, the longest end of `text` that could still grow into `<tool_call>`.
pub fn held_back(text: &str) -> usize {
    if let Some(open) = text.find(OPEN) {
        return text.len() - open;
    }
    // `OPEN` is ASCII, so any matching suffix starts at a character boundary.
    (1..OPEN.len())
        .rev()
        .find(|&n| text.len() >= n && text.as_bytes().ends_with(&OPEN.as_bytes()[..n]))
        .unwrap_or(0)
}

/// The tools a mode lets the model call, or `None` when nothing is constrained.
pub(crate) fn callable<'t>(
    tools: &'t [ToolSpec],
    mode: &ToolMode,
) -> Result<Option<Vec<&'t ToolSpec>>, Error> {
    let callable: Vec<&ToolSpec> = match mode {
        ToolMode::None => return Ok(None),
        // Nothing to call: the server offers no tools and the text is free.
        ToolMode::Auto if tools.is_empty() => return Ok(None),
        ToolMode::Auto => tools.iter().collect(),
        ToolMode::Required if tools.is_empty() => return Err(Error::NoTools),
        ToolMode::Required => tools.iter().collect(),
        ToolMode::Named(name) => {
            let found: Vec<&ToolSpec> = tools.iter().filter(|t| &t.name == name).collect();
            if found.is_empty() {
                return Err(Error::UnknownTool {
                    name: name.clone(),
                    available: tools.iter().map(|t| t.name.clone()).collect(),
                });
            }
            found
        }
    };
    let mut seen = std::collections::HashSet::new();
    for t in &callable {
        if !seen.insert(t.name.as_str()) {
            return Err(Error::DuplicateTool {
                name: t.name.clone(),
            });
        }
    }
    Ok(Some(callable))
}

/// The Lark grammar for a tool mode, or `None` when nothing is constrained.
pub(crate) fn grammar(tools: &[ToolSpec], mode: &ToolMode) -> Result<Option<String>, Error> {
    let Some(callable) = callable(tools, mode)? else {
        return Ok(None);
    };
    let options: Vec<Value> = callable
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let what = format!("tool '{}' parameters", t.name);
            // Where these parameters sit in the combined schema, which their own references
            // (`#/$defs/Address`, `#`) are rebased onto.
            let at = format!("#/anyOf/{i}/properties/arguments");
            let params = schema::embed(&t.parameters, &at, &what)?;
            Ok(json!({
                "type": "object",
                "properties": {"name": {"const": t.name}, "arguments": params},
                "required": ["name", "arguments"],
                "additionalProperties": false,
            }))
        })
        .collect::<Result<_, Error>>()?;
    let body = schema::with_options(json!({"anyOf": options}));
    let head = format!(
        "body: %json {body}\n\
         call: {open} \"\\n\"? body \"\\n\"? {close}\n\
         calls: (\"\\n\" call)* \"\\n\"?\n",
        open = lark_str(OPEN),
        close = lark_str(CLOSE),
    );
    let g = match mode {
        ToolMode::Auto => format!(
            "start: TEXT | lead \"\\n\"? body \"\\n\"? {close} calls\n\
             // Free text that never contains the trigger: once the trigger is written only the\n\
             // other branch is left.\n\
             TEXT: /(?s:.*)/ & ~/(?s:.*){trig}(?s:.*)/\n\
             // Lazy: ends at the first trigger.\n\
             lead[lazy]: /(?s:.*){trig}/\n\
             {head}",
            close = lark_str(CLOSE),
            trig = regex_escape(OPEN),
        ),
        _ => format!("start: call calls\n{head}"),
    };
    Ok(Some(g))
}

/// A Lark string literal (Lark strings in llguidance are JSON strings).
fn lark_str(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

/// Escapes regex metacharacters for use inside `/.../`.
fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 2);
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_splits_content_and_calls() {
        let text = "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"time\", \"arguments\": {}}\n</tool_call>";
        let p = parse(text);
        assert_eq!(p.content, "Let me check.");
        assert_eq!(
            p.calls,
            vec![
                Call {
                    name: "get_weather".into(),
                    arguments: r#"{"city":"Paris"}"#.into()
                },
                Call {
                    name: "time".into(),
                    arguments: "{}".into()
                },
            ]
        );
    }

    #[test]
    fn parse_keeps_malformed_blocks_as_text_and_accepts_unclosed_calls() {
        let p = parse("a <tool_call>{not json}</tool_call> b");
        assert_eq!(p.content, "a <tool_call>{not json}</tool_call> b");
        assert!(p.calls.is_empty());
        let p = parse("<tool_call>\n{\"name\": \"f\", \"arguments\": \"{\\\"x\\\": 1}\"}\n");
        assert_eq!(p.content, "");
        assert_eq!(p.calls[0].arguments, r#"{"x":1}"#);
        assert_eq!(parse("plain").content, "plain");
    }

    #[test]
    fn held_back_covers_partial_and_open_triggers() {
        assert_eq!(held_back("hello"), 0);
        assert_eq!(held_back("hello <"), 1);
        assert_eq!(held_back("hello <tool_ca"), 8);
        assert_eq!(held_back("hello <tool_call>\n{\"na"), 16);
        assert_eq!(held_back("a < b"), 0);
        assert_eq!(held_back("<tool_call"), 10);
    }

    #[test]
    fn system_prompt_lists_every_tool() {
        let tools = vec![
            ToolSpec {
                name: "a".into(),
                description: Some("does a".into()),
                parameters: json!({"type": "object"}),
            },
            ToolSpec {
                name: "b".into(),
                description: None,
                parameters: json!({"type": "object", "properties": {"x": {"type": "integer"}}}),
            },
        ];
        let p = system_prompt(&tools);
        assert!(p.contains(r#""name":"a""#) && p.contains(r#""description":"does a""#));
        assert!(p.contains(r#""name":"b""#));
        assert!(p.contains("<tool_call>"));
    }

    #[test]
    fn grammar_errors_name_the_problem() {
        let tools = vec![ToolSpec {
            name: "f".into(),
            description: None,
            parameters: json!({"type": "object"}),
        }];
        assert!(grammar(&tools, &ToolMode::None).unwrap().is_none());
        assert!(grammar(&[], &ToolMode::Auto).unwrap().is_none());
        let e = grammar(&tools, &ToolMode::Named("g".into())).unwrap_err();
        assert!(
            e.to_string().contains("'g'") && e.to_string().contains("f"),
            "{e}"
        );
        assert!(matches!(
            grammar(&[], &ToolMode::Required),
            Err(Error::NoTools)
        ));
        let twice = vec![tools[0].clone(), tools[0].clone()];
        assert!(matches!(
            grammar(&twice, &ToolMode::Required),
            Err(Error::DuplicateTool { .. })
        ));
    }
}
