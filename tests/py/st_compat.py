#!/usr/bin/env python3
"""Cross-check deploybench's safetensors reader and writer against the Python
`safetensors` library (a reference, dev-only: pip install safetensors numpy).

  python3 tests/py/st_compat.py [build/tests/test_safetensors]

1. Python writes files (every numpy dtype, metadata, empty and scalar tensors).
2. The C test binary (DPB_ST_COMPAT mode) reads each with the C reader and
   writes it again with the C writer; it also writes one tensor of every dtype
   safetensors knows (BF16 and F8 included).
3. Python reads the C-written files back and compares bytes, shapes, dtypes.
Prints one line per check and 'st_compat: N ok, M failed'."""
import os
import subprocess
import sys
import tempfile

import numpy as np
from safetensors import deserialize, safe_open
from safetensors.numpy import save_file

binary = sys.argv[1] if len(sys.argv) > 1 else "build/tests/test_safetensors"
ok = failed = 0


def check(cond, what):
    global ok, failed
    if cond:
        ok += 1
    else:
        failed += 1
        print("FAIL", what)


rng = np.random.default_rng(0)
cases = {
    "every_dtype": {
        f"t.{dt}": (rng.integers(0, 100, size=(3, 5)).astype(dt) if dt != "bool" else rng.integers(0, 2, size=(3, 5)).astype(bool))
        for dt in ["bool", "uint8", "int8", "int16", "uint16", "float16", "int32", "uint32", "float32", "int64",
                   "uint64", "float64"]
    },
    "empty_scalar": {"empty": np.zeros((0,), np.float32), "empty2": np.zeros((4, 0), np.float16),
                     "scalar": np.array(3.5, np.float32)},
    "names": {"caf\u00e9 \"q\" \\ \u4e2d": np.arange(6, dtype=np.int64).reshape(2, 3), "a.b.c": np.ones((1, 1, 1, 1), np.float32)},
}
metas = {"every_dtype": {"format": "np", "k\"ey": "v\u00e9"}, "empty_scalar": None, "names": {"x": ""}}

with tempfile.TemporaryDirectory() as d:
    for name, tensors in cases.items():
        save_file(tensors, os.path.join(d, f"py_{name}.safetensors"), metadata=metas[name])
    r = subprocess.run([binary], env={**os.environ, "DPB_ST_COMPAT": d}, capture_output=True, text=True)
    print(r.stdout, end="")
    check(r.returncode == 0, f"C reader/writer: exit {r.returncode}: {r.stderr}")
    for name, tensors in cases.items():
        path = os.path.join(d, f"c_{name}.safetensors")
        if not os.path.exists(path):
            check(False, f"{path} not written")
            continue
        raw = open(path, "rb").read()
        n = int.from_bytes(raw[:8], "little")
        check((8 + n) % 8 == 0, f"{name}: data region at {8 + n}, not 8-aligned")
        with safe_open(path, framework="numpy") as f:
            check(sorted(f.keys()) == sorted(tensors), f"{name}: names {sorted(f.keys())}")
            for k, v in tensors.items():
                got = f.get_tensor(k)
                check(got.dtype == v.dtype and got.shape == v.shape and got.tobytes() == v.tobytes(),
                      f"{name}/{k}: {got.dtype} {got.shape} vs {v.dtype} {v.shape}")
    # Every dtype, BF16/F8 included: raw bytes through deserialize().
    path = os.path.join(d, "c_all_dtypes.safetensors")
    items = dict(deserialize(open(path, "rb").read()))
    size = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1, "I16": 2, "U16": 2, "F16": 2,
            "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}
    order = ["BOOL", "U8", "I8", "F8_E4M3", "F8_E5M2", "F8_E8M0", "I16", "U16", "F16", "BF16", "I32", "U32", "F32",
             "I64", "U64", "F64"]
    for t, dt in enumerate(order, start=1):
        it = items.get(dt)
        if it is None:
            check(False, f"all_dtypes: {dt} missing")
            continue
        want = bytes((i * 7 + t) & 255 for i in range(3 * t * size[dt]))
        check(list(it["shape"]) == [3, t] and bytes(it["data"]) == want,
              f"all_dtypes: {dt}: shape {it['shape']} dtype {it['dtype']}")
print(f"st_compat: {ok} ok, {failed} failed")
sys.exit(1 if failed else 0)
