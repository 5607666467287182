//! The keeper's model advice in Settings (issue 18, item 4), through the binary: `hearth
//! serve` on the real SmolLM2 (installed) with Gemma 3 270M left to download, and the advice
//! that `GET /api/settings` hands the page. SmolLM2 can chat and fits, so it is recommended
//! with its speed and the people it serves at once; Gemma 3 270M is a base model, so the
//! advice says it cannot chat before it is downloaded, and never recommends it. No speed is
//! ever 0: one the planner does not have is `null`. With a calibration the speeds are the
//! planner's on it; without, Settings answers at once while the machine is measured.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{json, Value};

/// A server that is killed when the test ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A fresh data directory whose only installed model is a link to the test home's SmolLM2
/// (the rest of the catalog is not installed there).
fn home_with_smollm2(home: &Path) {
    let smol = hearth_fetch::test_model("smollm2-135m").expect("test model smollm2-135m");
    let src = smol.parent().expect("models directory");
    let mut index: Value = serde_json::from_str(
        &std::fs::read_to_string(src.join("index.json")).expect("the test home's index"),
    )
    .expect("index JSON");
    let models = index["models"].as_array_mut().expect("models");
    models.retain(|m| m["name"] == "smollm2-135m");
    let dir = home.join("models");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join("index.json"), index.to_string()).expect("write index");
    std::os::unix::fs::symlink(&smol, dir.join(smol.file_name().expect("file name")))
        .expect("link the model");
}

/// Starts `hearth serve` with the household page; its port and first-run setup code.
fn serve(home: &Path) -> (Server, u16, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args([
            "serve",
            "--model",
            "smollm2-135m",
            "--listen",
            "127.0.0.1:0",
        ])
        .args([
            "--no-embeddings",
            "--no-mdns",
            "--ctx",
            "1024",
            "--threads",
            "1",
        ])
        .env("HEARTH_HOME", home)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("hearth serve starts");
    let err = child.stderr.take().expect("stderr");
    let server = Server(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let (mut code, mut seen) = (None, Vec::new());
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(120))
            .unwrap_or_else(|_| panic!("hearth serve never started: {seen:?}"));
        if let Some(c) = line.split("First-run setup needs this code: ").nth(1) {
            code = Some(c.trim().to_string());
        }
        let port = line
            .split_once("Hearth is serving")
            .and_then(|(_, rest)| rest.split("http://127.0.0.1:").nth(1))
            .and_then(|p| p.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|p| p.parse().ok());
        seen.push(line);
        if let Some(port) = port {
            return (server, port, code.expect("a setup code before serving"));
        }
    }
}

/// One HTTP request; the response's headers and body.
fn request(
    port: u16,
    method: &str,
    path: &str,
    cookie: &str,
    body: Option<Value>,
) -> (String, String) {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nCookie: {cookie}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("send");
    let mut response = String::new();
    s.read_to_string(&mut response).expect("read");
    let (head, body) = response.split_once("\r\n\r\n").expect("a response");
    assert!(
        head.starts_with("HTTP/1.1 200"),
        "{method} {path}: {response}"
    );
    (head.to_string(), body.to_string())
}

/// Sets up the household and logs the keeper in; the session cookie.
fn keeper(port: u16, code: &str) -> String {
    let setup = json!({"household": "Test", "name": "Keeper", "password": "a long enough password", "setup_code": code});
    let (head, _) = request(port, "POST", "/api/setup", "", Some(setup));
    head.lines()
        .find_map(|l| {
            l.strip_prefix("set-cookie: ")
                .or(l.strip_prefix("Set-Cookie: "))
        })
        .and_then(|c| c.split(';').next())
        .expect("a session cookie")
        .to_string()
}

/// `GET /api/settings`, and how long it took.
fn settings(port: u16, cookie: &str) -> (Value, Duration) {
    let t = std::time::Instant::now();
    let (_, body) = request(port, "GET", "/api/settings", cookie, None);
    (
        serde_json::from_str(&body).expect("settings JSON"),
        t.elapsed(),
    )
}

fn model<'a>(advice: &'a Value, name: &str) -> &'a Value {
    advice["models"]
        .as_array()
        .expect("advice for each catalog model")
        .iter()
        .find(|m| m["name"] == name)
        .unwrap_or_else(|| panic!("no advice for {name}: {advice}"))
}

/// What holds whatever the speeds: SmolLM2 can chat and is in use, Gemma 3 270M is a base
/// model said to be one before download and never recommended, the embedding model is left
/// out, and every speed is the planner's (more than 0, words three quarters of the tokens) or
/// null.
fn check_models(advice: &Value) {
    let smol = model(advice, "smollm2-135m");
    assert_eq!(smol["chat"], true);
    assert_eq!(smol["installed"], true);
    assert_eq!(smol["in_use"], true);
    assert_eq!(smol["fits"], true);
    // The household's 8 conversations at once (serve's default) fit a 135M model anywhere.
    assert_eq!(smol["people_at_once"], 8);

    let gemma = model(advice, "gemma3-270m");
    assert_eq!(gemma["installed"], false);
    assert_eq!(gemma["chat"], false, "a base model, said before download");
    assert_eq!(gemma["recommended"], false);
    assert_eq!(
        gemma["people_at_once"],
        Value::Null,
        "unknown before the header is read"
    );

    let models = advice["models"].as_array().expect("models");
    assert!(
        models.iter().all(|m| m["name"] != "all-minilm-l6-v2"),
        "the embedding model is no chat model"
    );
    for m in models {
        match (
            m["tokens_per_second"].as_f64(),
            m["words_per_second"].as_f64(),
        ) {
            (Some(t), Some(w)) => {
                assert!(t > 0.0 && t.is_finite(), "{m}");
                assert!((w - 0.75 * t).abs() < 1e-9, "{m}");
            }
            (None, None) => assert!(
                ["measuring", "unknown"].contains(&advice["speed"].as_str().unwrap_or("")),
                "a speed left out with a measurement at hand: {m}"
            ),
            _ => panic!("tokens and words disagree: {m}"),
        }
    }
}

/// With this machine's calibration, the speeds are the planner's on it: SmolLM2 at the
/// household's context and 8 conversations, at the calibrated bandwidth and efficiency.
#[test]
fn settings_recommend_the_chat_model_that_runs_here_at_the_calibrated_speed() {
    let home = tempfile::tempdir().expect("tempdir");
    home_with_smollm2(home.path());
    // 50 GB/s at 40%: fast enough to chat with SmolLM2 on any machine, whatever the load.
    let calibration = hearth_plan::Calibration {
        date: "2026-12-01".to_string(),
        machine: hearth_host::machine_facts().expect("this machine"),
        bandwidth_bytes_per_s: 50e9,
        flops_per_s: 1e12,
        tg_efficiency: 0.4,
        pp_efficiency: 0.3,
        model: "smollm2-135m".to_string(),
        threads: 1,
        tg_tok_s: 100.0,
        pp_tok_s: 1000.0,
        tg_ctx: 32,
    };
    std::fs::write(
        home.path().join("calibration.json"),
        serde_json::to_string(&calibration).expect("calibration JSON"),
    )
    .expect("write the calibration");
    let (_server, port, code) = serve(home.path());
    let cookie = keeper(port, &code);
    let (settings, _) = settings(port, &cookie);
    let advice = &settings["advice"];
    eprintln!("{advice:#}");
    assert_eq!(advice["speed"], "calibrated");
    assert_eq!(advice["calibrated_on"], "2026-12-01");
    check_models(advice);

    let smol = model(advice, "smollm2-135m");
    assert_eq!(smol["recommended"], true);
    assert_eq!(
        advice["models"][0]["name"], "smollm2-135m",
        "recommended models come first"
    );
    // The planner's own arithmetic on the same request.
    let header = hearth_fetch::read_header(&hearth_fetch::test_model("smollm2-135m").unwrap())
        .expect("header");
    let facts = hearth_plan::ModelFacts::from_header(&header).expect("facts");
    let mut machine = hearth_host::detect(false).expect("this machine");
    machine.bandwidth_bytes_per_s = calibration.bandwidth_bytes_per_s;
    let mut req = hearth_plan::Request::new(1024, 8);
    req.tg_efficiency = calibration.tg_efficiency;
    req.pp_efficiency = calibration.pp_efficiency;
    let expected = hearth_plan::plan(&facts, &machine, &req)
        .expect("plan")
        .est_tg_tok_s;
    let got = smol["tokens_per_second"].as_f64().expect("a speed");
    assert!(
        (got - expected).abs() < 1e-6 * expected,
        "{got} against the planner's {expected}"
    );
}

/// Without a calibration, the first visit answers at once and starts measuring the machine in
/// the background; a later visit has the planner's estimates (or says none could be made).
#[test]
fn settings_answer_at_once_and_estimate_speeds_once_the_machine_is_measured() {
    let home = tempfile::tempdir().expect("tempdir");
    home_with_smollm2(home.path());
    let (_server, port, code) = serve(home.path());
    let cookie = keeper(port, &code);
    let (first, took) = settings(port, &cookie);
    eprintln!("first visit: {took:?}, speed {}", first["advice"]["speed"]);
    // The measurement alone reads a GiB several times: seconds on a busy machine.
    assert!(took < Duration::from_secs(15), "Settings waited {took:?}");
    check_models(&first["advice"]);
    // Speed unknown or not, the chat model that fits is recommended (never the base model).
    assert_eq!(model(&first["advice"], "smollm2-135m")["chat"], true);

    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    let advice = loop {
        let (s, _) = settings(port, &cookie);
        if s["advice"]["speed"] != "measuring" || std::time::Instant::now() > deadline {
            break s["advice"].clone();
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    eprintln!("{advice:#}");
    assert!(
        ["estimated", "unknown"].contains(&advice["speed"].as_str().unwrap_or("")),
        "the measurement ends: {advice}"
    );
    check_models(&advice);
    if advice["speed"] == "estimated" {
        let smol = model(&advice, "smollm2-135m");
        let tg = smol["tokens_per_second"].as_f64().expect("an estimate");
        // Recommended when fast enough to read along with: the planner's threshold.
        assert_eq!(
            smol["recommended"],
            tg >= hearth_plan::advice::SLOW_TOK_S,
            "{smol}"
        );
    }
}
