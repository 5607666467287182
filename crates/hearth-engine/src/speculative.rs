//! Speculative decoding by prompt lookup: a decoding sequence proposes the tokens that followed
//! the latest earlier occurrence of its own last few tokens (no second model), and the step
//! feeds them with its real next token, so the model scores all of them in one batched pass.
//!
//! # Why it is exact
//!
//! Batch invariance makes the logits of every fed position the same bits as feeding the tokens
//! one step at a time. The engine then walks the rows in order exactly as plain decoding would:
//! row `j` is masked, penalised and sampled by the sequence's own sampler, with its own RNG,
//! after the tokens before it were accepted; the draft only decides whether the walk goes on.
//! When the sampled token equals draft token `j` the next row is valid (its input was that
//! token) and the walk continues; otherwise the sampled token stands and the rest is thrown
//! away. So the output is the same tokens as without speculation, greedy or sampled, for the
//! same seed.
//!
//! For sampling this *is* standard speculative rejection sampling with a point-mass draft
//! (`q = δ_d`): the draft token is accepted with probability `min(1, p(d) / q(d)) = p(d)`, and
//! on rejection the token comes from `max(0, p - q)` renormalised, which is `p` with `d` removed
//! and renormalised. Drawing `x ~ p` and accepting when `x = d` has exactly that law:
//! `P(x = d) = p(d)`, and given `x ≠ d`, `x` follows `p(x) / (1 - p(d))` over the other tokens.
//! It spends one draw per generated token, as plain decoding does, which is why the RNG stream
//! and therefore the output do not depend on what was drafted.
//!
//! # KV rollback
//!
//! Drafted positions are written to the sequence's own blocks (reserved at admission: a draft
//! never reaches past the sequence's `reach`). After verification the sequence's length is cut
//! back to the positions whose tokens were accepted; the keys and values written past it are
//! never read (attention reads only up to each query's position) and are overwritten by the
//! next step before anything reads them.
//!
//! # Adaptive draft length
//!
//! Each sequence keeps its own draft length, changed only by its own acceptance history (never
//! by timing or by other sequences): all accepted lengthens it, a partial acceptance sets it just
//! past what was accepted, and a draft rejected at its first token halves it; repeated first-token
//! misses pause drafting for a number of steps that doubles with each miss, so text the lookup
//! cannot predict costs almost nothing.

use hearth_model::Distribution;

/// How the engine speculates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Speculation {
    /// One token per sequence per step.
    Off,
    /// Drafts from the sequence's own context ([`lookup`]).
    #[default]
    PromptLookup,
}

/// The longest draft: 8 drafted tokens plus the real one stay well inside what the multi-token
/// tile kernels handle in one pass.
pub const MAX_DRAFT: usize = 8;
/// Draft length a sequence starts with.
const START_DRAFT: usize = 4;
/// The longest suffix matched; longer matches predict better, so they are tried first.
const NGRAM_MAX: usize = 4;
/// The shortest suffix matched: a single token matches too often to predict anything.
const NGRAM_MIN: usize = 2;
/// Most steps drafting pauses after repeated misses.
const MAX_PAUSE: usize = 32;

/// Writes into `out` up to `k` tokens that followed the most recent earlier occurrence of the
/// longest suffix of `tokens` (between [`NGRAM_MIN`] and [`NGRAM_MAX`] tokens long) that occurs
/// earlier. Leaves `out` empty when no suffix recurs.
pub fn lookup(tokens: &[u32], k: usize, out: &mut Vec<u32>) {
    out.clear();
    if k == 0 {
        return;
    }
    if let Some((from, _)) = find(tokens) {
        out.extend_from_slice(&tokens[from..(from + k).min(tokens.len())]);
    }
}

/// Where the lookup's continuation starts and how long the matched suffix is.
fn find(tokens: &[u32]) -> Option<(usize, usize)> {
    let len = tokens.len();
    for n in (NGRAM_MIN..=NGRAM_MAX.min(len.saturating_sub(1))).rev() {
        let tail = &tokens[len - n..];
        // Latest first: recent context predicts best. `i + n < len` keeps at least one token
        // after the match.
        let found = (0..len - n).rev().find(|&i| tokens[i..i + n] == *tail);
        if let Some(i) = found {
            return Some((i + n, n));
        }
    }
    None
}

/// Where a step's draft came from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Source {
    #[default]
    Lookup,
    Model,
}

/// One sequence's speculation: its adaptive draft length, the draft of the step in flight and
/// its counts.
#[derive(Clone, Debug)]
pub(crate) struct SpecState {
    /// Draft length for the next step.
    k: usize,
    /// Steps left before drafting again.
    pause: usize,
    /// Consecutive drafts rejected at their first token.
    misses: u32,
    /// Draft length for the next step the draft model drafts.
    pub(crate) k_model: usize,
    /// The sequence's turn (counts [`new_turn`](Self::new_turn)s): the draft sampler is
    /// rebuilt when it changes.
    pub(crate) turn: u64,
    /// Where the draft of the step in flight came from.
    pub(crate) source: Source,
    /// The draft model's law for each drafted token of the step in flight (slots past the
    /// draft's length are stale, kept for their allocations).
    pub(crate) qs: Vec<Distribution>,
    /// The target's law for the row being verified (reused).
    pub(crate) p: Distribution,
    /// Per vocabulary entry: a draft law's probabilities while a residual is drawn (reused,
    /// zero between uses).
    pub(crate) dense: Vec<f64>,
    /// Tokens drafted for the step in flight (fed after the sequence's last token).
    pub(crate) draft: Vec<u32>,
    /// Position of the sequence's last token in the step in flight: row `j` of its logits
    /// comes from position `base + j`.
    pub(crate) base: usize,
    /// Draft tokens accepted so far in the step in flight.
    pub(crate) accepted: usize,
    /// Whether the walk over the rows of the step in flight has stopped.
    pub(crate) done: bool,
    /// Totals over the sequence's life.
    pub(crate) total_drafted: u64,
    pub(crate) total_accepted: u64,
    /// The share of the totals drafted by the draft model.
    pub(crate) model_drafted: u64,
    pub(crate) model_accepted: u64,
}

impl Default for SpecState {
    fn default() -> Self {
        SpecState {
            k: START_DRAFT,
            pause: 0,
            misses: 0,
            k_model: START_DRAFT,
            turn: 0,
            source: Source::Lookup,
            qs: Vec::new(),
            p: Distribution::default(),
            dense: Vec::new(),
            draft: Vec::new(),
            base: 0,
            accepted: 0,
            done: false,
            total_drafted: 0,
            total_accepted: 0,
            model_drafted: 0,
            model_accepted: 0,
        }
    }
}

impl SpecState {
    /// Starts a new turn: the adaptive lengths and pauses start afresh, as in a new sequence
    /// (a turn's output must not depend on whether its history came from earlier turns or a
    /// fresh prompt); the totals go on.
    pub(crate) fn new_turn(&mut self) {
        let fresh = SpecState::default();
        self.k = fresh.k;
        self.pause = fresh.pause;
        self.misses = fresh.misses;
        self.k_model = fresh.k_model;
        self.source = fresh.source;
        self.draft.clear();
        self.turn += 1;
    }

    /// Drafts at most `cap` tokens after `tokens` for a step whose first fed position is
    /// `base`; returns how many were drafted.
    /// A draft the draft model made this step ([`start_model`](Self::start_model)) is only cut
    /// to `cap`.
    pub(crate) fn propose(&mut self, tokens: &[u32], base: usize, cap: usize) -> usize {
        if self.source == Source::Model {
            self.draft.truncate(cap);
            return self.draft.len();
        }
        self.draft.clear();
        self.accepted = 0;
        self.done = false;
        self.base = base;
        if self.pause > 0 {
            self.pause -= 1;
            return 0;
        }
        lookup(tokens, self.k.min(cap), &mut self.draft);
        self.draft.len()
    }

    /// With a draft model loaded, whether this step drafts by prompt lookup instead: when the
    /// lookup is not paused and its match is the longest it tries. A long match in the text so
    /// far (a document being quoted, code being edited) predicts as well as a model, for free.
    pub(crate) fn prefers_lookup(&mut self, tokens: &[u32]) -> bool {
        if self.pause > 0 {
            self.pause -= 1;
            return false;
        }
        find(tokens).is_some_and(|(_, n)| n >= NGRAM_MAX)
    }

    /// Starts a step whose draft the draft model makes, after the sequence's last token at
    /// position `base`.
    pub(crate) fn start_model(&mut self, base: usize) {
        self.source = Source::Model;
        self.draft.clear();
        self.accepted = 0;
        self.done = false;
        self.base = base;
    }

    /// Row `j` of the step in flight sampled `token`: returns whether the next row is still
    /// valid (the token was the drafted one).
    pub(crate) fn check(&mut self, j: usize, token: u32) -> bool {
        if self.draft.get(j) == Some(&token) {
            self.accepted += 1;
            true
        } else {
            self.done = true;
            false
        }
    }

    /// Closes the step in flight: adapts the draft length from its outcome alone and returns
    /// (drafted, accepted).
    pub(crate) fn finish(&mut self) -> (usize, usize) {
        let (d, a) = (self.draft.len(), self.accepted);
        let source = std::mem::take(&mut self.source);
        if d == 0 {
            return (0, 0);
        }
        if source == Source::Model {
            // A model always has a draft to offer, so there is no pause: a draft rejected at
            // once shrinks to one token, which costs one small forward pass.
            self.k_model = if a == d {
                (self.k_model + 2).min(MAX_DRAFT)
            } else {
                a + 1
            };
            self.model_drafted += d as u64;
            self.model_accepted += a as u64;
        } else if a == d {
            self.k = (self.k + 2).min(MAX_DRAFT);
            self.misses = 0;
        } else if a > 0 {
            self.k = (a + 1).min(MAX_DRAFT);
            self.misses = 0;
        } else {
            self.k = (self.k / 2).max(1);
            self.misses += 1;
            if self.misses >= 2 {
                self.pause = (1usize << (self.misses - 2).min(5)).min(MAX_PAUSE);
            }
        }
        self.total_drafted += d as u64;
        self.total_accepted += a as u64;
        self.draft.clear();
        (d, a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_takes_what_followed_the_latest_longest_match() {
        let mut out = Vec::new();
        // "1 2 3" recurs; the latest occurrence (at 5) is followed by 8 9.
        lookup(&[1, 2, 3, 4, 5, 1, 2, 3, 8, 9, 7, 1, 2, 3], 2, &mut out);
        assert_eq!(out, [8, 9]);
        // A 4-gram beats a later 2-gram.
        lookup(&[5, 6, 7, 8, 40, 41, 9, 7, 8, 50, 5, 6, 7, 8], 2, &mut out);
        assert_eq!(out, [40, 41]);
        // The continuation stops at the end of the context.
        lookup(&[1, 2, 1, 2], 5, &mut out);
        assert_eq!(out, [1, 2]);
        // Nothing recurs: no draft.
        lookup(&[1, 2, 3, 4, 5], 4, &mut out);
        assert!(out.is_empty());
        lookup(&[7], 4, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn draft_length_follows_acceptance_only() {
        let mut s = SpecState::default();
        let tokens = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 1, 2];
        assert_eq!(s.propose(&tokens, 11, 100), START_DRAFT);
        for j in 0..START_DRAFT {
            assert!(s.check(j, tokens[2 + j]));
        }
        assert_eq!(s.finish(), (START_DRAFT, START_DRAFT));
        assert_eq!(s.k, START_DRAFT + 2);
        assert_eq!(s.propose(&tokens, 11, 3), 3, "the cap bounds the draft");
        assert!(s.check(0, 3));
        assert!(!s.check(1, 99));
        assert_eq!(s.finish(), (3, 1));
        assert_eq!(s.k, 2);
        // Two first-token misses in a row pause drafting.
        for _ in 0..2 {
            s.propose(&tokens, 11, 100);
            assert!(!s.check(0, 99));
            s.finish();
        }
        assert_eq!(s.propose(&tokens, 11, 100), 0, "paused");
        assert!(s.propose(&tokens, 11, 100) > 0, "resumes after the pause");
    }
}
