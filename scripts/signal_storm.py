#!/usr/bin/env python3
"""Signal storm: interrupt many ``ansz`` runs at random moments and check each one's remains.

Makes its own input in a temporary directory (a safetensors file of bf16 weights, ~32 MB by
default, and its container), then runs ``--runs`` trials of ``ansz compress`` or ``ansz
decompress``, on files or as a stream (stdin and stdout pipes), with a cold kernel cache (a
fresh, empty NUMBA_CACHE_DIR: numba compiles every kernel) on some runs and a warm one on the
others. Each run gets one signal, SIGINT, SIGTERM, SIGHUP or SIGKILL, at a random moment from
``--min-delay`` (0) to ``--max-delay`` (1.5) seconds after it starts. Then it checks:

- no partial output: the output file is absent or complete and correct (compared byte for
  byte with the original, or with the reference container, which is deterministic;
  otherwise decompressed and compared), and a run that exits 0 left a correct output (file
  or standard output);
- no temporary file (``.*.tmp``) left next to the output, except after SIGKILL;
- no "Traceback" or "Exception ignored" on stderr, and no exit status 0 after an error line;
- SIGINT/SIGTERM/SIGHUP that land before the end stop the run with 130/143/129, or kill it
  by the signal's default action (status -N here, which a shell shows as 128 + N: that is
  what happens before the handlers are installed and after the run is over). A run that
  exits 0 within ``--grace`` seconds of the signal counts as finished before it landed.

A SIGINT in the first tens of milliseconds lands in the interpreter's start-up (site.py,
.pth files), before any ansz code runs, and Python prints a KeyboardInterrupt traceback.
Such runs are counted apart ("start-up") and are violations too, unless
``--ignore-startup``: ansz's own code cannot prevent them.

Prints a table (runs per signal per outcome), how fast interrupted runs stopped, and every
violation; exits 1 if there is any, 0 otherwise. Needs only the standard library, numpy,
safetensors and the ``ansz`` command (found on PATH, or ``--ansz``).

    python scripts/signal_storm.py --runs 300 --seed 1
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

SIGNALS = {"INT": signal.SIGINT, "TERM": signal.SIGTERM, "HUP": signal.SIGHUP,
           "KILL": signal.SIGKILL}
OUTCOMES = ("ended first", "exit 128+N", "died of signal", "finished", "start-up",
            "VIOLATION")

#: A frame in the ansz package or one of its subpackages (ansz/cli/...), not the editable
#: install's finder in site-packages.
ANSZ_FRAME = re.compile(r'File "[^"]*[/\\]ansz[/\\](?:\w+[/\\])?[^"/\\]+\.py"')


# -------------------------------------------------------------------------------------------
# Inputs


def make_model(path: Path, size_mb: int, seed: int) -> None:
    """bf16 weights ~N(0, 0.02) in tensors of 4 MiB, a float32 bias and int64 positions.

    numpy has no bfloat16: the weights are saved as uint16 bit patterns (the top half of
    float32) and the header's dtype is then rewritten from U16 to BF16."""
    rng = np.random.default_rng(seed)
    tensors: dict[str, np.ndarray] = {}
    n = max(1, size_mb // 4)
    for i in range(n):
        w = (rng.standard_normal((1024, 2048), dtype=np.float32) * 0.02)
        tensors[f"layers.{i}.weight"] = (w.view(np.uint32) >> 16).astype(np.uint16)
    tensors["bias"] = (rng.standard_normal(4096) * 0.02).astype(np.float32)
    tensors["position_ids"] = np.arange(2048, dtype=np.int64)
    save_file(tensors, str(path), metadata={"format": "pt"})
    relabel_dtype(path, "U16", "BF16")


def relabel_dtype(path: Path, old: str, new: str) -> None:
    """Rewrite a safetensors header's dtype ``old`` as ``new`` (same element size)."""
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    for name, spec in header.items():
        if name != "__metadata__" and spec["dtype"] == old:
            spec["dtype"] = new
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + data[8 + n:])


# -------------------------------------------------------------------------------------------
# One run


@dataclass
class Run:
    index: int
    op: str  # compress | decompress
    stream: bool
    cold: bool
    sig: str
    delay: float
    returncode: int | None = None
    sent: bool = False
    stopped_after: float | None = None  # seconds from the signal to the exit
    outcome: str = ""
    problems: list[str] = field(default_factory=list)
    stderr: str = ""

    def label(self) -> str:
        return (f"#{self.index} {self.op} {'stream' if self.stream else 'file'} "
                f"{'cold' if self.cold else 'warm'} SIG{self.sig} at {self.delay:.3f}s")


class Storm:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        self.ansz = args.ansz
        self.model = work / "model.safetensors"
        self.reference = work / "model.safetensors.ansz"
        self.warm_cache = Path(args.warm_cache) if args.warm_cache else work / "cache-warm"
        self.original = b""
        self.reference_bytes = b""

    def env(self, cache: Path) -> dict[str, str]:
        env = dict(os.environ)
        env["NUMBA_CACHE_DIR"] = str(cache)
        env.pop("ANSZ_DEBUG", None)
        return env

    def prepare(self) -> None:
        print(f"making a {self.args.size_mb} MB bf16 safetensors file in {self.work} ...",
              flush=True)
        make_model(self.model, self.args.size_mb, self.args.seed)
        self.original = self.model.read_bytes()
        print("compressing it once, uninterrupted (and warming the kernel cache) ...",
              flush=True)
        env = self.env(self.warm_cache)
        subprocess.run([self.ansz, "compress", "-q", "-o", self.reference, self.model],
                       env=env, check=True, timeout=900)
        info = subprocess.run([self.ansz, "info", "--json", self.reference], env=env,
                              check=True, capture_output=True, timeout=120)
        fmt = json.loads(info.stdout)["format"]
        if fmt != "safetensors":
            raise SystemExit(f"the input was not recognised as safetensors ({fmt})")
        back = subprocess.run([self.ansz, "decompress", "-c", self.reference], env=env,
                              check=True, capture_output=True, timeout=300).stdout
        if back != self.original:
            raise SystemExit("the reference container does not restore the input")
        self.reference_bytes = self.reference.read_bytes()

    # The correct result of each operation
    def expected(self, op: str) -> bytes:
        return self.reference_bytes if op == "compress" else self.original

    def correct(self, op: str, data: bytes) -> bool:
        if data == self.expected(op):
            return True
        if op == "compress":  # another valid container? decode it and compare
            p = subprocess.run([self.ansz, "decompress"], input=data, capture_output=True,
                               env=self.env(self.warm_cache), timeout=300)
            return p.returncode == 0 and p.stdout == self.original
        return False

    def one(self, run: Run) -> None:
        d = self.work / f"run-{run.index}"
        d.mkdir()
        cache = self.warm_cache
        if run.cold:
            cache = self.work / f"cache-cold-{run.index}"
            cache.mkdir()
        try:
            self._run(run, d, cache)
        finally:
            shutil.rmtree(d, ignore_errors=True)
            if run.cold:
                shutil.rmtree(cache, ignore_errors=True)

    def _run(self, run: Run, d: Path, cache: Path) -> None:
        source = self.model if run.op == "compress" else self.reference
        if run.stream:
            cmd = [self.ansz, run.op]
            output = None
        else:
            name = "model.safetensors" + (".ansz" if run.op == "decompress" else "")
            os.link(source, d / name)  # the run's own name for the shared input
            cmd = [self.ansz, run.op, str(d / name)]
            output = d / ("model.safetensors.ansz" if run.op == "compress"
                          else "model.safetensors")

        proc = subprocess.Popen(cmd, cwd=d, env=self.env(cache),
                                stdin=subprocess.PIPE if run.stream else subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        started = time.monotonic()
        out_chunks: list[bytes] = []
        err_chunks: list[bytes] = []
        threads = [threading.Thread(target=_drain, args=(proc.stdout, out_chunks)),
                   threading.Thread(target=_drain, args=(proc.stderr, err_chunks))]
        if run.stream:
            threads.append(threading.Thread(target=_feed, args=(proc.stdin, source)))
        for t in threads:
            t.start()

        signalled_at = None
        try:
            proc.wait(timeout=max(0.0, started + run.delay - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.send_signal(SIGNALS[run.sig])  # does nothing if it has just been reaped
            signalled_at = time.monotonic()
            run.sent = True
        try:
            proc.wait(timeout=self.args.timeout)
        except subprocess.TimeoutExpired:
            run.problems.append(f"still running {self.args.timeout:.0f} s after the signal")
            proc.kill()
            proc.wait()
        ended = time.monotonic()
        for t in threads:
            t.join()
        run.returncode = proc.returncode
        run.stderr = b"".join(err_chunks).decode(errors="replace")
        if signalled_at is not None:
            run.stopped_after = ended - signalled_at
        stdout = b"".join(out_chunks)
        self.judge(run, d, output, stdout)

    def judge(self, run: Run, d: Path, output: Path | None, stdout: bytes) -> None:
        rc, signum = run.returncode, SIGNALS[run.sig]
        err = run.stderr
        for bad in ("Traceback", "Exception ignored"):
            if bad in err:
                run.problems.append(f'"{bad}" on stderr')
        error_lines = [ln for ln in err.splitlines() if ln.startswith("ansz: ")]
        if rc == 0 and error_lines:
            run.problems.append(f"exit 0 after an error: {error_lines[0]!r}")

        if not run.sent:
            run.outcome = "ended first"
            if rc != 0:
                run.problems.append(f"exit {rc} with no signal")
        elif rc == 128 + signum and signum != signal.SIGKILL:
            run.outcome = "exit 128+N"
        elif rc == -signum:
            run.outcome = "died of signal"
        elif rc == 0 and run.stopped_after is not None and run.stopped_after <= self.args.grace:
            run.outcome = "finished"
        else:
            run.problems.append(f"exit {rc} after SIG{run.sig}" +
                                (" (the signal was ignored)" if rc == 0 else ""))

        if rc == 0 and run.stream and not self.correct(run.op, stdout):
            run.problems.append("exit 0 but standard output is not the correct result")
        if output is not None:
            if output.exists():
                if not self.correct(run.op, output.read_bytes()):
                    run.problems.append(f"partial or wrong output {output.name}")
            elif rc == 0:
                run.problems.append("exit 0 but no output file")
        temps = sorted(p.name for p in d.iterdir() if p.name.startswith(".")
                       and p.name.endswith(".tmp"))
        if temps and run.sig != "KILL":
            run.problems.append(f"temporary files left: {temps}")
        if run.stream and any(p.name != "model.safetensors" for p in d.iterdir()):
            run.problems.append(f"a stream run left files: {sorted(os.listdir(d))}")
        if run.problems:
            run.outcome = "start-up" if startup_traceback(run) else "VIOLATION"


def startup_traceback(run: Run) -> bool:
    """The only problem is a KeyboardInterrupt traceback with no frame in ansz's code: the
    signal landed while the interpreter was starting, before ansz's code ran, and the run
    left nothing behind."""
    lines = run.stderr.strip().splitlines()
    return (run.sig == "INT" and bool(lines) and lines[-1] == "KeyboardInterrupt"
            and ANSZ_FRAME.search(run.stderr) is None
            and all(p.startswith(('"Traceback"', "exit 1 after")) for p in run.problems))


def _drain(pipe, chunks: list[bytes]) -> None:
    with pipe:
        while True:
            b = pipe.read(1 << 20)
            if not b:
                return
            chunks.append(b)


def _feed(pipe, source: Path) -> None:
    try:
        with open(source, "rb") as fh:
            while True:
                b = fh.read(1 << 20)
                if not b:
                    break
                pipe.write(b)
    except (BrokenPipeError, OSError):
        pass  # the process ended early
    finally:
        try:
            pipe.close()
        except OSError:
            pass


# -------------------------------------------------------------------------------------------
# Report


def report(runs: list[Run], ignore_startup: bool = False) -> int:
    table: dict[str, Counter] = defaultdict(Counter)
    for r in runs:
        table[r.sig][r.outcome] += 1
    width = max(len(o) for o in OUTCOMES) + 2
    print()
    print("signal".ljust(8) + "".join(o.rjust(width) for o in OUTCOMES) + "total".rjust(8))
    for sig in SIGNALS:
        row = table[sig]
        print(f"SIG{sig}".ljust(8) + "".join(str(row[o]).rjust(width) for o in OUTCOMES)
              + str(sum(row.values())).rjust(8))
    total = Counter()
    for row in table.values():
        total.update(row)
    print("all".ljust(8) + "".join(str(total[o]).rjust(width) for o in OUTCOMES)
          + str(sum(total.values())).rjust(8))

    kinds = Counter((r.op, "stream" if r.stream else "file", "cold" if r.cold else "warm")
                    for r in runs)
    print("\nruns: " + ", ".join(f"{n} {op} {mode} {cache}"
                                 for (op, mode, cache), n in sorted(kinds.items())))
    for cache in ("warm", "cold"):
        stopped = sorted((r for r in runs if (r.cold == (cache == "cold")) and r.outcome in
                          ("exit 128+N", "died of signal") and r.stopped_after is not None),
                         key=lambda r: r.stopped_after)
        if stopped:
            ms = [1000 * r.stopped_after for r in stopped]
            print(f"signal to exit, {cache} cache: median {statistics.median(ms):.0f} ms, "
                  f"max {ms[-1]:.0f} ms ({stopped[-1].label()}) over {len(ms)} stopped runs")
    bad = [r for r in runs if r.problems]
    startup = sum(r.outcome == "start-up" for r in bad)
    print(f"\n{len(bad)} violation(s) in {len(runs)} runs"
          + (f", {startup} of them in the interpreter's start-up" if startup else ""))
    for r in bad:
        print(f"- {r.label()} [{r.outcome}]: exit {r.returncode}; " + "; ".join(r.problems))
        for line in r.stderr.strip().splitlines()[-12:]:
            print(f"    | {line}")
    counted = len(bad) - (startup if ignore_startup else 0)
    return 1 if counted else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ansz", default=shutil.which("ansz"),
                    help="the ansz command (default: the one on PATH)")
    ap.add_argument("--size-mb", type=int, default=32, help="input size (default 32)")
    ap.add_argument("--min-delay", type=float, default=0.0,
                    help="signals land this many seconds after the start at the earliest")
    ap.add_argument("--max-delay", type=float, default=1.5,
                    help="and at the latest (default 1.5)")
    ap.add_argument("--cold", type=float, default=0.2,
                    help="fraction of runs with an empty kernel cache (default 0.2)")
    ap.add_argument("--grace", type=float, default=0.05,
                    help="an exit 0 this soon after the signal finished before it landed")
    ap.add_argument("--timeout", type=float, default=300.0,
                    help="seconds a run may take after its signal (default 300)")
    ap.add_argument("--warm-cache", default=os.environ.get("NUMBA_CACHE_DIR"),
                    help="the kernel cache of warm runs (default: $NUMBA_CACHE_DIR, else a "
                         "new one, filled before the first run)")
    ap.add_argument("--ignore-startup", action="store_true",
                    help="do not count start-up tracebacks (see above) in the exit status")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    if not args.ansz:
        ap.error("no ansz on PATH: install it or give --ansz")

    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="ansz-signal-storm-"))
    runs: list[Run] = []
    try:
        storm = Storm(args, work)
        storm.prepare()
        began = time.monotonic()
        for i in range(args.runs):
            run = Run(i, rng.choice(("compress", "decompress")), rng.random() < 0.5,
                      rng.random() < args.cold, rng.choice(tuple(SIGNALS)),
                      rng.uniform(args.min_delay, args.max_delay))
            storm.one(run)
            runs.append(run)
            mark = "!" if run.problems else "."
            print(mark, end="" if (i + 1) % 50 else f" {i + 1}\n", flush=True)
        print(f"\n{len(runs)} runs in {time.monotonic() - began:.0f} s "
              f"(ansz: {args.ansz}, seed {args.seed}, input "
              f"{hashlib.sha256(storm.original).hexdigest()[:12]}, "
              f"{len(storm.original) / 1e6:.1f} MB)")
    except KeyboardInterrupt:
        print("\ninterrupted: reporting the runs done so far", file=sys.stderr)
    finally:
        if args.keep:
            print(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return report(runs, args.ignore_startup)


if __name__ == "__main__":
    sys.exit(main())
