//! Running one `/api/chat` or `/api/generate` generation and answering in Ollama's shape: one
//! JSON object, or NDJSON lines (a line per piece of text or tool call, then a final line
//! with `done: true`, `done_reason` and the counts and durations).

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};
use tokio::sync::mpsc;

use super::{nanos, ndjson, rfc3339};
use crate::error::AppResult;
use crate::generation::{start_generation, Generation, Piece, Plan, TokenLogprob};
use crate::openai::tools::ToolPlan;
use crate::{AppState, Served};

/// How one reply is answered.
pub(crate) struct Reply {
    /// `/api/chat` (a `message`) or `/api/generate` (a `response`).
    pub chat: bool,
    /// The model as the request named it: Ollama echoes the name it was given.
    pub model: String,
    pub tools: ToolPlan,
    pub stream: bool,
    pub logprobs: bool,
    /// When the request arrived.
    pub started: Instant,
}

/// When the generation started and when its first text came: the durations Ollama reports.
struct Clock {
    started: Instant,
    generating: Instant,
    first: Option<Instant>,
}

impl Clock {
    fn text(&mut self) {
        self.first.get_or_insert_with(Instant::now);
    }

    fn stats(&self, gen: &Generation) -> Map<String, Value> {
        let now = Instant::now();
        let first = self.first.unwrap_or(now);
        let mut m = Map::new();
        m.insert("total_duration".into(), json!(nanos(now - self.started)));
        // The model stays loaded while Hearth serves it: there is nothing to load per request.
        m.insert("load_duration".into(), json!(0));
        m.insert("prompt_eval_count".into(), json!(gen.prompt_tokens));
        m.insert(
            "prompt_eval_duration".into(),
            json!(nanos(first - self.generating)),
        );
        m.insert("eval_count".into(), json!(gen.completion_tokens));
        // Never 0: clients divide by it for tokens per second.
        m.insert("eval_duration".into(), json!(nanos(now - first).max(1)));
        m
    }
}

/// An OpenAI tool call (`function.arguments` as JSON text) in Ollama's shape: the arguments as
/// an object.
fn ollama_call(c: &Value) -> Value {
    let f = &c["function"];
    let args = f["arguments"]
        .as_str()
        .and_then(|a| serde_json::from_str::<Value>(a).ok())
        .unwrap_or_else(|| f["arguments"].clone());
    json!({"id": c["id"], "function": {"index": c["index"], "name": f["name"], "arguments": args}})
}

impl Reply {
    /// One object of the reply: text (or calls) so far, not yet done.
    fn piece(
        &self,
        content: &str,
        calls: Vec<Value>,
        logprobs: Option<Vec<TokenLogprob>>,
    ) -> Value {
        let mut v = json!({"model": self.model, "created_at": rfc3339(SystemTime::now())});
        if self.chat {
            let mut message = json!({"role": "assistant", "content": content});
            if !calls.is_empty() {
                message["tool_calls"] = Value::Array(calls);
            }
            v["message"] = message;
        } else {
            v["response"] = json!(content);
        }
        v["done"] = json!(false);
        if let Some(lp) = logprobs {
            v["logprobs"] = json!(lp);
        }
        v
    }

    /// The last object: done, why, and the counts.
    fn done(&self, mut last: Value, finish: &str, gen: &Generation, clock: &Clock) -> Value {
        last["done"] = json!(true);
        last["done_reason"] = json!(finish);
        if let Value::Object(o) = &mut last {
            o.extend(clock.stats(gen));
        }
        last
    }

    /// Starts `plan` and answers: one JSON object, or a stream of NDJSON lines.
    pub(crate) async fn run(
        self,
        state: &AppState,
        served: &Arc<Served>,
        plan: Plan,
    ) -> AppResult<Response> {
        let guard = state.metrics.enter();
        let clock = Clock {
            started: self.started,
            generating: Instant::now(),
            first: None,
        };
        let gen = start_generation(state, served, plan)?;
        if self.stream {
            let (tx, rx) = mpsc::channel::<Value>(64);
            tokio::spawn(async move {
                let _guard = guard;
                self.stream(gen, clock, tx).await;
            });
            return Ok(ndjson(rx));
        }
        let _guard = guard;
        self.whole(gen, clock).await
    }

    async fn whole(self, mut gen: Generation, mut clock: Clock) -> AppResult<Response> {
        let mut text = String::new();
        let mut lps = Vec::new();
        let mut finish = "stop";
        while let Some(piece) = gen.next().await {
            match piece? {
                Piece::Text { text: t, logprobs } => {
                    clock.text();
                    text.push_str(&t);
                    lps.extend(logprobs);
                }
                Piece::Done { finish_reason } => finish = finish_reason,
                Piece::Queued { .. } => {}
            }
        }
        let (content, calls) = self.tools.finish(&text);
        let content = content.as_str().unwrap_or_default().to_string();
        let calls: Vec<Value> = calls
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let mut c = c.clone();
                c["index"] = json!(i);
                ollama_call(&c)
            })
            .collect();
        let piece = self.piece(&content, calls, self.logprobs.then_some(lps));
        Ok(Json(self.done(piece, finish, &gen, &clock)).into_response())
    }

    async fn stream(self, mut gen: Generation, mut clock: Clock, tx: mpsc::Sender<Value>) {
        // A failed send means the client left: returning drops `gen`, which cancels it.
        let mut streamer = self.tools.streamer();
        let mut finish = "stop";
        while let Some(piece) = gen.next().await {
            match piece {
                Err(e) => {
                    let _ = tx.send(json!({"error": e.message})).await;
                    return;
                }
                Ok(Piece::Done { finish_reason }) => finish = finish_reason,
                Ok(Piece::Queued { .. }) => {}
                Ok(Piece::Text { text, logprobs }) => {
                    clock.text();
                    let out = streamer.push(&text);
                    let lp = self.logprobs.then_some(logprobs);
                    for line in self.lines(out.deltas(lp)) {
                        if tx.send(line).await.is_err() {
                            return;
                        }
                    }
                }
            }
        }
        for line in self.lines(streamer.finish().deltas(None)) {
            if tx.send(line).await.is_err() {
                return;
            }
        }
        let last = self.piece("", Vec::new(), None);
        let _ = tx.send(self.done(last, finish, &gen, &clock)).await;
    }

    /// OpenAI-shaped deltas from the tool streamer as Ollama lines.
    fn lines(&self, deltas: Vec<(Value, Option<Vec<TokenLogprob>>)>) -> Vec<Value> {
        deltas
            .into_iter()
            .map(|(delta, lp)| {
                let content = delta["content"].as_str().unwrap_or_default();
                let calls = delta["tool_calls"]
                    .as_array()
                    .map(|a| a.iter().map(ollama_call).collect())
                    .unwrap_or_default();
                self.piece(content, calls, lp)
            })
            .collect()
    }
}
