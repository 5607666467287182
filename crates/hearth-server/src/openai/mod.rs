//! The OpenAI API family: one file per endpoint over the shared generation core
//! (`crate::generation`), with OpenAI's request and response shapes in `types.rs`.
//!
//! OpenAI's Responses API is the folder `responses/` (its request mapped onto chat's tool plan
//! and the same core); Ollama (`ollama/`) and Anthropic (`anthropic/`) are folders beside this
//! one, each with its own wire types and handlers over the same core. (`tools.rs` reads a
//! `ChatRequest`; a family that needs tools maps its own request onto it, as
//! `responses/plan.rs`, `ollama/chat.rs` and `anthropic/` do.)

pub(crate) mod chat;
mod choices;
pub(crate) mod completions;
pub(crate) mod embeddings;
mod legacy;
pub(crate) mod models;
pub(crate) mod responses;
pub(crate) mod tools;
mod types;

pub use types::*;

use crate::error::{ApiError, AppResult};

/// Most choices one request may ask for: each is a sequence of its own in the batch.
pub(crate) const MAX_N: u64 = 8;

/// OpenAI's `n`: how many choices (each a sequence of its own); 1 when absent.
fn check_n(n: Option<u64>) -> AppResult<usize> {
    match n {
        None => Ok(1),
        Some(0) => Err(ApiError::invalid("n", "`n` must be at least 1")),
        Some(n) if n > MAX_N => Err(ApiError::invalid(
            "n",
            format!(
                "`n` must be at most {MAX_N}; got {n}. Send several requests for more choices."
            ),
        )),
        Some(n) => Ok(n as usize),
    }
}

/// `system_fingerprint` in every reply: this build of Hearth.
fn fingerprint() -> String {
    format!("hearth-{}", env!("CARGO_PKG_VERSION"))
}
