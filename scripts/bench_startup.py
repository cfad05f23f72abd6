#!/usr/bin/env python3
"""numba compile cost: first call with an empty cache (cold) vs a warm on-disk cache.

Usage: python scripts/bench_startup.py

Each measurement runs in a fresh interpreter with NUMBA_CACHE_DIR pointed at a temporary
directory, and times `import` plus one encode_chunk + decode_chunk round trip of a small
bf16 and f32 chunk (which touches every kernel on the chunk path). The ``warm CLI`` row
first does what the ``ansz`` command does at start-up (``skip_optional_numba_imports``:
numba then skips scipy and cffi, where they are installed).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

PROBE = r"""
import sys, time
t0 = time.perf_counter()
if sys.argv[1:] == ["cli"]:
    from ansz._numba_env import skip_optional_numba_imports
    skip_optional_numba_imports()
import numpy as np
from ansz import chunks
t1 = time.perf_counter()
for dt, npdt in (("BF16", np.uint16), ("F32", np.float32), ("BYTES", np.uint8)):
    data = (np.arange(10000) % 7).astype(npdt).tobytes()
    assert chunks.decode_chunk(chunks.encode_chunk(data, dt), dt, len(data)).tobytes() == data
t2 = time.perf_counter()
print(f"{t1 - t0:.3f} {t2 - t1:.3f}")
"""


def run(cache_dir: str, *args: str) -> tuple[float, float, float]:
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", PROBE, *args], env=env, check=True,
                         capture_output=True, text=True).stdout.split()
    return float(out[0]), float(out[1]), time.perf_counter() - t0


def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        cold = run(d)
        warm = min((run(d) for _ in range(3)), key=lambda r: r[2])
        cli = min((run(d, "cli") for _ in range(3)), key=lambda r: r[2])
    print(f"{'':<9}{'import s':>10}{'first chunks s':>16}{'process s':>12}")
    for name, r in (("cold", cold), ("warm", warm), ("warm CLI", cli)):
        print(f"{name:<9}{r[0]:>10.3f}{r[1]:>16.3f}{r[2]:>12.3f}")


if __name__ == "__main__":
    main()
