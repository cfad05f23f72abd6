#!/usr/bin/env python3
"""Benchmark ansz against zstd, ZipNN and the coding-pair entropy bound.

For every corpus file (default: every ``*.safetensors`` in the cache dir that
``scripts/fetch_models.py`` fills; or the paths given as arguments), in one run on one
machine, it measures:

* ``zstd-3``, ``zstd-3 T2`` (threads=2), ``zstd-19``: the ``zstandard`` package, in process,
  one-shot ``compress``/``decompress`` of the whole file held in memory. zstd-19 dominates
  the run time (about 1-2 MB/s here: ~45 min for the full corpus at ``--repeat 3``);
  ``--tools zstd,zipnn,ansz,bound`` leaves it out;
* ``ZipNN``, ``ZipNN T1``: the ``zipnn`` package (benchmark-only, not an ansz dependency),
  whole-file byte-buffer API ``ZipNN(bytearray_dtype=...).compress(buf)`` / ``.decompress``,
  with the byte grouping of the file's dominant float dtype; default threads
  (min(cores, 16)) and threads=1;
* ``ansz``, ``ansz T1``: the ``ansz`` command (``ansz compress -f -o X.ansz FILE`` and
  ``ansz decompress -f -o Y X.ansz``; default threads and ``-T 1``), as a subprocess, so its
  times include interpreter start-up and file I/O; its peak RSS is measured;
* ``ansz API``, ``ansz API T1``, ``ansz API fast`` (level 1, ``--fast``): ansz in process
  (``compress_stream``/``decompress_stream`` on in-memory buffers), comparable with the zstd
  and ZipNN rows;
* ``bound``: the coding-pair bound, see :func:`coding_pair_bound`.

Every tool's output is decompressed and checked byte for byte against the original.
Times are medians of ``--repeat`` runs (default 3). Throughput is MB/s (1 MB = 10^6 bytes)
of *original* bytes, and also a multiple of single-threaded zstd-3's speed on the same file
in the same run. ``--write-benchmarks`` replaces the section between
``<!-- benchmark:begin -->`` and ``<!-- benchmark:end -->`` in BENCHMARKS.md.

Setup on a fresh machine::

    pip install -e '.[test]'                       # ansz, numpy, safetensors, zstandard
    python scripts/fetch_models.py                 # corpus into ./models/
    pip install torch==2.13.0 && pip install zipnn # optional, for the ZipNN rows; torch
                                                   # first, else pip pulls a CUDA build
    python scripts/benchmark.py                    # prints the table

Tools that are missing or fail are reported as ``<tool>: unavailable (<reason>)`` and the
run carries on.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import safetensors

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CACHE = REPO / "models"
DEFAULT_BENCHMARKS = REPO / "BENCHMARKS.md"
BEGIN = "<!-- benchmark:begin -->"
END = "<!-- benchmark:end -->"
ALL_TOOLS = ("zstd", "zstd19", "zipnn", "ansz", "bound")
ZIPNN_INSTALL = "pip install torch==2.13.0 && pip install zipnn"

# --------------------------------------------------------------------------- the bound

# safetensors dtype -> (numpy uint view, shift of the code byte, raw bits per element).
# The code is the 8 bits at ``shift`` (the exponent for BF16/F32, the top 8 of the 11 exponent
# bits for F64, the high byte for F16); every other bit of the element is "raw".
_PAIR_LAYOUT = {
    "BF16": (np.uint16, 7, 8),   # code = bits 7..14 (exponent), raw = sign + 7 mantissa
    "F16": (np.uint16, 8, 8),    # code = bits 8..15 (high byte), raw = low byte
    "F32": (np.uint32, 23, 24),  # code = bits 23..30 (exponent), raw = sign + 23 mantissa
    "F64": (np.uint64, 55, 56),  # code = bits 55..62, raw = the other 56 bits
}
# 1-byte types: the whole byte is the code, no raw bits.
_BYTE_TYPES = {"BOOL", "U8", "I8", "F8_E4M3", "F8_E5M2", "F8_E8M0", "F4", "F6_E2M3", "F6_E3M2"}


def order0_entropy_bits(symbols: np.ndarray) -> float:
    """Total order-0 (empirical, memoryless) entropy of ``symbols`` in bits:
    ``n * H`` with ``H = -sum(p_s * log2 p_s)`` over the symbol frequencies ``p_s``."""
    n = symbols.size
    if n == 0:
        return 0.0
    counts = np.bincount(symbols.ravel(), minlength=1)
    p = counts[counts > 0] / n
    return float(-n * np.sum(p * np.log2(p)))


def coding_pair_bound(path: str | os.PathLike) -> dict:
    """Coding-pair bound of a safetensors file: the size a coder that entropy-codes each
    tensor's code bytes with that tensor's own order-0 statistics, and stores the raw bits
    as they are, could at best reach.

    Per tensor, with ``n`` elements:

    * BF16: ``n * H(exponent bits 7..14) + n * 8`` bits;
    * F16:  ``n * H(high byte) + n * 8``;
    * F32:  ``n * H(bits 23..30) + n * 24``;
    * F64:  ``n * H(bits 55..62) + n * 56``;
    * 1-byte types (U8, I8, BOOL, F8_*): ``n * H(byte)``;
    * any other (non-float) type: order-0 entropy of its bytes, ``n_bytes * H(byte)``.

    ``H`` is the empirical order-0 entropy in bits/symbol. The non-tensor bytes (the 8-byte
    length and the JSON header) count as stored. Tensors are read with
    ``safetensors.deserialize``, which yields raw bytes for every dtype (its numpy loader
    cannot load F8 tensors). Returns ``{"original_bytes", "bound_bytes", "ratio"}`` with
    ``ratio = bound_bytes / original_bytes``.
    """
    data = Path(path).read_bytes()
    bits = 0.0
    tensor_bytes = 0
    for _name, t in safetensors.deserialize(data):
        raw = np.frombuffer(t["data"], dtype=np.uint8)
        tensor_bytes += raw.size
        dtype = t["dtype"]
        if dtype in _PAIR_LAYOUT:
            view, shift, raw_bits = _PAIR_LAYOUT[dtype]
            elems = raw.view(np.dtype(view).newbyteorder("<"))
            codes = ((elems >> shift) & 0xFF).astype(np.uint8)
            bits += order0_entropy_bits(codes) + elems.size * raw_bits
        else:  # _BYTE_TYPES and every other dtype: order-0 entropy of the bytes
            bits += order0_entropy_bits(raw)
    header_bytes = len(data) - tensor_bytes
    bound_bytes = bits / 8 + header_bytes
    return {"original_bytes": len(data), "bound_bytes": bound_bytes,
            "ratio": bound_bytes / len(data) if data else 0.0}


# --------------------------------------------------------------------------- measuring


@dataclass
class Row:
    file: str
    size: int
    tool: str
    ratio: float | None = None
    comp_s: float | None = None    # median seconds
    decomp_s: float | None = None
    rss_kib: tuple[int | None, int | None] | None = None  # (compress, decompress) peak RSS
    ok: bool | None = None          # byte-identical round trip
    note: str = ""

    def mbps(self, seconds: float | None) -> float | None:
        return None if not seconds else self.size / 1e6 / seconds


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def note(self, msg: str) -> None:
        print(msg, flush=True)
        self.notes.append(msg)


def progress(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def time_inprocess(data: bytes, compress, decompress, repeat: int, prepare=None):
    """Median compress and decompress seconds, compressed size, and round-trip identity."""
    ct, dt, size, ok = [], [], None, True
    for _ in range(repeat):
        buf = prepare(data) if prepare else data
        t0 = time.perf_counter()
        comp = compress(buf)
        t1 = time.perf_counter()
        out = decompress(comp)
        t2 = time.perf_counter()
        ct.append(t1 - t0)
        dt.append(t2 - t1)
        size = len(comp)
        ok = ok and (len(out) == len(data) and out == data)
        del buf, comp, out
    return median(ct), median(dt), size, ok


def bench_zstd(name: str, data: bytes, repeat: int, report: Report, tools: set[str]) -> None:
    """zstd-3 (the speed reference, always run); zstd-3 T2 with tool ``zstd``; zstd-19 with
    tool ``zstd19``."""
    import zstandard

    size = len(data)
    configs = [("zstd-3", 3, 0)]
    if "zstd" in tools:
        configs.append(("zstd-3 T2", 3, 2))
    if "zstd19" in tools:
        configs.append(("zstd-19", 19, 0))
    for label, level, threads in configs:
        progress(f"{name}: {label} x{repeat}")
        cctx = zstandard.ZstdCompressor(level=level, threads=threads)
        dctx = zstandard.ZstdDecompressor()
        c, d, csize, ok = time_inprocess(data, cctx.compress, dctx.decompress, repeat)
        report.rows.append(Row(name, size, label, csize / size, c, d, None, ok))


def zipnn_module():
    """Return (zipnn module, version) or raise RuntimeError with a one-line reason."""
    try:
        import zipnn
    except Exception as e:  # ImportError, or torch failing to load
        raise RuntimeError(f"cannot import zipnn: {type(e).__name__}: {e}; "
                           f"install with: {ZIPNN_INSTALL}") from None
    from importlib.metadata import version

    return zipnn, version("zipnn")


_ZIPNN_DTYPES = {"BF16": "bfloat16", "F16": "float16", "F32": "float32",
                 "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2"}


def dominant_dtype(data: bytes) -> str:
    """The safetensors dtype holding the most tensor bytes of the file."""
    share: dict[str, int] = {}
    for _name, t in safetensors.deserialize(data):
        share[t["dtype"]] = share.get(t["dtype"], 0) + len(t["data"])
    return max(share, key=share.get) if share else "U8"


def bench_zipnn(name: str, data: bytes, repeat: int, report: Report, zipnn) -> None:
    dtype = dominant_dtype(data)
    zdtype = _ZIPNN_DTYPES.get(dtype)
    if zdtype is None:
        report.note(f"ZipNN: unavailable for {name} (no ZipNN byte grouping for {dtype})")
        return
    for label, threads in (("ZipNN", 0), ("ZipNN T1", 1)):
        progress(f"{name}: {label} ({zdtype}) x{repeat}")

        def comp(buf):
            return zipnn.ZipNN(bytearray_dtype=zdtype, threads=threads).compress(buf)

        def decomp(blob):
            return zipnn.ZipNN(bytearray_dtype=zdtype, threads=threads).decompress(blob)

        # ZipNN's compressor rewrites its input buffer in place (its float bit reordering
        # moves the sign bit), even an immutable bytes object: hand it a private copy,
        # made outside the timed region, and check the output against the pristine original.
        try:
            c, d, csize, ok = time_inprocess(data, comp, decomp, repeat, prepare=bytearray)
        except Exception as e:
            report.note(f"ZipNN: unavailable for {name} ({type(e).__name__}: {e})")
            return
        report.rows.append(Row(name, len(data), label, csize / len(data), c, d, None, ok,
                               note=zdtype))


_TIME_V = "/usr/bin/time"


def run_measured(cmd: list[str]) -> tuple[float, int | None, subprocess.CompletedProcess]:
    """Run ``cmd``; return (wall seconds, peak RSS in KiB or None, completed process).

    Peak RSS comes from ``/usr/bin/time -v`` when present, else from ``os.wait4`` on the
    child (``getrusage(RUSAGE_CHILDREN)`` only reports the maximum over all children ever
    waited for, so it cannot isolate one run)."""
    if os.access(_TIME_V, os.X_OK):
        with tempfile.NamedTemporaryFile("r", suffix=".time") as tf:
            t0 = time.perf_counter()
            proc = subprocess.run([_TIME_V, "-v", "-o", tf.name, *cmd],
                                  capture_output=True, text=True)
            wall = time.perf_counter() - t0
            m = re.search(r"Maximum resident set size \(kbytes\):\s*(\d+)", tf.read())
        return wall, (int(m.group(1)) if m else None), proc
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=out, stderr=err)
        _pid, status, ru = os.wait4(p.pid, 0)  # reap it ourselves to get its rusage
        wall = time.perf_counter() - t0
        p.returncode = rc = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return wall, ru.ru_maxrss, subprocess.CompletedProcess(cmd, rc, out.read(), err.read())


def _fail_reason(step: str, proc: subprocess.CompletedProcess) -> str:
    lines = [ln.strip() for ln in (proc.stderr or proc.stdout or "").splitlines() if ln.strip()]
    last = lines[-1] if lines else "no output"
    return f"`{step}` exited with status {proc.returncode}: {last[:200]}"


class AnszUnavailable(Exception):
    pass


def ansz_check(ansz: str) -> tuple[list[str], str]:
    """Resolve the ansz command; return (argv prefix, version string) or raise."""
    exe = shutil.which(ansz)
    if exe is None:
        raise AnszUnavailable(f"`{ansz}` command not found on PATH; install with "
                              f"pip install -e '.[test]'")
    proc = subprocess.run([exe, "--version"], capture_output=True, text=True)
    if proc.returncode == 0:
        out = (proc.stdout.strip() or proc.stderr.strip()).splitlines()
        return [exe], (out[0] if out else "version unknown")
    # No --version option is no reason to skip it; a CLI that cannot even print help is.
    helped = subprocess.run([exe, "--help"], capture_output=True, text=True)
    if helped.returncode != 0:
        raise AnszUnavailable(_fail_reason(f"{ansz} --help", helped))
    return [exe], "version unknown"


def bench_ansz(name: str, path: Path, data: bytes, repeat: int, report: Report,
               argv: list[str], tmp_dir: str | None) -> None:
    with tempfile.TemporaryDirectory(prefix="ansz-bench-", dir=tmp_dir) as td:
        x = Path(td) / "x.ansz"
        y = Path(td) / "y.safetensors"
        modes = [("ansz", []), ("ansz T1", ["-T", "1"])]

        def once(extra):
            cwall, crss, proc = run_measured(
                [*argv, "compress", *extra, "-f", "-o", str(x), str(path)])
            if proc.returncode != 0:
                raise AnszUnavailable(_fail_reason("ansz compress", proc))
            if not x.exists():
                raise AnszUnavailable("`ansz compress` exited 0 but wrote no output file")
            dwall, drss, proc = run_measured(
                [*argv, "decompress", *extra, "-f", "-o", str(y), str(x)])
            if proc.returncode != 0:
                raise AnszUnavailable(_fail_reason("ansz decompress", proc))
            ok = y.exists() and y.stat().st_size == len(data) and y.read_bytes() == data
            return cwall, dwall, crss, drss, x.stat().st_size, ok

        try:
            # One untimed warm-up run: the first run compiles and caches numba kernels.
            progress(f"{name}: ansz warm-up")
            once([])
            for label, extra in modes:
                progress(f"{name}: {label} x{repeat}")
                runs = [once(extra) for _ in range(repeat)]
                crss = [r[2] for r in runs if r[2] is not None]
                drss = [r[3] for r in runs if r[3] is not None]
                report.rows.append(Row(
                    name, len(data), label, runs[-1][4] / len(data),
                    median([r[0] for r in runs]), median([r[1] for r in runs]),
                    (max(crss) if crss else None, max(drss) if drss else None),
                    all(r[5] for r in runs)))
        except AnszUnavailable as e:
            report.note(f"ansz: unavailable for {name} ({e})")


def bench_ansz_api(name: str, data: bytes, repeat: int, report: Report) -> None:
    """ansz in process through its Python API on data in memory, like the zstd and ZipNN rows
    (no interpreter start-up, no file I/O): compress_stream / decompress_stream on BytesIO.
    The "fast" row is level 1 (``ansz compress --fast``) on all cores."""
    import io

    import ansz

    def comp(threads, level=None):
        def run(buf):
            out = io.BytesIO()
            ansz.compress_stream(io.BytesIO(buf), out, threads=threads, level=level)
            return out.getbuffer()
        return run

    def decomp(threads):
        def run(blob):
            out = io.BytesIO()
            ansz.decompress_stream(io.BytesIO(blob), out, threads=threads)
            return out.getvalue()
        return run

    comp(None)(data[: 1 << 20])  # load the numba kernels outside the timing
    comp(None, 1)(data[: 1 << 20])
    for label, threads, level in (("ansz API", None, None), ("ansz API T1", 1, None),
                                  ("ansz API fast", None, 1)):
        progress(f"{name}: {label} x{repeat}")
        c, d, csize, ok = time_inprocess(data, comp(threads, level), decomp(threads), repeat)
        report.rows.append(Row(name, len(data), label, csize / len(data), c, d, None, ok))


def bench_bound(name: str, path: Path, report: Report) -> None:
    progress(f"{name}: coding-pair bound")
    b = coding_pair_bound(path)
    report.rows.append(Row(name, b["original_bytes"], "coding-pair bound", b["ratio"]))


# --------------------------------------------------------------------------- output


def _fmt(v: float | None, spec: str) -> str:
    return "—" if v is None else format(v, spec)


def render_table(report: Report) -> str:
    base = {r.file: r for r in report.rows if r.tool == "zstd-3"}
    head = ("| file | size MB | tool | ratio | comp MB/s | decomp MB/s | comp ×zstd-3 "
            "| decomp ×zstd-3 | peak RSS MiB (c/d) | round trip |")
    lines = [head, "|---|---:|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in report.rows:
        z = base.get(r.file)
        cm, dm = r.mbps(r.comp_s), r.mbps(r.decomp_s)
        cx = cm / z.mbps(z.comp_s) if (cm and z and z.comp_s) else None
        dx = dm / z.mbps(z.decomp_s) if (dm and z and z.decomp_s) else None
        rss = "—"
        if r.rss_kib:
            rss = " / ".join("?" if v is None else f"{v / 1024:.0f}" for v in r.rss_kib)
        ok = "—" if r.ok is None else ("ok" if r.ok else "**MISMATCH**")
        tool = f"{r.tool} ({r.note})" if r.note else r.tool
        lines.append(f"| {r.file} | {r.size / 1e6:.1f} | {tool} | {_fmt(r.ratio, '.4f')} "
                     f"| {_fmt(cm, '.0f')} | {_fmt(dm, '.0f')} | {_fmt(cx, '.2f')} "
                     f"| {_fmt(dx, '.2f')} | {rss} | {ok} |")
    return "\n".join(lines)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def core_count() -> str:
    total = os.cpu_count() or 0
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = total
    return f"{total} cores" if usable == total else f"{usable} of {total} cores usable"


def write_section(path: Path, section: str) -> None:
    block = f"{BEGIN}\n{section.rstrip()}\n{END}\n"
    text = path.read_text() if path.exists() else "# Benchmarks\n\n"
    if BEGIN in text and END in text and text.index(BEGIN) < text.index(END):
        pre = text[:text.index(BEGIN)]
        post = text[text.index(END) + len(END):].lstrip("\n")
        text = pre + block + (("\n" + post) if post else "")
    else:
        text = text.rstrip("\n") + "\n\n" + block
    path.write_text(text)


# --------------------------------------------------------------------------- main


def corpus(args) -> list[Path]:
    if args.files:
        files = [Path(p) for p in args.files]
        missing = [str(p) for p in files if not p.is_file()]
        if missing:
            sys.exit(f"benchmark: error: no such file: {', '.join(missing)}")
        return files
    files = sorted(Path(args.cache_dir).glob("*.safetensors"))
    if not files:
        sys.exit(f"benchmark: error: no *.safetensors in {args.cache_dir}; "
                 f"run python scripts/fetch_models.py first")
    return files


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description="Benchmark ansz against zstd, ZipNN and the coding-pair bound.",
        epilog=f"ZipNN is optional: {ZIPNN_INSTALL}")
    ap.add_argument("files", nargs="*", help="safetensors files (default: all in --cache-dir)")
    ap.add_argument("--cache-dir", default=str(DEFAULT_CACHE),
                    help=f"corpus directory (default: {DEFAULT_CACHE})")
    ap.add_argument("--repeat", type=int, default=3, help="runs per measurement (median; default 3)")
    ap.add_argument("--tools", default=",".join(ALL_TOOLS),
                    help=f"comma-separated subset of {','.join(ALL_TOOLS)} (default: all; "
                         "zstd-3 always runs: it is the speed reference; zstd19 is the "
                         "slow one, ~1-2 MB/s)")
    ap.add_argument("--ansz", default="ansz", help="the ansz command (default: ansz on PATH)")
    ap.add_argument("--tmp-dir", default=None, help="where ansz's output files go (default: $TMPDIR)")
    ap.add_argument("--write-benchmarks", action="store_true",
                    help="write the results into the benchmark section of BENCHMARKS.md")
    ap.add_argument("--benchmarks-file", default=str(DEFAULT_BENCHMARKS), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.repeat < 1:
        ap.error("--repeat must be at least 1")
    tools = {t.strip() for t in args.tools.split(",") if t.strip()}
    if tools - set(ALL_TOOLS):
        ap.error(f"unknown tool(s): {', '.join(sorted(tools - set(ALL_TOOLS)))}")
    files = corpus(args)

    report = Report()
    import zstandard

    versions = [f"Python {platform.python_version()}",
                f"zstandard {zstandard.__version__} (libzstd "
                f"{'.'.join(map(str, zstandard.ZSTD_VERSION))})"]
    zipnn = None
    if "zipnn" in tools:
        try:
            zipnn, zv = zipnn_module()
            versions.append(f"ZipNN {zv}")
        except RuntimeError as e:
            report.note(f"ZipNN: unavailable ({e})")
    ansz_argv = None
    if "ansz" in tools:
        try:
            ansz_argv, av = ansz_check(args.ansz)
            versions.append(f"ansz: {av}")
        except AnszUnavailable as e:
            report.note(f"ansz: unavailable ({e})")

    for path in files:
        name = path.name.removesuffix(".safetensors")
        data = path.read_bytes()
        bench_zstd(name, data, args.repeat, report, tools)
        if zipnn is not None:
            bench_zipnn(name, data, args.repeat, report, zipnn)
        if ansz_argv is not None:
            bench_ansz(name, path, data, args.repeat, report, ansz_argv, args.tmp_dir)
            bench_ansz_api(name, data, args.repeat, report)
        if "bound" in tools:
            bench_bound(name, path, report)
        del data

    table = render_table(report)
    print()
    print(table)
    bad = [r for r in report.rows if r.ok is False]
    for r in bad:
        print(f"ERROR: {r.tool} did not round-trip {r.file} byte for byte", file=sys.stderr)

    if args.write_benchmarks:
        cmd = shlex.join(["python", "scripts/benchmark.py",
                          *(sys.argv[1:] if argv is None else argv)])
        now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        notes = "\n".join(f"- {n}" for n in report.notes)
        section = f"""## Corpus benchmark

- Command: `{cmd}`
- Date: {now}
- CPU: {cpu_model()}, {core_count()}; {platform.system()} {platform.release()}
- Versions: {'; '.join(versions)}
- Method: median of {args.repeat} run(s) per measurement; MB/s = 10^6 bytes of original data per second;
  ×zstd-3 = speed relative to single-threaded zstd-3 on the same file in the same run.
  zstd, ZipNN and the "ansz API" rows run in process on data in memory; the "ansz" rows run
  the CLI as a subprocess, so their times include interpreter start-up (~0.6-1.1 s of numba
  loading, see below) and file I/O (one untimed warm-up run first), and their peak RSS is
  the child's maximum resident set (compress / decompress).
  ZipNN compresses the whole file as one byte buffer with the byte grouping of the file's
  dominant dtype (shown in brackets). The coding-pair bound is the order-0 entropy of each
  tensor's code bytes plus its raw bits, header stored as is.
{notes}

{table}
"""
        write_section(Path(args.benchmarks_file), section)
        print(f"\nwrote the benchmark section of {args.benchmarks_file}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
