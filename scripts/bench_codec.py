#!/usr/bin/env python3
"""Single-core speed of the coding-pair rANS core, beside zstd-3 on the same bytes, in one run.

Usage: python scripts/bench_codec.py [--elements N] [--repeat R] [--dtype BF16]

Data: Gaussian-like weights (sigma 0.02, the scale of trained transformer weights) cast to
the dtype. Speeds are MB/s of original (uncompressed) bytes, the best of R runs, and as a
multiple of zstd-3 from the same run. Stages:
  split      elements -> (codes, raw)
  rans-enc   histogram + normalize + rANS encode of the codes
  rans-dec   rANS decode of the codes
  join       (codes, raw) -> elements
  encode     split + rans-enc (what compressing a chunk costs, minus framing)
  decode     rans-dec + join (what decompressing a chunk costs, minus framing)
"""

from __future__ import annotations

import argparse
import time

import ml_dtypes
import numpy as np
import zstandard

from ansz import rans
from ansz.dtypes import PAIR_LAYOUTS
from ansz.pairs import join_pairs, split_pairs

DTYPES = {"BF16": ml_dtypes.bfloat16, "F16": np.float16, "F32": np.float32,
          "F8_E4M3": ml_dtypes.float8_e4m3fn}


def best_time(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--elements", type=int, default=4_000_000)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--dtype", default="BF16", choices=sorted(DTYPES))
    args = ap.parse_args()

    rng = np.random.default_rng(0)
    x = (rng.standard_normal(args.elements) * 0.02)
    if args.dtype == "F8_E4M3":
        x = x / np.abs(x).max() * 448
    data = x.astype(DTYPES[args.dtype]).tobytes()
    layout = PAIR_LAYOUTS[args.dtype]
    nbytes = len(data)

    codes, raw = split_pairs(data, layout)
    counts = rans.byte_histogram(codes)
    freq = rans.normalize_counts(counts)
    words = rans.encode_symbols(codes, freq)
    out_codes = np.empty(codes.size, np.uint8)
    out = np.empty(nbytes, np.uint8)
    rans.decode_symbols(words, codes.size, freq, out_codes)
    join_pairs(out_codes, raw, layout, out)
    assert out.tobytes() == data, "round trip failed"

    def rans_enc():
        f = rans.normalize_counts(rans.byte_histogram(codes))
        rans.encode_symbols(codes, f)

    def rans_dec():
        rans.decode_symbols(words, codes.size, freq, out_codes)

    def join():
        join_pairs(out_codes, raw, layout, out)

    cz = zstandard.ZstdCompressor(level=3)
    dz = zstandard.ZstdDecompressor()
    zblob = cz.compress(data)
    stages = {
        "split": lambda: split_pairs(data, layout),
        "rans-enc": rans_enc,
        "rans-dec": rans_dec,
        "join": join,
        "encode": lambda: (split_pairs(data, layout), rans_enc()),
        "decode": lambda: (rans_dec(), join()),
        "zstd-3 compress": lambda: cz.compress(data),
        "zstd-3 decompress": lambda: dz.decompress(zblob),
    }
    secs = {k: best_time(fn, args.repeat) for k, fn in stages.items()}
    mbs = {k: nbytes / s / 1e6 for k, s in secs.items()}

    H = -(counts[counts > 0] / codes.size * np.log2(counts[counts > 0] / codes.size)).sum()
    coded_bits = words.size * 16 + 2 + 2 * int(np.count_nonzero(freq)) * 8
    print(f"data: {args.elements:,} {args.dtype} elements ({nbytes / 1e6:.1f} MB), "
          f"code entropy {H:.4f} bits, coded {coded_bits / codes.size:.4f} bits "
          f"(+{(coded_bits / codes.size / H - 1) * 100:.3f}%), M = 2^{rans.SCALE_BITS}")
    total = (coded_bits / 8 + raw.size) / nbytes
    print(f"ratio (compressed/original): ansz core {total:.4f}, zstd-3 {len(zblob) / nbytes:.4f}")
    print(f"{'stage':<20}{'MB/s':>10}{'x zstd-3':>10}")
    for k in stages:
        ref = mbs["zstd-3 decompress"] if k in ("rans-dec", "join", "decode") else mbs["zstd-3 compress"]
        print(f"{k:<20}{mbs[k]:>10.0f}{mbs[k] / ref:>10.2f}")


if __name__ == "__main__":
    main()
