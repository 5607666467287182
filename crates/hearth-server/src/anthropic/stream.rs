//! A streamed reply in Anthropic's events, each an SSE `event:` name with its JSON `data:`:
//! `message_start`, `ping`, then per content block `content_block_start`, its deltas
//! (`text_delta`, or one `input_json_delta` holding a tool call's whole input) and
//! `content_block_stop`; then `message_delta` (stop reason, output tokens) and `message_stop`.
//! A failure midway is an `error` event.

use axum::response::sse::Event as SseEvent;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::{call_parts, error, tool_use_id, usage, Reply};
use crate::generation::{Generation, Piece};
use crate::openai::tools::ToolPlan;

fn event(name: &str, data: &Value) -> SseEvent {
    SseEvent::default().event(name).data(data.to_string())
}

/// The client left: stop, which drops the generation and cancels it.
struct Gone;

struct Blocks {
    tx: mpsc::Sender<SseEvent>,
    /// The next block's index.
    next: usize,
    /// The index of the text block still open.
    open_text: Option<usize>,
    calls: usize,
}

impl Blocks {
    async fn send(&self, name: &str, data: Value) -> Result<(), Gone> {
        self.tx.send(event(name, &data)).await.map_err(|_| Gone)
    }

    async fn text(&mut self, text: &str) -> Result<(), Gone> {
        if text.is_empty() {
            return Ok(());
        }
        let index = match self.open_text {
            Some(i) => i,
            None => {
                let i = self.next;
                self.next += 1;
                self.open_text = Some(i);
                self.send(
                    "content_block_start",
                    json!({"type": "content_block_start", "index": i,
                           "content_block": {"type": "text", "text": ""}}),
                )
                .await?;
                i
            }
        };
        self.send(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": index,
                   "delta": {"type": "text_delta", "text": text}}),
        )
        .await
    }

    async fn close_text(&mut self) -> Result<(), Gone> {
        if let Some(i) = self.open_text.take() {
            self.send(
                "content_block_stop",
                json!({"type": "content_block_stop", "index": i}),
            )
            .await?;
        }
        Ok(())
    }

    async fn tool_use(&mut self, call: &Value) -> Result<(), Gone> {
        self.close_text().await?;
        let (name, input) = call_parts(call);
        let i = self.next;
        self.next += 1;
        self.calls += 1;
        self.send(
            "content_block_start",
            json!({"type": "content_block_start", "index": i,
                   "content_block": {"type": "tool_use", "id": tool_use_id(), "name": name, "input": {}}}),
        )
        .await?;
        self.send(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": i,
                   "delta": {"type": "input_json_delta", "partial_json": input.to_string()}}),
        )
        .await?;
        self.send(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": i}),
        )
        .await
    }

    /// One streamer delta (OpenAI's shape: `content`, or `tool_calls` with one complete call).
    /// `Ok(false)`: no more blocks are wanted.
    async fn delta(&mut self, delta: &Value, one_call: bool) -> Result<bool, Gone> {
        if let Some(t) = delta["content"].as_str() {
            self.text(t).await?;
        }
        for c in delta["tool_calls"].as_array().into_iter().flatten() {
            if one_call && self.calls >= 1 {
                return Ok(false);
            }
            self.tool_use(c).await?;
        }
        Ok(!(one_call && self.calls >= 1))
    }
}

/// Streams `gen` as `reply` into `tx` until it ends or the client leaves.
pub(crate) async fn run(
    reply: Reply,
    tools: ToolPlan,
    mut gen: Generation,
    tx: mpsc::Sender<SseEvent>,
) {
    let _ = stream(reply, tools, &mut gen, tx).await;
}

async fn stream(
    reply: Reply,
    tools: ToolPlan,
    gen: &mut Generation,
    tx: mpsc::Sender<SseEvent>,
) -> Result<(), Gone> {
    let mut b = Blocks {
        tx,
        next: 0,
        open_text: None,
        calls: 0,
    };
    b.send(
        "message_start",
        json!({"type": "message_start", "message": {
            "id": reply.id, "type": "message", "role": "assistant", "model": reply.model,
            "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": gen.prompt_tokens, "output_tokens": 0,
                      "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}}),
    )
    .await?;
    b.send("ping", json!({"type": "ping"})).await?;
    let mut streamer = tools.streamer();
    let mut finish = "stop";
    let mut more = true;
    while more {
        let Some(piece) = gen.next().await else {
            break;
        };
        match piece {
            Err(e) => {
                b.send("error", error::body(&e)).await?;
                return Ok(());
            }
            Ok(Piece::Done { finish_reason }) => finish = finish_reason,
            Ok(Piece::Queued { .. }) => {}
            Ok(Piece::Text { text, .. }) => {
                for (delta, _) in streamer.push(&text).deltas(None) {
                    more = b.delta(&delta, reply.one_call).await?;
                    if !more {
                        break;
                    }
                }
            }
        }
    }
    if more {
        for (delta, _) in streamer.finish().deltas(None) {
            if !b.delta(&delta, reply.one_call).await? {
                break;
            }
        }
    }
    if b.next == 0 {
        // An empty reply is still one (empty) text block, as the whole reply has.
        b.send(
            "content_block_start",
            json!({"type": "content_block_start", "index": 0,
                   "content_block": {"type": "text", "text": ""}}),
        )
        .await?;
        b.send(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 0}),
        )
        .await?;
    }
    b.close_text().await?;
    let (reason, sequence) = reply.stop_reason(finish, b.calls > 0, gen);
    b.send(
        "message_delta",
        json!({"type": "message_delta",
               "delta": {"stop_reason": reason, "stop_sequence": sequence},
               "usage": usage(gen)}),
    )
    .await?;
    b.send("message_stop", json!({"type": "message_stop"}))
        .await
}
