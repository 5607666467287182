//! Turning logits into the next token: penalties, logit bias, temperature, top-k, top-p, min-p,
//! and a seeded random draw per sequence.
//!
//! The order follows llama.cpp's default sampler chain (penalties → top-k → top-p → min-p →
//! temperature → draw). Temperature 0 is greedy decoding with ties going to the lowest id.
//! The RNG is ChaCha8 seeded per sequence: the same seed and settings give the same tokens on
//! every platform and every release of the `rand` crate.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Limits which tokens may come next: a grammar, a JSON schema, a tool-call format.
///
/// The engine calls [`mask`](TokenConstraint::mask) on each step's logits before sampling, then
/// [`accept`](TokenConstraint::accept) with the token it chose, and stops the sequence once
/// [`is_finished`](TokenConstraint::is_finished) says the constrained text is complete. An
/// implementation must be deterministic in the tokens it has accepted, so a constrained sequence
/// keeps the engine's batch-invariance rules.
pub trait TokenConstraint: Send {
    /// Sets to negative infinity the logit of every token that may not come next.
    fn mask(&mut self, logits: &mut [f32]);
    /// Advances past the chosen token. An error says the token broke the constraint (it was
    /// not allowed by the last mask); the engine then ends the sequence.
    fn accept(&mut self, token: u32) -> Result<(), String>;
    /// Whether the constrained text is complete, so generation must stop here.
    fn is_finished(&self) -> bool;
}

/// Sampling settings for one sequence.
#[derive(Clone, Debug, PartialEq)]
pub struct SamplerConfig {
    /// 0 means greedy.
    pub temperature: f32,
    /// 0 disables.
    pub top_k: usize,
    /// 1.0 disables.
    pub top_p: f32,
    /// 0.0 disables.
    pub min_p: f32,
    /// Divides positive (multiplies negative) logits of recently seen tokens; 1.0 disables.
    pub repeat_penalty: f32,
    /// How many recent tokens the repeat, presence and frequency penalties look at.
    pub penalty_last_n: usize,
    /// Subtracted once from the logit of every token seen (OpenAI's `presence_penalty`).
    pub presence_penalty: f32,
    /// Subtracted per occurrence (OpenAI's `frequency_penalty`).
    pub frequency_penalty: f32,
    /// Added to the logits of specific tokens (OpenAI's `logit_bias`).
    pub logit_bias: Vec<(u32, f32)>,
    pub seed: u64,
}

impl Default for SamplerConfig {
    fn default() -> Self {
        SamplerConfig {
            temperature: 0.8,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            repeat_penalty: 1.0,
            penalty_last_n: 64,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            logit_bias: Vec::new(),
            seed: 0,
        }
    }
}

impl SamplerConfig {
    /// Greedy decoding, no penalties.
    pub fn greedy() -> SamplerConfig {
        SamplerConfig {
            temperature: 0.0,
            ..SamplerConfig::default()
        }
    }
}

/// A sampler with its own RNG and the history its penalties need.
#[derive(Clone, Debug)]
pub struct Sampler {
    cfg: SamplerConfig,
    rng: ChaCha8Rng,
    history: Vec<u32>,
    /// Reused for the candidates of each draw.
    candidates: Vec<(u32, f32)>,
    /// Reused by [`sample`](Self::sample).
    dist: Distribution,
}

/// The law [`Sampler::sample`] draws from, as [`Sampler::distribution`] leaves it: the tokens
/// that can come next with unnormalised weights, so speculative decoding can compare the
/// target's law with a draft's.
#[derive(Clone, Debug, Default)]
pub struct Distribution {
    /// Candidate tokens, most likely first (ties to the lower id).
    pub tokens: Vec<u32>,
    /// Their weights (unnormalised, not all zero).
    pub weights: Vec<f32>,
    /// The sum of `weights`.
    pub total: f32,
    /// Whether drawing from it takes a random number: false for greedy decoding, whose law is
    /// the one most likely token.
    pub random: bool,
}

impl Distribution {
    /// The probability of `token` (0 outside the candidates).
    pub fn prob(&self, token: u32) -> f64 {
        self.tokens
            .iter()
            .position(|&t| t == token)
            .map_or(0.0, |i| f64::from(self.weights[i]) / f64::from(self.total))
    }

    /// The token a uniform number `u` in [0, 1) picks: walking the candidates in order, the one
    /// whose share of the total holds `u · total`.
    pub fn draw(&self, u: f32) -> u32 {
        let mut r = u * self.total;
        for (&t, w) in self.tokens.iter().zip(&self.weights) {
            if r < *w {
                return t;
            }
            r -= w;
        }
        self.tokens[self.tokens.len() - 1]
    }

    fn point(&mut self, token: u32) {
        self.tokens.clear();
        self.weights.clear();
        self.tokens.push(token);
        self.weights.push(1.0);
        self.total = 1.0;
        self.random = false;
    }
}

impl Sampler {
    pub fn new(cfg: SamplerConfig) -> Sampler {
        let rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        Sampler {
            cfg,
            rng,
            history: Vec::new(),
            candidates: Vec::new(),
            dist: Distribution::default(),
        }
    }

    pub fn config(&self) -> &SamplerConfig {
        &self.cfg
    }

    /// Records a token as seen (prompt tokens too, so penalties cover them).
    pub fn accept(&mut self, token: u32) {
        self.history.push(token);
    }

    /// The tokens recorded as seen, oldest first.
    pub fn history(&self) -> &[u32] {
        &self.history
    }

    /// Forgets all but the first `len` tokens seen (a draft model's sampler takes back the
    /// tokens it drafted and the target rejected).
    pub fn truncate_history(&mut self, len: usize) {
        self.history.truncate(len);
    }

    /// A uniform number in [0, 1) from this sampler's own stream.
    pub fn uniform(&mut self) -> f32 {
        self.rng.gen::<f32>()
    }

    /// Picks the next token from `logits` (modified in place by penalties and bias).
    pub fn sample(&mut self, logits: &mut [f32]) -> u32 {
        let mut dist = std::mem::take(&mut self.dist);
        self.distribution(logits, &mut dist);
        let token = if dist.random {
            dist.draw(self.rng.gen::<f32>())
        } else {
            dist.tokens[0]
        };
        self.dist = dist;
        token
    }

    /// The law [`sample`](Self::sample) would draw the next token from, into `out`, without
    /// drawing (`logits` are modified in place by penalties and bias).
    pub fn distribution(&mut self, logits: &mut [f32], out: &mut Distribution) {
        self.apply_penalties(logits);
        for &(id, bias) in &self.cfg.logit_bias {
            if let Some(l) = logits.get_mut(id as usize) {
                *l += bias;
            }
        }
        if self.cfg.temperature <= 0.0 {
            out.point(argmax(logits));
            return;
        }
        let cands = &mut out.tokens;
        let weights = &mut out.weights;
        let mut pairs = std::mem::take(&mut self.candidates);
        let finite = gather_candidates(logits, self.cfg.top_k, &mut pairs);
        if pairs.is_empty() {
            self.candidates = pairs;
            out.point(argmax(logits));
            return;
        }
        let k = if self.cfg.top_k > 0 {
            self.cfg.top_k.min(finite)
        } else {
            pairs.len()
        };
        if k < pairs.len() {
            pairs.select_nth_unstable_by(k - 1, by_logit);
            pairs.truncate(k);
        }
        pairs.sort_unstable_by(by_logit);
        // Probabilities at temperature 1 for top-p / min-p, as llama.cpp's chain computes them.
        let max = pairs[0].1;
        // `exp_sub` is `exp_f32(l - max)` lane by lane, vectorized (top_k = 0 keeps every
        // vocabulary entry here).
        let mut probs: Vec<f32> = pairs.iter().map(|c| c.1).collect();
        hearth_kernels::exp_sub(&mut probs, max);
        let sum: f32 = probs.iter().sum();
        probs.iter_mut().for_each(|p| *p /= sum);
        let mut keep = pairs.len();
        if self.cfg.top_p < 1.0 {
            let mut cum = 0.0;
            for (i, p) in probs.iter().enumerate() {
                cum += p;
                if cum >= self.cfg.top_p {
                    keep = i + 1;
                    break;
                }
            }
        }
        if self.cfg.min_p > 0.0 {
            let floor = probs[0] * self.cfg.min_p;
            keep = keep.min(probs.iter().take_while(|&&p| p >= floor).count().max(1));
        }
        pairs.truncate(keep);
        let t = self.cfg.temperature;
        let max = pairs[0].1 / t;
        cands.clear();
        weights.clear();
        cands.extend(pairs.iter().map(|c| c.0));
        weights.extend(pairs.iter().map(|c| c.1 / t));
        hearth_kernels::exp_sub(weights, max);
        out.total = weights.iter().sum();
        out.random = true;
        self.candidates = pairs;
    }

    fn apply_penalties(&mut self, logits: &mut [f32]) {
        let c = &self.cfg;
        if c.repeat_penalty == 1.0 && c.presence_penalty == 0.0 && c.frequency_penalty == 0.0 {
            return;
        }
        let start = self.history.len().saturating_sub(c.penalty_last_n);
        let recent = &self.history[start..];
        let mut counts: std::collections::HashMap<u32, u32> = std::collections::HashMap::new();
        for &t in recent {
            *counts.entry(t).or_default() += 1;
        }
        for (&t, &n) in &counts {
            let Some(l) = logits.get_mut(t as usize) else {
                continue;
            };
            if c.repeat_penalty != 1.0 {
                if *l > 0.0 {
                    *l /= c.repeat_penalty;
                } else {
                    *l *= c.repeat_penalty;
                }
            }
            *l -= n as f32 * c.frequency_penalty + c.presence_penalty;
        }
    }
}

/// Candidate order: larger logit first, ties to the lower id. A total order, so the top k and
/// every filter after it are deterministic.
fn by_logit(a: &(u32, f32), b: &(u32, f32)) -> std::cmp::Ordering {
    b.1.total_cmp(&a.1).then(a.0.cmp(&b.0))
}

/// Fills `cands` with the finite logits that can be among the `top_k` best in [`by_logit`]
/// order (every finite one when `top_k` is 0) and returns how many logits are finite. The
/// caller selects the `top_k` from `cands` as it would from all of them: the result is the
/// same, since only entries that `top_k` others already beat are left out.
///
/// Collecting the whole vocabulary (49,152 entries for SmolLM2, 262,144 for Gemma 3) and
/// selecting from it was most of a sampled token's time, paid per sequence per step; one pass
/// that skips what falls below the running k-th best keeps a few hundred entries instead.
fn gather_candidates(logits: &[f32], top_k: usize, cands: &mut Vec<(u32, f32)>) -> usize {
    cands.clear();
    if top_k == 0 {
        cands.extend(
            logits
                .iter()
                .enumerate()
                .filter(|(_, l)| l.is_finite())
                .map(|(i, &l)| (i as u32, l)),
        );
        return cands.len();
    }
    // Pruned back to top_k whenever it holds this many.
    let cap = top_k.saturating_mul(2).max(256);
    // Entries at or below the k-th best seen so far have top_k better ones (an equal logit
    // loses the tie: ids are visited in increasing order): they cannot be chosen.
    let mut floor = f32::NEG_INFINITY;
    let mut finite = 0;
    for (i, &l) in logits.iter().enumerate() {
        if !l.is_finite() {
            continue;
        }
        finite += 1;
        if l <= floor {
            continue;
        }
        cands.push((i as u32, l));
        if cands.len() >= cap {
            cands.select_nth_unstable_by(top_k - 1, by_logit);
            cands.truncate(top_k);
            floor = cands[top_k - 1].1;
        }
    }
    finite
}

/// Index of the largest logit, the lowest index on ties (NaN never wins).
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0usize;
    let mut best_v = f32::NEG_INFINITY;
    for (i, &v) in logits.iter().enumerate() {
        if v > best_v {
            best = i;
            best_v = v;
        }
    }
    best as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_ties_go_to_lowest_id() {
        let mut s = Sampler::new(SamplerConfig::greedy());
        assert_eq!(s.sample(&mut [1.0, 3.0, 3.0, 2.0]), 1);
    }

    #[test]
    fn same_seed_same_tokens() {
        let logits: Vec<f32> = (0..100).map(|i| ((i * 37) % 11) as f32 * 0.3).collect();
        let cfg = SamplerConfig {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            seed: 42,
            ..Default::default()
        };
        let run = || {
            let mut s = Sampler::new(cfg.clone());
            (0..20)
                .map(|_| s.sample(&mut logits.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(), run());
        let other = {
            let mut s = Sampler::new(SamplerConfig {
                seed: 43,
                ..cfg.clone()
            });
            (0..20)
                .map(|_| s.sample(&mut logits.clone()))
                .collect::<Vec<_>>()
        };
        assert_ne!(run(), other);
    }

    /// The pruned candidate pass gives the same top k, in the same order, as collecting every
    /// finite logit and selecting from all of them: with many ties (logits on a coarse grid,
    /// so the k-th best is shared by many ids), infinities and NaN, and k below, near and above
    /// the pruning size and the vocabulary.
    #[test]
    fn pruned_top_k_is_the_plain_top_k() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        for vocab in [1usize, 7, 300, 5000, 49_152] {
            let logits: Vec<f32> = (0..vocab)
                .map(|_| match rng.gen_range(0..50) {
                    0 => f32::NEG_INFINITY,
                    1 => f32::NAN,
                    2 => f32::INFINITY,
                    _ => (rng.gen_range(-40..40) as f32) * 0.25,
                })
                .collect();
            for top_k in [1usize, 2, 40, 127, 128, 129, 256, 1000, vocab, vocab + 3] {
                let mut all: Vec<(u32, f32)> = logits
                    .iter()
                    .enumerate()
                    .filter(|(_, l)| l.is_finite())
                    .map(|(i, &l)| (i as u32, l))
                    .collect();
                let finite = all.len();
                let k = top_k.min(finite);
                all.sort_unstable_by(by_logit);
                all.truncate(k);
                let mut got = Vec::new();
                assert_eq!(gather_candidates(&logits, top_k, &mut got), finite);
                if k > 0 && k < got.len() {
                    got.select_nth_unstable_by(k - 1, by_logit);
                    got.truncate(k);
                }
                got.sort_unstable_by(by_logit);
                let bits =
                    |v: &[(u32, f32)]| v.iter().map(|&(i, l)| (i, l.to_bits())).collect::<Vec<_>>();
                assert_eq!(bits(&got), bits(&all), "vocab {vocab}, top_k {top_k}");
            }
        }
    }

    #[test]
    fn top_k_one_is_greedy() {
        let cfg = SamplerConfig {
            temperature: 1.0,
            top_k: 1,
            seed: 7,
            ..Default::default()
        };
        let mut s = Sampler::new(cfg);
        for _ in 0..10 {
            assert_eq!(s.sample(&mut [0.1, 0.5, 2.0, 1.9]), 2);
        }
    }

    #[test]
    fn logit_bias_forces_token() {
        let cfg = SamplerConfig {
            logit_bias: vec![(0, 100.0)],
            ..SamplerConfig::greedy()
        };
        assert_eq!(Sampler::new(cfg).sample(&mut [0.0, 5.0]), 0);
    }

    #[test]
    fn repeat_penalty_demotes_seen_tokens() {
        let cfg = SamplerConfig {
            repeat_penalty: 2.0,
            ..SamplerConfig::greedy()
        };
        let mut s = Sampler::new(cfg);
        s.accept(1);
        assert_eq!(s.sample(&mut [1.5, 2.0]), 0);
    }

    #[test]
    fn min_p_drops_unlikely_tokens() {
        let cfg = SamplerConfig {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.5,
            seed: 1,
            ..Default::default()
        };
        let mut s = Sampler::new(cfg);
        for _ in 0..50 {
            assert_eq!(s.sample(&mut [10.0, 0.0, 0.0]), 0);
        }
    }
}
