//! The Ollama API family (`/api/chat`, `/api/generate`, `/api/embed`, `/api/tags`, `/api/show`,
//! `/api/ps`, `/api/version`, `/api/pull`), so apps written for Ollama work unchanged.
//!
//! It sits over the same generation core as the OpenAI family and reuses that family's chat
//! path: an Ollama chat is mapped onto an OpenAI [`ChatRequest`](crate::openai::ChatRequest)
//! (`chat.rs`), so messages, the chat template, tools (the Hermes plan in `openai/tools.rs`) and
//! `format` (a JSON-schema constraint) behave exactly as `/v1/chat/completions` does; only the
//! wire shapes differ (`types.rs`), streaming is NDJSON, and `options` map onto the sampler
//! (`options.rs`).
//!
//! Names: Ollama clients say `name:tag`, and Open WebUI looks a model up as `name:latest` when
//! the name has no tag, so models are listed as `ID:latest` and both spellings are accepted.
//!
//! Errors take Ollama's shape `{"error": "..."}` in one place, [`error_shape`], around every
//! route here (the key rule's 401 included): handlers return the crate's `ApiError`s.

mod chat;
mod embed;
mod models;
mod options;
mod pull;
mod reply;
mod types;

use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Body;
use axum::extract::Request as HttpRequest;
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::error::ApiError;
use crate::AppState;

/// Every Ollama route: the router is built from this list, and the test that keeps these paths
/// apart from the household page's `/api/` routes reads it too.
pub(crate) fn routes() -> Vec<(&'static str, MethodRouter<Arc<AppState>>)> {
    vec![
        ("/api/version", get(models::version)),
        ("/api/tags", get(models::tags)),
        ("/api/ps", get(models::ps)),
        ("/api/show", post(models::show)),
        ("/api/chat", post(chat::chat)),
        ("/api/generate", post(chat::generate)),
        ("/api/embed", post(embed::embed)),
        ("/api/embeddings", post(embed::embeddings)),
        ("/api/pull", post(pull::pull)),
    ]
}

/// The paths of [`routes`], for the request log's endpoint names.
pub(crate) const PATHS: &[&str] = &[
    "/api/version",
    "/api/tags",
    "/api/ps",
    "/api/show",
    "/api/chat",
    "/api/generate",
    "/api/embed",
    "/api/embeddings",
    "/api/pull",
];

/// `name` without Ollama's default tag (the same rule `/v1` follows).
fn base_name(name: &str) -> &str {
    crate::generation::untagged(name)
}

/// How a model is listed: with the default tag, as Ollama lists every model.
fn listed_name(id: &str) -> String {
    format!("{id}{}", crate::generation::LATEST_TAG)
}

/// Ollama's 404 for a model it does not have.
fn model_not_found(name: &str) -> ApiError {
    ApiError::not_found(format!("model '{name}' not found"))
}

/// RFC 3339 with microseconds, as Ollama writes `created_at` (Python's `fromisoformat`, which
/// Open WebUI uses, reads at most six fractional digits).
fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_micros(t).to_string()
}

/// Nanoseconds, as Ollama counts durations.
fn nanos(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Answers any error from the routes inside in Ollama's shape, `{"error": "message"}`, keeping
/// the status and headers (`Retry-After`): the ollama clients read `error` as a string.
pub(crate) async fn error_shape(req: HttpRequest, next: Next) -> Response {
    let resp = next.run(req).await;
    if resp.status().is_success() {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    // Error bodies are small; a larger one is cut rather than held.
    let bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let message = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|v| match &v["error"] {
            Value::String(s) => Some(s.clone()),
            // The field goes into the message when it does not name it already: Ollama's shape
            // has no `param`.
            e => e["message"].as_str().map(|m| match e["param"].as_str() {
                Some(p) if !p.is_empty() && !m.contains(p) => format!("`{p}`: {m}"),
                _ => m.to_string(),
            }),
        })
        .unwrap_or_else(|| String::from_utf8_lossy(&bytes).trim().to_string());
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, Body::from(json!({ "error": message }).to_string()))
}

/// A streaming response of newline-delimited JSON objects, one per value sent on `rx`.
fn ndjson(rx: mpsc::Receiver<Value>) -> Response {
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        let v = rx.recv().await?;
        let mut line = v.to_string();
        line.push('\n');
        Some((Ok::<_, std::convert::Infallible>(line), rx))
    });
    (
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(stream),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_paths_are_the_routes() {
        let routed: Vec<&str> = routes().iter().map(|r| r.0).collect();
        assert_eq!(routed, PATHS);
    }

    #[test]
    fn names_with_and_without_the_default_tag() {
        assert_eq!(base_name("smollm2-135m:latest"), "smollm2-135m");
        assert_eq!(base_name("smollm2-135m"), "smollm2-135m");
        assert_eq!(base_name("smollm2-135m:q8"), "smollm2-135m:q8");
        assert_eq!(listed_name("smollm2-135m"), "smollm2-135m:latest");
    }

    #[test]
    fn timestamps_are_rfc3339_with_microseconds() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(1_700_000_000_123_456_789);
        assert_eq!(rfc3339(t), "2023-11-14T22:13:20.123456Z");
    }
}
