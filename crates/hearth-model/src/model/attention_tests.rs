//! Attention against its definition: every (token, query head) computed alone, one key at a
//! time, with the one-token operations. The batched, threaded attention must give the same bits
//! for every mix of decoding tokens and prompt runs, every grouping of query heads onto KV
//! heads, sliding windows, and every thread count.

use half::f16;
use hearth_gguf::{GgmlType, Gguf};
use hearth_kernels::ThreadPool;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::super::{BatchItem, Model, Workspace};
use crate::kv::{KvCache, SeqKv};
use crate::testing::TinySpec;

/// One token's attention output for query head `h`, the definition spelled out: the query
/// rounded to f16, each score the F16 dot with the stored key, scaled; softmax in key order
/// with `exp_f32`; probabilities rounded to f16 (outside exact mode); then `out += p·v` key by
/// key, the product rounded before the addition.
fn one_token_head(
    model: &Model,
    il: usize,
    item: &BatchItem,
    seq: &SeqKv,
    kv: &KvCache,
    q: &[f32],
    h: usize,
) -> Vec<f32> {
    let c = &model.config;
    let (hd, vhd) = (c.head_dim, c.v_head_dim);
    let g = h / (c.n_head / c.n_kv_head);
    let view = kv.view(il, seq);
    let first = match kv.window(il) {
        Some(w) => (item.pos + 1).saturating_sub(w),
        None => 0,
    }
    .max(view.first_pos());
    let q16: Vec<u16> = q[h * hd..(h + 1) * hd]
        .iter()
        .map(|&x| f16::from_f32(x).to_bits())
        .collect();
    let mut scores: Vec<f32> = (first..=item.pos)
        .map(|j| {
            let k = &view.k(j)[g * hd..(g + 1) * hd];
            hearth_kernels::vec_dot(
                GgmlType::F16,
                hd,
                bytemuck::cast_slice(k),
                bytemuck::cast_slice(&q16),
            ) * c.attn_scale
        })
        .collect();
    let m = scores.iter().fold(f32::NEG_INFINITY, |m, &s| m.max(s));
    let mut sum = 0f32;
    for s in scores.iter_mut() {
        *s = hearth_kernels::exp_f32(*s - m);
        sum += *s;
    }
    let inv = 1.0 / sum;
    for s in scores.iter_mut() {
        *s *= inv;
        if !model.exact {
            *s = f16::from_f32(*s).to_f32();
        }
    }
    let mut out = vec![0f32; vhd];
    for (j, &p) in (first..=item.pos).zip(&scores) {
        let v = &view.v(j)[g * vhd..(g + 1) * vhd];
        for (o, &x) in out.iter_mut().zip(v) {
            let prod = p * f16::from_bits(x).to_f32();
            *o += prod;
        }
    }
    out
}

/// Sequences with `cached` positions already in the cache, and a batch that adds `new` tokens
/// to each (one: decoding; more: a prompt run), random keys, values and queries.
struct Case {
    model: Model,
    kv: KvCache,
    seqs: Vec<SeqKv>,
    batch: Vec<BatchItem>,
    q: Vec<f32>,
}

fn case(spec: &TinySpec, shape: &[(usize, usize)], exact: bool, seed: u64) -> Case {
    let mut model = Model::from_gguf(Gguf::from_bytes(spec.build()).expect("gguf")).expect("model");
    model.set_exact(exact);
    let c = model.config.clone();
    let longest = shape.iter().map(|&(a, b)| a + b).max().unwrap_or(1);
    let chunk = shape.iter().map(|&(_, b)| b).max().unwrap_or(1);
    let mut kv = KvCache::new(&c, longest + 1, shape.len(), chunk);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut rand_row =
        |n: usize| -> Vec<f32> { (0..n).map(|_| rng.gen_range(-2.0..2.0)).collect() };
    let mut seqs = Vec::new();
    let mut batch = Vec::new();
    let mut writes = Vec::new();
    for (s, &(cached, new)) in shape.iter().enumerate() {
        let mut seq = kv.new_seq();
        for pos in 0..cached + new {
            if pos < cached {
                kv.reserve(&mut seq, pos + 1).expect("reserve");
            } else if pos == cached {
                kv.reserve(&mut seq, cached + new).expect("reserve");
            }
            let (k, v) = (rand_row(c.kv_dim_k()), rand_row(c.kv_dim_v()));
            writes.push((s, pos, k, v));
            if pos < cached {
                let (_, _, k, v) = writes.pop().expect("just pushed");
                for il in 0..c.n_layer {
                    kv.write(il, &seq, pos, &k, &v).expect("write");
                }
                seq.set_len(pos + 1);
            } else {
                batch.push(BatchItem {
                    token: 0,
                    pos,
                    seq: s,
                    logits: false,
                });
            }
        }
        seqs.push(seq);
    }
    // The batch's own keys and values reach the cache before attention, as in the forward pass.
    for (s, pos, k, v) in writes {
        for il in 0..c.n_layer {
            kv.write(il, &seqs[s], pos, &k, &v).expect("write");
        }
    }
    let q = rand_row(batch.len() * c.n_head * c.head_dim);
    Case {
        model,
        kv,
        seqs,
        batch,
        q,
    }
}

fn check(spec: &TinySpec, shape: &[(usize, usize)], exact: bool) {
    let cs = case(spec, shape, exact, 7);
    let c = &cs.model.config;
    let (n_tok, vhd) = (cs.batch.len(), c.v_head_dim);
    let refs: Vec<&SeqKv> = cs.seqs.iter().collect();
    for threads in [1, 2, 3] {
        let pool = ThreadPool::new(threads);
        let mut ws = Workspace::new();
        ws.prepare(c, n_tok, threads);
        ws.q[..cs.q.len()].copy_from_slice(&cs.q);
        for il in 0..c.n_layer {
            cs.model
                .attend(il, &cs.batch, &refs, &cs.kv, &mut ws, &pool);
            for (t, item) in cs.batch.iter().enumerate() {
                let q = &cs.q[t * c.n_head * c.head_dim..(t + 1) * c.n_head * c.head_dim];
                for h in 0..c.n_head {
                    let want = one_token_head(&cs.model, il, item, refs[item.seq], &cs.kv, q, h);
                    let at = (t * c.n_head + h) * vhd;
                    let got = &ws.attn[at..at + vhd];
                    let same = want
                        .iter()
                        .zip(got)
                        .all(|(a, b)| a.to_bits() == b.to_bits());
                    assert!(
                        same,
                        "{} (heads {}/{}), layer {il}, {threads} threads, token {t} (seq {} pos {}), \
                         head {h}: {:?}… differs from the one-token definition {:?}…",
                        spec.arch,
                        c.n_head,
                        c.n_kv_head,
                        item.seq,
                        item.pos,
                        &got[..4],
                        &want[..4]
                    );
                }
            }
        }
    }
}

/// Decoding tokens at various depths (one at its very first position), and a prompt run longer
/// than one work unit's run, side by side: nine runs, so one and two threads give units of all
/// KV heads and three threads units of one.
const MIXED: &[(usize, usize)] = &[(40, 1), (5, 37), (0, 1), (19, 1), (70, 3), (3, 1), (33, 1)];

fn spec(arch: &'static str, n_head: usize, n_kv_head: usize) -> TinySpec {
    TinySpec {
        n_layer: 2,
        // Llama derives the head size from these two.
        n_embd: n_head * 64,
        n_head,
        n_kv_head,
        head_dim: 64,
        n_ff: 64,
        n_vocab: 32,
        // Only the cache and the queries matter here; the weights are never used.
        weight_types: vec![GgmlType::Q8_0],
        ..TinySpec::new(arch)
    }
}

#[test]
fn grouped_query_attention_matches_the_one_token_definition() {
    // Three query heads per KV head (SmolLM2's grouping), then four, then two.
    check(&spec("llama", 6, 2), MIXED, false);
    check(&spec("llama", 8, 2), MIXED, false);
    check(&spec("llama", 4, 2), MIXED, false);
}

#[test]
fn one_query_head_per_kv_head_matches_the_one_token_definition() {
    check(&spec("llama", 3, 3), MIXED, false);
}

#[test]
fn sliding_window_attention_matches_the_one_token_definition() {
    // Gemma 3's local layers see only the last few positions.
    check(&spec("gemma3", 4, 1), MIXED, false);
}

#[test]
fn exact_mode_attention_matches_the_one_token_definition() {
    check(&spec("llama", 6, 2), MIXED, true);
}
