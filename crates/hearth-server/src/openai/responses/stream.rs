//! A response as Responses' typed stream: each event an SSE `event:` line naming its type and
//! a `data:` object carrying the same `type` and a `sequence_number` counting from 0.
//!
//! ```text
//! response.created, response.in_progress
//!   message:  output_item.added, content_part.added, output_text.delta…, output_text.done,
//!             content_part.done, output_item.done
//!   call:     output_item.added, function_call_arguments.delta, .done, output_item.done
//! response.completed (or response.incomplete when cut by max_output_tokens)
//! ```
//!
//! Text goes out as it is generated, except what may be the start of a tool call, which chat's
//! tool streamer holds back until it knows; a call goes out once it is complete. The finished
//! response is stored before `response.completed` is sent, so a client may continue from it as
//! soon as it has read the stream.

use std::sync::Arc;

use axum::response::sse::Event as SseEvent;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::super::tools::{Out, ToolPlan};
use super::wire::{message_item, random_id};
use super::{call_item, Counts, Shell};
use crate::generation::{Generation, Piece};
use crate::AppState;

pub(crate) struct ResponseStream {
    shell: Shell,
    tools: ToolPlan,
    state: Arc<AppState>,
    tx: mpsc::Sender<SseEvent>,
    seq: u64,
    /// Finished output items.
    output: Vec<Value>,
    /// The message being streamed: its id and text so far.
    open: Option<(String, String)>,
}

/// The client left: stop (dropping the generation cancels it).
struct Gone;

type Sent = Result<(), Gone>;

impl ResponseStream {
    pub(crate) fn new(
        shell: Shell,
        tools: ToolPlan,
        state: Arc<AppState>,
        tx: mpsc::Sender<SseEvent>,
    ) -> ResponseStream {
        ResponseStream {
            shell,
            tools,
            state,
            tx,
            seq: 0,
            output: Vec::new(),
            open: None,
        }
    }

    async fn send(&mut self, kind: &str, mut body: Value) -> Sent {
        body["type"] = json!(kind);
        body["sequence_number"] = json!(self.seq);
        self.seq += 1;
        let ev = SseEvent::default().event(kind).data(body.to_string());
        self.tx.send(ev).await.map_err(|_| Gone)
    }

    pub(crate) async fn run(mut self, gen: Generation) {
        let _ = self.events(gen).await;
    }

    async fn events(&mut self, mut gen: Generation) -> Sent {
        let started = self.shell.object("in_progress", &[], None);
        self.send("response.created", json!({"response": started}))
            .await?;
        self.send("response.in_progress", json!({"response": started}))
            .await?;
        let mut streamer = self.tools.streamer();
        let mut finish = "stop";
        while let Some(piece) = gen.next().await {
            match piece {
                Err(e) => {
                    let body = json!({"code": e.code, "message": e.message, "param": e.param});
                    return self.send("error", body).await;
                }
                Ok(Piece::Done { finish_reason }) => finish = finish_reason,
                Ok(Piece::Queued { .. }) => {}
                Ok(Piece::Text { text, .. }) => {
                    let out = streamer.push(&text);
                    self.emit(out).await?;
                }
            }
        }
        let tail = streamer.finish();
        let called = tail.called;
        self.emit(tail).await?;
        let status = if finish == "length" && !called {
            "incomplete"
        } else {
            "completed"
        };
        if self.output.is_empty() && self.open.is_none() {
            // An empty reply is still one (empty) message, as the non-streamed answer has.
            self.open_message().await?;
        }
        self.close_message(status).await?;
        let counts = Counts {
            prompt: gen.prompt_tokens,
            completion: gen.completion_tokens,
            cached: gen.cached_tokens,
        };
        let response = self.shell.object(status, &self.output, Some(&counts));
        if let Err(e) = self.shell.keep(&self.state, &response) {
            let body = json!({"code": e.code, "message": e.message, "param": e.param});
            return self.send("error", body).await;
        }
        let kind = if status == "incomplete" {
            "response.incomplete"
        } else {
            "response.completed"
        };
        self.send(kind, json!({"response": response})).await
    }

    /// Sends what chat's tool streamer released: text into the open message, calls as items.
    async fn emit(&mut self, out: Out) -> Sent {
        for (delta, _) in out.deltas(None) {
            if let Some(text) = delta["content"].as_str().filter(|t| !t.is_empty()) {
                if self.open.is_none() {
                    self.open_message().await?;
                }
                let (id, so_far) = self.open.as_mut().expect("a message was just opened");
                so_far.push_str(text);
                let id = id.clone();
                let index = self.output.len();
                self.send(
                    "response.output_text.delta",
                    json!({"item_id": id, "output_index": index, "content_index": 0,
                           "delta": text, "logprobs": []}),
                )
                .await?;
            }
            for call in delta["tool_calls"].as_array().into_iter().flatten() {
                self.close_message("completed").await?;
                self.call(call).await?;
            }
        }
        Ok(())
    }

    async fn open_message(&mut self) -> Sent {
        let id = random_id("msg");
        let index = self.output.len();
        let mut item = message_item(id.clone(), "assistant", "", "in_progress");
        item["content"] = json!([]);
        self.send(
            "response.output_item.added",
            json!({"output_index": index, "item": item}),
        )
        .await?;
        self.send(
            "response.content_part.added",
            json!({"item_id": id, "output_index": index, "content_index": 0,
                   "part": {"type": "output_text", "text": "", "annotations": [], "logprobs": []}}),
        )
        .await?;
        self.open = Some((id, String::new()));
        Ok(())
    }

    async fn close_message(&mut self, status: &str) -> Sent {
        let Some((id, text)) = self.open.take() else {
            return Ok(());
        };
        let index = self.output.len();
        self.send(
            "response.output_text.done",
            json!({"item_id": id, "output_index": index, "content_index": 0,
                   "text": text, "logprobs": []}),
        )
        .await?;
        self.send(
            "response.content_part.done",
            json!({"item_id": id, "output_index": index, "content_index": 0,
                   "part": {"type": "output_text", "text": text, "annotations": [], "logprobs": []}}),
        )
        .await?;
        let item = message_item(id, "assistant", &text, status);
        self.send(
            "response.output_item.done",
            json!({"output_index": index, "item": item}),
        )
        .await?;
        self.output.push(item);
        Ok(())
    }

    async fn call(&mut self, call: &Value) -> Sent {
        let item = call_item(call);
        let index = self.output.len();
        let id = item["id"].clone();
        let mut added = item.clone();
        added["status"] = json!("in_progress");
        added["arguments"] = json!("");
        self.send(
            "response.output_item.added",
            json!({"output_index": index, "item": added}),
        )
        .await?;
        self.send(
            "response.function_call_arguments.delta",
            json!({"item_id": id, "output_index": index, "delta": item["arguments"]}),
        )
        .await?;
        self.send(
            "response.function_call_arguments.done",
            json!({"item_id": id, "output_index": index, "name": item["name"],
                   "arguments": item["arguments"]}),
        )
        .await?;
        self.send(
            "response.output_item.done",
            json!({"output_index": index, "item": item}),
        )
        .await?;
        self.output.push(item);
        Ok(())
    }
}
