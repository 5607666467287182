//! Counters for `GET /metrics`, in Prometheus' text format.
//!
//! Written by the engine thread and the handlers with relaxed atomics (a scrape may see one
//! counter a step ahead of another, which Prometheus tolerates), except the per-endpoint request
//! counts, which sit behind a mutex touched once per request.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use hearth_engine::Engine;

/// Upper bounds of the sequences-per-step histogram.
const STEP_BUCKETS: [u64; 12] = [1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 24, 32];

#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    generated: AtomicU64,
    prompt: AtomicU64,
    prompt_cached: AtomicU64,
    cancelled: AtomicU64,
    queue_depth: AtomicU64,
    running: AtomicU64,
    kv_used: AtomicU64,
    kv_cached: AtomicU64,
    kv_total: AtomicU64,
    step_buckets: [AtomicU64; STEP_BUCKETS.len()],
    step_count: AtomicU64,
    step_sum: AtomicU64,
    /// Generation rate over recent steps, tokens per second, as f64 bits.
    tok_s: AtomicU64,
    step_seconds_micros: AtomicU64,
    in_flight: AtomicU64,
    spec_drafted: AtomicU64,
    spec_accepted: AtomicU64,
    /// The draft model's share of the two above.
    spec_model_drafted: AtomicU64,
    spec_model_accepted: AtomicU64,
}

/// Counts a request as in flight until dropped.
pub struct InFlight(std::sync::Arc<Metrics>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics::default()
    }

    pub fn request(&self, endpoint: &str, status: u16) {
        let mut m = self
            .requests
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *m.entry((endpoint.to_string(), status)).or_default() += 1;
    }

    /// Marks a generation request in flight for the guard's lifetime.
    pub fn enter(self: &std::sync::Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }

    /// Generation requests queued or running.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed) as usize
    }

    pub fn prompt_tokens(&self, n: usize, cached: usize) {
        self.prompt.fetch_add(n as u64, Ordering::Relaxed);
        self.prompt_cached
            .fetch_add(cached as u64, Ordering::Relaxed);
    }

    pub fn cancelled(&self) {
        self.cancelled.fetch_add(1, Ordering::Relaxed);
    }

    /// One engine step that carried `seqs` sequences and produced `generated` tokens.
    pub fn step(&self, seqs: usize, generated: usize, seconds: f64) {
        let seqs = seqs as u64;
        for (b, &le) in self.step_buckets.iter().zip(&STEP_BUCKETS) {
            if seqs <= le {
                b.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.step_count.fetch_add(1, Ordering::Relaxed);
        self.step_sum.fetch_add(seqs, Ordering::Relaxed);
        self.generated
            .fetch_add(generated as u64, Ordering::Relaxed);
        self.step_seconds_micros
            .fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
        if seconds > 0.0 {
            // Exponential average over roughly the last 20 steps.
            let now = generated as f64 / seconds;
            let old = f64::from_bits(self.tok_s.load(Ordering::Relaxed));
            let avg = if old == 0.0 {
                now
            } else {
                old * 0.95 + now * 0.05
            };
            self.tok_s.store(avg.to_bits(), Ordering::Relaxed);
        }
    }

    /// Tokens speculation drafted and the model confirmed in one engine step.
    pub fn speculation(&self, counts: hearth_engine::SpecCounts) {
        self.spec_drafted
            .fetch_add(counts.drafted, Ordering::Relaxed);
        self.spec_accepted
            .fetch_add(counts.accepted, Ordering::Relaxed);
        self.spec_model_drafted
            .fetch_add(counts.model_drafted, Ordering::Relaxed);
        self.spec_model_accepted
            .fetch_add(counts.model_accepted, Ordering::Relaxed);
    }

    /// Whether nothing is generating or waiting to (as of the engine's last step).
    pub fn idle(&self) -> bool {
        self.queue_depth.load(Ordering::Relaxed) == 0 && self.running.load(Ordering::Relaxed) == 0
    }

    pub fn set_gauges(&self, queued: usize, running: usize, engine: &Engine) {
        self.queue_depth.store(queued as u64, Ordering::Relaxed);
        self.running.store(running as u64, Ordering::Relaxed);
        let kv = engine.kv_stats();
        self.kv_used.store(kv.used_blocks as u64, Ordering::Relaxed);
        self.kv_cached
            .store(kv.cached_blocks as u64, Ordering::Relaxed);
        self.kv_total
            .store(kv.total_blocks as u64, Ordering::Relaxed);
    }

    /// KV blocks held by running sequences (for tests and the page).
    pub fn kv_blocks_used(&self) -> u64 {
        self.kv_used.load(Ordering::Relaxed)
    }

    /// Everything, in Prometheus' text exposition format.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        s.push_str("# HELP hearth_requests_total HTTP requests answered, by endpoint and status.\n# TYPE hearth_requests_total counter\n");
        for ((endpoint, status), n) in self
            .requests
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .iter()
        {
            let _ = writeln!(
                s,
                "hearth_requests_total{{endpoint=\"{endpoint}\",status=\"{status}\"}} {n}"
            );
        }
        let mut one = |name: &str, kind: &str, help: &str, v: String| {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}");
        };
        one(
            "hearth_generated_tokens_total",
            "counter",
            "Tokens generated.",
            g(&self.generated).to_string(),
        );
        one(
            "hearth_prompt_tokens_total",
            "counter",
            "Prompt tokens admitted.",
            g(&self.prompt).to_string(),
        );
        one(
            "hearth_prompt_tokens_cached_total",
            "counter",
            "Prompt tokens served from the prefix cache instead of being computed.",
            g(&self.prompt_cached).to_string(),
        );
        one(
            "hearth_spec_drafted_tokens_total",
            "counter",
            "Tokens drafted by speculative decoding (prompt lookup and any draft model) and verified by the model.",
            g(&self.spec_drafted).to_string(),
        );
        one(
            "hearth_spec_accepted_tokens_total",
            "counter",
            "Drafted tokens the model confirmed: each one a forward pass saved.",
            g(&self.spec_accepted).to_string(),
        );
        one(
            "hearth_spec_draft_model_drafted_tokens_total",
            "counter",
            "Of the drafted tokens, those the draft model (--draft) drafted; the rest came from prompt lookup.",
            g(&self.spec_model_drafted).to_string(),
        );
        one(
            "hearth_spec_draft_model_accepted_tokens_total",
            "counter",
            "Of the accepted tokens, those the draft model drafted.",
            g(&self.spec_model_accepted).to_string(),
        );
        one(
            "hearth_cancelled_total",
            "counter",
            "Sequences cancelled because their client went away.",
            g(&self.cancelled).to_string(),
        );
        one(
            "hearth_queue_depth",
            "gauge",
            "Requests waiting for the engine.",
            g(&self.queue_depth).to_string(),
        );
        one(
            "hearth_running_sequences",
            "gauge",
            "Sequences in the engine.",
            g(&self.running).to_string(),
        );
        one(
            "hearth_kv_blocks_used",
            "gauge",
            "KV cache blocks held by running sequences.",
            g(&self.kv_used).to_string(),
        );
        one(
            "hearth_kv_blocks_cached",
            "gauge",
            "KV cache blocks kept for prefix reuse (evictable).",
            g(&self.kv_cached).to_string(),
        );
        one(
            "hearth_kv_blocks_total",
            "gauge",
            "KV cache blocks in the budget.",
            g(&self.kv_total).to_string(),
        );
        one(
            "hearth_generation_tokens_per_second",
            "gauge",
            "Generated tokens per second over recent engine steps.",
            format!("{:.2}", f64::from_bits(g(&self.tok_s))),
        );
        one(
            "hearth_step_seconds_total",
            "counter",
            "Time spent in engine steps.",
            format!("{:.6}", g(&self.step_seconds_micros) as f64 / 1e6),
        );
        s.push_str("# HELP hearth_step_sequences Sequences carried by one engine step.\n# TYPE hearth_step_sequences histogram\n");
        for (b, le) in self.step_buckets.iter().zip(STEP_BUCKETS) {
            let _ = writeln!(s, "hearth_step_sequences_bucket{{le=\"{le}\"}} {}", g(b));
        }
        let count = g(&self.step_count);
        let _ = writeln!(s, "hearth_step_sequences_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(s, "hearth_step_sequences_sum {}", g(&self.step_sum));
        let _ = writeln!(s, "hearth_step_sequences_count {count}");
        s
    }
}
