"""Running chunks on threads: how many, in order, with bounded memory.

:func:`ordered_map` is ``map`` on a thread pool that yields results in order and keeps a
bounded number of items in flight; the chunk kernels release the GIL, so chunks really run
in parallel. :class:`BufferPool` recycles the chunk-sized buffers those chunks are read and
decoded into. Nothing here knows what a chunk is.
"""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterable, Iterator

from .errors import AnszError


def resolve_threads(threads: int | None) -> int:
    """The number of threads to use: ``threads``, or every core for None or 0."""
    if threads is None or threads == 0:
        return os.cpu_count() or 1
    if type(threads) is not int or threads < 0:
        raise AnszError(f"threads must be a non-negative integer, got {threads!r}")
    return threads


#: Items ordered_map keeps in flight per thread. With 2 per thread the workers ran dry
#: whenever the caller's thread (writing the previous result) was not scheduled at once.
IN_FLIGHT_PER_THREAD = 4


def in_flight(nthreads: int) -> int:
    """How many items :func:`ordered_map` has in flight at most on ``nthreads`` threads."""
    return 1 if nthreads <= 1 else IN_FLIGHT_PER_THREAD * nthreads


def ordered_map(fn: Callable[[Any], Any], items: Iterable[Any], nthreads: int) -> Iterator[Any]:
    """``map(fn, items)`` on ``nthreads`` threads, results in order, at most
    IN_FLIGHT_PER_THREAD * nthreads in flight.

    ``items`` is consumed lazily in the calling thread. With one thread everything runs inline.
    """
    if nthreads <= 1:
        for item in items:
            yield fn(item)
        return
    limit = in_flight(nthreads)
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


class BufferPool:
    """Chunk-sized buffers (decoded chunks, or payloads read from a stream), handed back
    once their chunk is done with them.

    A fresh chunk-sized array costs a page fault per 4 KiB when first written (a quarter of a
    bf16 chunk's decode time on this VM), so buffers are reused. Every buffer is
    ``buffer_size`` bytes (for decoded chunks the container's Max_Chunk_Size, so any chunk
    fits any buffer; pages never written are never resident), and at most one more than the
    chunks :func:`ordered_map` keeps in flight for ``nthreads`` are kept: memory stays within
    (in flight + 1) x the largest buffer used, whatever sizes a file declares. A chunk never
    gets a buffer still held by another (``get`` pops, ``put`` pushes).
    """

    def __init__(self, buffer_size: int, nthreads: int):
        import threading

        self._free: list = []
        self._lock = threading.Lock()
        self._size = buffer_size
        self._limit = in_flight(nthreads) + 1

    def get(self, size: int):
        import numpy as np

        with self._lock:
            if self._free:
                return self._free.pop()[:size]
        return np.empty(self._size, np.uint8)[:size]

    def put(self, arr) -> None:
        base = arr if arr.base is None else arr.base
        with self._lock:
            if len(self._free) < self._limit and base.size == self._size:
                self._free.append(base)
