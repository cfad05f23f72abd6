#!/usr/bin/env python3
"""The three coders side by side on the same code stream: size (tables included) and speed.

Usage: python scripts/bench_coders.py [--elements N] [--repeat R] [--file model.safetensors]

Code stream: the exponent bytes of Gaussian N(0, 0.02) weights cast to bf16 (default), or of
every BF16 tensor of --file. Sizes are ansz.stats.coder_costs (bits per symbol, tables
included); speeds are MB/s of symbols, single core, best of R runs, in one process.
"""

from __future__ import annotations

import argparse
import time

import ml_dtypes
import numpy as np

from ansz import huffman, qlc, rans
from ansz.stats import coder_costs


def best(fn, repeat: int) -> float:
    t = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        t = min(t, time.perf_counter() - t0)
    return t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--elements", type=int, default=4 << 20)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--file")
    args = ap.parse_args()
    if args.file:
        from ansz.formats.safetensors import read_layout

        layout = read_layout(args.file)
        mm = np.memmap(args.file, dtype=np.uint8, mode="r")
        codes = np.concatenate([(np.frombuffer(mm[t.start:t.end], np.uint16) >> 7).astype(np.uint8)
                                for t in layout.tensors if t.dtype == "BF16"])
    else:
        x = np.random.default_rng(0).standard_normal(args.elements) * 0.02
        codes = (x.astype(ml_dtypes.bfloat16).view(np.uint16) >> 7).astype(np.uint8)
    n = codes.size
    counts = rans.byte_histogram(codes)
    costs = coder_costs(counts)

    freq = rans.normalize_counts(counts)
    words = rans.encode_symbols(codes, freq)
    htab = huffman.HuffmanTable.from_counts(counts)
    hbuf, _ = huffman.encode(codes, htab)
    qtab = qlc.QlcTable.from_counts(counts)
    qbuf, _ = qlc.encode(codes, qtab)
    out = np.empty(n, np.uint8)
    for dec in (lambda: rans.decode_symbols(words, n, freq, out),
                lambda: huffman.decode(hbuf, n, htab, out),
                lambda: qlc.decode(qbuf, n, qtab, out)):
        dec()
        assert np.array_equal(out, codes)
    rows = [
        ("entropy", costs["entropy"], None, None),
        ("rANS", costs["rans"], best(lambda: rans.encode_symbols(codes, freq), args.repeat),
         best(lambda: rans.decode_symbols(words, n, freq, out), args.repeat)),
        ("Huffman", costs["huffman"], best(lambda: huffman.encode(codes, htab), args.repeat),
         best(lambda: huffman.decode(hbuf, n, htab, out), args.repeat)),
        ("QLC", costs["qlc"], best(lambda: qlc.encode(codes, qtab), args.repeat),
         best(lambda: qlc.decode(qbuf, n, qtab, out), args.repeat)),
    ]
    src = args.file or f"{n:,} Gaussian bf16 exponents"
    print(f"code stream: {src} ({n:,} symbols, {int(np.count_nonzero(counts))} distinct)")
    print(f"{'coder':<10}{'bits/sym':>10}{'vs entropy':>12}{'enc MB/s':>10}{'dec MB/s':>10}")
    for name, bits, te, td in rows:
        fmt = (lambda t: f"{n / t / 1e6:>10.0f}" if t else f"{'-':>10}")
        print(f"{name:<10}{bits / n:>10.4f}{(bits / costs['entropy'] - 1) * 100:>11.2f}%"
              f"{fmt(te)}{fmt(td)}")


if __name__ == "__main__":
    main()
