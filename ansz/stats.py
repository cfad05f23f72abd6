"""How compressible a file is: ``ansz stats``.

:func:`file_stats` predicts what ``compress_file`` would write by running the real encoder
on a sample of the very chunks compression would code (spread over every segment: the
header, each tensor, the bytes between), and zstd level 3 on spread-out windows of the file;
a file no larger than the sample budget is coded whole, so its figures are exact. On a
container it reports the sizes actually stored. :func:`coder_costs` is the size each
entropy coder would give one histogram.
"""

from __future__ import annotations

import contextlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from . import container
from .errors import AnszError
from ._io import FileSource, open_regular
from ._pool import ordered_map, resolve_threads
from .chunks import encode_payload
from .dtypes import DTYPE_CODES, layout_for
from .formats.detect import detect, format_name
from .options import check_level, default_chunk_size
from .pairs import split_pairs
from .plan import PlannedSegment, file_chunks, plan_segments
from .streams import (PREFIX_CODERS, entropy_bits, prefix_stream_size, prefix_table,
                      rans_plan, varint_table)

#: Bytes of a file that :func:`file_stats` codes with the real encoder by default. A larger
#: file has a sample of its chunks coded: at least one per segment, otherwise in proportion
#: to the segment's size, spread evenly through it.
STATS_SAMPLE = 32 << 20

#: The least a segment has coded when its share of the sample is less than a chunk: the
#: middle MIN_WINDOW bytes of its middle chunk. Code tables cost ~0.05% of that.
MIN_WINDOW = 256 << 10

#: zstd's column: a file up to ZSTD_WHOLE bytes is compressed whole at level 3; a larger one
#: in ZSTD_WINDOWS windows of ZSTD_WINDOW bytes spread evenly through it (level 3 keeps a
#: 2 MiB history, so a 4 MiB window sees what the whole-file run would).
ZSTD_WHOLE = 64 << 20
ZSTD_WINDOW = 4 << 20
ZSTD_WINDOWS = 16


class _Ratios:
    """``ratio`` and ``zstd3_ratio`` of anything with ``nbytes``, ``compressed_bytes`` and
    ``zstd3_bytes`` (None: unknown); both None for no bytes."""

    nbytes: int
    compressed_bytes: int
    zstd3_bytes: int | None

    @property
    def ratio(self) -> float | None:
        return self.compressed_bytes / self.nbytes if self.nbytes else None

    @property
    def zstd3_ratio(self) -> float | None:
        if self.zstd3_bytes is None or not self.nbytes:
            return None
        return self.zstd3_bytes / self.nbytes


@dataclass
class SegmentStats(_Ratios):
    """One segment of the file as compression codes it: a tensor, or unnamed bytes."""

    label: str  #: the tensor's name, or a description in parentheses ("(header)", ...)
    name: str | None  #: the tensor's name; None for the header, padding and small-tensor runs
    dtype: str | None
    shape: tuple | None
    nbytes: int
    #: predicted (or, for a container, stored) bytes of its chunk records, headers included
    compressed_bytes: int
    #: zstd -3 on the same sampled chunks, each alone (None for a container)
    zstd3_bytes: int | None
    sampled_bytes: int  #: original bytes actually coded to make the prediction
    #: bits per element of the order-0 entropy of the codes plus the raw bits, on the sample:
    #: the classic reference the coder is measured against (modelling can beat it); None where
    #: not measured (containers, empty samples)
    order0_bits: float | None = None
    #: tensors in the segment: 1 for a named one, a run's count for small ones, 0 for other
    #: bytes; None where unknown (a container whose original header was not read)
    tensors: int | None = None


@dataclass
class DtypeStats(_Ratios):
    """The segments of one dtype added up (dtype None: bytes that are not tensors)."""

    dtype: str | None
    segments: int
    nbytes: int
    compressed_bytes: int
    zstd3_bytes: int | None
    tensors: int | None = None  #: None if any segment's count is unknown


@dataclass
class FileStats:
    path: str
    #: "safetensors", "gguf" or "bytes" (for a container: the format of its original)
    format: str
    file_size: int  #: size of the original (for a container: of what it decodes to)
    segments: list[SegmentStats]
    #: predicted container size (for a container: its size), file header, index and trailer
    #: included
    compressed_bytes: int
    #: zstd -3 of the whole file, measured (or, for large files, predicted from windows);
    #: None for a container
    zstd3_bytes: int | None
    sampled_bytes: int  #: original bytes coded for the prediction (file_size: exact)
    level: int | None  #: the compression level predicted (None for a container)
    is_container: bool = False
    #: why a file that looks like safetensors or GGUF would be stored as plain bytes
    fallback_reason: str | None = None
    tensor_count: int = 0  #: tensors in the file's header (small ones share segments)
    container_overhead: int = 0  #: file header, index and trailer bytes
    by_dtype: list[DtypeStats] = field(default_factory=list)
    base: str | None = None  #: the base file's name, when predicted against one

    @property
    def ratio(self) -> float | None:
        return self.compressed_bytes / self.file_size if self.file_size else None

    @property
    def zstd3_ratio(self) -> float | None:
        if self.zstd3_bytes is None or not self.file_size:
            return None
        return self.zstd3_bytes / self.file_size

    @property
    def exact(self) -> bool:
        """Every chunk was coded: the compressed size is what ``compress`` writes, give or take
        the index's few bytes of checksums."""
        return self.is_container or self.sampled_bytes >= self.file_size

    @property
    def tensors(self) -> list[SegmentStats]:
        """The named segments: one per tensor of at least ``ansz.plan.SMALL_TENSOR`` bytes."""
        return [s for s in self.segments if s.name is not None]


def file_stats(path, *, level: int | None = None, threads: int | None = None,
               sample_bytes: int | None = None, base=None) -> FileStats:
    """Predict what ``compress_file(path, ..., level=level)`` writes, without writing it.

    Chunks are cut as compression cuts them (default chunk size); a sample of them, about
    ``sample_bytes`` (None: :data:`STATS_SAMPLE`) but something of every segment, spread
    evenly through each segment (:func:`_sample`), is coded with the real encoder, and each
    segment's other chunks are predicted at its sampled ratio. Chunk record headers, the file header, the index (built from the
    predicted chunk sizes and compressed as the writer would) and the trailer are added, so a
    file of at most ``sample_bytes`` gets the exact size. A file whose safetensors or GGUF
    header is invalid is predicted as plain bytes, as compression would store it, with
    ``fallback_reason`` set. An ansz container is described from its index instead: what
    each segment stores (``is_container``; no zstd figures, no level).

    ``base`` (a path) predicts ``compress_file(path, ..., base=base)``: the sampled chunks
    of tensors paired with the base's are coded against it (the zstd figures stay those of
    the file alone).
    """
    level = check_level(level)
    nthreads = resolve_threads(threads)
    budget = STATS_SAMPLE if sample_bytes is None else sample_bytes
    path = os.fspath(path)
    with open_regular(path) as f, contextlib.ExitStack() as stack:
        if f.size >= len(container.MAGIC) and f.read_at(0, len(container.MAGIC)) == container.MAGIC:
            if base is not None:
                raise AnszError(f"{path} is a container: a base applies to a file to compress")
            return _container_stats(path, f)
        source = FileSource(f)
        layout, reason = detect(source)
        plan = plan_segments(layout, f.size)
        shifts = None
        if base is not None:
            from .base import base_spans
            from .reader import open_base

            base = stack.enter_context(open_base(base, path))
            shifts = [None if sp is None else sp[0] - seg.start
                      for sp, seg in zip(base_spans(plan, base, source.read_at), plan)]
        chunks = list(file_chunks(plan, default_chunk_size(level)))
        copies: dict[int, int] = {}  # start of a chunk stored as a repeat -> the chunk it repeats
        if base is None:
            from .repeats import find_repeats

            copies = find_repeats(source.read_at, chunks).copies
        picked = _sample(chunks, f.size, budget)
        # zstd's whole-file run (which releases the GIL) overlaps the coding of the sample
        with ThreadPoolExecutor(1, thread_name_prefix="ansz-zstd") as pool:
            zstd_job = pool.submit(_zstd3_size, f)
            coded = _code_sample(source, [(chunks[i][0], chunks[i][1], start, n)
                                          for i, start, n in picked], plan, level, nthreads,
                                 base, shifts)
            zstd3 = zstd_job.result()
    fmt = "bytes" if layout is None else format_name(layout)
    segments, entries = _predict(plan, chunks, {i: (n, *c) for (i, _, n), c in zip(picked, coded)},
                                 layout, copies)
    body_size = container.FILE_HEADER.size + sum(container.record_size(e.payload_length)
                                                 for e in entries)
    overhead = container.FILE_HEADER.size + _index_and_trailer_size(
        plan, chunks, entries, fmt, f.size, body_size)
    total = sum(s.compressed_bytes for s in segments) + overhead
    tensor_count = 0 if layout is None else len(layout.tensors) + len(
        getattr(layout, "subbyte_tensors", ()))
    return FileStats(path, fmt, f.size, segments, total, zstd3,
                     sum(n for _, _, n in picked), level,
                     fallback_reason=reason, tensor_count=tensor_count,
                     container_overhead=overhead, by_dtype=_by_dtype(segments),
                     base=None if base is None else base.name)


def _sample(chunks: list[tuple[int, int, int, int]], size: int, budget: int
            ) -> list[tuple[int, int, int]]:
    """``(chunk, start, length)`` of the pieces to code: every chunk whole if the file fits
    the budget; else in each segment ``round(n * budget / size)`` of its ``n`` chunks, at the
    middles of equal strata, and in a segment whose share of the budget is less than a chunk,
    the middle :data:`MIN_WINDOW` bytes (or its share, if larger) of its middle chunk."""
    if size <= budget:
        return [(i, start, n) for i, (_, _, start, n) in enumerate(chunks)]
    by_segment: dict[int, list[int]] = {}
    for i, (si, _, _, _) in enumerate(chunks):
        by_segment.setdefault(si, []).append(i)
    picked = []
    for si in sorted(by_segment):
        idx = by_segment[si]
        share = len(idx) * budget / size  # chunks' worth
        if share >= 0.5:
            k = min(len(idx), round(share))
            for j in range(k):
                i = idx[(2 * j + 1) * len(idx) // (2 * k)]
                picked.append((i, chunks[i][2], chunks[i][3]))
            continue
        i = idx[len(idx) // 2]
        _, code, start, n = chunks[i]
        width = DTYPE_CODES[code].width
        w = min(n, max(MIN_WINDOW, int(share * n)))
        w -= w % width
        if w == 0:
            w = n
        picked.append((i, start + (n - w) // 2 // width * width, w))
    return picked


def _code_sample(source: FileSource, items: list[tuple[int, int, int, int]],
                 plan: list[PlannedSegment], level: int, nthreads: int, base=None,
                 shifts: list | None = None) -> list[tuple[int, int, float | None]]:
    """``(payload bytes, zstd -3 bytes, order-0 bits)`` of each chunk, coded as compression
    codes it, on ``nthreads`` threads; with ``base`` (an open BaseFile), a chunk of a
    segment whose ``shifts`` entry is not None against the base bytes that far away."""
    import zstandard

    local = threading.local()

    def code(item):
        si, code_, start, n = item
        data = source.read(start, n).load()
        if base is not None and shifts[si] is not None:
            from .base import encode_against

            _, payload, _ = encode_against(data, base.read(start + shifts[si], n), code_,
                                           level=level)
        else:
            payload, _ = encode_payload(data, code_, level=level)
        z = getattr(local, "zstd", None)
        if z is None:
            z = local.zstd = zstandard.ZstdCompressor(level=3)
        return len(payload), len(z.compress(data)), _order0_bits(data, plan[si].dtype)

    return list(ordered_map(code, items, nthreads))


def _order0_bits(data, dtype: str | None) -> float | None:
    """Order-0 entropy of the codes plus the raw bits of ``data``, in bits (for its whole
    elements; the plain coding pair of the dtype, or bytes)."""
    pl = layout_for(dtype or "BYTES")
    n = len(data) // pl.width
    if n == 0:
        return None
    codes, _ = split_pairs(memoryview(data)[:n * pl.width], pl)
    return entropy_bits(np.bincount(codes, minlength=256)) + 8.0 * pl.raw_width * n


def _predict(plan: list[PlannedSegment], chunks: list[tuple[int, int, int, int]],
             coded: dict[int, tuple[int, int, int, float | None]], layout,
             copies: dict[int, int] | None = None
             ) -> tuple[list[SegmentStats], list[container.ChunkEntry]]:
    """Per segment its predicted sizes, and a predicted index entry per chunk (offsets and
    payload lengths as the writer would set them; content hashes made up). ``coded`` maps a
    chunk to ``(bytes coded, payload bytes, zstd bytes, order-0 bits)`` of its sampled piece;
    a chunk coded whole keeps its payload size, any other gets its segment's sampled rate,
    and a chunk starting at a key of ``copies`` (a repeat of chunk ``copies[start]``) the 4
    bytes of a COPY_CHUNK and that chunk's (made-up) hash."""
    rng = np.random.default_rng(0)
    hashes = rng.integers(0, 2**63, len(chunks), dtype=np.int64)
    sampled: dict[int, list[int]] = {}
    for i in coded:
        sampled.setdefault(chunks[i][0], []).append(i)
    small = _small_tensor_counts(plan, _layout_tensors(layout))
    segments: list[SegmentStats] = []
    entries: list[container.ChunkEntry] = []
    offset = container.FILE_HEADER.size
    seg_bytes: dict[int, int] = {}
    for i, (si, _, start, n) in enumerate(chunks):
        if copies and start in copies:
            payload = 4
            hashes[i] = hashes[copies[start]]
        elif i in coded and coded[i][0] == n:
            payload = coded[i][1]
        else:
            idx = sampled[si]
            payload = round(n * sum(coded[j][1] for j in idx) / sum(coded[j][0] for j in idx))
        entries.append(container.ChunkEntry(offset, start, n, payload, int(hashes[i])))
        offset += container.record_size(payload)
        seg_bytes[si] = seg_bytes.get(si, 0) + container.record_size(payload)
    for si, seg in enumerate(plan):
        got = [coded[j] for j in sampled.get(si, [])]
        nbytes = seg.end - seg.start
        done = sum(c[0] for c in got)
        width = layout_for(seg.dtype or "BYTES").width
        elems = sum(c[0] // width for c in got)
        bits = [c[3] for c in got]
        order0 = sum(bits) / elems if got and None not in bits and elems else None
        segments.append(SegmentStats(
            _label(seg, si, len(plan), small.get(si), layout is not None), seg.name,
            seg.dtype, seg.shape, nbytes, seg_bytes.get(si, 0),
            round(sum(c[2] for c in got) * nbytes / done) if done else 0, done, order0,
            _tensor_count(seg, small.get(si))))
    return segments, entries


def _layout_tensors(layout) -> list | None:
    """Every tensor span of a safetensors or GGUF layout (None for plain bytes)."""
    if layout is None:
        return None
    return [*layout.tensors, *getattr(layout, "subbyte_tensors", ())]


def _small_tensor_counts(plan: list[PlannedSegment], tensors: list | None) -> dict[int, int]:
    """How many of ``tensors`` (spans with ``start`` and ``end``; None: unknown) each
    unnamed segment of a dtype holds."""
    if tensors is None:
        return {}
    starts = sorted(t.start for t in tensors if t.end > t.start)
    out = {}
    for si, seg in enumerate(plan):
        if seg.name is None and seg.dtype is not None:
            out[si] = sum(1 for s in starts if seg.start <= s < seg.end)
    return out


def _tensor_count(seg: PlannedSegment, small: int | None) -> int | None:
    """Tensors in a segment: one if it is named, ``small`` for a run of small ones."""
    if seg.name is not None:
        return 1
    return small if seg.dtype is not None else 0


def _label(seg: PlannedSegment, si: int, count: int, small: int | None, tensors: bool) -> str:
    """How a segment is shown: the tensor's name, or what the unnamed bytes are (``small``:
    how many tensors a run of small ones holds, None if unknown; ``tensors``: whether the
    file was read as tensors)."""
    if seg.name is not None:
        return seg.name
    if seg.dtype is not None:
        if small is None:
            return f"(small {seg.dtype} tensors)"
        return f"({small} small {seg.dtype} tensor{'s' if small != 1 else ''})"
    if not tensors:
        return "(file)"
    if si == 0:
        return "(header)"
    return "(padding)" if si < count - 1 else "(bytes after the tensors)"


def _index_and_trailer_size(plan: list[PlannedSegment], chunks, entries, fmt: str, size: int,
                            index_offset: int) -> int:
    """Bytes of the index record and trailer the writer would add for these chunks."""
    segments = []
    first = 0
    counts: dict[int, int] = {}
    for si, *_ in chunks:
        counts[si] = counts.get(si, 0) + 1
    for si, seg in enumerate(plan):
        n = counts.get(si, 0)
        segments.append(container.Segment(seg.name, seg.dtype, seg.shape, seg.start, seg.end,
                                          first, n))
        first += n
    # a made-up digest: 64 hex digits that compress as little as a real one
    digest = np.random.default_rng(1).bytes(32).hex()
    body = container.Index(fmt, size, digest, segments, entries).to_json()
    _, payload = container.index_record(body, index_offset)
    return container.record_size(len(payload)) + container.TRAILER.size


def _zstd3_size(f) -> int:
    """zstd -3 of the whole file: measured when it is at most :data:`ZSTD_WHOLE` bytes, else
    predicted from :data:`ZSTD_WINDOWS` windows spread evenly through it."""
    import zstandard

    z = zstandard.ZstdCompressor(level=3)
    if f.size <= ZSTD_WHOLE:
        return len(z.compress(f.read_at(0, f.size))) if f.size else 0
    windows = [(2 * j + 1) * f.size // (2 * ZSTD_WINDOWS) - ZSTD_WINDOW // 2
               for j in range(ZSTD_WINDOWS)]
    got = sum(len(z.compress(f.read_at(w, ZSTD_WINDOW))) for w in windows)
    return round(got * f.size / (ZSTD_WINDOWS * ZSTD_WINDOW))


def _by_dtype(segments: list[SegmentStats]) -> list[DtypeStats]:
    """Segments added up per dtype, largest first (bytes that are not tensors last)."""
    out: dict[str | None, DtypeStats] = {}
    for s in segments:
        d = out.setdefault(s.dtype, DtypeStats(s.dtype, 0, 0, 0, 0, 0))
        d.segments += 1
        d.tensors = None if d.tensors is None or s.tensors is None else d.tensors + s.tensors
        d.nbytes += s.nbytes
        d.compressed_bytes += s.compressed_bytes
        d.zstd3_bytes = (None if d.zstd3_bytes is None or s.zstd3_bytes is None
                         else d.zstd3_bytes + s.zstd3_bytes)
    return sorted(out.values(), key=lambda d: (d.dtype is None, -d.nbytes, d.dtype or ""))


def _container_stats(path: str, f) -> FileStats:
    """What a container holds: each segment's stored bytes, from its index (checked as
    every reader checks it)."""
    cf = container.ContainerFile(f.read_at, f.size)
    index = cf.index
    plan = [PlannedSegment(s.name, s.dtype, s.shape, s.start, s.end) for s in index.segments]
    tensors = _container_tensors(path, index.format)
    small = _small_tensor_counts(plan, tensors)
    segments = []
    for si, (s, seg) in enumerate(zip(index.segments, plan)):
        chunks = index.chunks[s.first_chunk:s.first_chunk + s.chunk_count]
        segments.append(SegmentStats(
            _label(seg, si, len(index.segments), small.get(si), index.format != "bytes"),
            s.name, s.dtype, s.shape, s.nbytes,
            sum(c.end - c.offset for c in chunks), None, s.nbytes, None,
            _tensor_count(seg, small.get(si))))
    overhead = f.size - sum(s.compressed_bytes for s in segments)
    return FileStats(path, index.format, index.original_size, segments, f.size, None,
                     index.original_size, None, is_container=True,
                     tensor_count=(len(tensors) if tensors is not None
                                   else sum(1 for s in segments if s.name is not None)),
                     container_overhead=overhead, by_dtype=_by_dtype(segments))


def _container_tensors(path: str, fmt: str) -> list[PlannedSegment] | None:
    """The tensors of a container's original, from its decoded header (as ``ansz.open``
    reads them: bounded), for counting the small ones; None if it cannot be read."""
    if fmt not in ("safetensors", "gguf"):
        return None
    from .reader import open as open_container

    try:
        with open_container(path) as af:
            return [PlannedSegment(n, *t) for n, t in af._tensors.items()]
    except AnszError:
        return None


def coder_costs(counts) -> dict[str, float]:
    """Predicted size in bits of coding a stream with this histogram (int64[256]), per coder.

    * ``entropy``: the order-0 bound, sum(c * log2(N / c)); no table.
    * ``rans``: what :func:`ansz.streams.encode_stream` would write for the RANS method:
      method/scale/first/last bytes, varint frequencies for first..last, 8 final states
      (32 bytes) and the cross-entropy of the counts under the table
      :func:`ansz.streams.rans_plan` picks (12 or 14 bits). (A one-symbol stream is CONSTANT,
      2 bytes; the same 16 bits are given.)
    * ``huffman``: 1 method byte + serialized table (``HuffmanTable.to_bytes``) + the payload
      bits rounded up to bytes, with lengths limited to ``huffman.DEFAULT_LIMIT``.
    * ``qlc``: 1 method byte + serialized table (``QlcTable.to_bytes``) + payload bytes.

    Empty input costs 0 everywhere. Sizes never include the 4-byte chunk framing.
    """
    counts = np.ascontiguousarray(counts, dtype=np.int64)
    if counts.shape != (256,) or (counts < 0).any():
        raise ValueError("counts must be 256 non-negative integers")
    present = np.flatnonzero(counts)
    if present.size == 0:
        return {"entropy": 0.0, "rans": 0.0, "huffman": 0.0, "qlc": 0.0}
    out = {"entropy": entropy_bits(counts)}
    if present.size == 1:
        out["rans"] = 16.0
    else:
        _, freq, words_bytes = rans_plan(counts)
        table = 4 + len(varint_table(freq[present[0]:present[-1] + 1]))
        out["rans"] = 8.0 * (table + words_bytes)
    for coder in PREFIX_CODERS:
        out[coder] = 8.0 * prefix_stream_size(counts, prefix_table(counts, coder))
    return out
