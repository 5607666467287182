#!/usr/bin/env python3
"""Write float64 reference logits for real GGUF models, for checking Hearth's "exact" forward pass.

llama.cpp quantizes activations (Q8_0/Q8_K) before most matrix products, so its logits are only a
loose target for Hearth's exact mode (weights dequantized to f32, f64 accumulation, f32
activations and KV). This script is an independent, deliberately plain implementation of the same
models in numpy float64: the weights are dequantized by the `gguf` package (the same f32 values
Hearth's dequantizers must produce), every other step runs in float64 with exact formulas (exact
RoPE angles, tanh-GELU, softmax). What remains between it and Hearth's exact mode is f32 rounding
of activations, which is small enough for tight tolerances.

Supported architectures, hyper-parameters read from the GGUF metadata:

    llama   RMSNorm, RoPE on adjacent pairs (2i, 2i+1), grouped-query attention, SwiGLU FFN,
            output = token_embd when there is no output.weight (tied, as in SmolLM2).
    gemma3  as llama.cpp's src/models/gemma3.cpp: embeddings scaled by sqrt(n_embd); per layer
            pre- and post-norms around attention and FFN; per-head RMSNorm on q and k; NeoX RoPE
            (pairs (i, i + head_dim/2)) with a separate base on sliding-window layers; sliding
            window attention (key j visible to query i iff i - window < j <= i) on all layers
            except every sliding_window_pattern-th one (default 6: layers 5, 11, 17, ...); q scaled
            by 1/sqrt(head_dim); GELU (tanh approximation) gated FFN; tied output.

Not run in CI. Setup (once):

    pip install numpy gguf

Run (from the repository root; model files are not in the repo, pass their paths):

    python3 scripts/gen-exact-fixtures.py \
        smollm2-135m=PATH/TO/SmolLM2-135M-Instruct.Q4_1.gguf \
        gemma3-270m=PATH/TO/gemma-3-270m-q4_k_m.gguf \
        --out crates/hearth-model/tests/data/exact/

The prompts (token ids) are taken from the llama.cpp reference fixtures,
`crates/hearth-model/tests/data/reference/<name>.json` (override with --reference-dir): the first
4 prompts, plus one synthetic long prompt (`long_concat`) made of all reference prompts' ids
(leading BOS dropped after the first) repeated up to LONG_LEN tokens, long enough that Gemma's
512-token sliding window hides the oldest keys from the last position on local layers.

Output, one file per model, `<name>.json`:

    meta    model_file, model_sha256, architecture, n_vocab, script, date, note
    cases   [{name, prompt_ids, top, logits_sample}] for the LAST prompt position:
            top           [[id, logit]; 10] sorted by logit descending (ties: lowest id first)
            logits_sample {ids: [20 ids spread evenly over the vocab], values: [logit; 20]}

Logits are float64 values written as the shortest decimal that round-trips (Python repr).
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import sys
import time

import numpy as np

try:
    import gguf
except ImportError:  # pragma: no cover - explained to the user
    sys.exit("gguf not importable: pip install gguf numpy (see header)")

N_PROMPTS = 4
LONG_LEN = 700
N_TOP = 10
N_SAMPLE = 20

SCRIPT_NAME = "scripts/gen-exact-fixtures.py"
NOTE = (
    "float64 numpy forward pass; weights dequantized to f32 by gguf.quants.dequantize, then f64; "
    "exact RoPE angles, tanh-GELU, softmax; logits of the last prompt position"
)


class Model:
    """Metadata and lazily dequantized float64 weights of one GGUF file."""

    def __init__(self, path: str):
        self.reader = gguf.GGUFReader(path)
        self.tensors = {t.name: t for t in self.reader.tensors}
        self.arch = self.field("general.architecture")
        self._cache: dict[str, np.ndarray] = {}

        a = self.arch
        self.n_layer = int(self.field(f"{a}.block_count"))
        self.n_embd = int(self.field(f"{a}.embedding_length"))
        self.n_head = int(self.field(f"{a}.attention.head_count"))
        self.n_head_kv = int(self.field(f"{a}.attention.head_count_kv", self.n_head))
        self.head_dim = int(self.field(f"{a}.attention.key_length", self.n_embd // self.n_head))
        value_dim = int(self.field(f"{a}.attention.value_length", self.head_dim))
        if value_dim != self.head_dim:
            raise ValueError(f"value_length {value_dim} != key_length {self.head_dim}: unsupported")
        n_rot = int(self.field(f"{a}.rope.dimension_count", self.head_dim))
        if n_rot != self.head_dim:
            raise ValueError(f"rope.dimension_count {n_rot} != head_dim {self.head_dim}: partial RoPE unsupported")
        if self.n_head % self.n_head_kv != 0:
            raise ValueError(f"head_count {self.n_head} not a multiple of head_count_kv {self.n_head_kv}")
        self.eps = float(self.field(f"{a}.attention.layer_norm_rms_epsilon"))
        self.rope_base = float(self.field(f"{a}.rope.freq_base", 10000.0))
        for key in (f"{a}.rope.scaling.type", f"{a}.rope.scaling.factor"):
            if key in self.reader.fields and self.field(key) not in ("none", 1.0):
                raise ValueError(f"{key} = {self.field(key)!r}: RoPE scaling unsupported")
        softcap = self.field(f"{a}.final_logit_softcapping", 0.0)
        if softcap:
            raise ValueError(f"final_logit_softcapping = {softcap}: unsupported")

        if a == "gemma3":
            self.window = int(self.field(f"{a}.attention.sliding_window", 0))
            # llama.cpp: ROPE_FREQ_BASE_SWA defaults to 10000 when absent from the file.
            self.rope_base_swa = float(self.field(f"{a}.rope.freq_base_swa", 10000.0))
            pattern = self.field(f"{a}.attention.sliding_window_pattern", 6)
            if isinstance(pattern, list):
                self.is_swa = [bool(x) for x in pattern]
            else:
                # Every pattern-th layer (the last of each group) is global, the rest local.
                self.is_swa = [self.window > 0 and (il % int(pattern)) < int(pattern) - 1 for il in range(self.n_layer)]
            if len(self.is_swa) != self.n_layer:
                raise ValueError(f"sliding_window_pattern has {len(self.is_swa)} entries, expected {self.n_layer}")
        elif a != "llama":
            raise ValueError(f"architecture {a!r} unsupported (llama, gemma3)")

        out_name = "output.weight" if "output.weight" in self.tensors else "token_embd.weight"
        self.output_name = out_name
        self.n_vocab = self.weight(out_name).shape[0]

    def field(self, key: str, default=None):
        f = self.reader.fields.get(key)
        if f is None:
            if default is None:
                raise KeyError(f"metadata key {key!r} missing")
            return default
        return f.contents()

    def weight(self, name: str) -> np.ndarray:
        """Dequantized weight as float64, shape (rows, cols) = (out, in) for matrices."""
        w = self._cache.get(name)
        if w is None:
            t = self.tensors[name]
            f32 = gguf.quants.dequantize(t.data, t.tensor_type)
            shape = [int(x) for x in reversed(t.shape)]
            w = np.asarray(f32, dtype=np.float64).reshape(shape if len(shape) > 1 else -1)
            self._cache[name] = w
        return w

    def layer(self, il: int, name: str) -> np.ndarray:
        return self.weight(f"blk.{il}.{name}.weight")


def rms_norm(x: np.ndarray, w: np.ndarray, eps: float) -> np.ndarray:
    """RMSNorm over the last axis, times weight w (broadcast over leading axes)."""
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def rope(x: np.ndarray, base: float, neox: bool) -> np.ndarray:
    """Rotate x of shape (T, heads, head_dim) by position t = 0..T-1.

    Pair i (i < head_dim/2) has angle t * base^(-2i/head_dim); the pair is (2i, 2i+1) for llama
    (adjacent) and (i, i + head_dim/2) for NeoX/Gemma.
    """
    n_tok, _, hd = x.shape
    half = hd // 2
    inv_freq = base ** (-2.0 * np.arange(half, dtype=np.float64) / hd)
    theta = np.arange(n_tok, dtype=np.float64)[:, None] * inv_freq[None, :]
    cos = np.cos(theta)[:, None, :]
    sin = np.sin(theta)[:, None, :]
    if neox:
        a, b = x[..., :half], x[..., half:]
    else:
        a, b = x[..., 0::2], x[..., 1::2]
    ra = a * cos - b * sin
    rb = a * sin + b * cos
    out = np.empty_like(x)
    if neox:
        out[..., :half], out[..., half:] = ra, rb
    else:
        out[..., 0::2], out[..., 1::2] = ra, rb
    return out


def attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, scale: float, window: int) -> np.ndarray:
    """Causal grouped-query attention; window > 0 also hides keys with i - j >= window.

    q: (T, n_head, hd), k and v: (T, n_kv, hd). Returns (T, n_head * hd).
    """
    n_tok, n_head, hd = q.shape
    group = n_head // k.shape[1]
    i = np.arange(n_tok)[:, None]
    j = np.arange(n_tok)[None, :]
    visible = j <= i
    if window > 0:
        visible &= (i - j) < window
    out = np.empty((n_tok, n_head, hd))
    # A loop over heads (few) with contiguous 2-D products keeps numpy on BLAS; batched/broadcast
    # matmuls over strided views were 30x slower.
    for hh in range(n_head):
        qh = np.ascontiguousarray(q[:, hh, :])
        kh = np.ascontiguousarray(k[:, hh // group, :])
        vh = np.ascontiguousarray(v[:, hh // group, :])
        scores = np.where(visible, (qh @ kh.T) * scale, -np.inf)
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        scores /= scores.sum(axis=-1, keepdims=True)
        out[:, hh, :] = scores @ vh
    return out.reshape(n_tok, n_head * hd)


def gelu_tanh(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x**3)))


def forward_llama(m: Model, ids: list[int]) -> np.ndarray:
    n_tok = len(ids)
    x = m.weight("token_embd.weight")[ids]
    for il in range(m.n_layer):
        h = rms_norm(x, m.layer(il, "attn_norm"), m.eps)
        q = (h @ m.layer(il, "attn_q").T).reshape(n_tok, m.n_head, m.head_dim)
        k = (h @ m.layer(il, "attn_k").T).reshape(n_tok, m.n_head_kv, m.head_dim)
        v = (h @ m.layer(il, "attn_v").T).reshape(n_tok, m.n_head_kv, m.head_dim)
        q = rope(q, m.rope_base, neox=False)
        k = rope(k, m.rope_base, neox=False)
        att = attention(q, k, v, 1.0 / np.sqrt(m.head_dim), window=0)
        x = x + att @ m.layer(il, "attn_output").T
        h = rms_norm(x, m.layer(il, "ffn_norm"), m.eps)
        gate = h @ m.layer(il, "ffn_gate").T
        up = h @ m.layer(il, "ffn_up").T
        x = x + (gate / (1.0 + np.exp(-gate)) * up) @ m.layer(il, "ffn_down").T
    h = rms_norm(x[-1], m.weight("output_norm.weight"), m.eps)
    return m.weight(m.output_name) @ h


def forward_gemma3(m: Model, ids: list[int]) -> np.ndarray:
    n_tok = len(ids)
    x = m.weight("token_embd.weight")[ids] * np.sqrt(float(m.n_embd))
    for il in range(m.n_layer):
        swa = m.is_swa[il]
        base = m.rope_base_swa if swa else m.rope_base
        h = rms_norm(x, m.layer(il, "attn_norm"), m.eps)
        q = (h @ m.layer(il, "attn_q").T).reshape(n_tok, m.n_head, m.head_dim)
        k = (h @ m.layer(il, "attn_k").T).reshape(n_tok, m.n_head_kv, m.head_dim)
        v = (h @ m.layer(il, "attn_v").T).reshape(n_tok, m.n_head_kv, m.head_dim)
        # The converter stores the q/k norm weights with Gemma's "+1" already applied.
        q = rms_norm(q, m.layer(il, "attn_q_norm"), m.eps)
        k = rms_norm(k, m.layer(il, "attn_k_norm"), m.eps)
        q = rope(q, base, neox=True) / np.sqrt(m.head_dim)
        k = rope(k, base, neox=True)
        att = attention(q, k, v, 1.0, window=m.window if swa else 0)
        att = att @ m.layer(il, "attn_output").T
        x = x + rms_norm(att, m.layer(il, "post_attention_norm"), m.eps)
        h = rms_norm(x, m.layer(il, "ffn_norm"), m.eps)
        ffn = (gelu_tanh(h @ m.layer(il, "ffn_gate").T) * (h @ m.layer(il, "ffn_up").T)) @ m.layer(il, "ffn_down").T
        x = x + rms_norm(ffn, m.layer(il, "post_ffw_norm"), m.eps)
    h = rms_norm(x[-1], m.weight("output_norm.weight"), m.eps)
    return m.weight(m.output_name) @ h


def forward(m: Model, ids: list[int]) -> np.ndarray:
    """float64 logits (n_vocab,) of the last position of ids."""
    if not ids:
        raise ValueError("empty prompt")
    bad = [t for t in ids if not 0 <= t < m.n_vocab]
    if bad:
        raise ValueError(f"token ids {bad[:5]} outside the vocabulary 0..{m.n_vocab - 1}")
    return forward_gemma3(m, ids) if m.arch == "gemma3" else forward_llama(m, ids)


def top_k(logits: np.ndarray, k: int) -> list[list]:
    # Stable sort on -logit keeps ties in ascending id order.
    order = np.argsort(-logits, kind="stable")[:k]
    return [[int(i), float(logits[i])] for i in order]


def sample_ids(n_vocab: int) -> list[int]:
    return [int(round(x)) for x in np.linspace(0, n_vocab - 1, N_SAMPLE)]


def long_prompt(prompts: list[dict], n_tok: int) -> list[int]:
    """All reference prompts concatenated (BOS kept only at the very start), repeated to n_tok."""
    pieces = []
    bos = prompts[0]["prompt_ids"][0] if prompts[0].get("add_bos") else None
    for p in prompts:
        ids = list(p["prompt_ids"])
        if bos is not None and pieces and ids and ids[0] == bos:
            ids = ids[1:]
        pieces.append(ids)
    out: list[int] = []
    while len(out) < n_tok:
        for i, ids in enumerate(pieces):
            # The first piece's BOS belongs at position 0 only.
            out.extend(ids[1:] if (i == 0 and out and bos is not None) else ids)
    return out[:n_tok]


def sha256_of(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def generate(name: str, path: str, reference_dir: str, out_dir: str) -> None:
    ref_path = os.path.join(reference_dir, f"{name}.json")
    with open(ref_path, encoding="utf-8") as f:
        ref = json.load(f)
    prompts = ref["prompts"]
    if len(prompts) < N_PROMPTS:
        raise ValueError(f"{ref_path}: {len(prompts)} prompts, expected at least {N_PROMPTS}")

    t0 = time.time()
    model = Model(path)
    sha = sha256_of(path)
    ref_sha = ref.get("meta", {}).get("model_sha256")
    if ref_sha and ref_sha != sha:
        print(f"warning: {path} sha256 {sha} differs from {ref_path}'s {ref_sha}", file=sys.stderr)

    cases = [(p["name"], list(p["prompt_ids"])) for p in prompts[:N_PROMPTS]]
    cases.append(("long_concat", long_prompt(prompts, LONG_LEN)))
    ids_sample = sample_ids(model.n_vocab)
    out_cases = []
    for case_name, ids in cases:
        tc = time.time()
        logits = forward(model, ids)
        out_cases.append(
            {
                "name": case_name,
                "prompt_ids": ids,
                "top": top_k(logits, N_TOP),
                "logits_sample": {"ids": ids_sample, "values": [float(logits[i]) for i in ids_sample]},
            }
        )
        print(f"{name}/{case_name}: {len(ids)} tokens, {time.time() - tc:.1f}s, top {out_cases[-1]['top'][:3]}")

    doc = {
        "meta": {
            "model_file": os.path.basename(path),
            "model_sha256": sha,
            "architecture": model.arch,
            "n_vocab": int(model.n_vocab),
            "script": SCRIPT_NAME,
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "note": NOTE,
        },
        "cases": out_cases,
    }
    os.makedirs(out_dir, exist_ok=True)
    out_path = os.path.join(out_dir, f"{name}.json")
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")
    print(f"{name}: wrote {out_path} in {time.time() - t0:.1f}s total")


def main() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    default_ref = os.path.join(here, "..", "crates", "hearth-model", "tests", "data", "reference")
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("models", nargs="+", metavar="NAME=PATH", help="fixture name and GGUF path")
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument("--reference-dir", default=default_ref, help="llama.cpp reference fixtures (prompt ids)")
    args = ap.parse_args()
    for spec in args.models:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            ap.error(f"expected NAME=PATH, found {spec!r}")
        generate(name, path, args.reference_dir, args.out)


if __name__ == "__main__":
    main()
