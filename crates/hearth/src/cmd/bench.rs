//! `hearth bench`: prompt processing (pp) and generation (tg) speed, load time and peak memory,
//! measured the way llama.cpp's `llama-bench` does so the two can be compared side by side.
//!
//! `--bandwidth` also measures the machine's read bandwidth, in the same run and with the same
//! threads, and sets generation against it: the bytes of weights a generated token reads, the
//! effective GB/s that makes, and its share of the probe. Decode of a large model is bound by
//! memory, so that share says how much speed is left before the memory wall.
//!
//! `--fill` measures memory instead: it loads the model as `run` and `serve` do (weights,
//! tokenizer, template), fills `--users` sequences of `--ctx` tokens with distinct prompts
//! (so the prefix cache shares nothing), generates one token each and reports the peak resident
//! memory, which `hearth plan` predicts (`crates/hearth/tests/plan_rss.rs` compares the two).

use std::time::Instant;

use anyhow::Context;
use clap::Args;
use hearth_engine::{Engine, EngineOptions, Request, Speculation};
use hearth_model::tokenizer::Tokenizer;
use hearth_model::{Model, SamplerConfig};
use serde_json::json;

use crate::load::{self, GenOptions};

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
    /// Measure peak memory with every sequence's context filled instead of speed.
    #[arg(long)]
    pub fill: bool,
    /// Sequences filled at once with `--fill`, each with its own prompt.
    #[arg(long, default_value_t = 1)]
    pub users: usize,
    /// Also measure the machine's read bandwidth with the same threads and report generation
    /// against it: weight bytes read per token, effective GB/s, share of the measured
    /// bandwidth.
    #[arg(long, conflicts_with = "fill")]
    pub bandwidth: bool,
}

/// Generation speed set against the measured read bandwidth.
#[derive(Debug, Clone, Copy, PartialEq)]
struct BandwidthUse {
    /// Generated tokens per second.
    tg_tok_s: f64,
    /// Weight bytes one generated token reads (every matrix, and one row of an untied
    /// embedding table).
    read_bytes_per_token: u64,
    /// The probe's read bandwidth, bytes per second.
    probe_bytes_per_s: f64,
}

impl BandwidthUse {
    /// Bytes of weights per second that generation streams.
    fn effective_bytes_per_s(&self) -> f64 {
        self.tg_tok_s * self.read_bytes_per_token as f64
    }

    /// The effective bandwidth's share of the probe's (1.0 = at the measured memory wall).
    fn share(&self) -> f64 {
        if self.probe_bytes_per_s > 0.0 {
            self.effective_bytes_per_s() / self.probe_bytes_per_s
        } else {
            0.0
        }
    }
}

/// The 1, 5 and 15 minute load averages (`/proc/loadavg`), `None` where the OS does not say:
/// a figure taken on a busy machine says so beside it.
fn load_average() -> Option<[f64; 3]> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut it = text.split_whitespace().map(|v| v.parse::<f64>().ok());
    Some([it.next()??, it.next()??, it.next()??])
}

pub fn run(a: BenchArgs) -> anyhow::Result<()> {
    let threads = a
        .threads
        .unwrap_or_else(hearth_kernels::pool::physical_cores)
        .max(1);
    if a.fill {
        return fill(&a, threads);
    }
    let (gguf, _entry) = load::open_gguf(Some(&a.model))?;
    let read_bytes_per_token = if a.bandwidth {
        hearth_plan::ModelFacts::from_header(gguf.header())
            .context("cannot count the weight bytes a generated token reads")?
            .read_bytes_per_token
    } else {
        0
    };
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
        // tg is one forward pass per token, as llama-bench measures it.
        speculation: Speculation::Off,
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
    // Before the probe, whose buffer would count in the peak otherwise.
    let peak = peak_rss_bytes();
    // Right after generation, with the model still loaded and the same threads: the two
    // figures meet the same machine and the same load.
    let probe = if a.bandwidth {
        Some(hearth_host::measure_bandwidth(threads)?)
    } else {
        None
    };
    let load = load_average();
    let usage = probe.map(|p| BandwidthUse {
        tg_tok_s: mean(&tg),
        read_bytes_per_token,
        probe_bytes_per_s: p.bytes_per_s,
    });
    if a.json {
        let mut v = json!({
            "model": a.model, "arch": arch, "threads": threads, "n_prompt": a.prompt, "n_gen": a.gen,
            "pp_tok_s": mean(&pp), "tg_tok_s": mean(&tg), "load_s": load_s, "peak_rss_bytes": peak,
            "simd": format!("{:?}", hearth_kernels::simd::level()),
        });
        if let (Some(p), Some(u)) = (probe, usage) {
            v["probe_bytes_per_s"] = json!(p.bytes_per_s);
            v["probe_buffer_bytes"] = json!(p.buffer_bytes);
            v["probe_passes"] = json!(p.passes);
            v["read_bytes_per_token"] = json!(u.read_bytes_per_token);
            v["tg_bytes_per_s"] = json!(u.effective_bytes_per_s());
            v["bandwidth_share"] = json!(u.share());
            v["load_average"] = json!(load);
        }
        println!("{v}");
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
        if let (Some(p), Some(u)) = (probe, usage) {
            println!(
                "memory    {:.1} GB/s read by {} threads ({} MiB buffer, median of {} passes)",
                p.bytes_per_s / 1e9,
                p.threads,
                p.buffer_bytes >> 20,
                p.passes
            );
            println!(
                "weights   {:.3} GB read per generated token",
                u.read_bytes_per_token as f64 / 1e9
            );
            println!(
                "tg{}     {:.1} tok/s × {:.3} GB = {:.1} GB/s, {:.0}% of the measured bandwidth",
                a.gen,
                u.tg_tok_s,
                u.read_bytes_per_token as f64 / 1e9,
                u.effective_bytes_per_s() / 1e9,
                100.0 * u.share()
            );
            if let Some([l1, l5, l15]) = load {
                println!("load      {l1:.2} {l5:.2} {l15:.2} (1, 5, 15 min)");
            }
        }
    }
    Ok(())
}

/// `--fill`: `users` sequences of `ctx - 1` prompt tokens and one generated token each, through
/// the engine `run` and `serve` build (default prompt chunk, batch and prefix cache).
fn fill(a: &BenchArgs, threads: usize) -> anyhow::Result<()> {
    if a.users == 0 || a.ctx < 2 {
        anyhow::bail!(
            "--fill needs --users of at least 1 and --ctx of at least 2, got --users {} --ctx {}",
            a.users,
            a.ctx
        );
    }
    let gen = GenOptions {
        ctx: a.ctx,
        threads: Some(threads),
        ..GenOptions::defaults()
    };
    let t0 = Instant::now();
    let (loaded, model) = load::load(Some(&a.model), &gen)?;
    let rss_loaded = rss_bytes("VmRSS:");
    let arch = model.config().arch.clone();
    let mut engine = load::engine(model, &gen, a.users);
    let n_prompt = engine.ctx() - 1;
    let mut ids = Vec::with_capacity(a.users);
    for user in 0..a.users {
        let prompt = distinct_prompt(&loaded.tokenizer, user, n_prompt);
        ids.push(engine.add(Request {
            prompt,
            sampler: SamplerConfig::greedy(),
            max_tokens: 1,
            stop_tokens: vec![],
            ..Default::default()
        })?);
    }
    let t_fill = Instant::now();
    while engine.has_work() {
        engine.step()?;
    }
    let fill_s = t_fill.elapsed().as_secs_f64();
    let peak = peak_rss_bytes();
    let kv = engine.kv_capacity_bytes();
    if a.json {
        println!(
            "{}",
            json!({
                "model": a.model, "arch": arch, "threads": threads, "ctx": engine.ctx(),
                "users": a.users, "prompt_tokens": n_prompt, "fill_s": fill_s,
                "total_s": t0.elapsed().as_secs_f64(), "rss_after_load_bytes": rss_loaded,
                "kv_capacity_bytes": kv, "peak_rss_bytes": peak,
            })
        );
    } else {
        println!("model     {} ({arch})", a.model);
        println!(
            "filled    {} × {n_prompt} prompt tokens in {fill_s:.1} s ({threads} threads)",
            a.users
        );
        println!("KV        {:.1} MiB reserved", kv as f64 / 1048576.0);
        println!("peak RSS  {:.1} MiB", peak as f64 / 1048576.0);
    }
    for id in ids {
        engine.remove(id)?;
    }
    Ok(())
}

/// `len` tokens of text that differ from the first token on for each `user`: a numbered line,
/// then words drawn by a small generator seeded with the user.
fn distinct_prompt(tok: &Tokenizer, user: usize, len: usize) -> Vec<u32> {
    const WORDS: [&str; 32] = [
        "the", "house", "garden", "kettle", "window", "evening", "quiet", "river", "bread", "lamp",
        "winter", "letter", "table", "story", "candle", "morning", "green", "stone", "friend",
        "music", "warm", "road", "apple", "cloud", "paper", "little", "bright", "chair", "field",
        "snow", "tea", "door",
    ];
    let mut text = format!("Conversation {user}:");
    let mut state =
        0x9E37_79B9_7F4A_7C15u64 ^ (user as u64 + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    let mut tokens = Vec::new();
    // Every word is at least one token; grow until the text is long enough.
    while tokens.len() < len {
        for _ in 0..len.max(16) {
            // xorshift64: any fixed, user-seeded sequence of words will do.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            text.push(' ');
            text.push_str(WORDS[(state % WORDS.len() as u64) as usize]);
        }
        tokens = tok.encode(&text, true, false);
    }
    tokens.truncate(len);
    tokens
}

/// A `/proc/self/status` field in bytes (`VmRSS:`, `VmHWM:`), 0 where the OS does not say.
fn rss_bytes(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
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
    rss_bytes("VmHWM:")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        bench: BenchArgs,
    }

    #[test]
    fn bandwidth_is_a_flag_beside_the_speed_tests_not_the_memory_fill() {
        let a = Cli::try_parse_from(["bench", "m.gguf", "--bandwidth", "-t", "2"]).unwrap();
        assert!(a.bench.bandwidth && !a.bench.fill);
        assert_eq!(a.bench.threads, Some(2));
        assert!(
            !Cli::try_parse_from(["bench", "m.gguf"])
                .unwrap()
                .bench
                .bandwidth
        );
        assert!(Cli::try_parse_from(["bench", "m.gguf", "--bandwidth", "--fill"]).is_err());
    }

    #[test]
    fn effective_bandwidth_is_tokens_times_bytes_against_the_probe() {
        // The synthetic 7B's figures: 4.37 GB a token at 10 tok/s against a 60 GB/s probe.
        let u = BandwidthUse {
            tg_tok_s: 10.0,
            read_bytes_per_token: 4_370_000_000,
            probe_bytes_per_s: 60e9,
        };
        assert_eq!(u.effective_bytes_per_s(), 43.7e9);
        assert!((u.share() - 43.7 / 60.0).abs() < 1e-12);
        // No probe figure: no share rather than infinity.
        let none = BandwidthUse {
            probe_bytes_per_s: 0.0,
            ..u
        };
        assert_eq!(none.share(), 0.0);
    }
}
