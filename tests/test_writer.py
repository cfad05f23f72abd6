"""ansz.save_file / ansz.save: containers written from arrays decode to exactly the bytes the
safetensors library writes for the same arrays."""

import io
import json
import tracemalloc

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.numpy import save as library_save

import ansz
from ansz import api
from ansz.errors import AnszError

RNG = np.random.default_rng(11)

#: safetensors dtype -> numpy dtype, every whole-byte dtype the library stores.
DTYPES = {
    "BOOL": np.bool_, "U8": np.uint8, "I8": np.int8, "I16": np.int16, "U16": np.uint16,
    "I32": np.int32, "U32": np.uint32, "I64": np.int64, "U64": np.uint64, "F16": np.float16,
    "F32": np.float32, "F64": np.float64, "C64": np.complex64, "BF16": ml_dtypes.bfloat16,
    "F8_E4M3": ml_dtypes.float8_e4m3fn, "F8_E5M2": ml_dtypes.float8_e5m2,
    "F8_E8M0": ml_dtypes.float8_e8m0fnu, "F8_E4M3FNUZ": ml_dtypes.float8_e4m3fnuz,
    "F8_E5M2FNUZ": ml_dtypes.float8_e5m2fnuz,
}


def _values(dtype, shape):
    dtype = np.dtype(dtype)
    n = int(np.prod(shape))
    if dtype == np.bool_:
        out = RNG.random(n) < 0.3
    elif dtype.kind in "iu":
        out = RNG.integers(0, 100, n).astype(dtype)
    elif dtype.kind == "c":
        out = (RNG.standard_normal(n) + 1j * RNG.standard_normal(n)).astype(dtype)
    else:
        out = RNG.random(n).astype(np.float32).astype(dtype)
    return out.reshape(shape)


def _decoded(blob: bytes) -> bytes:
    out = io.BytesIO()
    api.decompress_stream(io.BytesIO(blob), out)
    return out.getvalue()


def _every_dtype():
    tensors = {}
    for name, dt in DTYPES.items():
        tensors[f"{name}.matrix"] = _values(dt, (37, 29))
        tensors[f"{name}.scalar"] = _values(dt, ())
        tensors[f"{name}.empty"] = _values(dt, (0, 4))
    return tensors


@pytest.mark.parametrize("metadata", [None, {}, {"format": "np"}])
def test_every_dtype_decodes_to_the_librarys_bytes(tmp_path, metadata):
    tensors = _every_dtype()
    want = library_save(tensors, metadata=metadata)
    path = tmp_path / "m.safetensors.ansz"
    report = ansz.save_file(tensors, path, metadata, chunk_size=4096, threads=2)
    assert report.format == "safetensors" and report.original_size == len(want)
    assert report.src == "<tensors>" and report.dst == str(path)
    api.decompress_file(path, tmp_path / "m.safetensors")
    assert (tmp_path / "m.safetensors").read_bytes() == want
    assert api.verify_file(path).ok
    got = ansz.load_file(path)
    for name, arr in tensors.items():
        assert got[name].dtype == arr.dtype and got[name].tobytes() == arr.tobytes()


def test_metadata_keys_keep_the_dicts_order(tmp_path):
    """The library writes two or more metadata keys in a hash map's order (it changes
    from run to run); ansz writes the dict's, so it matches the library's file whose order
    it is given, and the same call always gives the same container."""
    tensors = {"w": _values(np.float32, (10, 10)), "b": _values(np.int8, (5,))}
    metadata = {f"key{i}": f"value {i}" for i in range(12)}
    want = library_save(tensors, metadata=metadata)
    n = int.from_bytes(want[:8], "little")
    order = list(json.loads(want[8:8 + n])["__metadata__"])
    assert sorted(order) == sorted(metadata)
    blob = ansz.save(tensors, {k: metadata[k] for k in order})
    assert _decoded(blob) == want
    assert ansz.save(tensors, metadata) == ansz.save(tensors, dict(metadata))
    assert json.loads(_decoded(ansz.save(tensors, metadata))[8:8 + n])["__metadata__"] == metadata


def test_no_tensors_and_empty_metadata_is_valid_where_the_librarys_is_not():
    """The one case where the bytes differ: the library's JSON writer, told the header has
    no entries, closes it at once, and writes `{},"__metadata__":{}}`, a header the library
    itself cannot read. ansz writes the header it meant."""
    from safetensors.numpy import load as library_load

    broken = library_save({}, metadata={})
    assert broken[8:].startswith(b'{},"__metadata__":{}}')
    with pytest.raises(Exception, match="invalid JSON"):
        library_load(broken)
    ours = _decoded(ansz.save({}, {}))
    assert ours == b"\x18" + bytes(7) + b'{"__metadata__":{}}' + b" " * 5
    assert library_load(ours) == {}
    assert _decoded(ansz.save({"w": np.ones(2, np.int8)}, {})) == library_save(
        {"w": np.ones(2, np.int8)}, metadata={})  # with a tensor the library gets it right


def test_empty_and_zero_size(tmp_path):
    cases = [({}, None), ({}, {"only": "metadata"}),
             ({"z": np.zeros((0,), np.float32), "zz": np.zeros((3, 0, 2), ml_dtypes.bfloat16)},
              None)]
    for tensors, metadata in cases:
        blob = ansz.save(tensors, metadata)
        assert _decoded(blob) == library_save(tensors, metadata=metadata)
        got = ansz.load(blob)
        assert list(got) == list(tensors) or sorted(got) == sorted(tensors)
        for name, arr in got.items():
            assert arr.shape == tensors[name].shape and arr.dtype == tensors[name].dtype


NAMES = ["plain", "quote\"and\\backslash", "tab\tnew\nline\r\x00\x01\x1f\x7f", "é ü 中文",
         "emoji \U0001F600", "line\u2028sep", "/slash", "x" * 5000, ""]


def test_names_and_metadata_escaped_as_the_library_does():
    tensors = {name: _values(np.float16, (3,)) for name in NAMES}
    for key in NAMES:
        metadata = {key: "v\"\\\n\x02\u2028é"}
        assert _decoded(ansz.save(tensors, metadata)) == library_save(tensors, metadata=metadata)


def test_arrays_that_are_not_c_contiguous_little_endian():
    base = _values(np.float32, (20, 30))
    big = base.astype(">f4")
    tensors = {"t": base.T, "step": base[::3, ::2], "big": big, "fortran": np.asfortranarray(base)}
    want = library_save({k: np.ascontiguousarray(v).astype(v.dtype.newbyteorder("<"))
                         for k, v in tensors.items()})
    assert _decoded(ansz.save(tensors)) == want
    assert _decoded(ansz.save({"big": big})) == library_save({"big": big})  # it byte-swaps too
    assert ansz.load(ansz.save({"big": big}))["big"].tobytes() == base.tobytes()


@settings(max_examples=40, deadline=None)
@given(st.dictionaries(
    st.text(st.characters(exclude_categories=["Cs"]), max_size=12),
    st.tuples(st.sampled_from(sorted(DTYPES)), st.lists(st.integers(0, 5), max_size=3)),
    max_size=6),
    st.one_of(st.none(), st.dictionaries(st.text(max_size=6).filter(lambda s: s.isprintable()),
                                         st.text(max_size=6), max_size=1)))
def test_any_names_dtypes_and_shapes_match_the_library(spec, metadata):
    tensors = {name: _values(DTYPES[dtype], tuple(shape)) for name, (dtype, shape) in spec.items()
               if name != "__metadata__"}
    if not tensors and metadata == {}:
        return  # the library's broken header: see the test above
    want = library_save(tensors, metadata=metadata)
    assert _decoded(ansz.save(tensors, metadata, threads=1)) == want


def test_output_does_not_depend_on_threads_and_options_apply(tmp_path):
    tensors = {f"t{i}": _values(ml_dtypes.bfloat16, (64, 64)) for i in range(6)}
    tensors.update({f"small{i}": _values(np.float32, (3,)) for i in range(50)})
    one = ansz.save(tensors, threads=1, chunk_size=4096)
    assert one == ansz.save(tensors, threads=2, chunk_size=4096)
    assert _decoded(one) == library_save(tensors)
    fast = ansz.save(tensors, level=1, coder="rans", chunk_size=4096)
    assert fast != one and _decoded(fast) == library_save(tensors)
    path = tmp_path / "m.ansz"
    ansz.save_file(tensors, path, chunk_size=4096)
    assert api.read_info(path).chunk_count > 10
    with ansz.open(path) as f:
        assert f.get_tensor("small7").tobytes() == tensors["small7"].tobytes()
        assert f.get_slice("t3")[5:9].tobytes() == tensors["t3"][5:9].tobytes()


def test_tensor_bytes_are_not_gathered_in_memory(tmp_path):
    w = (RNG.standard_normal(12 << 20) * 0.02).astype(np.float32)  # 48 MiB
    ansz.save({"warm": w[:1000]})  # the kernels' first use
    tracemalloc.start()
    try:
        ansz.save_file({"w": w}, tmp_path / "w.ansz", threads=2, chunk_size=1 << 20)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < w.nbytes / 3, peak  # chunks in flight, not a copy of the file
    with ansz.open(tmp_path / "w.ansz") as f:
        assert f.get_slice("w")[123_456:123_466].tobytes() == w[123_456:123_466].tobytes()


def test_existing_output_needs_overwrite(tmp_path):
    path = tmp_path / "m.ansz"
    path.write_bytes(b"keep me")
    tensors = {"w": np.ones(3, np.float32)}
    with pytest.raises(AnszError, match=r"already exists \(overwrite=True replaces it\)"):
        ansz.save_file(tensors, path)
    assert path.read_bytes() == b"keep me"
    ansz.save_file(tensors, path, overwrite=True)
    assert ansz.load_file(path)["w"].tolist() == [1, 1, 1]
    (tmp_path / "dir").mkdir()
    with pytest.raises(AnszError, match="is a directory"):
        ansz.save_file(tensors, tmp_path / "dir", overwrite=True)


BAD = [
    ({"w": np.ones(2, np.complex128)}, None, "dtype complex128, which safetensors does not store"),
    ({"w": np.array(["a"])}, None, "which safetensors does not store"),
    ({"w": np.array([object()])}, None, "which safetensors does not store"),
    ({"w": [1.0, 2.0]}, None, "'w' is a list, not a numpy array or torch tensor"),
    ({3: np.ones(2)}, None, "tensor names must be strings"),
    ({"__metadata__": np.ones(2)}, None, "not a tensor name"),
    ({"bad\ud800": np.ones(2)}, None, "unpaired surrogate"),
    ([np.ones(2)], None, "must be a dict"),
    ({"w": np.ones(2)}, {"k": 1}, "metadata must map strings to strings"),
    ({"w": np.ones(2)}, {"k": "\udfff"}, "unpaired surrogate"),
    ({"w": np.ones(2)}, "text", "metadata must be a dict"),
]


@pytest.mark.parametrize("tensors, metadata, message", BAD)
def test_bad_arguments_are_one_line_errors_and_write_nothing(tmp_path, tensors, metadata, message):
    path = tmp_path / "m.ansz"
    with pytest.raises(AnszError, match=message) as e:
        ansz.save_file(tensors, path, metadata)
    assert "\n" not in str(e.value) and not list(tmp_path.iterdir())
    with pytest.raises(AnszError, match=message):
        ansz.save(tensors, metadata)
    for kw in ({"level": 7}, {"threads": -1}, {"chunk_size": 10}, {"coder": "zip"}):
        with pytest.raises(AnszError):
            ansz.save({"w": np.ones(2)}, **kw)


def test_torch_tensors_decode_to_safetensors_torch_bytes(tmp_path):
    torch = pytest.importorskip("torch")
    from safetensors.torch import save as torch_save

    g = torch.Generator().manual_seed(0)
    tensors = {
        "bf16": torch.randn(33, 17, generator=g).to(torch.bfloat16),
        "f32": torch.randn(5, 7, generator=g), "f16": torch.randn(9, generator=g).half(),
        "f64": torch.randn(4, generator=g).double(), "i64": torch.arange(10),
        "i8": torch.arange(-5, 5, dtype=torch.int8), "u8": torch.arange(7, dtype=torch.uint8),
        "bool": torch.rand(12, generator=g) < 0.5, "u16": torch.arange(6).to(torch.uint16),
        "e4m3": torch.randn(20, generator=g).to(torch.float8_e4m3fn),
        "e5m2": torch.randn(20, generator=g).to(torch.float8_e5m2),
        "scalar": torch.tensor(3.5), "empty": torch.zeros(0, 3),
        "c64": torch.randn(3, dtype=torch.complex64, generator=g),
    }
    want = torch_save(tensors, metadata={"format": "pt"})
    path = tmp_path / "m.safetensors.ansz"
    ansz.save_file(tensors, path, {"format": "pt"}, chunk_size=4096)
    api.decompress_file(path, tmp_path / "m.safetensors")
    assert (tmp_path / "m.safetensors").read_bytes() == want
    transposed = torch.randn(6, 4, generator=g).t()  # not contiguous: made so, as the library asks
    assert _decoded(ansz.save({"t": transposed})) == torch_save({"t": transposed.contiguous()})
    with pytest.raises(AnszError, match="torch.complex128, which safetensors does not store"):
        ansz.save({"w": torch.zeros(2, dtype=torch.complex128)})
    with pytest.raises(AnszError, match="no dense data to save .device meta"):
        ansz.save({"w": torch.zeros(2, device="meta")})
    with pytest.raises(AnszError, match="layout sparse_coo"):
        ansz.save({"w": torch.zeros(2).to_sparse()})
    grad = torch.ones(3, requires_grad=True)
    assert _decoded(ansz.save({"g": grad})) == torch_save({"g": grad.detach()})
    back = ansz.load_file(path, framework="pt")
    assert sorted(back) == sorted(tensors)
    for name, t in tensors.items():
        assert back[name].dtype == t.dtype and back[name].shape == t.shape
        assert _raw(back[name]) == _raw(t), name


def _raw(t) -> bytes:
    import torch

    return t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
