"""The one benchmark harness: timing, whole-process measurement, machine facts, the corpus,
where temporary files go, and markdown tables stamped with the commit and command that
produced them. Every benchmark in this package measures through it.

Timing (:func:`interleave`): every :class:`Case` runs once per round, the cases of a round in
an order rotated by one each round (A B, B A, A B, ... for two), after untimed warm-up
rounds; each case keeps every timed run (min / median / max), and :meth:`Rounds.ratio`
compares two cases run by run within each round, so a burst of load from elsewhere hits
both sides of a ratio alike. A case whose function returns a :class:`ProcessStats`
(:func:`run_command`) is timed by the process's own wall clock.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import re
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

REPO = Path(__file__).resolve().parent.parent
DEFAULT_MODELS = REPO / "models"
#: Environment variables: where temporary files go, and where the corpus is.
TMPDIR_ENV = "ANSZ_BENCH_TMPDIR"
MODELS_ENV = "ANSZ_BENCH_MODELS"
LAUNCHER = Path(__file__).resolve().parent / "_launch.py"
ZIPNN_INSTALL = "pip install torch==2.13.0 && pip install zipnn==0.5.4"


# ---------------------------------------------------------------------------------------------
# Corpus


@dataclass(frozen=True)
class CorpusFile:
    """One file of the benchmark corpus: real weights, made by ``fetch``."""

    name: str      #: short name used on the command line and in tables, e.g. "mpnet-bf16"
    filename: str  #: its name in the models directory
    format: str    #: "safetensors" or "gguf"
    dtype: str     #: the dtype holding most of its bytes (safetensors name, or GGUF quant)
    fetch: str     #: the command that makes it

    def path(self, models: Path) -> Path:
        return Path(models) / self.filename


_FETCH_MODELS = "python scripts/fetch_models.py"
_FETCH_GGUF = "python scripts/fetch_gguf.py"
_SAFETENSORS_DTYPES = {"f32": "F32", "bf16": "BF16", "fp16": "F16", "fp8e4m3": "F8_E4M3"}

#: The corpus: every file scripts/fetch_models.py and scripts/fetch_gguf.py make.
CORPUS: tuple[CorpusFile, ...] = (
    *(CorpusFile(f"{model}-{kind}", f"{model}-{kind}.safetensors", "safetensors", dtype,
                 _FETCH_MODELS)
      for model in ("minilm", "mpnet") for kind, dtype in _SAFETENSORS_DTYPES.items()),
    CorpusFile("gemma-3-270m-q4_k_m", "gemma-3-270m-q4_k_m.gguf", "gguf", "Q4_K_M", _FETCH_GGUF),
    CorpusFile("smollm2-135m-q4_1", "SmolLM2-135M-Instruct.Q4_1.gguf", "gguf", "Q4_1",
               _FETCH_GGUF),
)


class BenchError(Exception):
    """A benchmark cannot run as asked; ends it with a one-line message."""


def models_dir(option: str | os.PathLike | None = None) -> Path:
    """The corpus directory: ``option``, else $ANSZ_BENCH_MODELS, else ./models of the repo."""
    return Path(option or os.environ.get(MODELS_ENV) or DEFAULT_MODELS)


def corpus_file(name: str) -> CorpusFile:
    for f in CORPUS:
        if name in (f.name, f.filename):
            return f
    raise BenchError(f"no corpus file {name!r}; known: {', '.join(f.name for f in CORPUS)}")


def corpus_path(name: str, models: Path) -> Path:
    """The path of corpus file ``name`` in ``models``; BenchError naming the fetch command
    when it is missing."""
    f = corpus_file(name)
    p = f.path(models)
    if not p.is_file():
        raise BenchError(f"{p} is missing: run {f.fetch}")
    return p


def resolve_input(spec: str, models: Path) -> tuple[str, Path]:
    """(name, path) of a corpus name or a file path given on the command line; the name is
    the file's without ``.safetensors``."""
    p = Path(spec)
    if p.is_file():
        return p.name.removesuffix(".safetensors"), p
    return corpus_file(spec).name, corpus_path(spec, models)


def present_corpus(models: Path) -> tuple[list[CorpusFile], list[CorpusFile]]:
    """(corpus files present in ``models``, those missing)."""
    present = [f for f in CORPUS if f.path(models).is_file()]
    return present, [f for f in CORPUS if f not in present]


# ---------------------------------------------------------------------------------------------
# Safetensors files (read here so benchmarks need no private ansz module)


@dataclass(frozen=True)
class TensorSpan:
    name: str
    dtype: str
    shape: tuple[int, ...]
    start: int  #: absolute offset of the tensor's bytes in the file
    end: int


def safetensors_tensors(path: str | os.PathLike) -> list[TensorSpan]:
    """The tensors of a safetensors file, in file order, with absolute byte offsets."""
    with open(path, "rb") as f:
        (hlen,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(hlen))
    base = 8 + hlen
    spans = [TensorSpan(name, meta["dtype"], tuple(meta["shape"]),
                        base + meta["data_offsets"][0], base + meta["data_offsets"][1])
             for name, meta in header.items() if name != "__metadata__"]
    return sorted(spans, key=lambda t: t.start)


def dominant_dtype(path: str | os.PathLike) -> str:
    """The dtype holding the most tensor bytes of a safetensors file."""
    share: dict[str, int] = {}
    for t in safetensors_tensors(path):
        share[t.dtype] = share.get(t.dtype, 0) + t.end - t.start
    return max(share, key=share.get) if share else "U8"


#: ZipNN's byte grouping (``bytearray_dtype``) for a safetensors dtype.
ZIPNN_DTYPES = {"BF16": "bfloat16", "F16": "float16", "F32": "float32",
                "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2"}


def load_zipnn() -> tuple[Any, str]:
    """(the ZipNN class, "") or (None, why it cannot be had). ZipNN is a benchmark peer, not
    an ansz dependency; importing it loads torch."""
    try:
        from zipnn import ZipNN
    except Exception as e:  # ImportError, or torch failing to load
        return None, f"unavailable ({type(e).__name__}: {e}; install: {ZIPNN_INSTALL})"
    return ZipNN, ""


#: Bytes per element of the float dtypes whose real tensors the benchmarks copy or cut.
FLOAT_WIDTHS = {"BF16": 2, "F16": 2, "F32": 4}


def replicate_tensors(src: str | os.PathLike, dst: str | os.PathLike, target_bytes: int,
                      dtype: str = "BF16") -> int:
    """Write ``dst``: the ``dtype`` tensors of the safetensors file ``src`` repeated under new
    names (``copyK.NAME``) until the file holds about ``target_bytes``; returns its size.

    Real weights, no synthetic distribution: copy 0 is the tensors as they are; every later
    copy flips the sign of a random half of the elements (a seed per copy), so that no copy
    repeats another byte for byte (a compressor that stores repeated chunks once, as ansz
    does, would otherwise code one copy and only hash the rest), while the exponents and
    mantissas stay the real ones and the signs of trained weights were random anyway.
    Below the tensors' total, the tensors no larger than the target are taken in file
    order until it is reached (a small file)."""
    spans = [t for t in safetensors_tensors(src) if t.dtype == dtype]
    with open(src, "rb") as f:
        tensors = []
        for t in spans:
            f.seek(t.start)
            tensors.append((t.name, list(t.shape), f.read(t.end - t.start)))
    one = sum(len(t[2]) for t in tensors)
    if one > target_bytes:
        keep, total = [], 0
        for t in tensors:
            if total < target_bytes and len(t[2]) <= target_bytes:
                keep.append(t)
                total += len(t[2])
        tensors, one = keep, total
    if not tensors:
        raise BenchError(f"{src} has no {dtype} tensor of at most {target_bytes} bytes")
    copies = max(1, round(target_bytes / one))
    entries, offset = {}, 0
    for k in range(copies):
        for name, shape, data in tensors:
            entries[f"copy{k}.{name}"] = {"dtype": dtype, "shape": shape,
                                          "data_offsets": [offset, offset + len(data)]}
            offset += len(data)
    text = json.dumps(entries, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    import numpy as np

    width = FLOAT_WIDTHS[dtype]
    element = np.dtype(f"<u{width}")
    sign = element.type(1 << (8 * width - 1))
    with open(dst, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        for k in range(copies):
            rng = np.random.default_rng(k)
            for _, _, data in tensors:
                if k == 0:
                    f.write(data)
                    continue
                x = np.frombuffer(data, element)
                flips = rng.integers(0, 2, x.size, dtype=np.uint8).astype(element) * sign
                f.write((x ^ flips).tobytes())
    return os.path.getsize(dst)


# ---------------------------------------------------------------------------------------------
# Timing


@dataclass
class ProcessStats:
    """One finished command, as the launcher measured it."""

    wall: float      #: seconds from spawn to exit
    user: float      #: CPU seconds in user mode
    sys: float       #: CPU seconds in the kernel
    max_rss: int     #: peak resident set size, bytes
    returncode: int

    def __add__(self, other: "ProcessStats") -> "ProcessStats":
        """Two commands run one after the other: times add, the peak is the larger."""
        return ProcessStats(self.wall + other.wall, self.user + other.user,
                            self.sys + other.sys, max(self.max_rss, other.max_rss),
                            self.returncode or other.returncode)


@dataclass
class Case:
    """Something to time: ``run()``, or ``run(setup())`` when ``setup`` is given (setup is
    not timed: deleting last run's output, copying an input a tool overwrites).

    ``runs`` caps this case's timed runs below the session's (a 30-second cold start runs
    once: in the first round only); ``warmup`` overrides the session's warm-up runs."""

    name: str
    run: Callable[..., Any]
    setup: Callable[[], Any] | None = None
    runs: int | None = None
    warmup: int | None = None


def _summary(values: Sequence[float]) -> tuple[float, float, float]:
    return min(values), statistics.median(values), max(values)


@dataclass
class Timing:
    """Every timed run of one case, in seconds (and the processes, for commands)."""

    name: str
    times: list[float] = field(default_factory=list)
    stats: list[ProcessStats] = field(default_factory=list)

    @property
    def min(self) -> float:
        return min(self.times)

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def max(self) -> float:
        return max(self.times)

    def mbps(self, nbytes: int) -> float:
        """Median speed in MB/s (10^6 bytes) for ``nbytes`` per run."""
        return nbytes / 1e6 / self.median

    def stat_median(self, what: str) -> float:
        return statistics.median(getattr(s, what) for s in self.stats)

    @property
    def max_rss(self) -> int:
        return max(s.max_rss for s in self.stats)


@dataclass
class Ratio:
    """Per-round ratios ``a / b`` of two cases' times (each from the same round)."""

    a: str
    b: str
    values: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def min(self) -> float:
        return min(self.values)

    @property
    def max(self) -> float:
        return max(self.values)

    def inverse(self) -> "Ratio":
        return Ratio(self.b, self.a, [1 / v for v in self.values])


@dataclass
class Rounds:
    """What :func:`interleave` measured: each case's timing, and the order each round ran."""

    timings: dict[str, Timing]
    order: list[list[str]]          #: the timed rounds, each the case names in run order
    round_times: list[dict[str, float]]

    def __getitem__(self, name: str) -> Timing:
        return self.timings[name]

    def ratio(self, a: str, b: str) -> Ratio:
        """Time of ``a`` over time of ``b``, round by round, over the rounds that ran both."""
        values = [r[a] / r[b] for r in self.round_times if a in r and b in r and r[b] > 0]
        if not values:
            raise BenchError(f"no round ran both {a!r} and {b!r}")
        return Ratio(a, b, values)

    def speedup(self, a: str, b: str) -> Ratio:
        """How many times faster ``a`` ran than ``b`` (``b``'s time over ``a``'s), per round."""
        return self.ratio(b, a)


def _timed(case: Case, clock: Callable[[], float]) -> tuple[float, ProcessStats | None]:
    arg = case.setup() if case.setup is not None else None
    t0 = clock()
    out = case.run(arg) if case.setup is not None else case.run()
    elapsed = clock() - t0
    if isinstance(out, ProcessStats):
        return out.wall, out
    return elapsed, None


def interleave(cases: Sequence[Case], *, runs: int = 5, warmup: int = 1,
               clock: Callable[[], float] = time.perf_counter,
               progress: Callable[[str], None] | None = None) -> Rounds:
    """Time ``cases`` in rounds: ``warmup`` untimed rounds, then ``runs`` timed rounds, every
    case once per round (less where its ``runs``/``warmup`` say), round ``r`` starting at
    case ``r mod len(cases)`` so each case takes each position in turn."""
    names = [c.name for c in cases]
    if len(set(names)) != len(names):
        raise ValueError(f"case names repeat: {names}")
    if runs < 1 or not cases:
        raise ValueError("interleave needs a case and at least one run")
    timings = {c.name: Timing(c.name) for c in cases}
    order: list[list[str]] = []
    round_times: list[dict[str, float]] = []
    k = len(cases)
    max_warm = max([c.warmup if c.warmup is not None else warmup for c in cases] + [0])
    cases = list(cases)
    for w in range(max_warm):
        for case in cases[w % k:] + cases[:w % k]:
            if w < (case.warmup if case.warmup is not None else warmup):
                if progress:
                    progress(f"warm-up {w + 1}: {case.name}")
                _timed(case, clock)
    for r in range(runs):
        ran, times = [], {}
        for case in cases[r % k:] + cases[:r % k]:
            if r >= (case.runs if case.runs is not None else runs):
                continue
            if progress:
                progress(f"round {r + 1}/{runs}: {case.name}")
            t, stats = _timed(case, clock)
            timings[case.name].times.append(t)
            if stats is not None:
                timings[case.name].stats.append(stats)
            ran.append(case.name)
            times[case.name] = t
        order.append(ran)
        round_times.append(times)
    return Rounds(timings, order, round_times)


# ---------------------------------------------------------------------------------------------
# Commands


class CommandError(BenchError):
    """A measured command failed or could not start."""


def run_command(cmd: Sequence[str | os.PathLike], *, env: dict[str, str] | None = None,
                stdin: str | os.PathLike | None = None,
                stdout: str | os.PathLike | None = None, check: bool = True) -> ProcessStats:
    """Run ``cmd`` as a whole process and measure it (wall, user, sys, peak RSS).

    ``stdin`` / ``stdout`` are paths (None: /dev/null; stdout is truncated first); stderr
    is kept for the message of a failure. The command is started by a small launcher
    (``_launch.py``) so that its peak RSS is its own, not this process's (see there).
    ``check``: a non-zero exit status raises :class:`CommandError` with stderr's last line.
    """
    cmd = [os.fspath(c) for c in cmd]
    fd, result = tempfile.mkstemp(prefix="ansz-bench-", suffix=".json")
    os.close(fd)
    try:
        with open(stdin or os.devnull, "rb") as fin, \
                open(stdout or os.devnull, "wb") as fout, \
                tempfile.TemporaryFile() as ferr:
            subprocess.run([sys.executable, "-I", "-S", str(LAUNCHER), result, *cmd],
                           stdin=fin, stdout=fout, stderr=ferr, env=env, check=True)
            with open(result) as f:
                got = json.load(f)
            if "error" in got:
                raise CommandError(got["error"])
            stats = ProcessStats(**got)
            if check and stats.returncode != 0:
                ferr.seek(0)
                lines = [ln.strip() for ln in ferr.read().decode(errors="replace").splitlines()
                         if ln.strip()]
                raise CommandError(f"`{' '.join(cmd)}` exited with status {stats.returncode}"
                                   f": {lines[-1][:300] if lines else 'no message'}")
            return stats
    finally:
        os.unlink(result)


# ---------------------------------------------------------------------------------------------
# Machine and versions


def _run_text(cmd: list[str], cwd: Path | None = None) -> str | None:
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return p.stdout.strip() if p.returncode == 0 else None


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


def package_version(name: str) -> str | None:
    """An installed distribution's version, without importing it (ZipNN would load torch)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def zstd_cli_version(zstd: str = "zstd") -> str | None:
    out = _run_text([zstd, "--version"])
    m = re.search(r"v(\d+\.\d+\.\d+)", out or "")
    return m.group(1) if m else None


def git_state(repo: Path = REPO) -> tuple[str, bool | None]:
    """(short commit hash or "unknown", whether tracked or untracked-unignored files differ
    from it: None when unknown)."""
    commit = _run_text(["git", "rev-parse", "--short=12", "HEAD"], repo)
    if commit is None:
        return "unknown", None
    status = _run_text(["git", "status", "--porcelain"], repo)
    return commit, (None if status is None else bool(status))


def load_average() -> tuple[float, float, float] | None:
    try:
        return os.getloadavg()
    except OSError:
        return None


@dataclass
class MachineInfo:
    """Where and on what a benchmark ran."""

    cpu: str
    cores: str
    system: str
    python: str
    versions: dict[str, str | None]  #: numpy, numba, zstandard, libzstd, zstd CLI, ZipNN, ansz
    commit: str
    dirty: bool | None
    date: str                       #: UTC, minutes
    load: tuple[float, float, float] | None  #: at the start

    @property
    def commit_label(self) -> str:
        return self.commit + {True: " (dirty tree)", False: "", None: " (tree state unknown)"}[
            self.dirty]

    def describe(self) -> str:
        v = ", ".join(f"{k} {val or 'not installed'}" for k, val in self.versions.items())
        return (f"{self.cpu}, {self.cores}; {self.system}; Python {self.python}; {v}")


def machine_info(repo: Path = REPO, git: tuple[str, bool | None] | None = None) -> MachineInfo:
    """The machine now; ``git``: the (commit, dirty) to record instead of asking git (a
    command that writes BENCHMARKS.md section by section records the tree as it started)."""
    versions: dict[str, str | None] = {}
    for dist in ("numpy", "numba", "zstandard"):
        versions[dist] = package_version(dist)
    try:
        import zstandard

        versions["libzstd"] = ".".join(map(str, zstandard.ZSTD_VERSION))
    except ImportError:
        versions["libzstd"] = None
    versions["zstd CLI"] = zstd_cli_version()
    versions["ZipNN"] = package_version("zipnn")
    versions["ansz"] = package_version("ansz")
    commit, dirty = git or git_state(repo)
    return MachineInfo(cpu_model(), core_count(), f"{platform.system()} {platform.release()}",
                       platform.python_version(), versions, commit, dirty,
                       _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                       load_average())


# ---------------------------------------------------------------------------------------------
# Temporary files


@dataclass(frozen=True)
class TmpChoice:
    path: Path
    fstype: str
    why: str  #: how it was chosen


def _mounts(mounts_path: str) -> list[tuple[str, str]]:
    """(mount point, fs type) of every mount, from /proc/mounts (octal escapes undone)."""
    out = []
    try:
        with open(mounts_path) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3:
                    point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), parts[1])
                    out.append((point, parts[2]))
    except OSError:
        pass
    return out


def fs_type(path: str | os.PathLike, mounts_path: str = "/proc/mounts") -> str:
    """The type of the file system ``path`` lies on (longest mount point prefix), or "unknown"."""
    real = os.path.realpath(path)
    best, kind = "", "unknown"
    for point, fstype in _mounts(mounts_path):
        inside = real == point or real.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, kind = point, fstype
    return kind


def _usable(path: str, need_bytes: int) -> bool:
    try:
        if not os.path.isdir(path):
            return False
        st = os.statvfs(path)
        if st.f_bavail * st.f_frsize < need_bytes:
            return False
        tempfile.TemporaryDirectory(dir=path).cleanup()  # writable for real
        return True
    except OSError:
        return False


_NOT_FOR_FILES = ("/proc", "/sys", "/dev/pts", "/run/credentials")


def choose_tmpdir(option: str | os.PathLike | None = None, *, need_bytes: int = 0,
                  environ: dict[str, str] | None = None,
                  mounts_path: str = "/proc/mounts") -> TmpChoice:
    """Where a benchmark's temporary files go: ``option`` (the --tmp-dir option), else
    $ANSZ_BENCH_TMPDIR, else the first tmpfs with ``need_bytes`` free among $TMPDIR,
    $XDG_RUNTIME_DIR and the mounted tmpfs file systems (most free space first), so that no
    disk's speed enters; else the system's temporary directory (a disk: said in the stamp)."""
    env = os.environ if environ is None else environ
    for given, why in ((option, "--tmp-dir"), (env.get(TMPDIR_ENV), f"${TMPDIR_ENV}")):
        if given:
            if not os.path.isdir(given):
                raise BenchError(f"{why}: {given} is not a directory")
            return TmpChoice(Path(given), fs_type(given, mounts_path), why)
    candidates: list[tuple[str, str]] = []
    for var in ("TMPDIR", "XDG_RUNTIME_DIR"):
        if env.get(var):
            candidates.append((env[var], f"${var} (tmpfs)"))
    mounted = [p for p, t in _mounts(mounts_path) if t == "tmpfs"
               and not any(p == n or p.startswith(n + "/") for n in _NOT_FOR_FILES)]

    def free(p: str) -> int:
        try:
            st = os.statvfs(p)
            return st.f_bavail * st.f_frsize
        except OSError:
            return -1

    candidates += [(p, "a mounted tmpfs") for p in sorted(mounted, key=free, reverse=True)]
    for path, why in candidates:
        if fs_type(path, mounts_path) == "tmpfs" and _usable(path, need_bytes):
            return TmpChoice(Path(path), "tmpfs", why)
    system = tempfile.gettempdir()
    return TmpChoice(Path(system), fs_type(system, mounts_path),
                     f"no tmpfs with {need_bytes / 1e9:.1f} GB free: the system's temp dir")


# ---------------------------------------------------------------------------------------------
# Sinks for in-process decoding


class NullSink:
    """A binary file object that discards what it is given (and counts it)."""

    name = "<null>"

    def __init__(self) -> None:
        self.bytes = 0

    def write(self, data) -> int:
        n = memoryview(data).nbytes
        self.bytes += n
        return n

    def flush(self) -> None:
        pass


class HashSink(NullSink):
    """A sink that keeps the sha256 of what it is given: checks a round trip without
    holding the output."""

    name = "<sha256>"

    def __init__(self) -> None:
        super().__init__()
        self.sha = hashlib.sha256()

    def write(self, data) -> int:
        self.sha.update(data)
        return super().write(data)


def write_random_bytes(path: str | os.PathLike, nbytes: int, seed: int = 0) -> None:
    """Write ``nbytes`` of seeded random bytes to ``path`` (an incompressible original), in
    pieces of 16 MiB."""
    import numpy as np

    r = np.random.default_rng(seed)
    with open(path, "wb") as f:
        for start in range(0, nbytes, 16 << 20):
            f.write(r.integers(0, 256, min(16 << 20, nbytes - start), dtype=np.uint8).tobytes())


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------
# Output


@dataclass
class Table:
    """A markdown table with a title and notes below it; :func:`render_report` stamps it."""

    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    align: str = ""  #: one of "l"/"r" per column (default: first left, the rest right)

    def add(self, *cells: object) -> None:
        if len(cells) != len(self.columns):
            raise ValueError(f"{self.title}: row of {len(cells)} cells for "
                             f"{len(self.columns)} columns")
        self.rows.append([str(c) for c in cells])

    def markdown(self) -> str:
        align = self.align or "l" + "r" * (len(self.columns) - 1)
        rule = ["---:" if a == "r" else "---" for a in align]
        lines = ["| " + " | ".join(self.columns) + " |", "|" + "|".join(rule) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in self.rows]
        return "\n".join(lines)


def stamp(info: MachineInfo, command: str, load_after: tuple | None = None) -> str:
    """The line under every table: commit, command, date and load average."""
    def fmt(load):
        return " ".join(f"{x:.2f}" for x in load) if load else "unknown"
    load = fmt(info.load) + (f" → {fmt(load_after)}" if load_after is not None else "")
    return (f"_Commit `{info.commit_label}` · `{command}` · {info.date} · "
            f"load average {load}_")


def render_report(tables: Sequence[Table], info: MachineInfo, command: str,
                  tmp: TmpChoice | None = None, heading: str | None = None,
                  load_after: tuple | None = None) -> str:
    """The report: a heading, the machine, and each table with its stamp and notes."""
    mark = stamp(info, command, load_after)
    out = []
    if heading:
        out += [f"## {heading}", ""]
    machine = f"Machine: {info.describe()}"
    if tmp is not None:
        machine += f"; temporary files in {tmp.path} ({tmp.fstype}, {tmp.why})"
    out += [machine + ".", ""]
    for t in tables:
        out += [f"### {t.title}", "", mark, "", t.markdown(), ""]
        out += [f"- {n}" for n in t.notes]
        if t.notes:
            out.append("")
    return "\n".join(out).rstrip() + "\n"


def section_markers(name: str) -> tuple[str, str]:
    return f"<!-- bench:{name}:begin -->", f"<!-- bench:{name}:end -->"


def write_section(path: Path, name: str, text: str) -> None:
    """Put ``text`` between the markers of section ``name`` in ``path`` (appended, with the
    markers, when they are not there yet); the rest of the file is left as it is."""
    begin, end = section_markers(name)
    block = f"{begin}\n{text.rstrip()}\n{end}"
    old = path.read_text() if path.exists() else "# Benchmarks\n"
    i, j = old.find(begin), old.find(end)
    if i >= 0 and j > i:
        new = old[:i] + block + old[j + len(end):]
    else:
        new = old.rstrip("\n") + "\n\n" + block + "\n"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(new)
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------
# A benchmark's run


@dataclass
class Session:
    """What a benchmark gets: its command line, the machine, the corpus directory, a private
    temporary directory, and its options (``runs``, ``warmup`` and its own)."""

    command: str
    info: MachineInfo
    models: Path
    tmp: TmpChoice
    workdir: Path
    runs: int
    warmup: int
    quiet: bool = False

    def progress(self, msg: str) -> None:
        if not self.quiet:
            print(f"[bench] {msg}", file=sys.stderr, flush=True)

    def path(self, name: str) -> Path:
        return self.workdir / name

    def interleave(self, cases: Sequence[Case], **kw) -> Rounds:
        kw.setdefault("runs", self.runs)
        kw.setdefault("warmup", self.warmup)
        kw.setdefault("progress", self.progress)
        return interleave(cases, **kw)


@contextmanager
def workdir_in(tmp: TmpChoice) -> Iterator[Path]:
    """A fresh directory under ``tmp`` for one run, removed afterwards."""
    d = Path(tempfile.mkdtemp(prefix="ansz-bench-", dir=tmp.path))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def compile_bytecode() -> None:
    """Byte-compile the ansz package being measured, as ``pip install .`` does at install.

    An editable install leaves that to the first import, and with PYTHONDONTWRITEBYTECODE
    set (or a read-only tree) never: every process then compiles ~440 KB of source again,
    ~75 ms of a start-up that users of an installed ansz do not pay."""
    import compileall

    import ansz

    compileall.compile_dir(str(Path(ansz.__file__).parent), quiet=1)


def ansz_command(option: str | None = None) -> list[str]:
    """The ``ansz`` command to measure: ``option``, else the one beside this interpreter
    (the environment's), else the one on PATH."""
    if option:
        exe = shutil.which(option)
        if exe is None:
            raise BenchError(f"--ansz: {option} not found")
        return [exe]
    beside = Path(sys.executable).with_name("ansz")
    if beside.exists():
        return [str(beside)]
    exe = shutil.which("ansz")
    if exe is None:
        raise BenchError("no ansz command: pip install -e . in this environment")
    return [exe]


def fmt_s(t: float, unit: bool = True) -> str:
    """Seconds to the millisecond below 1 s, three significant figures above."""
    text = f"{t:.3f}" if t < 1 else f"{t:.2f}" if t < 10 else f"{t:.1f}"
    return text + " s" if unit else text


def fmt_mb(nbytes: int) -> str:
    """A size in MB (10^6 bytes): ``219 MB``, ``8.42 MB``."""
    return f"{nbytes / 1e6:.0f} MB" if nbytes >= 1e7 else f"{nbytes / 1e6:.2f} MB"


def fmt_range(values: Sequence[float], fmt: Callable[[float], str],
              bare: Callable[[float], str] | None = None) -> str:
    """``median (min–max)`` of ``values``; ``bare`` formats the range (default ``fmt``)."""
    lo, mid, hi = _summary(values)
    bare = bare or fmt
    return f"{fmt(mid)} ({bare(lo)}–{bare(hi)})" if len(values) > 1 else fmt(mid)


def fmt_seconds(values: Sequence[float]) -> str:
    """``0.446 s (0.440–0.452)``."""
    return fmt_range(values, fmt_s, lambda t: fmt_s(t, unit=False))


def fmt_times(values: Sequence[float]) -> str:
    """A multiple: ``1.24× (1.07–1.41)``."""
    return fmt_range(values, lambda x: f"{x:.2f}×", lambda x: f"{x:.2f}")


def tiny_safetensors(src: str | os.PathLike, dst: str | os.PathLike, nbytes: int,
                     dtype: str = "BF16", pieces: int = 4) -> int:
    """Write ``dst``: a small safetensors file of ``pieces`` tensors holding ``nbytes`` of
    real weights in all, the first elements of the first ``pieces`` ``dtype`` tensors of
    ``src`` large enough; returns its size."""
    width = FLOAT_WIDTHS[dtype]
    per = nbytes // pieces // width
    spans = [t for t in safetensors_tensors(src)
             if t.dtype == dtype and (t.end - t.start) >= per * width][:pieces]
    if len(spans) < pieces:
        raise BenchError(f"{src} has fewer than {pieces} {dtype} tensors of {per} elements")
    entries, blobs, offset = {}, [], 0
    with open(src, "rb") as f:
        for t in spans:
            f.seek(t.start)
            blobs.append(f.read(per * width))
            entries[t.name] = {"dtype": dtype, "shape": [per],
                               "data_offsets": [offset, offset + per * width]}
            offset += per * width
    text = json.dumps(entries, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(dst, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))
    return os.path.getsize(dst)
