"""Every error an app can run into, in OpenAI's shape {"error": {"message", "type", "param", "code"}}
with the right status: bad bodies and fields (400, naming the field), huge bodies (413), unknown
models (404), API keys (401) and a prompt longer than the context (400 stating both numbers)."""

from __future__ import annotations

import json
import re
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest

from conftest import ENV_KEYS, FLAG_KEY, HearthServer, tokenize
from support import QUESTION, STORY, user

CHAT = "/v1/chat/completions"


def error_of(r: httpx.Response, status: int) -> dict:
    assert r.status_code == status, f"expected {status}, got {r.status_code}: {r.text[:500]}"
    assert r.headers.get("content-type", "").startswith("application/json"), r.headers
    body = r.json()
    assert set(body) == {"error"}, body
    err = body["error"]
    assert {"message", "type", "param", "code"} <= set(err), err
    assert isinstance(err["message"], str) and err["message"], err
    return err


def invalid_request(r: httpx.Response, param: str | None = None, status: int = 400) -> dict:
    err = error_of(r, status)
    assert err["type"] == "invalid_request_error", err
    if param is not None:
        assert err["param"] is not None and err["param"].split(".")[0].split("[")[0] == param, err
    return err


def chat_body(model_id, **fields):
    body = {"model": model_id, "messages": user(QUESTION), "max_tokens": 4}
    body.update(fields)
    return body


def test_malformed_json(http):
    r = http.post(CHAT, content=b'{"model": "m", "messages": [', headers={"content-type": "application/json"})
    invalid_request(r)


def test_body_not_an_object(http):
    invalid_request(http.post(CHAT, json=[1, 2, 3]))


def test_invalid_utf8_body(http, model_id):
    raw = b'{"model": "' + model_id.encode() + b'", "messages": [{"role": "user", "content": "caf\xe9 \xff"}]}'
    invalid_request(http.post(CHAT, content=raw, headers={"content-type": "application/json"}))


def test_huge_body(http, model_id):
    body = json.dumps(chat_body(model_id, messages=user("x" * (64 << 20)))).encode()
    r = http.post(CHAT, content=body, headers={"content-type": "application/json"})
    error_of(r, 413)


@pytest.mark.parametrize("field,value", [
    ("messages", "hello"),
    ("messages", [{"role": "wizard", "content": "hi"}]),
    ("messages", [{"role": "user", "content": 42}]),
    ("max_tokens", "ten"),
    ("max_tokens", -2),
    ("max_tokens", 2.5),
    ("temperature", "hot"),
    ("stream", "yes"),
    ("stop", 5),
    ("logprobs", "many"),
    ("top_logprobs", "x"),
    ("response_format", {"type": "xml"}),
    ("tool_choice", "sometimes"),
])
def test_wrong_types_name_the_field(http, model_id, field, value):
    body = chat_body(model_id, **{field: value})
    if field == "top_logprobs":
        body["logprobs"] = True  # so that the only fault is the field under test
    invalid_request(http.post(CHAT, json=body), param=field)


def test_empty_messages(http, model_id):
    invalid_request(http.post(CHAT, json=chat_body(model_id, messages=[])), param="messages")


@pytest.mark.parametrize("missing", ["model", "messages"])
def test_missing_required_field(http, model_id, missing):
    body = chat_body(model_id)
    del body[missing]
    invalid_request(http.post(CHAT, json=body), param=missing)


@pytest.mark.parametrize("path,body", [
    (CHAT, {"messages": user(QUESTION)}),
    ("/v1/completions", {"prompt": "Hello"}),
    ("/v1/embeddings", {"input": "Hello"}),
])
def test_unknown_model(http, path, body):
    err = error_of(http.post(path, json={"model": "no-such-model", **body}), 404)
    assert err["code"] == "model_not_found", err
    assert "no-such-model" in err["message"], err


def test_unknown_model_through_client(client):
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="no-such-model", messages=user(QUESTION), max_tokens=4)
    assert e.value.code == "model_not_found"


# -- API keys ---------------------------------------------------------------------------------


def test_missing_key_when_keys_configured(keyed_server):
    r = httpx.get(f"{keyed_server.url}/v1/models", timeout=30)
    err = error_of(r, 401)
    assert err["code"] == "invalid_api_key", err


def test_bad_key(keyed_server):
    r = httpx.get(f"{keyed_server.url}/v1/models", headers={"Authorization": "Bearer sk-wrong"}, timeout=30)
    err = error_of(r, 401)
    assert err["code"] == "invalid_api_key", err
    assert "sk-wrong" not in err["message"], "a rejected key is not echoed back"


def test_env_keys_are_required_too(env_keyed_server):
    err = error_of(httpx.get(f"{env_keyed_server.url}/v1/models", timeout=30), 401)
    assert err["code"] == "invalid_api_key", err


def test_bad_key_through_client(keyed_server, model_id):
    with pytest.raises(openai.AuthenticationError):
        keyed_server.client(api_key="sk-wrong").chat.completions.create(
            model=model_id, messages=user(QUESTION), max_tokens=4)


@pytest.mark.parametrize("server_fixture,key", [
    ("keyed_server", FLAG_KEY), ("env_keyed_server", ENV_KEYS[0]), ("env_keyed_server", ENV_KEYS[1])])
def test_good_keys(request, model_id, server_fixture, key):
    # Keys from --api-key and from HEARTH_API_KEYS work, for listing and for chatting.
    c = request.getfixturevalue(server_fixture).client(api_key=key)
    assert model_id in [m.id for m in c.models.list().data]
    r = c.chat.completions.create(model=model_id, messages=user(QUESTION), max_tokens=2, temperature=0)
    assert r.usage.completion_tokens >= 1


# -- a full queue ------------------------------------------------------------------------------


def test_full_queue_is_refused_with_retry_after(tmp_path, model_id):
    # One running and one waiting at most: of six requests sent at once, some must be turned away
    # with 429 or 503 and a Retry-After, and the rest must still be served. (How many are served
    # depends on whether the first has left the queue for the engine when the second arrives.)
    s = HearthServer("queue1", tmp_path, args=["--max-seqs", "1", "--max-queue", "1"]).start().wait_ready()
    try:
        body = chat_body(model_id, messages=user(STORY), max_tokens=48, temperature=0)
        barrier = threading.Barrier(6)

        def send(_):
            with httpx.Client(base_url=s.url, timeout=120) as c:
                barrier.wait()
                return c.post(CHAT, json=body)

        with ThreadPoolExecutor(6) as pool:
            responses = list(pool.map(send, range(6)))
        statuses = sorted(r.status_code for r in responses)
        refused = [r for r in responses if r.status_code in (429, 503)]
        assert refused and len(refused) + statuses.count(200) == 6, statuses
        assert 1 <= statuses.count(200) <= 2, statuses
        for r in refused:
            error_of(r, r.status_code)
            assert int(r.headers["retry-after"]) >= 1, r.headers
    finally:
        s.stop()


# -- context overflow -------------------------------------------------------------------------

LONG = "The quick brown fox jumps over the lazy dog near the quiet river bank. " * 50


@pytest.mark.parametrize("path", [CHAT, "/v1/completions"])
def test_context_overflow_states_both_numbers(small_ctx_server, model_id, path):
    raw = len(tokenize(LONG))
    assert raw > 512, f"the test text must not fit: {raw} tokens"
    body = {"model": model_id, "max_tokens": 4}
    body.update({"messages": user(LONG)} if path == CHAT else {"prompt": LONG})
    with small_ctx_server.http() as http:
        err = invalid_request(http.post(path, json=body))
    m = re.search(r"maximum context length is (\d+) tokens\. However, your (?:messages|prompt) resulted in (\d+) "
                  r"tokens", err["message"])
    assert m, err
    ctx, prompt = int(m.group(1)), int(m.group(2))
    assert ctx == 512
    assert prompt >= raw, f"the stated prompt length {prompt} is less than the text's own {raw} tokens"


def test_prompt_that_fits_small_context(small_ctx_server, model_id):
    text = LONG[: len(LONG) // 3]
    assert len(tokenize(text)) < 400
    r = small_ctx_server.client().chat.completions.create(model=model_id, messages=user(text), max_tokens=4,
                                                          temperature=0)
    assert r.usage.prompt_tokens < 512 and r.usage.completion_tokens >= 1
