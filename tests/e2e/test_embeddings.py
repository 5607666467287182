"""Embeddings with all-MiniLM-L6-v2: 384 unit-length dimensions, meaning reflected in distance,
batches equal to single inputs, the client's default base64 encoding, and a 400 for inputs past the
model's 256-token window (never silent truncation)."""

from __future__ import annotations

import math

import openai
import pytest

from conftest import EMBED_MODEL

CAT = "The cat sits on the mat."
CAT2 = "A cat is sitting on a rug."
MARKET = "Stock markets fell sharply after the interest rate decision."


def embed(client, inputs, **kw):
    return client.embeddings.create(model=EMBED_MODEL, input=inputs, encoding_format="float", **kw)


def cosine(a, b) -> float:
    return sum(x * y for x, y in zip(a, b)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


def test_single_input(client):
    r = embed(client, CAT)
    assert r.object == "list"
    assert r.model == EMBED_MODEL
    assert len(r.data) == 1 and r.data[0].index == 0 and r.data[0].object == "embedding"
    v = r.data[0].embedding
    assert len(v) == 384
    assert abs(math.sqrt(sum(x * x for x in v)) - 1) < 1e-4, "vectors are L2-normalized"
    assert r.usage.prompt_tokens > 0
    assert r.usage.total_tokens == r.usage.prompt_tokens


def test_similar_sentences_are_closer(client):
    cat, cat2, market = (d.embedding for d in embed(client, [CAT, CAT2, MARKET]).data)
    near, far = cosine(cat, cat2), cosine(cat, market)
    assert near > far + 0.2, f"cos(cat, cat2)={near:.3f} should be well above cos(cat, market)={far:.3f}"


def test_batch_equals_single(client):
    batch = embed(client, [CAT, MARKET, CAT2])
    assert [d.index for d in batch.data] == [0, 1, 2]
    for d, text in zip(batch.data, [CAT, MARKET, CAT2]):
        single = embed(client, text).data[0].embedding
        worst = max(abs(x - y) for x, y in zip(d.embedding, single))
        assert worst < 1e-5, f"{text!r}: batched and single vectors differ by {worst}"
    assert batch.usage.prompt_tokens == sum(embed(client, t).usage.prompt_tokens for t in [CAT, MARKET, CAT2])


def test_default_base64_encoding(client):
    # Without encoding_format the openai package asks for base64 and decodes it itself.
    packed = client.embeddings.create(model=EMBED_MODEL, input=CAT).data[0].embedding
    plain = embed(client, CAT).data[0].embedding
    assert len(packed) == 384
    assert max(abs(x - y) for x, y in zip(packed, plain)) < 1e-6


def test_too_long_input_is_refused(client):
    with pytest.raises(openai.BadRequestError) as e:
        embed(client, "word " * 400)
    assert "256" in e.value.body.get("message", ""), e.value.body

