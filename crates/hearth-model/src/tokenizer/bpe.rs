//! Byte-level BPE (`tokenizer.ggml.model = "gpt2"`): rank-ordered merges inside each word.
//!
//! Merges are kept as pairs of *symbol ids*: every vocab entry is a symbol, and so is every
//! merge result that is not in the vocab (llama.cpp merges by string, so such a result can
//! still take part in later merges even though it has no token id of its own). Interning the
//! strings once at load time lets encoding compare integers instead of building strings.

use super::token_map::TokenMap;
use rustc_hash::FxHashMap;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Symbol id for a char that is neither a token nor part of any merge.
const NO_SYMBOL: u32 = u32::MAX;

/// A merge candidate: (rank, left index, right index, left symbol, right symbol).
type Candidate = (u32, usize, usize, u32, u32);

pub(crate) struct BpeMerges {
    /// `(left, right)` symbol ids → `(rank, merged symbol id)`; the first listing of a pair wins.
    merges: FxHashMap<(u32, u32), (u32, u32)>,
    /// Symbol id of every string that is a merge result but not a vocab entry (ids from n_vocab).
    extra: FxHashMap<String, u32>,
    n_vocab: u32,
}

impl BpeMerges {
    /// Builds the table from `"left right"` merge lines.
    pub(crate) fn new(merges: &[String], token_to_id: &TokenMap, n_vocab: u32) -> BpeMerges {
        let mut table = BpeMerges {
            merges: FxHashMap::default(),
            extra: FxHashMap::default(),
            n_vocab,
        };
        table.merges.reserve(merges.len());
        for (rank, line) in merges.iter().enumerate() {
            // llama.cpp splits at the first space after the first byte, so a merge whose left
            // side is a space (" x") still parses; a line with no such space pairs "" with "".
            let space = line.bytes().skip(1).position(|b| b == b' ').map(|i| i + 1);
            let (left, right) = match space {
                // A space byte is always a char boundary.
                Some(i) => (&line[..i], &line[i + 1..]),
                None => ("", ""),
            };
            let l = table.intern(left, token_to_id);
            let r = table.intern(right, token_to_id);
            let merged = table.intern(&format!("{left}{right}"), token_to_id);
            // Ranks beyond u32 cannot occur: GGUF arrays of that size would not fit in memory.
            let rank = u32::try_from(rank).unwrap_or(u32::MAX);
            table.merges.entry((l, r)).or_insert((rank, merged));
        }
        table
    }

    fn intern(&mut self, s: &str, token_to_id: &TokenMap) -> u32 {
        if let Some(&id) = token_to_id.get(s) {
            return id;
        }
        if let Some(&id) = self.extra.get(s) {
            return id;
        }
        // Fewer than 2^32 symbols: each merge line adds at most three.
        let id = self.n_vocab.saturating_add(self.extra.len() as u32);
        self.extra.insert(s.to_owned(), id);
        id
    }

    /// Symbol id of a single char (or [`NO_SYMBOL`]).
    fn symbol_of(&self, s: &str, token_to_id: &TokenMap) -> u32 {
        token_to_id
            .get(s)
            .or_else(|| self.extra.get(s))
            .copied()
            .unwrap_or(NO_SYMBOL)
    }

    /// Merges one (byte-encoded) word and appends the ids of its tokens to `out`.
    /// A final symbol that is not a vocab entry falls back to its single bytes, each looked up as
    /// a one-byte token, as llama.cpp does (bytes with no token are dropped).
    pub(crate) fn encode_word(&self, word: &str, token_to_id: &TokenMap, out: &mut Vec<u32>) {
        struct Sym {
            start: usize,
            len: usize,
            id: u32,
            prev: usize,
            next: usize,
        }
        const NONE: usize = usize::MAX;
        let mut syms: Vec<Sym> = Vec::with_capacity(word.len());
        for (i, (start, c)) in word.char_indices().enumerate() {
            let len = c.len_utf8();
            syms.push(Sym {
                start,
                len,
                id: self.symbol_of(&word[start..start + len], token_to_id),
                prev: if i == 0 { NONE } else { i - 1 },
                next: i + 1,
            });
        }
        if let Some(last) = syms.last_mut() {
            last.next = NONE;
        }

        // Min-heap on (rank, left index); entries carry the pair they were made for so that an
        // entry made stale by an earlier merge is recognised and skipped.
        let mut heap: BinaryHeap<Reverse<Candidate>> = BinaryHeap::new();
        let push = |heap: &mut BinaryHeap<_>, syms: &[Sym], l: usize, r: usize| {
            if l == NONE || r == NONE {
                return;
            }
            if let Some(&(rank, _)) = self.merges.get(&(syms[l].id, syms[r].id)) {
                heap.push(Reverse((rank, l, r, syms[l].id, syms[r].id)));
            }
        };
        for i in 1..syms.len() {
            push(&mut heap, &syms, i - 1, i);
        }
        while let Some(Reverse((_, l, r, lid, rid))) = heap.pop() {
            if syms[l].len == 0 || syms[r].len == 0 || syms[l].id != lid || syms[r].id != rid {
                continue;
            }
            let Some(&(_, merged)) = self.merges.get(&(lid, rid)) else {
                continue;
            };
            syms[l].len += syms[r].len;
            syms[l].id = merged;
            syms[r].len = 0;
            let next = syms[r].next;
            syms[l].next = next;
            if next != NONE {
                syms[next].prev = l;
            }
            let prev = syms[l].prev;
            push(&mut heap, &syms, prev, l);
            push(&mut heap, &syms, l, next);
        }

        let mut i = if syms.is_empty() { NONE } else { 0 };
        while i != NONE {
            let s = &syms[i];
            if s.id < self.n_vocab {
                out.push(s.id);
            } else {
                for b in word[s.start..s.start + s.len].bytes() {
                    let one = [b];
                    if let Some(id) = std::str::from_utf8(&one)
                        .ok()
                        .and_then(|t| token_to_id.get(t))
                    {
                        out.push(*id);
                    }
                }
            }
            i = s.next;
        }
    }
}
