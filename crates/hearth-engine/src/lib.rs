//! hearth-engine: sequences and the step loop that batches them through a model.
//!
//! The engine owns the KV cache pool, the thread pool and every live [`Sequence`]. Each
//! [`Engine::step`] builds **one** batch across all active sequences — a chunk of each waiting
//! prompt and one token of each decoding sequence — runs it through the model, then samples per
//! sequence (the shape of llama.cpp's server loop). Serving adds queues, fairness and streaming
//! on top of `add` / `step` / `cancel`; the CLI drives the same loop for one sequence.
//!
//! It knows sequences, tokens and logits; it does not know HTTP, and it does not know which
//! architecture it runs (that is all behind [`hearth_model::Model`]).

mod sequence;

use hearth_kernels::ThreadPool;
use hearth_model::{BatchItem, KvCache, Model, SamplerConfig, TokenConstraint, Workspace};

pub use sequence::{FinishReason, Logprob, SeqId, SeqState, Sequence};

/// Errors from the engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The model failed (bad token, KV exhausted...).
    #[error(transparent)]
    Model(#[from] hearth_model::Error),
    /// A prompt does not fit in the context window.
    #[error("prompt is {prompt} tokens; context is {ctx}")]
    PromptTooLong { prompt: usize, ctx: usize },
    /// A prompt has no tokens.
    #[error("the prompt is empty: at least one token is needed")]
    EmptyPrompt,
    /// No sequence has this id.
    #[error("no sequence with id {0}")]
    UnknownSequence(SeqId),
    /// Every sequence slot is taken.
    #[error("all {0} sequence slots are busy")]
    Busy(usize),
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// How the engine is sized.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// Context window per sequence (positions).
    pub ctx: usize,
    /// Threads for the forward pass.
    pub threads: usize,
    /// Sequences that can be live at once.
    pub max_seqs: usize,
    /// Most prompt tokens one sequence contributes to a step.
    pub prefill_chunk: usize,
    /// Most tokens in one batch, all sequences together.
    pub max_batch_tokens: usize,
    /// Keep each sequence's latest logits (for logprobs and tests).
    pub keep_logits: bool,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            ctx: 4096,
            threads: hearth_kernels::pool::physical_cores(),
            max_seqs: 1,
            prefill_chunk: 256,
            max_batch_tokens: 512,
            keep_logits: false,
        }
    }
}

/// What a new sequence should do.
#[derive(Default)]
pub struct Request {
    pub prompt: Vec<u32>,
    pub sampler: SamplerConfig,
    /// Most tokens to generate (the context also limits it).
    pub max_tokens: usize,
    /// Token ids that end generation (the model's end-of-generation set).
    pub stop_tokens: Vec<u32>,
    /// Limits which tokens may be generated (a JSON schema, a tool-call format).
    pub constraint: Option<Box<dyn TokenConstraint>>,
    /// Report each generated token's log-probability and this many most likely alternatives.
    pub logprobs: Option<usize>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("prompt_len", &self.prompt.len())
            .field("sampler", &self.sampler)
            .field("max_tokens", &self.max_tokens)
            .field("stop_tokens", &self.stop_tokens)
            .field("constrained", &self.constraint.is_some())
            .field("logprobs", &self.logprobs)
            .finish()
    }
}

/// What happened to a sequence during a step.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// A token was generated.
    Token { seq: SeqId, token: u32 },
    /// The sequence finished; its KV blocks are kept until it is removed or continued.
    Finished { seq: SeqId, reason: FinishReason },
}

/// The step loop over one model.
pub struct Engine {
    model: Model,
    opts: EngineOptions,
    kv: KvCache,
    ws: Workspace,
    pool: ThreadPool,
    seqs: Vec<Sequence>,
    next_id: SeqId,
    batch: Vec<BatchItem>,
    /// Per batch entry: index into `seqs`.
    batch_owner: Vec<usize>,
    /// Per sequence: the length its cache reaches after the current batch (reused each step).
    advanced: Vec<usize>,
}

impl Engine {
    /// An engine for `model`. The context is capped at the model's trained context.
    pub fn new(model: Model, mut opts: EngineOptions) -> Engine {
        opts.ctx = opts.ctx.clamp(1, model.config().ctx_train.max(1));
        opts.max_seqs = opts.max_seqs.max(1);
        opts.prefill_chunk = opts.prefill_chunk.max(1);
        opts.max_batch_tokens = opts.max_batch_tokens.max(opts.max_seqs).max(1);
        let kv = KvCache::new(model.config(), opts.ctx, opts.max_seqs, opts.prefill_chunk);
        let pool = ThreadPool::new(opts.threads.max(1));
        Engine {
            model,
            opts,
            kv,
            ws: Workspace::new(),
            pool,
            seqs: Vec::new(),
            next_id: 0,
            batch: Vec::new(),
            batch_owner: Vec::new(),
            advanced: Vec::new(),
        }
    }

    pub fn model(&self) -> &Model {
        &self.model
    }

    pub fn options(&self) -> &EngineOptions {
        &self.opts
    }

    /// The context window in force (after capping).
    pub fn ctx(&self) -> usize {
        self.opts.ctx
    }

    /// Bytes of KV storage reserved (resident only as used).
    pub fn kv_capacity_bytes(&self) -> usize {
        self.kv.capacity_bytes()
    }

    /// Starts a sequence. Fails if the prompt does not fit in the context.
    pub fn add(&mut self, req: Request) -> Result<SeqId> {
        if req.prompt.is_empty() {
            return Err(Error::EmptyPrompt);
        }
        if req.prompt.len() > self.opts.ctx {
            return Err(Error::PromptTooLong {
                prompt: req.prompt.len(),
                ctx: self.opts.ctx,
            });
        }
        if self.seqs.len() >= self.opts.max_seqs {
            return Err(Error::Busy(self.opts.max_seqs));
        }
        let id = self.next_id;
        self.next_id += 1;
        let kv = self.kv.new_seq();
        self.seqs.push(Sequence::new(id, req, kv));
        Ok(id)
    }

    /// Continues a finished sequence with a new full token history (the previous turns plus the
    /// new prompt). Only the tokens after the longest prefix already in the KV cache are
    /// processed; if the cache cannot be cut back that far, the whole history is recomputed.
    pub fn continue_with(
        &mut self,
        id: SeqId,
        tokens: Vec<u32>,
        sampler: SamplerConfig,
        max_tokens: usize,
    ) -> Result<usize> {
        if tokens.len() > self.opts.ctx {
            return Err(Error::PromptTooLong {
                prompt: tokens.len(),
                ctx: self.opts.ctx,
            });
        }
        let idx = self.index(id)?;
        let seq = &mut self.seqs[idx];
        let cached = seq.kv.len();
        let mut common = seq
            .tokens
            .iter()
            .zip(&tokens)
            .take_while(|(a, b)| a == b)
            .count()
            .min(cached);
        // At least one token must be processed to produce logits.
        if common == tokens.len() {
            common = common.saturating_sub(1);
        }
        if !self.kv.truncate(&mut seq.kv, common) {
            self.kv.release(&mut seq.kv);
            common = 0;
        }
        seq.restart(tokens, common, sampler, max_tokens);
        Ok(common)
    }

    /// Stops a sequence; its blocks return to the pool at once.
    pub fn cancel(&mut self, id: SeqId) -> Result<()> {
        let idx = self.index(id)?;
        let mut seq = self.seqs.remove(idx);
        self.kv.release(&mut seq.kv);
        Ok(())
    }

    /// Removes a sequence (finished or not) and frees its blocks.
    pub fn remove(&mut self, id: SeqId) -> Result<Sequence> {
        let idx = self.index(id)?;
        let mut seq = self.seqs.remove(idx);
        self.kv.release(&mut seq.kv);
        Ok(seq)
    }

    pub fn sequence(&self, id: SeqId) -> Option<&Sequence> {
        self.seqs.iter().find(|s| s.id() == id)
    }

    fn index(&self, id: SeqId) -> Result<usize> {
        self.seqs
            .iter()
            .position(|s| s.id() == id)
            .ok_or(Error::UnknownSequence(id))
    }

    /// Whether any sequence still has work.
    pub fn has_work(&self) -> bool {
        self.seqs.iter().any(|s| s.is_active())
    }

    /// Runs one batch across all active sequences and samples their next tokens.
    pub fn step(&mut self) -> Result<Vec<Event>> {
        let mut events = Vec::new();
        self.step_into(&mut events)?;
        Ok(events)
    }

    /// [`step`](Self::step) appending to a caller's buffer, so a serving loop that reuses the
    /// buffer allocates nothing per token.
    pub fn step_into(&mut self, events: &mut Vec<Event>) -> Result<()> {
        self.batch.clear();
        self.batch_owner.clear();
        let mut budget = self.opts.max_batch_tokens;
        // Decoding sequences first: one token each keeps every stream moving.
        for pass in 0..2 {
            for (i, seq) in self.seqs.iter_mut().enumerate() {
                if budget == 0 {
                    break;
                }
                let want = match (&seq.state, pass) {
                    (SeqState::Decoding, 0) => 1,
                    (SeqState::Prefilling, 1) => (seq.tokens.len() - seq.kv.len())
                        .min(self.opts.prefill_chunk)
                        .min(budget),
                    _ => 0,
                };
                if want == 0 {
                    continue;
                }
                let start = seq.kv.len();
                let end = start + want;
                self.kv.reserve(&mut seq.kv, end)?;
                for pos in start..end {
                    let last = pos + 1 == seq.tokens.len();
                    self.batch.push(BatchItem {
                        token: seq.tokens[pos],
                        pos,
                        seq: i,
                        logits: last,
                    });
                    self.batch_owner.push(i);
                }
                budget -= want;
            }
        }
        if self.batch.is_empty() {
            return Ok(());
        }
        let logits = self.model.forward(
            &self.batch,
            &self.seqs,
            &mut self.kv,
            &mut self.ws,
            &self.pool,
        )?;
        let n_vocab = self.model.config().n_vocab;
        // Advance lengths, then sample for each sequence that got logits.
        let mut out_row = 0;
        self.advanced.clear();
        self.advanced.resize(self.seqs.len(), 0);
        for item in &self.batch {
            self.advanced[item.seq] = item.pos + 1;
        }
        for (seq, &len) in self.seqs.iter_mut().zip(&self.advanced) {
            if len > 0 {
                seq.kv.set_len(len);
            }
        }
        for item in &self.batch {
            if !item.logits {
                continue;
            }
            let row = &logits[out_row * n_vocab..(out_row + 1) * n_vocab];
            out_row += 1;
            let seq = &mut self.seqs[item.seq];
            let ctx = self.opts.ctx;
            let keep = self.opts.keep_logits;
            seq.on_logits(row, ctx, keep, events);
        }
        Ok(())
    }
}
