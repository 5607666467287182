//! `POST /v1/embeddings` with the sentence-embedding model (all-MiniLM-L6-v2).
//!
//! `input` may also be token ids in the embedding model's own vocabulary (its WordPiece ids),
//! as clients that count tokens themselves send it: they embed exactly as the text they came
//! from, `[CLS]` and `[SEP]` added where missing.
//!
//! Inputs longer than the model's window are refused with a 400 naming the input and both
//! lengths; a vector of half a document that claims to be the whole one would be worse.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use serde_json::{json, Value};

use super::{EmbeddingInput, EmbeddingRequest};
use crate::body::{body, parse_body_async};
use crate::error::{ApiError, AppResult};
use crate::{AppState, EmbedModel, EMBED_MODEL};

/// Most inputs in one request (OpenAI's limit).
const MAX_INPUTS: usize = 2048;

pub(crate) async fn embeddings(
    State(state): State<Arc<AppState>>,
    raw: Result<Bytes, BytesRejection>,
) -> AppResult<Response> {
    let raw = body(&state, raw)?;
    let req: EmbeddingRequest = parse_body_async(raw).await?;
    let Some(model) = state.embed.clone().filter(|e| e.id == req.model) else {
        if req.model == EMBED_MODEL {
            return Err(ApiError::not_found(format!(
                "the embedding model {EMBED_MODEL} is not installed on this machine; run `hearth pull {EMBED_MODEL}` and restart `hearth serve`"
            ))
            .with_code("model_not_found"));
        }
        let served = state.served();
        if req.model == served.model_id {
            return Err(ApiError::invalid(
                "model",
                format!(
                    "{} generates text; use {EMBED_MODEL} for embeddings",
                    req.model
                ),
            ));
        }
        return Err(ApiError::model_not_found(
            &req.model,
            &state.model_ids(&served),
        ));
    };
    let inputs = match req.input {
        EmbeddingInput::One(s) => Inputs::Texts(vec![s]),
        EmbeddingInput::Many(v) => Inputs::Texts(v),
        EmbeddingInput::Tokens(ids) => Inputs::Ids(vec![ids]),
        EmbeddingInput::TokenLists(v) => Inputs::Ids(v),
    };
    let count = match &inputs {
        Inputs::Texts(v) => v.len(),
        Inputs::Ids(v) => v.len(),
    };
    if count == 0 {
        return Err(ApiError::invalid(
            "input",
            "`input` must hold at least one text",
        ));
    }
    if count > MAX_INPUTS {
        return Err(ApiError::invalid(
            "input",
            format!("at most {MAX_INPUTS} inputs per request; got {count}"),
        ));
    }
    if let Inputs::Ids(lists) = &inputs {
        let vocab = model.embedder.vocab_size();
        for (i, ids) in lists.iter().enumerate() {
            if let Some(&bad) = ids.iter().find(|&&id| id as usize >= vocab) {
                return Err(ApiError::invalid(
                    "input",
                    format!(
                        "token id {bad} in input {i} is out of range: {} has {vocab} tokens in its vocabulary (token ids are the embedding model's own, not the chat model's)",
                        model.id
                    ),
                ));
            }
        }
    }
    let dims = model.embedder.dims();
    if let Some(d) = req.dimensions {
        if d as usize != dims {
            return Err(ApiError::invalid(
                "dimensions",
                format!(
                    "{} gives {dims}-dimensional vectors; `dimensions` = {d} is not supported",
                    model.id
                ),
            ));
        }
    }
    let base64 = match req.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(ApiError::invalid(
                "encoding_format",
                format!("`encoding_format` must be \"float\" or \"base64\"; got {other:?}"),
            ))
        }
    };
    let (vectors, tokens) = embed_inputs(&state, &model, inputs).await?;
    let data: Vec<Value> = vectors
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let embedding = if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    Ok(Json(json!({
        "object": "list",
        "data": data,
        "model": model.id,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }))
    .into_response())
}

/// Embeds `inputs` with `model` off the async workers: the vectors and the tokens they took.
/// An input longer than the model's window is a 400 naming it (`input[i]`), never truncated.
/// Shared with Ollama's `/api/embed` (texts only there).
pub(crate) async fn embed_inputs(
    state: &AppState,
    model: &Arc<EmbedModel>,
    inputs: Inputs,
) -> AppResult<(Vec<Vec<f32>>, usize)> {
    let pool = state.embed_pool.clone();
    let m = model.clone();
    tokio::task::spawn_blocking(move || -> AppResult<(Vec<Vec<f32>>, usize)> {
        let max = m.embedder.max_tokens();
        let ids: Vec<Vec<u32>> = match inputs {
            Inputs::Texts(texts) => texts
                .iter()
                .map(|t| m.embedder.tokenize(t))
                .collect::<Result<_, _>>()
                .map_err(|e| ApiError::internal(e.to_string()))?,
            Inputs::Ids(lists) => lists.iter().map(|ids| m.embedder.frame(ids)).collect(),
        };
        let mut tokens = 0;
        for (i, t) in ids.iter().enumerate() {
            let n = t.len();
            if n > max {
                return Err(ApiError::invalid(
                    format!("input[{i}]"),
                    format!("input {i} is {n} tokens; {} takes at most {max}. Split the text into smaller pieces.", m.id),
                ));
            }
            tokens += n;
        }
        let v = m.embedder.embed_ids(ids, &pool).map_err(|e| match e {
            hearth_embed::Error::TooLong { index, .. } => {
                ApiError::invalid(format!("input[{index}]"), e.to_string())
            }
            other => ApiError::internal(other.to_string()),
        })?;
        Ok((v, tokens))
    })
    .await
    .map_err(|e| ApiError::internal(format!("the embedding task failed: {e}")))?
}

/// The request's inputs: texts, or token ids of the embedding model's vocabulary.
pub(crate) enum Inputs {
    Texts(Vec<String>),
    Ids(Vec<Vec<u32>>),
}
