//! `hearth chat`: a conversation in the terminal. The KV cache is kept between turns, so each
//! turn only processes the tokens that are new since the previous one.

use std::io::{BufRead, IsTerminal, Write};
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use hearth_engine::{Event, Request};
use hearth_model::chat::ChatMessage;
use hearth_model::tokenizer::StreamDecoder;
use hearth_model::StopStrings;

use crate::load::{self, GenOptions};

#[derive(Args, Debug)]
pub struct ChatArgs {
    /// A catalog name or a path to a .gguf (default: the default model, pulled if missing).
    pub model: Option<String>,
    /// A system message for the conversation.
    #[arg(long)]
    pub system: Option<String>,
    #[command(flatten)]
    pub gen: GenOptions,
}

pub fn run(a: ChatArgs) -> anyhow::Result<()> {
    let (loaded, model) = load::load(a.model.as_deref(), &a.gen)?;
    if loaded.template.is_none() {
        anyhow::bail!(
            "{} has no chat template (it is a base model that only continues text); use `hearth run --raw {} \"text\"` instead",
            loaded.name,
            loaded.name
        );
    }
    let mut engine = load::engine_for(model, &loaded, &a.gen, 1)?;
    let interactive = std::io::stdin().is_terminal();
    let mut messages: Vec<ChatMessage> = Vec::new();
    if let Some(s) = &a.system {
        messages.push(load::msg("system", s));
    }
    if interactive {
        eprintln!(
            "Chatting with {}. Type /exit to leave, /reset to start over.",
            loaded.name
        );
    }
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    let mut seq = None;
    loop {
        if interactive {
            eprint!("> ");
            std::io::stderr().flush()?;
        }
        let Some(line) = lines.next() else { break };
        let line = line.context("reading from the terminal")?;
        let text = line.trim_end();
        match text {
            "" => continue,
            "/exit" | "/quit" => break,
            "/reset" => {
                messages.retain(|m| m.role == "system");
                if let Some(id) = seq.take() {
                    engine.remove(id)?;
                }
                continue;
            }
            _ => {}
        }
        messages.push(load::msg("user", text));
        let tokens = loaded.chat_tokens(&messages)?;
        let sampler = loaded.sampler_config(&a.gen);
        let start = Instant::now();
        let reused = match seq {
            Some(id) => engine.continue_with(id, tokens.clone(), sampler, a.gen.max_tokens)?,
            None => {
                let id = engine.add(Request {
                    prompt: tokens.clone(),
                    sampler,
                    max_tokens: a.gen.max_tokens,
                    stop_tokens: loaded.tokenizer.eog_ids().to_vec(),
                    ..Default::default()
                })?;
                seq = Some(id);
                0
            }
        };
        seq.context("no sequence")?;
        let mut decoder = StreamDecoder::new();
        let mut stops = StopStrings::new(a.gen.stop.iter().cloned());
        let mut reply = String::new();
        let mut out = std::io::stdout().lock();
        let mut n_gen = 0;
        let mut first = None;
        let mut events = Vec::new();
        'gen: loop {
            engine.step_into(&mut events)?;
            for ev in events.drain(..) {
                match ev {
                    Event::Token { token, .. } => {
                        first.get_or_insert_with(|| start.elapsed());
                        n_gen += 1;
                        if loaded.tokenizer.is_eog(token) {
                            continue;
                        }
                        let released = stops.push(&decoder.push(&loaded.tokenizer, token));
                        reply.push_str(&released.text);
                        out.write_all(released.text.as_bytes())?;
                        out.flush()?;
                        if released.stopped {
                            // The next turn's `continue_with` cuts the cache back to the reply.
                            break 'gen;
                        }
                    }
                    Event::Finished { .. } => break 'gen,
                }
            }
            if !engine.has_work() {
                break;
            }
        }
        let tail = if stops.is_stopped() {
            String::new()
        } else {
            let t = stops.push(&decoder.finish()).text;
            t + &stops.finish()
        };
        reply.push_str(&tail);
        writeln!(out, "{tail}")?;
        drop(out);
        if interactive {
            let ttft = first.unwrap_or_default().as_secs_f64();
            eprintln!(
                "[{} new prompt tokens, {} reused from cache, {} generated, first token {:.2} s]",
                tokens.len() - reused,
                reused,
                n_gen,
                ttft
            );
        }
        messages.push(load::msg("assistant", reply.trim()));
    }
    Ok(())
}
