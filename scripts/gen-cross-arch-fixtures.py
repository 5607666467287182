#!/usr/bin/env python3
"""Write the fixtures of crates/hearth-model/tests/cross_arch.rs: a short greedy run of each real
model, its tokens and a hash of every step's logits, as x86-64 computes them. The ARM builds
must reproduce them bit for bit (scripts/test and scripts/test-arm run that test under
qemu-aarch64).

A model has two sets of bits, one per weight layout (packed, or row-major), so this runs the
test's own code in write mode (HEARTH_CROSS_ARCH_OUT) several times on this machine:

    row_major   HEARTH_SIMD=scalar: the portable reference, which never packs;
    packed      the best SIMD level here, which packs;

and checks, before writing anything, that the other levels agree with them, as the kernels'
contract says they must:

    HEARTH_PACK=off at the best level   must equal row_major (every kernel equals its scalar
                                        reference);
    HEARTH_SIMD=avx2, on a CPU with AVX-512 VNNI   must equal packed.

A disagreement means a kernel breaks its contract; fix it rather than the fixture.
--allow-row-major-mismatch writes the fixtures anyway, with the scalar level's row-major bits,
for a tree whose row-major SIMD kernels are known not to equal the scalar references yet.

Run from the repository root on an x86-64 machine, with the models in $HEARTH_TEST_HOME
(default target/test-home; the test pulls them when missing):

    python3 scripts/gen-cross-arch-fixtures.py [--allow-row-major-mismatch] [MODEL...]

MODEL defaults to every model the test covers (smollm2-135m, gemma3-270m).
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "crates/hearth-model/tests/data/cross-arch"
MODELS = {"smollm2-135m": "smollm2_greedy", "gemma3-270m": "gemma3_greedy"}


def run(models, env_extra):
    """Runs the test in write mode for `models` with `env_extra`; returns {model: run}."""
    with tempfile.TemporaryDirectory() as out:
        env = dict(os.environ, HEARTH_CROSS_ARCH_OUT=out, **env_extra)
        env.setdefault("HEARTH_TEST_HOME", str(ROOT / "target/test-home"))
        for key in ("HEARTH_SIMD", "HEARTH_PACK"):
            if key not in env_extra:
                env.pop(key, None)
        filters = [MODELS[m] for m in models]
        cmd = ["cargo", "test", "--release", "-q", "-p", "hearth-model", "--test", "cross_arch",
               "--", *filters]
        label = " ".join(f"{k}={v}" for k, v in env_extra.items()) or "default level"
        print(f"==> {label}: {' '.join(cmd)}", file=sys.stderr)
        subprocess.run(cmd, cwd=ROOT, env=env, check=True)
        return {m: json.loads((Path(out) / f"{m}.json").read_text()) for m in models}


def describe(r):
    return f"{r['level']} ({r['layout']})"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="*", default=list(MODELS))
    ap.add_argument("--allow-row-major-mismatch", action="store_true")
    args = ap.parse_args()
    unknown = [m for m in args.models if m not in MODELS]
    if unknown:
        sys.exit(f"unknown model(s) {unknown}; known: {list(MODELS)}")
    if platform.machine() not in ("x86_64", "AMD64"):
        sys.exit("the fixtures are x86-64's bits: run this on an x86-64 machine")

    scalar = run(args.models, {"HEARTH_SIMD": "scalar"})
    best = run(args.models, {})
    unpacked = run(args.models, {"HEARTH_PACK": "off"})
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    avx2 = run(args.models, {"HEARTH_SIMD": "avx2"}) if "avx512_vnni" in cpuinfo else None

    problems = []
    for m in args.models:
        if scalar[m]["layout"] != "row_major" or unpacked[m]["layout"] != "row_major":
            sys.exit(f"{m}: HEARTH_SIMD=scalar and HEARTH_PACK=off must not pack")
        if best[m]["layout"] != "packed":
            sys.exit(f"{m}: the best level here ({best[m]['level']}) does not pack this model")
        if unpacked[m]["run"] != scalar[m]["run"]:
            problems.append(f"{m}: {describe(unpacked[m])} differs from {describe(scalar[m])}")
        if avx2 and avx2[m]["run"] != best[m]["run"]:
            sys.exit(f"{m}: {describe(avx2[m])} differs from {describe(best[m])}: a kernel breaks "
                     "the contract; not writing fixtures")
    for p in problems:
        print(f"row-major bits: {p}", file=sys.stderr)
    if problems and not args.allow_row_major_mismatch:
        sys.exit("a row-major SIMD kernel differs from its scalar reference; not writing fixtures "
                 "(--allow-row-major-mismatch writes the scalar level's)")

    FIXTURES.mkdir(parents=True, exist_ok=True)
    for m in args.models:
        fixture = {
            "generated_by": "scripts/gen-cross-arch-fixtures.py",
            "machine": "x86_64",
            "row_major_from": describe(scalar[m]),
            "packed_from": describe(best[m]),
            "row_major": scalar[m]["run"],
            "packed": best[m]["run"],
        }
        path = FIXTURES / f"{m}.json"
        path.write_text(json.dumps(fixture, indent=1) + "\n")
        print(f"wrote {path.relative_to(ROOT)}: tokens {best[m]['run']['tokens']}", file=sys.stderr)


if __name__ == "__main__":
    main()
