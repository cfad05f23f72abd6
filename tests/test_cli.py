"""The ``ansz`` command end to end: through click's CliRunner (fast, in process) and through a
subprocess of the installed ``ansz`` script (real stdin/stdout/stderr, pipes and terminals).

Conventions under test are those of man/ansz.1 (zstd/xz/gzip habits): exit 0/1/2/130, one
line per error on stderr and never a traceback, keep going past a bad input, never
overwrite without -f, never write compressed data to a terminal.
"""

from __future__ import annotations

import hashlib
import json
import os
import pty
import re
import shutil
import subprocess
import sys
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
from click.testing import CliRunner
from safetensors.numpy import save_file

from ansz import __version__
from ansz.cli import _Size, cli, human_size

ROOT = Path(__file__).resolve().parents[1]
MAN = ROOT / "man" / "ansz.1"
ANSZ = shutil.which("ansz")

# -------------------------------------------------------------------------------------------
# Helpers


@pytest.fixture
def api():
    """The end-to-end tests need the real ansz.api."""
    return pytest.importorskip("ansz.api")


def invoke(args, input=None, env=None):
    result = CliRunner().invoke(cli, [str(a) for a in args], input=input, env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert "Traceback" not in result.stderr
    return result


def run(args, input=b"", cwd=None, env=None, **kw):
    """The installed ``ansz`` in a subprocess (stdin/stdout/stderr are pipes, not terminals)."""
    assert ANSZ, "the ansz console script is not installed (pip install -e .)"
    proc = subprocess.run([ANSZ, *map(str, args)], input=input, capture_output=True, cwd=cwd,
                          env=env, timeout=120, **kw)
    assert b"Traceback" not in proc.stderr, proc.stderr.decode()
    return proc


def error_lines(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ln.startswith("ansz: ")]


def rng(seed=0):
    return np.random.default_rng(seed)


def weights(shape, dtype, seed=0):
    return (rng(seed).standard_normal(shape) * 0.02).astype(np.float32).astype(dtype)


def make_model(path: Path, kind: str = "mixed", seed: int = 0) -> Path:
    """A small but realistic safetensors file written by the safetensors library."""
    r = rng(seed)
    if kind == "mixed":
        tensors = {
            "embed.weight": weights((96, 64), ml_dtypes.bfloat16, seed),
            "layer.0.attn.weight": weights((64, 64), ml_dtypes.bfloat16, seed + 1),
            "layer.0.attn.bias": weights((64,), np.float32, seed + 2),
            "layer.0.fp8.weight": weights((64, 48), ml_dtypes.float8_e4m3fn, seed + 3),
            "position_ids": np.arange(128, dtype=np.int64).reshape(1, 128),
            "mask": r.random((32, 32)) < 0.3,
        }
    else:
        tensors = {"t": {
            "bf16": lambda: weights((128, 96), ml_dtypes.bfloat16, seed),
            "f16": lambda: weights((128, 96), np.float16, seed),
            "f32": lambda: weights((96, 64), np.float32, seed),
            "f64": lambda: weights((48, 32), np.float64, seed),
            "f8e4m3": lambda: weights((128, 96), ml_dtypes.float8_e4m3fn, seed),
            "f8e5m2": lambda: weights((128, 96), ml_dtypes.float8_e5m2, seed),
            "i8": lambda: r.integers(-128, 128, (64, 64)).astype(np.int8),
            "u8": lambda: r.integers(0, 256, (64, 64)).astype(np.uint8),
            "i32": lambda: r.integers(-1000, 1000, (64, 64)).astype(np.int32),
            "i64": lambda: np.arange(4096, dtype=np.int64),
            "bool": lambda: r.random((64, 64)) < 0.5,
        }[kind]()}
    save_file(tensors, str(path), metadata={"format": "pt"})
    return path


def make_bytes(path: Path, n: int = 50_000, seed: int = 0) -> Path:
    """Not a safetensors file: text-ish bytes with some repetition."""
    words = [b"alpha ", b"beta ", b"gamma\n", b"\x00\x01\x02", b"delta "]
    r = rng(seed)
    path.write_bytes(b"".join(words[i] for i in r.integers(0, len(words), n // 5))[:n])
    return path


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


# -------------------------------------------------------------------------------------------
# Start-up, version, help: no API needed


def test_import_cli_loads_neither_numpy_nor_numba():
    code = ("import sys, ansz.cli; "
            "print(','.join(m for m in ('numpy', 'numba', 'rich') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_help_loads_neither_numpy_nor_numba():
    code = ("import sys\nfrom ansz.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print('LOADED', ','.join(m for m in ('numpy', 'numba') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().endswith("LOADED"), out.stdout
    assert "compress" in out.stdout


def test_version_and_help():
    for args in (["--version"], ["-V"]):
        r = invoke(args)
        assert r.exit_code == 0 and r.stdout.strip() == f"ansz {__version__}"
    r = invoke(["--help"])
    assert r.exit_code == 0
    for name in ("compress", "decompress", "verify", "stats", "info"):
        assert name in r.stdout
        assert invoke([name, "-h"]).exit_code == 0


def test_console_script_and_python_m():
    assert run(["--version"]).stdout.decode().strip() == f"ansz {__version__}"
    proc = subprocess.run([sys.executable, "-m", "ansz", "--help"], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0 and "decompress" in proc.stdout


@pytest.mark.parametrize("args", [
    ["bogus"],
    ["compress", "--no-such-option"],
    ["compress", "-T", "-1", "x"],
    ["compress", "-T", "many", "x"],
    ["compress", "--chunk-size", "4Q", "x"],
    ["compress", "--chunk-size", "0", "x"],
    ["compress", "-o", "out", "a", "b"],
    ["compress", "-c", "a", "b"],
    ["compress", "-c", "-o", "out", "a"],
    ["compress", "-", "-"],
    ["decompress", "-o", "out", "a.ansz", "b.ansz"],
    ["verify"],
    ["verify", "-"],
    ["stats"],
    ["stats", "-"],
    ["stats", "--top", "0", "x"],
    ["info"],
    ["info", "-"],
])
def test_usage_errors_exit_2(args, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = invoke(args)
    assert r.exit_code == 2, (args, r.stderr)
    assert "Usage:" in r.stderr and r.stdout == ""


def test_bad_threads_env_is_a_usage_error():
    r = invoke(["compress", "x"], env={"ANSZ_THREADS": "lots"})
    assert r.exit_code == 2 and "ANSZ_THREADS" in r.stderr


@pytest.mark.parametrize("text, n", [
    ("65536", 65536), ("64K", 64 << 10), ("64k", 64 << 10), ("4M", 4 << 20), ("4MiB", 4 << 20),
    ("4MB", 4 << 20), ("4 MiB", 4 << 20), ("1G", 1 << 30), ("100B", 100),
])
def test_size_parser(text, n):
    assert _Size().convert(text, None, None) == n


@pytest.mark.parametrize("text", ["", "M", "4Q", "-1", "1.5M", "4iB", "0", "4Mi B"])
def test_size_parser_rejects(text):
    import click

    with pytest.raises(click.BadParameter):
        _Size().convert(text, None, None)


def test_human_size():
    assert human_size(0) == "0 B"
    assert human_size(999) == "999 B"
    assert human_size(1000) == "1.00 kB"
    assert human_size(66_400) == "66.4 kB"
    assert human_size(797_000_000) == "797 MB"
    assert human_size(999_600_000) == "1.00 GB"
    assert human_size(1_200_000_000) == "1.20 GB"


# -------------------------------------------------------------------------------------------
# Man page <-> CLI


def _cli_options() -> dict[str, set[str]]:
    """Every option string per (sub)command, from click's command tree."""
    import click

    ctx = click.Context(cli)
    found = {"ansz": {o for p in cli.get_params(ctx) for o in (*p.opts, *p.secondary_opts)}}
    for name, cmd in cli.commands.items():
        sub = click.Context(cmd, parent=ctx)
        found[name] = {o for p in cmd.get_params(sub) if isinstance(p, click.Option)
                       for o in (*p.opts, *p.secondary_opts)}
    return found


def _man_option_tokens(text: str) -> set[str]:
    """Option-looking tokens in roff source: ``\\-\\-long\\-name`` and a standalone ``\\-x``."""
    body = "\n".join(ln for ln in text.splitlines() if not ln.startswith('.\\"'))
    longs = re.findall(r"\\-\\-([A-Za-z0-9]+(?:\\-[A-Za-z0-9]+)*)", body)
    body = re.sub(r"\\-\\-[A-Za-z0-9]+(?:\\-[A-Za-z0-9]+)*", " ", body)
    shorts = re.findall(r"(?<![\w\\/.])\\-([A-Za-z0-9])(?![\w\\])", body)
    return {"--" + s.replace("\\-", "-") for s in longs} | {"-" + s for s in shorts}


def test_man_page_documents_every_option_and_only_real_ones():
    text = MAN.read_text(encoding="utf-8")
    per_command = _cli_options()
    cli_all = set().union(*per_command.values())
    man_all = _man_option_tokens(text)
    missing = {f"{cmd} {opt}" for cmd, opts in per_command.items() for opt in opts
               if opt not in man_all}
    assert not missing, f"options missing from man/ansz.1: {sorted(missing)}"
    unknown = man_all - cli_all
    assert not unknown, f"man/ansz.1 mentions options the CLI lacks: {sorted(unknown)}"
    for name in cli.commands:  # every subcommand documented, with a heading of its own
        assert re.search(rf"^\.(TP|SS|B|BR|BI)\b.*\b{name}\b", text, re.M), name
    for word in ("EXIT STATUS", "ANSZ_THREADS", "sha256sum", "\\-\\-json"):
        assert word in text


def test_man_page_token_scanner():
    toks = _man_option_tokens(r"""
.BR \-o ", " \-\-output " \fIFILE\fR"
.BR \-\-progress ", " \-\-no\-progress
neural\-network SHA\-256 model\-0000*\-of\-00004 \-o ./\- \-T 2
""")
    assert toks == {"-o", "--output", "--progress", "--no-progress", "-T"}


def test_man_page_renders_without_warnings():
    if not shutil.which("groff"):
        pytest.skip("groff not installed")
    proc = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", str(MAN)],
                          capture_output=True, text=True)
    assert proc.returncode == 0
    bad = [ln for ln in proc.stderr.splitlines() if "cannot adjust line" not in ln]
    assert not bad, bad
