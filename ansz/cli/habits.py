"""zstd's command line over ansz's subcommands: ``ansz FILE`` compresses, ``ansz -d`` is
``ansz decompress``, and so on. :func:`rewrite` turns such a command line into one with a
subcommand before click parses it; a command line that starts with a subcommand is left
as it is, even if a file of that name exists (``ansz compress`` is the subcommand; name
the file ``./compress``).

- ``-z``/``--compress``: compress; ``-d``/``--decompress``/``--uncompress``: decompress;
  ``-t``/``--test``: verify; ``-l``/``--list``: info; ``-b``: bench.
- No mode flag: compress, if the first argument is an option of compress (``-c``, ``-k``,
  ``-19``...), ``-``, or a file: one that exists, or a name with a ``.`` or ``/``. Any other
  first word is left to click, which reports an unknown command (``ansz frobnicate``).
- Short options bundle as in zstd: ``-dc``, ``-kd``, ``-df``, ``-dT2``, ``-do out``, ``-z19``.
- Two different mode flags are a usage error.

Compression levels (``-19``) are turned into ``--level`` by the subcommand itself
(:class:`~ansz.cli.args.Command`), so that they work after ``ansz compress`` too.
"""

from __future__ import annotations

import os
import re
from typing import Mapping

import click

#: zstd's mode options, and the subcommand each stands for.
MODES = {
    "-z": "compress", "--compress": "compress",
    "-d": "decompress", "--decompress": "decompress", "--uncompress": "decompress",
    "-t": "verify", "--test": "verify",
    "-l": "info", "--list": "info",
    "-b": "bench",
}
_SHORT_MODES = {opt[1]: cmd for opt, cmd in MODES.items() if len(opt) == 2}

#: The group's own options: ``ansz -h`` is the group's help, not compress's.
GROUP_OPTIONS = ("-h", "--help", "-V", "--version")

#: Level spellings that belong to compress (checked there: see args.LEVEL_WORDS).
_LEVEL_RE = re.compile(r"-\d+")
_LEVEL_WORDS = ("--best", "--fast", "--ultra")


def rewrite(args: list[str], commands: Mapping[str, click.Command],
            strict: bool = True) -> list[str]:
    """``args`` with zstd's mode flags replaced by the subcommand they stand for, first
    (see the module's docstring). ``strict`` False (shell completion): conflicting modes
    are not an error, the last one wins."""
    if not args or args[0] in commands or args[0] in GROUP_OPTIONS:
        return args
    takes_value = _value_options(commands)
    modes: list[tuple[str, str]] = []  # (as written, subcommand)
    out: list[str] = []
    i = 0
    while i < len(args):
        tok = args[i]
        i += 1
        if tok == "--":
            out.extend(args[i - 1:])
            break
        if tok in MODES:
            modes.append((tok, MODES[tok]))
        elif tok.startswith("--"):
            out.append(tok)
            if tok in takes_value and i < len(args):  # "--output FILE"
                out.append(args[i])
                i += 1
        elif tok.startswith("-") and len(tok) > 1 and not _LEVEL_RE.fullmatch(tok):
            pieces, needs_value = _split_cluster(tok, takes_value, modes)
            out.extend(pieces)
            if needs_value and i < len(args):  # "-do FILE"
                out.append(args[i])
                i += 1
        else:
            out.append(tok)  # an operand, "-", or a level such as -19
    chosen = {cmd for _, cmd in modes}
    if len(chosen) > 1 and strict:
        first, other = modes[0][0], next(m for m, c in modes if c != modes[0][1])
        raise click.UsageError(f"{first} and {other} exclude each other")
    if modes:
        return [modes[-1][1], *out]
    if "compress" in commands and _looks_like_compress(args[0], commands["compress"]):
        return ["compress", *out]
    return args


def _split_cluster(tok: str, takes_value: set[str],
                   modes: list[tuple[str, str]]) -> tuple[list[str], bool]:
    """The options bundled in ``-xyz``, mode letters taken out into ``modes``: the tokens
    to pass on, and whether the last one waits for its value in the next argument."""
    pieces: list[str] = []
    kept = ""
    chars = tok[1:]
    j = 0
    while j < len(chars):
        c = chars[j]
        if c in _SHORT_MODES:
            modes.append(("-" + c, _SHORT_MODES[c]))
        elif c.isdigit():  # a level: "-z19"
            k = j
            while k < len(chars) and chars[k].isdigit():
                k += 1
            if kept:
                pieces.append("-" + kept)
                kept = ""
            pieces.append("-" + chars[j:k])
            j = k
            continue
        elif "-" + c in takes_value:  # "-T2", "-o FILE": the rest is its value
            if kept:
                pieces.append("-" + kept)
            rest = chars[j + 1:]
            pieces.append("-" + c + rest)
            return pieces, not rest
        else:
            kept += c
        j += 1
    if kept:
        pieces.append("-" + kept)
    return pieces, False


def _value_options(commands: Mapping[str, click.Command]) -> set[str]:
    """The option strings that take a value, in any subcommand (``-o``, ``-T``, ``--top``)."""
    found: set[str] = set()
    for cmd in commands.values():
        for p in cmd.params:
            if isinstance(p, click.Option) and not p.is_flag and not p.count:
                found.update(p.opts)
    return found


def _looks_like_compress(first: str, compress: click.Command) -> bool:
    """Whether ``ansz FIRST ...`` is zstd's ``zstd FIRST ...``: FIRST is an option of
    compress or a level, ``-``, or a file name (an existing file, or a name with ``.`` or
    ``/``, which a command name never has)."""
    if first == "-" or _LEVEL_RE.fullmatch(first) or first in _LEVEL_WORDS:
        return True
    if first.startswith("-"):
        names = {o for p in compress.params if isinstance(p, click.Option)
                 for o in (*p.opts, *p.secondary_opts)}
        return first.split("=", 1)[0] in names or (
            not first.startswith("--") and "-" + first[1] in names)
    return os.path.lexists(first) or "." in first or "/" in first
