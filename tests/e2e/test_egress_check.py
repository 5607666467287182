"""The no-egress check itself (scripts/egress-trace records, scripts/egress-check judges): it must
catch a process that reaches outside, pass one that stays on loopback, and stand in for hearth
without changing what its caller sees (scripts/e2e runs every suite's `hearth` through it).

A probe program stands in for hearth here: it makes exactly the calls a test asks for. The
outside address is a documentation one (192.0.2.0/24, RFC 5737), sent without waiting."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO_ROOT

TRACE = str(REPO_ROOT / "scripts" / "egress-trace")
CHECK = str(REPO_ROOT / "scripts" / "egress-check")

PROBE = r"""
import os, signal, socket, sys, time
for action in os.environ.get("PROBE", "").split():
    if action == "outside-connect":
        s = socket.socket(); s.setblocking(False); s.connect_ex(("192.0.2.1", 80)); s.close()
    elif action == "outside-send":
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x", ("192.0.2.7", 53))
    elif action == "mdns":
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x", ("224.0.0.251", 5353))
    elif action == "loopback":
        l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen()
        c = socket.create_connection(l.getsockname()); c.sendall(b"hi"); c.close()
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x", ("127.0.0.1", 9))
    elif action == "unix":
        a, b = socket.socketpair(); a.send(b"hi")
    elif action == "echo":
        sys.stdout.write("args " + " ".join(sys.argv[1:]) + " stdin " + sys.stdin.read()); sys.stdout.flush()
    elif action == "wait-int":
        signal.signal(signal.SIGINT, lambda *_: sys.exit(3))
        print("ready", flush=True)
        time.sleep(60)
        sys.exit(4)
"""

pytestmark = pytest.mark.skipif(shutil.which("strace") is None or shutil.which("setpriv") is None,
                                reason="needs strace and setpriv (scripts/e2e installs strace as root)")


@pytest.fixture
def probe(tmp_path) -> Path:
    p = tmp_path / "probe"
    p.write_text(f"#!{sys.executable}\n{PROBE}")
    p.chmod(0o755)
    return p


def traced(probe: Path, out: Path, actions: str, *args: str, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "HEARTH_EGRESS_REAL_BIN": str(probe), "HEARTH_EGRESS_DIR": str(out), "PROBE": actions}
    return subprocess.run([TRACE, *args], env=env, capture_output=True, text=True, timeout=60, **kw)


def check(out: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, CHECK, str(out)], capture_output=True, text=True, timeout=60)


def test_egress_check_catches_a_connect_to_a_documentation_address(probe, tmp_path):
    out = tmp_path / "traces"
    assert traced(probe, out, "loopback outside-connect", "serve", "--listen", "127.0.0.1:4314").returncode == 0
    r = check(out)
    assert r.returncode == 1, f"egress went unnoticed:\n{r.stdout}{r.stderr}"
    assert '"192.0.2.1"' in r.stderr and "htons(80)" in r.stderr, r.stderr
    assert 'inet_addr("127.0.0.1")' not in r.stderr, f"loopback was refused too:\n{r.stderr}"


def test_egress_check_catches_a_send_without_connecting(probe, tmp_path):
    # QUIC and DNS send datagrams without ever calling connect().
    out = tmp_path / "traces"
    assert traced(probe, out, "outside-send", "run", "x").returncode == 0
    r = check(out)
    assert r.returncode == 1 and '"192.0.2.7"' in r.stderr, f"{r.stdout}{r.stderr}"


def test_egress_check_allows_mdns_only_on_a_lan_listener(probe, tmp_path):
    lan, local = tmp_path / "lan", tmp_path / "local"
    assert traced(probe, lan, "mdns", "serve", "--listen", "0.0.0.0:4314").returncode == 0
    assert traced(probe, local, "mdns", "serve", "--listen", "127.0.0.1:4314").returncode == 0
    r = check(lan)
    assert r.returncode == 0, f"mDNS from a LAN listener was refused:\n{r.stdout}{r.stderr}"
    r = check(local)
    assert r.returncode == 1 and "224.0.0.251" in r.stderr, f"mDNS from a loopback server passed:\n{r.stdout}"


def test_egress_check_passes_loopback_and_unix_sockets(probe, tmp_path):
    out = tmp_path / "traces"
    assert traced(probe, out, "loopback unix", "serve").returncode == 0
    r = check(out)
    assert r.returncode == 0, f"{r.stdout}{r.stderr}"
    # It did see the calls: a check that recorded nothing would pass anything.
    assert "connect 127.0.0.1" in r.stdout and "sendto 127.0.0.1" in r.stdout, r.stdout


def test_egress_check_refuses_to_pass_with_no_traces(tmp_path):
    (tmp_path / "empty").mkdir()
    assert check(tmp_path / "empty").returncode == 2


def test_egress_trace_is_transparent_to_its_caller(probe, tmp_path):
    out = tmp_path / "traces"
    r = traced(probe, out, "echo", "run", "a b", input="hello")
    assert (r.returncode, r.stdout, r.stderr) == (0, "args run a b stdin hello", ""), r
    # Ctrl-C reaches the program itself, and its exit status comes back.
    env = {**os.environ, "HEARTH_EGRESS_REAL_BIN": str(probe), "HEARTH_EGRESS_DIR": str(out), "PROBE": "wait-int"}
    p = subprocess.Popen([TRACE, "serve"], env=env, stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline() == "ready\n"
    p.send_signal(signal.SIGINT)
    assert p.wait(timeout=30) == 3
    # Killed outright, it takes the traced program with it.
    p = subprocess.Popen([TRACE, "serve"], env=env, stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline() == "ready\n"
    pids = [int(x) for x in Path(f"/proc/{p.pid}/task/{p.pid}/children").read_text().split()]
    assert len(pids) == 1, pids  # strace
    inner = [int(x) for x in Path(f"/proc/{pids[0]}/task/{pids[0]}/children").read_text().split()]
    p.kill()
    p.wait(timeout=30)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(alive(x) for x in pids + inner):
        time.sleep(0.05)
    assert not any(alive(x) for x in pids + inner), "strace or the program outlived the wrapper"


def alive(pid: int) -> bool:
    try:
        # A zombie has ended; only its parent has not collected it yet.
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False
