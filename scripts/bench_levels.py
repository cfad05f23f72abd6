#!/usr/bin/env python3
"""Level 1 (``ansz compress --fast``) against level 2 (the default) and zstd-3, in one run.

Usage: python scripts/bench_levels.py [--repeat R] [--tmp-dir DIR] FILE...

For each FILE (safetensors), measured in one process so every number shares the machine's
mood of the moment, each best of R runs with the variants interleaved:

* ``zstd-3``: ``zstandard`` level 3 on the whole file in memory, one thread (the baseline
  of issue 4's targets);
* for levels 2 and 1: the ratio; ``chunks T1`` / ``chunks T2``, ``chunks.decode_chunk`` over
  every chunk of the container in memory, on one thread and split over two plain threads
  (no reader, no writer: what the decoder itself can do); ``file T2``,
  ``ansz.compress_file`` / ``ansz.decompress_file`` with 2 threads between files in
  ``--tmp-dir`` (default /dev/shm, a tmpfs), which includes the page-cache copy and the
  whole pipeline.

Speeds are MB/s of original bytes (10^6), and also as a multiple of zstd-3 from this run.
"""

from __future__ import annotations

import argparse
import os
import threading
import time

import numpy as np
import zstandard

import ansz
from ansz import chunks, container


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def chunk_decoder(blob: bytes, threads: int):
    """A function decoding every chunk of the container ``blob`` on ``threads`` threads."""
    mv = memoryview(blob)
    cf = container.ContainerFile(lambda off, n: mv[off:off + n], len(blob))
    items = [cf.chunk(i) for i in range(len(cf.index.chunks))]
    bufs = [np.empty(rec.decoded_length, np.uint8) for rec, _ in items]

    def part(k: int) -> None:
        for (rec, payload), out in list(zip(items, bufs))[k::threads]:
            chunks.decode_chunk(payload, rec.dtype, rec.decoded_length, out,
                               fielded=rec.fielded)

    def run() -> None:
        workers = [threading.Thread(target=part, args=(k,)) for k in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()

    return run


def measure(path: str, repeat: int, tmp: str) -> None:
    data = open(path, "rb").read()
    mb = len(data) / 1e6
    name = os.path.basename(path)
    zc, zd = zstandard.ZstdCompressor(level=3), zstandard.ZstdDecompressor()
    frame = zc.compress(data)
    blobs, files = {}, {}
    for level in (2, 1):
        files[level] = os.path.join(tmp, f"{name}.level{level}.ansz")
        ansz.compress_file(path, files[level], level=level, overwrite=True)
        with open(files[level], "rb") as f:
            blobs[level] = f.read()
    out = os.path.join(tmp, f"{name}.out")
    runs = {("zstd-3", "comp"): lambda: zc.compress(data),
            ("zstd-3", "decomp"): lambda: zd.decompress(frame)}
    for level in (2, 1):
        runs[level, "chunks T1"] = chunk_decoder(blobs[level], 1)
        runs[level, "chunks T2"] = chunk_decoder(blobs[level], 2)
        runs[level, "file T2 comp"] = (lambda lv=level: ansz.compress_file(
            path, files[lv], level=lv, threads=2, overwrite=True))
        runs[level, "file T2 decomp"] = (lambda lv=level: ansz.decompress_file(
            files[lv], out, threads=2, overwrite=True))
    best = {k: float("inf") for k in runs}
    for _ in range(repeat):  # interleaved: each round runs every variant once
        for k, fn in runs.items():
            best[k] = min(best[k], timed(fn))
    with open(out, "rb") as f:
        assert f.read() == data, "round trip mismatch"
    for p in list(files.values()) + [out]:
        os.unlink(p)
    zc_mbs, zd_mbs = mb / best["zstd-3", "comp"], mb / best["zstd-3", "decomp"]
    print(f"\n{name} ({mb:.1f} MB): zstd-3 ratio {len(frame) / len(data):.4f}, "
          f"comp {zc_mbs:.0f} MB/s, decomp {zd_mbs:.0f} MB/s")
    print("| level | ratio | chunks T1 | chunks T2 | file T2 comp | file T2 decomp |")
    print("|---|---:|---:|---:|---:|---:|")
    for level in (2, 1):
        cells = []
        for what, base in (("chunks T1", zd_mbs), ("chunks T2", zd_mbs),
                           ("file T2 comp", zc_mbs), ("file T2 decomp", zd_mbs)):
            v = mb / best[level, what]
            cells.append(f"{v:.0f} ({v / base:.2f}×)")
        print(f"| {level} | {len(blobs[level]) / len(data):.4f} | " + " | ".join(cells) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="+", help="safetensors files")
    ap.add_argument("--repeat", type=int, default=5, help="rounds (best kept; default 5)")
    ap.add_argument("--tmp-dir", default="/dev/shm" if os.path.isdir("/dev/shm") else None,
                    help="where the containers and outputs go (default /dev/shm)")
    args = ap.parse_args()
    tmp = args.tmp_dir or os.environ.get("TMPDIR", "/tmp")
    for path in args.files:
        measure(path, args.repeat, tmp)


if __name__ == "__main__":
    main()
