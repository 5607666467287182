//! The architectures Hearth runs, one file each. Each file reads its hyper-parameters from the
//! GGUF metadata into a [`Config`]; the shared pre-norm decoder in [`crate::model`] then runs it.

use hearth_gguf::{Metadata, TensorInfo};

use crate::config::{Config, Shapes};
use crate::{Error, Result};

pub mod experts;
pub mod gemma2;
pub mod gemma3;
pub mod llama;
pub mod mistral3;
pub mod phi3;
pub mod qwen2;
pub mod qwen2moe;
pub mod qwen3;
pub mod qwen3moe;

/// Names accepted in `general.architecture`.
pub const SUPPORTED: &str =
    "llama, mistral3, qwen2, qwen3, gemma2, gemma3, phi3, qwen2moe, qwen3moe";

/// Builds the configuration for the file's architecture from its metadata, every value
/// checked against the shapes of its `tensors` before anything is sized from it.
pub fn config(md: &Metadata, tensors: &[TensorInfo]) -> Result<Config> {
    type Build = fn(&Metadata, &Shapes) -> Result<Config>;
    // Mixtral is `llama` with experts; the Qwen MoEs are their dense models' blocks with experts.
    let (build, rule): (Build, Option<experts::Rule>) = match md.architecture()? {
        "llama" => (llama::config, Some(llama::EXPERTS)),
        "qwen2" => (qwen2::config, None),
        "qwen3" => (qwen3::config, None),
        "gemma2" => (gemma2::config, None),
        "gemma3" => (gemma3::config, None),
        "mistral3" => (mistral3::config, None),
        "phi3" => (phi3::config, None),
        "qwen2moe" => (qwen2moe::config, Some(qwen2moe::EXPERTS)),
        "qwen3moe" => (qwen3moe::config, Some(qwen3moe::EXPERTS)),
        other => {
            return Err(Error::UnsupportedArchitecture {
                found: other.to_string(),
                supported: SUPPORTED,
            })
        }
    };
    // Without this, such a file would be refused for a missing `blk.0.ffn_up.weight`, which
    // names the wrong problem.
    let per_expert = ["ffn_up", "ffn_gate", "ffn_down"]
        .iter()
        .map(|m| format!("blk.0.{m}.0.weight"))
        .find(|name| tensors.iter().any(|t| &t.name == name));
    if let Some(tensor) = per_expert {
        return Err(Error::PerExpertTensors { tensor });
    }
    let mut c = build(md, &Shapes::read(tensors)?)?;
    if let Some(rule) = rule {
        c.experts = experts::read(md, &c, tensors, rule)?;
    }
    if c.experts.is_none() && c.arch.ends_with("moe") {
        return Err(Error::BadHyperParameter {
            key: format!("{}.expert_count", c.arch),
            value: "missing".to_string(),
            why: "a mixture-of-experts model must say how many experts each layer has",
        });
    }
    Ok(c)
}
