//! The plan's memory prediction against Hearth's measured peak memory (issue 4): on the real
//! SmolLM2 and Gemma 3 models, `hearth plan --json`'s `total_bytes` must be within 10% of the
//! peak resident memory (`VmHWM`) of `hearth bench --fill`, which loads the model as `run` and
//! `serve` do and fills every context with its own prompt, for 512 × 1 user, 2048 × 1,
//! 8192 × 1 and 2048 × 4 users.
//!
//! Both sides come from running the built binary; nothing is compared against typed numbers.
//! The fills prefill 18,944 tokens per model, about three minutes for both on two quiet cores.

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

/// Largest accepted |predicted − measured| / measured.
const TOLERANCE: f64 = 0.10;

/// The request shapes the issue names: (context per user, users).
const CASES: [(usize, usize); 4] = [(512, 1), (2048, 1), (8192, 1), (2048, 4)];

fn hearth_json(args: &[&str], home: &Path) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(args)
        .env("HEARTH_HOME", home)
        .stdin(Stdio::null())
        .output()
        .expect("run hearth");
    assert!(
        out.status.success(),
        "hearth {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON object")
}

fn u64_of(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} should be a non-negative integer: {v}"))
}

/// Plans and measures every case on `model`, prints the table, and fails on the first case
/// outside the tolerance (after printing them all).
fn check(model: &str) {
    // One model at a time: two fills on the same cores would each run their thread pool on
    // half a machine and take more than twice as long.
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let path = hearth_fetch::test_model(model).expect("test model");
    let p = path.to_str().unwrap();
    // An empty data directory: no calibration or catalog changes leak in.
    let home = tempfile::tempdir().unwrap();
    let mut worst = 0.0f64;
    let mut lines = Vec::new();
    for (ctx, users) in CASES {
        let (ctx_s, users_s) = (ctx.to_string(), users.to_string());
        let common = ["--ctx", &ctx_s, "--users", &users_s, "--json"];
        let plan = hearth_json(&[&["plan", p][..], &common].concat(), home.path());
        let bench = hearth_json(
            &[&["bench", p, "--fill"][..], &common].concat(),
            home.path(),
        );
        let predicted = u64_of(&plan, "total_bytes") as f64;
        let measured = u64_of(&bench, "peak_rss_bytes") as f64;
        assert!(measured > 0.0, "no VmHWM reported: {bench}");
        assert_eq!(
            u64_of(&bench, "kv_capacity_bytes"),
            u64_of(&plan, "kv_bytes"),
            "the plan's KV is what the engine reserved"
        );
        let err = (predicted - measured) / measured;
        worst = worst.max(err.abs());
        let mib = |b: f64| b / 1048576.0;
        lines.push(format!(
            "{model:<14} {ctx:>5} × {users}  predicted {:>7.1} MiB  measured {:>7.1} MiB  \
             {:>+6.1}%  (file {:.1}, KV {:.1}, compute {:.1}, runtime {:.1} MiB; filled in \
             {:.1} s)",
            mib(predicted),
            mib(measured),
            err * 100.0,
            mib(u64_of(&plan, "weights_bytes") as f64 + u64_of(&plan, "header_bytes") as f64),
            mib(u64_of(&plan, "kv_bytes") as f64),
            mib(u64_of(&plan, "compute_bytes") as f64),
            mib(u64_of(&plan, "runtime_bytes") as f64),
            bench["fill_s"].as_f64().unwrap_or(0.0),
        ));
    }
    eprintln!("{}", lines.join("\n"));
    assert!(
        worst <= TOLERANCE,
        "predicted peak RSS off by {:.1}% at worst (limit {:.0}%):\n{}",
        worst * 100.0,
        TOLERANCE * 100.0,
        lines.join("\n")
    );
}

#[test]
fn smollm2_peak_rss_is_predicted_within_10_percent() {
    check("smollm2-135m");
}

#[test]
fn gemma3_peak_rss_is_predicted_within_10_percent() {
    check("gemma3-270m");
}
