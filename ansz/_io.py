"""Reading and writing files and streams the way every layer of ansz needs it.

- :class:`PositionalFile`: a regular file read with ``pread`` into buffers ansz owns. Never
  ``mmap``: a mapped file that shrinks under the reader (truncated by another process) kills
  the process with SIGBUS, which no Python code can catch; a short ``pread`` is an ordinary
  error. Reads copy from the page cache into reused per-thread buffers, which measured no
  slower than faulting mapped pages in.
- :func:`read_into` and :func:`write_all`: one read / a whole write on a file object that may
  be a pipe, a socket or a terminal, in blocking or non-blocking mode. A non-blocking stream
  that has no data yet answers ``None`` (or raises BlockingIOError); that is not the end of
  the input, so these wait until the stream is ready instead.

Nothing here knows containers or models.
"""

from __future__ import annotations

import os
import select
import stat
import threading
import time
from typing import Any, BinaryIO

from .errors import AnszError


def _wait(fh: Any, *, write: bool) -> None:
    """Block until ``fh`` is ready to read (or write); poll briefly if it has no descriptor."""
    try:
        fd = fh.fileno()
    except (AttributeError, OSError, ValueError):
        time.sleep(0.001)
        return
    if write:
        select.select([], [fd], [])
    else:
        select.select([fd], [], [])


def read_into(fh: BinaryIO, view: memoryview) -> int:
    """One read into ``view``: the number of bytes read, at least 1, or 0 at the end of the
    input. Fewer bytes than asked are possible; a non-blocking stream is waited on."""
    readinto = getattr(fh, "readinto", None)
    while True:
        try:
            if readinto is not None:
                n = readinto(view)
            else:
                data = fh.read(len(view))
                n = None if data is None else len(data)
                if n:
                    view[:n] = data
        except BlockingIOError:
            n = None
        if n is not None:
            return n
        _wait(fh, write=False)


def read_fully(fh: BinaryIO, view: memoryview) -> int:
    """Fill ``view`` from ``fh``; returns the bytes read, fewer only at the end of the input."""
    got = 0
    while got < len(view):
        n = read_into(fh, view[got:])
        if not n:
            break
        got += n
    return got


def write_all(fh: BinaryIO, data) -> int:
    """Write all of ``data`` (raw and non-blocking streams may take it in pieces); returns its
    length."""
    view = memoryview(data).cast("B")
    total = len(view)
    while view:
        try:
            n = fh.write(view)
        except BlockingIOError as e:  # a buffered non-blocking stream took part of it
            n = e.characters_written
        if n is None:
            n = 0
        view = view[n:]
        if view and not n:
            _wait(fh, write=True)
    return total


class FileChangedError(AnszError):
    """A file changed (shrank, grew or was rewritten) while ansz was reading it."""


class PositionalFile:
    """A regular file opened for reading at any offset with ``pread``.

    :meth:`read_at` returns new bytes; :meth:`read_scratch` fills a buffer that belongs to the
    calling thread and is overwritten by that thread's next :meth:`read_scratch` (use it for a
    chunk that is consumed at once). A read that finds fewer bytes than the size recorded at
    open raises :class:`FileChangedError` (the file shrank), as does :meth:`check_unchanged`
    when size, modification or status-change time moved.

    :meth:`close` may be called while other threads read: the descriptor is closed when the
    last read in progress ends, and later reads raise AnszError.
    """

    def __init__(self, path: str, *, fh: BinaryIO | None = None):
        self.path = path
        self.fh = fh if fh is not None else open(path, "rb")
        try:
            self.stat = os.fstat(self.fh.fileno())
        except BaseException:
            self.fh.close()
            raise
        self.regular = stat.S_ISREG(self.stat.st_mode)
        self.size = self.stat.st_size if self.regular else 0
        self._fd = self.fh.fileno()
        self._lock = threading.Lock()
        self._readers = 0
        self._closing = False
        self._local = threading.local()

    # -- reading -------------------------------------------------------------------------

    def read_at(self, offset: int, length: int) -> bytes:
        """Up to ``length`` bytes at ``offset``: fewer only past the recorded size."""
        import numpy as np

        length = max(0, min(length, self.size - offset))
        buf = np.empty(length, np.uint8)
        self._read_exact(offset, memoryview(buf))
        return buf.tobytes()

    def read_scratch(self, offset: int, length: int):
        """Like :meth:`read_at`, into this thread's reused buffer (a uint8 array view)."""
        import numpy as np

        length = max(0, min(length, self.size - offset))
        buf = getattr(self._local, "buf", None)
        if buf is None or buf.size < length:
            buf = self._local.buf = np.empty(max(length, 1 << 16), np.uint8)
        view = buf[:length]
        self._read_exact(offset, memoryview(view))
        return view

    def read_into(self, offset: int, view: memoryview) -> None:
        """Fill ``view`` with the bytes at ``offset`` (all of them must exist)."""
        if offset + len(view) > self.size:
            raise FileChangedError(f"{self.path}: read past the end of the file")
        self._read_exact(offset, view)

    def _read_exact(self, offset: int, view: memoryview) -> None:
        with self._lock:
            if self._closing:
                raise AnszError(f"{self.path}: file is closed")
            self._readers += 1
        try:
            got = 0
            while got < len(view):
                n = os.preadv(self._fd, [view[got:]], offset + got)
                if n == 0:
                    raise FileChangedError(f"{self.path}: file shrank while it was being read "
                                           f"(ends before byte {offset + len(view)})")
                got += n
        finally:
            with self._lock:
                self._readers -= 1
                last = self._closing and self._readers == 0
            if last:
                self.fh.close()

    def check_unchanged(self) -> None:
        """Raise FileChangedError if the file's size, mtime or ctime moved since it was
        opened (it was rewritten or truncated meanwhile), as tar does."""
        try:
            now = os.fstat(self._fd)
        except OSError:
            return
        if (now.st_size, now.st_mtime_ns, now.st_ctime_ns) != (
                self.stat.st_size, self.stat.st_mtime_ns, self.stat.st_ctime_ns):
            raise FileChangedError(f"{self.path}: file changed while it was being read")

    # -- closing -------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            if self._closing:
                return
            self._closing = True
            idle = self._readers == 0
        if idle:
            self.fh.close()

    def __enter__(self) -> "PositionalFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
