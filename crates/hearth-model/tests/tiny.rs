//! Architectures without a small real model here (Qwen2, Qwen3, Gemma 2, Phi-3, Mistral 3, the
//! mixtures of experts Qwen3-MoE, Mixtral and Qwen2-MoE), controlled Llama and Gemma 3 cases (a
//! 4-token sliding window), and each kind of RoPE scaling at positions beyond the trained context,
//! against llama.cpp on small random-weight GGUF files.
//!
//! `scripts/gen-tiny-models.py` wrote the files in `tests/data/tiny/` (generated data, committed)
//! and ran llama.cpp on them: for each prompt, the full logits at the last prompt position and at
//! every greedy step after it.

use std::path::PathBuf;

use hearth_kernels::ThreadPool;
use hearth_model::{BatchItem, KvCache, Model, Workspace};
use serde_json::Value;

/// Random weights keep activations small and well spread, so quantization noise stays far below
/// the real models' (measured: at most a few hundredths); this bounds it with margin.
const TOL: f32 = 0.1;

fn data(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/tiny")
        .join(file)
}

/// Which experts each layer routed tokens to, over every batch of a fixture's cases.
struct Routing {
    /// Per layer, how many tokens each expert got.
    per_expert: Vec<Vec<usize>>,
    /// The most distinct experts one multi-token batch used in one layer.
    widest_batch: usize,
    /// Experts each token is routed to, as the model read it from the file.
    n_used: usize,
}

fn check(arch: &str) -> Routing {
    let fx: Value = serde_json::from_str(
        &std::fs::read_to_string(data(&format!("{arch}.json"))).expect("fixture"),
    )
    .expect("JSON");
    let mut model = Model::open(data(fx["meta"]["model_file"].as_str().expect("model_file")))
        .expect("tiny model loads");
    // The context llama.cpp ran with: it picks Phi-3's long or short RoPE factors, and goes
    // beyond the trained context where the file declares scaling.
    let n_ctx = fx["meta"]["n_ctx"].as_u64().expect("n_ctx") as usize;
    model
        .set_context(n_ctx)
        .expect("context within what the model declares");
    let n_vocab = model.config().n_vocab;
    let pool = ThreadPool::new(2);
    let mut worst = 0f32;
    let experts = model.config().experts.clone();
    let n_layer = model.config().n_layer;
    let mut routing = Routing {
        per_expert: vec![vec![0; experts.as_ref().map_or(0, |x| x.n_expert)]; n_layer],
        widest_batch: 0,
        n_used: experts.as_ref().map_or(0, |x| x.n_used),
    };
    for case in fx["cases"].as_array().expect("cases") {
        let label = format!("{arch}/{}", case["name"].as_str().unwrap_or("?"));
        let ids = |v: &Value| -> Vec<u32> {
            v.as_array()
                .expect("ids")
                .iter()
                .map(|x| x.as_u64().expect("id") as u32)
                .collect()
        };
        let prompt = ids(&case["prompt_ids"]);
        let want_gen = ids(&case["generated_ids"]);
        let want_logits = case["logits"].as_array().expect("logits");
        let mut kv = KvCache::new(
            model.config(),
            prompt.len() + want_gen.len() + 1,
            1,
            prompt.len(),
        );
        let mut seq = kv.new_seq();
        let mut ws = Workspace::new();
        let mut tokens = prompt.clone();
        let mut generated = Vec::new();
        let mut start = 0;
        for (step, want) in want_logits.iter().enumerate() {
            kv.reserve(&mut seq, tokens.len()).expect("reserve");
            let batch: Vec<BatchItem> = (start..tokens.len())
                .map(|pos| BatchItem {
                    token: tokens[pos],
                    pos,
                    seq: 0,
                    logits: pos + 1 == tokens.len(),
                })
                .collect();
            let logits = model
                .forward(&batch, &[&seq], &mut kv, &mut ws, &pool)
                .expect("forward")
                .to_vec();
            if let Some(x) = &experts {
                for (il, counts) in routing.per_expert.iter_mut().enumerate() {
                    let routes = ws.expert_routes(il);
                    assert_eq!(
                        routes.len(),
                        batch.len() * x.n_used,
                        "{label}: layer {il} routes"
                    );
                    let mut used = std::collections::BTreeSet::new();
                    for &e in routes {
                        counts[e as usize] += 1;
                        used.insert(e);
                    }
                    if batch.len() > 1 {
                        routing.widest_batch = routing.widest_batch.max(used.len());
                    }
                }
            }
            seq.set_len(tokens.len());
            start = tokens.len();
            let want: Vec<f32> = want
                .as_array()
                .expect("row")
                .iter()
                .map(|v| v.as_f64().expect("logit") as f32)
                .collect();
            assert_eq!(want.len(), n_vocab);
            for (id, (g, w)) in logits.iter().zip(&want).enumerate() {
                worst = worst.max((g - w).abs());
                assert!(
                    (g - w).abs() <= TOL,
                    "{label}: step {step}, token {id}: {g} vs llama.cpp {w}"
                );
            }
            let next = hearth_model::sampler::argmax(&logits);
            generated.push(next);
            tokens.push(next);
        }
        assert_eq!(
            &generated[..want_gen.len().min(generated.len())],
            &want_gen[..want_gen.len().min(generated.len())],
            "{label}: greedy tokens differ"
        );
    }
    eprintln!("{arch}: largest logit difference from llama.cpp {worst:.4}");
    routing
}

/// A mixture of experts against llama.cpp, with every expert of every layer used by some token
/// and a prompt whose tokens, in one batch, went to more experts than one token uses.
fn check_moe(arch: &str) {
    let routing = check(arch);
    for (il, counts) in routing.per_expert.iter().enumerate() {
        assert!(!counts.is_empty(), "{arch}: no experts");
        assert!(
            counts.iter().all(|&n| n > 0),
            "{arch}: layer {il} left an expert unused: tokens per expert {counts:?}"
        );
    }
    assert!(routing.n_used > 0, "{arch}: no experts per token");
    assert!(
        routing.widest_batch > routing.n_used,
        "{arch}: no batch routed its tokens to different experts"
    );
    eprintln!("{arch}: tokens per expert {:?}", routing.per_expert);
}

#[test]
fn tiny_llama_matches_llama_cpp() {
    check("llama");
}

#[test]
fn tiny_qwen2_matches_llama_cpp() {
    check("qwen2");
}

#[test]
fn tiny_qwen3_matches_llama_cpp() {
    check("qwen3");
}

#[test]
fn tiny_gemma3_matches_llama_cpp() {
    check("gemma3");
}

#[test]
fn tiny_qwen3moe_matches_llama_cpp() {
    check_moe("qwen3moe");
}

#[test]
fn tiny_mixtral_matches_llama_cpp() {
    check_moe("mixtral");
}

#[test]
fn tiny_qwen2moe_matches_llama_cpp() {
    check_moe("qwen2moe");
}

#[test]
fn tiny_gemma2_matches_llama_cpp() {
    check("gemma2");
}

#[test]
fn tiny_phi3_long_rope_matches_llama_cpp() {
    check("phi3");
}

#[test]
fn tiny_phi3_short_rope_matches_llama_cpp() {
    check("phi3-short");
}

#[test]
fn tiny_mistral3_yarn_and_temperature_match_llama_cpp() {
    check("mistral3");
}

#[test]
fn tiny_llama_rope_freqs_match_llama_cpp() {
    check("llama-ropefreqs");
}

#[test]
fn tiny_llama_linear_scaling_beyond_trained_context_matches_llama_cpp() {
    check("llama-linear");
}

#[test]
fn tiny_qwen2_yarn_beyond_trained_context_matches_llama_cpp() {
    check("qwen2-yarn");
}

/// A model whose file declares no RoPE scaling refuses a context beyond its training, naming
/// the trained length; one that declares scaling takes a context up to where it reaches.
#[test]
fn context_beyond_training_needs_declared_scaling() {
    let mut plain = Model::open(data("tiny-llama.gguf")).expect("loads");
    assert_eq!(plain.config().max_ctx(), 256);
    plain.set_context(256).expect("the trained context");
    let err = plain
        .set_context(257)
        .expect_err("beyond the trained context")
        .to_string();
    assert!(
        err.contains("257")
            && err.contains("trained for (256 tokens)")
            && err.contains("no RoPE scaling"),
        "{err}"
    );
    let mut yarn = Model::open(data("tiny-qwen2-yarn.gguf")).expect("loads");
    assert_eq!(yarn.config().ctx_train, 64);
    assert_eq!(yarn.config().max_ctx(), 256);
    yarn.set_context(256)
        .expect("as far as YaRN's factor 4 reaches");
    let err = yarn
        .set_context(300)
        .expect_err("beyond the scaling")
        .to_string();
    assert!(err.contains("(64 tokens)") && err.contains("256"), "{err}");
}
