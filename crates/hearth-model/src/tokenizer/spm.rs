//! SentencePiece-style BPE (`tokenizer.ggml.model = "llama"`): greedy merges driven by scores.
//!
//! As in llama.cpp's `llm_tokenizer_spm`: start from single code points, repeatedly merge the
//! adjacent pair whose concatenation is a vocab entry with the highest score (leftmost on ties),
//! and emit each final piece that is not a vocab entry as byte tokens `<0xNN>`.

use super::token_map::TokenMap;
use std::cmp::Ordering;
use std::collections::BinaryHeap;

struct Bigram {
    score: f32,
    left: usize,
    right: usize,
    size: usize,
}

impl PartialEq for Bigram {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Bigram {}
impl PartialOrd for Bigram {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Bigram {
    /// Max-heap order: higher score first, then the smaller left index.
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then_with(|| other.left.cmp(&self.left))
    }
}

/// Tokenizes `text` (spaces already escaped to `▁`) and appends the ids to `out`.
/// `byte_token` maps a byte to its fallback token, if the vocab has one.
pub(crate) fn encode(
    text: &str,
    token_to_id: &TokenMap,
    scores: &[f32],
    byte_token: &[Option<u32>; 256],
    out: &mut Vec<u32>,
) {
    struct Sym {
        start: usize,
        len: usize,
        prev: usize,
        next: usize,
    }
    const NONE: usize = usize::MAX;
    let mut syms: Vec<Sym> = Vec::with_capacity(text.len());
    for (i, (start, c)) in text.char_indices().enumerate() {
        syms.push(Sym {
            start,
            len: c.len_utf8(),
            prev: if i == 0 { NONE } else { i - 1 },
            next: i + 1,
        });
    }
    let Some(last) = syms.last_mut() else {
        return;
    };
    last.next = NONE;

    let mut heap = BinaryHeap::new();
    let try_add = |heap: &mut BinaryHeap<Bigram>, syms: &[Sym], l: usize, r: usize| {
        if l == NONE || r == NONE {
            return;
        }
        // Adjacent symbols are contiguous in `text`, so the pair is one slice.
        let size = syms[l].len + syms[r].len;
        let piece = &text[syms[l].start..syms[l].start + size];
        if let Some(&id) = token_to_id.get(piece) {
            let score = scores.get(id as usize).copied().unwrap_or(0.0);
            heap.push(Bigram {
                score,
                left: l,
                right: r,
                size,
            });
        }
    };
    for i in 1..syms.len() {
        try_add(&mut heap, &syms, i - 1, i);
    }
    while let Some(b) = heap.pop() {
        let (l, r) = (b.left, b.right);
        if syms[l].len == 0 || syms[r].len == 0 || syms[l].len + syms[r].len != b.size {
            continue;
        }
        syms[l].len += syms[r].len;
        syms[r].len = 0;
        let next = syms[r].next;
        syms[l].next = next;
        if next != NONE {
            syms[next].prev = l;
        }
        let prev = syms[l].prev;
        try_add(&mut heap, &syms, prev, l);
        try_add(&mut heap, &syms, l, next);
    }

    let mut i = 0;
    while i != NONE {
        let s = &syms[i];
        let piece = &text[s.start..s.start + s.len];
        match token_to_id.get(piece) {
            Some(&id) => out.push(id),
            // Only single code points can be left unmatched (every merge makes a vocab entry).
            None => out.extend(piece.bytes().filter_map(|b| byte_token[usize::from(b)])),
        }
        i = s.next;
    }
}
