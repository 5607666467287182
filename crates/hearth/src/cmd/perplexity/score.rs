//! The arithmetic of `hearth perplexity`, as llama.cpp's `llama-perplexity` does it, so the
//! figures of the two programs can be set side by side: the negative log-likelihood of the next
//! token, the 16-bit log-probabilities of a base file, and the KL divergence and top-1 agreement
//! against one.

/// `-log p(tok)` under the softmax of `logits`: max + log Σ exp(l - max) - l[tok], the sum in
/// f64 of f32 exponentials as llama.cpp's.
pub fn nll(logits: &[f32], tok: usize) -> f64 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits.iter().map(|&l| f64::from((l - max).exp())).sum();
    f64::from(max) + sum.ln() - f64::from(logits[tok])
}

/// u16 values a position takes in a base file: two f32 (scale, lowest log-probability), then
/// one per token, padded to an even count (llama.cpp's `2*((n_vocab + 1)/2) + 4`).
pub fn base_row_len(n_vocab: usize) -> usize {
    2 * n_vocab.div_ceil(2) + 4
}

/// Encodes the log-probabilities of `logits` into `row` (`base_row_len` long) as llama.cpp's
/// base files hold them: the 16 nats below the most likely token mapped linearly onto 0..=65535,
/// anything lower as 0. Returns `-log p(tok)`.
pub fn encode_base_row(logits: &[f32], tok: usize, row: &mut [u16]) -> f64 {
    let (mut max, mut min) = (logits[0], logits[0]);
    for &l in &logits[1..] {
        max = max.max(l);
        min = min.min(l);
    }
    let min = min.max(max - 16.0);
    let sum: f64 = logits.iter().map(|&l| f64::from((l - max).exp())).sum();
    let log_sum = sum.ln() as f32;
    let min_log_prob = min - max - log_sum;
    let scale = (max - min) / 65535.0;
    row[..2].copy_from_slice(&halves(scale));
    row[2..4].copy_from_slice(&halves(min_log_prob));
    let values = &mut row[4..4 + logits.len()];
    if scale != 0.0 {
        let inv = 1.0 / scale;
        for (v, &l) in values.iter_mut().zip(logits) {
            // Ties to even, as llama.cpp's float-to-int trick rounds.
            *v = if l > min {
                (inv * (l - min)).round_ties_even() as u16
            } else {
                0
            };
        }
    } else {
        values.fill(0);
    }
    f64::from(max) + sum.ln() - f64::from(logits[tok])
}

/// An f32 as the two u16 it occupies in a little-endian file.
fn halves(x: f32) -> [u16; 2] {
    let b = x.to_le_bytes();
    [
        u16::from_le_bytes([b[0], b[1]]),
        u16::from_le_bytes([b[2], b[3]]),
    ]
}

fn from_halves(h: &[u16]) -> f32 {
    let (a, b) = (h[0].to_le_bytes(), h[1].to_le_bytes());
    f32::from_le_bytes([a[0], a[1], b[0], b[1]])
}

/// Running sums over positions scored against a base.
#[derive(Default, Debug, Clone)]
pub struct Kld {
    pub count: usize,
    pub sum_nll: f64,
    pub sum_nll2: f64,
    pub sum_nll_base: f64,
    pub sum_nll_base2: f64,
    pub sum_kld: f64,
    pub sum_kld2: f64,
    pub same_top: usize,
    /// Each position's KL divergence, for the percentiles.
    pub values: Vec<f32>,
}

impl Kld {
    /// Scores one position: this run's `logits` against the base's encoded `row`, `tok` the
    /// token that came next.
    pub fn add(&mut self, logits: &[f32], row: &[u16], tok: usize) {
        let mut max = logits[0];
        let mut top = 0;
        for (i, &l) in logits.iter().enumerate().skip(1) {
            if l > max {
                max = l;
                top = i;
            }
        }
        let sum: f64 = logits.iter().map(|&l| f64::from((l - max).exp())).sum();
        let log_sum = sum.ln() as f32;
        let scale = from_halves(&row[..2]);
        let min_log_prob = from_halves(&row[2..4]);
        let base = &row[4..4 + logits.len()];
        let nll = max + log_sum - logits[tok];
        let nll_base = -(scale * f32::from(base[tok]) + min_log_prob);
        // Σ p_base · (log p_base − log p), over the tokens the base file resolves (within 16
        // nats of its most likely one; the rest carry no probability that matters).
        let norm = max + log_sum;
        let mut kld = 0f64;
        let (mut base_top, mut base_max) = (0, f32::NEG_INFINITY);
        for (i, (&b, &l)) in base.iter().zip(logits).enumerate() {
            let lp_base = scale * f32::from(b) + min_log_prob;
            if i == 0 || lp_base > base_max {
                base_max = lp_base;
                base_top = i;
            }
            if lp_base > -16.0 {
                kld += f64::from(lp_base.exp()) * f64::from(lp_base - l + norm);
            }
        }
        self.count += 1;
        self.sum_nll += f64::from(nll);
        self.sum_nll2 += f64::from(nll) * f64::from(nll);
        self.sum_nll_base += f64::from(nll_base);
        self.sum_nll_base2 += f64::from(nll_base) * f64::from(nll_base);
        self.sum_kld += kld;
        self.sum_kld2 += kld * kld;
        self.same_top += usize::from(top == base_top);
        self.values.push(kld as f32);
    }
}

/// The mean of `count` values and the uncertainty of that mean, from their sum and sum of
/// squares.
pub fn mean_and_error(sum: f64, sum2: f64, count: usize) -> (f64, f64) {
    if count == 0 {
        return (0.0, 0.0);
    }
    let n = count as f64;
    let mean = sum / n;
    let var = sum2 / n - mean * mean;
    let err = if var > 0.0 && count > 1 {
        (var / (n - 1.0)).sqrt()
    } else {
        0.0
    };
    (mean, err)
}

/// The `fraction` percentile of sorted `values`, interpolated between neighbours as llama.cpp's.
pub fn percentile(sorted: &[f32], fraction: f64) -> f64 {
    match sorted {
        [] => 0.0,
        _ if fraction <= 0.0 => f64::from(sorted[0]),
        _ if fraction >= 1.0 => f64::from(sorted[sorted.len() - 1]),
        _ => {
            let p = fraction * (sorted.len() - 1) as f64;
            let i = p as usize;
            let frac = p - i as f64;
            let next = sorted[(i + 1).min(sorted.len() - 1)];
            (1.0 - frac) * f64::from(sorted[i]) + frac * f64::from(next)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_softmax(logits: &[f32]) -> Vec<f64> {
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        let z: f64 = logits.iter().map(|&l| (l as f64 - max).exp()).sum();
        logits.iter().map(|&l| l as f64 - max - z.ln()).collect()
    }

    #[test]
    fn nll_is_minus_the_log_probability() {
        let logits = [1.0f32, 2.0, 0.5, -3.0];
        let lp = log_softmax(&logits);
        for (t, want) in lp.iter().enumerate() {
            assert!((nll(&logits, t) + want).abs() < 1e-6, "token {t}");
        }
    }

    #[test]
    fn a_base_row_decodes_to_the_log_probabilities_within_its_step() {
        let logits: Vec<f32> = (0..101)
            .map(|i| ((i * 37 % 23) as f32) * 0.7 - 5.0)
            .collect();
        let mut row = vec![0u16; base_row_len(logits.len())];
        assert_eq!(row.len(), 2 * 51 + 4);
        let n = encode_base_row(&logits, 7, &mut row);
        assert!((n - nll(&logits, 7)).abs() < 1e-9);
        let scale = from_halves(&row[..2]);
        let min = from_halves(&row[2..4]);
        let lp = log_softmax(&logits);
        for (i, want) in lp.iter().enumerate() {
            if *want > min as f64 + 1e-3 {
                let got = scale as f64 * row[4 + i] as f64 + min as f64;
                assert!(
                    (got - want).abs() <= scale as f64,
                    "token {i}: {got} vs {want}"
                );
            }
        }
        // The same logits against their own base: no divergence, the same top token.
        let mut k = Kld::default();
        k.add(&logits, &row, 7);
        assert!(k.sum_kld.abs() < 1e-3, "{}", k.sum_kld);
        assert_eq!(k.same_top, 1);
    }

    #[test]
    fn kl_divergence_of_two_distributions() {
        let p = [2.0f32, 1.0, 0.0, -1.0];
        let q = [0.0f32, 1.0, 2.0, -1.0];
        let mut row = vec![0u16; base_row_len(4)];
        encode_base_row(&p, 0, &mut row);
        let mut k = Kld::default();
        k.add(&q, &row, 0);
        let (lp, lq) = (log_softmax(&p), log_softmax(&q));
        let want: f64 = lp.iter().zip(&lq).map(|(a, b)| a.exp() * (a - b)).sum();
        assert!((k.sum_kld - want).abs() < 1e-3, "{} vs {want}", k.sum_kld);
        assert_eq!(k.same_top, 0, "their most likely tokens differ");
        assert!((k.sum_nll_base - (-lp[0])).abs() < 1e-3);
        assert!((k.sum_nll - (-lq[0])).abs() < 1e-5);
    }

    #[test]
    fn percentiles_interpolate() {
        let v = [0.0f32, 1.0, 2.0, 3.0, 4.0];
        assert_eq!(percentile(&v, 0.5), 2.0);
        assert!((percentile(&v, 0.99) - 3.96).abs() < 1e-6);
        assert_eq!(percentile(&v, 1.0), 4.0);
        let (m, e) = mean_and_error(10.0, 30.0, 5);
        assert_eq!(m, 2.0);
        assert!((e - (2.0f64 / 4.0).sqrt()).abs() < 1e-12);
    }
}
