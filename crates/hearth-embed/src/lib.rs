//! hearth-embed: sentence embeddings for `/v1/embeddings`, computed on Hearth's own kernels.
//!
//! The model is all-MiniLM-L6-v2, a 6-layer BERT encoder that sentence-transformers turns into
//! a sentence model by mean pooling and L2 normalisation. [`Embedder::open`] takes the model's
//! directory as sentence-transformers lays it out (what `hearth pull all-minilm-l6-v2` installs):
//! `model.safetensors` (f32), `tokenizer.json`, `config.json`, `sentence_bert_config.json`,
//! `1_Pooling/config.json` and, optionally, `modules.json`.
//!
//! The parts:
//! - `weights`: the config files and the mapped safetensors file. Matrices stay in the mapping
//!   and go to [`hearth_kernels::matmul`] as `F32` byte views; small vectors are decoded.
//! - `bert`: the forward pass, which reads top to bottom like the paper: embeddings, six
//!   post-LN blocks, mean pooling. A batch runs as one matrix of all its tokens with no padding,
//!   so an input's vector does not depend on what it is batched with.
//! - this file: tokenisation (the `tokenizers` crate's WordPiece from `tokenizer.json`), the
//!   length limit, chunking of large batches, normalisation.
//!
//! Inputs longer than the model's limit (256 tokens, counting `[CLS]` and `[SEP]`) are refused
//! with [`Error::TooLong`]; they are never silently truncated, since a vector of half a document
//! that claims to be the whole one is worse than an error.

mod bert;
mod weights;

use std::path::{Path, PathBuf};

use hearth_kernels::ThreadPool;
use tokenizers::Tokenizer;

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file of the model directory could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A JSON file of the model directory is not what sentence-transformers writes.
    #[error("{path} is not valid: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    /// A config file describes a model this crate does not implement.
    #[error("{path}: {message}")]
    Config { path: PathBuf, message: String },
    /// `model.safetensors` could not be parsed.
    #[error("{path} is not a valid safetensors file: {message}")]
    Safetensors { path: PathBuf, message: String },
    /// A tensor has a type other than f32.
    #[error("tensor {name} is {found}; expected F32")]
    TensorType { name: String, found: String },
    /// A tensor the encoder needs is not in the weights file.
    #[error("tensor {name} is missing from {path}")]
    MissingTensor { name: String, path: PathBuf },
    /// A tensor's shape disagrees with `config.json`.
    #[error("tensor {name} has shape {found:?}; config.json implies {expected:?}")]
    TensorShape {
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    /// `tokenizer.json` could not be loaded, or disagrees with the weights.
    #[error("{path}: {message}")]
    Tokenizer { path: PathBuf, message: String },
    /// The tokenizer failed on an input.
    #[error("cannot tokenize input {index}: {message}")]
    Tokenize { index: usize, message: String },
    /// An input has more tokens than the model takes.
    #[error("input {index} is {tokens} tokens; {model} takes at most {max}")]
    TooLong {
        /// Position of the input in the request.
        index: usize,
        /// Its length in tokens, `[CLS]` and `[SEP]` included.
        tokens: usize,
        /// The model's limit, `[CLS]` and `[SEP]` included.
        max: usize,
        /// The model's name (its directory's name).
        model: String,
    },
    /// A kernel refused a buffer (a bug here, reported rather than panicking the server).
    #[error("kernel error: {0}")]
    Kernel(#[from] hearth_kernels::Error),
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// Tokens per forward pass: a request with more is run in several passes (which gives the same
/// vectors, the encoder being batch-invariant). Bounds the scratch memory to a few tens of MB
/// (the widest buffer is tokens × 1536 f32) while keeping batches big enough for the matmul to
/// reuse each weight row across many tokens.
const MAX_BATCH_TOKENS: usize = 4096;

/// A loaded sentence-embedding model. Immutable after [`Embedder::open`], so one instance
/// serves concurrent requests (`Send + Sync`); each [`Embedder::embed`] call has its own
/// scratch buffers.
pub struct Embedder {
    name: String,
    tokenizer: Tokenizer,
    bert: bert::Bert,
    max_tokens: usize,
    normalize: bool,
    /// What the tokenizer puts around every text (`[CLS]` and `[SEP]`), read from how it frames
    /// an empty text.
    open: Option<u32>,
    close: Option<u32>,
}

impl Embedder {
    /// Loads the model in `dir` (see the crate docs for the files it needs). The weights are
    /// mapped, not read.
    pub fn open(dir: &Path) -> Result<Embedder> {
        let cfg = weights::read_bert_config(dir)?;
        let sentence = weights::read_sentence_config(dir, &cfg)?;
        let weights = weights::Weights::open(&dir.join("model.safetensors"))?;
        let bert = bert::Bert::load(weights, &cfg)?;

        let path = dir.join("tokenizer.json");
        let bad = |message: String| Error::Tokenizer {
            path: path.clone(),
            message,
        };
        let mut tokenizer = Tokenizer::from_file(&path).map_err(|e| bad(e.to_string()))?;
        // tokenizer.json carries the truncation and padding sentence-transformers trained with;
        // Hearth counts whole inputs and refuses long ones instead, and batches without padding.
        tokenizer
            .with_truncation(None)
            .map_err(|e| bad(e.to_string()))?;
        tokenizer.with_padding(None);
        let vocab = tokenizer.get_vocab_size(true);
        if vocab > bert.vocab_size {
            return Err(bad(format!(
                "the tokenizer has {vocab} tokens but the embedding table only {} rows",
                bert.vocab_size
            )));
        }

        let empty = tokenizer.encode("", true).map_err(|e| bad(e.to_string()))?;
        let (open, close) = match empty.get_ids() {
            [open, close] => (Some(*open), Some(*close)),
            [one] => (Some(*one), None),
            _ => (None, None),
        };
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "the model".into());
        Ok(Embedder {
            name,
            tokenizer,
            bert,
            max_tokens: sentence.max_tokens,
            normalize: sentence.normalize,
            open,
            close,
        })
    }

    /// Length of the vectors (384 for all-MiniLM-L6-v2).
    pub fn dims(&self) -> usize {
        self.bert.hidden()
    }

    /// The longest input in tokens, `[CLS]` and `[SEP]` included (256 for all-MiniLM-L6-v2).
    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    /// The model's name, as used in error messages (its directory's name).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Token ids of `text` with `[CLS]` and `[SEP]`, untruncated.
    pub fn tokenize(&self, text: &str) -> Result<Vec<u32>> {
        self.tokenize_at(0, text)
    }

    fn tokenize_at(&self, index: usize, text: &str) -> Result<Vec<u32>> {
        let encoding = self
            .tokenizer
            .encode(text, true)
            .map_err(|e| Error::Tokenize {
                index,
                message: e.to_string(),
            })?;
        Ok(encoding.get_ids().to_vec())
    }

    /// Number of entries in the vocabulary: token ids run below it.
    pub fn vocab_size(&self) -> usize {
        self.tokenizer.get_vocab_size(true)
    }

    /// Token ids as [`Embedder::tokenize`] gives them for a text: `[CLS]` and `[SEP]` added
    /// where `ids` lacks them, so the ids of a text's words embed exactly as the text does.
    pub fn frame(&self, ids: &[u32]) -> Vec<u32> {
        let mut out = Vec::with_capacity(ids.len() + 2);
        if let Some(open) = self.open.filter(|&o| ids.first() != Some(&o)) {
            out.push(open);
        }
        out.extend_from_slice(ids);
        if let Some(close) = self.close.filter(|&c| out.last() != Some(&c)) {
            out.push(close);
        }
        out
    }

    /// Number of tokens of `text`, `[CLS]` and `[SEP]` included (what the limit applies to and
    /// what usage reports).
    pub fn count_tokens(&self, text: &str) -> Result<usize> {
        Ok(self.tokenize(text)?.len())
    }

    /// One vector of [`Embedder::dims`] values per text, in order; unit length when the model's
    /// pipeline normalises (all-MiniLM-L6-v2 does). All texts are checked before any is run, so
    /// a too-long input fails the call without wasted work.
    pub fn embed(&self, texts: &[&str], pool: &ThreadPool) -> Result<Vec<Vec<f32>>> {
        let inputs = texts
            .iter()
            .enumerate()
            .map(|(index, text)| self.tokenize_at(index, text))
            .collect::<Result<Vec<_>>>()?;
        self.embed_ids(inputs, pool)
    }

    /// [`Embedder::embed`] for inputs given as token ids, `[CLS]` and `[SEP]` included (as
    /// [`Embedder::tokenize`] and [`Embedder::frame`] give them). Every id must be below
    /// [`Embedder::vocab_size`]: one that is not fails the call, as it would read past the
    /// embedding table.
    pub fn embed_ids(&self, inputs: Vec<Vec<u32>>, pool: &ThreadPool) -> Result<Vec<Vec<f32>>> {
        let vocab = self.vocab_size();
        for (index, ids) in inputs.iter().enumerate() {
            if let Some(&id) = ids.iter().find(|&&id| id as usize >= vocab) {
                return Err(Error::Tokenize {
                    index,
                    message: format!(
                        "token id {id} is out of range: the vocabulary has {vocab} tokens"
                    ),
                });
            }
            if ids.len() > self.max_tokens {
                return Err(Error::TooLong {
                    index,
                    tokens: ids.len(),
                    max: self.max_tokens,
                    model: self.name.clone(),
                });
            }
        }
        let mut out = Vec::with_capacity(inputs.len());
        let lengths: Vec<usize> = inputs.iter().map(Vec::len).collect();
        for pass in passes(&lengths, MAX_BATCH_TOKENS) {
            self.bert.encode(&inputs[pass], pool, &mut out)?;
        }
        if self.normalize {
            out.iter_mut().for_each(|v| l2_normalize(v));
        }
        Ok(out)
    }
}

/// `v / max(‖v‖, 1e-12)`, as sentence-transformers' `Normalize` (`torch.nn.functional.normalize`).
fn l2_normalize(v: &mut [f32]) {
    let norm = v
        .iter()
        .map(|&x| f64::from(x) * f64::from(x))
        .sum::<f64>()
        .sqrt();
    let inv = 1.0 / norm.max(1e-12);
    v.iter_mut().for_each(|x| *x = (f64::from(*x) * inv) as f32);
}

/// Splits inputs of `lengths` tokens, in order, into passes of at most `max` tokens each; an
/// input longer than `max` gets a pass of its own.
fn passes(lengths: &[usize], max: usize) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let (mut start, mut tokens) = (0, 0);
    for (i, &len) in lengths.iter().enumerate() {
        if i > start && tokens + len > max {
            out.push(start..i);
            (start, tokens) = (i, 0);
        }
        tokens += len;
    }
    if start < lengths.len() {
        out.push(start..lengths.len());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_fill_up_to_the_limit_in_order() {
        assert!(passes(&[], 10).is_empty());
        assert_eq!(passes(&[3, 3, 3], 10), vec![0..3]);
        assert_eq!(passes(&[4, 4, 4, 4], 8), vec![0..2, 2..4]);
        assert_eq!(passes(&[5, 12, 1, 9, 1], 10), vec![0..1, 1..2, 2..4, 4..5]);
        assert_eq!(passes(&[10, 10], 10), vec![0..1, 1..2]);
    }

    #[test]
    fn normalize_gives_unit_length_and_leaves_zero_alone() {
        let mut v = vec![3.0, 4.0];
        l2_normalize(&mut v);
        assert_eq!(v, vec![0.6, 0.8]);
        let mut z = vec![0.0; 3];
        l2_normalize(&mut z);
        assert_eq!(z, vec![0.0; 3]);
    }
}
