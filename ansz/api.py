"""Public API: compress and decompress files and streams, verify, stats and info.

This module composes the layers: :mod:`ansz.formats` maps a file to tensors, each tensor (or
run of other bytes) becomes a *segment*, segments are cut into chunks that :mod:`ansz.chunks`
codes on a thread pool (:mod:`ansz._pool`), and :mod:`ansz.container` frames them
(``docs/FORMAT.md``). The CLI calls only what is defined here (``file_stats`` comes from
:mod:`ansz.stats`).

Conventions shared by every function:

- Paths are ``str`` or ``os.PathLike``, or URLs (``s3://``, ``gs://``, ``hf://``,
  ``http(s)://``, ``memory://``...) read and written through fsspec (:mod:`ansz.remote`, the
  ``remote`` extra; ``file://`` is a local path). A remote input is read front to back in
  large range requests; a remote output is written to a temporary object next to it and
  moved into place. Regular files are read with ``pread``
  (:class:`ansz._io.PositionalFile`), never mapped: a file truncated by another process
  meanwhile is an AnszError, not a SIGBUS. At most ``4 * threads`` chunks are in flight, so
  memory stays bounded whatever the file size. A compressed input that changed while it was
  read (size, mtime or ctime) fails rather than give a container with a wrong sha256.
- Output files are written atomically (:func:`ansz._io.atomic_output`): a temporary file in the
  destination's directory, renamed over ``dst`` only when complete (and fsync'ed first when
  ``sync=True``, which callers about to delete the source pass). On any error or KeyboardInterrupt
  the temporary file is removed and nothing exists under ``dst``. An existing ``dst`` is
  replaced only with ``overwrite=True`` (else :class:`~ansz.errors.OutputExistsError`), and
  never if it is the input itself or a directory (:func:`ansz._io.check_output`, the policy
  the command line applies too). The output gets the input's permission bits and
  atime/mtime (like zstd). The input is never modified.
- ``threads=None`` (or 0) uses ``os.cpu_count()`` threads. The output does not depend on the
  thread count.
- ``progress``, if given, is called in the calling thread with the cumulative number of
  original (uncompressed) bytes processed so far, after each chunk.
- Bad input raises an :class:`~ansz.errors.AnszError` subclass with a one-line message;
  ``OSError`` propagates for I/O problems (missing file, permission, disk full).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import time
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Callable, Iterator

from . import _numba_env  # noqa: F401  (sets NUMBA_CACHE_DIR before numba is imported)
from . import container
from ._io import (FileChangedError, FileRange, FileSource, PositionalFile, StreamSource,
                  atomic_output, check_output, open_regular, pwrite_all, stream_name, write_all)
from ._pool import BufferPool, ordered_map, resolve_threads
from .chunks import container_flags, decode_record, encode_payload
from .container import (COPY_BASE, COPY_CHUNK, FLAG_BASE, FLAG_BASE_FILES, FLAG_REPEATS,
                        KEPT, PLAIN, ContainerFile, ContainerWriter, Segment, StreamReader,
                        copied_chunk, copy_chunk_payload)
from .errors import AnszError, CorruptDataError, FormatError, UnsupportedError
from .formats.detect import detect, format_name
from .options import DEFAULT_LEVEL, check_chunk_size, check_coder, check_level
from .plan import PlannedSegment, chunk_code, chunk_step, file_chunks, plan_segments
from .remote import is_remote, local_path
from .stats import DtypeStats, FileStats, SegmentStats, file_stats  # noqa: F401  (the API)

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
    #: the base file it was compressed against (name hint, size, sha256), or None
    base: dict | None = None

    @property
    def ratio(self) -> float:
        return self.compressed_size / self.original_size if self.original_size else 1.0


# ---------------------------------------------------------------------------------------------
# Public functions


def compress_file(src, dst, *, threads: int | None = None, chunk_size: int | None = None,
                  level: int | None = None, coder: str | None = None, overwrite: bool = False,
                  sync: bool = False, strict: bool = False,
                  progress: Callable[[int], None] | None = None, base=None) -> CompressReport:
    """Compress the file ``src`` into the container ``dst``.

    A safetensors or GGUF file is coded tensor by tensor with each tensor's dtype; any other
    file (and a file whose header fails to parse: see ``fallback_reason``) is coded as
    generic bytes, so every file round-trips. ``chunk_size`` (bytes, range [1 KiB, 64 MiB];
    None: 1 MiB, 2 MiB at level 1, :func:`ansz.options.default_chunk_size`) bounds memory
    and is the unit of parallelism. ``level`` is one of :data:`LEVELS` (None:
    :data:`DEFAULT_LEVEL`): 1 codes for decoding speed, 2 for the smallest file. ``coder``
    picks the entropy coder of every coded stream: ``"auto"`` (the default, also for None)
    keeps whichever of rANS, Huffman and QLC is smallest (rANS alone at level 1),
    ``"rans"``, ``"huffman"`` or ``"qlc"`` forces one. ``strict=True`` raises
    :class:`~ansz.errors.FormatError` (its message the ``fallback_reason``) instead of
    coding as bytes a file that looks like, or is named, safetensors or GGUF but does not
    parse as one; nothing is then created at ``dst``.

    ``base`` (a path: a safetensors or GGUF file, or a container of one; or a directory
    of them, such as a model's shards) codes ``src`` against it: each tensor with a base
    tensor of the same name, dtype and shape is coded chunk by chunk as a copy of the
    base's bytes, a delta against them, or alone, whichever is smallest. From a directory,
    each tensor is looked for in every file (:func:`ansz.reader.open_base`), and the
    files that hold some make the base. The container records the base (name, size,
    sha256; of each file, for several) and decoding it needs that base (docs/FORMAT.md).

    Chunks that repeat an earlier chunk of ``src`` byte for byte are stored once, as
    references (docs/FORMAT.md, "Repeated chunks"); :func:`compress_stream` codes without.
    """
    start = time.perf_counter()
    nthreads, coder, level = resolve_threads(threads), check_coder(coder), check_level(level)
    chunk = check_chunk_size(chunk_size, level)
    src, dst = _name(src), _name(dst)
    if is_remote(src):  # read once, front to back: the same container as from a local file
        from . import remote

        if base is not None:
            raise AnszError(f"{src}: compressing against a base needs a local file")
        check_output(dst, src, overwrite=overwrite)
        with remote.open_stream(src) as fh, atomic_output(dst, overwrite=overwrite,
                                                          sync=sync) as out:
            result = _compress(StreamSource(fh, src), out, nthreads, chunk, progress, coder,
                               level, strict)
        return CompressReport(src, dst, *result, time.perf_counter() - start)
    with PositionalFile(src) as f, contextlib.ExitStack() as stack:
        check_output(dst, src, overwrite=overwrite)
        based = None
        if base is not None:
            if not f.regular:
                raise AnszError(f"{src}: compressing against a base needs a regular file")
            if os.path.exists(base) and os.path.samefile(base, src):
                raise AnszError(f"{src} is its own base: it could not be restored without "
                                "itself")
            if os.path.exists(base) and os.path.exists(dst) and os.path.samefile(base, dst):
                raise AnszError(f"{src}: the base {base} is the output: it would be replaced "
                                "by a container that needs it")
            based = stack.enter_context(_open_base(base, src))
        source = FileSource(f) if f.regular else StreamSource(f.fh, src)
        with atomic_output(dst, overwrite=overwrite, like=f.stat if f.regular else None,
                           sync=sync) as out:
            result = _compress(source, out, nthreads, chunk, progress, coder, level, strict,
                               based)
            if f.regular:  # rewritten in place meanwhile: the sha256 may not be of what was coded
                f.check_unchanged()
    return CompressReport(src, dst, *result, time.perf_counter() - start)


def _open_base(base, src: str):
    from .reader import open_base

    return open_base(base, src)


def compress_stream(ifh: BinaryIO, ofh: BinaryIO, *, threads: int | None = None,
                    chunk_size: int | None = None, level: int | None = None,
                    coder: str | None = None, strict: bool = False,
                    progress: Callable[[int], None] | None = None) -> CompressReport:
    """Compress everything read from ``ifh`` (read sequentially; a pipe is fine) to ``ofh``.

    Same container as :func:`compress_file`. A safetensors header (at most
    :data:`STREAM_HEADER_LIMIT` bytes) is buffered to plan the tensors; if the stream then ends
    before the data its header declares, the file is recorded as format "bytes" (with a
    ``fallback_reason``) and still round-trips. ``level`` and ``coder`` as for
    :func:`compress_file`. ``strict=True`` raises FormatError instead of falling back to
    bytes: before anything is written to ``ofh`` for a header that does not parse, and, for
    a stream that ends early, at its end, when the chunks written to ``ofh`` (without an
    index: not a container) are to be discarded by the caller.
    """
    start = time.perf_counter()
    nthreads, coder, level = resolve_threads(threads), check_coder(coder), check_level(level)
    chunk = check_chunk_size(chunk_size, level)
    result = _compress(StreamSource(ifh, stream_name(ifh)), ofh, nthreads, chunk, progress,
                       coder, level, strict)
    return CompressReport(stream_name(ifh), stream_name(ofh), *result,
                          time.perf_counter() - start)


def decompress_file(src, dst, *, threads: int | None = None, overwrite: bool = False,
                    sync: bool = False, progress: Callable[[int], None] | None = None,
                    base=None) -> DecompressReport:
    """Restore the original file from the container ``src`` into ``dst``.

    The header, trailer and index are validated before ``dst`` is created; every chunk's sizes
    and xxh3 checksum are checked as it is decoded. The whole-file sha256 is *not* computed
    (it would cap throughput at ~1.5 GB/s); :func:`verify_file` checks it.

    A container compressed against a base needs that base as ``base`` (a path), and is
    read from a file, not a pipe. The base's size (a container base's sha256) and the bytes
    of the first chunk that uses it are checked before ``dst`` is created, every other
    chunk's base bytes as they are read (the index records their xxh3): a missing or wrong
    base raises :class:`~ansz.errors.BaseMismatchError` naming the base needed, and ``dst`` is
    not created.
    """
    start = time.perf_counter()
    nthreads = resolve_threads(threads)
    src, dst = _name(src), _name(dst)
    with _open_input(src) as f, contextlib.ExitStack() as stack:
        check_output(dst, src, overwrite=overwrite)
        if not f.regular:  # a pipe or device: decode front to back
            if base is not None:
                raise AnszError(f"{src}: decoding against a base needs the container as a file")
            with atomic_output(dst, overwrite=overwrite, sync=sync) as out:
                sizes = _decode_stream(f.fh, out, nthreads, progress)
            return DecompressReport(src, dst, *sizes, time.perf_counter() - start)
        cf = _container_file(f)
        based = _base_for(cf, base, src, stack)
        with atomic_output(dst, overwrite=overwrite, like=getattr(f, "stat", None),
                           sync=sync) as out:
            done = 0
            pool = BufferPool(cf.max_chunk_size, nthreads)
            decode, chunks = _chunk_decoder(cf, pool, based, src), cf.index.chunks
            fd = None if is_remote(dst) else out.fileno()  # a store's object: in order

            def decode_and_write(i: int):
                # Each worker writes its chunk at its place (the index's offsets are checked
                # to tile the original): the copy into the page cache runs on every thread,
                # not on the one that collects the results.
                data = decode(i)
                if fd is not None:
                    pwrite_all(fd, data, chunks[i].original_offset)
                return data

            for data in ordered_map(decode_and_write, range(len(chunks)), nthreads):
                if fd is None:
                    write_all(out, data)
                done += data.size
                pool.put(data)
                if progress is not None:
                    progress(done)
    return DecompressReport(src, dst, f.size, cf.index.original_size, time.perf_counter() - start)


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
    sizes = _decode_stream(ifh, ofh, resolve_threads(threads), progress)
    return DecompressReport(stream_name(ifh), stream_name(ofh), *sizes,
                            time.perf_counter() - start)


def verify_file(path, original=None, *, threads: int | None = None, base=None) -> VerifyReport:
    """Decode the container at ``path`` completely and check it; never raises for bad data.

    Checks the header, trailer and index, every chunk's record and xxh3 checksum, the total
    size and the sha256 of the decoded bytes; with ``original`` (a path), also compares the
    decoded bytes with that file. A damaged container gives ``ok=False`` with a one-line
    ``message`` and, when a chunk is at fault, ``first_bad`` naming it. Raises only OSError
    (missing or unreadable files) and AnszError for a path that is not a regular file.
    ``base`` as for :func:`decompress_file`; a missing or wrong one gives ``ok=False``.
    """
    path = _name(path)
    nthreads = resolve_threads(threads)
    with _open_input(path, regular=True) as f, contextlib.ExitStack() as stack:
        try:
            cf = _container_file(f)
            based = _base_for(cf, base, path, stack)
        except AnszError as e:
            return VerifyReport(path, False, 0, "", None, str(e))
        if original is None:
            return _verify(path, cf, None, None, nthreads, based)
        original = _name(original)
        with _open_input(original, regular=True) as orig:
            return _verify(path, cf, orig, original, nthreads, based)


def verify_stream(ifh: BinaryIO, original=None, *,
                  threads: int | None = None) -> VerifyReport:
    """Decode a container read sequentially from ``ifh`` (a pipe is fine) and check it as
    :func:`verify_file` does: every record and xxh3 checksum, the index and trailer, the
    total size and the sha256 of the decoded bytes; with ``original`` (a path), also
    compare the decoded bytes with that file. Nothing is written.

    Bad data gives ``ok=False`` with a one-line ``message``; it stops at the first bad
    chunk (``first_bad`` "chunk N"). ``original_size`` and ``sha256`` are the container's,
    known only once its index (at the end) is read: 0 and "" before. Raises
    :class:`~ansz.errors.UnsupportedError` for a container whose file header or index needs
    a newer ansz (the data may be sound), OSError for I/O problems.
    """
    name = stream_name(ifh)
    nthreads = resolve_threads(threads)

    def failed(message: str, first_bad: str | None = None) -> VerifyReport:
        return VerifyReport(name, False, 0, "", first_bad, message)

    with contextlib.ExitStack() as stack:
        if original is not None:
            original = _name(original)
        orig = (stack.enter_context(_open_input(original, regular=True))
                if original is not None else None)
        try:
            reader = StreamReader(ifh)
        except UnsupportedError:
            raise
        except AnszError as e:
            return failed(str(e))
        sha = hashlib.sha256()
        done, differs = 0, ""
        try:
            # a chunk that fails is bad, whatever the reason: FAILED
            for i, (data, err) in enumerate(_stream_chunks(reader, nthreads, catch=True)):
                if err is not None:
                    return failed(str(err), f"chunk {i}")
                sha.update(data)
                if orig is not None and not differs:
                    differs = _first_difference(orig, original, done, data)
                done += data.size
        except UnsupportedError:  # the index needs a newer ansz
            raise
        except AnszError as e:  # framing, truncation, the index or trailer
            return failed(str(e))
        index = reader.index
        if index is None or done != index.original_size:  # records() checked both
            return failed("container ended before its index")

        def report(ok: bool, message: str) -> VerifyReport:
            return VerifyReport(name, ok, index.original_size, index.sha256, None, message)

        if sha.hexdigest() != index.sha256:
            return report(False, "sha256 of the decoded data does not match the container's")
        if orig is not None and orig.size != done:
            return report(False, f"original {original} is {orig.size} bytes, the container "
                                 f"holds {done}")
        if differs:
            return report(False, differs)
        what = f", identical to {original}" if original is not None else ""
        return report(True, f"OK: {done} bytes, sha256 {index.sha256}{what}")


def _first_difference(orig: PositionalFile, original: Any, offset: int, data: Any) -> str:
    """"decoded bytes differ from ORIGINAL at byte N" for the first byte of ``data`` (the
    decoded bytes at ``offset``) that the file ``orig`` does not hold, or ""."""
    import numpy as np

    theirs = orig.read_scratch(offset, data.size)  # shorter past the original's end
    n = min(theirs.size, data.size)
    if n and not np.array_equal(theirs[:n], data[:n]):
        return (f"decoded bytes differ from {original} at byte "
                f"{offset + int(np.flatnonzero(theirs[:n] != data[:n])[0])}")
    return ""


def read_info(path) -> ContainerInfo:
    """Describe a container from its header, trailer and index only (no chunk is read)."""
    path = _name(path)
    if is_remote(path):  # the first and last bytes, and the index if it is larger
        from .remote import RemoteFile

        with RemoteFile(path) as rf:
            rf.hold_ends()
            size = rf.size
            cf = ContainerFile(rf.read_at, size)
    else:
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
                         index.format, segments, len(index.chunks), cf.max_chunk_size,
                         None if index.base is None else dict(index.base))


# ---------------------------------------------------------------------------------------------
# Compression


def _compress(source, ofh: BinaryIO, nthreads: int, chunk_size: int,
              progress: Callable[[int], None] | None,
              coder: str = "auto", level: int = DEFAULT_LEVEL, strict: bool = False,
              base=None) -> tuple[int, int, str, str | None]:
    """Code ``source`` into ``ofh``: ``(original size, container size, format, reason)``;
    ``strict``: FormatError(reason) rather than a fallback to bytes. ``base``: an open
    :class:`ansz.reader.BaseFile` to code against (``source`` is then a FileSource)."""
    layout, reason = detect(source)
    if strict and reason is not None:  # before the writer writes the file header
        raise FormatError(reason)
    plan = plan_segments(layout, source.size)
    spans: list = [None] * len(plan)
    flags, record, repeats = container_flags(chunk_size), None, None
    if base is not None:
        from .base import base_spans
        from .reader import BaseParts

        # the base's record goes in the index, at the end: its sha256 (of a plain base, a
        # read of the whole file) is computed beside the coding
        spans, flags, record = base_spans(plan, base, source.read_at), flags | FLAG_BASE, {}
        if isinstance(base, BaseParts):
            flags |= FLAG_BASE_FILES
    if isinstance(source, FileSource) and all(seg.end is not None for seg in plan):
        from .repeats import find_repeats

        repeats = find_repeats(source.read_at, list(file_chunks(plan, chunk_size)))
        if repeats.copies:
            flags |= FLAG_REPEATS
        else:
            repeats = None
    writer = ContainerWriter(ofh, chunk_size, flags, record,
                             repeats.kept_size if repeats is not None else 0)
    ends: dict[int, int] = {}  # segment -> where its data actually ended
    base_hashes: dict[int, list[int]] = {}  # segment -> its chunks' base bytes' xxh3
    with source.hasher(2 * nthreads + 2) as sha, _beside(
            base.identity if base is not None else None) as identity:
        items = _chunk_items(source, plan, chunk_size, sha, ends)
        done = 0
        # base offset of each segment's bytes: base position = original position + shift
        shifts = [None if sp is None else sp[0] - seg.start for sp, seg in zip(spans, plan)]

        copies = repeats.copies if repeats is not None else None

        def encode(item):
            return _encode_item(item, coder, level, base, shifts, copies)

        for segment, code, n, (kind, payload, chash), bhash in ordered_map(encode, items,
                                                                          nthreads):
            if repeats is not None:
                if kind == COPY_CHUNK and writer.chunks[copies[done]].content_hash != chash:
                    raise FileChangedError(f"{source.name} changed while it was compressed")
                if done in repeats.kept:
                    kind |= KEPT
            if bhash is not None:
                base_hashes.setdefault(segment, []).append(bhash)
            writer.add_chunk(segment, code, payload, n, chash, kind)
            done += n
            source.release(done)
            if progress is not None:
                progress(done)
        digest = sha.hexdigest()
        if base is not None:
            writer.base = identity()
    segments, truncated = _final_segments(plan, ends, spans, base_hashes)
    if strict and truncated is not None:  # before the index: ofh holds no container
        raise FormatError(truncated)
    if truncated is not None:
        fmt, reason = "bytes", truncated
    else:
        fmt = "bytes" if layout is None else format_name(layout)
    size = writer.finish(segments, fmt=fmt, sha256=digest)
    return writer.original_size, size, fmt, reason


@contextlib.contextmanager
def _beside(fn: Callable[[Any], Any] | None) -> Iterator[Callable[[], Any]]:
    """Run ``fn(stop)`` on a thread of its own while the block runs; yields a callable that
    waits for its result (or raises its exception). On an error in the block ``stop`` (a
    threading.Event) is set, which ``fn`` checks now and then to give up early; the thread
    is waited for on leaving in any case: nothing it reads is closed under it. ``fn`` None:
    nothing runs."""
    if fn is None:
        yield lambda: None
        return
    import threading
    from concurrent.futures import ThreadPoolExecutor

    stop = threading.Event()
    with ThreadPoolExecutor(1, thread_name_prefix="ansz-beside") as pool:
        future = pool.submit(fn, stop)
        try:
            yield future.result
        except BaseException:
            stop.set()
            raise


def _chunk_items(source, plan: list[PlannedSegment], chunk_size: int, sha,
                 ends: dict[int, int]) -> Iterator[tuple[int, int, Any, int]]:
    """``(segment, dtype code, data, original offset)`` for every chunk, in order; runs in
    the calling thread.

    Records in ``ends`` where each visited segment's data really ended (a stream may end
    early). Chunks never split an element; a short final piece that is not whole elements
    is coded as BYTES.
    """
    for si, seg in enumerate(plan):
        code, step = chunk_step(seg, chunk_size)
        pos = seg.start
        while seg.end is None or pos < seg.end:
            want = step if seg.end is None else min(step, seg.end - pos)
            data = source.read(pos, want)
            if len(data):
                sha.update(data)
                yield si, chunk_code(code, len(data)), data, pos
                pos += len(data)
            if len(data) < want:  # end of a stream
                ends[si] = pos
                return
        ends[si] = pos


def _encode_item(item: tuple[int, int, Any, int], coder: str, level: int, base=None,
                 shifts: list | None = None, copies: dict[int, int] | None = None
                 ) -> tuple[int, int, int, tuple[int, bytes, int], int | None]:
    """Code one chunk: ``(segment, code, length, (kind, payload, hash), base hash)``; runs
    on a worker thread, which reads a file's bytes (and the base's) itself.
    ``shifts[segment]`` is where the segment's base bytes are relative to its own (None:
    it has none, and the base hash is None). ``copies[offset]`` is the chunk that the
    chunk at that original offset repeats (a COPY_CHUNK, only hashed)."""
    segment, code, data, pos = item
    if isinstance(data, FileRange):
        data = data.load()
    shift = shifts[segment] if shifts is not None else None
    based = base is not None and shift is not None
    if copies is not None and pos in copies:
        return (segment, code, len(data),
                (COPY_CHUNK, copy_chunk_payload(copies[pos]), container.content_hash(data)),
                container.content_hash(base.read(pos + shift, len(data))) if based else None)
    if based:
        from .base import encode_against

        before = base.read(pos + shift, len(data))
        kind, payload, chash = encode_against(data, before, code, coder=coder, level=level)
        return (segment, code, len(data), (kind, payload, chash),
                chash if kind == COPY_BASE else container.content_hash(before))
    return (segment, code, len(data),
            (PLAIN, *encode_payload(data, code, coder=coder, level=level)), None)


def _final_segments(plan: list[PlannedSegment], ends: dict[int, int], spans: list | None = None,
                    base_hashes: dict[int, list[int]] | None = None
                    ) -> tuple[list[Segment], str | None]:
    """The segments as coded (with their base ranges, ``spans``, and their chunks' base
    hashes, if given), and why the plan could not be followed (a stream ended early)."""
    truncated = None
    segments = []
    for si, seg in enumerate(plan):
        if si not in ends:
            break
        end = ends[si]
        if seg.end is not None and end < seg.end:
            what = f"tensor {seg.name!r}" if seg.name is not None else "the header"
            truncated = (f"input ended at byte {end}, before the end of {what} (byte "
                         f"{seg.end})")
        if end > seg.start or seg.name is not None:
            span = spans[si] if spans is not None else None
            segments.append(Segment(seg.name, seg.dtype, seg.shape, seg.start, end, base=span,
                                    base_hashes=None if span is None else base_hashes[si]))
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
    for data, _ in _stream_chunks(reader, nthreads):
        write_all(ofh, data)
        done += data.size
        if progress is not None:
            progress(done)
    if reader.index is None or done != reader.index.original_size:  # records() checked both
        raise CorruptDataError("container ended before its index")
    return reader.offset, done


def _stream_chunks(reader: StreamReader, nthreads: int, *, catch: bool = False
                   ) -> Iterator[tuple[Any, AnszError | None]]:
    """``(decoded bytes, None)`` of each chunk ``reader`` yields, in order, decoded on
    ``nthreads`` threads; with ``catch``, a chunk that fails gives ``(None, error)`` instead
    of raising. The bytes are valid until the next item (their buffer is then reused).
    A COPY_CHUNK gives the bytes of the KEPT chunk it repeats, which are kept for it
    (at most the header's Kept_Size in all)."""
    import numpy as np

    pool = BufferPool(reader.max_chunk_size, nthreads)
    payloads = BufferPool(reader.payload_capacity, nthreads)  # read into, reused likewise
    kept: dict[int, Any] = {}

    def work(item):
        rec, payload = item
        try:
            if rec.kind == COPY_CHUNK:  # records() checked that it names a kept chunk
                return rec, copied_chunk(rec, payload), None
            return rec, decode_record(rec, payload, pool.get(rec.decoded_length)), None
        except AnszError as e:
            if not catch:
                raise
            return rec, None, e
        finally:
            payloads.put(payload.obj)

    for rec, data, err in ordered_map(work, reader.records(payloads), nthreads):
        if rec.kind == COPY_CHUNK:
            yield kept[data], None
            continue
        if data is not None and rec.kept:
            kept[rec.number] = np.array(data, copy=True)
        yield data, err
        if data is not None:
            pool.put(data)


#: A container or original read over a network by decompress_file and verify_file is fetched
#: this many bytes at a time (at least one chunk record), front to back.
REMOTE_READAHEAD = 16 << 20


def _name(path) -> str:
    """A path or URL as a string, a ``file://`` URL as its local path."""
    return local_path(os.fspath(path))


def _open_input(path: str, *, regular: bool = False):
    """``path`` opened for positional reads: a :class:`PositionalFile`, or for a URL a
    :class:`ansz.remote.RemoteFile` fetching :data:`REMOTE_READAHEAD` bytes at a time.
    With ``regular``, AnszError unless it is a regular file."""
    if is_remote(path):
        from .remote import RemoteFile

        return RemoteFile(path, readahead=REMOTE_READAHEAD)
    return open_regular(path) if regular else PositionalFile(path)


def _container_file(f: PositionalFile) -> ContainerFile:
    """A container read with ``pread``; chunk records go to each thread's reused buffer."""
    return ContainerFile(f.read_at, f.size, read_record=f.read_scratch)


def _chunk_decoder(cf: ContainerFile, pool: "BufferPool | None" = None,
                   base=None, what: str = "the container") -> Callable[[int], Any]:
    if cf.index.base is not None or cf.flags & FLAG_REPEATS:
        from .base import chunk_decoder

        decode_any = chunk_decoder(cf, base, what)
    else:
        def decode_any(i: int, out):
            return decode_record(*cf.chunk(i), out)

    def decode(i: int):
        out = None if pool is None else pool.get(cf.index.chunks[i].decoded_length)
        return decode_any(i, out)

    return decode


def _base_for(cf: ContainerFile, base, what: str, stack: contextlib.ExitStack):
    """The checked base a container needs (an open BaseFile closed with ``stack``), or None
    for a container without one (giving one is then an error)."""
    if cf.index.base is None and base is None:
        return None
    from .reader import open_base_for

    based = open_base_for(cf, base, what)
    if based is not None:
        stack.callback(based.close)
    return based


def _verify(path: str, cf: ContainerFile, orig: PositionalFile | None, original: str | None,
            nthreads: int, base=None) -> VerifyReport:
    import numpy as np

    index = cf.index

    def report(ok: bool, first_bad: str | None, message: str) -> VerifyReport:
        return VerifyReport(path, ok, index.original_size, index.sha256, first_bad, message)

    if orig is not None and orig.size != index.original_size:
        return report(False, None, f"original {original} is {orig.size} bytes, the container "
                                   f"holds {index.original_size}")
    pool = BufferPool(cf.max_chunk_size, nthreads)
    decode = _chunk_decoder(cf, pool, base, path)

    def work(i: int):
        try:
            return decode(i), None
        except AnszError as e:
            return None, e

    sha = hashlib.sha256()
    bad, first_bad, message = 0, None, ""
    for i, (data, err) in enumerate(ordered_map(work, range(len(index.chunks)), nthreads)):
        entry = index.chunks[i]
        if err is not None:
            bad += 1
            if first_bad is None:
                first_bad, message = _chunk_label(index, cf.segment_of, i), str(err)
            continue
        if first_bad is not None:
            continue
        sha.update(data)
        if orig is not None:
            theirs = orig.read_scratch(entry.original_offset, entry.decoded_length)
            if not np.array_equal(theirs, data):
                at = entry.original_offset + int(np.flatnonzero(theirs != data)[0])
                first_bad = _chunk_label(index, cf.segment_of, i)
                message = f"decoded bytes differ from {original} at byte {at}"
        pool.put(data)
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
    if seg.dtype is not None:  # a run of small tensors
        return f"{seg.dtype} tensors [{seg.start}, {seg.end}) chunk {j}"
    return f"bytes [{seg.start}, {seg.end}) chunk {j}"
