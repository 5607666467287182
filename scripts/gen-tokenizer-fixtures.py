#!/usr/bin/env python3
"""Write tokenizer fixtures: what llama.cpp's llama_tokenize and token_to_piece return for a
set of tricky strings, so the Rust tokenizer tests can check Hearth against it.

Run by hand (never in CI) when the models or the pinned llama.cpp change. Needs
llama-cpp-python (0.3.36) installed. From the repository root:

    python3 scripts/gen-tokenizer-fixtures.py \
        --model smollm2=PATH/TO/SmolLM2-135M-Instruct.Q4_1.gguf \
        --model gemma3=PATH/TO/gemma-3-270m-q4_k_m.gguf \
        --out crates/hearth-model/tests/data/tokenizer

Output `<name>.json`:
    meta      model file name, llama-cpp-python version, n_vocab, bos, eos, eog (all
              end-of-generation ids)
    tokenize  [{text, add_special, parse_special, ids}] for every string and all four flag combos
    pieces    [{id, bytes_hex}] token_to_piece(special=true) for a spread of ids

With `--pre-variants NAME` (the name of a --model with a gpt2 vocabulary), also
`<name>-pre.json`: the same strings tokenized by copies of that model whose
`tokenizer.ggml.pre` is set to each of llama-bpe, qwen2, gpt-2 and default (written to a
temporary directory with gguf's gguf_new_metadata script), so every pre-tokenizer we implement
is checked against llama.cpp with a real BPE vocabulary:
    {pre: [{text, parse_special, ids}]}   (add_special = false)
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import subprocess
import sys
import tempfile

import llama_cpp

STRINGS = [
    "",
    " ",
    "  ",
    "Hello world",
    " Hello world",
    "   leading spaces and trailing   ",
    "Hello, world! How are you today?",
    "don't I'll we're they've she'd it's DON'T I'LL",
    "def f(x):\n\treturn x * 2\n\n\tif x:\n\t\tpass\n",
    "    indented code\n        more\n",
    "Ça va? Très bien, merci. L'été à Paris.",
    "Grüße aus München, Fußgängerübergänge sind schön.",
    "日本語のテキストと中文文本。한국어도 있습니다.",
    "Emoji: 👍 👨‍👩‍👧‍👦 🏳️‍🌈 ❤️ 🇫🇷",
    "12345678901234567890 and 3.14159 and 1,000,000",
    "year 2024, phone 555-0123",
    "tabs\t\tand\nnewlines\n\n\nand\r\nwindows",
    "\n\n\n",
    "\t\t\t",
    "<|im_start|>user\nHi<|im_end|>\n",
    "<|im_end|>",
    "text<|im_end|>more",
    "<start_of_turn>user\nhello<end_of_turn>\n<start_of_turn>model\n",
    "<end_of_turn>",
    "<bos>hello<eos>",
    "<0x41><0x0A> is not a byte",
    "<s> </s> <unk>",
    "Mixed: English, русский, العربية, हिन्दी, ελληνικά",
    "URL: https://example.com/path?q=1&r=2#frag",
    "email: someone@example.org",
    "JSON: {\"key\": [1, 2, 3], \"nested\": {\"a\": null}}",
    "    ",
    "a\u00a0b\u2003c\u3000d",
    "zero\u200bwidth\u200djoiner",
    "ﬁ ligature and Å vs Å",
    "The quick brown fox jumps over the lazy dog. " * 3,
    "$100 + 50% = ~^|`<>",
    "!!!???...---",
    "x" * 40,
    "ö",
    "\u0301combining first",
    "<unused0>",
    "\u00ad soft hyphen",
    "1\n2\n3",
]


def pieces_for(llm: llama_cpp.Llama, n_vocab: int) -> list[dict]:
    ids = sorted(set(list(range(0, min(n_vocab, 300))) + list(range(0, n_vocab, max(1, n_vocab // 700)))))
    out = []
    vocab = llm._model.vocab
    for i in ids:
        # The high-level detokenize() uses a 32-byte buffer and returns nothing for longer
        # pieces, so ask llama_token_to_piece directly with room to spare.
        buf = ctypes.create_string_buffer(1024)
        n = llama_cpp.llama_token_to_piece(vocab, i, buf, len(buf), 0, True)
        assert n >= 0, f"piece of {i} longer than {len(buf)} bytes"
        out.append({"id": i, "bytes_hex": buf.raw[:n].hex()})
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", action="append", required=True, help="NAME=PATH")
    ap.add_argument("--out", required=True)
    ap.add_argument("--pre-variants", help="model NAME whose pre-tokenizer variants to record")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for spec in args.model:
        name, path = spec.split("=", 1)
        llm = llama_cpp.Llama(model_path=path, vocab_only=True, verbose=False)
        n_vocab = llm.n_vocab()
        tokenize = []
        for text in STRINGS:
            for add_special in (False, True):
                for parse_special in (False, True):
                    ids = llm.tokenize(text.encode(), add_bos=add_special, special=parse_special)
                    tokenize.append({
                        "text": text,
                        "add_special": add_special,
                        "parse_special": parse_special,
                        "ids": ids,
                    })
        meta = {
            "model_file": os.path.basename(path),
            "llama_cpp_python": llama_cpp.__version__,
            "n_vocab": n_vocab,
            "bos": llm.token_bos(),
            "eos": llm.token_eos(),
            "eog": [i for i in range(n_vocab)
                    if llama_cpp.llama_vocab_is_eog(llm._model.vocab, i)],
        }
        doc = {"meta": meta, "tokenize": tokenize, "pieces": pieces_for(llm, n_vocab)}
        with open(os.path.join(args.out, f"{name}.json"), "w", encoding="utf-8") as f:
            json.dump(doc, f, ensure_ascii=False, indent=1)
            f.write("\n")
        print(f"{name}: {len(tokenize)} tokenize cases")
        if name == args.pre_variants:
            write_pre_variants(name, path, args.out)


PRE_VARIANTS = ["llama-bpe", "qwen2", "gpt-2", "default"]


def write_pre_variants(name: str, path: str, out_dir: str) -> None:
    import gguf.scripts.gguf_new_metadata as new_metadata

    doc = {}
    with tempfile.TemporaryDirectory() as tmp:
        for pre in PRE_VARIANTS:
            copy = os.path.join(tmp, f"{pre}.gguf")
            subprocess.run([sys.executable, new_metadata.__file__, "--pre-tokenizer", pre,
                            "--force", path, copy], check=True, capture_output=True)
            llm = llama_cpp.Llama(model_path=copy, vocab_only=True, verbose=False)
            doc[pre] = [{"text": text, "parse_special": sp,
                         "ids": llm.tokenize(text.encode(), add_bos=False, special=sp)}
                        for text in STRINGS for sp in (False, True)]
            del llm
    with open(os.path.join(out_dir, f"{name}-pre.json"), "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"{name}-pre: {len(PRE_VARIANTS)} pre-tokenizers")


if __name__ == "__main__":
    main()
