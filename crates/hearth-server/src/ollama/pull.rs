//! `POST /api/pull`: Hearth's own pull (the household's [`Admin`](crate::household::Admin)), for
//! the keeper only: anyone else gets a 403. Progress streams as Ollama's lines (`status`,
//! `digest`, `total`, `completed`), then `{"status": "success"}`; with `stream: false`, only the
//! end.
//!
//! Hearth pulls from its pinned catalog, so the name is a catalog name (`:latest` accepted).
//! The `digest` of the progress lines is that name: Open WebUI shows progress only for lines
//! that carry one, and Hearth's pull reports one file, not Ollama's layers. Pulling installs the
//! model; the keeper chooses the served one in Settings.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::types::ModelRef;
use super::{base_name, ndjson};
use crate::auth::Caller;
use crate::body::{body, parse_body_async};
use crate::error::{ApiError, AppResult};
use crate::AppState;

fn status(code: StatusCode, message: impl Into<String>) -> ApiError {
    ApiError {
        status: code,
        ..ApiError::bad_request(message)
    }
}

pub(crate) async fn pull(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    raw: Result<Bytes, BytesRejection>,
) -> AppResult<Response> {
    let raw = body(&state, raw)?;
    let req: ModelRef = parse_body_async(raw).await?;
    let name = base_name(req.model()?).to_string();
    let Some(h) = state.household.as_ref() else {
        return Err(status(
            StatusCode::NOT_IMPLEMENTED,
            format!("this server runs without a household, so it does not download models over its API: run `hearth pull {name}` on the server, then restart `hearth serve`"),
        ));
    };
    if !caller.is_keeper() {
        return Err(status(
            StatusCode::FORBIDDEN,
            "only the household's keeper may pull models: use the keeper's key or session, or ask the keeper (Settings → Models)",
        ));
    }
    let Some(admin) = h.admin.clone() else {
        return Err(status(
            StatusCode::NOT_IMPLEMENTED,
            format!("this server cannot download models: run `hearth pull {name}` on it"),
        ));
    };
    // Checked first so that an unknown name is a 404 before any stream begins.
    let catalog = admin.catalog();
    let known = catalog
        .as_array()
        .is_some_and(|v| v.iter().any(|m| m["name"] == name.as_str()));
    if !known {
        let names: Vec<&str> = catalog
            .as_array()
            .map(|v| v.iter().filter_map(|m| m["name"].as_str()).collect())
            .unwrap_or_default();
        return Err(ApiError::not_found(format!(
            "pull model manifest: model '{name}' is not in Hearth's catalog (it has: {})",
            names.join(", ")
        )));
    }
    let stream = req.stream.unwrap_or(true);
    let (tx, rx) = mpsc::channel::<Value>(64);
    let _ = tx.try_send(json!({"status": "pulling manifest"}));
    let task_name = name.clone();
    let task = tokio::task::spawn_blocking(move || {
        let progress = |done: u64, total: Option<u64>| {
            let mut line = json!({"status": format!("pulling {task_name}"), "digest": task_name, "completed": done});
            if let Some(t) = total {
                line["total"] = json!(t);
            }
            // A full channel drops a progress line, never the end.
            let _ = tx.try_send(line);
        };
        let end = match admin.pull(&task_name, &progress) {
            Ok(()) => json!({"status": "success"}),
            Err(message) => json!({"error": message}),
        };
        let _ = tx.blocking_send(end);
    });
    if stream {
        return Ok(ndjson(rx));
    }
    let mut rx = rx;
    let mut last = Value::Null;
    while let Some(v) = rx.recv().await {
        last = v;
    }
    task.await
        .map_err(|e| ApiError::internal(format!("the pull task failed: {e}")))?;
    match last["error"].as_str() {
        Some(message) => Err(ApiError::internal(message.to_string())),
        None => Ok(Json(json!({"status": "success"})).into_response()),
    }
}
