//! Conversations on the page, and replies generated in the background.
//!
//! A reply is a task of its own, not tied to the browser's connection: it writes its text to the
//! database at least twice a second while it streams (`chat/saver.rs`), so a locked phone, a
//! closed tab or a crash loses at most the last half second, a full disk loses nothing, and the
//! person finds the reply when they come back. The page follows a running reply through an SSE
//! stream that starts with a snapshot of the text so far, so reconnecting (the phone woke up)
//! shows everything.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use hearth_model::chat::ChatMessage;
use hearth_store::{Message, MessageRole, Status, User};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::{broadcast, Notify};

use super::session::{household, Me};
use super::{db, Household};
use crate::error::ApiError;
use crate::generation::{start_generation, Piece, Plan};
use crate::{AppState, Served};

pub(crate) mod agent;
mod branches;
mod events;
pub(crate) mod export;
mod first;
mod guard;
mod lengths;
mod saver;

pub use agent::{decide, use_tool};
pub use branches::{edit, regenerate, switch_branch};
pub use events::events;

pub(super) use guard::stop_replies_of;
use guard::{check_owned, owned, request_stop, reserve, running, Slot};

pub(crate) use lengths::message_limit;
use lengths::{
    answer_room, check_content, most_message_tokens, most_message_tokens_offloaded,
    prompt_overhead, too_long, NO_ROOM_TO_CONTINUE,
};

/// New text of a child's reply between two topic checks.
const REPLY_CHECK_EVERY_CHARS: usize = 160;

/// What the page hears about a running reply.
#[derive(Clone, Debug)]
pub enum PageEvent {
    Queued(usize),
    Delta(String),
    Context(Vec<i64>),
    Done(Status),
    Error(String),
    /// A tool call of the reply began, waits for approval, or ended (`chat/agent.rs`).
    Step(Value),
}

/// A reply being generated.
pub struct Reply {
    /// Whose conversation it is. Conversation ids can be reused once deleted, so a reply is
    /// found by the conversation *and* its owner, never by the id alone.
    user: i64,
    pub message_id: i64,
    content: Mutex<String>,
    /// Requests ahead while it waits for the engine; `None` once it runs.
    queued: Mutex<Option<usize>>,
    tx: broadcast::Sender<PageEvent>,
    stop: AtomicBool,
    stop_notify: Notify,
    conv: i64,
}

impl Reply {
    fn snapshot(&self) -> String {
        self.content
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

#[derive(Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    q: Option<String>,
}

pub async fn list(
    State(state): State<Arc<AppState>>,
    me: Me,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let h = household(&state)?;
    let search = q.q.as_deref().map(str::trim).filter(|s| !s.is_empty());
    let list = h.store.conversations(me.user.id, search).map_err(db)?;
    // Whether a reply is being written in each, so a page opened meanwhile can say so in the
    // list (the saved preview lags behind the reply, and is empty at its start).
    let list: Vec<Value> = list
        .into_iter()
        .map(|c| {
            let busy = running(h, me.user.id, c.id).is_some();
            let mut v = json!(c);
            v["running"] = json!(busy);
            v
        })
        .collect();
    Ok(Json(json!(list)))
}

#[derive(Deserialize, Default)]
pub struct CreateBody {
    #[serde(default)]
    title: Option<String>,
    /// The first message: the chat is made only if it is sent (`chat/first.rs`).
    #[serde(default)]
    content: Option<String>,
}

pub async fn create(
    State(state): State<Arc<AppState>>,
    me: Me,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let h = household(&state)?;
    let b: CreateBody = if body.is_empty() {
        CreateBody::default()
    } else {
        crate::body::parse_body_async(body).await?
    };
    if let Some(content) = &b.content {
        let title = b.title.as_deref().map(str::trim);
        return first::create_with_message(&state, &me, title, content).await;
    }
    let c = h
        .store
        .create_conversation(me.user.id, b.title.as_deref().map(str::trim))
        .map_err(db)?;
    Ok(Json(json!(c)))
}

pub async fn get_one(
    State(state): State<Arc<AppState>>,
    me: Me,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    let h = household(&state)?;
    let c = owned(h, me.user.id, id)?;
    Ok(Json(conversation_json(&state, h, &me.user, c)))
}

/// A conversation as the page reads it: the branch in view, which of its messages the model no
/// longer sees, and whether a reply is being written.
fn conversation_json(
    state: &Arc<AppState>,
    h: &Household,
    user: &User,
    c: hearth_store::Conversation,
) -> Value {
    let hidden = build_prompt(&state.served(), h, user, &c.messages, None, false)
        .map(|(_, hidden)| hidden)
        .unwrap_or_default();
    let busy = running(h, user.id, c.id).is_some();
    let steps = h.store.tool_steps(user.id, c.id).unwrap_or_else(|e| {
        tracing::error!("cannot read a chat's tool steps: {e}");
        Vec::new()
    });
    let mut v = json!(c);
    v["hidden_from_model"] = json!(hidden);
    v["running"] = json!(busy);
    v["tool_steps"] = json!(steps);
    v
}

#[derive(Deserialize)]
pub struct RenameBody {
    title: String,
}

pub async fn rename(
    State(state): State<Arc<AppState>>,
    me: Me,
    Path(id): Path<i64>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let h = household(&state)?;
    check_owned(h, me.user.id, id)?;
    let b: RenameBody = crate::body::parse_body_async(body).await?;
    let title = b.title.trim();
    if title.is_empty() || title.chars().count() > 120 {
        return Err(ApiError::invalid(
            "title",
            "a title has 1 to 120 characters",
        ));
    }
    h.store
        .rename_conversation(me.user.id, id, title)
        .map_err(db)?;
    Ok(Json(json!({"id": id, "title": title})))
}

pub async fn delete_one(
    State(state): State<Arc<AppState>>,
    me: Me,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    let h = household(&state)?;
    check_owned(h, me.user.id, id)?;
    if let Some(r) = running(h, me.user.id, id) {
        request_stop(&r);
    }
    h.store.delete_conversation(me.user.id, id).map_err(db)?;
    Ok(Json(json!({})))
}

pub async fn delete_all(
    State(state): State<Arc<AppState>>,
    me: Me,
) -> Result<Json<Value>, ApiError> {
    let h = household(&state)?;
    stop_replies_of(h, me.user.id);
    h.store.delete_all_conversations(me.user.id).map_err(db)?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
pub struct SendBody {
    content: String,
    #[serde(flatten)]
    seen: guard::Seen,
}

fn busy() -> ApiError {
    ApiError {
        status: axum::http::StatusCode::CONFLICT,
        ..ApiError::bad_request(
            "Hearth is still answering in this conversation; wait or press Stop",
        )
    }
}

pub async fn send(
    State(state): State<Arc<AppState>>,
    me: Me,
    Path(id): Path<i64>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let h = household(&state)?;
    check_owned(h, me.user.id, id)?;
    let b: SendBody = crate::body::parse_body_async(body).await?;
    let (slot, content) = accept_question(&state, h, &me.user, id, &b.content).await?;
    let c = owned(h, me.user.id, id)?;
    guard::check_in_view(&c, b.seen.last_seen)?;
    let after = c.messages.last().map(|m| m.id);
    start_reply(&state, slot, &me.user, &c.messages, Some(content), after)
}

/// A question for conversation `id`, in the order every route that asks one keeps: within the
/// person's limit, then the reply slot (nothing can change the chat after it), then, for a
/// child, off the keeper's topics. Returns the slot and the question, trimmed.
async fn accept_question<'h, 't>(
    state: &Arc<AppState>,
    h: &'h Household,
    user: &User,
    id: i64,
    text: &'t str,
) -> Result<(Slot<'h>, &'t str), ApiError> {
    let most = most_message_tokens_offloaded(state.served(), h, user).await?;
    let content = check_content(text, most)?;
    let slot = reserve(h, user.id, id)?;
    steer_question(state, user, content).await?;
    Ok((slot, content))
}

/// A child's question on one of their keeper's topics: a kind refusal, and nothing stored or
/// sent to the model.
async fn steer_question(state: &Arc<AppState>, user: &User, text: &str) -> Result<(), ApiError> {
    let h = household(state)?;
    let hit = match super::family::topics_of(h, user) {
        Ok(topics) => super::topics::check(state, &topics, text).await,
        Err(e) => Err(db(e)),
    };
    match hit {
        Ok(None) => Ok(()),
        Ok(Some(_)) => {
            Err(ApiError::invalid("content", super::family::STEERED_QUESTION).with_code("steered"))
        }
        Err(e) => {
            // A child is safe by default: a message that cannot be checked is not sent.
            tracing::error!("the topic check of a child's message failed: {}", e.message);
            Err(ApiError {
                status: axum::http::StatusCode::SERVICE_UNAVAILABLE,
                ..ApiError::bad_request(super::family::QUESTION_CHECK_FAILED)
                    .with_code("check_failed")
            })
        }
    }
}

/// Continues a reply that was cut short, in the same message.
pub async fn continue_reply(
    State(state): State<Arc<AppState>>,
    me: Me,
    Path(id): Path<i64>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let h = household(&state)?;
    check_owned(h, me.user.id, id)?;
    let seen = guard::Seen::from_body(body).await?;
    let slot = reserve(h, me.user.id, id)?;
    // Read with the slot held: nothing can change it now.
    let c = owned(h, me.user.id, id)?;
    guard::check_in_view(&c, seen.last_seen)?;
    let Some(last) = c
        .messages
        .last()
        .filter(|m| m.role == MessageRole::Assistant && m.status == Status::CutShort)
    else {
        return Err(ApiError::bad_request(
            "only a reply that was cut short can be continued",
        ));
    };
    let served = state.served();
    let (prompt, hidden) = build_prompt(&served, h, &me.user, &c.messages, None, true)?;
    let (gen, capped) = generate(&state, &served, h, prompt)?;
    let msg = h
        .store
        .resume_cut_short(me.user.id, id, last.id)
        .map_err(db)?;
    spawn_reply(&state, slot, &me.user, &msg, gen, capped, hidden);
    Ok(Json(json!({"assistant": msg})))
}

pub async fn stop(
    State(state): State<Arc<AppState>>,
    me: Me,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    let h = household(&state)?;
    check_owned(h, me.user.id, id)?;
    if let Some(r) = running(h, me.user.id, id) {
        request_stop(&r);
    }
    Ok(Json(json!({})))
}

/// The conversation as the model sees it: the person's system message (household, their own
/// instructions, a child's limits) and as many of the latest messages as fit in the context
/// with room to answer, then `pending` (a message not stored yet). With `cont`, the last
/// message is a reply to continue: the prompt ends inside it. Returns the prompt tokens and the
/// ids of the messages that had to be left out; a `pending` message that cannot fit even
/// alone is refused in words, before anything is stored.
fn build_prompt(
    state: &Served,
    h: &Household,
    user: &User,
    messages: &[Message],
    pending: Option<&str>,
    cont: bool,
) -> Result<(Vec<u32>, Vec<i64>), ApiError> {
    build_prompt_with(state, h, user, messages, pending, cont, None, &[])
}

/// [`build_prompt`], with `tools` (the text that offers them) after the person's system
/// message, and `tail` (a reply's tool calls and their results, `chat/agent.rs`) after the
/// messages: both always kept, so the oldest messages leave first.
#[allow(clippy::too_many_arguments)]
fn build_prompt_with(
    state: &Served,
    h: &Household,
    user: &User,
    messages: &[Message],
    pending: Option<&str>,
    cont: bool,
    tools: Option<&str>,
    tail: &[ChatMessage],
) -> Result<(Vec<u32>, Vec<i64>), ApiError> {
    let template = state.template.as_ref().ok_or_else(|| {
        ApiError::bad_request(format!(
            "{} is a base model that only continues text, so it cannot chat; the owner can choose another model in Settings",
            state.model_id
        ))
    })?;
    let mut system_text = super::family::system_prompt(h, user);
    if let Some(t) = tools {
        system_text.push_str("\n\n");
        system_text.push_str(t);
    }
    let system = ChatMessage::new("system", &system_text);
    let mut usable: Vec<(Option<i64>, &str, &str)> = messages
        .iter()
        .filter(|m| !(m.role == MessageRole::Assistant && m.content.is_empty()))
        .map(|m| {
            let role = if m.role == MessageRole::User {
                "user"
            } else {
                "assistant"
            };
            (Some(m.id), role, m.content.as_str())
        })
        .collect();
    if let Some(p) = pending {
        usable.push((None, "user", p));
    }
    let room = answer_room(state.ctx);
    let mut first = 0;
    loop {
        let mut msgs = vec![system.clone()];
        msgs.extend(
            usable[first..]
                .iter()
                .map(|(_, role, content)| ChatMessage::new(role, content)),
        );
        msgs.extend(tail.iter().cloned());
        let mut rendered =
            crate::generation::offload::render_blocking(template, &msgs, !cont, None)
                .map_err(|e| ApiError::internal(format!("the chat template failed: {e}")))?;
        if cont {
            // Whatever the template puts after the reply (its end of turn) goes: the model
            // goes on writing the reply itself.
            if let Some(at) = rendered.segments.iter().rposition(|s| !s.trusted) {
                rendered.segments.truncate(at + 1);
            }
        }
        let tokens = state
            .tokenizer
            .encode_rendered(&rendered, state.tokenizer.add_bos());
        let last = usable.len().saturating_sub(1);
        if tokens.len() + room <= state.ctx || first >= last {
            if pending.is_some() && tokens.len() + room > state.ctx {
                let overhead = prompt_overhead(state, h, user);
                return Err(too_long(
                    tokens.len().saturating_sub(overhead),
                    most_message_tokens(state, h, user),
                ));
            }
            if tokens.len() >= state.ctx {
                if cont {
                    return Err(ApiError::bad_request(NO_ROOM_TO_CONTINUE).with_code("too_long"));
                }
                return Err(ApiError::context_overflow(tokens.len(), state.ctx));
            }
            let hidden = usable[..first].iter().filter_map(|m| m.0).collect();
            return Ok((tokens, hidden));
        }
        first += 1;
    }
}

/// Starts generating on the served model: the reply runs to its end, the context's or the
/// household's longest reply. Also says which of the two limits it: `true` for the household's
/// (a reply that reaches it is cut short and can be continued).
fn generate(
    state: &Arc<AppState>,
    served: &Arc<Served>,
    h: &Household,
    prompt: Vec<u32>,
) -> Result<(crate::generation::Generation, bool), ApiError> {
    generate_with(state, served, prompt, h.reply_tokens, None)
}

/// [`generate`] with its own longest reply and a constraint (a tool call forced by grammar).
fn generate_with(
    state: &Arc<AppState>,
    served: &Arc<Served>,
    prompt: Vec<u32>,
    most: usize,
    constraint: Option<Box<dyn hearth_model::TokenConstraint>>,
) -> Result<(crate::generation::Generation, bool), ApiError> {
    let room = served.ctx - prompt.len();
    let capped = most <= room;
    let max_tokens = room.min(most);
    let sampler = hearth_model::SamplerConfig {
        seed: rand::random(),
        ..served.defaults.clone()
    };
    start_generation(
        state,
        served,
        Plan {
            prompt,
            max_tokens,
            stops: Vec::new(),
            sampler,
            logprobs: None,
            constraint,
        },
    )
    .map(|g| (g, capped))
}

/// Starts a reply in `conv` to `keep` (the branch it continues) and then `pending`, the
/// person's new message. Nothing is stored until the model has taken the request: then
/// `pending` is stored under message `after` (the end of `keep`), and the reply under it (or
/// under `after`, for another answer). What was there stays as another branch. A message that
/// was not sent is never stored, so sending it again cannot make a copy.
fn start_reply(
    state: &Arc<AppState>,
    slot: Slot<'_>,
    user: &User,
    keep: &[Message],
    pending: Option<&str>,
    after: Option<i64>,
) -> Result<Json<Value>, ApiError> {
    let h = household(state)?;
    let conv = slot.conv;
    let served = state.served();
    let (prompt, hidden) = build_prompt(&served, h, user, keep, pending, false)?;
    let (gen, capped) = generate(state, &served, h, prompt)?;
    // On a failure from here on, dropping `gen` cancels the generation.
    let message = match pending {
        Some(content) => Some(
            h.store
                .add_message_after(
                    user.id,
                    conv,
                    after,
                    MessageRole::User,
                    content,
                    Status::Complete,
                )
                .map_err(db)?,
        ),
        None => None,
    };
    let parent = message.as_ref().map(|m| m.id).or(after);
    let msg = h
        .store
        .add_reply_after(user.id, conv, parent, &served.model_id)
        .map_err(db)?;
    spawn_reply(state, slot, user, &msg, gen, capped, hidden);
    Ok(Json(match message {
        Some(m) => json!({"user": m, "assistant": msg}),
        None => json!({"assistant": msg}),
    }))
}

/// Follows `gen` into reply `msg` in the background (its text so far is kept: a continued
/// reply grows).
fn spawn_reply(
    state: &Arc<AppState>,
    slot: Slot<'_>,
    user: &User,
    msg: &Message,
    gen: crate::generation::Generation,
    capped: bool,
    hidden: Vec<i64>,
) {
    let Some(reply) = register_reply(state, slot, user, msg) else {
        return;
    };
    let state = state.clone();
    let guard = state.metrics.enter();
    let user = user.clone();
    tokio::spawn(async move {
        let _guard = guard;
        if !hidden.is_empty() {
            let _ = reply.tx.send(PageEvent::Context(hidden));
        }
        let status = drive(&state, &user, &reply, gen, capped).await;
        finish_reply(&state, &user, &reply, status);
    });
}

/// Makes `msg` the running reply of the slot's conversation (the slot becomes its entry among
/// the replies).
fn register_reply(
    state: &Arc<AppState>,
    slot: Slot<'_>,
    user: &User,
    msg: &Message,
) -> Option<Arc<Reply>> {
    let conv = slot.conv;
    let h = household(state).ok()?;
    let (tx, _) = broadcast::channel(256);
    let reply = Arc::new(Reply {
        user: user.id,
        message_id: msg.id,
        content: Mutex::new(msg.content.clone()),
        queued: Mutex::new(None),
        tx,
        stop: AtomicBool::new(false),
        stop_notify: Notify::new(),
        conv,
    });
    h.replies
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(conv, reply.clone());
    // The reply runs: the slot is now its entry among the replies.
    drop(slot);
    Some(reply)
}

/// The end of a running reply, however it ended: the chat named, the reply's entry gone, and
/// the pages told.
fn finish_reply(state: &Arc<AppState>, user: &User, reply: &Arc<Reply>, status: Status) {
    let conv = reply.conv;
    {
        if let Ok(h) = household(state) {
            // However the first reply ended (stopped or failed too), the chat is named after
            // the person's first message rather than staying "New chat".
            auto_title(h, user.id, conv);
            let mut replies = h.replies.lock().unwrap_or_else(|p| p.into_inner());
            // The conversation may have been deleted and its id given to a new one, with a
            // reply of its own: only this reply leaves.
            if replies.get(&conv).is_some_and(|r| Arc::ptr_eq(r, reply)) {
                replies.remove(&conv);
            }
        }
        let _ = reply.tx.send(PageEvent::Done(status));
    }
}

/// Streams a generation into the reply and the database; returns how it ended, as stored
/// (only once all of its text is).
///
/// A child's reply is checked against their keeper's topics as it grows, and held back until it
/// is: only text that passed a check reaches the page, the reply's content and the database.
/// One that goes onto a topic (or that cannot be checked) is stopped, what was held back is
/// dropped unseen, and the message becomes a kind note.
async fn drive(
    state: &Arc<AppState>,
    user: &User,
    reply: &Reply,
    mut gen: crate::generation::Generation,
    capped: bool,
) -> Status {
    let Ok(h) = household(state) else {
        return Status::Failed;
    };
    let topics = match super::family::topics_of(h, user) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!("cannot read a child's topics, so their reply is not written: {e}");
            drop(gen);
            return replace_with_note(h, user, reply, super::family::CHECK_FAILED);
        }
    };
    // Released text (what the page and the database have), for the check's window; and text
    // written by the model but not checked yet.
    let mut passed = reply.snapshot();
    let mut held = String::new();
    let mut caught: Option<&str> = None;
    let mut saver = saver::Saver::new(&h.store, reply.message_id);
    let mut last_queue = None;
    let status = loop {
        if reply.stop.load(Ordering::Relaxed) {
            break Status::Stopped;
        }
        let piece = tokio::select! {
            p = gen.next() => p,
            _ = reply.stop_notify.notified() => break Status::Stopped,
        };
        match piece {
            Some(Ok(Piece::Queued { ahead })) => {
                if last_queue != Some(ahead) {
                    last_queue = Some(ahead);
                    *reply.queued.lock().unwrap_or_else(|p| p.into_inner()) = Some(ahead);
                    let _ = reply.tx.send(PageEvent::Queued(ahead));
                }
            }
            // The longest reply was reached before the model ended it: not complete. Only the
            // household's longest reply can be gone past (Continue); a full context cannot.
            Some(Ok(Piece::Done {
                finish_reason: "length",
            })) => {
                break if capped {
                    Status::CutShort
                } else {
                    Status::OutOfRoom
                }
            }
            None | Some(Ok(Piece::Done { .. })) => break Status::Complete,
            Some(Err(e)) => {
                let _ = reply.tx.send(PageEvent::Error(e.message.clone()));
                break Status::Failed;
            }
            Some(Ok(Piece::Text { text, .. })) => {
                *reply.queued.lock().unwrap_or_else(|p| p.into_inner()) = None;
                if text.is_empty() {
                    continue;
                }
                if topics.is_empty() {
                    release(reply, &mut saver, &text);
                    continue;
                }
                held.push_str(&text);
                if held.len() >= REPLY_CHECK_EVERY_CHARS {
                    caught = check_reply(state, &topics, &passed, &held).await;
                    if caught.is_some() {
                        break Status::Stopped;
                    }
                    release(reply, &mut saver, &held);
                    passed.push_str(&held);
                    held.clear();
                }
            }
        }
    };
    // Dropping the generation (on Stop) cancels it in the engine at its next step.
    drop(gen);
    // What is still held back is checked before the reply ends, however it ended.
    if caught.is_none() && !held.is_empty() {
        caught = check_reply(state, &topics, &passed, &held).await;
        if caught.is_none() {
            release(reply, &mut saver, &held);
        }
    }
    if let Some(note) = caught {
        // Only checked text was ever saved; it goes too, and the note takes its place.
        drop(saver);
        return replace_with_note(h, user, reply, note);
    }
    // Until all of the text is stored the reply stays running: the page keeps showing it from
    // memory, and it reads as finished only once the database has every word.
    saver.finish(status, saver::KEEP_TRYING_FOR).await
}

/// Text that may be shown: to the reply's content (for pages that join later), the database
/// and the page.
fn release(reply: &Reply, saver: &mut saver::Saver<'_>, text: &str) {
    reply
        .content
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push_str(text);
    saver.push(text);
    let _ = reply.tx.send(PageEvent::Delta(text.to_string()));
}

/// A child's reply that must not be shown becomes `note`, in memory and stored, before the page
/// hears it ended (the page then reads the stored message).
fn replace_with_note(h: &Household, user: &User, reply: &Reply, note: &str) -> Status {
    *reply.content.lock().unwrap_or_else(|p| p.into_inner()) = note.to_string();
    let stored = h
        .store
        .set_message_content(user.id, reply.message_id, note)
        .and_then(|()| {
            h.store
                .set_message_status(reply.message_id, Status::Stopped)
        });
    if let Err(e) = stored {
        tracing::error!("cannot replace a child's reply with its note: {e}");
    }
    Status::Stopped
}

/// Checks `held`, the newest text of a child's reply, with the end of what was released before
/// it for context; the note to show instead if it must not be shown. A check that cannot run
/// keeps the text back too (children are safe by default), with its own note.
async fn check_reply(
    state: &Arc<AppState>,
    topics: &[String],
    passed: &str,
    held: &str,
) -> Option<&'static str> {
    let window = super::topics::reply_window(passed, held, super::topics::REPLY_WINDOW_CHARS);
    match super::topics::check(state, topics, &window).await {
        Ok(None) => None,
        Ok(Some(_)) => Some(super::family::STEERED_REPLY),
        Err(e) => {
            tracing::error!(
                "the topic check of a child's reply failed, so it is held back: {}",
                e.message
            );
            Some(super::family::CHECK_FAILED)
        }
    }
}

/// Names an untitled conversation after the person's first message.
fn auto_title(h: &Household, user: i64, conv: i64) {
    let Ok(Some(c)) = h.store.conversation(user, conv) else {
        return;
    };
    if !c.title.as_deref().unwrap_or("").trim().is_empty() {
        return;
    }
    let Some(first) = c.messages.iter().find(|m| m.role == MessageRole::User) else {
        return;
    };
    let line = first.content.lines().next().unwrap_or("").trim();
    let mut title = String::new();
    for word in line.split_whitespace() {
        if title.chars().count() + word.chars().count() + 1 > 48 {
            title.push('…');
            break;
        }
        if !title.is_empty() {
            title.push(' ');
        }
        title.push_str(word);
    }
    if title.is_empty() {
        title = "New chat".into();
    }
    let _ = h.store.rename_conversation(user, conv, &title);
}

#[derive(Deserialize)]
pub struct ExportQuery {
    #[serde(default)]
    format: Option<String>,
}

pub async fn export(
    State(state): State<Arc<AppState>>,
    me: Me,
    Query(q): Query<ExportQuery>,
) -> Result<Response, ApiError> {
    let h = household(&state)?;
    let (body, kind, ext) = match q.format.as_deref().unwrap_or("json") {
        "json" => (
            h.store.export_json(me.user.id).map_err(db)?,
            "application/json",
            "json",
        ),
        "markdown" | "md" => (
            h.store.export_markdown(me.user.id).map_err(db)?,
            "text/markdown; charset=utf-8",
            "md",
        ),
        other => {
            return Err(ApiError::invalid(
                "format",
                format!("export format must be json or markdown; got {other:?}"),
            ))
        }
    };
    let name = format!("attachment; filename=\"hearth-conversations.{ext}\"");
    Ok((
        [
            (header::CONTENT_TYPE, kind.to_string()),
            (header::CONTENT_DISPOSITION, name),
        ],
        body,
    )
        .into_response())
}
