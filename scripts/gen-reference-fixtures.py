#!/usr/bin/env python3
"""Write llama.cpp reference fixtures (tokenizer ids, greedy tokens, logits) for real GGUF models.

Hearth must match llama.cpp token for token. This script asks llama.cpp itself (through the
llama-cpp-python bindings) what it does for a fixed set of inputs, and writes the answers as JSON
that the Rust tests in `crates/hearth-model` compare against. It is run by hand when a model or
the pinned llama.cpp version changes, never in CI.

Setup (once):

    pip install llama-cpp-python==0.3.36 numpy jinja2   # builds llama.cpp from source, takes minutes

Run (from the repository root; model files are not in the repo, pass their paths):

    python3 scripts/gen-reference-fixtures.py \
        --model smollm2-135m=PATH/TO/SmolLM2-135M-Instruct.Q4_1.gguf \
        --model gemma3-270m=PATH/TO/gemma-3-270m-q4_k_m.gguf \
        --out crates/hearth-model/tests/data/reference

Output, one file per model, `<name>.json`:

    meta       model file name/sha256, llama-cpp-python version, llama.cpp commit, n_ctx, threads,
               flash_attn, KV cache type, n_vocab, bos/eos ids, default add_bos, date
    tokenize   [{text, add_special, parse_special, ids}]  -- every string with all four flag combos
    prompts    [{name, text, add_bos, prompt_ids, generated_ids, top5_first, top2}]
               raw text (no chat template), special=false, greedy for N steps without stopping at
               EOS. top5_first = the five best (id, logit) after the prompt; top2[i] = the two best
               (id, logit) at step i (step 0 is after the prompt). Logits are llama.cpp's f32
               values written as the shortest decimal that round-trips (Python repr).
    chat       (only with --chat) [{name, messages, rendered, add_bos, prompt_ids, generated_ids,
               top2}] -- messages rendered with the GGUF's own chat template, tokenized with
               special=true.

Ties in the argmax go to the lowest token id (numpy argmax takes the first maximum).
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import sys

import numpy as np

try:
    import llama_cpp
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter
except ImportError:  # pragma: no cover - explained to the user
    sys.exit("llama_cpp not importable: pip install llama-cpp-python==0.3.36 (see header)")

# llama-cpp-python does not expose the llama.cpp commit it vendors; this maps the versions we
# have pinned. Pass --llama-cpp-commit for any other version.
KNOWN_COMMITS = {"0.3.36": "0c1e57098bba43ac29e6e3b677cdceebdd22334f"}

N_CTX = 512
N_THREADS = 2

PARAGRAPH = (
    "The kitchen was quiet except for the hum of the refrigerator and the slow tick of the old "
    "clock above the door. Mara set the kettle on the stove, counted out three spoons of tea "
    "(the good kind, from the tin with the faded blue label), and waited. Outside, the rain had "
    "turned to sleet; the gutters rattled, and somewhere down the street a dog barked twice and "
    "then thought better of it. She opened her notebook to the page marked with a receipt from "
    "2019 -- $14.95 for batteries, nails, and a roll of tape -- and read what she had written "
    "the night before: \"Fix the hinge. Call the plumber. Don't forget Tom's birthday (the 23rd!).\" "
    "None of it was done. The kettle began to whistle, softly at first, then insistently, the "
    "way it always did, as if it knew she would ignore it until the last possible moment. "
)
LONG_PARAGRAPH = (PARAGRAPH * 6)[:2048]

# Strings chosen to hit the tokenizers' edge cases: pre-tokenizer regex classes, byte fallback,
# multi-codepoint graphemes, special-token parsing, and whitespace runs.
TOKENIZE_STRINGS: list[tuple[str, str]] = [
    ("empty", ""),
    ("single_space", " "),
    ("leading_space", " Hello world"),
    ("english", "Hello, world! How are you doing today?"),
    ("contractions", "don't won't I'LL they're we've she'd IT'S y'all"),
    ("code_tabs", "def f(x):\n\tif x > 0:\n\t\treturn x * 2\n\treturn -x\n"),
    ("code_spaces", "fn main() {\n    let v: Vec<u8> = vec![1, 2, 3];\n    println!(\"{:?}\", v);\n}\n"),
    ("french", "Où est la bibliothèque ? À côté de l'église, naïve façon."),
    ("german", "Größenverhältnisse: Straße, Übermäßig, Fußgängerüberweg."),
    ("chinese", "我们今天去公园散步，天气很好。"),
    ("japanese", "東京は日本の首都です。ひらがなとカタカナ。"),
    ("korean", "안녕하세요, 만나서 반갑습니다."),
    ("emoji_simple", "I love pizza 🍕 and cats 🐱!"),
    ("emoji_zwj", "Family: 👨‍👩‍👧‍👦 tech: 👩🏽‍💻 rainbow: 🏳️‍🌈"),
    ("emoji_flags", "Flags: 🇫🇷🇩🇪🇯🇵🇺🇸"),
    ("numbers", "3.14159265358979 and 1234567890123 and 0.0001 and 1,000,000"),
    ("spaces_run", "a  b   c    d         e"),
    ("newlines_run", "line1\n\nline2\n\n\n\nline3\n"),
    ("ws_mix", " \t\n \t \n\n\t\t  x \t\n"),
    ("only_newlines", "\n\n\n"),
    ("im_tokens", "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n"),
    ("gemma_turn", "<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n"),
    ("bos_eos_text", "<s>hello</s> <bos>x<eos>"),
    ("arabic", "مرحبا بالعالم، كيف حالك؟"),
    ("hindi", "नमस्ते दुनिया, आप कैसे हैं?"),
    ("russian", "Привет, мир! Съешь же ещё этих мягких французских булок."),
    ("punct", "Wait... what?!?! (yes) [no] {maybe} -- ok; fine: \"quoted\" 'single'"),
    ("url_email", "See https://example.com/a/b?c=1&d=2 or mail me@example.org."),
    ("mixed_case", "HELLO hello HeLLo hELLO"),
    ("json", '{"key": [1, 2.5, null, true], "nested": {"a": "b"}}'),
    ("paragraph_2k", LONG_PARAGRAPH),
]

# Prompts for the greedy-decoding check, run as raw text (no chat template).
PROMPTS: list[tuple[str, str]] = [
    ("english_story", "Once upon a time, in a small village by the sea,"),
    ("english_fact", "The capital of France is"),
    ("english_question", "Q: Why is the sky blue?\nA:"),
    ("code_python", "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n"),
    ("code_tabs", "int main(void) {\n\tint x = 0;\n\tfor (int i = 0; i < 10; i++) {\n\t\t"),
    ("code_rust", "fn add(a: i32, b: i32) -> i32 {\n"),
    ("french", "La recette de la tarte aux pommes est simple : d'abord,"),
    ("german", "Die Geschichte der Stadt Berlin beginnt im"),
    ("chinese", "中国的首都是"),
    ("japanese", "日本で一番高い山は"),
    ("emoji", "My favourite emojis are 😀🎉🍕 because"),
    ("whitespace", "List:\n\n  - apples\n  - pears\n\n\t-"),
    ("numbers", "1, 2, 3, 5, 8, 13, 21,"),
    ("arithmetic", "12345 + 67890 ="),
    ("json", '{"name": "Alice", "age": 30, "city":'),
    ("markdown", "# Shopping list\n\n1. Milk\n2."),
    ("russian", "Москва — столица"),
    ("single_word", "Hello"),
    ("repeat", "the the the the the the the the"),
    ("long_300", PARAGRAPH + PARAGRAPH[: len(PARAGRAPH) // 2] + "In the end, she decided"),
]

CHAT_CASES: list[tuple[str, list[dict[str, str]]]] = [
    ("chat_simple", [{"role": "user", "content": "What is the capital of France?"}]),
    (
        "chat_system",
        [
            {"role": "system", "content": "You are a terse assistant. Answer in one word."},
            {"role": "user", "content": "Name a colour of the sky."},
        ],
    ),
    (
        "chat_multi_turn",
        [
            {"role": "user", "content": "Hi! My name is Sam."},
            {"role": "assistant", "content": "Hello Sam, nice to meet you."},
            {"role": "user", "content": "What is my name?"},
        ],
    ),
]


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def top_k(logits: np.ndarray, k: int) -> list[list[float | int]]:
    """The k best (id, logit) pairs, logit descending, ties broken by the lower id."""
    # lexsort sorts by the last key first: -logit ascending, then id ascending.
    ids = np.arange(logits.shape[0])
    order = np.lexsort((ids, -logits))[:k]
    return [[int(i), float(logits[i])] for i in order]


class Runner:
    def __init__(self, path: str, n_ctx: int, threads: int):
        self.llm = llama_cpp.Llama(
            model_path=path,
            n_ctx=n_ctx,
            n_batch=n_ctx,
            n_ubatch=n_ctx,
            n_threads=threads,
            n_threads_batch=threads,
            logits_all=False,
            verbose=False,
            seed=0,
        )
        self.n_vocab = self.llm.n_vocab()

    def last_logits(self) -> np.ndarray:
        ptr = llama_cpp.llama_get_logits_ith(self.llm._ctx.ctx, -1)
        # Copy: the buffer is overwritten by the next decode.
        return np.ctypeslib.as_array(ptr, shape=(self.n_vocab,)).astype(np.float32).copy()

    def greedy(self, prompt_ids: list[int], steps: int) -> tuple[list[int], list[np.ndarray]]:
        """Greedy decoding from a clean KV cache; returns generated ids and the logits per step."""
        if len(prompt_ids) + steps > self.llm.n_ctx():
            raise ValueError(f"prompt of {len(prompt_ids)} + {steps} steps exceeds n_ctx")
        # reset() sets n_tokens to 0, and eval() then removes every KV cell from position 0 on.
        self.llm.reset()
        self.llm.eval(prompt_ids)
        out: list[int] = []
        logits_per_step: list[np.ndarray] = []
        for _ in range(steps):
            logits = self.last_logits()
            tok = int(np.argmax(logits))  # first maximum = lowest id on ties
            logits_per_step.append(logits)
            out.append(tok)
            self.llm.eval([tok])  # keep going past EOS on purpose
        return out, logits_per_step


def tokenize_section(llm: llama_cpp.Llama) -> list[dict]:
    rows = []
    for name, text in TOKENIZE_STRINGS:
        for add_special in (True, False):
            for parse_special in (True, False):
                ids = llm.tokenize(text.encode("utf-8"), add_bos=add_special, special=parse_special)
                rows.append(
                    {
                        "name": name,
                        "text": text,
                        "add_special": add_special,
                        "parse_special": parse_special,
                        "ids": [int(t) for t in ids],
                    }
                )
    return rows


def prompts_section(runner: Runner, add_bos: bool, steps: int) -> list[dict]:
    rows = []
    first_logits = None
    for name, text in PROMPTS:
        ids = runner.llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=False)
        gen, logits = runner.greedy(ids, steps)
        if first_logits is None:
            first_logits = (ids, gen, logits[0])
        rows.append(
            {
                "name": name,
                "text": text,
                "add_bos": add_bos,
                "prompt_ids": [int(t) for t in ids],
                "generated_ids": gen,
                "top5_first": top_k(logits[0], 5),
                "top2": [top_k(lg, 2) for lg in logits],
            }
        )
        print(f"  {name}: {len(ids)} prompt tokens -> {gen[:8]}...", file=sys.stderr)
    # Guard against state leaking between prompts: the first prompt, run again after all the
    # others, must give bit-identical logits and tokens.
    ids, gen0, lg0 = first_logits
    gen1, lg1 = runner.greedy(ids, steps)
    if gen1 != gen0 or not np.array_equal(lg0, lg1[0]):
        raise RuntimeError("re-running the first prompt changed its output: KV cache not reset")
    return rows


def chat_section(runner: Runner, add_bos: bool, steps: int) -> list[dict]:
    llm = runner.llm
    template = llm.metadata.get("tokenizer.chat_template")
    if template is None:
        raise RuntimeError("--chat given but the GGUF has no tokenizer.chat_template")
    bos_id, eos_id = llm.token_bos(), llm.token_eos()
    bos = llm.detokenize([bos_id], special=True).decode("utf-8") if bos_id >= 0 else ""
    eos = llm.detokenize([eos_id], special=True).decode("utf-8") if eos_id >= 0 else ""
    fmt = Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos)
    rows = []
    for name, messages in CHAT_CASES:
        rendered = fmt(messages=messages).prompt
        # A template that writes the BOS text itself (Gemma's does) must not get a second BOS,
        # which is also what llama.cpp's own chat code does.
        bos_here = add_bos and not (bos and rendered.startswith(bos))
        ids = llm.tokenize(rendered.encode("utf-8"), add_bos=bos_here, special=True)
        gen, logits = runner.greedy(ids, steps)
        rows.append(
            {
                "name": name,
                "messages": messages,
                "add_generation_prompt": True,
                "bos_token": bos,
                "eos_token": eos,
                "rendered": rendered,
                "add_bos": bos_here,
                "parse_special": True,
                "prompt_ids": [int(t) for t in ids],
                "generated_ids": gen,
                "top2": [top_k(lg, 2) for lg in logits],
            }
        )
        print(f"  {name}: {len(ids)} prompt tokens -> {gen[:8]}...", file=sys.stderr)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", required=True, metavar="NAME=PATH")
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument("--chat", action="append", default=[], metavar="NAME",
                    help="also write chat-template cases for this model name")
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--n-ctx", type=int, default=N_CTX)
    ap.add_argument("--threads", type=int, default=N_THREADS)
    ap.add_argument("--llama-cpp-commit", default=KNOWN_COMMITS.get(llama_cpp.__version__, "unknown"))
    args = ap.parse_args()

    os.makedirs(args.out, exist_ok=True)
    for spec in args.model:
        name, sep, path = spec.partition("=")
        if not sep:
            ap.error(f"--model expects NAME=PATH, got {spec!r}")
        print(f"{name}: loading {os.path.basename(path)}", file=sys.stderr)
        runner = Runner(path, args.n_ctx, args.threads)
        llm = runner.llm
        add_bos = bool(llm._model.add_bos_token())
        doc = {
            "meta": {
                "model_file": os.path.basename(path),
                "model_sha256": sha256_file(path),
                "architecture": llm.metadata.get("general.architecture"),
                "tokenizer_model": llm.metadata.get("tokenizer.ggml.model"),
                "tokenizer_pre": llm.metadata.get("tokenizer.ggml.pre"),
                "n_vocab": runner.n_vocab,
                "bos_id": int(llm.token_bos()),
                "eos_id": int(llm.token_eos()),
                "add_bos_default": add_bos,
                "llama_cpp_python_version": llama_cpp.__version__,
                "llama_cpp_commit": args.llama_cpp_commit,
                "n_ctx": args.n_ctx,
                "n_batch": args.n_ctx,
                "threads": args.threads,
                "flash_attn": False,
                "kv_cache_type": "f16",
                "steps": args.steps,
                "tie_break": "lowest id",
                "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            },
            "tokenize": tokenize_section(llm),
            "prompts": prompts_section(runner, add_bos, args.steps),
        }
        if name in args.chat:
            if "tokenizer.chat_template" in llm.metadata:
                doc["chat"] = chat_section(runner, add_bos, args.steps)
            else:
                print(f"{name}: no tokenizer.chat_template in the GGUF, no chat cases", file=sys.stderr)
        out = os.path.join(args.out, f"{name}.json")
        with open(out, "w", encoding="utf-8") as f:
            json.dump(doc, f, ensure_ascii=False, indent=None, separators=(",", ":"))
            f.write("\n")
        print(f"{name}: wrote {out} ({os.path.getsize(out)} bytes)", file=sys.stderr)
        del runner, llm


if __name__ == "__main__":
    main()
