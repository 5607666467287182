//! The model crate's error type.

use hearth_gguf::GgmlType;

/// Errors from loading or running a model.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The GGUF file could not be read or is malformed.
    #[error(transparent)]
    Gguf(#[from] hearth_gguf::Error),
    /// A kernel refused its input (unsupported tensor type, bad row length).
    #[error(transparent)]
    Kernel(#[from] hearth_kernels::Error),
    /// The tokenizer could not be built from the file.
    #[error(transparent)]
    Tokenizer(#[from] crate::tokenizer::Error),
    /// The chat template could not be compiled or rendered.
    #[error(transparent)]
    Chat(#[from] crate::chat::Error),
    /// `general.architecture` names an architecture Hearth does not run.
    #[error("unsupported architecture {found:?} (supported: {supported})")]
    UnsupportedArchitecture {
        found: String,
        supported: &'static str,
    },
    /// A tensor the architecture needs is not in the file.
    #[error("tensor {0:?} is missing from the model file")]
    MissingTensor(String),
    /// Mixtral converted before llama.cpp stored experts as one 3-D tensor per matrix.
    #[error("this file stores each expert as its own tensor ({tensor}, the older Mixtral layout), which Hearth does not read; re-convert it with a current llama.cpp")]
    PerExpertTensors { tensor: String },
    /// A tensor has the wrong shape for the hyper-parameters.
    #[error("tensor {name:?} has shape {found:?}; expected {expected:?}")]
    BadShape {
        name: String,
        expected: Vec<u64>,
        found: Vec<u64>,
    },
    /// A tensor that must be a matrix has another number of dimensions.
    #[error("tensor {name:?} has shape {found:?}; expected a matrix (two dimensions)")]
    NotAMatrix { name: String, found: Vec<u64> },
    /// A tensor is stored in a type Hearth cannot compute with.
    #[error("tensor {name:?} is stored as {ty}, which Hearth cannot compute with (supported: {supported})")]
    UnsupportedTensorType {
        name: String,
        ty: GgmlType,
        supported: String,
    },
    /// A hyper-parameter has a value the code cannot work with.
    #[error("hyper-parameter {key} = {value} is invalid: {why}")]
    BadHyperParameter {
        key: String,
        value: String,
        why: &'static str,
    },
    /// A hyper-parameter disagrees with the shapes of the file's tensors.
    #[error("the model file says {key} = {value}, but {tensors}: the file is damaged or was made wrong; download it again or use another model")]
    HyperParameterMismatch {
        key: String,
        value: String,
        tensors: String,
    },
    /// The KV cache has no free block for a sequence.
    #[error("the KV cache is full: {needed} more blocks needed, {free} free")]
    KvFull { needed: usize, free: usize },
    /// A position is past what the sequence has reserved in the KV cache.
    #[error("position {pos} is beyond the {capacity} positions reserved for this sequence")]
    PositionOutOfRange { pos: usize, capacity: usize },
    /// Memory for the packed weights could not be reserved.
    #[error("could not reserve {bytes} bytes for the packed weights: {source}")]
    PackedMemory {
        bytes: usize,
        source: std::io::Error,
    },
    /// A context longer than the model was trained for, with no RoPE scaling declared to
    /// reach it.
    #[error("a context of {ctx} tokens is longer than this model was trained for ({trained} tokens), and its file {scaling} (at most {max} tokens): use --ctx {max} or less")]
    ContextTooLong {
        ctx: usize,
        trained: usize,
        max: usize,
        scaling: &'static str,
    },
    /// A token id is not in the vocabulary.
    #[error("token id {id} is outside the vocabulary of {n_vocab}")]
    BadToken { id: u32, n_vocab: usize },
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, Error>;
