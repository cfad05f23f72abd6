"""Finding the chunks of a file that repeat an earlier chunk byte for byte (tied embeddings,
shared heads, layers saved twice), before any chunk is coded, so that they are stored once
(docs/FORMAT.md, "Repeated chunks").

A stream decoder can only copy a chunk it kept, so the first chunk of each repeated run
of bytes is marked to be kept before it is written; hence the search runs on the whole
file first. It costs a few small reads per chunk: chunks of the same length and dtype
code are compared by a sample of their bytes (start, middle and end), and only chunks
whose samples agree are hashed and compared in full. Trained weights differ in their
first bytes, so for a file without repeats nothing is read in full.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from .container import MAX_KEPT_SIZE, content_hash

#: Bytes read from a chunk's start, middle and end to tell chunks apart.
SAMPLE = 64


@dataclass
class Repeats:
    """Which chunks (by original offset) repeat which earlier chunk (by number)."""

    copies: dict[int, int] = field(default_factory=dict)  #: offset -> number of the chunk it repeats
    kept: set[int] = field(default_factory=set)  #: offsets of the chunks repeated later
    kept_size: int = 0  #: their total length (at most MAX_KEPT_SIZE)


def find_repeats(read_at: Callable[[int, int], bytes], chunks: list[tuple[int, int, int, int]],
                 *, kept_limit: int = MAX_KEPT_SIZE) -> Repeats:
    """The repeats among ``chunks`` (``(segment, dtype code, start, length)`` in the order
    they are written, as :func:`ansz.plan.file_chunks` gives them), read with
    ``read_at(offset, n)``. A chunk repeats the first earlier chunk with the same length,
    dtype code and bytes. The kept chunks' lengths add up to at most ``kept_limit``: a
    repeat that would need more is coded as it is."""
    by_shape: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for number, (_, code, start, n) in enumerate(chunks):
        by_shape.setdefault((n, code), []).append((number, start))
    out = Repeats()
    candidates: list[tuple[int, int, int, int]] = []  # (number, start, n, code): samples agree
    for (n, code), group in by_shape.items():
        # first by the chunks' first bytes (one small read each), then by their middle and
        # last bytes too: most groups of chunks that differ part at the first read
        for sample in (_head, _middle_and_end):
            group = _alike(group, lambda start: sample(read_at, start, n))
        candidates.extend((number, start, n, code) for number, start in group)
    first: dict[tuple[int, int, int], tuple[int, int]] = {}  # (hash, n, code) -> (number, start)
    for number, start, n, code in sorted(candidates):
        data = read_at(start, n)
        if len(data) != n:  # the file is shorter than planned: compression will say so
            break
        key = (content_hash(data), n, code)
        earlier = first.get(key)
        if earlier is None:
            first[key] = (number, start)
            continue
        j, at = earlier
        if read_at(at, n) != data:  # a hash collision: not a repeat
            continue
        if at not in out.kept:
            if out.kept_size + n > kept_limit:
                continue
            out.kept.add(at)
            out.kept_size += n
        out.copies[start] = j
    return out


def _alike(group: list[tuple[int, int]], key: Callable[[int], bytes]) -> list[tuple[int, int]]:
    """The members of ``group`` (``(number, start)``) whose ``key(start)`` another shares."""
    if len(group) < 2:
        return []
    by_key: dict[bytes, list[tuple[int, int]]] = {}
    for number, start in group:
        by_key.setdefault(key(start), []).append((number, start))
    return [m for same in by_key.values() if len(same) > 1 for m in same]


def _head(read_at: Callable[[int, int], bytes], start: int, n: int) -> bytes:
    """The first bytes of the ``n`` bytes at ``start``."""
    return read_at(start, min(n, SAMPLE))


def _middle_and_end(read_at: Callable[[int, int], bytes], start: int, n: int) -> bytes:
    """The bytes at the middle and end of the ``n`` bytes at ``start`` (all of them past
    the first :data:`SAMPLE`, which :func:`_head` has compared)."""
    if n <= 3 * SAMPLE:
        return read_at(start + SAMPLE, max(0, n - SAMPLE))
    mid = start + (n - SAMPLE) // 2
    return read_at(mid, SAMPLE) + read_at(start + n - SAMPLE, SAMPLE)
