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
from ansz.errors import AnszError, AnszIndexError, CorruptDataError, FormatError

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


def test_containers_of_other_files_are_refused(tmp_path):
    plain = tmp_path / "data.bin"
    plain.write_bytes(b"not a model " * 1000)
    api.compress_file(plain, tmp_path / "data.bin.ansz")
    with pytest.raises(FormatError, match="neither a safetensors nor a GGUF file.*'bytes'"):
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


def test_a_file_that_is_not_a_container_is_named_in_the_error(model, tmp_path):
    original = model.with_suffix("")  # the plain .safetensors beside the container
    with pytest.raises(CorruptDataError) as e:
        ansz.open(original)
    message = str(e.value)
    assert message.startswith(f"{original}: not an ansz container (bad magic)")
    assert "plain safetensors file" in message and "safe_open" in message
    assert "\n" not in message
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    with pytest.raises(CorruptDataError, match=f"^{text}: not an ansz container"):
        ansz.load_file(text)
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    with pytest.raises(CorruptDataError, match=f"^{empty}: not an ansz container"):
        ansz.open(empty)
    gguf_like = tmp_path / "m.gguf"
    gguf_like.write_bytes(b"GGUF" + struct.pack("<I", 3) + bytes(100))
    with pytest.raises(CorruptDataError, match="plain GGUF file"):
        ansz.open(gguf_like)
    with pytest.raises(AnszError, match="is not a regular file"):
        ansz.open("/dev/null")


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
    assert ansz.load is reader.load and ansz.load_model_dir is reader.load_model_dir
    from ansz import writer

    assert ansz.save_file is writer.save_file and ansz.save is writer.save
    assert "open" not in ansz.__all__
    assert {"load_file", "load", "load_model_dir", "save_file", "save"} <= set(ansz.__all__)


# --- get_slice -------------------------------------------------------------------------------

TALL = {
    "F32.tall": (RNG.standard_normal((256, 64)) * 0.02).astype(np.float32),  # 64 KiB
    "BF16.tall": (RNG.standard_normal((512, 64)) * 0.02).astype(ml_dtypes.bfloat16),
    "I8.cube": RNG.integers(-128, 128, (40, 30, 20)).astype(np.int8),
    "U64.line": RNG.integers(0, 2**63, 3000).astype(np.uint64),
    "BOOL.tall": RNG.random((300, 17)) < 0.5,
    "F8_E4M3.tall": (RNG.standard_normal((200, 50))).astype(ml_dtypes.float8_e4m3fn),
    "F16.scalar": np.array(1.5, np.float16),
    "F32.flat0": np.zeros((0, 5), np.float32),
    "F32.inner0": np.zeros((7, 0), np.float32),
}


@pytest.fixture(scope="module")
def tall(tmp_path_factory):
    d = tmp_path_factory.mktemp("slices")
    src = d / "t.safetensors"
    save_file(TALL, str(src))
    dst = d / "t.safetensors.ansz"
    api.compress_file(src, dst, chunk_size=CHUNK, threads=2)
    return dst


E = Ellipsis
KEYS = [0, -1, 5, slice(None), slice(3, 17), slice(-9, -2), slice(None, None, 7),
        slice(None, None, -3), slice(150, 2, -2), slice(None, None, -1), slice(1, 2),
        slice(10, 10), slice(20, 3), slice(-1000, 1000), slice(250, 300),
        (slice(3, 9), slice(2, 5)), (slice(None), 3), (E, 4), (2, E), (E,), (),
        (None, slice(1, 4)), (slice(4, 8), None), (E, None),
        (slice(None, None, 5), slice(None, None, 2)),
        (-3, slice(None, None, -1)), (slice(2, 6), E, 1), (np.int64(3),), (np.int32(-2), E)]


def _key_for(key, ndim):
    """Keys that address more axes than a tensor has are skipped (numpy refuses them)."""
    key = key if isinstance(key, tuple) else (key,)
    return sum(1 for k in key if k is not None and k is not E) <= ndim


@pytest.mark.parametrize("block", [None, 1, 1000])
@pytest.mark.parametrize("name", sorted(TALL))
def test_get_slice_equals_numpy_indexing(tall, name, block, monkeypatch):
    if block is not None:  # ranges of rows decoded a row, or a few, at a time
        monkeypatch.setattr(reader, "_SLICE_BLOCK", block)
    want_full = TALL[name]
    with ansz.open(tall, threads=2) as f:
        sl = f.get_slice(name)
        assert sl.get_shape() == list(want_full.shape) and sl.get_dtype() == name.split(".")[0]
        n = 0
        for key in KEYS:
            if not _key_for(key, want_full.ndim):
                continue
            try:
                want = np.asarray(want_full[key])
            except IndexError:  # numpy refuses it: so must we, with an IndexError
                with pytest.raises(IndexError):
                    sl[key]
                continue
            got = sl[key]
            _same(got, want)
            assert isinstance(got, np.ndarray) and got.flags.writeable
            base = got
            while base.base is not None:
                base = base.base
            assert base.nbytes == got.nbytes  # it keeps no more rows alive than it shows
            n += 1
        assert n >= 3


def test_get_slice_decodes_only_the_chunks_of_the_rows_asked_for(tall, monkeypatch):
    read = []
    real_chunk = ContainerFile.chunk

    def chunk(self, i):
        read.append(i)
        return real_chunk(self, i)

    info = api.read_info(tall)
    seg = next(s for s in info.segments if s["name"] == "F32.tall")
    whole = list(range(seg["first_chunk"], seg["first_chunk"] + seg["chunk_count"]))
    assert len(whole) == 16  # 64 KiB in 4 KiB chunks; rows of 256 bytes: 16 rows a chunk
    monkeypatch.setattr(ContainerFile, "chunk", chunk)
    full = TALL["F32.tall"]
    cases = [  # key, chunks of the tensor it must decode (indices into `whole`)
        (slice(0, 16), [0]), (slice(15, 17), [0, 1]), (5, [0]), (-1, [15]),
        ((slice(40, 50), slice(0, 3)), [2, 3]), (slice(None, None, 64), [0, 4, 8, 12]),
        (slice(200, 19, -90), [1, 6, 12]), (slice(300, 400), []),
        ((E, 0), list(range(16))), (slice(None, None, -1), list(range(16))),
    ]
    with ansz.open(tall, threads=2) as f:
        sl = f.get_slice("F32.tall")
        for key, want in cases:
            read.clear()
            _same(sl[key], np.asarray(full[key]))
            assert sorted(read) == [whole[i] for i in want], key
            assert len(set(read)) == len(read)  # each chunk once
        read.clear()
        f.get_tensor("F32.tall")
        assert sorted(read) == whole


def test_a_column_slice_decodes_a_block_of_rows_at_a_time(tmp_path, monkeypatch):
    import tracemalloc

    w = (RNG.standard_normal((4096, 1024)) * 0.02).astype(np.float32)  # 16 MiB
    save_file({"w": w}, str(tmp_path / "w.safetensors"))
    api.compress_file(tmp_path / "w.safetensors", tmp_path / "w.ansz", chunk_size=1 << 16)
    monkeypatch.setattr(reader, "_SLICE_BLOCK", 1 << 20)
    with ansz.open(tmp_path / "w.ansz", threads=2) as f:
        sl = f.get_slice("w")
        _same(sl[:8, :4], w[:8, :4])  # the kernels' first use, outside the measure
        tracemalloc.start()
        try:
            for key in [(slice(None), slice(100, 104)), (E, 7), (slice(None, None, -1), 3)]:
                tracemalloc.reset_peak()
                _same(sl[key], w[key])
                peak = tracemalloc.get_traced_memory()[1]
                assert peak < 4 << 20, (key, peak)  # a block and the result, not 16 MiB
        finally:
            tracemalloc.stop()


def test_get_slice_refuses_indices_numpy_refuses_or_it_does_not_take(tall):
    full = TALL["F32.tall"]
    with ansz.open(tall) as f:
        sl = f.get_slice("F32.tall")
        for key in [256, -257, (0, 64), (0, 0, 0), (E, E), 1.5, slice(0.5, 2), "a"]:
            with pytest.raises((IndexError, TypeError)):  # TypeError: the float slice
                full[key]
            with pytest.raises(AnszError) as e:  # numpy's message, in an AnszError
                sl[key]
            assert isinstance(e.value, IndexError) and "\n" not in str(e.value)
        with pytest.raises(AnszIndexError, match="index 256 is out of bounds for axis 0"):
            sl[256]
        for key in ([0, 1], np.array([1, 2]), True, (slice(None), [1])):  # numpy's advanced
            with pytest.raises(AnszIndexError, match="not supported"):  # indexing: refused
                sl[key]
        with pytest.raises(AnszError, match="no tensor named 'nope'"):
            f.get_slice("nope")
    with pytest.raises(AnszError, match="closed"):
        sl[0]
    with pytest.raises(AnszError, match="closed"):
        sl.get_shape()


def test_get_slice_in_torch(tall):
    torch = pytest.importorskip("torch")
    with ansz.open(tall, framework="pt") as f:
        got = f.get_slice("BF16.tall")[10:20, ::2]
        assert got.dtype == torch.bfloat16 and tuple(got.shape) == (10, 32)
        want = TALL["BF16.tall"][10:20, ::2]
        assert got.view(torch.int16).numpy().tobytes() == want.tobytes()
        assert torch.equal(f.get_slice("F32.tall")[3], torch.from_numpy(TALL["F32.tall"][3]))


def test_slices_and_tensors_read_from_several_threads_at_once(tall):
    import threading

    errors = []
    with ansz.open(tall, threads=2) as f:
        def work(seed):
            r = np.random.default_rng(seed)
            try:
                for _ in range(30):
                    a, b = sorted(r.integers(0, 256, 2))
                    _same(f.get_slice("F32.tall")[a:b + 1], TALL["F32.tall"][a:b + 1])
                    _same(f.get_tensor("I8.cube"), TALL["I8.cube"])
            except BaseException as e:  # reported below, in the test's thread
                errors.append(e)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors, errors


# --- get_tensors, iteration, offset_keys, load -----------------------------------------------


def test_get_tensors_iteration_and_offset_keys(tall):
    layout = read_layout(tall.with_suffix(""))
    in_file_order = [t.name for t in sorted(layout.tensors, key=lambda t: (t.start, t.name))]
    with ansz.open(tall, threads=2) as f:
        assert f.offset_keys() == in_file_order and list(f) == sorted(TALL) == f.keys()
        assert len(f) == len(TALL) and "F32.tall" in f and "nope" not in f and 3 not in f
        everything = f.get_tensors()
        assert list(everything) == in_file_order
        for name, arr in everything.items():
            _same(arr, TALL[name])
        some = f.get_tensors(["U64.line", "F16.scalar", "U64.line"])  # in the order asked
        assert list(some) == ["U64.line", "F16.scalar"]
        _same(some["F16.scalar"], TALL["F16.scalar"])
        assert f.get_tensors([]) == {}
        with pytest.raises(AnszError, match="no tensor named 'nope'"):
            f.get_tensors(["F32.tall", "nope"])
        with pytest.raises(AnszError, match="list of names"):
            f.get_tensors("F32.tall")
    with pytest.raises(AnszError, match="closed"):
        f.get_tensors()
    with pytest.raises(AnszError, match="closed"):
        list(f)


def test_load_reads_a_container_in_memory(tall):
    blob = tall.read_bytes()
    for data in (blob, bytearray(blob), memoryview(blob)):
        got = reader.load(data)
        assert list(got) == list(ansz.load_file(tall))
        for name, arr in got.items():
            _same(arr, TALL[name])
    with pytest.raises(CorruptDataError, match="^<bytes>: not an ansz container"):
        reader.load(b"hello")
    with pytest.raises(CorruptDataError):
        reader.load(blob[:-1])


# --- GGUF ------------------------------------------------------------------------------------


def _gguf_container(tmp_path, name="w.gguf"):
    from tests.test_formats_gguf import write_with_gguf

    src = write_with_gguf(tmp_path / name, seed=3)
    dst = tmp_path / (name + ".ansz")
    api.compress_file(src, dst, chunk_size=CHUNK, threads=2)
    return src, dst


def test_gguf_container_reads_as_the_gguf_package_reads_the_original(tmp_path):
    gguf = pytest.importorskip("gguf")
    src, dst = _gguf_container(tmp_path)
    want = gguf.GGUFReader(src)
    with ansz.open(dst, threads=2) as f:
        assert f.format == "gguf" and len(f) == len(want.tensors) == 15
        assert f.keys() == sorted(t.name for t in want.tensors) == list(f)
        in_file_order = sorted(want.tensors, key=lambda t: t.data_offset)
        assert f.offset_keys() == [t.name for t in in_file_order]
        blocks = 0
        for t in want.tensors:
            assert f.dtype(t.name) == t.tensor_type.name
            assert f.shape(t.name) == tuple(int(d) for d in reversed(t.shape))
            got = f.get_tensor(t.name)  # floats as floats, quantized blocks as their bytes
            _same(got, np.asarray(t.data))
            sl = f.get_slice(t.name)
            assert sl.get_shape() == list(t.data.shape) and sl.get_dtype() == f.dtype(t.name)
            _same(sl[1:3], np.asarray(t.data[1:3]))
            _same(sl[-1], np.asarray(t.data[-1]))
            _same(sl[..., ::5], np.asarray(t.data[..., ::5]))
            blocks += got.dtype == np.uint8
        assert blocks == 13
        everything = f.get_tensors()
        assert list(everything) == f.offset_keys()
        metadata = f.metadata()
        assert metadata == {k: v.contents() for k, v in want.fields.items()
                            if not k.startswith("GGUF.")}
        metadata["tokenizer.ggml.tokens"].append("x")  # a copy: the file's does not change
        assert len(f.metadata()["tokenizer.ggml.tokens"]) == 50
    got = ansz.load_file(dst)
    assert list(got) == list(everything)
    for name, arr in got.items():
        _same(arr, everything[name])


def test_gguf_metadata_of_every_kind(tmp_path):
    gguf = pytest.importorskip("gguf")
    path = tmp_path / "kv.gguf"
    w = gguf.GGUFWriter(path, "llama")
    w.add_uint64("big", 2**64 - 1)
    w.add_int8("small", -5)
    w.add_float64("x", 0.1)
    w.add_bool("flag", True)
    w.add_string("name", "tiny \u00e9")
    w.add_token_scores([0.5, -1.25, 3.0])
    w.add_token_types([1, 2, 6])
    w.add_array("mixed.flags", [True, False])
    w.add_tensor("w", np.arange(64, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    api.compress_file(path, tmp_path / "kv.ansz")
    with ansz.open(tmp_path / "kv.ansz") as f:
        m = f.metadata()
        _same(f.get_tensor("w"), np.arange(64, dtype=np.float32))
    assert (m["big"], m["small"], m["x"], m["flag"], m["name"]) == (2**64 - 1, -5, 0.1, True,
                                                                    "tiny \u00e9")
    scores, types = m["tokenizer.ggml.scores"], m["tokenizer.ggml.token_type"]
    assert scores.dtype == np.float32 and scores.tolist() == [0.5, -1.25, 3.0]
    assert types.dtype == np.int32 and types.tolist() == [1, 2, 6]
    assert m["mixed.flags"].tolist() == [True, False] and m["general.architecture"] == "llama"
    with pytest.raises(ValueError):  # shared with the file's cache: read-only
        scores[0] = 1


def test_gguf_in_torch(tmp_path):
    torch = pytest.importorskip("torch")
    _, dst = _gguf_container(tmp_path)
    with ansz.open(dst, framework="pt") as f:
        embd = f.get_tensor("embd.weight")
        assert embd.dtype == torch.float16 and tuple(embd.shape) == (16, 64)
        q = f.get_tensor("q4_k.weight")
        assert q.dtype == torch.uint8 and tuple(q.shape) == (8, 288)
        assert torch.equal(f.get_slice("q4_k.weight")[2:4], q[2:4])


@pytest.mark.parametrize("name", ["model.gguf.ansz", "model_fast.gguf.ansz"])
def test_golden_gguf_containers_open(name, tmp_path):
    from pathlib import Path

    from ansz.formats import gguf as g

    golden = Path(__file__).parent / "golden" / name
    api.decompress_file(golden, tmp_path / "original", threads=1)
    original = (tmp_path / "original").read_bytes()
    layout = g.parse_header(original, len(original))
    with ansz.open(golden, threads=1) as f:
        assert f.keys() == sorted(t.name for t in layout.tensors)
        for t in layout.tensors:
            assert np.ascontiguousarray(f.get_tensor(t.name)).tobytes() == original[t.start:t.end]


def _container_of(path, original: bytes, cuts: list[int], fmt: str, named=()):
    """A container of ``original`` with segments cut at ``cuts`` (one chunk each); ``named``
    gives some of them (by position) a name, dtype and shape."""
    import hashlib

    from ansz import container as c

    bounds = [0, *cuts, len(original)]
    segments = []
    with open(path, "wb") as fh:
        w = c.ContainerWriter(fh, 1 << 20)
        for i, (a, b) in enumerate(zip(bounds, bounds[1:])):
            payload, h = chunks.encode_payload(original[a:b], c.BYTES)
            w.add_chunk(i, c.BYTES, payload, b - a, h)
            segments.append(c.Segment(*dict(named).get(i, (None, None, None)), a, b))
        w.finish(segments, fmt=fmt, sha256=hashlib.sha256(original).hexdigest())
    return path


def test_damaged_gguf_headers_are_corrupt(tmp_path):
    from tests.test_formats_gguf import sample

    from ansz.formats import gguf as g

    data = sample()
    layout = g.parse_header(data, len(data))
    start = layout.data_start
    good = _container_of(tmp_path / "good.ansz", data, [start], "gguf")
    with ansz.open(good) as f:
        assert f.keys() == ["b", "k", "w"] and f.metadata()["general.name"] == "tiny"
    cases = {
        "long": (data, [start + 32], "stored GGUF header ends at byte"),
        "short": (data, [start - 40], "stored GGUF header is invalid: header truncated"),
        "version": (data[:4] + b"\1" + data[5:], [start], "GGUF version 1 is not supported"),
    }
    for name, (original, cuts, message) in cases.items():
        path = _container_of(tmp_path / f"{name}.ansz", original, cuts, "gguf")
        with pytest.raises(CorruptDataError, match=message) as e:
            ansz.open(path)
        assert str(e.value).startswith(str(path)) and "\n" not in str(e.value)
    t = next(t for t in layout.tensors if t.name == "b")
    lying = _container_of(tmp_path / "lying.ansz", data, [start, t.start, t.end], "gguf",
                          named=[(2, ("b", "F32", (11,)))])
    with pytest.raises(CorruptDataError, match="disagrees with the gguf header on tensor 'b'"):
        ansz.open(lying)


# --- load_model_dir --------------------------------------------------------------------------


def _sharded_model(d):
    """A model directory as Hugging Face writes a sharded one: two shards and the index; the
    first shard compressed (and its original removed), the second left plain."""
    d.mkdir()
    shard1 = {"embed.weight": _values(ml_dtypes.bfloat16, 4000).reshape(40, 100),
              "layers.0.w": _values(np.float32, 3000).reshape(30, 100),
              "layers.0.b": _values(np.float32, 100)}
    shard2 = {"layers.1.w": _values(np.float16, 3000).reshape(30, 100),
              "head.steps": np.array(7, np.int64), "head.mask": _values(np.bool_, 50)}
    names = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    save_file(shard1, str(d / names[0]), metadata={"format": "pt"})
    save_file(shard2, str(d / names[1]), metadata={"format": "pt"})
    weight_map = {**{k: names[0] for k in shard1}, **{k: names[1] for k in shard2}}
    (d / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {"total_size": 123}, "weight_map": weight_map}))
    api.compress_file(d / names[0], d / (names[0] + ".ansz"), chunk_size=CHUNK)
    (d / names[0]).unlink()
    (d / "config.json").write_text("{}")
    return {**shard1, **shard2}, names


def test_load_model_dir_reads_every_shard_its_index_names(tmp_path):
    d = tmp_path / "model"
    want, names = _sharded_model(d)
    got = ansz.load_model_dir(d, threads=2)
    assert sorted(got) == sorted(want)
    for name, arr in got.items():
        _same(arr, want[name])
    # a tensor a shard holds but the index does not name is left out
    index = json.loads((d / "model.safetensors.index.json").read_text())
    del index["weight_map"]["layers.0.b"]
    (d / "model.safetensors.index.json").write_text(json.dumps(index))
    assert "layers.0.b" not in ansz.load_model_dir(d)


@pytest.mark.parametrize("damage, message", [
    (lambda d, m: m.__setitem__("ghost", m["embed.weight"]), "no tensor named 'ghost'"),
    (lambda d, m: m.__setitem__("head.steps", "model-00003-of-00003.safetensors"),
     "shard model-00003-of-00003.safetensors .* is missing"),
    (lambda d, m: m.__setitem__("head.steps", "../elsewhere.safetensors"),
     "not a file name in its directory"),
    (lambda d, m: m.__setitem__("head.steps", "/etc/passwd"), "not a file name"),
    (lambda d, m: (d / "other.safetensors.index.json").write_text("{}"), "several index files"),
])
def test_load_model_dir_refuses_a_bad_index(tmp_path, damage, message):
    d = tmp_path / "model"
    _sharded_model(d)
    index = json.loads((d / "model.safetensors.index.json").read_text())
    damage(d, index["weight_map"])
    (d / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(AnszError, match=message):
        ansz.load_model_dir(d)


def test_load_model_dir_refuses_an_index_that_is_not_json(tmp_path):
    d = tmp_path / "model"
    _sharded_model(d)
    for text in ("not json", "[1, 2]", '{"weight_map": 3}'):
        (d / "model.safetensors.index.json").write_text(text)
        with pytest.raises(AnszError, match="model.safetensors.index.json"):
            ansz.load_model_dir(d)


def test_load_model_dir_without_an_index_reads_every_shard(tmp_path):
    d = tmp_path / "model"
    want, names = _sharded_model(d)
    (d / "model.safetensors.index.json").unlink()
    got = ansz.load_model_dir(d)
    assert sorted(got) == sorted(want)
    # a shard in both forms is read once, from the container
    save_file({"embed.weight": np.zeros((1,), np.float32)}, str(d / names[0]))
    _same(ansz.load_model_dir(d)["embed.weight"], want["embed.weight"])
    # the same name in two shards is an error
    save_file({"layers.1.w": np.zeros((1,), np.float32)}, str(d / "extra.safetensors"))
    with pytest.raises(AnszError, match="'layers.1.w' is in more than one shard"):
        ansz.load_model_dir(d)
    assert ansz.load_model_dir(tmp_path) == {}  # no shards at all
