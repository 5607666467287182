//! A step samples its sequences side by side on the thread pool. Each sequence's tokens, the
//! log-probabilities it reports and the order of a step's events must be what sampling the
//! sequences one after another gives: a sequence sampled in a crowd of others (seeded, top-k,
//! penalties, logprobs, greedy, prompt lookup drafting) produces the same as when it runs alone
//! on one thread.

use hearth_engine::{Engine, EngineOptions, Event, Logprob, Request, SeqId, Speculation};
use hearth_gguf::Gguf;
use hearth_model::testing::TinySpec;
use hearth_model::{Model, SamplerConfig};

const GEN: usize = 40;

fn engine(bytes: &[u8], threads: usize, max_seqs: usize) -> Engine {
    let model = Model::from_gguf(Gguf::from_bytes(bytes.to_vec()).expect("gguf")).expect("model");
    Engine::new(
        model,
        EngineOptions {
            ctx: 256,
            threads,
            max_seqs,
            prefill_chunk: 32,
            max_batch_tokens: 256,
            prefix_cache: false,
            speculation: Speculation::PromptLookup,
            ..EngineOptions::default()
        },
    )
}

/// Prompts with a recurring phrase, so prompt lookup drafts for some of the sequences.
fn prompt(seed: u32, len: usize, n_vocab: u32) -> Vec<u32> {
    (0..len as u32)
        .map(|i| {
            if i % 9 < 5 {
                (i % 9 * 11 + seed * 3 + 1) % n_vocab
            } else {
                (i * 29 + seed * 13 + 5) % n_vocab
            }
        })
        .collect()
}

fn sampler(k: usize) -> SamplerConfig {
    match k % 3 {
        0 => SamplerConfig::greedy(),
        1 => SamplerConfig {
            seed: 100 + k as u64,
            ..SamplerConfig::default()
        },
        _ => SamplerConfig {
            temperature: 1.0,
            top_k: 0,
            top_p: 0.9,
            min_p: 0.0,
            repeat_penalty: 1.1,
            seed: 7 * k as u64,
            ..SamplerConfig::default()
        },
    }
}

fn request(k: usize, n_vocab: u32) -> Request {
    Request {
        prompt: prompt(k as u32, 20 + 7 * k, n_vocab),
        sampler: sampler(k),
        max_tokens: GEN,
        // Every other sequence reports log-probabilities (and so decodes without drafts).
        logprobs: (k % 2 == 1).then_some(3),
        ..Default::default()
    }
}

/// Each sequence's (token, logprob) stream; asserts that every step lists its events in the
/// order of the sequences' ids (the order they were added, which is the batch order).
fn run(e: &mut Engine, ids: &[SeqId]) -> Vec<Vec<(u32, Option<Logprob>)>> {
    let mut out = vec![Vec::new(); ids.len()];
    while e.has_work() {
        let events = e.step().expect("step");
        let order: Vec<SeqId> = events
            .iter()
            .filter_map(|ev| match *ev {
                Event::Token { seq, .. } => Some(seq),
                Event::Finished { .. } => None,
            })
            .collect();
        assert!(
            order.windows(2).all(|w| w[0] <= w[1]),
            "a step's events are out of batch order: {order:?}"
        );
        for ev in events {
            if let Event::Token { seq, token } = ev {
                let k = ids.iter().position(|&id| id == seq).expect("known seq");
                let lp = e.sequence(seq).expect("seq").last_logprob().cloned();
                out[k].push((token, lp));
            }
        }
    }
    out
}

#[test]
fn sequences_sampled_side_by_side_match_each_alone() {
    for arch in ["llama", "gemma3"] {
        let mut spec = TinySpec::new(arch);
        spec.n_vocab = 64;
        let bytes = spec.build();
        let n = 7;
        let alone: Vec<_> = (0..n)
            .map(|k| {
                let mut e = engine(&bytes, 1, 1);
                let id = e.add(request(k, 64)).expect("add");
                run(&mut e, &[id]).remove(0)
            })
            .collect();
        for threads in [3] {
            let mut e = engine(&bytes, threads, n);
            let ids: Vec<SeqId> = (0..n)
                .map(|k| e.add(request(k, 64)).expect("add"))
                .collect();
            let together = run(&mut e, &ids);
            for (k, (got, want)) in together.iter().zip(&alone).enumerate() {
                assert_eq!(got.len(), GEN, "{arch}: sequence {k} stopped early");
                assert_eq!(
                    got, want,
                    "{arch}, {threads} threads: sequence {k} sampled in a batch differs from alone"
                );
            }
        }
    }
}
