"""litellm, as apps that route through it call Hearth: the `openai/` provider with Hearth's base URL.
Its context-window error must trigger on an over-long prompt (litellm recognises OpenAI's wording),
and a plain completion must work."""

from __future__ import annotations

import os

# Before litellm is imported: it would otherwise fetch its model cost map from the network.
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"

import litellm  # noqa: E402
import pytest  # noqa: E402

from support import QUESTION, user  # noqa: E402

litellm.telemetry = False
LONG = "The quick brown fox jumps over the lazy dog near the quiet river bank. " * 50


def call(server, model_id, **kw):
    return litellm.completion(model=f"openai/{model_id}", api_base=server.url + "/v1", api_key="sk-unused",
                              num_retries=0, timeout=180, **kw)


def test_context_overflow_is_worded_like_openai_for_litellm(small_ctx_server, model_id):
    with pytest.raises(litellm.ContextWindowExceededError) as e:
        call(small_ctx_server, model_id, messages=user(LONG), max_tokens=4)
    assert "maximum context length is 512 tokens" in str(e.value)


def test_litellm_plain_completion(server, model_id):
    r = call(server, model_id, messages=user(QUESTION), temperature=0, max_tokens=8)
    assert r.choices[0].message.content
    assert r.usage.completion_tokens >= 1
