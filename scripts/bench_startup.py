#!/usr/bin/env python3
"""Start-up cost: the kernel library against numba's JIT (cold and warm cache), and the
``ansz`` command on a tiny file.

Usage: python scripts/bench_startup.py [--repeat 15]

Part 1, kernels: each measurement runs in a fresh interpreter with NUMBA_CACHE_DIR pointed
at a temporary directory, and times ``import`` plus one encode_chunk + decode_chunk round
trip of a small bf16, f32 and bytes chunk (which touches every kernel on the chunk path):
with the ahead-of-time library (if built), and with ANSZ_NO_AOT=1 on a cold cache (every
kernel compiles), a warm one, and warm as the ``ansz`` command starts
(``skip_optional_numba_imports``: numba then skips scipy and cffi, where installed).

Part 2, the command: wall time of ``ansz --help``, ``ansz compress -c`` and ``ansz
decompress -c`` of an 8 KB safetensors file, with the library and with ANSZ_NO_AOT=1 (warm
cache), interleaved, ``--repeat`` runs each: median and minimum. The machine's other load
shows in both; compare the columns of one run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import struct
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
from ansz import chunks, kernels
t1 = time.perf_counter()
for dt, npdt in (("BF16", np.uint16), ("F32", np.float32), ("BYTES", np.uint8)):
    data = (np.arange(10000) % 7).astype(npdt).tobytes()
    assert chunks.decode_chunk(chunks.encode_chunk(data, dt), dt, len(data)).tobytes() == data
t2 = time.perf_counter()
print(f"{t1 - t0:.3f} {t2 - t1:.3f} {int(kernels.uses_library())} {int('numba' in sys.modules)}")
"""


def run_probe(cache_dir: str, jit: bool, *args: str) -> tuple[float, float, float, str]:
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    env.pop("ANSZ_NO_AOT", None)
    if jit:
        env["ANSZ_NO_AOT"] = "1"
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", PROBE, *args], env=env, check=True,
                         capture_output=True, text=True).stdout.split()
    how = ("library" if out[2] == "1" else "JIT") + (", numba loaded" if out[3] == "1" else "")
    return float(out[0]), float(out[1]), time.perf_counter() - t0, how


def kernels_table() -> None:
    with tempfile.TemporaryDirectory() as d:
        rows = [("library", min((run_probe(d, False) for _ in range(3)), key=lambda r: r[2])),
                ("JIT cold", run_probe(d, True)),
                ("JIT warm", min((run_probe(d, True) for _ in range(3)), key=lambda r: r[2])),
                ("JIT CLI", min((run_probe(d, True, "cli") for _ in range(3)),
                                key=lambda r: r[2]))]
    print(f"{'':<10}{'import s':>10}{'first chunks s':>16}{'process s':>12}  kernels")
    for name, r in rows:
        print(f"{name:<10}{r[0]:>10.3f}{r[1]:>16.3f}{r[2]:>12.3f}  {r[3]}")


def tiny_safetensors(path: str) -> None:
    """An 8 KB safetensors file: two bf16 tensors of 2048 values."""
    import numpy as np

    rng = np.random.default_rng(0)
    data = (rng.standard_normal(4096).astype(np.float32).view(np.uint32) >> 16).astype("<u2")
    header = ('{"a":{"dtype":"BF16","shape":[2048],"data_offsets":[0,4096]},'
              '"b":{"dtype":"BF16","shape":[2048],"data_offsets":[4096,8192]}}').encode()
    header += b" " * (-len(header) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(header)) + header + data.tobytes())


def command_table(repeat: int) -> None:
    ansz = shutil.which("ansz")
    if ansz is None:
        sys.exit("the ansz command is not on PATH (pip install -e .)")
    with tempfile.TemporaryDirectory() as d:
        src = os.path.join(d, "tiny.safetensors")
        tiny_safetensors(src)
        subprocess.run([ansz, "compress", "-q", "-f", src], check=True)
        commands = {"--help": [ansz, "--help"],
                    "compress -c": [ansz, "compress", "-c", src],
                    "decompress -c": [ansz, "decompress", "-c", src + ".ansz"]}
        env_jit = dict(os.environ, ANSZ_NO_AOT="1")
        env_lib = {k: v for k, v in os.environ.items() if k != "ANSZ_NO_AOT"}
        subprocess.run(commands["compress -c"], env=env_jit, check=True,
                       stdout=subprocess.DEVNULL)  # warms the JIT cache
        times: dict = {(c, m): [] for c in commands for m in ("library", "JIT")}
        for _ in range(repeat):
            for c, argv in commands.items():
                for mode, env in (("library", env_lib), ("JIT", env_jit)):
                    t0 = time.perf_counter()
                    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL)
                    times[c, mode].append(time.perf_counter() - t0)
    print(f"\n{'ansz ... (8 KB file)':<22}{'library median/min s':>22}"
          f"{'JIT warm median/min s':>24}")
    for c in commands:
        cells = [f"{statistics.median(times[c, m]):.3f} / {min(times[c, m]):.3f}"
                 for m in ("library", "JIT")]
        print(f"{c:<22}{cells[0]:>22}{cells[1]:>24}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=15)
    opts = ap.parse_args()
    kernels_table()
    command_table(opts.repeat)


if __name__ == "__main__":
    main()
