"""Coding a file against a base file (a fine-tune against the model it was tuned from, a
checkpoint against the one before): the base's bytes, the pairing of tensors, and the
chunk kinds that use them (docs/FORMAT.md, "Chunk kinds").

- The base itself (an open ``ansz.reader.BaseFile``: a model file or a container of one) is
  any object with ``read(start, n)``, ``tensors``, ``size`` and ``check(record, what)``.
- :func:`base_spans` pairs the segments of a plan with base tensors of the same name, dtype
  and shape, and a tensor with no such partner with a base tensor of equal bytes.
- :func:`encode_against` codes one chunk that has base bytes: a COPY_BASE chunk if they are
  equal, else the smaller of a DELTA payload and the plain one.
- :func:`chunk_decoder` decodes any chunk of a container, whatever its kind, with the base.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .chunks import decode_record, encode_payload
from .container import (COPY_BASE, COPY_CHUNK, DELTA, FLAG_REPEATS, PLAIN, ContainerFile,
                        content_hash, copied_chunk)
from .delta import decode_delta, delta_capable, encode_delta
from .errors import BaseMismatchError, CorruptDataError
from .options import DEFAULT_LEVEL


def mismatch(path: str, what: str, record: dict, where: str = "") -> BaseMismatchError:
    """The error for a base ``path`` that is not the one ``record`` describes."""
    return BaseMismatchError(f"{path} is not the base {what} was compressed against{where}: "
                             f"{needed_base(record)}")


def needed_base(record: dict) -> str:
    """"it needs NAME (N bytes, sha256 ...)" for an index's base record; for a base of
    several files, "it needs the N files of NAME: ..." naming the first few."""
    if "parts" in record:
        parts = record["parts"]
        listed = ", ".join(f"{p['name']} ({p['size']} bytes, sha256 {p['sha256']})"
                           for p in parts[:3])
        more = f" and {len(parts) - 3} more" if len(parts) > 3 else ""
        return (f"it needs the {len(parts)} files of {record['name'] or 'its base'} "
                f"({record['size']} bytes in all), in one directory: {listed}{more}")
    return (f"it needs {record['name'] or 'its base'} ({record['size']} bytes, sha256 "
            f"{record['sha256']})")


def base_spans(plan, base: Any, read_at: Callable[[int, int], bytes] | None = None
               ) -> list[tuple[int, int] | None]:
    """For each planned segment, the base bytes ``[start, end)`` of the base tensor of the
    same name, dtype and shape (and so length), or None. With ``read_at`` (the input's
    bytes), a tensor segment that has no such partner is paired with a base tensor of its
    dtype and shape whose bytes are equal to its own, whatever its name (a tied head in one
    shard, repeating the embedding of another given as the base): its chunks then copy the
    base."""
    out: list[tuple[int, int] | None] = []
    by_shape: dict[tuple, list[tuple[int, int]]] | None = None
    for seg in plan:
        t = base.tensors.get(seg.name) if seg.name is not None else None
        if (t is not None and t[0] == seg.dtype and t[1] == tuple(seg.shape or ())
                and seg.end is not None and t[3] - t[2] == seg.end - seg.start):
            out.append((t[2], t[3]))
            continue
        span = None
        if read_at is not None and seg.name is not None and seg.end is not None:
            if by_shape is None:
                by_shape = {}
                for dtype, shape, start, end in base.tensors.values():
                    by_shape.setdefault((dtype, shape), []).append((start, end))
            span = _equal_tensor(read_at, seg, base, by_shape.get((seg.dtype, tuple(seg.shape)),
                                                                 []))
        out.append(span)
    return out


#: Bytes compared at a time when looking for a base tensor equal to an input's.
_COMPARE_PIECE = 16 << 20


def _equal_tensor(read_at, seg, base, candidates: list[tuple[int, int]]
                  ) -> tuple[int, int] | None:
    """The first of ``candidates`` (base ranges of the segment's dtype and shape) whose
    bytes equal the segment's, or None: their first bytes are compared first, then all."""
    n = seg.end - seg.start
    head = np.frombuffer(read_at(seg.start, min(n, 64)), np.uint8)
    for start, end in candidates:
        if end - start != n or not np.array_equal(base.read(start, head.size), head):
            continue
        for off in range(0, n, _COMPARE_PIECE):
            k = min(_COMPARE_PIECE, n - off)
            mine = np.frombuffer(read_at(seg.start + off, k), np.uint8)
            if not np.array_equal(base.read(start + off, k), mine):
                break
        else:
            return start, end
    return None


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


def checked_base_bytes(cf: ContainerFile, base: Any, i: int, what: str) -> np.ndarray:
    """The base bytes of chunk ``i`` (in a segment with a base range), checked against the
    XXH3_64 the index records for them: BaseMismatchError if they differ."""
    seg = cf.index.segments[cf.segment_of[i]]
    entry = cf.index.chunks[i]
    data = base.read(seg.base[0] + entry.original_offset - seg.start, entry.decoded_length)
    if content_hash(data) != seg.base_hashes[i - seg.first_chunk]:
        name = f" (its bytes for tensor {seg.name!r} differ)" if seg.name else ""
        raise mismatch(base.path, what, cf.index.base, name)
    return data


def chunk_decoder(cf: ContainerFile, base: Any, what: str = "the container"
                  ) -> Callable[[int, Any], np.ndarray]:
    """``decode(i, out=None)``: chunk ``i`` of ``cf`` decoded and checked, whatever its kind
    (into ``out``, a writable uint8 array of its length, if given). Thread-safe. DELTA and
    COPY_BASE chunks need ``base``, whose bytes are checked against the hashes the index
    records before they are used (BaseMismatchError naming the base needed); a COPY_CHUNK
    decodes the chunk it repeats (in a file with FLAG_REPEATS, a KEPT one)."""
    index = cf.index
    must_keep = bool(cf.flags & FLAG_REPEATS)  # a copy's chunk is KEPT, for stream decoders

    def base_bytes(i: int, rec) -> np.ndarray:
        seg = index.segments[cf.segment_of[i]]
        if seg.base is None:
            raise CorruptDataError(f"chunk {i} uses the base, but its segment has no base range")
        if base is None:
            raise BaseMismatchError(f"chunk {i} needs the base: {needed_base(index.base)}")
        return checked_base_bytes(cf, base, i, what)

    def decode(i: int, out=None, *, repeat: bool = True, copier: int | None = None
               ) -> np.ndarray:
        rec, payload = cf.chunk(i)
        if must_keep and copier is not None and not rec.kept:
            raise CorruptDataError(f"chunk {copier}: refers to chunk {i}, which it cannot repeat")
        if rec.kind == PLAIN:
            return decode_record(rec, payload, out)
        if out is None:
            out = np.empty(rec.decoded_length, np.uint8)
        if rec.kind == COPY_CHUNK:
            if not repeat:
                raise CorruptDataError(f"chunk {copier}: refers to chunk {i}, which it cannot "
                                       "repeat")
            j = copied_chunk(rec, payload)
            if index.chunks[j].decoded_length != rec.decoded_length \
                    or index.chunks[j].content_hash != rec.content_hash:
                raise CorruptDataError(f"chunk {i}: refers to chunk {j}, which it cannot repeat")
            return decode(j, out, repeat=False, copier=i)
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
