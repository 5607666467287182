//! The architectures Hearth runs, one file each. Each file reads its hyper-parameters from the
//! GGUF metadata into a [`Config`]; the shared pre-norm decoder in [`crate::model`] then runs it.

use hearth_gguf::Metadata;

use crate::config::Config;
use crate::{Error, Result};

pub mod gemma3;
pub mod llama;
pub mod qwen2;
pub mod qwen3;

/// Names accepted in `general.architecture`.
pub const SUPPORTED: &str = "llama, qwen2, qwen3, gemma3";

/// Builds the configuration for the file's architecture.
pub fn config(md: &Metadata, n_vocab: usize) -> Result<Config> {
    let arch = md.architecture()?;
    match arch {
        "llama" => llama::config(md, n_vocab),
        "qwen2" => qwen2::config(md, n_vocab),
        "qwen3" => qwen3::config(md, n_vocab),
        "gemma3" => gemma3::config(md, n_vocab),
        other => Err(Error::UnsupportedArchitecture {
            found: other.to_string(),
            supported: SUPPORTED,
        }),
    }
}
