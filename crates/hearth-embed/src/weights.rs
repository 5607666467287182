//! The model directory: `config.json` and the sentence-transformers side files, and the tensors
//! of `model.safetensors`.
//!
//! The weights file is mapped, not read: the matrices are handed to the kernels as byte views
//! into the mapping, so opening the model costs no copy of its 90 MB. Only the small vectors
//! (biases, LayerNorm parameters, position and token-type tables) are decoded into `Vec<f32>`,
//! because the element-wise code wants aligned `f32` and safetensors promises no alignment.

use std::collections::HashMap;
use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use serde::Deserialize;

use crate::{Error, Result};

/// The BERT hyper-parameters Hearth uses, from Hugging Face's `config.json`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct BertConfig {
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    pub vocab_size: usize,
    #[serde(default = "default_type_vocab_size")]
    pub type_vocab_size: usize,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    #[serde(default = "default_act")]
    pub hidden_act: String,
}

fn default_type_vocab_size() -> usize {
    2
}
fn default_eps() -> f64 {
    1e-12
}
fn default_act() -> String {
    "gelu".into()
}

/// `sentence_bert_config.json`: the longest input sentence-transformers feeds the model.
#[derive(Debug, Deserialize)]
struct SentenceBertConfig {
    max_seq_length: usize,
}

/// `1_Pooling/config.json`: which pooling the sentence model was trained with.
#[derive(Debug, Deserialize)]
struct PoolingConfig {
    #[serde(default)]
    pooling_mode_mean_tokens: bool,
    #[serde(default)]
    pooling_mode_cls_token: bool,
    #[serde(default)]
    pooling_mode_max_tokens: bool,
}

/// One entry of `modules.json`, the sentence-transformers pipeline.
#[derive(Debug, Deserialize)]
struct Module {
    #[serde(rename = "type")]
    kind: String,
}

/// What the side files of a sentence-transformers directory say about running the model.
#[derive(Debug)]
pub(crate) struct SentenceConfig {
    pub max_tokens: usize,
    /// Whether the pipeline ends in a `Normalize` module (unit-length vectors).
    pub normalize: bool,
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| Error::Json {
        path: path.to_path_buf(),
        source,
    })
}

fn bad_config(path: &Path, message: String) -> Error {
    Error::Config {
        path: path.to_path_buf(),
        message,
    }
}

/// Reads and checks `config.json`: an encoder Hearth can run (erf GELU, whole heads).
pub(crate) fn read_bert_config(dir: &Path) -> Result<BertConfig> {
    let path = dir.join("config.json");
    let cfg: BertConfig = read_json(&path)?;
    if cfg.hidden_act != "gelu" {
        return Err(bad_config(
            &path,
            format!(
                "hidden_act is {:?}; only \"gelu\" (the erf form) is implemented",
                cfg.hidden_act
            ),
        ));
    }
    if cfg.num_attention_heads == 0 || cfg.hidden_size % cfg.num_attention_heads != 0 {
        return Err(bad_config(
            &path,
            format!(
                "hidden_size {} is not a whole number of {} attention heads",
                cfg.hidden_size, cfg.num_attention_heads
            ),
        ));
    }
    if cfg.type_vocab_size == 0 {
        return Err(bad_config(
            &path,
            "type_vocab_size is 0; need at least 1".into(),
        ));
    }
    Ok(cfg)
}

/// Reads the sentence-transformers files. `sentence_bert_config.json` and
/// `1_Pooling/config.json` are required: without them we would be guessing how the model was
/// trained to be used. `modules.json` decides normalisation; without it vectors are normalised
/// (what every OpenAI-style client expects).
pub(crate) fn read_sentence_config(dir: &Path, bert: &BertConfig) -> Result<SentenceConfig> {
    let path = dir.join("sentence_bert_config.json");
    let sb: SentenceBertConfig = read_json(&path)?;
    if sb.max_seq_length == 0 || sb.max_seq_length > bert.max_position_embeddings {
        return Err(bad_config(
            &path,
            format!(
                "max_seq_length is {}; expected 1..={} (max_position_embeddings)",
                sb.max_seq_length, bert.max_position_embeddings
            ),
        ));
    }
    let path = dir.join("1_Pooling").join("config.json");
    let pooling: PoolingConfig = read_json(&path)?;
    if !pooling.pooling_mode_mean_tokens
        || pooling.pooling_mode_cls_token
        || pooling.pooling_mode_max_tokens
    {
        return Err(bad_config(
            &path,
            format!(
                "pooling is mean={} cls={} max={}; only mean pooling alone is implemented",
                pooling.pooling_mode_mean_tokens,
                pooling.pooling_mode_cls_token,
                pooling.pooling_mode_max_tokens
            ),
        ));
    }
    let path = dir.join("modules.json");
    let normalize = if path.exists() {
        let modules: Vec<Module> = read_json(&path)?;
        modules.iter().any(|m| m.kind.ends_with(".Normalize"))
    } else {
        true
    };
    Ok(SentenceConfig {
        max_tokens: sb.max_seq_length,
        normalize,
    })
}

/// Where a tensor's bytes are in the file, and what they hold.
struct Tensor {
    range: Range<usize>,
    shape: Vec<usize>,
    dtype: safetensors::Dtype,
}

/// `model.safetensors`, mapped, with each tensor's byte range and shape.
pub(crate) struct Weights {
    path: PathBuf,
    map: Mmap,
    tensors: HashMap<String, Tensor>,
    /// `"bert."` when the checkpoint was saved from `BertModel` inside a wrapper, else `""`.
    prefix: &'static str,
}

impl Weights {
    pub fn open(path: &Path) -> Result<Weights> {
        let file = File::open(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        // SAFETY: the mapping is read-only and private to this process. The file is an
        // installed model that Hearth never writes after its rename into place (fetch writes
        // `NAME.partial` and renames); another program truncating it while we run would be
        // undefined behaviour, the same accepted risk as every mmap-based model loader
        // (hearth-gguf, llama.cpp).
        let map = unsafe { Mmap::map(&file) }.map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let bad = |message: String| Error::Safetensors {
            path: path.to_path_buf(),
            message,
        };
        let (header_len, meta) =
            safetensors::SafeTensors::read_metadata(&map).map_err(|e| bad(e.to_string()))?;
        // Tensor offsets in the header count from the end of the 8-byte length and the header.
        let base = 8 + header_len;
        let mut tensors = HashMap::new();
        for (name, info) in meta.tensors() {
            let (start, end) = info.data_offsets;
            let elements: usize = info.shape.iter().product();
            let size = info.dtype.bitsize() / 8;
            if end < start || end - start != elements * size || base + end > map.len() {
                return Err(bad(format!(
                    "tensor {name} of shape {:?} has data offsets {start}..{end} (file data is \
                     {} bytes); expected {} bytes inside the file",
                    info.shape,
                    map.len() - base.min(map.len()),
                    elements * size
                )));
            }
            let tensor = Tensor {
                range: base + start..base + end,
                shape: info.shape.clone(),
                dtype: info.dtype,
            };
            tensors.insert(name, tensor);
        }
        let prefix = if tensors.contains_key("bert.embeddings.word_embeddings.weight") {
            "bert."
        } else {
            ""
        };
        Ok(Weights {
            path: path.to_path_buf(),
            map,
            tensors,
            prefix,
        })
    }

    /// The byte range of tensor `name` (without the `bert.` prefix), checking that it is f32
    /// and of shape `shape`. (Tensors never asked for, like `embeddings.position_ids` in I64,
    /// are never checked.)
    pub fn range(&self, name: &str, shape: &[usize]) -> Result<Range<usize>> {
        let full = format!("{}{name}", self.prefix);
        let tensor = self
            .tensors
            .get(&full)
            .ok_or_else(|| Error::MissingTensor {
                name: full.clone(),
                path: self.path.clone(),
            })?;
        if tensor.dtype != safetensors::Dtype::F32 {
            return Err(Error::TensorType {
                name: full,
                found: format!("{:?}", tensor.dtype),
            });
        }
        if tensor.shape != shape {
            return Err(Error::TensorShape {
                name: full,
                expected: shape.to_vec(),
                found: tensor.shape.clone(),
            });
        }
        Ok(tensor.range.clone())
    }

    /// Tensor `name` decoded to `f32`, checking its shape.
    pub fn vector(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let range = self.range(name, shape)?;
        Ok(f32s(&self.map[range]).collect())
    }

    /// The whole mapped file; slice it with ranges from [`Weights::range`].
    pub fn bytes(&self) -> &[u8] {
        &self.map
    }
}

/// Little-endian `f32` values of `bytes` (a whole number of them).
pub(crate) fn f32s(bytes: &[u8]) -> impl Iterator<Item = f32> + '_ {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}
