//! Models whose matrices are IQ4_NL, IQ4_XS, MXFP4, IQ2_XXS, IQ2_XS, IQ3_XXS or IQ3_S load and
//! run. Each tiny random-weight file
//! is compared with the same file whose matrices of that type were decoded to F32 (the scalar
//! reference decoding, itself checked bit for bit against the `gguf` package by the kernels'
//! fixtures): the only difference left is the activations' 8-bit encoding, so the logits agree
//! closely and greedy tokens agree wherever the margin is clear. (No llama.cpp fixtures here:
//! its Python bindings are not built in this workspace; `tests/tiny.rs` covers the other types
//! against llama.cpp.)

use hearth_gguf::write::GgufWriter;
use hearth_gguf::{GgmlType, Gguf};
use hearth_kernels::ThreadPool;
use hearth_model::testing::TinySpec;
use hearth_model::{BatchItem, Error, KvCache, Model, Workspace};

/// The largest logit difference allowed, as a share of the step's largest logit. Measured on
/// these files: at most 0.0033 (0.42 on logits up to 128: random weights make large logits, and
/// the activations' Q8 rounding adds up through six layers); a wrong kernel (a swapped nibble,
/// a scale off by its offset) moves logits by about their whole size.
const REL_TOL: f32 = 0.01;

/// The file with every `ty` tensor replaced by its F32 decoding.
fn decoded(bytes: &[u8], ty: GgmlType) -> Vec<u8> {
    let g = Gguf::from_bytes(bytes.to_vec()).expect("parse");
    let mut w = GgufWriter::new();
    for (k, v) in g.metadata().iter() {
        w.metadata(k, v.clone());
    }
    for t in g.tensors() {
        let data = g.tensor_data(t).to_vec();
        if t.ty == ty {
            let mut f = vec![0f32; t.n_elements() as usize];
            hearth_kernels::dequantize_row(ty, &data, &mut f).expect("decode");
            let raw = f.iter().flat_map(|v| v.to_le_bytes()).collect();
            w.tensor(&t.name, &t.dims, GgmlType::F32, raw);
        } else {
            w.tensor(&t.name, &t.dims, t.ty, data);
        }
    }
    w.to_bytes()
}

/// Logits after the prompt and after each of `tokens`' later tokens, fed one at a time.
fn logits(model: &Model, prompt: usize, tokens: &[u32], pool: &ThreadPool) -> Vec<Vec<f32>> {
    let mut kv = KvCache::new(model.config(), tokens.len() + 1, 1, prompt);
    let mut seq = kv.new_seq();
    let mut ws = Workspace::new();
    let mut out = Vec::new();
    let mut start = 0;
    for end in prompt..=tokens.len() {
        kv.reserve(&mut seq, end).expect("reserve");
        let batch: Vec<BatchItem> = (start..end)
            .map(|pos| BatchItem {
                token: tokens[pos],
                pos,
                seq: 0,
                logits: pos + 1 == end,
            })
            .collect();
        let l = model
            .forward(&batch, &[&seq], &mut kv, &mut ws, pool)
            .expect("forward")
            .to_vec();
        seq.set_len(end);
        start = end;
        out.push(l);
    }
    out
}

#[test]
fn models_of_the_new_types_match_their_f32_decoding() {
    let pool = ThreadPool::new(2);
    for arch in ["llama", "qwen3"] {
        for ty in [
            GgmlType::IQ4_NL,
            GgmlType::IQ4_XS,
            GgmlType::MXFP4,
            GgmlType::IQ2_XXS,
            GgmlType::IQ2_XS,
            GgmlType::IQ3_XXS,
            GgmlType::IQ3_S,
        ] {
            let spec = TinySpec {
                weight_types: vec![ty],
                seed: 7,
                ..TinySpec::new(arch)
            };
            let bytes = spec.build();
            let model = Model::from_gguf(Gguf::from_bytes(bytes.clone()).expect("parse"))
                .unwrap_or_else(|e| panic!("{arch} {ty}: the model does not load: {e}"));
            let reference = Model::from_gguf(Gguf::from_bytes(decoded(&bytes, ty)).unwrap())
                .expect("F32 model loads");

            // The reference's greedy continuation, then both models on the same tokens.
            let prompt = 9;
            let mut tokens: Vec<u32> = (0..prompt as u32).map(|i| (i * 37 + 5) % 300).collect();
            for _ in 0..6 {
                let l = logits(&reference, prompt, &tokens, &pool);
                tokens.push(hearth_model::sampler::argmax(l.last().unwrap()));
            }
            let want = logits(&reference, prompt, &tokens, &pool);
            let got = logits(&model, prompt, &tokens, &pool);
            let mut worst = 0f32;
            for (step, (g, w)) in got.iter().zip(&want).enumerate() {
                let tol = REL_TOL * w.iter().fold(0f32, |m, v| m.max(v.abs()));
                for (id, (a, b)) in g.iter().zip(w).enumerate() {
                    worst = worst.max((a - b).abs());
                    assert!(
                        (a - b).abs() <= tol,
                        "{arch} {ty}: step {step}, token {id}: {a} vs F32 decoding {b}"
                    );
                }
                let mut sorted = w.clone();
                sorted.sort_by(|a, b| b.total_cmp(a));
                if sorted[0] - sorted[1] > 2.0 * tol {
                    assert_eq!(
                        hearth_model::sampler::argmax(g),
                        hearth_model::sampler::argmax(w),
                        "{arch} {ty}: step {step}: greedy token differs"
                    );
                }
            }
            let spread = want[0].iter().fold(0f32, |m, v| m.max(v.abs()));
            eprintln!(
                "{arch} {ty}: largest logit difference {worst:.5} (logits up to {spread:.2})"
            );
        }
    }
}

#[test]
fn an_i_quant_without_kernels_is_refused_naming_the_tensor() {
    let spec = TinySpec {
        weight_types: vec![GgmlType::IQ2_S],
        ..TinySpec::new("llama")
    };
    let err = Model::from_gguf(Gguf::from_bytes(spec.build()).unwrap())
        .err()
        .expect("IQ2_S has no kernels yet");
    assert!(
        matches!(&err, Error::UnsupportedTensorType { name, ty: GgmlType::IQ2_S, .. }
            if name == "blk.0.attn_q.weight"),
        "{err}"
    );
}
