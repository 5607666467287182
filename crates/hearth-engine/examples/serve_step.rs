//! The serving step on a real model, outside the server: N sequences decoding together, the
//! time of each step and the throughput against one sequence. For profiling the batched step
//! (`perf record` on this binary) without HTTP, tokio or a load generator in the picture.
//!
//! ```text
//! cargo run --release -p hearth-engine --example serve_step -- MODEL.gguf [THREADS] [N,N,...] [STEPS] [greedy|sampled]
//! ```
//!
//! Prompts are 40 arbitrary fixed token ids per sequence (different for each), like a short
//! chat; speed does not depend on which ids they are. `sampled` uses the default sampler
//! (temperature 0.8, top-k 40, top-p 0.95, as a chat client would) instead of greedy. Times
//! are wall-clock medians over the decode steps only (every sequence decoding), so run it on a
//! quiet machine or read it beside the load average it prints; the process's CPU time per
//! step (all threads) is printed too, which other work on the machine does not inflate.

use std::time::Instant;

use hearth_engine::{Engine, EngineOptions, Request, Speculation};
use hearth_model::{Model, SamplerConfig};

const PROMPT: usize = 40;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(path) = args.get(1) else {
        eprintln!("usage: serve_step MODEL.gguf [THREADS] [N,N,...] [STEPS]");
        std::process::exit(2);
    };
    let threads: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(2);
    let levels: Vec<usize> = args
        .get(3)
        .map(|a| a.split(',').filter_map(|x| x.parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 4, 8]);
    let steps: usize = args.get(4).and_then(|a| a.parse().ok()).unwrap_or(100);
    let sampler = match args.get(5).map(String::as_str) {
        None | Some("greedy") => SamplerConfig::greedy(),
        Some("sampled") => SamplerConfig::default(),
        Some(other) => {
            eprintln!("sampler must be greedy or sampled, not {other:?}");
            std::process::exit(2);
        }
    };

    let model = Model::open(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let n_vocab = model.config().n_vocab as u32;
    let max_seqs = levels.iter().copied().max().unwrap_or(1);
    let mut engine = Engine::new(
        model,
        EngineOptions {
            ctx: 2048,
            threads,
            max_seqs,
            // Speculation off: arbitrary ids make prompt lookup's drafts meaningless, and the
            // step under study is the plain batched decode.
            speculation: Speculation::Off,
            prefix_cache: false,
            ..EngineOptions::default()
        },
    );
    let mut base = None;
    for &n in &levels {
        let ids: Vec<_> = (0..n as u32)
            .map(|s| {
                let prompt = (0..PROMPT as u32)
                    .map(|i| (i * 7919 + s * 104_729 + 13) % n_vocab)
                    .collect();
                engine
                    .add(Request {
                        prompt,
                        sampler: sampler.clone(),
                        max_tokens: steps + 1,
                        ..Default::default()
                    })
                    .expect("add")
            })
            .collect();
        // Prefill (one step per sequence's prompt, all together) is not timed.
        engine.step().expect("prefill");
        let mut times = Vec::with_capacity(steps);
        let cpu0 = cpu_seconds();
        for _ in 0..steps {
            let t = Instant::now();
            engine.step().expect("step");
            times.push(t.elapsed().as_secs_f64());
        }
        let cpu_ms = (cpu_seconds() - cpu0) * 1e3 / steps as f64;
        for id in ids {
            engine.remove(id).expect("remove");
        }
        times.sort_by(f64::total_cmp);
        let med = times[times.len() / 2];
        let tok_s = n as f64 / med;
        let ratio = *base.get_or_insert(tok_s / n as f64 * 1.0);
        let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        println!(
            "N={n}: {:.2} ms per step ({cpu_ms:.2} ms CPU), {tok_s:.1} tok/s, {:.2}x the first level's per-sequence rate; load {}",
            med * 1e3,
            tok_s / ratio,
            load.split_whitespace().next().unwrap_or("?")
        );
    }
}

/// User + system CPU seconds of this process so far, every thread (Linux; 0 elsewhere).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces): utime and stime are the 12th and
    // 13th, in clock ticks of 1/100 s on Linux.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
    (tick(11) + tick(12)) / 100.0
}
