"""scripts/signal_storm.py: its judgement of one run's remains, and a short storm end to end."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "signal_storm.py"


@pytest.fixture(scope="module")
def storm():
    spec = importlib.util.spec_from_file_location("ansz_signal_storm", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look the module up while it executes
    try:
        spec.loader.exec_module(mod)
        yield mod
    finally:
        sys.modules.pop(spec.name, None)


class _Judge:
    """A Storm with known correct results, without running anything."""

    def __init__(self, storm_module, tmp_path):
        args = storm_module.argparse.Namespace(grace=0.05, ansz="ansz", warm_cache=None)
        self.storm = storm_module.Storm(args, tmp_path)
        self.storm.original, self.storm.reference_bytes = b"original", b"container"
        self.storm.correct = lambda op, data: data == self.storm.expected(op)
        self.mod = storm_module
        self.dir = tmp_path / "run"
        self.dir.mkdir()

    def judge(self, sig="TERM", rc=143, sent=True, stopped_after=0.2, stderr="",
              output: bytes | None = None, temps=(), stream=False, stdout=b""):
        run = self.mod.Run(0, "decompress", stream, False, sig, 0.5, returncode=rc,
                           sent=sent, stopped_after=stopped_after, stderr=stderr)
        out = None if stream else self.dir / "model.safetensors"
        for p in self.dir.iterdir():
            p.unlink()
        if output is not None:
            out.write_bytes(output)
        for t in temps:
            (self.dir / t).write_bytes(b"partial")
        self.storm.judge(run, self.dir, out, stdout)
        return run


def test_judge(storm, tmp_path):
    j = _Judge(storm, tmp_path)
    assert j.judge().outcome == "exit 128+N"
    assert j.judge(rc=-15).outcome == "died of signal"
    assert j.judge(rc=0, sent=False, output=b"original").outcome == "ended first"
    assert j.judge(rc=0, stopped_after=0.01, output=b"original").outcome == "finished"
    assert j.judge(sig="KILL", rc=-9, temps=[".model.safetensors.abc.tmp"]).outcome == \
        "died of signal"
    assert j.judge(rc=143, output=b"original").outcome == "exit 128+N"  # landed after publish
    violations = [
        j.judge(rc=0, output=b"original"),  # exit 0 long after the signal: ignored
        j.judge(rc=1, stderr="ansz: x: internal error\n"),
        j.judge(output=b"orig"),  # partial output
        j.judge(temps=[".model.safetensors.abc.tmp"]),
        j.judge(stderr="Exception ignored in: <function X.__del__>\n"),
        j.judge(rc=0, sent=False),  # exit 0 and no output
        j.judge(rc=0, sent=False, output=b"original", stderr="ansz: x: No space\n"),
        j.judge(rc=0, sent=False, stream=True, stdout=b"origin"),
    ]
    assert [r.outcome for r in violations] == ["VIOLATION"] * len(violations)
    startup = j.judge(sig="INT", rc=1, stderr='Traceback (most recent call last):\n'
                      '  File "<frozen site>", line 626, in <module>\nKeyboardInterrupt\n')
    assert startup.outcome == "start-up" and startup.problems
    for frame in ("/x/ansz/api.py", "/x/ansz/cli/__init__.py"):
        in_ansz = j.judge(sig="INT", rc=1, stderr='Traceback (most recent call last):\n'
                          f'  File "{frame}", line 1, in <module>\nKeyboardInterrupt\n')
        assert in_ansz.outcome == "VIOLATION", frame


def test_short_storm(tmp_path):  # 8 short runs: a few seconds, so not behind ANSZ_SLOW_TESTS
    env = dict(os.environ, TMPDIR=str(tmp_path))
    p = subprocess.run([sys.executable, SCRIPT, "--runs", "8", "--seed", "3", "--size-mb", "4",
                        "--ignore-startup"], capture_output=True, text=True, env=env,
                       timeout=900)
    assert p.returncode == 0, p.stdout + p.stderr
    rows = {m.group(1): [int(x) for x in m.group(2).split()]
            for m in re.finditer(r"^(SIG\w+|all)\s+([\d ]+)$", p.stdout, re.M)}
    assert set(rows) == {"SIGINT", "SIGTERM", "SIGHUP", "SIGKILL", "all"}
    assert rows["all"][-1] == 8 and rows["all"][-2] == 0  # 8 runs, no violation
    assert os.listdir(tmp_path) == []  # its work directory is removed
