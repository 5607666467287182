//! `POST /api/embed` (a list of vectors) and the legacy `POST /api/embeddings` (one vector), with
//! the sentence-embedding model, through the same code as `/v1/embeddings`.
//!
//! Ollama truncates an input longer than the model's window unless `truncate: false`; Hearth
//! never embeds half a text as if it were the whole, so such an input is a 400 either way, and
//! the message says so.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use super::types::{EmbedInput, EmbedRequest, EmbeddingsRequest};
use super::{base_name, model_not_found, nanos};
use crate::body::{body, parse_body_async};
use crate::error::{ApiError, AppResult};
use crate::openai::embeddings::{embed_inputs, Inputs};
use crate::{AppState, EmbedModel, EMBED_MODEL};

/// Most inputs in one request, as `/v1/embeddings` allows.
const MAX_INPUTS: usize = 2048;

/// The embedding model `name` asks for (with or without `:latest`).
fn embed_model(state: &AppState, name: &str) -> AppResult<Arc<EmbedModel>> {
    let base = base_name(name);
    if let Some(m) = state.embed.clone().filter(|e| e.id == base) {
        return Ok(m);
    }
    if base == EMBED_MODEL {
        return Err(ApiError::not_found(format!(
            "model '{name}' not found: the embedding model {EMBED_MODEL} is not installed on this machine; run `hearth pull {EMBED_MODEL}` and restart `hearth serve`"
        )));
    }
    if base == state.served().model_id {
        return Err(ApiError::invalid(
            "model",
            format!("\"{name}\" does not support embeddings: it generates text. Use \"{EMBED_MODEL}\" for embeddings."),
        ));
    }
    Err(model_not_found(name))
}

/// The vectors of `inputs`; a too-long input is a 400 that also says Hearth does not truncate.
async fn vectors(
    state: &AppState,
    model: &Arc<EmbedModel>,
    inputs: Vec<String>,
) -> AppResult<(Vec<Vec<f32>>, usize)> {
    embed_inputs(state, model, Inputs::Texts(inputs)).await.map_err(|mut e| {
        if e.param.as_deref().is_some_and(|p| p.starts_with("input[")) {
            e.message = format!(
                "{} Hearth does not truncate inputs (whatever `truncate` says): a vector of part of a text would stand for the whole of it.",
                e.message
            );
        }
        e
    })
}

pub(crate) async fn embed(
    State(state): State<Arc<AppState>>,
    raw: Result<Bytes, BytesRejection>,
) -> AppResult<Json<Value>> {
    let started = Instant::now();
    let raw = body(&state, raw)?;
    let req: EmbedRequest = parse_body_async(raw).await?;
    let model = embed_model(&state, &req.model)?;
    let inputs = match req.input {
        EmbedInput::One(s) => vec![s],
        EmbedInput::Many(v) => v,
    };
    if inputs.is_empty() {
        return Err(ApiError::invalid(
            "input",
            "`input` must hold at least one text",
        ));
    }
    if inputs.len() > MAX_INPUTS {
        return Err(ApiError::invalid(
            "input",
            format!(
                "at most {MAX_INPUTS} inputs per request; got {}",
                inputs.len()
            ),
        ));
    }
    let dims = model.embedder.dims();
    if let Some(d) = req.dimensions.filter(|&d| d as usize != dims) {
        return Err(ApiError::invalid(
            "dimensions",
            format!(
                "{} gives {dims}-dimensional vectors; `dimensions` = {d} is not supported",
                model.id
            ),
        ));
    }
    let (vectors, tokens) = vectors(&state, &model, inputs).await?;
    Ok(Json(json!({
        "model": req.model,
        "embeddings": vectors,
        "total_duration": nanos(started.elapsed()),
        "load_duration": 0,
        "prompt_eval_count": tokens,
    })))
}

/// The legacy endpoint: `prompt` in, `embedding` out.
pub(crate) async fn embeddings(
    State(state): State<Arc<AppState>>,
    raw: Result<Bytes, BytesRejection>,
) -> AppResult<Json<Value>> {
    let raw = body(&state, raw)?;
    let req: EmbeddingsRequest = parse_body_async(raw).await?;
    let model = embed_model(&state, &req.model)?;
    // Ollama answers an empty prompt with an empty vector.
    if req.prompt.is_empty() {
        return Ok(Json(json!({"embedding": []})));
    }
    let (mut vectors, _) = vectors(&state, &model, vec![req.prompt]).await?;
    Ok(Json(
        json!({"embedding": vectors.pop().unwrap_or_default()}),
    ))
}
