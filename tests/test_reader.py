"""ansz.open / ansz.load_file: lazy per-tensor reading of a container, like safetensors'
safe_open. Small chunk sizes make small tensors span many chunks, so "only this tensor's
chunks" is a real claim."""

import json
import struct
import sys

import ml_dtypes
import numpy as np
import pytest
from safetensors.numpy import save_file

import ansz
from ansz import api, chunks, reader
from ansz.formats.safetensors import read_layout
from ansz.container import RECORD_HEADER, ContainerFile
from ansz.errors import AnszError, CorruptDataError, FormatError

CHUNK = 4096
RNG = np.random.default_rng(7)

DTYPES = {
    "BF16": ml_dtypes.bfloat16, "F16": np.float16, "F32": np.float32, "F64": np.float64,
    "F8_E4M3": ml_dtypes.float8_e4m3fn, "F8_E5M2": ml_dtypes.float8_e5m2, "I8": np.int8,
    "U8": np.uint8, "I16": np.int16, "U16": np.uint16, "I32": np.int32, "U32": np.uint32,
    "I64": np.int64, "U64": np.uint64, "BOOL": np.bool_,
}


def _values(dtype, n):
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return RNG.random(n) < 0.3
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return RNG.integers(max(info.min, -5000), min(info.max, 5000), n).astype(dtype)
    return (RNG.standard_normal(n) * 0.02).astype(dtype)


def _arrays():
    arrays = {}
    for name, dt in DTYPES.items():
        arrays[f"{name}.big"] = _values(dt, 6000).reshape(60, 100)  # several chunks each
        arrays[f"{name}.scalar"] = _values(dt, 1).reshape(())
        arrays[f"{name}.empty"] = np.zeros((0, 3), dt)
    return arrays


ARRAYS = _arrays()


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    d = tmp_path_factory.mktemp("reader")
    src = d / "m.safetensors"
    save_file(ARRAYS, str(src), metadata={"format": "np", "note": "reader test"})
    dst = d / "m.safetensors.ansz"
    api.compress_file(src, dst, chunk_size=CHUNK, threads=2)
    return dst


def _same(got, want):
    assert got.dtype == want.dtype
    assert got.shape == want.shape
    assert got.tobytes() == want.tobytes()


@pytest.mark.parametrize("dtype", sorted(DTYPES))
def test_get_tensor_equals_original_for_every_dtype(model, dtype):
    with ansz.open(model, threads=2) as f:
        for kind in ("big", "scalar", "empty"):
            name = f"{dtype}.{kind}"
            _same(f.get_tensor(name), ARRAYS[name])
            assert f.dtype(name) == dtype and f.shape(name) == ARRAYS[name].shape


def test_keys_and_metadata_round_trip(model):
    with ansz.open(model) as f:
        assert f.keys() == sorted(ARRAYS)
        assert len(f) == len(ARRAYS) and "BF16.big" in f and "nope" not in f
        assert f.metadata() == {"format": "np", "note": "reader test"}
        f.metadata()["note"] = "changed"  # a copy: the file's metadata does not change
        assert f.metadata()["note"] == "reader test"


def test_metadata_is_none_without_metadata(tmp_path):
    src = tmp_path / "m.safetensors"
    save_file({"w": np.ones((3, 3), np.float32)}, str(src))
    api.compress_file(src, tmp_path / "m.ansz")
    with ansz.open(tmp_path / "m.ansz") as f:
        assert f.metadata() is None and f.keys() == ["w"]


def test_load_file_returns_every_tensor(model):
    got = ansz.load_file(model, threads=3)
    assert sorted(got) == sorted(ARRAYS)
    for name, arr in got.items():
        _same(arr, ARRAYS[name])
        assert arr.flags.writeable


def test_get_tensor_decodes_only_that_tensors_chunks(model, monkeypatch):
    read, decoded = [], []
    real_chunk, real_decode = ContainerFile.chunk, chunks.decode_chunk

    def chunk(self, i):
        read.append(i)
        return real_chunk(self, i)

    def decode_chunk(*args, **kw):
        decoded.append(args[2])  # decoded length
        return real_decode(*args, **kw)

    monkeypatch.setattr(ContainerFile, "chunk", chunk)
    monkeypatch.setattr(chunks, "decode_chunk", decode_chunk)
    info = api.read_info(model)
    segs = {s["name"]: s for s in info.segments}
    header = info.segments[0]
    layout = read_layout(model.with_suffix(""))  # the original, beside the container
    spans = {t.name: t for t in layout.tensors}
    entries = ContainerFile(lambda o, n: model.read_bytes()[o:o + n], model.stat().st_size).index.chunks
    with ansz.open(model, threads=2) as f:
        # opening decodes the safetensors header segment and nothing else
        assert sorted(read) == list(range(header["first_chunk"],
                                          header["first_chunk"] + header["chunk_count"]))
        for name in ("F32.big", "BF16.scalar", "I8.empty", "F64.big"):
            read.clear()
            decoded.clear()
            f.get_tensor(name)
            t = spans[name]
            # exactly the chunks holding its bytes: its own segment's, or for a small tensor
            # the chunk of the run it shares; none for a zero-size tensor
            want = [i for i, c in enumerate(entries) if c.original_offset < t.end
                    and t.start < c.original_offset + c.decoded_length]
            assert sorted(read) == want and len(want) == {"I8.empty": 0, "BF16.scalar": 1}.get(name, len(want))
            assert sorted(decoded) == sorted(entries[i].decoded_length for i in want)
            if name in segs:
                seg = segs[name]
                assert want == list(range(seg["first_chunk"], seg["first_chunk"] + seg["chunk_count"]))
    assert segs["F32.big"]["chunk_count"] > 1 and "I8.empty" not in segs
    assert "BF16.scalar" not in segs


def test_unknown_name_and_closed_file(model):
    f = ansz.open(model)
    with pytest.raises(AnszError, match="no tensor named 'nope'"):
        f.get_tensor("nope")
    with pytest.raises(AnszError):
        f.shape("nope")
    f.close()
    with pytest.raises(AnszError, match="closed"):
        f.get_tensor("F32.big")
    f.close()  # closing twice is fine


def test_corrupt_chunk_fails_only_its_tensor(model, tmp_path):
    bad = tmp_path / "bad.ansz"
    data = bytearray(model.read_bytes())
    info = api.read_info(model)
    seg = next(s for s in info.segments if s["name"] == "F32.big")
    cf = ContainerFile(lambda off, n: memoryview(data)[off:off + n], len(data))
    entry = cf.index.chunks[seg["first_chunk"] + 1]
    data[entry.offset + RECORD_HEADER.size + entry.payload_length // 2] ^= 0x55
    bad.write_bytes(bytes(data))
    with ansz.open(bad) as f:
        with pytest.raises(CorruptDataError):
            f.get_tensor("F32.big")
        _same(f.get_tensor("F16.big"), ARRAYS["F16.big"])  # the rest still reads
    with pytest.raises(CorruptDataError):
        ansz.load_file(bad)


def test_corrupt_header_segment_fails_on_open(model, tmp_path):
    bad = tmp_path / "bad.ansz"
    data = bytearray(model.read_bytes())
    data[24 + RECORD_HEADER.size + 3] ^= 0xFF  # first chunk = the safetensors header
    bad.write_bytes(bytes(data))
    with pytest.raises(CorruptDataError):
        ansz.open(bad)


def test_non_safetensors_containers_are_refused(tmp_path):
    plain = tmp_path / "data.bin"
    plain.write_bytes(b"not a model " * 1000)
    api.compress_file(plain, tmp_path / "data.bin.ansz")
    with pytest.raises(FormatError, match="not a safetensors file.*'bytes'"):
        ansz.open(tmp_path / "data.bin.ansz")
    # a .safetensors file whose header is broken is stored as bytes: also refused
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(struct.pack("<Q", 10) + b'{"a": 1}  ' + bytes(16))
    report = api.compress_file(broken, tmp_path / "broken.ansz")
    assert report.format == "bytes" and report.fallback_reason
    with pytest.raises(FormatError):
        ansz.load_file(tmp_path / "broken.ansz")
    with pytest.raises(AnszError):  # not a container at all
        ansz.open(plain)


def _with_f4(path):
    """A safetensors file with an F4 (packed 4-bit) tensor beside an F32 one."""
    w = np.arange(6, dtype="<f4")
    header = {"__metadata__": {"k": "v"},
              "packed": {"dtype": "F4", "shape": [2, 8], "data_offsets": [0, 8]},
              "w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [8, 32]}}
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + bytes(range(8)) + w.tobytes())
    return w.reshape(2, 3)


def test_sub_byte_dtype_is_listed_but_not_decoded(tmp_path):
    w = _with_f4(tmp_path / "f4.safetensors")
    api.compress_file(tmp_path / "f4.safetensors", tmp_path / "f4.ansz")
    with ansz.open(tmp_path / "f4.ansz") as f:
        assert f.keys() == ["packed", "w"] and f.dtype("packed") == "F4"
        assert f.shape("packed") == (2, 8)
        with pytest.raises(AnszError, match="F4, which numpy cannot represent"):
            f.get_tensor("packed")
        _same(f.get_tensor("w"), w)
    with pytest.raises(AnszError, match="F4"):
        ansz.load_file(tmp_path / "f4.ansz")


def test_bad_framework(model, monkeypatch):
    with pytest.raises(AnszError, match="unknown framework 'tf'"):
        ansz.open(model, framework="tf")
    monkeypatch.setitem(sys.modules, "torch", None)  # as if torch were not installed
    with pytest.raises(AnszError, match="needs PyTorch"):
        ansz.open(model, framework="pt")


def test_framework_pt_returns_torch_tensors(model):
    torch = pytest.importorskip("torch")
    want = {"BF16": torch.bfloat16, "F16": torch.float16, "F32": torch.float32,
            "F64": torch.float64, "F8_E4M3": torch.float8_e4m3fn,
            "F8_E5M2": torch.float8_e5m2, "I8": torch.int8, "U8": torch.uint8,
            "I16": torch.int16, "U16": torch.uint16, "I32": torch.int32,
            "U32": torch.uint32, "I64": torch.int64, "U64": torch.uint64, "BOOL": torch.bool}
    got = ansz.load_file(model, framework="pt")
    for name, t in got.items():
        ref = ARRAYS[name]
        assert isinstance(t, torch.Tensor) and t.dtype == want[name.split(".")[0]]
        assert tuple(t.shape) == ref.shape
        raw = t.reshape(-1).view(torch.uint8) if t.dtype != torch.bool else t.reshape(-1)
        assert raw.numpy().tobytes() == ref.tobytes()
    with ansz.open(model, framework="pt") as f:
        assert torch.equal(f.get_tensor("F32.big"), torch.from_numpy(ARRAYS["F32.big"]))


def test_import_ansz_stays_light():
    import subprocess

    out = subprocess.run([sys.executable, "-c", "import sys, ansz; print('numpy' in sys.modules)"],
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
    assert ansz.open is reader.open and ansz.load_file is reader.load_file
    assert "open" not in ansz.__all__ and "load_file" in ansz.__all__
