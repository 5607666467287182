//! What verifying a draft costs: the time of one forward pass over k + 1 tokens of one sequence
//! (the last real token and k drafted ones, all wanting logits, as speculative decoding feeds
//! them) against one pass over a single token, for k = 1..8, after a context of `--ctx` tokens.
//! Driven by `scripts/bench-spec --verify-cost`; a benchmark, not a test.
//!
//!     cargo run --release -p hearth-model --example verify_cost -- MODEL.gguf [--threads 2]
//!         [--ctx 256] [--reps 5]
//!
//! Each figure is the median over `--reps` rounds, each round one pass per k (after a warm-up
//! round); the ratio is taken within a round, so load that comes and goes hits both sides. The
//! passes write the same positions again and again (the sequence is cut back after each), as a
//! verification that rejects its draft does.

use std::time::Instant;

use hearth_kernels::ThreadPool;
use hearth_model::{BatchItem, KvCache, Model, Workspace};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut path = None;
    let (mut threads, mut ctx, mut reps) = (2usize, 256usize, 5usize);
    while let Some(a) = args.next() {
        let mut num = |name: &str| -> Result<usize, Box<dyn std::error::Error>> {
            let v = args.next().ok_or(format!("{name} needs a number"))?;
            Ok(v.parse()
                .map_err(|_| format!("{name}: {v:?} is not a number"))?)
        };
        match a.as_str() {
            "--threads" => threads = num("--threads")?,
            "--ctx" => ctx = num("--ctx")?,
            "--reps" => reps = num("--reps")?.max(1),
            _ if path.is_none() => path = Some(a),
            _ => return Err(format!("unexpected argument {a:?}").into()),
        }
    }
    let path = path.ok_or("usage: verify_cost MODEL.gguf [--threads N] [--ctx N] [--reps N]")?;
    let model = Model::open(&path)?;
    let cfg = model.config();
    let n_vocab = cfg.n_vocab as u32;
    let max_k = 8;
    let mut kv = KvCache::new(cfg, ctx + max_k + 1, 1, 256.max(max_k + 1));
    let mut seq = kv.new_seq();
    let mut ws = Workspace::new();
    let pool = ThreadPool::new(threads.max(1));
    let token = |i: usize| (i as u32 * 7919 + 13) % n_vocab;

    // The context, in chunks as a prefill would feed it.
    kv.reserve(&mut seq, ctx + max_k + 1)?;
    for start in (0..ctx).step_by(256) {
        let end = (start + 256).min(ctx);
        let batch: Vec<BatchItem> = (start..end)
            .map(|pos| BatchItem {
                token: token(pos),
                pos,
                seq: 0,
                logits: pos + 1 == end,
            })
            .collect();
        model.forward(&batch, &[&seq], &mut kv, &mut ws, &pool)?;
        seq.set_len(end);
    }

    // Rounds over k = 0..8, so every k sees the same moments of a shared machine's load; the
    // ratio is taken within each round, then the median over rounds.
    let batches: Vec<Vec<BatchItem>> = (0..=max_k)
        .map(|k| {
            (ctx..=ctx + k)
                .map(|pos| BatchItem {
                    token: token(pos),
                    pos,
                    seq: 0,
                    logits: true,
                })
                .collect()
        })
        .collect();
    let mut times = vec![Vec::new(); max_k + 1];
    let mut ratios = vec![Vec::new(); max_k + 1];
    for round in 0..=reps {
        let mut this = Vec::new();
        for batch in &batches {
            let t = Instant::now();
            model.forward(batch, &[&seq], &mut kv, &mut ws, &pool)?;
            this.push(t.elapsed().as_secs_f64());
            // The sequence stays at `ctx`: every pass verifies the same positions.
            seq.set_len(ctx);
        }
        if round == 0 {
            continue; // warm-up
        }
        for (k, &t) in this.iter().enumerate() {
            times[k].push(t);
            ratios[k].push(t / this[0]);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!("model {path}, {threads} threads, context {ctx}, median of {reps} rounds");
    println!(
        "{:>2} {:>7} {:>10} {:>10}",
        "k", "tokens", "ms/pass", "vs 1 tok"
    );
    for k in 0..=max_k {
        println!(
            "{k:>2} {:>7} {:>10.1} {:>9.2}x",
            k + 1,
            median(&mut times[k]) * 1e3,
            median(&mut ratios[k])
        );
    }
    Ok(())
}
