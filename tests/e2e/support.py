"""Helpers shared by the end-to-end tests: gathering a streamed chat the way an app would, and
comparing logprobs exactly."""

from __future__ import annotations

from dataclasses import dataclass, field

STORY = "Write a long story about a dragon who loves apples."
QUESTION = "What is the capital of France?"


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


@dataclass
class Streamed:
    """Everything a streamed chat completion delivered, put back together."""

    ids: set = field(default_factory=set)
    role: str | None = None
    content: str = ""
    finish_reason: str | None = None
    logprobs: list = field(default_factory=list)
    usage: object = None
    chunks: int = 0
    usage_chunks: int = 0
    tool_calls: dict = field(default_factory=dict)


def collect_chat_stream(stream) -> Streamed:
    out = Streamed()
    for chunk in stream:
        out.chunks += 1
        out.ids.add(chunk.id)
        assert chunk.object == "chat.completion.chunk", chunk
        if chunk.usage is not None:
            out.usage_chunks += 1
            out.usage = chunk.usage
        for choice in chunk.choices:
            assert choice.index == 0, chunk
            delta = choice.delta
            if delta.role:
                assert out.role is None, f"role sent twice: {chunk}"
                out.role = delta.role
            if delta.content:
                out.content += delta.content
            if choice.logprobs is not None and choice.logprobs.content:
                out.logprobs.extend(choice.logprobs.content)
            for tc in delta.tool_calls or []:
                slot = out.tool_calls.setdefault(tc.index, {"id": None, "type": None, "name": "", "arguments": ""})
                if tc.id:
                    slot["id"] = tc.id
                if tc.type:
                    slot["type"] = tc.type
                if tc.function is not None:
                    slot["name"] += tc.function.name or ""
                    slot["arguments"] += tc.function.arguments or ""
            if choice.finish_reason is not None:
                assert out.finish_reason is None, f"finish_reason sent twice: {chunk}"
                out.finish_reason = choice.finish_reason
    return out


def logprob_rows(entries) -> list[tuple]:
    """Comparable form of chat logprobs: (token, logprob, bytes, ((top token, top logprob), ...)).

    Floats are compared exactly: the server promises bit-identical results, and JSON carries
    a float64 that round-trips, so equality here means equality there."""
    return [
        (e.token, e.logprob, tuple(e.bytes or ()), tuple((t.token, t.logprob) for t in (e.top_logprobs or ())))
        for e in entries
    ]


def first_difference(a: list, b: list) -> str:
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return f"first difference at token {i}: {x!r} vs {y!r}"
    if len(a) != len(b):
        return f"lengths differ: {len(a)} vs {len(b)}"
    return "no difference"
