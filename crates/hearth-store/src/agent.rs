//! What the household assistant's tools keep: each person's notes and lists, their reminders,
//! every tool call a reply made (its steps), the audit log the keeper reads, which tools each
//! person may use, and the tools a person allowed for a whole chat.
//!
//! Like conversations, every query about a person's things takes their id and filters on it in
//! SQL: another person's note is "not found", the same answer as one that never existed.

use rusqlite::{params, OptionalExtension};
use serde::Serialize;

use crate::{Error, Result, Store};

/// Longest note title, in characters.
pub const MAX_NOTE_TITLE_CHARS: usize = 200;
/// Longest note (or list) content, in characters.
pub const MAX_NOTE_CHARS: usize = 20_000;
/// Longest reminder text, in characters.
pub const MAX_REMINDER_CHARS: usize = 500;
/// Most notes a person keeps; one more is refused in words rather than growing without end.
const MAX_NOTES: i64 = 10_000;
/// Most reminders still to come for one person.
const MAX_PENDING_REMINDERS: i64 = 1_000;

/// A note is text; a list is a note whose content is one item per line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NoteKind {
    Note,
    List,
}
text_enum!(NoteKind, "note kind", Note => "note", List => "list");

/// One of a person's notes or lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Note {
    pub id: i64,
    pub kind: NoteKind,
    pub title: String,
    pub content: String,
    pub created: i64,
    pub updated: i64,
}

/// A reminder: shown in the page at `due` (Unix seconds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reminder {
    pub id: i64,
    pub text: String,
    pub due: i64,
    pub shown: bool,
    pub created: i64,
}

/// Where a tool call stands, or how it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepOutcome {
    /// Waiting for the person to approve or deny it.
    Waiting,
    Running,
    Done,
    /// The tool ran and reported an error (bad arguments, a note that does not exist).
    Failed,
    /// The person denied it.
    Denied,
    /// Cut off at its deadline.
    TimedOut,
    /// The person may not use this tool (or no such tool exists).
    NotAllowed,
}
text_enum!(
    StepOutcome, "tool step outcome",
    Waiting => "waiting", Running => "running", Done => "done", Failed => "failed",
    Denied => "denied", TimedOut => "timed_out", NotAllowed => "not_allowed",
);

/// One tool call of a reply, as the chat shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ToolStep {
    pub id: i64,
    pub message_id: i64,
    pub tool: String,
    /// The arguments object, as JSON text.
    pub arguments: String,
    /// What the tool answered (or why it did not run), as text.
    pub result: String,
    pub outcome: StepOutcome,
    pub started: i64,
    /// How long it ran, in milliseconds; `None` until it ends.
    pub ms: Option<i64>,
}

/// One line of the keeper's audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    pub id: i64,
    pub user_id: i64,
    pub person: String,
    pub tool: String,
    pub arguments: String,
    pub at: i64,
    pub outcome: String,
}

/// Longest tool name and arguments kept in one line of the audit log, in characters.
const MAX_AUDIT_TOOL_CHARS: usize = 64;
const MAX_AUDIT_ARGUMENT_CHARS: usize = 2000;
/// What the keeper reads in place of arguments that are not theirs to read.
const WITHHELD: &str = "(arguments withheld: this person's chats are private to them)";

fn cut_chars(text: &str, most: usize) -> &str {
    match text.char_indices().nth(most) {
        Some((at, _)) => &text[..at],
        None => text,
    }
}

/// A note's title (trimmed, not empty) and content within their caps: the one rule that both
/// creating and editing a note follow.
fn checked_note<'a>(title: &'a str, content: &str) -> Result<&'a str> {
    let title = title.trim();
    if title.is_empty() {
        return Err(Error::Invalid {
            field: "title",
            why: "a note needs a title".into(),
        });
    }
    check_len("title", title, MAX_NOTE_TITLE_CHARS)?;
    check_len("content", content, MAX_NOTE_CHARS)?;
    Ok(title)
}

fn check_len(field: &'static str, text: &str, most: usize) -> Result<()> {
    if text.chars().count() > most {
        return Err(Error::Invalid {
            field,
            why: format!("is longer than {most} characters"),
        });
    }
    Ok(())
}

fn note_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Note> {
    Ok(Note {
        id: r.get(0)?,
        kind: r.get(1)?,
        title: r.get(2)?,
        content: r.get(3)?,
        created: r.get(4)?,
        updated: r.get(5)?,
    })
}

fn reminder_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Reminder> {
    Ok(Reminder {
        id: r.get(0)?,
        text: r.get(1)?,
        due: r.get(2)?,
        shown: r.get::<_, i64>(3)? != 0,
        created: r.get(4)?,
    })
}

fn step_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ToolStep> {
    Ok(ToolStep {
        id: r.get(0)?,
        message_id: r.get(1)?,
        tool: r.get(2)?,
        arguments: r.get(3)?,
        result: r.get(4)?,
        outcome: r.get(5)?,
        started: r.get(6)?,
        ms: r.get(7)?,
    })
}

const NOTE_COLS: &str = "id, kind, title, content, created, updated";
const STEP_COLS: &str =
    "s.id, s.message_id, s.tool, s.arguments, s.result, s.outcome, s.started, s.ms";

impl Store {
    /// A person's notes and lists, most recently changed first.
    pub fn notes(&self, user: i64) -> Result<Vec<Note>> {
        let conn = self.conn();
        let mut st = conn.prepare(&format!(
            "SELECT {NOTE_COLS} FROM notes WHERE user_id = ?1 ORDER BY updated DESC, id DESC"
        ))?;
        let rows = st.query_map([user], note_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// One of a person's notes.
    pub fn note(&self, user: i64, id: i64) -> Result<Note> {
        self.conn()
            .query_row(
                &format!("SELECT {NOTE_COLS} FROM notes WHERE id = ?1 AND user_id = ?2"),
                params![id, user],
                note_row,
            )
            .optional()?
            .ok_or(Error::NotFound { what: "note", id })
    }

    pub fn create_note(
        &self,
        user: i64,
        kind: NoteKind,
        title: &str,
        content: &str,
    ) -> Result<Note> {
        let title = checked_note(title, content)?;
        let now = self.now();
        let conn = self.conn();
        let count: i64 = conn.query_row(
            "SELECT COUNT(*) FROM notes WHERE user_id = ?1",
            [user],
            |r| r.get(0),
        )?;
        if count >= MAX_NOTES {
            return Err(Error::Invalid {
                field: "notes",
                why: format!("a person keeps at most {MAX_NOTES} notes; delete some first"),
            });
        }
        conn.execute(
            "INSERT INTO notes (user_id, kind, title, content, created, updated)
             VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
            params![user, kind, title, content, now],
        )?;
        let id = conn.last_insert_rowid();
        drop(conn);
        self.note(user, id)
    }

    /// Changes a note's title and/or content (what is `None` stays).
    pub fn update_note(
        &self,
        user: i64,
        id: i64,
        title: Option<&str>,
        content: Option<&str>,
    ) -> Result<Note> {
        let old = self.note(user, id)?;
        let content = content.unwrap_or(&old.content);
        let title = checked_note(title.unwrap_or(&old.title), content)?;
        let now = self.now();
        self.conn().execute(
            "UPDATE notes SET title = ?1, content = ?2, updated = ?3 WHERE id = ?4 AND user_id = ?5",
            params![title, content, now, id, user],
        )?;
        self.note(user, id)
    }

    pub fn delete_note(&self, user: i64, id: i64) -> Result<()> {
        let n = self.conn().execute(
            "DELETE FROM notes WHERE id = ?1 AND user_id = ?2",
            params![id, user],
        )?;
        if n == 0 {
            return Err(Error::NotFound { what: "note", id });
        }
        self.checkpoint()
    }

    pub fn add_reminder(&self, user: i64, text: &str, due: i64) -> Result<Reminder> {
        let text = text.trim();
        if text.is_empty() {
            return Err(Error::Invalid {
                field: "text",
                why: "a reminder needs a text".into(),
            });
        }
        check_len("text", text, MAX_REMINDER_CHARS)?;
        let now = self.now();
        let conn = self.conn();
        let pending: i64 = conn.query_row(
            "SELECT COUNT(*) FROM reminders WHERE user_id = ?1 AND shown = 0",
            [user],
            |r| r.get(0),
        )?;
        if pending >= MAX_PENDING_REMINDERS {
            return Err(Error::Invalid {
                field: "reminders",
                why: format!("a person has at most {MAX_PENDING_REMINDERS} reminders to come"),
            });
        }
        conn.execute(
            "INSERT INTO reminders (user_id, text, due, created) VALUES (?1, ?2, ?3, ?4)",
            params![user, text, due, now],
        )?;
        let id = conn.last_insert_rowid();
        Ok(Reminder {
            id,
            text: text.to_string(),
            due,
            shown: false,
            created: now,
        })
    }

    /// A person's reminders not yet dismissed, soonest first.
    pub fn reminders(&self, user: i64) -> Result<Vec<Reminder>> {
        let conn = self.conn();
        let mut st = conn.prepare(
            "SELECT id, text, due, shown, created FROM reminders
             WHERE user_id = ?1 AND shown = 0 ORDER BY due, id",
        )?;
        let rows = st.query_map([user], reminder_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Marks a reminder seen (the person dismissed it in the page).
    pub fn dismiss_reminder(&self, user: i64, id: i64) -> Result<()> {
        let n = self.conn().execute(
            "UPDATE reminders SET shown = 1 WHERE id = ?1 AND user_id = ?2",
            params![id, user],
        )?;
        if n == 0 {
            return Err(Error::NotFound {
                what: "reminder",
                id,
            });
        }
        Ok(())
    }

    pub fn delete_reminder(&self, user: i64, id: i64) -> Result<()> {
        let n = self.conn().execute(
            "DELETE FROM reminders WHERE id = ?1 AND user_id = ?2",
            params![id, user],
        )?;
        if n == 0 {
            return Err(Error::NotFound {
                what: "reminder",
                id,
            });
        }
        Ok(())
    }

    /// Records a tool call of reply `message` (which must be in one of `user`'s conversations).
    pub fn add_tool_step(
        &self,
        user: i64,
        message: i64,
        tool: &str,
        arguments: &str,
        outcome: StepOutcome,
    ) -> Result<ToolStep> {
        let now = self.now();
        let conn = self.conn();
        let n = conn.execute(
            "INSERT INTO tool_steps (message_id, tool, arguments, outcome, started)
             SELECT m.id, ?3, ?4, ?5, ?6 FROM messages m
             JOIN conversations c ON c.id = m.conversation_id
             WHERE m.id = ?1 AND c.user_id = ?2",
            params![message, user, tool, arguments, outcome, now],
        )?;
        if n == 0 {
            return Err(Error::NotFound {
                what: "message",
                id: message,
            });
        }
        let id = conn.last_insert_rowid();
        Ok(ToolStep {
            id,
            message_id: message,
            tool: tool.to_string(),
            arguments: arguments.to_string(),
            result: String::new(),
            outcome,
            started: now,
            ms: None,
        })
    }

    /// Moves a step on (approved: running; ended: with its result and time).
    pub fn update_tool_step(
        &self,
        id: i64,
        outcome: StepOutcome,
        result: &str,
        ms: Option<i64>,
    ) -> Result<()> {
        self.conn().execute(
            "UPDATE tool_steps SET outcome = ?1, result = ?2, ms = ?3 WHERE id = ?4",
            params![outcome, result, ms, id],
        )?;
        Ok(())
    }

    /// The tool steps of the messages of `user`'s conversation `conv`, in order.
    pub fn tool_steps(&self, user: i64, conv: i64) -> Result<Vec<ToolStep>> {
        let conn = self.conn();
        let mut st = conn.prepare(&format!(
            "SELECT {STEP_COLS} FROM tool_steps s
             JOIN messages m ON m.id = s.message_id
             JOIN conversations c ON c.id = m.conversation_id
             WHERE c.id = ?1 AND c.user_id = ?2 ORDER BY s.id"
        ))?;
        let rows = st.query_map(params![conv, user], step_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Steps a crash left waiting or running end as failed at the next start.
    pub fn mark_steps_interrupted(&self) -> Result<()> {
        self.conn().execute(
            "UPDATE tool_steps SET outcome = 'failed',
                 result = 'Hearth stopped before this tool call ended'
             WHERE outcome IN ('waiting', 'running')",
            [],
        )?;
        Ok(())
    }

    /// Adds a line to the audit log.
    pub fn audit_tool(&self, user: i64, tool: &str, arguments: &str, outcome: &str) -> Result<()> {
        // A name or arguments come from a request or a model: a line of the log stays small.
        let tool = cut_chars(tool, MAX_AUDIT_TOOL_CHARS);
        let arguments = cut_chars(arguments, MAX_AUDIT_ARGUMENT_CHARS);
        let now = self.now();
        self.conn().execute(
            "INSERT INTO tool_audit (user_id, tool, arguments, at, outcome)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![user, tool, arguments, now, outcome],
        )?;
        Ok(())
    }

    /// The newest `limit` lines of the audit log, newest first (the keeper's view).
    pub fn audit_log(&self, limit: usize) -> Result<Vec<AuditEntry>> {
        let conn = self.conn();
        let mut st = conn.prepare(
            "SELECT a.id, a.user_id, u.name, a.tool,
                    CASE WHEN u.role = 'owner' OR (u.child = 1 AND u.keeper_sees = 1)
                         THEN a.arguments ELSE ?2 END,
                    a.at, a.outcome
             FROM tool_audit a JOIN users u ON u.id = a.user_id
             ORDER BY a.id DESC LIMIT ?1",
        )?;
        // The keeper reads their own calls and those of a child who lets them read their chats;
        // anyone else's words (a note's text, a reminder) stay theirs.
        let rows = st.query_map(params![limit as i64, WITHHELD], |r| {
            Ok(AuditEntry {
                id: r.get(0)?,
                user_id: r.get(1)?,
                person: r.get(2)?,
                tool: r.get(3)?,
                arguments: r.get(4)?,
                at: r.get(5)?,
                outcome: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The tools the keeper set for a person; `None`: the default for their role.
    pub fn person_tools(&self, user: i64) -> Result<Option<Vec<String>>> {
        let text: Option<Option<String>> = self
            .conn()
            .query_row("SELECT tools FROM users WHERE id = ?1", [user], |r| {
                r.get(0)
            })
            .optional()?;
        let Some(text) = text else {
            return Err(Error::NotFound {
                what: "person",
                id: user,
            });
        };
        // A value that cannot be read gives no tools rather than the role's default: the
        // keeper may have restricted this person.
        Ok(text.map(|t| serde_json::from_str(&t).unwrap_or_default()))
    }

    /// Sets the tools a person may use (`None`: back to the default for their role).
    pub fn set_person_tools(&self, user: i64, tools: Option<&[String]>) -> Result<()> {
        let text = tools.map(|t| serde_json::to_string(t).unwrap_or_else(|_| "[]".into()));
        let n = self.conn().execute(
            "UPDATE users SET tools = ?1 WHERE id = ?2",
            params![text, user],
        )?;
        if n == 0 {
            return Err(Error::NotFound {
                what: "person",
                id: user,
            });
        }
        Ok(())
    }

    /// Whether the person allowed `tool` for every call in their conversation `conv`.
    pub fn chat_allows(&self, user: i64, conv: i64, tool: &str) -> Result<bool> {
        Ok(self.conn().query_row(
            "SELECT EXISTS (SELECT 1 FROM chat_tool_grants g
                 JOIN conversations c ON c.id = g.conversation_id
                 WHERE g.conversation_id = ?1 AND c.user_id = ?2 AND g.tool = ?3)",
            params![conv, user, tool],
            |r| r.get(0),
        )?)
    }

    /// Allows `tool` for the rest of `user`'s conversation `conv`.
    pub fn allow_in_chat(&self, user: i64, conv: i64, tool: &str) -> Result<()> {
        let n = self.conn().execute(
            "INSERT OR IGNORE INTO chat_tool_grants (conversation_id, tool)
             SELECT id, ?3 FROM conversations WHERE id = ?1 AND user_id = ?2",
            params![conv, user, tool],
        )?;
        let _ = n;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::{MessageRole, Secret, Status, Store};

    use super::*;

    #[test]
    fn notes_are_their_owners_only() {
        let s = Store::open_in_memory().unwrap();
        let ana = s.setup("H", "Ana", "correct horse").unwrap();
        let leo = s.add_person("Leo", &Secret::Pin("2468".into())).unwrap();
        let n = s
            .create_note(ana.id, NoteKind::List, " Shopping ", "milk\neggs")
            .unwrap();
        assert_eq!(n.title, "Shopping");
        assert!(matches!(s.note(leo.id, n.id), Err(Error::NotFound { .. })));
        assert!(s.notes(leo.id).unwrap().is_empty());
        assert!(s.update_note(leo.id, n.id, Some("x"), None).is_err());
        assert!(s.delete_note(leo.id, n.id).is_err());
        let n2 = s.update_note(ana.id, n.id, None, Some("milk")).unwrap();
        assert_eq!(
            (n2.title.as_str(), n2.content.as_str()),
            ("Shopping", "milk")
        );
        s.delete_note(ana.id, n.id).unwrap();
        assert!(s.notes(ana.id).unwrap().is_empty());
        assert!(s.create_note(ana.id, NoteKind::Note, "  ", "x").is_err());
    }

    #[test]
    fn steps_grants_tools_and_audit() {
        let s = Store::open_in_memory().unwrap();
        let ana = s.setup("H", "Ana", "correct horse").unwrap();
        let leo = s.add_person("Leo", &Secret::Pin("2468".into())).unwrap();
        let c = s.create_conversation(ana.id, None).unwrap();
        let m = s
            .add_message(ana.id, c.id, MessageRole::Assistant, "", Status::Complete)
            .unwrap();
        assert!(s
            .add_tool_step(leo.id, m.id, "calculator", "{}", StepOutcome::Running)
            .is_err());
        let st = s
            .add_tool_step(ana.id, m.id, "calculator", "{}", StepOutcome::Running)
            .unwrap();
        s.update_tool_step(st.id, StepOutcome::Done, "4", Some(3))
            .unwrap();
        let steps = s.tool_steps(ana.id, c.id).unwrap();
        assert_eq!(steps.len(), 1);
        assert_eq!(
            (steps[0].outcome, steps[0].result.as_str()),
            (StepOutcome::Done, "4")
        );
        assert!(s.tool_steps(leo.id, c.id).unwrap().is_empty());

        assert!(!s.chat_allows(ana.id, c.id, "create_note").unwrap());
        s.allow_in_chat(leo.id, c.id, "create_note").unwrap();
        assert!(!s.chat_allows(ana.id, c.id, "create_note").unwrap());
        s.allow_in_chat(ana.id, c.id, "create_note").unwrap();
        assert!(s.chat_allows(ana.id, c.id, "create_note").unwrap());

        assert_eq!(s.person_tools(leo.id).unwrap(), None);
        s.set_person_tools(leo.id, Some(&["calculator".to_string()]))
            .unwrap();
        assert_eq!(
            s.person_tools(leo.id).unwrap(),
            Some(vec!["calculator".to_string()])
        );

        s.audit_tool(leo.id, "calculator", "{\"expression\":\"1+1\"}", "done")
            .unwrap();
        let log = s.audit_log(10).unwrap();
        assert_eq!(
            (log[0].person.as_str(), log[0].outcome.as_str()),
            ("Leo", "done")
        );
        s.remove_person(leo.id).unwrap();
        assert!(s.audit_log(10).unwrap().is_empty());
    }
}
