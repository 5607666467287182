"""The official `ollama` Python client against Hearth's Ollama API: chat and generate, whole and
streamed, tools, structured output, and greedy answers equal to /v1/chat/completions'."""

from __future__ import annotations

import json

import ollama
import pytest

GREEDY = {"temperature": 0, "seed": 11}
ASK = [{"role": "user", "content": "Name three colours."}]


@pytest.fixture(scope="module")
def oc(server) -> ollama.Client:
    return ollama.Client(host=server.url, headers=server.auth_headers(), timeout=180)


def test_ollama_chat_answers_with_ollamas_fields(oc, model_id):
    r = oc.chat(model=model_id, messages=ASK, options={**GREEDY, "num_predict": 12})
    assert isinstance(r, ollama.ChatResponse)
    assert r.message.role == "assistant" and r.message.content
    assert r.model == model_id
    assert r.done is True and r.done_reason == "length"
    assert r.eval_count == 12 and r.prompt_eval_count > 0
    assert r.total_duration > 0 and r.eval_duration > 0
    assert r.created_at.endswith("Z")


def test_ollama_chat_with_the_latest_tag_is_the_same_model(oc, model_id):
    a = oc.chat(model=model_id, messages=ASK, options={**GREEDY, "num_predict": 8})
    b = oc.chat(model=f"{model_id}:latest", messages=ASK, options={**GREEDY, "num_predict": 8})
    assert a.message.content == b.message.content


def test_ollama_greedy_chat_equals_openai_chat_completions(server, model_id, oc):
    messages = [{"role": "system", "content": "You are terse."},
                {"role": "user", "content": "What is the capital of France?"}]
    with server.http() as http:
        r = http.post("/v1/chat/completions", json={"model": model_id, "messages": messages,
                                                    "temperature": 0, "seed": 11, "max_tokens": 20})
    assert r.status_code == 200, r.text
    want = r.json()["choices"][0]["message"]["content"]
    got = oc.chat(model=model_id, messages=messages, options={**GREEDY, "num_predict": 20})
    assert got.message.content == want


def test_ollama_chat_streaming_adds_up_to_the_whole_reply(oc, model_id):
    whole = oc.chat(model=model_id, messages=ASK, options={**GREEDY, "num_predict": 16})
    parts = list(oc.chat(model=model_id, messages=ASK, options={**GREEDY, "num_predict": 16}, stream=True))
    assert len(parts) > 2
    assert all(not p.done for p in parts[:-1]) and parts[-1].done
    assert parts[-1].eval_count == 16
    assert "".join(p.message.content or "" for p in parts) == whole.message.content


def test_ollama_generate_whole_and_streamed(oc, model_id):
    opts = {**GREEDY, "num_predict": 12}
    whole = oc.generate(model=model_id, prompt="Write a word about the sea.", system="Be poetic.", options=opts)
    assert isinstance(whole, ollama.GenerateResponse)
    assert whole.response and whole.done and whole.eval_count == 12
    parts = list(oc.generate(model=model_id, prompt="Write a word about the sea.", system="Be poetic.",
                             options=opts, stream=True))
    assert parts[-1].done and "".join(p.response for p in parts) == whole.response
    # raw: the prompt as it is, no template; a different prompt, so (almost surely) other text.
    raw = oc.generate(model=model_id, prompt="The sea is", raw=True, options=opts)
    assert raw.response and raw.prompt_eval_count < whole.prompt_eval_count


WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "The city"}},
            "required": ["city"],
        },
    },
}
# SmolLM2-135M is too small to decide on a call from a plain question, and Ollama's API has neither
# `tool_choice` nor `logit_bias` (the openai suite steers with those). A user turn that opens with
# the call marker from Hearth's tool prompt leads it into a call under greedy decoding, which is
# the same tokens on every run.
CALL_ASK = [{"role": "user", "content": "<tool_call> Paris"}]


def test_ollama_tool_call_comes_back_with_dict_arguments(oc, model_id):
    r = oc.chat(model=model_id, messages=CALL_ASK, tools=[WEATHER], options={**GREEDY, "num_predict": 64})
    calls = r.message.tool_calls
    assert calls, f"no tool call: {r.message}"
    call = calls[0]
    assert isinstance(call, ollama.Message.ToolCall)
    assert call.function.name == "get_weather"
    assert isinstance(call.function.arguments, dict) and isinstance(call.function.arguments.get("city"), str)
    # The result goes back as a `tool` message and the conversation continues.
    follow = oc.chat(model=model_id, tools=[WEATHER], options={**GREEDY, "num_predict": 16}, messages=[
        *CALL_ASK,
        {"role": "assistant", "content": "",
         "tool_calls": [{"function": {"name": call.function.name, "arguments": dict(call.function.arguments)}}]},
        {"role": "tool", "content": "18 degrees and sunny", "tool_name": "get_weather"},
    ])
    assert follow.done


def test_ollama_tool_call_streams_as_a_tool_call(oc, model_id):
    parts = list(oc.chat(model=model_id, messages=CALL_ASK, tools=[WEATHER],
                         options={**GREEDY, "num_predict": 64}, stream=True))
    calls = [c for p in parts for c in (p.message.tool_calls or [])]
    assert calls and calls[0].function.name == "get_weather"
    assert isinstance(calls[0].function.arguments, dict)
    # Call markup never leaks into the streamed text.
    assert "<tool_call>" not in "".join(p.message.content or "" for p in parts)


def test_ollama_format_json_schema_is_followed(oc, model_id):
    schema = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
              "required": ["name", "age"], "additionalProperties": False}
    r = oc.chat(model=model_id, messages=[{"role": "user", "content": "Invent a person."}], format=schema,
                options={**GREEDY, "num_predict": 64})
    v = json.loads(r.message.content)
    assert set(v) == {"name", "age"} and isinstance(v["name"], str) and isinstance(v["age"], int)
    g = oc.generate(model=model_id, prompt="Give a JSON object with a key colour.", format="json",
                    options={**GREEDY, "num_predict": 48})
    assert isinstance(json.loads(g.response), dict)


def test_ollama_options_hearth_cannot_honour_are_refused_by_name(oc, model_id):
    with pytest.raises(ollama.ResponseError) as e:
        oc.chat(model=model_id, messages=ASK, options={"num_ctx": 1_000_000})
    assert e.value.status_code == 400 and "num_ctx" in e.value.error
    with pytest.raises(ollama.ResponseError) as e:
        oc.chat(model=model_id, messages=ASK, options={"mirostat": 2})
    assert e.value.status_code == 400 and "mirostat" in e.value.error
    # Options about how Ollama runs a model change nothing here, and are accepted.
    r = oc.chat(model=model_id, messages=ASK, options={"num_gpu": 1, "num_thread": 2, "num_predict": 2},
                keep_alive="5m")
    assert r.done


def test_ollama_unknown_model_is_404_as_ollama_says_it(oc):
    with pytest.raises(ollama.ResponseError) as e:
        oc.chat(model="llama3.2", messages=ASK)
    assert e.value.status_code == 404
    assert e.value.error == "model 'llama3.2' not found"
