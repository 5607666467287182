"""Starting and stopping: Ctrl-C ends the server cleanly, and a listener beyond loopback without
API keys never leaves `/v1` open: the server refuses to start with a message that says how to fix
it, or (with the household page's accounts) starts with `/v1` closed to callers without a key."""

from __future__ import annotations

import signal
import time

import httpx

from conftest import HearthServer
from support import QUESTION, user


def test_ctrl_c_exits_cleanly(tmp_path):
    s = HearthServer("sigint", tmp_path).start().wait_ready()
    code = s.stop(signal.SIGINT, timeout=20)
    assert code == 0, f"exit status {code} after Ctrl-C; log:\n{s.log_tail()}"


def test_non_loopback_without_keys_is_never_open(tmp_path, model_id):
    s = HearthServer("all-interfaces", tmp_path, listen_host="0.0.0.0").start()
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if s.proc.poll() is not None:
                assert s.proc.returncode != 0
                log = s.log_tail().lower()
                assert "--api-key" in log or "hearth_api_keys" in log, log
                return
            try:
                if httpx.get(f"{s.url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        else:
            raise AssertionError(f"neither refused nor ready after 120 s; log:\n{s.log_tail()}")
        # It started: then /v1 must turn away a caller with no key.
        r = httpx.get(f"{s.url}/v1/models", timeout=30)
        assert r.status_code == 401, f"/v1/models open on 0.0.0.0 without a key: {r.status_code} {r.text[:300]}"
        r = httpx.post(f"{s.url}/v1/chat/completions", timeout=60,
                       json={"model": model_id, "messages": user(QUESTION), "max_tokens": 2})
        assert r.status_code == 401, f"chat open on 0.0.0.0 without a key: {r.status_code} {r.text[:300]}"
    finally:
        s.stop()


def test_ctrl_c_with_a_stream_in_flight(tmp_path, model_id):
    # Ctrl-C stops taking requests and finishes (or cancels) the ones in flight before exiting:
    # the open stream must end, not hang, and the process must exit cleanly.
    s = HearthServer("sigint-busy", tmp_path).start().wait_ready()
    body = {"model": model_id, "messages": user("Write a long story about a dragon."), "max_tokens": 48,
            "temperature": 0, "stream": True}
    finished = None
    try:
        with httpx.Client(base_url=s.url, timeout=60) as http:
            with http.stream("POST", "/v1/chat/completions", json=body) as resp:
                assert resp.status_code == 200
                lines = resp.iter_lines()
                for line in lines:
                    if '"content"' in line:
                        break
                s.proc.send_signal(signal.SIGINT)
                try:
                    for line in lines:
                        if '"finish_reason":"' in line.replace(" ", ""):
                            finished = line
                except httpx.HTTPError:
                    pass  # cancelled rather than finished: allowed, as long as it ends
        code = s.proc.wait(timeout=30)
        assert code == 0, f"exit status {code}; log:\n{s.log_tail()}"
        if finished is not None:
            assert '"length"' in finished or '"stop"' in finished, finished
    finally:
        s.stop()
