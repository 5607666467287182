//! What the assistant's tools keep, as the page reads it: a person's notes and lists and their
//! reminders (their own only), the tools each person may use (set by the keeper; a child has
//! none until the keeper turns some on), and the audit log of every tool call (the keeper's).
//! The tool loop itself is `chat/agent.rs`.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Json;
use hearth_store::{NoteKind, PersonRole, User};
use serde::Deserialize;
use serde_json::{json, Value};

use super::session::{household, Me};
use super::{db, Household};
use crate::error::ApiError;
use crate::AppState;

/// Lines of the audit log the keeper's page reads.
const AUDIT_LINES: usize = 500;

/// The built-in tools `user` may use: the keeper's choice for them, else every tool for a
/// grown-up and none for a child.
pub(crate) fn allowed_tools(
    h: &Household,
    user: &User,
) -> Result<Vec<hearth_tools::Tool>, hearth_store::Error> {
    let all = hearth_tools::builtin();
    Ok(match h.store.person_tools(user.id)? {
        Some(names) => all
            .into_iter()
            .filter(|t| names.iter().any(|n| n == t.name))
            .collect(),
        None if user.role == PersonRole::Child => Vec::new(),
        None => all,
    })
}

fn zone_key(user: i64) -> String {
    format!("time_zone.{user}")
}

/// The person's time zone as their browser last gave it (UTC until then).
pub(crate) fn person_zone(h: &Household, user: i64) -> jiff::tz::TimeZone {
    h.store
        .setting(&zone_key(user))
        .ok()
        .flatten()
        .and_then(|z| jiff::tz::TimeZone::get(&z).ok())
        .unwrap_or(jiff::tz::TimeZone::UTC)
}

/// Keeps the browser's time zone for the person's tools (a name jiff does not know is ignored:
/// the tools then keep the last good one).
pub(crate) fn remember_zone(h: &Household, user: i64, zone: &str) {
    if zone.len() > 64 || jiff::tz::TimeZone::get(zone).is_err() {
        return;
    }
    if let Err(e) = h.store.set_setting(&zone_key(user), zone) {
        tracing::warn!("cannot keep a person's time zone: {e}");
    }
}

fn tool_json(t: &hearth_tools::Tool, enabled: bool) -> Value {
    json!({"name": t.name, "description": t.description, "read_only": t.read_only,
        "enabled": enabled})
}

/// `GET /api/tools`: the tools the person may use.
pub async fn my_tools(State(state): State<Arc<AppState>>, me: Me) -> Result<Json<Value>, ApiError> {
    let h = household(&state)?;
    let tools = allowed_tools(h, &me.user).map_err(db)?;
    Ok(Json(json!(tools
        .iter()
        .map(|t| tool_json(t, true))
        .collect::<Vec<_>>())))
}

/// `GET /api/people/{id}/tools` (the keeper): every tool, and whether this person may use it.
pub async fn person_tools(
    State(state): State<Arc<AppState>>,
    me: Me,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    me.require_owner()?;
    let h = household(&state)?;
    let person = h
        .store
        .user(id)
        .map_err(db)?
        .ok_or_else(|| ApiError::not_found(format!("person {id} was not found")))?;
    let allowed = allowed_tools(h, &person).map_err(db)?;
    let custom = h.store.person_tools(id).map_err(db)?.is_some();
    let tools: Vec<Value> = hearth_tools::builtin()
        .iter()
        .map(|t| tool_json(t, allowed.iter().any(|a| a.name == t.name)))
        .collect();
    Ok(Json(
        json!({"person": id, "default": !custom, "tools": tools}),
    ))
}

#[derive(Deserialize)]
pub struct ToolsBody {
    /// The tools this person may use; `null`: back to the default for their role.
    tools: Option<Vec<String>>,
}

/// `PUT /api/people/{id}/tools` (the keeper).
pub async fn set_person_tools(
    State(state): State<Arc<AppState>>,
    me: Me,
    Path(id): Path<i64>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    me.require_owner()?;
    let h = household(&state)?;
    let b: ToolsBody = crate::body::parse_body_async(body).await?;
    if let Some(names) = &b.tools {
        if let Some(bad) = names.iter().find(|n| hearth_tools::find(n).is_none()) {
            return Err(ApiError::invalid(
                "tools",
                format!("there is no tool named {bad:?}"),
            ));
        }
    }
    h.store
        .set_person_tools(id, b.tools.as_deref())
        .map_err(db)?;
    person_tools(State(state), me, Path(id)).await
}

/// `GET /api/audit` (the keeper): the newest tool calls of everyone, newest first.
pub async fn audit(State(state): State<Arc<AppState>>, me: Me) -> Result<Json<Value>, ApiError> {
    me.require_owner()?;
    let h = household(&state)?;
    Ok(Json(json!(h.store.audit_log(AUDIT_LINES).map_err(db)?)))
}

/// `GET /api/notes`: the person's own notes and lists.
pub async fn notes(State(state): State<Arc<AppState>>, me: Me) -> Result<Json<Value>, ApiError> {
    let h = household(&state)?;
    Ok(Json(json!(h.store.notes(me.user.id).map_err(db)?)))
}

#[derive(Deserialize)]
pub struct NoteBody {
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    kind: Option<String>,
}

/// `POST /api/notes`: a note the person writes themselves.
pub async fn create_note(
    State(state): State<Arc<AppState>>,
    me: Me,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let h = household(&state)?;
    let b: NoteBody = crate::body::parse_body_async(body).await?;
    let kind = match b.kind.as_deref() {
        None | Some("note") => NoteKind::Note,
        Some("list") => NoteKind::List,
        Some(_) => return Err(ApiError::invalid("kind", "a note's kind is note or list")),
    };
    let n = h
        .store
        .create_note(
            me.user.id,
            kind,
            b.title.as_deref().unwrap_or(""),
            b.content.as_deref().unwrap_or(""),
        )
        .map_err(db)?;
    Ok(Json(json!(n)))
}

/// `PATCH /api/notes/{id}`.
pub async fn update_note(
    State(state): State<Arc<AppState>>,
    me: Me,
    Path(id): Path<i64>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let h = household(&state)?;
    let b: NoteBody = crate::body::parse_body_async(body).await?;
    let n = h
        .store
        .update_note(me.user.id, id, b.title.as_deref(), b.content.as_deref())
        .map_err(db)?;
    Ok(Json(json!(n)))
}

/// `DELETE /api/notes/{id}`.
pub async fn delete_note(
    State(state): State<Arc<AppState>>,
    me: Me,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    let h = household(&state)?;
    h.store.delete_note(me.user.id, id).map_err(db)?;
    Ok(Json(json!({})))
}

/// `GET /api/reminders`: the person's reminders not dismissed yet, soonest first, with the
/// server's time so the page judges which are due by the same clock.
pub async fn reminders(
    State(state): State<Arc<AppState>>,
    me: Me,
) -> Result<Json<Value>, ApiError> {
    let h = household(&state)?;
    let list = h.store.reminders(me.user.id).map_err(db)?;
    Ok(Json(json!({"now": h.store.now(), "reminders": list})))
}

/// `POST /api/reminders/{id}/dismiss`.
pub async fn dismiss_reminder(
    State(state): State<Arc<AppState>>,
    me: Me,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    let h = household(&state)?;
    h.store.dismiss_reminder(me.user.id, id).map_err(db)?;
    Ok(Json(json!({})))
}
