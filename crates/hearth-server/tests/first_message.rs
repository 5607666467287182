//! A new chat and its first message in one request (issue 18): the chat exists only once its
//! first message is sent, so a refused first message (empty, too long, too long for the model)
//! leaves no empty "New chat" behind on the server, whatever the page does next. On the real
//! SmolLM2 through `Router::oneshot`.

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use common::{app, household, Browser};
use hearth_store::Store;
use serde_json::{json, Value};

async fn chats(b: &mut Browser, app: &axum::Router) -> Value {
    let r = b.send(app, "GET", "/api/conversations", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    r.json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_first_message_leaves_no_chat_behind() {
    let store = Arc::new(Store::open_in_memory().expect("store"));
    household(&store);
    let app = app(store, 512);
    let mut ann = Browser::login(&app, "Ann", "correct horse").await;

    // Over the cap on any model; too long for this model's 512-token context; nothing at all.
    let sentence = "The quick brown fox jumps over the lazy dog near the river bank. ";
    for (what, content) in [
        ("over the cap", "x".repeat(33_000)),
        ("too long for the model", sentence.repeat(60)),
        ("empty", "   ".to_string()),
    ] {
        let r = ann
            .send(
                &app,
                "POST",
                "/api/conversations",
                Some(json!({"content": content})),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{what}: {}", r.text());
        if what != "empty" {
            assert!(r.text().contains("too_long"), "{what}: {}", r.text());
        }
        assert_eq!(
            chats(&mut ann, &app).await,
            json!([]),
            "{what}: a chat was kept"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_message_that_is_sent_starts_its_chat_with_the_reply() {
    let store = Arc::new(Store::open_in_memory().expect("store"));
    household(&store);
    let app = app(store, 512);
    let mut ann = Browser::login(&app, "Ann", "correct horse").await;
    let r = ann
        .send(
            &app,
            "POST",
            "/api/conversations",
            Some(json!({"content": "Tell me about apples."})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let v = r.json();
    let id = v["conversation"]["id"].as_i64().expect("the new chat's id");
    assert_eq!(v["user"]["content"], "Tell me about apples.");
    assert_eq!(v["assistant"]["status"], "streaming");
    let list = chats(&mut ann, &app).await;
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    assert_eq!(list[0]["id"], id);
    assert_eq!(list[0]["running"], true, "{list}");

    // Stopped, the chat keeps the message and the reply so far, as any other.
    let r = ann
        .send(&app, "POST", &format!("/api/conversations/{id}/stop"), None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let mut conv = Value::Null;
    for _ in 0..600 {
        conv = ann
            .send(&app, "GET", &format!("/api/conversations/{id}"), None)
            .await
            .json();
        if conv["running"] == false {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(conv["running"], false, "{conv}");
    assert_eq!(conv["messages"][0]["content"], "Tell me about apples.");
    assert_eq!(conv["messages"][1]["role"], "assistant");
}
