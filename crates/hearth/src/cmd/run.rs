//! `hearth run`: one prompt, one streamed answer.

use std::io::Write;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::Args;
use hearth_engine::{Engine, Event, FinishReason, Request};
use hearth_model::tokenizer::StreamDecoder;
use hearth_model::StopStrings;

use crate::load::{self, GenOptions, Loaded};

#[derive(Args, Debug)]
pub struct RunArgs {
    /// `[MODEL] PROMPT`: MODEL is a catalog name or a path to a .gguf (default: the default
    /// model, pulled if missing).
    #[arg(required = true, num_args = 1..=2, value_names = ["MODEL", "PROMPT"])]
    pub args: Vec<String>,
    /// Skip the chat template: continue the prompt as plain text.
    #[arg(long)]
    pub raw: bool,
    /// A system message (chat models only).
    #[arg(long)]
    pub system: Option<String>,
    #[command(flatten)]
    pub gen: GenOptions,
}

pub fn run(a: RunArgs) -> anyhow::Result<()> {
    let (model, prompt) = match a.args.as_slice() {
        [p] => (None, p.clone()),
        [m, p] => (Some(m.clone()), p.clone()),
        _ => bail!("expected `hearth run [MODEL] PROMPT`"),
    };
    let t_load = Instant::now();
    let (loaded, model) = load::load(model.as_deref(), &a.gen)?;
    let load_s = t_load.elapsed().as_secs_f64();
    let tokens = if a.raw {
        loaded
            .tokenizer
            .encode(&prompt, loaded.tokenizer.add_bos(), false)
    } else {
        let mut messages = Vec::new();
        if let Some(s) = &a.system {
            messages.push(load::msg("system", s));
        }
        messages.push(load::msg("user", &prompt));
        loaded.chat_tokens(&messages)?
    };
    let mut engine = load::engine_for(model, &loaded, &a.gen, 1)?;
    generate(&loaded, &mut engine, tokens, &a.gen, load_s)
}

/// Streams one generation to stdout and prints statistics to stderr.
fn generate(
    loaded: &Loaded,
    engine: &mut Engine,
    tokens: Vec<u32>,
    gen: &GenOptions,
    load_s: f64,
) -> anyhow::Result<()> {
    let n_prompt = tokens.len();
    let sampler = loaded.sampler_config(gen);
    let seed = sampler.seed;
    let id = engine
        .add(Request {
            prompt: tokens,
            sampler,
            max_tokens: gen.max_tokens,
            stop_tokens: loaded.tokenizer.eog_ids().to_vec(),
            ..Default::default()
        })
        .context("cannot start generation")?;
    let start = Instant::now();
    let mut first_token = None;
    let mut decoder = StreamDecoder::new();
    let mut stops = StopStrings::new(gen.stop.iter().cloned());
    let mut stopped_by_text = false;
    let mut out = std::io::stdout().lock();
    let mut n_gen = 0usize;
    let mut reason = None;
    // Reused across steps: decoding allocates nothing per token.
    let mut events = Vec::new();
    while reason.is_none() {
        engine.step_into(&mut events)?;
        for ev in events.drain(..) {
            match ev {
                Event::Token { token, .. } => {
                    first_token.get_or_insert_with(|| start.elapsed());
                    n_gen += 1;
                    if loaded.tokenizer.is_eog(token) {
                        continue;
                    }
                    let released = stops.push(&decoder.push(&loaded.tokenizer, token));
                    out.write_all(released.text.as_bytes())?;
                    out.flush()?;
                    if released.stopped {
                        stopped_by_text = true;
                    }
                }
                Event::Finished { reason: r, .. } => reason = Some(r),
            }
        }
        if stopped_by_text {
            engine.cancel(id)?;
            reason = Some(FinishReason::Stop);
        }
        if !engine.has_work() && reason.is_none() {
            break;
        }
    }
    if !stopped_by_text {
        let tail = stops.push(&decoder.finish());
        out.write_all(tail.text.as_bytes())?;
        out.write_all(stops.finish().as_bytes())?;
    }
    writeln!(out)?;
    let total = start.elapsed().as_secs_f64();
    let ttft = first_token.map(|d| d.as_secs_f64()).unwrap_or(total);
    let gen_s = (total - ttft).max(1e-9);
    let why = match reason {
        Some(FinishReason::Stop) if stopped_by_text => "stop text reached",
        Some(FinishReason::Stop) => "end of answer",
        Some(FinishReason::Length) => "max tokens reached",
        Some(FinishReason::ContextFull) => "context full",
        None => "stopped",
    };
    let spec = engine.take_spec_counts();
    let drafts = if spec.drafted > 0 {
        format!(
            ", {} of {} drafted tokens accepted",
            spec.accepted, spec.drafted
        )
    } else {
        String::new()
    };
    eprintln!(
        "\n[{}] prompt {} tokens ({:.1} tok/s), generated {} tokens ({:.1} tok/s), time to first token {:.3} s, load {:.2} s, seed {}, {}{}",
        loaded.name,
        n_prompt,
        n_prompt as f64 / ttft.max(1e-9),
        n_gen,
        (n_gen.saturating_sub(1)) as f64 / gen_s,
        ttft,
        load_s,
        seed,
        why,
        drafts
    );
    Ok(())
}
