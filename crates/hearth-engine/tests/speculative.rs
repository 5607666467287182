//! Speculative decoding by prompt lookup is exact: greedy output is the same tokens with and
//! without it (alone and batched with other sequences), sampled output is the same for the same
//! seed whatever was drafted, the sampled tokens follow the model's distribution, and the KV
//! cache is rolled back past rejected drafts. On the real SmolLM2, a stop token or `max_tokens`
//! met inside an accepted draft, the sampler's penalties and a token constraint give the same
//! tokens and finish reason as decoding without speculation.

use hearth_engine::{Engine, EngineOptions, Event, Request, SeqId, SeqState, Speculation};
use hearth_gguf::Gguf;
use hearth_model::testing::TinySpec;
use hearth_model::{Model, SamplerConfig};
use rand::{Rng, SeedableRng};

struct Setup {
    speculation: Speculation,
    max_seqs: usize,
    prefill_chunk: usize,
    max_batch_tokens: usize,
    prefix_cache: bool,
}

impl Setup {
    fn new(speculation: Speculation) -> Setup {
        Setup {
            speculation,
            max_seqs: 4,
            prefill_chunk: 64,
            max_batch_tokens: 512,
            prefix_cache: false,
        }
    }

    fn engine(&self, bytes: &[u8]) -> Engine {
        let model =
            Model::from_gguf(Gguf::from_bytes(bytes.to_vec()).expect("gguf")).expect("model");
        Engine::new(
            model,
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
        )
    }
}

/// A prompt with recurring phrases (as documents and code have), so the lookup finds drafts;
/// early on, its last token appears twice followed by other tokens, so a model that repeats its
/// last token (as the tiny Gemma 3 does) has a draft to reject.
fn prompt(seed: u32, len: usize, n_vocab: u32) -> Vec<u32> {
    let phrase: Vec<u32> = (0..7).map(|i| (i * 13 + seed * 5 + 1) % n_vocab).collect();
    let mut p: Vec<u32> = (0..len as u32)
        .map(|i| {
            if i % 11 < 7 {
                phrase[(i % 11) as usize]
            } else {
                (i * 31 + seed * 7 + 3) % n_vocab
            }
        })
        .collect();
    let last = p[len - 1];
    let trap = [last, last, (last + 1) % n_vocab, (last + 2) % n_vocab];
    p.splice(3..3 + trap.len(), trap);
    p
}

fn req(prompt: Vec<u32>, sampler: SamplerConfig, max_tokens: usize) -> Request {
    Request {
        prompt,
        sampler,
        max_tokens,
        ..Default::default()
    }
}

/// What each sequence generated, and the speculation counts (drafted, accepted) summed.
struct Outcome {
    tokens: Vec<Vec<u32>>,
    drafted: u64,
    accepted: u64,
}

/// Steps until no sequence is active. After every step, each decoding sequence's cache must hold
/// exactly its tokens but the last: the KV rollback.
fn run(e: &mut Engine, ids: &[SeqId]) -> Outcome {
    let mut tokens = vec![Vec::new(); ids.len()];
    while e.has_work() {
        for ev in e.step().expect("step") {
            if let Event::Token { seq, token } = ev {
                let k = ids.iter().position(|&id| id == seq).expect("known seq");
                tokens[k].push(token);
            }
        }
        for &id in ids {
            let s = e.sequence(id).expect("seq");
            if *s.state() == SeqState::Prefilling {
                continue;
            }
            assert_eq!(
                s.kv_len(),
                s.tokens().len() - 1,
                "sequence {id}: the KV cache must hold every token but the last one sampled"
            );
        }
    }
    let counts = e.take_spec_counts();
    let (drafted, accepted) = ids.iter().fold((0, 0), |(d, a), &id| {
        let s = e.sequence(id).expect("seq");
        (d + s.drafted_tokens(), a + s.accepted_tokens())
    });
    assert_eq!((counts.drafted, counts.accepted), (drafted, accepted));
    Outcome {
        tokens,
        drafted,
        accepted,
    }
}

fn alone(setup: &Setup, bytes: &[u8], p: Vec<u32>, sampler: SamplerConfig, n: usize) -> Outcome {
    let mut e = setup.engine(bytes);
    let id = e.add(req(p, sampler, n)).expect("add");
    run(&mut e, &[id])
}

const GEN: usize = 100;

fn tiny(arch: &'static str) -> Vec<u8> {
    let mut spec = TinySpec::new(arch);
    spec.n_vocab = 64;
    spec.window = 8;
    spec.build()
}

fn greedy_alone(arch: &'static str) {
    let bytes = tiny(arch);
    let (mut drafted, mut accepted) = (0, 0);
    for seed in 0..4 {
        let p = prompt(seed, 90, 64);
        let plain = alone(
            &Setup::new(Speculation::Off),
            &bytes,
            p.clone(),
            SamplerConfig::greedy(),
            GEN,
        );
        let spec = alone(
            &Setup::new(Speculation::PromptLookup),
            &bytes,
            p,
            SamplerConfig::greedy(),
            GEN,
        );
        assert_eq!(plain.drafted, 0);
        assert_eq!(
            spec.tokens, plain.tokens,
            "{arch} prompt {seed}: greedy output changed with prompt lookup ({} drafted, {} accepted)",
            spec.drafted, spec.accepted
        );
        drafted += spec.drafted;
        accepted += spec.accepted;
    }
    assert!(
        accepted > 0,
        "{arch}: nothing accepted; the test would prove nothing"
    );
    assert!(
        drafted > accepted,
        "{arch}: all {drafted} drafted tokens accepted; the rollback is not exercised"
    );
}

#[test]
fn llama_greedy_is_identical_with_prompt_lookup() {
    greedy_alone("llama");
}

#[test]
fn gemma3_greedy_is_identical_with_prompt_lookup() {
    // A 4-position sliding window: drafted positions cross window blocks as they are released.
    greedy_alone("gemma3");
}

#[test]
fn qwen2_greedy_is_identical_with_prompt_lookup() {
    greedy_alone("qwen2");
}

/// Three sequences at once (one still prefilling in small chunks while the others draft), with
/// the prefix cache on, against each sequence decoded alone without speculation.
#[test]
fn greedy_batched_is_identical_with_prompt_lookup() {
    for arch in ["llama", "gemma3"] {
        let bytes = tiny(arch);
        let prompts = [prompt(1, 70, 64), prompt(2, 20, 64), prompt(1, 150, 64)];
        let gens = [60, 70, 40];
        let plain: Vec<Vec<u32>> = prompts
            .iter()
            .zip(gens)
            .map(|(p, n)| {
                let mut o = alone(
                    &Setup::new(Speculation::Off),
                    &bytes,
                    p.clone(),
                    SamplerConfig::greedy(),
                    n,
                );
                o.tokens.remove(0)
            })
            .collect();
        let setup = Setup {
            prefill_chunk: 16,
            max_batch_tokens: 40,
            prefix_cache: true,
            ..Setup::new(Speculation::PromptLookup)
        };
        let mut e = setup.engine(&bytes);
        let ids: Vec<SeqId> = prompts
            .iter()
            .zip(gens)
            .map(|(p, n)| {
                e.add(req(p.clone(), SamplerConfig::greedy(), n))
                    .expect("add")
            })
            .collect();
        let spec = run(&mut e, &ids);
        assert!(spec.accepted > 0, "{arch}: nothing accepted");
        assert_eq!(
            spec.tokens, plain,
            "{arch}: batched greedy output changed with prompt lookup"
        );
    }
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

/// The same seed gives the same tokens whatever the draft lengths were: here they differ
/// because the batch budget caps them differently and a companion shares the batch.
#[test]
fn same_seed_same_output_with_adaptive_drafts() {
    let bytes = tiny("gemma3");
    for seed in [3, 11] {
        let p = prompt(4, 80, 64);
        let plain = alone(
            &Setup::new(Speculation::Off),
            &bytes,
            p.clone(),
            sampled(seed),
            GEN,
        );
        let wide = alone(
            &Setup::new(Speculation::PromptLookup),
            &bytes,
            p.clone(),
            sampled(seed),
            GEN,
        );
        let again = alone(
            &Setup::new(Speculation::PromptLookup),
            &bytes,
            p.clone(),
            sampled(seed),
            GEN,
        );
        let setup = Setup {
            max_batch_tokens: 4,
            prefill_chunk: 8,
            ..Setup::new(Speculation::PromptLookup)
        };
        let mut e = setup.engine(&bytes);
        let id = e.add(req(p, sampled(seed), GEN)).expect("add");
        let other = e
            .add(req(prompt(9, 30, 64), sampled(seed + 1), 60))
            .expect("companion");
        let narrow = run(&mut e, &[id, other]);
        assert!(wide.accepted > 0, "seed {seed}: nothing accepted");
        assert_ne!(
            (wide.drafted, wide.accepted),
            (narrow.drafted, narrow.accepted),
            "seed {seed}: the two runs drafted alike; the test would prove nothing"
        );
        assert_eq!(
            wide.tokens, again.tokens,
            "seed {seed}: same settings, different output"
        );
        assert_eq!(
            wide.tokens, plain.tokens,
            "seed {seed}: prompt lookup changed the sampled output"
        );
        assert_eq!(
            narrow.tokens[0], plain.tokens[0],
            "seed {seed}: batching changed the output"
        );
    }
}

/// After a speculative sequence is removed, a prompt extending its tokens reuses its cached
/// prefix: the blocks it shares must hold what the tokens say, not rejected drafts.
#[test]
fn rolled_back_kv_is_what_a_prefix_reuses() {
    let bytes = tiny("llama");
    let setup = Setup {
        prefix_cache: true,
        ..Setup::new(Speculation::PromptLookup)
    };
    let mut e = setup.engine(&bytes);
    let first = e
        .add(req(prompt(6, 40, 64), SamplerConfig::greedy(), 90))
        .expect("add");
    let o = run(&mut e, &[first]);
    assert!(o.drafted > o.accepted, "no draft was rejected");
    let history = e.remove(first).expect("remove").tokens().to_vec();
    let next: Vec<u32> = history.iter().copied().chain([5, 9, 5]).collect();
    let second = e
        .add(req(next.clone(), SamplerConfig::greedy(), 30))
        .expect("add");
    assert!(
        e.sequence(second).expect("seq").reused_tokens() >= 64,
        "the prefix cache was not used"
    );
    let reused = run(&mut e, &[second]);
    let fresh = alone(
        &Setup::new(Speculation::Off),
        &bytes,
        next,
        SamplerConfig::greedy(),
        30,
    );
    assert_eq!(reused.tokens, fresh.tokens);
}

/// Sampling through verification follows the model's distribution. The prompt makes every first
/// token `t` a recurring pair `(b, t)`, so the second step always verifies a draft `d(t)`. Over
/// many seeds: the draft is accepted with probability `p(d | t)` (a z-test over the sum of those
/// probabilities), and a rejected draft's replacement follows `p(· | t)` with `d` removed and
/// renormalised (a randomised probability-integral transform, uniform under the law, checked by
/// Kolmogorov–Smirnov).
#[test]
fn sampled_tokens_follow_the_model_distribution() {
    const V: u32 = 16;
    const SAMPLES: u64 = 3000;
    const T: f32 = 20.0;
    let mut spec = TinySpec::new("llama");
    spec.n_vocab = V as usize;
    spec.seed = 5;
    let bytes = spec.build();
    let b = 7;
    let mut p: Vec<u32> = (0..V).flat_map(|t| [b, t]).collect();
    p.push(b);
    let cfg = |seed| SamplerConfig {
        temperature: T,
        top_k: 0,
        top_p: 1.0,
        min_p: 0.0,
        seed,
        ..SamplerConfig::default()
    };

    // The model's distribution of the second token after each first token, at the sampler's
    // temperature, and the draft the lookup makes there.
    let probs_after = |t: u32| -> Vec<f64> {
        let model =
            Model::from_gguf(Gguf::from_bytes(bytes.clone()).expect("gguf")).expect("model");
        let mut e = Engine::new(
            model,
            EngineOptions {
                ctx: 512,
                threads: 2,
                keep_logits: true,
                ..EngineOptions::default()
            },
        );
        let mut prompt = p.clone();
        prompt.push(t);
        let id = e.add(req(prompt, SamplerConfig::greedy(), 1)).expect("add");
        while e.has_work() {
            e.step().expect("step");
        }
        let l = e.sequence(id).expect("seq").last_logits();
        let max = l.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let w: Vec<f64> = l.iter().map(|&x| (((x - max) / T) as f64).exp()).collect();
        let z: f64 = w.iter().sum();
        w.iter().map(|x| x / z).collect()
    };
    let dists: Vec<Vec<f64>> = (0..V).map(probs_after).collect();
    let draft_after = |t: u32| {
        let mut tokens = p.clone();
        tokens.push(t);
        let mut out = Vec::new();
        hearth_engine::lookup(&tokens, 1, &mut out);
        out[0]
    };

    let setup = Setup {
        max_seqs: 32,
        prefix_cache: true,
        ..Setup::new(Speculation::PromptLookup)
    };
    let mut e = setup.engine(&bytes);
    let (mut accepted, mut expected, mut variance) = (0u64, 0.0f64, 0.0f64);
    let mut pit = Vec::new();
    let mut rng = rand::rngs::StdRng::seed_from_u64(99);
    let mut seed = 0;
    while seed < SAMPLES {
        let ids: Vec<SeqId> = (0..32.min(SAMPLES - seed))
            .map(|i| e.add(req(p.clone(), cfg(1000 + seed + i), 2)).expect("add"))
            .collect();
        seed += ids.len() as u64;
        let o = run(&mut e, &ids);
        assert_eq!(
            o.drafted,
            ids.len() as u64,
            "every second step verifies one draft"
        );
        for (id, toks) in ids.iter().zip(&o.tokens) {
            e.remove(*id).expect("remove");
            let (t, x) = (toks[0], toks[1]);
            let d = draft_after(t);
            let dist = &dists[t as usize];
            expected += dist[d as usize];
            variance += dist[d as usize] * (1.0 - dist[d as usize]);
            if x == d {
                accepted += 1;
                continue;
            }
            // Residual law: p without d, renormalised; u = F(x-) + U·p(x) is uniform.
            let rest = 1.0 - dist[d as usize];
            let below: f64 = (0..x).filter(|&y| y != d).map(|y| dist[y as usize]).sum();
            let u = (below + rng.gen::<f64>() * dist[x as usize]) / rest;
            pit.push(u);
        }
    }
    let z = (accepted as f64 - expected) / variance.sqrt();
    assert!(
        z.abs() < 4.0,
        "drafts accepted {accepted} times, expected {expected:.1} (z = {z:.2})"
    );
    assert!(accepted > 100, "too few acceptances to judge ({accepted})");
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
        "replacement tokens do not follow the residual distribution: KS = {ks:.4} over {n} samples"
    );
}

// ---------------------------------------------------------------------------------------------
// Edge cases on a real model (SmolLM2): a stop token or `max_tokens` reached inside an accepted
// draft, the sampler's penalties and a token constraint. Each run is compared with the same
// request decoded without speculation: the tokens and the finish reason must be the same.

mod real {
    use super::*;
    use hearth_engine::FinishReason;
    use hearth_model::tokenizer::Tokenizer;
    use hearth_model::TokenConstraint;
    use std::path::PathBuf;
    use std::sync::OnceLock;

    fn smollm2() -> &'static (PathBuf, Vec<u32>) {
        static M: OnceLock<(PathBuf, Vec<u32>)> = OnceLock::new();
        M.get_or_init(|| {
            let path = hearth_fetch::test_model("smollm2-135m").expect("SmolLM2 test model");
            let gguf = Gguf::open(&path).expect("gguf");
            let tok = Tokenizer::from_gguf(gguf.metadata()).expect("tokenizer");
            // Text that repeats itself, so the lookup finds drafts and the model follows them.
            let text = "The cat sat on the mat. The dog sat on the log. The bird sat on the \
                        branch. The cat sat on the mat. The dog sat on the log. The bird sat on \
                        the branch. The cat sat on the mat. The dog sat on the log. The bird sat \
                        on the branch. The cat sat on the mat. The dog sat";
            (path, tok.encode(text, true, false))
        })
    }

    fn engine(speculation: Speculation) -> Engine {
        let model = Model::open(&smollm2().0).expect("model");
        Engine::new(
            model,
            EngineOptions {
                ctx: 512,
                threads: 2,
                max_seqs: 2,
                speculation,
                ..EngineOptions::default()
            },
        )
    }

    /// One step of one sequence: the tokens it produced and its speculation counts.
    #[derive(Debug)]
    struct Step {
        tokens: Vec<u32>,
        drafted: u64,
        accepted: u64,
    }

    struct Run {
        steps: Vec<Step>,
        /// Every `Finished` event: exactly one when the engine is right.
        finish: Vec<FinishReason>,
    }

    impl Run {
        fn tokens(&self) -> Vec<u32> {
            self.steps
                .iter()
                .flat_map(|s| s.tokens.iter().copied())
                .collect()
        }
        fn accepted(&self) -> u64 {
            self.steps.iter().map(|s| s.accepted).sum()
        }
        fn drafted(&self) -> u64 {
            self.steps.iter().map(|s| s.drafted).sum()
        }
    }

    fn go(speculation: Speculation, r: Request) -> Run {
        let mut e = engine(speculation);
        let id = e.add(r).expect("add");
        let mut run = Run {
            steps: Vec::new(),
            finish: Vec::new(),
        };
        while e.has_work() {
            let mut tokens = Vec::new();
            for ev in e.step().expect("step") {
                match ev {
                    Event::Token { seq, token } if seq == id => tokens.push(token),
                    Event::Finished { seq, reason } if seq == id => run.finish.push(reason),
                    _ => {}
                }
            }
            let c = e.take_spec_counts();
            if !tokens.is_empty() {
                run.steps.push(Step {
                    tokens,
                    drafted: c.drafted,
                    accepted: c.accepted,
                });
            }
        }
        let s = e.sequence(id).expect("seq");
        assert_eq!(s.generated(), &run.tokens()[..]);
        run
    }

    fn request(sampler: SamplerConfig, max_tokens: usize, stop: Vec<u32>) -> Request {
        Request {
            prompt: smollm2().1.clone(),
            sampler,
            max_tokens,
            stop_tokens: stop,
            ..Default::default()
        }
    }

    /// Runs `make()` with and without speculation; they must agree on tokens and finish.
    fn same(what: &str, make: impl Fn() -> Request) -> Run {
        let plain = go(Speculation::Off, make());
        let spec = go(Speculation::PromptLookup, make());
        assert_eq!(plain.drafted(), 0);
        assert_eq!(
            spec.tokens(),
            plain.tokens(),
            "{what}: output changed with prompt lookup ({} drafted, {} accepted)",
            spec.drafted(),
            spec.accepted()
        );
        assert_eq!(spec.finish, plain.finish, "{what}: finish reason changed");
        assert!(
            spec.accepted() > 0,
            "{what}: nothing accepted; the test would prove nothing"
        );
        spec
    }

    const LONG: usize = 60;

    /// A stop token met at an accepted draft position: the sequence ends there, the rows after it
    /// in the same pass are dropped, and the reason is `Stop`.
    #[test]
    fn stop_token_inside_an_accepted_draft() {
        let free = go(
            Speculation::PromptLookup,
            request(SamplerConfig::greedy(), LONG, vec![]),
        );
        // A token whose first occurrence is an accepted draft token with rows after it.
        let all = free.tokens();
        let mut at = 0;
        let mut stop = None;
        for s in &free.steps {
            for (j, &t) in s.tokens.iter().enumerate() {
                if stop.is_none() && (j as u64) < s.accepted && !all[..at + j].contains(&t) {
                    stop = Some(t);
                }
            }
            at += s.tokens.len();
        }
        let stop = stop.expect("no token first met inside an accepted draft");
        let spec = same("stop", || {
            request(SamplerConfig::greedy(), LONG, vec![stop])
        });
        assert_eq!(spec.finish, [FinishReason::Stop]);
        let last = spec.steps.last().expect("a step");
        assert_eq!(*last.tokens.last().expect("a token"), stop);
        assert!(
            last.accepted == last.tokens.len() as u64 && last.drafted > last.accepted,
            "the stop was not an accepted draft token with rows after it ({last:?})"
        );
    }

    /// `max_tokens` reached at an accepted draft token: exactly that many tokens, `Length`.
    #[test]
    fn max_tokens_inside_an_accepted_draft() {
        let free = go(
            Speculation::PromptLookup,
            request(SamplerConfig::greedy(), LONG, vec![]),
        );
        // Stop right after the most accepted draft tokens of one step.
        let mut at = 0;
        let mut best = (0, 0);
        for s in &free.steps {
            if s.accepted > best.0 {
                best = (s.accepted, at + s.accepted as usize);
            }
            at += s.tokens.len();
        }
        assert!(best.0 >= 2, "no step accepted two draft tokens");
        let n = best.1;
        let spec = same("max_tokens", || request(SamplerConfig::greedy(), n, vec![]));
        assert_eq!(spec.finish, [FinishReason::Length]);
        assert_eq!(spec.tokens().len(), n);
        let last = spec.steps.last().expect("a step");
        assert!(
            last.accepted >= 2
                && last.accepted == last.drafted
                && last.drafted == last.tokens.len() as u64,
            "max_tokens was not reached inside an accepted draft ({last:?})"
        );
    }

    fn penalised(temperature: f32, seed: u64) -> SamplerConfig {
        SamplerConfig {
            temperature,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            // Mild enough that the model still follows the repetition the lookup drafts.
            repeat_penalty: 1.05,
            penalty_last_n: 16,
            presence_penalty: 0.1,
            frequency_penalty: 0.05,
            logit_bias: vec![(13, -1.0)],
            seed,
        }
    }

    /// The penalties see exactly the tokens before each verified row, greedy or sampled.
    #[test]
    fn penalties_greedy_and_sampled() {
        same("penalised greedy", || {
            request(penalised(0.0, 0), LONG, vec![])
        });
        for seed in [1, 7] {
            same(&format!("penalised sampled, seed {seed}"), || {
                request(penalised(0.7, seed), LONG, vec![])
            });
        }
    }

    /// Bans one token and ends once `limit` tokens were accepted: the mask applies to every
    /// verified row with the state of the tokens before it.
    struct BanAndCount {
        ban: u32,
        seen: usize,
        limit: usize,
    }

    impl TokenConstraint for BanAndCount {
        fn mask(&mut self, logits: &mut [f32]) {
            logits[self.ban as usize] = f32::NEG_INFINITY;
        }
        fn accept(&mut self, token: u32) -> Result<(), String> {
            if token == self.ban {
                return Err(format!("token {token} is banned"));
            }
            self.seen += 1;
            Ok(())
        }
        fn is_finished(&self) -> bool {
            self.seen >= self.limit
        }
    }

    #[test]
    fn constraint_inside_drafts() {
        let free = go(
            Speculation::PromptLookup,
            request(SamplerConfig::greedy(), LONG, vec![]),
        );
        // Ban a token the model wrote late in the output, so drafting has begun by then.
        let all = free.tokens();
        let ban = all[all.len() * 2 / 3];
        for sampler in [SamplerConfig::greedy(), penalised(0.7, 3)] {
            let spec = same(&format!("constraint, {sampler:?}"), || Request {
                constraint: Some(Box::new(BanAndCount {
                    ban,
                    seen: 0,
                    limit: 45,
                })),
                ..request(sampler.clone(), LONG, vec![])
            });
            assert!(!spec.tokens().contains(&ban));
            assert_eq!(spec.finish, [FinishReason::Stop]);
        }
    }
}
