//! A new chat together with its first message (`POST /api/conversations` with `content`): the
//! chat is made only once the message is sent, so a first message that is refused (too long,
//! on a keeper's topic for a child, or anything else the checks or the model refuse) leaves no
//! empty "New chat" on the server for the page to clean up, or to leave behind when it cannot.

use std::sync::Arc;

use axum::Json;
use hearth_store::{MessageRole, Status};
use serde_json::{json, Value};

use super::super::db;
use super::super::session::{household, Me};
use super::guard::reserve;
use super::lengths::{check_content, most_message_tokens_offloaded};
use crate::error::ApiError;
use crate::AppState;

/// Checks `content` as a message to a new chat (titled `title`, if given), starts the reply,
/// and only then makes the chat and stores the message and the reply: `{"conversation",
/// "user", "assistant"}`.
pub(super) async fn create_with_message(
    state: &Arc<AppState>,
    me: &Me,
    title: Option<&str>,
    content: &str,
) -> Result<Json<Value>, ApiError> {
    let h = household(state)?;
    let most = most_message_tokens_offloaded(state.served(), h, &me.user).await?;
    let content = check_content(content, most)?;
    super::steer_question(state, &me.user, content).await?;
    let served = state.served();
    let (prompt, hidden) = super::build_prompt(&served, h, &me.user, &[], Some(content), false)?;
    // On a failure from here on, dropping `gen` cancels the generation.
    let (gen, capped) = super::generate(state, &served, h, prompt)?;
    let conv = h.store.create_conversation(me.user.id, title).map_err(db)?;
    let stored = (|| {
        // Nobody else knows the new chat yet: the slot is free.
        let slot = reserve(h, me.user.id, conv.id)?;
        let user = h
            .store
            .add_message(
                me.user.id,
                conv.id,
                MessageRole::User,
                content,
                Status::Complete,
            )
            .map_err(db)?;
        let assistant = h
            .store
            .add_reply(me.user.id, conv.id, &served.model_id)
            .map_err(db)?;
        Ok::<_, ApiError>((slot, user, assistant))
    })();
    match stored {
        Ok((slot, user, assistant)) => {
            super::spawn_reply(state, slot, &me.user, &assistant, gen, capped, hidden);
            Ok(Json(
                json!({"conversation": conv, "user": user, "assistant": assistant}),
            ))
        }
        Err(e) => {
            // Whatever of it was stored goes with it: no empty chat stays.
            if let Err(d) = h.store.delete_conversation(me.user.id, conv.id) {
                tracing::error!("cannot remove the chat whose first message failed: {d}");
            }
            Err(e)
        }
    }
}
