"""The ``ansz`` command: a thin click layer over :mod:`ansz.api`.

It parses arguments, names outputs, refuses what zstd/xz/gzip refuse, calls the API and
reports (docs: ``man/ansz.1``):

- :mod:`.args`: operands (``-`` and no operand mean stdin/stdout, ``--``), option types and
  decorators, the parsed options of compress/decompress;
- :mod:`.report`: one-line errors, summaries, the progress bar, sizes, exit statuses;
- :mod:`.render`: the text and ``--json`` output of verify, stats and info;
- :mod:`.jobs`: one compress/decompress run, input by input (output names, overwrite
  checks, ``--rm``, ``-r``);
- :mod:`.commands`: the subcommands;
- :mod:`.stdio` and :mod:`.signals`: the command's own process, its standard streams and
  stop signals.

This module holds the ``ansz`` group and :func:`main`, the console-script entry point
(``python -m ansz`` calls it too). Exit status: 0 ok, 1 failure (bad input, verify
mismatch, I/O error), 2 usage error, 3 when the only failures are inputs that need a newer
ansz (format version, header flags, dtype codes), 128 + N when stopped by signal N. One line per error
on stderr (``ansz: FILE: message``), never a traceback.

Start-up matters (``ansz --help`` within 0.15 s), so the package imports only click and the
standard library at top level: numpy/numba (via :mod:`ansz.api`) and rich are imported
inside the commands that need them.
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
    return os.path.basename(getattr(main_module, "__file__", None) or "") in SCRIPTS


#: The console scripts, and the arguments each puts before the command line's own.
SCRIPTS = {"ansz": (), "unansz": ("decompress",), "anszcat": ("decompress", "-c")}


#: Whether the import below put SIGINT back to its default action; :func:`main` restores
#: Python's handler. Until then Ctrl-C ends the process at once, as the kernel does, instead
#: of printing a KeyboardInterrupt traceback out of an import (nothing is written yet).
_SIGINT_DEFAULTED = (_imported_by_the_command()
                     and signal.getsignal(signal.SIGINT) is signal.default_int_handler)
if _SIGINT_DEFAULTED:
    signal.signal(signal.SIGINT, signal.SIG_DFL)

from typing import Any  # noqa: E402  (after the signal set-up above, which must come first)

import click  # noqa: E402

from .. import __version__  # noqa: E402
from . import habits, signals, stdio  # noqa: E402
from .commands import COMMANDS  # noqa: E402
from .report import EXIT_FAILURE, EXIT_OK, one_line  # noqa: E402


class Group(click.Group):
    """The ``ansz`` group: commands in definition order, and ansz's exit conventions."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)  # definition order: compress, decompress, verify, ...

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """zstd's command line (``ansz -d FILE``, ``ansz FILE``) as a subcommand's
        (:func:`.habits.rewrite`)."""
        try:
            args = habits.rewrite(args, self.commands, strict=not ctx.resilient_parsing)
        except click.UsageError as e:
            e.ctx = ctx
            raise
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM/SIGHUP via signals.Terminated
            raise click.exceptions.Exit(signals.interrupted_status(e)) from None
        except BrokenPipeError:  # the reader went away (``| head``): stop quietly
            stdio.silence_stdout()
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
                signals.stop_if_signalled()  # never status 0 once a stop signal was handled
                if sys.stdout is not None:
                    sys.stdout.flush()
            except click.exceptions.Exit as e:
                status = e.exit_code
            except _NO_ARGS_IS_HELP as e:  # "ansz" alone: the help, on stderr
                e.show()
                status = e.exit_code
            except click.UsageError as e:
                click.echo(usage_error_line(e), err=True)
                status = e.exit_code
            except click.ClickException as e:
                click.echo(f"ansz: {one_line(e.format_message())}", err=True)
                status = e.exit_code
            except click.Abort as e:  # click turns an interrupt while parsing into Abort
                cause = e.__cause__ or e.__context__
                if isinstance(cause, KeyboardInterrupt):
                    status = signals.interrupted_status(cause)
                else:
                    click.echo("ansz: aborted", err=True)
                    status = EXIT_FAILURE
            except stdio.StdoutError as e:
                click.echo(f"ansz: {e.message}", err=True)
                stdio.silence_stdout()
                status = EXIT_FAILURE
            except BrokenPipeError:  # the reader went away (``| head``): stop quietly
                stdio.silence_stdout()
                status = EXIT_FAILURE
            except KeyboardInterrupt as e:
                status = signals.interrupted_status(e)
            except Exception:
                if not signals.received():
                    raise
                status = 128 + signals.received()  # the signal's doing (see Reporter.run)
        except KeyboardInterrupt as e:  # a second signal while reporting the first
            status = signals.interrupted_status(e)
        sys.exit(status)


#: click >= 8.2 raises this for a bare ``ansz``; its message is the whole help text.
_NO_ARGS_IS_HELP = getattr(click.exceptions, "NoArgsIsHelpError", ())


def usage_error_line(e: click.UsageError) -> str:
    """``ansz: compress: no such option '-x' (see 'ansz compress --help')``."""
    msg = one_line(e.format_message())
    if msg[:1].isupper() and msg[1:2].islower():  # "No such option" but not "ANSZ_THREADS"
        msg = msg[0].lower() + msg[1:]
    if msg.endswith(".") and not msg.endswith(".."):
        msg = msg[:-1]
    ctx = e.ctx
    if ctx is None:
        return f"ansz: {msg}"
    command = f"{ctx.info_name}: " if ctx.parent is not None else ""
    return f"ansz: {command}{msg} (see '{ctx.command_path} --help')"


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="ansz",
                      message="%(prog)s %(version)s")
def cli() -> None:
    """Lossless compression of neural-network model files (safetensors and GGUF, tensor by
    tensor; any other file is compressed as plain bytes).

    \b
      ansz compress model.safetensors        -> model.safetensors.ansz
      ansz decompress model.safetensors.ansz -> model.safetensors
      ansz verify model.safetensors.ansz
      cat m.safetensors | ansz compress -c > m.ansz

    zstd's forms work too: ansz FILE (compress), -z, -d (decompress), -t (verify),
    -l (info), -b (bench), -c, -dc, -19; unansz is ansz decompress, anszcat is
    ansz decompress -c.

    Exit status: 0 ok, 1 failure, 2 usage error, 3 an input needs a newer ansz.
    See man ansz (in a source checkout: man ./man/ansz.1).
    """


for _command in COMMANDS:
    cli.add_command(_command)


def main(argv: list[str] | None = None, prog_name: str | None = "ansz",
         command: tuple[str, ...] = ()) -> Any:
    """Console-script entry point (``ansz``); ``python -m ansz`` calls it too. Without
    ``argv`` the process is the command's own: its standard streams, signal handling,
    hooks for exceptions that cannot propagate and stop deadline are set up for it, and the
    arguments are ``sys.argv[1:]``. ``command`` goes before them (``unansz``). Always exits
    (SystemExit)."""
    signals.reset()  # a new run
    own_process = argv is None
    handled: list[int] = []  # signals given a handler here, that raise KeyboardInterrupt
    try:
        try:
            if _SIGINT_DEFAULTED and signal.getsignal(signal.SIGINT) == signal.SIG_DFL:
                signal.signal(signal.SIGINT, signal.default_int_handler)
            if own_process:
                from .._numba_env import single_threaded_blas, skip_optional_numba_imports

                skip_optional_numba_imports()  # -0.35 s where scipy is installed
                single_threaded_blas()  # -75 ms of CPU at numpy's import
                stdio.claim_standard_streams()
            signals.take_over(own_process, handled)
            args = list(sys.argv[1:] if argv is None else argv)
            return cli.main(args=[*command, *args], prog_name=prog_name)
        except KeyboardInterrupt as e:  # while setting up, or after the command proper
            sys.exit(signals.interrupted_status(e))
    finally:
        if own_process:
            try:
                signals.end_of_run(handled)
            except KeyboardInterrupt as e:  # landed just before its handler was reset
                signals.end_of_run(handled)
                sys.exit(signals.interrupted_status(e))


def unansz() -> Any:
    """The ``unansz`` console script: ``ansz decompress`` (as ``unzstd`` is ``zstd -d``)."""
    return main(command=SCRIPTS["unansz"])


def anszcat() -> Any:
    """The ``anszcat`` console script: ``ansz decompress -c`` (as ``zstdcat``)."""
    return main(command=SCRIPTS["anszcat"])
