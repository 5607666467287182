//! The OpenAI API family: one file per endpoint over the shared generation core
//! (`crate::generation`), with OpenAI's request and response shapes in `types.rs`.
//!
//! OpenAI's Responses API will be a file beside `chat.rs`; Ollama and Anthropic will be
//! folders beside this one, each with its own wire types and handlers over the same core.
//! (`tools.rs` reads a `ChatRequest` today; a family that needs tools maps its own request onto
//! it, or the neutral part moves down into the core.)

pub(crate) mod chat;
pub(crate) mod completions;
pub(crate) mod embeddings;
pub(crate) mod models;
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
