//! Several choices in one request (`n`, and a list of prompts on completions): each choice is a
//! generation of its own, so the engine runs them side by side in one batch, and their pieces
//! arrive merged, tagged with the choice's index.
//!
//! Choices of the same prompt share its KV blocks through the engine's prefix cache, but only
//! once the prompt has been computed: at admission a sequence that has not run yet holds no
//! blocks, so `n` copies admitted together would each compute the whole prompt. The first
//! choice of each prompt is therefore submitted alone, and the others as soon as it yields its
//! first piece (its prompt is then in the cache); from there on they decode in the same batch.

use tokio::sync::mpsc;

use crate::error::{ApiError, AppResult};
use crate::generation::{start_generation, Generation, Piece, Plan, TokenLogprob};
use crate::{AppState, Served};

/// What the merged choices yield.
pub(crate) enum Event {
    /// A piece of choice `.0` (text, or its `Done`).
    Piece(usize, Piece),
    /// A choice failed: the request fails.
    Failed(ApiError),
    /// Choice `index` ended; its counts for usage.
    Ended { index: usize, counts: Counts },
}

/// One choice's share of usage.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Counts {
    pub(crate) prompt_tokens: usize,
    pub(crate) cached_tokens: usize,
    pub(crate) completion_tokens: usize,
}

/// The running choices of one request.
pub(crate) struct Choices {
    rx: mpsc::Receiver<Event>,
    /// Choices per prompt.
    pub(crate) per_prompt: usize,
    pub(crate) len: usize,
}

/// A generation whose first piece may have been taken early.
struct Peeked {
    gen: Generation,
    first: Option<Option<Result<Piece, ApiError>>>,
}

impl Peeked {
    /// Waits for the first piece that shows the prompt was computed (anything but `Queued`),
    /// and keeps it for [`Peeked::next`].
    async fn wait_started(&mut self) {
        loop {
            match self.gen.next().await {
                Some(Ok(Piece::Queued { .. })) => continue,
                other => {
                    self.first = Some(other);
                    return;
                }
            }
        }
    }

    async fn next(&mut self) -> Option<Result<Piece, ApiError>> {
        match self.first.take() {
            Some(first) => first,
            None => self.gen.next().await,
        }
    }
}

/// Starts `plans`, which come in runs of `per_prompt` choices of the same prompt (OpenAI's
/// order: choice `prompt * per_prompt + j`). Fails as a whole when any choice cannot start;
/// the ones already started are then cancelled.
pub(crate) async fn start(
    state: &AppState,
    served: &Served,
    plans: Vec<Plan>,
    per_prompt: usize,
) -> AppResult<Choices> {
    let len = plans.len();
    let mut plans: Vec<Option<Plan>> = plans.into_iter().map(Some).collect();
    let mut gens: Vec<Option<Peeked>> = (0..len).map(|_| None).collect();
    let mut take = |i: usize| plans[i].take().expect("each plan starts once");
    for lead in (0..len).step_by(per_prompt) {
        gens[lead] = Some(Peeked {
            gen: start_generation(state, served, take(lead))?,
            first: None,
        });
    }
    if per_prompt > 1 {
        for lead in (0..len).step_by(per_prompt) {
            if let Some(g) = gens[lead].as_mut() {
                g.wait_started().await;
            }
            for (i, slot) in gens
                .iter_mut()
                .enumerate()
                .take(lead + per_prompt)
                .skip(lead + 1)
            {
                *slot = Some(Peeked {
                    gen: start_generation(state, served, take(i))?,
                    first: None,
                });
            }
        }
    }
    let (tx, rx) = mpsc::channel(64);
    for (index, g) in gens.into_iter().enumerate() {
        let Some(mut g) = g else { continue };
        let tx = tx.clone();
        tokio::spawn(async move {
            loop {
                // A client that left closes the channel: stop waiting for the engine then, so
                // dropping the generation cancels it at once.
                let next = tokio::select! {
                    next = g.next() => next,
                    () = tx.closed() => return,
                };
                let event = match next {
                    None => break,
                    Some(Ok(Piece::Queued { .. })) => continue,
                    Some(Ok(piece)) => Event::Piece(index, piece),
                    Some(Err(e)) => {
                        let _ = tx.send(Event::Failed(e)).await;
                        return;
                    }
                };
                if tx.send(event).await.is_err() {
                    return;
                }
            }
            let counts = Counts {
                prompt_tokens: g.gen.prompt_tokens,
                cached_tokens: g.gen.cached_tokens,
                completion_tokens: g.gen.completion_tokens,
            };
            let _ = tx.send(Event::Ended { index, counts }).await;
        });
    }
    Ok(Choices {
        rx,
        per_prompt,
        len,
    })
}

/// One finished choice.
pub(crate) struct Collected {
    pub(crate) text: String,
    pub(crate) logprobs: Vec<TokenLogprob>,
    pub(crate) finish: &'static str,
}

impl Choices {
    /// The next event; `None` once every choice has ended.
    pub(crate) async fn next(&mut self) -> Option<Event> {
        self.rx.recv().await
    }

    /// Usage over all choices: each prompt counts once (its first choice's count), completions
    /// add up.
    pub(crate) fn usage(&self, counts: &[Counts]) -> Counts {
        let mut total = Counts::default();
        for (i, c) in counts.iter().enumerate() {
            if i % self.per_prompt == 0 {
                total.prompt_tokens += c.prompt_tokens;
                total.cached_tokens += c.cached_tokens;
            }
            total.completion_tokens += c.completion_tokens;
        }
        total
    }

    /// Runs every choice to its end.
    pub(crate) async fn collect(mut self) -> AppResult<(Vec<Collected>, Counts)> {
        let mut out: Vec<Collected> = (0..self.len)
            .map(|_| Collected {
                text: String::new(),
                logprobs: Vec::new(),
                finish: "stop",
            })
            .collect();
        let mut counts = vec![Counts::default(); self.len];
        let mut ended = 0;
        while let Some(event) = self.next().await {
            match event {
                Event::Piece(i, Piece::Text { text, logprobs }) => {
                    out[i].text.push_str(&text);
                    out[i].logprobs.extend(logprobs);
                }
                Event::Piece(i, Piece::Done { finish_reason }) => out[i].finish = finish_reason,
                Event::Piece(_, Piece::Queued { .. }) => {}
                Event::Failed(e) => return Err(e),
                Event::Ended { index, counts: c } => {
                    counts[index] = c;
                    ended += 1;
                    if ended == self.len {
                        break;
                    }
                }
            }
        }
        if ended < self.len {
            return Err(ApiError::internal(
                "the engine stopped before the reply was complete",
            ));
        }
        let usage = self.usage(&counts);
        Ok((out, usage))
    }
}
