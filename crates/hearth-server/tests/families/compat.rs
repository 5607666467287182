//! What OpenAI clients send beyond the basics (issue 16's compatibility list): `n` and prompt
//! lists, legacy `functions`, token-id embedding input, OpenAI's wording for context errors,
//! `max_tokens: -1`, plain type errors, and the paths without `/v1`. Each test is named after
//! the failure a client saw.

use std::net::SocketAddr;
use std::sync::OnceLock;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use hearth_engine::EngineOptions;
use hearth_model::chat::ChatTemplate;
use hearth_model::tokenizer::Tokenizer;
use hearth_model::{Model, SamplerConfig};
use hearth_server::{AppState, Auth, EmbedModel, ServeModel, ServeOptions};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

const MODEL: &str = "smollm2-135m";
const EMBED: &str = "all-minilm-l6-v2";

struct Setup {
    ctx: usize,
    keys: Vec<String>,
    embeddings: bool,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            ctx: 1024,
            keys: Vec::new(),
            embeddings: false,
        }
    }
}

fn app(s: Setup) -> Router {
    let path = hearth_fetch::test_model(MODEL).expect("SmolLM2 for tests");
    let model = Model::open(&path).expect("model loads");
    let md = model.gguf().metadata();
    let tokenizer = Tokenizer::from_gguf(md).expect("tokenizer");
    let template = ChatTemplate::from_gguf(md, &tokenizer).expect("template compiles");
    let embed = s.embeddings.then(|| EmbedModel {
        id: EMBED.into(),
        embedder: hearth_embed::Embedder::open(&embed_dir()).expect("embedder"),
    });
    let listen: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    hearth_server::router(AppState::new(
        ServeModel {
            id: MODEL.into(),
            model,
            tokenizer,
            template,
            defaults: SamplerConfig::default(),
            draft: None,
        },
        embed,
        ServeOptions {
            engine: EngineOptions {
                ctx: s.ctx,
                threads: 2,
                max_seqs: 4,
                ..EngineOptions::default()
            },
            max_queue: 32,
            body_limit: 64 << 10,
            ..ServeOptions::default()
        },
        Auth::new(listen, s.keys).expect("loopback is allowed"),
    ))
}

fn embed_dir() -> std::path::PathBuf {
    hearth_fetch::test_model(EMBED).expect("embedding model")
}

/// One shared default server: the engine thread lives as long as the test binary.
fn shared() -> Router {
    static APP: OnceLock<Router> = OnceLock::new();
    APP.get_or_init(|| app(Setup::default())).clone()
}

async fn call(app: &Router, req: Request<Body>) -> (StatusCode, Vec<u8>) {
    let resp = app.clone().oneshot(req).await.expect("response");
    let status = resp.status();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (status, body.to_vec())
}

async fn post_json(app: &Router, path: &str, v: &Value) -> (StatusCode, Value) {
    let req = Request::post(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(v.to_string()))
        .expect("request");
    let (status, body) = call(app, req).await;
    let v = serde_json::from_slice(&body)
        .unwrap_or_else(|_| panic!("JSON body, got {}", String::from_utf8_lossy(&body)));
    (status, v)
}

async fn post_sse(app: &Router, path: &str, v: &Value) -> Vec<Value> {
    let req = Request::post(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(v.to_string()))
        .expect("request");
    let (status, body) = call(app, req).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    String::from_utf8_lossy(&body)
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).expect("JSON event"))
        .collect()
}

fn chat(content: &str, extra: Value) -> Value {
    let mut v = json!({
        "model": MODEL,
        "messages": [{"role": "user", "content": content}],
        "temperature": 0,
        "max_tokens": 8,
    });
    if let (Some(o), Value::Object(e)) = (v.as_object_mut(), extra) {
        o.extend(e);
    }
    v
}

/// (param, message) of an OpenAI error body.
fn error_of(v: &Value) -> (Option<String>, String) {
    let e = &v["error"];
    assert!(e.is_object(), "not an error body: {v}");
    (
        e["param"].as_str().map(str::to_string),
        e["message"].as_str().expect("message").to_string(),
    )
}

fn choices(v: &Value) -> &Vec<Value> {
    v["choices"].as_array().expect("choices")
}

#[tokio::test]
async fn models_with_trailing_slash_and_without_v1_prefix() {
    let app = app(Setup {
        keys: vec!["sesame".into()],
        ..Setup::default()
    });
    let get = |path: &str, key: bool| {
        let mut r = Request::get(path);
        if key {
            r = r.header(header::AUTHORIZATION, "Bearer sesame");
        }
        r.body(Body::empty()).expect("request")
    };
    for path in ["/v1/models/", "/models", "/models/"] {
        let (s, body) = call(&app, get(path, true)).await;
        assert_eq!(
            s,
            StatusCode::OK,
            "{path}: {}",
            String::from_utf8_lossy(&body)
        );
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["data"][0]["id"], MODEL, "{path}");
        // The same key rule as /v1.
        let (s, _) = call(&app, get(path, false)).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{path} without a key");
    }
    let (s, body) = call(&app, get(&format!("/models/{MODEL}"), true)).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap()["id"], MODEL);
    let (s, _) = call(&app, get(&format!("/models/{MODEL}"), false)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    for (path, body) in [
        ("/chat/completions", chat("Hi", json!({"max_tokens": 2}))),
        (
            "/completions",
            json!({"model": MODEL, "prompt": "Hi", "max_tokens": 2}),
        ),
    ] {
        let mk = |key: bool| {
            let mut r = Request::post(path).header(header::CONTENT_TYPE, "application/json");
            if key {
                r = r.header(header::AUTHORIZATION, "Bearer sesame");
            }
            r.body(Body::from(body.to_string())).expect("request")
        };
        let (s, out) = call(&app, mk(true)).await;
        assert_eq!(
            s,
            StatusCode::OK,
            "{path}: {}",
            String::from_utf8_lossy(&out)
        );
        let (s, _) = call(&app, mk(false)).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{path} without a key");
    }
}

#[tokio::test]
async fn max_tokens_minus_one_means_up_to_the_context() {
    let app = app(Setup {
        ctx: 96,
        ..Setup::default()
    });
    for field in ["max_tokens", "max_completion_tokens"] {
        let (s, v) = post_json(
            &app,
            "/v1/chat/completions",
            &chat("Count from one to a hundred.", json!({field: -1})),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{field}: {v}");
        let u = &v["usage"];
        assert!(
            u["total_tokens"].as_u64().unwrap() <= 96,
            "{field} -1 went past the context: {v}"
        );
    }
    let (s, v) = post_json(
        &app,
        "/v1/completions",
        &json!({"model": MODEL, "prompt": "One, two, three,", "max_tokens": -1, "temperature": 0}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // Completions default to 16 tokens; -1 lifts that to whatever the context has room for.
    let made = v["usage"]["completion_tokens"].as_u64().unwrap();
    assert!(
        made > 16 || v["choices"][0]["finish_reason"] == "stop",
        "{v}"
    );
    for bad in [json!(-2), json!(1.5), json!("lots")] {
        let (s, v) = post_json(
            &app,
            "/v1/chat/completions",
            &chat("Hi", json!({"max_tokens": bad})),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {v}");
        let (param, msg) = error_of(&v);
        assert_eq!(param.as_deref(), Some("max_tokens"), "{v}");
        assert!(msg.contains("-1 for as many as fit"), "{msg}");
    }
}

#[tokio::test]
async fn field_type_errors_name_the_field_in_plain_words() {
    let app = shared();
    let cases = [
        (
            json!({"temperature": "hot"}),
            "temperature",
            "expected a number",
        ),
        (json!({"n": "two"}), "n", "whole number"),
        (json!({"seed": 1.5}), "seed", "whole number"),
        (json!({"stop": 5}), "stop", "a string or a list of strings"),
        (json!({"stream": "yes"}), "stream", "boolean"),
        (json!({"tools": {}}), "tools", "expected a list"),
    ];
    for (extra, field, words) in cases {
        let (s, v) = post_json(&app, "/v1/chat/completions", &chat("Hi", extra.clone())).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{extra}: {v}");
        let (param, msg) = error_of(&v);
        assert_eq!(param.as_deref(), Some(field), "{v}");
        assert!(msg.contains(words), "{extra}: {msg}");
        assert!(
            !msg.contains("untagged") && !msg.contains("u64") && !msg.contains("f32"),
            "{msg}"
        );
    }
    let (s, v) = post_json(
        &app,
        "/v1/completions",
        &json!({"model": MODEL, "prompt": {"text": "hi"}}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (param, msg) = error_of(&v);
    assert_eq!(param.as_deref(), Some("prompt"));
    assert!(msg.contains("list of token ids"), "{msg}");
    // A body that is not an object at all says so in the same words.
    let (s, v) = post_json(&app, "/v1/chat/completions", &json!([1, 2, 3])).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (_, msg) = error_of(&v);
    assert!(msg.contains("expected an object"), "{msg}");
    assert!(
        !msg.contains("struct") && !msg.contains("sequence"),
        "{msg}"
    );
}

#[tokio::test]
async fn context_overflow_is_worded_like_openai_for_litellm() {
    let app = app(Setup {
        ctx: 64,
        ..Setup::default()
    });
    let long = "word ".repeat(200);
    let (s, v) = post_json(&app, "/v1/chat/completions", &chat(&long, json!({}))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (param, msg) = error_of(&v);
    assert_eq!(param.as_deref(), Some("messages"));
    assert_eq!(v["error"]["code"], "context_length_exceeded");
    let rest = msg
        .strip_prefix(
            "This model's maximum context length is 64 tokens. However, your messages resulted in ",
        )
        .unwrap_or_else(|| panic!("not OpenAI's wording: {msg}"));
    let n: usize = rest.split(' ').next().unwrap().parse().expect("a count");
    assert!(n > 200, "{msg}");
    assert!(
        msg.contains("Please reduce the length of the messages."),
        "{msg}"
    );
    // Completions name `prompt`.
    let (s, v) = post_json(
        &app,
        "/v1/completions",
        &json!({"model": MODEL, "prompt": long}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (param, msg) = error_of(&v);
    assert_eq!(param.as_deref(), Some("prompt"));
    assert!(
        msg.starts_with(
            "This model's maximum context length is 64 tokens. However, your prompt resulted in "
        ),
        "{msg}"
    );
    // A prompt that fills the context exactly leaves no room for the completion.
    let ids: Vec<u32> = vec![28; 64];
    let (s, v) = post_json(
        &app,
        "/v1/completions",
        &json!({"model": MODEL, "prompt": ids}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (_, msg) = error_of(&v);
    assert!(
        msg.starts_with("This model's maximum context length is 64 tokens. However, you requested 65 tokens (64 in the prompt, 1 in the completion)."),
        "{msg}"
    );
    assert_eq!(v["error"]["code"], "context_length_exceeded");
}

fn weather_function() -> Value {
    json!({
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"]
        }
    })
}

#[tokio::test]
async fn legacy_functions_are_not_silently_ignored() {
    let app = shared();
    let req = chat(
        "What is the weather in Paris?",
        json!({"functions": [weather_function()], "function_call": {"name": "get_weather"}, "max_tokens": 40}),
    );
    let (s, v) = post_json(&app, "/v1/chat/completions", &req).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let c = &v["choices"][0];
    assert_eq!(c["finish_reason"], "function_call", "{v}");
    let call = &c["message"]["function_call"];
    assert_eq!(call["name"], "get_weather", "{v}");
    let args: Value = serde_json::from_str(call["arguments"].as_str().expect("arguments text"))
        .expect("arguments are JSON");
    assert!(args["city"].is_string(), "{args}");
    assert!(c["message"].get("tool_calls").is_none(), "{v}");
    // Streamed: the call arrives as `function_call` deltas.
    let mut streamed = req.clone();
    streamed["stream"] = json!(true);
    let events = post_sse(&app, "/v1/chat/completions", &streamed).await;
    let name: String = events
        .iter()
        .filter_map(|e| e["choices"][0]["delta"]["function_call"]["name"].as_str())
        .collect();
    assert_eq!(name, "get_weather");
    let finish: Vec<&str> = events
        .iter()
        .filter_map(|e| e["choices"][0]["finish_reason"].as_str())
        .collect();
    assert_eq!(finish, ["function_call"]);
    // "none" answers in text, and a legacy history (an assistant `function_call` and a
    // `function` result) reaches the model.
    let history = json!({
        "model": MODEL,
        "temperature": 0,
        "max_tokens": 8,
        "functions": [weather_function()],
        "function_call": "none",
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": null,
             "function_call": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}},
            {"role": "function", "name": "get_weather", "content": "{\"temp\": 21}"}
        ]
    });
    let (s, v) = post_json(&app, "/v1/chat/completions", &history).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(v["choices"][0]["message"]["content"].is_string(), "{v}");
    assert_ne!(v["choices"][0]["finish_reason"], "function_call");
    // Both spellings at once are ambiguous.
    let both = chat(
        "Hi",
        json!({"functions": [weather_function()],
               "tools": [{"type": "function", "function": weather_function()}]}),
    );
    let (s, v) = post_json(&app, "/v1/chat/completions", &both).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(error_of(&v).0.as_deref(), Some("functions"));
    let (s, v) = post_json(
        &app,
        "/v1/chat/completions",
        &chat(
            "Hi",
            json!({"functions": [weather_function()], "function_call": {"name": "nope"}}),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(error_of(&v).0.as_deref(), Some("function_call"));
}

#[tokio::test]
async fn n_greater_than_one_is_served() {
    let app = shared();
    let one = chat("Name a colour.", json!({}));
    let (s, v) = post_json(&app, "/v1/chat/completions", &one).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let single_text = v["choices"][0]["message"]["content"].clone();
    let single_tokens = v["usage"]["completion_tokens"].as_u64().unwrap();
    let single_prompt = v["usage"]["prompt_tokens"].clone();
    let (s, v) = post_json(
        &app,
        "/v1/chat/completions",
        &chat("Name a colour.", json!({"n": 3})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let cs = choices(&v);
    assert_eq!(cs.len(), 3, "{v}");
    for (i, c) in cs.iter().enumerate() {
        assert_eq!(c["index"], i, "{v}");
        // Temperature 0: every choice is the single answer.
        assert_eq!(c["message"]["content"], single_text, "{v}");
    }
    assert_eq!(
        v["usage"]["completion_tokens"].as_u64().unwrap(),
        3 * single_tokens
    );
    // The prompt counts once, as OpenAI counts it.
    assert_eq!(v["usage"]["prompt_tokens"], single_prompt);
    // Sampled choices, streamed: every chunk carries its choice's index.
    let events = post_sse(
        &app,
        "/v1/chat/completions",
        &chat(
            "Tell me a word.",
            json!({"n": 2, "temperature": 1.0, "stream": true, "stream_options": {"include_usage": true}}),
        ),
    )
    .await;
    let mut finished = [0, 0];
    let mut completion = None;
    for e in &events {
        for c in e["choices"].as_array().unwrap() {
            let i = c["index"].as_u64().expect("index") as usize;
            assert!(i < 2, "{e}");
            if c["finish_reason"].is_string() {
                finished[i] += 1;
            }
        }
        if e["usage"].is_object() {
            completion = e["usage"]["completion_tokens"].as_u64();
        }
    }
    assert_eq!(finished, [1, 1], "{events:?}");
    assert!(completion.expect("usage chunk") >= 2);
    // Completions too.
    let (s, v) = post_json(
        &app,
        "/v1/completions",
        &json!({"model": MODEL, "prompt": "Once upon", "max_tokens": 4, "n": 2, "temperature": 0}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(choices(&v).len(), 2);
    assert_eq!(v["choices"][0]["text"], v["choices"][1]["text"]);
    assert_eq!(v["choices"][1]["index"], 1);
    // More than 8 is refused, naming `n`.
    let (s, v) = post_json(&app, "/v1/chat/completions", &chat("Hi", json!({"n": 9}))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (param, msg) = error_of(&v);
    assert_eq!(param.as_deref(), Some("n"));
    assert!(msg.contains('8'), "{msg}");
}

/// The choices of one request compute the prompt once: the others share its KV blocks through
/// the prefix cache.
#[tokio::test]
async fn n_choices_share_the_prompt_kv() {
    let app = app(Setup::default());
    let cached = || async {
        let (_, body) = call(&app, Request::get("/metrics").body(Body::empty()).unwrap()).await;
        let text = String::from_utf8(body).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix("hearth_prompt_tokens_cached_total "))
            .expect("cached counter")
            .trim()
            .parse::<f64>()
            .unwrap() as u64
    };
    let before = cached().await;
    let prompt = "Here is a long and particular question about the colour of the sea at dawn, \
        and why it changes through the morning, as sailors and painters have long described it.";
    let (s, v) = post_json(
        &app,
        "/v1/chat/completions",
        &chat(prompt, json!({"n": 3, "max_tokens": 4})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let prompt_tokens = v["usage"]["prompt_tokens"].as_u64().unwrap();
    assert!(prompt_tokens >= 48, "{v}");
    let whole_blocks = (prompt_tokens - 1) / 16 * 16;
    let shared = cached().await - before;
    assert!(
        shared >= 2 * whole_blocks,
        "choices 1 and 2 should reuse {whole_blocks} prompt tokens each; {shared} were reused"
    );
}

#[tokio::test]
async fn a_list_of_prompts_gets_one_choice_per_prompt() {
    let app = shared();
    let one = |prompt: Value| json!({"model": MODEL, "prompt": prompt, "max_tokens": 4, "temperature": 0});
    let mut singles = Vec::new();
    for p in ["The sky is", "My favourite food is"] {
        let (s, v) = post_json(&app, "/v1/completions", &one(json!(p))).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        singles.push(v["choices"][0]["text"].clone());
    }
    let mut req = one(json!(["The sky is", "My favourite food is"]));
    req["n"] = json!(2);
    let (s, v) = post_json(&app, "/v1/completions", &req).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let cs = choices(&v);
    assert_eq!(cs.len(), 4, "{v}");
    for (k, c) in cs.iter().enumerate() {
        // OpenAI's order: index = prompt * n + j.
        assert_eq!(c["index"], k);
        assert_eq!(c["text"], singles[k / 2], "choice {k}: {v}");
    }
    // Token-id prompts, one list or several.
    let (s, v) = post_json(&app, "/v1/completions", &one(json!([[504, 3149], [504]]))).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(choices(&v).len(), 2);
    // Streamed: each prompt's chunks carry its index.
    let mut streamed = one(json!(["The sky is", "My favourite food is"]));
    streamed["stream"] = json!(true);
    let events = post_sse(&app, "/v1/completions", &streamed).await;
    let mut texts = [String::new(), String::new()];
    for e in &events {
        for c in e["choices"].as_array().unwrap() {
            let i = c["index"].as_u64().unwrap() as usize;
            texts[i].push_str(c["text"].as_str().unwrap_or(""));
        }
    }
    assert_eq!(json!(texts[0]), singles[0]);
    assert_eq!(json!(texts[1]), singles[1]);
    let (s, v) = post_json(&app, "/v1/completions", &one(json!([]))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(error_of(&v).0.as_deref(), Some("prompt"));
}

#[tokio::test]
async fn embeddings_accept_token_id_arrays() {
    let app = app(Setup {
        embeddings: true,
        ..Setup::default()
    });
    let embedder = hearth_embed::Embedder::open(&embed_dir()).expect("embedder");
    let texts = ["The cat sits on the mat.", "Stock markets fell today."];
    // What a client that tokenizes itself sends: the text's tokens, without [CLS] and [SEP].
    let ids: Vec<Vec<u32>> = texts
        .iter()
        .map(|t| {
            let all = embedder.tokenize(t).unwrap();
            all[1..all.len() - 1].to_vec()
        })
        .collect();
    let vectors = |v: &Value| -> Vec<Vec<f64>> {
        v["data"]
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
            .collect()
    };
    let (s, by_text) = post_json(
        &app,
        "/v1/embeddings",
        &json!({"model": EMBED, "input": texts}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{by_text}");
    let (s, by_ids) = post_json(
        &app,
        "/v1/embeddings",
        &json!({"model": EMBED, "input": ids}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{by_ids}");
    assert_eq!(vectors(&by_ids), vectors(&by_text));
    assert_eq!(by_ids["usage"], by_text["usage"]);
    let (s, one) = post_json(
        &app,
        "/v1/embeddings",
        &json!({"model": EMBED, "input": ids[0]}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{one}");
    assert_eq!(vectors(&one)[0], vectors(&by_text)[0]);
    // Ids that already carry [CLS] and [SEP] are taken as they are.
    let full = embedder.tokenize(texts[1]).unwrap();
    let (s, v) = post_json(
        &app,
        "/v1/embeddings",
        &json!({"model": EMBED, "input": [full]}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(vectors(&v)[0], vectors(&by_text)[1]);
    for bad in [json!([[101, 99_999_999]]), json!([-3, 5])] {
        let (s, v) = post_json(
            &app,
            "/v1/embeddings",
            &json!({"model": EMBED, "input": bad}),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {v}");
        let (param, msg) = error_of(&v);
        assert!(
            param.as_deref().is_some_and(|p| p.starts_with("input")),
            "{v}"
        );
        assert!(!msg.contains("untagged"), "{msg}");
    }
}

/// Open WebUI and other Ollama-minded clients name models `NAME:latest` (Hearth's Ollama API
/// lists them so); the same name on `/v1` must reach the same model, not a 404.
#[tokio::test]
async fn ollama_style_latest_tag_names_the_model_on_v1() {
    let app = shared();
    let (status, v) = post_json(
        &app,
        "/v1/chat/completions",
        &chat("Hi", json!({"model": format!("{MODEL}:latest")})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let (status, v) = post_json(
        &app,
        "/v1/chat/completions",
        &chat("Hi", json!({"model": format!("{MODEL}:q4")})),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "another tag is another model: {v}"
    );
}
