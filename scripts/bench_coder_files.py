#!/usr/bin/env python3
"""Whole files under each --coder: container ratio and decode speed, in process.

Usage: python scripts/bench_coder_files.py [--threads T] [--repeat R] FILE...

For each FILE and each coder (auto, rans, huffman, qlc): ``ansz.compress_file`` into
/dev/shm, then ``ansz.decompress_file`` to /dev/shm R times, the coders interleaved (best
time kept). Prints the
container ratio, the saving on the file's fp8 (F8_E4M3/F8_E5M2) tensors alone (their
records' bytes, headers included, against their raw bytes) and decode MB/s of original bytes.
"""

from __future__ import annotations

import argparse
import os
import time

import ansz

CODERS = ("auto", "rans", "huffman", "qlc")
FP8 = {"F8_E4M3", "F8_E5M2"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="+")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    out = "/dev/shm/ansz-bench.out"
    packed = {c: f"/dev/shm/ansz-bench.{c}.ansz" for c in CODERS}
    print(f"{'file':28} {'coder':8} {'ratio':>7} {'fp8 saving':>10} {'decode MB/s':>11}")
    try:
        for path in args.files:
            name = os.path.basename(path)
            reports = {c: ansz.compress_file(path, packed[c], coder=c, threads=args.threads,
                                             overwrite=True) for c in CODERS}
            best = dict.fromkeys(CODERS, float("inf"))
            for _ in range(args.repeat):  # interleaved, so load from elsewhere hits all alike
                for c in CODERS:
                    t0 = time.perf_counter()
                    ansz.decompress_file(packed[c], out, threads=args.threads, overwrite=True)
                    best[c] = min(best[c], time.perf_counter() - t0)
            for c in CODERS:
                fp8 = [s for s in ansz.read_info(packed[c]).segments if s["dtype"] in FP8]
                raw = sum(s["nbytes"] for s in fp8)
                saving = (f"{1 - sum(s['compressed_size'] for s in fp8) / raw:10.2%}"
                          if raw else f"{'-':>10}")
                mbs = reports[c].original_size / best[c] / 1e6
                print(f"{name:28} {c:8} {reports[c].ratio:7.4f} {saving} {mbs:11.0f}",
                      flush=True)
    finally:
        for p in (out, *packed.values()):
            if os.path.exists(p):
                os.unlink(p)

if __name__ == "__main__":
    main()
