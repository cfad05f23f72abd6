"""Single-core speed of each stage of the coding-pair rANS core, beside zstd-3 on the same
bytes, in one run.

Data: Gaussian-like weights (sigma 0.02, the scale of trained transformer weights) cast to
``--dtype``. Stages (MB/s of original bytes; decode stages compared with zstd-3 decompress,
encode stages with zstd-3 compress, per round):

* ``split``: elements -> (codes, raw); ``join``: back;
* ``rans-enc``: histogram + normalize + rANS encode of the codes; ``rans-dec``: decode;
* ``encode`` = split + rans-enc, ``decode`` = rans-dec + join: what a chunk costs, minus framing.
"""

from __future__ import annotations

import numpy as np

from . import harness as h
from .harness import Case, Table

TITLE = "Codec core, one core"
DESCRIPTION = "single-core speed of each codec stage (split, rANS, join) beside zstd-3"
RUNS = 7
WARMUP = 1

DECODE_STAGES = ("rans-dec", "join", "decode")


def add_arguments(p) -> None:
    p.add_argument("--elements", type=int, default=4_000_000, help="elements (default 4e6)")
    p.add_argument("--dtype", default="BF16", choices=("BF16", "F16", "F32", "F8_E4M3"))


def sample(dtype: str, n: int) -> bytes:
    import ml_dtypes

    x = np.random.default_rng(0).standard_normal(n) * 0.02
    if dtype == "F8_E4M3":
        x = x / np.abs(x).max() * 448
    np_dtype = {"BF16": ml_dtypes.bfloat16, "F16": np.float16, "F32": np.float32,
                "F8_E4M3": ml_dtypes.float8_e4m3fn}[dtype]
    return x.astype(np_dtype).tobytes()


def run(session: h.Session, args) -> list[Table]:
    import zstandard

    from ansz import rans
    from ansz.dtypes import PAIR_LAYOUTS
    from ansz.pairs import join_pairs, split_pairs

    data = sample(args.dtype, args.elements)
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
    if out.tobytes() != data:
        raise h.BenchError("the codec core did not round-trip")

    def rans_enc():
        rans.encode_symbols(codes, rans.normalize_counts(rans.byte_histogram(codes)))

    def rans_dec():
        rans.decode_symbols(words, codes.size, freq, out_codes)

    def join():
        join_pairs(out_codes, raw, layout, out)

    cz, dz = zstandard.ZstdCompressor(level=3), zstandard.ZstdDecompressor()
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
    rounds = session.interleave([Case(k, fn) for k, fn in stages.items()])

    nz = counts[counts > 0] / codes.size
    entropy = float(-(nz * np.log2(nz)).sum())
    coded_bits = words.size * 16 + 2 + 2 * int(np.count_nonzero(freq)) * 8
    t = Table(f"Codec stages on {args.elements:,} Gaussian {args.dtype} elements "
              f"({nbytes / 1e6:.1f} MB), one core",
              ["stage", "MB/s", "min–max MB/s", "× zstd-3"])
    for k in stages:
        tm = rounds[k]
        ref = "zstd-3 decompress" if k in DECODE_STAGES else "zstd-3 compress"
        t.add(k, f"{tm.mbps(nbytes):.0f}",
              f"{nbytes / 1e6 / tm.max:.0f}–{nbytes / 1e6 / tm.min:.0f}",
              f"{rounds.speedup(k, ref).median:.2f}" if k != ref else "1.00")
    t.notes = [
        f"Code entropy {entropy:.4f} bits/element, coded {coded_bits / codes.size:.4f} bits "
        f"(+{(coded_bits / codes.size / entropy - 1) * 100:.3f}%, tables included), "
        f"M = 2^{rans.SCALE_BITS}.",
        f"Ratio (compressed / original): codec core {(coded_bits / 8 + raw.size) / nbytes:.4f}, "
        f"zstd-3 {len(zblob) / nbytes:.4f}.",
        "× zstd-3: decode stages against zstd-3 decompress, the others against zstd-3 "
        "compress; the median of the per-round ratios.",
    ]
    return [t]
