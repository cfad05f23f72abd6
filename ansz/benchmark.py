"""Round-trip benchmark in memory: what ``ansz bench`` measures (like ``zstd -b``).

:func:`bench_file` compresses a file's bytes with each ansz level and with zstd, decompresses
them, checks the bytes come back, and times both directions in the same run, so the speeds
can be compared on a shared, noisy machine. :func:`sample_files` are the small files of real
weights shipped in ``ansz/data`` (see its README) for a first run without a model at hand.
"""

from __future__ import annotations

import io
import os
import time
from dataclasses import dataclass
from typing import Callable

from . import api
from ._pool import resolve_threads
from .errors import AnszError
from .options import DEFAULT_LEVEL, FAST_LEVEL, check_level

#: The sample weights in ``ansz/data``: one file of each kind of dtype ansz codes differently.
SAMPLE_FILES = ("sample-bf16.safetensors", "sample-f32.safetensors", "sample-fp8.safetensors")

#: zstd's level in the comparison (the zstd command's default).
ZSTD_LEVEL = 3


@dataclass
class BenchResult:
    """One codec on one input: sizes and the fastest of its timed runs."""

    name: str  #: the input's name
    codec: str  #: "ansz" or "zstd"
    level: int
    original_size: int
    compressed_size: int
    compress_seconds: float  #: the fastest compression of the whole input
    decompress_seconds: float  #: the fastest decompression
    runs: int  #: timed runs of each direction
    threads: int  #: worker threads of both codecs

    @property
    def ratio(self) -> float | None:
        return self.compressed_size / self.original_size if self.original_size else None

    @property
    def compress_mbps(self) -> float:
        """Original megabytes (10^6 bytes) per second."""
        return self.original_size / 1e6 / self.compress_seconds if self.compress_seconds else 0.0

    @property
    def decompress_mbps(self) -> float:
        return self.original_size / 1e6 / self.decompress_seconds if self.decompress_seconds else 0.0


def sample_files() -> list[str]:
    """Paths of the shipped sample weights; AnszError if the installation lacks them."""
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
    paths = [os.path.join(here, name) for name in SAMPLE_FILES]
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise AnszError(f"the sample weights are missing from this installation ({missing[0]}); "
                        "give files to benchmark")
    return paths


def bench_file(path, *, levels: tuple[int, ...] = (DEFAULT_LEVEL, FAST_LEVEL), threads: int | None = None,
               min_seconds: float = 0.5, max_runs: int = 100,
               progress: Callable[[str], None] | None = None) -> list[BenchResult]:
    """Benchmark the bytes of ``path`` in memory: one result per ansz level (in the order
    given) and one for zstd at :data:`ZSTD_LEVEL`.

    Each codec compresses and decompresses the data at least once and then again until
    ``min_seconds`` have passed in that direction (at most ``max_runs`` times); the fastest
    run is reported. Every decompression is checked against the original bytes: a mismatch
    raises AnszError (it would be a bug). ``threads`` as for ``compress_file``; zstd runs
    with the same number of worker threads. ``progress`` gets a line per codec.
    """
    import zstandard

    levels = tuple(check_level(lv) for lv in levels)
    nthreads = resolve_threads(threads)
    path = os.fspath(path)
    with open(path, "rb") as fh:
        data = fh.read()
    name = os.path.basename(path)
    results = []

    def timed(fn: Callable[[], bytes]) -> tuple[bytes, float, int]:
        best, runs, spent = float("inf"), 0, 0.0
        out = b""
        while runs < 1 or (spent < min_seconds and runs < max_runs):
            t = time.perf_counter()
            out = fn()
            dt = time.perf_counter() - t
            best, runs, spent = min(best, dt), runs + 1, spent + dt
        return out, best, runs

    def check(back: bytes, what: str) -> None:
        if back != data:
            raise AnszError(f"{name}: {what} did not give back the original bytes")

    for level in levels:
        def compress(level=level) -> bytes:
            out = io.BytesIO()
            api.compress_stream(io.BytesIO(data), out, threads=nthreads, level=level)
            return out.getvalue()

        packed, ct, cruns = timed(compress)

        def decompress() -> bytes:
            out = io.BytesIO()
            api.decompress_stream(io.BytesIO(packed), out, threads=nthreads)
            return out.getvalue()

        back, dt, druns = timed(decompress)
        check(back, f"ansz level {level}")
        results.append(BenchResult(name, "ansz", level, len(data), len(packed), ct, dt,
                                   min(cruns, druns), nthreads))
        if progress is not None:
            progress(f"{name}: ansz level {level} done")
    zc = zstandard.ZstdCompressor(level=ZSTD_LEVEL, threads=nthreads if nthreads > 1 else 0)
    zd = zstandard.ZstdDecompressor()
    frame, ct, cruns = timed(lambda: zc.compress(data))
    back, dt, druns = timed(lambda: zd.decompress(frame, max_output_size=len(data)))
    check(back, f"zstd -{ZSTD_LEVEL}")
    results.append(BenchResult(name, "zstd", ZSTD_LEVEL, len(data), len(frame), ct, dt,
                               min(cruns, druns), nthreads))
    return results
