#!/usr/bin/env python3
"""Writes crates/hearth-kernels/tests/data/dequant.json: dequantization fixtures from the
`gguf` Python package (gguf-py, maintained with llama.cpp), replayed by the kernels' tests.

Run by hand (not in CI) from anywhere:

    python3 scripts/gen-dequant-fixtures.py [--cache DIR] [MODEL.gguf ...]

It makes a virtual environment in DIR (default $HEARTH_DEQUANT_VENV_CACHE, else
~/.cache/hearth-dequant-fixtures), installs the pinned `gguf` and `numpy` wheels there with pip's
`--require-hashes` (their sha256 are in PINNED below, so a changed wheel stops the run), and runs
itself inside it. The i-quant and MXFP4 decoders need gguf 0.19.0 or later.

For every weight type Hearth supports it stores a few blocks of random valid bytes: random
bytes everywhere except the f16 scale fields, which are set to finite, normal, modest values
so that every decoded value is finite. For each model file given, it also stores the first two
blocks of the first tensor of each supported type found in it (pass the SmolLM2 Q4_1 and the
Gemma-3 270M Q4_K_M models to cover Q4_1, Q5_0, Q8_0, Q4_K and Q6_K on real data).

It also stores llama.cpp's own encoding of activation rows (Q8_0, Q8_1, F16, BF16, the
formats vec_dot multiplies weights with) as computed by its CPU backend's `from_float`,
which Hearth must reproduce byte for byte. The backend library comes from the installed
`llama_cpp` Python package (llama-cpp-python) or from `--ggml-cpu PATH/libggml-cpu.so`;
without either, that part is skipped and the replay test ignores it.

Bytes are stored as hex, values as JSON numbers (each an exact f32).
"""

import argparse
import ctypes
import glob
import json
import os
import sys

import subprocess

SEED = 20261127

# The wheels the fixtures were made with, by sha256 (pip refuses any other bytes). numpy's hash
# and PyYAML's are those of their CPython 3.11 manylinux x86-64 wheels; add a hash for another
# platform's wheel. gguf imports yaml at import time; its other dependencies are not needed here.
PINNED = [
    "gguf==0.19.0 --hash=sha256:70bcd10edfe697fb2dad6e40af2234b9d8ece9a41a99761405121ebda1c3c1cd",
    "numpy==2.2.6 --hash=sha256:ba10f8411898fc418a521833e014a77d3ca01c15b0c6cdcce6a0d2897e6dbbdf",
    "pyyaml==6.0.2 --hash=sha256:3ad2a3decf9aaba3d29c8f537ac4b243e36bef957511b4766cb0057d32b0be85",
]

# Hearth's SUPPORTED list (crates/hearth-kernels/src/lib.rs), in the same order.
# New types go at the end, so the random draws of the earlier ones stay the same.
SUPPORTED = ["F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0",
             "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "IQ4_NL", "IQ4_XS", "MXFP4"]

# Byte offsets of the f16 scale fields inside one block (ggml-common.h).
F16_FIELDS = {
    "Q4_0": [0], "Q4_1": [0, 2], "Q5_0": [0], "Q5_1": [0, 2], "Q8_0": [0],
    "Q2_K": [80, 82], "Q3_K": [108], "Q4_K": [0, 2], "Q5_K": [0, 2], "Q6_K": [208],
    "IQ4_NL": [0], "IQ4_XS": [0],
    # MXFP4's scale is one E8M0 byte: every value of it decodes to a finite power of two.
    "MXFP4": [],
}

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "crates",
                   "hearth-kernels", "tests", "data", "dequant.json")


def random_float_bytes(rng, name, n):
    """Random bit patterns of a float type, excluding infinities and NaNs."""
    if name == "F32":
        bits = rng.integers(0, 2**32, size=n, dtype=np.uint64).astype(np.uint32)
        exp_all_ones = (bits & 0x7F800000) == 0x7F800000
        bits[exp_all_ones] &= np.uint32(0xBFFFFFFF)  # clear one exponent bit
        return bits.astype("<u4").tobytes()
    bits = rng.integers(0, 2**16, size=n, dtype=np.uint32).astype(np.uint16)
    mask = 0x7C00 if name == "F16" else 0x7F80
    bad = (bits & mask) == mask
    bits[bad] &= np.uint16(~(mask & (mask >> 1)) & 0xFFFF)  # clear the top exponent bit
    return bits.astype("<u2").tobytes()


def random_block_bytes(rng, name, n_blocks):
    block, size = GGML_QUANT_SIZES[T[name]]
    raw = bytearray(rng.integers(0, 256, size=n_blocks * size, dtype=np.uint16).astype(np.uint8).tobytes())
    for b in range(n_blocks):
        for off in F16_FIELDS[name]:
            # Magnitude 2^-12 .. 2^-2, random sign: normal f16 values of a realistic size.
            mag = 2.0 ** rng.uniform(-12, -2)
            sign = -1.0 if rng.random() < 0.5 else 1.0
            raw[b * size + off:b * size + off + 2] = np.float16(sign * mag).tobytes()
    return bytes(raw), n_blocks * block


def entry(name, source, raw):
    data = np.frombuffer(raw, dtype=np.uint8)
    values = dequantize(data, T[name]).astype(np.float32).ravel()
    if not np.all(np.isfinite(values)):
        sys.exit(f"{name} from {source}: non-finite values; adjust the generator")
    return {"type": name, "source": source, "hex": raw.hex(),
            "values": [float(v) for v in values]}


def find_ggml_cpu(path):
    if path:
        return path
    try:
        import llama_cpp
    except ImportError:
        return None
    libs = sorted(glob.glob(os.path.join(os.path.dirname(llama_cpp.__file__), "lib", "libggml-cpu.so*")))
    return libs[0] if libs else None


def activation_entries(lib_path, rng):
    """llama.cpp's `from_float` for each activation format on a few rows."""
    class Traits(ctypes.Structure):
        _fields_ = [("from_float", ctypes.c_void_p), ("vec_dot", ctypes.c_void_p),
                    ("vec_dot_type", ctypes.c_int), ("nrows", ctypes.c_int64)]

    lib = ctypes.CDLL(lib_path)
    lib.ggml_get_type_traits_cpu.restype = ctypes.POINTER(Traits)
    lib.ggml_cpu_init()
    from_float_t = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)
    n = 256
    rows = [
        (rng.standard_normal(n) * 0.7).astype(np.float32),
        (rng.standard_normal(n) * 30.0).astype(np.float32),
        # Exact rounding ties: amax 127 per block makes the scale 1, so k + 0.5 must go to even.
        np.array([127.0 if i % 32 == 0 else (i % 29) - 14 + 0.5 for i in range(n)], dtype=np.float32),
        np.zeros(n, dtype=np.float32),
    ]
    out = []
    for name in ["Q8_0", "Q8_1", "F16", "BF16"]:
        qt = T[name]
        block, size = GGML_QUANT_SIZES[qt]
        from_float = from_float_t(lib.ggml_get_type_traits_cpu(int(qt)).contents.from_float)
        for x in rows:
            x = np.ascontiguousarray(x)
            buf = ctypes.create_string_buffer(n // block * size)
            from_float(x.ctypes.data, ctypes.addressof(buf), n)
            out.append({"type": name, "input": [float(v) for v in x], "hex": buf.raw.hex()})
    return out


def bootstrap(args, argv):
    """Runs this script again inside a virtual environment holding the pinned wheels."""
    venv = os.path.join(args.cache, "venv")
    py = os.path.join(venv, "bin", "python")
    if not os.path.exists(py):
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    req = os.path.join(args.cache, "requirements.txt")
    with open(req, "w") as f:
        f.write("\n".join(PINNED) + "\n")
    subprocess.run([py, "-m", "pip", "install", "--quiet", "--no-deps", "--require-hashes",
                    "-r", req], check=True)
    sys.exit(subprocess.run([py, os.path.abspath(__file__), "--in-venv", *argv]).returncode)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="*", help="GGUF model files to take real blocks from")
    ap.add_argument("--ggml-cpu", help="path of llama.cpp's libggml-cpu shared library")
    ap.add_argument("--cache", default=os.environ.get("HEARTH_DEQUANT_VENV_CACHE")
                    or os.path.join(os.path.expanduser("~"), ".cache", "hearth-dequant-fixtures"))
    ap.add_argument("--in-venv", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if not args.in_venv:
        bootstrap(args, sys.argv[1:])

    global np, T, GGUFReader, GGML_QUANT_SIZES, dequantize
    import numpy as np
    from gguf import GGMLQuantizationType as T
    from gguf import GGUFReader
    from gguf.constants import GGML_QUANT_SIZES
    from gguf.quants import dequantize

    rng = np.random.default_rng(SEED)
    entries = []
    for name in SUPPORTED:
        if name in ("F32", "F16", "BF16"):
            raw = random_float_bytes(rng, name, 64)
        else:
            block = GGML_QUANT_SIZES[T[name]][0]
            raw, _ = random_block_bytes(rng, name, 4 if block == 32 else 2)
        entries.append(entry(name, "random", raw))

    for path in args.models:
        reader = GGUFReader(path)
        seen = set()
        for t in reader.tensors:
            name = t.tensor_type.name
            if name not in SUPPORTED or name in seen:
                continue
            seen.add(name)
            _, size = GGML_QUANT_SIZES[t.tensor_type]
            raw = np.asarray(t.data).view(np.uint8).ravel()[:2 * size].tobytes()
            entries.append(entry(name, f"{os.path.basename(path)}:{t.name}", raw))

    activations = []
    lib_path = find_ggml_cpu(args.ggml_cpu)
    if lib_path:
        activations = activation_entries(lib_path, np.random.default_rng(SEED + 1))
    else:
        print("llama.cpp CPU backend not found: no activation fixtures", file=sys.stderr)

    doc = {"generator": "scripts/gen-dequant-fixtures.py", "seed": SEED, "entries": entries,
           "activations": activations}
    with open(OUT, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {len(entries)} entries, {os.path.getsize(OUT)} bytes to {os.path.normpath(OUT)}")


if __name__ == "__main__":
    main()
