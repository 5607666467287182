//! The OpenAI API family: one file per endpoint over the shared generation core
//! (`crate::generation`), with OpenAI's request and response shapes in `types.rs`.
//!
//! OpenAI's Responses API is the folder `responses/` (its request mapped onto chat's tool plan
//! and the same core); Ollama (`ollama/`) and Anthropic (`anthropic/`) are folders beside this
//! one, each with its own wire types and handlers over the same core. (`tools.rs` reads a
//! `ChatRequest`; a family that needs tools maps its own request onto it, as
//! `responses/plan.rs`, `ollama/chat.rs` and `anthropic/` do.)

pub(crate) mod chat;
pub(crate) mod completions;
pub(crate) mod embeddings;
pub(crate) mod models;
pub(crate) mod responses;
pub(crate) mod tools;
mod types;

pub use types::*;

use crate::error::{ApiError, AppResult};

/// OpenAI's `n`: Hearth returns one choice per request.
fn check_n(n: Option<u64>) -> AppResult<()> {
    match n {
        None | Some(1) => Ok(()),
        Some(0) => Err(ApiError::invalid("n", "`n` must be at least 1")),
        Some(n) => Err(ApiError::invalid(
            "n",
            format!("n = {n} is not supported: Hearth returns one choice per request; send {n} requests instead (with different seeds)"),
        )),
    }
}

/// `system_fingerprint` in every reply: this build of Hearth.
fn fingerprint() -> String {
    format!("hearth-{}", env!("CARGO_PKG_VERSION"))
}
