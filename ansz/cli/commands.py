"""The subcommands of ``ansz``: compress, decompress, verify, stats, info and bench.

Each parses its operands (:mod:`.args`), calls :mod:`ansz.api` for every input through a
:class:`~.report.Reporter` (one bad input does not stop the others) and exits with the
reporter's status; output goes through :mod:`.render`. They are plain click commands; the
package's ``__init__`` adds them to the ``ansz`` group.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
from typing import Any

import click

from ..errors import AnszError, UnsupportedError
from .args import (PATH, STDIN, CodecOptions, Command, check_address, cluster_option,
                   codec_options, common_options, file_operands, is_directory, operands,
                   threads_option)
from . import stdio
from .jobs import (MODEL_SUFFIXES, SUFFIX, Job, api, benchmark_api, check_input,
                   codec_api, expand_directories)
from .render import (bench_json, info_json, print_bench_footer, print_bench_header,
                     print_bench_rows, print_info, print_info_total, print_json, print_stats,
                     print_stats_total, print_verify, print_verify_total, stats_json, verify_json)
from .report import EXIT_FAILURE, Reporter, Skip, isatty
from .cluster import run_on_cluster


@click.command(cls=Command, short_help="Compress files (FILE -> FILE.ansz).")
@click.argument("files", nargs=-1, type=PATH, metavar="[FILE]...")
@codec_options(compress=True)
@click.pass_context
def compress(ctx: click.Context, **params: Any) -> None:
    """Compress each FILE to FILE.ansz (no FILE, or -, reads stdin and writes stdout).
    safetensors and GGUF files are coded tensor by tensor, any other file as plain bytes.
    With -r, a directory operand stands for every *.safetensors and *.gguf file under it.
    A FILE or -o may be a URL (s3://, gs://, hf://, https://...; needs ansz[remote])."""
    run_codec(ctx, CodecOptions.from_context(ctx, compressing=True))


@click.command(cls=Command, short_help="Decompress files (FILE.ansz -> FILE).")
@click.argument("files", nargs=-1, type=PATH, metavar="[FILE.ansz]...")
@codec_options(compress=False)
@click.pass_context
def decompress(ctx: click.Context, **params: Any) -> None:
    """Decompress each FILE.ansz to FILE (no FILE, or -, reads stdin and writes stdout).
    With -r, a directory operand stands for every *.safetensors.ansz and *.gguf.ansz file
    under it. A FILE or -o may be a URL (s3://, gs://, hf://, https://...; needs
    ansz[remote])."""
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
    if opts.cluster is not None:
        options: dict[str, Any] = {"threads": opts.threads}
        if opts.compressing:
            options.update(chunk_size=opts.chunk_size, coder=opts.coder, level=opts.level,
                           strict=opts.strict)
        run_on_cluster(ctx, "compress" if opts.compressing else "decompress", opts.cluster,
                       inputs, job.destination, overwrite=opts.force, options=options,
                       as_json=opts.as_json, rep=rep)
        return
    _first_run_notice(rep)
    if rep.level >= 4:
        rep.info(job.settings(), level=4)
    for src in inputs:
        rep.run(src, lambda src=src: job.one(src))
    job.warn_kept_links()
    job.print_total()
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


@click.command(cls=Command, short_help="Check that containers decode to their originals "
                                         "(zstd -t).")
@click.argument("files", nargs=-1, type=PATH, metavar="[FILE.ansz]...")
@click.option("--original", type=PATH, metavar="FILE",
              help="Also compare the decoded bytes with FILE (one container only).")
@click.option("--sha256", "expected", metavar="HEX",
              help="Fail unless the original's sha256 (a Hugging Face LFS oid) is HEX, as the "
                   "container records it and as the decoded bytes give it (one container "
                   "only).")
@click.option("-r", "--recursive", is_flag=True,
              help="Check every *.ansz file under each directory operand.")
@click.option("--base", "--patch-from", "base", type=PATH, metavar="BASE",
              help="The base file the containers were compressed against (ansz info names "
                   "it); needed to check such a container.")
@threads_option
@cluster_option
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON object per file, one per line (see man ansz); with "
                   "--cluster, then one of totals.")
@common_options
@click.pass_context
def verify(ctx: click.Context, files: tuple[str, ...], original: str | None,
           expected: str | None, recursive: bool, base: str | None, threads: int,
           cluster: str | None,
           as_json: bool, quiet: int, verbose: int) -> None:
    """Decode each FILE.ansz completely and check every checksum and the sha256 of the
    result (no FILE, or -, reads stdin). Prints "FILE.ansz: OK" or "FILE.ansz: FAILED
    (reason)" per file, and a total line after several; exit status 0 only if all are OK."""
    rep = Reporter(level=2 + verbose - quiet)
    inputs, original = _verify_inputs(ctx, operands(ctx, list(files)), original, expected,
                                      recursive, rep)
    if expected is not None:
        expected = expected.lower()
    if cluster is not None:
        check_address(cluster)
        for given, what in ((original is not None, "--original"),
                            (expected is not None, "--sha256"), (base is not None, "--base"),
                            (any(op is STDIN for op in inputs), "standard input")):
            if given:
                raise click.UsageError(f"--cluster cannot be used with {what}")
        run_on_cluster(ctx, "verify", cluster, inputs, lambda src: None, overwrite=False,
                       options={"threads": threads or None}, as_json=as_json, rep=rep)
        return
    results: list[dict[str, Any]] = []  # one per input, in order
    checked_bad = 0  # containers checked and found bad (FAILED); rep counts the others
    for src in inputs:
        checked: list[dict[str, Any]] = []

        def work(src: Any = src) -> None:
            checked.append(verify_json(str(src), _verify_one(src, original, expected,
                                                             threads or None, base)))

        rep.run(str(src), work)
        if checked:
            result = checked[0]
            checked_bad += not result["ok"]
        else:  # it could not even be checked: the error is on stderr, and in JSON
            result = verify_json(str(src), message=rep.last_error)
        results.append(result)
        if as_json:
            print_json(result)
        elif checked:
            print_verify(result, rep)
    if len(results) > 1 and not as_json:
        print_verify_total(results, rep)
    if checked_bad:
        ctx.exit(EXIT_FAILURE)
    if rep.failed:
        ctx.exit(rep.status)


def _verify_inputs(ctx: click.Context, ops: list[Any], original: str | None,
                   expected: str | None, recursive: bool,
                   rep: Reporter) -> tuple[list[Any], str | None]:
    """verify's containers and ORIGINAL, checked: standard input when no operand is given
    and it is not a terminal; ``ansz verify X.ansz ORIGINAL`` (a second operand that is not
    a container) still means --original, with a warning; -r expands directories.
    click.UsageError for what cannot be done."""
    if not ops:
        if isatty(sys.stdin):
            raise click.UsageError("missing argument 'FILE.ansz' (standard input is a "
                                   "terminal)")
        ops = [STDIN]
    if sum(op is STDIN for op in ops) > 1:
        raise click.UsageError("standard input named more than once")
    if (original is None and len(ops) == 2 and ops[1] is not STDIN
            and not any(is_directory(op) for op in ops)
            and _is_plain_file(ops[1])):
        original = ops.pop()
        rep.warn(f"'ansz verify FILE.ansz ORIGINAL' is deprecated: {original} is not a "
                 f"container, so it is taken as the original; write 'ansz verify --original "
                 f"{original} {ops[0]}'")
    directories = recursive and any(is_directory(op) for op in ops)
    for option, value in (("--original", original), ("--sha256", expected)):
        if value is not None and (len(ops) != 1 or directories):
            raise click.UsageError(f"{option} takes one container")
    if expected is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", expected):
        raise click.UsageError(f"--sha256: {expected!r} is not a sha256 (64 hex digits)")
    if original == "-" or original == "":
        raise click.UsageError("--original needs a file")
    if original is not None:
        from ..remote import local_path

        original = local_path(original)
    if directories:
        ops = expand_directories(ops, (SUFFIX,), rep)
    return ops, original


def _is_plain_file(path: str) -> bool:
    """Whether ``path`` is a regular file that does not start like an ansz container."""
    from ..container import MAGIC

    try:
        with open(path, "rb") as fh:
            if not os.path.isfile(path):
                return False
            return fh.read(len(MAGIC)) != MAGIC
    except OSError:
        return False


def _verify_one(src: Any, original: str | None, expected: str | None,
                threads: int | None, base: str | None = None) -> Any:
    """The API's VerifyReport for one container (a path or STDIN), failed if ``expected``
    is not the sha256 it records; raises what Reporter.run reports (a missing file, a
    device, a container that needs a newer ansz)."""
    api = codec_api()
    if src is STDIN:
        if isatty(sys.stdin):
            raise Skip("compressed data not read from a terminal")
        if base is not None:
            raise AnszError("--base needs the container as a file, not standard input")
        report = api.verify_stream(stdio.stdin(), original, threads=threads)
    else:
        check_input(src)
        if original is not None:
            check_input(original)
        if expected is not None:  # a wrong file fails at once, without decoding it
            info = _read_info_or_none(api, src)
            if info is not None and info.sha256 != expected:
                return api.VerifyReport(src, False, info.original_size, info.sha256, None,
                                        _sha256_mismatch(info.sha256, expected))
        report = api.verify_file(src, original, threads=threads, base=base)
        if not report.ok and not report.sha256:  # its index was not even read: say whether
            _raise_if_unsupported(api, src)  # that is for want of a newer ansz (status 3)
    if expected is not None and report.ok and report.sha256 != expected:
        return dataclasses.replace(report, ok=False,
                                   message=_sha256_mismatch(report.sha256, expected))
    return report


def _read_info_or_none(api: Any, path: str) -> Any:
    try:
        return api.read_info(path)
    except AnszError:  # verify_file says what is wrong
        return None


def _sha256_mismatch(recorded: str, expected: str) -> str:
    return f"sha256 mismatch: the original's sha256 is {recorded}, expected {expected}"


def _raise_if_unsupported(api: Any, path: str) -> None:
    """Raise UnsupportedError if the container's header, trailer or index needs a newer
    ansz; any other problem is left to the verify report that found it."""
    try:
        api.read_info(path)
    except UnsupportedError:
        raise
    except AnszError:
        pass


@click.command(cls=Command, short_help="How much FILE would shrink: ansz beside zstd -3.")
@click.argument("files", nargs=-1, required=True, metavar="FILE...")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON object per file, one per line (see man ansz).")
@click.option("--fast", is_flag=True, help="Predict level 1 (compress --fast).")
@click.option("--exact", is_flag=True,
              help="Code every chunk, not a sample: exact, but as slow as compressing.")
@click.option("--top", type=click.IntRange(min=1), default=None, metavar="N",
              help="List the N largest tensors (the rest on one row); -v lists them all.")
@click.option("--base", type=PATH, metavar="BASE",
              help="Predict compress --base BASE: tensors paired with BASE's coded against "
                   "them (a directory: its file sharing most tensors with FILE).")
@threads_option
@common_options
@click.pass_context
def stats(ctx: click.Context, files: tuple[str, ...], as_json: bool, fast: bool, exact: bool,
          top: int | None, base: str | None, threads: int, verbose: int, quiet: int) -> None:
    """Predict how much each FILE (.safetensors, .gguf or any file) shrinks, without writing
    anything: ansz's size, by running its encoder on chunks spread through the file (every
    chunk of a file up to 32 MiB), beside zstd -3's, measured the same way; per dtype, and
    with -v per tensor. On a FILE.ansz, what it stores."""
    ops = file_operands(ctx, list(files), "files", local=True)
    rep = Reporter(level=2 + verbose - quiet)
    done: list[Any] = []
    width = terminal_width()
    per_tensor = verbose > 0 or top is not None

    def one(path: str) -> None:
        check_input(path)
        kw = {"sample_bytes": 1 << 62} if exact else {}
        if base is not None:
            kw["base"] = base
        fs = codec_api().file_stats(path, level=1 if fast else None,
                                    threads=threads or None, **kw)
        segments = sorted(fs.segments, key=lambda t: (-t.nbytes, t.label))
        shown = segments if top is None else segments[:top]
        if as_json:
            print_json(stats_json(fs, shown))
        else:
            if done:
                click.echo()
            print_stats(fs, shown if per_tensor else [],
                        segments[len(shown):] if per_tensor else [], width)
        done.append(fs)

    for path in ops:
        rep.run(path, lambda path=path: one(path))
    if len(done) > 1 and not as_json:
        click.echo()
        print_stats_total(done)
    if rep.failed:
        ctx.exit(rep.status)


def terminal_width() -> int:
    """Columns to fit the stats report in: $COLUMNS, else the terminal's, else 80."""
    import shutil

    return max(40, shutil.get_terminal_size((80, 24)).columns)


@click.command(cls=Command, short_help="Describe containers without decoding (zstd -l).")
@click.argument("files", nargs=-1, required=True, type=PATH, metavar="FILE.ansz...")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON object per file, one per line (see man ansz).")
@click.pass_context
def info(ctx: click.Context, files: tuple[str, ...], as_json: bool) -> None:
    """Describe containers without decoding them (zstd -l): format version, sizes, ratio,
    sha256 of the original, segment and chunk counts."""
    ops = file_operands(ctx, list(files), "seekable files")
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


@click.command(cls=Command, short_help="Benchmark ansz beside zstd -3, in memory (zstd -b).")
@click.argument("files", nargs=-1, metavar="[FILE]...")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON object per file and codec, one per line (see man ansz).")
@click.option("--time", "min_time", type=click.FloatRange(min=0, max=60), default=0.3,
              show_default=True, metavar="SECONDS",
              help="Repeat each measurement for at least this long; the fastest run counts.")
@threads_option
@common_options
@click.pass_context
def bench(ctx: click.Context, files: tuple[str, ...], as_json: bool, min_time: float,
          threads: int, verbose: int, quiet: int) -> None:
    """Compress and decompress each FILE in memory with every ansz level and with zstd -3,
    check the bytes come back, and print ratio and speed side by side (like zstd -b). With
    no FILE, run on the sample weights shipped with ansz (bf16, f32 and fp8 tensors of
    all-MiniLM-L6-v2): a first run needs no model at hand."""
    ops = file_operands(ctx, list(files), "files", local=True)
    rep = Reporter(level=2 + verbose - quiet)
    results: list[Any] = []
    bench_api = benchmark_api()
    paths: list[str] = list(ops)
    if not paths:
        rep.run(None, lambda: paths.extend(bench_api.sample_files()))

    def one(path: str) -> None:
        check_input(path)
        got = bench_api.bench_file(path, threads=threads or None, min_seconds=min_time)
        if as_json:
            for r in got:
                print_json(bench_json(r, path))
        else:
            if not results:
                print_bench_header(got[0].threads, min_time)
            print_bench_rows(got)
        results.extend(got)

    for path in paths:
        rep.run(path, lambda path=path: one(path))
    if results and not as_json:
        print_bench_footer(results, sample=not ops)
    if rep.failed:
        ctx.exit(rep.status)


#: In the order ``ansz --help`` lists them.
COMMANDS = (compress, decompress, verify, stats, info, bench)
