//! The Responses API without a household (`--no-household`): responses kept in memory, each
//! found only by the key that made it, on the real SmolLM2 through `Router::oneshot`.

use std::net::SocketAddr;

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
const KEYS: [&str; 2] = ["key-one", "key-two"];

fn app() -> Router {
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
    let state = AppState::new(
        served,
        None,
        ServeOptions {
            engine: EngineOptions {
                ctx: 1024,
                threads: 2,
                max_seqs: 4,
                ..EngineOptions::default()
            },
            ..ServeOptions::default()
        },
        Auth::new(loopback, KEYS.iter().map(|k| k.to_string()).collect()).expect("auth"),
    );
    hearth_server::router(state)
}

async fn call(
    app: &Router,
    key: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header(header::AUTHORIZATION, format!("Bearer {key}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
        .expect("request");
    let resp = app.clone().oneshot(req).await.expect("response");
    let status = resp.status();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    let v = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| panic!("JSON body, got {}", String::from_utf8_lossy(&bytes)));
    (status, v)
}

fn create(input: &str, extra: Value) -> Value {
    let mut v = json!({"model": MODEL, "input": input, "temperature": 0, "max_output_tokens": 6});
    if let (Some(o), Value::Object(e)) = (v.as_object_mut(), extra) {
        o.extend(e);
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_memory_responses_are_scoped_to_their_key_and_deletable() {
    let app = app();
    let (status, r) = call(
        &app,
        KEYS[0],
        "POST",
        "/v1/responses",
        Some(create("Hi", json!({}))),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    let id = r["id"].as_str().expect("id").to_string();
    assert_eq!(r["output"][0]["type"], "message");

    let path = format!("/v1/responses/{id}");
    let (status, got) = call(&app, KEYS[0], "GET", &path, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got, r);
    // The other key gets what a missing id gets, for reading, continuing and deleting.
    let (status, e) = call(&app, KEYS[1], "GET", &path, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{e}");
    let more = create("Again", json!({"previous_response_id": id}));
    let (status, e) = call(&app, KEYS[1], "POST", "/v1/responses", Some(more.clone())).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{e}");
    assert_eq!(e["error"]["param"], "previous_response_id");
    let (status, _) = call(&app, KEYS[1], "DELETE", &path, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, next) = call(&app, KEYS[0], "POST", "/v1/responses", Some(more)).await;
    assert_eq!(status, StatusCode::OK, "{next}");
    assert!(next["usage"]["input_tokens"].as_u64() > r["usage"]["input_tokens"].as_u64());

    let (status, d) = call(&app, KEYS[0], "DELETE", &path, None).await;
    assert_eq!(status, StatusCode::OK, "{d}");
    assert_eq!(d["deleted"], true);
    let (status, _) = call(&app, KEYS[0], "GET", &path, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_false_keeps_nothing() {
    let app = app();
    let body = create("Hi", json!({"store": false}));
    let (status, r) = call(&app, KEYS[0], "POST", "/v1/responses", Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(r["store"], false);
    let path = format!("/v1/responses/{}", r["id"].as_str().expect("id"));
    let (status, _) = call(&app, KEYS[0], "GET", &path, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
