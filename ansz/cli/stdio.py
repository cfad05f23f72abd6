"""Standard input and output of the ``ansz`` command.

A failed write to standard output (a full device, a closed descriptor) must end the command
with one line and status 1, wherever it happens: in a command's own write, in click's or
rich's, or in the interpreter's final flush. So in the command's own process
(:func:`claim_standard_streams`) ``sys.stdout`` is a :class:`StdoutText` over a
:class:`StdoutBuffer`, whose failures raise :class:`StdoutError`; a broken pipe stays a
:class:`BrokenPipeError` (the reader went away: stop quietly). The group's ``main`` turns
both into an exit status.
"""

from __future__ import annotations

import errno
import io
import os
import sys
from typing import Any, BinaryIO


class StdoutError(OSError):
    """Writing to standard output failed, other than by a broken pipe: reported on one line
    (``ansz: error writing to standard output: REASON``), and the command stops with status
    1 whatever it was doing."""

    def __init__(self, cause: OSError) -> None:
        super().__init__(cause.errno, cause.strerror)
        if cause.errno == errno.EBADF:
            self.message = "standard output is closed"
        else:
            reason = " ".join((cause.strerror or str(cause) or type(cause).__name__).split())
            self.message = f"error writing to standard output: {reason}"


def stdout_failure(e: OSError) -> OSError:
    """The exception to raise for ``e``, raised while writing to standard output: a broken
    pipe stays one (the reader went away: stop quietly)."""
    if isinstance(e, (BrokenPipeError, StdoutError)):
        return e
    return StdoutError(e)


class _WritesAsStdout:
    """A mixin for an io class: its write and flush raise :class:`StdoutError` (or the
    broken pipe) for a failure, through :func:`stdout_failure`."""

    def write(self, data: Any) -> int:
        try:
            return super().write(data)  # type: ignore[misc]
        except OSError as e:
            raise stdout_failure(e) from None

    def flush(self) -> None:
        try:
            super().flush()  # type: ignore[misc]
        except OSError as e:
            raise stdout_failure(e) from None


class StdoutBuffer(_WritesAsStdout, io.BufferedWriter):
    """``sys.stdout.buffer`` of the command's own process (see :func:`claim_standard_streams`):
    a failed write or flush raises :class:`StdoutError`."""


class StdoutText(_WritesAsStdout, io.TextIOWrapper):
    """``sys.stdout`` of the command's own process, over a :class:`StdoutBuffer`; its own
    write and flush raise :class:`StdoutError` too (click, rich and the interpreter's final
    flush all come through here)."""


class NamedOutput:
    """A binary output stream whose write errors carry its name: an OSError raised by
    ``write`` has no file name, and the reporter would name the input instead."""

    def __init__(self, fh: BinaryIO, name: str) -> None:
        self._fh = fh
        self.name = name

    def write(self, data: Any) -> int | None:
        try:
            return self._fh.write(data)
        except OSError as e:
            if e.filename is None:
                e.filename = self.name
            raise

    def flush(self) -> None:
        try:
            self._fh.flush()
        except OSError as e:
            if e.filename is None:
                e.filename = self.name
            raise

    def fileno(self) -> int:
        return self._fh.fileno()


def stdin() -> BinaryIO:
    return sys.stdin.buffer


def stdout() -> BinaryIO:
    """Standard output's binary stream; :class:`StdoutError` if descriptor 1 is closed."""
    if sys.stdout is None:  # descriptor 1 closed, outside the command's own process
        raise StdoutError(OSError(errno.EBADF, os.strerror(errno.EBADF)))
    return sys.stdout.buffer


def silence_stdout() -> None:
    """After a write to standard output failed: point descriptor 1 at /dev/null, so that
    what is still buffered goes nowhere instead of failing again at exit."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


def claim_standard_streams() -> None:
    """For the command's own process. A closed descriptor 0, 1 or 2 is held open on
    /dev/null, so that no file opened later takes its number (anything writing to "standard
    output" would write into it); 0 and 1 are held the wrong way round (write-only,
    read-only), so that reading or writing them fails (EBADF) as on a closed descriptor.
    ``sys.stdout`` becomes a :class:`StdoutText`: every failed write to standard output,
    through click, rich or the binary buffer, raises :class:`StdoutError`."""
    for fd, flags in ((0, os.O_WRONLY), (1, os.O_RDONLY), (2, os.O_WRONLY)):
        try:
            os.fstat(fd)
        except OSError:
            held = os.open(os.devnull, flags)
            if held != fd:
                os.dup2(held, fd)
                os.close(held)
    if sys.stdin is None:
        sys.stdin = io.TextIOWrapper(io.BufferedReader(io.FileIO(0, "r", closefd=False)))
    if sys.stderr is None:
        sys.stderr = io.TextIOWrapper(io.BufferedWriter(io.FileIO(2, "w", closefd=False)),
                                      errors="backslashreplace", line_buffering=True)
    old = sys.stdout
    if old is not None:
        try:
            old.flush()
        except (OSError, ValueError):
            pass
    sys.stdout = StdoutText(StdoutBuffer(io.FileIO(1, "w", closefd=False)),
                            encoding=getattr(old, "encoding", None) or "utf-8",
                            errors=getattr(old, "errors", None) or "strict",
                            line_buffering=bool(getattr(old, "line_buffering", False)))
