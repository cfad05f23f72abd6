"""Files named by URL, through fsspec: object stores, hubs and web servers.

An input or output named ``SCHEME://...`` (``s3://``, ``gs://``, ``hf://``, ``http(s)://``,
``memory://``...) is reached through `fsspec <https://filesystem-spec.readthedocs.io>`_'s
registry of file systems, which is the optional ``remote`` extra (``pip install
'ansz[remote]'``); a protocol's own package (s3fs, gcsfs, huggingface_hub) comes from the
user, and fsspec's error names it when it is missing. ``file://`` URLs are local paths
(:func:`local_path`) and need no extra. An operand that merely contains ``://`` after a
``./`` is a local path.

- :class:`RemoteFile`: a file read at any offset by range requests, with counters of
  requests, round trips and bytes. Nothing is cached unless asked: :meth:`RemoteFile.hold_ends`
  keeps the first and last bytes (a container's header, trailer and index),
  :meth:`RemoteFile.prefetch` fetches a set of ranges in one round trip (coalescing
  neighbours) for as long as a ``with`` block runs, and ``readahead`` keeps a few windows
  for a reader going front to back.
- :func:`open_stream`: a file object for one sequential read.
- :func:`check_output` and :func:`atomic_output`: the local policy of :mod:`ansz._io` for URL
  outputs: nothing is replaced without ``overwrite``, and the output is written to a
  temporary object next to it, then moved into place (removed on failure).

Nothing here knows containers or models.
"""

from __future__ import annotations

import errno
import os
import re
import threading
from collections import deque
from contextlib import contextmanager
from typing import Any, BinaryIO, Iterable, Iterator

from .errors import AnszError, OutputExistsError

#: What to install for URLs.
EXTRA_HINT = "pip install 'ansz[remote]'"

_URL_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]+://")

#: Ranges this close are fetched as one (the gap's bytes cost less than a round trip).
COALESCE_GAP = 256 << 10

#: The file's first and last bytes :meth:`RemoteFile.hold_ends` keeps.
END_BYTES = 64 << 10


def is_url(name: Any) -> bool:
    """Whether ``name`` is a URL (``SCHEME://...``) rather than a local path."""
    return isinstance(name, str) and _URL_RE.match(name) is not None


def is_remote(name: Any) -> bool:
    """Whether ``name`` is a URL that is not a local ``file://`` one."""
    return is_url(name) and not name.lower().startswith("file://")


def local_path(name):
    """``name`` with a ``file://`` URL turned into its local path; anything else as it is."""
    if isinstance(name, str) and name.lower().startswith("file://"):
        path = name[len("file://"):]
        if path.lower().startswith("localhost/"):
            path = path[len("localhost"):]
        return path
    return name


def filesystem(url: str) -> tuple[Any, str]:
    """``(fsspec file system, path in it)`` for ``url``; a one-line AnszError when fsspec or
    the protocol's package is missing, or the protocol is unknown."""
    try:
        from fsspec.core import url_to_fs
    except ImportError:
        raise AnszError(f"{url}: URLs need the remote extra ({EXTRA_HINT})") from None
    try:
        return url_to_fs(url)
    except ImportError as e:  # fsspec's message names the package: "Install s3fs to ..."
        raise AnszError(f"{url}: {_short(e)}") from None
    except ValueError as e:  # "Protocol not known: ..."
        raise AnszError(f"{url}: {_short(e)}") from None


def _short(e: BaseException) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _io_error(url: str, e: BaseException) -> OSError:
    """An OSError naming ``url`` for a failure of the store (a network error, a server's
    refusal): the caller may try again, unlike an AnszError about the data."""
    cause = e.__cause__
    if (isinstance(e, FileNotFoundError) and cause is not None
            and not isinstance(cause, FileNotFoundError)):
        # fsspec's HTTP file system reports an unreachable host as a missing file
        return OSError(errno.EIO, f"{type(cause).__name__}: {_short(cause)}", url)
    if isinstance(e, OSError):
        if e.strerror is None:  # fsspec's FileNotFoundError(path): no errno, no message
            code = errno.ENOENT if isinstance(e, FileNotFoundError) else errno.EIO
            return type(e)(code, os.strerror(code) if isinstance(e, FileNotFoundError)
                           else _short(e), url)
        if e.filename is None:
            e.filename = url
        return e
    return OSError(errno.EIO, f"{type(e).__name__}: {_short(e)}", url)


def _call(url: str, fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except AnszError:
        raise
    except NotImplementedError:
        raise AnszError(f"{url}: this store does not support that operation") from None
    except Exception as e:
        raise _io_error(url, e) from None


# ---------------------------------------------------------------------------------------------
# Facts about URLs


def info(url: str) -> dict:
    """fsspec's ``info`` of ``url`` (``size``, ``type``); FileNotFoundError if absent."""
    fs, path = filesystem(url)
    return _call(url, fs.info, path)


def exists(url: str) -> bool:
    fs, path = filesystem(url)
    return bool(_call(url, fs.exists, path))


def isdir(url: str) -> bool:
    fs, path = filesystem(url)
    return bool(_call(url, fs.isdir, path))


def find(url: str, suffix: str) -> list[str]:
    """URLs of the files under the directory ``url`` whose names end in ``suffix``, sorted as
    ``-r`` walks local directories (a directory's own files, then each subdirectory)."""
    fs, path = filesystem(url)
    found = _call(url, fs.find, path)
    root = path.rstrip("/")
    names = []
    for p in found:
        rel = p[len(root):].lstrip("/") if p.startswith(root) else p
        base = rel.rsplit("/", 1)[-1]
        if base.endswith(suffix) and base != suffix:
            names.append(rel)
    names.sort(key=lambda rel: (rel.split("/")[:-1], rel))
    prefix = url.rstrip("/")
    return [f"{prefix}/{rel}" for rel in names]


def remove(url: str) -> None:
    fs, path = filesystem(url)
    _call(url, fs.rm, path)


def open_stream(url: str, block_size: int = 16 << 20) -> BinaryIO:
    """``url`` opened for one sequential read (fsspec's read-ahead buffer of ``block_size``)."""
    fs, path = filesystem(url)
    return _call(url, fs.open, path, "rb", block_size=block_size)


# ---------------------------------------------------------------------------------------------
# Reading at any offset


class RemoteFile:
    """A file named by a URL, read like :class:`ansz._io.PositionalFile` (``read_at``,
    ``read_scratch``, ``read_into``, ``size``, ``regular``, ``close``), by range requests.

    Nothing read is kept unless asked: :meth:`hold_ends` keeps the first and last
    :data:`END_BYTES` for the file's life; :meth:`prefetch` fetches ranges for the duration of
    a ``with`` block; ``readahead`` (bytes) makes every other read fetch at least that much
    and keeps the last ``windows`` such windows, for a reader going front to back. A read of
    fewer bytes than asked (the object changed, or a server that ignores ``Range``) is an
    AnszError; a store's failure is an OSError naming the URL.

    Counters (:meth:`counters`): ``requests`` (ranges asked of the store, plus the one
    ``info`` at open), ``round_trips`` (calls that wait for the store: a batch of ranges
    asked of an asynchronous store such as HTTP, S3 or GCS at once is one) and ``bytes``.
    """

    regular = True

    def __init__(self, url: str, *, readahead: int = 0, windows: int = 4):
        self.path = url
        self._fs, self._rpath = filesystem(url)
        self.requests = self.round_trips = self.bytes_fetched = 0
        self._lock = threading.Lock()
        self._fetch_lock = threading.Lock()
        self._held: dict[int, list[tuple[int, bytes]]] = {}  # token -> ranges
        self._ends: list[tuple[int, bytes]] = []
        self._windows: deque = deque(maxlen=max(1, windows))
        self._readahead = readahead
        self._closed = False
        meta = self._counted(1, lambda: _call(url, self._fs.info, self._rpath))
        if meta.get("type") == "directory":
            raise AnszError(f"{url} is a directory")
        size = meta.get("size")
        if size is None:
            raise AnszError(f"{url}: the store does not say the file's size")
        self.size = int(size)

    # -- counters ------------------------------------------------------------------------------

    def counters(self) -> dict[str, int]:
        """``{"requests", "round_trips", "bytes"}`` so far."""
        with self._lock:
            return {"requests": self.requests, "round_trips": self.round_trips,
                    "bytes": self.bytes_fetched}

    def _counted(self, n: int, fn):
        with self._lock:
            self.requests += n
            self.round_trips += 1
        return fn()

    # -- fetching ------------------------------------------------------------------------------

    def _fetch(self, ranges: list[tuple[int, int]]) -> list[bytes]:
        """The bytes of each ``[start, end)``, asked of the store in one call."""
        if not ranges:
            return []
        if self._closed:
            raise AnszError(f"{self.path}: file is closed")
        fs, url = self._fs, self.path
        if len(ranges) == 1:
            (start, end), = ranges
            with self._lock:
                self.requests += 1
                self.round_trips += 1
            out = [_call(url, fs.cat_file, self._rpath, start=start, end=end)]
        else:
            with self._lock:
                self.requests += len(ranges)
                # a synchronous store answers one range after another
                self.round_trips += 1 if getattr(fs, "async_impl", False) else len(ranges)
            out = _call(url, fs.cat_ranges, [self._rpath] * len(ranges),
                        [a for a, _ in ranges], [b for _, b in ranges], on_error="return")
            for got in out:
                if isinstance(got, BaseException):
                    raise _io_error(url, got)
        for (start, end), got in zip(ranges, out):
            with self._lock:
                self.bytes_fetched += len(got)
            if len(got) != end - start:
                raise AnszError(f"{url}: asked for {end - start} bytes at offset {start}, got "
                                f"{len(got)} (the object changed, or the server ignores range "
                                "requests)")
        return out

    def _lookup(self, offset: int, length: int) -> memoryview | None:
        with self._lock:
            groups = [self._ends, list(self._windows), *self._held.values()]
        for group in groups:
            for start, data in group:
                if start <= offset and offset + length <= start + len(data):
                    return memoryview(data)[offset - start:offset - start + length]
        return None

    def hold_ends(self, nbytes: int = END_BYTES) -> None:
        """Fetch and keep the first and last ``nbytes`` (one round trip; one range if they
        meet)."""
        head = (0, min(self.size, nbytes))
        tail = (max(0, self.size - nbytes), self.size)
        ranges = [head] if tail[0] <= head[1] else [head, tail]
        if ranges[0][1] < self.size and len(ranges) == 1:
            ranges = [(0, self.size)]
        got = self._fetch([r for r in ranges if r[1] > r[0]])
        self._ends = [(a, data) for (a, _), data in zip(ranges, got)]

    @contextmanager
    def prefetch(self, ranges: Iterable[tuple[int, int]]) -> Iterator[None]:
        """Fetch ``ranges`` (``[start, end)`` pairs, any order) in one round trip, ranges
        closer than :data:`COALESCE_GAP` as one, and serve reads inside them until the block
        ends; ranges already held are not fetched again."""
        merged: list[list[int]] = []
        for start, end in sorted(ranges):
            start, end = max(0, start), min(self.size, end)
            if end <= start or self._lookup(start, end - start) is not None:
                continue
            if merged and start - merged[-1][1] <= COALESCE_GAP:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        spans = [(a, b) for a, b in merged]
        got = self._fetch(spans)
        token = object()
        with self._lock:
            self._held[id(token)] = [(a, data) for (a, _), data in zip(spans, got)]
        try:
            yield
        finally:
            with self._lock:
                self._held.pop(id(token), None)

    # -- PositionalFile's reads ---------------------------------------------------------------

    def read_at(self, offset: int, length: int):
        """Up to ``length`` bytes at ``offset`` (fewer only past the size), as a read-only
        buffer."""
        length = max(0, min(length, self.size - offset))
        if length == 0:
            return b""
        got = self._lookup(offset, length)
        if got is not None:
            return got
        if not self._readahead:
            return memoryview(self._fetch([(offset, offset + length)])[0])
        with self._fetch_lock:  # one window at a time; a thread that waited may find it here
            got = self._lookup(offset, length)
            if got is not None:
                return got
            end = min(self.size, offset + max(length, self._readahead))
            data = self._fetch([(offset, end)])[0]
            with self._lock:
                self._windows.append((offset, data))
        return memoryview(data)[:length]

    def read_scratch(self, offset: int, length: int):
        """:meth:`read_at` as a read-only uint8 array (what PositionalFile's gives)."""
        import numpy as np

        return np.frombuffer(self.read_at(offset, length), np.uint8)

    def read_into(self, offset: int, view: memoryview) -> None:
        if offset + len(view) > self.size:
            raise AnszError(f"{self.path}: read past the end of the file")
        view[:] = self.read_at(offset, len(view))

    def check_unchanged(self) -> None:
        """Nothing: a store gives no change time to compare (a read that comes back short is
        caught by :meth:`read_at`)."""

    def close(self) -> None:
        self._closed = True
        with self._lock:
            self._ends, self._held = [], {}
            self._windows.clear()

    def __enter__(self) -> "RemoteFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ---------------------------------------------------------------------------------------------
# Writing


def check_output(dst: str, src: str | None = None, *, overwrite: bool = False,
                 hint: str | None = None) -> bool:
    """:func:`ansz._io.check_output` for a URL ``dst``: whether it exists (and may be replaced:
    ``overwrite``); AnszError for the input itself or a directory, OutputExistsError for
    another existing object without ``overwrite``."""
    fs, path = filesystem(dst)
    if not _call(dst, fs.exists, path):
        return False
    if src is not None and is_url(src) and _same_object(src, dst):
        raise AnszError(f"input and output are the same file ({dst})")
    if _call(dst, fs.isdir, path):
        raise AnszError(f"output {dst} is a directory")
    if not overwrite:
        raise OutputExistsError(dst) if hint is None else OutputExistsError(dst, hint)
    return True


def _same_object(a: str, b: str) -> bool:
    """Whether two URLs name one object of one file system (``memory://b/x`` and
    ``memory:///b/x`` do): their file systems' own paths are compared, not the spellings."""
    fs_a, path_a = filesystem(a)
    fs_b, path_b = filesystem(b)
    return fs_a is fs_b and path_a.rstrip("/") == path_b.rstrip("/")


def temporary_name(path: str) -> str:
    """A new temporary object's path next to ``path``: ``DIR/.NAME.XXXXXXXX.tmp``."""
    parent, _, name = path.rpartition("/")
    tmp = f".{temporary_stem(name)}.{os.urandom(4).hex()}.tmp"
    return f"{parent}/{tmp}" if parent or path.startswith("/") else tmp


@contextmanager
def atomic_output(dst: str, *, overwrite: bool = False) -> Iterator[BinaryIO]:
    """A file object whose contents appear at the URL ``dst`` only if the ``with`` block
    completes: written to a temporary object next to it (:func:`temporary_name`), then moved
    into place; the temporary object is removed on any failure. Without ``overwrite`` an
    object that appeared at ``dst`` meanwhile is not replaced (OutputExistsError; a store
    cannot make that check and the move one step, so a writer racing in between wins)."""
    fs, path = filesystem(dst)
    tmp = temporary_name(path)
    try:
        with _call(dst, fs.open, tmp, "wb") as fh:
            yield fh
        if not overwrite and _call(dst, fs.exists, path):
            raise OutputExistsError(dst)
        _call(dst, fs.mv, tmp, path)
    except BaseException:
        try:
            if fs.exists(tmp):
                fs.rm(tmp)
        except Exception:
            pass
        raise


def remove_temporaries(dst: str) -> list[str]:
    """Remove the temporary objects or files an interrupted write of ``dst`` left next to it
    (``.NAME.XXXXXXXX.tmp``, as :func:`atomic_output` and :func:`ansz._io.atomic_output`
    name them; a killed process cannot remove its own). Only for a caller that knows no
    other writer of ``dst`` is at work. Returns what was removed."""
    if not is_remote(dst):
        dst = local_path(dst)
        directory = os.path.dirname(os.path.abspath(dst))
        name = os.path.basename(dst)
        try:
            names = os.listdir(directory)
        except OSError:
            return []
        pattern = _temporary_pattern(name)
        gone = []
        for n in names:
            if pattern.fullmatch(n):
                try:
                    os.unlink(os.path.join(directory, n))
                    gone.append(os.path.join(directory, n))
                except FileNotFoundError:
                    pass
        return gone
    fs, path = filesystem(dst)
    parent, _, name = path.rpartition("/")
    pattern = _temporary_pattern(name)
    try:
        listing = fs.ls(parent or "/", detail=False)
    except (FileNotFoundError, NotImplementedError):
        return []
    gone = []
    for p in listing:
        if pattern.fullmatch(p.rpartition("/")[2]):
            try:
                fs.rm(p)
                gone.append(p)
            except FileNotFoundError:
                pass
    return gone


def temporary_stem(name: str) -> str:
    """The part of an output's file ``name`` that its temporary's name ``.STEM.XXXXXXXX.tmp``
    keeps: all of it, or as much as fits in 255 bytes (NAME_MAX on Linux's file systems;
    mkstemp adds 8 random characters, 16 are kept for them), cut at a character boundary."""
    raw = os.fsencode(name)
    room = 255 - len(b"..tmp") - 16
    if len(raw) > room:
        while room > 0 and (raw[room] & 0xC0) == 0x80:  # not inside a UTF-8 character
            room -= 1
        raw = raw[:room]
    return os.fsdecode(raw)


def _temporary_pattern(name: str) -> "re.Pattern[str]":
    """The names :func:`atomic_output` and :func:`ansz._io.atomic_output` give temporaries of
    an output called ``name`` (a long name cut as the latter cuts it)."""
    return re.compile(r"\." + re.escape(temporary_stem(name)) + r"\.[A-Za-z0-9_]{8}\.tmp")


__all__ = ["EXTRA_HINT", "RemoteFile", "atomic_output", "check_output", "exists", "filesystem",
           "find", "info", "is_remote", "is_url", "isdir", "local_path", "open_stream",
           "remove", "remove_temporaries", "temporary_name"]

