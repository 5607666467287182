//! Other people's conversations: every route that takes an id, walked with another person's ids
//! while that person's reply is running. The answer must be the one a missing conversation gets
//! (so nothing is revealed, not even that a reply is running), and nothing of theirs may change
//! or stop. Through `Router::oneshot` on the real SmolLM2 model with an in-memory store.

mod common;

use std::sync::Arc;

use axum::http::StatusCode;
use axum::Router;
use common::{app, household, Browser};
use hearth_store::Store;
use serde_json::{json, Value};

/// A conversation id nobody has.
const MISSING: i64 = 1_000_000;

/// Every route that takes a conversation id, with a body it would accept from the owner.
fn conversation_routes() -> Vec<(&'static str, &'static str, Option<Value>)> {
    vec![
        ("GET", "", None),
        ("PATCH", "", Some(json!({"title": "mine now"}))),
        ("POST", "/messages", Some(json!({"content": "hello?"}))),
        ("POST", "/regenerate", None),
        ("POST", "/edit", Some(json!({"content": "something else"}))),
        ("POST", "/branch", Some(json!({"message_id": 1}))),
        ("POST", "/stop", None),
        ("POST", "/continue", None),
        ("GET", "/events", None),
        ("GET", "/export", None),
        ("DELETE", "", None),
    ]
}

/// Proves the reply in conversation `id` was not stopped: a stream opened now starts with a
/// snapshot (the reply is running) and hears two more pieces of text. A stop asked for earlier
/// lets at most one more piece out (the one being written when it came) before the reply ends.
async fn assert_still_writing(app: &Router, owner: &Browser, id: i64) {
    let mut ev = owner.events(app, id).await;
    match ev.next().await {
        Some((name, _)) if name == "snapshot" => {}
        other => panic!("the reply should still be running, got {other:?}"),
    }
    let seen = ev.deltas;
    while ev.deltas < seen + 2 {
        match ev.next().await {
            Some((name, data)) if name == "done" => {
                panic!("the reply ended ({data}) though only its owner may stop it")
            }
            Some(_) => {}
            None => panic!("the event stream ended while the reply should be running"),
        }
    }
}

/// What of a conversation another person must not be able to change: its title and its
/// messages (ids, roles, and the person's own words; the reply's text keeps growing).
fn shape(conv: &Value) -> Value {
    let messages: Vec<Value> = conv["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| {
            let words = if m["role"] == "user" {
                m["content"].clone()
            } else {
                Value::Null
            };
            json!([m["id"], m["role"], words])
        })
        .collect();
    json!({"title": conv["title"], "messages": messages})
}

async fn stop_and_check_kept(app: &Router, bob: &mut Browser, id: i64, mut ev: common::Events) {
    let r = bob
        .send(app, "POST", &format!("/api/conversations/{id}/stop"), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(ev.until_done().await, "stopped");
    let conv = bob
        .send(app, "GET", &format!("/api/conversations/{id}"), None)
        .await
        .json();
    assert_eq!(conv["messages"][1]["status"], "stopped");
    assert!(!conv["messages"][1]["content"].as_str().unwrap().is_empty());
}

#[tokio::test]
async fn another_persons_delete_does_not_stop_their_reply() {
    let store = Arc::new(Store::open_in_memory().expect("store"));
    household(&store);
    let app = app(store, 1024);
    let mut ann = Browser::login(&app, "Ann", "correct horse").await;
    let mut bob = Browser::login(&app, "Bob", "4321").await;
    let mut cat = Browser::login(&app, "Cat", "8765").await;
    let (bobs, bobs_events) = bob.running_reply(&app).await;
    let (anns, mut anns_events) = ann.running_reply(&app).await;
    let before = shape(
        &bob.send(&app, "GET", &format!("/api/conversations/{bobs}"), None)
            .await
            .json(),
    );

    // The owner and another member try to delete Bob's conversation: it is not theirs.
    for (who, b) in [("Ann", &mut ann), ("Cat", &mut cat)] {
        let r = b
            .send(&app, "DELETE", &format!("/api/conversations/{bobs}"), None)
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{who}: {}", r.text());
    }
    // Deleting all of one's own conversations stops one's own replies, and only those.
    let r = cat.send(&app, "DELETE", "/api/conversations", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let r = ann.send(&app, "DELETE", "/api/conversations", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(anns_events.until_done().await, "stopped");
    let r = ann
        .send(&app, "GET", &format!("/api/conversations/{anns}"), None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    assert_still_writing(&app, &bob, bobs).await;
    let after = bob
        .send(&app, "GET", &format!("/api/conversations/{bobs}"), None)
        .await
        .json();
    assert_eq!(shape(&after), before);
    assert_eq!(after["running"], true);
    stop_and_check_kept(&app, &mut bob, bobs, bobs_events).await;
}

#[tokio::test]
async fn another_persons_running_reply_is_not_revealed() {
    let store = Arc::new(Store::open_in_memory().expect("store"));
    household(&store);
    let app = app(store, 1024);
    let mut ann = Browser::login(&app, "Ann", "correct horse").await;
    let mut bob = Browser::login(&app, "Bob", "4321").await;
    let mut cat = Browser::login(&app, "Cat", "8765").await;
    let (bobs, bobs_events) = bob.running_reply(&app).await;
    let before = shape(
        &bob.send(&app, "GET", &format!("/api/conversations/{bobs}"), None)
            .await
            .json(),
    );

    // The owner is no exception: another person's conversation is as absent as a missing one,
    // whatever the route, and whether or not its reply is running.
    for (who, b) in [("Ann", &mut ann), ("Cat", &mut cat)] {
        for (method, route, body) in conversation_routes() {
            let theirs = b
                .send(
                    &app,
                    method,
                    &format!("/api/conversations/{bobs}{route}"),
                    body.clone(),
                )
                .await;
            let missing = b
                .send(
                    &app,
                    method,
                    &format!("/api/conversations/{MISSING}{route}"),
                    body,
                )
                .await;
            assert_eq!(
                theirs.status,
                StatusCode::NOT_FOUND,
                "{who}: {method} {route}: {}",
                theirs.text()
            );
            assert_eq!(
                theirs.json(),
                missing.json(),
                "{who}: {method} {route} must answer exactly as for a missing conversation"
            );
        }
    }

    assert_still_writing(&app, &bob, bobs).await;
    let after = bob
        .send(&app, "GET", &format!("/api/conversations/{bobs}"), None)
        .await
        .json();
    assert_eq!(shape(&after), before);
    stop_and_check_kept(&app, &mut bob, bobs, bobs_events).await;
}

#[tokio::test]
async fn a_member_cannot_act_on_people_or_keys_by_id() {
    let store = Arc::new(Store::open_in_memory().expect("store"));
    let (ann, _, cat) = household(&store);
    let app = app(store.clone(), 512);
    let mut owner = Browser::login(&app, "Ann", "correct horse").await;
    let mut bob = Browser::login(&app, "Bob", "4321").await;
    let key = owner
        .send(
            &app,
            "POST",
            "/api/keys",
            Some(json!({"name": "notes app"})),
        )
        .await
        .json();
    let key_id = key["id"].as_i64().expect("key id");
    let secret = key["key"].as_str().expect("key").to_string();

    // Real ids and missing ones get the same refusal: a member learns nothing from them.
    for id in [ann.id, cat.id, MISSING] {
        for (method, path, body) in [
            (
                "POST",
                format!("/api/people/{id}/reset"),
                Some(json!({"password": "taken over"})),
            ),
            (
                "POST",
                format!("/api/people/{id}/reset"),
                Some(json!({"pin": "1111"})),
            ),
            ("DELETE", format!("/api/people/{id}"), None),
            ("GET", format!("/api/people/{id}/limits"), None),
            (
                "PUT",
                format!("/api/people/{id}/limits"),
                Some(json!({"keeper_sees": true, "topics": []})),
            ),
            ("GET", format!("/api/people/{id}/conversations"), None),
            (
                "GET",
                format!("/api/people/{id}/conversations/{MISSING}"),
                None,
            ),
        ] {
            let r = bob.send(&app, method, &path, body).await;
            assert_eq!(
                r.status,
                StatusCode::FORBIDDEN,
                "{method} {path}: {}",
                r.text()
            );
        }
    }
    for id in [key_id, MISSING] {
        let r = bob
            .send(&app, "DELETE", &format!("/api/keys/{id}"), None)
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "key {id}: {}", r.text());
    }

    // Nothing changed: everyone is still there with their own secrets, and the key still works.
    assert_eq!(store.people().expect("people").len(), 3);
    Browser::login(&app, "Ann", "correct horse").await;
    Browser::login(&app, "Cat", "8765").await;
    let req = axum::http::Request::get("/v1/models")
        .header(
            axum::http::header::AUTHORIZATION,
            format!("Bearer {secret}"),
        )
        .header(axum::http::header::HOST, "localhost")
        .body(axum::body::Body::empty())
        .expect("request");
    let r = tower::ServiceExt::oneshot(app.clone(), req)
        .await
        .expect("response");
    assert_eq!(r.status(), StatusCode::OK);
    let listed = owner.send(&app, "GET", "/api/keys", None).await.json();
    assert_eq!(listed.as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn removing_a_person_stops_their_reply_and_no_one_elses() {
    let store = Arc::new(Store::open_in_memory().expect("store"));
    let (_, _, cat) = household(&store);
    let app = app(store, 1024);
    let mut owner = Browser::login(&app, "Ann", "correct horse").await;
    let mut bob = Browser::login(&app, "Bob", "4321").await;
    let mut cat_browser = Browser::login(&app, "Cat", "8765").await;
    let (bobs, bobs_events) = bob.running_reply(&app).await;
    let (_, mut cats_events) = cat_browser.running_reply(&app).await;

    let r = owner
        .send(&app, "DELETE", &format!("/api/people/{}", cat.id), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    // Cat's conversations are gone, and so is the reply that was writing into one.
    assert_eq!(cats_events.until_done().await, "stopped");
    assert_still_writing(&app, &bob, bobs).await;
    stop_and_check_kept(&app, &mut bob, bobs, bobs_events).await;
}
