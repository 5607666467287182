//! Text → id lookup over the vocabulary without a second copy of every token string.
//!
//! A plain `HashMap<String, u32>` would clone all token texts (262k for Gemma); this table
//! stores only ids and compares against the token list it owns, which halves the allocations
//! made while loading a model.

use hashbrown::HashTable;
use rustc_hash::FxBuildHasher;
use std::hash::BuildHasher;

pub(crate) struct TokenMap {
    tokens: Vec<String>,
    table: HashTable<u32>,
    hasher: FxBuildHasher,
}

impl TokenMap {
    /// Indexes `tokens`; for a text listed twice the later id wins, as in llama.cpp.
    pub(crate) fn new(tokens: Vec<String>) -> TokenMap {
        let hasher = FxBuildHasher;
        let mut table: HashTable<u32> = HashTable::with_capacity(tokens.len());
        for (i, t) in tokens.iter().enumerate() {
            let hash = hasher.hash_one(t.as_str());
            // Vocabularies hold far fewer than 2^32 tokens (GGUF arrays are u64-counted, but a
            // model's embedding matrix could not be that large).
            let id = i as u32;
            match table.find_mut(hash, |&j| tokens[j as usize] == *t) {
                Some(slot) => *slot = id,
                None => {
                    table
                        .insert_unique(hash, id, |&j| hasher.hash_one(tokens[j as usize].as_str()));
                }
            }
        }
        TokenMap {
            tokens,
            table,
            hasher,
        }
    }

    pub(crate) fn get(&self, s: &str) -> Option<&u32> {
        self.table
            .find(self.hasher.hash_one(s), |&j| self.tokens[j as usize] == s)
    }

    pub(crate) fn tokens(&self) -> &[String] {
        &self.tokens
    }
}
