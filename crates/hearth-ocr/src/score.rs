//! Scoring read text against a reference: bag-of-words F1 (what was read, in any order) and
//! the word error rate of the whole sequence (what was read, in the reference's order). Both
//! compare normalised words: lower case, typographic ligatures and quotes spelled plainly,
//! punctuation trimmed from each word's ends.

use std::collections::HashMap;

/// The words of `text`, normalised for scoring.
pub fn words(text: &str) -> Vec<String> {
    let mut plain = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            'ﬀ' => plain.push_str("ff"),
            'ﬁ' => plain.push_str("fi"),
            'ﬂ' => plain.push_str("fl"),
            'ﬃ' => plain.push_str("ffi"),
            'ﬄ' => plain.push_str("ffl"),
            '‘' | '’' | '‚' | '′' => plain.push('\''),
            '“' | '”' | '„' | '″' => plain.push('"'),
            '–' | '—' | '‐' | '‑' => plain.push('-'),
            c => plain.extend(c.to_lowercase()),
        }
    }
    plain
        .split_whitespace()
        .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()).to_string())
        .filter(|w| !w.is_empty())
        .collect()
}

/// Bag-of-words F1 of `hyp` against `reference` (each word counted as often as it occurs).
pub fn word_f1(reference: &str, hyp: &str) -> f64 {
    let (r, h) = (words(reference), words(hyp));
    if r.is_empty() && h.is_empty() {
        return 1.0;
    }
    let mut counts: HashMap<&str, i64> = HashMap::new();
    for w in &r {
        *counts.entry(w).or_default() += 1;
    }
    let mut matched = 0usize;
    for w in &h {
        if let Some(c) = counts.get_mut(w.as_str()) {
            if *c > 0 {
                *c -= 1;
                matched += 1;
            }
        }
    }
    if matched == 0 {
        return 0.0;
    }
    let precision = matched as f64 / h.len() as f64;
    let recall = matched as f64 / r.len() as f64;
    2.0 * precision * recall / (precision + recall)
}

/// Word error rate: the edit distance (substitutions, insertions, deletions) between the word
/// sequences, over the reference's length.
pub fn ordered_wer(reference: &str, hyp: &str) -> f64 {
    let (r, h) = (words(reference), words(hyp));
    if r.is_empty() {
        return if h.is_empty() { 0.0 } else { 1.0 };
    }
    let mut prev: Vec<usize> = (0..=h.len()).collect();
    let mut cur = vec![0usize; h.len() + 1];
    for (i, rw) in r.iter().enumerate() {
        cur[0] = i + 1;
        for (j, hw) in h.iter().enumerate() {
            let sub = prev[j] + usize::from(rw != hw);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[h.len()] as f64 / r.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_normalised() {
        assert_eq!(
            words("“Filled” ﬁlled, (x) —"),
            vec!["filled", "filled", "x"]
        );
    }

    #[test]
    fn f1_ignores_order_and_wer_does_not() {
        let r = "one two three four";
        assert_eq!(word_f1(r, "four three two one"), 1.0);
        assert_eq!(ordered_wer(r, "one two three four"), 0.0);
        assert_eq!(ordered_wer(r, "three four one two"), 1.0);
        assert!((word_f1(r, "one two") - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(ordered_wer(r, "one two tree four"), 0.25);
    }
}
