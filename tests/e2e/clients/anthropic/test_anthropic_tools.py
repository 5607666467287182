"""Tools with the official client: a forced call comes back as a `tool_use` block whose input is
an object valid for the schema, whole or streamed; its `tool_result` sent back gets a text answer,
read by the model as the OpenAI chat reads the same conversation."""

from __future__ import annotations

import json

from anthropic_support import GREEDY, WEATHER, client, text_of, user

ASK = user("What is the weather like in Paris today?")


def check_input(block) -> None:
    assert block.type == "tool_use" and block.name == "get_weather"
    assert block.id.startswith("toolu_")
    assert isinstance(block.input, dict), block.input
    assert set(block.input) == {"city", "unit"} and block.input["unit"] in ("celsius", "fahrenheit")


def test_forced_tool_returns_a_tool_use_block_with_dict_input(server, model_id):
    c = client(server)
    for choice in ({"type": "tool", "name": "get_weather"}, {"type": "any"}):
        m = c.messages.create(model=model_id, max_tokens=120, extra_body=GREEDY, tools=[WEATHER],
                              tool_choice=choice, messages=ASK)
        assert m.stop_reason == "tool_use", m
        calls = [b for b in m.content if b.type == "tool_use"]
        assert len(calls) >= 1, m
        check_input(calls[0])


def test_streamed_tool_use_arrives_as_input_json_delta(server, model_id):
    c = client(server)
    req = dict(model=model_id, max_tokens=120, extra_body=GREEDY, tools=[WEATHER],
               tool_choice={"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True}, messages=ASK)
    whole = c.messages.create(**req)
    with c.messages.stream(**req) as s:
        kinds = [e.type for e in s]
        final = s.get_final_message()
    assert "input_json" in kinds and "content_block_delta" in kinds, kinds
    assert final.stop_reason == "tool_use"
    assert [b.type for b in final.content] == [b.type for b in whole.content] == ["tool_use"]
    check_input(final.content[0])
    assert final.content[0].input == whole.content[0].input


def test_tool_result_sent_back_gets_a_text_answer(server, model_id, http):
    c = client(server)
    call = c.messages.create(model=model_id, max_tokens=120, extra_body=GREEDY, tools=[WEATHER],
                             tool_choice={"type": "tool", "name": "get_weather"}, messages=ASK).content[0]
    check_input(call)
    convo = ASK + [
        {"role": "assistant", "content": [{"type": "tool_use", "id": call.id, "name": call.name, "input": call.input}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id,
                                      "content": [{"type": "text", "text": "Sunny, 24 degrees."}]}]},
    ]
    m = c.messages.create(model=model_id, max_tokens=30, extra_body=GREEDY, tools=[WEATHER],
                          tool_choice={"type": "none"}, messages=convo)
    assert m.stop_reason in ("end_turn", "max_tokens")
    assert [b.type for b in m.content] == ["text"] and text_of(m).strip()
    # The same conversation through the OpenAI chat: the result reached the prompt the same way.
    oa = http.post("/v1/chat/completions", json={
        "model": model_id, "temperature": 0, "max_tokens": 30,
        "tools": [{"type": "function", "function": {"name": WEATHER["name"], "description": WEATHER["description"],
                                                    "parameters": WEATHER["input_schema"]}}],
        "tool_choice": "none",
        "messages": [ASK[0],
                     {"role": "assistant", "content": None, "tool_calls": [
                         {"id": call.id, "type": "function",
                          "function": {"name": call.name, "arguments": json.dumps(call.input)}}]},
                     {"role": "tool", "tool_call_id": call.id, "name": call.name, "content": "Sunny, 24 degrees."}]}).json()
    assert text_of(m) == oa["choices"][0]["message"]["content"]
    assert m.usage.input_tokens == oa["usage"]["prompt_tokens"]
