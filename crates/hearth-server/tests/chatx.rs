//! One chat downloaded from its header (Markdown and JSON), the model that wrote each reply, and
//! who may download a chat (exactly who may read it). Through `Router::oneshot` on the real
//! SmolLM2 with an in-memory store.

mod common;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use common::{app_with, household, Browser, Opts};
use hearth_store::{MessageRole, Status, Store};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

fn small_app(store: Arc<Store>) -> Router {
    app_with(
        store,
        Opts {
            ctx: 512,
            ends: true,
            reply_tokens: 8,
            ..Opts::default()
        },
    )
}

/// A GET as `b`, with the response's headers (the download's file name) and body.
async fn get(app: &Router, b: &Browser, path: &str) -> (StatusCode, header::HeaderMap, String) {
    let mut req = Request::builder()
        .method("GET")
        .uri(path)
        .header(header::HOST, "localhost");
    if let Some(c) = &b.cookie {
        req = req.header(header::COOKIE, c);
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::empty()).expect("request"))
        .await
        .expect("response");
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_reply_keeps_its_model_and_a_chat_downloads_with_who_and_when() {
    let store = Arc::new(Store::open_in_memory().expect("store"));
    let (_, bob, _) = household(&store);
    let app = small_app(store.clone());
    let mut b = Browser::login(&app, "Bob", "4321").await;
    let c = b
        .send(
            &app,
            "POST",
            "/api/conversations",
            Some(json!({"title": "Tea: \"green\" / or black?"})),
        )
        .await;
    assert_eq!(c.status, StatusCode::OK, "{}", c.text());
    let id = c.json()["id"].as_i64().expect("id");
    // A reply written before Hearth kept the model: it names none, and neither does the page.
    store
        .add_message(
            bob.id,
            id,
            MessageRole::User,
            "Hello there",
            Status::Complete,
        )
        .expect("old question");
    store
        .add_message(bob.id, id, MessageRole::Assistant, "Hi!", Status::Complete)
        .expect("old reply");
    let r = b
        .send(
            &app,
            "POST",
            &format!("/api/conversations/{id}/messages"),
            Some(json!({"content": "Green or black tea?"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    // The reply says which model is writing it from its first moment.
    assert_eq!(
        r.json()["assistant"]["model"],
        "smollm2-135m",
        "{}",
        r.text()
    );
    b.events(&app, id).await.until_done().await;

    let conv = b
        .send(&app, "GET", &format!("/api/conversations/{id}"), None)
        .await
        .json();
    let ms = conv["messages"].as_array().expect("messages");
    let models: Vec<&Value> = ms.iter().map(|m| &m["model"]).collect();
    assert_eq!(
        models,
        [
            &Value::Null,
            &Value::Null,
            &Value::Null,
            &json!("smollm2-135m")
        ],
        "{conv}"
    );

    // Markdown, in the reader's time zone (UTC+01:00).
    let (status, headers, md) = get(
        &app,
        &b,
        &format!("/api/conversations/{id}/export?format=markdown&offset=60"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{md}");
    assert!(
        headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/markdown"),
        "{headers:?}"
    );
    // The title is the person's text: only safe characters reach the header.
    assert_eq!(
        headers[header::CONTENT_DISPOSITION],
        "attachment; filename=\"hearth-tea-green-or-black.md\""
    );
    assert!(md.starts_with("# Tea: \"green\""), "{md}");
    assert!(md.contains("A chat of Bob with Hearth"), "{md}");
    assert!(md.contains("\n### Bob · "), "{md}");
    assert!(md.contains("UTC+01:00\n\nGreen or black tea?\n"), "{md}");
    assert!(
        md.contains("\n### Hearth · "),
        "an old reply names no model: {md}"
    );
    assert!(md.contains("\n### Hearth (smollm2-135m) · "), "{md}");
    let reply = ms[3]["content"].as_str().expect("reply");
    assert!(md.trim_end().ends_with(reply.trim_end()), "{md}");
    assert!(
        !md.contains("UTC\n"),
        "every time is in the reader's zone: {md}"
    );

    // JSON: the same chat, for programs.
    let (status, headers, js) = get(
        &app,
        &b,
        &format!("/api/conversations/{id}/export?format=json"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{js}");
    assert_eq!(
        headers[header::CONTENT_DISPOSITION],
        "attachment; filename=\"hearth-tea-green-or-black.json\""
    );
    let v: Value = serde_json::from_str(&js).expect("JSON");
    assert_eq!(v["format"], "hearth-conversation");
    assert_eq!(v["person"], "Bob");
    assert_eq!(v["conversation"]["id"], id);
    assert_eq!(v["conversation"]["messages"], conv["messages"], "{v}");

    // Nonsense is refused in words.
    for q in ["format=pdf", "offset=100000", "offset=abc"] {
        let (status, _, body) = get(&app, &b, &format!("/api/conversations/{id}/export?{q}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{q}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_who_may_read_a_chat_may_download_it() {
    let store = Arc::new(Store::open_in_memory().expect("store"));
    let (_, bob, _) = household(&store);
    let app = small_app(store.clone());
    let bobs = store
        .create_conversation(bob.id, Some("Bob's diary"))
        .expect("conv");
    store
        .add_message(
            bob.id,
            bobs.id,
            MessageRole::User,
            "my secret",
            Status::Complete,
        )
        .expect("message");
    let mut ann = Browser::login(&app, "Ann", "correct horse").await;
    let cat = Browser::login(&app, "Cat", "8765").await;
    let nobody = Browser::default();

    // Another grown-up's chat answers as a missing one does, to the keeper too.
    let missing = get(&app, &cat, "/api/conversations/1000000/export").await;
    assert_eq!(missing.0, StatusCode::NOT_FOUND);
    for who in [&cat, &ann] {
        let (status, _, body) =
            get(&app, who, &format!("/api/conversations/{}/export", bobs.id)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        assert_eq!(body, missing.2);
        assert!(!body.contains("secret"), "{body}");
    }
    let (status, _, _) = get(
        &app,
        &nobody,
        &format!("/api/conversations/{}/export", bobs.id),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // A child's chat: the keeper may download it only while the child's settings let the
    // keeper read it; no one else ever may.
    let r = ann
        .send(
            &app,
            "POST",
            "/api/people",
            Some(json!({"name": "Leo", "pin": "2468", "role": "child"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let leo = r.json()["id"].as_i64().expect("id");
    let leos = store
        .create_conversation(leo, Some("Volcanoes"))
        .expect("conv");
    store
        .add_message(
            leo,
            leos.id,
            MessageRole::User,
            "Why do volcanoes erupt?",
            Status::Complete,
        )
        .expect("message");
    let path = format!("/api/people/{leo}/conversations/{}/export", leos.id);
    let private = json!({"prompt": null, "hours": null, "topics": [], "keeper_sees": false});
    let r = ann
        .send(
            &app,
            "PUT",
            &format!("/api/people/{leo}/limits"),
            Some(private),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let (status, _, body) = get(&app, &ann, &path).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "the child's chats are private: {body}"
    );
    assert!(!body.contains("volcanoes erupt"), "{body}");
    let limits = json!({"prompt": null, "hours": null, "topics": [], "keeper_sees": true});
    let r = ann
        .send(
            &app,
            "PUT",
            &format!("/api/people/{leo}/limits"),
            Some(limits),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let (status, headers, md) = get(&app, &ann, &path).await;
    assert_eq!(status, StatusCode::OK, "{md}");
    assert_eq!(
        headers[header::CONTENT_DISPOSITION],
        "attachment; filename=\"hearth-volcanoes.md\""
    );
    assert!(md.contains("A chat of Leo with Hearth"), "{md}");
    assert!(md.contains("### Leo · "), "{md}");
    assert!(md.contains("Why do volcanoes erupt?"), "{md}");
    // Not a member, not through a grown-up's id, not another child's chat id.
    let (status, _, _) = get(&app, &cat, &path).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let through_bob = format!("/api/people/{}/conversations/{}/export", bob.id, bobs.id);
    let (status, _, body) = get(&app, &ann, &through_bob).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let mixed = format!("/api/people/{leo}/conversations/{}/export", bobs.id);
    let (status, _, body) = get(&app, &ann, &mixed).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(!body.contains("secret"), "{body}");
}

/// The page starts a chat with its first message in one request: that first reply keeps its
/// model too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_chats_first_reply_keeps_its_model() {
    let store = Arc::new(Store::open_in_memory().expect("store"));
    household(&store);
    let app = small_app(store.clone());
    let mut b = Browser::login(&app, "Bob", "4321").await;
    let r = b
        .send(
            &app,
            "POST",
            "/api/conversations",
            Some(json!({"content": "Hello there"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let v = r.json();
    assert_eq!(v["assistant"]["model"], "smollm2-135m", "{v}");
    let id = v["conversation"]["id"].as_i64().expect("id");
    b.events(&app, id).await.until_done().await;
    let c = b
        .send(&app, "GET", &format!("/api/conversations/{id}"), None)
        .await
        .json();
    assert_eq!(c["messages"][1]["model"], "smollm2-135m", "{c}");
}
