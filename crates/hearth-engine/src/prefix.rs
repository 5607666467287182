//! The prefix cache: KV blocks of removed sequences, kept so a later request that starts with
//! the same tokens (a shared system prompt, the earlier turns of a conversation) skips
//! recomputing them.
//!
//! A retained entry is a token array and a [`SeqKv`] holding the blocks that computed it, cut
//! to whole blocks. Matching compares token arrays: an entry (or a live sequence) serves the
//! longest common prefix of whole blocks, and the new sequence *shares* those blocks through
//! [`KvCache::fork`] rather than copying them. Because a position's keys and values depend only
//! on the tokens up to it, and the forward pass is batch invariant, the shared bits are exactly
//! the bits recomputing would write: a hit changes no logit.
//!
//! Entries are evicted least recently used first, whole (their blocks return to the pool unless
//! a live sequence or another entry shares them). The scan is linear in the cached tokens, which
//! the pool bounds; it runs once per request, not per step.

use hearth_model::kv::BLOCK_TOKENS;
use hearth_model::{KvCache, SeqKv};

/// A removed sequence's computed prefix.
struct Retained {
    /// The tokens whose keys and values `kv` holds (`kv.len()` of them).
    tokens: Vec<u32>,
    kv: SeqKv,
    /// When it was last stored or used (the cache's clock).
    last_used: u64,
}

/// Retained prefixes, least recently used evicted first.
#[derive(Default)]
pub(crate) struct PrefixCache {
    entries: Vec<Retained>,
    clock: u64,
}

/// The longest prefix of `prompt` that a fork of `src` (whose first `src.len()` tokens are
/// `src_tokens`) can share: whole blocks, leaving at least one prompt token to compute so the
/// sequence gets logits; 0 when none.
pub(crate) fn shareable(kv: &KvCache, src: &SeqKv, src_tokens: &[u32], prompt: &[u32]) -> usize {
    let limit = src.len().min(prompt.len().saturating_sub(1));
    let common = src_tokens
        .iter()
        .zip(prompt)
        .take(limit)
        .take_while(|(a, b)| a == b)
        .count();
    let len = common - common % BLOCK_TOKENS;
    if len > 0 && kv.can_fork(src, len) {
        len
    } else {
        0
    }
}

impl PrefixCache {
    /// Number of retained prefixes.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The entry serving the longest prefix of `prompt`, as (entry, prefix length).
    pub(crate) fn best(&self, kv: &KvCache, prompt: &[u32]) -> Option<(usize, usize)> {
        self.entries
            .iter()
            .enumerate()
            .map(|(i, e)| (i, shareable(kv, &e.kv, &e.tokens, prompt)))
            .filter(|&(_, len)| len > 0)
            .max_by_key(|&(i, len)| (len, self.entries[i].last_used))
    }

    /// Entry `i`'s KV view.
    pub(crate) fn kv(&self, i: usize) -> &SeqKv {
        &self.entries[i].kv
    }

    /// Marks entry `i` as just used.
    pub(crate) fn touch(&mut self, i: usize) {
        self.clock += 1;
        self.entries[i].last_used = self.clock;
    }

    /// Keeps the whole blocks of a removed sequence whose cache holds `tokens[..seq.len()]`.
    /// Nothing is kept when no whole block was computed or another entry already serves every
    /// prefix this one would; an entry this one serves entirely is dropped.
    pub(crate) fn retain(&mut self, kv: &mut KvCache, tokens: &[u32], mut seq: SeqKv) {
        let len = seq.len() - seq.len() % BLOCK_TOKENS;
        let kept = if len > 0 {
            kv.truncate(&mut seq, len)
        } else {
            None
        };
        if kept != Some(len) {
            kv.release(&mut seq);
            return;
        }
        let tokens = &tokens[..len];
        // An entry that holds this one's tokens and can be forked at its length serves it.
        if let Some(i) = self.entries.iter().position(|e| {
            e.tokens.len() >= len && e.tokens[..len] == *tokens && kv.can_fork(&e.kv, len)
        }) {
            kv.release(&mut seq);
            self.touch(i);
            return;
        }
        let mut i = 0;
        while i < self.entries.len() {
            let e = &self.entries[i];
            let n = e.tokens.len();
            if n < len && tokens[..n] == e.tokens[..] && kv.can_fork(&seq, n) {
                let mut old = self.entries.swap_remove(i);
                kv.release(&mut old.kv);
            } else {
                i += 1;
            }
        }
        self.clock += 1;
        self.entries.push(Retained {
            tokens: tokens.to_vec(),
            kv: seq,
            last_used: self.clock,
        });
    }

    /// Drops the least recently used entry; `false` when there is none.
    pub(crate) fn evict_lru(&mut self, kv: &mut KvCache) -> bool {
        let Some(i) = self
            .entries
            .iter()
            .enumerate()
            .min_by_key(|(_, e)| e.last_used)
            .map(|(i, _)| i)
        else {
            return false;
        };
        let mut e = self.entries.swap_remove(i);
        kv.release(&mut e.kv);
        true
    }

    /// Drops every entry.
    pub(crate) fn clear(&mut self, kv: &mut KvCache) {
        for mut e in self.entries.drain(..) {
            kv.release(&mut e.kv);
        }
    }
}
