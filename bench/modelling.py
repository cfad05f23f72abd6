"""The ratio and speed of each modelling step of the default level, switched on one after
another.

Steps (each includes the ones above it):

* ``plain``: coding pairs with a fixed 8-bit code (dtype codes 7-10), u16 rANS tables, rANS
  only, an uncoded index record;
* ``varint``: rANS tables as varints (stream method 6 instead of 2);
* ``fielded``: float chunks choose an 8-12 bit code field (dtype codes 11-14);
* ``auto``: the coder per stream is the smallest of rANS, Huffman and QLC;
* ``zindex``: the index record zstd-coded (record type 3): everything on, the default.

The steps before ``zindex`` are today's writer with module state patched
(tests/golden/writer_patches.py, which the golden files' earlier writers use too); the
containers they write are valid, today's reader reads them. For each file:
``ansz.compress_file`` and ``ansz.decompress_file`` between files on tmpfs, ``--threads``
threads, the steps interleaved. Prints the ratio, compress and decompress MB/s, and decode
speed as a multiple of ``plain``'s (median of the per-round ratios).
"""

from __future__ import annotations

import contextlib
import sys

from . import harness as h
from .harness import Case, Table

TITLE = "Modelling steps"
DESCRIPTION = "ratio and speed of each modelling step (plain, varint, fielded, auto, zindex)"
RUNS = 3
WARMUP = 1
STEPS = ("plain", "varint", "fielded", "auto", "zindex")


def add_arguments(p) -> None:
    p.add_argument("files", nargs="*", default=["minilm-bf16", "minilm-f32"],
                   help="corpus names or paths (default minilm-bf16 minilm-f32)")
    p.add_argument("--threads", type=int, default=1, help="threads (default 1)")


def space_needed(args) -> int:
    return int(2e9)


def writer_patches():
    """tests/golden/writer_patches.py, imported from the repository's tests."""
    golden = str(h.REPO / "tests" / "golden")
    if golden not in sys.path:
        sys.path.insert(0, golden)
    import writer_patches

    return writer_patches


def step(name: str):
    """(context manager switching off the steps after ``name``, coder to pass)."""
    wp = writer_patches()
    k = STEPS.index(name)
    if k == len(STEPS) - 1:
        return contextlib.nullcontext(), "auto"
    patch = wp.patched_writer(u16_tables=k < STEPS.index("varint"),
                              plain_codes=k < STEPS.index("fielded"), raw_index=True)
    return patch, "rans" if k < STEPS.index("auto") else "auto"


def run(session: h.Session, args) -> list[Table]:
    import ansz

    t = Table(f"Modelling steps, threads={args.threads}",
              ["file", "step", "ratio", "compress MB/s", "decompress MB/s", "decode × plain"],
              align="llrrrr")
    out = session.path("modelling.out")
    for spec in args.files:
        name, p = h.resolve_input(spec, session.models)
        size = p.stat().st_size
        packed = {s: session.path(f"{name}.{s}.ansz") for s in STEPS}

        def compress(s: str) -> None:
            patch, coder = step(s)
            with patch:
                ansz.compress_file(p, packed[s], coder=coder, threads=args.threads,
                                   overwrite=True)

        cases = []
        for s in STEPS:
            compress(s)
            cases.append(Case(f"{s} c", lambda s=s: compress(s)))
            cases.append(Case(f"{s} d", lambda s=s: ansz.decompress_file(
                packed[s], out, threads=args.threads, overwrite=True)))
        rounds = session.interleave(cases)
        sha = h.sha256_file(p)
        for s in STEPS:
            ansz.decompress_file(packed[s], out, threads=args.threads, overwrite=True)
            if h.sha256_file(out) != sha:
                raise h.BenchError(f"{name}: step {s} does not round-trip")
        for s in STEPS:
            t.add(name, s, f"{packed[s].stat().st_size / size:.4f}",
                  f"{rounds[f'{s} c'].mbps(size):.0f}", f"{rounds[f'{s} d'].mbps(size):.0f}",
                  f"{rounds.speedup(f'{s} d', 'plain d').median:.2f}" if s != "plain"
                  else "1.00")
            packed[s].unlink()
    out.unlink(missing_ok=True)
    t.notes = ["MB/s of original bytes, median of the runs; decode × plain is the median of the "
               "per-round speed ratios to the `plain` step's decompression."]
    return [t]
