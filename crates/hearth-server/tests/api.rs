//! Every endpoint and error path through `Router::oneshot`, on the real SmolLM2 model (and the
//! real embedding model), so what is checked is what a client gets.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use hearth_engine::{EngineOptions, Speculation};
use hearth_model::chat::ChatTemplate;
use hearth_model::tokenizer::Tokenizer;
use hearth_model::{Model, SamplerConfig};
use hearth_server::{AppState, Auth, EmbedModel, ServeModel, ServeOptions};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

const MODEL: &str = "smollm2-135m";

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().expect("addr")
}

struct Setup {
    ctx: usize,
    keys: Vec<String>,
    max_queue: usize,
    embeddings: bool,
    speculation: Speculation,
    /// SmolLM2 also drafts for itself (a draft model with the same vocabulary, as `--draft`).
    draft: bool,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            ctx: 1024,
            keys: Vec::new(),
            max_queue: 16,
            embeddings: false,
            speculation: Speculation::PromptLookup,
            draft: false,
        }
    }
}

/// SmolLM2, served under `id`.
fn smollm2(id: &str) -> ServeModel {
    let path = hearth_fetch::test_model(MODEL).expect("SmolLM2 for tests");
    let model = Model::open(&path).expect("model loads");
    let md = model.gguf().metadata();
    let tokenizer = Tokenizer::from_gguf(md).expect("tokenizer");
    let template = ChatTemplate::from_gguf(md, &tokenizer).expect("template compiles");
    ServeModel {
        id: id.into(),
        model,
        tokenizer,
        template,
        defaults: SamplerConfig::default(),
        draft: None,
    }
}

fn engine_options(ctx: usize) -> EngineOptions {
    EngineOptions {
        ctx,
        threads: 2,
        max_seqs: 4,
        ..EngineOptions::default()
    }
}

fn app(s: Setup) -> Router {
    hearth_server::router(app_state(s))
}

fn app_state(s: Setup) -> Arc<AppState> {
    let embed = s.embeddings.then(|| {
        let dir = hearth_fetch::test_model("all-minilm-l6-v2").expect("embedding model");
        EmbedModel {
            id: "all-minilm-l6-v2".into(),
            embedder: hearth_embed::Embedder::open(&dir).expect("embedder"),
        }
    });
    let mut served = smollm2(MODEL);
    if s.draft {
        let path = hearth_fetch::test_model(MODEL).expect("SmolLM2 for tests");
        served.draft = Some(Model::open(&path).expect("draft loads"));
    }
    AppState::new(
        served,
        embed,
        ServeOptions {
            engine: EngineOptions {
                speculation: s.speculation,
                ..engine_options(s.ctx)
            },
            max_queue: s.max_queue,
            body_limit: 64 << 10,
            ..ServeOptions::default()
        },
        Auth::new(loopback(), s.keys).expect("loopback is allowed"),
    )
}

/// One shared default server: the engine thread lives as long as the test binary.
fn shared() -> Router {
    static APP: OnceLock<Router> = OnceLock::new();
    APP.get_or_init(|| app(Setup::default())).clone()
}

async fn call(app: &Router, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let resp = app.clone().oneshot(req).await.expect("response");
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
        .to_vec();
    (status, headers, body)
}

fn post(path: &str, body: impl Into<Body>) -> Request<Body> {
    Request::post(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body.into())
        .expect("request")
}

async fn post_json(app: &Router, path: &str, v: &Value) -> (StatusCode, Value) {
    let (status, _, body) = call(app, post(path, v.to_string())).await;
    let v: Value = serde_json::from_slice(&body)
        .unwrap_or_else(|_| panic!("JSON body, got {}", String::from_utf8_lossy(&body)));
    (status, v)
}

fn chat(content: &str, extra: Value) -> Value {
    let mut v = json!({
        "model": MODEL,
        "messages": [{"role": "user", "content": content}],
        "temperature": 0,
        "max_tokens": 12,
    });
    if let (Some(o), Value::Object(e)) = (v.as_object_mut(), extra) {
        o.extend(e);
    }
    v
}

/// The OpenAI error shape, returning (type, param, message).
fn error_of(v: &Value) -> (String, Option<String>, String) {
    let e = &v["error"];
    assert!(e.is_object(), "not an error body: {v}");
    assert!(e.get("code").is_some(), "error without `code`: {v}");
    (
        e["type"].as_str().expect("type").to_string(),
        e["param"].as_str().map(str::to_string),
        e["message"].as_str().expect("message").to_string(),
    )
}

/// Parses an SSE body into its `data:` payloads.
fn sse_data(body: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(body)
        .lines()
        .filter_map(|l| l.strip_prefix("data: ").map(str::to_string))
        .collect()
}

#[tokio::test]
async fn health_models_and_metrics() {
    let app = shared();
    let (s, _, body) = call(&app, Request::get("/health").body(Body::empty()).unwrap()).await;
    assert_eq!(s, StatusCode::OK);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["status"], "ok");
    let (s, _, body) = call(
        &app,
        Request::get("/v1/models").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["object"], "list");
    assert_eq!(v["data"][0]["id"], MODEL);
    let (s, _, _) = call(
        &app,
        Request::get("/v1/models/nope").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _, body) = call(&app, Request::get("/metrics").body(Body::empty()).unwrap()).await;
    assert_eq!(s, StatusCode::OK);
    let text = String::from_utf8(body).unwrap();
    for name in [
        "hearth_requests_total",
        "hearth_generated_tokens_total",
        "hearth_queue_depth",
        "hearth_kv_blocks_used",
        "hearth_step_sequences_bucket{le=\"8\"}",
        "hearth_generation_tokens_per_second",
    ] {
        assert!(text.contains(name), "/metrics lacks {name}:\n{text}");
    }
}

#[tokio::test]
async fn chat_streaming_equals_non_streaming() {
    let app = shared();
    let req = chat(
        "Name three colours.",
        json!({"logprobs": true, "top_logprobs": 3}),
    );
    let (s, whole) = post_json(&app, "/v1/chat/completions", &req).await;
    assert_eq!(s, StatusCode::OK, "{whole}");
    let choice = &whole["choices"][0];
    let text = choice["message"]["content"].as_str().expect("content");
    assert!(!text.is_empty());
    assert_eq!(whole["usage"]["completion_tokens"], 12);
    assert_eq!(choice["finish_reason"], "length");
    let lps = choice["logprobs"]["content"].as_array().expect("logprobs");
    assert_eq!(lps.len(), 12);
    assert_eq!(lps[0]["top_logprobs"].as_array().unwrap().len(), 3);

    let mut sreq = req.clone();
    sreq["stream"] = json!(true);
    sreq["stream_options"] = json!({"include_usage": true});
    let (s, headers, body) = call(&app, post("/v1/chat/completions", sreq.to_string())).await;
    assert_eq!(s, StatusCode::OK);
    assert!(headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let data = sse_data(&body);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let mut streamed = String::new();
    let mut streamed_lps = Vec::new();
    let mut finish = None;
    let mut usage = None;
    for d in &data[..data.len() - 1] {
        let v: Value = serde_json::from_str(d).expect("chunk JSON");
        assert_eq!(v["object"], "chat.completion.chunk");
        if let Some(c) = v["choices"].get(0) {
            streamed.push_str(c["delta"]["content"].as_str().unwrap_or(""));
            if let Some(l) = c["logprobs"]["content"].as_array() {
                streamed_lps.extend(l.iter().cloned());
            }
            if !c["finish_reason"].is_null() {
                finish = Some(c["finish_reason"].clone());
            }
        }
        if !v["usage"].is_null() {
            usage = Some(v["usage"].clone());
        }
    }
    assert_eq!(streamed, text);
    assert_eq!(&streamed_lps, lps);
    assert_eq!(finish, Some(json!("length")));
    assert_eq!(usage.expect("usage chunk")["completion_tokens"], 12);
}

#[tokio::test]
async fn completions_and_stop_strings() {
    let app = shared();
    let req = json!({"model": MODEL, "prompt": "One, two, three, four,", "max_tokens": 10,
                     "temperature": 0, "logprobs": 2});
    let (s, v) = post_json(&app, "/v1/completions", &req).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["object"], "text_completion");
    let text = v["choices"][0]["text"].as_str().unwrap().to_string();
    assert_eq!(
        v["choices"][0]["logprobs"]["tokens"]
            .as_array()
            .unwrap()
            .len(),
        10
    );
    // Stopping at the first character of the answer gives the text before it, finish "stop".
    let cut = text
        .trim_start()
        .chars()
        .next()
        .expect("some text")
        .to_string();
    let mut req2 = req.clone();
    req2["stop"] = json!([cut.clone()]);
    let (_, v2) = post_json(&app, "/v1/completions", &req2).await;
    let t2 = v2["choices"][0]["text"].as_str().unwrap();
    assert_eq!(v2["choices"][0]["finish_reason"], "stop");
    assert_eq!(t2, &text[..text.find(&cut).unwrap()]);
}

/// Serving speculates by default, reports what it drafted and what was accepted, and answers
/// exactly what it answers without speculation.
#[tokio::test]
async fn speculation_is_exact_and_counted_in_metrics() {
    let list = "apples, pears, plums, cherries, grapes, lemons, limes, figs, dates";
    let req = json!({"model": MODEL, "max_tokens": 40, "temperature": 0,
        "prompt": format!("Fruit: {list}.\nThe same fruit again: {list}.\nAnd once more: apples,")});
    let mut texts = Vec::new();
    for speculation in [Speculation::PromptLookup, Speculation::Off] {
        let app = app(Setup {
            speculation,
            ..Setup::default()
        });
        let (s, v) = post_json(&app, "/v1/completions", &req).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        texts.push(v["choices"][0]["text"].as_str().unwrap().to_string());
        let (_, _, body) = call(&app, Request::get("/metrics").body(Body::empty()).unwrap()).await;
        let text = String::from_utf8(body).unwrap();
        let counter = |name: &str| -> u64 {
            let line = text
                .lines()
                .find(|l| l.starts_with(&format!("{name} ")))
                .unwrap_or_else(|| panic!("/metrics lacks {name}:\n{text}"));
            line[name.len() + 1..].parse().expect("a count")
        };
        let drafted = counter("hearth_spec_drafted_tokens_total");
        let accepted = counter("hearth_spec_accepted_tokens_total");
        if speculation == Speculation::Off {
            assert_eq!((drafted, accepted), (0, 0));
        } else {
            assert!(
                accepted > 10 && drafted >= accepted,
                "{drafted} drafted, {accepted} accepted on a list said twice before"
            );
        }
    }
    assert_eq!(texts[0], texts[1], "speculation changed the greedy answer");
}

/// With a draft model, two replies generated at once are the same text as without speculation,
/// and /metrics counts the draft model's share. SmolLM2 drafts for itself here (no smaller model
/// shares its vocabulary): under greedy decoding its drafts must then all be accepted, which
/// holds only if the draft's cache follows each reply exactly (batched, rolled back, caught up).
#[tokio::test]
async fn a_draft_model_is_exact_under_serve_and_counted() {
    let prompts = [
        "Write a short story about a lighthouse keeper and a storm.",
        "Explain why the sky is blue to a child.",
    ];
    let req = |p: &str| {
        json!({"model": MODEL, "max_tokens": 32, "temperature": 0,
            "messages": [{"role": "user", "content": p}]})
    };
    let mut answers = Vec::new();
    for (speculation, draft) in [(Speculation::PromptLookup, true), (Speculation::Off, false)] {
        let app = app(Setup {
            speculation,
            draft,
            ..Setup::default()
        });
        let (r0, r1) = (req(prompts[0]), req(prompts[1]));
        let (a, b) = tokio::join!(
            post_json(&app, "/v1/chat/completions", &r0),
            post_json(&app, "/v1/chat/completions", &r1)
        );
        let text = |(s, v): (StatusCode, Value)| {
            assert_eq!(s, StatusCode::OK, "{v}");
            v["choices"][0]["message"]["content"]
                .as_str()
                .unwrap()
                .to_string()
        };
        answers.push([text(a), text(b)]);
        if !draft {
            continue;
        }
        let (_, _, body) = call(&app, Request::get("/metrics").body(Body::empty()).unwrap()).await;
        let text = String::from_utf8(body).unwrap();
        let counter = |name: &str| -> u64 {
            let line = text
                .lines()
                .find(|l| l.starts_with(&format!("{name} ")))
                .unwrap_or_else(|| panic!("/metrics lacks {name}:\n{text}"));
            line[name.len() + 1..].parse().expect("a count")
        };
        let drafted = counter("hearth_spec_draft_model_drafted_tokens_total");
        let accepted = counter("hearth_spec_draft_model_accepted_tokens_total");
        assert!(drafted > 10, "the draft model drafted {drafted} tokens");
        assert_eq!(
            accepted, drafted,
            "a model drafting for itself must be accepted every time"
        );
        assert!(counter("hearth_spec_drafted_tokens_total") >= drafted);
    }
    assert_eq!(
        answers[0], answers[1],
        "the draft model changed the greedy answers"
    );
}

#[tokio::test]
async fn tools_required_and_named_return_valid_calls() {
    let app = shared();
    let tools = json!([{"type": "function", "function": {
        "name": "get_weather", "description": "Weather for a city",
        "parameters": {"type": "object",
            "properties": {"city": {"type": "string", "maxLength": 20},
                           "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
            "required": ["city", "unit"]}}}]);
    for choice in [
        json!("required"),
        json!({"type": "function", "function": {"name": "get_weather"}}),
    ] {
        let req = chat(
            "What is the weather in Paris?",
            json!({"tools": tools, "tool_choice": choice, "max_tokens": 60}),
        );
        let (s, v) = post_json(&app, "/v1/chat/completions", &req).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let c = &v["choices"][0];
        assert_eq!(c["finish_reason"], "tool_calls", "{v}");
        let call = &c["message"]["tool_calls"][0];
        assert_eq!(call["type"], "function");
        assert_eq!(call["function"]["name"], "get_weather");
        let args: Value =
            serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
        assert!(args["city"].as_str().unwrap().chars().count() <= 20);
        assert!(["celsius", "fahrenheit"].contains(&args["unit"].as_str().unwrap()));
    }
    // A tool result continues the conversation.
    let req = json!({"model": MODEL, "temperature": 0, "max_tokens": 10, "tools": tools,
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\",\"unit\":\"celsius\"}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "{\"temp\": 21}"}]});
    let (s, v) = post_json(&app, "/v1/chat/completions", &req).await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

#[tokio::test]
async fn json_schema_output_validates() {
    let app = shared();
    let schema = json!({"type": "object",
        "properties": {"name": {"type": "string", "maxLength": 10},
                       "age": {"type": "integer", "minimum": 0, "maximum": 120},
                       "tags": {"type": "array", "items": {"type": "string", "maxLength": 8}, "maxItems": 2}},
        "required": ["name", "age", "tags"]});
    let req = chat(
        "Describe a person.",
        json!({"max_tokens": 120, "response_format": {"type": "json_schema",
            "json_schema": {"name": "person", "strict": true, "schema": schema}}}),
    );
    let (s, v) = post_json(&app, "/v1/chat/completions", &req).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let out: Value =
        serde_json::from_str(v["choices"][0]["message"]["content"].as_str().unwrap()).unwrap();
    assert!(out["name"].as_str().unwrap().chars().count() <= 10);
    let age = out["age"].as_i64().unwrap();
    assert!((0..=120).contains(&age));
    assert!(out["tags"].as_array().unwrap().len() <= 2);
    let (s, v) = post_json(
        &app,
        "/v1/chat/completions",
        &chat(
            "x",
            json!({"response_format": {"type": "json_schema", "json_schema": {"name": "x",
            "schema": {"type": "array", "uniqueItems": true}}}}),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
}

#[tokio::test]
async fn errors_name_the_field_and_use_openai_shape() {
    let app = shared();
    let cases: Vec<(Value, StatusCode, Option<&str>)> = vec![
        (
            chat("hi", json!({"model": "gpt-4"})),
            StatusCode::NOT_FOUND,
            Some("model"),
        ),
        (
            chat("hi", json!({"n": 9})),
            StatusCode::BAD_REQUEST,
            Some("n"),
        ),
        (
            chat("hi", json!({"temperature": "hot"})),
            StatusCode::BAD_REQUEST,
            Some("temperature"),
        ),
        (
            chat("hi", json!({"temperature": 3.5})),
            StatusCode::BAD_REQUEST,
            Some("temperature"),
        ),
        (
            chat("hi", json!({"max_tokens": 0})),
            StatusCode::BAD_REQUEST,
            Some("max_tokens"),
        ),
        (
            chat("hi", json!({"top_logprobs": 2})),
            StatusCode::BAD_REQUEST,
            Some("top_logprobs"),
        ),
        (
            chat("hi", json!({"logit_bias": {"99999999": 5}})),
            StatusCode::BAD_REQUEST,
            Some("logit_bias"),
        ),
        (
            chat("hi", json!({"tool_choice": "required"})),
            StatusCode::BAD_REQUEST,
            Some("tool_choice"),
        ),
        (
            json!({"model": MODEL, "messages": []}),
            StatusCode::BAD_REQUEST,
            Some("messages"),
        ),
        (
            json!({"model": MODEL, "messages": [{"role": "wizard", "content": "hi"}]}),
            StatusCode::BAD_REQUEST,
            Some("messages[0].role"),
        ),
        (
            json!({"messages": [{"role": "user", "content": "hi"}]}),
            StatusCode::BAD_REQUEST,
            None,
        ),
    ];
    for (req, status, param) in cases {
        let (s, v) = post_json(&app, "/v1/chat/completions", &req).await;
        assert_eq!(s, status, "{req} -> {v}");
        let (_, p, msg) = error_of(&v);
        assert!(!msg.is_empty());
        if param.is_some() {
            assert_eq!(p.as_deref(), param, "{req} -> {v}");
        }
    }
    // Malformed JSON, invalid UTF-8, a huge body, an unknown route.
    let (s, _, body) = call(&app, post("/v1/chat/completions", "{\"model\": ")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    error_of(&serde_json::from_slice(&body).unwrap());
    let (s, _, body) = call(
        &app,
        post("/v1/chat/completions", vec![b'{', 0xff, 0xfe, b'}']),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(error_of(&serde_json::from_slice(&body).unwrap())
        .2
        .contains("UTF-8"));
    let huge = format!(
        "{{\"model\":\"{MODEL}\",\"prompt\":\"{}\"}}",
        "a".repeat(100_000)
    );
    let (s, _, body) = call(&app, post("/v1/completions", huge)).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    error_of(&serde_json::from_slice(&body).unwrap());
    let (s, _, _) = call(&app, post("/v1/nothing", "{}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn context_overflow_states_both_numbers() {
    let app = app(Setup {
        ctx: 64,
        ..Setup::default()
    });
    let long = "word ".repeat(200);
    let (s, v) = post_json(&app, "/v1/chat/completions", &chat(&long, json!({}))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (_, _, msg) = error_of(&v);
    assert!(msg.contains("maximum context length is 64 tokens"), "{msg}");
    let n: usize = msg
        .split_once("your messages resulted in ")
        .and_then(|(_, m)| m.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("prompt length in the message");
    assert!(n > 200, "{msg}");
    assert_eq!(v["error"]["code"], "context_length_exceeded");
}

#[tokio::test]
async fn api_keys_are_required_when_configured() {
    let app = app(Setup {
        keys: vec!["sesame".into()],
        ..Setup::default()
    });
    let req = || Request::get("/v1/models");
    let (s, _, body) = call(&app, req().body(Body::empty()).unwrap()).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap()["error"]["code"],
        "invalid_api_key"
    );
    let (s, _, _) = call(
        &app,
        req()
            .header(header::AUTHORIZATION, "Bearer wrong")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _, _) = call(
        &app,
        req()
            .header(header::AUTHORIZATION, "Bearer sesame")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    // Health stays open for monitoring.
    let (s, _, _) = call(&app, Request::get("/health").body(Body::empty()).unwrap()).await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn a_full_queue_answers_503_with_retry_after() {
    let app = app(Setup {
        max_queue: 0,
        ..Setup::default()
    });
    let (s, headers, body) = call(
        &app,
        post("/v1/chat/completions", chat("hi", json!({})).to_string()),
    )
    .await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert!(headers.contains_key(header::RETRY_AFTER));
    error_of(&serde_json::from_slice(&body).unwrap());
}

#[tokio::test]
async fn embeddings_without_the_model_say_how_to_get_it() {
    let app = shared();
    let (s, v) = post_json(
        &app,
        "/v1/embeddings",
        &json!({"model": "all-minilm-l6-v2", "input": "hello"}),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(error_of(&v).2.contains("hearth pull all-minilm-l6-v2"));
}

#[tokio::test]
async fn embeddings_are_normalised_and_refuse_long_inputs() {
    let app = app(Setup {
        embeddings: true,
        ..Setup::default()
    });
    let req = json!({"model": "all-minilm-l6-v2",
        "input": ["The cat sits on the mat.", "A cat is sitting on a mat.", "Stock markets fell today."]});
    let (s, v) = post_json(&app, "/v1/embeddings", &req).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let vecs: Vec<Vec<f64>> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            d["embedding"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect()
        })
        .collect();
    assert_eq!(vecs.len(), 3);
    assert!(vecs.iter().all(|v| v.len() == 384));
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    assert!((dot(&vecs[0], &vecs[0]) - 1.0).abs() < 1e-4);
    assert!(dot(&vecs[0], &vecs[1]) > dot(&vecs[0], &vecs[2]) + 0.2);
    assert!(v["usage"]["prompt_tokens"].as_u64().unwrap() > 10);
    // base64, as the openai client asks by default.
    let (s, v) = post_json(
        &app,
        "/v1/embeddings",
        &json!({"model": "all-minilm-l6-v2", "input": "hi", "encoding_format": "base64"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["data"][0]["embedding"].as_str().unwrap().len(), 2048);
    let long = "word ".repeat(300);
    let (s, v) = post_json(
        &app,
        "/v1/embeddings",
        &json!({"model": "all-minilm-l6-v2", "input": ["short", long]}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (_, param, msg) = error_of(&v);
    assert_eq!(param.as_deref(), Some("input[1]"));
    assert!(msg.contains("at most 256"), "{msg}");
}

#[tokio::test]
async fn a_base_model_refuses_chat_but_completes() {
    // Uses the same model without its template, as a base model arrives.
    let path = hearth_fetch::test_model(MODEL).expect("model");
    let model = Model::open(&path).expect("model");
    let tokenizer = Tokenizer::from_gguf(model.gguf().metadata()).expect("tokenizer");
    let state = AppState::new(
        ServeModel {
            id: MODEL.into(),
            model,
            tokenizer,
            template: None,
            defaults: SamplerConfig::default(),
            draft: None,
        },
        None,
        ServeOptions::default(),
        Auth::new(loopback(), vec![]).unwrap(),
    );
    let app = hearth_server::router(state);
    let (s, v) = post_json(&app, "/v1/chat/completions", &chat("hi", json!({}))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(error_of(&v).2.contains("/v1/completions"));
    let (s, _) = post_json(
        &app,
        "/v1/completions",
        &json!({"model": MODEL, "prompt": "Hello", "max_tokens": 3}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
}

#[test]
fn the_state_is_shareable() {
    fn sync<T: Send + Sync>() {}
    sync::<Arc<AppState>>();
}

#[tokio::test]
async fn switching_models_keeps_running_replies_and_serves_the_new_one() {
    let state = app_state(Setup::default());
    let app = hearth_server::router(state.clone());
    // A streamed completion is under way on the first model...
    let req = json!({"model": MODEL, "prompt": "Once upon a time", "max_tokens": 200,
                     "temperature": 0, "stream": true, "stream_options": {"include_usage": true}});
    let resp = app
        .clone()
        .oneshot(post("/v1/completions", req.to_string()))
        .await
        .expect("response");
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();
    let first = body.frame().await.expect("a first chunk").expect("frame");
    assert!(first.is_data());

    // ...when the owner switches (here the same weights under another name).
    state.switch_model(smollm2("smollm2-twin"), engine_options(1024));
    assert_eq!(state.model_id(), "smollm2-twin");
    let (s, v) = post_json(
        &app,
        "/v1/completions",
        &json!({"model": MODEL, "prompt": "Hi"}),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    assert!(error_of(&v).2.contains("smollm2-twin"), "{v}");
    let (s, v) = post_json(
        &app,
        "/v1/completions",
        &json!({"model": "smollm2-twin", "prompt": "Once upon a time", "max_tokens": 200, "temperature": 0}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["model"], "smollm2-twin");
    let (_, _, models) = call(
        &app,
        Request::get("/v1/models").body(Body::empty()).unwrap(),
    )
    .await;
    let models: Value = serde_json::from_slice(&models).unwrap();
    assert_eq!(models["data"][0]["id"], "smollm2-twin");

    // The reply under way finished on the model that began it, all 200 tokens, and wrote what
    // the new model writes for the same prompt (same weights, greedy).
    let mut rest = first.into_data().expect("data").to_vec();
    rest.extend(body.collect().await.expect("rest").to_bytes());
    let data = sse_data(&rest);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let mut text = String::new();
    let mut usage = Value::Null;
    for d in &data[..data.len() - 1] {
        let c: Value = serde_json::from_str(d).expect("chunk");
        assert_eq!(c["model"], MODEL);
        text.push_str(c["choices"][0]["text"].as_str().unwrap_or(""));
        if !c["usage"].is_null() {
            usage = c["usage"].clone();
        }
    }
    assert_eq!(usage["completion_tokens"], 200, "{usage}");
    assert_eq!(text, v["choices"][0]["text"].as_str().unwrap());
}

/// Issue 16: chat with the embedding model's id answered "does not exist… Available: …,
/// all-minilm-l6-v2", listing the very model it refused.
#[tokio::test]
async fn chat_with_the_embedding_model_says_what_it_is_for() {
    let app = app(Setup {
        embeddings: true,
        ..Setup::default()
    });
    let mut req = chat("Hello", json!({}));
    req["model"] = json!("all-minilm-l6-v2");
    for path in ["/v1/chat/completions", "/v1/completions"] {
        let mut req = req.clone();
        if path == "/v1/completions" {
            req = json!({"model": "all-minilm-l6-v2", "prompt": "Hello"});
        }
        let (s, v) = post_json(&app, path, &req).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{path}: {v}");
        let (_, param, message) = error_of(&v);
        assert_eq!(param.as_deref(), Some("model"), "{v}");
        assert!(
            message.contains("/v1/embeddings") && message.contains(MODEL),
            "{path}: {message}"
        );
        assert!(!message.contains("does not exist"), "{message}");
    }
}
