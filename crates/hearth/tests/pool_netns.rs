//! The pool across two network namespaces joined by a bridge (scripts/netns): "two machines on
//! a home network" with nothing else. First a machine finds the head by mDNS alone; then the
//! bridge stops flooding multicast, as Wi-Fi that drops it: mDNS finds no head, and `--peer`
//! still pairs and links. The head's namespace has only
//! the pool's link and loopback, no route anywhere, so the head doing its work there proves it
//! needs no other connection.
//!
//! Needs root and iproute2 (CI runs as root); elsewhere it says so and passes without running.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(120);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn netns(args: &[&str]) -> Output {
    Command::new(repo().join("scripts/netns"))
        .args(args)
        .output()
        .expect("run scripts/netns")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Removes the namespace set when the test ends, pass or fail.
struct Set(String);

impl Drop for Set {
    fn drop(&mut self) {
        let _ = netns(&["destroy", &self.0]);
    }
}

/// `hearth ARGS` inside namespace `ns` (or on the host for `None`).
fn command(ns: Option<&str>, args: &[&str], home: &Path) -> Command {
    let mut c = match ns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, env!("CARGO_BIN_EXE_hearth")]);
            c
        }
        None => Command::new(env!("CARGO_BIN_EXE_hearth")),
    };
    c.args(args).env("HEARTH_HOME", home).stdin(Stdio::null());
    c
}

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
    fn spawn(mut c: Command) -> Proc {
        let mut child = c
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

    fn wait_for(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
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
}

#[test]
fn peer_pairs_and_links_where_multicast_is_dropped_and_nothing_else_is_reachable() {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| text(&o.stdout).trim() == "0");
    if !matches!(root, Ok(true)) {
        eprintln!("skipped: network namespaces need root (CI runs as root)");
        return;
    }
    let prefix = format!("hpl-{}", std::process::id());
    let made = netns(&["create", &prefix, "2"]);
    assert!(
        made.status.success(),
        "scripts/netns create: {}",
        text(&made.stderr)
    );
    let _set = Set(prefix.clone());
    let addrs: Vec<String> = text(&made.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1).map(str::to_string))
        .collect();
    assert_eq!(addrs.len(), 2, "{}", text(&made.stdout));
    let (ns1, ns2) = (format!("{prefix}-1"), format!("{prefix}-2"));
    let head_home = tempfile::tempdir().expect("tempdir");
    let node_home = tempfile::tempdir().expect("tempdir");
    let model = hearth_fetch::test_model("smollm2-135m").expect("test model");
    let pool_addr = format!("{}:{}", addrs[0], 4315);
    let mut head = Proc::spawn(command(
        Some(&ns1),
        &[
            "serve",
            "--model",
            model.to_str().expect("utf-8"),
            "--listen",
            "127.0.0.1:0",
            "--no-embeddings",
            "--ctx",
            "256",
            "--threads",
            "1",
            "--pool",
            "--pool-listen",
            &pool_addr,
        ],
        head_home.path(),
    ));
    head.wait_for("Pool: listening on");
    head.wait_for("Hearth is serving");

    let invite = || {
        let out = command(None, &["pool", "invite"], head_home.path())
            .output()
            .expect("invite");
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout).trim().to_string()
    };

    // Multicast passes: the new machine finds the head by mDNS alone (looking for as long as
    // it takes a loaded machine to start mDNS and answer, and no longer once it has).
    let out = command(
        Some(&ns2),
        &["node", "join", &invite(), "--name", "mini", "--wait", "60"],
        node_home.path(),
    )
    .output()
    .expect("join");
    assert!(out.status.success(), "{}", text(&out.stderr));

    // Wi-Fi that drops multicast: the switch no longer floods it to either port.
    for port in ["p1", "p2"] {
        let off = Command::new("ip")
            .args([
                "netns",
                "exec",
                &format!("{prefix}-sw"),
                "bridge",
                "link",
                "set",
                "dev",
            ])
            .args([port, "mcast_flood", "off"])
            .output()
            .expect("bridge");
        assert!(off.status.success(), "{}", text(&off.stderr));
    }
    let code = invite();
    // mDNS finds nothing now...
    let out = command(Some(&ns2), &["node", "join", &code], node_home.path())
        .output()
        .expect("join");
    assert!(!out.status.success(), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("no head found"),
        "{}",
        text(&out.stderr)
    );
    // ...and --peer pairs all the same (the same machine again: still one machine).
    let out = command(
        Some(&ns2),
        &[
            "node", "join", &code, "--peer", &pool_addr, "--name", "mini",
        ],
        node_home.path(),
    )
    .output()
    .expect("join");
    assert!(out.status.success(), "{}", text(&out.stderr));

    let mut node = Proc::spawn(command(
        Some(&ns2),
        &["node", "--peer", &pool_addr],
        node_home.path(),
    ));
    node.wait_for("Linked to the head");
    let deadline = Instant::now() + WAIT;
    loop {
        let out = command(None, &["pool", "list"], head_home.path())
            .output()
            .expect("list");
        let list = text(&out.stdout);
        if list.contains("online") && list.contains("round trip") && list.contains("Mbit/s") {
            assert!(list.starts_with("mini "), "{list}");
            break;
        }
        assert!(Instant::now() < deadline, "never listed online: {list}");
        std::thread::sleep(Duration::from_millis(300));
    }
}
