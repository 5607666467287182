//! Branches: migration 6 turns every stored chat into a single path, losing nothing.

use hearth_store::{schema, MessageRole, Status, Store};
use rusqlite::{params, Connection};

/// A database file exactly as a Hearth with five migrations left it, with two people's chats.
fn version_five(path: &std::path::Path) -> (i64, Vec<(i64, Vec<i64>)>) {
    let mut conn = Connection::open(path).unwrap();
    for (i, sql) in schema::MIGRATIONS[..5].iter().enumerate() {
        let tx = conn.transaction().unwrap();
        tx.execute_batch(sql).unwrap();
        let v: i64 = tx
            .query_row("PRAGMA schema_version", [], |r| r.get(0))
            .unwrap();
        tx.pragma_update(None, "schema_version", v + 1).unwrap();
        tx.pragma_update(None, "user_version", i as i64 + 1)
            .unwrap();
        tx.commit().unwrap();
    }
    conn.execute("INSERT INTO household (id, name) VALUES (1, 'Home')", [])
        .unwrap();
    let mut people = Vec::new();
    for name in ["ana", "ben"] {
        conn.execute(
            "INSERT INTO users (name, name_key, role, kind, secret_hash, created)
             VALUES (?1, ?1, 'member', 'pin', 'x', 0)",
            [name],
        )
        .unwrap();
        people.push(conn.last_insert_rowid());
    }
    let mut chats = Vec::new();
    let mut activity = 0;
    // Ana's two chats are written in turns, so their messages' ids interleave; Ben's is empty.
    for (user, n) in [(people[0], 5), (people[0], 4), (people[1], 0)] {
        activity += 1;
        conn.execute(
            "INSERT INTO conversations (user_id, title, created, updated, activity)
             VALUES (?1, 'chat', 0, 0, ?2)",
            [user, activity],
        )
        .unwrap();
        chats.push((conn.last_insert_rowid(), n, Vec::new()));
    }
    for k in 0..5 {
        for (conv, n, ids) in chats.iter_mut() {
            if k < *n {
                let role = if k % 2 == 0 { "user" } else { "assistant" };
                let status = if k == *n - 1 && role == "assistant" {
                    "cut_short"
                } else {
                    "complete"
                };
                conn.execute(
                    "INSERT INTO messages (conversation_id, role, content, status, created)
                     VALUES (?1, ?2, ?3, ?4, 0)",
                    params![*conv, role, format!("message {k} of {conv}"), status],
                )
                .unwrap();
                ids.push(conn.last_insert_rowid());
            }
        }
    }
    assert_eq!(
        conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))
            .unwrap(),
        5
    );
    (
        people[0],
        chats.into_iter().map(|(c, _, ids)| (c, ids)).collect(),
    )
}

#[test]
fn migration_six_makes_every_stored_chat_one_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hearth.db");
    let (ana, chats) = version_five(&path);
    let store = Store::open(&path).unwrap();
    assert!(schema::current_version() >= 6);

    let raw = Connection::open(&path).unwrap();
    for (conv, ids) in &chats {
        // Each message hangs under the one before it, and the chat shows its last one.
        let parents: Vec<Option<i64>> = raw
            .prepare("SELECT parent_id FROM messages WHERE conversation_id = ?1 ORDER BY id")
            .unwrap()
            .query_map([conv], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let want: Vec<Option<i64>> = (0..ids.len())
            .map(|i| i.checked_sub(1).map(|p| ids[p]))
            .collect();
        assert_eq!(parents, want, "chat {conv}");
        let leaf: Option<i64> = raw
            .query_row(
                "SELECT leaf_id FROM conversations WHERE id = ?1",
                [conv],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(leaf, ids.last().copied(), "chat {conv}");
    }

    // Nothing lost: every message is in its chat, in order, with its text and status.
    let (one, ids) = &chats[0];
    let c = store.conversation(ana, *one).unwrap().unwrap();
    let got: Vec<i64> = c.messages.iter().map(|m| m.id).collect();
    assert_eq!(&got, ids);
    assert_eq!(c.messages[4].content, format!("message 4 of {one}"));
    assert_eq!(c.messages[3].status, Status::Complete);
    let (two, ids2) = &chats[1];
    let c2 = store.conversation(ana, *two).unwrap().unwrap();
    assert_eq!(c2.messages.iter().map(|m| m.id).collect::<Vec<_>>(), *ids2);
    assert_eq!(c2.messages[3].status, Status::CutShort);
    // A cut-short last reply can still be continued in place: it is the end of the path.
    store.resume_cut_short(ana, *two, ids2[3]).unwrap();
    let summary = store.conversation_summary(ana, *one).unwrap().unwrap();
    assert_eq!(summary.preview, format!("message 4 of {one}"));

    // A new message goes on after the last one.
    let m = store
        .add_message(ana, *one, MessageRole::Assistant, "more", Status::Complete)
        .unwrap();
    let parent: Option<i64> = raw
        .query_row(
            "SELECT parent_id FROM messages WHERE id = ?1",
            [m.id],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(parent, Some(ids[4]));
    let c = store.conversation(ana, *one).unwrap().unwrap();
    assert_eq!(c.messages.len(), 6);
}

#[test]
fn versions_are_kept_and_a_switch_shows_the_newest_branch_below() {
    let (store, ana, ben) = crate::household();
    let c = store.create_conversation(ana.id, None).unwrap();
    let say = |parent: Option<i64>, role, text: &str| {
        store
            .add_message_after(ana.id, c.id, parent, role, text, Status::Complete)
            .unwrap()
            .id
    };
    let u1 = say(None, MessageRole::User, "one");
    let a1 = say(Some(u1), MessageRole::Assistant, "two");
    let u2 = say(Some(a1), MessageRole::User, "three");
    let a2 = say(Some(u2), MessageRole::Assistant, "four");
    let u1b = say(None, MessageRole::User, "one, edited");
    let a1b = say(Some(u1b), MessageRole::Assistant, "two again");
    let path = |c: &hearth_store::Conversation| c.messages.iter().map(|m| m.id).collect::<Vec<_>>();

    let now = store.conversation(ana.id, c.id).unwrap().unwrap();
    assert_eq!(path(&now), [u1b, a1b]);
    assert_eq!(now.versions.len(), 1);
    assert_eq!(
        (now.versions[0].message, now.versions[0].ids.clone()),
        (u1b, vec![u1, u1b])
    );
    assert_eq!(
        store.current_path(ana.id, c.id).unwrap().unwrap(),
        now.messages
    );

    store.switch_branch(ana.id, c.id, u1).unwrap();
    let back = store.conversation(ana.id, c.id).unwrap().unwrap();
    assert_eq!(path(&back), [u1, a1, u2, a2]);
    let a2b = say(Some(u2), MessageRole::Assistant, "four, again");
    store.switch_branch(ana.id, c.id, u1b).unwrap();
    store.switch_branch(ana.id, c.id, u1).unwrap();
    let newest = store.conversation(ana.id, c.id).unwrap().unwrap();
    assert_eq!(path(&newest), [u1, a1, u2, a2b]);
    assert_eq!(
        newest
            .versions
            .iter()
            .map(|v| v.message)
            .collect::<Vec<_>>(),
        [u1, a2b]
    );

    // Only the person's own chat's messages: another's, or one of another chat, is not found.
    let other = store.create_conversation(ana.id, None).unwrap();
    assert!(store.switch_branch(ana.id, other.id, u1).is_err());
    assert!(store.switch_branch(ben.id, c.id, u1).is_err());
    assert!(store
        .add_message_after(
            ana.id,
            other.id,
            Some(u1),
            MessageRole::User,
            "x",
            Status::Complete
        )
        .is_err());
    assert!(store.current_path(ben.id, c.id).unwrap().is_none());
    // Search and the list read the branch in view.
    assert_eq!(
        store
            .conversations(ana.id, Some("four, again"))
            .unwrap()
            .len(),
        1
    );
    assert!(store
        .conversations(ana.id, Some("edited"))
        .unwrap()
        .is_empty());
    assert_eq!(
        store
            .conversation_summary(ana.id, c.id)
            .unwrap()
            .unwrap()
            .preview,
        "four, again"
    );
}

/// A long chat is one chain of parents (every message under the one before it): deleting the
/// chat, all chats or the person must not walk that chain one trigger level per message
/// (SQLite stops at 1,000 levels).
#[test]
fn a_chat_of_thousands_of_messages_is_deleted_whole() {
    let (store, ana, ben) = crate::household();
    let mut chats = Vec::new();
    for who in [&ana, &ana, &ben] {
        let c = store.create_conversation(who.id, None).unwrap();
        let mut parent = None;
        for i in 0..1500 {
            let role = if i % 2 == 0 {
                MessageRole::User
            } else {
                MessageRole::Assistant
            };
            let m = store
                .add_message_after(who.id, c.id, parent, role, "x", Status::Complete)
                .unwrap();
            parent = Some(m.id);
        }
        chats.push(c.id);
    }
    store.delete_conversation(ana.id, chats[0]).unwrap();
    assert!(store.conversation(ana.id, chats[0]).unwrap().is_none());
    store.delete_all_conversations(ana.id).unwrap();
    assert!(store.conversation(ana.id, chats[1]).unwrap().is_none());
    store.remove_person(ben.id).unwrap();
}

/// Another branch is out of view, not gone: a person's export (both forms, and one chat's) and
/// the conversation as read (the keeper's view of a child's chat is this) hold every message.
#[test]
fn exports_and_the_conversation_hold_every_branch() {
    let (store, ana, _) = crate::household();
    let c = store.create_conversation(ana.id, Some("Soup")).unwrap();
    let say = |parent: Option<i64>, role, text: &str| {
        store
            .add_message_after(ana.id, c.id, parent, role, text, Status::Complete)
            .unwrap()
            .id
    };
    let u1 = say(None, MessageRole::User, "leek soup?");
    say(Some(u1), MessageRole::Assistant, "first answer");
    say(Some(u1), MessageRole::Assistant, "second answer");
    let u1b = say(None, MessageRole::User, "onion soup?");
    let a1b = say(Some(u1b), MessageRole::Assistant, "onion answer");
    let all = [
        "leek soup?",
        "first answer",
        "second answer",
        "onion soup?",
        "onion answer",
    ];

    let conv = store.conversation(ana.id, c.id).unwrap().unwrap();
    assert_eq!(
        conv.messages.iter().map(|m| m.id).collect::<Vec<_>>(),
        [u1b, a1b]
    );
    let mut seen: Vec<&str> = conv
        .messages
        .iter()
        .chain(&conv.other_versions)
        .map(|m| m.content.as_str())
        .collect();
    seen.sort();
    let mut want = all.to_vec();
    want.sort();
    assert_eq!(seen, want);

    let json: serde_json::Value =
        serde_json::from_str(&store.export_json(ana.id).unwrap()).unwrap();
    let text = json.to_string();
    let md = store.export_markdown(ana.id).unwrap();
    let one = hearth_store::conversation_markdown("Ana", &conv, 0, 0);
    for t in all {
        assert!(text.contains(t), "{t} missing from the JSON export");
        assert!(md.contains(t), "{t} missing from the Markdown export");
        assert!(one.contains(t), "{t} missing from the chat's Markdown");
    }
    // The other versions keep their parents, so a program can rebuild the tree.
    let others = json["conversations"][0]["other_versions"]
        .as_array()
        .unwrap();
    assert!(
        others.iter().all(|m| m.get("parent_id").is_some()),
        "{others:?}"
    );
    assert!(md.contains("Other versions in this chat"), "{md}");
}
