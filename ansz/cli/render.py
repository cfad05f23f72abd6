"""The standard output of ``verify``, ``stats`` and ``info``: text for people, and with
``--json`` one JSON object (per file, for ``info``) whose keys are documented in
man/ansz.1 and stable. Non-finite numbers are written as ``null``.
"""

from __future__ import annotations

from typing import Any

import click

from .report import Reporter, binary_size, human_size, one_line, percent


def print_json(obj: Any) -> None:
    import json

    click.echo(json.dumps(obj, sort_keys=False, allow_nan=False))


def finite(x: float) -> float | None:
    x = float(x)
    return x if x == x and x not in (float("inf"), float("-inf")) else None


def ratio(r: float) -> str:
    return f"{100.0 * r:.1f}%" if finite(r) is not None else "n/a"


# --------------------------------------------------------------------------------------------
# verify


def verify_json(path: str, report: Any = None, message: str = "") -> dict[str, Any]:
    """The ``verify --json`` object: from the API's VerifyReport, or (None) for a container
    that could not even be read, with ``message`` saying why."""
    if report is None:
        return {"path": path, "ok": False, "original_size": None, "sha256": None,
                "first_bad": None, "message": message}
    known = bool(report.sha256)  # "" when the container's index is unreadable
    return {"path": path, "ok": bool(report.ok),
            "original_size": report.original_size if known else None,
            "sha256": report.sha256 or None, "first_bad": report.first_bad,
            "message": report.message}


def print_verify(result: dict[str, Any], rep: Reporter) -> None:
    """``FILE: OK`` (with -v its size and sha256) or ``FILE: FAILED (reason)`` (with -v the
    first bad chunk)."""
    file = result["path"]
    if result["ok"]:
        if rep.level >= 2:
            extra = (f" ({human_size(result['original_size'])}, sha256 {result['sha256']})"
                     if rep.level >= 3 else "")
            click.echo(f"{file}: OK{extra}")
    elif rep.level >= 1:
        reason = result["message"] or "mismatch"
        if result["first_bad"] and rep.level >= 3:
            reason += f"; first bad: {result['first_bad']}"
        click.echo(f"{file}: FAILED ({one_line(reason)})")


def print_verify_total(results: list[dict[str, Any]], rep: Reporter) -> None:
    """After several files: ``total: 3 files, 2 OK, 1 failed`` (muted by -q)."""
    if rep.level < 2:
        return
    ok = sum(bool(r["ok"]) for r in results)
    bad = len(results) - ok
    click.echo(f"total: {len(results)} files, {ok} OK" + (f", {bad} failed" if bad else ""))


# --------------------------------------------------------------------------------------------
# stats


def stats_json(fs: Any, shown: list) -> dict[str, Any]:
    """The ``stats --json`` object (documented in man/ansz.1; keys are stable): the file's
    predicted (or, for a container, stored) sizes, per dtype, and the ``shown`` segments."""
    def sizes(x: Any) -> dict[str, Any]:
        return {"nbytes": x.nbytes, "compressed_bytes": x.compressed_bytes,
                "ratio": _maybe(x.ratio), "zstd3_bytes": x.zstd3_bytes,
                "zstd3_ratio": _maybe(x.zstd3_ratio)}

    return {
        "path": fs.path,
        "format": fs.format,
        "container": fs.is_container,
        "level": fs.level,
        "file_size": fs.file_size,
        "compressed_bytes": fs.compressed_bytes,
        "ratio": _maybe(fs.ratio),
        "zstd3_bytes": fs.zstd3_bytes,
        "zstd3_ratio": _maybe(fs.zstd3_ratio),
        "exact": fs.exact,
        "sampled_bytes": fs.sampled_bytes,
        "container_overhead": fs.container_overhead,
        "fallback_reason": fs.fallback_reason,
        "tensor_count": fs.tensor_count,
        "base": fs.base,
        "dtypes": [{"dtype": d.dtype, "segments": d.segments, "tensors": d.tensors, **sizes(d)}
                   for d in fs.by_dtype],
        "segments": [{"label": s.label, "name": s.name, "dtype": s.dtype,
                      "shape": None if s.shape is None else [int(d) for d in s.shape],
                      **sizes(s), "sampled_bytes": s.sampled_bytes,
                      "order0_bits": _maybe(s.order0_bits)} for s in shown],
    }


def _maybe(x: float | None) -> float | None:
    return None if x is None else finite(x)


#: Width of the bar after each row of the stats table: the compressed size as a share of the
#: original, one character per 1/BAR_WIDTH, in eighths.
BAR_WIDTH = 12
_EIGHTHS = " ▏▎▍▌▋▊▉"


def bar(r: float | None, width: int = BAR_WIDTH) -> str:
    """A horizontal bar ``r`` (0..1, clipped) of ``width`` characters long, to 1/8 of one."""
    if r is None or r != r:
        return ""
    eighths = round(max(0.0, min(1.0, r)) * width * 8)
    full, part = divmod(eighths, 8)
    return "█" * full + (_EIGHTHS[part] if part else "")


def fit(text: str, width: int) -> str:
    """``text`` cut to at most ``width`` characters, keeping its end (a tensor name's most
    specific part: "…layer.11.output.dense.weight")."""
    if len(text) <= width:
        return text
    if width <= 1:
        return text[-width:] if width else ""
    return "…" + text[len(text) - width + 1:]


def print_stats(fs: Any, shown: list, rest: list, width: int) -> None:
    """The ``stats`` report of one file in ``width`` columns: the file's name and what it
    is, a table per dtype (and, when ``shown`` is not empty, per tensor, with a row for the
    ``rest``) with ansz's and zstd -3's ratios and a bar of ansz's, and a bottom line
    saying which is smaller and by how much."""
    click.echo(fs.path)
    click.echo(f"  {_describe(fs)}")
    if fs.fallback_reason:
        click.echo(f"  stored as plain bytes: {one_line(fs.fallback_reason)}")
    if not fs.file_size:
        click.echo("  empty: nothing to compress")
        return
    zstd = fs.zstd3_bytes is not None
    ours = "ansz" if not fs.is_container else "stored"
    rows = []
    for d in fs.by_dtype:
        count = ("" if not d.dtype else f"{d.segments} segment{'s' if d.segments != 1 else ''}"
                 if d.tensors is None else f"{d.tensors} tensor{'s' if d.tensors != 1 else ''}")
        other = "(file)" if fs.format == "bytes" else "(other bytes)"
        rows.append((d.dtype or other, count, d))
    _table(("dtype", "", "size", ours, "zstd -3"), rows, width, zstd)
    if shown or rest:
        trows = [(s.label, s.dtype or "", s) for s in shown]
        if rest:
            trows.append((f"({len(rest)} more)", "", _Total(rest)))
        _table(("tensor", "dtype", "size", ours, "zstd -3"), trows, width, zstd)
    click.echo(_bottom_line(fs))


class _Total:
    """Several segments added up, for the "(N more)" row."""

    def __init__(self, segments: list) -> None:
        self.nbytes = sum(s.nbytes for s in segments)
        self.compressed_bytes = sum(s.compressed_bytes for s in segments)
        z = [s.zstd3_bytes for s in segments]
        self.zstd3_bytes = None if None in z else sum(z)
        self.ratio = self.compressed_bytes / self.nbytes if self.nbytes else None
        self.zstd3_ratio = (self.zstd3_bytes / self.nbytes
                            if self.zstd3_bytes is not None and self.nbytes else None)


def _table(head: tuple, rows: list, width: int, zstd: bool) -> None:
    """Rows of ``(label, second column, sizes)`` under ``head`` (label, second, size, ansz,
    zstd titles), in ``width`` columns: the label takes what the others leave, and the bar
    is left out when it would cut labels."""
    second = max([len(head[1])] + [len(r[1]) for r in rows])
    numbers = (second + 1 if second else 0) + 10 + 8 + (8 if zstd else 0)
    longest = max([len(head[0])] + [len(r[0]) for r in rows])
    show_bar = width - 2 - numbers - 2 - BAR_WIDTH >= min(longest, 24)
    room = width - 2 - numbers - ((2 + BAR_WIDTH) if show_bar else 0)
    name_w = max(12, min(longest, room))

    def cells(label: str, extra: str, size: str, a: str, z: str, tail: str = "") -> str:
        line = f"  {fit(label, name_w):<{name_w}}"
        if second:
            line += f" {extra:>{second}}"
        line += f" {size:>9} {a:>7}"
        if zstd:
            line += f" {z:>7}"
        return (line + tail).rstrip()

    click.echo()
    click.echo(cells(head[0], head[1], head[2], head[3], head[4]))
    for label, extra, x in rows:
        click.echo(cells(label, extra, human_size(x.nbytes), _pct(x.ratio), _pct(x.zstd3_ratio),
                         ("  " + bar(x.ratio)) if show_bar else ""))


def _pct(r: float | None) -> str:
    return "n/a" if r is None else f"{100.0 * r:.1f}%"


def _describe(fs: Any) -> str:
    """``safetensors, 219 MB, 199 tensors; level 2, predicted from 18.0% of it coded``."""
    what = fs.format if not fs.is_container else f"ansz container of {fs.format}"
    parts = [what, human_size(fs.file_size)]
    if fs.format != "bytes":
        parts.append(f"{fs.tensor_count} tensor{'s' if fs.tensor_count != 1 else ''}")
    line = ", ".join(parts)
    if fs.is_container:
        return line
    against = f" against {fs.base}" if fs.base is not None else ""
    if fs.exact:
        return f"{line}; level {fs.level}{against}, every chunk coded"
    return (f"{line}; level {fs.level}{against}, predicted from "
            f"{percent(fs.sampled_bytes, fs.file_size)} of it coded")


def _bottom_line(fs: Any) -> str:
    """``ansz 145 MB (66.0%), zstd -3 172 MB (78.3%): ansz is 27.0 MB smaller``."""
    ours = f"ansz {human_size(fs.compressed_bytes)} ({_pct(fs.ratio)})"
    if fs.is_container:
        return f"{ours} stored, of {human_size(fs.file_size)}"
    if fs.zstd3_bytes is None:
        return ours
    line = f"{ours}, zstd -3 {human_size(fs.zstd3_bytes)} ({_pct(fs.zstd3_ratio)})"
    diff = fs.zstd3_bytes - fs.compressed_bytes
    if diff > 0:
        return f"{line}: ansz saves {human_size(diff)} more"
    if diff < 0:
        return f"{line}: zstd -3 is {human_size(-diff)} smaller"
    return f"{line}: the same"


def print_stats_total(all_stats: list) -> None:
    """One line for several files: their sizes added up."""
    orig = sum(fs.file_size for fs in all_stats)
    ours = sum(fs.compressed_bytes for fs in all_stats)
    line = f"total: {len(all_stats)} files, {human_size(orig)} => ansz {human_size(ours)} " \
           f"({percent(ours, orig)})"
    if all(fs.zstd3_bytes is not None for fs in all_stats):
        z = sum(fs.zstd3_bytes for fs in all_stats)
        line += f", zstd -3 {human_size(z)} ({percent(z, orig)})"
    click.echo(line)


# --------------------------------------------------------------------------------------------
# bench


def bench_codec(r: Any) -> str:
    """How a result's codec is asked for on the command line: ``ansz``, ``ansz --fast``,
    ``zstd -3``."""
    if r.codec == "zstd":
        return f"zstd -{r.level}"
    return "ansz --fast" if r.level == 1 else "ansz"


def bench_json(r: Any, path: str) -> dict[str, Any]:
    """The ``bench --json`` object of one file and codec (keys documented in man/ansz.1)."""
    return {"path": path, "codec": r.codec, "level": r.level, "command": bench_codec(r),
            "original_size": r.original_size, "compressed_size": r.compressed_size,
            "ratio": _maybe(r.ratio), "compress_mbps": finite(r.compress_mbps),
            "decompress_mbps": finite(r.decompress_mbps), "runs": r.runs}


def print_bench_header(threads: int, min_time: float) -> None:
    click.echo(f"in memory, {threads} thread{'s' if threads != 1 else ''}, the fastest of "
               f"runs over {min_time:g} s each; MB/s of original data")
    click.echo()
    click.echo(f"{'file':<26} {'size':>8}  {'codec':<12} {'ratio':>6} {'compress':>10} "
               f"{'decompress':>11}")


def print_bench_rows(results: list) -> None:
    """One row per codec of one file; the file's name and size on the first."""
    for i, r in enumerate(results):
        name = fit(r.name, 26) if i == 0 else ""
        size = human_size(r.original_size) if i == 0 else ""
        click.echo(f"{name:<26} {size:>8}  {bench_codec(r):<12} {_pct(r.ratio):>6} "
                   f"{r.compress_mbps:>5.0f} MB/s {r.decompress_mbps:>6.0f} MB/s")


def print_bench_footer(results: list, sample: bool) -> None:
    """What the figures mean: ansz's default against zstd on the same files, and for the
    small sample files, that fixed costs weigh."""
    ours = [r for r in results if r.codec == "ansz" and r.level == 2]
    zstd = [r for r in results if r.codec == "zstd"]
    if ours and zstd:
        a, z = sum(r.compressed_size for r in ours), sum(r.compressed_size for r in zstd)
        orig = sum(r.original_size for r in ours)
        click.echo()
        click.echo(f"total {human_size(orig)}: ansz {human_size(a)} ({percent(a, orig)}), "
                   f"zstd -3 {human_size(z)} ({percent(z, orig)}): "
                   + (f"ansz saves {human_size(z - a)}" if a < z
                      else f"zstd -3 is {human_size(a - z)} smaller"))
    if sample:
        click.echo("(small sample files, where the fixed cost of each call weighs;")
        click.echo(" `ansz bench FILE` measures a model of yours)")


# --------------------------------------------------------------------------------------------
# info


def info_json(ci: Any) -> dict[str, Any]:
    """The ``info --json`` object (documented in man/ansz.1; keys are stable)."""
    return {
        "path": ci.path,
        "format_version": ci.format_version,
        "format": ci.format,
        "original_size": ci.original_size,
        "compressed_size": ci.compressed_size,
        "ratio": finite(ci.compressed_size / ci.original_size) if ci.original_size else None,
        "sha256": ci.sha256,
        "segment_count": len(ci.segments),
        "chunk_count": ci.chunk_count,
        "chunk_size": ci.chunk_size,
        "base": ci.base,  # {name, size, sha256}, or {name, size, parts: [those]}
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


def print_info(path: str, ci: Any) -> None:
    """The container's path, then one indented ``name value`` line per property."""
    rows = [
        ("format version", str(ci.format_version)),
        ("input format", ci.format),
        ("original size", f"{human_size(ci.original_size)} ({ci.original_size} bytes)"),
        ("compressed size", f"{human_size(ci.compressed_size)} ({ci.compressed_size} bytes)"),
        ("ratio", percent(ci.compressed_size, ci.original_size)),
        ("segments", str(len(ci.segments))),
        ("chunks", f"{ci.chunk_count} (chunk size {binary_size(ci.chunk_size)})"),
        ("sha256", ci.sha256),
    ]
    if ci.base is not None and "parts" in ci.base:  # a base of several files
        rows.append(("base", f"{len(ci.base['parts'])} files of {ci.base['name']} "
                             f"({ci.base['size']} bytes in all)"))
        rows.extend(("", f"{p['name']} ({p['size']} bytes, sha256 {p['sha256']})")
                    for p in ci.base["parts"])
    elif ci.base is not None:
        rows.append(("base", f"{ci.base['name']} ({ci.base['size']} bytes, "
                             f"sha256 {ci.base['sha256']})"))
    click.echo(path)
    for k, v in rows:
        click.echo(f"  {k:<16} {v}")


def print_info_total(infos: list) -> None:
    """zstd -l's total line for several files."""
    orig = sum(ci.original_size for ci in infos)
    comp = sum(ci.compressed_size for ci in infos)
    click.echo(f"total: {len(infos)} files, {human_size(orig)} => {human_size(comp)} "
               f"({percent(comp, orig)})")
