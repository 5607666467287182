//! Bounded work: a hostile model or client cannot hold up the server. These run on a tiny
//! random-weight model, so they need no download.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use hearth_engine::EngineOptions;
use hearth_model::chat::{ChatTemplate, Limits};
use hearth_model::testing::TinySpec;
use hearth_model::tokenizer::Tokenizer;
use hearth_model::{Model, SamplerConfig};
use hearth_server::{AppState, Auth, ServeModel, ServeOptions};
use http_body_util::BodyExt;
use serde_json::json;
use tower::ServiceExt;

const ID: &str = "tiny";

/// A one-layer model with a small vocabulary; `template` replaces the file's own.
fn tiny_model(template: Option<ChatTemplate>) -> ServeModel {
    let spec = TinySpec {
        n_layer: 1,
        chat_template: Some("{% for m in messages %}{{ m.content }}{% endfor %}".into()),
        ..TinySpec::new("llama")
    };
    let gguf = hearth_gguf::Gguf::from_bytes(spec.build()).expect("GGUF");
    let tokenizer = Tokenizer::from_gguf(gguf.metadata()).expect("tokenizer");
    let own = ChatTemplate::from_gguf(gguf.metadata(), &tokenizer).expect("template");
    ServeModel {
        id: ID.into(),
        model: Model::from_gguf(gguf).expect("model"),
        tokenizer,
        template: template.or(own),
        defaults: SamplerConfig::default(),
    }
}

fn tiny_state(template: Option<ChatTemplate>, body_limit: usize) -> Arc<AppState> {
    let loopback: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    AppState::new(
        tiny_model(template),
        None,
        ServeOptions {
            engine: EngineOptions {
                ctx: 256,
                threads: 1,
                max_seqs: 2,
                ..EngineOptions::default()
            },
            max_queue: 16,
            body_limit,
        },
        Auth::new(loopback, Vec::new()).expect("loopback is allowed"),
    )
}

async fn call(app: Router, req: Request<Body>) -> (StatusCode, String) {
    let resp = app.oneshot(req).await.expect("response");
    let status = resp.status();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn post(path: &str, body: impl Into<Body>) -> Request<Body> {
    Request::post(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body.into())
        .expect("request")
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).expect("request")
}

/// Lets spawned tasks run as far as they can on this (single) thread.
async fn let_others_run() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

/// Two chats on a model whose template spins used to hold both async workers; now the
/// templates run on blocking threads, `/health` answers meanwhile, and each chat ends with
/// an error that says what happened. The runtime has a single thread, so a template rendered
/// on it would have to finish before `/health` could answer.
#[tokio::test(flavor = "current_thread")]
async fn hostile_template_requests_leave_health_answering() {
    let spinning =
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}";
    // No step limit to speak of: the render runs until its time limit, well after `/health`.
    let template = ChatTemplate::with_limits(
        spinning,
        "",
        "",
        Limits {
            fuel: 1 << 40,
            time: Duration::from_secs(2),
        },
    )
    .expect("compiles");
    let app = hearth_server::router(tiny_state(Some(template), 1 << 20));
    let body = json!({"model": ID, "messages": [{"role": "user", "content": "Hi"}]}).to_string();
    let chats: Vec<_> = (0..2)
        .map(|_| {
            tokio::spawn(call(
                app.clone(),
                post("/v1/chat/completions", body.clone()),
            ))
        })
        .collect();
    let_others_run().await;
    let (status, _) = call(app.clone(), get("/health")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        chats.iter().all(|c| !c.is_finished()),
        "the templates ran on the async thread: they finished before /health could answer"
    );
    for chat in chats {
        let (status, body) = chat.await.expect("task");
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(
            body.contains("this model's chat template did too much work"),
            "{body}"
        );
    }
}
