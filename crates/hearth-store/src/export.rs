//! A person's conversations as a file to take away: JSON for programs, Markdown for people.

use serde::Serialize;

use crate::chat::all_conversations;
use crate::{Conversation, Error, Message, MessageRole, Result, Status, Store};

/// Written into every JSON export so a later Hearth (or a script) knows what it reads.
pub const EXPORT_FORMAT: &str = "hearth-conversations";
/// Version of the JSON export layout.
pub const EXPORT_VERSION: u32 = 1;

#[derive(Serialize)]
struct JsonExport<'a> {
    format: &'static str,
    version: u32,
    household: Option<&'a str>,
    person: &'a str,
    exported: i64,
    conversations: &'a [Conversation],
}

/// `secs` (Unix time) as `YYYY-MM-DD HH:MM UTC`.
pub fn format_utc(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let of_day = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        of_day / 3600,
        of_day % 3600 / 60
    )
}

/// `secs` (Unix time) at `offset` minutes east of UTC, as `YYYY-MM-DD HH:MM` and the offset
/// (`UTC+02:00`): an export read in the person's own time zone still says which one it is.
pub fn format_at_offset(secs: i64, offset: i32) -> String {
    if offset == 0 {
        return format_utc(secs);
    }
    let local = format_utc(secs + i64::from(offset) * 60);
    let sign = if offset < 0 { '-' } else { '+' };
    let off = offset.unsigned_abs();
    format!(
        "{} UTC{sign}{:02}:{:02}",
        local.trim_end_matches(" UTC"),
        off / 60,
        off % 60
    )
}

/// The proleptic Gregorian date of a day count from 1970-01-01, by 400-year eras (146,097
/// days each), so it holds for any date without a table.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    // Shift the epoch to 0000-03-01 so leap days fall at the end of a year.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u32;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

impl Store {
    /// The person, household name and all their conversations, read in one lock so the export
    /// is a consistent snapshot.
    fn export_data(&self, user: i64) -> Result<(String, Option<String>, Vec<Conversation>)> {
        let conn = self.conn();
        let name: String = rusqlite::OptionalExtension::optional(conn.query_row(
            "SELECT name FROM users WHERE id = ?1",
            [user],
            |r| r.get(0),
        ))?
        .ok_or(Error::NotFound {
            what: "person",
            id: user,
        })?;
        let household: Option<String> = rusqlite::OptionalExtension::optional(conn.query_row(
            "SELECT name FROM household WHERE id = 1",
            [],
            |r| r.get(0),
        ))?;
        let conversations = all_conversations(&conn, user)?;
        Ok((name, household, conversations))
    }

    /// All of `user`'s conversations as pretty-printed JSON:
    /// `{"format": "hearth-conversations", "version": 1, "household", "person", "exported",
    /// "conversations": [{"id", "title", "created", "updated", "messages": [...]}]}`, newest
    /// conversation first, messages in order.
    pub fn export_json(&self, user: i64) -> Result<String> {
        let (person, household, conversations) = self.export_data(user)?;
        let export = JsonExport {
            format: EXPORT_FORMAT,
            version: EXPORT_VERSION,
            household: household.as_deref(),
            person: &person,
            exported: self.now(),
            conversations: &conversations,
        };
        // Serializing plain strings and numbers cannot fail; map it anyway rather than unwrap.
        serde_json::to_string_pretty(&export).map_err(|e| Error::Invalid {
            field: "export",
            why: e.to_string(),
        })
    }

    /// All of `user`'s conversations as one Markdown document to read or print.
    pub fn export_markdown(&self, user: i64) -> Result<String> {
        let (person, household, conversations) = self.export_data(user)?;
        let mut out = format!("# Conversations of {person}\n\n");
        if let Some(h) = household {
            out.push_str(&format!("Household: {h}  \n"));
        }
        out.push_str(&format!(
            "Exported {} · {} conversation{}\n",
            format_utc(self.now()),
            conversations.len(),
            if conversations.len() == 1 { "" } else { "s" }
        ));
        for c in &conversations {
            out.push_str("\n---\n\n");
            out.push_str(&format!(
                "## {}\n\nStarted {} · last changed {}\n",
                c.title.as_deref().unwrap_or("Untitled conversation"),
                format_utc(c.created),
                format_utc(c.updated)
            ));
            push_messages(&mut out, &person, &c.messages, 0);
            push_others(&mut out, &person, c, 0);
        }
        Ok(out)
    }
}

/// Each message as a `###` heading (who wrote it, when, and for a reply the model that wrote
/// it and how it ended) and its text.
fn push_messages(out: &mut String, person: &str, messages: &[Message], offset: i32) {
    for m in messages {
        let who = match (m.role, &m.model) {
            (MessageRole::User, _) => person.to_string(),
            (MessageRole::Assistant, Some(model)) => format!("Hearth ({model})"),
            (MessageRole::Assistant, None) => "Hearth".to_string(),
        };
        let note = match m.status {
            Status::Complete => "",
            Status::Streaming => " (still being written)",
            Status::Interrupted => " (interrupted)",
            Status::Failed => " (failed)",
            Status::Stopped => " (stopped)",
            Status::CutShort => " (cut short)",
            Status::OutOfRoom => " (ran out of room)",
        };
        out.push_str(&format!(
            "\n### {who} · {}{note}\n\n{}\n",
            format_at_offset(m.created, offset),
            m.content.trim_end()
        ));
    }
}

/// One conversation as a Markdown document to read, keep or print: its title, then each
/// message with who wrote it and when, at `offset` minutes east of UTC (the reader's own time).
/// `person` is the name of whoever wrote its messages (the conversation's owner).
pub fn conversation_markdown(person: &str, c: &Conversation, exported: i64, offset: i32) -> String {
    let title = c
        .title
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .unwrap_or("New chat");
    let mut out = format!(
        "# {title}\n\nA chat of {person} with Hearth · started {} · exported {}\n",
        format_at_offset(c.created, offset),
        format_at_offset(exported, offset)
    );
    push_messages(&mut out, person, &c.messages, offset);
    push_others(&mut out, person, c, offset);
    out
}

/// The messages of other branches, after the branch in view, so an export loses nothing.
fn push_others(out: &mut String, person: &str, c: &Conversation, offset: i32) {
    if c.other_versions.is_empty() {
        return;
    }
    out.push_str(
        "\n#### Other versions in this chat\n\nEarlier wordings of a message, other answers, and what followed them, oldest first.\n",
    );
    push_messages(out, person, &c.other_versions, offset);
}

#[derive(Serialize)]
struct JsonChat<'a> {
    format: &'static str,
    version: u32,
    person: &'a str,
    exported: i64,
    conversation: &'a Conversation,
}

/// Written into a one-chat JSON export.
pub const CHAT_EXPORT_FORMAT: &str = "hearth-conversation";

/// One conversation as pretty-printed JSON: `{"format": "hearth-conversation", "version": 1,
/// "person", "exported", "conversation": {"id", "title", "created", "updated", "messages":
/// [{"id", "role", "content", "status", "created", "model"}, ...]}}`, times in Unix seconds.
pub fn conversation_json(person: &str, c: &Conversation, exported: i64) -> Result<String> {
    let export = JsonChat {
        format: CHAT_EXPORT_FORMAT,
        version: EXPORT_VERSION,
        person,
        exported,
        conversation: c,
    };
    serde_json::to_string_pretty(&export).map_err(|e| Error::Invalid {
        field: "export",
        why: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::format_utc;

    #[test]
    fn dates_match_known_instants() {
        assert_eq!(format_utc(0), "1970-01-01 00:00 UTC");
        // 2000-02-29 12:34:56 UTC, a leap day in a 400-year leap year.
        assert_eq!(format_utc(951_827_696), "2000-02-29 12:34 UTC");
        // 2024-12-31 23:59:59 UTC.
        assert_eq!(format_utc(1_735_689_599), "2024-12-31 23:59 UTC");
        // 1969-12-31 23:00 UTC: before the epoch.
        assert_eq!(format_utc(-3600), "1969-12-31 23:00 UTC");
    }

    #[test]
    fn times_in_the_readers_zone_say_which_zone() {
        use super::format_at_offset;
        assert_eq!(format_at_offset(0, 0), "1970-01-01 00:00 UTC");
        assert_eq!(format_at_offset(0, 120), "1970-01-01 02:00 UTC+02:00");
        // Newfoundland, half an hour off, and the day before.
        assert_eq!(format_at_offset(0, -210), "1969-12-31 20:30 UTC-03:30");
    }
}
