#!/usr/bin/env python3
"""Peak memory and speed of the ansz CLI on a large generated model, per chunk size.

Usage: python scripts/bench_memory.py [--gb 1.0] [--chunk-sizes 1M,4M] [--threads 2] [--dir D]

Writes a safetensors file of bf16 N(0, 0.02) weights (24 tensors) of about --gb GB into --dir
(default: /dev/shm if present, so disk speed does not enter), then runs `ansz compress` and
`ansz decompress` on it as subprocesses for each chunk size, and reports the ratio, wall time
(which includes ~1 s of start-up), MB/s, and the peak resident set size of the child
(GNU time's %M; needs /usr/bin/time). The round trip is checked with cmp. Issue 4's budget: < 300 MiB with 2 threads.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time

import ml_dtypes
import numpy as np
from safetensors.numpy import save_file


def run(cmd: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of a child process, via GNU time's %M.

    (ru_maxrss from wait4 is no good here: a forked child starts with its parent's high-water
    mark, and this parent has held the whole model.)"""
    t0 = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-f", "%M", *cmd], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}: {proc.stderr.strip()}")
    return wall, int(proc.stderr.strip().splitlines()[-1]) / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gb", type=float, default=1.0)
    ap.add_argument("--chunk-sizes", default="1M,2M,4M,8M")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dir", default="/dev/shm" if os.path.isdir("/dev/shm") else None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as d:
        src = os.path.join(d, "model.safetensors")
        n_tensors = 24
        per = int(args.gb * 1e9 / 2 / n_tensors)
        rng = np.random.default_rng(0)
        tensors = {f"layer.{i}.weight": (rng.standard_normal(per, np.float32) * 0.02)
                   .astype(ml_dtypes.bfloat16) for i in range(n_tensors)}
        save_file(tensors, src)
        del tensors
        size = os.path.getsize(src)
        print(f"input: {size / 1e9:.2f} GB bf16, -T {args.threads}")
        print(f"{'chunk':>6} {'ratio':>7} {'comp s':>7} {'MB/s':>6} {'RSS MiB':>8} "
              f"{'decomp s':>9} {'MB/s':>6} {'RSS MiB':>8}")
        for cs in args.chunk_sizes.split(","):
            packed, back = src + ".ansz", src + ".out"
            cw, cr = run(["ansz", "compress", "-q", "-f", "-T", str(args.threads),
                          "--chunk-size", cs, "-o", packed, src])
            dw, dr = run(["ansz", "decompress", "-q", "-f", "-T", str(args.threads),
                          "-o", back, packed])
            subprocess.run(["cmp", src, back], check=True)
            ratio = os.path.getsize(packed) / size
            print(f"{cs:>6} {ratio:>7.4f} {cw:>7.2f} {size / cw / 1e6:>6.0f} {cr:>8.0f} "
                  f"{dw:>9.2f} {size / dw / 1e6:>6.0f} {dr:>8.0f}")
            os.unlink(packed)
            os.unlink(back)


if __name__ == "__main__":
    main()
