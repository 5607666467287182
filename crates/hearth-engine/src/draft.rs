//! Speculative decoding with a draft model: a small model with the target's vocabulary drafts
//! up to k tokens per sequence per step, and the target verifies them in its one batched pass.
//!
//! # Exactness
//!
//! Drafted token `d` at row `j` was drawn from the draft's law `q` (its logits through the
//! sequence's own sampler settings and penalties, with a random stream of its own). The target's
//! law `p` at that row is what its sampler would draw from there (constraint mask, penalties,
//! bias, temperature, top-k/p, min-p). `d` is accepted with probability `min(1, p(d) / q(d))`;
//! otherwise the row's token is drawn from `max(0, p − q)` renormalised and the walk stops. That
//! is standard speculative sampling: every token follows `p` exactly. Under greedy decoding `p`
//! and `q` are point masses, so a draft token is accepted exactly when it is the target's
//! argmax, and a rejected one is replaced by that argmax: the same bits as decoding without a
//! draft. The row after the last drafted token is sampled from `p` as usual.
//!
//! The acceptance draws and residual draws come from the sequence's own sampler stream, the
//! drafts from the draft sampler's stream (seeded from the same seed), and the draft length
//! follows the sequence's own acceptance history: the same seed and settings give the same
//! output whatever else the engine runs. (The engine also keeps its batch budget wide enough
//! that another sequence never cuts a draft short.)
//!
//! # Prompt lookup and a draft model together
//!
//! With a draft model loaded, a step drafts by prompt lookup when the lookup finds the longest
//! match it tries (a document being quoted, code being edited: as good as a model, and free),
//! and with the draft model otherwise. Each source keeps its own adaptive length.
//!
//! # The draft's KV cache
//!
//! Each sequence that drafts with the model has its own view in the draft's own KV pool (sized
//! like the target's: one context per sequence slot, resident only as written). It follows the
//! sequence by its tokens: each step the draft cache is cut back to the longest prefix it
//! shares with the sequence (which rolls back rejected drafts, or a new turn's history), then
//! catches up on the tokens it lacks before it drafts, a prefill chunk per pass (the last chunk in
//! the pass that yields the first draft). A prompt is caught up while the target prefills it;
//! what the target did not compute (a reused prefix) is caught up at the first decoding step.
//! Sequences that keep logprobs or follow a token constraint (whose state cannot be copied to
//! mask the draft) use prompt lookup only.

use hearth_kernels::ThreadPool;
use hearth_model::tokenizer::Tokenizer;
use hearth_model::{
    BatchItem, Distribution, KvCache, Model, Sampler, SamplerConfig, SeqKv, Workspace,
};

use crate::sequence::{SeqState, Sequence};
use crate::speculative::{SpecState, MAX_DRAFT};
use crate::{Error, Result, SeqId};

/// Mixed into a sequence's seed to seed its draft sampler: a stream of its own, so what the
/// draft draws never shifts the target's stream.
const DRAFT_SEED: u64 = 0x9e37_79b9_7f4a_7c15;

/// The draft model and each drafting sequence's state.
pub(crate) struct Drafter {
    model: Model,
    kv: KvCache,
    ws: Workspace,
    /// Positions the draft can reach (the engine's context, capped at the draft's own).
    ctx: usize,
    /// Most catch-up tokens a sequence feeds the draft in one step.
    chunk: usize,
    seqs: Vec<DraftSeq>,
    batch: Vec<BatchItem>,
    /// The next pass's batch, built while the current one's logits are read.
    next: Vec<BatchItem>,
    /// Reused copy of a logits row the draft sampler modifies.
    scratch: Vec<f32>,
}

/// One sequence's side of the draft model.
struct DraftSeq {
    id: SeqId,
    kv: SeqKv,
    /// The tokens whose keys and values `kv` holds, in order (`held.len() == kv.len()`).
    held: Vec<u32>,
    /// The sequence's sampler settings with the draft's seed; its history is the sequence's
    /// tokens and the tokens drafted this step.
    sampler: Sampler,
    /// Index of the sequence in the engine's list, while it drafts this step.
    target: usize,
    /// Tokens this sequence drafts this step.
    want: usize,
    /// Whether it is still catching up on the sequence's tokens before this step's draft.
    catching: bool,
    /// The sequence's turn the sampler was made for ([`SpecState::turn`]).
    turn: u64,
}

impl AsRef<SeqKv> for DraftSeq {
    fn as_ref(&self) -> &SeqKv {
        &self.kv
    }
}

impl Drafter {
    /// A drafter for engines of `max_seqs` sequences of up to `ctx` positions.
    pub(crate) fn new(mut model: Model, ctx: usize, max_seqs: usize, chunk: usize) -> Drafter {
        let ctx = ctx.min(model.config().max_ctx().max(1));
        // Within `max_ctx`, so never refused.
        let _ = model.set_context(ctx);
        // Rejected drafts are rolled back by length only, as in the target: the sliding-window
        // groups must keep the window plus the longest run written in one step.
        let kv_chunk = chunk.max(MAX_DRAFT + 1);
        let kv = KvCache::new(model.config(), ctx, max_seqs, kv_chunk);
        Drafter {
            model,
            kv,
            ws: Workspace::new(),
            ctx,
            chunk,
            seqs: Vec::new(),
            batch: Vec::new(),
            next: Vec::new(),
            scratch: Vec::new(),
        }
    }

    pub(crate) fn model(&self) -> &Model {
        &self.model
    }

    /// Drafts for every decoding sequence that uses the draft model this step (its tokens in
    /// `spec.draft`, their laws in `spec.qs`), and feeds prefilling sequences' prompts to the
    /// draft.
    pub(crate) fn draft(&mut self, seqs: &mut [Sequence], pool: &ThreadPool) -> Result<()> {
        let Drafter {
            model,
            kv,
            ws,
            ctx,
            chunk,
            seqs: dseqs,
            batch,
            next,
            scratch,
        } = self;
        // Sequences that are gone give their draft blocks back.
        dseqs.retain_mut(|d| {
            let live = seqs.iter().any(|s| s.id() == d.id);
            if !live {
                kv.release(&mut d.kv);
            }
            live
        });
        batch.clear();
        // A pass that failed last step may have left some catching up.
        dseqs.iter_mut().for_each(|d| d.catching = false);
        for (i, seq) in seqs.iter_mut().enumerate() {
            seq.spec.source = Default::default();
            if !seq.may_draft_with_model() {
                continue;
            }
            let decoding = match seq.state {
                SeqState::Decoding => true,
                SeqState::Prefilling => false,
                SeqState::Finished(_) => continue,
            };
            if decoding && seq.spec.prefers_lookup(&seq.tokens) {
                continue;
            }
            let di = match dseqs.iter().position(|d| d.id == seq.id()) {
                Some(di) => di,
                None => {
                    dseqs.push(DraftSeq {
                        id: seq.id(),
                        kv: kv.new_seq(),
                        held: Vec::new(),
                        sampler: Sampler::new(draft_config(seq)),
                        target: i,
                        want: 0,
                        catching: false,
                        turn: seq.spec.turn,
                    });
                    dseqs.len() - 1
                }
            };
            let d = &mut dseqs[di];
            d.target = i;
            d.want = 0;
            if d.turn != seq.spec.turn {
                // A new turn draws afresh, as a new sequence with the same history would.
                d.sampler = Sampler::new(draft_config(seq));
                d.turn = seq.spec.turn;
            }
            follow(kv, d, &seq.tokens);
            let n = seq.tokens.len();
            if d.held.len() >= n {
                // It must feed the last token to get the first draft's law.
                d.held.truncate(n - 1);
                d.kv.set_len(n - 1);
            }
            let (end, want) = if decoding {
                // The sequence drafts this step (perhaps nothing, while the draft catches up):
                // prompt lookup must not draft over it.
                seq.spec.start_model(n - 1);
                let room = seq.reach.min(*ctx).saturating_sub(n);
                let k = seq.spec.k_model.min(room);
                if k == 0 {
                    continue;
                }
                // A draft more than a chunk behind (the target reused a cached prefix, or
                // prompt lookup drafted for a while) catches up fully in this step's passes, a
                // chunk per pass: every decoding step drafts, so the step where drafting starts,
                // and with it how the random streams are spent, never depends on what the
                // target reused.
                (n.min(d.held.len() + *chunk), k)
            } else {
                // Its prompt, but for the last token, which the first decoding step feeds.
                ((n - 1).min(d.held.len() + *chunk).min(*ctx), 0)
            };
            let start = d.held.len();
            if end <= start || kv.reserve(&mut d.kv, end).is_err() {
                continue;
            }
            if want > 0 {
                sync_history(&mut d.sampler, &seq.tokens);
            }
            d.want = want;
            d.catching = want > 0 && end < n;
            push_tokens(batch, di, &seq.tokens, start, end, want > 0);
        }
        let n_vocab = model.config().n_vocab;
        while !batch.is_empty() {
            let logits = model.forward(batch, dseqs, kv, ws, pool)?;
            for item in batch.iter() {
                let d = &mut dseqs[item.seq];
                d.held.push(item.token);
                d.kv.set_len(d.held.len());
            }
            next.clear();
            for (di, d) in dseqs.iter_mut().enumerate() {
                if !d.catching {
                    continue;
                }
                let tokens = &seqs[d.target].tokens;
                let (start, n) = (d.held.len(), tokens.len());
                let end = n.min(start + *chunk);
                if kv.reserve(&mut d.kv, end).is_err() {
                    d.catching = false;
                    continue;
                }
                d.catching = end < n;
                push_tokens(next, di, tokens, start, end, true);
            }
            for (row, item) in batch.iter().filter(|item| item.logits).enumerate() {
                let d = &mut dseqs[item.seq];
                let spec = &mut seqs[d.target].spec;
                scratch.clear();
                scratch.extend_from_slice(&logits[row * n_vocab..(row + 1) * n_vocab]);
                let token = draw_draft(&mut d.sampler, scratch, spec);
                if spec.draft.len() < d.want {
                    let pos = d.held.len();
                    if kv.reserve(&mut d.kv, pos + 1).is_ok() {
                        next.push(BatchItem {
                            token,
                            pos,
                            seq: item.seq,
                            logits: true,
                        });
                    }
                }
            }
            std::mem::swap(batch, next);
        }
        Ok(())
    }
}

/// Feeds `tokens[start..end]` of draft sequence `di`, asking for logits at the sequence's last
/// token when `draws` (the first draft's law).
fn push_tokens(
    batch: &mut Vec<BatchItem>,
    di: usize,
    tokens: &[u32],
    start: usize,
    end: usize,
    draws: bool,
) {
    for (pos, &token) in tokens.iter().enumerate().take(end).skip(start) {
        batch.push(BatchItem {
            token,
            pos,
            seq: di,
            logits: draws && pos + 1 == tokens.len(),
        });
    }
}

/// A sequence may draft with the model unless it keeps logprobs (one token per step) or follows
/// a constraint, whose state cannot be copied to mask the draft's logits.
impl Sequence {
    fn may_draft_with_model(&self) -> bool {
        self.may_speculate() && !self.has_constraint()
    }
}

/// The sequence's sampler settings with the draft's own seed.
fn draft_config(seq: &Sequence) -> SamplerConfig {
    let mut cfg = seq.sampler_config().clone();
    cfg.seed ^= DRAFT_SEED;
    cfg
}

/// Cuts the draft's cache back to the longest prefix its tokens share with the sequence's.
fn follow(kv: &mut KvCache, d: &mut DraftSeq, tokens: &[u32]) {
    let common = d
        .held
        .iter()
        .zip(tokens)
        .take_while(|(a, b)| a == b)
        .count();
    if common == d.held.len() {
        return;
    }
    let kept = if d.held.len() - common <= MAX_DRAFT + 1 {
        // Drafts rejected in the last step: as in the target, the positions past the cut are
        // never read and are overwritten before anything reads them.
        d.kv.set_len(common);
        common
    } else {
        match kv.truncate(&mut d.kv, common) {
            Some(kept) => kept,
            None => {
                kv.release(&mut d.kv);
                0
            }
        }
    };
    d.held.truncate(kept);
}

/// Makes a draft sampler's history the sequence's tokens (its penalties see what the target's
/// sampler sees).
fn sync_history(sampler: &mut Sampler, tokens: &[u32]) {
    let common = sampler
        .history()
        .iter()
        .zip(tokens)
        .take_while(|(a, b)| a == b)
        .count();
    sampler.truncate_history(common);
    tokens[common..].iter().for_each(|&t| sampler.accept(t));
}

/// Draws the next draft token from a draft logits row and records it with its law.
fn draw_draft(sampler: &mut Sampler, logits: &mut [f32], spec: &mut SpecState) -> u32 {
    let j = spec.draft.len();
    if spec.qs.len() <= j {
        spec.qs.resize_with(j + 1, Distribution::default);
    }
    let q = &mut spec.qs[j];
    sampler.distribution(logits, q);
    let token = if q.random {
        q.draw(sampler.uniform())
    } else {
        q.tokens[0]
    };
    sampler.accept(token);
    spec.draft.push(token);
    token
}

/// Verifies drafted token `d`, drawn from `q`, against the target's logits `row` (already
/// masked by any constraint): returns `d` when accepted, else a token from the residual law.
/// The target's sampler does what [`Sampler::sample`] would (penalties, bias, its stream).
pub(crate) fn verify(
    sampler: &mut Sampler,
    logits: &mut [f32],
    spec: &mut SpecState,
    j: usize,
) -> u32 {
    let d = spec.draft[j];
    let q = &spec.qs[j];
    let p = &mut spec.p;
    sampler.distribution(logits, p);
    let (pd, qd) = (p.prob(d), q.prob(d));
    // A token the target never draws is rejected first, even when q gave it no weight either:
    // the draft's draw can round onto a weight-0 candidate, and `0 >= 0` would accept it.
    let accept = if pd <= 0.0 {
        false
    } else if pd >= qd {
        true
    } else {
        f64::from(sampler.uniform()) < pd / qd
    };
    if accept {
        return d;
    }
    if !p.random {
        // Greedy: the residual of a point mass not at `d` is that point.
        return p.tokens[0];
    }
    // The residual max(0, p − q) over p's candidates (outside them p is 0), with q spread
    // over a dense table for the lookups and cleared after.
    let dense = &mut spec.dense;
    if dense.len() < logits.len() {
        dense.resize(logits.len(), 0.0);
    }
    let qz = f64::from(q.total);
    for (&t, &w) in q.tokens.iter().zip(&q.weights) {
        dense[t as usize] = f64::from(w) / qz;
    }
    let pz = f64::from(p.total);
    let residual = |t: u32, w: f32| (f64::from(w) / pz - dense[t as usize]).max(0.0);
    let total: f64 = p
        .tokens
        .iter()
        .zip(&p.weights)
        .map(|(&t, &w)| residual(t, w))
        .sum();
    let u = f64::from(sampler.uniform());
    let token = if total > 0.0 {
        let mut r = u * total;
        let mut pick = None;
        let mut last = None;
        for (&t, &w) in p.tokens.iter().zip(&p.weights) {
            let x = residual(t, w);
            if x > 0.0 {
                last = Some(t);
                if r < x {
                    pick = Some(t);
                    break;
                }
                r -= x;
            }
        }
        pick.or(last).unwrap_or(p.tokens[0])
    } else {
        // p ≤ q everywhere means p = q up to rounding, where a rejection has probability 0;
        // rounding got here, so draw from p.
        p.draw(u as f32)
    };
    for &t in &q.tokens {
        dense[t as usize] = 0.0;
    }
    token
}

/// Checks that `draft` can draft for `target`: the same tokens, token for token, the same
/// control tokens and the same special tokens. The error says the first difference in plain
/// words.
pub(crate) fn check_vocab(target: &Model, draft: &Model) -> Result<()> {
    let fail = |why: String| Err(Error::DraftVocabulary(why));
    let tokenizer = |m: &Model, which: &str| {
        Tokenizer::from_gguf(m.gguf().metadata()).map_err(|e| {
            Error::DraftVocabulary(format!("the {which}'s tokenizer cannot be read ({e})"))
        })
    };
    let t = tokenizer(target, "target")?;
    let d = tokenizer(draft, "draft")?;
    if t.n_vocab() != d.n_vocab() {
        return fail(format!(
            "the target has {} tokens, the draft {}",
            t.n_vocab(),
            d.n_vocab()
        ));
    }
    let (tn, dn) = (target.config().n_vocab, draft.config().n_vocab);
    if tn != dn {
        return fail(format!(
            "the target scores {tn} tokens per step, the draft {dn}"
        ));
    }
    for id in 0..t.n_vocab() as u32 {
        if t.token_text(id) != d.token_text(id) {
            return fail(format!(
                "token {id} is {:?} in the target and {:?} in the draft",
                t.token_text(id),
                d.token_text(id)
            ));
        }
        if t.is_control(id) != d.is_control(id) {
            let (yes, no) = if t.is_control(id) {
                ("target", "draft")
            } else {
                ("draft", "target")
            };
            return fail(format!(
                "token {id} ({:?}) is a control token in the {yes} and not in the {no}",
                t.token_text(id)
            ));
        }
    }
    let name = |tok: &Tokenizer, id: Option<u32>| match id {
        Some(id) => format!("{:?} (token {id})", tok.token_text(id)),
        None => "none".to_string(),
    };
    if t.bos() != d.bos() {
        return fail(format!(
            "the beginning-of-text token is {} in the target and {} in the draft",
            name(&t, t.bos()),
            name(&d, d.bos())
        ));
    }
    if t.eos() != d.eos() {
        return fail(format!(
            "the end-of-text token is {} in the target and {} in the draft",
            name(&t, t.eos()),
            name(&d, d.eos())
        ));
    }
    if t.eog_ids() != d.eog_ids() {
        return fail(format!(
            "the end-of-generation tokens are {:?} in the target and {:?} in the draft",
            t.eog_ids(),
            d.eog_ids()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Request;
    use hearth_gguf::Gguf;
    use hearth_model::testing::TinySpec;

    fn tiny(n_layer: usize) -> Model {
        let mut s = TinySpec::new("llama");
        s.n_vocab = 64;
        s.window = 8;
        s.n_layer = n_layer;
        Model::from_gguf(Gguf::from_bytes(s.build()).expect("gguf")).expect("model")
    }

    /// A decoding sequence holding `tokens`, sampling at temperature 1 with a repeat penalty.
    fn decoding(tokens: Vec<u32>) -> Sequence {
        let req = Request {
            prompt: tokens,
            sampler: SamplerConfig {
                temperature: 1.0,
                top_k: 0,
                repeat_penalty: 1.1,
                seed: 7,
                ..SamplerConfig::default()
            },
            max_tokens: 100,
            ..Default::default()
        };
        let mut seq = Sequence::new(0, req, SeqKv::default(), 0, 500);
        seq.state = SeqState::Decoding;
        seq
    }

    /// After the target rejects part of a draft, the draft's cache and sampler are rolled back
    /// (here after a prompt lookup step went past them):
    /// its next draft is the same tokens, with the same laws bit for bit, as a drafter that
    /// never saw the rejected tokens. (Drafts change only acceptance, never output, so this is
    /// where a wrong rollback shows.)
    #[test]
    fn a_rejected_draft_is_rolled_back() {
        let pool = ThreadPool::new(1);
        // 40 tokens that never repeat a pair: prompt lookup has nothing, the model drafts.
        let prompt: Vec<u32> = (0..40u32).map(|i| 3 + (i * 37 + i * i * 7) % 61).collect();
        let mut d = Drafter::new(tiny(2), 256, 1, 64);
        let mut seqs = [decoding(prompt.clone())];
        d.draft(&mut seqs, &pool).expect("draft");
        let first = seqs[0].spec.draft.clone();
        assert!(first.len() >= 3, "drafted {first:?}");
        // The target kept the first drafted token and replaced the second; then prompt lookup
        // drafted a step, so the sequence is now longer than what the draft holds.
        let other = (0..64).find(|&t| t != first[1] && t > 2).expect("token");
        let mut tokens = prompt;
        tokens.extend([first[0], other, 20, 30, 40, 50]);
        seqs[0].tokens = tokens.clone();
        d.draft(&mut seqs, &pool).expect("draft");
        assert_eq!(
            d.seqs[0].held.len(),
            tokens.len() + seqs[0].spec.draft.len() - 1
        );

        let mut fresh = Drafter::new(tiny(2), 256, 1, 64);
        let mut alone = [decoding(tokens)];
        // The fresh drafter's sampler stream must be where the rolled-back one's is: it drew
        // once per token of the first draft.
        for _ in 0..first.len() {
            let cfg = draft_config(&alone[0]);
            let s = fresh_sampler(&mut fresh, &alone[0], cfg);
            s.uniform();
        }
        fresh.draft(&mut alone, &pool).expect("draft");
        assert_eq!(seqs[0].spec.draft, alone[0].spec.draft);
        for (a, b) in seqs[0].spec.qs.iter().zip(&alone[0].spec.qs) {
            assert_eq!(a.tokens, b.tokens);
            assert_eq!(a.weights, b.weights);
        }
    }

    /// A drafted token the target's law gives no weight is rejected, even when the draft's law
    /// gave it none either (a draw can round onto a weight-0 candidate).
    #[test]
    fn a_token_the_target_never_draws_is_rejected() {
        let mut sampler = Sampler::new(SamplerConfig {
            temperature: 1.0,
            top_k: 2,
            top_p: 1.0,
            min_p: 0.0,
            seed: 1,
            ..SamplerConfig::default()
        });
        let mut spec = SpecState::default();
        spec.draft = vec![5];
        spec.qs = vec![Distribution {
            tokens: vec![1, 5],
            weights: vec![1.0, 0.0],
            total: 1.0,
            random: true,
        }];
        // Top-k keeps tokens 1 and 2: the target never draws 5.
        let mut logits = vec![0.0f32; 8];
        logits[1] = 5.0;
        logits[2] = 4.0;
        for _ in 0..20 {
            let token = verify(&mut sampler, &mut logits.clone(), &mut spec, 0);
            assert!(token == 1 || token == 2, "drew {token}");
        }
    }

    /// A draft model that fails (here one that cannot embed the upper half of the vocabulary)
    /// costs its drafts, never the sequences' steps: the output is what decoding without it
    /// gives.
    #[test]
    fn a_failing_draft_model_only_skips_drafting() {
        let mut small = TinySpec::new("llama");
        small.n_vocab = 32;
        small.window = 8;
        small.n_layer = 2;
        let small =
            Model::from_gguf(Gguf::from_bytes(small.build()).expect("gguf")).expect("model");
        let opts = |speculation| crate::EngineOptions {
            ctx: 256,
            threads: 1,
            speculation,
            ..crate::EngineOptions::default()
        };
        let prompt: Vec<u32> = (0..30u32).map(|i| 3 + (i * 37 + i * i * 7) % 61).collect();
        assert!(prompt.iter().any(|&t| t >= 32));
        let generate = |e: &mut crate::Engine| {
            let id = e
                .add(Request {
                    prompt: prompt.clone(),
                    sampler: SamplerConfig::greedy(),
                    max_tokens: 20,
                    ..Default::default()
                })
                .expect("add");
            while e.has_work() {
                e.step().expect("a draft failure failed the step");
            }
            e.sequence(id).expect("seq").generated().to_vec()
        };
        let mut plain = crate::Engine::new(tiny(3), opts(crate::Speculation::Off));
        let mut drafting = crate::Engine::new(tiny(3), opts(crate::Speculation::PromptLookup));
        drafting.drafter = Some(Drafter::new(small, 256, 1, 256));
        assert_eq!(generate(&mut drafting), generate(&mut plain));
    }

    /// The draft state of `seq` in `d`, made now if it has none.
    fn fresh_sampler<'a>(
        d: &'a mut Drafter,
        seq: &Sequence,
        cfg: SamplerConfig,
    ) -> &'a mut Sampler {
        if d.seqs.is_empty() {
            d.seqs.push(DraftSeq {
                id: seq.id(),
                kv: d.kv.new_seq(),
                held: Vec::new(),
                sampler: Sampler::new(cfg),
                target: 0,
                want: 0,
                catching: false,
                turn: 0,
            });
        }
        &mut d.seqs[0].sampler
    }
}
