"""The benchmark harness (bench/): interleaved timing and per-round ratios, measured commands,
machine facts, the temp-dir choice, stamped tables, the corpus manifest, the coding-pair
bound, and the corpus benchmark end to end on tiny generated files (never the downloaded
corpus)."""

from __future__ import annotations

import importlib.util
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from bench import BENCHMARKS, SCOREBOARD, corpus, harness, speed
from bench.harness import Case, ProcessStats, Table

REPO = Path(__file__).resolve().parent.parent


class FakeClock:
    """A clock that moves only when a fake case says it took time."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def taking(self, seconds: float, log: list | None = None, name: str = ""):
        def run(*_):
            if log is not None:
                log.append(name)
            self.now += seconds
        return run


# ---------------------------------------------------------------------------------------------
# Timing


def test_interleave_rotates_order_and_ratios_are_per_round():
    clock, log = FakeClock(), []
    cases = [Case("A", clock.taking(2.0, log, "A")), Case("B", clock.taking(1.0, log, "B"))]
    rounds = harness.interleave(cases, runs=4, warmup=1, clock=clock)
    assert log[:2] == ["A", "B"]                   # the warm-up round
    assert rounds.order == [["A", "B"], ["B", "A"], ["A", "B"], ["B", "A"]]
    assert log[2:] == [n for r in rounds.order for n in r]
    assert rounds["A"].times == [2.0] * 4 and rounds["B"].times == [1.0] * 4
    r = rounds.ratio("A", "B")
    assert r.values == [2.0] * 4 and r.median == 2.0
    assert rounds.speedup("B", "A").median == 2.0  # B ran twice as fast as A
    assert rounds["A"].mbps(4_000_000) == pytest.approx(2.0)


def test_ratios_pair_runs_of_the_same_round():
    # A load burst in round 2 slows both sides: the per-round ratio stays 2, while the
    # ratio of the medians would not tell which runs went together.
    clock = FakeClock()
    durations = {"A": iter([2, 20, 2]), "B": iter([1, 10, 1])}  # one per round

    def case(name):
        def run():
            clock.now += next(durations[name])
        return run

    cases = [Case("A", case("A")), Case("B", case("B"))]
    rounds = harness.interleave(cases, runs=3, warmup=0, clock=clock)
    assert rounds.ratio("A", "B").values == [2.0, 2.0, 2.0]
    assert (rounds["A"].min, rounds["A"].median, rounds["A"].max) == (2, 2, 20)


def test_case_limits_setup_and_warmup():
    clock, log = FakeClock(), []
    prepared = []
    cases = [
        Case("once", clock.taking(30.0, log, "once"), runs=1, warmup=0),
        Case("with setup", lambda arg: (log.append(("setup ran", arg)), clock.taking(1.0)()),
             setup=lambda: prepared.append(1) or len(prepared)),
        Case("plain", clock.taking(0.5, log, "plain")),
    ]
    rounds = harness.interleave(cases, runs=3, warmup=2, clock=clock)
    assert log.count("once") == 1                       # no warm-up, one timed run
    assert len(prepared) == 2 + 3                       # setup before every run
    assert rounds["with setup"].times == [1.0] * 3      # setup is not timed
    assert rounds["once"].times == [30.0]
    assert [o for o in rounds.order if "once" in o] == [rounds.order[0]]
    with pytest.raises(harness.BenchError):
        rounds.ratio("once", "missing")
    with pytest.raises(ValueError):
        harness.interleave([Case("x", clock.taking(1)), Case("x", clock.taking(1))])


def test_process_cases_are_timed_by_their_own_wall_clock():
    # Fake commands: functions returning the launcher's figures. The time recorded is the
    # process's wall time, not the (here huge) time the call took in this process.
    clock = FakeClock()
    walls = {"fast cmd": iter([1.0, 1.2, 0.8]), "slow cmd": iter([3.0, 3.0, 3.0])}

    def fake_command(name):
        def run():
            clock.now += 100.0
            return ProcessStats(next(walls[name]), 0.5, 0.1, 50 << 20, 0)
        return run

    rounds = harness.interleave([Case("fast cmd", fake_command("fast cmd")),
                                 Case("slow cmd", fake_command("slow cmd"))],
                                runs=3, warmup=0, clock=clock)
    assert rounds["fast cmd"].times == [1.0, 1.2, 0.8]
    assert rounds.ratio("slow cmd", "fast cmd").values == pytest.approx([3.0, 2.5, 3.75])
    assert rounds["slow cmd"].stat_median("user") == 0.5
    assert rounds["slow cmd"].max_rss == 50 << 20
    total = ProcessStats(1, 2, 3, 10, 0) + ProcessStats(4, 5, 6, 20, 1)
    assert (total.wall, total.user, total.sys, total.max_rss, total.returncode) == (5, 7, 9, 20, 1)


def test_speed_rows_state_targets_on_the_per_round_figure():
    clock = FakeClock()
    rounds = harness.interleave([Case("ansz", clock.taking(0.5)), Case("zstd", clock.taking(1.0)),
                                 Case("tiny", clock.taking(0.2))], runs=3, warmup=0, clock=clock)
    t = Table("t", speed.COLUMNS)
    speed.time_row(t, rounds, "wall", "ansz", "zstd", "zstd", speed.DECOMPRESS_TARGET)
    speed.speed_row(t, rounds, "speed", "ansz", "zstd", "zstd", 10**8, speed.INPROCESS_TARGET)
    speed.time_row(t, rounds, "fixed", "tiny", "zstd", "zstd", speed.TINY_TARGET, on_ratio=False)
    speed.time_row(t, rounds, "gone", "nothing", "zstd", "zstd", speed.TINY_TARGET)
    wall, spd, fixed, gone = t.rows
    assert wall[3].startswith("0.50×") and wall[5] == "yes"        # 0.5 ≤ 0.8
    assert spd[1].startswith("200 MB/s") and spd[3].startswith("2.00×") and spd[5] == "yes"
    assert fixed[1].startswith("0.200 s") and fixed[5] == "**no**"  # 0.2 s > 0.15 s
    assert gone[3] == "unavailable" and gone[5] == "—"
    assert speed.COMPRESS_TARGET.met(0.61) == "**no**" and speed.FAST_TARGET.met(1.5) == "yes"


# ---------------------------------------------------------------------------------------------
# Commands


def test_run_command_measures_and_redirects(tmp_path):
    out = tmp_path / "out.txt"
    stats = harness.run_command([sys.executable, "-c", "print('hello')"], stdout=out)
    assert out.read_text() == "hello\n"
    assert stats.returncode == 0 and stats.wall > 0 and stats.user >= 0 and stats.sys >= 0
    inp = tmp_path / "in.txt"
    inp.write_text("from stdin")
    harness.run_command([sys.executable, "-c", "import sys; print(sys.stdin.read()[::-1])"],
                        stdin=inp, stdout=out)
    assert out.read_text() == "nidts morf\n"


def test_run_command_failures_are_one_line(tmp_path):
    with pytest.raises(harness.CommandError, match=r"exited with status 3: it broke"):
        harness.run_command([sys.executable, "-c",
                             "import sys; print('noise', file=sys.stderr); "
                             "sys.exit('it broke') if False else None; "
                             "print('it broke', file=sys.stderr); sys.exit(3)"])
    stats = harness.run_command([sys.executable, "-c", "raise SystemExit(2)"], check=False)
    assert stats.returncode == 2
    with pytest.raises(harness.CommandError, match="cannot run"):
        harness.run_command([str(tmp_path / "no-such-command")])


def test_run_command_peak_rss_is_the_commands_own():
    # This process holds ~300 MiB while it starts a small command: the command's peak must
    # not inherit it (a child forked from here and exec'd would report at least that much).
    held = b"\x01" * (300 << 20)
    small = harness.run_command([sys.executable, "-c", "pass"])
    big = harness.run_command([sys.executable, "-c", "x = b'\\x01' * (200 << 20)"])
    assert len(held) == 300 << 20
    assert small.max_rss < 100 << 20, small
    assert big.max_rss >= 200 << 20, big


# ---------------------------------------------------------------------------------------------
# Machine facts, tables, temp dirs


def git(*args, cwd):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                          text=True).stdout.strip()


def test_machine_info_fields():
    info = harness.machine_info()
    assert info.cpu and re.match(r"\d+( of \d+)? cores", info.cores)
    assert re.fullmatch(r"\d+\.\d+\.\d+", info.python)
    for key in ("numpy", "numba", "zstandard", "libzstd", "zstd CLI", "ZipNN", "ansz"):
        assert key in info.versions
    import numpy

    assert info.versions["numpy"] == numpy.__version__
    assert info.versions["ansz"] is not None
    head = git("rev-parse", "HEAD", cwd=REPO)
    assert head.startswith(info.commit) and len(info.commit) == 12
    assert info.dirty in (True, False)
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", info.date)
    assert info.load is None or len(info.load) == 3
    assert info.cpu in info.describe() and f"numpy {numpy.__version__}" in info.describe()


def test_git_state_sees_a_dirty_tree(tmp_path):
    git("init", "-q", cwd=tmp_path)
    (tmp_path / "f").write_text("1")
    git("add", "f", cwd=tmp_path)
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x", cwd=tmp_path)
    commit, dirty = harness.git_state(tmp_path)
    assert git("rev-parse", "HEAD", cwd=tmp_path).startswith(commit) and dirty is False
    (tmp_path / "f").write_text("2")
    assert harness.git_state(tmp_path) == (commit, True)
    assert harness.git_state(tmp_path / "nowhere") == ("unknown", None)
    # A command writing BENCHMARKS.md section by section stamps the state it started with.
    assert harness.machine_info(git=(commit, False)).commit_label == commit


def sample_info(**kw) -> harness.MachineInfo:
    base = dict(cpu="CPU X", cores="2 cores", system="Linux 6", python="3.11.7",
                versions={"numpy": "2.0", "ZipNN": None}, commit="0123456789ab", dirty=True,
                date="2026-01-02 03:04 UTC", load=(1.5, 1.0, 0.5))
    base.update(kw)
    return harness.MachineInfo(**base)


def test_tables_are_stamped_with_commit_and_command():
    t1 = Table("First", ["a", "b"], notes=["a note"])
    t1.add("x", 1)
    t2 = Table("Second", ["c", "d", "e"], align="lll")
    t2.add("p", "q", "r")
    with pytest.raises(ValueError):
        t2.add("too", "few")
    cmd = "python -m bench speed --runs 3"
    text = harness.render_report([t1, t2], sample_info(), cmd, heading="H",
                                 load_after=(2.0, 1.0, 0.5))
    stamp = ("_Commit `0123456789ab (dirty tree)` · `python -m bench speed --runs 3` · "
             "2026-01-02 03:04 UTC · load average 1.50 1.00 0.50 → 2.00 1.00 0.50_")
    assert text.count(stamp) == 2
    assert text.startswith("## H\n")
    assert "numpy 2.0, ZipNN not installed" in text
    lines = text.splitlines()
    for title, ncols in (("### First", 2), ("### Second", 3)):
        i = lines.index(title)
        assert lines[i + 2] == stamp
        table = [ln for ln in lines[i + 4:i + 7] if ln.startswith("|")]
        assert all(ln.count("|") == ncols + 1 for ln in table), table
    assert "|---|---:|" in text and "|---|---|---|" in text and "- a note" in text
    clean = harness.stamp(sample_info(dirty=False, load=None), "cmd")
    assert "`0123456789ab`" in clean and "load average unknown" in clean


def test_write_section_replaces_only_its_block(tmp_path):
    md = tmp_path / "BENCHMARKS.md"
    begin, end = harness.section_markers("speed")
    md.write_text(f"# Benchmarks\n\nintro\n\n{begin}\nold\n{end}\n\ntrailer\n")
    harness.write_section(md, "speed", "new table\n")
    text = md.read_text()
    assert "old" not in text and f"{begin}\nnew table\n{end}" in text
    assert text.startswith("# Benchmarks\n\nintro\n") and text.rstrip().endswith("trailer")
    harness.write_section(md, "corpus", "corpus table")
    text = md.read_text()
    assert text.count(begin) == 1 and text.rstrip().endswith(harness.section_markers("corpus")[1])
    assert text.index("trailer") < text.index("corpus table")


def test_choose_tmpdir(tmp_path):
    fast, slow = tmp_path / "fast", tmp_path / "slow"
    fast.mkdir()
    slow.mkdir()
    mounts = tmp_path / "mounts"
    mounts.write_text(f"/dev/vda / ext4 rw 0 0\ntmpfs {fast} tmpfs rw 0 0\n"
                      f"tmpfs /proc/x tmpfs rw 0 0\n")
    env = {"TMPDIR": str(slow)}
    got = harness.choose_tmpdir(environ=env, mounts_path=str(mounts))
    assert (got.path, got.fstype) == (fast, "tmpfs")  # $TMPDIR is not a tmpfs: skipped
    got = harness.choose_tmpdir(str(slow), environ=env, mounts_path=str(mounts))
    assert (got.path, got.why) == (slow, "--tmp-dir") and got.fstype == "ext4"
    got = harness.choose_tmpdir(environ={harness.TMPDIR_ENV: str(slow)}, mounts_path=str(mounts))
    assert got.path == slow and got.why == f"${harness.TMPDIR_ENV}"
    too_big = harness.choose_tmpdir(need_bytes=1 << 62, environ={}, mounts_path=str(mounts))
    assert too_big.path != fast and "no tmpfs" in too_big.why
    with pytest.raises(harness.BenchError):
        harness.choose_tmpdir(str(tmp_path / "missing"), mounts_path=str(mounts))
    assert harness.fs_type(fast / "deeper", str(mounts)) == "tmpfs"
    assert harness.fs_type("/usr", str(mounts)) == "ext4"


# ---------------------------------------------------------------------------------------------
# Corpus manifest and files


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(f"ansz_{name}", REPO / "scripts" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        spec.loader.exec_module(mod)
    finally:
        sys.path.remove(str(REPO / "scripts"))
    return mod


def test_manifest_is_what_the_fetch_scripts_make():
    fm, fg = load_script("fetch_models"), load_script("fetch_gguf")
    expected = {f"{m}-{k}.safetensors" for m in ("minilm", "mpnet") for k in ("f32", *fm.DERIVED)}
    expected |= {fg.GEMMA_NAME, fg.SMOL_NAME}
    assert {f.filename for f in harness.CORPUS} == expected
    assert len({f.name for f in harness.CORPUS}) == len(harness.CORPUS)
    for f in harness.CORPUS:
        script = "fetch_gguf" if f.format == "gguf" else "fetch_models"
        assert f.fetch == f"python scripts/{script}.py"
        assert f.filename.endswith(".gguf" if f.format == "gguf" else ".safetensors")
    assert harness.corpus_file("mpnet-bf16").dtype == "BF16"
    with pytest.raises(harness.BenchError, match="python scripts/fetch_models.py"):
        harness.corpus_path("mpnet-bf16", Path("/nonexistent"))


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A tiny stand-in corpus: bf16 and f32 weights and a constant byte tensor."""
    d = tmp_path_factory.mktemp("tiny")
    rng = np.random.default_rng(2)
    w = (rng.standard_normal((256, 256)) * 0.02).astype(np.float32)
    model = d / "tiny.safetensors"
    save_file({
        "layer.weight": w.astype(ml_dtypes.bfloat16),
        "layer.bias": (rng.standard_normal(256) * 0.01).astype(ml_dtypes.bfloat16),
        "norm.weight": np.ones(256, dtype=np.float32),
        "proj.weight": w[:64],
        "position_ids": np.arange(64, dtype=np.int64),
    }, str(model), metadata={"format": "pt"})
    const = d / "const"
    save_file({"q": np.full(1 << 20, 7, dtype=np.uint8)}, str(const))
    return model, const


def test_replicate_and_tiny_files_keep_real_tensors(models, tmp_path):
    model, _ = models
    src = load_file(str(model))
    big = tmp_path / "big.safetensors"
    size = harness.replicate_tensors(model, big, 600_000)
    got = load_file(str(big))
    assert abs(size - 600_000) < 140_000
    assert set(got) == {f"copy{k}.{n}" for k in range(len(got) // 2)
                        for n in ("layer.weight", "layer.bias")}
    for name, x in got.items():  # the real magnitudes; copies after the first flip signs
        real = src[name.split(".", 1)[1]].view(np.uint16)
        assert np.array_equal(x.view(np.uint16) & 0x7FFF, real & 0x7FFF)
        flipped = np.mean((x.view(np.uint16) ^ real) >> 15)
        assert flipped == 0 if name.startswith("copy0.") else 0.3 < flipped < 0.7, name
    assert not np.array_equal(got["copy0.layer.weight"], got["copy1.layer.weight"])
    tiny = tmp_path / "tiny.safetensors"
    size = harness.tiny_safetensors(model, tiny, 1000, pieces=2)
    got = load_file(str(tiny))
    assert set(got) == {"layer.weight", "layer.bias"} and size < 1200
    assert np.array_equal(got["layer.bias"].view(np.uint16),
                          src["layer.bias"][:250].view(np.uint16))
    with pytest.raises(harness.BenchError):
        harness.tiny_safetensors(model, tiny, 1000, pieces=5)


# ---------------------------------------------------------------------------------------------
# The coding-pair bound


def tensor_bytes(tensors: dict) -> int:
    return sum(t.nbytes for t in tensors.values())


def bf16_with_exponents(exps: np.ndarray, rng) -> np.ndarray:
    """bf16 values whose exponent field is ``exps``; sign and mantissa random."""
    bits = ((rng.integers(0, 2, exps.size) << 15) | (exps.astype(np.int64) << 7)
            | rng.integers(0, 128, exps.size)).astype(np.uint16)
    return bits.view(ml_dtypes.bfloat16)


def f32_with_exponents(exps: np.ndarray, rng) -> np.ndarray:
    bits = ((rng.integers(0, 2, exps.size) << 31) | (exps.astype(np.int64) << 23)
            | rng.integers(0, 1 << 23, exps.size)).astype(np.uint32)
    return bits.view(np.float32)


def test_bound_bf16_known_exponent_distribution(tmp_path):
    # Exponents 120 (1/2), 121 (1/4), 122 (1/4): H = 1.5 bits; raw = 8 bits per element.
    rng = np.random.default_rng(0)
    n = 4096
    exps = np.repeat([120, 121, 122], [n // 2, n // 4, n // 4])
    rng.shuffle(exps)
    t = {"w": bf16_with_exponents(exps, rng)}
    path = tmp_path / "bf16.safetensors"
    save_file(t, str(path))
    size = path.stat().st_size
    header = size - tensor_bytes(t)
    b = corpus.coding_pair_bound(path)
    expected = n * (1.5 + 8) / 8 + header
    assert b["original_bytes"] == size
    assert b["bound_bytes"] == pytest.approx(expected, rel=1e-12)
    assert b["ratio"] == pytest.approx(expected / size, rel=1e-12)


def test_bound_mixed_dtypes_sum_per_tensor(tmp_path):
    rng = np.random.default_rng(1)
    n = 2048
    f32_exps = np.tile([100, 110, 120, 127], n // 4)   # uniform over 4 codes: 2 bits
    bf16_exps = np.full(n, 125)                         # one code: 0 bits
    u8 = np.tile(np.arange(16, dtype=np.uint8), n // 16)  # uniform over 16 bytes: 4 bits
    i32 = np.tile(np.array([0, 1], dtype=np.int32), n // 2)
    h_i32 = -(7 / 8 * math.log2(7 / 8) + 1 / 8 * math.log2(1 / 8))
    t = {"a": f32_with_exponents(f32_exps, rng), "b": bf16_with_exponents(bf16_exps, rng),
         "c": u8, "d": i32, "e": np.zeros(0, dtype=np.float32)}
    path = tmp_path / "mixed.safetensors"
    save_file(t, str(path), metadata={"format": "pt"})
    header = path.stat().st_size - tensor_bytes(t)
    bits = n * (2 + 24) + n * (0 + 8) + n * 4 + (n * 4) * h_i32
    assert corpus.coding_pair_bound(path)["bound_bytes"] == pytest.approx(bits / 8 + header,
                                                                          rel=1e-9)


def test_bound_f16_and_fp8_codes(tmp_path):
    hi = np.tile(np.array([0x3C, 0xBC], dtype=np.uint16), 512)      # 2 high bytes: 1 bit
    f16 = ((hi << 8) | np.arange(1024, dtype=np.uint16) % 256).view(np.float16)
    fp8 = np.full(1024, 0x38, dtype=np.uint8).view(ml_dtypes.float8_e4m3fn)  # constant: 0
    t = {"h": f16, "q": fp8}
    path = tmp_path / "f16fp8.safetensors"
    save_file(t, str(path))
    header = path.stat().st_size - tensor_bytes(t)
    assert corpus.coding_pair_bound(path)["bound_bytes"] == pytest.approx(
        1024 * (1 + 8) / 8 + header, rel=1e-12)


def test_entropy_helper():
    assert corpus.order0_entropy_bits(np.zeros(100, np.uint8)) == 0
    assert corpus.order0_entropy_bits(np.arange(256, dtype=np.uint8)) == pytest.approx(256 * 8)
    assert corpus.order0_entropy_bits(np.zeros(0, np.uint8)) == 0


# ---------------------------------------------------------------------------------------------
# The command line, end to end


def run_bench(*args, env_extra=None, expect=0):
    env = dict(os.environ, **(env_extra or {}))
    proc = subprocess.run([sys.executable, "-m", "bench", *args], capture_output=True,
                          text=True, cwd=REPO, env=env, timeout=300)
    assert proc.returncode == expect, proc.stdout + proc.stderr
    return proc


def parse_rows(out: str, ncols: int) -> dict[tuple[str, str], list[str]]:
    rows = {}
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) == ncols and cells[0] not in ("file", "---"):
            rows[(cells[0], re.sub(r" \(.*\)$", "", cells[2]))] = cells
    return rows


def test_corpus_benchmark_end_to_end(models, tmp_path):
    model, const = models
    md = tmp_path / "BENCHMARKS.md"
    md.write_text("# Benchmarks\n\nkept\n")
    proc = run_bench("corpus", "--files", f"{model},{const}", "--runs", "2", "--tools",
                     "zstd,ansz,bound", "--zstd19", "all", "--tmp-dir", str(tmp_path),
                     "--write", str(md), "-q")
    out = proc.stdout
    rows = parse_rows(out, 9)
    for name in ("tiny", "const"):
        for tool in ("zstd-3", "zstd-3 T2", "zstd-19", "ansz", "ansz --fast"):
            r = rows[(name, tool)]
            assert 0 < float(r[3]) <= 1.1 and r[8] == "ok", r
            assert float(r[4]) > 0 and float(r[5]) > 0, r
        assert rows[(name, "zstd-3")][6] == "1.00"
        assert 0 <= float(rows[(name, "coding-pair bound")][3]) <= 1.0
    # bf16 weights: exponent entropy of ~3 bits + 8 raw bits out of 16 -> well under 1.
    assert 0.5 < float(rows[("tiny", "coding-pair bound")][3]) < 0.9
    assert float(rows[("const", "coding-pair bound")][3]) < 0.001
    assert float(rows[("tiny", "ansz")][3]) < float(rows[("tiny", "zstd-3")][3])
    head = git("rev-parse", "--short=12", "HEAD", cwd=REPO)
    assert f"_Commit `{head}" in out and "`python -m bench corpus --files" in out
    text = md.read_text()
    begin, end = harness.section_markers("corpus")
    assert text.startswith("# Benchmarks\n\nkept\n") and begin in text and end in text
    assert "| const | " in text and "Machine:" in text
    assert not list(tmp_path.glob("ansz-bench-*"))  # the run's work dir is gone


def test_list_and_errors(tmp_path):
    out = run_bench("--list").stdout
    for name in (*BENCHMARKS, "scoreboard"):
        assert re.search(rf"^{name}\s", out, re.M), name
    assert set(SCOREBOARD) <= set(BENCHMARKS)
    err = run_bench("corpus", "--models", str(tmp_path), "-q", expect=1).stderr
    assert err.startswith("bench: error: no corpus file in") and len(err.splitlines()) == 1
    err = run_bench("speed", "--file", "no-such-model", "-q", expect=1).stderr
    assert err.startswith("bench: error: no corpus file 'no-such-model'")


@pytest.mark.skipif(shutil.which("zstd") is None, reason="needs the zstd command")
def test_speed_benchmark_end_to_end(tmp_path):
    """Every row of the speed benchmark on a small generated model, one round, no ZipNN
    and no cold start (those take minutes): the commands run and their figures land."""
    rng = np.random.default_rng(3)
    model = tmp_path / "small.safetensors"
    save_file({f"l{i}.w": (rng.standard_normal((128, 256)) * 0.02).astype(ml_dtypes.bfloat16)
               for i in range(6)}, str(model))
    out = run_bench("speed", "--file", str(model), "--inprocess", str(model), "--runs", "1",
                    "--warmup", "0", "--cold-runs", "0", "--no-zipnn", "--tmp-dir",
                    str(tmp_path), "-q").stdout
    rows = {}
    for line in out.split("### Compression ratio")[0].splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] not in ("measurement", "---"):
            rows.setdefault(cells[0], []).append(cells)
    # 3 fixed costs, the cold start, 2 threads, 2 in process (one file), 6 command, 5 floors
    # through the command (start-up + coding work the fifth) and 3 in process (the stored
    # container; the coding and the decoding work), 2 --fast
    assert len(sum(rows.values(), [])) == 24, out
    help_row = next(r for k, r in rows.items() if "`ansz --help`" in k)[0]
    assert re.fullmatch(r"0\.\d{3} s", help_row[1]) and help_row[4] == "≤ 0.15 s"
    assert help_row[5] in ("yes", "**no**")
    for key, found in rows.items():
        for r in found:
            if key.startswith("command:") or key.startswith("floor:"):
                assert re.match(r"\d+\.\d+ s", r[1]) and re.match(r"\d+\.\d\d× the time", r[3]), r
            if key.startswith("in process:"):
                assert re.fullmatch(r"\d+ MB/s", r[1]) and r[2] == "ZipNN threads=2: unavailable"
            if key.startswith("floor, in process:"):  # without ZipNN: against ansz itself
                assert re.fullmatch(r"\d+ MB/s", r[1]), r
                peer = ("`decompress_stream`" if "decoding work" in key else "`compress_file`"
                        if "coding work" in key else "default level")
                assert r[2].startswith(f"{peer}: ") and r[3].endswith(" the speed"), r
    assert "left out (--cold-runs 0)" in out and "ZipNN: left out (--no-zipnn)." in out
    ratios = re.search(r"\| small \| (0\.\d{4}) \| (0\.\d{4}) \| — \| (0\.\d{4}) \|", out)
    assert ratios and float(ratios[1]) < float(ratios[3]), out   # ansz below zstd -3
    for case in ("tiny decompress", "compress -T1", "decompress --fast", "zstd -d", "dd",
                 "decompress stored", "sha256"):
        assert re.search(rf"^\| {re.escape(case)} \| \d", out, re.M), case
    assert not list(tmp_path.glob("ansz-bench-*"))


def test_the_measured_ansz_is_byte_compiled_as_an_install_would():
    import ansz

    harness.compile_bytecode()
    package = Path(ansz.__file__).parent
    sources = sorted(package.rglob("*.py"))
    assert len(sources) > 20
    for src in sources:
        pyc = Path(importlib.util.cache_from_source(str(src)))
        assert pyc.exists() and pyc.stat().st_mtime >= src.stat().st_mtime, src


@pytest.mark.skipif(shutil.which("zstd") is None, reason="needs the zstd command")
def test_delta_benchmark_end_to_end(tmp_path):
    """The delta benchmark on a small generated base and fine-tune: both tables, ratios
    that say the base helped, and zstd --patch-from beside them."""
    rng = np.random.default_rng(4)
    w = {f"l{i}.w": rng.standard_normal((64, 256)) * 0.05 for i in range(4)}
    moved = {k: v * (1 + 1e-3 * rng.standard_normal(v.shape)) for k, v in w.items()}
    for stem, tensors in (("base", w), ("finetune", moved)):
        save_file({k: v.astype(ml_dtypes.bfloat16) for k, v in tensors.items()},
                  str(tmp_path / f"{stem}-bf16.safetensors"))
    out = run_bench("delta", "--dir", str(tmp_path), "--pairs", "finetune:base", "--dtypes",
                    "bf16", "--runs", "1", "--warmup", "0", "--tmp-dir", str(tmp_path),
                    "-q").stdout
    rows = [[c.strip() for c in line.strip().strip("|").split("|")]
            for line in out.splitlines() if line.startswith("| finetune / base bf16")]
    assert len(rows) == 2, out
    sizes, speed = rows
    delta, alone, zstd = (float(x) for x in sizes[3:6])
    assert delta < 0.5 * alone and zstd > delta
    assert float(speed[1]) > 0 and speed[3].endswith("×")
    err = run_bench("delta", "--dir", str(tmp_path / "none"), "-q", expect=1).stderr
    assert "make_finetunes.py" in err and len(err.splitlines()) == 1


def test_speed_on_a_checkpoint_sized_file_writes_a_section_of_its_own():
    # --scale-gb measures another file: its tables must not replace the scoreboard's.
    import argparse

    from bench import speed

    p = argparse.ArgumentParser()
    speed.add_arguments(p)
    assert speed.section(p.parse_args([])) == ("speed", speed.TITLE)
    name, title = speed.section(p.parse_args(["--scale-gb", "2"]))
    assert name == "speed-scaled" and title.startswith(speed.TITLE) and title != speed.TITLE
