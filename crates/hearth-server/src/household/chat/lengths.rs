//! How long a message may be, said in pages, and the room a reply needs: checked before
//! anything of a message is stored, so a message that was not sent is never kept.

use std::sync::Arc;

use hearth_model::chat::ChatMessage;
use hearth_store::User;

use super::super::Household;
use crate::error::ApiError;
use crate::Served;

/// Longest message a person may send, in characters, whatever the model: about 16 pages.
const MAX_MESSAGE: usize = 32_000;

/// The message, trimmed, or why it cannot be sent; `most` is the most this person can send
/// (see [`most_message_tokens`]).
pub(super) fn check_content(s: &str, most: usize) -> Result<&str, ApiError> {
    let t = s.trim();
    if t.is_empty() {
        return Err(ApiError::invalid("content", "write a message first"));
    }
    let chars = t.chars().count();
    if chars > MAX_MESSAGE {
        // About four characters make a token in most languages' text.
        return Err(too_long(chars / 4, most));
    }
    Ok(t)
}

/// A message longer than the model takes, said in pages; nothing of it is stored.
pub(super) fn too_long(tokens: usize, most: usize) -> ApiError {
    ApiError::invalid(
        "content",
        format!(
            "This message is too long: it is {}, and Hearth can take {} at most with this model. Shorten it, or send it in parts.",
            super::super::family::in_pages(tokens),
            super::super::family::in_pages(most)
        ),
    )
    .with_code("too_long")
}

/// Room kept for the answer in the context: a quarter of it, at most 1024 tokens.
pub(super) fn answer_room(ctx: usize) -> usize {
    (ctx / 4).clamp(1, 1024)
}

/// About how much one message from `user` can hold with the served model, in words for the page
/// ("about 6 pages at most with this model").
pub(crate) async fn message_limit(
    served: Arc<Served>,
    h: &Household,
    user: &User,
) -> Result<String, ApiError> {
    Ok(format!(
        "{} at most with this model",
        super::super::family::in_pages(most_message_tokens_offloaded(served, h, user).await?)
    ))
}

/// What the prompt takes besides the person's message: their system message (the household's
/// line, their instructions, a child's prompt and topics) and the template's markup, measured.
pub(super) fn prompt_overhead(served: &Served, h: &Household, user: &User) -> usize {
    overhead_of(served, &super::super::family::system_prompt(h, user))
}

/// [`prompt_overhead`] for the system message `system`. It runs the model's chat template:
/// async code calls it through [`most_message_tokens_offloaded`], and a sync caller on a worker
/// still hands the worker's other tasks on while it runs.
fn overhead_of(served: &Served, system: &str) -> usize {
    let Some(template) = served.template.as_ref() else {
        return 0;
    };
    let msgs = [
        ChatMessage::new("system", system),
        ChatMessage::new("user", ""),
    ];
    match crate::generation::offload::render_blocking(template, &msgs, true, None) {
        Ok(r) => served
            .tokenizer
            .encode_rendered(&r, served.tokenizer.add_bos())
            .len(),
        Err(_) => 0,
    }
}

/// The longest message `user` can send, in tokens: the smaller of the character cap and what
/// the context leaves once their system message and the room for the answer are taken.
pub(super) fn most_message_tokens(served: &Served, h: &Household, user: &User) -> usize {
    most_for(served, prompt_overhead(served, h, user))
}

fn most_for(served: &Served, overhead: usize) -> usize {
    let ctx = served.ctx;
    let fits = ctx.saturating_sub(answer_room(ctx) + overhead);
    fits.min(MAX_MESSAGE / 4)
}

/// [`most_message_tokens`] from async code: the template (code from the model file, up to
/// seconds) runs on a blocking thread, so the async workers (two under `hearth serve`) stay
/// free for every other request while a message is checked.
pub(super) async fn most_message_tokens_offloaded(
    served: Arc<Served>,
    h: &Household,
    user: &User,
) -> Result<usize, ApiError> {
    let system = super::super::family::system_prompt(h, user);
    tokio::task::spawn_blocking(move || most_for(&served, overhead_of(&served, &system)))
        .await
        .map_err(|e| ApiError::internal(format!("measuring the message limit failed: {e}")))
}

/// A reply that has grown past what the model can read at once cannot go on in place.
pub(super) const NO_ROOM_TO_CONTINUE: &str = "This reply is already as long as Hearth can read at once with this model, so it cannot go on here. Ask for the rest in a new chat.";
