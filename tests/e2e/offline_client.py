"""The client half of test_offline.py: run inside the loopback-only namespace (it cannot reach a
server there from outside), it uses Hearth the way a household and its apps do and prints one
line per step, `ok STEP: DETAIL` or `FAIL STEP: WHY`, then exits 0 only if every step passed.

    python offline_client.py URL SERVER_LOG SERVER_PID

SERVER_LOG is where the server writes its terminal output: the first-run setup code is read from
it, as the keeper would read it off the screen. SERVER_PID (namespaces share process ids) ends
the wait for a server that has exited.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
import traceback
from html.parser import HTMLParser

import httpx
import openai

CHAT_MODEL = "smollm2-135m"
EMBED_MODEL = "all-minilm-l6-v2"
STEPS = ("page", "v1 chat", "v1 embeddings", "api state", "api setup", "api login", "api streamed reply")


class Refs(HTMLParser):
    """Every URL the page makes the browser fetch by itself."""

    def __init__(self):
        super().__init__()
        self.refs: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for key in ("src", "href"):
            if a.get(key) and (tag != "a"):
                self.refs.append(a[key])


def alive(pid: int) -> bool:
    try:
        # An exited server stays a zombie until the test collects it.
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def wait_ready(url: str, pid: int) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if not alive(pid):
            raise AssertionError("the server exited before it was ready (its log is below)")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError("the server was not ready after 180 s")


def page(http: httpx.Client) -> str:
    r = http.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html"), (r.status_code, r.headers)
    refs = Refs()
    refs.feed(r.text)
    assert "/app.js" in refs.refs, f"the page does not load /app.js: {refs.refs}"
    # Everything the page loads comes from Hearth itself: a CDN font or script would not load here.
    for ref in refs.refs:
        assert ref.startswith("/") and not ref.startswith("//") or ref.startswith("data:"), f"page loads {ref}"
        if ref.startswith("/"):
            got = http.get(ref)
            assert got.status_code == 200 and got.content, f"{ref}: {got.status_code}"
    js = http.get("/app.js")
    assert "javascript" in js.headers["content-type"], js.headers
    return f"/ and {', '.join(refs.refs)} served ({len(js.content)} bytes of app.js)"


def v1_chat(url: str) -> str:
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="sk-unused", max_retries=0, timeout=180)
    c = client.chat.completions.create(model=CHAT_MODEL, messages=[{"role": "user", "content": "Say hello."}],
                                       max_tokens=8, temperature=0)
    text = c.choices[0].message.content
    assert text and c.usage.completion_tokens > 0, c
    return repr(text)


def v1_embeddings(url: str) -> str:
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="sk-unused", max_retries=0, timeout=180)
    e = client.embeddings.create(model=EMBED_MODEL, input=["a warm home", "a cold night"])
    dims = [len(d.embedding) for d in e.data]
    assert dims == [384, 384], dims
    return f"2 vectors of {dims[0]}"


def sse_events(resp: httpx.Response):
    name = None
    for line in resp.iter_lines():
        if line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            yield name, json.loads(line[5:])
            name = None


def household(url: str, log_path: str, out) -> None:
    with httpx.Client(base_url=url, timeout=120) as http:
        out("page", page(http))
        state = http.get("/api/state").json()
        assert state.get("setup_code_required") is True, state
        out("api state", "a fresh household that needs the setup code")

        m = re.search(r"needs this code: (\d+)", open(log_path, encoding="utf-8", errors="replace").read())
        assert m, "the server printed no setup code"
        r = http.post("/api/setup", json={"household": "Offline", "name": "keeper",
                                         "password": "a long offline password", "setup_code": m.group(1)})
        assert r.status_code == 200, (r.status_code, r.text)
        out("api setup", f"set up with the printed code, logged in as {r.json()['me']}")

        r = http.post("/api/logout", headers={"x-csrf-token": r.json()["csrf"]})
        assert r.status_code < 300, (r.status_code, r.text)
        http.cookies.clear()
        r = http.post("/api/login", json={"name": "keeper", "secret": "a long offline password"})
        assert r.status_code == 200, (r.status_code, r.text)
        csrf = {"x-csrf-token": r.json()["csrf"]}
        out("api login", "logged out and in again")

        # A reply long enough to still be running when the page subscribes; a reply that was
        # already over (`idle`) is asked again, so the test never depends on speed.
        for _ in range(3):
            conv = http.post("/api/conversations", json={}, headers=csrf).json()["id"]
            r = http.post(f"/api/conversations/{conv}/messages", headers=csrf,
                          json={"content": "Write a long story about a dragon who loves apples."})
            assert r.status_code == 200, (r.status_code, r.text)
            deltas, ended = [], None
            with http.stream("GET", f"/api/conversations/{conv}/events", headers=csrf) as ev:
                assert ev.status_code == 200 and ev.headers["content-type"].startswith("text/event-stream")
                for name, data in sse_events(ev):
                    if name == "delta":
                        deltas.append(data["text"])
                        if len(deltas) == 4:
                            http.post(f"/api/conversations/{conv}/stop", headers=csrf)
                    elif name in ("done", "idle", "error"):
                        ended = (name, data)
                        break
            if ended and ended[0] == "idle":
                continue
            assert ended and ended[0] == "done", f"the stream ended with {ended}"
            assert len(deltas) >= 4 and "".join(deltas).strip(), deltas
            saved = http.get(f"/api/conversations/{conv}").json()
            assert saved["messages"][-1]["role"] == "assistant", saved
            out("api streamed reply", f"{len(deltas)} deltas, then done ({ended[1]}): {''.join(deltas)!r}")
            return
        raise AssertionError("three replies were all over before the event stream opened")


def main() -> int:
    url, log_path, pid = sys.argv[1], sys.argv[2], int(sys.argv[3])
    failed = False

    def out(step: str, detail: str) -> None:
        print(f"ok {step}: {detail}", flush=True)

    try:
        wait_ready(url, pid)
    except AssertionError as e:
        print(f"FAIL ready: {e}", flush=True)
        return 1
    for step, fn in (("v1 chat", lambda: out("v1 chat", v1_chat(url))),
                     ("v1 embeddings", lambda: out("v1 embeddings", v1_embeddings(url))),
                     ("household", lambda: household(url, log_path, out))):
        try:
            fn()
        except Exception:  # every step is reported, not only the first that fails
            failed = True
            print(f"FAIL {step}: {traceback.format_exc()}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
