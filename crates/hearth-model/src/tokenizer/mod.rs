//! Tokenizer built from a GGUF file's `tokenizer.*` metadata, matching llama.cpp token for token.
//!
//! # Why our own and not the `tokenizers` crate
//!
//! Hearth promises the same token ids as llama.cpp for the same file and text. The `tokenizers`
//! crate implements Hugging Face's definitions, which llama.cpp only approximates: llama.cpp's
//! SentencePiece path (`llm_tokenizer_spm`) merges greedily by score while HF's is a
//! Unigram/BPE model built from `tokenizer.json` (not in the GGUF); llama.cpp runs the
//! pre-tokenizer regexes through hand-written scanners whose edge cases differ from a regex
//! engine; it splits special tokens out of the text before anything else (user-defined tokens
//! even when special parsing is off), and guesses end-of-generation tokens from their text. So
//! we implement llama.cpp's algorithms directly (they are short), and check them against
//! llama.cpp on fixtures.
//!
//! # Parts
//!
//! - [`Vocab`]: the raw metadata (tokens, scores, types, merges, flags), filled from GGUF by
//!   [`Vocab::from_gguf`] or by hand in tests.
//! - special-token partition (here): cuts the text at special tokens, longest first.
//! - `pretok`: llama.cpp's pre-tokenizer splitters, per `tokenizer.ggml.pre`.
//! - `bpe`: byte-level BPE for `gpt2` vocabularies; `spm`: score-driven merges for `llama` ones.
//! - [`StreamDecoder`]: turns generated ids into text without splitting a UTF-8 character.

mod bpe;
mod pretok;
mod spm;
mod stream;
mod token_map;
mod unicode;

pub use pretok::PreTokenizer;
pub use stream::StreamDecoder;

use aho_corasick::AhoCorasick;
use token_map::TokenMap;

/// Errors building a tokenizer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A metadata key is missing or has the wrong type.
    #[error("tokenizer metadata: {0}")]
    Metadata(#[from] hearth_gguf::Error),
    /// `tokenizer.ggml.model` names a tokenizer we do not implement.
    #[error("unknown tokenizer model `{found}` in tokenizer.ggml.model; supported: {supported}")]
    UnknownModel {
        found: String,
        supported: &'static str,
    },
    /// A per-token array is shorter than the token list.
    #[error("`{key}` has {found} entries but the vocabulary has {expected} tokens")]
    LengthMismatch {
        key: &'static str,
        expected: usize,
        found: usize,
    },
    /// `tokenizer.ggml.scores` is neither f32 nor i32.
    #[error("`tokenizer.ggml.scores` must be an array of f32 or i32, found {found}")]
    ScoresType { found: String },
    /// The vocabulary has no tokens.
    #[error("`tokenizer.ggml.tokens` is empty")]
    EmptyVocab,
}

/// Supported `tokenizer.ggml.model` values.
pub const SUPPORTED_MODELS: &str = "llama (SentencePiece), gpt2 (byte-level BPE)";

/// The tokenizer algorithm family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Model {
    /// `llama`: SentencePiece-style, scores-driven merges with `<0xNN>` byte fallback.
    Spm,
    /// `gpt2`: byte-level BPE with ranked merges and a pre-tokenizer.
    Bpe,
}

/// The tokenizer part of a GGUF file's metadata, as plain data.
#[derive(Clone, Debug, Default)]
pub struct Vocab {
    /// `tokenizer.ggml.model`.
    pub model: String,
    /// `tokenizer.ggml.pre`.
    pub pre: Option<String>,
    /// `tokenizer.ggml.tokens`.
    pub tokens: Vec<String>,
    /// `tokenizer.ggml.scores` (SentencePiece merge priorities).
    pub scores: Option<Vec<f32>>,
    /// `tokenizer.ggml.token_type` (1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte).
    pub token_types: Option<Vec<i32>>,
    /// `tokenizer.ggml.merges` (`"left right"`, best first).
    pub merges: Option<Vec<String>>,
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub eot: Option<u32>,
    pub eom: Option<u32>,
    pub unk: Option<u32>,
    pub pad: Option<u32>,
    pub fim_pad: Option<u32>,
    pub fim_rep: Option<u32>,
    pub fim_sep: Option<u32>,
    pub add_bos: Option<bool>,
    pub add_eos: Option<bool>,
    pub add_space_prefix: Option<bool>,
    /// `general.name`: llama.cpp changes special-token whitespace handling for Phi-3 by name.
    pub model_name: Option<String>,
}

impl Vocab {
    /// Reads the `tokenizer.*` keys (and `general.name`) from GGUF metadata.
    pub fn from_gguf(md: &hearth_gguf::Metadata) -> Result<Vocab, Error> {
        let scores = match md.get("tokenizer.ggml.scores") {
            None => None,
            Some(hearth_gguf::Value::Array(hearth_gguf::Array::F32(v))) => Some(v.clone()),
            Some(hearth_gguf::Value::Array(hearth_gguf::Array::I32(v))) => {
                Some(v.iter().map(|&x| x as f32).collect())
            }
            Some(other) => {
                return Err(Error::ScoresType {
                    found: format!("{other:?}").chars().take(60).collect(),
                })
            }
        };
        let opt_strings = |key: &str| -> Result<Option<Vec<String>>, Error> {
            if md.contains_key(key) {
                Ok(Some(md.strings(key)?.to_vec()))
            } else {
                Ok(None)
            }
        };
        let token_types = if md.contains_key("tokenizer.ggml.token_type") {
            Some(md.i32s("tokenizer.ggml.token_type")?.to_vec())
        } else {
            None
        };
        let id = |key: &str| md.opt_u32(key);
        Ok(Vocab {
            model: md.str("tokenizer.ggml.model")?.to_owned(),
            pre: md.opt_str("tokenizer.ggml.pre")?.map(str::to_owned),
            tokens: md.strings("tokenizer.ggml.tokens")?.to_vec(),
            scores,
            token_types,
            merges: opt_strings("tokenizer.ggml.merges")?,
            bos: id("tokenizer.ggml.bos_token_id")?,
            eos: id("tokenizer.ggml.eos_token_id")?,
            eot: id("tokenizer.ggml.eot_token_id")?,
            eom: id("tokenizer.ggml.eom_token_id")?,
            unk: id("tokenizer.ggml.unknown_token_id")?,
            pad: id("tokenizer.ggml.padding_token_id")?,
            fim_pad: id("tokenizer.ggml.fim_pad_token_id")?,
            fim_rep: id("tokenizer.ggml.fim_rep_token_id")?,
            fim_sep: id("tokenizer.ggml.fim_sep_token_id")?,
            add_bos: md.opt_bool("tokenizer.ggml.add_bos_token")?,
            add_eos: md.opt_bool("tokenizer.ggml.add_eos_token")?,
            add_space_prefix: md.opt_bool("tokenizer.ggml.add_space_prefix")?,
            model_name: md.opt_str("general.name")?.map(str::to_owned),
        })
    }
}

/// Token attributes, as llama.cpp derives them from `token_type` and token text.
mod attr {
    pub const UNKNOWN: u16 = 1 << 0;
    pub const UNUSED: u16 = 1 << 1;
    pub const NORMAL: u16 = 1 << 2;
    pub const CONTROL: u16 = 1 << 3;
    pub const USER_DEFINED: u16 = 1 << 4;
    pub const BYTE: u16 = 1 << 5;
    pub const UNDEFINED: u16 = 1 << 6;
    pub const LSTRIP: u16 = 1 << 7;
    pub const RSTRIP: u16 = 1 << 8;

    pub fn from_type(t: i32) -> u16 {
        match t {
            1 => NORMAL,
            2 => UNKNOWN,
            3 => CONTROL,
            4 => USER_DEFINED,
            5 => UNUSED,
            6 => BYTE,
            _ => UNDEFINED,
        }
    }
}

/// Token texts llama.cpp treats as end of generation whatever the file says.
const EOG_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<|flush|>",
    "<|calls|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "</s>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "[EOS]",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<eos>",
    "<turn|>",
    "<|tool_response>",
    "<｜end▁of▁sentence｜>",
    "[e~[",
];
/// Texts that mark a FIM pad / repo / file-separator token (also end of generation).
const FIM_PAD_TEXTS: &[&str] = &["<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"];
const FIM_REP_TEXTS: &[&str] = &[
    "<|fim_repo|>",
    "<|repo_name|>",
    "<fim-repo>",
    "<REPO>",
    "<reponame>",
];
const FIM_SEP_TEXTS: &[&str] = &["<|file_sep|>"];
const EOT_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "<｜end▁of▁sentence｜>",
    "<end_of_utterance>",
];

/// A piece of input after special-token partitioning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fragment {
    /// Byte range of plain text.
    Text(usize, usize),
    /// A special token matched in the text.
    Token(u32),
}

/// A tokenizer for one model. Cheap to share: `Send + Sync`, all methods take `&self`.
pub struct Tokenizer {
    model: Model,
    pre: PreTokenizer,
    attrs: Vec<u16>,
    scores: Vec<f32>,
    /// The token texts and their ids.
    token_to_id: TokenMap,
    merges: Option<bpe::BpeMerges>,
    /// SPM byte-fallback token of each byte.
    byte_tokens: Box<[Option<u32>; 256]>,
    /// GPT-2 byte → char map (BPE only).
    byte_chars: [char; 256],
    /// Bytes of each token as `llama_token_to_piece(special = true)` writes them.
    pieces: Vec<Vec<u8>>,
    /// Special tokens (control, user-defined, unknown), longest text first.
    specials: Vec<u32>,
    /// Finds which special tokens occur in a text at all (pattern i = `specials[i]`).
    special_finder: Option<AhoCorasick>,
    bos: Option<u32>,
    eos: Option<u32>,
    add_bos: bool,
    add_eos: bool,
    add_space_prefix: bool,
    /// Llama 3 style: a word that is a whole vocab entry skips the merges.
    ignore_merges: bool,
    eog: Vec<u32>,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("model", &self.model)
            .field("pre", &self.pre)
            .field("n_vocab", &self.token_to_id.tokens().len())
            .field("bos", &self.bos)
            .field("eos", &self.eos)
            .field("add_bos", &self.add_bos)
            .field("eog", &self.eog)
            .finish()
    }
}

impl Tokenizer {
    /// Builds the tokenizer from a GGUF file's metadata.
    pub fn from_gguf(md: &hearth_gguf::Metadata) -> Result<Tokenizer, Error> {
        Tokenizer::from_vocab(Vocab::from_gguf(md)?)
    }

    /// Builds the tokenizer from vocabulary data, applying llama.cpp's defaults for whatever
    /// the data leaves out.
    pub fn from_vocab(v: Vocab) -> Result<Tokenizer, Error> {
        let model = match v.model.as_str() {
            "llama" => Model::Spm,
            "gpt2" => Model::Bpe,
            other => {
                return Err(Error::UnknownModel {
                    found: other.to_owned(),
                    supported: SUPPORTED_MODELS,
                })
            }
        };
        let n = v.tokens.len();
        if n == 0 {
            return Err(Error::EmptyVocab);
        }
        let check_len = |key: &'static str, found: usize| {
            if found < n {
                Err(Error::LengthMismatch {
                    key,
                    expected: n,
                    found,
                })
            } else {
                Ok(())
            }
        };
        if let Some(s) = &v.scores {
            check_len("tokenizer.ggml.scores", s.len())?;
        }
        if let Some(t) = &v.token_types {
            check_len("tokenizer.ggml.token_type", t.len())?;
        }

        // Per-model defaults (llama.cpp's `llama_vocab::impl::load`).
        let (mut pre, mut add_bos, mut ignore_merges) = (PreTokenizer::Default, false, false);
        let mut add_space_prefix = false;
        let (mut bos, mut eos): (Option<u32>, Option<u32>);
        match model {
            Model::Spm => {
                add_bos = true;
                add_space_prefix = true;
                (bos, eos) = (Some(1), Some(2));
            }
            Model::Bpe => {
                (bos, eos) = (Some(11), Some(11));
                match v.pre.as_deref() {
                    None => tracing::warn!(
                        "GGUF has no tokenizer.ggml.pre; using the default pre-tokenizer \
                         (tokenization may differ from the original model)"
                    ),
                    Some(name) => match PreTokenizer::from_name(name) {
                        Some(p) => pre = p,
                        None => tracing::warn!(
                            "unknown pre-tokenizer `{name}`, using the default one; known: {}",
                            PreTokenizer::KNOWN
                        ),
                    },
                }
                if pre == PreTokenizer::Llama3 {
                    ignore_merges = true;
                    add_bos = true;
                }
            }
        }
        if let Some(p) = v.add_space_prefix {
            add_space_prefix = p;
        }

        let mut tokens = v.tokens;
        for (i, t) in tokens.iter_mut().enumerate() {
            if t.is_empty() {
                *t = format!("[EMPTY_{i}]");
            }
        }
        let token_to_id = TokenMap::new(tokens);
        let tokens = token_to_id.tokens();
        let mut attrs: Vec<u16> = match &v.token_types {
            Some(tt) => tt[..n].iter().map(|&t| attr::from_type(t)).collect(),
            None => vec![attr::NORMAL; n],
        };
        let scores = v.scores.map(|mut s| {
            s.truncate(n);
            s
        });
        let scores = scores.unwrap_or_else(|| vec![0.0; n]);

        // Special ids: defaults that fall outside the vocab are dropped; metadata ids outside
        // it are ignored.
        let in_range = |id: Option<u32>| id.filter(|&i| (i as usize) < n);
        let pick = |default: Option<u32>, meta: Option<u32>| in_range(meta).or(in_range(default));
        bos = pick(bos, v.bos);
        eos = pick(eos, v.eos);
        let mut eot = in_range(v.eot);
        let mut eom = in_range(v.eom);
        let mut fim_pad = in_range(v.fim_pad);
        let mut fim_rep = in_range(v.fim_rep);
        let mut fim_sep = in_range(v.fim_sep);
        let add_bos = v.add_bos.unwrap_or(add_bos);
        let add_eos = v.add_eos.unwrap_or(false);

        // Recognise special tokens by their text. llama.cpp walks a hash map here, so "first
        // found" is arbitrary there; we take the lowest id.
        let find = |texts: &[&str]| -> Option<u32> {
            texts
                .iter()
                .filter_map(|t| token_to_id.get(t).copied())
                .min()
        };
        let mark_control = |id: u32, attrs: &mut [u16]| attrs[id as usize] |= attr::CONTROL;
        for (slot, texts) in [
            (&mut eot, EOT_TEXTS),
            (&mut eom, &["<|eom_id|>"][..]),
            (&mut fim_pad, FIM_PAD_TEXTS),
            (&mut fim_rep, FIM_REP_TEXTS),
            (&mut fim_sep, FIM_SEP_TEXTS),
        ] {
            if slot.is_none() {
                *slot = find(texts);
                if let Some(id) = *slot {
                    mark_control(id, &mut attrs);
                }
            }
        }
        // Control tokens named "unused" are unused.
        for (i, t) in tokens.iter().enumerate() {
            if attrs[i] & attr::CONTROL != 0 && t.contains("unused") {
                attrs[i] |= attr::UNUSED;
            }
        }
        let mut eog: Vec<u32> = [fim_pad, fim_rep, fim_sep].into_iter().flatten().collect();
        for text in EOG_TEXTS {
            if let Some(&id) = token_to_id.get(text) {
                eog.push(id);
                mark_control(id, &mut attrs);
            }
        }
        eog.extend([eos, eot, eom].into_iter().flatten());
        eog.sort_unstable();
        eog.dedup();
        // o200k_harmony / solar-open: `<|end|>` is not the end when these exist.
        let has = |eog: &[u32], t: &str| token_to_id.get(t).is_some_and(|id| eog.contains(id));
        if (has(&eog, "<|return|>") && has(&eog, "<|call|>") && has(&eog, "<|end|>"))
            || (has(&eog, "<|calls|>") && has(&eog, "<|flush|>") && has(&eog, "<|end|>"))
        {
            if let Some(&end) = token_to_id.get("<|end|>") {
                eog.retain(|&i| i != end);
                attrs[end as usize] = attr::USER_DEFINED;
            }
        }
        if (has(&eog, "<|tool_response>") || has(&eog, "<|plamo:eos|>")) && has(&eog, "</s>") {
            if let Some(&s) = token_to_id.get("</s>") {
                eog.retain(|&i| i != s);
                attrs[s as usize] = attr::NORMAL;
            }
        }

        let mut specials: Vec<u32> = (0..n as u32)
            .filter(|&i| {
                attrs[i as usize] & (attr::CONTROL | attr::USER_DEFINED | attr::UNKNOWN) != 0
            })
            .collect();
        specials.sort_by(|&a, &b| {
            tokens[b as usize]
                .len()
                .cmp(&tokens[a as usize].len())
                .then(a.cmp(&b))
        });

        let byte_chars = unicode::byte_to_char_table();
        let mut char_bytes = [None; 0x144];
        for (b, &c) in byte_chars.iter().enumerate() {
            char_bytes[c as usize] = Some(b as u8);
        }
        let pieces: Vec<Vec<u8>> = (0..n)
            .map(|i| piece_of(model, &tokens[i], attrs[i], &char_bytes))
            .collect();

        // Phi-3: special tokens swallow the whitespace after them (llama.cpp keys this on the
        // model name).
        if let Some(name) = v.model_name.as_deref().map(str::to_ascii_lowercase) {
            if name.contains("phi-3") || name.contains("phi3") {
                for &id in &specials {
                    attrs[id as usize] |= attr::RSTRIP;
                }
                if let Some(&id) = token_to_id.get("</s>") {
                    attrs[id as usize] |= attr::RSTRIP;
                }
                for t in ["<unk>", "<s>", "<|endoftext|>"] {
                    if let Some(&id) = token_to_id.get(t) {
                        attrs[id as usize] &= !attr::RSTRIP;
                    }
                }
            }
        }

        let special_finder = if specials.is_empty() {
            None
        } else {
            // Only fails for pattern sets far beyond any vocabulary; then every special token
            // is searched for directly, which is slower but gives the same result.
            AhoCorasick::new(specials.iter().map(|&i| tokens[i as usize].as_bytes())).ok()
        };

        let mut byte_tokens = Box::new([None; 256]);
        let merges = match model {
            Model::Spm => {
                for (b, slot) in byte_tokens.iter_mut().enumerate() {
                    let hex = format!("<0x{b:02X}>");
                    *slot = token_to_id.get(&hex).copied().or_else(|| {
                        std::str::from_utf8(&[b as u8])
                            .ok()
                            .and_then(|s| token_to_id.get(s).copied())
                    });
                }
                None
            }
            Model::Bpe => {
                let merges = v.merges.as_deref().ok_or_else(|| {
                    Error::Metadata(hearth_gguf::Error::MissingKey(
                        "tokenizer.ggml.merges".to_owned(),
                    ))
                })?;
                Some(bpe::BpeMerges::new(merges, &token_to_id, n as u32))
            }
        };

        Ok(Tokenizer {
            model,
            pre,
            attrs,
            scores,
            token_to_id,
            merges,
            byte_tokens,
            byte_chars,
            pieces,
            specials,
            special_finder,
            bos,
            eos,
            add_bos,
            add_eos,
            add_space_prefix,
            ignore_merges,
            eog,
        })
    }

    /// Number of tokens in the vocabulary.
    pub fn n_vocab(&self) -> usize {
        self.token_to_id.tokens().len()
    }
    /// The tokenizer family.
    pub fn model(&self) -> Model {
        self.model
    }
    /// The pre-tokenizer in use (meaningful for BPE).
    pub fn pre_tokenizer(&self) -> PreTokenizer {
        self.pre
    }
    pub fn bos(&self) -> Option<u32> {
        self.bos
    }
    pub fn eos(&self) -> Option<u32> {
        self.eos
    }
    /// Whether `encode(.., add_special = true, ..)` prepends BOS.
    pub fn add_bos(&self) -> bool {
        self.add_bos
    }
    /// Whether `encode(.., add_special = true, ..)` appends EOS.
    pub fn add_eos(&self) -> bool {
        self.add_eos
    }
    /// True for tokens that end generation (EOS, EOT, EOM and the tokens llama.cpp recognises
    /// by their text).
    pub fn is_eog(&self, id: u32) -> bool {
        self.eog.binary_search(&id).is_ok()
    }
    /// All end-of-generation ids, ascending.
    pub fn eog_ids(&self) -> &[u32] {
        &self.eog
    }
    /// True for control tokens (rendered by templates, never produced from user text).
    pub fn is_control(&self, id: u32) -> bool {
        self.attrs
            .get(id as usize)
            .is_some_and(|a| a & attr::CONTROL != 0)
    }
    /// The raw vocabulary entry ("" for an id outside the vocabulary).
    pub fn token_text(&self, id: u32) -> &str {
        self.token_to_id
            .tokens()
            .get(id as usize)
            .map_or("", String::as_str)
    }
    /// The id of a vocabulary entry.
    pub fn token_id(&self, text: &str) -> Option<u32> {
        self.token_to_id.get(text).copied()
    }
    /// The bytes this token stands for, as `llama_token_to_piece(.., special = true)` gives
    /// them (empty for an id outside the vocabulary).
    pub fn token_to_piece(&self, id: u32) -> &[u8] {
        self.pieces.get(id as usize).map_or(&[], Vec::as_slice)
    }
    /// The text of a sequence of tokens (invalid UTF-8 becomes U+FFFD).
    pub fn decode(&self, ids: &[u32]) -> String {
        let mut bytes = Vec::new();
        for &id in ids {
            bytes.extend_from_slice(self.token_to_piece(id));
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Tokenizes `text` exactly as `llama_tokenize(text, add_special, parse_special)` does:
    /// `add_special` adds BOS/EOS per the model's flags, `parse_special` lets control tokens
    /// written in the text become those tokens (user-defined tokens always do).
    pub fn encode(&self, text: &str, add_special: bool, parse_special: bool) -> Vec<u32> {
        let mut out = Vec::with_capacity(text.len() / 3 + 2);
        if add_special && self.add_bos {
            out.extend(self.bos);
        }
        let fragments = self.partition(text, parse_special);
        self.encode_fragments(text, &fragments, &mut out, true);
        if add_special && self.add_eos {
            out.extend(self.eos);
        }
        out
    }

    /// Tokenizes a rendered chat prompt: special tokens are recognised only in the template's
    /// own markup, never in message text, so a user typing `<|im_end|>` does not end a turn.
    /// Apart from that the prompt is tokenized as one text (words may span a markup/content
    /// boundary), so the ids are llama.cpp's for the same prompt whenever the messages hold no
    /// special-token text. Templates that write BOS themselves (Gemma's `{{ bos_token }}`) do
    /// not get a second one from `add_special`, as llama.cpp's server strips it too.
    pub fn encode_rendered(&self, r: &crate::chat::Rendered, add_special: bool) -> Vec<u32> {
        let mut text = String::new();
        let mut fragments: Vec<Fragment> = Vec::new();
        for seg in &r.segments {
            let base = text.len();
            text.push_str(&seg.text);
            for f in self.partition(&seg.text, seg.trusted) {
                match (f, fragments.last_mut()) {
                    // Text that continues the previous text fragment joins it.
                    (Fragment::Text(a, b), Some(Fragment::Text(_, end))) if *end == base + a => {
                        *end = base + b;
                    }
                    (Fragment::Text(a, b), _) => fragments.push(Fragment::Text(base + a, base + b)),
                    (token, _) => fragments.push(token),
                }
            }
        }
        let mut out = Vec::with_capacity(text.len() / 3 + 2);
        if add_special && self.add_bos {
            out.extend(self.bos);
        }
        self.encode_fragments(&text, &fragments, &mut out, true);
        if add_special && self.add_bos && out.len() >= 2 && self.bos == Some(out[1]) {
            out.remove(0);
        }
        if add_special && self.add_eos {
            out.extend(self.eos);
        }
        out
    }

    /// Encodes fragments; `prev_special` says whether the text before them ended in a special
    /// token (SentencePiece's space prefix goes after a special token or at the start).
    fn encode_fragments(
        &self,
        text: &str,
        fragments: &[Fragment],
        out: &mut Vec<u32>,
        mut prev_special: bool,
    ) {
        for f in fragments {
            match *f {
                Fragment::Token(id) => {
                    out.push(id);
                    prev_special = true;
                }
                Fragment::Text(a, b) => {
                    self.encode_text(&text[a..b], prev_special, out);
                    prev_special = false;
                }
            }
        }
    }

    fn encode_text(&self, text: &str, prev_special: bool, out: &mut Vec<u32>) {
        match self.model {
            Model::Spm => {
                let mut s = String::with_capacity(text.len() + 3);
                if self.add_space_prefix && prev_special {
                    s.push('▁');
                }
                for c in text.chars() {
                    s.push(if c == ' ' { '▁' } else { c });
                }
                spm::encode(&s, &self.token_to_id, &self.scores, &self.byte_tokens, out);
            }
            Model::Bpe => {
                // `merges` is always Some for BPE (checked in `from_vocab`).
                let Some(merges) = &self.merges else { return };
                let chars: Vec<char> = text.chars().collect();
                let flags = unicode::flags_of(&chars);
                let mut start = 0;
                let mut word = String::new();
                for len in self.pre.split(&chars, &flags) {
                    word.clear();
                    let mut buf = [0u8; 4];
                    for &c in &chars[start..start + len] {
                        for &b in c.encode_utf8(&mut buf).as_bytes() {
                            word.push(self.byte_chars[usize::from(b)]);
                        }
                    }
                    start += len;
                    if self.ignore_merges {
                        if let Some(&id) = self.token_to_id.get(word.as_str()) {
                            out.push(id);
                            continue;
                        }
                    }
                    merges.encode_word(&word, &self.token_to_id, out);
                }
            }
        }
    }

    /// Cuts `text` at special tokens, longest token first, as llama.cpp's
    /// `tokenizer_st_partition` does. Control and unknown tokens only when `parse_special`.
    fn partition(&self, text: &str, parse_special: bool) -> Vec<Fragment> {
        let mut frags = vec![Fragment::Text(0, text.len())];
        if text.is_empty() {
            return Vec::new();
        }
        // Which special tokens occur anywhere in the text: the others cannot match in any part.
        let present: Option<Vec<bool>> = self.special_finder.as_ref().map(|ac| {
            let mut p = vec![false; self.specials.len()];
            for m in ac.find_overlapping_iter(text) {
                p[m.pattern().as_usize()] = true;
            }
            p
        });
        for (k, &id) in self.specials.iter().enumerate() {
            if present.as_ref().is_some_and(|p| !p[k]) {
                continue;
            }
            let a = self.attrs[id as usize];
            if !parse_special && a & (attr::CONTROL | attr::UNKNOWN) != 0 {
                continue;
            }
            let tok = self.token_to_id.tokens()[id as usize].as_str();
            let mut next = Vec::with_capacity(frags.len() + 2);
            for f in frags {
                let Fragment::Text(mut start, end) = f else {
                    next.push(f);
                    continue;
                };
                while let Some(pos) = text[start..end].find(tok) {
                    let m = start + pos;
                    let mut left_end = m;
                    if a & attr::LSTRIP != 0 {
                        while left_end > start && c_isspace(text.as_bytes()[left_end - 1]) {
                            left_end -= 1;
                        }
                    }
                    if left_end > start {
                        next.push(Fragment::Text(start, left_end));
                    }
                    next.push(Fragment::Token(id));
                    start = m + tok.len();
                    if a & attr::RSTRIP != 0 {
                        while start < end && c_isspace(text.as_bytes()[start]) {
                            start += 1;
                        }
                    }
                }
                if start < end {
                    next.push(Fragment::Text(start, end));
                }
            }
            frags = next;
        }
        frags
    }
}

/// C's `isspace` in the "C" locale, which llama.cpp uses for the strip flags.
fn c_isspace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0B | 0x0C | b'\r')
}

/// The bytes of one token as `llama_token_to_piece(special = true)` writes them.
fn piece_of(model: Model, text: &str, a: u16, char_bytes: &[Option<u8>; 0x144]) -> Vec<u8> {
    if a & (attr::UNKNOWN | attr::CONTROL | attr::USER_DEFINED) != 0 {
        return text.as_bytes().to_vec();
    }
    if a & attr::NORMAL != 0 {
        return match model {
            Model::Spm => text.replace('▁', " ").into_bytes(),
            Model::Bpe => {
                let mut out = Vec::with_capacity(text.len());
                for c in text.chars() {
                    match char_bytes.get(c as usize).copied().flatten() {
                        Some(b) => out.push(b),
                        None => {
                            // llama.cpp's marker for a char outside GPT-2's byte alphabet.
                            out.extend_from_slice(b"[UNK_BYTE_0x");
                            let mut buf = [0u8; 4];
                            for byte in c.encode_utf8(&mut buf).bytes() {
                                out.extend_from_slice(format!("{byte:02x}").as_bytes());
                            }
                            out.extend_from_slice(text.as_bytes());
                            out.push(b']');
                        }
                    }
                }
                out
            }
        };
    }
    if a & attr::BYTE != 0 {
        // `<0xNN>`
        return text
            .get(3..5)
            .and_then(|h| u8::from_str_radix(h, 16).ok())
            .map(|b| vec![b])
            .unwrap_or_default();
    }
    Vec::new()
}

#[cfg(test)]
mod tests;
