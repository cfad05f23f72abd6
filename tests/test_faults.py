"""Faults from outside: a process killed mid-write, a full disk, and the long fuzzer's runs.

Each test runs the installed ``ansz`` command (or the fuzz script) in a subprocess, as a user
would, and checks that nothing is lost: no partial file under the final name, no temporary
file left behind (except after SIGKILL, which no program can clean up after), and a source
that is byte for byte what it was.
"""

import hashlib
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from helpers import leftovers

REPO = Path(__file__).resolve().parent.parent


def big_input(path: Path, mb: int = 96) -> str:
    """A file large enough that compressing it takes a while (random bytes: no fast path)."""
    rng = np.random.default_rng(0)
    path.write_bytes(rng.integers(0, 256, mb << 20, dtype=np.uint8).tobytes())
    return hashlib.sha256(path.read_bytes()).hexdigest()


def wait_for_temp(d: Path, proc: subprocess.Popen, timeout: float = 60.0) -> bool:
    """Wait until ansz has started writing its temporary output."""
    end = time.monotonic() + timeout
    while time.monotonic() < end and proc.poll() is None:
        if leftovers(d):
            return True
        time.sleep(0.01)
    return False


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_signal_mid_write_leaves_no_output_and_the_source_intact(tmp_path, sig):
    src = tmp_path / "model.bin"
    digest = big_input(src)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    dst = out_dir / "model.bin.ansz"
    interrupted = 0
    # On a loaded machine the run may finish between seeing its temporary file and the
    # signal: that run must have published a whole container; try again until one is stopped.
    for _ in range(3):
        for p in out_dir.iterdir():
            p.unlink()
        proc = subprocess.Popen(["ansz", "compress", "-T", "1", "-o", str(dst), str(src)],
                                stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        assert wait_for_temp(out_dir, proc), "ansz finished before it could be interrupted"
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
        assert hashlib.sha256(src.read_bytes()).hexdigest() == digest
        assert b"Traceback" not in err
        if dst.exists():  # published before the signal landed: never partial, so whole
            restored = tmp_path / "restored"
            subprocess.run(["ansz", "decompress", "-q", "-f", "-o", str(restored), str(dst)],
                           check=True)
            assert hashlib.sha256(restored.read_bytes()).hexdigest() == digest
            continue
        assert proc.returncode != 0  # stopped, so no output
        interrupted += 1
        if sig != signal.SIGKILL:  # a catchable signal: the temporary file is removed too
            assert leftovers(out_dir) == []
        break
    assert interrupted, "every run finished before the signal landed"


def _limit_file_size():
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG from write(), like ENOSPC
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))


@pytest.mark.parametrize("command", ["compress", "decompress"])
def test_full_disk_is_a_one_line_error_and_loses_nothing(tmp_path, command):
    src = tmp_path / "model.bin"
    rng = np.random.default_rng(1)
    src.write_bytes(rng.integers(0, 256, 3 << 20, dtype=np.uint8).tobytes())
    packed = tmp_path / "model.bin.ansz"
    subprocess.run(["ansz", "compress", "-q", str(src)], check=True)
    if command == "compress":
        args, dst = ["compress", "-f", "-o", str(tmp_path / "again.ansz"), str(src)], \
            tmp_path / "again.ansz"
    else:
        args, dst = ["decompress", "-o", str(tmp_path / "restored"), str(packed)], \
            tmp_path / "restored"
    before = {p.name: p.read_bytes() for p in (src, packed)}
    proc = subprocess.run(["ansz", *args], capture_output=True, preexec_fn=_limit_file_size,
                          timeout=120)
    assert proc.returncode == 1
    lines = proc.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ansz: "), proc.stderr
    assert "too large" in lines[0].lower() or "space" in lines[0].lower()
    assert not dst.exists() and leftovers(tmp_path) == []
    assert {p.name: p.read_bytes() for p in (src, packed)} == before


def test_unwritable_output_directory_is_a_one_line_error(tmp_path):
    """/sys refuses new files even to root, so this holds whoever runs the suite."""
    src = tmp_path / "a.bin"
    src.write_bytes(b"weights" * 1000)
    proc = subprocess.run(["ansz", "compress", "-o", "/sys/a.bin.ansz", str(src)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ansz: /sys/a.bin.ansz: "), proc.stderr
    assert src.read_bytes() == b"weights" * 1000


@pytest.mark.parametrize("seconds", [3, pytest.param(600, marks=pytest.mark.slow)])
def test_fuzz_script_run(tmp_path, seconds):
    """scripts/fuzz.py: a smoke run by default, ten minutes with ANSZ_SLOW_TESTS."""
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "fuzz.py"), "--seconds",
                           str(seconds), "--seed", "1"], capture_output=True, text=True,
                          timeout=300 + 2 * seconds, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "violations: 0" in proc.stdout
