"""What the ``ansz`` command tells its user: one-line errors, summaries, the progress bar,
sizes, and the exit status they add up to.

Verbosity follows zstd's display levels: 2 by default, ``-q`` lowers it, ``-v`` raises it;
0 silent, 1 errors, 2 + warnings, summaries and progress, 3 + details. Errors and
summaries go to stderr, as ``ansz: NAME: message`` on one line; the rich progress bar only
when stderr is a terminal (or ``--progress``), and only after :data:`PROGRESS_DELAY`.
"""

from __future__ import annotations

import os
import sys
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import click

from .. import __version__
from ..errors import AnszError, UnsupportedError
from . import signals
from .stdio import StdoutError

#: Exit statuses (documented in man/ansz.1, EXIT STATUS). A run stopped by signal N exits
#: with 128 + N (130 for SIGINT).
#: EXIT_UNSUPPORTED: the input may well be sound, but this ansz cannot read it (a newer
#: format version, header flags or dtype codes): a newer ansz can.
EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_UNSUPPORTED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

#: Seconds of work before the progress bar appears ("operations longer than ~1 s").
PROGRESS_DELAY = 1.0

#: The progress bar's clock (seconds, monotonic).
_clock = time.monotonic


class Skip(Exception):
    """This input is not processed; the message is reported as ``ansz: NAME: message``."""


class Reporter:
    """One command's messages, and whether anything failed. Verbosity 2 is the default; -q
    lowers it, -v raises it: 0 silent, 1 errors, 2 + warnings/summaries/progress, 3 +
    details. ``progress`` forces (True) or forbids (False) the bar; None: stderr decides."""

    def __init__(self, level: int = 2, progress: bool | None = None) -> None:
        self.level = level
        self.progress = progress
        self.failed = False
        self.failed_otherwise = False  #: a failure other than "needs a newer ansz"
        self.last_error = ""

    @property
    def status(self) -> int:
        """:data:`EXIT_OK` if nothing failed; :data:`EXIT_UNSUPPORTED` if every failure was
        an input that needs a newer ansz; else :data:`EXIT_FAILURE`."""
        if not self.failed:
            return EXIT_OK
        return EXIT_FAILURE if self.failed_otherwise else EXIT_UNSUPPORTED

    def error(self, name: Any, msg: str, *, unsupported: bool = False) -> None:
        """Report a failure, ``ansz: NAME: msg`` (``name`` None: ``ansz: msg``);
        ``unsupported``: the input needs a newer ansz."""
        self.failed = True
        self.failed_otherwise = self.failed_otherwise or not unsupported
        self.last_error = msg
        if self.level >= 1:
            click.echo(f"ansz: {name}: {msg}" if name is not None else f"ansz: {msg}", err=True)

    def warn(self, msg: str, name: Any = None) -> None:
        """``ansz: NAME: warning: msg`` (``name`` None: ``ansz: warning: msg``); silenced
        by -q. A warning does not change the exit status."""
        if self.level >= 2:
            where = f"{name}: " if name is not None else ""
            click.echo(f"ansz: {where}warning: {msg}", err=True)

    def info(self, msg: str, *, level: int = 2) -> None:
        if self.level >= level:
            click.echo(msg, err=True)

    def show_progress(self) -> bool:
        if self.progress is not None:
            return self.progress
        return self.level >= 2 and isatty(sys.stderr)

    @contextmanager
    def progress_bar(self, label: str, total: int | None) -> Iterator[Callable[[int], None] | None]:
        """A function to call with the bytes done so far, or None if no bar is shown."""
        if not self.show_progress():
            yield None
            return
        from rich.console import Console
        from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn,
                                   TimeRemainingColumn, TransferSpeedColumn)

        forced = bool(self.progress)
        console = Console(file=sys.stderr,
                          force_terminal=True if forced else None)
        columns = [TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                   TransferSpeedColumn(), TimeRemainingColumn()]
        bar = Progress(*columns, console=console, transient=True, get_time=_clock)
        task = bar.add_task(label, total=total)
        begun = _clock()
        shown = False

        def update(done: int) -> None:
            nonlocal shown
            # rich measures speed (so time left) from the first update on: the ~30 s of a
            # first run's kernel compiling, before the first chunk is done, are not counted.
            bar.update(task, completed=done)
            if not shown and _clock() - begun >= PROGRESS_DELAY:
                bar.start()  # only for work that lasts: no flicker for small files
                shown = True

        if forced:
            bar.start()
            shown = True
        try:
            yield update
        finally:
            if shown:
                bar.stop()

    def run(self, name: Any, fn: Callable[[], None]) -> None:
        """Run one input's work; report its failure and carry on with the next input. A
        failure to write standard output, a broken pipe and a stop signal end the run."""
        try:
            try:
                signals.stop_if_signalled()
                fn()
            except Exception:  # after a stop signal, a failure is the signal's doing:
                signals.stop_if_signalled()  # C code may turn its exception into another one
                raise
        except (BrokenPipeError, StdoutError):  # stops the command: see the group's main
            raise
        except Skip as e:
            self.error(name, str(e))
        except UnsupportedError as e:
            self.error(name, unsupported_message(e, name), unsupported=True)
        except AnszError as e:
            self.error(name, without_name(one_line(str(e)), name) or type(e).__name__)
        except OSError as e:
            self.error(e.filename if e.filename is not None else name, os_message(e))
        except MemoryError:
            self.error(name, "out of memory")
        except Exception as e:  # a bug: say so on one line; ANSZ_DEBUG=1 shows the traceback
            if os.environ.get("ANSZ_DEBUG"):
                raise
            self.error(name, f"internal error: {type(e).__name__}: {one_line(str(e))} "
                             "(set ANSZ_DEBUG=1 for a traceback, and please report it)")


def unsupported_message(e: UnsupportedError, name: Any) -> str:
    """``needs a newer ansz than 0.1.0: container format version 2 is not supported ...``:
    unlike a corrupt input, this one may be sound; this ansz cannot read it."""
    detail = without_name(one_line(str(e)), name) or type(e).__name__
    return f"needs a newer ansz than {__version__}: {detail}"


def without_name(msg: str, name: Any) -> str:
    """"ansz: x: x is a container" reads badly: drop a leading repeat of the file name."""
    name = str(name)
    for sep in (": ", " "):
        if msg.startswith(name + sep):
            return msg[len(name) + len(sep):]
    return msg


def one_line(msg: str) -> str:
    return " ".join(msg.split())


def os_message(e: OSError) -> str:
    return one_line(e.strerror or str(e) or type(e).__name__)


def isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def human_size(n: float) -> str:
    """Decimal units with three significant digits, as the Hugging Face hub shows sizes:
    ``512 B``, ``66.4 kB``, ``1.20 GB``."""
    if n < 1000:
        return f"{int(n)} B"
    for unit in ("kB", "MB", "GB", "TB", "PB", "EB"):
        n /= 1000
        if n < 9.995:
            return f"{n:.2f} {unit}"
        if n < 99.95:
            return f"{n:.1f} {unit}"
        if n < 999.5 or unit == "EB":
            return f"{n:.0f} {unit}"
    raise AssertionError("unreachable")


def binary_size(n: int) -> str:
    """A size in the largest binary unit that divides it: ``64 KiB``, ``1 MiB``, ``1000 B``."""
    for shift, unit in ((30, "GiB"), (20, "MiB"), (10, "KiB")):
        if n and n % (1 << shift) == 0:
            return f"{n >> shift} {unit}"
    return f"{n} B"


def percent(part: float, whole: float) -> str:
    return f"{100.0 * part / whole:.1f}%" if whole else "n/a"
