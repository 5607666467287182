//! The bridge from Hearth's tokenizer to llguidance's token trie.
//!
//! llguidance walks a byte trie of the vocabulary against its lexer to find which tokens may come
//! next. Each ordinary token is entered with the bytes it decodes to. Control and
//! end-of-generation tokens are entered the way llguidance marks special tokens: a `0xFF` byte
//! (never part of UTF-8, so never part of JSON or free text) followed by the token's text. That
//! keeps `<|im_end|>` or `</s>` from ever spelling part of a JSON string, which would end the
//! sequence in the middle of a value, while grammars can still name them as `<|im_end|>` and the
//! end tokens stay allowed where the grammar is complete.

use hearth_model::tokenizer::Tokenizer;
use toktrie::{TokRxInfo, TokTrie, TokenId, TokenizerEnv};

use crate::Error;

/// llguidance's view of one model's vocabulary.
pub(crate) struct TrieEnv {
    trie: TokTrie,
}

impl TrieEnv {
    pub(crate) fn new(tok: &Tokenizer) -> Result<TrieEnv, Error> {
        let n_vocab = tok.n_vocab();
        let eog = tok.eog_ids();
        let eos = tok
            .eos()
            .or_else(|| eog.first().copied())
            .ok_or(Error::NoEndToken)?;
        let vocab_size = u32::try_from(n_vocab).map_err(|_| Error::VocabTooLarge { n_vocab })?;
        let words: Vec<Vec<u8>> = (0..vocab_size)
            .map(|id| {
                if tok.is_control(id) || tok.is_eog(id) {
                    let text = tok.token_text(id).as_bytes();
                    let mut w = Vec::with_capacity(text.len() + 1);
                    w.push(TokTrie::SPECIAL_TOKEN_MARKER);
                    w.extend_from_slice(text);
                    w
                } else {
                    let piece = tok.token_to_piece(id);
                    // A raw 0xFF byte token would read as a special-token marker. It can never
                    // be part of UTF-8 text, so it is left out of the trie (never allowed).
                    if piece.first() == Some(&TokTrie::SPECIAL_TOKEN_MARKER) {
                        Vec::new()
                    } else {
                        piece.to_vec()
                    }
                }
            })
            .collect();
        let info = TokRxInfo {
            vocab_size,
            tok_eos: eos,
            tok_bos: tok.bos(),
            tok_pad: None,
            tok_unk: None,
            tok_end_of_turn: None,
        };
        let mut ends: Vec<TokenId> = eog.to_vec();
        if !ends.contains(&eos) {
            ends.push(eos);
        }
        let trie = TokTrie::from(&info, &words).with_eos_tokens(&ends);
        Ok(TrieEnv { trie })
    }
}

impl TokenizerEnv for TrieEnv {
    fn tok_trie(&self) -> &TokTrie {
        &self.trie
    }

    /// Greedy longest-match tokenization over the trie. llguidance needs real tokenization only
    /// to force tokens or heal a prompt's last token; Hearth uses neither (the engine samples
    /// every token through the mask), so this is declared non-canonical and llguidance never
    /// relies on it matching the model's tokenizer.
    fn tokenize_bytes(&self, s: &[u8]) -> Vec<TokenId> {
        self.trie.greedy_tokenize(s)
    }

    fn tokenize_is_canonical(&self) -> bool {
        false
    }
}
