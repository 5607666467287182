"""The Messages API with the official anthropic client: text, the system prompt, length limits,
stop sequences, counting tokens, and errors in Anthropic's shape (authentication included)."""

from __future__ import annotations

import json

import anthropic
import pytest

from anthropic_support import GREEDY, QUESTION, STORY, client, text_of, user
from conftest import FLAG_KEY


def test_messages_answers_text_with_anthropics_shape(server, model_id):
    m = client(server).messages.create(model=model_id, max_tokens=24, extra_body=GREEDY, messages=user(QUESTION))
    assert m.type == "message" and m.role == "assistant" and m.model == model_id
    assert m.id.startswith("msg_")
    assert [b.type for b in m.content] == ["text"]
    assert m.content[0].text.strip(), m
    assert m.stop_reason in ("end_turn", "max_tokens")
    assert m.usage.input_tokens > 0 and 0 < m.usage.output_tokens <= 24


def test_messages_match_the_openai_chat_for_the_same_conversation(server, model_id, http):
    """The system prompt (as a string and as text blocks) reaches the chat template exactly as
    the OpenAI chat's system message does: same prompt tokens, same greedy answer."""
    system = "You are a pirate. Answer every question as a pirate would."
    oa = http.post("/v1/chat/completions", json={
        "model": model_id, "temperature": 0, "max_tokens": 20,
        "messages": [{"role": "system", "content": system}, {"role": "user", "content": QUESTION}]}).json()
    c = client(server)
    for sys in (system, [{"type": "text", "text": system, "cache_control": {"type": "ephemeral"}}]):
        m = c.messages.create(model=model_id, max_tokens=20, extra_body=GREEDY, system=sys, messages=user(QUESTION))
        assert text_of(m) == oa["choices"][0]["message"]["content"]
        assert m.usage.input_tokens == oa["usage"]["prompt_tokens"]
    # Without `system` the template's own default applies, as in the OpenAI chat without one.
    plain = c.messages.create(model=model_id, max_tokens=20, extra_body=GREEDY, messages=user(QUESTION))
    oa_plain = http.post("/v1/chat/completions", json={
        "model": model_id, "temperature": 0, "max_tokens": 20, "messages": user(QUESTION)}).json()
    assert plain.usage.input_tokens == oa_plain["usage"]["prompt_tokens"] != m.usage.input_tokens
    assert text_of(plain) == oa_plain["choices"][0]["message"]["content"]


def test_max_tokens_cut_reports_stop_reason_max_tokens(server, model_id):
    m = client(server).messages.create(model=model_id, max_tokens=5, extra_body=GREEDY, messages=user(STORY))
    assert m.stop_reason == "max_tokens" and m.stop_sequence is None
    assert m.usage.output_tokens == 5


def test_stop_sequences_report_the_one_that_matched(server, model_id):
    c = client(server)
    full = text_of(c.messages.create(model=model_id, max_tokens=40, extra_body=GREEDY, messages=user(STORY)))
    words = full.split()
    assert len(words) > 4, full
    stop = words[3]
    m = c.messages.create(model=model_id, max_tokens=40, extra_body=GREEDY, messages=user(STORY),
                          stop_sequences=["never-in-this-text", stop])
    assert m.stop_reason == "stop_sequence" and m.stop_sequence == stop
    assert text_of(m) == full[: full.index(stop)]


def test_count_tokens_equals_the_prompt_the_reply_reads(server, model_id):
    c = client(server)
    req = dict(model=model_id, system="Be brief.", messages=user(QUESTION))
    counted = c.messages.count_tokens(**req)
    m = c.messages.create(max_tokens=1, extra_body=GREEDY, **req)
    assert counted.input_tokens == m.usage.input_tokens > 0


def test_a_final_assistant_turn_is_continued_as_a_prefill(server, model_id):
    c = client(server)
    full = text_of(c.messages.create(model=model_id, max_tokens=24, extra_body=GREEDY, messages=user(QUESTION)))
    words = full.split(" ")
    assert len(words) > 3, full
    prefill = " ".join(words[:2])
    m = c.messages.create(model=model_id, max_tokens=8, extra_body=GREEDY,
                          messages=user(QUESTION) + [{"role": "assistant", "content": prefill}])
    cont = text_of(m)
    # The reply is only the continuation, and the same one greedy decoding gave past that point.
    assert cont and full.startswith(prefill + cont), (full, prefill, cont)


def test_output_config_format_gives_json_of_the_schema(server, model_id):
    schema = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 20}},
              "required": ["city"], "additionalProperties": False}
    m = client(server).messages.create(model=model_id, max_tokens=40, extra_body=GREEDY, messages=user(QUESTION),
                                       output_config={"format": {"type": "json_schema", "schema": schema}})
    data = json.loads(text_of(m))
    assert set(data) == {"city"} and isinstance(data["city"], str) and len(data["city"]) <= 20


def test_missing_max_tokens_is_an_invalid_request_error(server, model_id):
    r = server.http().post("/v1/messages", json={"model": model_id, "messages": user(QUESTION)})
    assert r.status_code == 400
    assert r.json() == {"type": "error", "error": {"type": "invalid_request_error",
                                                   "message": "max_tokens: Field required"}}


def test_images_are_refused_naming_the_block(server, model_id):
    with pytest.raises(anthropic.BadRequestError) as e:
        client(server).messages.create(model=model_id, max_tokens=8, messages=[{"role": "user", "content": [
            {"type": "text", "text": "What is in this picture?"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}]}])
    assert e.value.body["error"]["type"] == "invalid_request_error"
    assert "messages.0.content.1.type" in e.value.message and "image" in e.value.message


def test_unknown_model_is_not_found_error(server, model_id):
    with pytest.raises(anthropic.NotFoundError) as e:
        client(server).messages.create(model="claude-sonnet-4-5", max_tokens=8, messages=user(QUESTION))
    assert e.value.body["error"]["type"] == "not_found_error"
    assert model_id in e.value.message


def test_wrong_x_api_key_is_an_authentication_error(keyed_server):
    with pytest.raises(anthropic.AuthenticationError) as e:
        client(keyed_server, api_key="sk-wrong").messages.create(model="x", max_tokens=8, messages=user("hi"))
    assert e.value.body["error"]["type"] == "authentication_error"
    # The right key, sent as x-api-key by the client, is let in.
    models = keyed_server.http().get("/v1/models").json()["data"]
    m = client(keyed_server, api_key=FLAG_KEY).messages.create(
        model=models[0]["id"], max_tokens=4, extra_body=GREEDY, messages=user(QUESTION))
    assert m.type == "message"
