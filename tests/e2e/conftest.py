"""Fixtures for the end-to-end suite: real `hearth serve` processes on free loopback ports, the
official `openai` client pointed at them, and a reader for `/metrics`.

One server per configuration, shared by the whole session (loading the model once each):

    server            the default server (no keys; loopback is open, as the issue's table says)
    keyed_server      an API key from `--api-key`
    env_keyed_server  API keys from HEARTH_API_KEYS (comma-separated)
    small_ctx_server  `--ctx 512`, for the context-overflow error
    nocache_server    `--no-prefix-cache`, the reference for prefix-cache hits and batched runs

The binary is $HEARTH_BIN, else $CARGO_TARGET_DIR/release/hearth, else target/release/hearth; models
come from $HEARTH_TEST_HOME (default target/test-home), filled by scripts/e2e with `hearth pull`.

When a test fails, its report carries what each server logged while that test ran (and the tail of
a server that died), so a failure shows the server's side next to the client's.
"""

from __future__ import annotations

import functools
import json
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
CHAT_MODEL = os.environ.get("HEARTH_E2E_MODEL", "smollm2-135m")
EMBED_MODEL = "all-minilm-l6-v2"
FLAG_KEY = "sk-hearth-e2e-flag-key"
ENV_KEYS = ("sk-hearth-e2e-env-one", "sk-hearth-e2e-env-two")
READY_TIMEOUT_S = float(os.environ.get("HEARTH_E2E_READY_TIMEOUT", "180"))

_servers: list["HearthServer"] = []


def hearth_bin() -> str:
    if os.environ.get("HEARTH_BIN"):
        return os.environ["HEARTH_BIN"]
    target = Path(os.environ.get("CARGO_TARGET_DIR") or REPO_ROOT / "target")
    return str(target / "release" / "hearth")


def hearth_test_home() -> str:
    return os.environ.get("HEARTH_TEST_HOME") or str(REPO_ROOT / "target" / "test-home")


def hearth_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["HEARTH_HOME"] = hearth_test_home()
    # Keys must come only from what a fixture passes, never from the caller's shell.
    env.pop("HEARTH_API_KEYS", None)
    env.setdefault("RUST_LOG", "info")
    env["NO_COLOR"] = "1"  # plain text in the logs that failure reports show
    env.update(extra or {})
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@functools.lru_cache(maxsize=None)
def token_pieces(text: str, model: str = CHAT_MODEL) -> tuple[tuple[int, str], ...]:
    """(id, piece) of each token of TEXT by the model's own tokenizer (`hearth tokenize --pieces`)."""
    out = subprocess.run([hearth_bin(), "tokenize", "--pieces", model, text], env=hearth_env(),
                         capture_output=True, text=True)
    assert out.returncode == 0, f"hearth tokenize failed ({out.returncode}): {out.stderr}"
    items = json.loads(out.stdout)
    assert items, f"hearth tokenize printed no tokens for {text!r}"
    return tuple((t["id"], t["piece"]) for t in items)


def tokenize(text: str, model: str = CHAT_MODEL) -> list[int]:
    """Token ids of TEXT by the model's own tokenizer."""
    return [i for i, _ in token_pieces(text, model)]


_METRIC_LINE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+-?\d+)?$")
_LABEL = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"')


class Metrics:
    """One scrape of `/metrics` in Prometheus text format."""

    def __init__(self, text: str):
        self.text = text
        self.samples: dict[tuple[str, frozenset], float] = {}
        for line in text.splitlines():
            if not line.strip() or line.startswith("#"):
                continue
            m = _METRIC_LINE.match(line.strip())
            assert m, f"not a Prometheus sample line: {line!r}"
            labels = frozenset(_LABEL.findall(m.group(2) or ""))
            self.samples[(m.group(1), labels)] = float(m.group(3))

    def get(self, name: str, **labels: str) -> float:
        """The sample NAME with exactly these labels; a missing metric fails the test with the text."""
        key = (name, frozenset(labels.items()))
        assert key in self.samples, f"/metrics has no {name}{labels or ''}:\n{self.text}"
        return self.samples[key]

    def has(self, name: str) -> bool:
        return any(n == name for n, _ in self.samples)

    def sum(self, name: str, **labels: str) -> float:
        """Sum of NAME over every label set that includes LABELS (0 when there is none yet)."""
        want = set(labels.items())
        return sum(v for (n, ls), v in self.samples.items() if n == name and want <= ls)


class HearthServer:
    """A `hearth serve` process with its log in a file."""

    def __init__(self, name: str, log_dir: Path, args: list[str] | None = None, env: dict | None = None,
                 api_key: str | None = None, listen_host: str = "127.0.0.1"):
        self.name = name
        self.args = list(args or [])
        self.env = env or {}
        self.api_key = api_key
        self.port = free_port()
        # A server listening on every interface is reached through loopback.
        self.url = f"http://{'127.0.0.1' if listen_host == '0.0.0.0' else listen_host}:{self.port}"
        self.log_path = log_dir / f"hearth-serve-{name}.log"
        # A data directory of its own (one server per directory: Hearth locks it), sharing the
        # test models through a link.
        home = log_dir / f"hearth-home-{name}"
        home.mkdir(exist_ok=True)
        if not (home / "models").exists():
            (home / "models").symlink_to(Path(hearth_test_home()).resolve() / "models", target_is_directory=True)
        self.env = {"HEARTH_HOME": str(home), **self.env}
        self.argv = [hearth_bin(), "serve", "--model", CHAT_MODEL, "--listen", f"{listen_host}:{self.port}",
                     *self.args]
        if os.environ.get("HEARTH_E2E_THREADS"):
            self.argv += ["--threads", os.environ["HEARTH_E2E_THREADS"]]
        self.proc: subprocess.Popen | None = None
        self._log_file = None

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> "HearthServer":
        self._log_file = open(self.log_path, "ab")
        self._log_file.write(f"$ {' '.join(self.argv)}\n".encode())
        self._log_file.flush()
        self.proc = subprocess.Popen(self.argv, env=hearth_env(self.env), stdout=self._log_file,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        _servers.append(self)
        return self

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> "HearthServer":
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"hearth serve ({self.name}) exited with {self.proc.returncode} before it was "
                            f"ready; its log:\n{self.log_tail()}", pytrace=False)
            try:
                r = httpx.get(f"{self.url}/health", headers=self.auth_headers(), timeout=2)
                if r.status_code == 200:
                    return self
                last = f"{r.status_code} {r.text[:200]}"
            except httpx.HTTPError as e:
                last = repr(e)
            time.sleep(0.1)
        self.stop()
        pytest.fail(f"hearth serve ({self.name}) not ready after {timeout:.0f} s (last /health: {last}); "
                    f"its log:\n{self.log_tail()}", pytrace=False)

    def stop(self, sig: int = signal.SIGINT, timeout: float = 20) -> int | None:
        """Stop the server the way Ctrl-C would; kill it if it does not exit in time."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._log_file and not self._log_file.closed:
            self._log_file.close()
        return self.proc.returncode

    # -- clients ----------------------------------------------------------------------------

    def auth_headers(self, key: str | None = None) -> dict[str, str]:
        key = key or self.api_key
        return {"Authorization": f"Bearer {key}"} if key else {}

    def client(self, api_key: str | None = None, **kw) -> "openai.OpenAI":
        # Imported here: the client suites (tests/e2e/clients/*) run in venvs of their own that
        # need not have openai.
        import openai

        # No retries: a retried request would hide a 5xx or a dropped connection from the test.
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=api_key or self.api_key or "sk-unused",
                             max_retries=0, timeout=kw.pop("timeout", 180), **kw)

    def http(self, **kw) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.auth_headers(), timeout=kw.pop("timeout", 120), **kw)

    def metrics(self) -> Metrics:
        r = httpx.get(f"{self.url}/metrics", headers=self.auth_headers(), timeout=30)
        assert r.status_code == 200, f"/metrics answered {r.status_code}: {r.text[:500]}"
        return Metrics(r.text)

    # -- logs -------------------------------------------------------------------------------

    def log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except FileNotFoundError:
            return 0

    def log_since(self, offset: int, limit: int = 20000) -> str:
        with open(self.log_path, "rb") as f:
            f.seek(offset)
            data = f.read()
        if len(data) > limit:
            data = b"[... earlier lines cut ...]\n" + data[-limit:]
        return data.decode("utf-8", "replace")

    def log_tail(self, lines: int = 120) -> str:
        with open(self.log_path, "rb") as f:
            return b"\n".join(f.read().splitlines()[-lines:]).decode("utf-8", "replace")


def _start(tmp_path_factory, name: str, **kw) -> HearthServer:
    log_dir = tmp_path_factory.getbasetemp()
    return HearthServer(name, log_dir, **kw).start().wait_ready()


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    # --max-seqs 8: the batch-invariance test needs eight sequences in one step, and no more.
    s = _start(tmp_path_factory, "default", args=["--max-seqs", "8"])
    yield s
    s.stop()


@pytest.fixture(scope="session")
def nocache_server(tmp_path_factory):
    """The default configuration without the prefix cache: every prompt computed from scratch, the
    reference that prefix-cache hits and batched runs are compared with."""
    s = _start(tmp_path_factory, "no-prefix-cache", args=["--max-seqs", "8", "--no-prefix-cache"])
    yield s
    s.stop()


@pytest.fixture(scope="session")
def keyed_server(tmp_path_factory):
    s = _start(tmp_path_factory, "keys", args=["--api-key", FLAG_KEY], api_key=FLAG_KEY)
    yield s
    s.stop()


@pytest.fixture(scope="session")
def env_keyed_server(tmp_path_factory):
    s = _start(tmp_path_factory, "env-keys", env={"HEARTH_API_KEYS": ",".join(ENV_KEYS)}, api_key=ENV_KEYS[0])
    yield s
    s.stop()


@pytest.fixture(scope="session")
def small_ctx_server(tmp_path_factory):
    s = _start(tmp_path_factory, "ctx512", args=["--ctx", "512"])
    yield s
    s.stop()


@pytest.fixture(scope="session")
def client(server) -> "openai.OpenAI":
    return server.client()


@pytest.fixture(scope="session")
def model_id(server) -> str:
    """The chat model's id as the server lists it (asserted to be the name it was started with in
    test_models_list)."""
    ids = [m["id"] for m in server.http().get("/v1/models").json()["data"]]
    chat = [i for i in ids if i != EMBED_MODEL]
    assert chat, f"/v1/models lists no chat model: {ids}"
    return chat[0]


@pytest.fixture
def http(server):
    with server.http() as c:
        yield c


# -- failure reports carry the servers' side ---------------------------------------------------


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    item._hearth_log_offsets = {id(s): s.log_size() for s in _servers}
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if not rep.failed:
        return
    offsets = getattr(item, "_hearth_log_offsets", {})
    for s in _servers:
        start = offsets.get(id(s), 0)
        text = s.log_since(start) if s.log_size() > start else ""
        if s.proc is not None and s.proc.poll() is not None and s.proc.returncode not in (0, None):
            text += f"\n[hearth serve ({s.name}) exited with {s.proc.returncode}; tail of its log:]\n{s.log_tail()}"
        if text.strip():
            rep.sections.append((f"hearth serve log ({s.name}) during {rep.when}", text))
