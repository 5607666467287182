//! Chat turns reuse the KV cache: continuing a sequence processes only the new tokens and gives
//! the same logits, bit for bit, as recomputing the whole history (engine-core issue, #2).

use hearth_engine::{Engine, EngineOptions, Event, Request};
use hearth_gguf::Gguf;
use hearth_model::testing::TinySpec;
use hearth_model::{Model, SamplerConfig};

fn engine(arch: &'static str) -> Engine {
    let bytes = TinySpec::new(arch).build();
    let model = Model::from_gguf(Gguf::from_bytes(bytes).expect("gguf")).expect("model");
    Engine::new(
        model,
        EngineOptions {
            ctx: 128,
            threads: 2,
            max_seqs: 2,
            prefill_chunk: 16,
            max_batch_tokens: 64,
            keep_logits: true,
            ..EngineOptions::default()
        },
    )
}

fn run_to_end(e: &mut Engine, id: u64) -> Vec<Vec<u32>> {
    let mut logits = Vec::new();
    while e.sequence(id).is_some_and(|s| s.is_active()) {
        for ev in e.step().expect("step") {
            if let Event::Token { seq, .. } = ev {
                if seq == id {
                    logits.push(
                        e.sequence(id)
                            .expect("seq")
                            .last_logits()
                            .iter()
                            .map(|x| x.to_bits())
                            .collect(),
                    );
                }
            }
        }
    }
    logits
}

fn check(arch: &'static str) {
    let greedy = SamplerConfig::greedy();
    let first: Vec<u32> = (0..10).map(|i| (i * 17 + 5) % 300).collect();
    let mut e = engine(arch);
    let id = e
        .add(Request {
            prompt: first.clone(),
            sampler: greedy.clone(),
            max_tokens: 3,
            stop_tokens: vec![],
            ..Default::default()
        })
        .expect("add");
    run_to_end(&mut e, id);
    let mut history = e.sequence(id).expect("seq").tokens().to_vec();
    history.extend([7, 8, 9, 10, 11]);
    let reused = e
        .continue_with(id, history.clone(), greedy.clone(), 4)
        .expect("continue");
    // The prompt and the first two generated tokens were in the cache; the third was sampled
    // but never fed back.
    assert_eq!(
        reused,
        first.len() + 2,
        "{arch}: tokens reused from the cache"
    );
    let continued = run_to_end(&mut e, id);

    let mut fresh = engine(arch);
    let id2 = fresh
        .add(Request {
            prompt: history,
            sampler: greedy,
            max_tokens: 4,
            stop_tokens: vec![],
            ..Default::default()
        })
        .expect("add");
    let recomputed = run_to_end(&mut fresh, id2);
    assert_eq!(continued.len(), 4);
    assert_eq!(
        continued, recomputed,
        "{arch}: continuing from the cache changed the logits"
    );
}

#[test]
fn llama_continuation_reuses_cache_exactly() {
    check("llama");
}

#[test]
fn gemma3_continuation_reuses_cache_exactly() {
    check("gemma3");
}
