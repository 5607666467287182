//! `hearth.lock` through the binary (issue 16): `hearth verify`, `hearth serve` refusing a
//! model whose bytes changed, keeping a locked template, and `hearth lock accept`. Each test
//! serves a tiny random-weight model written into its own temporary data directory.

use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, SystemTime};

use hearth_fetch::lockfile::{self, TemplateLock, TemplateSource};
use hearth_fetch::Home;

const TEMPLATE: &str = "{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}";

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

/// A tiny chat model at `<home>/models/tiny.gguf`.
fn tiny_model(home: &Path) -> PathBuf {
    let mut spec = hearth_model::testing::TinySpec::new("llama");
    spec.n_layer = 2;
    spec.chat_template = Some(TEMPLATE.to_string());
    let dir = home.join("models");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let path = dir.join("tiny.gguf");
    std::fs::write(&path, spec.build()).expect("write model");
    path
}

/// A server that is killed when the test ends.
struct Server {
    child: Child,
    port: u16,
    stderr: Vec<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve_cmd(model: &Path, home: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hearth"));
    c.args(["serve", "--model"])
        .arg(model)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--no-household",
            "--no-embeddings",
        ])
        .args(["--no-mdns", "--ctx", "256", "--threads", "1"])
        .env("HEARTH_HOME", home)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c
}

/// Starts `hearth serve` and waits until it listens.
fn serve(model: &Path, home: &Path) -> Server {
    // Killed on every path, a panic included.
    let mut server = Server {
        child: serve_cmd(model, home).spawn().expect("hearth serve starts"),
        port: 0,
        stderr: Vec::new(),
    };
    let err = server.child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut seen = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(line) => {
                let port = line
                    .split_once("Hearth is serving")
                    .and_then(|(_, rest)| rest.split("http://127.0.0.1:").nth(1))
                    .and_then(|p| p.split(|c: char| !c.is_ascii_digit()).next())
                    .and_then(|p| p.parse().ok());
                seen.push(line);
                if let Some(port) = port {
                    server.port = port;
                    server.stderr = seen;
                    return server;
                }
            }
            Err(_) => panic!("hearth serve never started: {seen:?}"),
        }
    }
}

/// Runs `hearth serve` that is expected to refuse; its stderr. A server that starts instead is
/// stopped and fails the test.
fn serve_refused(model: &Path, home: &Path) -> String {
    let mut child = Server {
        child: serve_cmd(model, home).spawn().expect("hearth serve starts"),
        port: 0,
        stderr: Vec::new(),
    };
    let mut err = child.child.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.child.try_wait().expect("wait") {
            break Some(status);
        }
        if std::time::Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    drop(child);
    let err = reader.join().expect("stderr reader");
    match status {
        Some(s) => assert!(!s.success(), "serve exited cleanly: {err}"),
        None => panic!("serve started on a changed file: {err}"),
    }
    err
}

/// Serves the model once, so that the lock has an entry for it.
fn lock_by_serving(model: &Path, home: &Path) {
    drop(serve(model, home));
    let lock = lockfile::load(&Home::at(home)).expect("lock");
    assert!(lock.models.contains_key("tiny"), "{lock:?}");
}

/// Changes one byte near the end (tensor data) in place: same size, same inode.
fn flip_byte(path: &Path) {
    let len = std::fs::metadata(path).expect("meta").len();
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .expect("open");
    let mut b = [0u8];
    f.seek(SeekFrom::Start(len - 3)).expect("seek");
    f.read_exact(&mut b).expect("read");
    f.seek(SeekFrom::Start(len - 3)).expect("seek");
    f.write_all(&[b[0] ^ 0x55]).expect("write");
}

fn mtime(path: &Path) -> SystemTime {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .expect("mtime")
}

fn set_mtime(path: &Path, t: SystemTime) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(t))
        .expect("set mtime");
}

#[test]
fn verify_catches_a_changed_byte_with_the_same_size_and_a_restored_mtime() {
    let home = tempfile::tempdir().expect("tempdir");
    let model = tiny_model(home.path());
    lock_by_serving(&model, home.path());

    let ok = hearth(&["verify"], home.path());
    assert!(ok.status.success(), "{}", text(&ok.stderr));
    assert!(
        text(&ok.stdout).contains("tiny: OK"),
        "{}",
        text(&ok.stdout)
    );

    let before = mtime(&model);
    flip_byte(&model);
    set_mtime(&model, before);
    let bad = hearth(&["verify"], home.path());
    assert!(!bad.status.success(), "verify passed a changed file");
    let out = text(&bad.stdout);
    assert!(out.contains("tiny: differs: models/tiny.gguf"), "{out}");
    let err = text(&bad.stderr);
    assert!(err.contains("hearth lock accept"), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    std::fs::remove_file(&model).expect("rm");
    let gone = hearth(&["verify"], home.path());
    assert!(!gone.status.success());
    assert!(
        text(&gone.stdout).contains("tiny: missing: models/tiny.gguf"),
        "{}",
        text(&gone.stdout)
    );
}

#[test]
fn serve_refuses_a_model_whose_bytes_differ_from_the_lock() {
    let home = tempfile::tempdir().expect("tempdir");
    let model = tiny_model(home.path());
    lock_by_serving(&model, home.path());

    flip_byte(&model);
    set_mtime(&model, mtime(&model) + Duration::from_secs(60));
    let err = serve_refused(&model, home.path());
    assert!(!err.contains("panicked"), "{err}");
    for needle in [
        "tiny is not what the lock pinned",
        "models/tiny.gguf",
        "sha256",
        "hearth verify",
        "hearth lock accept tiny",
    ] {
        assert!(err.contains(needle), "{needle:?} missing from: {err}");
    }

    // The keeper changed it on purpose: accepting pins the new bytes and serve starts again.
    let accepted = hearth(&["lock", "accept", "tiny"], home.path());
    assert!(accepted.status.success(), "{}", text(&accepted.stderr));
    assert!(
        text(&accepted.stdout).contains("file models/tiny.gguf: was sha256"),
        "{}",
        text(&accepted.stdout)
    );
    drop(serve(&model, home.path()));
}

/// Asks for a chat completion and returns `usage.prompt_tokens`.
fn prompt_tokens(port: u16, message: &str) -> u64 {
    let body = serde_json::json!({
        "model": "tiny",
        "messages": [{"role": "user", "content": message}],
        "max_tokens": 1,
    })
    .to_string();
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(
        s,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("send");
    let mut response = String::new();
    s.read_to_string(&mut response).expect("read");
    let json = response.split("\r\n\r\n").nth(1).unwrap_or_default();
    let v: serde_json::Value =
        serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {response}"));
    v["usage"]["prompt_tokens"]
        .as_u64()
        .unwrap_or_else(|| panic!("no usage: {v}"))
}

/// Stands for a Hearth upgrade that changed a template: the lock pins one this Hearth would
/// not pick. `serve` must keep serving the locked one and say what differs; the new one
/// arrives only when the keeper accepts it.
#[test]
fn a_changed_template_is_reported_not_silently_applied() {
    let home = tempfile::tempdir().expect("tempdir");
    let model = tiny_model(home.path());
    lock_by_serving(&model, home.path());
    // The locked template ignores the conversation: every prompt is the same few tokens.
    let locked = TemplateLock::new("{{ bos_token }}fixed", TemplateSource::Catalog);
    lockfile::update(&Home::at(home.path()), |lock| {
        lock.models.get_mut("tiny").expect("entry").template = Some(locked.clone());
    })
    .expect("edit the lock");

    let server = serve(&model, home.path());
    let said = server.stderr.join("\n");
    assert!(said.contains("hearth lock accept tiny"), "{said}");
    assert!(
        said.contains("template: locked the catalog's template"),
        "{said}"
    );
    let short = prompt_tokens(server.port, "hi");
    let long = prompt_tokens(server.port, &"t7 t8 t9 ".repeat(20));
    assert_eq!(short, long, "the locked template is not the one in use");
    drop(server);
    let lock = lockfile::load(&Home::at(home.path())).expect("lock");
    assert_eq!(
        lock.models["tiny"].template,
        Some(locked),
        "serve changed the lock"
    );

    let show = hearth(&["lock", "show"], home.path());
    assert!(show.status.success(), "{}", text(&show.stderr));
    assert!(
        text(&show.stdout).contains("# this Hearth would serve tiny differently"),
        "{}",
        text(&show.stdout)
    );

    let accepted = hearth(&["lock", "accept", "tiny"], home.path());
    assert!(accepted.status.success(), "{}", text(&accepted.stderr));
    assert!(
        text(&accepted.stdout).contains("template: was the catalog's template"),
        "{}",
        text(&accepted.stdout)
    );
    let server = serve(&model, home.path());
    assert!(
        !server.stderr.join("\n").contains("hearth lock accept"),
        "{:?}",
        server.stderr
    );
    let short = prompt_tokens(server.port, "hi");
    let long = prompt_tokens(server.port, &"t7 t8 t9 ".repeat(20));
    assert!(
        long > short,
        "the accepted template renders the conversation"
    );
}

/// A newer Hearth's catalog (here the keeper's own) pinning another file for a locked catalog
/// model: serve would have downloaded it over the locked one before checking anything. It must
/// refuse first and leave the locked file alone.
#[test]
fn a_catalog_that_pins_another_file_downloads_nothing_over_the_locked_one() {
    let home = tempfile::tempdir().expect("tempdir");
    let model = tiny_model(home.path());
    lock_by_serving(&model, home.path());
    let before = std::fs::read(&model).expect("read");
    std::fs::write(
        home.path().join("catalog.toml"),
        format!(
            "[[model]]\nname = \"tiny\"\nsha256 = \"{}\"\nsize = 1000\n\n[model.source]\nkind = \"url\"\nurl = \"http://127.0.0.1:9/tiny.gguf\"\n",
            "ab".repeat(32)
        ),
    )
    .expect("write catalog");
    let out = serve_cmd(Path::new("tiny"), home.path())
        .output()
        .expect("run hearth serve");
    let err = text(&out.stderr);
    assert!(!out.status.success(), "{err}");
    for needle in [
        "catalog pins another file for tiny",
        "downloaded nothing",
        "hearth lock accept tiny",
    ] {
        assert!(err.contains(needle), "{needle:?} missing from: {err}");
    }
    assert_eq!(std::fs::read(&model).expect("read"), before);
}
