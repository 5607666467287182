//! One chat as a file to keep (the chat header's "Download"): Markdown to read or print, or
//! JSON for programs. The person's whole export (Settings) is `/api/export`; this is one chat.
//!
//! Who may download a chat is exactly who may read it: its owner (`owned`, the same 404 for
//! another person's chat as for a missing one), and the keeper for a child's chat only while the
//! child's settings let the keeper read it (the store's one query that checks so).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use hearth_store::Conversation;
use serde::Deserialize;

use super::super::session::{household, Me};
use super::super::{db, Household};
use super::guard::owned;
use crate::error::ApiError;
use crate::AppState;

/// The widest time zone offsets in use (UTC-12:00 to UTC+14:00), in minutes.
const MOST_OFFSET_MINUTES: i32 = 14 * 60;

#[derive(Deserialize)]
pub struct ChatExportQuery {
    #[serde(default)]
    format: Option<String>,
    /// The reader's time zone, in minutes east of UTC, so the times read as on their clock.
    #[serde(default)]
    offset: Option<i32>,
}

/// `GET /api/conversations/{id}/export?format=markdown|json&offset=MINUTES`.
pub async fn export_chat(
    State(state): State<Arc<AppState>>,
    me: Me,
    Path(id): Path<i64>,
    Query(q): Query<ChatExportQuery>,
) -> Result<Response, ApiError> {
    let h = household(&state)?;
    let c = owned(h, me.user.id, id)?;
    file(h, &me.user.name, &c, &q)
}

/// `GET /api/people/{id}/conversations/{conv}/export`: the keeper keeping a copy of a child's
/// chat they may read.
pub async fn export_child_chat(
    State(state): State<Arc<AppState>>,
    me: Me,
    Path((child, conv)): Path<(i64, i64)>,
    Query(q): Query<ChatExportQuery>,
) -> Result<Response, ApiError> {
    me.require_owner()?;
    let h = household(&state)?;
    let not_shown = || ApiError::not_found("there are no chats here you can read");
    let c = h
        .store
        .child_conversation_for_keeper(child, conv)
        .map_err(db)?
        .ok_or_else(not_shown)?;
    let name = h.store.user(child).map_err(db)?.ok_or_else(not_shown)?.name;
    file(h, &name, &c, &q)
}

fn file(
    h: &Household,
    person: &str,
    c: &Conversation,
    q: &ChatExportQuery,
) -> Result<Response, ApiError> {
    let offset = q.offset.unwrap_or(0);
    if !(-MOST_OFFSET_MINUTES..=MOST_OFFSET_MINUTES).contains(&offset) {
        return Err(ApiError::invalid(
            "offset",
            "the time zone offset is in minutes, from -840 to 840",
        ));
    }
    let now = h.store.now();
    let (body, kind, ext) = match q.format.as_deref().unwrap_or("markdown") {
        "markdown" | "md" => (
            hearth_store::conversation_markdown(person, c, now, offset),
            "text/markdown; charset=utf-8",
            "md",
        ),
        "json" => (
            hearth_store::conversation_json(person, c, now).map_err(db)?,
            "application/json",
            "json",
        ),
        other => {
            return Err(ApiError::invalid(
                "format",
                format!("a chat downloads as markdown or json; got {other:?}"),
            ))
        }
    };
    let disposition = format!(
        "attachment; filename=\"hearth-{}.{ext}\"",
        file_stem(c.title.as_deref())
    );
    Ok((
        [
            (header::CONTENT_TYPE, kind.to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response())
}

/// A file name from a chat's title: its ASCII letters and digits, lowercase, other runs as one
/// `-`, at most 40 characters. The title is the person's text and goes into a header: nothing
/// else of it may reach there (quotes, line breaks, path separators).
fn file_stem(title: Option<&str>) -> String {
    let mut out = String::new();
    for ch in title.unwrap_or("").chars() {
        if ch.is_ascii_alphanumeric() {
            out.push(ch.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
        if out.len() >= 40 {
            break;
        }
    }
    let out = out.trim_end_matches('-');
    if out.is_empty() {
        "chat".to_string()
    } else {
        out.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::file_stem;

    #[test]
    fn file_names_from_titles_hold_only_safe_characters() {
        assert_eq!(
            file_stem(Some("Tea: green or black?")),
            "tea-green-or-black"
        );
        assert_eq!(
            file_stem(Some("\"; evil\r\nX-Header: 1")),
            "evil-x-header-1"
        );
        assert_eq!(file_stem(Some("Émile's ../../passwd")), "mile-s-passwd");
        assert_eq!(file_stem(Some("ثم")), "chat");
        assert_eq!(file_stem(None), "chat");
        assert!(file_stem(Some(&"a".repeat(100))).len() <= 40);
    }
}
