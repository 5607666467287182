"""Streaming with the official client's `messages.stream`: the text stream and the final
message equal the whole reply at temperature 0, and the raw events come in Anthropic's order."""

from __future__ import annotations

import json

from anthropic_support import GREEDY, QUESTION, STORY, client, text_of, user


def test_stream_text_and_final_message_equal_the_whole_reply(server, model_id):
    c = client(server)
    req = dict(model=model_id, max_tokens=32, extra_body=GREEDY, system="Be brief.", messages=user(STORY))
    whole = c.messages.create(**req)
    with c.messages.stream(**req) as s:
        pieces = list(s.text_stream)
        final = s.get_final_message()
    assert len(pieces) > 1
    assert "".join(pieces) == text_of(whole) == text_of(final)
    assert final.stop_reason == whole.stop_reason == "max_tokens"
    assert final.usage.output_tokens == whole.usage.output_tokens
    assert final.usage.input_tokens == whole.usage.input_tokens
    assert final.id.startswith("msg_") and final.model == model_id


def test_stream_events_come_in_anthropics_order(server, model_id):
    body = {"model": model_id, "max_tokens": 6, "temperature": 0, "stream": True, "messages": user(QUESTION)}
    with server.http() as h, h.stream("POST", "/v1/messages", json=body) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        events, name = [], None
        for line in r.iter_lines():
            if line.startswith("event: "):
                name = line[len("event: "):]
            elif line.startswith("data: "):
                data = json.loads(line[len("data: "):])
                assert data["type"] == name, (name, data)
                events.append(data)
    kinds = [e["type"] for e in events]
    assert kinds[:3] == ["message_start", "ping", "content_block_start"], kinds
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"], kinds
    assert set(kinds[3:-3]) == {"content_block_delta"}, kinds
    assert all(e["delta"]["type"] == "text_delta" for e in events if e["type"] == "content_block_delta")
    assert events[-2]["delta"]["stop_reason"] == "max_tokens"
    assert events[-2]["usage"]["output_tokens"] == 6
