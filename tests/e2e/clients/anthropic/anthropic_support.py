"""What the anthropic suite's tests share: a client for a test server, and the tools they offer."""

from __future__ import annotations

import anthropic

# Greedy decoding. This client no longer has a `temperature` argument (newer Claude models fix
# their sampling), but the Messages API still takes the field, and apps send it.
GREEDY = {"temperature": 0}
QUESTION = "What is the capital of France?"
STORY = "Write a long story about a dragon who loves apples."

WEATHER = {
    "name": "get_weather",
    "description": "Current weather in a city.",
    "input_schema": {
        "type": "object",
        "properties": {
            "city": {"type": "string", "maxLength": 40},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        },
        "required": ["city", "unit"],
        "additionalProperties": False,
    },
}


def client(server, api_key: str | None = None) -> anthropic.Anthropic:
    # No retries: a retried request would hide a 5xx or a dropped connection from the test.
    return anthropic.Anthropic(base_url=server.url, api_key=api_key or server.api_key or "sk-unused",
                               max_retries=0, timeout=180)


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def text_of(message) -> str:
    return "".join(b.text for b in message.content if b.type == "text")
