//! A running reply as the page follows it: an SSE stream that starts with a snapshot of the
//! text so far and the reply's tool steps, then every change.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::sse::Event as SseEvent;
use axum::response::Response;
use serde_json::{json, Value};
use tokio::sync::broadcast;

use super::super::session::{household, Me};
use super::{check_owned, running, PageEvent};
use crate::error::ApiError;
use crate::AppState;

fn sse_json(event: &str, v: Value) -> SseEvent {
    SseEvent::default().event(event).data(v.to_string())
}

pub async fn events(
    State(state): State<Arc<AppState>>,
    me: Me,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    let h = household(&state)?;
    check_owned(h, me.user.id, id)?;
    let (tx, rx) = tokio::sync::mpsc::channel::<SseEvent>(64);
    match running(h, me.user.id, id) {
        None => {
            let _ = tx.send(sse_json("idle", json!({}))).await;
        }
        Some(reply) => {
            // Subscribe before the snapshot so nothing falls between them.
            let mut sub = reply.tx.subscribe();
            let snapshot = reply.snapshot();
            let mid = reply.message_id;
            let _ = tx
                .send(sse_json(
                    "snapshot",
                    json!({"message_id": mid, "content": snapshot}),
                ))
                .await;
            // Its tool calls so far (one may be waiting for this person's answer): their
            // events may have been sent before this page listened.
            let steps = h.store.tool_steps(me.user.id, id).unwrap_or_default();
            for step in steps.into_iter().filter(|s| s.message_id == mid) {
                let _ = tx.send(sse_json("step", json!(step))).await;
            }
            // Still waiting for its turn: say where it stands (the `queued` event that said so
            // was sent before this page listened).
            let waiting = *reply.queued.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(ahead) = waiting {
                let _ = tx.send(sse_json("queued", json!({"ahead": ahead}))).await;
            }
            tokio::spawn(async move {
                loop {
                    let ev = match sub.recv().await {
                        Ok(e) => e,
                        Err(broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(broadcast::error::RecvError::Closed) => break,
                    };
                    let (name, v, end) = match ev {
                        PageEvent::Queued(ahead) => ("queued", json!({"ahead": ahead}), false),
                        PageEvent::Delta(text) => {
                            ("delta", json!({"message_id": mid, "text": text}), false)
                        }
                        PageEvent::Context(ids) => {
                            ("context", json!({"hidden_from_model": ids}), false)
                        }
                        PageEvent::Done(s) => {
                            ("done", json!({"message_id": mid, "status": s}), true)
                        }
                        PageEvent::Error(m) => {
                            ("error", json!({"message_id": mid, "message": m}), false)
                        }
                        PageEvent::Step(step) => ("step", step, false),
                    };
                    if tx.send(sse_json(name, v)).await.is_err() || end {
                        break;
                    }
                }
            });
        }
    }
    Ok(crate::generation::sse(rx))
}
