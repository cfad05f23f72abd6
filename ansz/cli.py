"""The ``ansz`` command: a thin click layer over :mod:`ansz.api`.

It parses arguments, names outputs, refuses what zstd/xz/gzip refuse, calls the API and
reports. Conventions (docs: ``man/ansz.1``; rationale: STYLE.md §2):

- Operands: no operand or ``-`` means stdin -> stdout. Standard input is the :data:`STDIN`
  sentinel, never the string ``"-"``, so after ``--`` a file literally named ``-`` works.
- ``compress X`` writes ``X.ansz``; ``decompress X.ansz`` writes ``X``; any other suffix is an
  error unless ``-o``/``-c`` names the output. The input is kept unless ``--rm``, which deletes
  it only after the output is complete, synced and verified, and never when writing to stdout.
- Never overwrite without ``-f`` (a terminal is asked first); never write compressed data to a
  terminal or read it from one without ``-f``.
- Exit status: 0 ok, 1 failure (bad input, verify mismatch, I/O error), 2 usage error,
  130/143/129 interrupted by SIGINT/SIGTERM/SIGHUP. One line per error on stderr (``ansz: FILE: message``), never a traceback;
  one bad input among several does not stop the others.
- Summaries go to stderr (muted by ``-q``, and when the data goes to stdout unless ``-v``);
  the rich progress bar only when stderr is a terminal.

Start-up matters (``ansz --help`` within 0.15 s), so this module imports only click and the
standard library at top level: numpy/numba (via :mod:`ansz.api`) and rich are imported inside
the commands that need them.
"""

from __future__ import annotations

import os
import signal
import sys


def _imported_by_the_command() -> bool:
    """True while the ``ansz`` console script or ``python -m ansz`` imports this module: the
    process is the command's own, not a library user's or a test runner's."""
    main_module = sys.modules.get("__main__")
    spec = getattr(main_module, "__spec__", None)
    if spec is not None:
        return spec.name == "ansz.__main__"
    return os.path.basename(getattr(main_module, "__file__", None) or "") == "ansz"


#: Whether the import below put SIGINT back to its default action; :func:`main` restores
#: Python's handler. Until then Ctrl-C ends the process at once, as the kernel does, instead
#: of printing a KeyboardInterrupt traceback out of an import (nothing is written yet).
_SIGINT_DEFAULTED = (_imported_by_the_command()
                     and signal.getsignal(signal.SIGINT) is signal.default_int_handler)
if _SIGINT_DEFAULTED:
    signal.signal(signal.SIGINT, signal.SIG_DFL)

import errno  # noqa: E402  (after the signal set-up above, which must come first)
import functools  # noqa: E402
import io  # noqa: E402
import re  # noqa: E402
import stat  # noqa: E402
import time  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from typing import Any, BinaryIO, Callable, Iterator, Union  # noqa: E402

import click  # noqa: E402

from . import __version__  # noqa: E402
from .errors import AnszError  # noqa: E402
from .options import CODERS, MAX_CHUNK_SIZE, MIN_CHUNK_SIZE  # noqa: E402

SUFFIX = ".ansz"
MODEL_SUFFIX = ".safetensors"  #: what -r looks for in a directory (with SUFFIX to decompress)

#: Exit statuses (documented in man/ansz.1, EXIT STATUS).
EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

#: Seconds of work before the progress bar appears (issue 7: "operations longer than ~1 s").
PROGRESS_DELAY = 1.0


class _StdioMark:
    """Stands for standard input or output; compares equal to no path (zstd's ``stdinmark``)."""

    __slots__ = ("label",)

    def __init__(self, label: str) -> None:
        self.label = label

    def __repr__(self) -> str:
        return f"<{self.label}>"

    def __str__(self) -> str:
        return self.label


STDIN = _StdioMark("(stdin)")
STDOUT = _StdioMark("(stdout)")

Operand = Union[str, _StdioMark]


class _Skip(Exception):
    """This input is not processed; the message is reported as ``ansz: NAME: message``."""


class _StdoutError(OSError):
    """Writing to standard output failed, other than by a broken pipe: reported on one line
    (``ansz: error writing to standard output: REASON``), and the command stops with status
    1 whatever it was doing."""

    def __init__(self, cause: OSError) -> None:
        super().__init__(cause.errno, cause.strerror)
        if cause.errno == errno.EBADF:
            self.message = "standard output is closed"
        else:
            self.message = f"error writing to standard output: {_os_message(cause)}"


def _stdout_failure(e: OSError) -> OSError:
    """The exception to raise for ``e``, raised while writing to standard output: a broken
    pipe stays one (the reader went away: stop quietly)."""
    if isinstance(e, (BrokenPipeError, _StdoutError)):
        return e
    return _StdoutError(e)


class _StdoutBuffer(io.BufferedWriter):
    """``sys.stdout.buffer`` of the command's own process (see :func:`_claim_standard_streams`):
    a failed write or flush raises :class:`_StdoutError`."""

    def write(self, data: Any) -> int:
        try:
            return super().write(data)
        except OSError as e:
            raise _stdout_failure(e) from None

    def flush(self) -> None:
        try:
            super().flush()
        except OSError as e:
            raise _stdout_failure(e) from None


class _StdoutText(io.TextIOWrapper):
    """``sys.stdout`` of the command's own process, over a :class:`_StdoutBuffer`; its own
    write and flush raise :class:`_StdoutError` too (click, rich and the interpreter's final
    flush all come through here)."""

    def write(self, text: str) -> int:
        try:
            return super().write(text)
        except OSError as e:
            raise _stdout_failure(e) from None

    def flush(self) -> None:
        try:
            super().flush()
        except OSError as e:
            raise _stdout_failure(e) from None


class _NamedOutput:
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


# --------------------------------------------------------------------------------------------
# Argument parsing


class _Command(click.Command):
    """Records how many positional operands followed ``--``: those are taken literally, so
    ``ansz compress -- -`` names a file called ``-``, while a bare ``-`` means stdin."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta["ansz.literal_operands"] = _operands_after_double_dash(self, ctx, args)
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as e:  # raised by a command's own checks: say which command
            if e.ctx is None:
                e.ctx, e.cmd = ctx, ctx.command
            raise


def _operands_after_double_dash(cmd: click.Command, ctx: click.Context, args: list[str]) -> int:
    takes_value = set()
    for p in cmd.get_params(ctx):
        if isinstance(p, click.Option) and not p.is_flag and not p.count:
            takes_value.update(p.opts)
    i = 0
    while i < len(args):
        tok = args[i]
        if tok == "--":
            return len(args) - i - 1
        if tok in takes_value:  # "-o FILE": FILE may be "--" or "-"
            i += 2
            continue
        if tok.startswith("-") and not tok.startswith("--") and len(tok) > 2:
            for j in range(1, len(tok)):  # bundled short options: "-fo FILE", "-T2"
                if "-" + tok[j] in takes_value:
                    if j == len(tok) - 1:
                        i += 1
                    break
        i += 1
    return 0


def _operands(ctx: click.Context, values: list[str]) -> list[Operand]:
    """Positional values in command-line order, ``-`` replaced by :data:`STDIN` except after
    ``--`` (click appends everything after ``--`` at the end of the positional list)."""
    literal = ctx.meta.get("ansz.literal_operands", 0)
    cut = len(values) - literal
    return [STDIN if (v == "-" and i < cut) else v for i, v in enumerate(values)]


_SIZE_RE = re.compile(r"^\s*(\d+)\s*([kmg]?)(i?b?)\s*$", re.IGNORECASE)




class _Size(click.ParamType):
    """A byte count: ``65536``, ``64K``, ``4M``, ``4MiB``, ``1G``. As in zstd, K/M/G are powers
    of 1024 whether or not the ``i`` is written. ``low``/``high`` bound it (inclusive)."""

    name = "SIZE"

    def __init__(self, low: int = 1, high: int | None = None) -> None:
        self.low, self.high = low, high

    def convert(self, value: Any, param: Any, ctx: Any) -> int:
        if isinstance(value, int):
            return value
        m = _SIZE_RE.match(str(value))
        if not m or (m.group(3) and not m.group(2) and m.group(3).lower() != "b"):
            self.fail(f"{value!r} is not a size (examples: 1048576, 512K, 4M, 4MiB)", param, ctx)
        n = int(m.group(1)) << (10 * " kmg".index(m.group(2).lower() or " "))
        if n < self.low or (self.high is not None and n > self.high):
            hi = f" to {_binary_size(self.high)}" if self.high is not None else " or more"
            self.fail(f"{value!r}: size must be {_binary_size(self.low)}{hi}", param, ctx)
        return n


def _common_options(f: Callable) -> Callable:
    f = click.option("-v", "--verbose", count=True,
                     help="More messages; repeatable. Summaries even when writing to stdout.")(f)
    f = click.option("-q", "--quiet", count=True,
                     help="Fewer messages: no summaries or progress; -qq also silences errors.")(f)
    return f


def _threads_option(f: Callable) -> Callable:
    return click.option(
        "-T", "--threads", type=click.IntRange(min=0), default=0, metavar="N",
        envvar="ANSZ_THREADS", show_envvar=True,
        help="Worker threads; 0 (default) uses all cores.")(f)


def _codec_options(compress: bool) -> Callable[[Callable], Callable]:
    verb = "compression" if compress else "decompression"

    def deco(f: Callable) -> Callable:
        opts = [
            click.option("-o", "--output", metavar="FILE",
                         help="Write to FILE (one input only); '-o -' is stdout."),
            click.option("-c", "--stdout", "to_stdout", is_flag=True,
                         help="Write to standard output; keep the input."),
            click.option("-f", "--force", is_flag=True,
                         help=f"Overwrite existing output; allow {verb} to/from a terminal."),
            click.option("-k", "--keep", "remove", flag_value=False, default=False,
                         help="Keep the input file (the default)."),
            click.option("--rm", "remove", flag_value=True,
                         help="Delete the input file once the output is complete, synced "
                              "and verified."),
            click.option("-r", "--recursive", is_flag=True,
                         help=f"Operate on every {'*.safetensors' if compress else '*.safetensors.ansz'}"
                              " file under each directory operand, one file after another."),
            _threads_option,
        ]
        if compress:
            opts.append(click.option(
                "--chunk-size", type=_Size(MIN_CHUNK_SIZE, MAX_CHUNK_SIZE), default=None,
                metavar="SIZE",
                help="Bytes of input per independently coded chunk, 1K to 64M "
                     "(default 1M)."))
            opts.append(click.option(
                "--coder", type=click.Choice(CODERS), default="auto", show_default=True,
                help="Entropy coder: auto keeps the smallest of rans, huffman and qlc per "
                     "stream; the others force one."))
            opts.append(click.option(
                "--fast", is_flag=True,
                help="Code for decoding speed (level 1): exponents in plain fields, wider "
                     "rANS interleaving; bf16 files come out ~0.6% larger, and their chunks "
                     "decode ~1.75x faster."))
        opts += [
            click.option("--progress/--no-progress", default=None,
                         help="Force or forbid the progress bar (default: only if stderr "
                              "is a terminal)."),
            _common_options,
        ]
        for o in reversed(opts):
            f = o(f)
        return f

    return deco


# --------------------------------------------------------------------------------------------
# Reporting


class _Reporter:
    """Verbosity 2 is the default; -q lowers it, -v raises it (zstd's display levels):
    0 silent, 1 errors, 2 + warnings/summaries/progress, 3 + details."""

    def __init__(self, level: int = 2, progress: bool | None = None) -> None:
        self.level = level
        self.progress = progress
        self.failed = False
        self.last_error = ""

    def error(self, name: Operand | None, msg: str) -> None:
        self.failed = True
        self.last_error = msg
        if self.level >= 1:
            click.echo(f"ansz: {name}: {msg}" if name is not None else f"ansz: {msg}", err=True)

    def warn(self, msg: str) -> None:
        if self.level >= 2:
            click.echo(f"ansz: {msg}", err=True)

    def info(self, msg: str, *, level: int = 2) -> None:
        if self.level >= level:
            click.echo(msg, err=True)

    def show_progress(self) -> bool:
        if self.progress is not None:
            return self.progress
        return self.level >= 2 and _isatty(sys.stderr)

    @contextmanager
    def progress_bar(self, label: str, total: int | None) -> Iterator[Callable[[int], None] | None]:
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
        bar = Progress(*columns, console=console, transient=True)
        task = bar.add_task(label, total=total)
        begun = time.monotonic()
        shown = False

        def update(done: int) -> None:
            nonlocal shown
            bar.update(task, completed=done)
            if not shown and time.monotonic() - begun >= PROGRESS_DELAY:
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

    def run(self, name: Operand, fn: Callable[[], None]) -> None:
        """Run one input's work; report its failure and carry on with the next input."""
        try:
            try:
                _stop_if_signalled()
                fn()
            except Exception:  # after a stop signal, a failure is the signal's doing:
                _stop_if_signalled()  # C code may turn its exception into another one
                raise
        except (BrokenPipeError, _StdoutError):  # stops the command: see _Group.main
            raise
        except _Skip as e:
            self.error(name, str(e))
        except AnszError as e:
            self.error(name, _without_name(_one_line(str(e)), name) or type(e).__name__)
        except OSError as e:
            self.error(e.filename if e.filename is not None else name, _os_message(e))
        except MemoryError:
            self.error(name, "out of memory")
        except Exception as e:  # a bug: say so on one line; ANSZ_DEBUG=1 shows the traceback
            if os.environ.get("ANSZ_DEBUG"):
                raise
            self.error(name, f"internal error: {type(e).__name__}: {_one_line(str(e))} "
                             "(set ANSZ_DEBUG=1 for a traceback, and please report it)")


def _without_name(msg: str, name: Operand) -> str:
    """"ansz: x: x is a container" reads badly: drop a leading repeat of the file name."""
    name = str(name)
    for sep in (": ", " "):
        if msg.startswith(name + sep):
            return msg[len(name) + len(sep):]
    return msg


def _one_line(msg: str) -> str:
    return " ".join(msg.split())


def _os_message(e: OSError) -> str:
    return _one_line(e.strerror or str(e) or type(e).__name__)


def _isatty(stream: Any) -> bool:
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


def _binary_size(n: int) -> str:
    for shift, unit in ((30, "GiB"), (20, "MiB"), (10, "KiB")):
        if n and n % (1 << shift) == 0:
            return f"{n >> shift} {unit}"
    return f"{n} B"


def _percent(part: float, whole: float) -> str:
    return f"{100.0 * part / whole:.1f}%" if whole else "n/a"


# --------------------------------------------------------------------------------------------
# Files


def _api():
    from . import api  # numpy + numba: only when a command really runs

    return api


def _codec_api():
    """:func:`_api`, with every module that the API's worker threads import on first use
    imported here first, in the main thread. A signal's exception raised in the main thread
    while it waits for a module that a worker is importing can leave importlib's module
    lock held for good: the worker then waits forever, and so does the main thread, for the
    worker, on its way out."""
    import zstandard  # noqa: F401

    from . import blocks, chunks, huffman, kernels, pairs, qlc, streams  # noqa: F401 (numpy)

    if not kernels.uses_library():  # the JIT kernels: numba, imported at the first call
        from . import _kernels  # noqa: F401
    return _api()


def _stdin() -> BinaryIO:
    return sys.stdin.buffer


def _stdout() -> BinaryIO:
    if sys.stdout is None:  # descriptor 1 closed, outside the command's own process
        raise _StdoutError(OSError(errno.EBADF, os.strerror(errno.EBADF)))
    return sys.stdout.buffer


def _check_input(src: Operand) -> os.stat_result | None:
    if src is STDIN:
        return None
    st = os.stat(src)
    if stat.S_ISDIR(st.st_mode):
        raise _Skip("is a directory -- ignored")
    return st


def _check_output(src: Operand, dst: str, force: bool, rep: _Reporter) -> bool:
    """Returns whether ``dst`` may be replaced; raises :class:`_Skip` if it must not be."""
    if not os.path.lexists(dst):
        return False
    if src is not STDIN and os.path.exists(dst) and os.path.samefile(src, dst):
        raise _Skip(f"input and output are the same file ({dst})")
    if os.path.isdir(dst):
        raise _Skip(f"output {dst} is a directory")
    if force:
        return True
    if (src is not STDIN and rep.level >= 2 and _isatty(sys.stdin)
            and _isatty(sys.stderr)):
        if _ask(f"ansz: {dst} already exists; overwrite?"):
            return True
        raise _Skip(f"{dst} not overwritten")
    raise _Skip(f"{dst} already exists (use -f to overwrite)")


def _ask(question: str) -> bool:
    """Ask on stderr and read the answer from stdin: True for y or yes, False for anything
    else or end of input. Not click.confirm: it reads with input(), which discards an
    exception raised while it flushes standard output, such as a signal's (the process
    would then wait for an answer after SIGTERM); and it turns a signal into click's Abort.
    """
    sys.stderr.write(f"{question} [y/N] ")
    sys.stderr.flush()
    return sys.stdin.readline().strip().lower() in ("y", "yes")


def _remove_source(src: Operand, dst: Operand, compressing: bool, threads: int | None,
                   rep: _Reporter) -> None:
    """Delete ``src`` after proving ``dst`` restores it: the output was fsync'ed when written
    (``sync=True``), and is now decoded again and compared byte for byte with the source."""
    if src is STDIN or dst is STDOUT:
        return
    container, original = (dst, src) if compressing else (src, dst)
    report = _codec_api().verify_file(container, original, threads=threads)
    if not report.ok:
        raise AnszError(f"not removed: {container} does not verify against {original} "
                        f"({report.message})")
    os.unlink(src)
    rep.info(f"ansz: removed {src}", level=3)


# --------------------------------------------------------------------------------------------
# Commands


class _Group(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)  # definition order: compress, decompress, verify, ...

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM/SIGHUP via _Terminated
            raise click.exceptions.Exit(_interrupted_status(e)) from None
        except BrokenPipeError:  # the reader went away (``| head``): stop quietly
            _silence_stdout()
            raise click.exceptions.Exit(EXIT_FAILURE) from None

    def main(self, args: Any = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True,
             **extra: Any) -> Any:
        """click's ``main`` with ansz's conventions (CliRunner comes through here too): a usage
        error is one line on stderr (status 2); a failure to write standard output is one line
        (status 1), a broken pipe none; an interrupt exits 128 + the signal number; standard
        output is flushed here, so that the interpreter's exit has nothing left to fail on.
        Always exits (SystemExit), unless ``standalone_mode`` is false: then click's own."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        try:
            try:
                status = super().main(args, prog_name, complete_var, False, **extra)
                status = status if type(status) is int else EXIT_OK
                _stop_if_signalled()  # never status 0 once a stop signal was handled
                if sys.stdout is not None:
                    sys.stdout.flush()
            except click.exceptions.Exit as e:
                status = e.exit_code
            except _NO_ARGS_IS_HELP as e:  # "ansz" alone: the help, on stderr
                e.show()
                status = e.exit_code
            except click.UsageError as e:
                click.echo(_usage_error_line(e), err=True)
                status = e.exit_code
            except click.ClickException as e:
                click.echo(f"ansz: {_one_line(e.format_message())}", err=True)
                status = e.exit_code
            except click.Abort as e:  # click turns an interrupt while parsing into Abort
                cause = e.__cause__ or e.__context__
                if isinstance(cause, KeyboardInterrupt):
                    status = _interrupted_status(cause)
                else:
                    click.echo("ansz: aborted", err=True)
                    status = EXIT_FAILURE
            except _StdoutError as e:
                click.echo(f"ansz: {e.message}", err=True)
                _silence_stdout()
                status = EXIT_FAILURE
            except BrokenPipeError:  # the reader went away (``| head``): stop quietly
                _silence_stdout()
                status = EXIT_FAILURE
            except KeyboardInterrupt as e:
                status = _interrupted_status(e)
            except Exception:
                if not _stop_signal:
                    raise
                status = 128 + _stop_signal  # the signal's doing (see _Reporter.run)
        except KeyboardInterrupt as e:  # a second signal while reporting the first
            status = _interrupted_status(e)
        sys.exit(status)


#: click >= 8.2 raises this for a bare ``ansz``; its message is the whole help text.
_NO_ARGS_IS_HELP = getattr(click.exceptions, "NoArgsIsHelpError", ())


def _usage_error_line(e: click.UsageError) -> str:
    """``ansz: compress: no such option '-x' (see 'ansz compress --help')``."""
    msg = _one_line(e.format_message())
    if msg[:1].isupper() and msg[1:2].islower():  # "No such option" but not "ANSZ_THREADS"
        msg = msg[0].lower() + msg[1:]
    if msg.endswith(".") and not msg.endswith(".."):
        msg = msg[:-1]
    ctx = e.ctx
    if ctx is None:
        return f"ansz: {msg}"
    command = f"{ctx.info_name}: " if ctx.parent is not None else ""
    return f"ansz: {command}{msg} (see '{ctx.command_path} --help')"


def _interrupted_status(e: BaseException) -> int:
    return getattr(e, "exit_code", EXIT_INTERRUPTED)


def _silence_stdout() -> None:
    """After a write to standard output failed: point descriptor 1 at /dev/null, so that
    what is still buffered goes nowhere instead of failing again at exit."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="ansz",
                      message="%(prog)s %(version)s")
def cli() -> None:
    """Lossless compression of neural-network model files (safetensors; any other file is
    compressed as plain bytes).

    \b
      ansz compress model.safetensors        -> model.safetensors.ansz
      ansz decompress model.safetensors.ansz -> model.safetensors
      ansz verify model.safetensors.ansz
      cat m.safetensors | ansz compress -c > m.ansz

    Exit status: 0 ok, 1 failure, 2 usage error. See man ansz.
    """


@cli.command(cls=_Command, short_help="Compress files (FILE -> FILE.ansz).")
@click.argument("files", nargs=-1, metavar="[FILE]...")
@_codec_options(compress=True)
@click.pass_context
def compress(ctx: click.Context, files: tuple[str, ...], output: str | None, to_stdout: bool,
             force: bool, remove: bool, recursive: bool, threads: int, chunk_size: int | None,
             coder: str, fast: bool, progress: bool | None, quiet: int, verbose: int) -> None:
    """Compress each FILE to FILE.ansz (no FILE, or -, reads stdin and writes stdout).
    With -r, a directory operand stands for every *.safetensors file under it."""
    _codec(ctx, True, files, output, to_stdout, force, remove, recursive, threads, chunk_size,
           progress, quiet, verbose, coder=coder, level=1 if fast else None)


@cli.command(cls=_Command, short_help="Decompress files (FILE.ansz -> FILE).")
@click.argument("files", nargs=-1, metavar="[FILE.ansz]...")
@_codec_options(compress=False)
@click.pass_context
def decompress(ctx: click.Context, files: tuple[str, ...], output: str | None, to_stdout: bool,
               force: bool, remove: bool, recursive: bool, threads: int, progress: bool | None,
               quiet: int, verbose: int) -> None:
    """Decompress each FILE.ansz to FILE (no FILE, or -, reads stdin and writes stdout).
    With -r, a directory operand stands for every *.safetensors.ansz file under it."""
    _codec(ctx, False, files, output, to_stdout, force, remove, recursive, threads, None,
           progress, quiet, verbose)


def _codec(ctx: click.Context, compressing: bool, files: tuple[str, ...], output: str | None,
           to_stdout: bool, force: bool, remove: bool, recursive: bool, threads: int,
           chunk_size: int | None, progress: bool | None, quiet: int, verbose: int,
           coder: str = "auto", level: int | None = None) -> None:
    inputs = _operands(ctx, list(files)) or [STDIN]
    directories = recursive and any(src is not STDIN and os.path.isdir(src) for src in inputs)
    if directories and (output is not None or to_stdout):
        raise click.UsageError("-o/--output and -c/--stdout cannot be used with -r on a "
                               "directory (each file gets its own output next to it)")
    if output is not None and to_stdout:
        raise click.UsageError("-o/--output and -c/--stdout exclude each other")
    if output is not None and len(inputs) > 1:
        raise click.UsageError("-o/--output takes one input file")
    if compressing and len(inputs) > 1 and to_stdout:
        raise click.UsageError("-c/--stdout takes one input file when compressing "
                               "(ansz containers do not concatenate)")
    if sum(src is STDIN for src in inputs) > 1:
        raise click.UsageError("standard input named more than once")
    if output == "":
        raise click.UsageError("-o/--output: empty file name")
    rep = _Reporter(level=2 + verbose - quiet, progress=progress)
    if remove and (to_stdout or output == "-"):
        rep.warn("--rm ignored when writing to stdout")
        remove = False
    job = _Job(compressing=compressing, output=output, to_stdout=to_stdout, force=force,
               remove=remove, threads=threads or None, chunk_size=chunk_size, coder=coder,
               level=level, rep=rep)
    if directories:
        inputs = _expand_directories(inputs, MODEL_SUFFIX + (SUFFIX if not compressing else ""),
                                     rep)
    _first_run_notice(rep)
    for src in inputs:
        rep.run(src, lambda src=src: job.one(src))
    if rep.failed:
        ctx.exit(EXIT_FAILURE)


def _first_run_notice(rep: _Reporter) -> None:
    """Say why the first run on a machine pauses (numba compiling every kernel), when
    progress is shown; otherwise stay silent, like progress."""
    from ._numba_env import kernel_cache_dir, kernel_cache_is_cold

    if not rep.show_progress():
        return
    from . import kernels  # numpy, not numba: is the ahead-of-time library in use?

    if not kernels.uses_library() and kernel_cache_is_cold():
        rep.info(f"ansz: first run: compiling kernels for this machine (about 30 s, once; "
                 f"cached in {kernel_cache_dir()})")


def _expand_directories(inputs: list[Operand], suffix: str, rep: _Reporter) -> list[Operand]:
    """``-r``: replace each directory operand by the files under it whose names end in
    ``suffix``: a directory's own files in sorted order, then its subdirectories likewise. Symbolic links found while walking
    are skipped with a warning, files and directories alike (zstd does the same without -f):
    ``--rm`` would remove only the link. A directory named as an operand is followed even if
    it is a link. Unreadable directories are reported as errors; the others go on."""
    out: list[Operand] = []
    for src in inputs:
        if src is STDIN or not os.path.isdir(src):
            out.append(src)  # a file, or a missing operand that job.one will report
            continue
        found: list[str] = []

        def failed(e: OSError) -> None:
            rep.error(e.filename if e.filename is not None else src, _os_message(e))

        for top, dirs, names in os.walk(src, onerror=failed):
            for d in list(dirs):
                if os.path.islink(os.path.join(top, d)):
                    rep.warn(f"{os.path.join(top, d)}: is a symbolic link -- ignored")
                    dirs.remove(d)
            dirs.sort()
            for name in sorted(names):
                if not name.endswith(suffix) or name == suffix:
                    continue
                path = os.path.join(top, name)
                if os.path.islink(path):
                    rep.warn(f"{path}: is a symbolic link -- ignored")
                elif os.path.isfile(path):
                    found.append(path)
        if not found:
            rep.warn(f"{src}: no *{suffix} files in this directory -- nothing to do")
        out.extend(found)
    return out


class _Job:
    """One compress/decompress invocation; :meth:`one` handles one input."""

    def __init__(self, *, compressing: bool, output: str | None, to_stdout: bool, force: bool,
                 remove: bool, threads: int | None, chunk_size: int | None,
                 rep: _Reporter, coder: str = "auto", level: int | None = None) -> None:
        self.compressing = compressing
        self.output = output
        self.to_stdout = to_stdout
        self.force = force
        self.remove = remove
        self.threads = threads
        self.chunk_size = chunk_size
        self.coder = coder
        self.level = level
        self.rep = rep

    def destination(self, src: Operand) -> Operand:
        if self.to_stdout or self.output == "-":
            return STDOUT
        if self.output is not None:
            return self.output
        if src is STDIN:
            return STDOUT
        if self.compressing:
            if src.endswith(SUFFIX) and not self.force:
                raise _Skip(f"already has {SUFFIX} suffix -- ignored (use -f to compress "
                            "it again, or -o)")
            return src + SUFFIX
        base = os.path.basename(src)
        if not base.endswith(SUFFIX) or len(base) == len(SUFFIX):
            raise _Skip(f"unknown suffix (expected {SUFFIX}) -- use -o FILE or -c")
        return src[: -len(SUFFIX)]

    def one(self, src: Operand) -> None:
        rep = self.rep
        st = _check_input(src)
        dst = self.destination(src)
        if dst is STDOUT:
            if self.compressing and not self.force and _isatty(_stdout()):
                raise _Skip("compressed data not written to a terminal (use -f to force)")
            replace = False
        else:
            # -f means overwrite even a file that appears after this check (another process
            # writing the same output): the API's publish must not refuse it then.
            replace = _check_output(src, dst, self.force, rep) or self.force
        if (src is STDIN and not self.compressing and not self.force
                and _isatty(sys.stdin)):
            raise _Skip("compressed data not read from a terminal (use -f to force)")

        api = _codec_api()
        kw: dict[str, Any] = {"threads": self.threads}
        if self.compressing:
            kw["chunk_size"] = self.chunk_size
            kw["coder"] = self.coder
            kw["level"] = self.level
        total = self.progress_total(api, src, st) if rep.show_progress() else None
        label = os.path.basename(src) if src is not STDIN else str(src)
        # The *_file functions map the input; a pipe or device (``<(cmd)``, /dev/stdin) has no
        # size to map and must be read as a stream.
        regular = st is not None and stat.S_ISREG(st.st_mode)
        _OUTPUTS_IN_PROGRESS.append(dst)
        try:
            with rep.progress_bar(label, total) as cb:
                kw["progress"] = functools.partial(_progress, cb)
                if regular and dst is not STDOUT and not _is_device_or_fifo(dst):
                    fn = api.compress_file if self.compressing else api.decompress_file
                    report = fn(src, dst, overwrite=replace, sync=self.remove, **kw)
                else:
                    stream = api.compress_stream if self.compressing else api.decompress_stream
                    with _open_input(src) as ifh, \
                            _open_output(dst, replace, self.remove) as ofh:
                        report = stream(ifh, ofh, **kw)
        finally:
            _OUTPUTS_IN_PROGRESS.remove(dst)
        self.summary(src, dst, report)
        if self.remove and regular:
            _remove_source(src, dst, self.compressing, self.threads, rep)

    def progress_total(self, api: Any, src: Operand, st: os.stat_result | None) -> int | None:
        """The API reports progress in original (uncompressed) bytes."""
        if st is None or not stat.S_ISREG(st.st_mode):
            return None
        if self.compressing:
            return st.st_size
        try:
            return api.read_info(src).original_size  # footer only; cheap
        except (AnszError, OSError):
            return None  # decompression will report the problem

    def summary(self, src: Operand, dst: Operand, report: Any) -> None:
        level = 3 if dst is STDOUT else 2
        orig, comp = report.original_size, report.compressed_size
        if self.compressing:
            line = (f"{src} : {_percent(comp, orig)} "
                    f"({human_size(orig)} => {human_size(comp)}, {dst})")
        else:
            line = f"{src} : {human_size(comp)} => {human_size(orig)}, {dst}"
        self.rep.info(line, level=level)
        secs = max(float(report.seconds), 1e-9)
        detail = f"  {human_size(orig / secs)}/s, {report.seconds:.2f} s"
        if self.compressing:
            detail = f"  format {report.format}" + (
                f" ({report.fallback_reason})" if report.fallback_reason else "") + "," + detail[1:]
        self.rep.info(detail, level=3)


def _progress(bar: Callable[[int], None] | None, done: int) -> None:
    """The API's progress callback: called in the main thread after each chunk."""
    _stop_if_signalled()
    if bar is not None:
        bar(done)


@contextmanager
def _open_input(src: Operand) -> Iterator[BinaryIO]:
    if src is STDIN:
        yield _stdin()
    else:
        with open(src, "rb") as fh:
            yield fh


def _is_device_or_fifo(path: str) -> bool:
    return os.path.exists(path) and not os.path.isfile(path) and not os.path.isdir(path)


@contextmanager
def _open_output(dst: Operand, replace: bool, sync: bool) -> Iterator[BinaryIO]:
    if dst is STDOUT:
        out = _stdout()
        yield out
        out.flush()
    elif _is_device_or_fifo(dst):  # /dev/null, a FIFO: write through, never replace it
        with open(dst, "wb", buffering=0) as fh:  # unbuffered: no write left for close()
            yield _NamedOutput(fh, dst)
    else:
        with _api().atomic_output(dst, overwrite=replace, sync=sync) as fh:
            yield fh


@cli.command(cls=_Command, short_help="Check that a container decodes to its original.")
@click.argument("file", metavar="FILE.ansz")
@click.argument("original", required=False, metavar="[ORIGINAL]")
@_threads_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (see man ansz).")
@_common_options
@click.pass_context
def verify(ctx: click.Context, file: str, original: str | None, threads: int, as_json: bool,
           quiet: int, verbose: int) -> None:
    """Decode FILE.ansz completely and check every checksum and the sha256 of the result;
    with ORIGINAL, also compare with that file. Prints "FILE.ansz: OK" or
    "FILE.ansz: FAILED (reason)"; exit status 0 only if OK."""
    ops = _operands(ctx, [file] + ([original] if original is not None else []))
    if any(op is STDIN for op in ops):
        raise click.UsageError("verify needs files, not standard input")
    rep = _Reporter(level=2 + verbose - quiet)
    result: dict[str, Any] = {"path": file, "ok": False, "original_size": None, "sha256": None,
                              "first_bad": None, "message": ""}

    def work() -> None:
        _check_input(file)
        if original is not None:
            _check_input(original)
        r = _codec_api().verify_file(file, original, threads=threads or None)
        known = bool(r.sha256)  # "" when the container's index is unreadable
        result.update(ok=bool(r.ok), original_size=r.original_size if known else None,
                      sha256=r.sha256 or None, first_bad=r.first_bad, message=r.message)

    rep.run(file, work)
    if rep.failed:  # could not even run (missing file, not a container...)
        result["message"] = rep.last_error
        if as_json:
            _print_json(result)
        ctx.exit(EXIT_FAILURE)
    if as_json:
        _print_json(result)
    elif result["ok"]:
        if rep.level >= 2:
            extra = (f" ({human_size(result['original_size'])}, sha256 {result['sha256']})"
                     if rep.level >= 3 else "")
            click.echo(f"{file}: OK{extra}")
    elif rep.level >= 1:
        reason = result["message"] or "mismatch"
        if result["first_bad"] and rep.level >= 3:
            reason += f"; first bad: {result['first_bad']}"
        click.echo(f"{file}: FAILED ({_one_line(reason)})")
    if not result["ok"]:
        ctx.exit(EXIT_FAILURE)


def _print_json(obj: Any) -> None:
    import json

    click.echo(json.dumps(obj, sort_keys=False, allow_nan=False))


def _finite(x: float) -> float | None:
    x = float(x)
    return x if x == x and x not in (float("inf"), float("-inf")) else None


@cli.command(cls=_Command, short_help="Per-tensor entropy, bound and predicted ratio.")
@click.argument("file", metavar="FILE")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (see man ansz).")
@click.option("--top", type=click.IntRange(min=1), default=None, metavar="N",
              help="Only the N largest tensors (the total still counts all).")
@click.pass_context
def stats(ctx: click.Context, file: str, as_json: bool, top: int | None) -> None:
    """Predict how well FILE (a .safetensors file, or any file) compresses: per tensor the
    dtype, shape, size, code entropy, coding-pair bound and predicted ratio, the ratio under
    each coder (rANS, Huffman, QLC) and zstd-3 on a sample, largest first."""
    if _operands(ctx, [file])[0] is STDIN:
        raise click.UsageError("stats needs a file, not standard input")
    rep = _Reporter()
    out: list[Any] = []

    def work() -> None:
        _check_input(file)
        out.append(_codec_api().file_stats(file))

    rep.run(file, work)
    if rep.failed:
        ctx.exit(EXIT_FAILURE)
    fs = out[0]
    tensors = sorted(fs.tensors, key=lambda t: (-t.nbytes, t.name))
    shown = tensors if top is None else tensors[:top]
    if as_json:
        _print_json(stats_json(fs, shown, len(tensors)))
    else:
        _print_stats_table(fs, shown, tensors)


def stats_json(fs: Any, shown: list, tensor_count: int) -> dict[str, Any]:
    """The ``stats --json`` object (documented in man/ansz.1; keys are stable)."""
    return {
        "path": fs.path,
        "format": fs.format,
        "file_size": fs.file_size,
        "tensor_count": tensor_count,
        "other_bytes": fs.other_bytes,
        "bound_bytes": _finite(fs.bound_bytes),
        "predicted_ratio": _finite(fs.predicted_ratio),
        "coders": {k: _finite(v) for k, v in fs.coder_ratios.items()},
        "zstd3_ratio": _finite(fs.zstd3_ratio),
        "tensors": [
            {
                "name": t.name,
                "dtype": t.dtype,
                "shape": [int(d) for d in t.shape],
                "nbytes": t.nbytes,
                "code_entropy": _finite(t.code_entropy),
                "bound_bytes": _finite(t.bound_bytes),
                "predicted_ratio": _finite(t.predicted_ratio),
                "coders": {k: _finite(v) for k, v in t.coder_ratios.items()},
                "zstd3_ratio": _finite(t.zstd3_ratio),
            }
            for t in shown
        ],
    }


def _print_stats_table(fs: Any, shown: list, tensors: list) -> None:
    from rich.console import Console
    from rich.table import Table

    out = sys.stdout
    console = Console(file=out, width=None if _isatty(out) else 200)
    console.print(f"{fs.path} ({fs.format}, {human_size(fs.file_size)})", markup=False,
                  highlight=False)
    table = Table(show_footer=True)
    table.add_column("tensor", footer="total", overflow="fold")
    table.add_column("dtype")
    table.add_column("shape")
    table.add_column("size", justify="right", footer=human_size(fs.file_size))
    table.add_column("code entropy (bits)", justify="right")
    table.add_column("bound", justify="right", footer=human_size(fs.bound_bytes))
    table.add_column("predicted ratio", justify="right", footer=_ratio(fs.predicted_ratio))
    coders = (("rans", "rANS"), ("huffman", "Huffman"), ("qlc", "QLC"))
    for key, title in coders:
        table.add_column(title, justify="right", footer=_ratio(fs.coder_ratios.get(key, 1.0)))
    table.add_column("zstd-3 (sample)", justify="right", footer=_ratio(fs.zstd3_ratio))
    for t in shown:
        table.add_row(t.name, t.dtype, "×".join(str(d) for d in t.shape) or "scalar",
                      human_size(t.nbytes), f"{t.code_entropy:.2f}", human_size(t.bound_bytes),
                      _ratio(t.predicted_ratio),
                      *(_ratio(t.coder_ratios.get(key, 1.0)) for key, _ in coders),
                      _ratio(t.zstd3_ratio))
    rest = tensors[len(shown):]
    blank = [""] * (len(coders) + 1)
    if rest:
        table.add_row(f"({len(rest)} more tensors)", "", "",
                      human_size(sum(t.nbytes for t in rest)), "",
                      human_size(sum(t.bound_bytes for t in rest)), "", *blank)
    if fs.other_bytes:
        table.add_row("(other bytes: header, padding)", "", "", human_size(fs.other_bytes),
                      "", human_size(fs.other_bytes), "100.0%", *blank)  # kept as they are
    console.print(table)


def _ratio(r: float) -> str:
    return f"{100.0 * r:.1f}%" if _finite(r) is not None else "n/a"


@cli.command(cls=_Command, short_help="Describe containers without decoding (zstd -l).")
@click.argument("files", nargs=-1, required=True, metavar="FILE.ansz...")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON object per file, one per line (see man ansz).")
@click.pass_context
def info(ctx: click.Context, files: tuple[str, ...], as_json: bool) -> None:
    """Describe containers without decoding them (zstd -l): format version, sizes, ratio,
    sha256 of the original, segment and chunk counts."""
    ops = _operands(ctx, list(files))
    if any(op is STDIN for op in ops):
        raise click.UsageError("info needs seekable files, not standard input")
    rep = _Reporter()
    totals: list[Any] = []
    for path in ops:
        rep.run(path, lambda path=path: totals.append(_info_one(path, as_json)))
    if len(totals) > 1 and not as_json:  # zstd -l: a total line for several files
        orig = sum(ci.original_size for ci in totals)
        comp = sum(ci.compressed_size for ci in totals)
        click.echo(f"total: {len(totals)} files, {human_size(orig)} => {human_size(comp)} "
                   f"({_percent(comp, orig)})")
    if rep.failed:
        ctx.exit(EXIT_FAILURE)


def info_json(ci: Any) -> dict[str, Any]:
    """The ``info --json`` object (documented in man/ansz.1; keys are stable)."""
    return {
        "path": ci.path,
        "format_version": ci.format_version,
        "format": ci.format,
        "original_size": ci.original_size,
        "compressed_size": ci.compressed_size,
        "ratio": _finite(ci.compressed_size / ci.original_size) if ci.original_size else None,
        "sha256": ci.sha256,
        "segment_count": len(ci.segments),
        "chunk_count": ci.chunk_count,
        "chunk_size": ci.chunk_size,
        "segments": [
            {
                "name": seg.get("name"),
                "dtype": seg.get("dtype"),
                "shape": list(seg["shape"]) if seg.get("shape") is not None else None,
                "start": seg.get("start"),
                "end": seg.get("end"),
                "nbytes": seg.get("nbytes"),
                "chunk_count": seg.get("chunk_count"),
                "compressed_size": seg.get("compressed_size"),
            }
            for seg in ci.segments
        ],
    }


def _info_one(path: str, as_json: bool) -> Any:
    _check_input(path)
    ci = _api().read_info(path)
    if as_json:
        _print_json(info_json(ci))
        return ci
    rows = [
        ("format version", str(ci.format_version)),
        ("input format", ci.format),
        ("original size", f"{human_size(ci.original_size)} ({ci.original_size} bytes)"),
        ("compressed size", f"{human_size(ci.compressed_size)} ({ci.compressed_size} bytes)"),
        ("ratio", _percent(ci.compressed_size, ci.original_size)),
        ("segments", str(len(ci.segments))),
        ("chunks", f"{ci.chunk_count} (chunk size {_binary_size(ci.chunk_size)})"),
        ("sha256", ci.sha256),
    ]
    click.echo(path)
    for k, v in rows:
        click.echo(f"  {k:<16} {v}")
    return ci


class _Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP (and SIGINT in the command's own process), raised in the main
    thread so that temporary outputs are removed on the way out, as for Ctrl-C; exits with
    128 + the signal number."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
        self.exit_code = 128 + signum


#: The stop signal whose handler has run in this process, 0 if none.
_stop_signal = 0


def _raise_terminated(signum: int, frame: Any) -> None:
    global _stop_signal
    _stop_signal = _stop_signal or signum
    raise _Terminated(signum)


def _stop_if_signalled() -> None:
    """Raise the stop signal's exception again if its handler has run and yet the run goes
    on: the exception was discarded on its way (C code that clears errors, a callback
    whose exceptions are ignored). Called where the run may stop: between inputs, after
    each chunk."""
    if _stop_signal:
        raise _Terminated(_stop_signal)


def _redeliver_swallowed_interrupts(previous: Callable[[Any], Any]) -> Callable[[Any], None]:
    """A ``sys.unraisablehook``. A signal's exception raised where Python cannot propagate it
    (in a ``__del__``, a weakref or ctypes callback: numba loading kernels runs many) is
    "ignored": printed with a traceback and dropped, and the run would go on to exit 0.
    This hook drops the noise instead and has the same signal delivered to the main thread
    again (:func:`_thread.interrupt_main` simulates its arrival), so that it stops the run at
    the next point where it can. Other unraisable exceptions go to ``previous``.

    The new delivery comes from a helper thread once the hook has returned: delivered
    inside the hook, the handler's exception would be swallowed again. The helper waits for
    the flag that the hook clears as its last statement (no signal is handled between that
    and its return), and it needs the main thread to let go of the GIL first, which the main
    thread does only where it checks for signals."""
    import _thread
    import threading

    inside = [False]

    def deliver(signum: int) -> None:
        while inside[0]:
            time.sleep(0.001)
        _thread.interrupt_main(signum)

    def hook(unraisable: Any) -> None:
        inside[0] = True
        exc_type = unraisable.exc_type
        if isinstance(exc_type, type) and issubclass(exc_type, KeyboardInterrupt):
            signum = getattr(unraisable.exc_value, "signum", signal.SIGINT)
            try:
                threading.Thread(target=deliver, args=(signum,), daemon=True,
                                 name="ansz-signal").start()
            except RuntimeError:  # the interpreter is exiting: nothing left to stop
                pass
        else:
            previous(unraisable)
        inside[0] = False

    return hook


#: Outputs being written now (see :func:`_watch_for_a_stuck_stop`).
_OUTPUTS_IN_PROGRESS: list[Operand] = []

#: Seconds a run may take to stop after SIGINT/SIGTERM/SIGHUP before it is ended anyway.
STOP_DEADLINE = 2.0


def _watch_for_a_stuck_stop(deadline: float = STOP_DEADLINE) -> None:
    """For the command's own process: a run must stop within ``deadline`` seconds of a
    signal, wherever the signal lands. Normally its exception unwinds the main thread, which
    removes the temporary output and exits in milliseconds. But the main thread handles a
    signal only between bytecodes, so a long call into compiled code (numba compiling
    kernels: seconds) delays it; code that discards exceptions can drop it; and an
    exception raised while waiting for a module that a worker thread imports can leave the
    import lock held, and the exit waits for that worker for ever.

    A daemon thread learns of the signal at once, from the wakeup file descriptor that the
    C-level handler writes to. If the process still runs ``deadline`` seconds later, the
    thread removes the temporary files of the outputs in progress and ends the process
    with status 128 + the signal number."""
    import threading

    r, w = os.pipe()
    os.set_blocking(w, False)
    signal.set_wakeup_fd(w, warn_on_full_buffer=False)

    def watch() -> None:
        stops = {int(signal.SIGINT), int(signal.SIGTERM), int(signal.SIGHUP)}
        signum = 0
        while signum not in stops:
            data = os.read(r, 64)
            signum = next((n for n in data if n in stops), 0)
        time.sleep(deadline)
        try:
            _remove_temporary_outputs()
        finally:
            os._exit(128 + signum)

    threading.Thread(target=watch, daemon=True, name="ansz-stop-watch").start()


#: ``atomic_output``'s temporary names: ``.NAME.XXXXXXXX.tmp`` (tempfile's random part).
_TEMPORARY_NAME = re.compile(r"\..*\.[a-z0-9_]{8}\.tmp", re.DOTALL)


def _remove_temporary_outputs() -> None:
    """Remove the temporary files of the outputs in progress: in each output's directory,
    the files named like ``atomic_output``'s temporary files that this process holds open
    for writing (a file it does not hold open so is another writer's, or an input)."""
    held = set()
    for name in os.listdir("/proc/self/fd"):
        try:
            with open(f"/proc/self/fdinfo/{name}") as info:
                flags = next(int(line.split()[1], 8) for line in info
                             if line.startswith("flags:"))
            st = os.fstat(int(name))
        except (OSError, ValueError, StopIteration):
            continue
        if (flags & os.O_ACCMODE) != os.O_RDONLY and stat.S_ISREG(st.st_mode):
            held.add((st.st_dev, st.st_ino))
    for dst in list(_OUTPUTS_IN_PROGRESS):
        if dst is STDOUT:
            continue
        try:
            with os.scandir(os.path.dirname(os.path.abspath(dst))) as entries:
                for entry in entries:
                    if not _TEMPORARY_NAME.fullmatch(entry.name):
                        continue
                    st = entry.stat(follow_symlinks=False)
                    if (st.st_dev, st.st_ino) in held:
                        os.unlink(entry.path)
        except OSError:
            continue


def _quiet_interrupts(previous: Callable[..., Any]) -> Callable[..., None]:
    """A ``sys.excepthook`` that prints nothing for a signal's exception. C code that
    cannot propagate an exception prints it with PyErr_Print, which calls this hook (numba
    does so, then raises ImportError, when a signal lands while it imports a C extension):
    the run stops all the same, by :func:`_stop_if_signalled`."""

    def hook(exc_type: Any, exc: Any, tb: Any) -> None:
        if not (isinstance(exc_type, type) and issubclass(exc_type, KeyboardInterrupt)):
            previous(exc_type, exc, tb)

    return hook


def _claim_standard_streams() -> None:
    """For the command's own process. A closed descriptor 0, 1 or 2 is held open on
    /dev/null, so that no file opened later takes its number (anything writing to "standard
    output" would write into it); 0 and 1 are held the wrong way round (write-only,
    read-only), so that reading or writing them fails (EBADF) as on a closed descriptor.
    ``sys.stdout`` becomes a :class:`_StdoutText`: every failed write to standard output,
    through click, rich or the binary buffer, raises :class:`_StdoutError`."""
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
    sys.stdout = _StdoutText(_StdoutBuffer(io.FileIO(1, "w", closefd=False)),
                             encoding=getattr(old, "encoding", None) or "utf-8",
                             errors=getattr(old, "errors", None) or "strict",
                             line_buffering=bool(getattr(old, "line_buffering", False)))


def main(argv: list[str] | None = None, prog_name: str | None = "ansz") -> Any:
    """Console-script entry point (``ansz``); ``python -m ansz`` calls it too. Without
    ``argv`` the process is the command's own: its standard streams, signal handling,
    hooks for exceptions that cannot propagate and stop deadline are set up for it. Always
    exits (SystemExit)."""
    global _stop_signal
    _stop_signal = 0  # a new run
    own_process = argv is None
    handled: list[int] = []  # signals given a handler here, that raise KeyboardInterrupt
    try:
        try:
            if _SIGINT_DEFAULTED and signal.getsignal(signal.SIGINT) == signal.SIG_DFL:
                signal.signal(signal.SIGINT, signal.default_int_handler)
            if own_process:
                from ._numba_env import skip_optional_numba_imports

                skip_optional_numba_imports()  # -0.35 s where scipy is installed
                _claim_standard_streams()
                sys.unraisablehook = _redeliver_swallowed_interrupts(sys.unraisablehook)
                sys.excepthook = _quiet_interrupts(sys.excepthook)
                _watch_for_a_stuck_stop()
                if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
                    signal.signal(signal.SIGINT, _raise_terminated)  # remembered, as these:
                    handled.append(signal.SIGINT)
            for sig in (signal.SIGTERM, signal.SIGHUP):
                if signal.getsignal(sig) != signal.SIG_IGN:  # nohup's SIGHUP stays ignored
                    signal.signal(sig, _raise_terminated)
                    handled.append(sig)
            return cli.main(args=argv, prog_name=prog_name)
        except KeyboardInterrupt as e:  # while setting up, or after the command proper
            sys.exit(_interrupted_status(e))
    finally:
        if own_process:
            try:
                _end_of_run(handled)
            except KeyboardInterrupt as e:  # landed just before its handler was reset
                _end_of_run(handled)
                sys.exit(_interrupted_status(e))


def _end_of_run(handled: list[int]) -> None:
    """The command's own process, once the run is over (outputs published or removed).

    A signal from now on ends the process by its default action (the shell still sees 128 +
    its number) instead of raising in the interpreter's exit. And the exit would collect
    garbage over numba's object graph (millions of objects): 0.25-0.35 s of every run here;
    frozen objects are skipped, the exit is otherwise unchanged (atexit, flushing, teardown).
    """
    import gc

    for sig in handled:
        signal.signal(sig, signal.SIG_DFL)
    gc.freeze()


if __name__ == "__main__":  # pragma: no cover
    main()
