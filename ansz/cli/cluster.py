"""``--cluster ADDRESS``: compress, decompress or verify many files as one task each on a
Dask cluster (:mod:`ansz.cluster`), then report.

The inputs are found and named here as without ``--cluster`` (``-r``, output names, a
missing input reported at once); the work, the skipping of outputs that already verify and
the retries are the cluster's. At the end: a table of every file (stderr, like the
summaries of compress), one ``ansz: FILE: message`` line per file that failed, and with
``--json`` one JSON object per file and one of totals (stdout). Exit status 1 if any file
failed.
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable

import click

from .render import print_json
from .report import Reporter, human_size, one_line, percent

#: The word for a task that did its work, by operation.
DONE_WORDS = {"compress": "compressed", "decompress": "decompressed", "verify": "OK"}


def run_on_cluster(ctx: click.Context, operation: str, address: str, inputs: list[Any],
                   destination: Callable[[Any], str | None], *, overwrite: bool,
                   options: dict[str, Any], as_json: bool, rep: Reporter) -> None:
    """Run ``operation`` on every input on the cluster at ``address``; ``destination`` names
    an input's output (None for verify; raises what :meth:`Reporter.run` reports for an
    input it refuses). Exits with status 1 if anything failed."""
    from .. import cluster
    from .jobs import check_input

    tasks: list[Any] = []

    def plan(src: Any) -> None:
        check_input(src)
        # workers elsewhere have working directories of their own: send absolute paths
        tasks.append(cluster.FileTask(operation, _absolute(str(src)),
                                      _absolute(destination(src)), overwrite, options))

    for src in inputs:
        rep.run(src, lambda src=src: plan(src))
    results: list[Any] = []
    workers = 0
    start = time.perf_counter()
    if tasks:
        def connect_and_run() -> None:
            nonlocal workers
            with cluster.Cluster(address) as c:
                workers = c.workers
                rep.info(f"ansz: {address}: {workers} worker{'s' if workers != 1 else ''}, "
                         f"{len(tasks)} task{'s' if len(tasks) != 1 else ''}", level=3)
                results.extend(c.run(tasks, done=lambda r: _done(r, rep)))

        _quiet_engine_logs()
        rep.run(None, connect_and_run)
    seconds = time.perf_counter() - start
    if results:
        totals = cluster.totals(results, seconds, workers)
        if as_json:
            for r in results:
                print_json(r.to_json())
            print_json({"totals": totals})
        print_table(results, totals, rep)
        for r in results:
            if r.status == "failed":
                rep.error(r.src, without_src(r.message, r.src))
    if rep.failed:
        ctx.exit(rep.status)


def _done(result: Any, rep: Reporter) -> None:
    """As each task finishes (-v): ``FILE: compressed (WORKER, 1.23 s)``."""
    word = DONE_WORDS[result.operation] if result.status == "done" else result.status
    rep.info(f"{result.src}: {word} ({result.worker or 'no worker'}, "
             f"{result.seconds:.2f} s)", level=3)


def without_src(message: str, src: str) -> str:
    return message[len(src) + 2:] if message.startswith(src + ": ") else one_line(message)


def print_table(results: list[Any], totals: dict[str, Any], rep: Reporter) -> None:
    """One row per file (its input, what became of it, sizes, ratio, seconds), then the
    totals; on stderr, silenced by -q."""
    if rep.level < 2:
        return
    rows = [("file", "status", "original", "compressed", "ratio", "seconds")]
    for r in results:
        word = DONE_WORDS[r.operation] if r.status == "done" else r.status.upper() \
            if r.status == "failed" else r.status
        known = r.status != "failed" and r.original_size
        rows.append((r.src, word,
                     human_size(r.original_size) if known else "-",
                     human_size(r.compressed_size) if known and r.compressed_size else "-",
                     percent(r.compressed_size, r.original_size)
                     if known and r.compressed_size else "-",
                     f"{r.seconds:.2f}" if r.status != "failed" or r.seconds else "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = [row[0].ljust(widths[0]), row[1].ljust(widths[1])]
        cells += [c.rjust(w) for c, w in zip(row[2:], widths[2:])]
        rep.info("  ".join(cells).rstrip())
    t = totals
    parts = [f"{t['files']} file{'s' if t['files'] != 1 else ''}"]
    word = DONE_WORDS[results[0].operation]
    parts.append(f"{t['done']} {word}")
    if t["skipped"]:
        parts.append(f"{t['skipped']} skipped (already verified)")
    if t["failed"]:
        parts.append(f"{t['failed']} failed")
    size = ""
    if t["original_size"]:
        orig, comp = human_size(t["original_size"]), human_size(t["compressed_size"])
        arrow = f"{comp} => {orig}" if results[0].operation == "decompress" else \
            f"{orig} => {comp}"
        size = f"; {arrow} ({percent(t['compressed_size'], t['original_size'])})"
    rep.info(f"total: {', '.join(parts)}{size}; {t['seconds']:.2f} s on {t['workers']} "
             f"worker{'s' if t['workers'] != 1 else ''}")


def _quiet_engine_logs() -> None:
    """The engine's own warnings (a worker that died and was restarted, a task run again)
    are its business: the table says what became of every file."""
    import logging

    for name in ("distributed", "distributed.nanny", "distributed.scheduler",
                 "distributed.worker", "distributed.client", "distributed.core",
                 "distributed.deploy"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def _absolute(path: str) -> str:
    """A local path made absolute (a URL, or None, as it is)."""
    from ..remote import is_url

    return path if path is None or is_url(path) else os.path.abspath(path)
