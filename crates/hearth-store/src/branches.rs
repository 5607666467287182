//! A conversation is a tree: each message hangs under the one it answers or follows
//! (`parent_id`; the first messages have none), an edit or another answer adds a sibling, and
//! the conversation remembers the message it shows last (`leaf_id`). What the person sees, what
//! the model reads, search, the list's preview, the keeper's view and export are the path from
//! the root to that leaf; nothing else is ever deleted by changing branches.
//!
//! A message's parent always has a smaller id (it was written first), so the path sorted by id
//! is in reading order.

use rusqlite::{params, Connection};

use crate::chat::{check_owner, message_from_row, touch, MESSAGE_COLUMNS};
use crate::{Error, Message, MessageRole, Result, Status, Store, Versions};

/// The message conversation `conv` shows last: its stored leaf while that is one of its
/// messages, else its newest message (a leaf removed by `delete_messages_from`); `None` while it
/// has no messages.
pub(crate) fn leaf_of(conn: &Connection, conv: i64) -> Result<Option<i64>> {
    Ok(conn.query_row(
        "SELECT COALESCE(
             (SELECT m.id FROM messages m JOIN conversations c ON c.leaf_id = m.id
              WHERE c.id = ?1 AND m.conversation_id = ?1),
             (SELECT MAX(id) FROM messages WHERE conversation_id = ?1))",
        [conv],
        |r| r.get(0),
    )?)
}

/// The SQL for the ids on the path from the root to `?1`: a recursive walk up the parents
/// (UNION, so even a damaged file with a loop ends).
const PATH_IDS: &str = "WITH RECURSIVE path(id) AS (
         SELECT ?1
         UNION
         SELECT m.parent_id FROM messages m JOIN path p ON m.id = p.id
         WHERE m.parent_id IS NOT NULL)";

/// The messages from the root of conversation `conv` to message `leaf`, in order.
pub(crate) fn path_to(conn: &Connection, conv: i64, leaf: i64) -> Result<Vec<Message>> {
    let mut stmt = conn.prepare(&format!(
        "{PATH_IDS}
         SELECT {MESSAGE_COLUMNS} FROM messages
         WHERE id IN (SELECT id FROM path) AND conversation_id = ?2 ORDER BY id"
    ))?;
    let messages = stmt
        .query_map([leaf, conv], message_from_row)?
        .collect::<rusqlite::Result<_>>()?;
    Ok(messages)
}

/// Conversation `conv`'s messages on the branch in view, in order.
pub(crate) fn current_path(conn: &Connection, conv: i64) -> Result<Vec<Message>> {
    match leaf_of(conn, conv)? {
        Some(leaf) => path_to(conn, conv, leaf),
        None => Ok(Vec::new()),
    }
}

/// Whether any message on conversation `conv`'s branch in view contains `needle` (lowercased),
/// by the SQL function `contains`.
pub(crate) fn path_contains(
    conn: &Connection,
    conv: i64,
    contains: &str,
    needle: &str,
) -> Result<bool> {
    let Some(leaf) = leaf_of(conn, conv)? else {
        return Ok(false);
    };
    Ok(conn.query_row(
        &format!(
            "{PATH_IDS}
             SELECT EXISTS (SELECT 1 FROM messages
                            WHERE id IN (SELECT id FROM path) AND conversation_id = ?2
                              AND {contains}(content, ?3))"
        ),
        params![leaf, conv, needle],
        |r| r.get(0),
    )?)
}

/// For each message of `path` that has other versions (its siblings of the same role: edits of
/// a question, other answers), all of them in the order they were written.
pub(crate) fn versions_of(conn: &Connection, conv: i64, path: &[Message]) -> Result<Vec<Versions>> {
    let mut stmt = conn.prepare(
        "SELECT id FROM messages
         WHERE conversation_id = ?1 AND parent_id IS ?2 AND role = ?3 ORDER BY id",
    )?;
    let mut out = Vec::new();
    for m in path {
        let ids = stmt
            .query_map(params![conv, m.parent_id, m.role], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<i64>>>()?;
        if ids.len() > 1 {
            out.push(Versions { message: m.id, ids });
        }
    }
    Ok(out)
}

/// Every message of `conv` not on `path`, oldest first.
pub(crate) fn others_of(conn: &Connection, conv: i64, path: &[Message]) -> Result<Vec<Message>> {
    let on_path: std::collections::HashSet<i64> = path.iter().map(|m| m.id).collect();
    let mut stmt = conn.prepare(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = ?1 ORDER BY id"
    ))?;
    let all = stmt
        .query_map([conv], message_from_row)?
        .collect::<rusqlite::Result<Vec<Message>>>()?;
    Ok(all
        .into_iter()
        .filter(|m| !on_path.contains(&m.id))
        .collect())
}

/// A message about to be stored.
pub(crate) struct NewMessage<'a> {
    pub(crate) role: MessageRole,
    pub(crate) content: &'a str,
    pub(crate) status: Status,
    /// The model writing it (replies only).
    pub(crate) model: Option<&'a str>,
}

/// Inserts a message under `parent` (already checked to be in `conv`) and makes it the leaf.
pub(crate) fn insert_under(
    conn: &Connection,
    conv: i64,
    parent: Option<i64>,
    m: NewMessage<'_>,
    now: i64,
) -> Result<Message> {
    let NewMessage {
        role,
        content,
        status,
        model,
    } = m;
    conn.execute(
        "INSERT INTO messages (conversation_id, parent_id, role, content, status, created, model)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![conv, parent, role, content, status, now, model],
    )?;
    let id = conn.last_insert_rowid();
    conn.execute(
        "UPDATE conversations SET leaf_id = ?1 WHERE id = ?2",
        [id, conv],
    )?;
    touch(conn, conv, now)?;
    Ok(Message {
        id,
        conversation_id: conv,
        parent_id: parent,
        role,
        content: content.into(),
        status,
        created: now,
        model: model.map(String::from),
    })
}

fn in_conversation(conn: &Connection, conv: i64, id: i64) -> Result<()> {
    let found: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM messages WHERE id = ?1 AND conversation_id = ?2)",
        [id, conv],
        |r| r.get(0),
    )?;
    if found {
        Ok(())
    } else {
        Err(Error::NotFound {
            what: "message",
            id,
        })
    }
}

impl Store {
    /// Adds a message to one of `user`'s conversations under `parent` (one of its messages;
    /// `None`: a first message), and shows the branch it ends. An edit is a new message under
    /// the edited one's parent, another answer one under the question: what was there stays.
    pub fn add_message_after(
        &self,
        user: i64,
        conv: i64,
        parent: Option<i64>,
        role: MessageRole,
        content: &str,
        status: Status,
    ) -> Result<Message> {
        self.insert_after(
            user,
            conv,
            parent,
            NewMessage {
                role,
                content,
                status,
                model: None,
            },
        )
    }

    /// Adds an empty reply under `parent`, about to stream, written by `model`.
    pub fn add_reply_after(
        &self,
        user: i64,
        conv: i64,
        parent: Option<i64>,
        model: &str,
    ) -> Result<Message> {
        self.insert_after(
            user,
            conv,
            parent,
            NewMessage {
                role: MessageRole::Assistant,
                content: "",
                status: Status::Streaming,
                model: Some(model),
            },
        )
    }

    fn insert_after(
        &self,
        user: i64,
        conv: i64,
        parent: Option<i64>,
        m: NewMessage<'_>,
    ) -> Result<Message> {
        let now = self.now();
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        check_owner(&tx, user, conv)?;
        if let Some(p) = parent {
            in_conversation(&tx, conv, p)?;
        }
        let m = insert_under(&tx, conv, parent, m, now)?;
        tx.commit()?;
        Ok(m)
    }

    /// The messages on the branch in view of one of `user`'s conversations, in order (what
    /// the page shows, the model reads and an export of the chat holds); `None` if it does not
    /// exist or is someone else's.
    pub fn current_path(&self, user: i64, conv: i64) -> Result<Option<Vec<Message>>> {
        let conn = self.conn();
        match check_owner(&conn, user, conv) {
            Ok(()) => current_path(&conn, conv).map(Some),
            Err(Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Shows the branch through `message` of one of `user`'s conversations: the path to it, and
    /// below it the newest of its continuations (the last one written there). Does not move the
    /// conversation up the list.
    pub fn switch_branch(&self, user: i64, conv: i64, message: i64) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        check_owner(&tx, user, conv)?;
        in_conversation(&tx, conv, message)?;
        let leaf: i64 = tx.query_row(
            "WITH RECURSIVE below(id) AS (
                 SELECT ?1
                 UNION
                 SELECT m.id FROM messages m JOIN below b ON m.parent_id = b.id)
             SELECT MAX(id) FROM messages WHERE id IN (SELECT id FROM below) AND conversation_id = ?2",
            [message, conv],
            |r| r.get(0),
        )?;
        tx.execute(
            "UPDATE conversations SET leaf_id = ?1 WHERE id = ?2",
            [leaf, conv],
        )?;
        tx.commit()?;
        Ok(())
    }
}
