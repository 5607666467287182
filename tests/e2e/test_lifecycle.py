"""Starting and stopping: Ctrl-C ends the server cleanly, and a listener beyond loopback without
API keys is refused with a message that says how to fix it."""

from __future__ import annotations

import signal
import subprocess

from conftest import CHAT_MODEL, HearthServer, free_port, hearth_bin, hearth_env


def test_ctrl_c_exits_cleanly(tmp_path):
    s = HearthServer("sigint", tmp_path).start().wait_ready()
    code = s.stop(signal.SIGINT, timeout=20)
    assert code == 0, f"exit status {code} after Ctrl-C; log:\n{s.log_tail()}"


def test_non_loopback_without_keys_refuses_to_start():
    argv = [hearth_bin(), "serve", "--model", CHAT_MODEL, "--listen", f"0.0.0.0:{free_port()}"]
    try:
        p = subprocess.run(argv, env=hearth_env(), capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired as e:
        raise AssertionError("hearth serve kept running on 0.0.0.0 with no API key") from e
    assert p.returncode != 0
    message = (p.stderr + p.stdout).lower()
    assert "api-key" in message or "hearth_api_keys" in message, p.stderr
