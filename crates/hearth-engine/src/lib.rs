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
//!
//! # KV memory and admission
//!
//! The KV pool has a fixed number of blocks ([`EngineOptions::kv_budget_bytes`]). [`Engine::add`]
//! admits a request only when the blocks it could ever need — prompt plus `max_tokens`, capped
//! at the context — are available, so a running sequence never runs out mid-generation:
//! - full-attention layers: the blocks are taken at once (taking a block id touches no memory;
//!   pages become resident when written), and the unused ones go back when the sequence ends;
//! - sliding-window layers shed blocks as they go, so they are not taken ahead; instead each
//!   live sequence is charged the most it can hold at once, and the charges must fit the group.
//!
//! When the blocks are not there, `add` fails with [`Error::NoKvSpace`] and changes nothing: a
//! server keeps the request queued and tries again after a sequence is removed.
//!
//! # Prefix cache
//!
//! With [`EngineOptions::prefix_cache`], a new sequence shares the whole blocks of the longest
//! prefix it has in common with a live sequence or a *retained* one (a removed sequence whose
//! blocks the cache keeps), and computes only the rest; see the `prefix` module. Retained blocks
//! count as cached, not used: admission evicts them, least recently used first, when it needs
//! the room.

mod draft;
mod prefix;
mod sequence;
mod speculative;

use hearth_kernels::ThreadPool;
use hearth_model::{BatchItem, KvCache, Model, SamplerConfig, SeqKv, TokenConstraint, Workspace};
use prefix::PrefixCache;

pub use sequence::{FinishReason, Logprob, SeqId, SeqState, Sequence};
pub use speculative::{lookup, Speculation, MAX_DRAFT};

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
    /// The KV pool cannot hold the request now, even after evicting cached prefixes (counts are
    /// blocks of [`BLOCK_TOKENS`](hearth_model::kv::BLOCK_TOKENS) positions in the layer group
    /// that is short). It may fit once other sequences are removed.
    #[error("the KV cache cannot hold this request now: it needs {needed} blocks, {free} are free or evictable")]
    NoKvSpace { needed: usize, free: usize },
    /// A draft model must share the target's vocabulary, token for token.
    #[error("the draft model's vocabulary is not the target's: {0}")]
    DraftVocabulary(String),
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
    /// Total KV memory in bytes; `None` = room for `ctx` positions × `max_seqs`.
    pub kv_budget_bytes: Option<usize>,
    /// Reuse the KV blocks of cached prefixes (live sequences and removed ones).
    pub prefix_cache: bool,
    /// Speculative decoding. Prompt lookup alone is exact: the same tokens as without it. With
    /// a draft model ([`Engine::set_draft`]) greedy output is identical and sampled output
    /// follows the same distribution (not the same tokens). Sequences that keep per-token
    /// logits or logprobs decode one token per step regardless.
    pub speculation: Speculation,
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
            kv_budget_bytes: None,
            prefix_cache: true,
            speculation: Speculation::default(),
        }
    }
}

/// Checks that `draft` can draft for `target` ([`Engine::set_draft`]): the same tokens, token
/// for token, the same control and special tokens. Fails with [`Error::DraftVocabulary`] saying
/// the first difference.
pub fn check_draft(target: &Model, draft: &Model) -> Result<()> {
    draft::check_vocab(target, draft)
}

/// Speculation counts since the last [`Engine::take_spec_counts`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpecCounts {
    /// Tokens drafted and fed for verification.
    pub drafted: u64,
    /// Drafted tokens the model confirmed (each one a forward pass saved).
    pub accepted: u64,
    /// Of `drafted`, the tokens a draft model drafted (the rest came from prompt lookup).
    pub model_drafted: u64,
    /// Of `accepted`, the tokens a draft model drafted.
    pub model_accepted: u64,
}

/// How the KV pool is used, in blocks of the full-attention layers (the group whose blocks
/// bound how many positions fit; the sliding-window group when a model has no other).
/// `used_blocks + cached_blocks + free_blocks == total_blocks`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KvStats {
    /// Blocks in the pool.
    pub total_blocks: usize,
    /// Blocks held by live sequences, including those taken ahead for their remaining tokens.
    pub used_blocks: usize,
    /// Blocks held only by retained prefixes: evictable.
    pub cached_blocks: usize,
    /// Blocks nobody holds.
    pub free_blocks: usize,
    /// Bytes of one block of this group (K and V, all its layers).
    pub block_bytes: usize,
    /// Bytes of the whole pool, every group (address space; resident once written).
    pub capacity_bytes: usize,
    /// Retained prefixes in the cache.
    pub cached_prefixes: usize,
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
    /// The sequence finished; its KV cache is kept until it is removed or continued (blocks
    /// taken ahead for tokens it did not generate go back to the pool now).
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
    /// Removed sequences' blocks, kept for reuse.
    prefix: PrefixCache,
    /// The layer group reported by [`Engine::kv_stats`].
    stats_group: usize,
    /// Speculation counts not yet taken.
    spec_counts: SpecCounts,
    /// The draft model, when one drafts.
    drafter: Option<draft::Drafter>,
    /// Steps whose drafting failed (logged at powers of two, so a broken draft cannot flood
    /// the log).
    draft_failures: u64,
    /// Per step: each sequence's rows of logits (reused).
    sample_jobs: Vec<SampleJob>,
    /// Per sampling job: the events it produced (reused).
    sample_events: Vec<Vec<Event>>,
}

/// One sequence's rows of a step's logits.
struct SampleJob {
    /// Index into the engine's sequences.
    seq: usize,
    /// Its first row among the step's logits rows.
    first_row: usize,
    /// The position the first row was computed at.
    first_pos: usize,
    rows: usize,
}

/// Samples one row of logits computed at `pos` for `seq`: the next token, or the check of a
/// drafted one. Rows after a rejected draft token were computed from a token that is not the
/// sequence's: they are dropped.
fn sample_row(
    seq: &mut Sequence,
    row: &[f32],
    pos: usize,
    ctx: usize,
    keep: bool,
    events: &mut Vec<Event>,
) {
    let drafted = !seq.spec.draft.is_empty();
    if drafted && (seq.spec.done || !seq.is_active()) {
        return;
    }
    seq.on_logits(row, ctx, keep, events);
    if drafted {
        // A token that also ends the sequence still counts as accepted; the rows after it are
        // dropped because the sequence is finished.
        let token = seq.tokens[seq.tokens.len() - 1];
        seq.spec.check(pos - seq.spec.base, token);
    }
}

impl Engine {
    /// An engine for `model`. The context is capped at the model's trained context, or as
    /// far as its file's RoPE scaling reaches (`Config::max_ctx`).
    pub fn new(mut model: Model, mut opts: EngineOptions) -> Engine {
        opts.ctx = opts.ctx.clamp(1, model.config().max_ctx().max(1));
        // Within `max_ctx` after the clamp, so never refused; picks Phi-3's RoPE factors for
        // this context.
        let _ = model.set_context(opts.ctx);
        opts.max_seqs = opts.max_seqs.max(1);
        opts.prefill_chunk = opts.prefill_chunk.max(1);
        opts.max_batch_tokens = opts.max_batch_tokens.max(opts.max_seqs).max(1);
        let cfg = model.config();
        // A verified draft is a run of up to MAX_DRAFT + 1 positions, like a prompt chunk: the
        // sliding-window groups must hold the window plus the longer of the two.
        let chunk = match opts.speculation {
            Speculation::Off => opts.prefill_chunk,
            Speculation::PromptLookup => opts.prefill_chunk.max(MAX_DRAFT + 1),
        };
        let kv = match opts.kv_budget_bytes {
            Some(bytes) => KvCache::with_budget(cfg, opts.ctx, opts.max_seqs, chunk, bytes),
            None => KvCache::new(cfg, opts.ctx, opts.max_seqs, chunk),
        };
        let stats_group = (0..kv.n_groups())
            .find(|&g| kv.group_window(g).is_none())
            .unwrap_or(0);
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
            prefix: PrefixCache::default(),
            stats_group,
            spec_counts: SpecCounts::default(),
            drafter: None,
            draft_failures: 0,
            sample_jobs: Vec::new(),
            sample_events: Vec::new(),
        }
    }

    /// Drafts with `draft`, a smaller model with this one's vocabulary (see the `draft`
    /// module): each step it drafts up to [`MAX_DRAFT`] tokens per decoding sequence, which this
    /// model verifies in its batched pass, exactly. It drafts only while speculation is on
    /// (prompt lookup still drafts where it has a long match). The batch budget grows to hold
    /// every sequence's longest draft, so a draft is never cut short by other sequences.
    ///
    /// Fails with [`Error::DraftVocabulary`], saying the first difference, when the vocabularies
    /// (token texts, control and special tokens) are not the same.
    pub fn set_draft(&mut self, draft: Model) -> Result<()> {
        draft::check_vocab(&self.model, &draft)?;
        self.drafter = Some(draft::Drafter::new(
            draft,
            self.opts.ctx,
            self.opts.max_seqs,
            self.opts.prefill_chunk,
        ));
        self.opts.max_batch_tokens = self
            .opts
            .max_batch_tokens
            .max(self.opts.max_seqs * (MAX_DRAFT + 1));
        Ok(())
    }

    /// The draft model, when one drafts.
    pub fn draft_model(&self) -> Option<&Model> {
        self.drafter.as_ref().map(|d| d.model())
    }

    /// Speculation counts since the last call (for a server's counters), reset to zero.
    pub fn take_spec_counts(&mut self) -> SpecCounts {
        std::mem::take(&mut self.spec_counts)
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

    /// Starts a sequence.
    ///
    /// With the prefix cache on, the longest cached prefix of the prompt (whole blocks, from a
    /// live or a retained sequence) is shared instead of recomputed
    /// ([`Sequence::reused_tokens`]). The blocks for the prompt plus `max_tokens` (capped at the
    /// context) are reserved now, evicting retained prefixes least recently used first.
    ///
    /// Fails with [`Error::EmptyPrompt`], [`Error::PromptTooLong`], [`Error::Busy`] when every
    /// slot is taken, or [`Error::NoKvSpace`] when the blocks are not available; on error nothing
    /// changed.
    pub fn add(&mut self, req: Request) -> Result<SeqId> {
        self.try_add(req).map_err(|refused| refused.0)
    }

    /// [`add`](Self::add) that hands the request back when it is refused, so a server can keep
    /// it queued (a request may own a constraint that cannot be cloned).
    pub fn try_add(&mut self, req: Request) -> std::result::Result<SeqId, Box<(Error, Request)>> {
        if req.prompt.is_empty() {
            return Err(Box::new((Error::EmptyPrompt, req)));
        }
        if req.prompt.len() > self.opts.ctx {
            let e = Error::PromptTooLong {
                prompt: req.prompt.len(),
                ctx: self.opts.ctx,
            };
            return Err(Box::new((e, req)));
        }
        if self.seqs.len() >= self.opts.max_seqs {
            return Err(Box::new((Error::Busy(self.opts.max_seqs), req)));
        }
        let reach = self.reach(req.prompt.len(), req.max_tokens);
        if let Err(e) = self.check_window_charges(reach, None) {
            return Err(Box::new((e, req)));
        }
        let (mut kv, reused, entry) = self.fork_prefix(&req.prompt);
        if let Err(e) = self.check_ahead(&kv, reach) {
            self.kv.release(&mut kv);
            return Err(Box::new((e, req)));
        }
        if let Some(i) = entry {
            self.prefix.touch(i);
        }
        if let Err(e) = self.take_ahead(&mut kv, reach) {
            // Checked above; reaching this would mean the accounting is wrong.
            self.kv.release(&mut kv);
            return Err(Box::new((e, req)));
        }
        let id = self.next_id;
        self.next_id += 1;
        self.seqs.push(Sequence::new(id, req, kv, reused, reach));
        Ok(id)
    }

    /// Whether a request with a prompt of `prompt_len` tokens and `max_tokens` could ever be
    /// admitted, with no other sequence and an empty prefix cache. When it could not, queueing
    /// it is pointless.
    pub fn fits_ever(&self, prompt_len: usize, max_tokens: usize) -> bool {
        if prompt_len == 0 || prompt_len > self.opts.ctx {
            return false;
        }
        let need = self.kv.blocks_needed(self.reach(prompt_len, max_tokens));
        need.iter()
            .zip(self.kv.total_blocks())
            .all(|(&n, total)| n <= total)
    }

    /// How the KV pool is used now.
    pub fn kv_stats(&self) -> KvStats {
        let g = self.stats_group;
        let usage = self.kv.usage(self.seqs.iter().map(|s| &s.kv));
        let u = usage.get(g).copied().unwrap_or_default();
        KvStats {
            total_blocks: u.total,
            used_blocks: u.live,
            cached_blocks: u.other,
            free_blocks: u.free,
            block_bytes: self.kv.bytes_per_block().get(g).copied().unwrap_or(0),
            capacity_bytes: self.kv.capacity_bytes(),
            cached_prefixes: self.prefix.len(),
        }
    }

    /// Drops every retained prefix; their blocks return to the pool unless a live sequence
    /// shares them.
    pub fn clear_prefix_cache(&mut self) {
        self.prefix.clear(&mut self.kv);
    }

    /// Positions a sequence can reach: its prompt and `max_tokens` (at least one token is always
    /// generated), within the context.
    fn reach(&self, prompt_len: usize, max_tokens: usize) -> usize {
        prompt_len
            .saturating_add(max_tokens.max(1))
            .min(self.opts.ctx)
    }

    /// Checks that the sliding-window groups can carry one more sequence reaching `reach`
    /// positions: every live sequence (but `except`, which is being re-sized) is charged the
    /// most blocks it can hold at once, and the charges must fit the pool. Cached prefixes do
    /// not count: they are evicted when a live sequence needs their blocks.
    fn check_window_charges(&self, reach: usize, except: Option<usize>) -> Result<()> {
        let need = self.kv.blocks_needed(reach);
        let total = self.kv.total_blocks();
        for g in 0..self.kv.n_groups() {
            if self.kv.group_window(g).is_none() {
                continue;
            }
            let charged: usize = self
                .seqs
                .iter()
                .enumerate()
                .filter(|&(i, _)| Some(i) != except)
                .map(|(_, s)| self.kv.blocks_needed(s.reach)[g])
                .sum();
            if charged + need[g] > total[g] {
                return Err(Error::NoKvSpace {
                    needed: need[g],
                    free: total[g].saturating_sub(charged),
                });
            }
        }
        Ok(())
    }

    /// Checks that the full-attention blocks `kv` still lacks to reach `reach` positions are
    /// free or held only by retained prefixes. `kv` must not be one of the live sequences.
    fn check_ahead(&self, kv: &SeqKv, reach: usize) -> Result<()> {
        let need = self.kv.blocks_needed(reach);
        let live = self.seqs.iter().map(|s| &s.kv).chain(std::iter::once(kv));
        for (g, u) in self.kv.usage(live).into_iter().enumerate() {
            if self.kv.group_window(g).is_some() {
                continue;
            }
            let fresh = need[g].saturating_sub(kv.blocks(g).len());
            let available = u.free + u.other;
            if fresh > available {
                return Err(Error::NoKvSpace {
                    needed: fresh,
                    free: available,
                });
            }
        }
        Ok(())
    }

    /// Takes the full-attention blocks `kv` needs to reach `reach` positions, evicting retained
    /// prefixes until the pool has them.
    fn take_ahead(&mut self, kv: &mut SeqKv, reach: usize) -> Result<()> {
        while let Err(e) = self.kv.reserve_ahead(kv, reach) {
            if !self.prefix.evict_lru(&mut self.kv) {
                return Err(e.into());
            }
        }
        Ok(())
    }

    /// A KV view for a new sequence with `prompt`: sharing the longest cached prefix when the
    /// prefix cache is on. Returns the view, the tokens it already holds, and the retained entry
    /// it came from.
    fn fork_prefix(&mut self, prompt: &[u32]) -> (SeqKv, usize, Option<usize>) {
        if !self.opts.prefix_cache {
            return (self.kv.new_seq(), 0, None);
        }
        let live = self
            .seqs
            .iter()
            .enumerate()
            .map(|(i, s)| (i, prefix::shareable(&self.kv, &s.kv, &s.tokens, prompt)))
            .max_by_key(|&(_, len)| len)
            .filter(|&(_, len)| len > 0);
        let retained = self.prefix.best(&self.kv, prompt);
        let forked = match (live, retained) {
            (Some((i, n)), r) if r.is_none_or(|(_, m)| n >= m) => {
                self.kv.fork(&self.seqs[i].kv, n).map(|kv| (kv, n, None))
            }
            (_, Some((e, m))) => self
                .kv
                .fork(self.prefix.kv(e), m)
                .map(|kv| (kv, m, Some(e))),
            _ => None,
        };
        forked.unwrap_or_else(|| (self.kv.new_seq(), 0, None))
    }

    /// Continues a finished sequence with a new full token history (the previous turns plus the
    /// new prompt). Only the tokens after the longest prefix already in the KV cache are
    /// processed; if the cache cannot be cut back that far, the whole history is recomputed.
    /// Fails with [`Error::NoKvSpace`] when the longer sequence's blocks are not available; the
    /// sequence then stays finished, possibly with a shorter cache.
    pub fn continue_with(
        &mut self,
        id: SeqId,
        tokens: Vec<u32>,
        sampler: SamplerConfig,
        max_tokens: usize,
    ) -> Result<usize> {
        if tokens.is_empty() {
            return Err(Error::EmptyPrompt);
        }
        if tokens.len() > self.opts.ctx {
            return Err(Error::PromptTooLong {
                prompt: tokens.len(),
                ctx: self.opts.ctx,
            });
        }
        let idx = self.index(id)?;
        let reach = self.reach(tokens.len(), max_tokens);
        self.check_window_charges(reach, Some(idx))?;
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
        match self.kv.truncate(&mut seq.kv, common) {
            Some(kept) => common = kept,
            None => {
                self.kv.release(&mut seq.kv);
                common = 0;
            }
        }
        let mut kv = std::mem::take(&mut seq.kv);
        let taken = self.take_ahead(&mut kv, reach);
        let seq = &mut self.seqs[idx];
        seq.kv = kv;
        if taken.is_err() {
            let need = self.kv.blocks_needed(reach);
            let free = self.kv.free_blocks();
            let g = self.stats_group;
            return Err(Error::NoKvSpace {
                needed: need[g].saturating_sub(seq.kv.blocks(g).len()),
                free: free[g],
            });
        }
        seq.restart(tokens, common, sampler, max_tokens, reach);
        Ok(common)
    }

    /// Stops a sequence. Its blocks are free at once, or retained as an evictable prefix when
    /// the prefix cache is on.
    pub fn cancel(&mut self, id: SeqId) -> Result<()> {
        self.remove(id).map(|_| ())
    }

    /// Removes a sequence (finished or not). With the prefix cache on, the whole blocks it
    /// computed are retained for reuse (evictable, least recently used first); otherwise they
    /// are freed.
    pub fn remove(&mut self, id: SeqId) -> Result<Sequence> {
        let idx = self.index(id)?;
        let mut seq = self.seqs.remove(idx);
        let kv = std::mem::take(&mut seq.kv);
        if self.opts.prefix_cache {
            self.prefix.retain(&mut self.kv, &seq.tokens, kv);
        } else {
            let mut kv = kv;
            self.kv.release(&mut kv);
        }
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
        let speculate = self.opts.speculation != Speculation::Off && !self.opts.keep_logits;
        if let (true, Some(drafter)) = (speculate, self.drafter.as_mut()) {
            if let Err(e) = drafter.draft(&mut self.seqs, &self.pool) {
                // Drafting only saves time: a failing draft model costs this step its drafts,
                // never the sequences their step.
                self.draft_failures += 1;
                if self.draft_failures.is_power_of_two() {
                    tracing::warn!(
                        "the draft model failed ({e}); this step decodes without its drafts \
                         ({} failed steps so far)",
                        self.draft_failures
                    );
                }
                for seq in &mut self.seqs {
                    if seq.spec.source == speculative::Source::Model {
                        seq.spec.draft.clear();
                    }
                }
            }
        }
        // Decoding sequences not yet given their token: drafts never take their place.
        let mut decoding_left = self
            .seqs
            .iter()
            .filter(|s| s.state == SeqState::Decoding)
            .count();
        // Decoding sequences first: one token each keeps every stream moving.
        for pass in 0..2 {
            for (i, seq) in self.seqs.iter_mut().enumerate() {
                if budget == 0 {
                    break;
                }
                let want = match (&seq.state, pass) {
                    (SeqState::Decoding, 0) => {
                        decoding_left -= 1;
                        let drafted = if speculate && seq.may_speculate() {
                            // Every drafted token may be accepted and one more sampled: stay
                            // within the sequence's reservation, its `max_tokens` and the
                            // context, which are all bounded by `reach`.
                            let room = seq.reach.saturating_sub(seq.tokens.len());
                            let cap = room.min(budget - 1 - decoding_left.min(budget - 1));
                            let base = seq.tokens.len() - 1;
                            seq.spec.propose(&seq.tokens, base, cap)
                        } else {
                            seq.spec.draft.clear();
                            0
                        };
                        1 + drafted
                    }
                    (SeqState::Prefilling, 1) => {
                        seq.spec.draft.clear();
                        (seq.tokens.len() - seq.kv.len())
                            .min(self.opts.prefill_chunk)
                            .min(budget)
                    }
                    _ => 0,
                };
                if want == 0 {
                    continue;
                }
                let start = seq.kv.len();
                let end = start + want;
                // Full-attention blocks were taken at admission; sliding-window ones come from
                // the pool, which admission guarantees can supply them once cached prefixes
                // are evicted.
                while let Err(e) = self.kv.reserve(&mut seq.kv, end) {
                    if !self.prefix.evict_lru(&mut self.kv) {
                        return Err(e.into());
                    }
                }
                let n_tokens = seq.tokens.len();
                for pos in start..end {
                    // Past the sequence's tokens come its drafted ones, each wanting logits.
                    let token = match pos.checked_sub(n_tokens) {
                        None => seq.tokens[pos],
                        Some(j) => seq.spec.draft[j],
                    };
                    self.batch.push(BatchItem {
                        token,
                        pos,
                        seq: i,
                        logits: pos + 1 >= n_tokens,
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
        // Each sequence's rows of logits: the batch holds a sequence's items together, so its
        // rows are contiguous, in the order the sequences appear in the batch.
        self.sample_jobs.clear();
        for item in self.batch.iter().filter(|item| item.logits) {
            match self.sample_jobs.last_mut() {
                Some(job) if job.seq == item.seq => job.rows += 1,
                _ => self.sample_jobs.push(SampleJob {
                    seq: item.seq,
                    first_row: out_row,
                    first_pos: item.pos,
                    rows: 1,
                }),
            }
            out_row += 1;
        }
        // Sampling is each sequence's own business (its sampler, random state, constraint and
        // draft), so the sequences are sampled side by side on the pool rather than one after
        // another on this thread: with eight chats at a non-zero temperature, eight sorts of the
        // whole vocabulary otherwise run while the other threads wait. Each sequence writes its
        // own events, appended below in batch order, so the events and tokens are the same as
        // sampling in turn.
        let ctx = self.opts.ctx;
        let keep = self.opts.keep_logits;
        self.sample_events.resize_with(
            self.sample_jobs.len().max(self.sample_events.len()),
            Vec::new,
        );
        {
            let mut seqs: Vec<Option<&mut Sequence>> = self.seqs.iter_mut().map(Some).collect();
            let work: Vec<std::sync::Mutex<(&mut Sequence, &mut Vec<Event>, &SampleJob)>> = self
                .sample_jobs
                .iter()
                .zip(self.sample_events.iter_mut())
                .map(|(job, ev)| {
                    ev.clear();
                    let seq = seqs[job.seq].take().expect("one sampling job per sequence");
                    std::sync::Mutex::new((seq, ev, job))
                })
                .collect();
            let sample = |w: &std::sync::Mutex<(&mut Sequence, &mut Vec<Event>, &SampleJob)>| {
                // Each job is claimed once, so the lock is never contended.
                let mut guard = w.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                let (seq, ev, job) = &mut *guard;
                for j in 0..job.rows {
                    let r = job.first_row + j;
                    sample_row(
                        seq,
                        &logits[r * n_vocab..(r + 1) * n_vocab],
                        job.first_pos + j,
                        ctx,
                        keep,
                        ev,
                    );
                }
            };
            if work.len() > 1 {
                self.pool.run_chunks(work.len(), |_, c| sample(&work[c]));
            } else {
                work.iter().for_each(sample);
            }
        }
        for ev in &mut self.sample_events[..self.sample_jobs.len()] {
            events.append(ev);
        }
        for (seq, &len) in self.seqs.iter_mut().zip(&self.advanced) {
            if len == 0 {
                continue;
            }
            if !seq.spec.draft.is_empty() {
                // Roll the cache back to the accepted tokens: the last token sampled is not
                // in it yet, as after any decoding step.
                seq.kv.set_len(seq.tokens.len() - 1);
                let model = seq.spec.source == speculative::Source::Model;
                let (d, a) = seq.spec.finish();
                self.spec_counts.drafted += d as u64;
                self.spec_counts.accepted += a as u64;
                if model {
                    self.spec_counts.model_drafted += d as u64;
                    self.spec_counts.model_accepted += a as u64;
                }
            }
            if !seq.is_active() {
                // Blocks taken ahead for tokens it will not generate go back now.
                self.kv.trim(&mut seq.kv);
            }
        }
        Ok(())
    }
}
