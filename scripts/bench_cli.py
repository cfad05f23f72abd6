#!/usr/bin/env python3
"""The ansz command against the zstd command on a checkpoint-sized bf16 file (issue 4).

Usage: python scripts/bench_cli.py [--model models/mpnet-bf16.safetensors] [--gb 2]
                                   [--repeat 3] [--dir /dev/shm] [--ansz ansz]

The corpus files are 23-438 MB, where the ansz command's ~1 s of start-up (Python, numpy,
numba) dominates. Real checkpoints are 1-15 GB, so this builds one: the bf16 tensors of
``--model`` repeated under new names until the file holds about ``--gb`` GB (real weights,
no synthetic distribution; the copies sit hundreds of MB apart, beyond zstd-3's window).
In ``--dir`` (default /dev/shm, a tmpfs, so no disk enters) it then times, as
subprocesses, with the variants interleaved and the best of ``--repeat`` kept:

* ``zstd -3 -T1`` and ``zstd -3 -T2`` compress, ``zstd -d`` decompress (single-threaded:
  zstd has no parallel decoder);
* ``ansz compress -T 2`` (level 2, the default) and ``ansz compress --fast -T 2``,
  ``ansz decompress -T 2`` of each;
* every decompressor once more with its output to /dev/null (``-c``), which leaves out
  filling the page cache with the decompressed file;
* two floors: ``dd`` writing a new file of the original's size (bs=4M, reading the
  original from the page cache): the cost of filling the page cache with that file from
  one thread, as both zstd and ansz write their output; and the ``ansz`` command's start-up: ``ansz decompress`` of a container built from
  tensors of the same model (~4 MB).

Every output file is compared with the original (cmp). Prints a table: ratio, MB/s
(original bytes, 10^6) and the multiple of ``zstd -3 -T1`` from the same run, which issue
4's targets are stated against (decompress >= 3x, compress >= 2x, 2 cores); then the
floors, and the multiple of ``zstd -d`` that a decompressor taking no time at all beyond
``dd``'s write would reach (writes to one file are serialized by the kernel).
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import subprocess
import time


def build_model(src: str, dst: str, target_bytes: int) -> int:
    """Write ``dst``: the BF16 tensors of the safetensors file ``src`` repeated under new
    names until about ``target_bytes``; returns its size. A target below the tensors' total
    takes the tensors no larger than it, in order, until it is reached."""
    with open(src, "rb") as f:
        (hlen,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(hlen))
        base = 8 + hlen
        tensors = []
        for name, meta in header.items():
            if name != "__metadata__" and meta["dtype"] == "BF16":
                a, b = meta["data_offsets"]
                f.seek(base + a)
                tensors.append((name, meta["shape"], f.read(b - a)))
    one = sum(len(t[2]) for t in tensors)
    if one > target_bytes:  # a small file
        keep, total = [], 0
        for t in tensors:
            if total < target_bytes and len(t[2]) <= target_bytes:
                keep.append(t)
                total += len(t[2])
        tensors, one = keep, total
    copies = max(1, round(target_bytes / one))
    entries, offset = {}, 0
    for k in range(copies):
        for name, shape, data in tensors:
            entries[f"copy{k}.{name}"] = {"dtype": "BF16", "shape": shape,
                                          "data_offsets": [offset, offset + len(data)]}
            offset += len(data)
    text = json.dumps(entries, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(dst, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        for _ in range(copies):
            for _, _, data in tensors:
                f.write(data)
    return os.path.getsize(dst)


def timed(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def same(a: str, b: str) -> bool:
    return subprocess.run(["cmp", "-s", a, b]).returncode == 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="models/mpnet-bf16.safetensors")
    ap.add_argument("--gb", type=float, default=2.0, help="size of the built file (GB)")
    ap.add_argument("--repeat", type=int, default=3, help="rounds, best kept (default 3)")
    ap.add_argument("--dir", default="/dev/shm" if os.path.isdir("/dev/shm") else None)
    ap.add_argument("--ansz", default="ansz", help="the ansz command (default: on PATH)")
    args = ap.parse_args()
    work = args.dir or os.environ.get("TMPDIR", "/tmp")
    src = os.path.join(work, "bench_cli.safetensors")
    size = build_model(args.model, src, int(args.gb * 1e9))
    out = src + ".out"
    z, a2, a1 = src + ".zst", src + ".l2.ansz", src + ".l1.ansz"
    tiny = os.path.join(work, "bench_cli_tiny.safetensors")
    tiny_size = build_model(args.model, tiny, 4 * 10**6)
    subprocess.run([args.ansz, "compress", "-q", "-f", tiny, "-o", tiny + ".ansz"], check=True)
    runs = {  # each compress before the decompress that reads its output
        ("zstd -3 -T2", "comp"): ["zstd", "-3", "-T2", "-q", "-f", src, "-o", z],
        ("zstd -3 -T1", "comp"): ["zstd", "-3", "-T1", "-q", "-f", src, "-o", z],
        ("zstd -3 -T1", "decomp"): ["zstd", "-d", "-q", "-f", z, "-o", out],
        ("ansz -T 2", "comp"): [args.ansz, "compress", "-T", "2", "-q", "-f", src, "-o", a2],
        ("ansz -T 2", "decomp"): [args.ansz, "decompress", "-T", "2", "-q", "-f", a2, "-o", out],
        ("ansz --fast -T 2", "comp"): [args.ansz, "compress", "--fast", "-T", "2", "-q", "-f",
                                       src, "-o", a1],
        ("ansz --fast -T 2", "decomp"): [args.ansz, "decompress", "-T", "2", "-q", "-f", a1,
                                         "-o", out],
        # stdout goes to /dev/null (see timed)
        ("zstd -3 -T1", "null"): ["zstd", "-d", "-q", "-c", z],
        ("ansz -T 2", "null"): [args.ansz, "decompress", "-T", "2", "-q", "-c", a2],
        ("ansz --fast -T 2", "null"): [args.ansz, "decompress", "-T", "2", "-q", "-c", a1],
        ("dd", "write"): ["dd", f"if={src}", f"of={out}", "bs=4M", "status=none"],
        ("ansz", "start-up"): [args.ansz, "decompress", "-q", "-f", tiny + ".ansz",
                               "-o", tiny + ".out"],
    }
    best: dict = {}
    ratios: dict = {}
    try:
        for _ in range(args.repeat):
            for key, cmd in runs.items():
                best[key] = min(best.get(key, float("inf")), timed(cmd))
                if key[1] == "comp":
                    ratios[key[0]] = os.path.getsize(cmd[-1]) / size
                elif key[1] in ("decomp", "write") and not same(out, src):
                    raise SystemExit(f"{key[0]}: round trip mismatch")
                if os.path.exists(out):  # every writer starts from no file, as zstd -f does
                    os.unlink(out)
    finally:
        for p in (src, out, z, a2, a1, tiny, tiny + ".ansz", tiny + ".out"):
            if os.path.exists(p):
                os.unlink(p)
    mb = size / 1e6
    zc, zd = mb / best["zstd -3 -T1", "comp"], mb / best["zstd -3 -T1", "decomp"]
    print(f"{os.path.basename(args.model)} x{args.gb:g} GB: {size / 1e9:.2f} GB bf16, "
          f"best of {args.repeat}, in {work}")
    zn = mb / best["zstd -3 -T1", "null"]
    print("| command | ratio | comp MB/s | decomp MB/s | to /dev/null MB/s | comp ×zstd-3 "
          "| decomp ×zstd-3 | to /dev/null ×zstd-3 |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for tool, ratio in ratios.items():
        c = mb / best[tool, "comp"]
        cells = [f"{ratio:.4f}", f"{c:.0f}"]
        multiples = [f"{c / zc:.2f}"]
        for kind, ref in (("decomp", zd), ("null", zn)):
            t = best.get((tool, kind))
            cells.append(f"{mb / t:.0f}" if t else "—")
            multiples.append(f"{mb / t / ref:.2f}" if t else "—")
        print(f"| {tool} | {' | '.join(cells + multiples)} |")
    dd, start = best["dd", "write"], best["ansz", "start-up"]
    print(f"\nFloors: dd writes the {size / 1e9:.2f} GB file in {dd:.2f} s ({mb / dd:.0f} MB/s), "
          f"so a decompressor that wrote it in no more time would reach "
          f"{best['zstd -3 -T1', 'decomp'] / dd:.2f}x zstd -d; `ansz decompress` of a "
          f"{tiny_size / 1e6:.1f} MB file takes {start:.2f} s (start-up).")


if __name__ == "__main__":
    main()
