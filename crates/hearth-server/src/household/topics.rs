//! Steering a child's chats away from the topics their keeper listed: a check on the child's
//! question (before anything reaches the model) and on the reply as it is written, by sentence
//! embeddings (all-MiniLM-L6-v2) compared with each topic.
//!
//! This is best-effort and the keeper is told so: a question can be worded far from the topic
//! and still be about it, and a near topic can be caught by mistake. The system prompt names the
//! topics too. Without the embedding model installed, only the prompt steers.
//!
//! [`THRESHOLD`] was measured on the labelled set in `tests/topics/labelled.tsv` (40 questions
//! on five topics, 40 on none, some of those near a topic on purpose) by the test
//! `topic_threshold` in `tests/family.rs`, which fails if the numbers drop. Each topic is
//! compared as "a question about TOPIC" and as each of its parts ("dating and romance": dating,
//! romance), which found more than the bare words with no more false alarms. Measured on
//! 2026-12-07:
//!
//! | threshold | precision | recall |
//! |-----------|-----------|--------|
//! | 0.26      | 0.91      | 0.98   |
//! | 0.28      | 0.93      | 0.93   |
//! | **0.30**  | **0.95** (35 of the 37 caught) | **0.88** (35 of 40) |
//! | 0.34      | 1.00      | 0.82   |
//! | 0.40      | 1.00      | 0.75   |
//!
//! 0.30 leans towards catching: for a child, a question wrongly steered away ("What is a
//! healthy breakfast?" near "dieting and weight loss", and a funny film near "horror films":
//! the two false alarms) costs less than one let through.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use hearth_embed::Embedder;
use hearth_kernels::ThreadPool;

use crate::error::ApiError;
use crate::{AppState, EmbedModel};

/// Cosine similarity at or above which a text counts as being about a topic.
pub const THRESHOLD: f32 = 0.30;

/// Tokens of overlap between the windows a long text is cut into, so a sentence split by a
/// window's edge is still seen whole in the next one.
const OVERLAP: usize = 32;

/// Topic vectors already computed, by topic text: the keeper's list changes rarely and every
/// question of the child compares against all of it.
#[derive(Default)]
pub(crate) struct TopicCache(Mutex<HashMap<String, Vec<Arc<Vec<f32>>>>>);

/// The embeddings of `text`, cut into windows of at most the model's length (never truncated:
/// a long message is checked everywhere).
fn text_vectors(
    e: &Embedder,
    pool: &ThreadPool,
    text: &str,
) -> hearth_embed::Result<Vec<Vec<f32>>> {
    let ids = e.tokenize(text)?;
    // What the tokenizer puts around a text ([CLS], [SEP]) is put back around each window.
    let frame = e.frame(&[]);
    let mut inner: &[u32] = &ids;
    if let Some(open) = frame.first() {
        if inner.first() == Some(open) {
            inner = &inner[1..];
        }
    }
    if let (true, Some(close)) = (frame.len() > 1, frame.last()) {
        if inner.last() == Some(close) {
            inner = &inner[..inner.len() - 1];
        }
    }
    let room = e.max_tokens().saturating_sub(frame.len()).max(OVERLAP * 2);
    let mut windows = Vec::new();
    let mut at = 0;
    loop {
        let end = (at + room).min(inner.len());
        windows.push(e.frame(&inner[at..end]));
        if end == inner.len() {
            break;
        }
        at = end - OVERLAP;
    }
    e.embed_ids(windows, pool)
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na * nb)
    }
}

/// The topic `text` is closest to and how close (cosine similarity), over every window of the
/// text; `None` without topics. Blocking: call it off the async workers.
pub fn closest(
    e: &Embedder,
    pool: &ThreadPool,
    topics: &[(String, Arc<Vec<f32>>)],
    text: &str,
) -> hearth_embed::Result<Option<(String, f32)>> {
    if topics.is_empty() || text.trim().is_empty() {
        return Ok(None);
    }
    let mut best: Option<(String, f32)> = None;
    for v in text_vectors(e, pool, text)? {
        for (name, t) in topics {
            let s = cosine(&v, t);
            if best.as_ref().is_none_or(|b| s > b.1) {
                best = Some((name.clone(), s));
            }
        }
    }
    Ok(best)
}

/// What a topic is compared as: "a question about T", and the same for each part of a topic
/// the keeper wrote as several ("dating and romance": dating, romance). Measured on the
/// labelled set, this form finds more of the questions on a topic than the bare words, with no
/// more false alarms.
fn forms(topic: &str) -> Vec<String> {
    let mut out = vec![format!("a question about {topic}")];
    let parts: Vec<&str> = topic
        .split([',', ';', '/'])
        .flat_map(|p| p.split(" and "))
        .flat_map(|p| p.split(" or "))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    if parts.len() > 1 {
        out.extend(parts.iter().map(|p| format!("a question about {p}")));
    }
    out
}

/// Each topic's vectors (one per form it is compared as), named by the topic.
pub fn topic_vectors(
    e: &Embedder,
    pool: &ThreadPool,
    topics: &[String],
) -> hearth_embed::Result<Vec<(String, Arc<Vec<f32>>)>> {
    let mut out = Vec::new();
    for t in topics {
        let forms = forms(t);
        let texts: Vec<&str> = forms.iter().map(String::as_str).collect();
        for v in e.embed(&texts, pool)? {
            out.push((t.clone(), Arc::new(v)));
        }
    }
    Ok(out)
}

impl TopicCache {
    fn vectors(
        &self,
        e: &Embedder,
        pool: &ThreadPool,
        topics: &[String],
    ) -> hearth_embed::Result<Vec<(String, Arc<Vec<f32>>)>> {
        let mut out = Vec::new();
        let mut missing = Vec::new();
        {
            let cache = self.0.lock().unwrap_or_else(|p| p.into_inner());
            for t in topics {
                match cache.get(t) {
                    Some(vs) => out.extend(vs.iter().map(|v| (t.clone(), v.clone()))),
                    None => missing.push(t.clone()),
                }
            }
        }
        let fresh = topic_vectors(e, pool, &missing)?;
        let mut cache = self.0.lock().unwrap_or_else(|p| p.into_inner());
        // The cache holds the topics of every child; a keeper rewriting lists all day is the
        // only way it grows, and a few hundred vectors are a few hundred kilobytes.
        if cache.len() > 1000 {
            cache.clear();
        }
        for (t, v) in &fresh {
            cache.entry(t.clone()).or_default().push(v.clone());
        }
        out.extend(fresh);
        Ok(out)
    }
}

/// How much of a child's reply the topic check looks at each time: the newest part, so a reply
/// that drifts onto a topic is caught where it drifts.
pub const REPLY_WINDOW_CHARS: usize = 600;

/// What a child's reply is checked as when `held`, its newest text, is about to be shown: all of
/// `held`, after as much of the text shown before it (`passed`) as fits in `window` characters,
/// so a reply that drifts onto a topic is caught where it drifts.
pub fn reply_window(passed: &str, held: &str, window: usize) -> String {
    let room = window.saturating_sub(held.chars().count());
    let start = passed
        .char_indices()
        .rev()
        .take(room)
        .last()
        .map_or(passed.len(), |(i, _)| i);
    format!("{}{held}", &passed[start..])
}

/// The embedding model, if this server has one: the topic check needs it.
pub(crate) fn model(state: &AppState) -> Option<Arc<EmbedModel>> {
    state.embed.clone()
}

/// The keeper's topic `text` is about, if any (at or above [`THRESHOLD`]). `Ok(None)` also when
/// there is no embedding model: the system prompt alone steers then.
pub(crate) async fn check(
    state: &Arc<AppState>,
    topics: &[String],
    text: &str,
) -> Result<Option<String>, ApiError> {
    let Some(m) = model(state) else {
        return Ok(None);
    };
    if topics.is_empty() {
        return Ok(None);
    }
    let (state, topics, text) = (state.clone(), topics.to_vec(), text.to_string());
    tokio::task::spawn_blocking(move || {
        let h = crate::household::session::household(&state)?;
        let pool = &state.embed_pool;
        let vectors = h
            .topics
            .vectors(&m.embedder, pool, &topics)
            .map_err(|e| ApiError::internal(format!("the topic check failed: {e}")))?;
        let best = closest(&m.embedder, pool, &vectors, &text)
            .map_err(|e| ApiError::internal(format!("the topic check failed: {e}")))?;
        Ok(best.filter(|(_, s)| *s >= THRESHOLD).map(|(t, _)| t))
    })
    .await
    .map_err(|e| ApiError::internal(format!("the topic check failed: {e}")))?
}
