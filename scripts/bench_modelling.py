#!/usr/bin/env python3
"""The ratio and speed of each modelling step, switched on one after another.

Usage: python scripts/bench_modelling.py [--threads T] [--repeat R] FILE...

Steps (each includes the ones above it):

* ``plain``   coding pairs with a fixed 8-bit code (dtype codes 7-10), u16 rANS tables, rANS
              only: the format as it was before issue 8's modelling;
* ``varint``  rANS tables as varints (stream method 6 instead of 2);
* ``fielded`` float chunks choose a 8-12 bit code field (dtype codes 11-14);
* ``auto``    the coder per stream is the smallest of rANS, Huffman and QLC;
* ``zindex``  the index record zstd-coded (record type 3): everything on, the default.

For each FILE and step: ``ansz.compress_file`` into /dev/shm, timed, then
``ansz.decompress_file`` R times, the steps interleaved, best time kept. Earlier steps are
reached by switching the later ones off inside ansz (module attributes patched here, for
this measurement only); the files they write are valid containers the current decoder reads.
Prints ratio, compress and decompress MB/s, and decompress speed relative to ``plain``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time

import numpy as np

import ansz
from ansz import container, dtypes, streams

STEPS = ("plain", "varint", "fielded", "auto", "zindex")


@contextlib.contextmanager
def step(name: str):
    """Switch off the modelling steps after ``name`` while the block runs."""
    saved = (streams.RANS, streams.varint_table, dict(dtypes._CODE_OF), container.index_record)
    try:
        if STEPS.index(name) < STEPS.index("varint"):
            streams.RANS = streams.RANS_U16
            streams.varint_table = lambda f: np.asarray(f).astype("<u2").tobytes()
        if STEPS.index(name) < STEPS.index("fielded"):
            for code, d in dtypes.DTYPE_CODES.items():
                if not d.fielded and d.name in dtypes._CODE_OF:
                    dtypes._CODE_OF[d.name] = min(dtypes._CODE_OF[d.name], code)
        if STEPS.index(name) < STEPS.index("zindex"):
            container.index_record = lambda text, offset: (container.INDEX, text)
        yield "rans" if STEPS.index(name) < STEPS.index("auto") else "auto"
    finally:
        streams.RANS, streams.varint_table, container.index_record = saved[0], saved[1], saved[3]
        dtypes._CODE_OF.clear()
        dtypes._CODE_OF.update(saved[2])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="+")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    out = "/dev/shm/ansz-modelling.out"
    packed = {s: f"/dev/shm/ansz-modelling.{s}.ansz" for s in STEPS}
    print(f"{'file':22} {'step':8} {'ratio':>7} {'comp MB/s':>9} {'dec MB/s':>8} {'dec vs plain':>12}")
    try:
        for s in STEPS:  # warm up: load every kernel before timing anything
            with step(s) as coder:
                ansz.compress_file(args.files[0], packed[s], coder=coder, overwrite=True)
        for path in args.files:
            size = os.path.getsize(path)
            ratio, comp = {}, {}
            for s in STEPS:
                with step(s) as coder:
                    t = time.perf_counter()
                    rep = ansz.compress_file(path, packed[s], coder=coder, threads=args.threads,
                                             overwrite=True)
                    comp[s] = size / (time.perf_counter() - t) / 1e6
                ratio[s] = rep.ratio
            best = dict.fromkeys(STEPS, float("inf"))
            for _ in range(args.repeat):
                for s in STEPS:
                    t = time.perf_counter()
                    ansz.decompress_file(packed[s], out, threads=args.threads, overwrite=True)
                    best[s] = min(best[s], time.perf_counter() - t)
            with open(path, "rb") as f, open(out, "rb") as g:
                assert f.read() == g.read(), f"{path}: round trip differs"
            for s in STEPS:
                dec = size / best[s] / 1e6
                print(f"{os.path.basename(path):22} {s:8} {ratio[s]:7.4f} {comp[s]:9.0f} "
                      f"{dec:8.0f} {best['plain'] / best[s]:11.2f}x", flush=True)
    finally:
        for p in [out, *packed.values()]:
            with contextlib.suppress(FileNotFoundError):
                os.remove(p)


if __name__ == "__main__":
    main()
