//! `hearth plan` end to end (issue 4): JSON fields, fit decisions, advice and clean errors.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use hearth_gguf::Gguf;
use hearth_model::testing::TinySpec;
use serde_json::Value;

fn hearth(args: &[&str], home: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hearth"))
        .arg("plan")
        .args(args)
        .env("HEARTH_HOME", home)
        .stdin(Stdio::null())
        .output()
        .expect("run hearth")
}

fn json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "hearth plan failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("plan --json prints one JSON object")
}

/// A failure is one clear line on stderr naming `needle`, and no panic.
fn assert_clean_failure(out: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "expected failure; stderr: {err}");
    assert!(!err.contains("panicked"), "hearth panicked: {err}");
    assert!(
        err.contains(needle),
        "stderr should mention {needle:?}: {err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "one line expected: {err}");
}

fn tensor_bytes(path: &Path) -> u64 {
    let gguf = Gguf::open(path).expect("open gguf");
    gguf.tensors().iter().map(|t| t.n_bytes).sum()
}

fn u64_of(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} should be a non-negative integer: {v}"))
}

fn f64_of(v: &Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} should be a number: {v}"))
}

#[test]
fn tiny_model_plan_counts_its_tensors_and_kv() {
    let home = tempfile::tempdir().unwrap();
    let spec = TinySpec::new("llama");
    let path = home.path().join("tiny.gguf");
    std::fs::write(&path, spec.build()).unwrap();
    let p = path.to_str().unwrap();
    let v = json(&hearth(
        &[
            p,
            "--machine",
            "pc-16",
            "--ctx",
            "256",
            "--users",
            "2",
            "--json",
        ],
        home.path(),
    ));
    assert_eq!(v["fits"], true);
    assert_eq!(u64_of(&v, "weights_bytes"), tensor_bytes(&path));
    let per_token = (spec.n_layer * spec.n_kv_head * spec.head_dim * 2 * 2) as u64;
    assert_eq!(u64_of(&v, "kv_bytes_per_token"), per_token);
    // Full attention, 256 positions = 16 whole blocks: no rounding.
    assert_eq!(u64_of(&v, "kv_bytes"), 2 * 256 * per_token);
    assert_eq!(
        u64_of(&v, "total_bytes"),
        u64_of(&v, "weights_bytes")
            + u64_of(&v, "header_bytes")
            + u64_of(&v, "kv_bytes")
            + u64_of(&v, "compute_bytes")
            + u64_of(&v, "runtime_bytes")
    );
    // The header and the weights are the whole file.
    assert_eq!(
        u64_of(&v, "weights_bytes") + u64_of(&v, "header_bytes"),
        std::fs::metadata(&path).unwrap().len()
    );
    assert_eq!(u64_of(&v, "max_ctx_per_user"), spec.ctx as u64);
    assert_eq!(v["machine"]["name"], "pc-16");
}

#[test]
fn smollm2_fits_a_16_gb_pc_and_not_100_mib() {
    let home = tempfile::tempdir().unwrap();
    let path = hearth_fetch::test_model("smollm2-135m").expect("SmolLM2 test model");
    let p = path.to_str().unwrap();
    let v = json(&hearth(
        &[p, "--machine", "pc-16", "--ctx", "2048", "--json"],
        home.path(),
    ));
    assert_eq!(v["fits"], true);
    assert_eq!(u64_of(&v, "weights_bytes"), tensor_bytes(&path));
    // 30 layers × 3 KV heads × 64 dims × (K + V) × 2 bytes.
    assert_eq!(u64_of(&v, "kv_bytes_per_token"), 23040);
    assert!(u64_of(&v, "total_bytes") > u64_of(&v, "weights_bytes"));
    assert_eq!(u64_of(&v, "max_ctx_per_user"), 8192);
    let tg = f64_of(&v, "est_tg_tok_s");
    let pp = f64_of(&v, "est_pp_tok_s");
    // 89.6 GB/s × 0.6 over ~140 MB read per token: a few hundred tokens per second.
    assert!(tg > 50.0 && tg < 2000.0, "est_tg_tok_s {tg}");
    assert!(pp > tg, "prompt {pp} should beat generation {tg}");
    assert!(v["advice"].as_array().unwrap().is_empty());

    let small = json(&hearth(
        &[
            p,
            "--ctx",
            "2048",
            "--memory",
            "100MiB",
            "--bandwidth",
            "50GB/s",
            "--json",
        ],
        home.path(),
    ));
    assert_eq!(small["fits"], false);
    assert!(small["headroom_bytes"].as_i64().unwrap() < 0);
    let advice = small["advice"].as_array().unwrap();
    assert!(
        !advice.is_empty(),
        "no advice when it does not fit: {small}"
    );
    assert!(advice
        .iter()
        .any(|a| a.as_str().unwrap().contains("quantization")));

    // Enough for the weights, not for 2048 × 4 users: advice to shorten or to serve fewer.
    let mid = json(&hearth(
        &[
            p,
            "--ctx",
            "2048",
            "--users",
            "4",
            "--memory",
            "250MiB",
            "--bandwidth",
            "50GB/s",
            "--json",
        ],
        home.path(),
    ));
    assert_eq!(mid["fits"], false);
    let text = mid["advice"].to_string();
    assert!(text.contains("--ctx") && text.contains("--users"), "{text}");
    assert!(
        text.contains("pc-16"),
        "another profile should be offered: {text}"
    );
    let max_users = u64_of(&mid, "max_users_at_ctx");
    assert!((1..4).contains(&max_users), "{mid}");

    // The table says the same in words, and a GPU profile is labelled as an estimate.
    let out = hearth(&[p, "--machine", "rtx-4090"], home.path());
    assert!(out.status.success());
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("fits             yes"), "{table}");
    assert!(table.contains("not Hearth measurements"), "{table}");
}

#[test]
fn this_machine_is_detected() {
    let home = tempfile::tempdir().unwrap();
    let path = home.path().join("tiny.gguf");
    std::fs::write(&path, TinySpec::new("llama").build()).unwrap();
    let v = json(&hearth(&[path.to_str().unwrap(), "--json"], home.path()));
    assert_eq!(v["machine"]["name"], "this");
    assert!(v["machine"]["memory_bytes"].as_u64().unwrap() > 0);
    assert!(v["machine"]["bandwidth_bytes_per_s"].as_f64().unwrap() > 1e8);
    assert!(u64_of(&v, "usable_bytes") <= v["machine"]["memory_bytes"].as_u64().unwrap());
}

#[test]
fn bad_input_gives_clear_errors() {
    let home = tempfile::tempdir().unwrap();
    let junk = home.path().join("junk.gguf");
    std::fs::write(&junk, b"this is not a model file at all").unwrap();
    let tiny = home.path().join("tiny.gguf");
    std::fs::write(&tiny, TinySpec::new("llama").build()).unwrap();
    let t = tiny.to_str().unwrap();
    let h = home.path();
    assert_clean_failure(
        &hearth(&[junk.to_str().unwrap(), "--machine", "pc-16"], h),
        "not a GGUF file",
    );
    assert_clean_failure(&hearth(&[t, "--machine", "rtx-9999"], h), "rtx-4090");
    assert_clean_failure(
        &hearth(&[t, "--machine", "pc-16", "--users", "0"], h),
        "--users",
    );
    assert_clean_failure(
        &hearth(&[t, "--machine", "pc-16", "--ctx", "0"], h),
        "--ctx",
    );
    assert_clean_failure(&hearth(&[t, "--memory", "24 parsecs"], h), "24 parsecs");
    assert_clean_failure(
        &hearth(&[t, "--machine", "pc-16", "--kv-type", "q2"], h),
        "q8_0",
    );
    // A catalog model that is not installed: nothing is downloaded, and the error says how.
    assert_clean_failure(&hearth(&["smollm2-135m"], h), "hearth pull smollm2-135m");
}

/// A local HTTP server for `file` that honours `Range: bytes=a-b` when `ranges`, else sends the
/// whole file; it counts the body bytes it writes. Serves until the test process ends.
fn serve(file: Vec<u8>, ranges: bool) -> (String, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/model.gguf", listener.local_addr().unwrap());
    let served = Arc::new(AtomicU64::new(0));
    let count = served.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut range = None;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                if let Some(r) = lower.strip_prefix("range: bytes=") {
                    let (a, b) = r.trim().split_once('-').unwrap();
                    let a: usize = a.parse().unwrap();
                    let b = b
                        .parse::<usize>()
                        .map_or(file.len() - 1, |b| b.min(file.len() - 1));
                    range = Some((a, b));
                }
            }
            let (status, body, extra) = match range.filter(|_| ranges) {
                Some((a, b)) => (
                    "206 Partial Content",
                    &file[a..=b],
                    format!("Content-Range: bytes {a}-{b}/{}\r\n", file.len()),
                ),
                None => ("200 OK", &file[..], String::new()),
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n",
                body.len()
            );
            if conn.write_all(head.as_bytes()).is_err() {
                continue;
            }
            // Counted in pieces so a client that hangs up early is not charged for the rest.
            for piece in body.chunks(16 << 10) {
                if conn.write_all(piece).is_err() {
                    break;
                }
                count.fetch_add(piece.len() as u64, Ordering::SeqCst);
            }
        }
    });
    (url, served)
}

/// The plan without the fields that name where the model came from.
fn comparable(mut v: Value) -> Value {
    let o = v.as_object_mut().unwrap();
    for key in ["model", "path", "notes"] {
        o.remove(key);
    }
    v
}

#[test]
fn url_plan_reads_only_the_header_and_matches_the_local_plan() {
    let home = tempfile::tempdir().unwrap();
    let path = hearth_fetch::test_model("smollm2-135m").expect("SmolLM2 test model");
    let bytes = std::fs::read(&path).unwrap();
    let data_offset = Gguf::open(&path).unwrap().header().data_offset;
    let args = ["--machine", "pc-16", "--ctx", "2048", "--json"];
    let local = json(&hearth(
        &[&[path.to_str().unwrap()][..], &args].concat(),
        home.path(),
    ));

    let (url, served) = serve(bytes.clone(), true);
    let remote = json(&hearth(&[&[url.as_str()][..], &args].concat(), home.path()));
    let n = served.load(Ordering::SeqCst);
    assert!(
        n <= data_offset + (256 << 10),
        "served {n} bytes for a header of {data_offset}"
    );
    eprintln!("URL plan: {n} bytes served for a header of {data_offset}");
    assert_eq!(remote["model"], "model.gguf");
    assert!(!remote["notes"].to_string().contains("range requests"));
    assert_eq!(comparable(remote), comparable(local.clone()));

    // A catalog model with a URL source that is not installed is planned from that URL.
    let catalog = format!(
        "[[model]]\nname = \"remote-smol\"\nsha256 = \"{}\"\nsize = {}\n\n[model.source]\n\
         kind = \"url\"\nurl = \"{url}\"\n",
        "ab".repeat(32),
        bytes.len()
    );
    std::fs::write(home.path().join("catalog.toml"), catalog).unwrap();
    let by_name = json(&hearth(
        &[&["remote-smol"][..], &args].concat(),
        home.path(),
    ));
    assert_eq!(by_name["model"], "remote-smol");
    assert_eq!(comparable(by_name), comparable(local.clone()));

    // Without range support the header is streamed, and the output says so.
    let (url, _) = serve(bytes, false);
    let streamed = json(&hearth(&[&[url.as_str()][..], &args].concat(), home.path()));
    assert!(
        streamed["notes"].to_string().contains("range requests"),
        "{streamed}"
    );
    assert_eq!(comparable(streamed), comparable(local));

    let (junk, _) = serve(b"this is not a model".to_vec(), true);
    assert_clean_failure(
        &hearth(&[&junk, "--machine", "pc-16"], home.path()),
        "not a GGUF",
    );
}

/// A data directory holding `file` installed as catalog model `name` (a URL entry of the
/// keeper's catalog that is never fetched, and an index record).
fn home_with_installed(name: &str, file: &[u8]) -> tempfile::TempDir {
    let home = tempfile::tempdir().unwrap();
    let models = home.path().join("models");
    std::fs::create_dir_all(&models).unwrap();
    std::fs::write(models.join(format!("{name}.gguf")), file).unwrap();
    let catalog = format!(
        "[[model]]\nname = \"{name}\"\nsha256 = \"{}\"\nsize = {}\n\n[model.source]\n\
         kind = \"url\"\nurl = \"http://127.0.0.1:9/{name}.gguf\"\n",
        "cd".repeat(32),
        file.len()
    );
    std::fs::write(home.path().join("catalog.toml"), catalog).unwrap();
    hearth_fetch::index::record(
        &hearth_fetch::Home::at(home.path()),
        &hearth_fetch::Installed {
            name: name.to_string(),
            path: format!("models/{name}.gguf"),
            sha256: "cd".repeat(32),
            size: file.len() as u64,
            source: "test".to_string(),
            pulled_at: "2026-01-01T00:00:00Z".to_string(),
            verified: None,
        },
    )
    .unwrap();
    home
}

#[test]
fn calibrate_stores_efficiencies_that_later_plans_use() {
    let home = home_with_installed("tiny", &TinySpec::new("llama").build());
    let h = home.path();
    let cal = json(&hearth(&["--calibrate", "--json"], h));
    let c = &cal["calibration"];
    assert_eq!(c["model"], "tiny");
    let date = c["date"].as_str().unwrap();
    assert!(
        date.len() == 10 && date.as_bytes()[4] == b'-' && date.starts_with("20"),
        "{date}"
    );
    let tg_eff = f64_of(c, "tg_efficiency");
    let pp_eff = f64_of(c, "pp_efficiency");
    assert!(tg_eff > 0.0 && tg_eff.is_finite(), "{c}");
    assert!(pp_eff > 0.0 && pp_eff.is_finite(), "{c}");
    // On the model it was measured on, the calibrated prediction is the measurement.
    let row = &cal["check"][0];
    assert_eq!(row["model"], "tiny");
    assert!((f64_of(row, "ratio") - 1.0).abs() < 1e-9, "{row}");
    let stored: Value =
        serde_json::from_slice(&std::fs::read(h.join("calibration.json")).unwrap()).unwrap();
    assert_eq!(&stored, c);

    // Later plans of this machine use it, and say so; profiles do not.
    let v = json(&hearth(&["tiny", "--ctx", "256", "--json"], h));
    let notes = v["notes"].to_string();
    assert!(notes.contains(&format!("calibrated on {date}")), "{notes}");
    assert_eq!(
        f64_of(&v["machine"], "bandwidth_bytes_per_s"),
        f64_of(c, "bandwidth_bytes_per_s")
    );
    let p = json(&hearth(&["tiny", "--machine", "pc-16", "--json"], h));
    assert!(p["notes"].to_string().contains("uncalibrated"));

    // A calibration from another machine is not used, and the plan says why.
    let mut other = stored.clone();
    other["machine"]["cores"] = Value::from(4096);
    std::fs::write(h.join("calibration.json"), other.to_string()).unwrap();
    let v = json(&hearth(&["tiny", "--ctx", "256", "--json"], h));
    let notes = v["notes"].to_string();
    assert!(
        notes.contains("another machine") && notes.contains("uncalibrated"),
        "{notes}"
    );

    // Nothing installed: a clear error.
    let empty = tempfile::tempdir().unwrap();
    assert_clean_failure(&hearth(&["--calibrate"], empty.path()), "hearth pull");
}

#[test]
fn recommend_lists_what_fits_best_first() {
    let path = hearth_fetch::test_model("smollm2-135m").expect("SmolLM2 test model");
    let bytes = std::fs::read(&path).unwrap();
    let home = tempfile::tempdir().unwrap();
    // One catalog model readable over HTTP, so its header gives exact facts.
    let (url, _) = serve(bytes.clone(), true);
    let catalog = format!(
        "[[model]]\nname = \"remote-smol\"\nsha256 = \"{}\"\nsize = {}\n\n[model.source]\n\
         kind = \"url\"\nurl = \"{url}\"\n",
        "ab".repeat(32),
        bytes.len()
    );
    std::fs::write(home.path().join("catalog.toml"), catalog).unwrap();
    let h = home.path();
    let v = json(&hearth(
        &[
            "--recommend",
            "--machine",
            "pc-16",
            "--ctx",
            "2048",
            "--json",
        ],
        h,
    ));
    let picks = v["picks"].as_array().unwrap();
    assert!(!picks.is_empty(), "{v}");
    let usable = u64_of(&v["machine"], "memory_bytes") - u64_of(&v["machine"], "reserved_bytes");
    for p in picks {
        assert_eq!(p["fits"], true);
        assert!(u64_of(p, "total_bytes") <= usable, "{p}");
    }
    // The catalog file itself, planned from its header, equals `hearth plan` on it.
    let own = picks
        .iter()
        .find(|p| p["model"] == "remote-smol" && p["basis"] == "catalog")
        .expect("the catalog file is listed");
    let direct = json(&hearth(
        &[
            path.to_str().unwrap(),
            "--machine",
            "pc-16",
            "--ctx",
            "2048",
            "--json",
        ],
        h,
    ));
    assert_eq!(own["total_bytes"], direct["total_bytes"]);
    assert_eq!(own["est_tg_tok_s"], direct["est_tg_tok_s"]);
    // Other quantizations are offered, marked as estimates, with weights that follow the bits.
    let q8 = picks
        .iter()
        .find(|p| p["model"] == "remote-smol" && p["quantization"] == "Q8_0")
        .expect("a Q8_0 estimate");
    assert_eq!(q8["basis"], "estimated");
    assert!(u64_of(q8, "weights_bytes") > u64_of(own, "weights_bytes"));
    assert!(f64_of(q8, "est_tg_tok_s") < f64_of(own, "est_tg_tok_s"));
    // Best first: for one model, more bits before fewer.
    let bits: Vec<f64> = picks
        .iter()
        .filter(|p| p["model"] == "remote-smol")
        .map(|p| f64_of(p, "bits_per_weight"))
        .collect();
    assert!(bits.windows(2).all(|w| w[0] >= w[1]), "{bits:?}");
    // Catalog models that are not installed are planned from their size, and said to be.
    assert!(v["notes"].to_string().contains("file size"), "{v}");

    // A machine with room for the smallest quantizations only lists those.
    let small = json(&hearth(
        &[
            "--recommend",
            "--memory",
            "150MiB",
            "--bandwidth",
            "50GB/s",
            "--ctx",
            "2048",
            "--json",
        ],
        h,
    ));
    let names: Vec<String> = small["picks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| format!("{} {}", p["model"], p["quantization"]))
        .collect();
    assert!(!names.is_empty() && names.len() < picks.len(), "{names:?}");
    assert!(!names.iter().any(|n| n.contains("F16")), "{names:?}");

    let table = hearth(&["--recommend", "--machine", "rtx-4090"], h);
    assert!(table.status.success());
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("remote-smol") && text.contains("not Hearth measurements"),
        "{text}"
    );
}

#[test]
fn nvidia_gpus_are_planned_beside_the_cpu() {
    let home = tempfile::tempdir().unwrap();
    let tiny = home.path().join("tiny.gguf");
    std::fs::write(&tiny, TinySpec::new("llama").build()).unwrap();
    // A stand-in for nvidia-smi that answers the query as the real one does.
    let smi = home.path().join("nvidia-smi");
    std::fs::write(
        &smi,
        "#!/bin/sh\necho 'NVIDIA GeForce RTX 4090, 24564, 1500'\necho 'NVIDIA Mystery, 8192, 0'\n",
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&smi, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let run = |smi: &Path| {
        Command::new(env!("CARGO_BIN_EXE_hearth"))
            .args(["plan", tiny.to_str().unwrap(), "--ctx", "256", "--json"])
            .env("HEARTH_HOME", home.path())
            .env("HEARTH_NVIDIA_SMI", smi)
            .output()
            .expect("run hearth")
    };
    let v = json(&run(&smi));
    // The CPU plan stays what Hearth runs on.
    assert_eq!(v["machine"]["kind"], "cpu");
    let gpus = v["gpus"].as_array().unwrap();
    assert_eq!(gpus.len(), 2, "{v}");
    assert_eq!(gpus[0]["gpu"]["name"], "NVIDIA GeForce RTX 4090");
    assert_eq!(gpus[0]["profile"], "rtx-4090");
    assert_eq!(gpus[0]["plan"]["fits"], true);
    assert_eq!(gpus[0]["plan"]["speed_is_gpu_estimate"], true);
    assert_eq!(
        u64_of(&gpus[0]["plan"], "usable_bytes"),
        (24564 - 1500) << 20
    );
    assert!(f64_of(&gpus[0]["plan"], "est_tg_tok_s") > 0.0);
    // An unknown GPU: fit from its memory, no speed.
    assert!(gpus[1]["profile"].is_null());
    assert!(v["notes"]
        .to_string()
        .contains("estimates for a GPU engine"));

    // Without nvidia-smi: no GPUs, no error.
    let v = json(&run(&home.path().join("no-such-program")));
    assert_eq!(v["gpus"].as_array().unwrap().len(), 0);
}

/// A file whose `block_count` is 2^31: `plan` spun for over a minute and `run` aborted while
/// reserving 1.3 TB. Both now refuse it in one line that names the key.
#[test]
fn plan_and_run_refuse_a_file_that_lies_about_its_layers() {
    let home = tempfile::tempdir().unwrap();
    let path = home.path().join("lying.gguf");
    let spec = TinySpec {
        metadata_overrides: vec![(
            "llama.block_count".to_string(),
            hearth_gguf::Value::U32(1 << 31),
        )],
        ..TinySpec::new("llama")
    };
    std::fs::write(&path, spec.build()).unwrap();
    let p = path.to_str().unwrap();
    let says = "llama.block_count = 2147483648, but the file has tensors for 6 layers";
    assert_clean_failure(&hearth(&[p, "--machine", "pc-16"], home.path()), says);
    let run = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(["run", p, "--raw", "hi"])
        .env("HEARTH_HOME", home.path())
        .stdin(Stdio::null())
        .output()
        .expect("run hearth");
    assert_clean_failure(&run, says);
}

/// `--machine this` lists the GPU adapters wgpu finds and which `--device` choice would use
/// each. CI has only Mesa's lavapipe (scripts/gpu-drivers): a software adapter, which `auto`
/// never takes and `gpu` takes because it is the only one.
#[test]
fn this_machine_lists_its_gpu_adapters() {
    let home = tempfile::tempdir().unwrap();
    let tiny = home.path().join("tiny.gguf");
    std::fs::write(&tiny, TinySpec::new("llama").build()).unwrap();
    let run = |json_out: bool| {
        let mut args = vec![
            "plan",
            tiny.to_str().unwrap(),
            "--ctx",
            "256",
            "--machine",
            "this",
        ];
        if json_out {
            args.push("--json");
        }
        Command::new(env!("CARGO_BIN_EXE_hearth"))
            .args(args)
            .env("HEARTH_HOME", home.path())
            .output()
            .expect("run hearth")
    };
    let v = json(&run(true));
    let adapters = v["adapters"].as_array().expect("an adapters list");
    let soft = adapters
        .iter()
        .find(|a| a["kind"] == "CPU (software)")
        .unwrap_or_else(|| panic!("lavapipe is listed: {v}"));
    assert_eq!(soft["auto"], false, "{v}");
    assert_eq!(soft["backend"], "Vulkan");
    assert!(u64_of(soft, "memory_bytes") > 0, "{v}");
    let out = run(false);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("GPU adapters"), "{text}");
    assert!(text.contains(soft["name"].as_str().unwrap()), "{text}");
    if adapters.iter().all(|a| a["kind"] == "CPU (software)") {
        assert_eq!(soft["gpu"], true, "{v}");
        assert!(text.contains("never chosen automatically"), "{text}");
        assert!(text.contains("used by --device gpu"), "{text}");
    }
    // A named machine profile is not this machine: no adapters.
    let named = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args([
            "plan",
            tiny.to_str().unwrap(),
            "--ctx",
            "256",
            "--machine",
            "pc-16",
            "--json",
        ])
        .env("HEARTH_HOME", home.path())
        .output()
        .unwrap();
    assert_eq!(json(&named)["adapters"].as_array().unwrap().len(), 0);
}
