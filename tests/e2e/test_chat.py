"""Chat and text completions through the official openai client: the shapes an app relies on,
streaming equal to non-streaming, stop strings, token limits, seeds, logprobs and usage."""

from __future__ import annotations

import math
import time

import openai
import pytest

from conftest import CHAT_MODEL, EMBED_MODEL, token_pieces, tokenize
from support import QUESTION, STORY, collect_chat_stream, first_difference, logprob_rows, user


def test_models_list(client):
    models = client.models.list()
    ids = [m.id for m in models.data]
    assert CHAT_MODEL in ids, f"the model the server was started with is not listed: {ids}"
    assert EMBED_MODEL in ids, f"the embedding model is installed but not listed: {ids}"
    for m in models.data:
        assert m.object == "model"
        assert isinstance(m.owned_by, str) and m.owned_by
        assert isinstance(m.created, int)


def test_chat_non_streaming_shape(client, model_id):
    before = int(time.time())
    r = client.chat.completions.create(model=model_id, messages=user(QUESTION), temperature=0, max_tokens=24)
    assert r.object == "chat.completion"
    assert r.id and isinstance(r.id, str)
    assert before - 5 <= r.created <= time.time() + 5
    assert r.model == model_id
    assert len(r.choices) == 1
    choice = r.choices[0]
    assert choice.index == 0
    assert choice.message.role == "assistant"
    assert isinstance(choice.message.content, str) and choice.message.content.strip()
    assert not choice.message.tool_calls
    assert choice.finish_reason in ("stop", "length")
    u = r.usage
    assert u.prompt_tokens > len(tokenize(QUESTION)), "the prompt must count the chat template's tokens too"
    assert 0 < u.completion_tokens <= 24
    assert u.total_tokens == u.prompt_tokens + u.completion_tokens
    if choice.finish_reason == "length":
        assert u.completion_tokens == 24


def test_stream_equals_non_stream(client, model_id):
    req = dict(model=model_id, messages=user(STORY), temperature=0, max_tokens=32, logprobs=True, top_logprobs=2)
    full = client.chat.completions.create(**req)
    s = collect_chat_stream(
        client.chat.completions.create(**req, stream=True, stream_options={"include_usage": True}))
    assert len(s.ids) == 1, f"chunks of one completion carry one id: {s.ids}"
    assert s.role == "assistant"
    assert s.content == full.choices[0].message.content
    assert s.finish_reason == full.choices[0].finish_reason
    a, b = logprob_rows(s.logprobs), logprob_rows(full.choices[0].logprobs.content)
    assert a == b, first_difference(a, b)
    # Token counts only: the details (cached_tokens) may differ, as the second run finds the first's
    # prompt in the prefix cache.
    counts = ("prompt_tokens", "completion_tokens", "total_tokens")
    assert [getattr(s.usage, k) for k in counts] == [getattr(full.usage, k) for k in counts]


def test_stream_include_usage(client, model_id):
    req = dict(model=model_id, messages=user(QUESTION), temperature=0, max_tokens=8, stream=True)
    plain = collect_chat_stream(client.chat.completions.create(**req))
    assert plain.usage_chunks == 0, "usage is sent only when stream_options.include_usage asks for it"

    chunks = list(client.chat.completions.create(**req, stream_options={"include_usage": True}))
    last = chunks[-1]
    assert last.choices == [], "the usage chunk comes last, with no choices"
    assert last.usage is not None
    assert all(c.usage is None for c in chunks[:-1]), "only the last chunk carries usage"
    content_chunks = sum(1 for c in chunks for ch in c.choices if ch.delta.content)
    assert 0 < last.usage.completion_tokens <= 8
    assert content_chunks <= last.usage.completion_tokens
    assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens


@pytest.mark.parametrize("field,limit", [("max_tokens", 5), ("max_completion_tokens", 7)])
def test_token_limit(client, model_id, field, limit):
    r = client.chat.completions.create(model=model_id, messages=user(STORY), temperature=0, **{field: limit})
    assert r.choices[0].finish_reason == "length"
    assert r.usage.completion_tokens == limit


@pytest.mark.parametrize("stream", [False, True])
def test_stop_sequence(client, model_id, stream):
    full = client.chat.completions.create(model=model_id, messages=user(STORY), temperature=0, max_tokens=40)
    text = full.choices[0].message.content
    assert len(text) > 40, f"the story is too short to cut: {text!r}"
    # A stop string taken from the middle of the greedy answer: the same request with it must end
    # right before its first occurrence, and leave the stop string out.
    stop = text[len(text) // 2: len(text) // 2 + 4]
    expected = text[: text.index(stop)]
    req = dict(model=model_id, messages=user(STORY), temperature=0, max_tokens=40, stop=[stop, "@@never@@"])
    if stream:
        s = collect_chat_stream(client.chat.completions.create(**req, stream=True))
        content, finish = s.content, s.finish_reason
    else:
        r = client.chat.completions.create(**req)
        content, finish = r.choices[0].message.content, r.choices[0].finish_reason
        assert r.usage.completion_tokens <= full.usage.completion_tokens
    assert content == expected, f"stop={stop!r}"
    assert finish == "stop"


def test_seed_reproducible_when_sampling(client, model_id):
    req = dict(model=model_id, messages=user(STORY), temperature=1.0, top_p=1.0, max_tokens=16)
    a = client.chat.completions.create(**req, seed=1234).choices[0].message.content
    b = client.chat.completions.create(**req, seed=1234).choices[0].message.content
    assert a == b, "the same seed must give the same sample"
    others = {client.chat.completions.create(**req, seed=s).choices[0].message.content for s in (1, 2, 3)}
    assert others != {a}, "three other seeds all gave the seed-1234 text: is temperature ignored?"


def test_logprobs(client, model_id):
    r = client.chat.completions.create(model=model_id, messages=user(QUESTION), temperature=0, max_tokens=8,
                                       logprobs=True, top_logprobs=3)
    entries = r.choices[0].logprobs.content
    assert len(entries) == r.usage.completion_tokens
    assert b"".join(bytes(e.bytes) for e in entries).decode("utf-8") == r.choices[0].message.content
    for e in entries:
        assert e.logprob <= 0
        assert len(e.top_logprobs) == 3
        tops = [t.logprob for t in e.top_logprobs]
        assert tops == sorted(tops, reverse=True)
        assert sum(math.exp(t) for t in tops) <= 1 + 1e-6
        # Greedy: the chosen token is the most likely one.
        assert (e.token, e.logprob) == (e.top_logprobs[0].token, e.top_logprobs[0].logprob)


def test_logprobs_absent_unless_asked(client, model_id):
    r = client.chat.completions.create(model=model_id, messages=user(QUESTION), temperature=0, max_tokens=4)
    assert r.choices[0].logprobs is None


def test_logit_bias(client, model_id):
    base = client.chat.completions.create(model=model_id, messages=user(QUESTION), temperature=0, max_tokens=4,
                                          logprobs=True)
    first = base.choices[0].logprobs.content[0].token
    [first_id] = tokenize(first)
    banned = client.chat.completions.create(model=model_id, messages=user(QUESTION), temperature=0, max_tokens=4,
                                            logprobs=True, logit_bias={str(first_id): -100})
    assert banned.choices[0].logprobs.content[0].token != first, "a -100 bias must keep the token out"

    forced_id, piece = token_pieces("Banana")[0]
    forced = client.chat.completions.create(model=model_id, messages=user(QUESTION), temperature=0, max_tokens=2,
                                            logit_bias={str(forced_id): 100})
    assert forced.choices[0].message.content.startswith(piece), (piece, forced.choices[0].message.content)


def test_penalties_accepted(client, model_id):
    r = client.chat.completions.create(model=model_id, messages=user(STORY), temperature=0, max_tokens=16,
                                       presence_penalty=1.0, frequency_penalty=1.0)
    assert r.choices[0].message.content


def test_multi_turn_with_system(client, model_id):
    history = [
        {"role": "system", "content": "You are a helpful assistant who answers briefly."},
        {"role": "user", "content": "My name is Alice."},
        {"role": "assistant", "content": "Nice to meet you, Alice!"},
        {"role": "user", "content": "What is my name?"},
    ]
    r = client.chat.completions.create(model=model_id, messages=history, temperature=0, max_tokens=16)
    assert r.choices[0].message.content.strip()
    # Without the middle turns the prompt is shorter by at least their text's tokens: they are in it.
    short = [history[0], history[-1]]
    without = client.chat.completions.create(model=model_id, messages=short, temperature=0, max_tokens=1)
    middle = sum(len(tokenize(m["content"])) for m in history[1:3])
    assert r.usage.prompt_tokens >= without.usage.prompt_tokens + middle, (
        "every earlier turn's text must be in the prompt")


def test_n_above_eight_refused(client, model_id):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=model_id, messages=user(QUESTION), max_tokens=4, n=9)
    body = e.value.body or {}
    assert "at most 8" in body.get("message", "").lower(), body
    assert body.get("param") == "n", body


@pytest.mark.parametrize("stream", [False, True])
def test_completions(client, model_id, stream):
    req = dict(model=model_id, prompt="The capital of France is", temperature=0, max_tokens=8)
    r = client.completions.create(**req)
    assert r.object == "text_completion"
    assert r.model == model_id
    assert len(r.choices) == 1 and r.choices[0].index == 0
    text = r.choices[0].text
    assert text, "a completion of a plain prompt must produce text"
    assert r.choices[0].finish_reason in ("stop", "length")
    # The raw prompt's tokens, plus a BOS token for a model that adds one (SmolLM2 does not).
    assert r.usage.prompt_tokens - len(tokenize("The capital of France is")) in (0, 1)
    assert 0 < r.usage.completion_tokens <= 8
    if stream:
        chunks = list(client.completions.create(**req, stream=True))
        assert all(c.object == "text_completion" for c in chunks)
        assert "".join(ch.text for c in chunks for ch in c.choices) == text
        finishes = [ch.finish_reason for c in chunks for ch in c.choices if ch.finish_reason]
        assert finishes == [r.choices[0].finish_reason]

