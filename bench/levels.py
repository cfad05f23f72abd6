"""Level 1 (``ansz compress --fast``) against level 2 (the default) and zstd-3, in one run.

For each file (safetensors; corpus names or paths, default minilm-bf16 and mpnet-bf16), the
variants interleaved:

* ``zstd-3``: ``zstandard`` level 3 on the whole file in memory, one thread: the reference;
* per level: the container's ratio; ``chunks T1`` / ``chunks T2``: ``ansz.chunks.decode_chunk``
  over the file's chunks in memory, on one thread and split over two (no container, no
  reader, no writer: what the decoder alone can do; the chunks are each tensor cut into
  1 MiB pieces, coded by ``encode_chunk`` as the level codes them); ``file T2``:
  ``ansz.compress_file`` / ``ansz.decompress_file`` with two threads between files on
  tmpfs, the whole pipeline and the page-cache copy included.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from . import harness as h
from .harness import Case, Table

TITLE = "Levels: --fast against the default"
DESCRIPTION = "level 1 (--fast) against level 2 and zstd-3: decoder alone and file to file"
RUNS = 5
WARMUP = 1
CHUNK = 1 << 20


def add_arguments(p) -> None:
    p.add_argument("files", nargs="*", default=["minilm-bf16", "mpnet-bf16"],
                   help="corpus names or safetensors paths (default minilm-bf16 mpnet-bf16)")


def space_needed(args) -> int:
    return int(1.2e9)


def coded_chunks(path: Path, level: int) -> list[tuple[bytes, str, int, bool]]:
    """(payload, dtype, decoded length, fielded) of every tensor's 1 MiB pieces."""
    from ansz import chunks, dtypes

    data = np.memmap(path, dtype=np.uint8, mode="r")
    out = []
    for t in h.safetensors_tensors(path):
        code = dtypes.dtype_code_for(t.dtype)
        d = dtypes.DTYPE_CODES[code]
        width = d.width
        step = max(width, CHUNK // width * width)
        for a in range(t.start, t.end, step):
            piece = bytes(data[a:min(a + step, t.end)])
            if len(piece) % width:
                d, width = dtypes.DTYPE_CODES[dtypes.BYTES], 1
            payload = chunks.encode_chunk(piece, d.name, fielded=d.fielded, fast=level == 1)
            out.append((payload, d.name, len(piece), d.fielded))
    return out


def chunk_decoder(items: list, threads: int):
    """A function decoding every chunk of ``items`` on ``threads`` plain threads."""
    from ansz import chunks

    bufs = [np.empty(n, np.uint8) for _, _, n, _ in items]

    def part(k: int) -> None:
        for (payload, dtype, n, fielded), out in list(zip(items, bufs))[k::threads]:
            chunks.decode_chunk(payload, dtype, n, out, fielded=fielded)

    def run() -> None:
        workers = [threading.Thread(target=part, args=(k,)) for k in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()

    return run, bufs


def measure(session: h.Session, name: str, path: Path) -> Table:
    import zstandard

    import ansz

    data = path.read_bytes()
    n = len(data)
    zc, zd = zstandard.ZstdCompressor(level=3), zstandard.ZstdDecompressor()
    frame = zc.compress(data)
    out = session.path(f"{name}.out")
    tensor_bytes = b"".join(data[t.start:t.end] for t in h.safetensors_tensors(path))
    cases = [Case("zstd-3 c", lambda: zc.compress(data)),
             Case("zstd-3 d", lambda: zd.decompress(frame))]
    ratio = {}
    for level in (2, 1):
        packed = session.path(f"{name}.l{level}.ansz")
        ratio[level] = ansz.compress_file(path, packed, level=level, threads=2,
                                          overwrite=True).ratio
        items = coded_chunks(path, level)
        run1, bufs = chunk_decoder(items, 1)
        run1()
        if b"".join(b.tobytes() for b in bufs) != tensor_bytes:
            raise h.BenchError(f"{name}: level {level} chunks do not decode to the tensors")
        cases += [Case(f"L{level} chunks T1", run1),
                  Case(f"L{level} chunks T2", chunk_decoder(items, 2)[0]),
                  Case(f"L{level} file T2 c", lambda lv=level, p=packed: ansz.compress_file(
                      path, p, level=lv, threads=2, overwrite=True)),
                  Case(f"L{level} file T2 d", lambda p=packed: ansz.decompress_file(
                      p, out, threads=2, overwrite=True))]
        session.progress(f"{name}: level {level} ready ({len(items)} chunks)")
    rounds = session.interleave(cases)
    if h.sha256_file(out) != h.sha256_file(path):
        raise h.BenchError(f"{name}: decompress_file differs from the original")
    t = Table(f"{name} ({n / 1e6:.1f} MB): zstd-3 ratio {len(frame) / n:.4f}, compress "
              f"{rounds['zstd-3 c'].mbps(n):.0f} MB/s, decompress "
              f"{rounds['zstd-3 d'].mbps(n):.0f} MB/s",
              ["level", "ratio", "chunks T1", "chunks T2", "file T2 compress",
               "file T2 decompress"])
    for level in (2, 1):
        cells = []
        for what, ref in (("chunks T1", "zstd-3 d"), ("chunks T2", "zstd-3 d"),
                          ("file T2 c", "zstd-3 c"), ("file T2 d", "zstd-3 d")):
            case = f"L{level} {what}"
            cells.append(f"{rounds[case].mbps(n):.0f} "
                         f"({rounds.speedup(case, ref).median:.2f}×)")
        t.add(f"{level}{' (--fast)' if level == 1 else ' (default)'}", f"{ratio[level]:.4f}",
              *cells)
    t.notes = ["MB/s of original bytes (median); in brackets the median per-round multiple of "
               "zstd-3 in memory, one thread (decompress for the decoding columns)."]
    return t


def run(session: h.Session, args) -> list[Table]:
    tables = []
    for spec in args.files:
        tables.append(measure(session, *h.resolve_input(spec, session.models)))
    return tables
