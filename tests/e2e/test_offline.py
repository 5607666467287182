"""Proof of no egress, part 1: with its models present, Hearth needs no network at all. `hearth
serve` runs in a network namespace that holds nothing but loopback (scripts/netns loopback), and
from inside it the page, the OpenAI API (a chat completion and an embedding), the household's
own API (state, setup with the printed code, login, a conversation with a streamed reply) and
`hearth run` all work. Anything that phoned home on the way (a model check, a font, an update
check) would fail here, because in that namespace every address beyond 127.0.0.0/8 is
unreachable; the test first shows that it is.

Needs root and iproute2 (scripts/netns installs it as root); CI runs as root. Part 2, the strace
record of every connect and send during the whole end-to-end run, is scripts/egress-check."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import CHAT_MODEL, REPO_ROOT, HearthServer, hearth_bin, hearth_env, hearth_test_home

NETNS = str(REPO_ROOT / "scripts" / "netns")

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not (shutil.which("ip") or shutil.which("apt-get")),
                                reason="network namespaces need root and iproute2 (CI runs as root)")


@pytest.fixture
def offline_ns():
    """A fresh namespace with only loopback, removed afterwards (its processes with it)."""
    prefix = f"hoff-{os.getpid()}"
    made = subprocess.run([NETNS, "loopback", prefix], capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, f"scripts/netns loopback failed: {made.stderr}"
    try:
        yield made.stdout.split()[0]
    finally:
        subprocess.run([NETNS, "destroy", prefix], timeout=60)


def in_ns(ns: str, *argv: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True, text=True, **kw)


def test_serve_page_v1_household_api_and_run_work_with_only_loopback(offline_ns, tmp_path):
    # The namespace really has no way out (else everything below would prove nothing).
    probe = in_ns(offline_ns, sys.executable, "-c", (
        "import socket\n"
        "print(sorted(n for _, n in socket.if_nameindex()))\n"
        "try:\n"
        "    socket.create_connection(('192.0.2.1', 80), timeout=5); print('reached 192.0.2.1')\n"
        "except OSError as e:\n"
        "    print(e.strerror)\n"), timeout=60)
    assert probe.stdout.split("\n")[:2] == ["['lo']", "Network is unreachable"], probe

    s = HearthServer("offline", tmp_path, args=["--max-seqs", "2"])
    s.argv = ["ip", "netns", "exec", offline_ns, *s.argv]
    s.start()
    try:
        client = in_ns(offline_ns, sys.executable, str(Path(__file__).with_name("offline_client.py")), s.url,
                       str(s.log_path), str(s.proc.pid), timeout=600)
        report = client.stdout + client.stderr
        assert client.returncode == 0, f"offline, these failed:\n{report}\nserver log:\n{s.log_tail()}"
        for step in ("page", "v1 chat", "v1 embeddings", "api state", "api setup", "api login",
                     "api streamed reply"):
            assert f"ok {step}:" in client.stdout, f"step {step} never ran:\n{report}"
        print(client.stdout)
    finally:
        code = s.stop()
    assert code == 0, f"hearth serve exited with {code} offline; log:\n{s.log_tail()}"

    run = in_ns(offline_ns, hearth_bin(), "run", CHAT_MODEL, "-n", "8", "--temperature", "0", "Say hello.",
                env=hearth_env({"HEARTH_HOME": hearth_test_home()}), timeout=300)
    assert run.returncode == 0 and run.stdout.strip(), f"hearth run offline: {run.returncode}\n{run.stdout}\n{run.stderr}"
