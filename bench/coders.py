"""The three entropy coders (rANS, Huffman, QLC) side by side: on one code stream, and on
whole files under each ``--coder``.

* Stream: the exponent bytes of Gaussian N(0, 0.02) weights cast to bf16 (or of every BF16
  tensor of ``--stream-file``), coded whole by ``ansz.streams.encode_stream`` with each
  coder forced: bits per symbol, tables included, against the order-0 entropy; encode and
  decode MB/s of symbols on one core.
* Files (``--files``, corpus names or paths; default minilm-bf16 and minilm-fp8e4m3, none
  with ``--files ''``): ``ansz.compress_file`` under each coder (auto, rans, huffman, qlc)
  to tmpfs, then ``ansz.decompress_file`` to tmpfs, the coders interleaved. The container
  ratio, the saving on the file's fp8 tensors alone (their records, headers included,
  against their raw bytes) and decode MB/s of original bytes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import harness as h
from .harness import Case, Table

TITLE = "Coders: rANS, Huffman, QLC"
DESCRIPTION = "rANS, Huffman and QLC on one code stream and on whole files (--coder)"
RUNS = 7
WARMUP = 1
CODERS = ("auto", "rans", "huffman", "qlc")
FP8 = {"F8_E4M3", "F8_E5M2"}


def add_arguments(p) -> None:
    p.add_argument("--elements", type=int, default=4 << 20,
                   help="symbols of the Gaussian code stream (default 4 Mi)")
    p.add_argument("--stream-file", help="take the code stream from this file's BF16 tensors")
    p.add_argument("--files", default="minilm-bf16,minilm-fp8e4m3",
                   help="corpus names or paths for the file table ('' for none)")
    p.add_argument("--threads", type=int, default=1, help="threads for the files (default 1)")


def space_needed(args) -> int:
    return int(1e9)


def code_stream(args, models: Path) -> tuple[np.ndarray, str]:
    if args.stream_file:
        _, p = h.resolve_input(args.stream_file, models)
        mm = np.memmap(p, dtype=np.uint8, mode="r")
        codes = np.concatenate([(np.frombuffer(mm[t.start:t.end], np.uint16) >> 7)
                                .astype(np.uint8)
                                for t in h.safetensors_tensors(p) if t.dtype == "BF16"])
        return codes, f"the BF16 exponents of {p.name}"
    import ml_dtypes

    x = np.random.default_rng(0).standard_normal(args.elements) * 0.02
    codes = (x.astype(ml_dtypes.bfloat16).view(np.uint16) >> 7).astype(np.uint8)
    return codes, "Gaussian bf16 exponents"


def stream_table(session: h.Session, args) -> Table:
    from ansz import rans, streams
    from ansz.stats import coder_costs

    codes, what = code_stream(args, session.models)
    n = codes.size
    counts = rans.byte_histogram(codes)
    entropy = coder_costs(counts)["entropy"]
    coders = {"rANS": "rans", "Huffman": "huffman", "QLC": "qlc"}
    blobs = {k: streams.encode_stream(codes, coder=c) for k, c in coders.items()}
    out = np.empty(n, np.uint8)
    for name, blob in blobs.items():
        if not np.array_equal(streams.decode_stream(blob, n, out), codes):
            raise h.BenchError(f"{name} did not round-trip the code stream")
    cases = [Case(f"{k} enc", lambda c=c: streams.encode_stream(codes, coder=c))
             for k, c in coders.items()]
    cases += [Case(f"{k} dec", lambda b=b: streams.decode_stream(b, n, out))
              for k, b in blobs.items()]
    rounds = session.interleave(cases)
    t = Table(f"One code stream: {what} ({n:,} symbols, {int(np.count_nonzero(counts))} "
              "distinct), one core",
              ["coder", "bits/symbol", "vs entropy", "encode MB/s", "decode MB/s",
               "decode × rANS"])
    t.add("entropy", f"{entropy / n:.4f}", "—", "—", "—", "—")
    for name, blob in blobs.items():
        bits = len(blob) * 8
        t.add(name, f"{bits / n:.4f}", f"+{(bits / entropy - 1) * 100:.2f}%",
              f"{rounds[f'{name} enc'].mbps(n):.0f}", f"{rounds[f'{name} dec'].mbps(n):.0f}",
              f"{rounds.speedup(f'{name} dec', 'rANS dec').median:.2f}"
              if name != "rANS" else "1.00")
    t.notes = ["Whole streams as `ansz.streams.encode_stream(coder=...)` writes them, tables "
               "and method byte included; MB/s are of symbols (one byte each); × rANS is the "
               "median of the per-round speed ratios."]
    return t


def files_table(session: h.Session, args, files: list[str]) -> Table:
    import ansz

    t = Table(f"Whole files under each `--coder`, threads={args.threads}",
              ["file", "coder", "ratio", "fp8 saving", "decode MB/s", "decode × rans"],
              align="llrrrr")
    out = session.path("coders.out")
    for spec in files:
        name, p = h.resolve_input(spec, session.models)
        packed = {c: session.path(f"{name}.{c}.ansz") for c in CODERS}
        reports = {c: ansz.compress_file(p, packed[c], coder=c, threads=args.threads,
                                         overwrite=True) for c in CODERS}
        rounds = session.interleave([
            Case(c, lambda c=c: ansz.decompress_file(packed[c], out, threads=args.threads,
                                                      overwrite=True)) for c in CODERS])
        if h.sha256_file(out) != h.sha256_file(p):
            raise h.BenchError(f"{name}: decompression differs from the original")
        for c in CODERS:
            fp8 = [s for s in ansz.read_info(packed[c]).segments if s["dtype"] in FP8]
            raw = sum(s["nbytes"] for s in fp8)
            saving = (f"{1 - sum(s['compressed_size'] for s in fp8) / raw:.2%}" if raw else "—")
            t.add(name, c, f"{reports[c].ratio:.4f}", saving,
                  f"{rounds[c].mbps(reports[c].original_size):.0f}",
                  f"{rounds.speedup(c, 'rans').median:.2f}" if c != "rans" else "1.00")
            packed[c].unlink()
    out.unlink(missing_ok=True)
    t.notes = ["fp8 saving: 1 − (the fp8 tensors' records, headers included) / (their raw "
               "bytes). Decode: `decompress_file` tmpfs to tmpfs, the coders interleaved; "
               "× rans is the median of the per-round speed ratios."]
    return t


def run(session: h.Session, args) -> list[Table]:
    tables = [stream_table(session, args)]
    files = [s.strip() for s in args.files.split(",") if s.strip()]
    if files:
        tables.append(files_table(session, args, files))
    return tables
