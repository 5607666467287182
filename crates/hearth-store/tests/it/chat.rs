//! Conversations, messages, privacy between people, search and export.

use std::sync::Arc;

use hearth_store::{Error, MessageRole, Status, Store};

use crate::{household, TestClock};

fn not_found<T: std::fmt::Debug>(r: Result<T, Error>) {
    assert!(matches!(r, Err(Error::NotFound { .. })), "{r:?}");
}

#[test]
fn one_person_cannot_touch_anothers_conversation() {
    let (store, ana, ben) = household();
    let bens = store
        .create_conversation(ben.id, Some("Ben's secret"))
        .unwrap();
    let msg = store
        .add_message(
            ben.id,
            bens.id,
            MessageRole::User,
            "my diary",
            Status::Complete,
        )
        .unwrap();

    assert_eq!(store.conversation(ana.id, bens.id).unwrap(), None);
    assert!(!store.has_conversation(ana.id, bens.id).unwrap());
    assert!(store.has_conversation(ben.id, bens.id).unwrap());
    assert!(!store.has_conversation(ben.id, bens.id + 1000).unwrap());
    assert_eq!(store.conversation_summary(ana.id, bens.id).unwrap(), None);
    not_found(store.rename_conversation(ana.id, bens.id, "mine now"));
    not_found(store.delete_conversation(ana.id, bens.id));
    not_found(store.add_message(ana.id, bens.id, MessageRole::User, "hi", Status::Complete));
    not_found(store.set_message_content(ana.id, msg.id, "edited"));
    not_found(store.delete_messages_from(ana.id, bens.id, msg.id));
    assert!(store.conversations(ana.id, None).unwrap().is_empty());
    assert!(store
        .conversations(ana.id, Some("diary"))
        .unwrap()
        .is_empty());
    assert!(!store.export_json(ana.id).unwrap().contains("diary"));
    assert!(!store.export_markdown(ana.id).unwrap().contains("diary"));
    store.delete_all_conversations(ana.id).unwrap();

    // Nothing of Ben's changed.
    let still = store.conversation(ben.id, bens.id).unwrap().unwrap();
    assert_eq!(still.title.as_deref(), Some("Ben's secret"));
    assert_eq!(still.messages, vec![msg]);
}

#[test]
fn a_streamed_reply_is_written_as_it_grows() {
    let (store, ana, _) = household();
    let c = store.create_conversation(ana.id, None).unwrap();
    assert_eq!(c.title, None);
    let q = store
        .add_message(
            ana.id,
            c.id,
            MessageRole::User,
            "Why is the sky blue?",
            Status::Complete,
        )
        .unwrap();
    let a = store
        .add_message(ana.id, c.id, MessageRole::Assistant, "", Status::Streaming)
        .unwrap();
    for part in ["Rayleigh", " scattering", "."] {
        store.append_to_message(a.id, part).unwrap();
    }
    store.set_message_status(a.id, Status::Complete).unwrap();
    let conv = store.conversation(ana.id, c.id).unwrap().unwrap();
    let got: Vec<_> = conv
        .messages
        .iter()
        .map(|m| (m.id, m.role, m.content.as_str(), m.status))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                q.id,
                MessageRole::User,
                "Why is the sky blue?",
                Status::Complete
            ),
            (
                a.id,
                MessageRole::Assistant,
                "Rayleigh scattering.",
                Status::Complete
            ),
        ]
    );
    not_found(store.append_to_message(12345, "x"));
    not_found(store.set_message_status(12345, Status::Failed));
}

#[test]
fn a_full_disk_never_finishes_a_reply_without_its_text() {
    let (store, ana, _) = household();
    let c = store.create_conversation(ana.id, None).unwrap();
    let a = store
        .add_message(ana.id, c.id, MessageRole::Assistant, "", Status::Streaming)
        .unwrap();
    store.set_disk_full_for_tests(true).unwrap();
    // The reply grows until it needs a page the full disk does not have.
    let chunk = "x".repeat(100);
    let mut stored = String::new();
    let err = loop {
        match store.append_to_message(a.id, &chunk) {
            Ok(()) => stored.push_str(&chunk),
            Err(e) => break e,
        }
        assert!(stored.len() < 1 << 20, "the disk never filled up");
    };
    assert!(err.to_string().contains("full"), "{err}");
    // The last text and the end come together or not at all.
    let err = store
        .finish_message(a.id, &chunk, Status::Complete)
        .unwrap_err();
    assert!(err.to_string().contains("full"), "{err}");
    let reply = |s: &Store| s.conversation(ana.id, c.id).unwrap().unwrap().messages[0].clone();
    assert_eq!(reply(&store).content, stored);
    assert_eq!(reply(&store).status, Status::Streaming);

    store.set_disk_full_for_tests(false).unwrap();
    store
        .finish_message(a.id, &chunk, Status::Complete)
        .unwrap();
    stored.push_str(&chunk);
    assert_eq!(reply(&store).content, stored);
    assert_eq!(reply(&store).status, Status::Complete);
    not_found(store.finish_message(12345, "x", Status::Complete));
}

#[test]
fn edit_and_regenerate_cut_the_tail() {
    let (store, ana, _) = household();
    let c = store.create_conversation(ana.id, None).unwrap();
    let other = store.create_conversation(ana.id, None).unwrap();
    let ids: Vec<i64> = ["one", "two", "three", "four"]
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let role = if i % 2 == 0 {
                MessageRole::User
            } else {
                MessageRole::Assistant
            };
            store
                .add_message(ana.id, c.id, role, text, Status::Complete)
                .unwrap()
                .id
        })
        .collect();
    let elsewhere = store
        .add_message(
            ana.id,
            other.id,
            MessageRole::User,
            "keep",
            Status::Complete,
        )
        .unwrap();
    // A message of another conversation is not a cut point here.
    not_found(store.delete_messages_from(ana.id, c.id, elsewhere.id));
    store.set_message_content(ana.id, ids[2], "THREE").unwrap();
    store.delete_messages_from(ana.id, c.id, ids[3]).unwrap();
    let left: Vec<_> = store
        .conversation(ana.id, c.id)
        .unwrap()
        .unwrap()
        .messages
        .into_iter()
        .map(|m| m.content)
        .collect();
    assert_eq!(left, ["one", "two", "THREE"]);
    store.delete_messages_from(ana.id, c.id, ids[1]).unwrap();
    assert_eq!(
        store
            .conversation(ana.id, c.id)
            .unwrap()
            .unwrap()
            .messages
            .len(),
        1
    );
    assert_eq!(
        store
            .conversation(ana.id, other.id)
            .unwrap()
            .unwrap()
            .messages
            .len(),
        1
    );
}

#[test]
fn list_is_newest_first_with_previews() {
    let clock = TestClock::new(1_800_000_000);
    let (store, ana, _) = household();
    let store = clock.install(store);
    let first = store.create_conversation(ana.id, Some("first")).unwrap();
    let second = store.create_conversation(ana.id, Some("second")).unwrap();
    let order = |s: &Store| -> Vec<i64> {
        s.conversations(ana.id, None)
            .unwrap()
            .iter()
            .map(|c| c.id)
            .collect()
    };
    assert_eq!(order(&store), [second.id, first.id]);
    // Same second, yet the conversation just written to moves to the top.
    store
        .add_message(
            ana.id,
            first.id,
            MessageRole::User,
            "hello\nthere  friend",
            Status::Complete,
        )
        .unwrap();
    assert_eq!(order(&store), [first.id, second.id]);
    clock.advance(10);
    store
        .add_message(
            ana.id,
            second.id,
            MessageRole::User,
            "later",
            Status::Complete,
        )
        .unwrap();
    let list = store.conversations(ana.id, None).unwrap();
    assert_eq!(list[0].id, second.id);
    assert_eq!(list[0].updated, 1_800_000_010);
    assert_eq!(list[0].created, 1_800_000_000);
    assert_eq!(list[1].preview, "hello there friend");
    // Renaming does not reorder.
    store
        .rename_conversation(ana.id, first.id, " Greetings ")
        .unwrap();
    let list = store.conversations(ana.id, None).unwrap();
    assert_eq!(list[1].title.as_deref(), Some("Greetings"));
    assert_eq!(
        store
            .conversation_summary(ana.id, first.id)
            .unwrap()
            .as_ref(),
        Some(&list[1])
    );
    assert_eq!(list[0].id, second.id);
    for bad in ["", "  ", &"t".repeat(201)] {
        let r = store.rename_conversation(ana.id, first.id, bad);
        assert!(matches!(r, Err(Error::Invalid { .. })), "{r:?}");
    }
}

#[test]
fn search_finds_titles_and_message_text() {
    let (store, ana, _) = household();
    let bread = store
        .create_conversation(ana.id, Some("Sourdough bread"))
        .unwrap();
    let trip = store
        .create_conversation(ana.id, Some("Trip to Lyon"))
        .unwrap();
    let untitled = store.create_conversation(ana.id, None).unwrap();
    store
        .add_message(
            ana.id,
            trip.id,
            MessageRole::User,
            "Where to buy an ÉCLAIR?",
            Status::Complete,
        )
        .unwrap();
    store
        .add_message(
            ana.id,
            untitled.id,
            MessageRole::Assistant,
            "100% sure: use_snake_case",
            Status::Complete,
        )
        .unwrap();
    let ids = |q: &str| -> Vec<i64> {
        store
            .conversations(ana.id, Some(q))
            .unwrap()
            .iter()
            .map(|c| c.id)
            .collect()
    };
    assert_eq!(ids("sourdough"), [bread.id]);
    assert_eq!(ids("BREAD"), [bread.id]);
    assert_eq!(ids("éclair"), [trip.id], "Unicode case folding");
    assert_eq!(ids("lyon"), [trip.id]);
    assert!(ids("croissant").is_empty());
    // LIKE's wildcards are plain characters here.
    assert_eq!(ids("100%"), [untitled.id]);
    assert!(ids("%").len() == 1 && ids("_").len() == 1);
    assert!(ids("u_e").is_empty());
    // No query, or only spaces, lists everything.
    assert_eq!(ids("  ").len(), 3);
    assert_eq!(store.conversations(ana.id, None).unwrap().len(), 3);
}

#[test]
fn delete_one_and_all() {
    let (store, ana, ben) = household();
    let a1 = store.create_conversation(ana.id, None).unwrap();
    let a2 = store.create_conversation(ana.id, None).unwrap();
    let b1 = store.create_conversation(ben.id, None).unwrap();
    store.delete_conversation(ana.id, a1.id).unwrap();
    assert_eq!(store.conversation(ana.id, a1.id).unwrap(), None);
    not_found(store.delete_conversation(ana.id, a1.id));
    assert!(store.conversation(ana.id, a2.id).unwrap().is_some());
    store.delete_all_conversations(ana.id).unwrap();
    assert!(store.conversations(ana.id, None).unwrap().is_empty());
    assert!(store.conversation(ben.id, b1.id).unwrap().is_some());
}

#[test]
fn streaming_replies_left_by_a_crash_become_interrupted() {
    let (store, ana, ben) = household();
    let ca = store.create_conversation(ana.id, None).unwrap();
    let cb = store.create_conversation(ben.id, None).unwrap();
    let done = store
        .add_message(
            ana.id,
            ca.id,
            MessageRole::Assistant,
            "done",
            Status::Complete,
        )
        .unwrap();
    let stopped = store
        .add_message(
            ana.id,
            ca.id,
            MessageRole::Assistant,
            "sto",
            Status::Stopped,
        )
        .unwrap();
    let a = store
        .add_message(
            ana.id,
            ca.id,
            MessageRole::Assistant,
            "half a rep",
            Status::Streaming,
        )
        .unwrap();
    let b = store
        .add_message(ben.id, cb.id, MessageRole::Assistant, "", Status::Streaming)
        .unwrap();
    assert_eq!(store.mark_streaming_interrupted().unwrap(), 2);
    assert_eq!(store.mark_streaming_interrupted().unwrap(), 0);
    let status = |user: i64, conv: i64, id: i64| {
        store
            .conversation(user, conv)
            .unwrap()
            .unwrap()
            .messages
            .into_iter()
            .find(|m| m.id == id)
            .unwrap()
    };
    let a = status(ana.id, ca.id, a.id);
    assert_eq!(
        (a.status, a.content.as_str()),
        (Status::Interrupted, "half a rep")
    );
    assert_eq!(status(ben.id, cb.id, b.id).status, Status::Interrupted);
    assert_eq!(status(ana.id, ca.id, done.id).status, Status::Complete);
    assert_eq!(status(ana.id, ca.id, stopped.id).status, Status::Stopped);
}

#[test]
fn export_as_json_and_markdown() {
    let clock = TestClock::new(951_827_696); // 2000-02-29 12:34:56 UTC
    let (store, ana, _) = household();
    let store = clock.install(store);
    let c = store.create_conversation(ana.id, Some("Tea")).unwrap();
    store
        .add_message(
            ana.id,
            c.id,
            MessageRole::User,
            "Green or black?",
            Status::Complete,
        )
        .unwrap();
    store
        .add_message(
            ana.id,
            c.id,
            MessageRole::Assistant,
            "Green, at 80 °C",
            Status::Interrupted,
        )
        .unwrap();
    store.create_conversation(ana.id, None).unwrap();

    let json: serde_json::Value =
        serde_json::from_str(&store.export_json(ana.id).unwrap()).unwrap();
    assert_eq!(json["format"], "hearth-conversations");
    assert_eq!(json["version"], 1);
    assert_eq!(json["person"], "Ana");
    assert_eq!(json["household"], "The Hearths");
    let convs = json["conversations"].as_array().unwrap();
    assert_eq!(convs.len(), 2);
    let tea = convs.iter().find(|c| c["title"] == "Tea").unwrap();
    assert_eq!(tea["messages"][0]["role"], "user");
    assert_eq!(tea["messages"][0]["content"], "Green or black?");
    assert_eq!(tea["messages"][1]["role"], "assistant");
    assert_eq!(tea["messages"][1]["status"], "interrupted");
    assert_eq!(tea["messages"][1]["created"], 951_827_696);
    assert!(convs.iter().any(|c| c["title"].is_null()));

    let md = store.export_markdown(ana.id).unwrap();
    for part in [
        "# Conversations of Ana\n",
        "Household: The Hearths",
        "2 conversations",
        "## Tea\n",
        "## Untitled conversation\n",
        "### Ana · 2000-02-29 12:34 UTC\n\nGreen or black?\n",
        "### Hearth · 2000-02-29 12:34 UTC (interrupted)\n\nGreen, at 80 °C\n",
    ] {
        assert!(md.contains(part), "missing {part:?} in\n{md}");
    }
    not_found(store.export_json(999));
}

#[test]
fn many_threads_write_through_one_store() {
    let (store, ana, _) = household();
    let store = Arc::new(store);
    let c = store.create_conversation(ana.id, None).unwrap();
    let reply = store
        .add_message(ana.id, c.id, MessageRole::Assistant, "", Status::Streaming)
        .unwrap();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                for i in 0..50 {
                    store.append_to_message(reply.id, "x").unwrap();
                    store
                        .add_message(
                            ana.id,
                            c.id,
                            MessageRole::User,
                            &format!("{t}-{i}"),
                            Status::Complete,
                        )
                        .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let conv = store.conversation(ana.id, c.id).unwrap().unwrap();
    assert_eq!(conv.messages.len(), 1 + 200);
    assert_eq!(conv.messages[0].content, "x".repeat(200));
}
