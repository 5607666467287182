//! `hearth bench`: prompt processing (pp) and generation (tg) speed, load time and peak memory,
//! measured the way llama.cpp's `llama-bench` does so the two can be compared side by side.

use std::time::Instant;

use anyhow::Context;
use clap::Args;
use hearth_engine::{Engine, EngineOptions, Request};
use hearth_model::{Model, SamplerConfig};
use serde_json::json;

use crate::load;

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// A catalog name or a path to a .gguf.
    pub model: String,
    /// Threads (default: physical cores).
    #[arg(short, long)]
    pub threads: Option<usize>,
    /// Prompt tokens for the prompt-processing test.
    #[arg(short = 'p', long, default_value_t = 512)]
    pub prompt: usize,
    /// Tokens generated for the generation test.
    #[arg(short = 'n', long, default_value_t = 128)]
    pub gen: usize,
    /// Repetitions of each test (the mean is reported).
    #[arg(short, long, default_value_t = 3)]
    pub reps: usize,
    /// Context size for the KV cache.
    #[arg(long, default_value_t = 4096)]
    pub ctx: usize,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: BenchArgs) -> anyhow::Result<()> {
    let threads = a
        .threads
        .unwrap_or_else(hearth_kernels::pool::physical_cores)
        .max(1);
    let (gguf, _entry) = load::open_gguf(Some(&a.model))?;
    let t0 = Instant::now();
    let model = Model::from_gguf(gguf).context("cannot load the model")?;
    let load_s = t0.elapsed().as_secs_f64();
    let n_vocab = model.config().n_vocab as u32;
    let arch = model.config().arch.clone();
    let opts = EngineOptions {
        ctx: a.ctx.max(a.prompt + a.gen + 1),
        threads,
        max_seqs: 1,
        prefill_chunk: a.prompt.max(1),
        max_batch_tokens: a.prompt.max(1),
        keep_logits: false,
        // One prompt, measured alone: nothing to share.
        prefix_cache: false,
        ..EngineOptions::default()
    };
    let mut engine = Engine::new(model, opts);
    // Arbitrary but fixed tokens: speed does not depend on which ids they are.
    let tokens: Vec<u32> = (0..a.prompt as u32)
        .map(|i| (i * 7919 + 13) % n_vocab)
        .collect();
    let greedy = SamplerConfig::greedy();

    // Warm-up: touches the weights once so page faults are not timed.
    run_once(
        &mut engine,
        tokens[..tokens.len().min(8)].to_vec(),
        2,
        &greedy,
    )?;

    let mut pp = Vec::new();
    for _ in 0..a.reps {
        let t = Instant::now();
        run_once(&mut engine, tokens.clone(), 1, &greedy)?;
        pp.push(a.prompt as f64 / t.elapsed().as_secs_f64());
    }
    let mut tg = Vec::new();
    for _ in 0..a.reps {
        // Like llama-bench's tg test: generation from a one-token prompt, timed per token.
        let id = engine.add(Request {
            prompt: vec![tokens[0]],
            sampler: greedy.clone(),
            max_tokens: a.gen,
            stop_tokens: vec![],
            ..Default::default()
        })?;
        engine.step()?; // the prompt token
        let t = Instant::now();
        let mut n = 0;
        while engine.has_work() {
            engine.step()?;
            n += 1;
        }
        tg.push(n as f64 / t.elapsed().as_secs_f64());
        engine.remove(id)?;
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let peak = peak_rss_bytes();
    if a.json {
        println!(
            "{}",
            json!({
                "model": a.model, "arch": arch, "threads": threads, "n_prompt": a.prompt, "n_gen": a.gen,
                "pp_tok_s": mean(&pp), "tg_tok_s": mean(&tg), "load_s": load_s, "peak_rss_bytes": peak,
                "simd": format!("{:?}", hearth_kernels::simd::level()),
            })
        );
    } else {
        println!("model     {} ({arch})", a.model);
        println!(
            "threads   {threads}  simd {:?}",
            hearth_kernels::simd::level()
        );
        println!("load      {load_s:.3} s");
        println!("pp{}     {:.1} tok/s", a.prompt, mean(&pp));
        println!("tg{}     {:.1} tok/s", a.gen, mean(&tg));
        println!("peak RSS  {:.1} MiB", peak as f64 / 1048576.0);
    }
    Ok(())
}

fn run_once(
    engine: &mut Engine,
    prompt: Vec<u32>,
    max_tokens: usize,
    s: &SamplerConfig,
) -> anyhow::Result<()> {
    let id = engine.add(Request {
        prompt,
        sampler: s.clone(),
        max_tokens,
        stop_tokens: vec![],
        ..Default::default()
    })?;
    while engine.has_work() {
        engine.step()?;
        if max_tokens == 1 {
            break;
        }
    }
    engine.remove(id)?;
    Ok(())
}

/// Peak resident memory of this process (`VmHWM`), 0 where the OS does not say.
fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}
