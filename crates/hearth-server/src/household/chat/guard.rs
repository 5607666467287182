//! Which conversation and which reply a request may touch: a conversation is only ever one of
//! the caller's own (another person's answers as a missing one does), and each conversation has
//! one reply slot, taken before anything is stored, so two quick sends cannot start two replies.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::super::{db, Household};
use super::{busy, Reply};
use crate::error::ApiError;

// Every route that takes a conversation id checks first of all that it is one of this
// person's, with `owned` or `check_owned`: before reading the body, before looking at replies,
// before changing anything. Another person's conversation then gets exactly the answer a
// missing one gets, whatever it is doing, and nothing of theirs is touched.

/// One of this person's conversations, or 404 (another person's is as absent as a missing one).
pub(super) fn owned(
    h: &Household,
    user: i64,
    id: i64,
) -> Result<hearth_store::Conversation, ApiError> {
    h.store
        .conversation(user, id)
        .map_err(db)?
        .ok_or_else(not_found)
}

/// `Ok` if conversation `id` is this person's, else the same 404 as [`owned`].
pub(super) fn check_owned(h: &Household, user: i64, id: i64) -> Result<(), ApiError> {
    if h.store.has_conversation(user, id).map_err(db)? {
        Ok(())
    } else {
        Err(not_found())
    }
}

/// What the page showed when it asked: the id of the last message in view (0 for an empty
/// chat). API clients that leave it out act on the branch in view, whatever it is.
#[derive(serde::Deserialize, Default)]
pub(crate) struct Seen {
    #[serde(default)]
    pub(crate) last_seen: Option<i64>,
}

impl Seen {
    /// An optional JSON body of a route that needs nothing else.
    pub(super) async fn from_body(body: axum::body::Bytes) -> Result<Seen, ApiError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Seen::default());
        }
        crate::body::parse_body_async(body).await
    }
}

/// Refuses with 409 when the branch in view has moved on since the page drew it (another
/// window sent, edited or moved between versions): answering then would answer a branch the
/// person is not looking at. The page reloads the chat and says so.
pub(super) fn check_in_view(
    c: &hearth_store::Conversation,
    last_seen: Option<i64>,
) -> Result<(), ApiError> {
    let Some(seen) = last_seen else {
        return Ok(());
    };
    let last = c.messages.last().map_or(0, |m| m.id);
    if seen == last {
        Ok(())
    } else {
        Err(ApiError {
            status: axum::http::StatusCode::CONFLICT,
            ..ApiError::bad_request(
                "This chat changed in another window; it now shows what is there. Send again if you still want to.",
            )
            .with_code("changed")
        })
    }
}

fn not_found() -> ApiError {
    ApiError::not_found("no such conversation")
}

/// The reply running in `user`'s conversation `conv`, if any.
pub(super) fn running(h: &Household, user: i64, conv: i64) -> Option<Arc<Reply>> {
    h.replies
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&conv)
        .filter(|r| r.user == user)
        .cloned()
}

/// A conversation's one reply slot, held from the first check of a send (or edit, regenerate,
/// continue) until its reply runs, so two quick sends cannot both start one: the second is
/// told the chat is busy. Dropping it (any refusal or failure on the way) frees the slot.
pub(super) struct Slot<'a> {
    pub(super) h: &'a Household,
    pub(super) conv: i64,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.h
            .starting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.conv);
    }
}

/// Takes conversation `conv`'s reply slot, or answers busy if a reply runs or is starting.
pub(super) fn reserve(h: &Household, user: i64, conv: i64) -> Result<Slot<'_>, ApiError> {
    // Always the replies first, then `starting`: the order `spawn_reply` takes them in too.
    let replies = h.replies.lock().unwrap_or_else(|p| p.into_inner());
    if replies.get(&conv).is_some_and(|r| r.user == user) {
        return Err(busy());
    }
    let mut starting = h.starting.lock().unwrap_or_else(|p| p.into_inner());
    if !starting.insert(conv) {
        return Err(busy());
    }
    Ok(Slot { h, conv })
}

/// Stops every reply running for `user` (they deleted all their conversations, or the owner
/// removed them), and no one else's.
pub(in crate::household) fn stop_replies_of(h: &Household, user: i64) {
    let replies = h.replies.lock().unwrap_or_else(|p| p.into_inner());
    for r in replies.values().filter(|r| r.user == user) {
        request_stop(r);
    }
}

pub(super) fn request_stop(r: &Reply) {
    r.stop.store(true, Ordering::Relaxed);
    r.stop_notify.notify_one();
}
