//! Branches of a conversation: editing any of the person's messages and trying another answer
//! add a version beside the old one rather than replacing it, and the person moves between
//! versions ("2 of 3"). Everything else (the model's prompt, the list, search, the keeper's
//! view) reads the branch in view, which the store keeps as the conversation's leaf.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Json;
use hearth_store::MessageRole;
use serde::Deserialize;
use serde_json::Value;

use super::super::db;
use super::super::session::{household, Me};
use super::guard::{check_owned, owned, reserve};
use super::{accept_question, conversation_json, start_reply};
use crate::error::ApiError;
use crate::AppState;

/// Another answer to the last question in view; the answer there now stays as a version.
pub async fn regenerate(
    State(state): State<Arc<AppState>>,
    me: Me,
    Path(id): Path<i64>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let h = household(&state)?;
    check_owned(h, me.user.id, id)?;
    let seen = super::guard::Seen::from_body(body).await?;
    let slot = reserve(h, me.user.id, id)?;
    // Read with the slot held: nothing can change it now.
    let c = owned(h, me.user.id, id)?;
    super::guard::check_in_view(&c, seen.last_seen)?;
    let (keep, parent) = match c.messages.last() {
        Some(m) if m.role == MessageRole::Assistant => {
            (&c.messages[..c.messages.len() - 1], m.parent_id)
        }
        Some(m) => (&c.messages[..], Some(m.id)),
        None => return Err(ApiError::bad_request("there is nothing to answer yet")),
    };
    start_reply(&state, slot, &me.user, keep, None, parent)
}

#[derive(Deserialize)]
pub struct EditBody {
    content: String,
    /// Which of the person's messages in view; the last one when not given.
    #[serde(default)]
    message_id: Option<i64>,
}

/// A new version of one of the person's messages in view, answered afresh; the old one and
/// everything after it stay as the branch before.
pub async fn edit(
    State(state): State<Arc<AppState>>,
    me: Me,
    Path(id): Path<i64>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let h = household(&state)?;
    check_owned(h, me.user.id, id)?;
    let b: EditBody = crate::body::parse_body_async(body).await?;
    // An edit is a new question: checked as a send is, a child's against the keeper's topics.
    let (slot, content) = accept_question(&state, h, &me.user, id, &b.content).await?;
    // Read only now, with the slot held: nothing can have changed it since.
    let c = owned(h, me.user.id, id)?;
    let at = match b.message_id {
        Some(mid) => {
            let at = c
                .messages
                .iter()
                .position(|m| m.id == mid)
                .ok_or_else(|| ApiError::not_found("no such message in this chat"))?;
            if c.messages[at].role != MessageRole::User {
                return Err(ApiError::invalid(
                    "message_id",
                    "only your own messages can be edited",
                ));
            }
            at
        }
        None => c
            .messages
            .iter()
            .rposition(|m| m.role == MessageRole::User)
            .ok_or_else(|| ApiError::bad_request("there is no message to edit"))?,
    };
    let parent = c.messages[at].parent_id;
    start_reply(
        &state,
        slot,
        &me.user,
        &c.messages[..at],
        Some(content),
        parent,
    )
}

#[derive(Deserialize)]
pub struct SwitchBody {
    message_id: i64,
}

/// Shows another version of a message (and below it the newest continuation written there);
/// answers the conversation as it now reads. Not while a reply is being written in it: the
/// reply belongs to the branch in view.
pub async fn switch_branch(
    State(state): State<Arc<AppState>>,
    me: Me,
    Path(id): Path<i64>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let h = household(&state)?;
    check_owned(h, me.user.id, id)?;
    let b: SwitchBody = crate::body::parse_body_async(body).await?;
    let slot = reserve(h, me.user.id, id)?;
    h.store
        .switch_branch(me.user.id, id, b.message_id)
        .map_err(db)?;
    drop(slot);
    let c = owned(h, me.user.id, id)?;
    Ok(Json(conversation_json(&state, h, &me.user, c)))
}
