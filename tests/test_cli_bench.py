"""``ansz bench``: the README's first command, on the shipped sample weights or given files."""

from __future__ import annotations

import json
import re

from helpers import error_lines, invoke, make_model, run


def test_bench_with_no_file_runs_on_the_sample_weights_through_the_installed_command():
    p = run(["bench", "--time", "0"])
    assert p.returncode == 0, p.stderr.decode()
    out = p.stdout.decode()
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 80
    for name in ("sample-bf16.safetensors", "sample-f32.safetensors", "sample-fp8.safetensors"):
        assert re.search(rf"^{re.escape(name)} +\d+ kB  ansz +\d+\.\d% +\d+ MB/s +\d+ MB/s$",
                         out, re.M), out
    assert len(re.findall(r"^ +ansz --fast +\d", out, re.M)) == 3
    assert len(re.findall(r"^ +zstd -3 +\d", out, re.M)) == 3
    assert re.search(r"^total 1\.\d+ MB: ansz .*, zstd -3 .*: ansz saves \S+ \S+$", out, re.M)


def test_bench_json_on_a_given_file(tmp_path):
    src = make_model(tmp_path / "m.safetensors", "layers", n=200_000)
    r = invoke(["bench", "--json", "--time", "0", "-T", "1", src])
    assert r.exit_code == 0, r.stderr
    docs = [json.loads(line) for line in r.stdout.splitlines()]
    assert [d["command"] for d in docs] == ["ansz", "ansz --fast", "zstd -3"]
    for d in docs:
        assert set(d) == {"path", "codec", "level", "command", "original_size",
                          "compressed_size", "ratio", "compress_mbps", "decompress_mbps",
                          "runs"}
        assert d["path"] == str(src) and d["original_size"] == src.stat().st_size
        assert d["compress_mbps"] > 0 and d["decompress_mbps"] > 0 and d["runs"] == 1
    assert docs[0]["ratio"] < docs[2]["ratio"]  # bf16 weights: ansz beats zstd
    invoke(["compress", "-q", src])
    assert docs[0]["compressed_size"] < (tmp_path / "m.safetensors.ansz").stat().st_size + 1
    assert "sample files" not in invoke(["bench", "--time", "0", src]).stdout


def test_bench_errors(tmp_path):
    src = make_model(tmp_path / "m.safetensors", "mixed")
    r = invoke(["bench", "--time", "0", src, tmp_path / "missing"])
    assert r.exit_code == 1 and len(error_lines(r.stderr)) == 1 and "m.safetensors" in r.stdout
    r = invoke(["bench", "-"], input=b"x")
    assert r.exit_code == 2 and "standard input" in r.stderr
    r = invoke(["bench", "--time", "-1"])
    assert r.exit_code == 2
