//! Hearth against llama.cpp on the real starter models (engine-core issue, #2).
//!
//! Fixtures in `tests/data/reference/` were produced by `scripts/gen-reference-fixtures.py`
//! with llama-cpp-python (llama.cpp 0c1e570). The models come through `hearth pull`'s own code
//! (`hearth_fetch::test_model`): a test that cannot get its model fails and says why.
//!
//! # How close is close
//! Both engines quantize activations to 8 bits per block before each matmul. In these small
//! models a block often holds one huge activation, so a change in the last bit of any input can
//! move other elements of the block by a whole quantization step; the logits then jump by tenths.
//! Measured: Hearth's AVX2 and portable paths (identical up to f32 summation order) differ by up
//! to 0.23 in SmolLM2's first-step logits, and llama.cpp itself, run on the same Gemma prompt
//! token by token instead of in one batch, moves by 0.35 and reorders its top-5. So these tests
//! hold Hearth to llama.cpp within that noise ([`LOGIT_TOL`], [`TIE_MARGIN`]), and
//! `tests/exact.rs` checks the network itself to 0.02 against a float64 reference with the
//! quantization noise taken out.

use std::path::PathBuf;

use hearth_kernels::ThreadPool;
use hearth_model::chat::{ChatMessage, ChatTemplate};
use hearth_model::tokenizer::Tokenizer;
use hearth_model::{BatchItem, KvCache, Model, Workspace};
use serde_json::Value;

fn model_path(name: &str) -> PathBuf {
    match hearth_fetch::test_model(name) {
        Ok(p) => p,
        Err(e) => panic!("cannot get the test model {name}: {e}"),
    }
}

fn fixture(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/reference")
        .join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("fixture is JSON")
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .expect("array of ids")
        .iter()
        .map(|x| x.as_u64().expect("id") as u32)
        .collect()
}

/// Greedy decoding of `n` tokens after `prompt`; returns the tokens and the first step's logits.
fn greedy(model: &Model, pool: &ThreadPool, prompt: &[u32], n: usize) -> (Vec<u32>, Vec<f32>) {
    let ctx = prompt.len() + n + 1;
    let mut kv = KvCache::new(model.config(), ctx, 1, prompt.len());
    let mut seq = kv.new_seq();
    let mut ws = Workspace::new();
    kv.reserve(&mut seq, prompt.len()).expect("reserve");
    let batch: Vec<BatchItem> = prompt
        .iter()
        .enumerate()
        .map(|(pos, &token)| BatchItem {
            token,
            pos,
            seq: 0,
            logits: pos + 1 == prompt.len(),
        })
        .collect();
    let first = model
        .forward(&batch, &[&seq], &mut kv, &mut ws, pool)
        .expect("forward")
        .to_vec();
    seq.set_len(prompt.len());
    let mut out = vec![hearth_model::sampler::argmax(&first)];
    while out.len() < n {
        let pos = seq.len();
        kv.reserve(&mut seq, pos + 1).expect("reserve");
        let item = [BatchItem {
            token: *out.last().expect("one token"),
            pos,
            seq: 0,
            logits: true,
        }];
        let logits = model
            .forward(&item, &[&seq], &mut kv, &mut ws, pool)
            .expect("forward");
        seq.set_len(pos + 1);
        out.push(hearth_model::sampler::argmax(logits));
    }
    (out, first)
}

fn check_tokenizer(name: &str) {
    let fx = fixture(name);
    let path = model_path(name);
    let gguf = hearth_gguf::Gguf::open(&path).expect("open");
    let tok = Tokenizer::from_gguf(gguf.metadata()).expect("tokenizer");
    let mut failures = Vec::new();
    for case in fx["tokenize"].as_array().expect("tokenize cases") {
        let text = case["text"].as_str().expect("text");
        let add = case["add_special"].as_bool().expect("add_special");
        let special = case["parse_special"].as_bool().expect("parse_special");
        let want = ids(&case["ids"]);
        let got = tok.encode(text, add, special);
        if got != want {
            failures.push(format!("{:?} (add_special={add}, parse_special={special}):\n  llama.cpp {want:?}\n  hearth    {got:?}", case["name"]));
        }
    }
    assert!(
        failures.is_empty(),
        "{name}: {} tokenization mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Largest first-step difference from llama.cpp's logits allowed for its top-5 tokens.
const LOGIT_TOL: f32 = 1.5;
/// A greedy divergence is accepted only where llama.cpp's top-2 margin is below this.
const TIE_MARGIN: f64 = 0.5;
/// Share of prompts whose 32 greedy tokens must all equal llama.cpp's. Measured on SmolLM2:
/// 6 of 20 while RoPE took its sines and cosines from glibc, as llama.cpp does; 4 of 20 since
/// they are Hearth's own, correctly rounded and the same on every platform (glibc's `sinf` and
/// `cosf` are off by one ulp on about 2.6% of RoPE's angles), every divergence at a near-tie.
const MIN_IDENTICAL: f64 = 0.2;

/// Compares one greedy run with llama.cpp's; returns whether all tokens matched, and panics if
/// a divergence happens anywhere but at a near-tie.
fn compare_run(label: &str, case: &Value, got: &[u32], first_logits: &[f32]) -> bool {
    let want = ids(&case["generated_ids"]);
    let top2 = case["top2"].as_array().expect("top2");
    if let Some(top5) = case.get("top5_first").and_then(|v| v.as_array()) {
        let mut ours: Vec<(u32, f32)> = first_logits
            .iter()
            .enumerate()
            .map(|(i, &l)| (i as u32, l))
            .collect();
        ours.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let mut worst = 0f32;
        for entry in top5 {
            let id = entry[0].as_u64().expect("id") as u32;
            let logit = entry[1].as_f64().expect("logit") as f32;
            let ours_logit = first_logits[id as usize];
            worst = worst.max((ours_logit - logit).abs());
            assert!(
                (ours_logit - logit).abs() <= LOGIT_TOL,
                "{label}: first-step logit of token {id} is {ours_logit}, llama.cpp has {logit}"
            );
        }
        // The most likely token agrees unless llama.cpp itself calls it a near-tie.
        let ref_margin = top5[0][1].as_f64().expect("logit") - top5[1][1].as_f64().expect("logit");
        let ref_top = top5[0][0].as_u64().expect("id") as u32;
        assert!(
            ours[0].0 == ref_top || ref_margin < TIE_MARGIN,
            "{label}: first-step top token is {:?}, llama.cpp's is {ref_top} with margin {ref_margin:.3}",
            ours[0]
        );
        eprintln!("{label}: first-step top-5 logits within {worst:.3} of llama.cpp");
    }
    match got.iter().zip(&want).position(|(a, b)| a != b) {
        None => true,
        Some(step) => {
            let pair = &top2[step];
            let margin = pair[0][1].as_f64().expect("logit") - pair[1][1].as_f64().expect("logit");
            eprintln!("{label}: diverges at step {step} (ours {}, llama.cpp {}); llama.cpp's top-2 margin there is {margin:.4}", got[step], want[step]);
            assert!(
                margin < TIE_MARGIN,
                "{label}: divergence at step {step} is not at a near-tie (margin {margin:.4})"
            );
            false
        }
    }
}

fn check_generation(name: &str) {
    let fx = fixture(name);
    let model = Model::open(model_path(name)).expect("model");
    let pool = ThreadPool::new(2);
    let prompts = fx["prompts"].as_array().expect("prompts");
    let mut identical = 0;
    for case in prompts {
        let label = format!("{name}/{}", case["name"].as_str().unwrap_or("?"));
        let prompt = ids(&case["prompt_ids"]);
        let want = ids(&case["generated_ids"]);
        let (got, first) = greedy(&model, &pool, &prompt, want.len());
        if compare_run(&label, case, &got, &first) {
            identical += 1;
        }
    }
    let share = identical as f64 / prompts.len() as f64;
    eprintln!(
        "{name}: {identical}/{} prompts identical for all tokens",
        prompts.len()
    );
    assert!(
        share >= MIN_IDENTICAL,
        "{name}: only {identical} of {} prompts match llama.cpp's greedy continuation",
        prompts.len()
    );
}

#[test]
fn smollm2_tokenizer_matches_llama_cpp() {
    check_tokenizer("smollm2-135m");
}

#[test]
fn gemma3_tokenizer_matches_llama_cpp() {
    check_tokenizer("gemma3-270m");
}

#[test]
fn smollm2_greedy_matches_llama_cpp() {
    check_generation("smollm2-135m");
}

#[test]
fn gemma3_greedy_matches_llama_cpp() {
    check_generation("gemma3-270m");
}

#[test]
fn smollm2_chat_template_matches_llama_cpp() {
    let name = "smollm2-135m";
    let fx = fixture(name);
    let model = Model::open(model_path(name)).expect("model");
    let md = model.gguf().metadata();
    let tok = Tokenizer::from_gguf(md).expect("tokenizer");
    let tmpl = ChatTemplate::from_gguf(md, &tok)
        .expect("template")
        .expect("smollm2 has a template");
    let pool = ThreadPool::new(2);
    for case in fx["chat"].as_array().expect("chat cases") {
        let label = format!("{name}/chat/{}", case["name"].as_str().unwrap_or("?"));
        let messages: Vec<ChatMessage> =
            serde_json::from_value(case["messages"].clone()).expect("messages");
        let rendered = tmpl
            .render(
                &messages,
                case["add_generation_prompt"].as_bool().unwrap_or(true),
                None,
            )
            .expect("render");
        assert_eq!(
            rendered.text(),
            case["rendered"].as_str().expect("rendered"),
            "{label}: rendered text differs"
        );
        let prompt = tok.encode_rendered(&rendered, case["add_bos"].as_bool().unwrap_or(false));
        assert_eq!(
            prompt,
            ids(&case["prompt_ids"]),
            "{label}: prompt tokens differ"
        );
        let want = ids(&case["generated_ids"]);
        let (got, first) = greedy(&model, &pool, &prompt, want.len());
        compare_run(&label, case, &got, &first);
    }
}
