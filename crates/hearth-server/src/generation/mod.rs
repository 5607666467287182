//! The generation core that every caller of the engine shares: the OpenAI families (`openai/`)
//! and the household page (`household/chat.rs`) alike, and the API families still to come.
//!
//! A caller turns its request into a [`Plan`] (prompt tokens, length, stop strings, sampler,
//! logprobs, constraint), validating the shared fields through `params.rs` so every family
//! names a bad field the same way; [`start_generation`] hands the plan to the engine loop; the
//! [`Generation`] it returns turns engine updates into final text (`stream.rs`); `sse.rs`
//! streams it. Work too heavy for the async workers (templates, long prompts) goes through
//! `offload.rs`.
//!
//! Nothing here knows an API family's wire shapes or the household: they import this, never
//! the other way round.

pub(crate) mod offload;
mod params;
mod sse;
mod stream;

use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use hearth_engine::Request;
use hearth_model::{SamplerConfig, TokenConstraint};

use crate::error::{ApiError, AppResult};
use crate::scheduler::SubmitError;
use crate::{AppState, Served};

pub use params::SamplingFields;
pub(crate) use params::{
    check_model, max_tokens, max_tokens_in, sampler, stops, untagged, LATEST_TAG,
};
pub(crate) use sse::{data, sse};
pub use stream::{Generation, Piece, TokenLogprob, TopLogprob};

/// Everything the engine and the text side need for one generation.
pub(crate) struct Plan {
    pub(crate) prompt: Vec<u32>,
    pub(crate) max_tokens: usize,
    pub(crate) stops: Vec<String>,
    pub(crate) sampler: SamplerConfig,
    pub(crate) logprobs: Option<usize>,
    pub(crate) constraint: Option<Box<dyn TokenConstraint>>,
}

/// Starts a generation, or says why not.
pub(crate) fn start_generation(
    state: &AppState,
    served: &Served,
    plan: Plan,
) -> AppResult<Generation> {
    if state.shutting_down.load(Ordering::Relaxed) {
        return Err(ApiError::overloaded("Hearth is shutting down", 5));
    }
    let prompt_tokens = plan.prompt.len();
    let request = Request {
        prompt: plan.prompt,
        sampler: plan.sampler,
        max_tokens: plan.max_tokens,
        stop_tokens: served.tokenizer.eog_ids().to_vec(),
        constraint: plan.constraint,
        logprobs: plan.logprobs,
    };
    let rx = served.scheduler.submit(request).map_err(|e| match e {
        SubmitError::QueueFull { depth } => ApiError::overloaded(
            format!("Hearth is busy: {depth} requests are already waiting. Try again shortly."),
            2,
        ),
        SubmitError::Stopped => ApiError::internal("the engine has stopped"),
    })?;
    Ok(Generation::new(
        rx,
        served.tokenizer.clone(),
        plan.stops,
        prompt_tokens,
    ))
}

/// Runs a generation to its end. (OpenAI's chat and completions run their choices through
/// `openai/choices.rs`; the families with one choice each use this.)
pub(crate) async fn collect(
    mut gen: Generation,
) -> AppResult<(String, Vec<TokenLogprob>, &'static str, Generation)> {
    let mut text = String::new();
    let mut lps = Vec::new();
    let mut finish = "stop";
    while let Some(piece) = gen.next().await {
        match piece? {
            Piece::Text { text: t, logprobs } => {
                text.push_str(&t);
                lps.extend(logprobs);
            }
            Piece::Done { finish_reason } => finish = finish_reason,
            Piece::Queued { .. } => {}
        }
    }
    Ok((text, lps, finish, gen))
}

pub(crate) fn new_id(prefix: &str) -> String {
    format!("{prefix}-{:016x}", rand::random::<u64>())
}

pub(crate) fn unix_time(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
