"""``ansz stats``: predictions a person can read in 80 columns, and JSON that matches the API
and the real compression."""

from __future__ import annotations

import json
import os
import re

import ml_dtypes
import numpy as np
import pytest
from safetensors.numpy import save_file

import ansz
from ansz import stats

from helpers import error_lines, invoke, make_bytes, make_model, run, weights

LONG = "model.layers.17.self_attn.rotary_emb.inv_freq_and_a_very_long_suffix.weight"


def _model(path):
    save_file({"model.embed_tokens.weight": weights((512, 300), ml_dtypes.bfloat16, 0),
               LONG: weights((300, 200), ml_dtypes.bfloat16, 1),
               "lm_head.weight": weights((200, 300), np.float32, 2),
               "norm.weight": np.ones(200, np.float32)}, str(path))
    return path


def test_json_matches_the_api_and_the_real_container(tmp_path):
    src = _model(tmp_path / "m.safetensors")
    r = invoke(["stats", "--json", src])
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert set(doc) == {"path", "format", "container", "level", "file_size",
                        "compressed_bytes", "ratio", "zstd3_bytes", "zstd3_ratio", "exact",
                        "sampled_bytes", "container_overhead", "fallback_reason",
                        "tensor_count", "base", "dtypes", "segments"}
    assert doc["base"] is None
    real = invoke(["compress", "-q", "-o", tmp_path / "m.ansz", src])
    assert real.exit_code == 0
    size = (tmp_path / "m.ansz").stat().st_size
    assert doc["format"] == "safetensors" and doc["level"] == 2 and doc["exact"]
    assert abs(doc["compressed_bytes"] - size) <= 8
    assert doc["ratio"] == pytest.approx(doc["compressed_bytes"] / doc["file_size"])
    assert doc["tensor_count"] == 4 and doc["fallback_reason"] is None
    sizes = [s["nbytes"] for s in doc["segments"]]
    assert sizes == sorted(sizes, reverse=True) and sum(sizes) == doc["file_size"]
    assert {d["dtype"] for d in doc["dtypes"]} == {"BF16", "F32", None}
    assert (sum(d["compressed_bytes"] for d in doc["dtypes"]) + doc["container_overhead"]
            == doc["compressed_bytes"])
    by_label = {s["label"]: s for s in doc["segments"]}
    assert by_label[LONG]["shape"] == [300, 200] and by_label[LONG]["dtype"] == "BF16"
    assert by_label["(1 small F32 tensor)"]["name"] is None  # norm.weight: 1.2 kB, small
    top = json.loads(invoke(["stats", "--json", "--top", "2", src]).stdout)
    assert [s["label"] for s in top["segments"]] == [s["label"] for s in doc["segments"][:2]]
    fast = json.loads(invoke(["stats", "--json", "--fast", src]).stdout)
    invoke(["compress", "-q", "--fast", "-o", tmp_path / "f.ansz", src])
    assert fast["level"] == 1
    assert abs(fast["compressed_bytes"] - (tmp_path / "f.ansz").stat().st_size) <= 8


def test_the_report_fits_80_columns_and_says_which_is_smaller(tmp_path):
    src = _model(tmp_path / "m.safetensors")
    r = invoke(["stats", src], env={"COLUMNS": "80"})
    assert r.exit_code == 0, r.stderr
    lines = r.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert lines[0] == str(src)
    assert "every chunk coded" in lines[1]
    assert any(re.match(r"  BF16 +2 tensors +\d", line) for line in lines)
    assert any(line.startswith("  (other bytes)") for line in lines)
    assert re.fullmatch(r"ansz \S+ \S+ \(\d+\.\d%\), zstd -3 \S+ \S+ \(\d+\.\d%\): "
                        r"ansz saves \S+ \S+ more", lines[-1])
    assert "█" in r.stdout  # a bar per row
    assert LONG not in r.stdout and "lm_head.weight" not in r.stdout  # tensors only with -v
    r = invoke(["stats", "-v", src], env={"COLUMNS": "80"})
    assert max(len(line) for line in r.stdout.splitlines()) <= 80
    assert "lm_head.weight" in r.stdout and LONG not in r.stdout
    assert re.search("…[^ ]*" + re.escape(LONG[-20:]), r.stdout)  # the end of a name is kept
    r = invoke(["stats", "-v", src], env={"COLUMNS": "160"})
    assert LONG in r.stdout and max(len(line) for line in r.stdout.splitlines()) <= 160
    r = invoke(["stats", "--top", "1", src], env={"COLUMNS": "80"})
    assert "(4 more)" in r.stdout and "model.embed_tokens.weight" in r.stdout


def test_piped_output_defaults_to_80_columns(tmp_path):
    src = _model(tmp_path / "m.safetensors")
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    p = run(["stats", "-v", src], env=env)
    assert p.returncode == 0
    assert max(len(line) for line in p.stdout.decode().splitlines()) <= 80


def test_zstd_smaller_is_said_plainly(tmp_path):
    src = tmp_path / "zeros.bin"
    src.write_bytes(bytes(200_000))
    r = invoke(["stats", src])
    assert r.exit_code == 0
    assert "(file)" in r.stdout
    last = r.stdout.splitlines()[-1]
    assert ("zstd -3 is" in last and last.endswith("smaller")) or "ansz saves" in last
    fs = ansz.file_stats(src)
    assert ("ansz saves" in last) == (fs.compressed_bytes < fs.zstd3_bytes)


def test_several_files_get_a_total_line_and_json_lines(tmp_path):
    a = make_model(tmp_path / "a.safetensors", "mixed")
    b = make_bytes(tmp_path / "b.bin")
    r = invoke(["stats", a, b])
    assert r.exit_code == 0
    assert r.stdout.splitlines()[-1].startswith("total: 2 files, ")
    r = invoke(["stats", "--json", a, b])
    docs = [json.loads(line) for line in r.stdout.splitlines()]
    assert [d["format"] for d in docs] == ["safetensors", "bytes"]
    r = invoke(["stats", a, tmp_path / "missing"])
    assert r.exit_code == 1 and len(error_lines(r.stderr)) == 1 and str(a) in r.stdout


def test_a_container_shows_what_it_stores(tmp_path):
    src = make_model(tmp_path / "m.safetensors", "mixed")
    invoke(["compress", "-q", src])
    packed = tmp_path / "m.safetensors.ansz"
    r = invoke(["stats", packed])
    assert r.exit_code == 0, r.stderr
    assert "ansz container of safetensors" in r.stdout and "stored" in r.stdout
    doc = json.loads(invoke(["stats", "--json", packed]).stdout)
    assert doc["container"] and doc["compressed_bytes"] == packed.stat().st_size
    assert doc["zstd3_bytes"] is None and doc["level"] is None


def test_empty_damaged_and_stdin(tmp_path):
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    doc = json.loads(invoke(["stats", "--json", empty]).stdout)
    assert doc["ratio"] is None and doc["zstd3_ratio"] is None and doc["file_size"] == 0
    assert "empty" in invoke(["stats", empty]).stdout
    bad = tmp_path / "bad.safetensors"
    _model(bad)
    bad.write_bytes(bad.read_bytes().replace(b'"F32"', b'"F99"'))
    r = invoke(["stats", bad])
    assert r.exit_code == 0 and "stored as plain bytes" in r.stdout and "F99" in r.stdout
    r = invoke(["stats", "-"], input=b"x")
    assert r.exit_code == 2 and "standard input" in r.stderr


def test_exact_codes_every_chunk(tmp_path, monkeypatch):
    src = make_model(tmp_path / "m.safetensors", "layers", n=2_400_000)  # ~4.8 MB
    monkeypatch.setattr(stats, "STATS_SAMPLE", 1 << 20)
    sampled = json.loads(invoke(["stats", "--json", src]).stdout)
    exact = json.loads(invoke(["stats", "--json", "--exact", src]).stdout)
    assert not sampled["exact"] and sampled["sampled_bytes"] < sampled["file_size"]
    assert exact["exact"] and exact["sampled_bytes"] == exact["file_size"]
    invoke(["compress", "-q", src])
    size = (tmp_path / "m.safetensors.ansz").stat().st_size
    assert abs(exact["compressed_bytes"] - size) <= 8
    assert sampled["compressed_bytes"] == pytest.approx(size, rel=0.01)
