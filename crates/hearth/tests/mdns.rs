//! `hearth.local` on the network: a server in one network namespace announces itself by mDNS
//! and `hearth discover` in another namespace, joined by a veth pair, finds it. The namespaces
//! are the test's own; the machine's real interfaces are never used.
//!
//! Creating namespaces needs root (CI runs as root); elsewhere the test says so and passes.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Two namespaces and a veth pair between them, removed on drop.
struct Net {
    a: String,
    b: String,
}

impl Net {
    fn new() -> Option<Net> {
        let id = std::process::id() % 100_000;
        let (a, b) = (format!("hearth-a{id}"), format!("hearth-b{id}"));
        let (va, vb) = (format!("hva{id}"), format!("hvb{id}"));
        if !ip(&["netns", "add", &a]) {
            return None;
        }
        let net = Net { a, b };
        let ok = ip(&["netns", "add", &net.b])
            && ip(&["link", "add", &va, "type", "veth", "peer", "name", &vb])
            && ip(&["link", "set", &va, "netns", &net.a])
            && ip(&["link", "set", &vb, "netns", &net.b])
            && ip(&["-n", &net.a, "addr", "add", "10.213.0.1/24", "dev", &va])
            && ip(&["-n", &net.b, "addr", "add", "10.213.0.2/24", "dev", &vb])
            && ip(&["-n", &net.a, "link", "set", &va, "up", "multicast", "on"])
            && ip(&["-n", &net.b, "link", "set", &vb, "up", "multicast", "on"])
            && ip(&["-n", &net.a, "link", "set", "lo", "up"])
            && ip(&["-n", &net.b, "link", "set", "lo", "up"])
            && ip(&["-n", &net.a, "route", "add", "224.0.0.0/4", "dev", &va])
            && ip(&["-n", &net.b, "route", "add", "224.0.0.0/4", "dev", &vb]);
        assert!(ok, "setting up the test's network namespaces failed");
        Some(net)
    }

    fn exec(&self, ns: &str, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns]).args(args);
        c
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        ip(&["netns", "del", &self.a]);
        ip(&["netns", "del", &self.b]);
    }
}

/// A data directory holding the test models (linked, not copied) and nothing else.
fn home() -> tempfile::TempDir {
    let test_home = std::env::var_os("HEARTH_TEST_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/test-home"));
    // Makes sure the model is there (pulled once, as every real-model test does).
    hearth_fetch::test_model("smollm2-135m").expect("SmolLM2 for tests");
    let dir = tempfile::tempdir().expect("temp dir");
    std::os::unix::fs::symlink(test_home.join("models"), dir.path().join("models")).expect("link");
    dir
}

fn serve(net: &Net, home: &Path, listen: &str) -> (Child, Vec<String>) {
    let mut child = net
        .exec(
            &net.a,
            &[
                env!("CARGO_BIN_EXE_hearth"),
                "serve",
                "--model",
                "smollm2-135m",
                "--listen",
                listen,
                "--no-embeddings",
                "--ctx",
                "256",
            ],
        )
        .env("HEARTH_HOME", home)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("hearth serve starts");
    // Lines arrive through a thread, so waiting for one can time out.
    let err = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                // Keep draining so the server never blocks on a full pipe.
                continue;
            }
        }
    });
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(l) => {
                let done = l.contains("OpenAI API");
                lines.push(l);
                if done {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    // What follows the banner (addresses, mDNS) is printed at once.
    while let Ok(l) = rx.recv_timeout(Duration::from_secs(2)) {
        lines.push(l);
    }
    (child, lines)
}

#[test]
fn hearth_local_is_found_from_another_namespace_and_never_announced_on_loopback() {
    let Some(net) = Net::new() else {
        eprintln!("skipped: creating network namespaces needs root and iproute2");
        return;
    };
    let home = home();
    let (mut server, lines) = serve(&net, home.path(), "10.213.0.1:4391");
    let text = lines.join("\n");
    assert!(text.contains("http://10.213.0.1:4391"), "{text}");
    assert!(text.contains("http://hearth.local:4391"), "{text}");
    let out = net
        .exec(
            &net.b,
            &[env!("CARGO_BIN_EXE_hearth"), "discover", "--wait", "6"],
        )
        .output()
        .expect("discover runs");
    let _ = server.kill();
    let _ = server.wait();
    let found = String::from_utf8_lossy(&out.stdout);
    assert!(
        found.contains("http://hearth.local:4391") && found.contains("10.213.0.1:4391"),
        "discover printed {found:?} (stderr {:?})",
        String::from_utf8_lossy(&out.stderr)
    );

    // Loopback only: nothing is announced, so the other namespace finds nothing.
    let (mut server, lines) = serve(&net, home.path(), "127.0.0.1:4392");
    let text = lines.join("\n");
    assert!(!text.contains("hearth.local"), "{text}");
    let out = net
        .exec(
            &net.b,
            &[env!("CARGO_BIN_EXE_hearth"), "discover", "--wait", "3"],
        )
        .output()
        .expect("discover runs");
    let _ = server.kill();
    let _ = server.wait();
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("4392"),
        "a loopback server was announced"
    );
}
