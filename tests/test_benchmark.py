"""ansz.bench_file and the shipped sample weights (what ``ansz bench`` runs on)."""

from __future__ import annotations

import io
import json
import os

import ml_dtypes
import numpy as np
import pytest
import zstandard

import ansz
from ansz import api, benchmark


def test_the_sample_weights_are_small_real_safetensors_of_three_dtypes():
    paths = ansz.sample_files()
    assert [os.path.basename(p) for p in paths] == list(benchmark.SAMPLE_FILES)
    assert sum(os.path.getsize(p) for p in paths) <= 2_000_000
    numpy_dtype = {"BF16": ml_dtypes.bfloat16, "F32": np.float32,
                   "F8_E4M3": ml_dtypes.float8_e4m3fn}
    dtypes = set()
    for p in paths:
        data = open(p, "rb").read()
        n = int.from_bytes(data[:8], "little")
        header = json.loads(data[8:8 + n])
        assert "all-MiniLM-L6-v2" in header.pop("__metadata__")["source"]
        for t in header.values():
            dtypes.add(t["dtype"])
            a, b = t["data_offsets"]
            x = np.frombuffer(data[8 + n + a:8 + n + b], numpy_dtype[t["dtype"]])
            if len(t["shape"]) == 2:  # trained weights: spread, finite, not constant
                v = x.astype(np.float32)
                assert 0 < float(np.std(v)) and np.isfinite(v).all()
    assert dtypes == {"BF16", "F32", "F8_E4M3"}


def test_bench_file_measures_every_level_and_zstd_on_the_real_codecs(tmp_path):
    path = ansz.sample_files()[0]
    results = ansz.bench_file(path, threads=2, min_seconds=0)
    assert [(r.codec, r.level) for r in results] == [("ansz", 2), ("ansz", 1), ("zstd", 3)]
    data = open(path, "rb").read()
    for r in results[:2]:  # the sizes compress_stream writes
        out = io.BytesIO()
        api.compress_stream(io.BytesIO(data), out, level=r.level)
        assert r.compressed_size == len(out.getvalue())
    zstd = zstandard.ZstdCompressor(level=3, threads=2)  # as zstd -3 -T2
    assert results[2].compressed_size == len(zstd.compress(data))
    for r in results:
        assert r.name == "sample-bf16.safetensors" and r.original_size == len(data)
        assert r.runs == 1 and r.compress_seconds > 0 and r.decompress_seconds > 0
        assert r.compress_mbps == pytest.approx(len(data) / 1e6 / r.compress_seconds)
    assert results[0].ratio < results[1].ratio < results[2].ratio  # level 2 is the smallest
    assert all(r.threads == 2 for r in results)
    only = ansz.bench_file(path, levels=(2,), min_seconds=0)
    assert [(r.codec, r.level) for r in only] == [("ansz", 2), ("zstd", 3)]
    with pytest.raises(ansz.AnszError, match="level"):
        ansz.bench_file(path, levels=(5,))


def test_bench_file_repeats_until_the_time_is_spent(tmp_path):
    src = tmp_path / "small.bin"
    src.write_bytes(b"abc" * 1000)
    r = ansz.bench_file(src, levels=(1,), min_seconds=0.05, max_runs=7)
    assert all(1 < x.runs <= 7 for x in r)


def test_bench_file_fails_loudly_when_a_round_trip_differs(tmp_path, monkeypatch):
    src = tmp_path / "x.bin"
    src.write_bytes(bytes(range(256)) * 64)
    real = api.decompress_stream

    def lossy(ifh, ofh, **kw):
        buf = io.BytesIO()
        result = real(ifh, buf, **kw)
        ofh.write(buf.getvalue()[:-1] + b"?")
        return result

    monkeypatch.setattr(api, "decompress_stream", lossy)
    with pytest.raises(ansz.AnszError, match="did not give back the original bytes"):
        ansz.bench_file(src, min_seconds=0)


def test_missing_sample_weights_are_a_clear_error(monkeypatch):
    monkeypatch.setattr(benchmark, "SAMPLE_FILES", ("nothing-here.safetensors",))
    with pytest.raises(ansz.AnszError, match="sample weights are missing"):
        ansz.sample_files()
