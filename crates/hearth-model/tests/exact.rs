//! The network itself against an independent float64 implementation (engine-core issue, #2).
//!
//! `scripts/gen-exact-fixtures.py` runs each starter model in numpy, float64 throughout, from the
//! weights as the `gguf` package dequantizes them. Hearth's reference mode ([`Model::set_exact`])
//! takes out the activation quantization (whose rounding makes these models' logits jump by
//! tenths, see `tests/reference.rs`), so what remains is the architecture — norms, RoPE, the
//! sliding window, activations, attention — plus the f16 KV cache, and the two must agree
//! closely. Gemma's long case crosses the 512-token window.

use std::path::PathBuf;

use hearth_kernels::ThreadPool;
use hearth_model::{BatchItem, KvCache, Model, Workspace};
use serde_json::Value;

/// Largest difference allowed between Hearth's reference mode and float64 (the f16 KV cache and
/// f16 queries in `q·k` account for it).
const TOL: f32 = 0.03;

fn check(name: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/exact")
        .join(format!("{name}.json"));
    let fx: Value = serde_json::from_str(
        &std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .expect("fixture is JSON");
    let model_path = hearth_fetch::test_model(name)
        .unwrap_or_else(|e| panic!("cannot get the test model {name}: {e}"));
    let mut model = Model::open(model_path).expect("model");
    model.set_exact(true);
    let pool = ThreadPool::new(hearth_kernels::pool::physical_cores());
    for case in fx["cases"].as_array().expect("cases") {
        let label = format!("{name}/{}", case["name"].as_str().unwrap_or("?"));
        let prompt: Vec<u32> = case["prompt_ids"]
            .as_array()
            .expect("ids")
            .iter()
            .map(|v| v.as_u64().expect("id") as u32)
            .collect();
        let mut kv = KvCache::new(model.config(), prompt.len(), 1, 128);
        let mut seq = kv.new_seq();
        let mut ws = Workspace::new();
        // Chunks of 128, so the sliding-window cache releases blocks as it goes.
        let mut logits = Vec::new();
        for start in (0..prompt.len()).step_by(128) {
            let end = (start + 128).min(prompt.len());
            kv.reserve(&mut seq, end).expect("reserve");
            let batch: Vec<BatchItem> = (start..end)
                .map(|pos| BatchItem {
                    token: prompt[pos],
                    pos,
                    seq: 0,
                    logits: pos + 1 == prompt.len(),
                })
                .collect();
            logits = model
                .forward(&batch, &[&seq], &mut kv, &mut ws, &pool)
                .expect("forward")
                .to_vec();
            seq.set_len(end);
        }
        let mut worst = 0f32;
        let mut pairs: Vec<(u32, f32)> = case["top"]
            .as_array()
            .expect("top")
            .iter()
            .map(|e| {
                (
                    e[0].as_u64().expect("id") as u32,
                    e[1].as_f64().expect("logit") as f32,
                )
            })
            .collect();
        let sample = &case["logits_sample"];
        for (id, v) in sample["ids"]
            .as_array()
            .expect("ids")
            .iter()
            .zip(sample["values"].as_array().expect("values"))
        {
            pairs.push((
                id.as_u64().expect("id") as u32,
                v.as_f64().expect("logit") as f32,
            ));
        }
        for (id, want) in pairs {
            let got = logits[id as usize];
            worst = worst.max((got - want).abs());
            assert!(
                (got - want).abs() <= TOL,
                "{label}: logit of token {id} is {got}, float64 reference has {want}"
            );
        }
        eprintln!(
            "{label} ({} tokens): largest difference from float64 {worst:.4}",
            prompt.len()
        );
    }
}

#[test]
fn smollm2_matches_float64_reference() {
    check("smollm2-135m");
}

#[test]
fn gemma3_matches_float64_reference() {
    check("gemma3-270m");
}
