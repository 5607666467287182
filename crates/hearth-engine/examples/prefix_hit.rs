//! A prefix-cache hit on a real model: time to first token with and without the shared system
//! prompt in the cache, and a bit-for-bit check of the logits against an engine without the
//! cache.
//!
//! ```text
//! cargo run --release -p hearth-engine --example prefix_hit -- MODEL.gguf [SYSTEM_TOKENS] [THREADS]
//! ```
//!
//! Tokens are arbitrary fixed ids: speed and exactness do not depend on which they are.

use std::time::Instant;

use hearth_engine::{Engine, EngineOptions, Event, Request, SeqId};
use hearth_model::{Model, SamplerConfig};

const GEN: usize = 4;

fn engine(path: &str, threads: usize, prefix_cache: bool) -> Engine {
    let model = Model::open(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    Engine::new(
        model,
        EngineOptions {
            ctx: 2048,
            threads,
            prefill_chunk: 512,
            max_batch_tokens: 512,
            keep_logits: true,
            prefix_cache,
            ..EngineOptions::default()
        },
    )
}

/// Runs `prompt`; returns the seconds to the first token, the logits (as bits) behind each
/// generated token, and the sequence id.
fn run(e: &mut Engine, prompt: Vec<u32>) -> (f64, Vec<Vec<u32>>, SeqId) {
    let t = Instant::now();
    let id = e
        .add(Request {
            prompt,
            sampler: SamplerConfig::greedy(),
            max_tokens: GEN,
            ..Default::default()
        })
        .expect("add");
    let mut first = None;
    let mut logits = Vec::new();
    while e.has_work() {
        for ev in e.step().expect("step") {
            if let Event::Token { seq, .. } = ev {
                first.get_or_insert_with(|| t.elapsed().as_secs_f64());
                let l = e.sequence(seq).expect("seq").last_logits();
                logits.push(l.iter().map(|x| x.to_bits()).collect());
            }
        }
    }
    (first.unwrap_or(0.0), logits, id)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(path) = args.get(1) else {
        eprintln!("usage: prefix_hit MODEL.gguf [SYSTEM_TOKENS] [THREADS]");
        std::process::exit(2);
    };
    let system_len: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(480);
    let threads: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(2);

    let mut cached = engine(path, threads, true);
    let n_vocab = cached.model().config().n_vocab as u32;
    let ids = |seed: u32, len: usize| -> Vec<u32> {
        (0..len as u32)
            .map(|i| (i * 7919 + seed * 104_729 + 13) % n_vocab)
            .collect()
    };
    let system = ids(1, system_len);
    let user_a: Vec<u32> = system.iter().copied().chain(ids(2, 20)).collect();
    let user_b: Vec<u32> = system.iter().copied().chain(ids(3, 20)).collect();

    let (cold, _, a) = run(&mut cached, user_a);
    cached.remove(a).expect("remove");
    let (warm, hit_logits, b) = run(&mut cached, user_b.clone());
    let reused = cached.sequence(b).expect("b").reused_tokens();

    let mut plain = engine(path, threads, false);
    let (_, ref_logits, _) = run(&mut plain, user_b.clone());
    let same = hit_logits == ref_logits;
    println!(
        "prompt {} tokens ({system_len} shared), {threads} threads",
        user_b.len()
    );
    println!("first token, cold      {:.3} s", cold);
    println!(
        "first token, cache hit {:.3} s ({reused} tokens reused)",
        warm
    );
    println!(
        "logits of {GEN} steps identical to no cache: {}",
        if same { "yes" } else { "NO" }
    );
    if !same {
        std::process::exit(1);
    }
}
