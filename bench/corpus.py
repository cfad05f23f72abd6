"""Ratio and speed of ansz beside zstd and ZipNN on every corpus file, and the coding-pair
bound, in one run.

Per file (default: every corpus file present; ``--files`` names or paths), all in process
and interleaved (harness.interleave, the file's cases once per round):

* ``zstd-3`` (one thread: the speed reference), ``zstd-3 T2``: the ``zstandard`` package,
  one-shot ``compress`` / ``decompress`` of the whole file in memory; ``zstd-19``: the same at
  level 19, timed once (1-2 MB/s: minutes on the GGUF files), by default only on GGUF files,
  where it is the peer to beat (``--zstd19``);
* ``ZipNN`` (0.5.4; safetensors files): ``ZipNN(bytearray_dtype=..., threads=T)`` with the
  byte grouping of the file's dominant dtype, on the whole file in memory (each compress
  gets a fresh copy: ZipNN rewrites its input);
* ``ansz``, ``ansz --fast``: ``ansz.compress_file`` (page cache to tmpfs) and
  ``ansz.decompress_stream`` (tmpfs into a sink that discards the bytes), T threads,
  levels 2 (the default) and 1;
* ``coding-pair bound`` (safetensors files): see :func:`coding_pair_bound`.

Every tool's output is checked against the original once, outside the timing. Speeds are
MB/s (10^6 bytes of original per second, median of the runs) and multiples of ``zstd-3``'s
speed: the median of the per-round ratios.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import harness as h
from .harness import Case, Table

TITLE = "Corpus: ratio and speed beside zstd and ZipNN"
DESCRIPTION = "ratio and speed on every corpus file beside zstd, ZipNN and the coding-pair bound"
RUNS = 3
WARMUP = 0
TOOLS = ("zstd", "zipnn", "ansz", "bound")


def add_arguments(p) -> None:
    p.add_argument("--files", help="comma-separated corpus names or paths (default: every "
                                   "corpus file present)")
    p.add_argument("--tools", default=",".join(TOOLS),
                   help=f"comma-separated subset of {','.join(TOOLS)} (zstd-3 always runs: it "
                        "is the speed reference)")
    p.add_argument("--zstd19", choices=("none", "gguf", "all"), default="gguf",
                   help="files to compress with zstd-19 (once; default gguf)")
    p.add_argument("--threads", type=int, default=2, help="threads of ansz, ZipNN and "
                                                          "zstd-3 T2 (default 2)")


def space_needed(args) -> int:
    return int(1.5e9)


# ---------------------------------------------------------------------------------------------
# The coding-pair bound

# safetensors dtype -> (numpy uint view, shift of the code byte, raw bits per element).
# The code is the 8 bits at ``shift`` (the exponent for BF16/F32, the top 8 of the 11 exponent
# bits for F64, the high byte for F16); every other bit of the element is "raw".
_PAIR_LAYOUT = {
    "BF16": (np.uint16, 7, 8),
    "F16": (np.uint16, 8, 8),
    "F32": (np.uint32, 23, 24),
    "F64": (np.uint64, 55, 56),
}


def order0_entropy_bits(symbols: np.ndarray) -> float:
    """Total order-0 entropy of ``symbols`` in bits: ``n * H``, ``H = -sum(p log2 p)``."""
    n = symbols.size
    if n == 0:
        return 0.0
    counts = np.bincount(symbols.ravel(), minlength=1)
    p = counts[counts > 0] / n
    return float(-n * np.sum(p * np.log2(p)))


def coding_pair_bound(path: str | os.PathLike) -> dict:
    """The size a coder could at best reach that entropy-codes each tensor's code bytes with
    that tensor's own order-0 statistics and stores the raw bits as they are.

    Per tensor of ``n`` elements: BF16 ``n*H(bits 7..14) + 8n`` bits; F16 ``n*H(high byte) +
    8n``; F32 ``n*H(bits 23..30) + 24n``; F64 ``n*H(bits 55..62) + 56n``; every other dtype
    (1-byte types, integers) the order-0 entropy of its bytes. The header counts as stored.
    Returns ``{"original_bytes", "bound_bytes", "ratio"}``.
    """
    data = np.memmap(path, dtype=np.uint8, mode="r") if os.path.getsize(path) else \
        np.zeros(0, np.uint8)
    bits = 0.0
    tensor_bytes = 0
    for t in h.safetensors_tensors(path):
        raw = np.asarray(data[t.start:t.end])
        tensor_bytes += raw.size
        if t.dtype in _PAIR_LAYOUT:
            view, shift, raw_bits = _PAIR_LAYOUT[t.dtype]
            elems = raw.view(np.dtype(view).newbyteorder("<"))
            codes = ((elems >> shift) & 0xFF).astype(np.uint8)
            bits += order0_entropy_bits(codes) + elems.size * raw_bits
        else:
            bits += order0_entropy_bits(raw)
    size = data.size
    bound = bits / 8 + size - tensor_bytes
    return {"original_bytes": size, "bound_bytes": bound, "ratio": bound / size if size else 0.0}


# ---------------------------------------------------------------------------------------------
# The run


def resolve_files(session: h.Session, spec: str | None) -> list[tuple[str, Path, str]]:
    """(name, path, format) of the files to measure."""
    if spec:
        out = []
        for s in (x.strip() for x in spec.split(",") if x.strip()):
            name, p = h.resolve_input(s, session.models)
            out.append((name, p, "gguf" if p.suffix == ".gguf" else "safetensors"))
        return out
    present, missing = h.present_corpus(session.models)
    if not present:
        raise h.BenchError(f"no corpus file in {session.models}: run "
                           "python scripts/fetch_models.py (and scripts/fetch_gguf.py)")
    for f in missing:
        session.progress(f"{f.filename} missing (run {f.fetch}): left out")
    return [(f.name, f.path(session.models), f.format) for f in present]


@dataclass
class Row:
    tool: str
    ratio: float | None
    ok: bool | None          #: round trip byte for byte (None: nothing to check)
    comp: str | None = None  #: case names
    decomp: str | None = None
    frame: dict | None = None  #: zstd: {"frame": its latest output}, checked after the rounds


def run(session: h.Session, args) -> list[Table]:
    import zstandard

    import ansz

    tools = {t.strip() for t in args.tools.split(",") if t.strip()}
    if tools - set(TOOLS):
        raise h.BenchError(f"unknown tool(s): {', '.join(sorted(tools - set(TOOLS)))}")
    files = resolve_files(session, args.files)
    T = args.threads
    notes: list[str] = []
    ZipNN = None
    if "zipnn" in tools:
        ZipNN, why = h.load_zipnn()
        if ZipNN is None:
            notes.append(f"ZipNN {why}")

    full = Table("Ratio and speed per tool, in process", [
        "file", "size MB", "tool", "ratio", "comp MB/s", "decomp MB/s", "comp ×zstd-3",
        "decomp ×zstd-3", "round trip"], align="lrlrrrrrl")
    ratios: dict[str, dict[str, float]] = {}
    for name, path, fmt in files:
        session.progress(f"{name}: preparing")
        data = path.read_bytes()
        n = len(data)
        sha = hashlib.sha256(data).digest()
        cases: list[Case] = []
        rows: list[Row] = []

        def zstd_rows(label: str, level: int, threads: int, once: bool = False) -> None:
            cctx = zstandard.ZstdCompressor(level=level, threads=threads)
            dctx = zstandard.ZstdDecompressor()
            frame = cctx.compress(data) if not once else None
            kw = {"runs": 1, "warmup": 0} if once else {}
            holder = {"frame": frame}

            def comp():
                holder["frame"] = cctx.compress(data)
            # Listed compress first: a case run once runs in round 1, in this order.
            cases.append(Case(f"{label} c", comp, **kw))
            cases.append(Case(f"{label} d", lambda: dctx.decompress(holder["frame"]), **kw))
            rows.append(Row(label, None, None, f"{label} c", f"{label} d", holder))

        zstd_rows("zstd-3", 3, 0)
        if "zstd" in tools:
            zstd_rows("zstd-3 T2", 3, T)
        if args.zstd19 == "all" or (args.zstd19 == "gguf" and fmt == "gguf"):
            zstd_rows("zstd-19", 19, 0, once=True)

        if ZipNN is not None and fmt == "safetensors":
            zdtype = h.ZIPNN_DTYPES.get(h.dominant_dtype(path))
            if zdtype is None:
                notes.append(f"{name}: no ZipNN byte grouping for its dtype")
            else:
                blob = ZipNN(bytearray_dtype=zdtype, threads=T).compress(bytearray(data))
                ok = bytes(ZipNN(bytearray_dtype=zdtype, threads=T).decompress(blob)) == data
                cases.append(Case("ZipNN c", lambda buf, z=zdtype: ZipNN(
                    bytearray_dtype=z, threads=T).compress(buf), setup=lambda: bytearray(data)))
                cases.append(Case("ZipNN d", lambda z=zdtype, b=blob: ZipNN(
                    bytearray_dtype=z, threads=T).decompress(b)))
                rows.append(Row(f"ZipNN ({zdtype})", len(blob) / n, ok, "ZipNN c", "ZipNN d"))

        if "ansz" in tools:
            for label, level in (("ansz", 2), ("ansz --fast", 1)):
                container = session.path(f"{name}.l{level}.ansz")
                out = session.path(f"{name}.l{level}.out.ansz")
                ansz.compress_file(path, container, level=level, threads=T, overwrite=True)
                sink = h.HashSink()
                with open(container, "rb") as fh:
                    ansz.decompress_stream(fh, sink, threads=T)

                def comp(_, lv=level, o=out):
                    ansz.compress_file(path, o, level=lv, threads=T, overwrite=True)

                def decomp(c=container):
                    with open(c, "rb") as fh:
                        ansz.decompress_stream(fh, h.NullSink(), threads=T)
                cases.append(Case(f"{label} c", comp, setup=lambda o=out: o.unlink(missing_ok=True)))
                cases.append(Case(f"{label} d", decomp))
                rows.append(Row(label, container.stat().st_size / n, sink.sha.digest() == sha,
                                f"{label} c", f"{label} d"))

        rounds = session.interleave(cases)
        for r in rows:
            if r.frame is not None:
                frame = r.frame["frame"]
                r.ratio = len(frame) / n
                r.ok = zstandard.ZstdDecompressor().decompress(frame) == data
        if "ansz" in tools:
            for label, level in (("ansz", 2), ("ansz --fast", 1)):
                out = session.path(f"{name}.l{level}.out.ansz")
                same = (h.sha256_file(out) == h.sha256_file(session.path(f"{name}.l{level}.ansz")))
                row = next(r for r in rows if r.tool == label)
                row.ok = row.ok and same
                out.unlink(missing_ok=True)
                session.path(f"{name}.l{level}.ansz").unlink(missing_ok=True)
        if "bound" in tools and fmt == "safetensors":
            rows.append(Row("coding-pair bound", coding_pair_bound(path)["ratio"], None))

        for r in rows:
            cells = [name, f"{n / 1e6:.1f}", r.tool, f"{r.ratio:.4f}"]
            if r.comp is None:
                cells += ["—"] * 4
            else:
                c, d = rounds[r.comp], rounds[r.decomp]
                cells += [f"{c.mbps(n):.0f}", f"{d.mbps(n):.0f}"]
                cells += [f"{rounds.speedup(r.comp, 'zstd-3 c').median:.2f}"
                          if r.comp != "zstd-3 c" else "1.00",
                          f"{rounds.speedup(r.decomp, 'zstd-3 d').median:.2f}"
                          if r.decomp != "zstd-3 d" else "1.00"]
            cells.append("—" if r.ok is None else "ok" if r.ok else "**MISMATCH**")
            full.add(*cells)
            ratios.setdefault(name, {})[r.tool.split(" (")[0]] = r.ratio
        if any(r.ok is False for r in rows):
            raise h.BenchError(f"{name}: a tool did not round-trip byte for byte")

    cols = ["ansz", "ansz --fast", "ZipNN", "zstd-3", "zstd-19", "coding-pair bound"]
    summary = Table("Ratio (compressed / original), smaller is better",
                    ["file"] + cols)
    for name, got in ratios.items():
        best = min(v for k, v in got.items() if k != "coding-pair bound")
        summary.add(name, *(("—" if k not in got else
                             f"**{got[k]:.4f}**" if got[k] == best else f"{got[k]:.4f}")
                            for k in cols))
    summary.notes = ["Bold: the smallest of the tools (the bound is not a tool). ansz at its "
                     "default level and `--fast`; zstd via the zstandard package; ZipNN with "
                     "the byte grouping of the file's dominant dtype."]
    full.notes = [
        f"In process, {T} threads for ansz, ZipNN and zstd-3 T2; zstd-3 and zstd-19 on one. "
        "zstd and ZipNN code the whole file in memory; ansz's `compress_file` reads the file "
        "(page cache) and writes the container to tmpfs, `decompress_stream` reads the "
        "container from tmpfs into a sink that discards the bytes.",
        f"Median of {session.runs} run(s) (zstd-19: one); ×zstd-3 is the median of the per-round "
        "speed ratios to single-threaded zstd-3 on the same file.",
        *notes,
    ]
    return [summary, full]
