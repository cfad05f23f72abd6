"""file_stats: the per-tensor entropy, coding-pair bound and coder ratios that ``ansz stats``
prints, against hand computations, numpy and real compression.
"""

import ml_dtypes
import numpy as np
import pytest
from safetensors.numpy import save_file

from ansz import api
from ansz.errors import FormatError

from helpers import handmade_safetensors, values


def test_file_stats_against_a_hand_computation(tmp_path):
    u8 = np.array([0, 0, 1, 1], np.uint8)  # entropy 1 bit, 4 elements -> 0.5 bytes
    bf = np.array([1.0, 2.0, 0.5, 1.5, 1.0, 1.0, -1.0, 4.0], ml_dtypes.bfloat16)
    src = tmp_path / "s.safetensors"
    save_file({"u": u8, "w": bf}, str(src))
    fs = api.file_stats(src)
    assert fs.format == "safetensors" and fs.file_size == src.stat().st_size
    by_name = {t.name: t for t in fs.tensors}
    assert by_name["u"].code_entropy == pytest.approx(1.0)
    assert by_name["u"].bound_bytes == pytest.approx(0.5)
    assert by_name["u"].predicted_ratio == pytest.approx(0.5 / 4)
    # bf16 code = exponent byte: 1.0,1.5,1.0,1.0,-1.0 -> 127 (5x); 2.0 -> 128; 0.5 -> 126; 4.0 -> 129
    p = np.array([5, 1, 1, 1]) / 8
    h = float(-(p * np.log2(p)).sum())
    assert by_name["w"].code_entropy == pytest.approx(h)
    assert by_name["w"].bound_bytes == pytest.approx(8 * (h + 8) / 8)
    assert by_name["w"].shape == (8,) and by_name["w"].dtype == "BF16" and by_name["w"].nbytes == 16
    assert fs.other_bytes == fs.file_size - 4 - 16
    assert fs.bound_bytes == pytest.approx(0.5 + 8 * (h + 8) / 8 + fs.other_bytes)
    assert fs.predicted_ratio == pytest.approx(fs.bound_bytes / fs.file_size)


def test_file_stats_compares_the_coders_and_zstd(tmp_path):
    """The coders' predicted ratios come in the order their efficiency implies, the rANS one
    (with the fielded codes ansz writes) beats the coding-pair bound and matches a real
    compression, and zstd-3 is measured, not assumed."""
    x = (np.random.default_rng(0).standard_normal(200_000) * 0.02).astype(ml_dtypes.bfloat16)
    path = tmp_path / "w.safetensors"
    save_file({"w": x}, str(path))
    fs = api.file_stats(path)
    (t,) = fs.tensors
    r = t.coder_ratios
    assert r["rans"] <= r["huffman"] <= r["qlc"] < 1
    assert r["rans"] < t.predicted_ratio * 0.997  # the top mantissa bits join the code
    real = api.compress_file(path, tmp_path / "w.ansz").ratio
    assert real == pytest.approx(fs.coder_ratios["rans"], rel=0.003)
    assert 0.7 < t.zstd3_ratio < 0.9  # zstd on bf16 weights: ~0.78


def test_file_stats_of_a_big_tensor_matches_numpy(tmp_path):
    x = values(ml_dtypes.bfloat16, 3_000_000)  # > one stats piece
    src = tmp_path / "s.safetensors"
    save_file({"x": x}, str(src))
    t = api.file_stats(src).tensors[0]
    counts = np.bincount((x.view(np.uint16) >> 7).astype(np.uint8), minlength=256)
    p = counts[counts > 0] / x.size
    assert t.code_entropy == pytest.approx(float(-(p * np.log2(p)).sum()))


def test_file_stats_other_files(tmp_path):
    src = tmp_path / "plain.txt"
    src.write_bytes(b"hello")
    fs = api.file_stats(src)
    assert fs.format == "bytes" and fs.tensors == [] and fs.other_bytes == 5
    assert fs.bound_bytes == 5 and fs.predicted_ratio == 1.0
    api.compress_file(src, tmp_path / "plain.ansz")
    with pytest.raises(FormatError, match="ansz container; use info"):
        api.file_stats(tmp_path / "plain.ansz")
    broken = tmp_path / "b.safetensors"
    broken.write_bytes(handmade_safetensors([("a", "F32", np.zeros(4, np.float32))])
                       .replace(b'"F32"', b'"F99"'))
    with pytest.raises(FormatError, match="F99"):
        api.file_stats(broken)
