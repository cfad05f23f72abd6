"""The standard output of ``verify``, ``stats`` and ``info``: text for people, and with
``--json`` one JSON object (per file, for ``info``) whose keys are documented in
man/ansz.1 and stable. Non-finite numbers are written as ``null``.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from .report import Reporter, binary_size, human_size, isatty, one_line, percent


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


def stats_json(fs: Any, shown: list, tensor_count: int) -> dict[str, Any]:
    """The ``stats --json`` object (documented in man/ansz.1; keys are stable)."""
    return {
        "path": fs.path,
        "format": fs.format,
        "file_size": fs.file_size,
        "tensor_count": tensor_count,
        "other_bytes": fs.other_bytes,
        "bound_bytes": finite(fs.bound_bytes),
        "predicted_ratio": finite(fs.predicted_ratio),
        "coders": {k: finite(v) for k, v in fs.coder_ratios.items()},
        "zstd3_ratio": finite(fs.zstd3_ratio),
        "tensors": [
            {
                "name": t.name,
                "dtype": t.dtype,
                "shape": [int(d) for d in t.shape],
                "nbytes": t.nbytes,
                "code_entropy": finite(t.code_entropy),
                "bound_bytes": finite(t.bound_bytes),
                "predicted_ratio": finite(t.predicted_ratio),
                "coders": {k: finite(v) for k, v in t.coder_ratios.items()},
                "zstd3_ratio": finite(t.zstd3_ratio),
            }
            for t in shown
        ],
    }


def print_stats_table(fs: Any, shown: list, tensors: list) -> None:
    """The ``stats`` table: the ``shown`` tensors, a row for the rest of ``tensors``, one
    for the bytes outside tensors, and the file's totals."""
    from rich.console import Console
    from rich.table import Table

    out = sys.stdout
    console = Console(file=out, width=None if isatty(out) else 200)
    console.print(f"{fs.path} ({fs.format}, {human_size(fs.file_size)})", markup=False,
                  highlight=False)
    table = Table(show_footer=True)
    table.add_column("tensor", footer="total", overflow="fold")
    table.add_column("dtype")
    table.add_column("shape")
    table.add_column("size", justify="right", footer=human_size(fs.file_size))
    table.add_column("code entropy (bits)", justify="right")
    table.add_column("bound", justify="right", footer=human_size(fs.bound_bytes))
    table.add_column("predicted ratio", justify="right", footer=ratio(fs.predicted_ratio))
    coders = (("rans", "rANS"), ("huffman", "Huffman"), ("qlc", "QLC"))
    for key, title in coders:
        table.add_column(title, justify="right", footer=ratio(fs.coder_ratios.get(key, 1.0)))
    table.add_column("zstd-3 (sample)", justify="right", footer=ratio(fs.zstd3_ratio))
    for t in shown:
        table.add_row(t.name, t.dtype, "×".join(str(d) for d in t.shape) or "scalar",
                      human_size(t.nbytes), f"{t.code_entropy:.2f}", human_size(t.bound_bytes),
                      ratio(t.predicted_ratio),
                      *(ratio(t.coder_ratios.get(key, 1.0)) for key, _ in coders),
                      ratio(t.zstd3_ratio))
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
    click.echo(path)
    for k, v in rows:
        click.echo(f"  {k:<16} {v}")


def print_info_total(infos: list) -> None:
    """zstd -l's total line for several files."""
    orig = sum(ci.original_size for ci in infos)
    comp = sum(ci.compressed_size for ci in infos)
    click.echo(f"total: {len(infos)} files, {human_size(orig)} => {human_size(comp)} "
               f"({percent(comp, orig)})")
