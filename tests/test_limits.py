"""Edge and hostile inputs at the limits of the format: files the writer must still store
(and readers still open), and crafted containers whose declared sizes must not turn into
memory or time. Each test builds its own input."""

from __future__ import annotations

import io
import json
import struct

import gguf
import numpy as np
import pytest
from safetensors.numpy import save

import ansz
from ansz import api
from ansz import container as c


def _roundtrip(data: bytes, **kw) -> tuple[bytes, api.CompressReport]:
    out = io.BytesIO()
    report = api.compress_stream(io.BytesIO(data), out, threads=1, **kw)
    back = io.BytesIO()
    api.decompress_stream(io.BytesIO(out.getvalue()), back)
    assert back.getvalue() == data
    return out.getvalue(), report


def _file(tmp_path, name: str, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _safetensors(header: dict, data: bytes) -> bytes:
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


# --- files the writer once turned into containers no reader opened ---------------------------


def test_thousands_of_zero_size_tensors(tmp_path):
    tensors = {f"model.layers.{i}.empty_bias": np.zeros((0,), np.float32) for i in range(2000)}
    tensors["w"] = np.random.default_rng(0).standard_normal(1000).astype(np.float32)
    blob, report = _roundtrip(save(tensors))
    assert report.format == "safetensors"
    path = _file(tmp_path, "z.ansz", blob)
    info = api.read_info(path)  # zero-size tensors take no segment: the index stays small
    assert len(info.segments) < 5 and api.verify_file(path).ok
    with ansz.open(path) as f:
        assert len(f.keys()) == 2001 and f.get_tensor("model.layers.7.empty_bias").shape == (0,)
        assert f.get_tensor("w").tobytes() == tensors["w"].tobytes()


def test_gguf_with_thousands_of_zero_size_tensors(tmp_path):
    path = tmp_path / "z.gguf"
    w = gguf.GGUFWriter(path, "llama")
    for i in range(3000):
        w.add_tensor(f"blk.{i}.zero", np.zeros((0,), np.float32))
    w.add_tensor("w", np.random.default_rng(0).standard_normal(1000).astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    blob, report = _roundtrip(path.read_bytes())
    assert report.format == "gguf"
    assert api.verify_file(_file(tmp_path, "z.ansz", blob)).ok


def test_tensor_names_of_a_hundred_thousand_characters(tmp_path):
    tensors = {"n" * 100_000 + str(i): np.ones(400, np.float32) for i in range(3)}
    blob, report = _roundtrip(save(tensors))
    assert report.format == "safetensors"
    with ansz.open(_file(tmp_path, "n.ansz", blob)) as f:
        assert f.get_tensor("n" * 100_000 + "1").tobytes() == tensors["n" * 100_000 + "1"].tobytes()


def test_a_tensor_with_more_dimensions_than_the_index_describes(tmp_path):
    # 65 dimensions: stored like any tensor (in an unnamed segment), not failed after coding
    shape = [1] * 64 + [300]
    w = np.random.default_rng(0).standard_normal(300).astype(np.float32)
    data = _safetensors({"deep": {"dtype": "F32", "shape": shape, "data_offsets": [0, 1200]}},
                        w.tobytes())
    blob, report = _roundtrip(data)
    assert report.format == "safetensors"
    with ansz.open(_file(tmp_path, "d.ansz", blob)) as f:
        assert f.shape("deep") == tuple(shape)
        with pytest.raises(ansz.AnszError, match="65 dimensions"):
            f.get_tensor("deep")  # numpy holds at most 64


def test_many_tiny_tensors_share_chunks(tmp_path):
    # 20 000 four-byte tensors were 20 000 chunk records (~0.2 ms and ~100 bytes each)
    tensors = {f"t{i}": np.full(1, i, np.float32) for i in range(20_000)}
    data = save(tensors)
    blob, report = _roundtrip(data)
    path = _file(tmp_path, "t.ansz", blob)
    info = api.read_info(path)
    assert info.chunk_count < 20 and report.compressed_size < len(data) / 2
    with ansz.open(path) as f:
        assert f.get_tensor("t12345").tobytes() == tensors["t12345"].tobytes()
    got = ansz.load_file(path)
    assert all(got[k].tobytes() == v.tobytes() for k, v in tensors.items())
