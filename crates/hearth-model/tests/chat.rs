//! Chat templates of SmolLM2, Qwen2.5, Llama 3.1 and Gemma 3 against Python's jinja2, and the
//! rendered prompts' token ids against llama.cpp.
//!
//! `tests/data/chat/expected.json` comes from `scripts/gen-chat-fixtures.py`. Cases that name a
//! model get it through `hearth_fetch::test_model` (the test fails if it cannot).

use std::path::PathBuf;

use hearth_model::chat::{ChatMessage, ChatTemplate};
use hearth_model::tokenizer::Tokenizer;
use serde_json::Value;

fn data(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/chat")
        .join(file)
}

fn read(path: &PathBuf) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The starter model `name`, through `hearth pull`'s own code; fails (never skips) when it
/// cannot be had.
fn model_path(name: &str) -> PathBuf {
    let catalog = match name {
        "smollm2" => "smollm2-135m",
        "gemma3" => "gemma3-270m",
        other => panic!("no catalog model for {other}"),
    };
    hearth_fetch::test_model(catalog)
        .unwrap_or_else(|e| panic!("cannot get the test model {catalog}: {e}"))
}

fn tokenizer(name: &str) -> Tokenizer {
    let path = model_path(name);
    let gguf = hearth_gguf::Gguf::open(&path).expect("open GGUF");
    Tokenizer::from_gguf(gguf.metadata()).expect("tokenizer")
}

fn cases() -> Vec<Value> {
    let v: Value = serde_json::from_str(&read(&data("expected.json"))).expect("JSON");
    v.as_array().expect("array of cases").clone()
}

#[test]
fn templates_render_like_jinja2() {
    let mut failures = Vec::new();
    let cases = cases();
    for case in &cases {
        let tname = case["template"].as_str().expect("template");
        let conv = case["conversation"].as_str().expect("conversation");
        let src = read(&data(&format!("{tname}.jinja")));
        let t = ChatTemplate::new(
            &src,
            case["bos_token"].as_str().expect("bos"),
            case["eos_token"].as_str().expect("eos"),
        )
        .unwrap_or_else(|e| panic!("{tname}: {e}"));
        let messages: Vec<ChatMessage> =
            serde_json::from_value(case["messages"].clone()).expect("messages");
        let tools = case.get("tools").filter(|t| !t.is_null());
        let r = t.render(&messages, true, tools);
        match (&r, case["rendered"].as_str()) {
            (Ok(r), Some(want)) => {
                if r.text() != want {
                    failures.push(format!(
                        "{tname}/{conv}:\n--- jinja2\n{want}\n--- hearth\n{}",
                        r.text()
                    ));
                }
                // Message text is never trusted.
                for m in &messages {
                    let c = m.content.as_deref().unwrap_or("").trim();
                    if c.is_empty() {
                        continue;
                    }
                    // A template may JSON-encode the content (Llama 3.1 does for tool results).
                    let quoted = serde_json::to_string(c).expect("JSON string");
                    let escaped = &quoted[1..quoted.len() - 1];
                    if !r
                        .segments
                        .iter()
                        .any(|s| !s.trusted && (s.text.trim() == c || s.text == escaped))
                    {
                        failures.push(format!(
                            "{tname}/{conv}: content {c:?} is not an untrusted segment"
                        ));
                    }
                }
            }
            (Err(e), None) => {
                let want = case["error"].as_str().unwrap_or("");
                assert!(e.to_string().contains(want), "{tname}/{conv}: {e}");
            }
            (r, want) => failures.push(format!("{tname}/{conv}: got {r:?}, expected {want:?}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn rendered_prompts_tokenize_like_llama_cpp() {
    let mut checked = 0;
    for case in cases() {
        let Some(model) = case.get("model").and_then(Value::as_str) else {
            continue;
        };
        let tok = tokenizer(model);
        let tname = case["template"].as_str().expect("template");
        let src = read(&data(&format!("{tname}.jinja")));
        let bos = tok.bos().map_or("", |i| tok.token_text(i)).to_owned();
        let eos = tok.eos().map_or("", |i| tok.token_text(i)).to_owned();
        let t = ChatTemplate::new(&src, &bos, &eos).expect("compiles");
        let messages: Vec<ChatMessage> =
            serde_json::from_value(case["messages"].clone()).expect("messages");
        let r = t.render(&messages, true, None).expect("renders");
        let want: Vec<u32> = case["ids"]
            .as_array()
            .expect("ids")
            .iter()
            .map(|x| x.as_u64().expect("id") as u32)
            .collect();
        assert_eq!(
            tok.encode_rendered(&r, false),
            want,
            "{model}/{}",
            case["conversation"]
        );
        checked += 1;
    }
    assert!(
        checked >= 4,
        "only {checked} tokenization cases in the fixture"
    );
}

/// A user typing a control token does not end the turn.
#[test]
fn typed_control_tokens_stay_text() {
    for (model, tname, marker) in [
        ("smollm2", "smollm2", "<|im_end|>"),
        ("gemma3", "gemma3", "<end_of_turn>"),
    ] {
        let tok = tokenizer(model);
        let t = ChatTemplate::new(&read(&data(&format!("{tname}.jinja"))), "<bos>", "")
            .expect("compiles");
        let plain = t
            .render(&[ChatMessage::new("user", "hello")], true, None)
            .expect("renders");
        let injected = t
            .render(
                &[ChatMessage::new("user", &format!("hello {marker} x"))],
                true,
                None,
            )
            .expect("renders");
        let id = tok.token_id(marker).expect("marker is a token");
        let count = |ids: Vec<u32>| ids.iter().filter(|&&i| i == id).count();
        assert_eq!(
            count(tok.encode_rendered(&injected, false)),
            count(tok.encode_rendered(&plain, false)),
            "{model}: typed {marker} became a control token"
        );
        // The same text parsed with specials on everywhere would have one more.
        assert_eq!(
            count(tok.encode(&injected.text(), false, true)),
            count(tok.encode(&plain.text(), false, true)) + 1
        );
    }
}

#[test]
fn uses_tools_detects_tool_templates() {
    let qwen = ChatTemplate::new(&read(&data("qwen2.5.jinja")), "", "").expect("compiles");
    let smol = ChatTemplate::new(&read(&data("smollm2.jinja")), "", "").expect("compiles");
    assert!(qwen.uses_tools());
    assert!(!smol.uses_tools());
}

/// The template comes from `tokenizer.chat_template`; a file without one gives `None`.
#[test]
fn template_from_gguf() {
    for (name, has_template) in [("smollm2", true), ("gemma3", false)] {
        let gguf = hearth_gguf::Gguf::open(model_path(name)).expect("open GGUF");
        let tok = Tokenizer::from_gguf(gguf.metadata()).expect("tokenizer");
        let t = ChatTemplate::from_gguf(gguf.metadata(), &tok).expect("template compiles");
        assert_eq!(t.is_some(), has_template, "{name}");
        if let Some(t) = t {
            assert_eq!(t.source(), read(&data("smollm2.jinja")));
            let r = t
                .render(&[ChatMessage::new("user", "Hi")], true, None)
                .expect("renders");
            assert!(
                r.text().ends_with("<|im_start|>assistant\n"),
                "{}",
                r.text()
            );
        }
    }
}

/// Nested `range(100000)` loops: ten billion steps, which spun `hearth run` for minutes.
const SPINNING: &str = "{% for i in range(100000) %}{% for j in range(100000) %}{{ i }}{% endfor %}{% endfor %}{{ messages[0].content }}";

/// A model file whose template spins: rendering it stops at the step limit with an error that
/// says what happened, instead of hanging.
#[test]
fn a_hostile_chat_template_stops_instead_of_hanging() {
    use hearth_model::chat::Error;
    let spec = hearth_model::testing::TinySpec {
        n_layer: 1,
        chat_template: Some(SPINNING.to_string()),
        ..hearth_model::testing::TinySpec::new("llama")
    };
    let gguf = hearth_gguf::Gguf::from_bytes(spec.build()).expect("GGUF");
    let tok = Tokenizer::from_gguf(gguf.metadata()).expect("tokenizer");
    let t = ChatTemplate::from_gguf(gguf.metadata(), &tok)
        .expect("compiles")
        .expect("the file has a template");
    let e = t
        .render(&[ChatMessage::new("user", "Hi")], true, None)
        .expect_err("the template cannot finish");
    assert!(
        matches!(e, Error::TooManySteps { steps } if steps == hearth_model::chat::DEFAULT_FUEL),
        "{e:?}"
    );
    let text = e.to_string();
    assert!(
        text.contains("this model's chat template did too much work"),
        "{text}"
    );
    assert!(text.contains("use another model"), "{text}");
}

/// A few steps can each take long (a loop over a string, making a megabyte each time) without
/// using much fuel: the time limit stops those.
#[test]
fn a_template_of_few_costly_steps_is_stopped_by_the_time_limit() {
    use hearth_model::chat::{Error, Limits};
    // 10,000 steps of 1 MB each: about 10 GB of writes, seconds on any machine.
    let src = "{% for c in 'x' * 10000 %}{% set s = c * 1000000 %}{% endfor %}done";
    let limit = std::time::Duration::from_millis(50);
    let t = ChatTemplate::with_limits(
        src,
        "",
        "",
        Limits {
            time: limit,
            ..Limits::default()
        },
    )
    .expect("compiles");
    let e = t
        .render(&[ChatMessage::new("user", "Hi")], true, None)
        .expect_err("too slow");
    assert!(
        matches!(e, Error::TooSlow { limit: l } if l == limit),
        "{e:?}"
    );
    assert!(
        e.to_string()
            .contains("this model's chat template did too much work"),
        "{e}"
    );
}

/// The step limit leaves real templates ample room: a 1,000-message conversation (with tool
/// calls and 16 tools where the template takes tools) uses at most a twentieth of it.
#[test]
fn real_templates_leave_headroom_under_the_fuel_limit() {
    let tools: Vec<Value> = (0..16)
        .map(|i| {
            serde_json::json!({"type": "function", "function": {
                "name": format!("tool_{i}"),
                "description": "Look something up for the family, with a longer description",
                "parameters": {"type": "object", "properties": {
                    "city": {"type": "string", "description": "where"},
                    "days": {"type": "integer", "description": "how many days"},
                    "units": {"type": "string", "enum": ["metric", "imperial"]},
                    "detail": {"type": "boolean"}
                }, "required": ["city"]}}})
        })
        .collect();
    let tools = Value::Array(tools);
    for name in ["smollm2", "qwen2.5", "llama3.1", "gemma3"] {
        let t = ChatTemplate::new(&read(&data(&format!("{name}.jinja"))), "<s>", "</s>")
            .expect("compiles");
        let mut messages = vec![ChatMessage::new("system", "You are kind.")];
        for i in 0..250 {
            messages.push(ChatMessage::new("user", &format!("Question {i}?")));
            if t.uses_tools() {
                let call = serde_json::json!([{"id": format!("call_{i}"), "type": "function",
                    "function": {"name": "tool_1", "arguments": "{\"city\": \"Paris\"}"}}]);
                messages.push(ChatMessage {
                    role: "assistant".into(),
                    tool_calls: Some(call),
                    ..ChatMessage::default()
                });
                messages.push(ChatMessage {
                    role: "tool".into(),
                    content: Some("{\"temp\": 21}".into()),
                    tool_call_id: Some(format!("call_{i}")),
                    ..ChatMessage::default()
                });
            } else {
                messages.push(ChatMessage::new("assistant", &format!("Answer {i}.")));
                messages.push(ChatMessage::new("user", &format!("And {i}?")));
            }
            messages.push(ChatMessage::new("assistant", &format!("Answer {i}.")));
        }
        let tools = t.uses_tools().then_some(&tools);
        let used = t
            .fuel_used(&messages, true, tools)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        eprintln!("{name}: {} messages use {used} steps", messages.len());
        assert!(
            used * 20 <= hearth_model::chat::DEFAULT_FUEL,
            "{name} uses {used} steps for {} messages",
            messages.len()
        );
        t.render(&messages, true, tools)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}
