//! The household's pool end to end on loopback, as the keeper uses it: a head (`hearth serve
//! --pool`) and a member (`hearth node`) in two processes with their own data directories.
//! Pairing with a code (a wrong one pairs nothing, a used one nothing more), the link and the
//! member's report, an unpaired machine refused, and a removed one cut off.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

/// Long enough for a loaded CI machine; every wait ends as soon as its line appears.
const WAIT: Duration = Duration::from_secs(120);

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

/// A child that is killed when the test ends, with its stderr as lines.
struct Proc {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    fn spawn(args: &[&str], home: &Path) -> Proc {
        let mut child = Command::new(env!("CARGO_BIN_EXE_hearth"))
            .args(args)
            .env("HEARTH_HOME", home)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("hearth starts");
        let err = child.stderr.take().expect("stderr");
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Proc {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a line containing `needle`; returns it.
    fn wait_for(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        if let Some(l) = self.seen.iter().find(|l| l.contains(needle)) {
            return l.clone();
        }
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => break,
            }
        }
        panic!("never saw {needle:?}; stderr so far: {:#?}", self.seen);
    }

    /// Waits for the process to exit; its status and all of its stderr.
    fn exit(&mut self) -> (std::process::ExitStatus, String) {
        let deadline = Instant::now() + WAIT;
        loop {
            while let Ok(l) = self.lines.try_recv() {
                self.seen.push(l);
            }
            if let Some(status) = self.child.try_wait().expect("wait") {
                std::thread::sleep(Duration::from_millis(100));
                while let Ok(l) = self.lines.try_recv() {
                    self.seen.push(l);
                }
                return (status, self.seen.join("\n"));
            }
            assert!(Instant::now() < deadline, "still running: {:#?}", self.seen);
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A head on loopback: the process, its pool address and node key.
fn head(home: &Path) -> (Proc, String, String) {
    let m = model("smollm2-135m");
    let mut p = Proc::spawn(
        &[
            "serve",
            "--model",
            m.to_str().expect("utf-8"),
            "--listen",
            "127.0.0.1:0",
            "--no-embeddings",
            "--no-mdns",
            "--ctx",
            "256",
            "--threads",
            "1",
            "--pool",
            "--pool-listen",
            "127.0.0.1:0",
        ],
        home,
    );
    let line = p.wait_for("Pool: listening on ");
    let rest = line.split("Pool: listening on ").nth(1).expect("address");
    let addr = rest.split(' ').next().expect("address").to_string();
    let key = rest
        .split(" as ")
        .nth(1)
        .and_then(|r| r.split(';').next())
        .expect("key")
        .to_string();
    assert_eq!(key.len(), 64, "{line}");
    (p, addr, key)
}

fn invite(home: &Path) -> String {
    let out = hearth(&["pool", "invite"], home);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let code = text(&out.stdout).trim().to_string();
    assert_eq!(code.len(), 13, "{code}");
    code
}

#[test]
fn a_paired_machine_links_reports_and_is_cut_off_when_removed() {
    let head_home = tempfile::tempdir().expect("tempdir");
    let node_home = tempfile::tempdir().expect("tempdir");
    let other_home = tempfile::tempdir().expect("tempdir");
    let (_head, addr, head_key) = head(head_home.path());

    let code = invite(head_home.path());
    // A wrong guess pairs nothing (and spends one of the code's tries).
    let mut wrong = code.clone().into_bytes();
    let last = wrong.len() - 1;
    wrong[last] = if wrong[last] == b'Z' { b'Y' } else { b'Z' };
    let wrong = String::from_utf8(wrong).expect("ascii");
    let out = hearth(
        &["node", "join", &wrong, "--peer", &addr, "--name", "mini"],
        node_home.path(),
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("wrong code"),
        "{}",
        text(&out.stderr)
    );
    assert!(!node_home.path().join("pool/head.json").exists());
    let list = text(&hearth(&["pool", "list"], head_home.path()).stdout);
    assert!(list.contains("No machines are paired"), "{list}");

    // The right code pairs, once.
    let out = hearth(
        &["node", "join", &code, "--peer", &addr, "--name", "mini"],
        node_home.path(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let record =
        std::fs::read_to_string(node_home.path().join("pool/head.json")).expect("head.json");
    assert!(record.contains(&head_key), "{record}");
    let out = hearth(&["node", "join", &code, "--peer", &addr], other_home.path());
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("not valid"),
        "{}",
        text(&out.stderr)
    );

    // The member links and reports; the head lists it online with what it measured.
    let mut node = Proc::spawn(&["node", "--peer", &addr], node_home.path());
    node.wait_for("Linked to the head");
    let deadline = Instant::now() + WAIT;
    let list = loop {
        let list = text(&hearth(&["pool", "list"], head_home.path()).stdout);
        // The round trip comes with the first heartbeat, the throughput once its probe is in.
        if list.contains("online") && list.contains("round trip") && list.contains("Mbit/s") {
            break list;
        }
        assert!(Instant::now() < deadline, "never listed online: {list}");
        std::thread::sleep(Duration::from_millis(300));
    };
    assert!(list.starts_with("mini "), "{list}");
    assert!(list.contains("GB/s"), "{list}");
    assert!(list.contains("Mbit/s"), "{list}");

    // Removed: the link is cut and the member stops, saying why.
    let out = hearth(&["pool", "remove", "mini"], head_home.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (status, stderr) = node.exit();
    assert!(!status.success());
    assert!(stderr.contains("removed this machine"), "{stderr}");
}

/// A name the head would refuse is refused with its reason, and spends none of the code's
/// tries: the right name still pairs after more bad ones than the code allows tries.
#[test]
fn a_bad_name_is_refused_before_it_spends_a_try() {
    let head_home = tempfile::tempdir().expect("tempdir");
    let node_home = tempfile::tempdir().expect("tempdir");
    let (_head, addr, _) = head(head_home.path());
    let code = invite(head_home.path());
    let long = "x".repeat(61);
    for name in [" ", long.as_str(), "a\u{7}b", ""] {
        let out = hearth(
            &["node", "join", &code, "--peer", &addr, "--name", name],
            node_home.path(),
        );
        assert!(!out.status.success(), "{name:?}");
        assert!(
            text(&out.stderr).contains("machine name"),
            "{name:?}: {}",
            text(&out.stderr)
        );
    }
    let out = hearth(
        &["node", "join", &code, "--peer", &addr, "--name", "mini"],
        node_home.path(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn an_unpaired_machine_gets_nothing() {
    let head_home = tempfile::tempdir().expect("tempdir");
    let node_home = tempfile::tempdir().expect("tempdir");
    let (_head, addr, head_key) = head(head_home.path());
    // A machine that knows the head's key and address but was never paired.
    std::fs::create_dir_all(node_home.path().join("pool")).expect("mkdir");
    std::fs::write(
        node_home.path().join("pool/head.json"),
        format!("{{\"key\": \"{head_key}\", \"addr\": \"{addr}\"}}"),
    )
    .expect("write");
    let mut node = Proc::spawn(&["node", "--peer", &addr], node_home.path());
    let (status, stderr) = node.exit();
    assert!(!status.success());
    assert!(stderr.contains("not paired"), "{stderr}");
    assert!(!stderr.contains("Linked to the head"), "{stderr}");
    let list = text(&hearth(&["pool", "list"], head_home.path()).stdout);
    assert!(list.contains("No machines are paired"), "{list}");
}

#[test]
fn the_pool_plan_says_when_pooling_does_not_pay() {
    let home = tempfile::tempdir().expect("tempdir");
    let m = model("smollm2-135m");
    let out = hearth(
        &[
            "plan",
            m.to_str().expect("utf-8"),
            "--member",
            "desk,memory=8GiB,bandwidth=50GB/s",
            "--member",
            "mini,memory=8GiB,bandwidth=10GB/s,rtt=1ms,link=1Gbit/s",
        ],
        home.path(),
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        stdout.contains("Route: desk, mini each hold the model"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Pooling is slower than desk alone"),
        "{stdout}"
    );
    assert!(stdout.contains("Plan: route whole chats."), "{stdout}");
    // Too big for either: split, by layers.
    let out = hearth(
        &[
            "plan",
            m.to_str().expect("utf-8"),
            "--member",
            "desk,memory=150MiB,bandwidth=50GB/s",
            "--member",
            "mini,memory=150MiB,bandwidth=50GB/s",
        ],
        home.path(),
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        stdout.contains("Route: no single machine holds this model."),
        "{stdout}"
    );
    assert!(stdout.contains("Split: desk layers 0-"), "{stdout}");
    assert!(stdout.contains("Plan: split"), "{stdout}");
}
