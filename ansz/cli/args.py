"""The ``ansz`` command line: operands, option types and decorators, and the parsed options
of ``compress`` and ``decompress`` (:class:`CodecOptions`).

Operands follow zstd: no operand or ``-`` means standard input (written to standard
output). Standard input is the :data:`STDIN` mark, never the string ``"-"``, so after
``--`` a file literally named ``-`` works (:class:`Command` counts the operands after
``--``; :func:`operands` applies it).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any, Callable, Union

import click

from ..errors import AnszError
from ..options import CODERS, DEFAULT_LEVEL, FAST_LEVEL, MAX_CHUNK_SIZE, MIN_CHUNK_SIZE
from .report import binary_size


class StdioMark:
    """Stands for standard input or output; compares equal to no path (zstd's ``stdinmark``)."""

    __slots__ = ("label",)

    def __init__(self, label: str) -> None:
        self.label = label

    def __repr__(self) -> str:
        return f"<{self.label}>"

    def __str__(self) -> str:
        return self.label


STDIN = StdioMark("(stdin)")
STDOUT = StdioMark("(stdout)")

#: A file name, or :data:`STDIN` / :data:`STDOUT`.
Operand = Union[str, StdioMark]


class PathType(click.ParamType):
    """A file or directory name: completed by the shell as a file name (click's ``file``
    completion, in which directories appear too), and passed on as it is written. Nothing is
    checked here: ansz reports a missing or unreadable file itself, one line per input,
    without stopping the others (click.Path's checks would make it a usage error)."""

    name = "path"

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        return value

    def shell_complete(self, ctx: click.Context, param: click.Parameter,
                       incomplete: str) -> list:
        from click.shell_completion import CompletionItem

        return [CompletionItem(incomplete, type="file")]


#: The type of every file operand and file option (``-o``, ``--original``).
PATH = PathType()


class Command(click.Command):
    """Records how many positional operands followed ``--``: those are taken literally, so
    ``ansz compress -- -`` names a file called ``-``, while a bare ``-`` means stdin.

    Every operand of ansz is a file name: a positional argument declared without a type
    gets :data:`PATH`, so that shells complete file names for it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for p in self.params:
            if isinstance(p, click.Argument) and p.type is click.STRING:
                p.type = PATH

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            args = spell_levels(self, ctx, args)
        except click.UsageError as e:
            e.ctx, e.cmd = ctx, self
            raise
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


#: zstd's compression levels, -1 to -19 (``ansz compress -19``), and the highest.
LEVEL_RE = re.compile(r"-(\d+)")
MAX_LEVEL = 19
LEVEL_HELP = ("ansz has two levels: -1 (--fast) codes for decoding speed, -2 (--best, the "
              f"default) for the smallest output; -3 to -{MAX_LEVEL} are accepted, as zstd's "
              "levels, and equal -2")


def spell_levels(cmd: click.Command, ctx: click.Context, args: list[str]) -> list[str]:
    """``args`` with every spelling of a compression level (``-N``, ``--fast``,
    ``--best``) written as ``--level=N``, so that the last one wins, as in zstd; before
    ``--`` and outside option values only. click.UsageError for a level out of range or
    ``--ultra``, and for a level given to a command without ``--level``."""
    has_level = any(p.name == "level" for p in cmd.params)
    takes_value = {o for p in cmd.params if isinstance(p, click.Option) and not p.is_flag
                   and not p.count for o in p.opts}
    out = list(args)
    i = 0
    while i < len(out):
        tok = out[i]
        if tok == "--":
            break
        if tok in takes_value:  # "-T -1": -1 is the value of -T
            i += 2
            continue
        m = LEVEL_RE.fullmatch(tok)
        word = {"--fast": "1", "--best": "2"}.get(tok) if has_level else None
        if (m or tok == "--ultra") and not ctx.resilient_parsing:
            if not has_level:
                raise click.UsageError(f"{tok}: compression levels are options of compress")
            if tok == "--ultra" or not 1 <= int(m.group(1)) <= MAX_LEVEL:
                raise click.UsageError(f"{tok}: no such compression level (ansz takes -1 to "
                                       f"-{MAX_LEVEL}; -2 to -{MAX_LEVEL} all mean its "
                                       "smallest output)")
        if m and has_level:
            out[i] = f"--level={int(m.group(1))}"
        elif word is not None:
            out[i] = f"--level={word}"
        i += 1
    return out


def operands(ctx: click.Context, values: list[str]) -> list[Operand]:
    """Positional values in command-line order, ``-`` replaced by :data:`STDIN` except after
    ``--`` (click appends everything after ``--`` at the end of the positional list), and a
    ``file://`` URL by its local path."""
    from ..remote import local_path

    literal = ctx.meta.get("ansz.literal_operands", 0)
    cut = len(values) - literal
    return [STDIN if (v == "-" and i < cut) else local_path(v) for i, v in enumerate(values)]


def file_operands(ctx: click.Context, values: list[str], needs: str, *,
                  local: bool = False) -> list[str]:
    """:func:`operands` of a command that reads files only: ``-`` is a usage error that says
    what the command ``needs`` ("files", "seekable files"); with ``local``, so is a URL."""
    from ..remote import is_remote

    ops = operands(ctx, values)
    if any(op is STDIN for op in ops):
        raise click.UsageError(f"needs {needs}, not standard input")
    if local and any(is_remote(op) for op in ops):
        raise click.UsageError("needs local files, not URLs")
    return ops


def is_directory(op: Operand) -> bool:
    """Whether the operand ``op`` names a directory (for a URL, asks the store; a URL
    that cannot be asked is no directory: the job reports why)."""
    from .. import remote

    if op is STDIN:
        return False
    if remote.is_remote(op):
        try:
            return remote.isdir(op)
        except (AnszError, OSError):
            return False
    return os.path.isdir(op)


def check_address(address: str | None) -> None:
    """click.UsageError for an address :func:`ansz.cluster.parse_address` refuses."""
    if address is None:
        return
    from ..cluster import parse_address

    try:
        parse_address(address)
    except AnszError as e:
        raise click.UsageError(str(e)) from None


_SIZE_RE = re.compile(r"^\s*(\d+)\s*([kmg]?)(i?b?)\s*$", re.IGNORECASE)


class Size(click.ParamType):
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
            hi = f" to {binary_size(self.high)}" if self.high is not None else " or more"
            self.fail(f"{value!r}: size must be {binary_size(self.low)}{hi}", param, ctx)
        return n


# --------------------------------------------------------------------------------------------
# Option decorators


def common_options(f: Callable) -> Callable:
    """-v/--verbose and -q/--quiet (counts)."""
    f = click.option("-v", "--verbose", count=True,
                     help="More messages; repeatable. Summaries even when writing to stdout.")(f)
    f = click.option("-q", "--quiet", count=True,
                     help="Fewer messages: no summaries or progress; -qq also silences errors.")(f)
    return f


def threads_option(f: Callable) -> Callable:
    """-T/--threads N (ANSZ_THREADS); 0 means all cores."""
    return click.option(
        "-T", "--threads", type=click.IntRange(min=0), default=0, metavar="N",
        envvar="ANSZ_THREADS", show_envvar=True,
        help="Worker threads; 0 (default) uses all cores.")(f)


def cluster_option(f: Callable) -> Callable:
    """--cluster ADDRESS: one task per file on a Dask cluster."""
    return click.option(
        "--cluster", metavar="ADDRESS",
        help="Send one task per file to the Dask cluster whose scheduler is at ADDRESS "
             "(tcp://HOST:PORT), or start one on this machine: local (a worker per core) or "
             "local:N. Inputs and outputs must be paths or URLs every worker reaches; an "
             "output that exists and verifies is skipped. Needs ansz[cluster].")(f)


def codec_options(compress: bool) -> Callable[[Callable], Callable]:
    """The options of ``compress`` (``compress=True``) or ``decompress``."""
    allow = ("write compressed data to a terminal; compress FILE.ansz again" if compress
             else "read compressed data from a terminal")

    def deco(f: Callable) -> Callable:
        opts = [
            click.option("-o", "--output", type=PATH, metavar="FILE",
                         help="Write to FILE (one input only); '-o -' is stdout."),
            click.option("-c", "--stdout", "to_stdout", is_flag=True,
                         help="Write to standard output; keep the input."),
            click.option("-f", "--force", is_flag=True,
                         help=f"Overwrite existing output; {allow}."),
            click.option("-k", "--keep", "remove", flag_value=False, default=False,
                         help="Keep the input file (the default)."),
            click.option("--rm", "remove", flag_value=True,
                         help="Delete the input file once the output is complete, synced "
                              "and verified; a symbolic link, and the file it points to, "
                              "are kept."),
            click.option("-r", "--recursive", is_flag=True,
                         help="Operate on every "
                              + ("*.safetensors and *.gguf" if compress
                                 else "*.safetensors.ansz and *.gguf.ansz")
                              + " file under each directory operand, one file after another; "
                                "symbolic links to files are read through."),
            threads_option,
            click.option(
                "--base", "--patch-from", "base", type=PATH, metavar="BASE",
                help=("Compress against BASE, the model FILE was fine-tuned or trained from "
                      "(a .safetensors or .gguf file, or its .ansz; a directory: its file "
                      "sharing most tensors with FILE): a tensor with a tensor of the same "
                      "name, dtype and shape in BASE is coded as its change; decompressing "
                      "needs the same BASE." if compress else
                      "The base file a container was compressed against (ansz info names "
                      "it; a directory: the file of that name in it); needed to decompress "
                      "such a container.")),
        ]
        if compress:
            opts.append(click.option(
                "--chunk-size", type=Size(MIN_CHUNK_SIZE, MAX_CHUNK_SIZE), default=None,
                metavar="SIZE",
                help="Bytes of input per independently coded chunk, 1K to 64M "
                     "(default 1M)."))
            opts.append(click.option(
                "--coder", type=click.Choice(CODERS), default="auto", show_default=True,
                help="Entropy coder: auto keeps the smallest of rans, huffman and qlc per "
                     "stream; the others force one."))
            opts.append(click.option(
                "--level", type=click.IntRange(1, MAX_LEVEL), default=None, metavar="N",
                help=f"Compression level, also written -N (-1 ... -{MAX_LEVEL}): "
                     f"{LEVEL_HELP}."))
            # --fast and --best never reach click: spell_levels writes them as --level, so
            # that the last level given wins; they are declared for --help and completion.
            opts.append(click.option(
                "--fast", is_flag=True, expose_value=False,
                help="Level 1: code for decoding speed (exponents in plain fields, wider "
                     "rANS interleaving); bf16 files come out ~0.6% larger, and their chunks "
                     "decode ~1.75x faster."))
            opts.append(click.option(
                "--best", is_flag=True, expose_value=False,
                help="Level 2, the default: the smallest output."))
            opts.append(click.option(
                "--strict", is_flag=True,
                help="A file that looks like (or is named) safetensors or GGUF but does not "
                     "parse as one is an error, and nothing is written; by default it is "
                     "compressed as plain bytes, with a warning."))
        opts += [
            cluster_option,
            click.option("--json", "as_json", is_flag=True,
                         help="With --cluster: print one JSON object per file, then one of "
                              "totals (see man ansz)."),
            click.option("--progress/--no-progress", default=None,
                         help="Force or forbid the progress bar (default: only if stderr "
                              "is a terminal)."),
            common_options,
        ]
        for o in reversed(opts):
            f = o(f)
        return f

    return deco


# --------------------------------------------------------------------------------------------
# Parsed options


@dataclass(frozen=True)
class CodecOptions:
    """A ``compress`` or ``decompress`` command line, checked (see :meth:`from_context`)."""

    compressing: bool
    inputs: list[Operand]  #: in command-line order; [STDIN] if none was given
    output: str | None  #: -o FILE ("-" is standard output)
    to_stdout: bool  #: -c
    force: bool
    remove: bool  #: --rm
    directories: bool  #: -r, and an operand is a directory: it stands for files under it
    threads: int | None  #: None: all cores
    progress: bool | None
    verbosity: int  #: 2 + verbose - quiet (see :class:`~ansz.cli.report.Reporter`)
    chunk_size: int | None = None
    coder: str = "auto"
    level: int | None = None  #: None: the API's default; -1/--fast: 1; -2 ... -19: 2
    strict: bool = False  #: a damaged model file is an error, not plain bytes
    cluster: str | None = None  #: --cluster ADDRESS
    as_json: bool = False  #: --json (with --cluster)
    base: str | None = None  #: --base: the base file to code against or decode with

    @property
    def writes_stdout(self) -> bool:
        return self.to_stdout or self.output == "-"

    @classmethod
    def from_context(cls, ctx: click.Context, compressing: bool) -> "CodecOptions":
        """The options in ``ctx.params``, as the ``compress``/``decompress`` decorators
        define them; click.UsageError for options that exclude each other."""
        from ..remote import local_path

        p = ctx.params
        inputs = operands(ctx, list(p["files"])) or [STDIN]
        output, to_stdout = local_path(p["output"]), p["to_stdout"]
        directories = p["recursive"] and any(is_directory(src) for src in inputs)
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
        cluster = p["cluster"]
        if p["as_json"] and cluster is None:
            raise click.UsageError("--json goes with --cluster")
        if cluster is not None:
            check_address(cluster)
            for given, what in ((to_stdout or output == "-", "-c/--stdout"),
                                (any(src is STDIN for src in inputs), "standard input"),
                                (p["remove"], "--rm"), (p["base"] is not None, "--base")):
                if given:
                    raise click.UsageError(f"--cluster cannot be used with {what}")
        base = p["base"]
        if base is not None and (base in ("", "-") or STDIN in inputs
                                 or output == "-" or to_stdout):
            raise click.UsageError("--base needs files: a base file, and inputs and outputs "
                                   "that are files, not standard input or output")
        extra: dict[str, Any] = {"base": base}
        if compressing:
            level = p["level"]
            extra.update(chunk_size=p["chunk_size"], coder=p["coder"], strict=p["strict"],
                         level=None if level is None
                         else FAST_LEVEL if level == 1 else DEFAULT_LEVEL)
        return cls(compressing=compressing, inputs=inputs, output=output, to_stdout=to_stdout,
                   force=p["force"], remove=p["remove"], directories=directories,
                   threads=p["threads"] or None, progress=p["progress"],
                   verbosity=2 + p["verbose"] - p["quiet"], cluster=cluster,
                   as_json=p["as_json"], **extra)
