//! The database file: migrations, reopening, WAL durability, and deletions that really leave
//! the disk.

use std::path::{Path, PathBuf};

use hearth_store::{schema, Error, MessageRole, Secret, Status, Store};
use rusqlite::Connection;

fn db_path(dir: &tempfile::TempDir) -> PathBuf {
    // A directory that does not exist yet: open creates it.
    dir.path().join("data").join("hearth.db")
}

fn raw(path: &Path) -> Connection {
    Connection::open(path).unwrap()
}

fn user_version(conn: &Connection) -> i64 {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap()
}

/// The database file and its WAL, as bytes.
fn on_disk(path: &Path) -> Vec<u8> {
    let mut bytes = std::fs::read(path).unwrap();
    let wal = path.with_extension("db-wal");
    if let Ok(more) = std::fs::read(wal) {
        bytes.extend(more);
    }
    bytes
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[test]
fn migrates_from_empty_and_reopens_without_migrating_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    {
        let store = Store::open(&path).unwrap();
        store.setup("Home", "Ana", "ana-password").unwrap();
    }
    let conn = raw(&path);
    assert_eq!(user_version(&conn), schema::current_version());
    assert!(schema::current_version() >= 1);
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for t in [
        "api_keys",
        "attempts",
        "conversations",
        "household",
        "messages",
        "sessions",
        "settings",
        "users",
    ] {
        assert!(tables.iter().any(|x| x == t), "no table {t} in {tables:?}");
    }
    drop(conn);

    // Reopening keeps the data; running migration 1 again would fail on CREATE TABLE.
    let store = Store::open(&path).unwrap();
    assert_eq!(store.household().unwrap().as_deref(), Some("Home"));
    assert!(store.verify_login("ana", "ana-password").unwrap().is_some());
    assert_eq!(user_version(&raw(&path)), schema::current_version());
}

#[cfg(unix)]
#[test]
fn a_new_file_is_private_to_its_owner() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let _store = Store::open(&path).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
}

#[test]
fn a_file_from_a_newer_hearth_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hearth.db");
    raw(&path).pragma_update(None, "user_version", 99).unwrap();
    match Store::open(&path) {
        Err(Error::SchemaVersion { found: 99, known }) => {
            assert_eq!(known, schema::current_version())
        }
        other => panic!("expected SchemaVersion, got {:?}", other.err()),
    }
}

#[test]
fn a_failed_migration_leaves_the_file_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hearth.db");
    // A table migration 1 will try to create, so it fails part-way.
    raw(&path)
        .execute_batch("CREATE TABLE messages (x INTEGER)")
        .unwrap();
    assert!(matches!(Store::open(&path), Err(Error::Db(_))));
    let conn = raw(&path);
    assert_eq!(user_version(&conn), 0);
    let tables: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        tables, 1,
        "the tables created before the failure were rolled back"
    );
}

#[test]
fn written_replies_survive_a_crash_with_wal() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let store = Store::open(&path).unwrap();
    let ana = store.setup("Home", "Ana", "ana-password").unwrap();
    let c = store.create_conversation(ana.id, Some("Story")).unwrap();
    store
        .add_message(
            ana.id,
            c.id,
            MessageRole::User,
            "Tell me a story",
            Status::Complete,
        )
        .unwrap();
    let reply = store
        .add_message(ana.id, c.id, MessageRole::Assistant, "", Status::Streaming)
        .unwrap();
    store.append_to_message(reply.id, "Once upon").unwrap();
    store.append_to_message(reply.id, " a time").unwrap();
    // The commits are in the WAL, not yet in the main file.
    let wal = std::fs::metadata(path.with_extension("db-wal")).unwrap();
    assert!(wal.len() > 0);
    // A crash: the connection is never closed, so nothing checkpoints or cleans up.
    std::mem::forget(store);

    let store = Store::open(&path).unwrap();
    assert_eq!(store.mark_streaming_interrupted().unwrap(), 1);
    let conv = store.conversation(ana.id, c.id).unwrap().unwrap();
    assert_eq!(conv.title.as_deref(), Some("Story"));
    assert_eq!(conv.messages.len(), 2);
    assert_eq!(conv.messages[1].content, "Once upon a time");
    assert_eq!(conv.messages[1].status, Status::Interrupted);
    drop(store);
    // And after a clean close, once more.
    let store = Store::open(&path).unwrap();
    let conv = store.conversation(ana.id, c.id).unwrap().unwrap();
    assert_eq!(conv.messages[1].status, Status::Interrupted);
}

#[test]
fn deleted_text_is_gone_from_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let store = Store::open(&path).unwrap();
    let ana = store.setup("Home", "Ana", "ana-password").unwrap();
    let ben = store
        .add_person("Ben", &Secret::Password("ben-password".into()))
        .unwrap();

    // Messages big enough to spill onto overflow pages, too.
    let secret_one = "zebra-marmalade-4711";
    let secret_two = "quokka-lemonade-0815";
    let secret_ben = "narwhal-custard-2024";
    let keep = "kept-conversation-text";
    let one = store.create_conversation(ana.id, Some(secret_one)).unwrap();
    let two = store.create_conversation(ana.id, None).unwrap();
    let kept = store.create_conversation(ana.id, None).unwrap();
    let bens = store.create_conversation(ben.id, None).unwrap();
    let big = format!("{} {secret_one}", "filler ".repeat(2000));
    for (conv, user, text) in [
        (one.id, ana.id, big.as_str()),
        (two.id, ana.id, secret_two),
        (kept.id, ana.id, keep),
        (bens.id, ben.id, secret_ben),
    ] {
        let m = store
            .add_message(user, conv, MessageRole::Assistant, "", Status::Streaming)
            .unwrap();
        // Grown by appends, as a streamed reply is: every older version must go too.
        for chunk in text.split_inclusive(' ') {
            store.append_to_message(m.id, chunk).unwrap();
        }
    }
    store.checkpoint().unwrap();
    let before = on_disk(&path);
    for s in [secret_one, secret_two, secret_ben, keep] {
        assert!(
            contains(&before, s),
            "{s} should be on disk before deleting"
        );
    }

    store.delete_conversation(ana.id, one.id).unwrap();
    let after = on_disk(&path);
    assert!(
        !contains(&after, secret_one),
        "deleted conversation still on disk"
    );
    assert!(contains(&after, secret_two) && contains(&after, keep));

    store.remove_person(ben.id).unwrap();
    assert!(
        !contains(&on_disk(&path), secret_ben),
        "removed person's text still on disk"
    );

    store
        .delete_messages_from(ana.id, kept.id, {
            store
                .conversation(ana.id, kept.id)
                .unwrap()
                .unwrap()
                .messages[0]
                .id
        })
        .unwrap();
    store.delete_all_conversations(ana.id).unwrap();
    let after = on_disk(&path);
    assert!(!contains(&after, secret_two) && !contains(&after, keep));

    // The rows are gone, not hidden.
    drop(store);
    let conn = raw(&path);
    let rows: i64 = conn
        .query_row(
            "SELECT (SELECT COUNT(*) FROM conversations) + (SELECT COUNT(*) FROM messages)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(rows, 0);
}

#[test]
fn tokens_and_keys_are_stored_only_as_hashes() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let store = Store::open(&path).unwrap();
    let ana = store.setup("Home", "Ana", "ana-password").unwrap();
    let session = store.create_session(ana.id).unwrap();
    let (_, key) = store.create_api_key("app", ana.id).unwrap();
    store.checkpoint().unwrap();
    let bytes = on_disk(&path);
    assert!(!contains(&bytes, &session.token));
    assert!(!contains(&bytes, &key));
    assert!(!contains(&bytes, "ana-password"));
    assert!(
        contains(&bytes, &session.csrf),
        "the CSRF token is kept to hand back"
    );
}
