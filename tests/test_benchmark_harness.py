"""Tests for scripts/benchmark.py: the coding-pair bound by hand, and the harness end to end
on a tiny generated safetensors model (never the downloaded corpus)."""

from __future__ import annotations

import importlib.util
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
from safetensors.numpy import save_file

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "benchmark.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("ansz_benchmark_script", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look the module up while it executes
    try:
        spec.loader.exec_module(mod)
        yield mod
    finally:
        sys.modules.pop(spec.name, None)


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


# --------------------------------------------------------------------------- unit tests


def test_bound_bf16_known_exponent_distribution(bench, tmp_path):
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

    b = bench.coding_pair_bound(path)
    expected = n * (1.5 + 8) / 8 + header
    assert b["original_bytes"] == size
    assert b["bound_bytes"] == pytest.approx(expected, rel=1e-12)
    assert b["ratio"] == pytest.approx(expected / size, rel=1e-12)


def test_bound_mixed_dtypes_sum_per_tensor(bench, tmp_path):
    # Each tensor uses its own statistics; the header counts as stored.
    rng = np.random.default_rng(1)
    n = 2048
    f32_exps = np.tile([100, 110, 120, 127], n // 4)   # uniform over 4 codes: 2 bits
    bf16_exps = np.full(n, 125)                         # one code: 0 bits
    u8 = np.tile(np.arange(16, dtype=np.uint8), n // 16)  # uniform over 16 bytes: 4 bits
    i32 = np.tile(np.array([0, 1], dtype=np.int32), n // 2)
    # int32 bytes: {0 x7, 1 x1} per pair of elements -> p(0)=7/8, p(1)=1/8
    h_i32 = -(7 / 8 * math.log2(7 / 8) + 1 / 8 * math.log2(1 / 8))
    t = {
        "a": f32_with_exponents(f32_exps, rng),
        "b": bf16_with_exponents(bf16_exps, rng),
        "c": u8,
        "d": i32,
        "e": np.zeros(0, dtype=np.float32),
    }
    path = tmp_path / "mixed.safetensors"
    save_file(t, str(path), metadata={"format": "pt"})
    header = path.stat().st_size - tensor_bytes(t)

    bits = n * (2 + 24) + n * (0 + 8) + n * 4 + (n * 4) * h_i32
    b = bench.coding_pair_bound(path)
    assert b["bound_bytes"] == pytest.approx(bits / 8 + header, rel=1e-9)


def test_bound_f16_and_fp8_codes(bench, tmp_path):
    # F16: the code is the whole high byte; 8-bit floats: the code is the whole byte.
    hi = np.tile(np.array([0x3C, 0xBC], dtype=np.uint16), 512)      # 2 high bytes: 1 bit
    f16 = ((hi << 8) | np.arange(1024, dtype=np.uint16) % 256).view(np.float16)
    fp8 = np.full(1024, 0x38, dtype=np.uint8).view(ml_dtypes.float8_e4m3fn)  # constant: 0
    t = {"h": f16, "q": fp8}
    path = tmp_path / "f16fp8.safetensors"
    save_file(t, str(path))
    header = path.stat().st_size - tensor_bytes(t)
    b = bench.coding_pair_bound(path)
    assert b["bound_bytes"] == pytest.approx(1024 * (1 + 8) / 8 + header, rel=1e-12)


def test_entropy_helper(bench):
    assert bench.order0_entropy_bits(np.zeros(100, np.uint8)) == 0
    assert bench.order0_entropy_bits(np.arange(256, dtype=np.uint8)) == pytest.approx(256 * 8)
    assert bench.order0_entropy_bits(np.zeros(0, np.uint8)) == 0


def test_write_section_replaces_only_its_block(bench, tmp_path):
    md = tmp_path / "BENCHMARKS.md"
    md.write_text("# Benchmarks\n\nintro\n\n<!-- benchmark:begin -->\nold\n"
                  "<!-- benchmark:end -->\n\ntrailer\n")
    bench.write_section(md, "new table")
    text = md.read_text()
    assert "old" not in text and "new table" in text
    assert text.startswith("# Benchmarks\n\nintro\n") and text.rstrip().endswith("trailer")
    assert text.count("<!-- benchmark:begin -->") == 1


# --------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
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
    # One constant 1-byte tensor: every code is the same, so the bound is ~0.
    const = d / "const.safetensors"
    save_file({"q": np.full(1 << 20, 7, dtype=np.uint8)}, str(const))
    return model, const


def parse_rows(out: str) -> dict[tuple[str, str], list[str]]:
    rows = {}
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 10 and cells[0] not in ("file", "---"):
            rows[(cells[0], re.sub(r" \(.*\)$", "", cells[2]))] = cells
    return rows


def run_bench(*args, env=None):
    proc = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True,
                          text=True, cwd=REPO, env=env, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_harness_end_to_end(tiny_model, tmp_path):
    model, const = tiny_model
    md = tmp_path / "BENCHMARKS.md"
    out = run_bench("--repeat", "1", "--tools", "zstd,zstd19,ansz,bound",
                    "--ansz", str(tmp_path / "no-such-ansz"),
                    "--write-benchmarks", "--benchmarks-file", str(md),
                    str(model), str(const))
    assert "ansz: unavailable (" in out
    rows = parse_rows(out)
    for name in ("tiny", "const"):
        for tool in ("zstd-3", "zstd-3 T2", "zstd-19"):
            r = rows[(name, tool)]
            assert 0 < float(r[3]) <= 1.1, r
            assert float(r[4]) > 0 and float(r[5]) > 0, r
            assert r[9] == "ok", r
        assert float(rows[(name, "zstd-3")][6]) == pytest.approx(1.0)
        assert 0 <= float(rows[(name, "coding-pair bound")][3]) <= 1.0
    # bf16 weights: exponent entropy of ~3 bits + 8 raw bits out of 16 -> well under 1.
    assert 0.5 < float(rows[("tiny", "coding-pair bound")][3]) < 0.9
    assert float(rows[("const", "coding-pair bound")][3]) < 0.001

    text = md.read_text()
    assert "<!-- benchmark:begin -->" in text and "<!-- benchmark:end -->" in text
    assert "--repeat 1" in text and "| const | " in text and "CPU:" in text


def test_harness_with_fake_ansz_and_default_tools(tiny_model, tmp_path):
    """The ansz path (subprocess, peak RSS, round-trip check) with a stand-in `ansz`
    that stores the file as is; ZipNN rows appear only where zipnn is installed."""
    model, _ = tiny_model
    fake = tmp_path / "ansz"
    fake.write_text(
        f"#!{sys.executable}\n"
        "import shutil, sys\n"
        "a = sys.argv[1:]\n"
        "if a == ['--version']: print('fake-ansz 0'); sys.exit()\n"
        "shutil.copyfile(a[-1], a[a.index('-o') + 1])\n")
    fake.chmod(0o755)
    env = dict(os.environ, PATH=f"{tmp_path}{os.pathsep}{os.environ.get('PATH', '')}")
    out = run_bench("--repeat", "1", str(model), env=env)
    rows = parse_rows(out)
    for tool in ("ansz", "ansz T1"):
        r = rows[("tiny", tool)]
        assert float(r[3]) == pytest.approx(1.0) and r[9] == "ok", r
        assert re.fullmatch(r"\d+ / \d+", r[8]), r  # peak RSS measured
    if "ZipNN: unavailable" in out:
        assert ("tiny", "ZipNN") not in rows
    else:
        r = rows[("tiny", "ZipNN")]
        assert 0 < float(r[3]) <= 1.1 and r[9] == "ok", r
