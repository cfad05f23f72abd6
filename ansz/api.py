"""Public API: compress and decompress files and streams, verify, stats and info.

This module composes the layers: :mod:`ansz.formats.safetensors` maps a file to tensors, each
tensor (or run of other bytes) becomes a *segment*, segments are cut into chunks that
:mod:`ansz.codec` codes on a thread pool, and :mod:`ansz.container` frames them
(``docs/FORMAT.md``). The CLI calls only what is defined here.

Conventions shared by every function:

- Paths are ``str`` or ``os.PathLike``. Inputs are read through ``mmap`` with pages released
  as the work passes them, and at most ``2 * threads`` chunks are in flight, so memory stays
  bounded whatever the file size.
- Output files are written atomically (:func:`atomic_output`): a temporary file in the
  destination's directory, renamed over ``dst`` only when complete (and fsync'ed first when
  ``sync=True``, which callers about to delete the source pass). On any error or KeyboardInterrupt
  the temporary file is removed and nothing exists under ``dst``. The output gets the
  input's permission bits and atime/mtime (like zstd). The input is never modified.
- ``threads=None`` (or 0) uses ``os.cpu_count()`` threads. The output does not depend on the
  thread count.
- ``progress``, if given, is called in the calling thread with the cumulative number of
  original (uncompressed) bytes processed so far, after each chunk.
- Bad input raises an :class:`~ansz.errors.AnszError` subclass with a one-line message;
  ``OSError`` propagates for I/O problems (missing file, permission, disk full).
"""

from __future__ import annotations

import functools
import hashlib
import mmap
import os
import stat
import tempfile
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Callable, Iterable, Iterator

from . import _numba_env  # noqa: F401  (sets NUMBA_CACHE_DIR before numba is imported)
from . import container
from .container import (BYTES, DTYPE_CODES, ContainerFile, ContainerWriter, Segment,
                        StreamReader, decode_record, dtype_code_for, encode_payload)
from .errors import AnszError, CorruptDataError, FormatError
from .formats import gguf as gguf_format
from .formats.safetensors import (SAFETENSORS_DTYPES, SafetensorsLayout, looks_like_safetensors,
                                  parse_header)

#: Default chunk size (bytes of original data per chunk): the unit of parallelism, of memory,
#: and of adaptivity (each chunk has its own tables). On synthetic N(0, 0.02) bf16 weights,
#: which do not drift, 1/2/4/8 MiB give the same ratio (0.6594 .. 0.6593). On the real corpus
#: 1 MiB beats 4 MiB everywhere: MiniLM bf16 0.6630 vs 0.6637, f32 0.8189 vs 0.8208, fp16
#: 0.8466 vs 0.8472, fp8 0.8191 vs 0.8206, MPNet bf16 0.6646 vs 0.6648 (256 KiB is no better
#: on bf16/fp16/fp8). It is also no slower (mpnet-bf16 in process, 2 threads: 303/545 MB/s
#: compress/decompress against 270/469 with 4 MiB) and needs less memory (peak RSS for a 1 GB
#: file with 2 threads: 177/170 MiB against 217/193).
DEFAULT_CHUNK_SIZE = 1 << 20

#: Compression levels. 1 ("fast") puts decoding speed first: float chunks take the plain
#: 8-bit field without a search, exponent streams are rANS-coded in symbol pairs (two per
#: decode step) and no stream tries the prefix coders; bf16 files come out ~0.7% larger
#: (mostly the plain field) and their chunks decode ~1.7x faster. 2, the default, keeps the
#: smallest of everything (BENCHMARKS.md, "Levels").
LEVELS = (1, 2)
DEFAULT_LEVEL = 2
MIN_CHUNK_SIZE = 1 << 10
MAX_CHUNK_SIZE = container.MAX_CHUNK_SIZE_LIMIT

#: A safetensors header read from a stream is buffered whole; larger ones fall back to bytes.
STREAM_HEADER_LIMIT = 256 << 20

_STATS_PIECE = 4 << 20

#: Bytes of each tensor that ``file_stats`` compresses with zstd-3 for its comparison column.
STATS_SAMPLE = 1 << 20


# ---------------------------------------------------------------------------------------------
# Reports


@dataclass
class CompressReport:
    src: str
    dst: str
    original_size: int
    compressed_size: int
    format: str  #: "safetensors", "gguf" or "bytes"
    fallback_reason: str | None  #: why a file that looked like safetensors was coded as bytes
    seconds: float

    @property
    def ratio(self) -> float:
        """compressed / original (1.0 for an empty input)."""
        return self.compressed_size / self.original_size if self.original_size else 1.0


@dataclass
class DecompressReport:
    src: str
    dst: str
    compressed_size: int
    original_size: int
    seconds: float


@dataclass
class VerifyReport:
    path: str
    ok: bool
    original_size: int  #: as recorded in the container (0 if its index is unreadable)
    sha256: str  #: as recorded in the container ("" if its index is unreadable)
    first_bad: str | None  #: e.g. "tensor 'model.embed' chunk 3"
    message: str


@dataclass
class TensorStats:
    name: str
    dtype: str
    shape: tuple
    nbytes: int
    code_entropy: float  #: bits per element of the code byte (order 0)
    bound_bytes: float  #: coding-pair bound: elements * (code entropy + raw bits) / 8
    predicted_ratio: float  #: bound_bytes / nbytes
    #: predicted ratio per coder of the code stream ("rans", "huffman", "qlc"), one table for
    #: the whole tensor (ansz.coders.coder_costs), raw bits counted as stored
    coder_ratios: dict = field(default_factory=dict)
    zstd3_ratio: float = 1.0  #: zstd level 3 measured on a sample (the first STATS_SAMPLE bytes)


@dataclass
class FileStats:
    path: str
    format: str  #: "safetensors" or "bytes"
    file_size: int
    tensors: list[TensorStats]
    other_bytes: int  #: bytes outside whole-byte tensors (header, padding, sub-byte tensors)
    bound_bytes: float  #: tensor bounds + other bytes counted as stored
    predicted_ratio: float
    coder_ratios: dict = field(default_factory=dict)  #: per coder, over the whole file
    zstd3_ratio: float = 1.0  #: the tensors' zstd-3 sample ratios weighted by size


@dataclass
class ContainerInfo:
    path: str
    format_version: int
    original_size: int
    compressed_size: int
    sha256: str
    format: str
    #: one dict per segment: name, dtype, shape, start, end, nbytes, first_chunk, chunk_count,
    #: compressed_size (its records' bytes, headers included)
    segments: list[dict] = field(default_factory=list)
    chunk_count: int = 0
    chunk_size: int = 0  #: the container's maximum chunk size

    @property
    def ratio(self) -> float:
        return self.compressed_size / self.original_size if self.original_size else 1.0


# ---------------------------------------------------------------------------------------------
# Public functions


def compress_file(src, dst, *, threads: int | None = None, chunk_size: int | None = None,
                  level: int | None = None, coder: str | None = None, overwrite: bool = False,
                  sync: bool = False,
                  progress: Callable[[int], None] | None = None) -> CompressReport:
    """Compress the file ``src`` into the container ``dst``.

    A safetensors or GGUF file is coded tensor by tensor with each tensor's dtype; any other
    file (and a file whose header fails to parse: see ``fallback_reason``) is coded as
    generic bytes, so every file round-trips. ``chunk_size`` (bytes, default
    :data:`DEFAULT_CHUNK_SIZE`, range [1 KiB, 64 MiB]) bounds memory and is the unit of
    parallelism. ``level`` is one of :data:`LEVELS` (None: :data:`DEFAULT_LEVEL`): 1 codes
    for decoding speed, 2 for the smallest file. ``coder`` picks the entropy coder of every
    coded stream: ``"auto"`` (the default, also for None) keeps whichever of rANS, Huffman
    and QLC is smallest (rANS alone at level 1), ``"rans"``, ``"huffman"`` or ``"qlc"``
    forces one.
    """
    start = time.perf_counter()
    nthreads, chunk, coder = _threads(threads), _chunk_size(chunk_size), _coder(coder)
    fast = _level(level) == 1
    src, dst = os.fspath(src), os.fspath(dst)
    with _Mapped(src, allow_stream=True) as m:
        _check_output_path(src, dst, overwrite)
        source = _FileSource(m, src) if m.regular else _StreamSource(m.fh, src)
        with atomic_output(dst, overwrite=overwrite, like=m.stat if m.regular else None,
                           sync=sync) as out:
            result = _compress(source, out, nthreads, chunk, progress, coder, fast)
    return CompressReport(src, dst, *result, time.perf_counter() - start)


def compress_stream(ifh: BinaryIO, ofh: BinaryIO, *, threads: int | None = None,
                    chunk_size: int | None = None, level: int | None = None,
                    coder: str | None = None,
                    progress: Callable[[int], None] | None = None) -> CompressReport:
    """Compress everything read from ``ifh`` (read sequentially; a pipe is fine) to ``ofh``.

    Same container as :func:`compress_file`. A safetensors header (at most
    :data:`STREAM_HEADER_LIMIT` bytes) is buffered to plan the tensors; if the stream then ends
    before the data its header declares, the file is recorded as format "bytes" (with a
    ``fallback_reason``) and still round-trips. ``level`` and ``coder`` as for
    :func:`compress_file`.
    """
    start = time.perf_counter()
    nthreads, chunk, coder = _threads(threads), _chunk_size(chunk_size), _coder(coder)
    fast = _level(level) == 1
    result = _compress(_StreamSource(ifh, _stream_name(ifh)), ofh, nthreads, chunk, progress,
                       coder, fast)
    return CompressReport(_stream_name(ifh), _stream_name(ofh), *result,
                          time.perf_counter() - start)


def decompress_file(src, dst, *, threads: int | None = None, overwrite: bool = False,
                    sync: bool = False,
                    progress: Callable[[int], None] | None = None) -> DecompressReport:
    """Restore the original file from the container ``src`` into ``dst``.

    The header, trailer and index are validated before ``dst`` is created; every chunk's sizes
    and xxh3 checksum are checked as it is decoded. The whole-file sha256 is *not* computed
    (it would cap throughput at ~1.5 GB/s); :func:`verify_file` checks it.
    """
    start = time.perf_counter()
    nthreads = _threads(threads)
    src, dst = os.fspath(src), os.fspath(dst)
    with _Mapped(src, allow_stream=True) as m:
        _check_output_path(src, dst, overwrite)
        if not m.regular:  # a pipe or device: decode front to back
            with atomic_output(dst, overwrite=overwrite, sync=sync) as out:
                sizes = _decode_stream(m.fh, out, nthreads, progress)
            return DecompressReport(src, dst, *sizes, time.perf_counter() - start)
        cf = ContainerFile(m.read_at, m.size)
        chunks = cf.index.chunks
        with atomic_output(dst, overwrite=overwrite, like=m.stat, sync=sync) as out:
            done = 0
            pool = _BufferPool()
            for i, data in enumerate(_ordered_map(_chunk_decoder(cf, pool), range(len(chunks)),
                                                  nthreads)):
                out.write(data)
                done += data.size
                pool.put(data)
                m.release(chunks[i].end)
                if progress is not None:
                    progress(done)
    return DecompressReport(src, dst, m.size, cf.index.original_size, time.perf_counter() - start)


def decompress_stream(ifh: BinaryIO, ofh: BinaryIO, *, threads: int | None = None,
                      progress: Callable[[int], None] | None = None) -> DecompressReport:
    """Decode a container read sequentially from ``ifh`` (a pipe is fine) and write to ``ofh``.

    Output is written as chunks are decoded. Every chunk is checked as in
    :func:`decompress_file`; the index and trailer at the end are checked against the records
    seen, so a truncated stream raises CorruptDataError -- after the bytes before the damage
    have been written (the caller decides what to do with a partial output). The input must
    end right after the container's trailer.
    """
    start = time.perf_counter()
    sizes = _decode_stream(ifh, ofh, _threads(threads), progress)
    return DecompressReport(_stream_name(ifh), _stream_name(ofh), *sizes,
                            time.perf_counter() - start)


def verify_file(path, original=None, *, threads: int | None = None) -> VerifyReport:
    """Decode the container at ``path`` completely and check it; never raises for bad data.

    Checks the header, trailer and index, every chunk's record and xxh3 checksum, the total
    size and the sha256 of the decoded bytes; with ``original`` (a path), also compares the
    decoded bytes with that file. A damaged container gives ``ok=False`` with a one-line
    ``message`` and, when a chunk is at fault, ``first_bad`` naming it. Raises only OSError
    (missing or unreadable files) and AnszError for a path that is not a regular file.
    """
    path = os.fspath(path)
    nthreads = _threads(threads)
    with _Mapped(path) as m:
        try:
            cf = ContainerFile(m.read_at, m.size)
        except AnszError as e:
            return VerifyReport(path, False, 0, "", None, str(e))
        with _maybe_mapped(original) as orig:
            return _verify(path, cf, m, orig, os.fspath(original) if original else None,
                           nthreads)


def file_stats(path) -> FileStats:
    """Predict how well a file compresses, without compressing it.

    For a safetensors file: per whole-byte tensor, the order-0 entropy of its code bytes
    (:mod:`ansz.pairs`), the coding-pair bound and the predicted ratio, the ratio each coder
    would reach with one table for the tensor (:func:`ansz.coders.coder_costs`: rANS,
    Huffman, QLC; raw bits stored; float tensors coded with the tensor's best field, as
    :func:`ansz.pairs.choose_field` picks per chunk), and zstd-3 measured on the tensor's first
    :data:`STATS_SAMPLE` bytes; all other bytes (header, padding, sub-byte tensors) count as
    stored. Any other file is reported as format
    "bytes" with no tensors. Raises FormatError for an ansz container (use :func:`read_info`)
    and for a file that looks like safetensors but whose header is invalid.
    """
    import numpy as np
    import zstandard

    from .coders import coder_costs, entropy_bits
    from .pairs import (FIELD_TOPS, best_field, field_code_counts, field_histogram, layout_for,
                        split_pairs)

    zstd = zstandard.ZstdCompressor(level=3)
    path = os.fspath(path)
    with _Mapped(path) as m:
        if bytes(m.read_at(0, len(container.MAGIC))) == container.MAGIC:
            raise FormatError(f"{path} is an ansz container; use info")
        layout, reason = _detect(_FileSource(m, path))
        if reason is not None:
            raise FormatError(reason)
        if layout is None:
            return FileStats(path, "bytes", m.size, [], m.size, float(m.size), 1.0)
        tensors = []
        for t in layout.tensors:
            pl = layout_for(t.dtype)
            fielded = pl.name in FIELD_TOPS
            counts = np.zeros(256, np.int64)
            hist = 0
            step = _STATS_PIECE - _STATS_PIECE % pl.width
            for pos in range(t.start, t.end, step):
                piece = m.read_at(pos, min(step, t.end - pos))
                codes, _ = split_pairs(piece, pl)
                counts += np.bincount(codes, minlength=256)
                if fielded:
                    hist += field_histogram(piece, pl)
                m.release(pos)
            n = t.nbytes // pl.width
            entropy = entropy_bits(counts) / n if n else 0.0
            bound = n * (entropy + 8 * pl.raw_width) / 8
            raw_bytes = n * pl.raw_width
            if fielded and n:  # the coders see the codes of the tensor's best field
                fld, _ = best_field(hist, pl)
                counts, escaped = field_code_counts(hist, fld, pl)
                raw_bytes = n * (pl.width - 2) + n * fld.top_bits / 8
                if escaped.sum():
                    raw_bytes += (entropy_bits(escaped) + escaped.sum()) / 8
            costs = coder_costs(counts)
            ratios = {c: (costs[c] / 8 + raw_bytes) / t.nbytes if t.nbytes else 1.0
                      for c in ("rans", "huffman", "qlc")}
            sample = m.read_at(t.start, min(t.nbytes, STATS_SAMPLE))
            z3 = len(zstd.compress(sample)) / len(sample) if len(sample) else 1.0
            tensors.append(TensorStats(t.name, t.dtype, t.shape, t.nbytes, entropy, bound,
                                       bound / t.nbytes if t.nbytes else 1.0, ratios, z3))
    other = m.size - sum(t.nbytes for t in layout.tensors)
    bound = sum(t.bound_bytes for t in tensors) + other

    def total(ratio_of) -> float:  # other bytes count as stored
        size = sum(ratio_of(t) * t.nbytes for t in tensors) + other
        return size / m.size if m.size else 1.0

    return FileStats(path, _format_name(layout), m.size, tensors, other, bound,
                     bound / m.size if m.size else 1.0,
                     {c: total(lambda t, c=c: t.coder_ratios[c]) for c in ("rans", "huffman", "qlc")},
                     total(lambda t: t.zstd3_ratio))


def read_info(path) -> ContainerInfo:
    """Describe a container from its header, trailer and index only (no chunk is read)."""
    path = os.fspath(path)
    with open(path, "rb") as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise AnszError(f"{path} is not a regular file")
        size = st.st_size
        cf = ContainerFile(lambda off, n: os.pread(fh.fileno(), n, off), size)
    index = cf.index
    segments = []
    for s in index.segments:
        chunks = index.chunks[s.first_chunk:s.first_chunk + s.chunk_count]
        segments.append({
            "name": s.name, "dtype": s.dtype, "shape": s.shape, "start": s.start, "end": s.end,
            "nbytes": s.nbytes, "first_chunk": s.first_chunk, "chunk_count": s.chunk_count,
            "compressed_size": sum(c.end - c.offset for c in chunks),
        })
    return ContainerInfo(path, container.FORMAT_VERSION, index.original_size, size, index.sha256,
                         index.format, segments, len(index.chunks), cf.max_chunk_size)


# ---------------------------------------------------------------------------------------------
# Compression


def _compress(source, ofh: BinaryIO, nthreads: int, chunk_size: int,
              progress: Callable[[int], None] | None,
              coder: str = "auto", fast: bool = False) -> tuple[int, int, str, str | None]:
    """Code ``source`` into ``ofh``: ``(original size, container size, format, reason)``."""
    layout, reason = _detect(source)
    plan = _plan_segments(layout, source.size)
    writer = ContainerWriter(ofh, chunk_size)
    ends: dict[int, int] = {}  # segment -> where its data actually ended
    with source.hasher(2 * nthreads + 2) as sha:
        items = _chunk_items(source, plan, chunk_size, sha, ends)
        done = 0
        encode = functools.partial(_encode_item, coder=coder, fast=fast)
        for segment, code, n, (payload, chash) in _ordered_map(encode, items, nthreads):
            writer.add_chunk(segment, code, payload, n, chash)
            done += n
            # Pages the hasher has not reached yet are simply read again from the page cache.
            source.release(done)
            if progress is not None:
                progress(done)
        digest = sha.hexdigest()
    segments, truncated = _final_segments(plan, ends)
    if truncated is not None:
        fmt, reason = "bytes", truncated
    else:
        fmt = "bytes" if layout is None else _format_name(layout)
    size = writer.finish(segments, fmt=fmt, sha256=digest)
    return writer.original_size, size, fmt, reason


class _BackgroundSha256:
    """sha256 of the pieces given to :meth:`update`, in order, computed on its own thread.

    The digest runs at ~1.5 GB/s, which on the thread that reads the input and writes the
    container was a fifth of compression's time; hashlib releases the GIL on large buffers,
    so here it overlaps with that work. At most ``depth`` pieces wait (memory stays bounded);
    :meth:`hexdigest` waits for the rest.
    """

    def __init__(self, depth: int):
        import queue
        import threading

        self._sha = hashlib.sha256()
        self._queue: Any = queue.Queue(depth)
        self._thread = threading.Thread(target=self._run, name="ansz-sha256", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (piece := self._queue.get()) is not None:
            self._sha.update(piece)

    def update(self, piece) -> None:
        self._queue.put(piece)

    def hexdigest(self) -> str:
        self.close()
        return self._sha.hexdigest()

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def __enter__(self) -> "_BackgroundSha256":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _FileSha256(_BackgroundSha256):
    """sha256 of a regular file's first ``size`` bytes, read by its own thread from the start.

    The pipeline's own reads hash nothing (:meth:`update` ignores them): this thread maps
    the file a second time and hashes it front to back, dropping each window from its
    mapping once hashed, so resident memory grows by one window at most. Starting at once
    lets the hash use the second core while the first kernel call loads numba (~0.5 s of
    the command's start-up), instead of waiting for chunks the pipeline has not read yet.
    It stays at most :attr:`LEAD` bytes ahead of what the pipeline has read
    (:meth:`allow`), so a file larger than memory is not read from disk twice (pages the
    hasher brought in would otherwise be evicted before the pipeline reached them).
    """

    WINDOW = 32 << 20
    LEAD = 512 << 20

    def __init__(self, fileno: int, size: int):
        import threading

        self._sha = hashlib.sha256()
        self._mm = mmap.mmap(fileno, size, access=mmap.ACCESS_READ) if size else None
        self._size = size
        self._stop = False
        self._allowed = self.LEAD  # the hasher may read below this offset
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="ansz-sha256", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        if self._mm is None:
            return
        view = memoryview(self._mm)
        try:
            for pos in range(0, self._size, self.WINDOW):
                n = min(self.WINDOW, self._size - pos)
                with self._cond:
                    while pos + n > self._allowed and not self._stop:
                        self._cond.wait()
                    if self._stop:
                        return
                self._sha.update(view[pos:pos + n])
                try:
                    self._mm.madvise(mmap.MADV_DONTNEED, pos, n)
                except OSError:  # only memory is at stake: the pages stay mapped
                    pass
        finally:
            view.release()

    def allow(self, upto: float) -> None:
        """The pipeline has read the file below ``upto``: hash up to LEAD bytes past it."""
        with self._cond:
            self._allowed = max(self._allowed, upto + self.LEAD)
            self._cond.notify()

    def update(self, piece) -> None:
        """Nothing: the file is read by this hasher's own thread."""

    def close(self) -> None:
        """Wait for the hash (the pipeline is done: no more lead limit), then unmap."""
        self.allow(float("inf"))
        self._thread.join()
        if self._mm is not None:
            self._mm.close()
            self._mm = None

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is not None:  # the pipeline failed: no digest is needed
            with self._cond:
                self._stop = True
                self._cond.notify()
        self.close()


def _detect(source) -> tuple[SafetensorsLayout | None, str | None]:
    """``(layout, None)`` for safetensors, ``(None, None)`` for other data, and
    ``(None, reason)`` for data that looks like safetensors (or is named so) but is invalid."""
    size = source.size
    known = size if size is not None else 2**64  # a stream: offsets are checked while reading
    head = source.head(9)
    if gguf_format.looks_like_gguf(head) or source.name.endswith(".gguf"):
        return _detect_gguf(source)
    named = source.name.endswith(".safetensors")
    if not looks_like_safetensors(head, known):
        if not named:
            return None, None
        try:  # say why the named file is not safetensors
            parse_header(head, known)
        except AnszError as e:
            return None, f"not a valid safetensors file: {e}"
        return None, "not a valid safetensors file"
    header_len = int.from_bytes(head[:8], "little")
    if size is None and header_len > STREAM_HEADER_LIMIT:
        return None, (f"safetensors header of {header_len} bytes is too large to buffer "
                      "from a stream")
    prefix = source.head(8 + header_len)
    try:
        return parse_header(prefix, known if size is not None else len(prefix) + 2**64), None
    except AnszError as e:
        return None, f"invalid safetensors header: {e}"


def _detect_gguf(source) -> tuple[gguf_format.GGUFLayout | None, str | None]:
    """``(layout, None)`` for a valid GGUF file, else ``(None, reason)`` (coded as bytes)."""
    if source.size is None:
        head, limit = source.head, STREAM_HEADER_LIMIT
    else:  # the mapped file: the parser touches only the header's pages
        head, limit = (lambda n: source.read(0, min(n, source.size))), None
    try:
        return gguf_format.read_layout(head, source.size, limit), None
    except AnszError as e:
        return None, f"invalid GGUF file: {e}"


def _format_name(layout) -> str:
    return "gguf" if isinstance(layout, gguf_format.GGUFLayout) else "safetensors"


#: Bytes per element (per block for block-quantized GGML types) of every tensor dtype.
_WIDTHS = {**gguf_format.BLOCK_BYTES, **SAFETENSORS_DTYPES}


@dataclass
class _Planned:
    name: str | None
    dtype: str | None
    shape: tuple | None
    start: int
    end: int | None  # None: until the end of the stream


def _plan_segments(layout: SafetensorsLayout | None, size: int | None) -> list[_Planned]:
    """Segments covering the input: the header, each tensor, and the bytes between and after."""
    plan = []
    pos = 0
    if layout is not None:
        plan.append(_Planned(None, None, None, 0, layout.data_start))
        pos = layout.data_start
        spans = sorted(layout.tensors + getattr(layout, "subbyte_tensors", ()),
                       key=lambda s: (s.start, s.end, s.name))
        for t in spans:
            if t.start > pos:
                plan.append(_Planned(None, None, None, pos, t.start))
            plan.append(_Planned(t.name, t.dtype, t.shape, t.start, t.end))
            pos = max(pos, t.end)
    if size is None or size > pos:
        plan.append(_Planned(None, None, None, pos, size))
    return plan


def _chunk_items(source, plan: list[_Planned], chunk_size: int, sha,
                 ends: dict[int, int]) -> Iterator[tuple[int, int, Any]]:
    """``(segment, dtype code, data)`` for every chunk, in order; runs in the calling thread.

    Records in ``ends`` where each visited segment's data really ended (a stream may end
    early). Chunks never split an element; a short final piece that is not whole elements
    is coded as BYTES.
    """
    for si, seg in enumerate(plan):
        code = dtype_code_for(seg.dtype)
        width = _WIDTHS.get(seg.dtype, 1) if seg.dtype else 1
        step = chunk_size - chunk_size % width
        pos = seg.start
        while seg.end is None or pos < seg.end:
            want = step if seg.end is None else min(step, seg.end - pos)
            data = source.read(pos, want)
            if len(data):
                sha.update(data)
                whole = len(data) % DTYPE_CODES[code][1] == 0
                yield si, code if whole else BYTES, data
                pos += len(data)
            if len(data) < want:  # end of a stream
                ends[si] = pos
                return
        ends[si] = pos


def _encode_item(item: tuple[int, int, Any], coder: str = "auto", fast: bool = False
                 ) -> tuple[int, int, int, tuple[bytes, int]]:
    segment, code, data = item
    return segment, code, len(data), encode_payload(data, code, coder=coder, fast=fast)


def _final_segments(plan: list[_Planned], ends: dict[int, int]) -> tuple[list[Segment], str | None]:
    """The segments as coded, and why the plan could not be followed (a stream ended early)."""
    truncated = None
    segments = []
    for si, seg in enumerate(plan):
        if si not in ends:
            break
        end = ends[si]
        if seg.end is not None and end < seg.end:
            what = f"tensor {seg.name!r}" if seg.name is not None else "the header"
            truncated = (f"input ended at byte {end}, before the end of {what} (byte "
                         f"{seg.end}); stored as generic bytes")
        if end > seg.start or seg.name is not None:
            segments.append(Segment(seg.name, seg.dtype, seg.shape, seg.start, end))
    if truncated is not None:  # the header promised more than there is: keep no tensor names
        # (same positions: the chunk records already carry these segment numbers)
        segments = [Segment(None, None, None, s.start, s.end) for s in segments]
    return segments, truncated


# ---------------------------------------------------------------------------------------------
# Decompression and verification


def _decode_stream(ifh: BinaryIO, ofh: BinaryIO, nthreads: int,
                   progress: Callable[[int], None] | None) -> tuple[int, int]:
    """Decode a container read front to back: ``(container size, original size)``."""
    reader = StreamReader(ifh)
    done = 0
    pool = _BufferPool()

    def decode(item):
        rec, payload = item
        return decode_record(rec, payload, pool.get(rec.decoded_length))

    for data in _ordered_map(decode, reader.records(), nthreads):
        container.write_all(ofh, data)
        done += data.size
        pool.put(data)
        if progress is not None:
            progress(done)
    if reader.index is None or done != reader.index.original_size:  # records() checked both
        raise CorruptDataError("container ended before its index")
    return reader.offset, done


def _chunk_decoder(cf: ContainerFile, pool: "_BufferPool | None" = None) -> Callable[[int], Any]:
    def decode(i: int):
        out = None if pool is None else pool.get(cf.index.chunks[i].decoded_length)
        return decode_record(*cf.chunk(i), out)

    return decode


class _BufferPool:
    """Output buffers for decoded chunks, handed back once the chunk has been written.

    A fresh chunk-sized array costs a page fault per 4 KiB when first written (a quarter of a
    bf16 chunk's decode time on this VM), so buffers are reused; at most ``limit`` are kept,
    and a chunk never gets a buffer still held by another (``get`` pops, ``put`` pushes).
    """

    def __init__(self, limit: int = 64):
        import threading

        self._free: list = []
        self._lock = threading.Lock()
        self._limit = limit

    def get(self, size: int):
        import numpy as np

        with self._lock:
            for k, buf in enumerate(self._free):
                if buf.size >= size:
                    return self._free.pop(k)[:size]
        return np.empty(size, np.uint8)

    def put(self, arr) -> None:
        base = arr if arr.base is None else arr.base
        with self._lock:
            if len(self._free) < self._limit:
                self._free.append(base)


def _verify(path: str, cf: ContainerFile, m: "_Mapped", orig: "_Mapped | None",
            original: str | None, nthreads: int) -> VerifyReport:
    import numpy as np

    index = cf.index

    def report(ok: bool, first_bad: str | None, message: str) -> VerifyReport:
        return VerifyReport(path, ok, index.original_size, index.sha256, first_bad, message)

    if orig is not None and orig.size != index.original_size:
        return report(False, None, f"original {original} is {orig.size} bytes, the container "
                                   f"holds {index.original_size}")
    decode = _chunk_decoder(cf)

    def work(i: int):
        try:
            return decode(i), None
        except AnszError as e:
            return None, e

    sha = hashlib.sha256()
    bad, first_bad, message = 0, None, ""
    for i, (data, err) in enumerate(_ordered_map(work, range(len(index.chunks)), nthreads)):
        entry = index.chunks[i]
        m.release(entry.offset)
        if err is not None:
            bad += 1
            if first_bad is None:
                first_bad, message = _chunk_label(index, cf.segment_of, i), str(err)
            continue
        if first_bad is not None:
            continue
        sha.update(data)
        if orig is not None:
            theirs = np.frombuffer(orig.read_at(entry.original_offset, entry.decoded_length),
                                   np.uint8)
            if not np.array_equal(theirs, data):
                at = entry.original_offset + int(np.flatnonzero(theirs != data)[0])
                first_bad = _chunk_label(index, cf.segment_of, i)
                message = f"decoded bytes differ from {original} at byte {at}"
            orig.release(entry.original_offset)
    if first_bad is not None:
        if bad > 1:
            message += f" ({bad} of {len(index.chunks)} chunks are bad)"
        return report(False, first_bad, message)
    if sha.hexdigest() != index.sha256:
        return report(False, None, "sha256 of the decoded data does not match the container's")
    what = f", identical to {original}" if original else ""
    return report(True, None, f"OK: {index.original_size} bytes, sha256 {index.sha256}{what}")


def _chunk_label(index: container.Index, segment_of: list[int], i: int) -> str:
    seg = index.segments[segment_of[i]]
    j = i - seg.first_chunk
    if seg.name is not None:
        name = seg.name if len(seg.name) <= 80 else seg.name[:77] + "..."
        return f"tensor {name!r} chunk {j}"
    return f"bytes [{seg.start}, {seg.end}) chunk {j}"


# ---------------------------------------------------------------------------------------------
# Helpers: threads, files, sources


def _threads(threads: int | None) -> int:
    if threads is None or threads == 0:
        return os.cpu_count() or 1
    if type(threads) is not int or threads < 0:
        raise AnszError(f"threads must be a non-negative integer, got {threads!r}")
    return threads


#: Values of ``coder`` (as codec.CODERS, copied so that checking needs no numpy).
CODERS = ("auto", "rans", "huffman", "qlc")


def _coder(coder: str | None) -> str:
    if coder is None:
        return "auto"
    if coder not in CODERS:
        raise AnszError(f"coder must be one of {', '.join(CODERS)}, got {coder!r}")
    return coder


def _level(level: int | None) -> int:
    if level is None:
        return DEFAULT_LEVEL
    if type(level) is not int or level not in LEVELS:
        raise AnszError(f"level must be one of {', '.join(map(str, LEVELS))}, got {level!r}")
    return level


def _chunk_size(chunk_size: int | None) -> int:
    if chunk_size is None:
        return DEFAULT_CHUNK_SIZE
    if type(chunk_size) is not int or not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE:
        raise AnszError(f"chunk size must be an integer from {MIN_CHUNK_SIZE} to "
                        f"{MAX_CHUNK_SIZE} bytes, got {chunk_size!r}")
    return chunk_size


#: Items _ordered_map keeps in flight per thread. With 2 per thread the workers ran dry
#: whenever the caller's thread (writing the previous result) was not scheduled at once.
IN_FLIGHT_PER_THREAD = 4


def _ordered_map(fn: Callable[[Any], Any], items: Iterable[Any], nthreads: int) -> Iterator[Any]:
    """``map(fn, items)`` on ``nthreads`` threads, results in order, at most
    IN_FLIGHT_PER_THREAD * nthreads in flight.

    ``items`` is consumed lazily in the calling thread. With one thread everything runs inline.
    """
    if nthreads <= 1:
        for item in items:
            yield fn(item)
        return
    limit = IN_FLIGHT_PER_THREAD * nthreads
    pending: deque = deque()
    with ThreadPoolExecutor(nthreads, thread_name_prefix="ansz") as pool:
        try:
            for item in items:
                if len(pending) >= limit:
                    yield pending.popleft().result()
                pending.append(pool.submit(fn, item))
            while pending:
                yield pending.popleft().result()
        finally:
            for f in pending:
                f.cancel()


def _stream_name(fh: Any) -> str:
    name = getattr(fh, "name", None)
    return name if isinstance(name, str) else "<stream>"


class _Mapped:
    """A read-only mmap of a whole file, with pages released as work moves past them.

    Releasing (MADV_DONTNEED) drops pages from this process's resident set, not from the page
    cache, so reading a big file does not grow RSS. An empty file maps to an empty buffer.
    A pipe or device cannot be mapped: with ``allow_stream`` it is left unmapped
    (``regular`` is False, read ``fh``); otherwise it is refused.
    """

    def __init__(self, path: str, allow_stream: bool = False):
        self.fh = open(path, "rb")
        self._mm = None
        try:
            self.stat = os.fstat(self.fh.fileno())
            self.regular = stat.S_ISREG(self.stat.st_mode)
            if not self.regular and not allow_stream:
                raise AnszError(f"{path} is not a regular file")
            self.size = self.stat.st_size if self.regular else 0
            if self.size:
                self._mm = mmap.mmap(self.fh.fileno(), 0, access=mmap.ACCESS_READ)
        except BaseException:
            self.fh.close()
            raise
        self._view = memoryview(self._mm) if self._mm is not None else memoryview(b"")
        self._released = 0

    def read_at(self, offset: int, length: int) -> memoryview:
        return self._view[offset:offset + length]

    def release(self, upto: int) -> None:
        """Let go of the pages wholly below ``upto`` (they are re-read if touched again)."""
        page = mmap.PAGESIZE
        end = upto // page * page
        if self._mm is not None and end - self._released >= 16 * page and hasattr(self._mm, "madvise"):
            self._mm.madvise(mmap.MADV_DONTNEED, self._released, end - self._released)
            self._released = end

    def close(self) -> None:
        try:
            self._view.release()
            if self._mm is not None:
                self._mm.close()
        except BufferError:  # a view is still referenced (e.g. by a traceback): GC unmaps it
            pass
        self.fh.close()

    def __enter__(self) -> "_Mapped":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@contextmanager
def _maybe_mapped(path) -> Iterator[_Mapped | None]:
    if path is None:
        yield None
        return
    with _Mapped(os.fspath(path)) as m:
        yield m


class _FileSource:
    """A compression input backed by a mapped file: any range, no copies."""

    def __init__(self, mapped: _Mapped, name: str):
        self._m = mapped
        self.size: int | None = mapped.size
        self.name = name
        self._hasher: _FileSha256 | None = None

    def head(self, n: int) -> bytes:
        return bytes(self._m.read_at(0, n))

    def read(self, start: int, n: int):
        return self._m.read_at(start, n)

    def release(self, upto: int) -> None:
        self._m.release(upto)
        if self._hasher is not None:
            self._hasher.allow(upto)

    def hasher(self, depth: int) -> _BackgroundSha256:
        """The sha256 of the whole file, computed in the background from the start (and
        kept near the pipeline by :meth:`release`)."""
        if self._m.size and hasattr(mmap, "MADV_DONTNEED"):
            self._hasher = _FileSha256(self._m.fh.fileno(), self._m.size)
            return self._hasher
        return _BackgroundSha256(depth)


class _StreamSource:
    """A compression input read sequentially from a file object (a pipe is fine).

    :meth:`head` buffers the first bytes for format detection; :meth:`read` then serves them
    before reading on. Ranges must be asked for in order.
    """

    def __init__(self, fh: BinaryIO, name: str):
        self._fh = fh
        self._head = b""  # bytes read ahead by head(); read() serves them from _head_pos
        self._head_pos = 0
        self._pos = 0
        self.size: int | None = None
        self.name = name

    def head(self, n: int) -> bytes:
        if self._pos:
            raise AssertionError("head() after read()")
        parts = [self._head]
        have = len(self._head)
        while have < n:
            data = self._fh.read(min(n - have, 1 << 20))
            if not data:
                break
            parts.append(data)
            have += len(data)
        self._head = b"".join(parts)
        return self._head[:n]

    def read(self, start: int, n: int):
        if start != self._pos:
            raise AssertionError("stream ranges must be read in order")
        buf = bytearray(n)
        view = memoryview(buf)
        got = min(n, len(self._head) - self._head_pos)
        if got:
            view[:got] = memoryview(self._head)[self._head_pos:self._head_pos + got]
            self._head_pos += got
            if self._head_pos == len(self._head):
                self._head, self._head_pos = b"", 0
        while got < n:
            k = container.read_into(self._fh, view[got:])
            if not k:
                del view
                del buf[got:]
                break
            got += k
        self._pos += got
        return buf

    def release(self, upto: int) -> None:
        pass

    def hasher(self, depth: int) -> _BackgroundSha256:
        """The sha256 of the pieces :meth:`read` returns, fed to it in order."""
        return _BackgroundSha256(depth)


def _check_output_path(src: str, dst: str, overwrite: bool) -> None:
    if os.path.lexists(dst):
        try:
            same = os.path.samefile(src, dst)
        except OSError:
            same = False
        if same:
            raise AnszError(f"{dst} is the input file itself; refusing to overwrite it")
        if os.path.isdir(dst):
            raise AnszError(f"{dst} is a directory")
        if not overwrite:
            raise AnszError(f"{dst} already exists; use --force to overwrite")


@contextmanager
def atomic_output(dst, *, overwrite: bool = False, like: os.stat_result | None = None,
                  sync: bool = False) -> Iterator[BinaryIO]:
    """A file object whose contents appear at ``dst`` only if the ``with`` block completes.

    Writes a temporary file (mode 0600) next to ``dst``, named ``.NAME.XXXXXXXX.tmp`` with
    NAME cut (at a character boundary) to keep it within 255 bytes, gives it ``like``'s
    owner and group where permitted (as zstd does; otherwise the caller's), permission bits
    and times (or the umask's default mode), and renames it into place. Without
    ``overwrite`` the rename is a hard link, which fails rather than replace a file that
    appeared meanwhile. An existing ``dst`` that is not a regular file (``/dev/null``, a
    FIFO) is never replaced: write to it as a stream. With ``sync`` the data and the
    directory entry are fsync'ed before returning: callers that are about to delete the
    source ask for it (it costs about as much as decoding, so it is not the default; a crash
    without it can lose only the new output, never the source). An OSError from writing,
    or about the temporary file, names ``dst`` (``filename``).
    """
    import errno

    dst = os.fspath(dst)
    if os.path.exists(dst) and not os.path.isfile(dst):
        raise AnszError(f"{dst} is not a regular file; refusing to replace it "
                        "(write to it as a stream instead)")
    directory = os.path.dirname(os.path.abspath(dst))
    # NAME_MAX is 255 bytes on Linux's file systems; mkstemp adds 8 random characters (16
    # are kept for them) to the prefix and suffix.
    name = os.fsencode(os.path.basename(dst))
    room = 255 - len(b"..tmp") - 16
    if len(name) > room:
        while room > 0 and (name[room] & 0xC0) == 0x80:  # not inside a UTF-8 character
            room -= 1
        name = name[:room]
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.fsdecode(name)}.",
                                   suffix=".tmp")
    except OSError as e:  # name the file the user asked for, not the temporary one
        raise OSError(e.errno, e.strerror, dst) from None
    written = False
    try:
        try:
            with os.fdopen(fd, "wb") as fh:
                yield fh
                written = True
                fh.flush()
                if sync:
                    os.fsync(fh.fileno())
        except OSError as e:
            # An error of writing has no file name, and the caller would name its input.
            # Inside the block only the errors that nothing but writing raises are surely
            # this file's; after it, flushing and syncing are.
            if e.filename is None and (written or e.errno in (errno.ENOSPC, errno.EDQUOT,
                                                              errno.EFBIG)):
                e.filename = dst
            raise
        if like is not None:
            try:  # first: chown may clear the set-id bits that chmod sets
                os.chown(tmp, like.st_uid, like.st_gid)
            except PermissionError:
                try:  # not root: the group alone, if the caller is in it
                    os.chown(tmp, -1, like.st_gid)
                except PermissionError:
                    pass
            os.chmod(tmp, stat.S_IMODE(like.st_mode) & 0o777)
            os.utime(tmp, ns=(like.st_atime_ns, like.st_mtime_ns))
        else:
            os.chmod(tmp, 0o666 & ~_umask())
        _publish(tmp, dst, overwrite)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(e, OSError) and e.filename == tmp:
            e.filename, e.filename2 = dst, None
        raise
    if sync:
        _fsync_directory(directory)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _publish(tmp: str, dst: str, overwrite: bool) -> None:
    if overwrite:
        os.replace(tmp, dst)
        return
    try:
        os.link(tmp, dst)
    except FileExistsError:
        raise AnszError(f"{dst} already exists; use --force to overwrite") from None
    except OSError:  # no hard links here (some network or FAT file systems)
        if os.path.lexists(dst):
            raise AnszError(f"{dst} already exists; use --force to overwrite") from None
        os.replace(tmp, dst)
        return
    os.unlink(tmp)


def _fsync_directory(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)

