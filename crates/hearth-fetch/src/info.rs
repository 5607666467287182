//! What an installed model is, read from its own header: architecture, parameter count,
//! quantization and whether it carries a chat template. Used by `hearth models`.
//!
//! GGUF files are read with `hearth_gguf` (metadata and tensor index only; no tensor data is
//! touched). Multi-file models (safetensors directories) are read from `config.json` and the
//! safetensors JSON header.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use hearth_gguf::{GgmlType, Gguf};

use crate::error::{Error, Result};

/// A model's summary.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ModelInfo {
    /// `general.architecture` (`llama`, `gemma3`) or `config.json`'s `model_type` (`bert`).
    pub architecture: String,
    /// Total number of weights, counted from the tensor shapes.
    pub parameters: u64,
    /// Quantization: `general.file_type` named like llama.cpp does (`Q4_K_M`), else the type
    /// holding most of the weight bytes.
    pub quantization: String,
    /// Whether the file carries `tokenizer.chat_template`.
    pub chat_template: bool,
    /// Trained context length, when the file states it.
    pub context_length: Option<u64>,
}

/// Reads the summary of a GGUF file or a safetensors model directory.
pub fn inspect(path: &Path) -> Result<ModelInfo> {
    if path.is_dir() {
        return inspect_safetensors_dir(path);
    }
    let bad = |message: String| Error::Inspect {
        path: path.to_path_buf(),
        message,
    };
    let gguf = Gguf::open(path).map_err(|e| bad(e.to_string()))?;
    let meta = gguf.metadata();
    let architecture = meta
        .architecture()
        .map_err(|e| bad(e.to_string()))?
        .to_string();
    let parameters = gguf.tensors().iter().map(|t| t.n_elements()).sum();
    let file_type = meta
        .opt_u32("general.file_type")
        .map_err(|e| bad(e.to_string()))?
        .and_then(file_type_name);
    let quantization = match file_type {
        Some(name) => name.to_string(),
        None => dominant_type(
            gguf.tensors()
                .iter()
                .map(|t| (t.ty, t.n_bytes, t.dims.len())),
        )
        .map_or_else(|| "unknown".to_string(), |t| t.name().to_string()),
    };
    let chat_template = meta
        .opt_str("tokenizer.chat_template")
        .map_err(|e| bad(e.to_string()))?
        .is_some_and(|t| !t.trim().is_empty());
    let context_length = meta
        .opt_u64(&format!("{architecture}.context_length"))
        .map_err(|e| bad(e.to_string()))?;
    Ok(ModelInfo {
        architecture,
        parameters,
        quantization,
        chat_template,
        context_length,
    })
}

/// The storage type with the most bytes among matrices (1-d tensors are norms and biases, kept
/// in F32 whatever the quantization).
fn dominant_type(tensors: impl Iterator<Item = (GgmlType, u64, usize)>) -> Option<GgmlType> {
    let mut bytes: BTreeMap<u32, (GgmlType, u64)> = BTreeMap::new();
    for (ty, n, _) in tensors.filter(|t| t.2 >= 2) {
        bytes.entry(ty.id()).or_insert((ty, 0)).1 += n;
    }
    bytes.into_values().max_by_key(|(_, n)| *n).map(|(t, _)| t)
}

/// llama.cpp's names for `general.file_type` (its `llama_ftype`); ids it retired are absent.
pub fn file_type_name(id: u32) -> Option<&'static str> {
    Some(match id {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        7 => "Q8_0",
        8 => "Q5_0",
        9 => "Q5_1",
        10 => "Q2_K",
        11 => "Q3_K_S",
        12 => "Q3_K_M",
        13 => "Q3_K_L",
        14 => "Q4_K_S",
        15 => "Q4_K_M",
        16 => "Q5_K_S",
        17 => "Q5_K_M",
        18 => "Q6_K",
        19 => "IQ2_XXS",
        20 => "IQ2_XS",
        21 => "Q2_K_S",
        22 => "IQ3_XS",
        23 => "IQ3_XXS",
        24 => "IQ1_S",
        25 => "IQ4_NL",
        26 => "IQ3_S",
        27 => "IQ3_M",
        28 => "IQ2_S",
        29 => "IQ2_M",
        30 => "IQ4_XS",
        31 => "IQ1_M",
        32 => "BF16",
        36 => "TQ1_0",
        37 => "TQ2_0",
        38 => "MXFP4_MOE",
        _ => return None,
    })
}

/// `134_515_008` -> `135M`, `1_235_814_400` -> `1.2B`, as model cards write sizes.
pub fn format_parameters(n: u64) -> String {
    let n = n as f64;
    if n >= 1e9 {
        format!("{:.1}B", n / 1e9)
    } else if n >= 1e6 {
        format!("{:.0}M", n / 1e6)
    } else if n >= 1e3 {
        format!("{:.0}K", n / 1e3)
    } else {
        format!("{n}")
    }
}

/// Largest safetensors header accepted; real ones are a few hundred kB at most.
const MAX_SAFETENSORS_HEADER: u64 = 64 << 20;

fn inspect_safetensors_dir(dir: &Path) -> Result<ModelInfo> {
    let bad = |path: &Path, message: String| Error::Inspect {
        path: path.to_path_buf(),
        message,
    };
    let config_path = dir.join("config.json");
    let config: serde_json::Value = std::fs::read(&config_path)
        .map_err(|e| Error::io("reading", &config_path, e))
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| bad(&config_path, e.to_string())))?;
    let architecture = config
        .get("model_type")
        .and_then(|v| v.as_str())
        .unwrap_or("unknown")
        .to_string();
    let context_length = config
        .get("max_position_embeddings")
        .and_then(|v| v.as_u64());

    let weights = dir.join("model.safetensors");
    let mut file = std::fs::File::open(&weights).map_err(|e| Error::io("opening", &weights, e))?;
    let mut len = [0u8; 8];
    file.read_exact(&mut len)
        .map_err(|e| Error::io("reading", &weights, e))?;
    let len = u64::from_le_bytes(len);
    if len > MAX_SAFETENSORS_HEADER {
        return Err(bad(
            &weights,
            format!("header length {len} is over the {MAX_SAFETENSORS_HEADER}-byte limit"),
        ));
    }
    let mut header = vec![0u8; len as usize];
    file.read_exact(&mut header)
        .map_err(|e| Error::io("reading", &weights, e))?;
    let header: BTreeMap<String, serde_json::Value> =
        serde_json::from_slice(&header).map_err(|e| bad(&weights, e.to_string()))?;
    let mut parameters = 0u64;
    let mut dtype_elems: BTreeMap<String, u64> = BTreeMap::new();
    for (name, tensor) in header.iter().filter(|(k, _)| *k != "__metadata__") {
        let shape = tensor
            .get("shape")
            .and_then(|s| s.as_array())
            .ok_or_else(|| bad(&weights, format!("tensor {name:?} has no shape")))?;
        let n: u64 = shape.iter().filter_map(|d| d.as_u64()).product();
        parameters += n;
        let dtype = tensor.get("dtype").and_then(|d| d.as_str()).unwrap_or("?");
        *dtype_elems.entry(dtype.to_string()).or_default() += n;
    }
    let quantization = dtype_elems
        .into_iter()
        .max_by_key(|(_, n)| *n)
        .map_or_else(|| "unknown".into(), |(d, _)| d);
    Ok(ModelInfo {
        architecture,
        parameters,
        quantization,
        chat_template: false,
        context_length,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_read_like_model_cards() {
        assert_eq!(format_parameters(134_515_008), "135M");
        assert_eq!(format_parameters(268_098_176), "268M");
        assert_eq!(format_parameters(1_235_814_400), "1.2B");
        assert_eq!(format_parameters(999), "999");
    }

    #[test]
    fn dominant_type_ignores_vectors() {
        let t = [
            (GgmlType::F32, 10_000, 1),
            (GgmlType::Q4_K, 600, 2),
            (GgmlType::Q6_K, 500, 2),
            (GgmlType::Q6_K, 200, 2),
        ];
        assert_eq!(dominant_type(t.into_iter()), Some(GgmlType::Q6_K));
    }
}
