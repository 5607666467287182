//! The assistant that does things: a reply that calls Hearth's built-in tools.
//!
//! A small model will not choose a tool by itself, so the page asks for one through a visible
//! action ("Save as note" on a message): the action is the person's message, and the model's
//! first turn is forced by grammar to be a call of that tool (`hearth-grammar`'s Hermes
//! `<tool_call>` format with `tool_choice` naming it). Hearth parses the call, runs the tool,
//! gives the model the result as a `tool` message (data, never the system prompt), and the
//! model answers in the same reply, which streams like any other (`drive`, with a child's topic
//! checks).
//!
//! Every call is a step kept with the reply (`hearth-store`'s `tool_steps`) and shown in the
//! chat; each one is in the keeper's audit log. A tool that changes something waits for the
//! person: approve once, always in this chat, or deny (the model is told it was denied). Caps,
//! each reported in words: the call's length in tokens and its time to be written, one call
//! per action, a tool's time to run, and the size of a result handed to the model.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::Json;
use hearth_grammar::{Constraint, ToolMode, ToolSpec};
use hearth_model::chat::ChatMessage;
use hearth_store::{MessageRole, Status, StepOutcome, ToolStep, User};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::oneshot;

use super::super::assistant::{allowed_tools, person_zone};
use super::super::session::{household, Me};
use super::super::{db, Household};
use super::{
    accept_question, build_prompt_with, check_owned, drive, finish_reply, generate, generate_with,
    guard, owned, register_reply, PageEvent, Reply,
};
use crate::error::ApiError;
use crate::generation::Piece;
use crate::AppState;

/// Longest tool call the model may write, in tokens.
const MAX_CALL_TOKENS: usize = 1024;
/// Most time the model may take to write its calls (a busy engine queues it first).
const CALL_DEADLINE: Duration = Duration::from_secs(300);
/// Calls run for one action: the person asked for one thing. The grammar lets a model write
/// more (the Hermes format allows several calls); those repeats are never run.
const ACTION_CALLS: usize = 1;
/// Most time one tool may run before it is cut off.
const TOOL_DEADLINE: Duration = Duration::from_secs(10);
/// How long a call waits for its person's approval before it counts as denied.
const APPROVAL_WAIT: Duration = Duration::from_secs(30 * 60);
/// Longest result handed to the model (and kept in the step), in characters.
const MAX_RESULT_CHARS: usize = 4000;
/// How much of an attached message the model sees again in its own call, in characters.
const MODEL_SEES_CHARS: usize = 200;
/// Longest arguments kept in the audit log, in characters.
const MAX_AUDIT_ARGS_CHARS: usize = 2000;

/// What the person answered to a call that waits for approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Decision {
    Once,
    Always,
    Deny,
}

/// What the reply says back to an answer: `Err` in words when the answer came too late (the
/// reply was stopped, or the keeper turned the tool off meanwhile).
type Ack = oneshot::Sender<Result<(), String>>;

/// A call waiting for approval: whose it is and where to send the answer.
pub(crate) struct Waiting {
    user: i64,
    conv: i64,
    tx: oneshot::Sender<(Decision, Ack)>,
}

/// Calls waiting for approval, by step id.
pub(crate) type Approvals = Mutex<HashMap<i64, Waiting>>;

fn cut(text: &str, most: usize, why: &str) -> String {
    match text.char_indices().nth(most) {
        Some((at, _)) => format!("{}… ({why})", &text[..at]),
        None => text.to_string(),
    }
}

#[derive(Deserialize)]
pub struct ToolBody {
    /// The tool the action calls.
    tool: String,
    /// The person's message that asks for it, in their words (the page writes it).
    content: String,
    /// "Save as note": the message whose text the note holds, word for word.
    #[serde(default)]
    message_id: Option<i64>,
    /// The browser's time zone (IANA), for tools that read or write local times.
    #[serde(default)]
    time_zone: Option<String>,
    #[serde(flatten)]
    seen: guard::Seen,
}

/// `POST /api/conversations/{id}/tool`: a visible action that calls one tool.
pub async fn use_tool(
    State(state): State<Arc<AppState>>,
    me: Me,
    Path(id): Path<i64>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let h = household(&state)?;
    check_owned(h, me.user.id, id)?;
    let b: ToolBody = crate::body::parse_body_async(body).await?;
    let tools = allowed_tools(h, &me.user).map_err(db)?;
    let Some(tool) = tools.into_iter().find(|t| t.name == b.tool) else {
        let _ = h.store.audit_tool(me.user.id, &b.tool, "{}", "not_allowed");
        return Err(not_allowed());
    };
    if let Some(zone) = b.time_zone.as_deref() {
        super::super::assistant::remember_zone(h, me.user.id, zone);
    }
    let mut parameters = tool.parameters.clone();
    let mut attach = None;
    if let Some(mid) = b.message_id {
        if tool.name != "create_note" {
            return Err(ApiError::invalid(
                "message_id",
                "only create_note takes a message",
            ));
        }
        let c = owned(h, me.user.id, id)?;
        let m =
            c.messages.iter().find(|m| m.id == mid).ok_or_else(|| {
                ApiError::invalid("message_id", "that message is not in this chat")
            })?;
        if m.content.trim().is_empty() {
            return Err(ApiError::invalid("message_id", "that message is empty"));
        }
        // The note holds the message word for word: the model writes only its title, and
        // Hearth attaches the text to the call itself, so a long message fits under the call's
        // token cap and its words never reach the system prompt.
        parameters = title_only();
        attach = Some(m.content.clone());
    }
    let spec = ToolSpec {
        name: tool.name.to_string(),
        description: Some(tool.description.to_string()),
        parameters,
    };
    let (slot, content) = accept_question(&state, h, &me.user, id, &b.content).await?;
    let c = owned(h, me.user.id, id)?;
    guard::check_in_view(&c, b.seen.last_seen)?;
    let after = c.messages.last().map(|m| m.id);
    let served = state.served();
    let offer = hearth_grammar::tools::system_prompt(std::slice::from_ref(&spec));
    let (prompt, hidden) = build_prompt_with(
        &served,
        h,
        &me.user,
        &c.messages,
        Some(content),
        false,
        Some(&offer),
        &[],
    )?;
    let env = served.grammar()?;
    let constraint = Constraint::tool_calls(
        &env,
        std::slice::from_ref(&spec),
        &ToolMode::Named(spec.name.clone()),
    )
    .map_err(|e| ApiError::invalid("tool", e.to_string()))?
    .map(|c| Box::new(c) as Box<dyn hearth_model::TokenConstraint>);
    let (gen, _) = generate_with(&state, &served, prompt, MAX_CALL_TOKENS, constraint)?;
    // From here on, dropping `gen` cancels the generation.
    let question = h
        .store
        .add_message_after(
            me.user.id,
            id,
            after,
            MessageRole::User,
            content,
            Status::Complete,
        )
        .map_err(db)?;
    let msg = h
        .store
        .add_reply_after(me.user.id, id, Some(question.id), &served.model_id)
        .map_err(db)?;
    let Some(reply) = register_reply(&state, slot, &me.user, &msg) else {
        return Err(ApiError::internal("the reply could not start"));
    };
    let task_state = state.clone();
    let user = me.user.clone();
    let guard = state.metrics.enter();
    tokio::spawn(async move {
        let _guard = guard;
        if !hidden.is_empty() {
            let _ = reply.tx.send(PageEvent::Context(hidden));
        }
        let status = run(&task_state, &user, &reply, gen, attach).await;
        finish_reply(&task_state, &user, &reply, status);
    });
    Ok(Json(json!({"user": question, "assistant": msg})))
}

/// The arguments the model writes for "Save as note": a one-line title, nothing else.
fn title_only() -> Value {
    json!({"type": "object", "properties": {
        "title": {"type": "string", "pattern": "\\S[^\\n]{0,79}"}},
        "required": ["title"], "additionalProperties": false})
}

/// Puts the saved message's text into a `create_note` call as its `content`; the call the model
/// sees in its history keeps only the start of it (the whole text is already in the chat).
fn attach_content(call: &mut hearth_grammar::tools::Call, content: &str) -> Value {
    let mut args: Value = serde_json::from_str(&call.arguments).unwrap_or(json!({}));
    if !args.is_object() {
        args = json!({});
    }
    args["content"] = json!(content);
    call.arguments = args.to_string();
    args["content"] = json!(cut(
        content,
        MODEL_SEES_CHARS,
        &format!(
            "Hearth attached the message's {} characters",
            content.chars().count()
        )
    ));
    args
}

fn not_allowed() -> ApiError {
    ApiError {
        status: axum::http::StatusCode::FORBIDDEN,
        ..ApiError::bad_request(
            "You cannot use this tool; the household's keeper can turn it on in Settings.",
        )
        .with_code("not_allowed")
    }
}

/// The reply after its forced first turn: the calls run, then the model answers.
async fn run(
    state: &Arc<AppState>,
    user: &User,
    reply: &Reply,
    gen: crate::generation::Generation,
    attach: Option<String>,
) -> Status {
    let Ok(h) = household(state) else {
        return Status::Failed;
    };
    let text = match collect(reply, gen).await {
        Ok(t) => t,
        Err(status) => return end_without_answer(h, reply, status),
    };
    let parsed = hearth_grammar::tools::parse(&text);
    let allowed = match allowed_tools(h, user) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!("cannot read a person's tools: {e}");
            return end_without_answer(h, reply, Status::Failed);
        }
    };
    let mut tail = Vec::new();
    if parsed.calls.is_empty() {
        let _ = reply.tx.send(PageEvent::Error(
            "The model did not write a tool call that Hearth could read.".into(),
        ));
        return end_without_answer(h, reply, Status::Failed);
    }
    let mut calls = parsed.calls;
    calls.truncate(ACTION_CALLS);
    let written: Vec<String> = calls
        .iter_mut()
        .map(|c| {
            let args = match attach.as_deref() {
                Some(content) if c.name == "create_note" => attach_content(c, content),
                _ => serde_json::from_str(&c.arguments).unwrap_or(json!({})),
            };
            format!(
                "{}\n{}\n{}",
                hearth_grammar::tools::OPEN,
                json!({"name": c.name, "arguments": args}),
                hearth_grammar::tools::CLOSE
            )
        })
        .collect();
    tail.push(ChatMessage::new("assistant", &written.join("\n")));
    for call in &calls {
        let Some(result) = call_tool(h, user, reply, &allowed, call).await else {
            return end_without_answer(h, reply, Status::Stopped);
        };
        tail.push(ChatMessage::new(
            "tool",
            &format!("<tool_response>\n{result}\n</tool_response>"),
        ));
    }
    // The answer, with the calls and their results in view.
    let served = state.served();
    let conv = match owned(h, user.id, reply.conv) {
        Ok(c) => c,
        Err(_) => return end_without_answer(h, reply, Status::Failed),
    };
    let answer = build_prompt_with(&served, h, user, &conv.messages, None, false, None, &tail)
        .and_then(|(prompt, _)| generate(state, &served, h, prompt));
    match answer {
        Ok((gen, capped)) => drive(state, user, reply, gen, capped).await,
        Err(e) => {
            let _ = reply.tx.send(PageEvent::Error(e.message.clone()));
            end_without_answer(h, reply, Status::Failed)
        }
    }
}

/// Ends a reply that has no text of its own (its steps say what happened).
fn end_without_answer(h: &Household, reply: &Reply, status: Status) -> Status {
    if let Err(e) = h.store.set_message_status(reply.message_id, status) {
        tracing::error!("cannot end a reply: {e}");
    }
    status
}

/// The text of the model's calls; `Err` with how the reply ends when it was stopped, failed,
/// or took too long.
async fn collect(reply: &Reply, mut gen: crate::generation::Generation) -> Result<String, Status> {
    let deadline = tokio::time::sleep(CALL_DEADLINE);
    tokio::pin!(deadline);
    let mut text = String::new();
    loop {
        if reply.stop.load(Ordering::Relaxed) {
            return Err(Status::Stopped);
        }
        let piece = tokio::select! {
            p = gen.next() => p,
            _ = reply.stop_notify.notified() => return Err(Status::Stopped),
            _ = &mut deadline => {
                let _ = reply.tx.send(PageEvent::Error(format!(
                    "The model took longer than {} seconds to write its tool call, so it was stopped.",
                    CALL_DEADLINE.as_secs()
                )));
                return Err(Status::Failed);
            }
        };
        match piece {
            Some(Ok(Piece::Queued { ahead })) => {
                *reply.queued.lock().unwrap_or_else(|p| p.into_inner()) = Some(ahead);
                let _ = reply.tx.send(PageEvent::Queued(ahead));
            }
            Some(Ok(Piece::Text { text: t, .. })) => {
                *reply.queued.lock().unwrap_or_else(|p| p.into_inner()) = None;
                text.push_str(&t);
            }
            Some(Ok(Piece::Done { .. })) | None => return Ok(text),
            Some(Err(e)) => {
                let _ = reply.tx.send(PageEvent::Error(e.message.clone()));
                return Err(Status::Failed);
            }
        }
    }
}

/// Saves and shows a step as it stands.
fn show(h: &Household, reply: &Reply, step: &ToolStep) {
    if let Err(e) = h
        .store
        .update_tool_step(step.id, step.outcome, &step.result, step.ms)
    {
        tracing::error!("cannot save a tool step: {e}");
    }
    let _ = reply.tx.send(PageEvent::Step(json!(step)));
}

/// Runs one call, asking the person first when the tool changes something; what the model is
/// told (a result, or why there is none). `None` when the reply was stopped meanwhile.
async fn call_tool(
    h: &Household,
    user: &User,
    reply: &Reply,
    allowed: &[hearth_tools::Tool],
    call: &hearth_grammar::tools::Call,
) -> Option<String> {
    let args: Value = serde_json::from_str(&call.arguments).unwrap_or(json!({}));
    let audit_args = cut(&call.arguments, MAX_AUDIT_ARGS_CHARS, "cut");
    let tool = allowed.iter().find(|t| t.name == call.name);
    let waits = match tool {
        Some(t) if !t.read_only => !h
            .store
            .chat_allows(user.id, reply.conv, t.name)
            .unwrap_or(false),
        _ => false,
    };
    let outcome = match (tool, waits) {
        (None, _) => StepOutcome::NotAllowed,
        (Some(_), true) => StepOutcome::Waiting,
        (Some(_), false) => StepOutcome::Running,
    };
    let mut step = match h.store.add_tool_step(
        user.id,
        reply.message_id,
        &call.name,
        &call.arguments,
        outcome,
    ) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("cannot save a tool step: {e}");
            return Some(
                json!({"error": "Hearth could not record this call, so it did not run"})
                    .to_string(),
            );
        }
    };
    let audit = |outcome: &str| {
        if let Err(e) = h
            .store
            .audit_tool(user.id, &call.name, &audit_args, outcome)
        {
            tracing::error!("cannot write the tool audit log: {e}");
        }
    };
    let Some(tool) = tool else {
        step.result = format!("{} cannot use the tool {:?}", user.name, call.name);
        step.ms = Some(0);
        show(h, reply, &step);
        audit("not_allowed");
        return Some(
            json!({"error": "this person may not use this tool; it did not run"}).to_string(),
        );
    };
    let _ = reply.tx.send(PageEvent::Step(json!(step)));
    if waits {
        let (tx, rx) = oneshot::channel();
        h.approvals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                step.id,
                Waiting {
                    user: user.id,
                    conv: reply.conv,
                    tx,
                },
            );
        let answer = tokio::select! {
            d = tokio::time::timeout(APPROVAL_WAIT, rx) => d.ok().and_then(Result::ok),
            _ = reply.stop_notify.notified() => {
                reply.stop.store(true, Ordering::Relaxed);
                None
            }
        };
        h.approvals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&step.id);
        let (decision, ack) = match answer {
            Some((d, ack)) => (Some(d), Some(ack)),
            None => (None, None),
        };
        let refuse = |ack: Option<Ack>, why: &str| {
            if let Some(ack) = ack {
                let _ = ack.send(Err(why.to_string()));
            }
        };
        if reply.stop.load(Ordering::Relaxed) {
            refuse(
                ack,
                "The reply was stopped before your answer arrived; the call did not run.",
            );
            step.outcome = StepOutcome::Denied;
            step.result = "Stopped before it was approved; it did not run.".into();
            show(h, reply, &step);
            audit("stopped");
            return None;
        }
        // The keeper may have turned the tool off during the wait.
        let still = matches!(decision, Some(Decision::Once | Decision::Always))
            && allowed_tools(h, user).is_ok_and(|t| t.iter().any(|t| t.name == tool.name));
        if decision.is_some() && decision != Some(Decision::Deny) && !still {
            refuse(
                ack,
                "The keeper turned this tool off while it waited; the call did not run.",
            );
            step.outcome = StepOutcome::NotAllowed;
            step.result = format!(
                "The keeper turned {} off while it waited; it did not run.",
                tool.name
            );
            show(h, reply, &step);
            audit("not_allowed");
            return Some(
                json!({"error": "this person may not use this tool any more; it did not run"})
                    .to_string(),
            );
        }
        if let Some(ack) = ack {
            let _ = ack.send(Ok(()));
        }
        match decision {
            Some(Decision::Once) => {}
            Some(Decision::Always) => {
                if let Err(e) = h.store.allow_in_chat(user.id, reply.conv, tool.name) {
                    tracing::error!("cannot remember a tool allowed in a chat: {e}");
                }
            }
            Some(Decision::Deny) | None => {
                step.outcome = StepOutcome::Denied;
                step.result = if decision.is_some() {
                    format!("{} denied this call; it did not run.", user.name)
                } else {
                    format!(
                        "No answer within {} minutes; it did not run.",
                        APPROVAL_WAIT.as_secs() / 60
                    )
                };
                show(h, reply, &step);
                audit("denied");
                return Some(json!({"error": format!("the person denied this call of {}; it did not run", tool.name)}).to_string());
            }
        }
        step.outcome = StepOutcome::Running;
        show(h, reply, &step);
    }
    let started = Instant::now();
    let store = h.store.clone();
    let zone = person_zone(h, user.id);
    let (uid, name) = (user.id, tool.name);
    let writes = !tool.read_only;
    let (done, ended) = with_deadline(
        TOOL_DEADLINE,
        writes,
        reply.stop_notify.notified(),
        move || {
            let ctx = hearth_tools::Context {
                store: &store,
                user: uid,
                zone,
                now: jiff::Timestamp::from_second(store.now())
                    .unwrap_or(jiff::Timestamp::UNIX_EPOCH),
            };
            hearth_tools::run(&ctx, name, &args)
        },
    )
    .await;
    step.ms = Some(started.elapsed().as_millis() as i64);
    if ended == Cut::Stop {
        reply.stop.store(true, Ordering::Relaxed);
    }
    let for_model = match done {
        None if ended == Cut::Stop => {
            step.outcome = StepOutcome::Failed;
            step.result = if writes {
                "Stopped before it began; nothing was changed.".into()
            } else {
                "Stopped while it ran.".into()
            };
            show(h, reply, &step);
            audit("stopped");
            return None;
        }
        None => {
            step.outcome = StepOutcome::TimedOut;
            step.result = if writes {
                format!(
                    "The tool could not begin within {} seconds, so it was cancelled; nothing was changed.",
                    TOOL_DEADLINE.as_secs()
                )
            } else {
                format!(
                    "The tool did not answer within {} seconds and was cut off.",
                    TOOL_DEADLINE.as_secs()
                )
            };
            json!({"error": step.result}).to_string()
        }
        Some(Err(e)) => {
            tracing::error!("a tool panicked: {e}");
            step.outcome = StepOutcome::Failed;
            step.result = "The tool failed.".into();
            json!({"error": step.result}).to_string()
        }
        Some(Ok(Err(e))) => {
            step.outcome = StepOutcome::Failed;
            step.result = e.to_string();
            json!({"error": step.result}).to_string()
        }
        Some(Ok(Ok(v))) => {
            step.outcome = StepOutcome::Done;
            step.result = cut(
                &v.to_string(),
                MAX_RESULT_CHARS,
                "cut: a result is at most 4000 characters",
            );
            step.result.clone()
        }
    };
    show(h, reply, &step);
    audit(step.outcome.as_str());
    // A write that had begun when Stop came was waited for, so its step tells what happened;
    // the reply still stops.
    if ended == Cut::Stop {
        return None;
    }
    Some(for_model)
}

/// What ended the wait for a tool before it answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cut {
    None,
    Deadline,
    Stop,
}

/// Where a write tool's job stands: the deadline or Stop can cancel it only before it begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Claim {
    Pending,
    Cancelled,
    Begun,
}

/// Runs `job` on a blocking thread until it answers, `deadline` passes or `stop` fires. A read
/// that hangs is left behind (a thread cannot be killed) and the reply goes on without it. A
/// write (`writes`) is cancelled if it has not begun, atomically with that check, so it never
/// changes anything after its step says it did not run; one that has begun is waited for, and
/// its real result returned with what cut the wait. `None`: no result.
async fn with_deadline<T: Send + 'static>(
    deadline: Duration,
    writes: bool,
    stop: impl std::future::Future<Output = ()>,
    job: impl FnOnce() -> T + Send + 'static,
) -> (Option<Result<T, tokio::task::JoinError>>, Cut) {
    let claim = Arc::new(Mutex::new(Claim::Pending));
    let theirs = claim.clone();
    let mut handle = tokio::task::spawn_blocking(move || {
        if writes {
            let mut c = theirs.lock().unwrap_or_else(|p| p.into_inner());
            if *c == Claim::Cancelled {
                return None;
            }
            *c = Claim::Begun;
        }
        Some(job())
    });
    let flat = |r: Result<Option<T>, tokio::task::JoinError>| match r {
        Ok(v) => v.map(Ok),
        Err(e) => Some(Err(e)),
    };
    let cut = tokio::select! {
        r = &mut handle => return (flat(r), Cut::None),
        _ = tokio::time::sleep(deadline) => Cut::Deadline,
        _ = stop => Cut::Stop,
    };
    if writes {
        let begun = {
            let mut c = claim.lock().unwrap_or_else(|p| p.into_inner());
            if *c == Claim::Pending {
                *c = Claim::Cancelled;
            }
            *c == Claim::Begun
        };
        if begun {
            return (flat(handle.await), cut);
        }
    }
    (None, cut)
}

#[derive(Deserialize)]
pub struct DecideBody {
    decision: Decision,
}

/// `POST /api/conversations/{id}/steps/{step}`: the person's answer to a call that waits.
pub async fn decide(
    State(state): State<Arc<AppState>>,
    me: Me,
    Path((id, step)): Path<(i64, i64)>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let h = household(&state)?;
    check_owned(h, me.user.id, id)?;
    let b: DecideBody = crate::body::parse_body_async(body).await?;
    let waiting = {
        let mut map = h.approvals.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(&step) {
            Some(w) if w.user == me.user.id && w.conv == id => map.remove(&step),
            _ => None,
        }
    };
    let Some(w) = waiting else {
        return Err(ApiError::not_found(
            "this tool call is not waiting for an answer any more",
        ));
    };
    // The reply answers back, so a 200 means the call goes ahead (or is denied) as asked.
    let (ack, told) = oneshot::channel();
    let late = "This tool call is not waiting for an answer any more: it was stopped or timed out.";
    if w.tx.send((b.decision, ack)).is_err() {
        return Err(not_waiting(late));
    }
    match told.await {
        Ok(Ok(())) => Ok(Json(json!({"step": step, "decision": b.decision_name()}))),
        Ok(Err(why)) => Err(not_waiting(&why)),
        Err(_) => Err(not_waiting(late)),
    }
}

fn not_waiting(why: &str) -> ApiError {
    ApiError {
        status: axum::http::StatusCode::CONFLICT,
        ..ApiError::bad_request(why.to_string()).with_code("not_waiting")
    }
}

impl DecideBody {
    fn decision_name(&self) -> &'static str {
        match self.decision {
            Decision::Once => "once",
            Decision::Always => "always",
            Decision::Deny => "deny",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_tool_that_hangs_is_cut_off_at_its_deadline() {
        // The job blocks until the test lets it go: an answer before that can only be the
        // deadline's.
        let (release, hang) = std::sync::mpsc::channel::<()>();
        let never = std::future::pending::<()>();
        let (r, cut) = with_deadline(Duration::from_millis(300), false, never, move || {
            hang.recv().is_ok()
        })
        .await;
        assert!(r.is_none(), "a hanging job must be cut off");
        assert_eq!(cut, Cut::Deadline);
        let _ = release.send(());
        let (r, cut) =
            with_deadline(Duration::from_secs(60), false, std::future::pending(), || 7).await;
        assert_eq!(r.unwrap().unwrap(), 7);
        assert_eq!(cut, Cut::None);
    }

    #[tokio::test]
    async fn a_write_stopped_after_it_began_is_waited_for_and_reported() {
        // The job tells the stop it has begun, then blocks until the stop has fired: Stop comes
        // while the write is under way, whatever the machine's speed.
        let (began, begun) = oneshot::channel::<()>();
        let (release, held) = std::sync::mpsc::channel::<()>();
        let wrote = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let w = wrote.clone();
        let stop = async move {
            let _ = begun.await;
            let _ = release.send(());
        };
        let (r, cut) = with_deadline(Duration::from_secs(600), true, stop, move || {
            let _ = began.send(());
            let _ = held.recv();
            w.store(true, Ordering::SeqCst);
            7
        })
        .await;
        assert_eq!(cut, Cut::Stop);
        assert!(wrote.load(Ordering::SeqCst));
        assert_eq!(r.expect("the write's real result").unwrap(), 7);
    }

    #[test]
    fn long_results_are_cut_in_words() {
        assert_eq!(cut("abcdef", 3, "cut"), "abc… (cut)");
        assert_eq!(cut("abc", 3, "cut"), "abc");
        assert_eq!(cut("ééééé", 2, "cut"), "éé… (cut)");
    }
}
