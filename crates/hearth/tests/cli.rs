//! The `hearth` binary end to end, as a user runs it (engine-core issue, #2).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use hearth_gguf::write::GgufWriter;
use hearth_gguf::{GgmlType, Value};

fn model(name: &str) -> PathBuf {
    hearth_fetch::test_model(name)
        .unwrap_or_else(|e| panic!("cannot get the test model {name}: {e}"))
}

fn hearth(args: &[&str], home: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(args)
        .env("HEARTH_HOME", home)
        .stdin(Stdio::null())
        .output()
        .expect("run hearth")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A failure is one clear line on stderr, a non-zero exit and no panic.
fn assert_clean_failure(out: &Output, needle: &str) {
    let err = text(&out.stderr);
    assert!(
        !out.status.success(),
        "expected failure, got success; stderr: {err}"
    );
    assert!(!err.contains("panicked"), "hearth panicked: {err}");
    assert!(
        err.contains(needle),
        "stderr should mention {needle:?}: {err}"
    );
    assert_eq!(
        err.trim().lines().count(),
        1,
        "expected one line on stderr: {err}"
    );
}

#[test]
fn run_streams_a_chat_answer_and_prints_statistics() {
    let home = tempfile::tempdir().expect("tempdir");
    let m = model("smollm2-135m");
    let out = hearth(
        &[
            "run",
            m.to_str().expect("utf-8 path"),
            "Why is the sky blue?",
            "-n",
            "12",
            "--temperature",
            "0",
        ],
        home.path(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!text(&out.stdout).trim().is_empty(), "no answer on stdout");
    let err = text(&out.stderr);
    for needle in [
        "prompt",
        "generated 12 tokens",
        "tok/s",
        "time to first token",
    ] {
        assert!(
            err.contains(needle),
            "statistics should mention {needle:?}: {err}"
        );
    }
}

#[test]
fn same_seed_same_output() {
    let home = tempfile::tempdir().expect("tempdir");
    let m = model("smollm2-135m");
    let p = m.to_str().expect("utf-8 path");
    let args = [
        "run",
        p,
        "Tell me a story.",
        "-n",
        "16",
        "--temperature",
        "0.9",
        "--seed",
        "42",
    ];
    let a = hearth(&args, home.path());
    let b = hearth(&args, home.path());
    assert!(a.status.success(), "{}", text(&a.stderr));
    assert_eq!(text(&a.stdout), text(&b.stdout));
}

#[test]
fn base_model_without_template_suggests_raw() {
    let home = tempfile::tempdir().expect("tempdir");
    let m = model("gemma3-270m");
    let out = hearth(
        &["run", m.to_str().expect("utf-8 path"), "Hello"],
        home.path(),
    );
    assert_clean_failure(&out, "--raw");
    let raw = hearth(
        &[
            "run",
            m.to_str().expect("utf-8 path"),
            "--raw",
            "The capital of France is",
            "-n",
            "6",
            "--temperature",
            "0",
        ],
        home.path(),
    );
    assert!(raw.status.success(), "{}", text(&raw.stderr));
    assert!(!text(&raw.stdout).trim().is_empty());
}

#[test]
fn tokenize_prints_ids_as_json() {
    let home = tempfile::tempdir().expect("tempdir");
    let m = model("smollm2-135m");
    let out = hearth(
        &[
            "tokenize",
            m.to_str().expect("utf-8 path"),
            "Hello world <|im_end|>",
        ],
        home.path(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let ids: Vec<u32> =
        serde_json::from_str(text(&out.stdout).trim()).expect("a JSON array of ids");
    let gguf = hearth_gguf::Gguf::open(&m).expect("open");
    let tok = hearth_model::tokenizer::Tokenizer::from_gguf(gguf.metadata()).expect("tokenizer");
    assert_eq!(ids, tok.encode("Hello world <|im_end|>", false, false));
    // Typed control tokens stay text unless asked.
    let im_end = tok.token_id("<|im_end|>").expect("smollm2 has <|im_end|>");
    assert!(!ids.contains(&im_end));
    let pieces = hearth(
        &[
            "tokenize",
            m.to_str().expect("utf-8 path"),
            "Hello",
            "--pieces",
        ],
        home.path(),
    );
    let v: serde_json::Value = serde_json::from_str(text(&pieces.stdout).trim()).expect("JSON");
    assert_eq!(v[0]["piece"], "Hello");
}

#[test]
fn chat_answers_each_line_and_reuses_the_cache() {
    let home = tempfile::tempdir().expect("tempdir");
    let m = model("smollm2-135m");
    let mut child = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args([
            "chat",
            m.to_str().expect("utf-8 path"),
            "-n",
            "8",
            "--temperature",
            "0",
        ])
        .env("HEARTH_HOME", home.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"Hi!\nWhat is two plus two?\n")
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let answers = text(&out.stdout)
        .trim()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count();
    assert!(answers >= 2, "two answers expected: {}", text(&out.stdout));
}

#[test]
fn bench_json_has_the_documented_fields() {
    let home = tempfile::tempdir().expect("tempdir");
    let m = model("smollm2-135m");
    let out = hearth(
        &[
            "bench",
            m.to_str().expect("utf-8 path"),
            "-p",
            "16",
            "-n",
            "4",
            "-r",
            "1",
            "--json",
        ],
        home.path(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value =
        serde_json::from_str(text(&out.stdout).trim()).expect("one JSON object");
    for key in [
        "pp_tok_s",
        "tg_tok_s",
        "load_s",
        "peak_rss_bytes",
        "threads",
    ] {
        assert!(
            v[key].as_f64().is_some_and(|x| x > 0.0),
            "{key} missing or zero in {v}"
        );
    }
}

#[test]
fn bench_bandwidth_sets_generation_against_the_measured_memory_bandwidth() {
    let home = tempfile::tempdir().expect("tempdir");
    let m = model("smollm2-135m");
    let out = hearth(
        &[
            "bench",
            m.to_str().expect("utf-8 path"),
            "-p",
            "8",
            "-n",
            "4",
            "-r",
            "1",
            "-t",
            "1",
            "--bandwidth",
            "--json",
        ],
        home.path(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value =
        serde_json::from_str(text(&out.stdout).trim()).expect("one JSON object");
    // SmolLM2 ties its output head to the embedding table: a token reads every tensor.
    let gguf = hearth_gguf::Gguf::open(&m).expect("open the model");
    let all: u64 = gguf.tensors().iter().map(|t| t.n_bytes).sum();
    assert_eq!(v["read_bytes_per_token"].as_u64(), Some(all), "{v}");
    let tg = v["tg_tok_s"].as_f64().expect("tg_tok_s");
    let probe = v["probe_bytes_per_s"].as_f64().expect("probe_bytes_per_s");
    let eff = v["tg_bytes_per_s"].as_f64().expect("tg_bytes_per_s");
    assert!(probe > 0.0 && tg > 0.0, "{v}");
    assert!((eff - tg * all as f64).abs() <= 1e-6 * eff, "{v}");
    let share = v["bandwidth_share"].as_f64().expect("bandwidth_share");
    assert!((share - eff / probe).abs() <= 1e-9 * share.max(1.0), "{v}");
    assert!(
        v["probe_buffer_bytes"]
            .as_u64()
            .is_some_and(|b| b >= 64 << 20),
        "{v}"
    );
    assert_eq!(v["threads"].as_u64(), Some(1));
}

#[test]
fn prompt_longer_than_context_states_both_numbers() {
    let home = tempfile::tempdir().expect("tempdir");
    let m = model("smollm2-135m");
    let long = "word ".repeat(40);
    let out = hearth(
        &[
            "run",
            m.to_str().expect("utf-8 path"),
            "--raw",
            &long,
            "--ctx",
            "16",
        ],
        home.path(),
    );
    assert_clean_failure(&out, "context is 16");
    assert!(
        text(&out.stderr).contains("prompt is 4"),
        "{}",
        text(&out.stderr)
    );
}

/// `--draft`: a model with the same vocabulary (here SmolLM2 drafting for itself) leaves a
/// greedy answer the same, bit for bit; a draft with another vocabulary is refused in one line
/// naming both models.
#[test]
fn draft_model_same_answer_or_refused_by_name() {
    let home = tempfile::tempdir().expect("tempdir");
    let m = model("smollm2-135m");
    let p = m.to_str().expect("utf-8 path");
    let args = [
        "run",
        p,
        "Write a poem about winter.",
        "-n",
        "24",
        "--temperature",
        "0",
    ];
    let plain = hearth(&args, home.path());
    assert!(plain.status.success(), "{}", text(&plain.stderr));
    let mut with = args.to_vec();
    with.extend(["--draft", p]);
    let drafted = hearth(&with, home.path());
    assert!(drafted.status.success(), "{}", text(&drafted.stderr));
    assert_eq!(text(&drafted.stdout), text(&plain.stdout));

    let g = model("gemma3-270m");
    let mut other = args.to_vec();
    other.extend(["--draft", g.to_str().expect("utf-8 path")]);
    let out = hearth(&other, home.path());
    assert_clean_failure(&out, "cannot draft for SmolLM2");
    assert_clean_failure(&out, "vocabularies differ");
    assert_clean_failure(&out, "gemma-3-270m");
}

#[test]
fn missing_file_is_one_clear_line() {
    let home = tempfile::tempdir().expect("tempdir");
    let out = hearth(&["run", "/no/such/model.gguf", "hi"], home.path());
    assert_clean_failure(&out, "model.gguf");
}

#[test]
fn a_temperature_outside_zero_to_two_is_refused_in_words() {
    let home = tempfile::tempdir().expect("tempdir");
    // Refused by the argument parser, before any model loads: its first line says why.
    for (value, why) in [
        ("3", "3 is outside 0 to 2"),
        ("warm", "\"warm\" is not a number"),
    ] {
        let out = hearth(&["serve", "--temperature", value], home.path());
        let err = text(&out.stderr);
        assert!(!out.status.success(), "accepted --temperature {value}");
        let first = err.lines().next().unwrap_or_default();
        assert!(first.contains(why), "{err}");
    }
}

#[test]
fn not_a_gguf_is_one_clear_line() {
    let home = tempfile::tempdir().expect("tempdir");
    let path = home.path().join("notes.gguf");
    std::fs::write(&path, b"these are not the weights you are looking for").expect("write");
    let out = hearth(&["run", path.to_str().expect("utf-8"), "hi"], home.path());
    assert_clean_failure(&out, "not a GGUF file");
}

fn tiny_file(home: &Path, arch: &str, ty: GgmlType) -> PathBuf {
    let mut w = GgufWriter::new();
    w.metadata("general.architecture", Value::String(arch.to_string()));
    let n = ty.block_size() * 4;
    w.tensor(
        "token_embd.weight",
        &[n as u64, 1],
        ty,
        vec![0u8; ty.type_size() * 4],
    );
    let path = home.join(format!("{arch}-{}.gguf", ty.name()));
    w.write_to(&path).expect("write");
    path
}

#[test]
fn unsupported_architecture_is_named_with_the_supported_list() {
    let home = tempfile::tempdir().expect("tempdir");
    let path = tiny_file(home.path(), "mamba", GgmlType::F32);
    let out = hearth(
        &["run", path.to_str().expect("utf-8"), "--raw", "hi"],
        home.path(),
    );
    assert_clean_failure(&out, "mamba");
    assert!(
        text(&out.stderr).contains("gemma3"),
        "should list what is supported: {}",
        text(&out.stderr)
    );
}

#[test]
fn unsupported_tensor_type_is_named_with_the_supported_list() {
    let home = tempfile::tempdir().expect("tempdir");
    let bytes = hearth_model::testing::TinySpec {
        // IQ1_S has no kernels (IQ2_XXS, the type this test used first, now has).
        weight_types: vec![GgmlType::IQ1_S],
        ..hearth_model::testing::TinySpec::new("llama")
    }
    .build();
    let path = home.path().join("iq1.gguf");
    std::fs::write(&path, bytes).expect("write");
    let out = hearth(
        &[
            "bench",
            path.to_str().expect("utf-8"),
            "-p",
            "4",
            "-n",
            "2",
            "-r",
            "1",
        ],
        home.path(),
    );
    assert_clean_failure(&out, "IQ1_S");
    assert!(
        text(&out.stderr).contains("Q4_K"),
        "should list what is supported: {}",
        text(&out.stderr)
    );
}

#[test]
fn stop_text_ends_the_answer_without_printing_it() {
    let home = tempfile::tempdir().expect("tempdir");
    let m = model("smollm2-135m");
    let p = m.to_str().expect("utf-8 path");
    let full = hearth(
        &[
            "run",
            p,
            "--raw",
            "1, 2, 3, 4,",
            "-n",
            "24",
            "--temperature",
            "0",
        ],
        home.path(),
    );
    assert!(full.status.success(), "{}", text(&full.stderr));
    let full_text = text(&full.stdout);
    let cut = hearth(
        &[
            "run",
            p,
            "--raw",
            "1, 2, 3, 4,",
            "-n",
            "24",
            "--temperature",
            "0",
            "--stop",
            "7",
        ],
        home.path(),
    );
    assert!(cut.status.success(), "{}", text(&cut.stderr));
    let cut_text = text(&cut.stdout);
    assert!(
        full_text.contains('7'),
        "the greedy continuation should count past 7: {full_text:?}"
    );
    assert!(
        !cut_text.contains('7'),
        "stop text was printed: {cut_text:?}"
    );
    assert!(
        full_text.starts_with(cut_text.trim_end_matches('\n')),
        "{cut_text:?} should be a prefix of {full_text:?}"
    );
    assert!(
        text(&cut.stderr).contains("stop text reached"),
        "{}",
        text(&cut.stderr)
    );
}

/// A child process that is killed when the test ends, pass or fail.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_serve(model: &Path, home: &Path) -> Killed {
    let child = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(["serve", "--model"])
        .arg(model)
        .args(["--listen", "127.0.0.1:0", "--no-embeddings", "--no-mdns"])
        .args(["--ctx", "256", "--threads", "1"])
        .env("HEARTH_HOME", home)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("hearth serve starts");
    Killed(child)
}

/// Waits for `child` to exit, at most `limit`; `None` if it is still running then.
fn wait_at_most(
    child: &mut std::process::Child,
    limit: std::time::Duration,
) -> Option<std::process::ExitStatus> {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return Some(status);
        }
        if std::time::Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Two servers on one data directory: the second marked the first's live replies interrupted and
/// fought it for the database. It must refuse before loading anything, naming the first.
#[test]
fn a_second_server_on_the_same_data_directory_names_the_first() {
    use std::io::{BufRead, BufReader, Read};
    let home = tempfile::tempdir().expect("tempdir");
    let m = model("smollm2-135m");
    let mut first = spawn_serve(&m, home.path());
    let first_pid = first.0.id();
    // The first holds the directory from before its model loads; once it serves, it surely does.
    let err = first.0.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut seen = Vec::new();
    while !seen
        .iter()
        .any(|l: &String| l.contains("Hearth is serving"))
    {
        match rx.recv_timeout(std::time::Duration::from_secs(120)) {
            Ok(line) => seen.push(line),
            Err(_) => panic!("the first server never started: {seen:?}"),
        }
    }

    let mut second = spawn_serve(&m, home.path());
    let status = wait_at_most(&mut second.0, std::time::Duration::from_secs(120));
    let Some(status) = status else {
        panic!("a second server started on a data directory another server is using");
    };
    let mut stderr = String::new();
    second
        .0
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("read stderr");
    assert!(
        !status.success(),
        "the second server exited cleanly: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains(&format!("pid {first_pid}")), "{stderr}");
    assert!(stderr.contains("hearth serve"), "{stderr}");
    assert!(
        stderr.contains(&home.path().display().to_string()),
        "{stderr}"
    );
    assert!(stderr.contains("HEARTH_HOME"), "{stderr}");
    assert!(
        first.0.try_wait().expect("wait").is_none(),
        "the first server must keep running"
    );
}

/// A model whose file declares no RoPE scaling refuses a longer `--ctx` in one line naming its
/// trained length; one whose file declares YaRN runs past its trained length.
#[test]
fn a_context_beyond_training_needs_declared_rope_scaling() {
    let home = tempfile::tempdir().expect("tempdir");
    let tiny = Path::new(env!("CARGO_MANIFEST_DIR")).join("../hearth-model/tests/data/tiny");
    let plain = tiny.join("tiny-llama.gguf");
    let out = hearth(
        &[
            "run",
            plain.to_str().expect("utf-8 path"),
            "--raw",
            "hello world",
            "-n",
            "4",
            "--ctx",
            "300",
        ],
        home.path(),
    );
    assert_clean_failure(&out, "trained for (256 tokens)");
    assert!(text(&out.stderr).contains("300"), "{}", text(&out.stderr));
    // Trained for 64 positions, YaRN factor 4: a context of 200 is within what it declares.
    let yarn = tiny.join("tiny-qwen2-yarn.gguf");
    let out = hearth(
        &[
            "run",
            yarn.to_str().expect("utf-8 path"),
            "--raw",
            "hello world",
            "-n",
            "4",
            "--ctx",
            "200",
            "--threads",
            "1",
        ],
        home.path(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
}
