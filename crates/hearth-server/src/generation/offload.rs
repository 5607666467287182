//! Work that must not run on the async workers. The server has few of them (two under
//! `hearth serve`), and a handler that computes for a second holds up every other request on
//! its worker, `/health` included. Chat templates are code from the model file (bounded by
//! their step and time limits, but that is still up to seconds), and a long prompt takes a
//! while to tokenize.

use std::sync::Arc;

use hearth_model::chat::{ChatMessage, ChatTemplate, Rendered};
use tokio::runtime::{Handle, RuntimeFlavor};

use crate::error::ApiError;
use crate::Served;

/// The prompt tokens of a chat: rendered with `served`'s template and tokenized, on a blocking
/// thread. An error names what went wrong with the template.
pub(crate) async fn chat_prompt(
    served: Arc<Served>,
    messages: Vec<ChatMessage>,
    tools: Option<serde_json::Value>,
) -> Result<Vec<u32>, ApiError> {
    tokio::task::spawn_blocking(move || {
        let template = served.template.as_ref().ok_or_else(|| {
            ApiError::bad_request(format!(
                "{} is a base model without a chat template: it only continues text",
                served.model_id
            ))
        })?;
        let rendered = template
            .render(&messages, true, tools.as_ref())
            .map_err(|e| {
                ApiError::bad_request(format!(
                    "the chat template cannot render these messages: {e}"
                ))
            })?;
        Ok(served
            .tokenizer
            .encode_rendered(&rendered, served.tokenizer.add_bos()))
    })
    .await
    .map_err(|e| ApiError::internal(format!("building the prompt failed: {e}")))?
}

/// The tokens of a completion prompt, with the model's beginning-of-text token where it wants
/// one; a long text is tokenized on a blocking thread.
pub(crate) async fn encode(served: &Arc<Served>, text: &str) -> Result<Vec<u32>, ApiError> {
    let tok = served.tokenizer.clone();
    if text.len() <= crate::body::BLOCKING_PARSE_BYTES {
        return Ok(tok.encode(text, tok.add_bos(), false));
    }
    let text = text.to_owned();
    tokio::task::spawn_blocking(move || tok.encode(&text, tok.add_bos(), false))
        .await
        .map_err(|e| ApiError::internal(format!("tokenizing the prompt failed: {e}")))
}

/// [`ChatTemplate::render`] for code that is not async: on a multi-threaded runtime the worker
/// hands its other tasks to another thread while the template runs; elsewhere (tests on a
/// single-threaded runtime, no runtime) it simply renders.
pub(crate) fn render_blocking(
    template: &ChatTemplate,
    messages: &[ChatMessage],
    add_generation_prompt: bool,
    tools: Option<&serde_json::Value>,
) -> Result<Rendered, hearth_model::chat::Error> {
    let render = || template.render(messages, add_generation_prompt, tools);
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(render)
        }
        _ => render(),
    }
}
