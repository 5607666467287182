//! Batch invariance, bit for bit: a sequence's logits do not depend on what else is in the
//! batch, on how its prompt is chunked, or on the thread count (engine-core issue, #2).

use hearth_engine::{Engine, EngineOptions, Event, Request};
use hearth_gguf::Gguf;
use hearth_model::testing::TinySpec;
use hearth_model::{Model, SamplerConfig};

const PROMPT_LEN: usize = 40;
const GEN: usize = 6;

fn prompt(seed: u32, len: usize, n_vocab: u32) -> Vec<u32> {
    (0..len as u32)
        .map(|i| (i * 31 + seed * 7 + 3) % n_vocab)
        .collect()
}

/// Runs `main` (and optionally two companions) and returns the logits behind each generated
/// token of `main`.
fn run(bytes: &[u8], threads: usize, chunk: usize, companions: bool) -> Vec<Vec<u32>> {
    let model =
        Model::from_gguf(Gguf::from_bytes(bytes.to_vec()).expect("tiny gguf")).expect("tiny model");
    let n_vocab = model.config().n_vocab as u32;
    let opts = EngineOptions {
        ctx: 256,
        threads,
        max_seqs: 3,
        prefill_chunk: chunk,
        max_batch_tokens: 512,
        keep_logits: true,
        ..EngineOptions::default()
    };
    let mut engine = Engine::new(model, opts);
    let req = |p: Vec<u32>| Request {
        prompt: p,
        sampler: SamplerConfig::greedy(),
        max_tokens: GEN,
        stop_tokens: vec![],
        ..Default::default()
    };
    if companions {
        engine.add(req(prompt(5, 23, n_vocab))).expect("companion");
    }
    let main = engine
        .add(req(prompt(1, PROMPT_LEN, n_vocab)))
        .expect("main");
    if companions {
        engine.add(req(prompt(9, 3, n_vocab))).expect("companion");
    }
    let mut out = Vec::new();
    while engine.has_work() {
        for ev in engine.step().expect("step") {
            if let Event::Token { seq, .. } = ev {
                if seq == main {
                    let l = engine.sequence(main).expect("main").last_logits();
                    out.push(l.iter().map(|x| x.to_bits()).collect());
                }
            }
        }
    }
    assert_eq!(out.len(), GEN);
    out
}

fn check(arch: &'static str) {
    check_spec(arch, TinySpec::new(arch));
}

fn check_spec(arch: &'static str, spec: TinySpec) {
    let bytes = spec.build();
    let reference = run(&bytes, 1, 64, false);
    for (threads, chunk, companions) in [
        (1, 1, false),
        (1, 7, false),
        (2, 64, false),
        (2, 7, true),
        (1, 64, true),
        (2, 1, true),
    ] {
        let got = run(&bytes, threads, chunk, companions);
        for (step, (a, b)) in reference.iter().zip(&got).enumerate() {
            let diff = a.iter().zip(b).filter(|(x, y)| x != y).count();
            assert_eq!(
                diff, 0,
                "{arch}: threads={threads} chunk={chunk} companions={companions}: step {step} has {diff} logits that differ from the lone run"
            );
        }
    }
}

#[test]
fn llama_logits_are_batch_invariant() {
    check("llama");
}

#[test]
fn gemma3_logits_are_batch_invariant() {
    check("gemma3");
}

#[test]
fn qwen2_logits_are_batch_invariant() {
    check("qwen2");
}

// Mixtures of experts: which tokens share an expert's matmul changes with the batch, a token's
// result must not.

#[test]
fn qwen3moe_logits_are_batch_invariant() {
    check("qwen3moe");
}

#[test]
fn qwen2moe_logits_are_batch_invariant() {
    check("qwen2moe");
}

#[test]
fn mixtral_logits_are_batch_invariant() {
    let spec = TinySpec {
        experts: Some(hearth_model::testing::TinyExperts {
            n_expert: 4,
            n_used: 2,
            n_ff: 512,
        }),
        ..TinySpec::new("llama")
    };
    check_spec("mixtral", spec);
}
