"""The team's speed targets, all measured in ONE run so the machine's noise hits every row
alike: every case below runs once per round, the rounds interleaved (harness.interleave),
and each ansz figure is compared with its peer round by round (median of the per-round
ratios, min-max in brackets).

* Fixed cost, through the command (wall): ``ansz decompress -c`` and ``ansz compress -c`` of
  a tiny safetensors file (~8 KB of real bf16 tensors) against ``zstd``'s; ``ansz --help``
  against a bare ``python -c pass``; the first round trip with empty kernel caches (fresh
  NUMBA_CACHE_DIR and XDG_CACHE_HOME, ``--cold-runs`` times, in the first rounds) against the
  same with the warm cache.
* Threads: ``ansz compress`` / ``ansz decompress`` of FILE with ``-T 1`` against ``-T 2``.
* In process, default level, ``--threads`` threads: ``ansz.compress_file`` (to tmpfs) and
  ``ansz.decompress_stream`` (into a null sink) against ZipNN's
  ``ZipNN(bytearray_dtype=..., threads=...).compress`` / ``.decompress`` on whole files in
  memory (each compress gets a fresh copy: ZipNN rewrites its input), for each ``--inprocess``
  file; their ratios side by side.
* Through the command, FILE and every output on tmpfs: ``ansz decompress FILE -o OUT`` against
  ``zstd -d`` of a ``zstd -3`` file; ``ansz compress`` against ``zstd -3 -T1`` and ``-T2``;
  both levels; the page-cache write floor (``dd`` writing a new file of the same size) and
  the command's start-up (the tiny decompress) as shares of ``zstd -d``'s time.
* ``--fast`` decode: ``decompress_stream`` of a level-1 container against the default's, in
  process, and through the command.
* Floors, what ansz cannot go below whatever its entropy coder does: ``ansz decompress`` of a
  container of the same size whose streams are all stored (the original is random bytes), in
  process and through the command: start-up, reading, the copy into the output, the
  checksums and the writes, without entropy decoding; and the whole-file sha256 that every
  container records (``hashlib``, one thread, 4 MiB reads, a process of its own), which
  compression cannot split over threads. And, for each in-process file, the coding and the
  decoding work alone (the default level's kernels as they are): every chunk coded from
  memory on ``--threads`` threads beside the sha256 of the bytes, and every chunk of its
  container decoded from memory (checksums checked), with no reading, writing or container
  around them; start-up + FILE's coding work is the command's compression floor.

FILE is mpnet-bf16 (``--file``); ``--scale-gb N`` replaces it by its bf16 tensors repeated to
N GB (the signs of each later copy flipped at random: harness.replicate_tensors), a
checkpoint-sized file on which the command's start-up weighs less. Every output is
checked against its original once, outside the timing.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from . import harness as h
from .harness import Case, Table, fmt_s, fmt_seconds, fmt_times

TITLE = "Speed targets"
DESCRIPTION = ("the speed targets in one run: fixed costs, threads, in process vs ZipNN, the "
               "command vs zstd, --fast")
RUNS = 5
WARMUP = 1

TINY_BYTES = 8000

#: The sha256 floor: the whole file through hashlib, as ansz's hashing thread reads it.
SHA256_SCRIPT = ("import hashlib, sys\n"
                 "h = hashlib.sha256()\n"
                 "with open(sys.argv[1], 'rb') as f:\n"
                 "    for block in iter(lambda: f.read(4 << 20), b''):\n"
                 "        h.update(block)\n")


def section(args) -> tuple[str, str]:
    """BENCHMARKS.md's section: on a checkpoint-sized file (``--scale-gb``) a section of its
    own beside the scoreboard's."""
    if args.scale_gb:
        return "speed-scaled", f"{TITLE} on a checkpoint-sized file"
    return "speed", TITLE


def add_arguments(p) -> None:
    p.add_argument("--file", default="mpnet-bf16",
                   help="corpus name or path for the threads, command and --fast rows "
                        "(default mpnet-bf16)")
    p.add_argument("--inprocess", default="mpnet-bf16,mpnet-fp16,minilm-f32",
                   help="comma-separated corpus names or paths for the in-process rows")
    p.add_argument("--threads", type=int, default=2, help="threads of the -T2 and in-process "
                                                          "rows (default 2)")
    p.add_argument("--cold-runs", type=int, default=1,
                   help="first runs with empty kernel caches (~30 s each; 0 leaves them out)")
    p.add_argument("--scale-gb", type=float,
                   help="run the threads, command and --fast rows on FILE's bf16 tensors "
                        "repeated to this many GB")
    p.add_argument("--no-zipnn", action="store_true", help="leave ZipNN out")
    p.add_argument("--ansz", help="the ansz command (default: this environment's)")
    p.add_argument("--zstd", default="zstd", help="the zstd command (default: zstd)")


def space_needed(args) -> int:
    big = args.scale_gb * 1e9 if args.scale_gb else 2.2e8
    return int(6 * big + 1.5e9)


# ---------------------------------------------------------------------------------------------
# Targets and rows


@dataclass(frozen=True)
class Target:
    """A target on one figure: at most / at least ``bound``."""

    text: str
    bound: float
    at_most: bool

    def met(self, value: float | None) -> str:
        if value is None:
            return "—"
        ok = value <= self.bound if self.at_most else value >= self.bound
        return "yes" if ok else "**no**"


def at_most(bound: float, text: str) -> Target:
    return Target(text, bound, True)


def at_least(bound: float, text: str) -> Target:
    return Target(text, bound, False)


TINY_TARGET = at_most(0.15, "≤ 0.15 s")
HELP_TARGET = at_most(0.15, "≤ 0.15 s")
COLD_TARGET = at_most(2.0, "≤ +2 s")
INPROCESS_TARGET = at_least(1.5, "≥ 1.5× ZipNN")
DECOMPRESS_TARGET = at_most(0.8, "≤ 0.8× zstd -d")
COMPRESS_TARGET = at_most(0.6, "≤ 0.6× zstd -3 -T1")
FAST_TARGET = at_least(1.5, "≥ 1.5× the default")

COLUMNS = ["measurement", "ansz", "peer", "ansz vs peer", "target", "met"]


def time_row(table: Table, rounds: h.Rounds, what: str, case: str, peer: str, peer_label: str,
             target: Target | None = None, on_ratio: bool = True) -> None:
    """A row comparing wall times: ``case``'s time as a multiple of ``peer``'s (per round);
    the target is on that multiple (``on_ratio``) or on ``case``'s median seconds."""
    target_text = target.text if target else "—"
    if case not in rounds.timings:
        table.add(what, "—", peer_label, "unavailable", target_text, "—")
        return
    a = rounds[case]
    if peer not in rounds.timings:
        value = None if on_ratio else a.median
        table.add(what, fmt_seconds(a.times), f"{peer_label}: unavailable", "—", target_text,
                  target.met(value) if target else "—")
        return
    b = rounds[peer]
    r = rounds.ratio(case, peer)
    value = r.median if on_ratio else a.median
    table.add(what, fmt_seconds(a.times), f"{peer_label}: {fmt_s(b.median)}",
              f"{fmt_times(r.values)} the time", target_text,
              target.met(value) if target else "—")


def speed_row(table: Table, rounds: h.Rounds, what: str, case: str, peer: str,
              peer_label: str, nbytes: int, target: Target | None = None) -> None:
    """A row comparing speeds: MB/s of ``nbytes`` per run, and how many times faster ``case``
    ran than ``peer`` (per round); the target is on that multiple."""
    target_text = target.text if target else "—"
    if case not in rounds.timings:
        table.add(what, "—", peer_label, "unavailable", target_text, "—")
        return
    a = rounds[case]

    def mbs(t: float) -> str:
        return f"{nbytes / 1e6 / t:.0f}"
    figure = (f"{mbs(a.median)} MB/s ({mbs(a.max)}–{mbs(a.min)})" if len(a.times) > 1
              else f"{mbs(a.median)} MB/s")
    if peer not in rounds.timings:
        table.add(what, figure, f"{peer_label}: unavailable", "—", target_text, "—")
        return
    b = rounds[peer]
    r = rounds.speedup(case, peer)
    table.add(what, figure, f"{peer_label}: {mbs(b.median)} MB/s",
              f"{fmt_times(r.values)} the speed", target_text,
              target.met(r.median) if target else "—")


# ---------------------------------------------------------------------------------------------
# Inputs


def unlink(*paths: Path) -> None:
    for p in paths:
        p.unlink(missing_ok=True)


class WorkFloors:
    """The coding and decoding work of one file alone, in memory, on ``threads`` threads:
    :meth:`code` codes every chunk as ``compress_file`` cuts them (default level) while a
    thread of its own hashes the bytes (the sha256 every container records); :meth:`decode`
    decodes every chunk record of ``container`` (read into memory, its index parsed, once)
    into one buffer, checksums checked. Neither reads nor writes a file: what is left of
    compression and decompression without their I/O and container, the floor of the
    pipelines around these kernels."""

    def __init__(self, path: Path, data: bytes, container: Path, threads: int):
        from concurrent.futures import ThreadPoolExecutor

        import numpy as np

        from ansz import api
        from ansz._io import FileSource, open_regular
        from ansz.container import PLAIN, ContainerFile
        from ansz.options import DEFAULT_LEVEL, default_chunk_size
        from ansz.plan import file_chunks, plan_segments

        self._data = memoryview(data)
        with open_regular(str(path)) as f:
            layout, _ = api.detect(FileSource(f))
        self._chunks = [(code, np.frombuffer(self._data[start:start + n], np.uint8))
                        for _, code, start, n in file_chunks(plan_segments(layout, len(data)),
                                                             default_chunk_size(DEFAULT_LEVEL))]
        blob = memoryview(container.read_bytes())
        self._container = ContainerFile(lambda o, n: blob[o:o + n], len(blob))
        self._records = range(len(self._container.index.chunks))
        self._pool = ThreadPoolExecutor(threads)
        self._out = np.empty(len(data), np.uint8)
        kinds = {self._container.chunk(i)[0].kind for i in self._records}
        if kinds - {PLAIN}:
            raise h.BenchError(f"{path.name}: its container has chunks of kinds {kinds}: the "
                               "decoding work floor decodes plain chunks only")
        self.decode()
        if self._out.tobytes() != data:
            raise h.BenchError(f"{path.name}: the decoding work floor does not restore it")

    @staticmethod
    def _code_one(chunk) -> None:
        from ansz.chunks import encode_payload

        encode_payload(chunk[1], chunk[0])

    def code(self) -> None:
        import threading

        sha = hashlib.sha256()
        hasher = threading.Thread(target=sha.update, args=(self._data,))
        hasher.start()
        for _ in self._pool.map(self._code_one, self._chunks):
            pass
        hasher.join()

    def _decode_one(self, i: int) -> None:
        from ansz.chunks import decode_record

        rec, payload = self._container.chunk(i)
        start = rec.original_offset
        decode_record(rec, payload, self._out[start:start + rec.decoded_length])

    def decode(self) -> None:
        for _ in self._pool.map(self._decode_one, self._records):
            pass

    def close(self) -> None:
        self._pool.shutdown()


# ---------------------------------------------------------------------------------------------
# The run


def run(session: h.Session, args) -> list[Table]:
    import zstandard

    import ansz

    if shutil.which(args.zstd) is None:
        raise h.BenchError(f"no {args.zstd} command: apt-get install -y zstd")
    if shutil.which("dd") is None:
        raise h.BenchError("no dd command")
    T = str(args.threads)
    A = h.ansz_command(args.ansz)
    Z = args.zstd
    work = session.workdir
    null = os.devnull

    file_name, file_src = h.resolve_input(args.file, session.models)
    inproc = [h.resolve_input(s.strip(), session.models)
              for s in args.inprocess.split(",") if s.strip()]
    ZipNN, zipnn_note = h.load_zipnn() if not args.no_zipnn else (None, "left out (--no-zipnn)")

    # --- inputs, containers and reference outputs (untimed) ---
    session.progress("preparing inputs on " + str(work))
    h.compile_bytecode()
    tiny = work / "tiny.safetensors"
    tiny_size = h.tiny_safetensors(file_src, tiny, TINY_BYTES)
    run_cmd = h.run_command
    run_cmd([*A, "compress", "-q", "-f", tiny, "-o", work / "tiny.ansz"])
    run_cmd([Z, "-3", "-q", "-f", tiny, "-o", work / "tiny.zst"])

    model = work / "model.safetensors"
    if args.scale_gb:
        size = h.replicate_tensors(file_src, model, int(args.scale_gb * 1e9))
        model_label = f"{file_name}'s bf16 tensors to {size / 1e9:.2f} GB"
    else:
        shutil.copyfile(file_src, model)
        size = model.stat().st_size
        model_label = f"{file_name} ({h.fmt_mb(size)})"
    model_sha = h.sha256_file(model)
    level_files = {2: work / "model.l2.ansz", 1: work / "model.l1.ansz"}
    for level, out in level_files.items():
        run_cmd([*A, "compress", "-q", "-f", "-T", T, *(["--fast"] if level == 1 else []),
                 model, "-o", out])
    run_cmd([Z, "-3", "-q", "-f", "-T1", model, "-o", work / "model.zst"])
    out = work / "out.safetensors"
    # the floor's container: random bytes of the model's size, every stream stored
    noise, stored = work / "noise.bin", work / "stored.ansz"
    h.write_random_bytes(noise, size, seed=0)
    noise_sha = h.sha256_file(noise)
    run_cmd([*A, "compress", "-q", "-f", "-T", T, noise, "-o", stored])
    unlink(noise)
    run_cmd([*A, "decompress", "-q", "-f", stored, "-o", out])
    if h.sha256_file(out) != noise_sha:
        raise h.BenchError(f"{stored.name} does not decompress to the original")
    unlink(out)
    for src in (*level_files.values(), work / "model.zst"):
        tool = [Z, "-d", "-q", "-f"] if src.suffix == ".zst" else [*A, "decompress", "-q", "-f"]
        run_cmd([*tool, src, "-o", out])
        if h.sha256_file(out) != model_sha:
            raise h.BenchError(f"{src.name} does not decompress to the original")
        unlink(out)

    datasets = []  # (name, path, size, data, containers {level: path}, zipnn dtype, blob)
    for name, path in inproc:
        data = path.read_bytes()
        containers = {}
        for level in (2, 1):
            c = work / f"{name}.l{level}.ansz"
            ansz.compress_file(path, c, level=level, threads=args.threads, overwrite=True)
            sink = h.HashSink()
            with open(c, "rb") as fh:
                ansz.decompress_stream(fh, sink, threads=args.threads)
            if sink.sha.digest() != hashlib.sha256(data).digest():
                raise h.BenchError(f"{name}: level {level} does not round-trip")
            containers[level] = c
        zdtype = h.ZIPNN_DTYPES.get(h.dominant_dtype(path))
        blob = None
        if ZipNN is not None and zdtype is not None:
            blob = ZipNN(bytearray_dtype=zdtype, threads=args.threads).compress(bytearray(data))
            back = ZipNN(bytearray_dtype=zdtype, threads=args.threads).decompress(blob)
            if bytes(back) != data:
                raise h.BenchError(f"{name}: ZipNN does not round-trip")
        z3 = len(zstandard.ZstdCompressor(level=3).compress(data))
        datasets.append((name, path, len(data), data, containers, zdtype, blob, z3))

    # --- the cases ---
    cases: list[Case] = []

    def cmd_case(name: str, argv: list, *, stdout=None, outputs=(), env=None, **kw) -> None:
        setup = (lambda: unlink(*outputs)) if outputs else None
        if setup is None:
            cases.append(Case(name, lambda: run_cmd(argv, stdout=stdout, env=env), **kw))
        else:
            cases.append(Case(name, lambda _: run_cmd(argv, stdout=stdout, env=env),
                              setup=setup, **kw))

    # fixed cost
    cmd_case("tiny decompress", [*A, "decompress", "-c", work / "tiny.ansz"], stdout=null)
    cmd_case("zstd tiny decompress", [Z, "-d", "-c", work / "tiny.zst"], stdout=null)
    cmd_case("tiny compress", [*A, "compress", "-c", tiny], stdout=null)
    cmd_case("zstd tiny compress", [Z, "-3", "-c", tiny], stdout=null)
    cmd_case("help", [*A, "--help"])
    cmd_case("python", [sys.executable, "-c", "pass"])

    def round_trip(env: dict | None) -> h.ProcessStats:
        return (run_cmd([*A, "compress", "-c", tiny], stdout=null, env=env)
                + run_cmd([*A, "decompress", "-c", work / "tiny.ansz"], stdout=null, env=env))

    def fresh_caches() -> dict:
        d = Path(tempfile.mkdtemp(prefix="cold-", dir=work))
        return dict(os.environ, NUMBA_CACHE_DIR=str(d / "numba"), XDG_CACHE_HOME=str(d))

    if args.cold_runs > 0:
        cases.append(Case("cold", round_trip, setup=fresh_caches, runs=args.cold_runs,
                          warmup=0))
        cases.append(Case("warm", lambda: round_trip(None)))

    # threads and the command
    cx = {k: work / f"c.{k}.ansz" for k in ("T1", "T2", "fast")}
    cmd_case("compress -T1", [*A, "compress", "-q", "-f", "-T", "1", model, "-o", cx["T1"]],
             outputs=[cx["T1"]])
    cmd_case("compress -T2", [*A, "compress", "-q", "-f", "-T", T, model, "-o", cx["T2"]],
             outputs=[cx["T2"]])
    cmd_case("compress --fast", [*A, "compress", "-q", "-f", "--fast", "-T", T, model, "-o",
                                 cx["fast"]], outputs=[cx["fast"]])
    czst = work / "c.zst"
    cmd_case("zstd -3 -T1", [Z, "-3", "-q", "-f", "-T1", model, "-o", czst], outputs=[czst])
    cmd_case("zstd -3 -T2", [Z, "-3", "-q", "-f", "-T2", model, "-o", czst], outputs=[czst])
    cmd_case("decompress -T1", [*A, "decompress", "-q", "-f", "-T", "1", level_files[2], "-o",
                                out], outputs=[out])
    cmd_case("decompress -T2", [*A, "decompress", "-q", "-f", "-T", T, level_files[2], "-o",
                                out], outputs=[out])
    cmd_case("decompress --fast", [*A, "decompress", "-q", "-f", "-T", T, level_files[1], "-o",
                                   out], outputs=[out])
    cmd_case("zstd -d", [Z, "-d", "-q", "-f", work / "model.zst", "-o", out], outputs=[out])
    cmd_case("dd", ["dd", f"if={model}", f"of={out}", "bs=4M", "status=none"], outputs=[out])
    cmd_case("decompress stored", [*A, "decompress", "-q", "-f", "-T", T, stored, "-o", out],
             outputs=[out])
    cmd_case("sha256", [sys.executable, "-c", SHA256_SCRIPT, model])

    # in process
    def decompress_case(name: str, container: Path) -> None:
        def go():
            with open(container, "rb") as fh:
                ansz.decompress_stream(fh, h.NullSink(), threads=args.threads)
        cases.append(Case(name, go))

    work_floors: list[WorkFloors] = []
    for name, path, n, data, containers, zdtype, blob, _ in datasets:
        dst = work / f"{name}.c.ansz"
        cases.append(Case(f"compress_file {name}",
                          lambda _, p=path, d=dst: ansz.compress_file(
                              p, d, threads=args.threads, overwrite=True),
                          setup=lambda d=dst: unlink(d)))
        decompress_case(f"decompress_stream {name}", containers[2])
        floors = WorkFloors(path, data, containers[2], args.threads)
        work_floors.append(floors)
        cases.append(Case(f"coding work {name}", floors.code))
        cases.append(Case(f"decoding work {name}", floors.decode))
        if blob is not None:
            cases.append(Case(f"ZipNN compress {name}",
                              lambda buf, z=zdtype: ZipNN(bytearray_dtype=z,
                                                          threads=args.threads).compress(buf),
                              setup=lambda d=data: bytearray(d)))
            cases.append(Case(f"ZipNN decompress {name}",
                              lambda z=zdtype, b=blob: ZipNN(bytearray_dtype=z,
                                                             threads=args.threads).decompress(b)))
    # --fast decode in process: FILE's containers (already a case above when FILE is one of
    # the in-process files)
    fast_cases = (f"decompress_stream {file_name}", f"decompress_stream {file_name} --fast")
    if args.scale_gb or all(d[0] != file_name for d in datasets):
        fast_cases = ("decompress_stream model", "decompress_stream model --fast")
        decompress_case(fast_cases[0], level_files[2])
    decompress_case(fast_cases[1], level_files[1])
    decompress_case("decompress_stream stored", stored)

    session.progress(f"{len(cases)} cases, {session.runs} rounds")
    try:
        rounds = session.interleave(cases)
    finally:
        for floors in work_floors:
            floors.close()

    for k in ("T1", "T2"):  # the output does not depend on the thread count
        if h.sha256_file(cx[k]) != h.sha256_file(level_files[2]):
            raise h.BenchError(f"compress -{k} wrote a different container")

    return build_tables(rounds, args, tiny_size, model_label, size, level_files, datasets,
                        zipnn_note, os.path.getsize(work / "model.zst"), fast_cases)


def build_tables(rounds: h.Rounds, args, tiny_size: int, model_label: str, size: int,
                 level_files: dict, datasets: list, zipnn_note: str, czst_size: int,
                 fast_cases: tuple[str, str]) -> list[Table]:
    T = args.threads
    t = Table("Speed targets, one run", COLUMNS, align="llllll")
    tiny = f"tiny file ({tiny_size / 1e3:.1f} KB)"
    time_row(t, rounds, f"fixed cost: `ansz decompress -c` of the {tiny}", "tiny decompress",
             "zstd tiny decompress", "`zstd -d -c`", TINY_TARGET, on_ratio=False)
    time_row(t, rounds, f"fixed cost: `ansz compress -c` of the {tiny}", "tiny compress",
             "zstd tiny compress", "`zstd -3 -c`", TINY_TARGET, on_ratio=False)
    time_row(t, rounds, "fixed cost: `ansz --help`", "help", "python", "`python -c pass`",
             HELP_TARGET, on_ratio=False)
    if "cold" in rounds.timings:
        cold, warm = rounds["cold"], rounds["warm"]
        extra = [r["cold"] - r["warm"] for r in rounds.round_times if "cold" in r]
        t.add("first run, empty kernel caches: `ansz compress -c` + `ansz decompress -c` of the "
              "tiny file", fmt_seconds(cold.times), f"warm caches: {fmt_s(warm.median)}",
              f"+{fmt_seconds(extra)}", COLD_TARGET.text,
              COLD_TARGET.met(statistics.median(extra)))
    else:
        t.add("first run, empty kernel caches", "—", "—", "left out (--cold-runs 0)",
              COLD_TARGET.text, "—")
    speed_row(t, rounds, f"threads: `ansz compress -T {T}` of {model_label}", "compress -T2",
              "compress -T1", "`-T 1`", size)
    speed_row(t, rounds, f"threads: `ansz decompress -T {T}` of {model_label}",
              "decompress -T2", "decompress -T1", "`-T 1`", size)
    for name, _, n, _, _, _, blob, _ in datasets:
        for verb, what, case in (("compress", "compress_file", "compress_file"),
                                 ("decompress", "decompress_stream",
                                  "decompress_stream")):
            sink = " to a null sink" if verb == "decompress" else ""
            speed_row(t, rounds, f"in process: `{what}`{sink} of {name}, default level, "
                                 f"threads={T}", f"{case} {name}", f"ZipNN {verb} {name}",
                      f"ZipNN threads={T}", n, INPROCESS_TARGET)
    for level, flag in ((2, ""), (1, " --fast")):
        time_row(t, rounds, f"command: `ansz decompress -T {T} FILE -o OUT` of the{flag or ''} "
                            f"container of {model_label}", "decompress -T2" if level == 2
                 else "decompress --fast", "zstd -d", "`zstd -d` (of `zstd -3`)",
                 DECOMPRESS_TARGET)
    for case, flag in (("compress -T2", ""), ("compress --fast", " --fast")):
        time_row(t, rounds, f"command: `ansz compress{flag} -T {T}` of {model_label}", case,
                 "zstd -3 -T1", "`zstd -3 -T1`", COMPRESS_TARGET)
        time_row(t, rounds, f"command: `ansz compress{flag} -T {T}` of {model_label}", case,
                 "zstd -3 -T2", "`zstd -3 -T2`")
    time_row(t, rounds, f"floor: `dd` writing a new file of {model_label}", "dd", "zstd -d",
             "`zstd -d`")
    time_row(t, rounds, "floor: start-up (`ansz decompress -c` of the tiny file)",
             "tiny decompress", "zstd -d", f"`zstd -d` of {model_label}")
    time_row(t, rounds, f"floor: `ansz decompress -T {T} FILE -o OUT` of a container of stored "
                        f"bytes ({h.fmt_mb(size)}: no entropy decoding)", "decompress stored",
             "zstd -d", "`zstd -d`")
    time_row(t, rounds, f"floor: the whole-file sha256 of {model_label} a container records "
                        "(`hashlib`, one thread, with start-up)", "sha256", "zstd -3 -T1",
             "`zstd -3 -T1`")
    # against ZipNN decoding the model when it is one of the in-process files, else
    # against ansz's default level
    name = fast_cases[0].removeprefix("decompress_stream ")
    zipnn_model = f"ZipNN decompress {name}"
    speed_row(t, rounds, f"floor, in process: `decompress_stream` of the stored container "
                         f"({h.fmt_mb(size)}), threads={T}", "decompress_stream stored",
              *((zipnn_model, f"ZipNN threads={T}, {name}") if zipnn_model in rounds.timings
                else (fast_cases[0], "default level")), size)
    for ds, _, n, _, _, _, _, _ in datasets:
        # against ZipNN, else against ansz's own pipeline (what it adds to the work)
        for verb, work, what, pipeline in (
                ("compress", "coding", "coded from memory on {T} threads beside the sha256 of "
                 "its bytes: no reading, writing or container", "compress_file"),
                ("decompress", "decoding", "decoded from memory on {T} threads, checksums "
                 "checked: no reading or writing", "decompress_stream")):
            peer = f"ZipNN {verb} {ds}"
            speed_row(t, rounds, f"floor, in process: the {work} work of {ds} alone (every "
                                 f"chunk {what.format(T=T)})", f"{work} work {ds}",
                      *((peer, f"ZipNN threads={T}") if peer in rounds.timings
                        else (f"{pipeline} {ds}", f"`{pipeline}`")), n)
    coding = f"coding work {name}"  # FILE's, when it is one of the in-process files
    if not args.scale_gb and coding in rounds.timings:
        # start-up and the coding work, added round by round: below what any compression of
        # FILE through the command can take, whatever its pipeline
        ran = [r for r in rounds.round_times
               if "tiny compress" in r and coding in r and "zstd -3 -T1" in r]
        both = [r["tiny compress"] + r[coding] for r in ran]
        ratios = [b / r["zstd -3 -T1"] for b, r in zip(both, ran)]
        if ran:
            t.add(f"floor: start-up (`ansz compress -c` of the tiny file) + the coding work of "
                  f"{model_label}", fmt_seconds(both),
                  f"`zstd -3 -T1`: {fmt_s(rounds['zstd -3 -T1'].median)}",
                  f"{fmt_times(ratios)} the time", "—", "—")
    speed_row(t, rounds, f"`--fast` decode: `decompress_stream` of {model_label}, threads={T}",
              fast_cases[1], fast_cases[0], "default level",
              size, FAST_TARGET)
    speed_row(t, rounds, f"`--fast` decode: `ansz decompress -T {T}` of {model_label}",
              "decompress --fast", "decompress -T2", "default level", size)
    t.notes = [
        "ansz: median (min–max) of the timed runs; peer: its median; ansz vs peer: the median "
        "(min–max) of the per-round ratios, ansz's time over the peer's (\"the time\") or the "
        "peer's over ansz's (\"the speed\"); met: the median against the target.",
        "In process: whole files in memory for ZipNN; `compress_file` from the page cache to "
        "tmpfs, `decompress_stream` from tmpfs into a sink that discards the bytes. "
        "MB/s = 10^6 bytes of original per second.",
        "Command rows run on tmpfs (input and output), every writer creating a new file; "
        "ansz's bytecode is compiled first, as `pip install .` does.",
        "Floors: the stored container is decoded without any entropy decoding (start-up, "
        "reading, copying, checksums, writing), so no coder can take ansz's decompress below "
        "it; the sha256 is the whole-file hash every container records, computed on one "
        "thread beside the coding, so compression cannot end before start-up + that hash.",
        "Work floors: the default level's kernels as they are, with none of the pipeline "
        "around them (bench/speed.py, WorkFloors): every chunk coded from memory beside the "
        "sha256, or decoded from memory with its checksum; the in-process targets cannot be "
        "met above these figures, nor the command's compression below start-up + the coding "
        "work.",
    ]
    if zipnn_note:
        t.notes.append(f"ZipNN: {zipnn_note}.")
    else:
        t.notes += [f"ZipNN: no byte grouping for {d[0]}'s dtype." for d in datasets
                    if d[6] is None]

    r = Table("Compression ratio (compressed / original) of the same files",
              ["file", "ansz (default)", "ansz --fast", "ZipNN", "zstd -3"])
    for name, _, n, _, containers, _, blob, z3 in datasets:
        r.add(name, f"{containers[2].stat().st_size / n:.4f}",
              f"{containers[1].stat().st_size / n:.4f}",
              f"{len(blob) / n:.4f}" if blob is not None else "—", f"{z3 / n:.4f}")
    r.add(f"{model_label} (command rows)", f"{level_files[2].stat().st_size / size:.4f}",
          f"{level_files[1].stat().st_size / size:.4f}", "—", f"{czst_size / size:.4f}")

    p = Table("Processes: whole-command figures (medians; peak RSS the largest)",
              ["command", "wall", "user", "sys", "CPU use", "peak RSS MiB"])
    for name, timing in rounds.timings.items():
        if not timing.stats:
            continue
        wall, user, sys_ = (timing.stat_median(k) for k in ("wall", "user", "sys"))
        p.add(name, fmt_s(wall), fmt_s(user), fmt_s(sys_), f"{(user + sys_) / wall:.2f}",
              f"{timing.max_rss / 2**20:.0f}")
    p.notes = ["CPU use = (user + sys) / wall: 2.00 is both cores busy throughout. The launcher "
               "(a bare interpreter, ~10 MiB) is the floor of peak RSS."]
    return [t, r, p]
