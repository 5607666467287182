//! The assistant that does things (issue 20), on the real SmolLM2 through `Router::oneshot`: a
//! visible action forces a tool call by grammar, Hearth runs the tool, feeds its result back and
//! the model answers; a tool that writes waits for the person; a child has no tools until the
//! keeper turns some on; every call is in the keeper's audit log.

mod common;

use std::sync::Arc;

use axum::http::StatusCode;
use axum::Router;
use common::{app_with, household, Browser, Events, Opts};
use hearth_store::Store;
use serde_json::{json, Value};

fn server() -> (Router, Arc<Store>) {
    let store = Arc::new(Store::open_in_memory().expect("store"));
    household(&store);
    let app = app_with(
        store.clone(),
        Opts {
            ctx: 2048,
            ends: true,
            reply_tokens: 32,
            embeddings: false,
        },
    );
    (app, store)
}

/// A new chat with one question answered; returns its id and the reply's id.
async fn answered_chat(app: &Router, b: &mut Browser) -> (i64, i64) {
    let c = b
        .send(app, "POST", "/api/conversations", Some(json!({})))
        .await;
    assert_eq!(c.status, StatusCode::OK, "{}", c.text());
    let id = c.json()["id"].as_i64().expect("id");
    let r = b
        .send(
            app,
            "POST",
            &format!("/api/conversations/{id}/messages"),
            Some(json!({"content": "Name three fruits."})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let reply = r.json()["assistant"]["id"].as_i64().expect("reply id");
    b.events(app, id).await.until_done().await;
    (id, reply)
}

/// Reads events until a step with `outcome`; returns it.
async fn until_step(events: &mut Events, outcome: &str) -> Value {
    let mut errors = Vec::new();
    loop {
        match events.next().await {
            Some((name, data)) if name == "step" && data["outcome"] == outcome => return data,
            Some((name, data)) if name == "error" => errors.push(data),
            Some((name, data)) if name == "done" => {
                panic!("the reply ended before a step was {outcome}: {data} {errors:?}")
            }
            Some(_) => {}
            None => panic!("the event stream ended before a step was {outcome}"),
        }
    }
}

async fn get(app: &Router, b: &mut Browser, path: &str) -> Value {
    let r = b.send(app, "GET", path, None).await;
    assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text());
    r.json()
}

#[tokio::test]
async fn a_forced_tool_runs_its_result_goes_back_and_the_model_answers() {
    let (app, _store) = server();
    let mut ann = Browser::login(&app, "Ann", "correct horse").await;
    let r = ann
        .send(
            &app,
            "POST",
            "/api/notes",
            Some(json!({"title": "Grocery list", "content": "milk", "kind": "list"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let (id, _) = answered_chat(&app, &mut ann).await;
    let r = ann
        .send(
            &app,
            "POST",
            &format!("/api/conversations/{id}/tool"),
            Some(json!({"tool": "list_notes", "content": "Which notes do I have?"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let reply = r.json()["assistant"]["id"].as_i64().expect("reply");
    let mut events = ann.events(&app, id).await;
    let step = until_step(&mut events, "done").await;
    assert_eq!(step["tool"], "list_notes");
    assert_eq!(step["message_id"], reply);
    assert!(
        step["result"].as_str().unwrap().contains("Grocery list"),
        "{step}"
    );
    // Reading is not asked about: it ran without waiting. (A reply this short may end at
    // the longest a reply may be.)
    let status = events.until_done().await;
    assert!(status == "complete" || status == "cut_short", "{status}");
    let c = get(&app, &mut ann, &format!("/api/conversations/{id}")).await;
    let last = c["messages"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["id"], reply);
    assert!(
        !last["content"].as_str().unwrap().trim().is_empty(),
        "the model answered after the tool: {last}"
    );
    // One action, one call (the grammar would let the model repeat it).
    let steps = c["tool_steps"].as_array().unwrap();
    assert_eq!(steps.len(), 1, "{c}");
    assert!(steps[0]["ms"].is_i64(), "{c}");
    let audit = get(&app, &mut ann, "/api/audit").await;
    assert_eq!(audit[0]["tool"], "list_notes");
    assert_eq!(audit[0]["person"], "Ann");
    assert_eq!(audit[0]["outcome"], "done");
}

#[tokio::test]
async fn a_write_waits_for_approval_and_a_denial_is_reported() {
    let (app, _store) = server();
    let mut ann = Browser::login(&app, "Ann", "correct horse").await;
    let mut bob = Browser::login(&app, "Bob", "4321").await;
    let (id, answer) = answered_chat(&app, &mut ann).await;
    let save =
        json!({"tool": "create_note", "message_id": answer, "content": "Save this as a note."});

    // Denied: nothing is written, and the step says so.
    let r = ann
        .send(
            &app,
            "POST",
            &format!("/api/conversations/{id}/tool"),
            Some(save.clone()),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let mut events = ann.events(&app, id).await;
    let step = until_step(&mut events, "waiting").await;
    let sid = step["id"].as_i64().unwrap();
    assert_eq!(get(&app, &mut ann, "/api/notes").await, json!([]));
    // Someone else cannot answer for Ann (her chat is not theirs).
    let r = bob
        .send(
            &app,
            "POST",
            &format!("/api/conversations/{id}/steps/{sid}"),
            Some(json!({"decision": "once"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text());
    let r = ann
        .send(
            &app,
            "POST",
            &format!("/api/conversations/{id}/steps/{sid}"),
            Some(json!({"decision": "deny"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let step = until_step(&mut events, "denied").await;
    assert!(
        step["result"].as_str().unwrap().contains("denied"),
        "{step}"
    );
    events.until_done().await;
    assert_eq!(get(&app, &mut ann, "/api/notes").await, json!([]));

    // Approved once: the note holds the message word for word.
    let (id2, answer2) = answered_chat(&app, &mut ann).await;
    let text2 = get(&app, &mut ann, &format!("/api/conversations/{id2}")).await["messages"][1]
        ["content"]
        .as_str()
        .unwrap()
        .to_string();
    let save2 =
        json!({"tool": "create_note", "message_id": answer2, "content": "Save this as a note."});
    let r = ann
        .send(
            &app,
            "POST",
            &format!("/api/conversations/{id2}/tool"),
            Some(save2.clone()),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let mut events = ann.events(&app, id2).await;
    let sid = until_step(&mut events, "waiting").await["id"]
        .as_i64()
        .unwrap();
    let r = ann
        .send(
            &app,
            "POST",
            &format!("/api/conversations/{id2}/steps/{sid}"),
            Some(json!({"decision": "always"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    until_step(&mut events, "done").await;
    events.until_done().await;
    let notes = get(&app, &mut ann, "/api/notes").await;
    assert_eq!(notes.as_array().unwrap().len(), 1, "{notes}");
    assert_eq!(notes[0]["content"], text2);
    assert!(!notes[0]["title"].as_str().unwrap().trim().is_empty());
    // Bob sees none of Ann's notes.
    assert_eq!(get(&app, &mut bob, "/api/notes").await, json!([]));

    // "Always for this chat": the next save there runs without asking.
    let r = ann
        .send(
            &app,
            "POST",
            &format!("/api/conversations/{id2}/tool"),
            Some(save2),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let mut events = ann.events(&app, id2).await;
    loop {
        match events.next().await {
            Some((name, data)) if name == "step" => {
                assert_ne!(data["outcome"], "waiting", "allowed for the chat: {data}");
                if data["outcome"] == "done" {
                    break;
                }
            }
            Some((name, _)) if name == "done" => panic!("the reply ended without its step"),
            Some(_) => {}
            None => panic!("the stream ended"),
        }
    }
    events.until_done().await;
    assert_eq!(
        get(&app, &mut ann, "/api/notes")
            .await
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // The keeper's audit log has each call and how it ended; others cannot read it.
    let audit = get(&app, &mut ann, "/api/audit").await;
    let outcomes: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["tool"] == "create_note")
        .map(|a| a["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["done", "done", "denied"], "{audit}");
    let r = bob.send(&app, "GET", "/api/audit", None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_child_has_no_tools_until_the_keeper_turns_them_on() {
    let (app, _store) = server();
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
    let leo_id = r.json()["id"].as_i64().unwrap();
    let mut leo = Browser::login(&app, "Leo", "2468").await;
    assert_eq!(get(&app, &mut leo, "/api/tools").await, json!([]));
    let c = leo
        .send(&app, "POST", "/api/conversations", Some(json!({})))
        .await;
    let id = c.json()["id"].as_i64().unwrap();
    let ask = json!({"tool": "calculator", "content": "What is 6 times 7?"});
    let r = leo
        .send(
            &app,
            "POST",
            &format!("/api/conversations/{id}/tool"),
            Some(ask.clone()),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "not_allowed", "{}", r.text());
    // Nothing was stored or started.
    let conv = get(&app, &mut leo, &format!("/api/conversations/{id}")).await;
    assert_eq!(conv["messages"], json!([]));
    assert_eq!(conv["tool_steps"], json!([]));

    // Only the keeper sets a person's tools.
    let mut bob = Browser::login(&app, "Bob", "4321").await;
    let r = bob
        .send(
            &app,
            "PUT",
            &format!("/api/people/{leo_id}/tools"),
            Some(json!({"tools": ["calculator"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = ann
        .send(
            &app,
            "PUT",
            &format!("/api/people/{leo_id}/tools"),
            Some(json!({"tools": ["calculator"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let tools = get(&app, &mut leo, "/api/tools").await;
    let names: Vec<&str> = tools
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["calculator"]);
    // Another tool stays off.
    let r = leo
        .send(
            &app,
            "POST",
            &format!("/api/conversations/{id}/tool"),
            Some(json!({"tool": "list_notes", "content": "My notes?"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    let audit = get(&app, &mut ann, "/api/audit").await;
    assert!(audit
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["person"] == "Leo" && a["outcome"] == "not_allowed"));
}
