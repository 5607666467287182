"""Serving many at once: a client that goes away frees its sequence, and the batch-invariance
promise — under greedy decoding each request's text and logprobs are the same, to the bit, whether
it runs alone or beside seven others arriving at different times, one of them with a prompt longer
than a prefill chunk that lands while the others decode. /metrics must show a step that carried
all eight, so the test cannot pass by serving them one after another."""

from __future__ import annotations

import threading
import time

import httpx

from conftest import tokenize
from support import collect_chat_stream, first_difference, logprob_rows, user

SEQ_BUCKETS = ["1", "2", "3", "4", "5", "6", "7", "8", "12", "16", "24", "32", "+Inf"]


def test_health(server):
    r = httpx.get(f"{server.url}/health", timeout=10)
    assert r.status_code == 200
    assert r.json()["status"] == "ok"


def test_metrics_exposition(server, client, model_id):
    before = server.metrics()
    client.chat.completions.create(model=model_id, messages=user("Hi!"), max_tokens=3, temperature=0)
    after = server.metrics()
    for name in ("hearth_queue_depth", "hearth_kv_blocks_used", "hearth_kv_blocks_total"):
        assert after.has(name), f"/metrics lacks {name}"
    assert after.sum("hearth_kv_blocks_total") > 0
    assert after.sum("hearth_requests_total", endpoint="/v1/chat/completions", status="200") == \
        before.sum("hearth_requests_total", endpoint="/v1/chat/completions", status="200") + 1
    assert after.sum("hearth_generated_tokens_total") >= before.sum("hearth_generated_tokens_total") + 1
    assert after.sum("hearth_prompt_tokens_total") > before.sum("hearth_prompt_tokens_total")
    counts = [after.sum("hearth_step_sequences_bucket", le=le) for le in SEQ_BUCKETS]
    assert counts == sorted(counts), f"histogram buckets are cumulative: {counts}"
    assert counts[-1] == after.sum("hearth_step_sequences_count") > 0


def test_disconnect_frees_sequence(server, model_id):
    baseline = server.metrics().sum("hearth_kv_blocks_used")
    body = {"model": model_id, "messages": user("Tell me a very long story about the sea, in many chapters."),
            "max_tokens": 2000, "temperature": 0, "stream": True}
    with httpx.Client(base_url=server.url, timeout=60) as http:
        with http.stream("POST", "/v1/chat/completions", json=body) as resp:
            assert resp.status_code == 200
            deltas = 0
            during = baseline
            for line in resp.iter_lines():
                if line.startswith("data:") and '"content"' in line:
                    deltas += 1
                    if deltas >= 5:
                        # Measured while still reading: leaving iter_lines lets httpx close the
                        # connection, and Hearth may cancel before a later measurement.
                        during = server.metrics().sum("hearth_kv_blocks_used")
                        break
            assert during > baseline, f"a decoding sequence holds KV blocks ({during} vs idle {baseline})"
        # Leaving the with-blocks closes the connection mid-stream.
    deadline = time.monotonic() + 5
    used = during
    while time.monotonic() < deadline:
        m = server.metrics()
        used = m.sum("hearth_kv_blocks_used")
        if used <= baseline and m.sum("hearth_queue_depth") == 0:
            break
        time.sleep(0.1)
    assert used <= baseline, f"KV blocks still used 5 s after the client left: {used} (idle {baseline})"
    # The sequence was cancelled, not left to run out its 2000 tokens in the background.
    g0 = server.metrics().sum("hearth_generated_tokens_total")
    time.sleep(0.5)
    assert server.metrics().sum("hearth_generated_tokens_total") == g0


def test_prefix_cache_hit_is_bit_identical(server, nocache_server, model_id):
    # Turn 2 of a conversation starts with turn 1's prompt and answer, which the default server
    # has cached; its logprobs must equal those of a server that computes everything afresh.
    system = {"role": "system", "content": "You are a cheerful assistant for a busy family. " * 12}
    turn1 = [system, {"role": "user", "content": "Suggest a dinner with potatoes."}]
    first = server.client().chat.completions.create(model=model_id, messages=turn1, temperature=0, max_tokens=24)
    turn2 = turn1 + [{"role": "assistant", "content": first.choices[0].message.content},
                     {"role": "user", "content": "And a dessert to go with it?"}]
    req = dict(model=model_id, messages=turn2, temperature=0, max_tokens=16, logprobs=True, top_logprobs=2)
    hit = server.client().chat.completions.create(**req)
    fresh = nocache_server.client().chat.completions.create(**req)
    assert hit.choices[0].message.content == fresh.choices[0].message.content
    a, b = logprob_rows(hit.choices[0].logprobs.content), logprob_rows(fresh.choices[0].logprobs.content)
    assert a == b, first_difference(a, b)


SHORT_PROMPTS = [
    "Write a long story about a lighthouse keeper.",
    "Explain how bread is made, step by step.",
    "Describe a walk through a busy market.",
    "Write a letter to a friend about the summer.",
    "Tell me about the history of clocks.",
    "Write a guide to planting a vegetable garden.",
    "Describe a thunderstorm over the sea.",
]
LONG_PROMPT = ("Here are my notes from the garden this year. " + " ".join(
    f"In week {i} the tomatoes grew {i % 7 + 2} centimetres, the beans flowered and it rained on {i % 4 + 1} days."
    for i in range(1, 25)) + " Summarise the notes.")


def _request(model_id, prompt, max_tokens):
    return dict(model=model_id, messages=user(prompt), temperature=0, max_tokens=max_tokens, logprobs=True,
                top_logprobs=2, stream=True, stream_options={"include_usage": True})


def test_batch_invariance_eight_staggered(server, client, nocache_server, model_id):
    assert len(tokenize(LONG_PROMPT)) > 300, "the long prompt must span more than one prefill chunk"
    # Long enough that the short chats are still decoding when the long prompt has been prefilled.
    requests = [_request(model_id, p, 128) for p in SHORT_PROMPTS] + [_request(model_id, LONG_PROMPT, 24)]

    # The solo runs go to the server without a prefix cache: run on `server` first, they would leave
    # every prompt cached there, and the long prompt would then skip the chunked prefill that this
    # test is about.
    reference = nocache_server.client()
    solo = [collect_chat_stream(reference.chat.completions.create(**r)) for r in requests]
    assert solo[-1].usage.prompt_tokens > 300

    before = server.metrics()
    results: list = [None] * len(requests)
    errors: list = []
    started = [threading.Event() for _ in requests]

    def run(i):
        try:
            stream = client.chat.completions.create(**requests[i])

            def marking():
                for chunk in stream:
                    if any(c.delta.content for c in chunk.choices):
                        started[i].set()
                    yield chunk
            results[i] = collect_chat_stream(marking())
        except Exception as e:  # noqa: BLE001 - reported below with its request
            errors.append((i, repr(e)))
        finally:
            started[i].set()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(requests))]
    # Staggered arrivals: the short chats one after another, each joining a batch that is running
    # (the next starts once this one is decoding, so a fast machine cannot finish the first chats
    # before the last ones arrive).
    for i in range(len(SHORT_PROMPTS)):
        threads[i].start()
        started[i].wait(timeout=120)
    # The long prompt arrives once every short chat is decoding.
    for i in range(len(SHORT_PROMPTS)):
        started[i].wait(timeout=120)
    threads[-1].start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors

    for i, (alone, together) in enumerate(zip(solo, results)):
        assert together is not None, f"request {i} did not finish"
        assert together.content == alone.content, f"request {i}: text differs beside seven others"
        a, b = logprob_rows(together.logprobs), logprob_rows(alone.logprobs)
        assert a == b, f"request {i}: logprobs differ beside seven others, {first_difference(a, b)}"
        assert together.finish_reason == alone.finish_reason

    after = server.metrics()
    print(f"engine steps by sequences carried, during the concurrent run: {_histogram_delta(before, after)}")

    def steps_with(n_le: str, m) -> float:
        return m.sum("hearth_step_sequences_bucket", le=n_le)

    eight = (steps_with("8", after) - steps_with("7", after)) - (steps_with("8", before) - steps_with("7", before))
    assert eight > 0, (f"no engine step carried 8 sequences; steps per size since the test began: "
                       f"{_histogram_delta(before, after)}")


def _histogram_delta(before, after) -> dict:
    out, prev_b, prev_a = {}, 0.0, 0.0
    for le in SEQ_BUCKETS:
        b, a = before.sum("hearth_step_sequences_bucket", le=le), after.sum("hearth_step_sequences_bucket", le=le)
        out[le] = (a - prev_a) - (b - prev_b)
        prev_b, prev_a = b, a
    return out
