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
- :class:`FileSource` and :class:`StreamSource`: an input to compress, a regular file read
  where each chunk is coded or a stream read in order, each with the sha256 of everything
  (:class:`FileSha256`, :class:`BackgroundSha256`: on a thread of their own; a file's may be
  started ahead of the compression, :func:`hash_ahead`).
- :func:`check_output` and :func:`atomic_output`: the one policy for writing an output file
  (never over the input or a directory, over another file only when asked) and the atomic
  write itself (a temporary file renamed into place when complete). An output named by a
  URL goes to :mod:`ansz.remote`, which keeps the same policy; ``file://`` is a local path.

Nothing here knows containers or models.
"""

from __future__ import annotations

import errno
import hashlib
import os
import select
import stat
import tempfile
import threading
import time
from contextlib import contextmanager
from typing import Any, BinaryIO, Iterator

from .errors import AnszError, OutputExistsError
from .remote import is_remote, local_path, temporary_stem


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


def pwrite_all(fd: int, data, offset: int) -> int:
    """Write all of ``data`` at ``offset`` of the regular file ``fd`` (``os.pwrite`` may take
    it in pieces); the file position is not used, so threads can write parts of one file at
    once. Returns its length."""
    view = memoryview(data).cast("B")
    total = len(view)
    while view:
        n = os.pwrite(fd, view, offset)
        view, offset = view[n:], offset + n
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


# ---------------------------------------------------------------------------------------------
# Inputs to compress


def stream_name(fh: Any) -> str:
    """A file object's name for messages, or "<stream>"."""
    name = getattr(fh, "name", None)
    return name if isinstance(name, str) else "<stream>"


@contextmanager
def open_regular(path: str) -> Iterator[PositionalFile]:
    """``path`` opened for positional reads; AnszError unless it is a regular file."""
    with PositionalFile(path) as f:
        if not f.regular:
            raise AnszError(f"{path} is not a regular file")
        yield f


class FileRange:
    """A chunk's bytes in a regular file, read by whichever worker codes the chunk
    (:meth:`load`), into that thread's reused buffer."""

    __slots__ = ("_file", "_start", "_length")

    def __init__(self, f: PositionalFile, start: int, length: int):
        self._file, self._start, self._length = f, start, length

    def __len__(self) -> int:
        return self._length

    def load(self):
        return self._file.read_scratch(self._start, self._length)


class FileSource:
    """A compression input that is a regular file: any range, read where it is coded."""

    def __init__(self, f: PositionalFile):
        self._f = f
        self.size: int | None = f.size
        self.name = f.path
        self._hasher: FileSha256 | None = None

    def head(self, n: int) -> bytes:
        return self._f.read_at(0, n)

    def read_at(self, start: int, n: int) -> bytes:
        """Up to ``n`` bytes at ``start``, read now (fewer only past the end)."""
        return self._f.read_at(start, n)

    def read(self, start: int, n: int) -> FileRange:
        return FileRange(self._f, start, max(0, min(n, self._f.size - start)))

    def release(self, upto: int) -> None:
        """The pipeline has coded the file below ``upto``."""
        if self._hasher is not None:
            self._hasher.allow(upto)

    def hasher(self, depth: int) -> BackgroundSha256:
        """The sha256 of the whole file, computed in the background from the start (and
        kept near the pipeline by :meth:`release`): the one :func:`hash_ahead` started for
        this file, if it did."""
        self._hasher = _ahead_of(self._f) or FileSha256(self._f)
        return self._hasher


class StreamSource:
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
        while have < n:  # in pieces: a false length costs only the bytes present
            piece = bytearray(min(n - have, 1 << 20))
            got = read_fully(self._fh, memoryview(piece))
            parts.append(piece[:got])
            have += got
            if got < len(piece):
                break
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
        got += read_fully(self._fh, view[got:])
        del view
        del buf[got:]
        self._pos += got
        return buf

    def release(self, upto: int) -> None:
        pass

    def hasher(self, depth: int) -> BackgroundSha256:
        """The sha256 of the pieces :meth:`read` returns, fed to it in order."""
        return BackgroundSha256(depth)


class BackgroundSha256:
    """sha256 of the pieces given to :meth:`update`, in order, computed on its own thread.

    The digest runs at ~1.5 GB/s, which on the thread that reads the input and writes the
    container was a fifth of compression's time; hashlib releases the GIL on large buffers,
    so here it overlaps with that work. At most ``depth`` pieces wait (memory stays bounded);
    :meth:`hexdigest` waits for the rest.
    """

    def __init__(self, depth: int):
        import queue

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

    def __enter__(self) -> "BackgroundSha256":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class FileSha256(BackgroundSha256):
    """sha256 of a regular file, read by its own thread from the start.

    The pipeline's own reads hash nothing (:meth:`update` ignores them): this thread reads the
    file front to back in windows of its own. Starting at once lets the hash use the second
    core while the pipeline starts (without the kernel library, the first kernel call loads
    numba: ~0.5 s), instead of waiting for chunks the pipeline has not read yet. It stays at
    most :attr:`LEAD` bytes ahead of what the pipeline has read (:meth:`allow`), so a file
    larger than memory is not read from disk twice (pages the hasher brought in would
    otherwise be evicted before the pipeline reached them). The file's bytes are those the
    pipeline codes unless the file changes meanwhile, which ``compress_file`` checks at the
    end.
    """

    WINDOW = 4 << 20
    LEAD = 512 << 20

    def __init__(self, f: PositionalFile, *, owns_file: bool = False):
        """``owns_file``: close ``f`` when the hash ends (done or stopped)."""
        self._sha = hashlib.sha256()
        self._file = f
        self._owns_file = owns_file
        self._stop = False
        self._error: BaseException | None = None
        self._allowed = self.LEAD  # the hasher may read below this offset
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="ansz-sha256", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._hash_file()
        finally:
            if self._owns_file:
                self._file.close()

    def _hash_file(self) -> None:
        size = self._file.size
        # not numpy: hash_ahead starts this thread while the main thread imports it
        buf = memoryview(bytearray(min(self.WINDOW, size)))
        try:
            for pos in range(0, size, self.WINDOW):
                n = min(self.WINDOW, size - pos)
                with self._cond:
                    while pos + n > self._allowed and not self._stop:
                        self._cond.wait()
                    if self._stop:
                        return
                self._file.read_into(pos, buf[:n])
                self._sha.update(buf[:n])
        except BaseException as e:  # reported by hexdigest, in the pipeline's thread
            self._error = e

    def allow(self, upto: float) -> None:
        """The pipeline has read the file below ``upto``: hash up to LEAD bytes past it."""
        with self._cond:
            self._allowed = max(self._allowed, upto + self.LEAD)
            self._cond.notify()

    def update(self, piece) -> None:
        """Nothing: the file is read by this hasher's own thread."""

    def hexdigest(self) -> str:
        self.close()
        if self._error is not None:
            raise self._error
        return self._sha.hexdigest()

    def close(self) -> None:
        """Wait for the hash (the pipeline is done: no more lead limit)."""
        self.allow(float("inf"))
        self._thread.join()

    def stop(self) -> None:
        """Give up the hash: the thread ends at its next window."""
        with self._cond:
            self._stop = True
            self._cond.notify()

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is not None:  # the pipeline failed: no digest is needed
            self.stop()
        self.close()


#: The hasher :func:`hash_ahead` started and its file's identity, until a FileSource of that
#: file takes it (:func:`_ahead_of`); None when none waits.
_ahead: tuple[tuple, FileSha256] | None = None
_ahead_lock = threading.Lock()


def _identity(st: os.stat_result) -> tuple:
    """What tells that two opens found the same unchanged file (tar's test, plus the inode)."""
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def _swap_ahead(entry: tuple[tuple, FileSha256] | None) -> tuple[tuple, FileSha256] | None:
    """Put ``entry`` in the waiting slot; returns what was there."""
    global _ahead
    with _ahead_lock:
        earlier, _ahead = _ahead, entry
    return earlier


def hash_ahead(path: str) -> None:
    """Start the sha256 of the regular file ``path`` now, on a thread of its own, for a
    compression of it that follows in this process: its :class:`FileSource` takes this hash
    if the file's identity (device, inode, size, modification and status-change times) is
    unchanged, else stops it. For the ``ansz`` command, which calls it before it imports
    numpy and the kernels: the hash then runs beside that start-up instead of after it. A
    hasher started earlier and not taken is stopped. Errors are left to the compression,
    which opens the file itself: nothing is started then."""
    try:
        f = PositionalFile(path)
    except OSError:
        f = None
    if f is not None and not f.regular:
        f.close()
        f = None
    earlier = _swap_ahead(None if f is None else (_identity(f.stat),
                                                  FileSha256(f, owns_file=True)))
    if earlier is not None:
        earlier[1].stop()


def _ahead_of(f: PositionalFile) -> FileSha256 | None:
    """The hasher hash_ahead started for ``f``'s file, if its identity is unchanged; a
    hasher started for another file, or for this one before it changed, is stopped."""
    taken = _swap_ahead(None)
    if taken is None:
        return None
    identity, hasher = taken
    if identity == _identity(f.stat):
        return hasher
    hasher.stop()
    return None


# ---------------------------------------------------------------------------------------------
# Outputs


def check_output(dst: str, src: str | None = None, *, overwrite: bool = False,
                 hint: str | None = None) -> bool:
    """The overwrite policy, checked before anything is written to ``dst``; the API and the
    command line both apply it. Returns whether ``dst`` exists (it may then be replaced:
    ``overwrite`` was given).

    Never replaced, even with ``overwrite``: the input ``src`` itself (under any name: a
    hard link, a symbolic link) and a directory (:class:`AnszError`). Any other existing
    ``dst`` (a file, a symbolic link, a device) only with ``overwrite``: else
    :class:`OutputExistsError`, whose message ends with ``hint`` if given (the command
    line's "use -f to overwrite"). :func:`atomic_output` keeps to the same rule when it
    publishes, for a file that appeared after this check.
    """
    if is_remote(dst):
        from . import remote

        return remote.check_output(dst, src, overwrite=overwrite, hint=hint)
    dst, src = local_path(dst), local_path(src)
    if not os.path.lexists(dst):
        return False
    if src is not None and not is_remote(src):
        try:
            same = os.path.samefile(src, dst)
        except OSError:
            same = False
        if same:
            raise AnszError(f"input and output are the same file ({dst})")
    if os.path.isdir(dst):
        raise AnszError(f"output {dst} is a directory")
    if not overwrite:
        raise OutputExistsError(dst) if hint is None else OutputExistsError(dst, hint)
    return True


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
    or about the temporary file, names ``dst`` (``filename``). A URL ``dst`` is written by
    :func:`ansz.remote.atomic_output` (``like`` and ``sync`` do not apply there).
    """
    dst = os.fspath(dst)
    if is_remote(dst):  # a temporary object next to it, moved into place
        from . import remote

        with remote.atomic_output(dst, overwrite=overwrite) as fh:
            yield fh
        return
    dst = local_path(dst)
    if os.path.exists(dst) and not os.path.isfile(dst):
        raise AnszError(f"{dst} is not a regular file; refusing to replace it "
                        "(write to it as a stream instead)")
    directory = os.path.dirname(os.path.abspath(dst))
    name = temporary_stem(os.path.basename(dst))
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".tmp")
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
    """Give the complete temporary file ``tmp`` the name ``dst``. Without ``overwrite`` by a
    hard link, which fails (OutputExistsError) if ``dst`` appeared since
    :func:`check_output`, instead of replacing it."""
    if overwrite:
        os.replace(tmp, dst)
        return
    try:
        os.link(tmp, dst)
    except FileExistsError:
        raise OutputExistsError(dst) from None
    except OSError:  # no hard links here (some network or FAT file systems)
        if os.path.lexists(dst):
            raise OutputExistsError(dst) from None
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

