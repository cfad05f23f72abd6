"""The subcommands of ``ansz``: compress, decompress, verify, stats and info.

Each parses its operands (:mod:`.args`), calls :mod:`ansz.api` for every input through a
:class:`~.report.Reporter` (one bad input does not stop the others) and exits with the
reporter's status; output goes through :mod:`.render`. They are plain click commands; the
package's ``__init__`` adds them to the ``ansz`` group.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import click

from ..errors import AnszError, UnsupportedError
from .args import (PATH, STDIN, CodecOptions, Command, codec_options, common_options, operands,
                   threads_option)
from .jobs import MODEL_SUFFIXES, SUFFIX, Job, api, check_input, codec_api, expand_directories
from .render import (info_json, print_info, print_info_total, print_json, print_stats_table,
                     print_verify, stats_json, verify_json)
from .report import EXIT_FAILURE, Reporter


@click.command(cls=Command, short_help="Compress files (FILE -> FILE.ansz).")
@click.argument("files", nargs=-1, type=PATH, metavar="[FILE]...")
@codec_options(compress=True)
@click.pass_context
def compress(ctx: click.Context, **params: Any) -> None:
    """Compress each FILE to FILE.ansz (no FILE, or -, reads stdin and writes stdout).
    safetensors and GGUF files are coded tensor by tensor, any other file as plain bytes.
    With -r, a directory operand stands for every *.safetensors and *.gguf file under it."""
    run_codec(ctx, CodecOptions.from_context(ctx, compressing=True))


@click.command(cls=Command, short_help="Decompress files (FILE.ansz -> FILE).")
@click.argument("files", nargs=-1, type=PATH, metavar="[FILE.ansz]...")
@codec_options(compress=False)
@click.pass_context
def decompress(ctx: click.Context, **params: Any) -> None:
    """Decompress each FILE.ansz to FILE (no FILE, or -, reads stdin and writes stdout).
    With -r, a directory operand stands for every *.safetensors.ansz and *.gguf.ansz file
    under it."""
    run_codec(ctx, CodecOptions.from_context(ctx, compressing=False))


def run_codec(ctx: click.Context, opts: CodecOptions) -> None:
    """Compress or decompress every input in turn, then exit with the reporter's status."""
    rep = Reporter(level=opts.verbosity, progress=opts.progress)
    if opts.remove and opts.writes_stdout:
        rep.warn("--rm ignored when writing to stdout")
        opts = dataclasses.replace(opts, remove=False)
    inputs = opts.inputs
    if opts.directories:
        suffixes = tuple(sx + ("" if opts.compressing else SUFFIX) for sx in MODEL_SUFFIXES)
        inputs = expand_directories(inputs, suffixes, rep)
    job = Job(opts, rep)
    _first_run_notice(rep)
    for src in inputs:
        rep.run(src, lambda src=src: job.one(src))
    job.warn_kept_links()
    if rep.failed:
        ctx.exit(rep.status)


def _first_run_notice(rep: Reporter) -> None:
    """Say why the first run on a machine pauses (numba compiling every kernel), when
    progress is shown; otherwise stay silent, like progress."""
    from .._numba_env import kernel_cache_dir, kernel_cache_is_cold

    if not rep.show_progress():
        return
    from .. import kernels  # numpy, not numba: is the ahead-of-time library in use?

    if not kernels.uses_library() and kernel_cache_is_cold():
        rep.info(f"ansz: first run: compiling kernels for this machine (about 30 s, once; "
                 f"cached in {kernel_cache_dir()})")


@click.command(cls=Command, short_help="Check that a container decodes to its original.")
@click.argument("file", type=PATH, metavar="FILE.ansz")
@click.argument("original", required=False, type=PATH, metavar="[ORIGINAL]")
@threads_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (see man ansz).")
@common_options
@click.pass_context
def verify(ctx: click.Context, file: str, original: str | None, threads: int, as_json: bool,
           quiet: int, verbose: int) -> None:
    """Decode FILE.ansz completely and check every checksum and the sha256 of the result;
    with ORIGINAL, also compare with that file. Prints "FILE.ansz: OK" or
    "FILE.ansz: FAILED (reason)"; exit status 0 only if OK."""
    ops = operands(ctx, [file] + ([original] if original is not None else []))
    if any(op is STDIN for op in ops):
        raise click.UsageError("verify needs files, not standard input")
    rep = Reporter(level=2 + verbose - quiet)
    reports: list[Any] = []

    def work() -> None:
        check_input(file)
        if original is not None:
            check_input(original)
        api = codec_api()
        report = api.verify_file(file, original, threads=threads or None)
        if not report.ok and not report.sha256:  # its index was not even read: say whether
            _raise_if_unsupported(api, file)  # that is for want of a newer ansz (status 3)
        reports.append(report)

    rep.run(file, work)
    if rep.failed:  # could not even run (a missing file, a device, a newer container)
        if as_json:
            print_json(verify_json(file, message=rep.last_error))
        ctx.exit(rep.status)
    result = verify_json(file, reports[0])
    if as_json:
        print_json(result)
    else:
        print_verify(result, rep)
    if not result["ok"]:
        ctx.exit(EXIT_FAILURE)


def _raise_if_unsupported(api: Any, path: str) -> None:
    """Raise UnsupportedError if the container's header, trailer or index needs a newer
    ansz; any other problem is left to the verify report that found it."""
    try:
        api.read_info(path)
    except UnsupportedError:
        raise
    except AnszError:
        pass


@click.command(cls=Command, short_help="Per-tensor entropy, bound and predicted ratio.")
@click.argument("file", metavar="FILE")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (see man ansz).")
@click.option("--top", type=click.IntRange(min=1), default=None, metavar="N",
              help="Only the N largest tensors (the total still counts all).")
@click.pass_context
def stats(ctx: click.Context, file: str, as_json: bool, top: int | None) -> None:
    """Predict how well FILE (a .safetensors or .gguf file, or any file) compresses: per
    tensor the dtype, shape, size, code entropy, coding-pair bound and predicted ratio, the
    ratio under each coder (rANS, Huffman, QLC) and zstd-3 on a sample, largest first."""
    if operands(ctx, [file])[0] is STDIN:
        raise click.UsageError("stats needs a file, not standard input")
    rep = Reporter()
    out: list[Any] = []

    def work() -> None:
        check_input(file)
        out.append(codec_api().file_stats(file))

    rep.run(file, work)
    if rep.failed:
        ctx.exit(rep.status)
    fs = out[0]
    tensors = sorted(fs.tensors, key=lambda t: (-t.nbytes, t.name))
    shown = tensors if top is None else tensors[:top]
    if as_json:
        print_json(stats_json(fs, shown, len(tensors)))
    else:
        print_stats_table(fs, shown, tensors)


@click.command(cls=Command, short_help="Describe containers without decoding (zstd -l).")
@click.argument("files", nargs=-1, required=True, type=PATH, metavar="FILE.ansz...")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON object per file, one per line (see man ansz).")
@click.pass_context
def info(ctx: click.Context, files: tuple[str, ...], as_json: bool) -> None:
    """Describe containers without decoding them (zstd -l): format version, sizes, ratio,
    sha256 of the original, segment and chunk counts."""
    ops = operands(ctx, list(files))
    if any(op is STDIN for op in ops):
        raise click.UsageError("info needs seekable files, not standard input")
    rep = Reporter()
    infos: list[Any] = []

    def one(path: str) -> None:
        check_input(path)
        ci = api().read_info(path)
        if as_json:
            print_json(info_json(ci))
        else:
            print_info(path, ci)
        infos.append(ci)

    for path in ops:
        rep.run(path, lambda path=path: one(path))
    if len(infos) > 1 and not as_json:  # zstd -l: a total line for several files
        print_info_total(infos)
    if rep.failed:
        ctx.exit(rep.status)


#: In the order ``ansz --help`` lists them.
COMMANDS = (compress, decompress, verify, stats, info)
