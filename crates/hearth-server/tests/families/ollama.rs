//! Ollama's API through `Router::oneshot` on the real SmolLM2 model: the routes with and
//! without the household, greedy answers equal to `/v1/chat/completions`', NDJSON streaming,
//! errors in Ollama's shape, and pull for the keeper only.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use hearth_engine::EngineOptions;
use hearth_model::chat::ChatTemplate;
use hearth_model::tokenizer::Tokenizer;
use hearth_model::{Model, SamplerConfig};
use hearth_server::household::HouseholdOptions;
use hearth_server::{AppState, Auth, ServeModel, ServeOptions};
use hearth_store::Store;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

const MODEL: &str = "smollm2-135m";

fn smollm2() -> ServeModel {
    let path = hearth_fetch::test_model(MODEL).expect("SmolLM2 for tests");
    let model = Model::open(&path).expect("model loads");
    let md = model.gguf().metadata();
    let tokenizer = Tokenizer::from_gguf(md).expect("tokenizer");
    let template = ChatTemplate::from_gguf(md, &tokenizer).expect("template compiles");
    ServeModel {
        id: MODEL.into(),
        model,
        tokenizer,
        template,
        defaults: SamplerConfig::default(),
        draft: None,
    }
}

fn options() -> ServeOptions {
    ServeOptions {
        engine: EngineOptions {
            ctx: 1024,
            threads: 2,
            max_seqs: 4,
            ..EngineOptions::default()
        },
        ..ServeOptions::default()
    }
}

fn listen() -> SocketAddr {
    "127.0.0.1:0".parse().expect("addr")
}

/// No household, no keys: the API alone, open on loopback.
fn plain() -> Router {
    static APP: OnceLock<Router> = OnceLock::new();
    APP.get_or_init(|| {
        let auth = Auth::new(listen(), vec![]).expect("loopback");
        hearth_server::router(AppState::new(smollm2(), None, options(), auth))
    })
    .clone()
}

/// With a household in `store` and `keys` configured.
fn with_household(store: Arc<Store>, keys: Vec<String>) -> Router {
    let state = AppState::with_household(
        smollm2(),
        None,
        options(),
        Auth::household(listen(), keys),
        Some(HouseholdOptions {
            store,
            setup_code: None,
            admin: None,
            reply_tokens: hearth_server::household::DEFAULT_REPLY_TOKENS,
        }),
    );
    hearth_server::router(state)
}

async fn send(app: &Router, req: Request<Body>) -> (StatusCode, Vec<u8>) {
    let resp = app.clone().oneshot(req).await.expect("response");
    let status = resp.status();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (status, body.to_vec())
}

fn post(path: &str, v: &Value, key: Option<&str>) -> Request<Body> {
    let mut b = Request::post(path).header(header::CONTENT_TYPE, "application/json");
    if let Some(k) = key {
        b = b.header(header::AUTHORIZATION, format!("Bearer {k}"));
    }
    b.body(Body::from(v.to_string())).expect("request")
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).expect("request")
}

fn json_of(body: &[u8]) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|_| panic!("JSON, got {}", String::from_utf8_lossy(body)))
}

/// Ollama's error shape: `{"error": "message"}`.
fn ollama_error(body: &[u8]) -> String {
    let v = json_of(body);
    v["error"]
        .as_str()
        .unwrap_or_else(|| panic!("not Ollama's error shape: {v}"))
        .to_string()
}

const ASK: &str = "Name three colours.";

#[tokio::test]
async fn ollama_routes_exist_with_and_without_the_household() {
    let store = Arc::new(Store::open_in_memory().expect("store"));
    let household = with_household(store, vec![]);
    for (app, which) in [(plain(), "without"), (household.clone(), "with")] {
        let (status, body) = send(&app, get("/api/version")).await;
        assert_eq!(status, StatusCode::OK, "{which} the household");
        assert!(json_of(&body)["version"].is_string());
        let (status, body) = send(&app, get("/api/tags")).await;
        assert_eq!(status, StatusCode::OK, "{which} the household");
        assert_eq!(json_of(&body)["models"][0]["name"], "smollm2-135m:latest");
        let chat = json!({"model": MODEL, "messages": [], "stream": false});
        let (status, body) = send(&app, post("/api/chat", &chat, None)).await;
        assert_eq!(status, StatusCode::OK, "{which} the household");
        assert_eq!(json_of(&body)["done_reason"], "load");
    }
    // The page's own /api routes are still there beside them.
    let (status, body) = send(&household, get("/api/state")).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
}

#[tokio::test]
async fn ollama_greedy_chat_equals_openai_chat() {
    let app = plain();
    let messages = json!([
        {"role": "system", "content": "You answer briefly."},
        {"role": "user", "content": ASK},
    ]);
    let openai = json!({"model": MODEL, "messages": messages, "temperature": 0, "seed": 7,
                        "max_tokens": 24});
    let (status, body) = send(&app, post("/v1/chat/completions", &openai, None)).await;
    assert_eq!(status, StatusCode::OK);
    let want = json_of(&body)["choices"][0]["message"]["content"]
        .as_str()
        .expect("content")
        .to_string();
    assert!(!want.is_empty());
    // `:latest` names the same model.
    let ollama = json!({"model": "smollm2-135m:latest", "messages": messages, "stream": false,
                        "options": {"temperature": 0, "seed": 7, "num_predict": 24}});
    let (status, body) = send(&app, post("/api/chat", &ollama, None)).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let v = json_of(&body);
    assert_eq!(v["message"]["content"], want.as_str());
    assert_eq!(v["model"], "smollm2-135m:latest");
    assert_eq!(v["done"], true);
    assert_eq!(v["done_reason"], "length");
    assert_eq!(v["eval_count"], 24);
    assert!(v["prompt_eval_count"].as_u64().expect("count") > 0);
    assert!(v["total_duration"].as_u64().expect("ns") > 0);
    assert!(v["created_at"].as_str().expect("time").ends_with('Z'));
    // Logprobs, per token, with the alternatives asked for.
    let ollama = json!({"model": MODEL, "messages": messages, "stream": false,
                        "logprobs": true, "top_logprobs": 2,
                        "options": {"temperature": 0, "num_predict": 4}});
    let (status, body) = send(&app, post("/api/chat", &ollama, None)).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let lps = json_of(&body)["logprobs"]
        .as_array()
        .expect("logprobs")
        .clone();
    assert_eq!(lps.len(), 4);
    assert!(lps
        .iter()
        .all(|l| l["logprob"].as_f64().expect("logprob") <= 0.0
            && l["top_logprobs"].as_array().expect("top").len() == 2));
}

#[tokio::test]
async fn ollama_streams_ndjson_that_adds_up_to_the_whole_reply() {
    let app = plain();
    for path in ["/api/chat", "/api/generate"] {
        let mut req = json!({"model": MODEL, "options": {"temperature": 0, "num_predict": 16}});
        if path == "/api/chat" {
            req["messages"] = json!([{"role": "user", "content": ASK}]);
        } else {
            req["prompt"] = json!(ASK);
        }
        req["stream"] = json!(false);
        let (status, body) = send(&app, post(path, &req, None)).await;
        assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
        let whole = json_of(&body);
        // Streaming is the default, as in Ollama.
        req.as_object_mut().expect("object").remove("stream");
        let (status, body) = send(&app, post(path, &req, None)).await;
        assert_eq!(status, StatusCode::OK);
        let lines: Vec<Value> = String::from_utf8_lossy(&body)
            .lines()
            .map(|l| serde_json::from_str(l).expect("one JSON object a line"))
            .collect();
        assert!(lines.len() > 2, "{path}: {lines:?}");
        let (last, pieces) = lines.split_last().expect("lines");
        assert!(pieces.iter().all(|l| l["done"] == false));
        assert_eq!(last["done"], true);
        assert_eq!(last["eval_count"], 16);
        let text = |v: &Value| {
            if path == "/api/chat" {
                v["message"]["content"]
                    .as_str()
                    .expect("content")
                    .to_string()
            } else {
                v["response"].as_str().expect("response").to_string()
            }
        };
        let streamed: String = lines.iter().map(text).collect();
        assert_eq!(streamed, text(&whole), "{path}");
    }
}

#[tokio::test]
async fn ollama_errors_use_ollamas_shape_and_name_what_hearth_does_not_do() {
    let app = plain();
    let chat = |extra: Value| {
        let mut v = json!({"model": MODEL, "messages": [{"role": "user", "content": "hi"}],
                           "stream": false});
        if let (Some(o), Value::Object(e)) = (v.as_object_mut(), extra) {
            o.extend(e);
        }
        v
    };
    let (status, body) = send(
        &app,
        post("/api/chat", &chat(json!({"model": "llama3"})), None),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(ollama_error(&body), "model 'llama3' not found");
    let (status, body) = send(
        &app,
        post("/api/show", &json!({"model": "llama3:8b"}), None),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(ollama_error(&body), "model 'llama3:8b' not found");
    let cases = [
        (json!({"options": {"num_ctx": 8192}}), "num_ctx"),
        // A smaller num_ctx is honoured: this prompt does not fit in 4 tokens.
        (json!({"options": {"num_ctx": 4}}), "`options.num_ctx` is 4"),
        (json!({"options": {"stop": vec!["x"; 17]}}), "options.stop"),
        (json!({"options": {"mirostat": 2}}), "mirostat"),
        (json!({"options": {"typical_p": 0.5}}), "typical_p"),
        (
            json!({"options": {"temperature": 9}}),
            "options.temperature",
        ),
        (json!({"format": "yaml"}), "format"),
        (json!({"think": true}), "does not support thinking"),
        // A field the message would not name is named before it.
        (
            json!({"messages": [{"role": "robot", "content": "hi"}]}),
            "`messages[0].role`: unknown role",
        ),
    ];
    for (extra, says) in cases {
        let (status, body) = send(&app, post("/api/chat", &chat(extra.clone()), None)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{extra}");
        let message = ollama_error(&body);
        assert!(message.contains(says), "{extra}: {message}");
    }
    // Options Hearth has no use for are ignored, as Ollama ignores them.
    let ignored = json!({"options": {"num_gpu": 1, "num_thread": 4, "use_mmap": true,
                                     "tfs_z": 1.0, "num_predict": 2}});
    let (status, body) = send(&app, post("/api/chat", &chat(ignored), None)).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    for (path, req) in [
        (
            "/api/generate",
            json!({"model": MODEL, "prompt": "x", "suffix": "y"}),
        ),
        (
            "/api/generate",
            json!({"model": MODEL, "prompt": "x", "template": "{{ .Prompt }}"}),
        ),
        (
            "/api/generate",
            json!({"model": MODEL, "prompt": "x", "context": [1, 2]}),
        ),
        ("/api/embed", json!({"model": MODEL, "input": "x"})),
    ] {
        let (status, body) = send(&app, post(path, &req, None)).await;
        assert!(status.is_client_error(), "{req}: {status}");
        let _ = ollama_error(&body);
    }
}

#[tokio::test]
async fn ollama_needs_the_key_like_v1_and_answers_401_in_its_shape() {
    let store = Arc::new(Store::open_in_memory().expect("store"));
    let app = with_household(store, vec!["sk-configured".into()]);
    let (status, body) = send(&app, post("/api/show", &json!({"model": MODEL}), None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(ollama_error(&body).contains("API key"));
    let (status, body) = send(
        &app,
        post("/api/show", &json!({"model": MODEL}), Some("sk-configured")),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let v = json_of(&body);
    assert_eq!(v["model_info"]["llama.context_length"], 1024);
    assert_eq!(v["capabilities"], json!(["completion", "tools"]));
}

#[tokio::test]
async fn ollama_pull_is_for_the_keeper_only() {
    let store = Arc::new(Store::open_in_memory().expect("store"));
    let owner = store
        .setup("The Smiths", "Ann", "correct horse")
        .expect("setup");
    let (_, key) = store.create_api_key("an app", owner.id).expect("key");
    let app = with_household(store, vec!["sk-configured".into()]);
    let pull = json!({"model": MODEL});
    let (status, body) = send(&app, post("/api/pull", &pull, Some(&key))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(ollama_error(&body).contains("keeper"));
    // The keeper gets past the check; this server was given no way to download.
    let (status, body) = send(&app, post("/api/pull", &pull, Some("sk-configured"))).await;
    assert_eq!(status, StatusCode::NOT_IMPLEMENTED);
    assert!(ollama_error(&body).contains("hearth pull smollm2-135m"));
    // Without a household, pulling is done on the server's command line.
    let (status, body) = send(&plain(), post("/api/pull", &pull, None)).await;
    assert_eq!(status, StatusCode::NOT_IMPLEMENTED);
    assert!(ollama_error(&body).contains("hearth pull smollm2-135m"));
}
