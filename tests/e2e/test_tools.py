"""Tool calls in all four tool_choice modes. `required` and a named function are enforced by
constrained decoding, so the arguments must parse and validate against the function's schema
every time; `auto` is steered into a call with a logit_bias on the first token of the call marker,
and then the call must parse and validate too."""

from __future__ import annotations

import json

import jsonschema
import pytest

from conftest import tokenize
from support import collect_chat_stream, user

WEATHER = {
    "type": "function",
    "function": {
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
    },
}
TIMER = {
    "type": "function",
    "function": {
        "name": "set_timer",
        "description": "Start a kitchen timer.",
        "parameters": {
            "type": "object",
            "properties": {
                "minutes": {"type": "integer", "minimum": 1, "maximum": 120},
                "label": {"type": "string", "maxLength": 20},
            },
            "required": ["minutes", "label"],
            "additionalProperties": False,
        },
    },
}
TOOLS = [WEATHER, TIMER]
SCHEMAS = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}
ASK = user("What is the weather like in Paris today?")
# Enough room for any call the schemas allow (strings are capped), so a cut call is a server bug.
MAX_TOKENS = 120


def check_call(name: str, arguments: str, call_id: str | None = None) -> dict:
    assert name in SCHEMAS, f"a call to an unknown function {name!r}"
    args = json.loads(arguments)
    jsonschema.validate(args, SCHEMAS[name])
    if call_id is not None:
        assert isinstance(call_id, str) and call_id
    return args


def only_call(r):
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls", (choice.finish_reason, choice.message)
    calls = choice.message.tool_calls
    assert calls and len(calls) >= 1, choice.message
    for c in calls:
        assert c.type == "function"
        check_call(c.function.name, c.function.arguments, c.id)
    return calls[0]


def test_tool_choice_required(client, model_id):
    r = client.chat.completions.create(model=model_id, messages=ASK, tools=TOOLS, tool_choice="required",
                                       temperature=0, max_tokens=MAX_TOKENS)
    only_call(r)


def test_tool_choice_named(client, model_id):
    # The question is about weather; naming the timer must still produce a timer call.
    r = client.chat.completions.create(model=model_id, messages=ASK, tools=TOOLS, temperature=0,
                                       tool_choice={"type": "function", "function": {"name": "set_timer"}},
                                       max_tokens=MAX_TOKENS)
    call = only_call(r)
    assert call.function.name == "set_timer"
    assert all(c.function.name == "set_timer" for c in r.choices[0].message.tool_calls)


def test_tool_choice_none(client, model_id):
    r = client.chat.completions.create(model=model_id, messages=ASK, tools=TOOLS, tool_choice="none",
                                       temperature=0, max_tokens=24)
    choice = r.choices[0]
    assert not choice.message.tool_calls
    assert choice.finish_reason in ("stop", "length")
    assert choice.message.content and "<tool_call>" not in choice.message.content


def test_tool_choice_auto_with_logit_bias(client, model_id):
    # Every token of the call marker is pushed up, so that the model starts a call; from there the
    # server's constrained decoding must make the call well formed. (Pushing up only the marker's
    # first token, `<`, makes the model repeat `<`: the bias holds at every step and `<` alone is
    # free text, not a call.)
    marker = tokenize("<tool_call>")
    r = client.chat.completions.create(model=model_id, messages=ASK, tools=TOOLS, tool_choice="auto",
                                       temperature=0, max_tokens=MAX_TOKENS,
                                       logit_bias={str(t): 100 for t in marker})
    only_call(r)
    assert not r.choices[0].message.content, "the marker belongs to the call, not to the content"


def test_named_tool_unknown_is_refused(client, model_id):
    import openai

    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=model_id, messages=ASK, tools=TOOLS, max_tokens=8,
                                       tool_choice={"type": "function", "function": {"name": "nope"}})
    assert "nope" in e.value.body.get("message", ""), e.value.body


def test_streamed_tool_call_equals_non_streamed(client, model_id):
    req = dict(model=model_id, messages=ASK, tools=TOOLS, tool_choice="required", temperature=0,
               max_tokens=MAX_TOKENS)
    full = only_call(client.chat.completions.create(**req))
    s = collect_chat_stream(client.chat.completions.create(**req, stream=True))
    assert s.finish_reason == "tool_calls"
    assert set(s.tool_calls) == set(range(len(s.tool_calls))), f"tool call indexes: {sorted(s.tool_calls)}"
    call = s.tool_calls[0]
    assert call["type"] == "function" and call["id"]
    check_call(call["name"], call["arguments"])
    assert (call["name"], call["arguments"]) == (full.function.name, full.function.arguments)


def test_streamed_tool_call_assembled_by_client(client, model_id):
    # The openai package's own stream helper puts the deltas together into a final completion.
    with client.chat.completions.stream(model=model_id, messages=ASK, tools=TOOLS, tool_choice="required",
                                        temperature=0, max_tokens=MAX_TOKENS) as stream:
        for _ in stream:
            pass
        final = stream.get_final_completion()
    only_call(final)


def test_tool_result_continues_conversation(client, model_id):
    call = only_call(client.chat.completions.create(model=model_id, messages=ASK, tools=TOOLS,
                                                    tool_choice="required", temperature=0, max_tokens=MAX_TOKENS))
    result = json.dumps({"temperature": 21, "sky": "sunny"})
    messages = ASK + [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": call.id, "type": "function",
             "function": {"name": call.function.name, "arguments": call.function.arguments}}]},
        {"role": "tool", "tool_call_id": call.id, "content": result},
    ]
    r = client.chat.completions.create(model=model_id, messages=messages, tools=TOOLS, tool_choice="none",
                                       temperature=0, max_tokens=24)
    assert r.choices[0].message.content.strip()
    assert not r.choices[0].message.tool_calls
    # The call and its result are part of the prompt, not dropped.
    without = client.chat.completions.create(model=model_id, messages=ASK, tools=TOOLS, tool_choice="none",
                                             temperature=0, max_tokens=1)
    assert r.usage.prompt_tokens >= without.usage.prompt_tokens + len(tokenize(result))


def test_pydantic_tool_with_nested_models_works_for_every_tool_choice(client, model_id):
    """openai's `pydantic_function_tool` with a nested model sends `$defs` and `$ref`s; they must
    resolve against the tool's own parameters (issue 16: every tool_choice got a 400)."""
    import openai
    from pydantic import BaseModel

    class Address(BaseModel):
        street: str
        city: str

    class Person(BaseModel):
        name: str
        home: Address

    tool = openai.pydantic_function_tool(Person, name="save_person")
    schema = tool["function"]["parameters"]
    assert "$ref" in json.dumps(schema), schema
    ask = user("Save Ana, who lives at 1 Main Street in Springfield.")
    for choice in ("auto", "required", {"type": "function", "function": {"name": "save_person"}}):
        r = client.chat.completions.create(model=model_id, messages=ask, tools=[tool], tool_choice=choice,
                                           temperature=0, max_tokens=200)
        c = r.choices[0]
        if choice != "auto":
            assert c.message.tool_calls, (choice, c)
        if c.finish_reason == "tool_calls":
            for call in c.message.tool_calls:
                assert call.function.name == "save_person"
                jsonschema.validate(json.loads(call.function.arguments), schema)
