//! Server-sent events: a channel of events as a streaming response.

use std::convert::Infallible;

use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::Stream;
use serde_json::Value;
use tokio::sync::mpsc;

/// The response that streams `rx`'s events until its sender is dropped.
pub(crate) fn sse(rx: mpsc::Receiver<SseEvent>) -> Response {
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|ev| (Ok::<_, Infallible>(ev), rx))
    });
    sse_response(stream)
}

fn sse_response(
    stream: impl Stream<Item = Result<SseEvent, Infallible>> + Send + 'static,
) -> Response {
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// A `data:` event holding `v` as JSON.
pub(crate) fn data(v: &Value) -> SseEvent {
    SseEvent::default().data(v.to_string())
}
