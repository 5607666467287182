//! `GET /api/version`, `GET /api/tags`, `GET /api/ps` and `POST /api/show`: the models this
//! server answers to, described as Ollama describes models.
//!
//! Hearth serves one chat model (and the embedding model, when installed), loaded for as long
//! as it runs, so `tags` and `ps` list the same models. Models installed but not served are not
//! listed: a client could not use them.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use super::types::ModelRef;
use super::{base_name, listed_name, model_not_found, rfc3339};
use crate::body::{body, parse_body_async};
use crate::error::AppResult;
use crate::{AppState, EmbedModel, Served};

/// The Ollama release whose API Hearth's matches. Clients compare it to decide what they may
/// send (structured `format` arrived in 0.5, streamed tool calls in 0.8), so it is Ollama's
/// numbering, not Hearth's (that one is in `hearth`).
const OLLAMA_API_VERSION: &str = "0.9.0";

pub(crate) async fn version() -> Json<Value> {
    Json(json!({
        "version": OLLAMA_API_VERSION,
        "hearth": env!("CARGO_PKG_VERSION"),
    }))
}

/// "134.5M", "1.7B": Ollama's `parameter_size`.
fn parameter_size(n: u64) -> String {
    let n = n as f64;
    if n >= 1e9 {
        format!("{:.1}B", n / 1e9)
    } else if n >= 1e6 {
        format!("{:.1}M", n / 1e6)
    } else {
        format!("{:.1}K", n / 1e3)
    }
}

fn chat_details(served: &Served) -> Value {
    let f = &served.facts;
    json!({
        "parent_model": "",
        "format": "gguf",
        "family": f.arch,
        "families": [f.arch],
        "parameter_size": parameter_size(f.parameters),
        "quantization_level": f.quantization,
    })
}

fn embed_details() -> Value {
    json!({
        "parent_model": "",
        "format": "safetensors",
        "family": "bert",
        "families": ["bert"],
        "parameter_size": "",
        "quantization_level": "",
    })
}

/// One model as `/api/tags` lists it. The time is when this server started serving it.
/// There is no `digest`: Hearth does not hash the served file on every start.
fn chat_entry(state: &AppState, served: &Served) -> Value {
    let name = listed_name(&served.model_id);
    json!({
        "name": name,
        "model": name,
        "modified_at": rfc3339(state.started),
        "size": served.facts.file_size,
        "details": chat_details(served),
    })
}

fn embed_entry(state: &AppState, e: &EmbedModel) -> Value {
    let name = listed_name(&e.id);
    json!({
        "name": name,
        "model": name,
        "modified_at": rfc3339(state.started),
        "details": embed_details(),
    })
}

pub(crate) async fn tags(State(state): State<Arc<AppState>>) -> Json<Value> {
    let served = state.served();
    let mut models = vec![chat_entry(&state, &served)];
    models.extend(state.embed.as_ref().map(|e| embed_entry(&state, e)));
    Json(json!({ "models": models }))
}

/// Loaded models. Hearth keeps its models loaded while it runs: `expires_at` is a date that
/// will not come (Ollama shows a far-off date for `keep_alive: -1` too).
pub(crate) async fn ps(State(state): State<Arc<AppState>>) -> Json<Value> {
    let served = state.served();
    let never = rfc3339(SystemTime::UNIX_EPOCH + Duration::from_secs(253_402_300_799));
    let mut chat = chat_entry(&state, &served);
    chat["expires_at"] = json!(never);
    chat["size_vram"] = json!(0);
    chat["context_length"] = json!(served.ctx);
    let mut models = vec![chat];
    if let Some(e) = &state.embed {
        let mut m = embed_entry(&state, e);
        m["expires_at"] = json!(never);
        m["size_vram"] = json!(0);
        m["context_length"] = json!(e.embedder.max_tokens());
        models.push(m);
    }
    Json(json!({ "models": models }))
}

/// Ollama's `parameters` text: one `name value` line per default.
fn parameters(served: &Served) -> String {
    let d = &served.defaults;
    format!(
        "temperature {}\ntop_k {}\ntop_p {}\nmin_p {}\nrepeat_penalty {}\nrepeat_last_n {}",
        d.temperature, d.top_k, d.top_p, d.min_p, d.repeat_penalty, d.penalty_last_n
    )
}

pub(crate) async fn show(
    State(state): State<Arc<AppState>>,
    raw: Result<Bytes, BytesRejection>,
) -> AppResult<Json<Value>> {
    let raw = body(&state, raw)?;
    let req: ModelRef = parse_body_async(raw).await?;
    let name = req.model()?;
    let served = state.served();
    let base = base_name(name);
    let modified = rfc3339(state.started);
    if base == served.model_id {
        let f = &served.facts;
        let a = &f.arch;
        let mut info = serde_json::Map::new();
        info.insert("general.architecture".into(), json!(a));
        info.insert("general.parameter_count".into(), json!(f.parameters));
        // The context this server runs, not the one the model was trained for: it is what a
        // client can send.
        info.insert(format!("{a}.context_length"), json!(served.ctx));
        info.insert(format!("{a}.embedding_length"), json!(f.n_embd));
        info.insert(format!("{a}.block_count"), json!(f.n_layer));
        info.insert(format!("{a}.attention.head_count"), json!(f.n_head));
        info.insert(format!("{a}.attention.head_count_kv"), json!(f.n_kv_head));
        let template = served
            .template
            .as_ref()
            .map(|t| t.source().to_string())
            .unwrap_or_default();
        // Every chat model takes tools here: Hearth writes them into the prompt itself when
        // the template does not, and constrains the calls.
        let capabilities = if served.template.is_some() {
            json!(["completion", "tools"])
        } else {
            json!(["completion"])
        };
        return Ok(Json(json!({
            "modelfile": format!("# Served by Hearth\nFROM {}\n", served.model_id),
            "parameters": parameters(&served),
            "template": template,
            "license": "",
            "details": chat_details(&served),
            "model_info": info,
            "capabilities": capabilities,
            "modified_at": modified,
        })));
    }
    if let Some(e) = state.embed.as_ref().filter(|e| e.id == base) {
        return Ok(Json(json!({
            "modelfile": format!("# Served by Hearth\nFROM {}\n", e.id),
            "parameters": "",
            "template": "",
            "license": "",
            "details": embed_details(),
            "model_info": {
                "general.architecture": "bert",
                "bert.context_length": e.embedder.max_tokens(),
                "bert.embedding_length": e.embedder.dims(),
            },
            "capabilities": ["embedding"],
            "modified_at": modified,
        })));
    }
    Err(model_not_found(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_sizes_read_like_ollamas() {
        assert_eq!(parameter_size(134_515_008), "134.5M");
        assert_eq!(parameter_size(1_711_376_384), "1.7B");
        assert_eq!(parameter_size(22_700), "22.7K");
    }
}
