//! One sequence: its tokens, its KV view, its sampler and where it is in its life.

use hearth_model::{Sampler, SamplerConfig, SeqKv};

use crate::{Event, Request};

/// Identifies a sequence inside one engine.
pub type SeqId = u64;

/// Where a sequence is. Prompt tokens not yet in the KV cache are `tokens[kv.len()..]`.
#[derive(Clone, Debug, PartialEq)]
pub enum SeqState {
    /// Prompt tokens remain to be processed.
    Prefilling,
    /// The last token of `tokens` was sampled and must be fed back.
    Decoding,
    /// Done; blocks are held until the sequence is removed or continued.
    Finished(FinishReason),
}

/// Why a sequence stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinishReason {
    /// The model produced an end-of-generation token.
    Stop,
    /// `max_tokens` were generated.
    Length,
    /// The context window is full.
    ContextFull,
}

/// A live sequence.
pub struct Sequence {
    id: SeqId,
    /// Prompt followed by generated tokens.
    pub(crate) tokens: Vec<u32>,
    pub(crate) kv: SeqKv,
    pub(crate) state: SeqState,
    sampler: Sampler,
    stop_tokens: Vec<u32>,
    max_tokens: usize,
    /// Index in `tokens` where generation began.
    gen_start: usize,
    /// Tokens processed from the cache rather than recomputed when the sequence was continued.
    reused: usize,
    last_logits: Vec<f32>,
    /// Reused copy of the logits the sampler may modify.
    scratch: Vec<f32>,
}

impl AsRef<SeqKv> for Sequence {
    fn as_ref(&self) -> &SeqKv {
        &self.kv
    }
}

impl Sequence {
    pub(crate) fn new(id: SeqId, req: Request, kv: SeqKv) -> Sequence {
        let mut sampler = Sampler::new(req.sampler);
        req.prompt.iter().for_each(|&t| sampler.accept(t));
        Sequence {
            id,
            gen_start: req.prompt.len(),
            tokens: req.prompt,
            kv,
            state: SeqState::Prefilling,
            sampler,
            stop_tokens: req.stop_tokens,
            max_tokens: req.max_tokens,
            reused: 0,
            last_logits: Vec::new(),
            scratch: Vec::new(),
        }
    }

    pub(crate) fn restart(
        &mut self,
        tokens: Vec<u32>,
        cached: usize,
        sampler: SamplerConfig,
        max_tokens: usize,
    ) {
        let mut s = Sampler::new(sampler);
        tokens.iter().for_each(|&t| s.accept(t));
        self.sampler = s;
        self.gen_start = tokens.len();
        self.tokens = tokens;
        self.max_tokens = max_tokens;
        self.reused = cached;
        self.state = SeqState::Prefilling;
    }

    pub fn id(&self) -> SeqId {
        self.id
    }

    pub fn state(&self) -> &SeqState {
        &self.state
    }

    pub fn is_active(&self) -> bool {
        !matches!(self.state, SeqState::Finished(_))
    }

    /// Prompt tokens of the current turn.
    pub fn prompt_len(&self) -> usize {
        self.gen_start
    }

    /// Tokens generated so far in this turn.
    pub fn generated(&self) -> &[u32] {
        &self.tokens[self.gen_start..]
    }

    /// All tokens: prompt and generated.
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    /// Prompt tokens served from the KV cache instead of being recomputed in this turn.
    pub fn reused_tokens(&self) -> usize {
        self.reused
    }

    /// The logits that produced the latest token (kept only with `keep_logits`).
    pub fn last_logits(&self) -> &[f32] {
        &self.last_logits
    }

    pub(crate) fn on_logits(
        &mut self,
        row: &[f32],
        ctx: usize,
        keep: bool,
        events: &mut Vec<Event>,
    ) {
        let mut logits = std::mem::take(&mut self.scratch);
        logits.clear();
        logits.extend_from_slice(row);
        if keep {
            self.last_logits.clear();
            self.last_logits.extend_from_slice(row);
        }
        let token = self.sampler.sample(&mut logits);
        self.scratch = logits;
        self.sampler.accept(token);
        self.tokens.push(token);
        events.push(Event::Token {
            seq: self.id,
            token,
        });
        let reason = if self.stop_tokens.contains(&token) {
            Some(FinishReason::Stop)
        } else if self.tokens.len() - self.gen_start >= self.max_tokens {
            Some(FinishReason::Length)
        } else if self.tokens.len() >= ctx {
            Some(FinishReason::ContextFull)
        } else {
            None
        };
        match reason {
            Some(r) => {
                self.state = SeqState::Finished(r);
                events.push(Event::Finished {
                    seq: self.id,
                    reason: r,
                });
            }
            None => self.state = SeqState::Decoding,
        }
    }
}
