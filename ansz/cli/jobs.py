"""One ``compress`` or ``decompress`` run, input by input: naming each output, refusing
what must not be done, opening inputs and outputs, calling the API and ``--rm``.

- ``compress X`` writes ``X.ansz``; ``decompress X.ansz`` writes ``X``; any other suffix is
  an error unless ``-o``/``-c`` names the output.
- Never overwrite without ``-f`` (a terminal is asked first); never write compressed data
  to a terminal or read it from one without ``-f``.
- ``--rm`` deletes an input only after its output is complete, synced and verified
  (:func:`remove_source`), never when writing to standard output, and never a symbolic
  link: removing it would leave the file it points to (a Hugging Face cache's blob) in
  place, and removing that file could break other links to it; both are kept, and the run
  ends with one warning (:attr:`Job.kept_links`).
- ``-r``: a directory operand stands for the model files under it (:func:`expand_directories`).
- An operand or output may be a URL (``s3://``, ``hf://``, ``memory://``...: the API reads
  and writes it through fsspec); ``file://`` URLs are turned into local paths as the
  command line is parsed (:func:`ansz.remote.local_path`).

numpy and numba come in with :mod:`ansz.api`, imported only when a job runs
(:func:`codec_api`).
"""

from __future__ import annotations

import functools
import os
import stat
import sys
from contextlib import contextmanager
from typing import Any, BinaryIO, Callable, Iterator

from ..errors import AnszError, FormatError, OutputExistsError
from ..remote import is_remote
from . import signals, stdio
from .args import STDIN, STDOUT, CodecOptions, Operand, is_directory
from .report import Reporter, Skip, human_size, isatty, os_message, percent

SUFFIX = ".ansz"
#: What ``compress -r`` looks for in a directory (``decompress -r``: these + SUFFIX).
MODEL_SUFFIXES = (".safetensors", ".gguf")


def api():
    """:mod:`ansz.api`: numpy + numba, only when a command really runs."""
    from .. import api

    return api


def benchmark_api():
    """:mod:`ansz.benchmark` (``bench_file``, ``sample_files``), with :func:`codec_api`'s
    imports done first."""
    codec_api()
    from .. import benchmark

    return benchmark


def codec_api():
    """:func:`api`, with every module that the API's worker threads import on first use
    imported here first, in the main thread. A signal's exception raised in the main thread
    while it waits for a module that a worker is importing can leave importlib's module
    lock held for good: the worker then waits forever, and so does the main thread, for the
    worker, on its way out."""
    import zstandard  # noqa: F401

    from .. import blocks, chunks, huffman, kernels, pairs, qlc, streams  # noqa: F401 (numpy)

    if not kernels.uses_library():  # the JIT kernels: numba, imported at the first call
        from .. import _kernels  # noqa: F401
    return api()


def check_input(src: Operand) -> os.stat_result | None:
    """The input's status (None for standard input); :class:`Skip` for a directory. For a
    URL, a regular file's status holding the size the store gives (one request)."""
    if src is STDIN:
        return None
    if is_remote(src):
        from .. import remote

        meta = remote.info(src)
        if meta.get("type") == "directory":
            raise Skip("is a directory -- ignored")
        return os.stat_result((stat.S_IFREG | 0o644, 0, 0, 1, 0, 0,
                               int(meta.get("size") or 0), 0, 0, 0))
    st = os.stat(src)
    if stat.S_ISDIR(st.st_mode):
        raise Skip("is a directory -- ignored")
    return st


#: How the command line says that an output exists (with OutputExistsError's wording).
FORCE_HINT = "use -f to overwrite"


def check_output(src: Operand, dst: str, force: bool, rep: Reporter) -> bool:
    """Returns whether ``dst`` exists and may be replaced: the API's policy
    (:func:`ansz._io.check_output`), which raises AnszError for the input itself or a
    directory and OutputExistsError ("X already exists (use -f to overwrite)") for another
    existing output without ``-f``; unless stdin and stderr are terminals, then the user is
    asked first, and :class:`Skip` is raised if the answer is no."""
    from .._io import check_output as policy

    try:
        return policy(dst, None if src is STDIN else src, overwrite=force, hint=FORCE_HINT)
    except OutputExistsError:
        if not (src is not STDIN and rep.level >= 2 and isatty(sys.stdin)
                and isatty(sys.stderr)):
            raise
    if ask(f"ansz: {dst} already exists; overwrite?"):
        return True
    raise Skip(f"{dst} not overwritten")


def ask(question: str) -> bool:
    """Ask on stderr and read the answer from stdin: True for y or yes, False for anything
    else or end of input. Not click.confirm: it reads with input(), which discards an
    exception raised while it flushes standard output, such as a signal's (the process
    would then wait for an answer after SIGTERM); and it turns a signal into click's Abort.
    """
    sys.stderr.write(f"{question} [y/N] ")
    sys.stderr.flush()
    return sys.stdin.readline().strip().lower() in ("y", "yes")


def expand_directories(inputs: list[Operand], suffixes: tuple[str, ...],
                       rep: Reporter) -> list[Operand]:
    """``-r``: replace each directory operand by the files under it whose names end in one
    of ``suffixes``: a directory's own files in sorted order, then its subdirectories
    likewise. A symbolic link to a regular file is taken like the file (it is read through,
    and its output goes beside the link; ``--rm`` keeps it: see :meth:`Job.one`), wherever
    it points: a Hugging Face snapshot is a tree of such links. A symbolic link to a
    directory is not descended into (with a warning), so the walk cannot loop or leave the
    tree; a directory named as an operand is followed even if it is a link. A broken link
    is skipped with a warning. A directory with no matching file gives a warning, not an
    error (as ``gzip -r`` on an empty directory succeeds). Unreadable directories are
    reported as errors; the others go on. A directory named by URL lists the store's
    objects under that prefix, likewise sorted."""
    out: list[Operand] = []
    for src in inputs:
        if not is_directory(src):
            out.append(src)  # a file, or a missing operand that Job.one will report
            continue
        found: list[str] = []
        if is_remote(src):
            from .. import remote

            try:
                found = sorted(set().union(*(remote.find(src, sx) for sx in suffixes)),
                               key=_walk_order(src))
            except (AnszError, OSError) as e:
                rep.error(src, str(e) if isinstance(e, AnszError) else os_message(e))
                continue
            if not found:
                rep.warn(f"no {' or '.join('*' + sx for sx in suffixes)} files under it -- "
                         "nothing to do", src)
            out.extend(found)
            continue

        def failed(e: OSError) -> None:
            rep.error(e.filename if e.filename is not None else src, os_message(e))

        for top, dirs, names in os.walk(src, onerror=failed):
            for d in list(dirs):
                if os.path.islink(os.path.join(top, d)):
                    rep.warn("is a symbolic link to a directory -- not followed",
                             os.path.join(top, d))
                    dirs.remove(d)
            dirs.sort()
            for name in sorted(names):
                if not any(name.endswith(sx) and name != sx for sx in suffixes):
                    continue
                path = os.path.join(top, name)
                if os.path.isfile(path):  # a regular file, or a link to one
                    found.append(path)
                elif os.path.islink(path) and not os.path.exists(path):
                    rep.warn("is a broken symbolic link -- ignored", path)
        if not found:
            rep.warn(f"no {' or '.join('*' + sx for sx in suffixes)} files under it -- "
                     "nothing to do", src)
        out.extend(found)
    return out


def _walk_order(root: str) -> Callable[[str], Any]:
    """Sort key of URLs under ``root`` as os.walk gives local files: a directory's own
    files, then each subdirectory's."""
    prefix = root.rstrip("/") + "/"

    def key(url: str) -> Any:
        parts = url[len(prefix):].split("/")
        return parts[:-1], parts[-1]

    return key


class Job:
    """One compress/decompress invocation; :meth:`one` handles one input."""

    def __init__(self, opts: CodecOptions, rep: Reporter) -> None:
        self.opts = opts
        self.rep = rep
        #: Inputs that --rm did not remove because they are symbolic links.
        self.kept_links: list[str] = []
        #: Files done so far, and their original and compressed bytes added up.
        self.files = self.original_bytes = self.compressed_bytes = 0

    def destination(self, src: Operand) -> Operand:
        """The output for ``src``: a path or :data:`STDOUT`; :class:`Skip` if it has none."""
        o = self.opts
        if o.writes_stdout:
            return STDOUT
        if o.output is not None:
            return o.output
        if src is STDIN:
            return STDOUT
        if o.compressing:
            if src.endswith(SUFFIX) and not o.force:
                raise Skip(f"already has {SUFFIX} suffix -- ignored (use -f to compress "
                           "it again, or -o)")
            return src + SUFFIX
        base = os.path.basename(src)
        if not base.endswith(SUFFIX) or len(base) == len(SUFFIX):
            raise Skip(f"unknown suffix (expected {SUFFIX}) -- use -o FILE or -c")
        return src[: -len(SUFFIX)]

    def one(self, src: Operand) -> None:
        o, rep = self.opts, self.rep
        st = check_input(src)
        dst = self.destination(src)
        if dst is STDOUT:
            if o.compressing and not o.force and isatty(stdio.stdout()):
                raise Skip("compressed data not written to a terminal (use -f to force)")
            replace = False
        else:
            # -f means overwrite even a file that appears after this check (another process
            # writing the same output): the API's publish must not refuse it then.
            replace = check_output(src, dst, o.force, rep) or o.force
        if src is STDIN and not o.compressing and not o.force and isatty(sys.stdin):
            raise Skip("compressed data not read from a terminal (use -f to force)")

        # The *_file functions read the input at any offset; a pipe or device (``<(cmd)``,
        # /dev/stdin) has no size and must be read as a stream.
        regular = regular_file(st)
        to_file = regular and dst is not STDOUT and not is_device_or_fifo(dst)
        kw: dict[str, Any] = {"threads": o.threads}
        if o.base is not None:
            if not regular or is_device_or_fifo(dst):
                raise AnszError("--base needs the input and the output to be regular files")
            kw["base"] = o.base  # a file, or a directory the API looks in
        if o.compressing and to_file and not is_remote(src):  # hashed beside the imports below
            from .._io import hash_ahead

            hash_ahead(src)
        api = codec_api()
        if o.compressing:
            kw.update(chunk_size=o.chunk_size, coder=o.coder, level=o.level, strict=o.strict)
        total = self.progress_total(api, src, st) if rep.show_progress() else None
        label = os.path.basename(src) if src is not STDIN else str(src)
        with signals.writing(dst), rep.progress_bar(label, total) as cb:
            kw["progress"] = functools.partial(_progress, cb)
            try:
                if to_file:
                    fn = api.compress_file if o.compressing else api.decompress_file
                    report = fn(src, dst, overwrite=replace, sync=o.remove, **kw)
                else:
                    stream = api.compress_stream if o.compressing else api.decompress_stream
                    with open_input(src) as ifh, open_output(dst, replace, o.remove) as ofh:
                        report = stream(ifh, ofh, **kw)
            except OutputExistsError as e:  # it appeared meanwhile: say it as the CLI does
                raise OutputExistsError(e.path, FORCE_HINT) from None
            except FormatError as e:
                if not (o.compressing and o.strict):
                    raise
                raise FormatError(f"{e}; not compressed (--strict)") from None
        if o.compressing and report.fallback_reason:
            rep.warn(f"{report.fallback_reason}; stored as plain bytes, losslessly", src)
        self.summary(src, dst, report)
        if o.remove and regular:
            if os.path.islink(src):
                self.kept_links.append(src)
            else:
                remove_source(src, dst, o.compressing, o.threads, rep, kw.get("base"))

    def warn_kept_links(self) -> None:
        """One warning for every symbolic link that --rm kept (not one per file)."""
        if not self.kept_links:
            return
        n = len(self.kept_links)
        which = (f"{self.kept_links[0]} is" if n == 1
                 else f"{n} inputs are, the first {self.kept_links[0]}")
        self.rep.warn(f"--rm does not delete symbolic links or the files they point to: "
                      f"{which}; kept")

    def settings(self) -> str:
        """What ``-vv`` shows before the first file: the version, the settings in effect
        (defaults filled in) and which kernels run."""
        from .. import __version__, kernels
        from .._pool import resolve_threads
        from ..options import DEFAULT_LEVEL, default_chunk_size

        o = self.opts
        parts = [f"ansz {__version__}"]
        if o.compressing:
            chunk = o.chunk_size or default_chunk_size(o.level or DEFAULT_LEVEL)
            size = next((f"{chunk >> b} {unit}" for b, unit in ((20, "MiB"), (10, "KiB"))
                         if chunk % (1 << b) == 0), f"{chunk} bytes")
            parts.append(f"level {o.level or DEFAULT_LEVEL}, coder {o.coder}, chunks of {size}")
        threads = resolve_threads(o.threads)
        parts.append(f"{threads} thread{'s' if threads != 1 else ''}")
        reason = kernels.fallback_reason()
        parts.append("kernels: ahead-of-time library" if reason is None
                     else f"kernels: numba JIT ({reason})")
        return ", ".join(parts)

    def print_total(self) -> None:
        """After several files, one line adding them up (as zstd: ``3 files compressed :
        66.1% (1.77 MB => 1.17 MB)``); files that failed or were skipped are not counted."""
        if self.files < 2:
            return
        orig, comp = self.original_bytes, self.compressed_bytes
        if self.opts.compressing:
            line = (f"{self.files} files compressed : {percent(comp, orig)} "
                    f"({human_size(orig)} => {human_size(comp)})")
        else:
            line = (f"{self.files} files decompressed : "
                    f"{human_size(comp)} => {human_size(orig)}")
        self.rep.info(line, level=3 if self.opts.writes_stdout else 2)

    def progress_total(self, api: Any, src: Operand, st: os.stat_result | None) -> int | None:
        """The API reports progress in original (uncompressed) bytes."""
        if st is None or not stat.S_ISREG(st.st_mode):
            return None
        if self.opts.compressing:
            return st.st_size
        try:
            return api.read_info(src).original_size  # footer only; cheap
        except (AnszError, OSError):
            return None  # decompression will report the problem

    def summary(self, src: Operand, dst: Operand, report: Any) -> None:
        level = 3 if dst is STDOUT else 2
        orig, comp = report.original_size, report.compressed_size
        self.files += 1
        self.original_bytes += orig
        self.compressed_bytes += comp
        if self.opts.compressing:
            line = (f"{src} : {percent(comp, orig)} "
                    f"({human_size(orig)} => {human_size(comp)}, {dst})")
        else:
            line = f"{src} : {human_size(comp)} => {human_size(orig)}, {dst}"
        self.rep.info(line, level=level)
        secs = max(float(report.seconds), 1e-9)
        detail = f"  {human_size(orig / secs)}/s, {report.seconds:.2f} s"
        if self.opts.compressing:  # a fallback's reason is a warning of its own
            detail = f"  format {report.format}," + detail[1:]
        self.rep.info(detail, level=3)


def _progress(bar: Callable[[int], None] | None, done: int) -> None:
    """The API's progress callback: called in the main thread after each chunk."""
    signals.stop_if_signalled()
    if bar is not None:
        bar(done)


@contextmanager
def open_input(src: Operand) -> Iterator[BinaryIO]:
    if src is STDIN:
        yield stdio.stdin()
    elif is_remote(src):  # read front to back in large range requests
        from .. import remote

        with remote.open_stream(src) as fh:
            yield fh
    else:
        with open(src, "rb") as fh:
            yield fh


def regular_file(st: os.stat_result | None) -> bool:
    """Whether an input's status (None: standard input) is a regular file's."""
    return st is not None and stat.S_ISREG(st.st_mode)


def is_device_or_fifo(path: str) -> bool:
    return os.path.exists(path) and not os.path.isfile(path) and not os.path.isdir(path)


@contextmanager
def open_output(dst: Operand, replace: bool, sync: bool) -> Iterator[BinaryIO]:
    """Standard output; a device or FIFO, written through; or a file written atomically."""
    if dst is STDOUT:
        out = stdio.stdout()
        yield out
        out.flush()
    elif is_device_or_fifo(dst):  # /dev/null, a FIFO: write through, never replace it
        with open(dst, "wb", buffering=0) as fh:  # unbuffered: no write left for close()
            yield stdio.NamedOutput(fh, dst)
    else:
        from .._io import atomic_output

        with atomic_output(dst, overwrite=replace, sync=sync) as fh:
            yield fh


def remove_source(src: Operand, dst: Operand, compressing: bool, threads: int | None,
                  rep: Reporter, base: str | None = None) -> None:
    """Delete ``src`` after proving ``dst`` restores it: the output was fsync'ed when written
    (``sync=True``), and is now decoded again (with ``base``, the file it was coded
    against, if any) and compared byte for byte with the source."""
    if src is STDIN or dst is STDOUT:
        return
    container, original = (dst, src) if compressing else (src, dst)
    report = codec_api().verify_file(container, original, threads=threads, base=base)
    if not report.ok:
        raise AnszError(f"not removed: {container} does not verify against {original} "
                        f"({report.message})")
    if is_remote(src):
        from .. import remote

        remote.remove(src)
    else:
        os.unlink(src)
    rep.info(f"ansz: removed {src}", level=3)
