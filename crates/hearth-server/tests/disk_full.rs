//! A full disk while a reply streams: none of the text the page was shown may be lost, and a
//! reply reads as finished only once all of it is stored. The disk fills for real: SQLite may
//! not grow the database (its own `max_page_count` limit, the error a full disk gives), and the
//! page that messages are written to is filled first, so the reply soon needs room it cannot
//! have. Through `Router::oneshot` on the real SmolLM2 model.

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::Router;
use common::{app, household, Browser, Events};
use hearth_store::{Message, MessageRole, Status, Store};
use serde_json::json;

/// Bytes left for the question and the start of the reply once the disk is full.
const ROOM: usize = 300;
/// How far the stored reply must fall behind what the page was shown before the disk is freed:
/// more than one half-second batch of text, so writes have surely been refused.
const BEHIND: usize = 300;

/// Fills the disk: SQLite may not grow the file any more, and the page new messages go to is
/// filled up to `ROOM` bytes (with a long message in a conversation of `user`'s own).
fn fill_the_disk(store: &Store, user: i64) {
    let c = store
        .create_conversation(user, Some("notes"))
        .expect("chat");
    let notes = store
        .add_message(user, c.id, MessageRole::User, "", Status::Complete)
        .expect("message");
    store.set_disk_full_for_tests(true).expect("full");
    let mut text = String::new();
    for size in [1000, 100, 10, 1] {
        let piece = "n".repeat(size);
        while store.append_to_message(notes.id, &piece).is_ok() {
            text.push_str(&piece);
        }
    }
    assert!(text.len() > ROOM, "the page was full already");
    text.truncate(text.len() - ROOM);
    store
        .set_message_content(user, notes.id, &text)
        .expect("room made");
}

/// The reply as stored.
fn stored_reply(store: &Store, user: i64, conv: i64) -> Message {
    let c = store.conversation(user, conv).expect("read").expect("chat");
    assert_eq!(c.messages.len(), 2, "a question and its reply");
    c.messages[1].clone()
}

/// Bob asks something with a long answer while the disk is full; returns the conversation and
/// its events once the page has been shown text the database did not take.
async fn reply_behind_a_full_disk(
    app: &Router,
    store: &Store,
    bob: &mut Browser,
    bob_id: i64,
) -> (i64, Events) {
    let c = bob
        .send(app, "POST", "/api/conversations", Some(json!({})))
        .await;
    assert_eq!(c.status, StatusCode::OK, "{}", c.text());
    let id = c.json()["id"].as_i64().expect("id");
    fill_the_disk(store, bob_id);
    let r = bob
        .send(
            app,
            "POST",
            &format!("/api/conversations/{id}/messages"),
            Some(json!({"content": "Tell me a long story about a dragon who loves to bake."})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let mut events = bob.events(app, id).await;
    loop {
        match events.next().await {
            Some((name, data)) if name == "done" => {
                panic!("the reply ended ({data}) before the full disk held it back")
            }
            Some(_) => {}
            None => panic!("the event stream ended"),
        }
        let stored = stored_reply(store, bob_id, id);
        assert_eq!(stored.status, Status::Streaming);
        if events.text.len() >= stored.content.len() + BEHIND {
            return (id, events);
        }
    }
}

#[tokio::test]
async fn brief_disk_full_loses_no_reply_text() {
    let store = Arc::new(Store::open_in_memory().expect("store"));
    let (_, bob_user, _) = household(&store);
    let app = app(store.clone(), 320);
    let mut bob = Browser::login(&app, "Bob", "4321").await;
    let (id, mut events) = reply_behind_a_full_disk(&app, &store, &mut bob, bob_user.id).await;

    // The disk frees up while the reply is still being written.
    store.set_disk_full_for_tests(false).expect("freed");
    // This server's model never ends a reply itself: it runs to the end of the context, which
    // the page says it ran out of room (all of it written and stored).
    assert_eq!(events.until_done().await, "out_of_room");
    let stored = stored_reply(&store, bob_user.id, id);
    assert_eq!(stored.status, Status::OutOfRoom);
    assert_eq!(
        stored.content.len(),
        events.text.len(),
        "stored and shown lengths differ"
    );
    assert_eq!(stored.content, events.text);
}

#[tokio::test]
async fn a_reply_stopped_on_a_full_disk_is_not_marked_stopped_until_all_of_it_is_stored() {
    let store = Arc::new(Store::open_in_memory().expect("store"));
    let (_, bob_user, _) = household(&store);
    let app = app(store.clone(), 320);
    let mut bob = Browser::login(&app, "Bob", "4321").await;
    let (id, mut events) = reply_behind_a_full_disk(&app, &store, &mut bob, bob_user.id).await;

    let r = bob
        .send(&app, "POST", &format!("/api/conversations/{id}/stop"), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    // The reply has ended, but part of it is only in memory: it is not "stopped" yet, it is
    // still being saved, and the page still sees it as running.
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            stored_reply(&store, bob_user.id, id).status,
            Status::Streaming
        );
        let conv = bob
            .send(&app, "GET", &format!("/api/conversations/{id}"), None)
            .await
            .json();
        assert_eq!(conv["running"], true);
    }

    store.set_disk_full_for_tests(false).expect("freed");
    assert_eq!(events.until_done().await, "stopped");
    let stored = stored_reply(&store, bob_user.id, id);
    assert_eq!(stored.status, Status::Stopped);
    assert_eq!(stored.content, events.text);
}
