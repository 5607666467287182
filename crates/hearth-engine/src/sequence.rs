//! One sequence: its tokens, its KV view, its sampler and where it is in its life.

use hearth_kernels::math;
use hearth_model::{Sampler, SamplerConfig, SeqKv, TokenConstraint};

use crate::speculative::{Source, SpecState};
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

/// A generated token's log-probability under the model (before penalties, bias and constraints),
/// with the most likely alternatives, most likely first.
#[derive(Clone, Debug, PartialEq)]
pub struct Logprob {
    pub token: u32,
    pub logprob: f32,
    pub top: Vec<(u32, f32)>,
}

impl Logprob {
    /// Log-softmax of `row` at `token`, plus the `top` most likely tokens (ties to the lower id).
    /// Sums run in index order, so the result is as batch-invariant as the logits.
    pub fn from_logits(row: &[f32], token: u32, top: usize) -> Logprob {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        // `exp_sub` is `exp_f32(l - max)` lane by lane, vectorized: one per vocabulary entry.
        let mut e = row.to_vec();
        hearth_kernels::exp_sub(&mut e, max);
        let sum: f32 = e.iter().sum();
        let log_z = max + math::ln_f64(f64::from(sum)) as f32;
        let mut best: Vec<(u32, f32)> = Vec::with_capacity(top + 1);
        if top > 0 {
            for (i, &l) in row.iter().enumerate() {
                if best.len() == top && l <= best[top - 1].1 {
                    continue;
                }
                let at = best.partition_point(|&(_, b)| b >= l);
                best.insert(at, (i as u32, l));
                best.truncate(top);
            }
        }
        Logprob {
            token,
            logprob: row
                .get(token as usize)
                .map_or(f32::NEG_INFINITY, |&l| l - log_z),
            top: best.into_iter().map(|(t, l)| (t, l - log_z)).collect(),
        }
    }
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
    /// Prompt tokens served from the KV cache (a cached prefix, or the previous turn when the
    /// sequence was continued) rather than recomputed.
    reused: usize,
    /// Positions the sequence can reach (prompt + `max_tokens`, within the context): what its
    /// KV reservation covers.
    pub(crate) reach: usize,
    last_logits: Vec<f32>,
    /// Reused copy of the logits the sampler may modify.
    scratch: Vec<f32>,
    /// In a mutex only so a `Sequence` is `Sync` (the forward pass shares sequences across
    /// threads); the engine reaches it through `get_mut`, never locking.
    constraint: Option<std::sync::Mutex<Box<dyn TokenConstraint>>>,
    /// `Some(n)`: compute each token's [`Logprob`] with `n` alternatives.
    logprobs: Option<usize>,
    last_logprob: Option<Logprob>,
    /// Speculation: draft lengths, the draft in flight, counts.
    pub(crate) spec: SpecState,
}

impl AsRef<SeqKv> for Sequence {
    fn as_ref(&self) -> &SeqKv {
        &self.kv
    }
}

impl Sequence {
    pub(crate) fn new(id: SeqId, req: Request, kv: SeqKv, reused: usize, reach: usize) -> Sequence {
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
            reused,
            reach,
            last_logits: Vec::new(),
            scratch: Vec::new(),
            constraint: req.constraint.map(std::sync::Mutex::new),
            logprobs: req.logprobs,
            last_logprob: None,
            spec: SpecState::default(),
        }
    }

    pub(crate) fn restart(
        &mut self,
        tokens: Vec<u32>,
        cached: usize,
        sampler: SamplerConfig,
        max_tokens: usize,
        reach: usize,
    ) {
        let mut s = Sampler::new(sampler);
        tokens.iter().for_each(|&t| s.accept(t));
        self.sampler = s;
        self.gen_start = tokens.len();
        self.tokens = tokens;
        self.max_tokens = max_tokens;
        self.reused = cached;
        self.reach = reach;
        self.state = SeqState::Prefilling;
        self.constraint = None;
        self.last_logprob = None;
        self.spec.new_turn();
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

    /// Positions whose keys and values are in the KV cache: while decoding, every token but the
    /// last (sampled, fed next step), whatever speculation drafted and rolled back.
    pub fn kv_len(&self) -> usize {
        self.kv.len()
    }

    /// Tokens drafted by speculation for this sequence so far (all turns).
    pub fn drafted_tokens(&self) -> u64 {
        self.spec.total_drafted
    }

    /// Drafted tokens the model confirmed, so far (all turns).
    pub fn accepted_tokens(&self) -> u64 {
        self.spec.total_accepted
    }

    /// Whether this sequence may speculate: a logprobs request reads one token's logprob per
    /// step ([`last_logprob`](Self::last_logprob)), so it decodes one token at a time.
    pub(crate) fn may_speculate(&self) -> bool {
        self.logprobs.is_none()
    }

    pub(crate) fn sampler_config(&self) -> &SamplerConfig {
        self.sampler.config()
    }

    pub(crate) fn has_constraint(&self) -> bool {
        self.constraint.is_some()
    }

    /// Of [`drafted_tokens`](Self::drafted_tokens), those the draft model drafted.
    pub fn model_drafted_tokens(&self) -> u64 {
        self.spec.model_drafted
    }

    /// Of [`accepted_tokens`](Self::accepted_tokens), those the draft model drafted.
    pub fn model_accepted_tokens(&self) -> u64 {
        self.spec.model_accepted
    }

    /// The logits that produced the latest token (kept only with `keep_logits`).
    pub fn last_logits(&self) -> &[f32] {
        &self.last_logits
    }

    /// The latest token's log-probability (when the request asked for logprobs).
    pub fn last_logprob(&self) -> Option<&Logprob> {
        self.last_logprob.as_ref()
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
        let mut constraint = self
            .constraint
            .as_mut()
            .map(|m| m.get_mut().unwrap_or_else(|poisoned| poisoned.into_inner()));
        if let Some(c) = constraint.as_mut() {
            c.mask(&mut logits);
        }
        // Row `j` of a verified draft comes after the `j` draft tokens accepted before it.
        let j = self.spec.accepted;
        let token = if self.spec.source == Source::Model && j < self.spec.draft.len() {
            crate::draft::verify(&mut self.sampler, &mut logits, &mut self.spec, j)
        } else {
            self.sampler.sample(&mut logits)
        };
        self.scratch = logits;
        self.sampler.accept(token);
        if let Some(top) = self.logprobs {
            self.last_logprob = Some(Logprob::from_logits(row, token, top));
        }
        // A token the constraint rejects cannot be taken back: end the sequence after it.
        let constraint_done = match constraint {
            Some(c) => c.accept(token).is_err() || c.is_finished(),
            None => false,
        };
        self.tokens.push(token);
        events.push(Event::Token {
            seq: self.id,
            token,
        });
        let reason = if self.stop_tokens.contains(&token) || constraint_done {
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
