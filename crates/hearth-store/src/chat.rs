//! Conversations and their messages.
//!
//! Every query that reads or changes a conversation filters on the owner's user id in SQL, and
//! a conversation that is not the caller's is reported as [`Error::NotFound`], exactly like one
//! that does not exist. The exceptions are [`Store::append_to_message`],
//! [`Store::finish_message`] and [`Store::set_message_status`], which only the server's
//! generation task calls, with the id of a reply it created itself.

use rusqlite::functions::FunctionFlags;
use rusqlite::types::ValueRef;
use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::branches;
use crate::secret;
use crate::{
    Conversation, ConversationSummary, Error, Message, MessageRole, Result, Status, Store,
    PREVIEW_CHARS,
};

/// Longest conversation title, in characters.
pub const MAX_TITLE_CHARS: usize = 200;

/// The SQL function behind search: whether the first argument contains the second, which the
/// caller has already lowercased, ignoring case in every script (SQLite's own `LIKE` folds only
/// ASCII, and a household writes "Émile" and "ÉMILE").
const CONTAINS_FN: &str = "hearth_contains";

pub(crate) fn register_functions(conn: &Connection) -> Result<()> {
    conn.create_scalar_function(
        CONTAINS_FN,
        2,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            let (ValueRef::Text(hay), ValueRef::Text(needle)) = (ctx.get_raw(0), ctx.get_raw(1))
            else {
                // NULL (an untitled conversation) contains nothing.
                return Ok(false);
            };
            let (Ok(hay), Ok(needle)) = (std::str::from_utf8(hay), std::str::from_utf8(needle))
            else {
                return Ok(false);
            };
            // Most hits match as typed; lowercasing the haystack is the slow path.
            Ok(hay.contains(needle) || hay.to_lowercase().contains(needle))
        },
    )?;
    Ok(())
}

pub(crate) const MESSAGE_COLUMNS: &str =
    "id, conversation_id, role, content, status, created, parent_id, model";

pub(crate) fn message_from_row(r: &Row<'_>) -> rusqlite::Result<Message> {
    Ok(Message {
        id: r.get(0)?,
        conversation_id: r.get(1)?,
        parent_id: r.get(6)?,
        role: r.get(2)?,
        content: r.get(3)?,
        status: r.get(4)?,
        created: r.get(5)?,
        model: r.get(7)?,
    })
}

/// `Ok` if conversation `id` exists and belongs to `user`, [`Error::NotFound`] otherwise.
pub(crate) fn check_owner(conn: &Connection, user: i64, id: i64) -> Result<()> {
    let owned: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM conversations WHERE id = ?1 AND user_id = ?2)",
        [id, user],
        |r| r.get(0),
    )?;
    if owned {
        Ok(())
    } else {
        Err(Error::NotFound {
            what: "conversation",
            id,
        })
    }
}

/// Marks a conversation as just changed: its `updated` time and its place at the top of the
/// owner's list.
pub(crate) fn touch(conn: &Connection, id: i64, now: i64) -> Result<()> {
    conn.execute(
        "UPDATE conversations
         SET updated = ?1, activity = (SELECT COALESCE(MAX(activity), 0) + 1 FROM conversations)
         WHERE id = ?2",
        [now, id],
    )?;
    Ok(())
}

/// The start of `text` on one line, at most [`PREVIEW_CHARS`] characters, as plain words:
/// replies are Markdown, and the list shows a line of text, not `## **Steps**`.
fn preview(text: &str) -> String {
    let text = plain(text);
    let mut out = String::new();
    for (i, word) in text.split_whitespace().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(word);
        if out.chars().count() >= PREVIEW_CHARS {
            break;
        }
    }
    match out.char_indices().nth(PREVIEW_CHARS) {
        Some((cut, _)) => {
            out.truncate(cut);
            out.push('…');
            out
        }
        None => out,
    }
}

/// `text` without its Markdown marks: headings, quotes, list bullets, code fences, table
/// rules and pipes, emphasis, inline code ticks, and links (their text is kept).
fn plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let mut l = line.trim();
        if l.starts_with("```") || l.starts_with("~~~") {
            continue;
        }
        if l.contains('-') && l.chars().all(|c| matches!(c, '|' | '-' | ':' | ' ')) {
            continue; // a table's rule, or a horizontal rule
        }
        loop {
            let before = l;
            l = l.trim_start_matches('>').trim_start();
            let hashes = l.len() - l.trim_start_matches('#').len();
            if (1..=6).contains(&hashes) && l[hashes..].starts_with(' ') {
                l = l[hashes..].trim_start();
            }
            for bullet in ["- ", "* ", "+ "] {
                if let Some(rest) = l.strip_prefix(bullet) {
                    l = rest.trim_start();
                }
            }
            let digits = l.len() - l.trim_start_matches(|c: char| c.is_ascii_digit()).len();
            if (1..=9).contains(&digits)
                && (l[digits..].starts_with(". ") || l[digits..].starts_with(") "))
            {
                l = l[digits + 2..].trim_start();
            }
            if l == before {
                break;
            }
        }
        out.push_str(&inline_plain(l));
        out.push('\n');
    }
    out
}

/// One line's inline Markdown as text.
fn inline_plain(line: &str) -> String {
    let chars: Vec<char> = line.chars().collect();
    let mut out = String::with_capacity(line.len());
    let mut i = 0;
    let word = |c: Option<&char>| c.is_some_and(|c| c.is_alphanumeric());
    while i < chars.len() {
        let c = chars[i];
        match c {
            '`' => {}
            '|' => out.push(' '),
            '!' if chars.get(i + 1) == Some(&'[') => {}
            '[' => {
                // [text](address): the text stays, the address goes.
                let close = chars[i..].iter().position(|&c| c == ']').map(|p| i + p);
                if let Some(close) = close.filter(|&e| chars.get(e + 1) == Some(&'(')) {
                    if let Some(end) = chars[close..].iter().position(|&c| c == ')') {
                        out.extend(&chars[i + 1..close]);
                        i = close + end + 1;
                        continue;
                    }
                }
                out.push(c);
            }
            '*' | '_' | '~' => {
                // Emphasis marks touch a word on one side and not on the other;
                // `2 * 3` and `snake_case` keep theirs.
                let mut j = i;
                while j < chars.len() && chars[j] == c {
                    j += 1;
                }
                let (prev, next) = (i.checked_sub(1).and_then(|p| chars.get(p)), chars.get(j));
                let opens = !word(prev) && next.is_some_and(|n| !n.is_whitespace());
                let closes = prev.is_some_and(|p| !p.is_whitespace()) && !word(next);
                let run = j - i;
                if !(opens || closes) || (c == '~' && run != 2) {
                    out.extend(&chars[i..j]);
                }
                i = j;
                continue;
            }
            _ => out.push(c),
        }
        i += 1;
    }
    out
}

/// `user`'s conversation summaries, newest first: those matching the lowercased `needle` if
/// given, only conversation `only` if given.
fn summaries(
    conn: &Connection,
    user: i64,
    needle: Option<&str>,
    only: Option<i64>,
) -> Result<Vec<ConversationSummary>> {
    // The preview reads a bounded prefix of the message shown last (the end of the branch in
    // view), not the whole reply. Search first keeps the chats with a hit anywhere (one pass in
    // SQL), then those whose title matches or whose branch in view has it.
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT c.id, c.title, c.created, c.updated,
             (SELECT substr(m.content, 1, {prefix}) FROM messages m
              WHERE m.id = COALESCE(
                  (SELECT l.id FROM messages l WHERE l.id = c.leaf_id AND l.conversation_id = c.id),
                  (SELECT MAX(l.id) FROM messages l WHERE l.conversation_id = c.id))),
             {CONTAINS_FN}(c.title, ?2)
         FROM conversations c
         WHERE c.user_id = ?1
           AND (?3 IS NULL OR c.id = ?3)
           AND (?2 IS NULL
                OR {CONTAINS_FN}(c.title, ?2)
                OR EXISTS (SELECT 1 FROM messages m
                           WHERE m.conversation_id = c.id AND {CONTAINS_FN}(m.content, ?2)))
         ORDER BY c.activity DESC",
        prefix = PREVIEW_CHARS * 4
    ))?;
    let found = stmt
        .query_map(params![user, needle, only], |r| {
            let summary = ConversationSummary {
                id: r.get(0)?,
                title: r.get(1)?,
                created: r.get(2)?,
                updated: r.get(3)?,
                preview: preview(&r.get::<_, Option<String>>(4)?.unwrap_or_default()),
            };
            Ok((summary, r.get::<_, bool>(5)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut list = Vec::with_capacity(found.len());
    for (summary, title_hit) in found {
        let keep = match needle {
            Some(n) if !title_hit => branches::path_contains(conn, summary.id, CONTAINS_FN, n)?,
            _ => true,
        };
        if keep {
            list.push(summary);
        }
    }
    Ok(list)
}

/// A conversation's messages on the branch in view, in order.
pub(crate) fn messages_of(conn: &Connection, conversation: i64) -> Result<Vec<Message>> {
    branches::current_path(conn, conversation)
}

/// All of `user`'s conversations with their messages, newest first.
pub(crate) fn all_conversations(conn: &Connection, user: i64) -> Result<Vec<Conversation>> {
    let mut stmt = conn.prepare(
        "SELECT id, title, created, updated FROM conversations
         WHERE user_id = ?1 ORDER BY activity DESC",
    )?;
    let heads = stmt
        .query_map([user], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        .collect::<rusqlite::Result<Vec<(i64, Option<String>, i64, i64)>>>()?;
    heads
        .into_iter()
        .map(|(id, title, created, updated)| {
            let messages = messages_of(conn, id)?;
            Ok(Conversation {
                id,
                title,
                created,
                updated,
                versions: branches::versions_of(conn, id, &messages)?,
                other_versions: branches::others_of(conn, id, &messages)?,
                messages,
            })
        })
        .collect()
}

impl Store {
    /// Starts a conversation for `user`, untitled unless `title` is given (the server titles it
    /// after the first reply).
    pub fn create_conversation(
        &self,
        user: i64,
        title: Option<&str>,
    ) -> Result<ConversationSummary> {
        let title = title
            .map(|t| secret::check_text("title", t, MAX_TITLE_CHARS))
            .transpose()?;
        let now = self.now();
        let conn = self.conn();
        let exists: bool = conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM users WHERE id = ?1)",
            [user],
            |r| r.get(0),
        )?;
        if !exists {
            return Err(Error::NotFound {
                what: "person",
                id: user,
            });
        }
        conn.execute(
            "INSERT INTO conversations (user_id, title, created, updated, activity)
             VALUES (?1, ?2, ?3, ?3, (SELECT COALESCE(MAX(activity), 0) + 1 FROM conversations))",
            params![user, title, now],
        )?;
        Ok(ConversationSummary {
            id: conn.last_insert_rowid(),
            title: title.map(String::from),
            created: now,
            updated: now,
            preview: String::new(),
        })
    }

    /// `user`'s conversations, most recently active first. With `search`, only those whose
    /// title or any message contains it, ignoring case.
    pub fn conversations(
        &self,
        user: i64,
        search: Option<&str>,
    ) -> Result<Vec<ConversationSummary>> {
        let needle = search
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_lowercase);
        summaries(&self.conn(), user, needle.as_deref(), None)
    }

    /// One of `user`'s conversations as it appears in the list (after a rename, say); `None`
    /// if it does not exist or is someone else's.
    pub fn conversation_summary(&self, user: i64, id: i64) -> Result<Option<ConversationSummary>> {
        Ok(summaries(&self.conn(), user, None, Some(id))?.pop())
    }

    /// One of `user`'s conversations with its messages in order; `None` if it does not exist or
    /// is someone else's.
    pub fn conversation(&self, user: i64, id: i64) -> Result<Option<Conversation>> {
        let conn = self.conn();
        let head = conn
            .query_row(
                "SELECT title, created, updated FROM conversations WHERE id = ?1 AND user_id = ?2",
                [id, user],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let Some((title, created, updated)) = head else {
            return Ok(None);
        };
        let messages = messages_of(&conn, id)?;
        Ok(Some(Conversation {
            id,
            title,
            created,
            updated,
            versions: branches::versions_of(&conn, id, &messages)?,
            other_versions: branches::others_of(&conn, id, &messages)?,
            messages,
        }))
    }

    /// Whether conversation `id` exists and is `user`'s (cheaper than [`Store::conversation`]
    /// when only that matters).
    pub fn has_conversation(&self, user: i64, id: i64) -> Result<bool> {
        match check_owner(&self.conn(), user, id) {
            Ok(()) => Ok(true),
            Err(Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Renames one of `user`'s conversations. Does not move it up the list.
    pub fn rename_conversation(&self, user: i64, id: i64, title: &str) -> Result<()> {
        let title = secret::check_text("title", title, MAX_TITLE_CHARS)?;
        let changed = self.conn().execute(
            "UPDATE conversations SET title = ?1 WHERE id = ?2 AND user_id = ?3",
            params![title, id, user],
        )?;
        if changed == 0 {
            return Err(Error::NotFound {
                what: "conversation",
                id,
            });
        }
        Ok(())
    }

    /// Deletes one of `user`'s conversations and its messages, from the disk too.
    pub fn delete_conversation(&self, user: i64, id: i64) -> Result<()> {
        let changed = self.conn().execute(
            "DELETE FROM conversations WHERE id = ?1 AND user_id = ?2",
            [id, user],
        )?;
        if changed == 0 {
            return Err(Error::NotFound {
                what: "conversation",
                id,
            });
        }
        self.checkpoint()
    }

    /// Deletes all of `user`'s conversations, from the disk too.
    pub fn delete_all_conversations(&self, user: i64) -> Result<()> {
        self.conn()
            .execute("DELETE FROM conversations WHERE user_id = ?1", [user])?;
        self.checkpoint()
    }

    // ---- messages ----

    /// Adds a message at the end of the branch in view of one of `user`'s conversations. A reply
    /// about to stream is added with [`Status::Streaming`] and empty content, then grown with
    /// [`Store::append_to_message`].
    pub fn add_message(
        &self,
        user: i64,
        conv: i64,
        role: MessageRole,
        content: &str,
        status: Status,
    ) -> Result<Message> {
        self.insert_message(user, conv, role, content, status, None)
    }

    /// Adds an empty reply, about to stream, written by `model` (kept with it, so the page can
    /// say which model answered even after the keeper switched).
    pub fn add_reply(&self, user: i64, conv: i64, model: &str) -> Result<Message> {
        self.insert_message(
            user,
            conv,
            MessageRole::Assistant,
            "",
            Status::Streaming,
            Some(model),
        )
    }

    fn insert_message(
        &self,
        user: i64,
        conv: i64,
        role: MessageRole,
        content: &str,
        status: Status,
        model: Option<&str>,
    ) -> Result<Message> {
        let now = self.now();
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        check_owner(&tx, user, conv)?;
        let parent = branches::leaf_of(&tx, conv)?;
        let m = branches::insert_under(
            &tx,
            conv,
            parent,
            branches::NewMessage {
                role,
                content,
                status,
                model,
            },
            now,
        )?;
        tx.commit()?;
        Ok(m)
    }

    /// Appends streamed text to a message. Each call is one commit, so the server batches
    /// (about every half second) and a crash loses at most the batch in flight.
    pub fn append_to_message(&self, id: i64, text: &str) -> Result<()> {
        let changed = self.conn().execute(
            "UPDATE messages SET content = content || ?1 WHERE id = ?2",
            params![text, id],
        )?;
        if changed == 0 {
            return Err(Error::NotFound {
                what: "message",
                id,
            });
        }
        Ok(())
    }

    /// Appends the last text of a streamed reply and sets how it ended, in one statement and so
    /// one commit: a reply never reads as finished while part of its text is unsaved. If it fails
    /// (a full disk), neither the text nor the status changed, and it can be tried again.
    pub fn finish_message(&self, id: i64, rest: &str, status: Status) -> Result<()> {
        let changed = self.conn().execute(
            "UPDATE messages SET content = content || ?1, status = ?2 WHERE id = ?3",
            params![rest, status, id],
        )?;
        if changed == 0 {
            return Err(Error::NotFound {
                what: "message",
                id,
            });
        }
        Ok(())
    }

    /// Sets a message's status (a reply finishing, stopping or failing).
    pub fn set_message_status(&self, id: i64, status: Status) -> Result<()> {
        let changed = self.conn().execute(
            "UPDATE messages SET status = ?1 WHERE id = ?2",
            params![status, id],
        )?;
        if changed == 0 {
            return Err(Error::NotFound {
                what: "message",
                id,
            });
        }
        Ok(())
    }

    /// Replaces the text of one of `user`'s messages (editing before resending).
    pub fn set_message_content(&self, user: i64, id: i64, content: &str) -> Result<()> {
        let now = self.now();
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let conv: Option<i64> = tx
            .query_row(
                "SELECT m.conversation_id FROM messages m
                 JOIN conversations c ON c.id = m.conversation_id
                 WHERE m.id = ?1 AND c.user_id = ?2",
                [id, user],
                |r| r.get(0),
            )
            .optional()?;
        let conv = conv.ok_or(Error::NotFound {
            what: "message",
            id,
        })?;
        tx.execute(
            "UPDATE messages SET content = ?1 WHERE id = ?2",
            params![content, id],
        )?;
        touch(&tx, conv, now)?;
        tx.commit()?;
        Ok(())
    }

    /// Deletes message `first_id` of one of `user`'s conversations and every message written
    /// after it, on any branch; the conversation then shows its newest message left.
    pub fn delete_messages_from(&self, user: i64, conv: i64, first_id: i64) -> Result<()> {
        let now = self.now();
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        check_owner(&tx, user, conv)?;
        let in_conv: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM messages WHERE id = ?1 AND conversation_id = ?2)",
            [first_id, conv],
            |r| r.get(0),
        )?;
        if !in_conv {
            return Err(Error::NotFound {
                what: "message",
                id: first_id,
            });
        }
        tx.execute(
            "DELETE FROM messages WHERE conversation_id = ?1 AND id >= ?2",
            [conv, first_id],
        )?;
        tx.execute(
            "UPDATE conversations SET leaf_id = NULL WHERE id = ?1",
            [conv],
        )?;
        touch(&tx, conv, now)?;
        tx.commit()?;
        Ok(())
    }

    /// Marks `user`'s cut-short reply `id`, the last message of conversation `conv`'s branch in
    /// view, as streaming again so its continuation is appended to it. [`Error::NotFound`] for
    /// anything else (another person's, not cut short, not the last).
    pub fn resume_cut_short(&self, user: i64, conv: i64, id: i64) -> Result<Message> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        check_owner(&tx, user, conv)?;
        let changed = if branches::leaf_of(&tx, conv)? == Some(id) {
            tx.execute(
                "UPDATE messages SET status = 'streaming'
                 WHERE id = ?1 AND conversation_id = ?2 AND status = 'cut_short'
                   AND role = 'assistant'",
                [id, conv],
            )?
        } else {
            0
        };
        if changed == 0 {
            return Err(Error::NotFound {
                what: "message",
                id,
            });
        }
        let m = tx.query_row(
            &format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ?1"),
            [id],
            message_from_row,
        )?;
        touch(&tx, conv, self.now())?;
        tx.commit()?;
        Ok(m)
    }

    /// Turns every reply still marked streaming into interrupted. Call once at startup, before
    /// anything streams: any reply marked streaming then was cut off by a crash or power cut.
    /// Returns how many there were.
    pub fn mark_streaming_interrupted(&self) -> Result<usize> {
        Ok(self.conn().execute(
            "UPDATE messages SET status = 'interrupted' WHERE status = 'streaming'",
            [],
        )?)
    }
}

impl Store {
    /// Makes the database behave as if the disk were full (`true`), or frees it again (`false`),
    /// through SQLite's own limit on the file's size (`PRAGMA max_page_count`): capped at its
    /// current size, every write that needs a new page fails with SQLITE_FULL, the error a full
    /// disk gives. Writes that fit in pages already there still succeed, as on a real disk. For
    /// tests that show no reply text is lost when the disk fills up.
    #[doc(hidden)]
    pub fn set_disk_full_for_tests(&self, full: bool) -> Result<()> {
        let conn = self.conn();
        let pages: i64 = if full {
            conn.query_row("PRAGMA page_count", [], |r| r.get(0))?
        } else {
            // SQLite's largest cap; it lowers the number to its build's own maximum.
            0xFFFF_FFFE
        };
        conn.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::preview;
    use crate::PREVIEW_CHARS;

    #[test]
    fn preview_is_one_line_and_bounded() {
        assert_eq!(preview("  hello\n\n  world "), "hello world");
        let long = "é".repeat(PREVIEW_CHARS + 10);
        let p = preview(&long);
        assert_eq!(p.chars().count(), PREVIEW_CHARS + 1);
        assert!(p.ends_with('…'));
        assert_eq!(preview(""), "");
    }

    #[test]
    fn preview_is_plain_text_not_markdown() {
        let reply = "## **Steps** to bake\n\n1. Mix the *flour* and `water`.\n- See [the recipe](https://example.org/r).\n> Quoted _gently_.\n\n| Amount | Item |\n|---:|---|\n| 2 | eggs |\n\n```python\nprint(1)\n```\n~~old~~ 2 * 3 = snake_case";
        assert_eq!(
            preview(reply),
            "Steps to bake Mix the flour and water. See the recipe. Quoted gently. Amount Item 2 eggs print(1) old 2 * 3 = snake_case"
        );
        // Text without Markdown is untouched.
        assert_eq!(preview("Hello, how are you?"), "Hello, how are you?");
    }
}
