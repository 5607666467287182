//! hearth-model: what a model *is* — architectures, tokenizer, chat templates, sampler — and the
//! batched forward pass over a paged KV cache.
//!
//! It knows tensors and tokens; it does not know about scheduling, requests or HTTP (that is
//! `hearth-engine` and above). Parts:
//! - [`model`]: the shared pre-norm decoder and its batched forward pass; [`arch`] has one file
//!   per architecture turning GGUF metadata into a [`config::Config`].
//! - [`kv`]: the paged KV cache the forward pass reads and writes (block pool + per-sequence
//!   block tables; sliding-window layers keep only their window).
//! - [`tokenizer`] and [`chat`]: text ↔ tokens from the GGUF vocabulary, and chat templates.
//! - [`sampler`]: logits → next token.

pub mod arch;
pub mod chat;
pub mod config;
mod error;
pub mod kv;
pub mod model;
pub mod ops;
pub mod sampler;
pub mod stop;
pub mod testing;
pub mod tokenizer;

pub use error::{Error, Result};
pub use kv::{KvCache, SeqKv};
pub use model::{BatchItem, Model, Workspace};
pub use sampler::{Distribution, Sampler, SamplerConfig, TokenConstraint};
pub use stop::StopStrings;
