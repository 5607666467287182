#!/usr/bin/env python3
"""Write a synthetic Qwen2-7B-, Llama-3-8B- or Qwen3-30B-A3B-shaped Q4_K_M GGUF (random weights)
for speed and memory benchmarks.

A real 7B download is 4.7 GB; for measuring tokens/s and RSS only the shapes and the weight types
matter, not the values. This writes a file with the model's exact tensor shapes (`--shape
qwen2-7b`, the default, or `--shape llama3-8b`, the model GPU engines are usually compared on:
scripts/bench-gpu) and the types llama.cpp's Q4_K_M recipe picks for them:

    Q6_K   output.weight, and attn_v / ffn_down in the "more bits" layers
           (i < n/8, i >= 7n/8, or (i - n/8) % 3 == 2, the rule in llama.cpp's quantizer)
    Q4_K   every other matrix (token_embd included)
    F32    norms and (Qwen2 only) the q/k/v biases

The blocks are random but valid (finite, small f16 scales), so the model produces garbage text at
real speed. Output is streamed block by block: memory stays far below the file size.

`--shape qwen3-30b-a3b` writes the mixture of experts instead (`qwen3moe`: 128 experts of 768,
8 routed per token, Qwen3's QK-norm attention); its full 48 layers are 17 GB, so `--n-layer`
makes a smaller file with the same per-layer shapes (a token's active weights per layer, and the
share of the experts it reads, are the real model's). The recipe is the same: ffn_down_exps and
attn_v in Q6_K on the "more bits" layers, the router (ffn_gate_inp) and the norms F32.

Bench-only: never run in CI, never commit the output.

    python3 scripts/gen-synthetic-7b.py --out qwen2-7b-synthetic-q4_k_m.gguf
    python3 scripts/gen-synthetic-7b.py --out small.gguf --n-layer 2   # quick load check
    python3 scripts/gen-synthetic-7b.py --shape qwen3-30b-a3b --n-layer 8 --out a3b-8l.gguf
    python3 scripts/gen-synthetic-7b.py --shape llama3-8b --out llama3-8b-synthetic-q4_k_m.gguf
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

import gguf
from gguf import GGMLQuantizationType as Q

# The dense shapes, from each model's config.json: Qwen/Qwen2-7B-Instruct and
# meta-llama/Meta-Llama-3-8B-Instruct.
SHAPES = {
    "qwen2-7b": dict(arch="qwen2", n_embd=3584, n_ff=18944, n_head=28, n_head_kv=4, head_dim=128,
                     n_vocab=152064, n_layer=28, rope_base=1000000.0, eps=1e-6, ctx=32768,
                     biases=True),
    "llama3-8b": dict(arch="llama", n_embd=4096, n_ff=14336, n_head=32, n_head_kv=8, head_dim=128,
                      n_vocab=128256, n_layer=32, rope_base=500000.0, eps=1e-5, ctx=8192,
                      biases=False),
}
ROPE_BASE = 1000000.0
EPS = 1e-6

# Qwen3-30B-A3B (config.json of Qwen/Qwen3-30B-A3B).
A3B = dict(
    n_embd=2048, n_ff=6144, n_head=32, n_head_kv=4, head_dim=128, n_vocab=151936, n_layer=48,
    n_expert=128, n_expert_used=8, n_ff_exp=768, ctx=40960,
)

POOL_BLOCKS = 1 << 16  # random blocks generated once per type, then streamed with rotation
ROWS_PER_CHUNK = 64


def use_more_bits(i: int, n: int) -> bool:
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def block_pool(rng: np.random.Generator, qtype: Q, target_std: float) -> np.ndarray:
    """POOL_BLOCKS random valid blocks of qtype, dequantizing to roughly target_std."""
    _, block_bytes = gguf.GGML_QUANT_SIZES[qtype]
    raw = rng.integers(0, 256, size=(POOL_BLOCKS, block_bytes), dtype=np.uint8)
    if qtype == Q.Q4_K:
        # d, dmin (f16) first; value = d * scale * q - dmin * min, q in 0..15, scale/min in 0..63.
        d = np.full(POOL_BLOCKS, target_std / 250.0, dtype=np.float32)
        dmin = d * 7.5
        raw[:, 0:2] = d.astype(np.float16).view(np.uint8).reshape(-1, 2)
        raw[:, 2:4] = dmin.astype(np.float16).view(np.uint8).reshape(-1, 2)
    elif qtype == Q.Q6_K:
        # d (f16) last; value = d * scale * (q - 32), scale int8, q in 0..63.
        d = np.full(POOL_BLOCKS, target_std / (74.0 * 18.5), dtype=np.float32)
        raw[:, -2:] = d.astype(np.float16).view(np.uint8).reshape(-1, 2)
    else:
        raise ValueError(f"no random block layout for {qtype.name}")
    sample = gguf.quants.dequantize(raw[:256], qtype)
    if not np.isfinite(sample).all():
        raise RuntimeError(f"{qtype.name} pool has non-finite values")
    return raw


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--shape", choices=sorted(SHAPES) + ["qwen3-30b-a3b"], default="qwen2-7b")
    ap.add_argument("--n-layer", type=int, help="fewer layers (default: the model's own)")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    pools = {Q.Q4_K: block_pool(rng, Q.Q4_K, 0.02), Q.Q6_K: block_pool(rng, Q.Q6_K, 0.02)}
    if args.shape == "qwen3-30b-a3b":
        write_a3b(args, rng, pools)
        return
    shape = SHAPES[args.shape]
    N_EMBD, N_FF, N_HEAD, N_HEAD_KV = shape["n_embd"], shape["n_ff"], shape["n_head"], shape["n_head_kv"]
    HEAD_DIM, N_VOCAB = shape["head_dim"], shape["n_vocab"]
    n_layer = args.n_layer or shape["n_layer"]
    llama = shape["arch"] == "llama"

    w = gguf.GGUFWriter(args.out, shape["arch"])
    w.add_name(f"hearth synthetic {args.shape} Q4_K_M (random weights)")
    w.add_context_length(shape["ctx"])
    w.add_embedding_length(N_EMBD)
    w.add_block_count(n_layer)
    w.add_feed_forward_length(N_FF)
    w.add_head_count(N_HEAD)
    w.add_head_count_kv(N_HEAD_KV)
    w.add_layer_norm_rms_eps(shape["eps"])
    w.add_rope_freq_base(shape["rope_base"])
    if llama:
        w.add_rope_dimension_count(HEAD_DIM)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q4_K_M)
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)

    add_vocab(w, N_VOCAB, llama)

    # (name, ne0 = row width, rows, type); numpy shapes are (rows, ne0).
    plan: list[tuple[str, int, int, Q]] = [("token_embd.weight", N_EMBD, N_VOCAB, Q.Q4_K)]
    kv = N_HEAD_KV * HEAD_DIM
    for i in range(n_layer):
        p = f"blk.{i}."
        more = use_more_bits(i, n_layer)
        bias = (lambda t: [t]) if shape["biases"] else (lambda t: [])
        plan += [
            (p + "attn_norm.weight", N_EMBD, 1, Q.F32),
            (p + "attn_q.weight", N_EMBD, N_HEAD * HEAD_DIM, Q.Q4_K),
            *bias((p + "attn_q.bias", N_HEAD * HEAD_DIM, 1, Q.F32)),
            (p + "attn_k.weight", N_EMBD, kv, Q.Q4_K),
            *bias((p + "attn_k.bias", kv, 1, Q.F32)),
            (p + "attn_v.weight", N_EMBD, kv, Q.Q6_K if more else Q.Q4_K),
            *bias((p + "attn_v.bias", kv, 1, Q.F32)),
            (p + "attn_output.weight", N_HEAD * HEAD_DIM, N_EMBD, Q.Q4_K),
            (p + "ffn_norm.weight", N_EMBD, 1, Q.F32),
            (p + "ffn_gate.weight", N_EMBD, N_FF, Q.Q4_K),
            (p + "ffn_up.weight", N_EMBD, N_FF, Q.Q4_K),
            (p + "ffn_down.weight", N_FF, N_EMBD, Q.Q6_K if more else Q.Q4_K),
        ]
    plan += [("output_norm.weight", N_EMBD, 1, Q.F32), ("output.weight", N_EMBD, N_VOCAB, Q.Q6_K)]
    write_tensors(w, [(n, e, r, 1, q) for n, e, r, q in plan], rng, pools, args.out)


def write_a3b(args, rng: np.random.Generator, pools: dict) -> None:
    """The Qwen3-30B-A3B shape: qwen3moe, experts as 3-D tensors."""
    m = A3B
    n_layer = args.n_layer or m["n_layer"]
    w = gguf.GGUFWriter(args.out, "qwen3moe")
    w.add_name("hearth synthetic qwen3moe 30B-A3B Q4_K_M (random weights)")
    w.add_context_length(m["ctx"])
    w.add_embedding_length(m["n_embd"])
    w.add_block_count(n_layer)
    w.add_feed_forward_length(m["n_ff"])
    w.add_head_count(m["n_head"])
    w.add_head_count_kv(m["n_head_kv"])
    w.add_key_length(m["head_dim"])
    w.add_value_length(m["head_dim"])
    w.add_layer_norm_rms_eps(EPS)
    w.add_rope_freq_base(ROPE_BASE)
    w.add_expert_count(m["n_expert"])
    w.add_expert_used_count(m["n_expert_used"])
    w.add_expert_feed_forward_length(m["n_ff_exp"])
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q4_K_M)
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    add_vocab(w, m["n_vocab"], False)

    d, hd, ne, ff = m["n_embd"], m["head_dim"], m["n_expert"], m["n_ff_exp"]
    q_dim, kv = m["n_head"] * hd, m["n_head_kv"] * hd
    # (name, ne0 = row width, rows, matrices, type): `matrices` > 1 is a 3-D expert tensor.
    plan: list[tuple[str, int, int, int, Q]] = [("token_embd.weight", d, m["n_vocab"], 1, Q.Q4_K)]
    for i in range(n_layer):
        p = f"blk.{i}."
        more = use_more_bits(i, n_layer)
        plan += [
            (p + "attn_norm.weight", d, 1, 1, Q.F32),
            (p + "attn_q.weight", d, q_dim, 1, Q.Q4_K),
            (p + "attn_k.weight", d, kv, 1, Q.Q4_K),
            (p + "attn_v.weight", d, kv, 1, Q.Q6_K if more else Q.Q4_K),
            (p + "attn_output.weight", q_dim, d, 1, Q.Q4_K),
            (p + "attn_q_norm.weight", hd, 1, 1, Q.F32),
            (p + "attn_k_norm.weight", hd, 1, 1, Q.F32),
            (p + "ffn_norm.weight", d, 1, 1, Q.F32),
            (p + "ffn_gate_inp.weight", d, ne, 1, Q.F32),
            (p + "ffn_gate_exps.weight", d, ff, ne, Q.Q4_K),
            (p + "ffn_up_exps.weight", d, ff, ne, Q.Q4_K),
            (p + "ffn_down_exps.weight", ff, d, ne, Q.Q6_K if more else Q.Q4_K),
        ]
    plan += [("output_norm.weight", d, 1, 1, Q.F32), ("output.weight", d, m["n_vocab"], 1, Q.Q6_K)]
    write_tensors(w, plan, rng, pools, args.out)


def add_vocab(w: gguf.GGUFWriter, n_vocab: int, llama: bool) -> None:
    # Byte-level vocab padded to the model's size with unreachable filler tokens: enough for
    # llama.cpp and Hearth to load it and for the output matrix to have the real width.
    b2u = {}
    keep = list(range(33, 127)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    extra = 0
    for b in range(256):
        if b in keep:
            b2u[b] = chr(b)
        else:
            b2u[b] = chr(256 + extra)
            extra += 1
    if llama:
        specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>",
                    "<|end_header_id|>", "<|eot_id|>"]
    else:
        specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tokens = [b2u[b] for b in range(256)] + ["Ġt", "he", "Ġthe"]
    n_fill = n_vocab - len(tokens) - len(specials)
    tokens += [f"<filler_{i}>" for i in range(n_fill)] + specials
    types = [1] * (n_vocab - len(specials)) + [3] * len(specials)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("llama-bpe" if llama else "qwen2")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(["Ġ t", "h e", "Ġt he"])
    if llama:
        w.add_bos_token_id(tokens.index("<|begin_of_text|>"))
        w.add_eos_token_id(tokens.index("<|eot_id|>"))
        w.add_add_bos_token(True)
    else:
        w.add_bos_token_id(tokens.index("<|endoftext|>"))
        w.add_eos_token_id(tokens.index("<|im_end|>"))
        w.add_add_bos_token(False)


def write_tensors(w: gguf.GGUFWriter, plan: list, rng: np.random.Generator, pools: dict,
                  out: str) -> None:
    """Streams `plan`'s tensors, (name, ne0, rows, matrices, type) each, block by block."""

    def nbytes(ne0: int, rows: int, qtype: Q) -> int:
        be, bb = gguf.GGML_QUANT_SIZES[qtype]
        return rows * (ne0 // be) * bb

    for name, ne0, rows, mats, qtype in plan:
        shape = (mats, rows, ne0) if mats > 1 else (rows, ne0) if rows > 1 else (ne0,)
        # A non-uint8 dtype with raw_dtype makes the writer take the shape as elements, as given.
        w.add_tensor_info(name, shape, np.dtype(np.float32), nbytes(ne0, rows * mats, qtype),
                          raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    fout = w.fout[0]
    align = w.data_alignment

    total = sum(nbytes(ne0, rows * mats, q) for _, ne0, rows, mats, q in plan)
    done = 0
    offset = 0
    for name, ne0, rows, mats, qtype in plan:
        pad = (-fout.tell()) % align
        fout.write(b"\0" * pad)
        rows *= mats
        if qtype == Q.F32:
            if name.endswith("norm.weight"):
                arr = (1.0 + 0.05 * rng.standard_normal(ne0)).astype(np.float32)
            else:
                # Biases, and the router: spread enough that tokens pick different experts.
                arr = (0.02 * rng.standard_normal(ne0 * rows)).astype(np.float32)
            fout.write(arr.tobytes())
            done += arr.nbytes
            continue
        pool = pools[qtype]
        per_row = ne0 // gguf.GGML_QUANT_SIZES[qtype][0]
        for r0 in range(0, rows, ROWS_PER_CHUNK):
            n = min(ROWS_PER_CHUNK, rows - r0) * per_row
            idx = (offset + np.arange(n)) % POOL_BLOCKS
            offset = (offset + n * 7 + 1) % POOL_BLOCKS  # rotate so rows differ
            chunk = pool[idx]
            fout.write(chunk.tobytes())
            done += chunk.nbytes
        print(f"\r{done / total * 100:5.1f}% {name:32s}", end="", file=sys.stderr, flush=True)
    fout.write(b"\0" * ((-fout.tell()) % align))
    w.close()
    print(f"\nwrote {out} ({os.path.getsize(out) / 1e9:.2f} GB)", file=sys.stderr)


if __name__ == "__main__":
    main()
