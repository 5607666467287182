//! Token constraints and logprobs through the engine: a constraint's mask decides every
//! generated token, its completion ends the sequence, and logprobs are a real distribution.

use hearth_engine::{Engine, EngineOptions, Event, FinishReason, Request};
use hearth_gguf::Gguf;
use hearth_model::testing::TinySpec;
use hearth_model::{Model, SamplerConfig, TokenConstraint};

/// Allows exactly one token per step, following a script, then reports completion.
struct Script {
    tokens: Vec<u32>,
    at: usize,
}

impl TokenConstraint for Script {
    fn mask(&mut self, logits: &mut [f32]) {
        let want = self.tokens[self.at] as usize;
        for (i, l) in logits.iter_mut().enumerate() {
            if i != want {
                *l = f32::NEG_INFINITY;
            }
        }
    }
    fn accept(&mut self, token: u32) -> Result<(), String> {
        if token != self.tokens[self.at] {
            return Err(format!("token {token} not allowed"));
        }
        self.at += 1;
        Ok(())
    }
    fn is_finished(&self) -> bool {
        self.at == self.tokens.len()
    }
}

fn engine() -> Engine {
    let bytes = TinySpec::new("llama").build();
    let model = Model::from_gguf(Gguf::from_bytes(bytes).expect("tiny gguf")).expect("model");
    Engine::new(
        model,
        EngineOptions {
            ctx: 128,
            threads: 1,
            max_seqs: 2,
            ..EngineOptions::default()
        },
    )
}

#[test]
fn constraint_decides_tokens_and_ends_the_sequence() {
    let mut engine = engine();
    let script = vec![7, 3, 11, 3];
    let id = engine
        .add(Request {
            prompt: vec![1, 2, 3, 4],
            // Sampling at a high temperature would wander without the mask.
            sampler: SamplerConfig {
                temperature: 1.5,
                seed: 42,
                ..SamplerConfig::default()
            },
            max_tokens: 50,
            constraint: Some(Box::new(Script {
                tokens: script.clone(),
                at: 0,
            })),
            ..Default::default()
        })
        .expect("add");
    let mut finished = None;
    while engine.has_work() {
        for ev in engine.step().expect("step") {
            if let Event::Finished { reason, .. } = ev {
                finished = Some(reason);
            }
        }
    }
    assert_eq!(finished, Some(FinishReason::Stop));
    assert_eq!(engine.sequence(id).expect("seq").generated(), &script[..]);
}

#[test]
fn logprobs_form_a_distribution_and_match_the_token() {
    let mut engine = engine();
    let id = engine
        .add(Request {
            prompt: vec![5, 6, 7],
            sampler: SamplerConfig::greedy(),
            max_tokens: 4,
            logprobs: Some(5),
            ..Default::default()
        })
        .expect("add");
    let mut seen = 0;
    while engine.has_work() {
        for ev in engine.step().expect("step") {
            if let Event::Token { token, .. } = ev {
                let lp = engine
                    .sequence(id)
                    .and_then(|s| s.last_logprob())
                    .expect("logprob");
                assert_eq!(lp.token, token);
                assert_eq!(lp.top.len(), 5);
                // Greedy: the chosen token is the most likely one.
                assert_eq!(lp.top[0].0, token);
                assert_eq!(lp.top[0].1, lp.logprob);
                assert!(lp.top.windows(2).all(|w| w[0].1 >= w[1].1));
                assert!(lp.logprob <= 0.0);
                let mass: f32 = lp.top.iter().map(|t| t.1.exp()).sum();
                assert!(mass > 0.0 && mass <= 1.0 + 1e-4, "top-5 mass {mass}");
                seen += 1;
            }
        }
    }
    assert_eq!(seen, 4);
}
