"""OpenAI's Responses API through openai-python's `client.responses`: plain text, the typed
stream, function tools and their results, `previous_response_id`, `store: false`, deletion, and
stored responses scoped to the key that made them."""

from __future__ import annotations

import json

import httpx
import jsonschema
import openai
import pytest

from conftest import ENV_KEYS
from support import QUESTION

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather in a city.",
    "parameters": {
        "type": "object",
        "properties": {
            "city": {"type": "string", "maxLength": 40},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        },
        "required": ["city", "unit"],
        "additionalProperties": False,
    },
    "strict": True,
}
SHORT = 24


def test_responses_endpoint_exists_for_responses_mode_clients(client, model_id):
    # Six clients' Responses modes got a 404 here: there was no /v1/responses.
    r = client.responses.create(model=model_id, input=QUESTION, temperature=0, max_output_tokens=SHORT)
    assert r.object == "response"
    assert r.id.startswith("resp_")
    assert r.model == model_id
    assert r.status in ("completed", "incomplete")
    assert r.output and r.output[0].type == "message"
    assert r.output[0].role == "assistant"
    assert r.output_text.strip(), r
    assert r.usage.input_tokens > 0 and 0 < r.usage.output_tokens <= SHORT
    assert r.usage.total_tokens == r.usage.input_tokens + r.usage.output_tokens


def test_responses_stream_events_and_text_equal_non_streamed(client, model_id):
    kw = dict(model=model_id, input=QUESTION, instructions="Answer in one sentence.", temperature=0,
              max_output_tokens=SHORT)
    whole = client.responses.create(**kw)
    types, deltas, seqs, final = [], [], [], None
    with client.responses.create(stream=True, **kw) as stream:
        for ev in stream:
            types.append(ev.type)
            seqs.append(ev.sequence_number)
            if ev.type == "response.output_text.delta":
                deltas.append(ev.delta)
            if ev.type in ("response.completed", "response.incomplete"):
                final = ev.response
    assert seqs == list(range(len(seqs))), seqs
    assert types[:2] == ["response.created", "response.in_progress"], types
    for t in ["response.output_item.added", "response.content_part.added", "response.output_text.delta",
              "response.output_text.done", "response.content_part.done", "response.output_item.done"]:
        assert t in types, (t, types)
    assert types[-1] == ("response.incomplete" if whole.status == "incomplete" else "response.completed"), types
    assert "".join(deltas) == whole.output_text
    assert final.output_text == whole.output_text
    assert final.status == whole.status and final.usage.output_tokens == whole.usage.output_tokens


def test_responses_max_output_tokens_is_incomplete(client, model_id):
    r = client.responses.create(model=model_id, input="Write a long story about a dragon.", temperature=0,
                                max_output_tokens=4)
    assert r.status == "incomplete", r
    assert r.incomplete_details.reason == "max_output_tokens"
    assert r.usage.output_tokens == 4


def test_responses_function_call_and_its_output(client, model_id):
    r = client.responses.create(model=model_id, input="What is the weather like in Paris today?",
                                tools=[WEATHER], tool_choice="required", temperature=0, max_output_tokens=120)
    calls = [o for o in r.output if o.type == "function_call"]
    assert calls, r.output
    call = calls[0]
    assert call.name == "get_weather" and call.call_id
    jsonschema.validate(json.loads(call.arguments), WEATHER["parameters"])
    # The app runs the function and sends its result back, continuing from the call.
    r2 = client.responses.create(model=model_id, previous_response_id=r.id, tools=[WEATHER], temperature=0,
                                 max_output_tokens=SHORT,
                                 input=[{"type": "function_call_output", "call_id": call.call_id,
                                         "output": json.dumps({"temperature": 21, "sky": "sunny"})}])
    assert r2.previous_response_id == r.id
    assert r2.output_text.strip() or any(o.type == "function_call" for o in r2.output), r2
    # The result reached the prompt: far more input than the new item alone.
    assert r2.usage.input_tokens > r.usage.input_tokens


def test_responses_function_call_streams_its_arguments(client, model_id):
    with client.responses.create(model=model_id, input="Weather in Oslo?", tools=[WEATHER], tool_choice="required",
                                 temperature=0, max_output_tokens=120, stream=True) as stream:
        events = list(stream)
    types = [e.type for e in events]
    assert "response.function_call_arguments.delta" in types, types
    done = [e.arguments for e in events if e.type == "response.function_call_arguments.done"]
    for arguments in done:
        jsonschema.validate(json.loads(arguments), WEATHER["parameters"])
    final = events[-1].response
    assert [o.arguments for o in final.output if o.type == "function_call"] == done


def test_responses_json_schema_format(client, model_id):
    schema = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 30}},
              "required": ["city"], "additionalProperties": False}
    r = client.responses.create(model=model_id, input="Name the capital of France as JSON.", temperature=0,
                                max_output_tokens=60,
                                text={"format": {"type": "json_schema", "name": "city", "schema": schema,
                                                 "strict": True}})
    jsonschema.validate(json.loads(r.output_text), schema)


def test_responses_previous_response_id_continues_the_conversation(client, model_id):
    first = client.responses.create(model=model_id, input="My name is Zoltan. Say hello.", temperature=0,
                                    max_output_tokens=8)
    again = client.responses.create(model=model_id, previous_response_id=first.id, input="What is my name?",
                                    temperature=0, max_output_tokens=8)
    alone = client.responses.create(model=model_id, input="What is my name?", temperature=0, max_output_tokens=8)
    # The earlier turn is in the prompt: the same question costs its tokens on top.
    assert again.usage.input_tokens > alone.usage.input_tokens + 5, (again.usage, alone.usage)
    listed = client.responses.input_items.list(again.id)
    assert [i.type for i in listed.data] == ["message"]
    assert listed.data[0].content[0].text == "What is my name?"


def test_responses_store_false_is_not_kept(client, model_id):
    r = client.responses.create(model=model_id, input="Hi", store=False, max_output_tokens=4)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(r.id)
    with pytest.raises(openai.NotFoundError) as e:
        client.responses.create(model=model_id, previous_response_id=r.id, input="Again", max_output_tokens=4)
    assert e.value.body["param"] == "previous_response_id"


def test_responses_delete_then_get_is_404(client, model_id):
    r = client.responses.create(model=model_id, input="Hi", max_output_tokens=4)
    assert client.responses.retrieve(r.id).id == r.id
    client.responses.delete(r.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(r.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.delete(r.id)


def test_responses_another_key_cannot_read_or_continue_them(env_keyed_server, model_id):
    mine, theirs = env_keyed_server.client(ENV_KEYS[0]), env_keyed_server.client(ENV_KEYS[1])
    r = mine.responses.create(model=model_id, input="A secret.", max_output_tokens=4)
    with pytest.raises(openai.NotFoundError):
        theirs.responses.retrieve(r.id)
    with pytest.raises(openai.NotFoundError):
        theirs.responses.create(model=model_id, previous_response_id=r.id, input="Tell me", max_output_tokens=4)
    with pytest.raises(openai.NotFoundError):
        theirs.responses.delete(r.id)
    assert mine.responses.retrieve(r.id).id == r.id


@pytest.mark.parametrize("extra,param", [
    ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
    ({"background": True}, "background"),
    ({"reasoning": {"effort": "high"}}, "reasoning"),
    ({"conversation": "conv_123"}, "conversation"),
    ({"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "https://example.com/a.png"}]}]},
     "input[0].content[0].type"),
])
def test_responses_unsupported_parts_are_400_naming_the_field(http, model_id, extra, param):
    body = {"model": model_id, "input": "Hi", **extra}
    r = http.post("/v1/responses", json=body)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["param"] == param, err
    assert "Hearth" in err["message"], err
