"""What OpenAI clients send beyond the basics (issue 16's compatibility list), through the official
client where it has the field: `n` and prompt lists, legacy `functions`, token-id embedding input,
OpenAI's wording for context errors, `max_tokens: -1`, and the paths without `/v1`."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from conftest import EMBED_MODEL
from support import QUESTION, user

# "the cat sat on the mat." in all-MiniLM-L6-v2's WordPiece vocabulary (BERT's uncased one), without
# [CLS] and [SEP]: what a client that counts tokens itself sends.
CAT_TEXT = "the cat sat on the mat."
CAT_IDS = [1996, 4937, 2938, 2006, 1996, 13523, 1012]
HELLO_TEXT = "hello world"
HELLO_IDS = [7592, 2088]


def test_n_greater_than_one_is_served(client, model_id):
    single = client.chat.completions.create(model=model_id, messages=user(QUESTION), temperature=0, max_tokens=8)
    r = client.chat.completions.create(model=model_id, messages=user(QUESTION), temperature=0, max_tokens=8, n=3)
    assert [c.index for c in r.choices] == [0, 1, 2]
    # Temperature 0: every choice is the single answer (as OpenAI's are with a seed).
    assert {c.message.content for c in r.choices} == {single.choices[0].message.content}
    assert r.usage.prompt_tokens == single.usage.prompt_tokens
    assert r.usage.completion_tokens == 3 * single.usage.completion_tokens

    stream = client.chat.completions.create(model=model_id, messages=user(QUESTION), temperature=0, max_tokens=8,
                                            n=2, stream=True, stream_options={"include_usage": True})
    texts, finished, usage = ["", ""], [None, None], None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for c in chunk.choices:
            texts[c.index] += c.delta.content or ""
            if c.finish_reason:
                finished[c.index] = c.finish_reason
    assert texts == [single.choices[0].message.content] * 2
    assert finished == [single.choices[0].finish_reason] * 2
    assert usage.completion_tokens == 2 * single.usage.completion_tokens

    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=model_id, messages=user(QUESTION), max_tokens=4, n=9)
    assert (e.value.body or {}).get("param") == "n", e.value.body


def test_a_list_of_prompts_gets_one_choice_per_prompt(client, model_id):
    prompts = ["The capital of France is", "Water boils at"]
    singles = [client.completions.create(model=model_id, prompt=p, temperature=0, max_tokens=6).choices[0].text
               for p in prompts]
    r = client.completions.create(model=model_id, prompt=prompts, temperature=0, max_tokens=6, n=2)
    # OpenAI's order: index = prompt * n + j.
    assert [c.index for c in r.choices] == [0, 1, 2, 3]
    assert [c.text for c in r.choices] == [singles[0], singles[0], singles[1], singles[1]]
    ids = client.completions.create(model=model_id, prompt=[[504, 3149, 314], [504]], temperature=0, max_tokens=2)
    assert [c.index for c in ids.choices] == [0, 1]


def weather_function() -> dict:
    return {"name": "get_weather", "description": "The weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


def test_legacy_functions_are_not_silently_ignored(http, model_id):
    body = {"model": model_id, "messages": user("What is the weather in Paris?"), "temperature": 0, "max_tokens": 40,
            "functions": [weather_function()], "function_call": {"name": "get_weather"}}
    r = http.post("/v1/chat/completions", json=body)
    assert r.status_code == 200, r.text
    choice = r.json()["choices"][0]
    assert choice["finish_reason"] == "function_call", choice
    call = choice["message"]["function_call"]
    assert call["name"] == "get_weather"
    assert isinstance(json.loads(call["arguments"])["city"], str)
    assert "tool_calls" not in choice["message"], choice


def test_embeddings_accept_token_id_arrays(client):
    by_text = client.embeddings.create(model=EMBED_MODEL, input=[CAT_TEXT, HELLO_TEXT], encoding_format="float")
    by_ids = client.embeddings.create(model=EMBED_MODEL, input=[CAT_IDS, HELLO_IDS], encoding_format="float")
    assert [d.embedding for d in by_ids.data] == [d.embedding for d in by_text.data]
    assert by_ids.usage.prompt_tokens == by_text.usage.prompt_tokens
    one = client.embeddings.create(model=EMBED_MODEL, input=HELLO_IDS, encoding_format="float")
    assert one.data[0].embedding == by_text.data[1].embedding
    with pytest.raises(openai.BadRequestError) as e:
        client.embeddings.create(model=EMBED_MODEL, input=[[101, 10_000_000]])
    assert (e.value.body or {}).get("param", "").startswith("input"), e.value.body


def test_max_tokens_minus_one_means_up_to_the_context(small_ctx_server, model_id):
    with small_ctx_server.http() as http:
        r = http.post("/v1/completions", json={"model": model_id, "prompt": "1, 2, 3, 4,", "temperature": 0,
                                               "max_tokens": -1})
        assert r.status_code == 200, r.text
        v = r.json()
        # Completions default to 16 tokens; -1 lifts that to what the context has room for.
        assert v["usage"]["completion_tokens"] > 16 or v["choices"][0]["finish_reason"] == "stop", v
        assert v["usage"]["total_tokens"] <= 512, v
        r = http.post("/v1/chat/completions", json={"model": model_id, "messages": user(QUESTION), "temperature": 0,
                                                    "max_completion_tokens": -1})
        assert r.status_code == 200, r.text
        r = http.post("/v1/chat/completions", json={"model": model_id, "messages": user(QUESTION), "max_tokens": -7})
        assert r.status_code == 400 and r.json()["error"]["param"] == "max_tokens", r.text


def test_models_with_trailing_slash_and_without_v1_prefix(keyed_server, model_id):
    with keyed_server.http() as http:
        for path in ["/v1/models/", "/models", "/models/", f"/models/{model_id}"]:
            r = http.get(path)
            assert r.status_code == 200, f"{path}: {r.status_code} {r.text[:300]}"
            assert httpx.get(keyed_server.url + path).status_code == 401, f"{path} without the key"
    # A client whose base URL lacks /v1.
    bare = openai.OpenAI(base_url=keyed_server.url, api_key=keyed_server.api_key, max_retries=0)
    assert model_id in [m.id for m in bare.models.list()]
    r = bare.chat.completions.create(model=model_id, messages=user(QUESTION), temperature=0, max_tokens=2)
    assert r.choices[0].message.content is not None
    assert bare.completions.create(model=model_id, prompt="Hi", max_tokens=2).choices
    assert len(bare.embeddings.create(model=EMBED_MODEL, input="hi").data[0].embedding) == 384


def test_context_overflow_is_worded_like_openai_for_litellm(small_ctx_server, model_id):
    long = "The quick brown fox jumps over the lazy dog near the quiet river bank. " * 50
    c = small_ctx_server.client()
    with pytest.raises(openai.BadRequestError) as e:
        c.chat.completions.create(model=model_id, messages=user(long), max_tokens=4)
    err = e.value.body
    assert err["code"] == "context_length_exceeded" and err["param"] == "messages", err
    assert err["message"].startswith("This model's maximum context length is 512 tokens. However, your messages "
                                     "resulted in "), err
    with pytest.raises(openai.BadRequestError) as e:
        c.completions.create(model=model_id, prompt=long, max_tokens=4)
    assert e.value.body["param"] == "prompt", e.value.body
    assert "maximum context length is 512 tokens" in e.value.body["message"]
