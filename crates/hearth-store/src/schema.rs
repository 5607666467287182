//! The schema, one migration per version.
//!
//! `PRAGMA user_version` is the number of migrations applied. Each migration runs in its own
//! transaction together with the bump of `user_version`, so a crash mid-upgrade leaves the file
//! at the previous version, and the next start tries again. Never edit a migration that has
//! shipped: add a new one.

use rusqlite::Connection;

use crate::{Error, Result};

/// Migration `i` takes the schema from version `i` to `i + 1`.
pub const MIGRATIONS: &[&str] = &[
    // 1: the household page (issue 5).
    r#"
    CREATE TABLE household (
        id   INTEGER PRIMARY KEY CHECK (id = 1),
        name TEXT NOT NULL
    );

    CREATE TABLE users (
        id          INTEGER PRIMARY KEY,
        name        TEXT NOT NULL,
        -- The name folded to lowercase (Unicode), so "Ana" and "ANA" are one person.
        name_key    TEXT NOT NULL UNIQUE,
        role        TEXT NOT NULL CHECK (role IN ('owner', 'member')),
        kind        TEXT NOT NULL CHECK (kind IN ('password', 'pin')),
        secret_hash TEXT NOT NULL,
        created     INTEGER NOT NULL
    );

    CREATE TABLE sessions (
        id         INTEGER PRIMARY KEY,
        token_hash TEXT NOT NULL UNIQUE,
        user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        csrf       TEXT NOT NULL,
        created    INTEGER NOT NULL,
        last_seen  INTEGER NOT NULL
    );
    CREATE INDEX sessions_user ON sessions (user_id);

    CREATE TABLE conversations (
        id       INTEGER PRIMARY KEY,
        user_id  INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        title    TEXT,
        created  INTEGER NOT NULL,
        updated  INTEGER NOT NULL,
        -- A household-wide counter bumped on every change: orders "newest first" exactly even
        -- when two changes fall in the same second.
        activity INTEGER NOT NULL
    );
    CREATE INDEX conversations_user ON conversations (user_id, activity);

    CREATE TABLE messages (
        id              INTEGER PRIMARY KEY,
        conversation_id INTEGER NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
        role            TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
        content         TEXT NOT NULL,
        status          TEXT NOT NULL
            CHECK (status IN ('complete', 'streaming', 'interrupted', 'failed', 'stopped')),
        created         INTEGER NOT NULL
    );
    CREATE INDEX messages_conversation ON messages (conversation_id, id);
    CREATE INDEX messages_streaming ON messages (status) WHERE status = 'streaming';

    CREATE TABLE api_keys (
        id         INTEGER PRIMARY KEY,
        name       TEXT NOT NULL,
        key_hash   TEXT NOT NULL UNIQUE,
        created_by INTEGER REFERENCES users (id) ON DELETE SET NULL,
        created    INTEGER NOT NULL,
        last_used  INTEGER
    );

    CREATE TABLE settings (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    "#,
    // 2: login and setup-code tries, kept across restarts so a restart does not lift a lockout
    // (issue 12). `until` is when the window that began with the first try ends.
    r#"
    CREATE TABLE attempts (
        key   TEXT PRIMARY KEY,
        tries INTEGER NOT NULL,
        until INTEGER NOT NULL
    );
    "#,
    // 3: stored OpenAI Responses (issue 16), so `previous_response_id` continues a
    // conversation. `owner` names the caller (an API key, a person) that made it: every query
    // filters on it. The JSON columns are opaque here: `context` is the conversation before
    // this response's input, `input` its own input items, `response` the object returned.
    r#"
    CREATE TABLE responses (
        id       TEXT PRIMARY KEY,
        owner    TEXT NOT NULL,
        created  INTEGER NOT NULL,
        context  TEXT NOT NULL,
        input    TEXT NOT NULL,
        response TEXT NOT NULL
    );
    CREATE INDEX responses_owner ON responses (owner);
    CREATE INDEX responses_created ON responses (created);
    "#,
    // 4: children and per-person settings (issue 18), and replies that hit the length cap.
    // A child is a member with `child = 1` (the role column's CHECK cannot grow without
    // rebuilding `users`, which sessions and conversations point at). Everyone's own
    // `instructions` and display `language` (NULL: follow the browser). For a child, what the
    // keeper set: `child_prompt` (NULL: Hearth's default), allowed hours as minutes after
    // local midnight with the keeper's UTC offset (all NULL: any time), `topics` to steer away
    // from (a JSON array of strings), and whether the keeper may read their chats.
    // `messages` takes the new status 'cut_short' (`migrate` bumps `schema_version` after every
    // migration, so this connection and any other reread the edited definition).
    r#"
    ALTER TABLE users ADD COLUMN child INTEGER NOT NULL DEFAULT 0
        CHECK (child IN (0, 1) AND (child = 0 OR role = 'member'));
    ALTER TABLE users ADD COLUMN instructions TEXT NOT NULL DEFAULT '';
    ALTER TABLE users ADD COLUMN language TEXT;
    ALTER TABLE users ADD COLUMN child_prompt TEXT;
    ALTER TABLE users ADD COLUMN hours_from INTEGER;
    ALTER TABLE users ADD COLUMN hours_to INTEGER;
    ALTER TABLE users ADD COLUMN utc_offset INTEGER;
    ALTER TABLE users ADD COLUMN topics TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE users ADD COLUMN keeper_sees INTEGER NOT NULL DEFAULT 0
        CHECK (keeper_sees IN (0, 1));

    -- The status CHECK grows by one value, so every stored row still meets it: SQLite's own
    -- documented way to loosen a CHECK is to edit the table's definition, rather than copy every
    -- message into a new table (slow for a big household, and it moves every page).
    PRAGMA writable_schema = ON;
    UPDATE sqlite_schema
        SET sql = replace(sql, '''failed'', ''stopped'')', '''failed'', ''stopped'', ''cut_short'')')
        WHERE type = 'table' AND name = 'messages';
    PRAGMA writable_schema = OFF;
    "#,
    // 5: replies the model's context stopped ('out_of_room'), told apart from those the
    // household's longest reply stopped ('cut_short', which can be continued). The CHECK grows
    // in place as in 4.
    r#"
    PRAGMA writable_schema = ON;
    UPDATE sqlite_schema
        SET sql = replace(sql, '''stopped'', ''cut_short'')', '''stopped'', ''cut_short'', ''out_of_room'')')
        WHERE type = 'table' AND name = 'messages';
    PRAGMA writable_schema = OFF;
    "#,
    // 6: branches (issue 18). Each message hangs under the one it follows (`parent_id`; NULL
    // for the first ones), so an edit or another answer is a sibling and what was there stays;
    // `leaf_id` is the message a conversation shows last (NULL: its newest). Every stored chat
    // becomes one path: each message under the one before it, the last one shown. A message's
    // parent is always written before it, so it has the smaller id. No ON DELETE CASCADE on
    // the parent: a long chat is one chain of parents, and SQLite stops cascading after 1,000
    // levels; messages go with their conversation, and nothing deletes a message whose
    // descendants stay.
    r#"
    ALTER TABLE messages ADD COLUMN parent_id INTEGER REFERENCES messages (id);
    ALTER TABLE conversations ADD COLUMN leaf_id INTEGER;
    UPDATE messages SET parent_id = (
        SELECT MAX(p.id) FROM messages p
        WHERE p.conversation_id = messages.conversation_id AND p.id < messages.id);
    UPDATE conversations SET leaf_id = (
        SELECT MAX(m.id) FROM messages m WHERE m.conversation_id = conversations.id);
    CREATE INDEX messages_parent ON messages (parent_id);
    "#,
    // 7: the model that wrote each reply (issue 18, item 7), so the page can say which one
    // answered after the keeper switched models. NULL: the person's own messages, and replies
    // written before Hearth kept it.
    r#"
    ALTER TABLE messages ADD COLUMN model TEXT;
    "#,
    // 8: the assistant that does things (issue 20). Each person's `notes` (a list is a note
    // whose content is one item per line) and `reminders` (`due` in Unix seconds; `shown` once
    // the page has shown it). `tool_steps`: every tool call a reply made, in order, kept with
    // its message (`outcome` 'waiting' while it waits for the person's approval, 'running'
    // while it runs). `tool_audit`: who called which tool with what, when, and how it ended,
    // for the keeper; it goes with its person, like everything else of theirs.
    // `chat_tool_grants`: the tools a person allowed "always for this chat". `users.tools`: the
    // tools a person may use as a JSON array (NULL: the default, every built-in tool for a
    // grown-up and none for a child).
    r#"
    CREATE TABLE notes (
        id      INTEGER PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        kind    TEXT NOT NULL CHECK (kind IN ('note', 'list')),
        title   TEXT NOT NULL,
        content TEXT NOT NULL,
        created INTEGER NOT NULL,
        updated INTEGER NOT NULL
    );
    CREATE INDEX notes_user ON notes (user_id, updated);

    CREATE TABLE reminders (
        id      INTEGER PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        text    TEXT NOT NULL,
        due     INTEGER NOT NULL,
        shown   INTEGER NOT NULL DEFAULT 0 CHECK (shown IN (0, 1)),
        created INTEGER NOT NULL
    );
    CREATE INDEX reminders_user ON reminders (user_id, due);

    CREATE TABLE tool_steps (
        id         INTEGER PRIMARY KEY,
        message_id INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
        tool       TEXT NOT NULL,
        arguments  TEXT NOT NULL,
        result     TEXT NOT NULL DEFAULT '',
        outcome    TEXT NOT NULL CHECK (outcome IN
            ('waiting', 'running', 'done', 'failed', 'denied', 'timed_out', 'not_allowed')),
        started    INTEGER NOT NULL,
        ms         INTEGER
    );
    CREATE INDEX tool_steps_message ON tool_steps (message_id, id);

    CREATE TABLE tool_audit (
        id        INTEGER PRIMARY KEY,
        user_id   INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        tool      TEXT NOT NULL,
        arguments TEXT NOT NULL,
        at        INTEGER NOT NULL,
        outcome   TEXT NOT NULL
    );
    CREATE INDEX tool_audit_at ON tool_audit (at);
    CREATE INDEX tool_audit_user ON tool_audit (user_id);

    CREATE TABLE chat_tool_grants (
        conversation_id INTEGER NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
        tool            TEXT NOT NULL,
        PRIMARY KEY (conversation_id, tool)
    );

    ALTER TABLE users ADD COLUMN tools TEXT;
    "#,
    // 9: the household's pool of machines (issue 21). `pool_members` is every machine the
    // keeper paired, by its node key (hex of the Ed25519 public key, iroh's identity): a
    // connection from any other key gets nothing, and deleting the row cuts the machine off.
    // `report` is the JSON the member last sent (memory, bandwidth, its link to the head) and
    // `last_seen` its last heartbeat, so `hearth pool list` reads them without asking the head.
    // `pool_invites` holds the open pairing codes: the secret half is the SPAKE2 password (the
    // head needs it in the clear to run the exchange), single-use, with an expiry and a count
    // of tries left; an invite is deleted when it pairs, expires or runs out of tries.
    r#"
    CREATE TABLE pool_members (
        key TEXT PRIMARY KEY NOT NULL,
        name TEXT NOT NULL,
        paired INTEGER NOT NULL,
        last_seen INTEGER,
        report TEXT
    );
    CREATE TABLE pool_invites (
        id TEXT PRIMARY KEY NOT NULL,
        secret TEXT NOT NULL,
        expires INTEGER NOT NULL,
        tries_left INTEGER NOT NULL
    );
    "#,
];

/// The schema version this code writes.
pub fn current_version() -> i64 {
    MIGRATIONS.len() as i64
}

/// Applies every migration the file has not had yet.
pub(crate) fn migrate(conn: &mut Connection) -> Result<()> {
    let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let known = current_version();
    if !(0..=known).contains(&found) {
        return Err(Error::SchemaVersion { found, known });
    }
    for (version, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        // A migration may edit a table's definition in place (4 does): a new schema_version
        // makes every connection parse the schema again.
        let schema: i64 = tx.query_row("PRAGMA schema_version", [], |r| r.get(0))?;
        tx.pragma_update(None, "schema_version", schema + 1)?;
        // user_version lives in the file header, which is written with the transaction.
        tx.pragma_update(None, "user_version", version as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}
