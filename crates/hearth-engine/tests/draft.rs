//! Speculative decoding with a draft model is exact: greedy output is the same tokens with and
//! without a draft model (alone and batched with the prefix cache), the same seed gives the same
//! sampled output whatever else runs, sampled tokens follow the target's distribution
//! (standard speculative sampling), and a draft whose vocabulary differs is refused.
//!
//! The draft is a tiny random model built from the target's own random stream with fewer
//! layers (the same embeddings and first layers, as a layer-skipping draft is), so its guesses
//! are often right and sometimes wrong: both paths of the verification run.

use hearth_engine::{
    Engine, EngineOptions, Error, Event, Request, SeqId, SeqState, Speculation, MAX_DRAFT,
};
use hearth_gguf::{Array, Gguf, Value};
use hearth_model::testing::TinySpec;
use hearth_model::{Model, SamplerConfig};
use rand::{Rng, SeedableRng};

const V: usize = 64;

/// A tiny model with a tokenizer (tokens `<unk>`, `<s>`, `</s>`, `t3`, ...).
fn spec(arch: &'static str, n_layer: usize) -> TinySpec {
    let mut s = TinySpec::new(arch);
    s.n_vocab = V;
    s.window = 8;
    s.n_layer = n_layer;
    s.chat_template = Some(String::new());
    s
}

fn target(arch: &'static str) -> Vec<u8> {
    spec(arch, 6).build()
}

/// The target's first two layers, embeddings and output.
fn draft(arch: &'static str) -> Vec<u8> {
    spec(arch, 2).build()
}

fn model(bytes: &[u8]) -> Model {
    Model::from_gguf(Gguf::from_bytes(bytes.to_vec()).expect("gguf")).expect("model")
}

struct Setup {
    draft: Option<Vec<u8>>,
    max_seqs: usize,
    prefill_chunk: usize,
    max_batch_tokens: usize,
    prefix_cache: bool,
    speculation: Speculation,
}

impl Setup {
    fn new(draft: Option<Vec<u8>>) -> Setup {
        Setup {
            draft,
            max_seqs: 4,
            prefill_chunk: 64,
            max_batch_tokens: 512,
            prefix_cache: false,
            speculation: Speculation::PromptLookup,
        }
    }

    fn engine(&self, target: &[u8]) -> Engine {
        let mut e = Engine::new(
            model(target),
            EngineOptions {
                ctx: 512,
                threads: 2,
                max_seqs: self.max_seqs,
                prefill_chunk: self.prefill_chunk,
                max_batch_tokens: self.max_batch_tokens,
                prefix_cache: self.prefix_cache,
                speculation: self.speculation,
                ..EngineOptions::default()
            },
        );
        if let Some(d) = &self.draft {
            e.set_draft(model(d)).expect("same vocabulary");
        }
        e
    }
}

/// Tokens that do not repeat, so prompt lookup rarely drafts and the draft model does the work.
fn prompt(seed: u32, len: usize) -> Vec<u32> {
    (0..len as u32)
        .map(|i| 3 + (i * 37 + seed * 11 + i * i * 7) % (V as u32 - 3))
        .collect()
}

fn req(prompt: Vec<u32>, sampler: SamplerConfig, max_tokens: usize) -> Request {
    Request {
        prompt,
        sampler,
        max_tokens,
        ..Default::default()
    }
}

struct Outcome {
    tokens: Vec<Vec<u32>>,
    /// Drafted and accepted by the draft model, summed over the sequences.
    drafted: u64,
    accepted: u64,
}

/// Steps until no sequence is active, checking after each step that every decoding sequence's
/// cache holds exactly its tokens but the last (the target's KV rollback).
fn run(e: &mut Engine, ids: &[SeqId]) -> Outcome {
    let mut tokens = vec![Vec::new(); ids.len()];
    // Counts from steps before this run are not this run's.
    e.take_spec_counts();
    // A continued sequence's counts cover its earlier turns too.
    let (drafted0, accepted0) = ids.iter().fold((0, 0), |(d, a), &id| {
        let s = e.sequence(id).expect("seq");
        (d + s.model_drafted_tokens(), a + s.model_accepted_tokens())
    });
    while e.has_work() {
        for ev in e.step().expect("step") {
            if let Event::Token { seq, token } = ev {
                let k = ids.iter().position(|&id| id == seq).expect("known seq");
                tokens[k].push(token);
            }
        }
        for &id in ids {
            let s = e.sequence(id).expect("seq");
            if *s.state() != SeqState::Prefilling {
                assert_eq!(
                    s.kv_len(),
                    s.tokens().len() - 1,
                    "sequence {id}: KV rollback"
                );
            }
        }
    }
    let counts = e.take_spec_counts();
    let (drafted, accepted) = ids.iter().fold((0, 0), |(d, a), &id| {
        let s = e.sequence(id).expect("seq");
        (d + s.model_drafted_tokens(), a + s.model_accepted_tokens())
    });
    let (drafted, accepted) = (drafted - drafted0, accepted - accepted0);
    assert_eq!(
        (counts.model_drafted, counts.model_accepted),
        (drafted, accepted)
    );
    Outcome {
        tokens,
        drafted,
        accepted,
    }
}

fn alone(setup: &Setup, target: &[u8], p: Vec<u32>, sampler: SamplerConfig, n: usize) -> Outcome {
    let mut e = setup.engine(target);
    let id = e.add(req(p, sampler, n)).expect("add");
    run(&mut e, &[id])
}

const GEN: usize = 80;

fn greedy_alone(arch: &'static str, draft_arch: &'static str) {
    let (t, d) = (target(arch), draft(draft_arch));
    let (mut drafted, mut accepted) = (0, 0);
    for seed in 0..3 {
        let p = prompt(seed, 40);
        let plain = alone(
            &Setup {
                speculation: Speculation::Off,
                ..Setup::new(None)
            },
            &t,
            p.clone(),
            SamplerConfig::greedy(),
            GEN,
        );
        let spec = alone(
            &Setup::new(Some(d.clone())),
            &t,
            p,
            SamplerConfig::greedy(),
            GEN,
        );
        assert_eq!(
            spec.tokens, plain.tokens,
            "{arch} prompt {seed}: greedy output changed with a draft model ({} drafted, {} accepted)",
            spec.drafted, spec.accepted
        );
        drafted += spec.drafted;
        accepted += spec.accepted;
    }
    assert!(
        accepted > 0,
        "{arch}: no draft token accepted; the test would prove nothing"
    );
    assert!(
        drafted > accepted,
        "{arch}: all {drafted} drafted tokens accepted; the rollback is not exercised"
    );
}

#[test]
fn llama_greedy_is_identical_with_a_draft_model() {
    greedy_alone("llama", "llama");
}

#[test]
fn qwen2_greedy_is_identical_with_a_draft_model() {
    greedy_alone("qwen2", "qwen2");
}

/// A draft with sliding-window layers (an 8-position window): its rolled-back positions cross
/// window blocks. (The tiny Gemma 3 repeats one token whatever its seed, which prompt lookup
/// predicts, so it drafts for a Llama target here.)
#[test]
fn gemma3_draft_greedy_is_identical() {
    greedy_alone("llama", "gemma3");
}

/// Three sequences at once (one prefilling in small chunks while the others draft), with the
/// prefix cache on, against each decoded alone without speculation.
#[test]
fn greedy_batched_is_identical_with_a_draft_model() {
    let (t, d) = (target("llama"), draft("llama"));
    let prompts = [prompt(1, 50), prompt(2, 20), prompt(1, 90)];
    let gens = [60, 70, 40];
    let off = Setup {
        speculation: Speculation::Off,
        ..Setup::new(None)
    };
    let plain: Vec<Vec<u32>> = prompts
        .iter()
        .zip(gens)
        .map(|(p, n)| {
            alone(&off, &t, p.clone(), SamplerConfig::greedy(), n)
                .tokens
                .remove(0)
        })
        .collect();
    let setup = Setup {
        prefill_chunk: 16,
        max_batch_tokens: 40,
        prefix_cache: true,
        ..Setup::new(Some(d))
    };
    let mut e = setup.engine(&t);
    let add = |e: &mut Engine, k: usize| {
        e.add(req(prompts[k].clone(), SamplerConfig::greedy(), gens[k]))
            .expect("add")
    };
    let mut ids = vec![add(&mut e, 0), add(&mut e, 1)];
    // The third shares the first's prompt: added once that is computed, it reuses its blocks.
    let mut early = vec![Vec::new(); 3];
    while *e.sequence(ids[0]).expect("seq").state() == SeqState::Prefilling {
        for ev in e.step().expect("step") {
            if let Event::Token { seq, token } = ev {
                early[ids.iter().position(|&id| id == seq).expect("known")].push(token);
            }
        }
    }
    ids.push(add(&mut e, 2));
    assert!(
        e.sequence(ids[2]).expect("seq").reused_tokens() > 0,
        "the prefix cache was not used"
    );
    let mut spec = run(&mut e, &ids);
    for (all, first) in spec.tokens.iter_mut().zip(early) {
        all.splice(0..0, first);
    }
    assert!(spec.accepted > 0, "no draft token accepted");
    assert!(spec.drafted > spec.accepted, "no draft token rejected");
    assert_eq!(
        spec.tokens, plain,
        "batched greedy output changed with a draft model"
    );
}

fn sampled(seed: u64) -> SamplerConfig {
    SamplerConfig {
        temperature: 1.0,
        top_k: 0,
        top_p: 0.95,
        min_p: 0.0,
        repeat_penalty: 1.05,
        seed,
        ..SamplerConfig::default()
    }
}

/// The same seed and settings give the same tokens, alone or beside other sequences: one
/// decoding with another seed, one with the same prompt and another seed (forked from the first
/// by the prefix cache) and one long prompt prefilling in small chunks meanwhile, in the
/// narrowest batch budget a draft model allows (every sequence's longest draft).
#[test]
fn same_seed_same_output_with_a_draft_model() {
    let (t, d) = (target("llama"), draft("llama"));
    let wide = Setup::new(Some(d.clone()));
    let setup = Setup {
        max_batch_tokens: 4 * (MAX_DRAFT + 1),
        prefill_chunk: 8,
        prefix_cache: true,
        ..Setup::new(Some(d.clone()))
    };
    for seed in [3, 11] {
        let jobs = [
            (prompt(4, 40), seed, GEN),
            (prompt(9, 30), seed + 1, 60),
            (prompt(4, 40), seed + 2, 50),
            (prompt(5, 120), seed + 3, 30),
        ];
        let cold: Vec<Outcome> = jobs
            .iter()
            .map(|(p, s, n)| alone(&wide, &t, p.clone(), sampled(*s), *n))
            .collect();
        let again = alone(&wide, &t, jobs[0].0.clone(), sampled(seed), GEN);
        assert!(cold[0].accepted > 0, "seed {seed}: no draft token accepted");
        assert_eq!(
            again.tokens, cold[0].tokens,
            "seed {seed}: same settings, different output"
        );

        let mut e = setup.engine(&t);
        assert_eq!(e.options().max_batch_tokens, 4 * (MAX_DRAFT + 1));
        let add = |e: &mut Engine, k: usize| {
            let (p, s, n) = &jobs[k];
            e.add(req(p.clone(), sampled(*s), *n)).expect("add")
        };
        let mut ids = vec![add(&mut e, 0), add(&mut e, 1)];
        let mut early = vec![Vec::new(); jobs.len()];
        // The others join once the first decodes: the third forks its prompt, the fourth
        // prefills beside the drafting ones.
        while e.sequence(ids[0]).expect("seq").generated().len() < 3 {
            for ev in e.step().expect("step") {
                if let Event::Token { seq, token } = ev {
                    early[ids.iter().position(|&id| id == seq).expect("known")].push(token);
                }
            }
        }
        ids.push(add(&mut e, 2));
        ids.push(add(&mut e, 3));
        assert!(
            e.sequence(ids[2]).expect("seq").reused_tokens() >= 32,
            "seed {seed}: the prefix cache was not used"
        );
        let mut batched = run(&mut e, &ids);
        for (all, first) in batched.tokens.iter_mut().zip(early) {
            all.splice(0..0, first);
        }
        for (k, c) in cold.iter().enumerate() {
            assert_eq!(
                batched.tokens[k], c.tokens[0],
                "seed {seed}, sequence {k}: batching changed the output"
            );
        }
    }
}

/// A prompt whose prefix the target reuses, from a removed sequence's retained blocks or forked
/// from a live one, gives the same sampled tokens for the same seed as in a fresh engine: the
/// draft must not still be catching up on the prompt when the first draft would be made, or
/// drafting would start at another step and the random streams would be spent otherwise.
#[test]
fn same_seed_same_output_when_the_prefix_is_reused() {
    let (t, d) = (target("llama"), draft("llama"));
    let setup = Setup {
        prefill_chunk: 16,
        prefix_cache: true,
        ..Setup::new(Some(d))
    };
    for seed in [5, 17] {
        // Over twice the chunk, so a draft catching up a chunk per step is behind for steps.
        let p = prompt(6, 100);
        let cold = alone(&setup, &t, p.clone(), sampled(seed), GEN);
        assert!(cold.accepted > 0, "seed {seed}: no draft token accepted");
        let mut e = setup.engine(&t);
        let first = e.add(req(p.clone(), sampled(seed), GEN)).expect("add");
        assert_eq!(run(&mut e, &[first]).tokens, cold.tokens);
        e.remove(first).expect("remove");
        let retained = e.add(req(p.clone(), sampled(seed), GEN)).expect("add");
        assert!(
            e.sequence(retained).expect("seq").reused_tokens() > 2 * 16,
            "the retained prefix was not reused"
        );
        assert_eq!(
            run(&mut e, &[retained]).tokens,
            cold.tokens,
            "seed {seed}: reusing a retained prefix changed the output"
        );
        // `retained` is finished but live: the next one forks its blocks.
        let forked = e.add(req(p.clone(), sampled(seed), GEN)).expect("add");
        assert!(e.sequence(forked).expect("seq").reused_tokens() > 2 * 16);
        assert_eq!(
            run(&mut e, &[forked]).tokens,
            cold.tokens,
            "seed {seed}: forking a live sequence's prefix changed the output"
        );
    }
}

/// A new turn of a sequence (continue_with) samples as a sequence started fresh with the same
/// history and settings would: the draft length learnt in the earlier turn and the draft
/// sampler's random stream start afresh with the turn, as the target's sampler does.
#[test]
fn a_new_turn_samples_like_a_fresh_sequence() {
    let (t, d) = (target("llama"), draft("llama"));
    let setup = Setup::new(Some(d));
    for seed in [2, 9] {
        let mut e = setup.engine(&t);
        let id = e.add(req(prompt(7, 40), sampled(seed), 60)).expect("add");
        let first = run(&mut e, &[id]);
        assert!(first.accepted > 0, "seed {seed}: no draft token accepted");
        let mut history = e.sequence(id).expect("seq").tokens().to_vec();
        history.extend(prompt(8, 6));
        e.continue_with(id, history.clone(), sampled(seed), GEN)
            .expect("continue");
        let continued = run(&mut e, &[id]);
        let fresh = alone(&setup, &t, history, sampled(seed), GEN);
        assert!(fresh.accepted > 0, "seed {seed}: no draft token accepted");
        assert_eq!(
            continued.tokens, fresh.tokens,
            "seed {seed}: a continued turn sampled otherwise than a fresh sequence"
        );
    }
}

/// The target's and the draft's laws of the token after `prompt`, at temperature `t`.
fn law(bytes: &[u8], prompt: &[u32], t: f32) -> Vec<f64> {
    let mut e = Engine::new(
        model(bytes),
        EngineOptions {
            ctx: 512,
            threads: 2,
            keep_logits: true,
            ..EngineOptions::default()
        },
    );
    let id = e
        .add(req(prompt.to_vec(), SamplerConfig::greedy(), 1))
        .expect("add");
    while e.has_work() {
        e.step().expect("step");
    }
    let l = e.sequence(id).expect("seq").last_logits();
    let max = l.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let w: Vec<f64> = l.iter().map(|&x| f64::from((x - max) / t).exp()).collect();
    let z: f64 = w.iter().sum();
    w.iter().map(|x| x / z).collect()
}

/// Sampling through a draft model follows the target's distribution. The first token comes from
/// the prefill; the second is drafted by the model (one token: `max_tokens` is 2) and verified.
/// Over many seeds, a draft is accepted with probability `a = Σ min(p, q)` (a z-test); an
/// accepted token follows `min(p, q) / a` and a replacement the residual `max(0, p − q) / (1 − a)`,
/// which together make `p(· | first)` (a randomised probability-integral transform, uniform
/// under the law, checked by Kolmogorov–Smirnov). A draft accepted always, or a replacement drawn
/// from `p` instead of the residual, fails one of the two.
#[test]
fn sampled_tokens_follow_the_target_distribution() {
    const SAMPLES: u64 = 3000;
    const T: f32 = 20.0;
    let vocab = 16;
    let mk = |n_layer, seed| {
        let mut s = spec("llama", n_layer);
        s.n_vocab = vocab;
        s.seed = seed;
        s.build()
    };
    let (t, d) = (mk(4, 5), mk(1, 5));
    let p: Vec<u32> = vec![1, 5, 9, 3, 12, 7, 14, 4];
    let cfg = |seed| SamplerConfig {
        temperature: T,
        top_k: 0,
        top_p: 1.0,
        min_p: 0.0,
        seed,
        ..SamplerConfig::default()
    };
    let after = |first: u32| {
        let mut q = p.clone();
        q.push(first);
        q
    };
    let ps: Vec<Vec<f64>> = (0..vocab as u32).map(|x| law(&t, &after(x), T)).collect();
    let qs: Vec<Vec<f64>> = (0..vocab as u32).map(|x| law(&d, &after(x), T)).collect();

    let setup = Setup {
        max_seqs: 32,
        ..Setup::new(Some(d.clone()))
    };
    let mut e = setup.engine(&t);
    let (mut accepted, mut expected, mut variance) = (0u64, 0.0f64, 0.0f64);
    // Randomised probability-integral transforms of accepted and of replaced tokens.
    let mut pit = [Vec::new(), Vec::new()];
    let mut rng = rand::rngs::StdRng::seed_from_u64(99);
    let mut seed = 0;
    while seed < SAMPLES {
        let ids: Vec<SeqId> = (0..32.min(SAMPLES - seed))
            .map(|i| e.add(req(p.clone(), cfg(1000 + seed + i), 2)).expect("add"))
            .collect();
        seed += ids.len() as u64;
        let o = run(&mut e, &ids);
        assert_eq!(o.drafted, ids.len() as u64, "every second token is drafted");
        accepted += o.accepted;
        for (id, toks) in ids.iter().zip(&o.tokens) {
            let took = e.remove(*id).expect("remove").model_accepted_tokens() == 1;
            let (first, x) = (toks[0] as usize, toks[1] as usize);
            let (pd, qd) = (&ps[first], &qs[first]);
            let a: f64 = pd.iter().zip(qd).map(|(a, b)| a.min(*b)).sum();
            expected += a;
            variance += a * (1.0 - a);
            // Given acceptance, x follows min(p, q) / a; given rejection, the residual
            // max(0, p - q) / (1 - a). Together they make p.
            let law: Vec<f64> = pd
                .iter()
                .zip(qd)
                .map(|(p, q)| {
                    if took {
                        p.min(*q) / a
                    } else {
                        (p - q).max(0.0) / (1.0 - a)
                    }
                })
                .collect();
            let below: f64 = law[..x].iter().sum();
            pit[usize::from(took)].push(below + rng.gen::<f64>() * law[x]);
        }
    }
    let z = (accepted as f64 - expected) / variance.sqrt();
    assert!(
        z.abs() < 4.0,
        "drafts accepted {accepted} times, expected {expected:.1} (z = {z:.2})"
    );
    assert!(
        accepted > 200 && SAMPLES - accepted > 200,
        "{accepted} of {SAMPLES} accepted: too few rejections or acceptances to judge"
    );
    for (mut pit, what) in pit.into_iter().zip(["replacement", "accepted"]) {
        pit.sort_by(f64::total_cmp);
        let n = pit.len() as f64;
        let ks = pit
            .iter()
            .enumerate()
            .map(|(i, &u)| (u - i as f64 / n).abs().max(((i + 1) as f64 / n - u).abs()))
            .fold(0.0, f64::max);
        // The 0.001 critical value of the one-sample KS statistic is about 1.95 / sqrt(n).
        assert!(
            ks < 1.95 / n.sqrt(),
            "{what} tokens do not follow their law: KS = {ks:.4} over {n} samples"
        );
    }
}

/// A draft with other tokens is refused, saying what differs.
#[test]
fn a_draft_with_another_vocabulary_is_refused() {
    let t = target("llama");
    let refuse = |d: TinySpec, what: &str| {
        let mut e = Setup::new(None).engine(&t);
        match e.set_draft(model(&d.build())) {
            Err(Error::DraftVocabulary(why)) => {
                assert!(why.contains(what), "{why:?} does not say {what:?}")
            }
            Err(other) => panic!("refused for another reason: {other}"),
            Ok(()) => panic!("a draft with another vocabulary was accepted ({what})"),
        }
        assert!(e.draft_model().is_none());
    };
    let mut bigger = spec("llama", 2);
    bigger.n_vocab = V + 1;
    refuse(
        bigger,
        &format!("the target has {V} tokens, the draft {}", V + 1),
    );
    let mut renamed = spec("llama", 2);
    let tokens: Vec<String> = (0..V)
        .map(|i| match i {
            0 => "<unk>".to_string(),
            1 => "<s>".to_string(),
            2 => "</s>".to_string(),
            9 => "nine".to_string(),
            i => format!("t{i}"),
        })
        .collect();
    renamed.metadata_overrides.push((
        "tokenizer.ggml.tokens".to_string(),
        Value::Array(Array::String(tokens)),
    ));
    refuse(
        renamed,
        "token 9 is \"t9\" in the target and \"nine\" in the draft",
    );
    let mut eos = spec("llama", 2);
    eos.metadata_overrides
        .push(("tokenizer.ggml.eos_token_id".to_string(), Value::U32(1)));
    refuse(eos, "end-of-text token");
    // The same vocabulary in another architecture is a fine draft.
    let mut e = Setup::new(None).engine(&t);
    e.set_draft(model(&draft("gemma3")))
        .expect("same vocabulary");
}
