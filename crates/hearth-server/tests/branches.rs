//! Branches of a conversation: editing any earlier message and trying another answer keep what
//! was there, and the model, the list, search and the keeper read only the branch in view.
//! Through `Router::oneshot` on the real SmolLM2 model (greedy) with an in-memory store.

mod common;

use std::sync::Arc;

use axum::http::StatusCode;
use axum::Router;
use common::{app, app_with, household, Browser, Opts};
use hearth_store::Store;
use serde_json::{json, Value};

async fn get(app: &Router, b: &mut Browser, id: i64) -> Value {
    let r = b
        .send(app, "GET", &format!("/api/conversations/{id}"), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    r.json()
}

/// Posts to one of conversation `id`'s routes and waits for the reply it starts.
async fn reply_to(app: &Router, b: &mut Browser, id: i64, route: &str, body: Option<Value>) {
    let r = b
        .send(
            app,
            "POST",
            &format!("/api/conversations/{id}/{route}"),
            body,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{route}: {}", r.text());
    b.events(app, id).await.until_done().await;
}

fn ids(c: &Value) -> Vec<i64> {
    c["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["id"].as_i64().expect("id"))
        .collect()
}

fn texts(c: &Value) -> Vec<String> {
    c["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["content"].as_str().expect("text").to_string())
        .collect()
}

/// The versions of message `id` the conversation offers ("2 of 3"), empty when it has one.
fn versions(c: &Value, id: i64) -> Vec<i64> {
    c["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .find(|v| v["message"] == id)
        .map(|v| {
            v["ids"]
                .as_array()
                .expect("ids")
                .iter()
                .map(|i| i.as_i64().expect("id"))
                .collect()
        })
        .unwrap_or_default()
}

async fn switch(app: &Router, b: &mut Browser, id: i64, message: i64) -> (StatusCode, Value) {
    let r = b
        .send(
            app,
            "POST",
            &format!("/api/conversations/{id}/branch"),
            Some(json!({ "message_id": message })),
        )
        .await;
    let v = if r.status == StatusCode::OK {
        r.json()
    } else {
        json!(r.text())
    };
    (r.status, v)
}

async fn listed(app: &Router, b: &mut Browser, query: &str) -> Vec<Value> {
    let r = b
        .send(app, "GET", &format!("/api/conversations{query}"), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    r.json().as_array().expect("list").clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_and_another_answer_keep_the_old_branch_and_the_model_reads_only_the_one_in_view() {
    let store = Arc::new(Store::open_in_memory().expect("store"));
    household(&store);
    let app = app_with(
        store.clone(),
        Opts {
            reply_tokens: 8,
            ..Opts::default()
        },
    );
    let mut bob = Browser::login(&app, "Bob", "4321").await;
    let id = bob
        .send(&app, "POST", "/api/conversations", Some(json!({})))
        .await
        .json()["id"]
        .as_i64()
        .expect("id");
    reply_to(
        &app,
        &mut bob,
        id,
        "messages",
        Some(json!({"content": "Tell me about the moon."})),
    )
    .await;
    reply_to(
        &app,
        &mut bob,
        id,
        "messages",
        Some(json!({"content": "And about the sea?"})),
    )
    .await;
    let first = get(&app, &mut bob, id).await;
    let old = ids(&first);
    assert_eq!(old.len(), 4, "{first}");
    assert!(versions(&first, old[0]).is_empty(), "{first}");

    // The first message, not the last, is edited: a new branch starts after it.
    reply_to(
        &app,
        &mut bob,
        id,
        "edit",
        Some(json!({"content": "Tell me about volcanoes.", "message_id": old[0]})),
    )
    .await;
    let edited = get(&app, &mut bob, id).await;
    let new = ids(&edited);
    assert_eq!(new.len(), 2, "{edited}");
    assert_eq!(texts(&edited)[0], "Tell me about volcanoes.");
    assert!(!old.contains(&new[0]) && !old.contains(&new[1]), "{edited}");
    assert_eq!(versions(&edited, new[0]), vec![old[0], new[0]], "{edited}");
    assert_eq!(
        listed(&app, &mut bob, "?q=volcanoes").await.len(),
        1,
        "search reads the branch in view"
    );
    assert!(listed(&app, &mut bob, "?q=sea").await.is_empty());

    // Back to the first version: its whole continuation is there, as it was.
    let (status, back) = switch(&app, &mut bob, id, old[0]).await;
    assert_eq!(status, StatusCode::OK, "{back}");
    assert_eq!(ids(&back), old, "{back}");
    assert_eq!(texts(&back), texts(&first));
    assert_eq!(versions(&back, old[0]), vec![old[0], new[0]], "{back}");
    assert!(listed(&app, &mut bob, "?q=volcanoes").await.is_empty());
    assert_eq!(listed(&app, &mut bob, "?q=sea").await.len(), 1);

    // Another answer keeps the first one. The model read only this branch: greedy, the same
    // prompt gives the same words (the other branch's messages would change them).
    reply_to(&app, &mut bob, id, "regenerate", None).await;
    let again = get(&app, &mut bob, id).await;
    let now = ids(&again);
    assert_eq!(now[..3], old[..3], "{again}");
    assert_ne!(now[3], old[3]);
    assert_eq!(versions(&again, now[3]), vec![old[3], now[3]], "{again}");
    assert_eq!(texts(&again)[3], texts(&first)[3], "{again}");
    let list = listed(&app, &mut bob, "").await;
    assert_eq!(list[0]["id"], id);
    assert!(!list[0]["preview"]
        .as_str()
        .expect("preview")
        .contains("volcanoes"));

    // The earlier answer is one switch away; the newest branch below a version is the one shown.
    let (status, earlier) = switch(&app, &mut bob, id, old[3]).await;
    assert_eq!(status, StatusCode::OK, "{earlier}");
    assert_eq!(ids(&earlier), old);
    let (_, edited_again) = switch(&app, &mut bob, id, new[0]).await;
    assert_eq!(ids(&edited_again), new);

    // Another reply on the edited branch goes after it, not after the other branch.
    reply_to(
        &app,
        &mut bob,
        id,
        "messages",
        Some(json!({"content": "Which is the biggest?"})),
    )
    .await;
    let longer = get(&app, &mut bob, id).await;
    assert_eq!(ids(&longer)[..2], new[..], "{longer}");
    assert_eq!(longer["messages"][2]["parent_id"], new[1], "{longer}");

    // Only a message of this branch, and only the person's own, can be edited.
    for (message, why) in [(old[0], "not in view"), (new[1], "a reply")] {
        let r = bob
            .send(
                &app,
                "POST",
                &format!("/api/conversations/{id}/edit"),
                Some(json!({"content": "x", "message_id": message})),
            )
            .await;
        assert!(
            r.status.is_client_error(),
            "{why}: {} {}",
            r.status,
            r.text()
        );
    }
    assert_eq!(ids(&get(&app, &mut bob, id).await), ids(&longer));

    // Another person can neither switch Bob's branches nor reach them through their own chat.
    let mut cat = Browser::login(&app, "Cat", "8765").await;
    let (status, _) = switch(&app, &mut cat, id, old[0]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let cats = cat
        .send(&app, "POST", "/api/conversations", Some(json!({})))
        .await
        .json()["id"]
        .as_i64()
        .expect("id");
    let (status, _) = switch(&app, &mut cat, cats, old[0]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let r = cat
        .send(
            &app,
            "POST",
            &format!("/api/conversations/{cats}/edit"),
            Some(json!({"content": "mine now", "message_id": old[0]})),
        )
        .await;
    assert!(r.status.is_client_error(), "{}", r.text());
    assert_eq!(ids(&get(&app, &mut bob, id).await), ids(&longer));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_branch_does_not_change_under_a_running_reply() {
    let store = Arc::new(Store::open_in_memory().expect("store"));
    household(&store);
    let app = app(store.clone(), 1024);
    let mut bob = Browser::login(&app, "Bob", "4321").await;
    let (id, mut events) = bob.running_reply(&app).await;
    let c = get(&app, &mut bob, id).await;
    let first = ids(&c)[0];
    let (status, _) = switch(&app, &mut bob, id, first).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let r = bob
        .send(
            &app,
            "POST",
            &format!("/api/conversations/{id}/edit"),
            Some(json!({"content": "Something else", "message_id": first})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text());
    bob.send(&app, "POST", &format!("/api/conversations/{id}/stop"), None)
        .await;
    assert_eq!(events.until_done().await, "stopped");
    assert_eq!(ids(&get(&app, &mut bob, id).await), ids(&c));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_childs_edits_are_checked_and_the_keeper_reads_the_branch_in_view() {
    let store = Arc::new(Store::open_in_memory().expect("store"));
    household(&store);
    let app = app_with(
        store.clone(),
        Opts {
            ends: true,
            reply_tokens: 16,
            embeddings: true,
            ..Opts::default()
        },
    );
    let mut ann = Browser::login(&app, "Ann", "correct horse").await;
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
    let r = ann
        .send(
            &app,
            "PUT",
            &format!("/api/people/{leo}/limits"),
            Some(json!({"prompt": null, "hours": null, "topics": ["horror films"], "keeper_sees": true})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let mut kid = Browser::login(&app, "Leo", "2468").await;
    let id = kid
        .send(&app, "POST", "/api/conversations", Some(json!({})))
        .await
        .json()["id"]
        .as_i64()
        .expect("id");
    reply_to(
        &app,
        &mut kid,
        id,
        "messages",
        Some(json!({"content": "How do bees make honey?"})),
    )
    .await;
    reply_to(
        &app,
        &mut kid,
        id,
        "messages",
        Some(json!({"content": "Why is the sky blue?"})),
    )
    .await;
    let before = get(&app, &mut kid, id).await;
    let old = ids(&before);

    // An edit onto the keeper's topic is refused like a new message would be: nothing stored.
    let r = kid
        .send(
            &app,
            "POST",
            &format!("/api/conversations/{id}/edit"),
            Some(
                json!({"content": "Can you recommend a really scary zombie movie to watch tonight?",
                        "message_id": old[0]}),
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert!(r.text().contains("steered"), "{}", r.text());
    let same = get(&app, &mut kid, id).await;
    assert_eq!(ids(&same), old);
    assert!(versions(&same, old[0]).is_empty(), "{same}");

    reply_to(
        &app,
        &mut kid,
        id,
        "edit",
        Some(json!({"content": "How do ants build their nests?", "message_id": old[0]})),
    )
    .await;
    let edited = get(&app, &mut kid, id).await;
    assert_eq!(edited["messages"].as_array().map(Vec::len), Some(2));

    // The keeper reads the branch the child has in view, and the list's preview is its end.
    let r = ann
        .send(
            &app,
            "GET",
            &format!("/api/people/{leo}/conversations/{id}"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(ids(&r.json()), ids(&edited));
    // ...and what the child edited away, which is out of their view but not gone.
    let others: Vec<i64> = r.json()["other_versions"]
        .as_array()
        .expect("other versions")
        .iter()
        .map(|m| m["id"].as_i64().expect("id"))
        .collect();
    assert!(old.iter().all(|id| others.contains(id)), "{}", r.text());
    let r = ann
        .send(
            &app,
            "GET",
            &format!("/api/people/{leo}/conversations"),
            None,
        )
        .await;
    let list = r.json();
    let preview = list[0]["preview"].as_str().expect("preview");
    assert!(!preview.contains("sky"), "{list}");
    // The keeper cannot switch the child's branches: only the child can.
    let (status, _) = switch(&app, &mut ann, id, old[0]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// Two windows on one chat: what one window asks is answered only if the chat still ends where
/// that window saw it end; otherwise 409, nothing stored, and the window reloads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_that_saw_an_older_branch_is_told_the_chat_changed() {
    let store = Arc::new(Store::open_in_memory().expect("store"));
    household(&store);
    let app = app_with(
        store.clone(),
        Opts {
            reply_tokens: 4,
            ..Opts::default()
        },
    );
    let mut bob = Browser::login(&app, "Bob", "4321").await;
    let id = bob
        .send(&app, "POST", "/api/conversations", Some(json!({})))
        .await
        .json()["id"]
        .as_i64()
        .expect("id");
    // An empty chat is seen as 0.
    reply_to(
        &app,
        &mut bob,
        id,
        "messages",
        Some(json!({"content": "Hello.", "last_seen": 0})),
    )
    .await;
    let seen = get(&app, &mut bob, id).await;
    let last = *ids(&seen).last().expect("a reply");
    // The phone moves on: another answer.
    reply_to(
        &app,
        &mut bob,
        id,
        "regenerate",
        Some(json!({"last_seen": last})),
    )
    .await;
    let now = get(&app, &mut bob, id).await;
    assert_ne!(ids(&now).last(), Some(&last));
    // The laptop still shows the first answer: its send, another answer and Continue are
    // refused, and nothing is stored.
    for (route, body) in [
        (
            "messages",
            json!({"content": "And then?", "last_seen": last}),
        ),
        ("regenerate", json!({"last_seen": last})),
        ("continue", json!({"last_seen": last})),
    ] {
        let r = bob
            .send(
                &app,
                "POST",
                &format!("/api/conversations/{id}/{route}"),
                Some(body),
            )
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{route}: {}", r.text());
        assert_eq!(
            r.json()["error"]["code"],
            "changed",
            "{route}: {}",
            r.text()
        );
    }
    let after = get(&app, &mut bob, id).await;
    assert_eq!(ids(&after), ids(&now));
    assert_eq!(
        after["other_versions"].as_array().map(Vec::len),
        Some(1),
        "only the first answer is off the branch: {after}"
    );
    // A client that does not say what it saw acts on the branch in view, as before.
    reply_to(
        &app,
        &mut bob,
        id,
        "messages",
        Some(json!({"content": "And then?"})),
    )
    .await;
}
