//! From engine updates to text: detokenizing without splitting characters, stop strings,
//! logprobs in OpenAI's shape, and usage counts. Shared by every caller, streaming or not.

use std::sync::Arc;

use hearth_engine::{FinishReason, Logprob};
use hearth_model::tokenizer::{StreamDecoder, Tokenizer};
use hearth_model::StopStrings;
use serde::Serialize;
use tokio::sync::mpsc::UnboundedReceiver;

use crate::error::ApiError;
use crate::scheduler::Update;

/// What a generation yields to its handler.
#[derive(Debug)]
pub enum Piece {
    /// Text that is final (no stop string can still cut it), with the logprobs of the tokens
    /// that completed it.
    Text {
        text: String,
        logprobs: Vec<TokenLogprob>,
    },
    /// Generation ended: "stop" or "length".
    Done { finish_reason: &'static str },
    /// Still waiting for the engine, behind `ahead` other requests.
    Queued { ahead: usize },
}

/// One alternative in `top_logprobs`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TopLogprob {
    pub token: String,
    pub logprob: f32,
    pub bytes: Vec<u8>,
}

/// One token of `logprobs.content`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TokenLogprob {
    pub token: String,
    pub logprob: f32,
    pub bytes: Vec<u8>,
    pub top_logprobs: Vec<TopLogprob>,
}

/// One running request, seen from its handler.
pub struct Generation {
    rx: Option<UnboundedReceiver<Update>>,
    tokenizer: Arc<Tokenizer>,
    decoder: StreamDecoder,
    stops: StopStrings,
    /// The stop strings, and the text handed to `stops` but not yet released by it: together
    /// they tell which stop string ended the text (Anthropic's `stop_sequence` names it).
    stop_list: Vec<String>,
    held: String,
    /// The stop string that ended the text, if one did.
    pub stop_sequence: Option<String>,
    pub prompt_tokens: usize,
    pub cached_tokens: usize,
    pub completion_tokens: usize,
    done: bool,
    /// `Done` still to be yielded after a final piece of text.
    pending_done: Option<&'static str>,
}

impl Generation {
    pub fn new(
        rx: UnboundedReceiver<Update>,
        tokenizer: Arc<Tokenizer>,
        stops: Vec<String>,
        prompt_tokens: usize,
    ) -> Generation {
        Generation {
            rx: Some(rx),
            tokenizer,
            decoder: StreamDecoder::new(),
            stops: StopStrings::new(stops.clone()),
            stop_list: stops,
            held: String::new(),
            stop_sequence: None,
            prompt_tokens,
            cached_tokens: 0,
            completion_tokens: 0,
            done: false,
            pending_done: None,
        }
    }

    /// The next piece; `None` after `Done`. Dropping the generation cancels it in the engine.
    pub async fn next(&mut self) -> Option<Result<Piece, ApiError>> {
        if let Some(finish_reason) = self.pending_done.take() {
            return Some(Ok(Piece::Done { finish_reason }));
        }
        if self.done {
            return None;
        }
        loop {
            let rx = self.rx.as_mut()?;
            let Some(update) = rx.recv().await else {
                self.done = true;
                return Some(Err(ApiError::internal(
                    "the engine stopped before the reply was complete",
                )));
            };
            match update {
                Update::Queued { ahead } => {
                    return Some(Ok(Piece::Queued { ahead }));
                }
                Update::Started {
                    prompt_tokens,
                    cached,
                } => {
                    self.prompt_tokens = prompt_tokens;
                    self.cached_tokens = cached;
                }
                Update::Token { token, logprob } => {
                    self.completion_tokens += 1;
                    // End-of-generation tokens end the text; they are not part of it.
                    if self.tokenizer.is_eog(token) {
                        continue;
                    }
                    let text = self.decoder.push(&self.tokenizer, token);
                    let released = self.push_stops(&text);
                    let logprobs = logprob
                        .map(|lp| vec![self.token_logprob(&lp)])
                        .unwrap_or_default();
                    if released.stopped {
                        // Dropping the channel cancels the sequence at the engine's next step.
                        self.rx = None;
                        self.done = true;
                        self.pending_done = Some("stop");
                        return Some(Ok(Piece::Text {
                            text: released.text,
                            logprobs,
                        }));
                    }
                    if released.text.is_empty() && logprobs.is_empty() {
                        continue;
                    }
                    return Some(Ok(Piece::Text {
                        text: released.text,
                        logprobs,
                    }));
                }
                Update::Finished { reason } => {
                    let mut tail = self.decoder.finish();
                    let released = self.push_stops(&tail);
                    tail = released.text;
                    if !released.stopped {
                        tail.push_str(&self.stops.finish());
                    }
                    self.rx = None;
                    self.done = true;
                    let finish_reason = match reason {
                        FinishReason::Stop => "stop",
                        FinishReason::Length | FinishReason::ContextFull => "length",
                    };
                    if !tail.is_empty() {
                        // Deliver the tail now and the end on the next call.
                        self.pending_done = Some(finish_reason);
                        return Some(Ok(Piece::Text {
                            text: tail,
                            logprobs: Vec::new(),
                        }));
                    }
                    return Some(Ok(Piece::Done { finish_reason }));
                }
                Update::Failed { message } => {
                    self.rx = None;
                    self.done = true;
                    return Some(Err(ApiError::internal(message)));
                }
            }
        }
    }

    /// `StopStrings::push`, noting which stop string ended the text.
    fn push_stops(&mut self, text: &str) -> hearth_model::stop::Released {
        let released = self.stops.push(text);
        self.held.push_str(text);
        if released.stopped {
            // What is held past the released text starts with the stop string that matched.
            let rest = self.held.get(released.text.len()..).unwrap_or_default();
            self.stop_sequence = self
                .stop_list
                .iter()
                .filter(|s| !s.is_empty() && rest.starts_with(s.as_str()))
                .max_by_key(|s| s.len())
                .cloned();
            self.held.clear();
        } else {
            self.held.drain(..released.text.len().min(self.held.len()));
        }
        released
    }

    fn token_logprob(&self, lp: &Logprob) -> TokenLogprob {
        let entry = |id: u32| {
            let bytes = self.tokenizer.token_to_piece(id).to_vec();
            (String::from_utf8_lossy(&bytes).into_owned(), bytes)
        };
        let (token, bytes) = entry(lp.token);
        TokenLogprob {
            token,
            logprob: lp.logprob,
            bytes,
            top_logprobs: lp
                .top
                .iter()
                .map(|&(id, logprob)| {
                    let (token, bytes) = entry(id);
                    TopLogprob {
                        token,
                        logprob,
                        bytes,
                    }
                })
                .collect(),
        }
    }
}
