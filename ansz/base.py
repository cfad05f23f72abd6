"""Coding a file against a base file (a fine-tune against the model it was tuned from, a
checkpoint against the one before): the base's bytes, the pairing of tensors, and the
chunk kinds that use them (docs/FORMAT.md, "Chunk kinds").

- :class:`BaseFile` opens a base: a safetensors or GGUF file, or a container of one (whose
  needed bytes are decoded). It names the base's tensors, reads any byte range of it, and
  checks that it has the size a container records (and, given as a container, the sha256).
- :func:`base_spans` pairs the segments of a plan with base tensors of the same name, dtype
  and shape.
- :func:`encode_against` codes one chunk that has base bytes: a COPY_BASE chunk if they are
  equal, else the smaller of a DELTA payload and the plain one.
- :func:`chunk_decoder` decodes any chunk of a container, whatever its kind, with the base.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any, Callable

import numpy as np

from . import container
from ._io import FileSource, PositionalFile
from .chunks import decode_record, encode_payload
from .container import COPY_BASE, COPY_CHUNK, DELTA, PLAIN, ContainerFile, content_hash
from .delta import decode_delta, delta_capable, encode_delta
from .errors import AnszError, BaseMismatchError, CorruptDataError
from .options import DEFAULT_LEVEL

_PIECE = 16 << 20  #: bytes read at a time when hashing a base
_COPY_CHUNK = np.dtype("<u4")


class BaseFile:
    """An open base file: ``tensors`` ({name: (dtype, shape, start, end)}), ``size`` (of the
    original bytes), :meth:`read` of any range (thread-safe), :meth:`identity` (what a
    container records) and :meth:`check` (against a record). Use as a context manager."""

    def __init__(self, path):
        self.path = os.fspath(path)
        self._file = PositionalFile(self.path)
        self._container: Any = None  # an ansz.reader.AnszFile for a container base
        self._tensors = None
        try:
            if not self._file.regular:
                raise AnszError(f"base {self.path} is not a regular file")
            if self._file.read_at(0, len(container.MAGIC)) == container.MAGIC:
                self._open_container()
            else:
                self._open_plain()
        except BaseException:
            self.close()
            raise
        self._identity: dict | None = None

    def _open_plain(self) -> None:
        self.size = self._file.size
        self._tensors: dict | None = None

    @property
    def tensors(self) -> dict[str, tuple[str, tuple[int, ...], int, int]]:
        """The base's tensors (parsed at the first use: decoding needs only bytes)."""
        if self._tensors is None:
            from .formats.detect import detect

            layout, reason = detect(FileSource(self._file))
            if layout is None:
                raise AnszError(f"base {self.path} is not a safetensors or GGUF file, nor a "
                                f"container of one ({reason or 'unknown format'})")
            self._tensors = {t.name: (t.dtype, tuple(t.shape), t.start, t.end)
                             for t in layout.tensors}
        return self._tensors

    def _open_container(self) -> None:
        from .reader import AnszFile

        self._file.close()
        try:
            f = AnszFile(self.path, threads=1)  # read() runs on the caller's worker threads
        except BaseMismatchError:  # it needs a base of its own
            raise AnszError(f"base {self.path} was itself compressed against a base; "
                            "decompress it first") from None
        self._container = f
        self.size = f._cf.index.original_size
        self._tensors = dict(f._tensors)

    @property
    def name(self) -> str:
        """The base's file name as a hint for the record (a container's without ``.ansz``)."""
        name = os.path.basename(self.path)
        if self._container is not None and name.endswith(".ansz"):
            name = name[:-len(".ansz")]
        return name[:container.MAX_BASE_NAME]

    def read(self, start: int, n: int) -> np.ndarray:
        """The base's original bytes ``[start, start + n)`` (all inside it) as a uint8 array,
        which may be a per-thread buffer reused by this thread's next read."""
        if start < 0 or n < 0 or start + n > self.size:
            raise CorruptDataError(f"base range [{start}, {start + n}) lies outside the base's "
                                   f"{self.size} bytes")
        if self._container is not None:
            return self._container._decode([(start, start + n)])[0]
        return self._file.read_scratch(start, n)

    def identity(self) -> dict:
        """``{"name", "size", "sha256"}`` of the base's original bytes (a container base's
        sha256 from its index; a plain file's read once)."""
        if self._identity is None:
            if self._container is not None:
                digest = self._container._cf.index.sha256
            else:
                sha = hashlib.sha256()
                for pos in range(0, self.size, _PIECE):
                    sha.update(self.read(pos, min(_PIECE, self.size - pos)))
                digest = sha.hexdigest()
            self._identity = {"name": self.name, "size": self.size, "sha256": digest}
        return self._identity

    def check(self, record: dict, what: str) -> None:
        """Raise BaseMismatchError unless this may be the base ``record`` (an index's)
        describes: of its size, and given as a container, of its sha256. (The bytes of a
        plain base are checked chunk by chunk as they are used: :func:`chunk_decoder`.)"""
        if self.size == record["size"] and (
                self._container is None
                or self._container._cf.index.sha256 == record["sha256"]):
            return
        raise mismatch(self.path, what, record)

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
        self._file.close()

    def __enter__(self) -> "BaseFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def mismatch(path: str, what: str, record: dict, where: str = "") -> BaseMismatchError:
    """The error for a base ``path`` that is not the one ``record`` describes."""
    return BaseMismatchError(f"{path} is not the base {what} was compressed against{where}: "
                             f"{needed_base(record)}")


#: Names of the files a base directory offers (model files and containers of them).
_MODEL_NAMES = (".safetensors", ".gguf", ".safetensors.ansz", ".gguf.ansz")


def base_in_directory(directory, path, *, container=None) -> str:
    """The file of ``directory`` (a model's base, e.g. its shards) to code ``path`` against.

    To compress ``path`` (``container`` None): the model file, or container of one, holding
    the most bytes of tensors of ``path``'s names, dtypes and shapes, so that a fine-tune
    sharded otherwise than its base still finds most of its tensors; a file of ``path``'s
    own name wins a tie. To decode the container ``container`` (restoring ``path``): the
    file its index names (or that name plus .ansz). AnszError if there is none."""
    directory, path = os.fspath(directory), os.fspath(path)
    if container is not None:
        from .api import read_info

        record = read_info(container).base
        if record is None:
            return directory  # decoding says the container needs no base
        for name in (record["name"], record["name"] + ".ansz"):
            candidate = os.path.join(directory, name)
            if record["name"] and os.path.isfile(candidate):
                return candidate
        raise BaseMismatchError(f"base directory {directory} has no {record['name']}: "
                                f"{container} {needed_base(record)}")
    from .formats.detect import detect

    with PositionalFile(path) as f:
        layout, _ = detect(FileSource(f))
    wanted = {} if layout is None else {t.name: (t.dtype, tuple(t.shape), t.end - t.start)
                                        for t in layout.tensors}
    own = os.path.basename(path)
    best, best_bytes = None, 0
    for name in sorted(os.listdir(directory)):
        candidate = os.path.join(directory, name)
        if (not name.endswith(_MODEL_NAMES) or not os.path.isfile(candidate)
                or os.path.samefile(candidate, path)):
            continue
        try:
            with BaseFile(candidate) as b:
                shared = sum(n for t, (dtype, shape, n) in wanted.items()
                             if b.tensors.get(t, (None, None))[:2] == (dtype, shape))
        except AnszError:
            continue  # not a model file: nothing to share
        if shared > best_bytes or (shared == best_bytes and shared
                                   and name in (own, own + ".ansz")):
            best, best_bytes = candidate, shared
    if best is None:
        for name in (own, own + ".ansz"):
            if os.path.isfile(os.path.join(directory, name)):
                return os.path.join(directory, name)
        raise AnszError(f"base directory {directory} has no model file with a tensor of "
                        f"{own}")
    return best


def needed_base(record: dict) -> str:
    """"it needs NAME (N bytes, sha256 ...)" for an index's base record."""
    return (f"it needs {record['name'] or 'its base'} ({record['size']} bytes, sha256 "
            f"{record['sha256']})")


def base_spans(plan, base: BaseFile) -> list[tuple[int, int] | None]:
    """For each planned segment, the base bytes ``[start, end)`` of the base tensor of the
    same name, dtype and shape (and so length), or None."""
    out = []
    for seg in plan:
        t = base.tensors.get(seg.name) if seg.name is not None else None
        if (t is not None and t[0] == seg.dtype and t[1] == tuple(seg.shape or ())
                and seg.end is not None and t[3] - t[2] == seg.end - seg.start):
            out.append((t[2], t[3]))
        else:
            out.append(None)
    return out


#: A DELTA payload of at most this fraction of the chunk is kept without also trying the
#: plain coding (which float chunks never take below ~0.6 of their size).
DELTA_SURE = 0.5


def encode_against(data, before, dtype_code: int, *, coder: str = "auto",
                   level: int = DEFAULT_LEVEL) -> tuple[int, bytes, int]:
    """``(kind, payload, content hash)`` of chunk ``data`` whose base bytes are ``before``
    (equal lengths): COPY_BASE if they are equal; else the smaller of a DELTA payload (for
    a dtype :func:`delta_capable` accepts) and the plain one."""
    a = np.frombuffer(data, np.uint8) if not isinstance(data, np.ndarray) else data
    if np.array_equal(a, before):
        return COPY_BASE, b"", content_hash(a)
    delta = None
    if delta_capable(dtype_code):
        delta = encode_delta(a, before, dtype_code, coder=coder, level=level)
        if len(delta) <= DELTA_SURE * a.size:
            return DELTA, delta, content_hash(a)
    payload, chash = encode_payload(a, dtype_code, coder=coder, level=level)
    if delta is not None and len(delta) < len(payload):
        return DELTA, delta, chash
    return PLAIN, payload, chash


def copy_chunk_payload(j: int) -> bytes:
    """The payload of a COPY_CHUNK chunk that repeats chunk ``j``."""
    return int(j).to_bytes(4, "little")


def checked_base_bytes(cf: ContainerFile, base: BaseFile, i: int, what: str) -> np.ndarray:
    """The base bytes of chunk ``i`` (in a segment with a base range), checked against the
    XXH3_64 the index records for them: BaseMismatchError if they differ."""
    seg = cf.index.segments[cf.segment_of[i]]
    entry = cf.index.chunks[i]
    data = base.read(seg.base[0] + entry.original_offset - seg.start, entry.decoded_length)
    if content_hash(data) != seg.base_hashes[i - seg.first_chunk]:
        name = f" (its bytes for tensor {seg.name!r} differ)" if seg.name else ""
        raise mismatch(base.path, what, cf.index.base, name)
    return data


def chunk_decoder(cf: ContainerFile, base: BaseFile | None, what: str = "the container"
                  ) -> Callable[[int, Any], np.ndarray]:
    """``decode(i, out=None)``: chunk ``i`` of ``cf`` decoded and checked, whatever its kind
    (into ``out``, a writable uint8 array of its length, if given). Thread-safe. A kind
    other than PLAIN needs ``base``, whose bytes are checked against the hashes the index
    records before they are used (BaseMismatchError naming the base needed)."""
    index = cf.index

    def base_bytes(i: int, rec) -> np.ndarray:
        seg = index.segments[cf.segment_of[i]]
        if seg.base is None:
            raise CorruptDataError(f"chunk {i} uses the base, but its segment has no base range")
        if base is None:
            raise BaseMismatchError(f"chunk {i} needs the base: {needed_base(index.base)}")
        return checked_base_bytes(cf, base, i, what)

    def decode(i: int, out=None, *, repeat: bool = True) -> np.ndarray:
        rec, payload = cf.chunk(i)
        if rec.kind == PLAIN:
            return decode_record(rec, payload, out)
        if out is None:
            out = np.empty(rec.decoded_length, np.uint8)
        if rec.kind == COPY_CHUNK:
            if not repeat or rec.payload_length != _COPY_CHUNK.itemsize:
                raise CorruptDataError(f"chunk {i}: malformed chunk reference")
            j = int(np.frombuffer(payload, _COPY_CHUNK)[0])
            if j >= i or index.chunks[j].decoded_length != rec.decoded_length \
                    or index.chunks[j].content_hash != rec.content_hash:
                raise CorruptDataError(f"chunk {i}: refers to chunk {j}, which it cannot repeat")
            return decode(j, out, repeat=False)
        before = base_bytes(i, rec)
        if rec.kind == COPY_BASE:
            if rec.payload_length:
                raise CorruptDataError(f"chunk {i}: a base copy has a payload")
            out[:] = before
        else:  # DELTA
            if not delta_capable(rec.dtype_code):
                raise CorruptDataError(f"chunk {i}: dtype {rec.dtype} has no delta coding")
            try:
                decode_delta(payload, before, rec.dtype_code, out)
            except CorruptDataError as e:
                raise CorruptDataError(f"chunk {i}: {e}") from None
        if content_hash(out) != rec.content_hash:
            raise CorruptDataError(f"chunk {i}: content checksum mismatch")
        return out

    return decode


def open_base_for(cf: ContainerFile, base, what: str) -> BaseFile | None:
    """The base a container needs, opened and checked (None for a container without one).
    BaseMismatchError if it needs one and ``base`` is None or another file; AnszError if
    ``base`` is given for a container that has none."""
    record = cf.index.base
    if record is None:
        if base is not None:
            raise AnszError(f"{what} was not compressed against a base; do not give one")
        return None
    if base is None:
        raise BaseMismatchError(f"{what} was compressed against a base: {needed_base(record)}; "
                                "give it with --base")
    b = BaseFile(base)
    try:
        b.check(record, what)
        # the first chunk that uses the base, checked now: a wrong base is reported before
        # anything is written, not at its first differing chunk
        index = cf.index
        for seg in index.segments:
            if seg.base is not None and seg.chunk_count:
                checked_base_bytes(cf, b, seg.first_chunk, what)
                break
    except BaseException:
        b.close()
        raise
    return b
