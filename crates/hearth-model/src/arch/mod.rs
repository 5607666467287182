//! The architectures Hearth runs, one file each. Each file reads its hyper-parameters from the
//! GGUF metadata into a [`Config`]; the shared pre-norm decoder in [`crate::model`] then runs it.

use hearth_gguf::{Metadata, TensorInfo};

use crate::config::{Config, Shapes};
use crate::{Error, Result};

pub mod gemma2;
pub mod gemma3;
pub mod llama;
pub mod mistral3;
pub mod phi3;
pub mod qwen2;
pub mod qwen3;

/// Names accepted in `general.architecture`.
pub const SUPPORTED: &str = "llama, mistral3, qwen2, qwen3, gemma2, gemma3, phi3";

/// Builds the configuration for the file's architecture from its metadata, every value
/// checked against the shapes of its `tensors` before anything is sized from it.
pub fn config(md: &Metadata, tensors: &[TensorInfo]) -> Result<Config> {
    let build = match md.architecture()? {
        "llama" => llama::config,
        "qwen2" => qwen2::config,
        "qwen3" => qwen3::config,
        "gemma2" => gemma2::config,
        "gemma3" => gemma3::config,
        "mistral3" => mistral3::config,
        "phi3" => phi3::config,
        other => {
            return Err(Error::UnsupportedArchitecture {
                found: other.to_string(),
                supported: SUPPORTED,
            })
        }
    };
    build(md, &Shapes::read(tensors)?)
}
