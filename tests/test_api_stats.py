"""ansz.file_stats: predictions from the real encoder, checked against real compression."""

from __future__ import annotations

import zstandard
import ml_dtypes
import numpy as np
import pytest
from safetensors.numpy import save_file

import ansz
from ansz import stats
from ansz.options import DEFAULT_CHUNK_SIZE


def _weights(dtype, n, seed=0, scale=0.02):
    return (np.random.default_rng(seed).standard_normal(n) * scale).astype(dtype)


def _compressed(tmp_path, src, **kw):
    """``(container size, read_info)`` of compressing ``src``."""
    dst = tmp_path / (src.name + ".ansz")
    report = ansz.compress_file(src, dst, overwrite=True, **kw)
    return report.compressed_size, ansz.read_info(dst)


def test_a_file_within_the_sample_is_predicted_exactly(tmp_path):
    """Every chunk is coded as compression codes it: each segment's bytes are the stored
    ones, and the container size is off only by the index's compressed checksums."""
    src = tmp_path / "m.safetensors"
    save_file({"a": _weights(ml_dtypes.bfloat16, 700_000), "b": _weights(np.float32, 3000, 1),
               "c": np.arange(100, dtype=np.int32), "d": np.ones(50, np.float32),
               "e": _weights(ml_dtypes.float8_e4m3fn, 5000, 2, 1.0)}, str(src))
    fs = ansz.file_stats(src)
    size, info = _compressed(tmp_path, src)
    assert fs.exact and fs.sampled_bytes == fs.file_size == info.original_size
    assert [s.nbytes for s in fs.segments] == [s["nbytes"] for s in info.segments]
    assert [s.compressed_bytes for s in fs.segments] == [s["compressed_size"]
                                                         for s in info.segments]
    assert abs(fs.compressed_bytes - size) <= 8
    assert fs.ratio == pytest.approx(size / fs.file_size, abs=1e-5)
    assert fs.segments[0].label == "(header)"
    assert {s.label for s in fs.segments[1:]} == {"a", "b", "e", "(1 small I32 tensor)",
                                                  "(1 small F32 tensor)"}
    assert fs.tensor_count == 5 and {t.name for t in fs.tensors} == {"a", "b", "e"}


def test_small_tensors_share_a_labelled_segment(tmp_path):
    src = tmp_path / "s.safetensors"
    save_file({"x": np.ones(10, np.float32), "y": np.zeros(20, np.float32),
               "z": _weights(np.float32, 1000)}, str(src))
    fs = ansz.file_stats(src)
    assert [s.label for s in fs.segments] == ["(header)", "(2 small F32 tensors)", "z"]
    assert fs.segments[1].name is None and fs.segments[1].dtype == "F32"


def test_levels_are_predicted_as_written(tmp_path):
    src = tmp_path / "m.safetensors"
    save_file({"w": _weights(ml_dtypes.bfloat16, 600_000)}, str(src))
    for level in (1, 2):
        size, _ = _compressed(tmp_path, src, level=level)
        fs = ansz.file_stats(src, level=level)
        assert fs.level == level and abs(fs.compressed_bytes - size) <= 8
    assert ansz.file_stats(src, level=1).compressed_bytes > ansz.file_stats(src).compressed_bytes
    with pytest.raises(ansz.AnszError, match="level"):
        ansz.file_stats(src, level=7)


def test_a_sampled_prediction_lands_near_the_real_ratio(tmp_path):
    """Larger than the sample: a few chunks are coded, the rest predicted at their segment's
    rate. Tensors differ in scale and dtype, so a per-file average would miss."""
    src = tmp_path / "big.safetensors"
    save_file({"a": _weights(ml_dtypes.bfloat16, 3_000_000, 0, 0.02),
               "b": _weights(ml_dtypes.bfloat16, 2_000_000, 1, 1e-4).astype(np.float32),
               "c": np.repeat(_weights(np.float16, 200_000, 2), 5),
               "d": _weights(ml_dtypes.bfloat16, 300_000, 3)}, str(src))
    budget = 3 * DEFAULT_CHUNK_SIZE
    fs = ansz.file_stats(src, sample_bytes=budget, threads=2)
    size, info = _compressed(tmp_path, src)
    assert not fs.exact and fs.sampled_bytes < fs.file_size / 4
    assert fs.ratio == pytest.approx(size / fs.file_size, abs=0.005)
    real = {s["name"]: s["compressed_size"] / s["nbytes"] for s in info.segments if s["name"]}
    for t in fs.tensors:
        assert t.sampled_bytes > 0
        assert t.ratio == pytest.approx(real[t.name], abs=0.01)
    # every segment was sampled, "d" (under a chunk's worth of the budget) by a window
    d = next(t for t in fs.tensors if t.name == "d")
    assert d.sampled_bytes == stats.MIN_WINDOW


def test_order0_figure_against_a_hand_computation(tmp_path):
    """Order-0 entropy of the codes plus the raw bits, per element: u8 with two equally
    likely values is 1 bit; bf16 with exponents in proportion 5:1:1:1 is H + 8 bits."""
    u8 = np.tile(np.array([3, 9], np.uint8), 1024)
    vals = np.array([1.0, 1.5, 1.0, -1.0, 1.25, 2.0, 0.5, 4.0], ml_dtypes.bfloat16)
    bf = np.tile(vals, 256)
    src = tmp_path / "h.safetensors"
    save_file({"u": u8, "w": bf}, str(src))
    by_name = {t.name: t for t in ansz.file_stats(src).tensors}
    assert by_name["u"].order0_bits == pytest.approx(1.0)
    p = np.array([5, 1, 1, 1]) / 8
    assert by_name["w"].order0_bits == pytest.approx(float(-(p * np.log2(p)).sum()) + 8)


def test_zstd_column_is_measured_whole_or_from_windows(tmp_path, monkeypatch):
    data = _weights(ml_dtypes.bfloat16, 2_000_000).tobytes()
    src = tmp_path / "w.bin"
    src.write_bytes(data)
    real = len(zstandard.ZstdCompressor(level=3).compress(data))
    assert ansz.file_stats(src).zstd3_bytes == real
    monkeypatch.setattr(stats, "ZSTD_WHOLE", 1 << 20)
    monkeypatch.setattr(stats, "ZSTD_WINDOW", 256 << 10)
    monkeypatch.setattr(stats, "ZSTD_WINDOWS", 4)
    windowed = ansz.file_stats(src).zstd3_bytes
    assert windowed != real and windowed == pytest.approx(real, rel=0.01)


def test_plain_files_text_and_empty(tmp_path):
    src = tmp_path / "t.txt"
    src.write_bytes(b"the same words again and again " * 2000)
    fs = ansz.file_stats(src)
    size, _ = _compressed(tmp_path, src)
    assert fs.format == "bytes" and fs.tensors == [] and fs.tensor_count == 0
    assert [s.label for s in fs.segments] == ["(file)"]
    assert abs(fs.compressed_bytes - size) <= 8 and fs.ratio < 0.1
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    fs = ansz.file_stats(empty)
    assert fs.file_size == 0 and fs.ratio is None and fs.zstd3_ratio is None
    assert fs.segments == [] and fs.compressed_bytes == _compressed(tmp_path, empty)[0]


def test_a_damaged_safetensors_is_predicted_as_the_bytes_it_would_be_stored_as(tmp_path):
    src = tmp_path / "b.safetensors"
    save_file({"a": _weights(np.float32, 4000)}, str(src))
    src.write_bytes(src.read_bytes().replace(b'"F32"', b'"F99"'))
    fs = ansz.file_stats(src)
    size, info = _compressed(tmp_path, src)
    assert fs.format == info.format == "bytes" and "F99" in fs.fallback_reason
    assert abs(fs.compressed_bytes - size) <= 8


def test_stats_of_a_container_are_what_it_stores(tmp_path):
    src = tmp_path / "m.safetensors"
    save_file({"w": _weights(ml_dtypes.bfloat16, 300_000), "s": np.ones(3, np.float32)},
              str(src))
    size, info = _compressed(tmp_path, src)
    fs = ansz.file_stats(tmp_path / "m.safetensors.ansz")
    assert fs.is_container and fs.exact and fs.level is None and fs.zstd3_bytes is None
    assert fs.format == "safetensors" and fs.file_size == src.stat().st_size
    assert fs.compressed_bytes == size
    assert [s.compressed_bytes for s in fs.segments] == [s["compressed_size"]
                                                         for s in info.segments]
    # the container's own header is read to count the small tensors, as in the original
    assert sorted(s.label for s in fs.segments) == ["(1 small F32 tensor)", "(header)", "w"]
    orig = ansz.file_stats(src)
    assert fs.tensor_count == orig.tensor_count == 2
    assert ([(d.dtype, d.tensors, d.segments) for d in fs.by_dtype]
            == [(d.dtype, d.tensors, d.segments) for d in orig.by_dtype])
    assert fs.container_overhead == size - sum(s["compressed_size"] for s in info.segments)


def test_per_dtype_totals_add_up(tmp_path):
    src = tmp_path / "m.safetensors"
    save_file({"a": _weights(ml_dtypes.bfloat16, 20_000), "b": _weights(ml_dtypes.bfloat16, 9000),
               "c": _weights(np.float32, 5000)}, str(src))
    fs = ansz.file_stats(src)
    assert [d.dtype for d in fs.by_dtype] == ["BF16", "F32", None]
    bf = fs.by_dtype[0]
    assert bf.segments == bf.tensors == 2 and bf.nbytes == 58_000
    assert fs.by_dtype[-1].tensors == 0  # the header holds no tensor
    assert sum(d.compressed_bytes for d in fs.by_dtype) == sum(s.compressed_bytes
                                                               for s in fs.segments)
    assert fs.compressed_bytes == (sum(d.compressed_bytes for d in fs.by_dtype)
                                   + fs.container_overhead)


def test_gguf_quantized_tensors_are_coded_as_compression_codes_them(tmp_path):
    gguf = pytest.importorskip("gguf")
    from gguf import GGMLQuantizationType as T

    r = np.random.default_rng(0)
    path = tmp_path / "m.gguf"
    w = gguf.GGUFWriter(path, "llama")
    w.add_token_list([f"tok{i}" for i in range(500)])
    x = (r.standard_normal((256, 1024)) * 0.02).astype(np.float32)
    for qt in ("Q8_0", "Q4_0"):
        w.add_tensor(f"{qt.lower()}.weight", gguf.quants.quantize(x, T[qt]), raw_dtype=T[qt])
    w.add_tensor("norm.weight", r.standard_normal(3000).astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    fs = ansz.file_stats(path)
    size, info = _compressed(tmp_path, path)
    assert fs.format == info.format == "gguf"
    assert {t.dtype for t in fs.tensors} == {"Q8_0", "Q4_0", "F32"}
    assert abs(fs.compressed_bytes - size) <= 8
    assert fs.ratio < 0.97  # Q8_0 blocks compress: they are not stored as raw bytes
