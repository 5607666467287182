"""The official `ollama` Python client against Hearth's Ollama API: list, show, ps, version,
embeddings, and pull (the keeper's alone)."""

from __future__ import annotations

import math
import re

import httpx
import ollama
import pytest

from conftest import EMBED_MODEL, HearthServer


@pytest.fixture(scope="module")
def oc(server) -> ollama.Client:
    return ollama.Client(host=server.url, headers=server.auth_headers(), timeout=180)


def test_ollama_list_names_models_with_the_latest_tag(oc, model_id):
    # Open WebUI looks a model up as NAME:latest when it has no tag, so that is how they are listed.
    models = {m.model: m for m in oc.list().models}
    assert f"{model_id}:latest" in models
    m = models[f"{model_id}:latest"]
    assert m.size > 0 and m.modified_at is not None
    assert m.details.format == "gguf" and m.details.family and m.details.parameter_size
    assert f"{EMBED_MODEL}:latest" in models


def test_ollama_show_describes_the_served_model(oc, model_id, server):
    s = oc.show(model_id)
    assert "completion" in s.capabilities and "tools" in s.capabilities
    arch = s.modelinfo["general.architecture"]
    ctx = server.http().get("/health").json()["ctx"]
    assert s.modelinfo[f"{arch}.context_length"] == ctx
    assert s.template and s.details.family == arch
    assert "temperature" in s.parameters
    e = oc.show(f"{EMBED_MODEL}:latest")
    assert e.capabilities == ["embedding"]
    with pytest.raises(ollama.ResponseError) as err:
        oc.show("llama3.2:1b")
    assert err.value.status_code == 404 and err.value.error == "model 'llama3.2:1b' not found"


def test_ollama_ps_lists_the_loaded_models(oc, model_id):
    loaded = {m.model: m for m in oc.ps().models}
    m = loaded[f"{model_id}:latest"]
    assert m.context_length > 0 and m.expires_at is not None


def test_ollama_version_is_a_version(server):
    with server.http() as http:
        v = http.get("/api/version").json()
    assert [int(x) for x in v["version"].split(".")] >= [0, 5, 0]


def test_ollama_embed_gives_unit_vectors(oc):
    r = oc.embed(model=EMBED_MODEL, input=["a cat sat on the mat", "stock markets fell"])
    assert isinstance(r, ollama.EmbedResponse) and len(r.embeddings) == 2
    for v in r.embeddings:
        assert len(v) == 384 and math.isclose(math.sqrt(sum(x * x for x in v)), 1.0, rel_tol=1e-3)
    one = oc.embed(model=f"{EMBED_MODEL}:latest", input="a cat sat on the mat")
    assert one.embeddings[0] == pytest.approx(r.embeddings[0], abs=1e-5)
    # The legacy endpoint gives the same vector.
    legacy = oc.embeddings(model=EMBED_MODEL, prompt="a cat sat on the mat")
    assert list(legacy.embedding) == pytest.approx(r.embeddings[0], abs=1e-5)


def test_ollama_embed_refuses_a_chat_model_and_long_inputs(oc, model_id):
    with pytest.raises(ollama.ResponseError) as e:
        oc.embed(model=model_id, input="hello")
    assert e.value.status_code == 400 and EMBED_MODEL in e.value.error
    with pytest.raises(ollama.ResponseError) as e:
        oc.embed(model=EMBED_MODEL, input="word " * 2000)
    assert e.value.status_code == 400 and "truncate" in e.value.error


@pytest.fixture(scope="module")
def household(tmp_path_factory):
    """A server whose household is set up, and one of its API keys (an app's, not the keeper's)."""
    s = HearthServer("ollama-household", tmp_path_factory.getbasetemp()).start().wait_ready()
    # The keeper reads the setup code in the terminal; here, in the server's log.
    code = re.search(r"First-run setup needs this code: (\d+)", s.log_since(0)).group(1)
    with httpx.Client(base_url=s.url, timeout=60) as page:
        r = page.post("/api/setup", json={"household": "The Tests", "name": "Ann",
                                          "password": "correct horse battery", "setup_code": code})
        assert r.status_code == 200, r.text
        r = page.post("/api/keys", json={"name": "an ollama app"}, headers={"x-csrf-token": r.json()["csrf"]})
        assert r.status_code == 200, r.text
        key = r.json()["key"]
    yield s, key
    s.stop()


def test_ollama_pull_is_refused_to_a_household_api_key(household, model_id):
    s, key = household
    oc = ollama.Client(host=s.url, headers={"Authorization": f"Bearer {key}"}, timeout=60)
    # The key works for everything else...
    assert f"{model_id}:latest" in {m.model for m in oc.list().models}
    # ...but pulling is the keeper's.
    with pytest.raises(ollama.ResponseError) as e:
        oc.pull(model_id)
    assert e.value.status_code == 403 and "keeper" in e.value.error
    # Without a key, nothing: the same rule as /v1, in Ollama's error shape.
    r = httpx.post(f"{s.url}/api/pull", json={"model": model_id})
    assert r.status_code == 401 and isinstance(r.json()["error"], str)


def test_ollama_pull_by_the_keeper_reaches_hearths_pull(keyed_server):
    # A configured key is the keeper's. An unknown name ends before any download.
    oc = ollama.Client(host=keyed_server.url, headers=keyed_server.auth_headers(), timeout=60)
    with pytest.raises(ollama.ResponseError) as e:
        oc.pull("no-such-model")
    assert e.value.status_code == 404 and "catalog" in e.value.error


def test_ollama_pull_by_the_keeper_streams_ollamas_progress_lines(keyed_server, model_id):
    # The model is installed already, so Hearth's pull finds it there and downloads nothing.
    oc = ollama.Client(host=keyed_server.url, headers=keyed_server.auth_headers(), timeout=120)
    lines = list(oc.pull(f"{model_id}:latest", stream=True))
    assert all(isinstance(p, ollama.ProgressResponse) for p in lines)
    assert lines[0].status == "pulling manifest" and lines[-1].status == "success"
    assert oc.pull(model_id).status == "success"
