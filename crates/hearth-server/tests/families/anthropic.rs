//! The Anthropic Messages API's answers that the client suite cannot easily provoke, through
//! `Router::oneshot` on the real SmolLM2: the 401 on its paths, a full queue, unreadable and
//! oversized bodies; each in Anthropic's error shape.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use hearth_engine::EngineOptions;
use hearth_model::chat::ChatTemplate;
use hearth_model::tokenizer::Tokenizer;
use hearth_model::{Model, SamplerConfig};
use hearth_server::{AppState, Auth, ServeModel, ServeOptions};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

const MODEL: &str = "smollm2-135m";
const BODY_LIMIT: usize = 16 << 10;

fn app(keys: Vec<String>, max_queue: usize) -> Router {
    let path = hearth_fetch::test_model(MODEL).expect("SmolLM2 for tests");
    let model = Model::open(&path).expect("model loads");
    let md = model.gguf().metadata();
    let tokenizer = Tokenizer::from_gguf(md).expect("tokenizer");
    let template = ChatTemplate::from_gguf(md, &tokenizer).expect("template compiles");
    let served = ServeModel {
        id: MODEL.into(),
        model,
        tokenizer,
        template,
        defaults: SamplerConfig::default(),
        draft: None,
    };
    let loopback: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    let state: Arc<AppState> = AppState::new(
        served,
        None,
        ServeOptions {
            engine: EngineOptions {
                ctx: 512,
                threads: 2,
                max_seqs: 2,
                ..EngineOptions::default()
            },
            max_queue,
            body_limit: BODY_LIMIT,
            ..ServeOptions::default()
        },
        Auth::new(loopback, keys).expect("loopback is allowed"),
    );
    hearth_server::router(state)
}

fn message(extra: Value) -> Value {
    let mut v = json!({"model": MODEL, "max_tokens": 4, "temperature": 0,
                       "messages": [{"role": "user", "content": "hi"}]});
    if let (Some(o), Value::Object(e)) = (v.as_object_mut(), extra) {
        o.extend(e);
    }
    v
}

async fn send(
    app: &Router,
    path: &str,
    body: impl Into<Body>,
    key: Option<&str>,
) -> (StatusCode, axum::http::HeaderMap, Value) {
    let mut req = Request::post(path).header(header::CONTENT_TYPE, "application/json");
    if let Some(k) = key {
        req = req.header("x-api-key", k);
    }
    let resp = app
        .clone()
        .oneshot(req.body(body.into()).expect("request"))
        .await
        .expect("response");
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    let v = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| panic!("JSON body, got {}", String::from_utf8_lossy(&bytes)));
    (status, headers, v)
}

/// Anthropic's error shape, returning (type, message).
fn anthropic_error(v: &Value) -> (&str, &str) {
    assert_eq!(v["type"], "error", "not an Anthropic error body: {v}");
    (
        v["error"]["type"].as_str().expect("error.type"),
        v["error"]["message"].as_str().expect("error.message"),
    )
}

#[tokio::test]
async fn a_missing_or_wrong_key_on_messages_is_an_anthropic_authentication_error() {
    let app = app(vec!["sesame".into()], 16);
    for path in ["/v1/messages", "/v1/messages/count_tokens"] {
        let (s, _, v) = send(&app, path, message(json!({})).to_string(), None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        let (kind, msg) = anthropic_error(&v);
        assert_eq!(kind, "authentication_error");
        assert!(msg.contains("x-api-key"), "{msg}");
        let (s, _, v) = send(&app, path, message(json!({})).to_string(), Some("wrong")).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        assert_eq!(anthropic_error(&v).0, "authentication_error");
    }
    let (s, _, v) = send(
        &app,
        "/v1/messages/count_tokens",
        message(json!({})).to_string(),
        Some("sesame"),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(v["input_tokens"].as_u64().is_some_and(|n| n > 0), "{v}");
    // The OpenAI paths keep OpenAI's shape.
    let (s, _, v) = send(&app, "/v1/chat/completions", "{}", None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(v["error"]["code"], "invalid_api_key");
}

#[tokio::test]
async fn a_full_queue_is_an_overloaded_error_529_with_retry_after() {
    let app = app(Vec::new(), 0);
    let (s, headers, v) = send(&app, "/v1/messages", message(json!({})).to_string(), None).await;
    assert_eq!(s.as_u16(), 529);
    assert!(headers.contains_key(header::RETRY_AFTER));
    assert_eq!(anthropic_error(&v).0, "overloaded_error");
    // Streamed requests are refused the same way, before any event.
    let (s, _, v) = send(
        &app,
        "/v1/messages",
        message(json!({"stream": true})).to_string(),
        None,
    )
    .await;
    assert_eq!(s.as_u16(), 529);
    assert_eq!(anthropic_error(&v).0, "overloaded_error");
}

#[tokio::test]
async fn unreadable_and_oversized_bodies_keep_anthropics_shape() {
    let app = app(Vec::new(), 16);
    let (s, _, v) = send(&app, "/v1/messages", "{not json", None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(anthropic_error(&v).0, "invalid_request_error");
    let (s, _, v) = send(
        &app,
        "/v1/messages",
        message(json!({"max_tokens": "many"})).to_string(),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(anthropic_error(&v).1.contains("max_tokens"), "{v}");
    let big = message(json!({"system": "x".repeat(BODY_LIMIT)})).to_string();
    let (s, _, v) = send(&app, "/v1/messages", big, None).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(anthropic_error(&v).0, "request_too_large");
    let (s, _, v) = send(
        &app,
        "/v1/messages",
        message(json!({"temperature": 1.5})).to_string(),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(anthropic_error(&v).1.contains("temperature"), "{v}");
}

#[tokio::test]
async fn a_prompt_longer_than_the_context_is_worded_as_anthropic_words_it() {
    let app = app(Vec::new(), 16);
    let long = "apple ".repeat(600);
    let (s, _, v) = send(
        &app,
        "/v1/messages",
        message(json!({"messages": [{"role": "user", "content": long}]})).to_string(),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (kind, msg) = anthropic_error(&v);
    assert_eq!(kind, "invalid_request_error");
    assert!(
        msg.starts_with("prompt is too long: ") && msg.contains("tokens > 511 maximum"),
        "{msg}"
    );
}

#[tokio::test]
async fn a_reply_cut_by_the_context_says_model_context_window_exceeded() {
    let app = app(Vec::new(), 16);
    let ask = |apples: usize, max_tokens: u64| {
        // The reply continues a run of apples, so it does not end by itself.
        message(json!({"max_tokens": max_tokens,
            "messages": [{"role": "user", "content": "apple ".repeat(apples)},
                         {"role": "assistant", "content": "apple apple apple"}]}))
        .to_string()
    };
    // A prompt that leaves two tokens of the 512-token context.
    let mut apples = 450;
    let (_, _, v) = send(&app, "/v1/messages/count_tokens", ask(apples, 1), None).await;
    let n = v["input_tokens"].as_u64().expect("input_tokens") as usize;
    apples += 510 - n;
    let (_, _, v) = send(&app, "/v1/messages/count_tokens", ask(apples, 1), None).await;
    assert_eq!(v["input_tokens"], 510, "one apple, one token: {v}");
    let (s, _, v) = send(&app, "/v1/messages", ask(apples, 100), None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["stop_reason"], "model_context_window_exceeded", "{v}");
    assert_eq!(v["usage"]["output_tokens"], 2, "{v}");
    // Asking for no more than the room left is an ordinary max_tokens cut.
    let (_, _, v) = send(&app, "/v1/messages", ask(apples, 2), None).await;
    assert_eq!(v["stop_reason"], "max_tokens", "{v}");
}
