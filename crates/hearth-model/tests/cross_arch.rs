//! The same bits on every architecture (ARM issue, #14): a short greedy run of a real model,
//! whose tokens and every step's logits (a hash of all their bits) must equal a fixture made on
//! x86-64 by `scripts/gen-cross-arch-fixtures.py`. `scripts/test` runs it natively and under
//! qemu-aarch64, so an ARM build that rounds anything differently (a kernel, or the forward
//! pass's sines, powers and `tanh`, which are Hearth's own for this reason) fails here.
//!
//! A model gives one of two sets of bits, by the layout of its weights: packed (groups of eight
//! rows, wherever the SIMD level has packed kernels) or row-major (the scalar level, or
//! `HEARTH_PACK=off`); their dot products round differently by design (see
//! `hearth_kernels::packed`). The fixture holds both, and every level of both architectures
//! must give the one of its layout.
//!
//! With `HEARTH_CROSS_ARCH_OUT=DIR` the test writes what it got to `DIR/NAME.json` instead of
//! comparing: that is how the fixture script collects its runs.

use std::path::PathBuf;

use hearth_kernels::ThreadPool;
use hearth_model::tokenizer::Tokenizer;
use hearth_model::{BatchItem, KvCache, Model, Workspace};
use serde_json::{json, Value};

/// Short, because under emulation every token costs seconds.
const PROMPT: &str = "The capital of France is";
const GENERATE: usize = 4;

/// FNV-1a (64 bits) over the little-endian bytes of every logit's bits.
fn hash(logits: &[f32]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in logits.iter().flat_map(|x| x.to_bits().to_le_bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// The prompt's ids, the greedy tokens and the hash of the logits behind each of them: the
/// prompt in one batch, then one token per step.
fn greedy(model: &Model, prompt: &[u32]) -> (Vec<u32>, Vec<String>) {
    let pool = ThreadPool::new(2);
    let mut kv = KvCache::new(model.config(), prompt.len() + GENERATE + 1, 1, prompt.len());
    let mut seq = kv.new_seq();
    let mut ws = Workspace::new();
    let (mut tokens, mut hashes) = (Vec::new(), Vec::new());
    let mut batch: Vec<BatchItem> = prompt
        .iter()
        .enumerate()
        .map(|(pos, &token)| BatchItem {
            token,
            pos,
            seq: 0,
            logits: pos + 1 == prompt.len(),
        })
        .collect();
    while tokens.len() < GENERATE {
        let pos = batch.last().expect("a token").pos;
        kv.reserve(&mut seq, pos + 1).expect("reserve");
        let logits = model
            .forward(&batch, &[&seq], &mut kv, &mut ws, &pool)
            .expect("forward");
        seq.set_len(pos + 1);
        hashes.push(hash(logits));
        let next = hearth_model::sampler::argmax(logits);
        tokens.push(next);
        batch = vec![BatchItem {
            token: next,
            pos: pos + 1,
            seq: 0,
            logits: true,
        }];
    }
    (tokens, hashes)
}

fn check(name: &str) {
    let path = hearth_fetch::test_model(name)
        .unwrap_or_else(|e| panic!("cannot get the test model {name}: {e}"));
    let model = Model::open(path).expect("model");
    let tok = Tokenizer::from_gguf(model.gguf().metadata()).expect("tokenizer");
    let prompt = tok.encode(PROMPT, true, false);
    let (tokens, hashes) = greedy(&model, &prompt);
    let layout = if model.packed() {
        "packed"
    } else {
        "row_major"
    };
    let level = format!("{:?}", hearth_kernels::simd::level());
    let got = json!({
        "prompt": PROMPT,
        "prompt_ids": prompt,
        "tokens": tokens,
        "logits_fnv1a": hashes,
    });
    if let Some(dir) = std::env::var_os("HEARTH_CROSS_ARCH_OUT") {
        let run = json!({
            "arch": std::env::consts::ARCH,
            "level": level,
            "layout": layout,
            "run": got,
        });
        let out = PathBuf::from(dir).join(format!("{name}.json"));
        std::fs::write(&out, run.to_string()).expect("write the run");
        return;
    }

    let fx_path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/cross-arch")
        .join(format!("{name}.json"));
    let text =
        std::fs::read_to_string(&fx_path).unwrap_or_else(|e| panic!("{}: {e}", fx_path.display()));
    let fx: Value = serde_json::from_str(&text).expect("fixture is JSON");
    let want = &fx[layout];
    let here = format!("{name} on {} at {level}, {layout}", std::env::consts::ARCH);
    assert_eq!(
        got["prompt_ids"], want["prompt_ids"],
        "{here}: the prompt tokenizes differently"
    );
    assert_eq!(
        got["tokens"], want["tokens"],
        "{here}: the greedy tokens differ from x86-64's"
    );
    for (step, (g, w)) in hashes
        .iter()
        .zip(want["logits_fnv1a"].as_array().expect("hashes"))
        .enumerate()
    {
        assert_eq!(
            Some(g.as_str()),
            w.as_str(),
            "{here}: step {step}'s logits differ from x86-64's in some bit"
        );
    }
    eprintln!("{here}: {GENERATE} tokens and their logits equal x86-64's bit for bit");
}

#[test]
fn smollm2_greedy_bits_equal_x86() {
    check("smollm2-135m");
}

#[test]
fn gemma3_greedy_bits_equal_x86() {
    check("gemma3-270m");
}
