#!/usr/bin/env python3
"""Writes ggml_ref.json next to this script: K-quant reference results computed by ggml itself.

ggml's C functions are called through ctypes from the shared libraries that ship inside the
`llama_cpp` Python package (llama-cpp-python), so the numbers are llama.cpp's own:

- `quantize_row_q8_K_ref` on activation rows (Hearth must reproduce the bytes exactly),
- `quantize_row_q{2..6}_K_ref` on float rows (the weight quantizers; Hearth implements some),
- `dequantize_row_q{2..6}_K` on weight rows (random valid blocks and quantized ones),
- `ggml_vec_dot_q{2..6}_K_q8_K` (the CPU backend's dot product, SIMD where the build has it).

Usage: python3 gen_ggml_ref.py [path/to/llama_cpp/lib]   (default: found via `import llama_cpp`)
"""
import ctypes
import json
import os
import sys

import numpy as np

QK_K = 256
TYPES = {  # name: (block bytes, offsets of f16 d fields)
    "Q2_K": (84, [80, 82]),
    "Q3_K": (110, [108]),
    "Q4_K": (144, [0, 2]),
    "Q5_K": (176, [0, 2]),
    "Q6_K": (210, [208]),
}
Q8K_BYTES = 292
NB = 2  # blocks per row


def load_libs(libdir):
    mode = ctypes.RTLD_GLOBAL
    base = ctypes.CDLL(os.path.join(libdir, "libggml-base.so"), mode=mode)
    cpu = ctypes.CDLL(os.path.join(libdir, "libggml-cpu.so"), mode=mode)
    cpu.ggml_cpu_init()
    return base, cpu


def fptr(a):
    return a.ctypes.data_as(ctypes.c_void_p)


def main():
    if len(sys.argv) > 1:
        libdir = sys.argv[1]
    else:
        import llama_cpp

        libdir = os.path.join(os.path.dirname(llama_cpp.__file__), "lib")
    base, cpu = load_libs(libdir)
    rng = np.random.default_rng(20261127)
    n = NB * QK_K

    def q8k(x):
        out = np.zeros(NB * Q8K_BYTES, dtype=np.uint8)
        base.quantize_row_q8_K_ref(fptr(x), fptr(out), ctypes.c_int64(n))
        return out

    # Activation rows: a Gaussian row, one with outliers and an all-zero block, one whose
    # largest-magnitude values are positive (so d < 0 and > 0 both occur).
    x_rows = [rng.standard_normal(n).astype(np.float32)]
    r = (rng.standard_normal(n) * 0.1).astype(np.float32)
    r[:QK_K] = 0.0
    r[QK_K + 7] = 9.5
    x_rows.append(r)
    x_rows.append(np.abs(rng.standard_normal(n)).astype(np.float32) - 0.2)
    x_q8 = [q8k(x) for x in x_rows]

    doc = {
        "n": n,
        "x": [x.tobytes().hex() for x in x_rows],
        "x_q8k": [q.tobytes().hex() for q in x_q8],
        "types": {},
    }
    for name, (bsize, dofs) in TYPES.items():
        lname = name[:2].lower() + "_K"
        quant = getattr(base, f"quantize_row_{lname}_ref")
        deq = getattr(base, f"dequantize_row_{lname}")
        dot = getattr(cpu, f"ggml_vec_dot_{lname}_q8_K")
        dot.argtypes = [ctypes.c_int, ctypes.POINTER(ctypes.c_float), ctypes.c_size_t,
                        ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t,
                        ctypes.c_int]

        # Row 0: random bytes with finite, modest f16 scales. Row 1: ggml's own quantization
        # of a Gaussian row (realistic scale structure).
        w0 = rng.integers(0, 256, NB * bsize, dtype=np.uint8)
        for b in range(NB):
            for off in dofs:
                v = np.float16(rng.uniform(0.001, 0.05) * rng.choice([-1.0, 1.0]))
                w0[b * bsize + off: b * bsize + off + 2] = np.frombuffer(v.tobytes(), np.uint8)
        src = (rng.standard_normal(n) * 0.05).astype(np.float32)
        w1 = np.zeros(NB * bsize, dtype=np.uint8)
        quant(fptr(src), fptr(w1), ctypes.c_int64(n))

        rows = []
        for w in (w0, w1):
            y = np.zeros(n, dtype=np.float32)
            deq(fptr(w), fptr(y), ctypes.c_int64(n))
            dots = []
            for q in x_q8:
                s = ctypes.c_float(0.0)
                dot(n, ctypes.byref(s), 0, fptr(w), 0, fptr(q), 0, 1)
                dots.append(s.value)
            rows.append({
                "w": w.tobytes().hex(),
                "dequant": y.tobytes().hex(),
                "dot": [np.float32(v).view(np.uint32).item() for v in dots],
            })
        doc["types"][name] = {
            "rows": rows,
            "quant_src": src.tobytes().hex(),
            "quant_out": w1.tobytes().hex(),
        }
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ggml_ref.json")
    with open(out, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {out} ({os.path.getsize(out)} bytes)")


if __name__ == "__main__":
    main()
