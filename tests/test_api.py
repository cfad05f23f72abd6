"""ansz.api end to end: round trips for every dtype and odd files, streams, threads, atomic and
refused writes, verify, info and stats. Small chunk sizes make small files take the multi-chunk
paths."""

import hashlib
import io
import json
import os
import struct
import time

import ml_dtypes
import numpy as np
import pytest
from safetensors.numpy import save_file

from ansz import _io, api, chunks, streams
from ansz.formats import detect
from ansz import container as c
from ansz.errors import AnszError, CorruptDataError, FormatError, UnsupportedError

CHUNK = 64 << 10
RNG = np.random.default_rng(0)


def _weights(dtype, n):
    if dtype in (np.int8, np.uint8, np.int32, np.int64):
        info = np.iinfo(dtype)
        return RNG.integers(max(info.min, -1000), min(info.max, 1000), n).astype(dtype)
    if dtype is np.bool_:
        return RNG.random(n) < 0.1
    return (RNG.standard_normal(n) * 0.02).astype(dtype)


DTYPES = {
    "BF16": ml_dtypes.bfloat16, "F16": np.float16, "F32": np.float32, "F64": np.float64,
    "F8_E4M3": ml_dtypes.float8_e4m3fn, "F8_E5M2": ml_dtypes.float8_e5m2, "I8": np.int8,
    "U8": np.uint8, "I32": np.int32, "I64": np.int64, "BOOL": np.bool_,
}


def make_safetensors(path, dtype, n=100_000):
    arrays = {"big": _weights(dtype, n).reshape(-1, 100), "small": _weights(dtype, 37),
              "empty": np.zeros((0, 4), dtype)}
    save_file(arrays, str(path), metadata={"note": "test"})
    return path


def roundtrip(tmp_path, src, **kw):
    dst, back = tmp_path / "out.ansz", tmp_path / "back"
    report = api.compress_file(src, dst, chunk_size=CHUNK, overwrite=True, **kw)
    assert report.compressed_size == os.path.getsize(dst)
    assert report.original_size == os.path.getsize(src)
    dr = api.decompress_file(dst, back, overwrite=True, **kw)
    assert back.read_bytes() == src.read_bytes()
    assert dr.original_size == report.original_size and dr.compressed_size == report.compressed_size
    return report


@pytest.mark.parametrize("dtype", sorted(DTYPES))
def test_round_trip_every_dtype(tmp_path, dtype):
    src = make_safetensors(tmp_path / "m.safetensors", DTYPES[dtype])
    report = roundtrip(tmp_path, src, threads=2)
    assert report.format == "safetensors" and report.fallback_reason is None
    info = api.read_info(tmp_path / "out.ansz")
    big = next(s for s in info.segments if s["name"] == "big")
    assert big["dtype"] == dtype and big["shape"] == (1000, 100)
    assert big["chunk_count"] == -(-big["nbytes"] // CHUNK)
    if dtype in ("BF16", "F16", "F32", "F64"):
        assert report.ratio < 0.9


def test_non_safetensors_file(tmp_path):
    src = tmp_path / "data.bin"
    src.write_bytes(b"some text " * 30_000 + RNG.integers(0, 256, 100_000, dtype=np.uint8).tobytes())
    report = roundtrip(tmp_path, src)
    assert report.format == "bytes" and report.fallback_reason is None
    info = api.read_info(tmp_path / "out.ansz")
    assert [s["name"] for s in info.segments] == [None]
    assert info.chunk_count == -(-src.stat().st_size // CHUNK)


def test_empty_file(tmp_path):
    src = tmp_path / "empty"
    src.write_bytes(b"")
    report = roundtrip(tmp_path, src)
    assert report.format == "bytes" and report.original_size == 0 and report.ratio == 1.0
    info = api.read_info(tmp_path / "out.ansz")
    assert info.segments == [] and info.chunk_count == 0
    assert info.sha256 == hashlib.sha256(b"").hexdigest()
    assert api.verify_file(tmp_path / "out.ansz").ok


def _handmade_safetensors(tensors, *, holes=b"", trailing=b""):
    """A safetensors file with a gap of ``holes`` between tensors and ``trailing`` bytes."""
    header, data = {}, b""
    for i, (name, dtype, arr, *shape) in enumerate(tensors):
        if i == 1:
            data += holes
        raw = arr.tobytes()
        header[name] = {"dtype": dtype, "shape": shape[0] if shape else list(arr.shape),
                        "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data + trailing


def test_file_with_holes_trailing_bytes_and_subbyte_tensor(tmp_path):
    src = tmp_path / "odd.safetensors"
    f4 = RNG.integers(0, 256, 5000, dtype=np.uint8)  # 10000 packed F4 elements
    b = _weights(np.float32, 3)
    src.write_bytes(_handmade_safetensors(
        [("a", "BF16", _weights(ml_dtypes.bfloat16, 50_000)), ("b", "F32", b),
         ("packed", "F4", f4, [100, 100])], holes=b"\x01" * 1001, trailing=b"tail" * 1000))
    report = roundtrip(tmp_path, src)
    assert report.format == "safetensors", report.fallback_reason
    segs = api.read_info(tmp_path / "out.ansz").segments
    # "b" (12 bytes) is below SMALL_TENSOR: an unnamed segment of its dtype
    assert [s["name"] for s in segs] == [None, "a", None, None, "packed", None]
    assert [s["dtype"] for s in segs] == [None, "BF16", None, "F32", "F4", None]
    assert segs[2]["nbytes"] == 1001 and segs[3]["nbytes"] == 12 and segs[-1]["nbytes"] == 4000
    import ansz

    with ansz.open(tmp_path / "out.ansz") as f:
        assert f.keys() == ["a", "b", "packed"]
        assert f.get_tensor("b").tobytes() == b.tobytes()


def test_broken_safetensors_header_falls_back_to_bytes(tmp_path):
    good = _handmade_safetensors([("a", "F32", _weights(np.float32, 1000))])
    src = tmp_path / "broken.safetensors"
    src.write_bytes(good.replace(b'"F32"', b'"F33"'))
    report = roundtrip(tmp_path, src)
    assert report.format == "bytes" and "F33" in report.fallback_reason
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\xff" * 100)
    report = roundtrip(tmp_path, garbage)
    assert report.format == "bytes" and "not a valid safetensors file" in report.fallback_reason


def test_threads_do_not_change_the_output(tmp_path):
    src = make_safetensors(tmp_path / "m.safetensors", ml_dtypes.bfloat16, n=300_000)
    outs = []
    for threads in (1, 2, 3):
        dst = tmp_path / f"t{threads}.ansz"
        api.compress_file(src, dst, threads=threads, chunk_size=CHUNK)
        outs.append(dst.read_bytes())
        back = tmp_path / f"t{threads}.out"
        api.decompress_file(tmp_path / "t1.ansz", back, threads=threads)
        assert back.read_bytes() == src.read_bytes()
    assert outs[0] == outs[1] == outs[2]
    stream_out = io.BytesIO()
    api.compress_stream(io.BytesIO(src.read_bytes()), stream_out, threads=2, chunk_size=CHUNK)
    assert stream_out.getvalue() == outs[0]


class Pipe(io.RawIOBase):
    """Non-seekable: short reads, no seek/tell; and short writes on the output side."""

    def __init__(self, data=b"", step=7777):
        self._data, self._pos, self._step = data, 0, step
        self.written = bytearray()

    def readable(self):
        return True

    def writable(self):
        return True

    def readinto(self, b):
        n = min(len(b), self._step, len(self._data) - self._pos)
        b[:n] = self._data[self._pos:self._pos + n]
        self._pos += n
        return n

    def write(self, b):
        n = min(len(b), self._step)
        self.written += bytes(memoryview(b).cast("B")[:n])
        return n


@pytest.mark.parametrize("kind", ["bytesio", "pipe"])
@pytest.mark.parametrize("what", ["safetensors", "bytes", "empty"])
def test_streams(tmp_path, kind, what):
    if what == "safetensors":
        data = make_safetensors(tmp_path / "m.safetensors", np.float16, n=70_000).read_bytes()
    elif what == "bytes":
        data = b"stream me " * 20_000
    else:
        data = b""
    if kind == "bytesio":
        ifh, ofh = io.BytesIO(data), io.BytesIO()
    else:
        ifh, ofh = Pipe(data), Pipe()
    done = []
    report = api.compress_stream(ifh, ofh, threads=2, chunk_size=CHUNK, progress=done.append)
    blob = ofh.getvalue() if kind == "bytesio" else bytes(ofh.written)
    assert report.format == ("safetensors" if what == "safetensors" else "bytes")
    assert report.compressed_size == len(blob) and report.original_size == len(data)
    assert done == sorted(done) and (done[-1] if done else 0) == len(data)
    # the same container as from the file API
    src = tmp_path / "src"
    src.write_bytes(data)
    api.compress_file(src, tmp_path / "file.ansz", chunk_size=CHUNK)
    assert (tmp_path / "file.ansz").read_bytes() == blob
    out = io.BytesIO() if kind == "bytesio" else Pipe()
    back = api.decompress_stream(io.BytesIO(blob) if kind == "bytesio" else Pipe(blob), out,
                                 threads=2)
    assert (out.getvalue() if kind == "bytesio" else bytes(out.written)) == data
    assert back.original_size == len(data) and back.compressed_size == len(blob)


def test_stream_that_ends_inside_a_tensor_still_round_trips(tmp_path):
    data = make_safetensors(tmp_path / "m.safetensors", np.float32, n=50_000).read_bytes()
    for cut in (9, 120, len(data) // 2 + 1, len(data) - 1):
        out = io.BytesIO()
        report = api.compress_stream(Pipe(data[:cut]), out, chunk_size=CHUNK)
        assert report.format == "bytes" and report.fallback_reason
        back = io.BytesIO()
        api.decompress_stream(io.BytesIO(out.getvalue()), back)
        assert back.getvalue() == data[:cut]


def test_decompress_stream_rejects_trailing_and_truncated_input(tmp_path):
    out = io.BytesIO()
    api.compress_stream(io.BytesIO(b"x" * 100_000), out, chunk_size=CHUNK)
    blob = out.getvalue()
    with pytest.raises(CorruptDataError, match="after the container"):
        api.decompress_stream(io.BytesIO(blob + b"\0"), io.BytesIO())
    with pytest.raises(CorruptDataError, match="truncated"):
        api.decompress_stream(io.BytesIO(blob[:-40]), io.BytesIO())
    with pytest.raises(CorruptDataError):
        api.decompress_stream(io.BytesIO(b""), io.BytesIO())


def test_overwrite_same_file_and_directory_refusals(tmp_path):
    src = tmp_path / "a.bin"
    src.write_bytes(b"abc" * 1000)
    dst = tmp_path / "a.ansz"
    dst.write_bytes(b"keep me")
    with pytest.raises(AnszError, match=r"already exists; pass overwrite=True to replace it$"):
        api.compress_file(src, dst)  # the Python keyword, not the command line's --force
    assert dst.read_bytes() == b"keep me"
    api.compress_file(src, dst, overwrite=True)
    assert dst.read_bytes()[:8] == c.MAGIC
    with pytest.raises(AnszError, match="already exists; pass overwrite=True"):
        api.decompress_file(dst, src)
    with pytest.raises(AnszError, match="input file itself"):
        api.compress_file(src, src, overwrite=True)
    os.link(src, tmp_path / "hardlink")
    with pytest.raises(AnszError, match="input file itself"):
        api.compress_file(src, tmp_path / "hardlink", overwrite=True)
    (tmp_path / "dir").mkdir()
    with pytest.raises(AnszError, match="directory"):
        api.compress_file(src, tmp_path / "dir", overwrite=True)
    with pytest.raises(FileNotFoundError):
        api.compress_file(tmp_path / "missing", tmp_path / "x.ansz")
    with pytest.raises(IsADirectoryError):
        api.compress_file(tmp_path / "dir", tmp_path / "x.ansz")
    assert src.read_bytes() == b"abc" * 1000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.ansz", "a.bin", "dir", "hardlink"]


@pytest.mark.parametrize("dtype", sorted(DTYPES))
def test_level_1_round_trips_every_dtype_and_uses_64_state_streams(tmp_path, dtype):
    src = make_safetensors(tmp_path / "m.safetensors", DTYPES[dtype], n=400_000)
    fast, best, back = tmp_path / "fast.ansz", tmp_path / "best.ansz", tmp_path / "back"
    api.compress_file(src, fast, level=1, threads=2)
    api.compress_file(src, best, threads=2)
    api.decompress_file(fast, back)
    assert back.read_bytes() == src.read_bytes()
    assert api.verify_file(fast).ok
    if dtype == "BF16":  # 800 KB of exponents: wide streams of 64 states, a little larger
        assert fast.read_bytes() != best.read_bytes()
        assert best.stat().st_size < fast.stat().st_size < best.stat().st_size * 1.01
        cf = c.ContainerFile(lambda o, n, b=fast.read_bytes(): memoryview(b)[o:o + n],
                             fast.stat().st_size)
        code_streams = {bytes(cf.chunk(i)[1])[12:17:4] for i in range(len(cf.index.chunks))
                        if cf.index.chunks[i].decoded_length >= 1 << 18}
        assert code_streams == {bytes([streams.RANS_WIDE, 6])}  # 2^6 states


def test_bad_arguments():
    for kw in ({"level": 0}, {"level": 3}, {"level": "1"}, {"level": 1.0}):
        with pytest.raises(AnszError, match="level"):
            api.compress_stream(io.BytesIO(b"x"), io.BytesIO(), **kw)
    for kw in ({"chunk_size": 10}, {"chunk_size": 1 << 30}, {"chunk_size": 1.5}, {"threads": -1}):
        with pytest.raises(AnszError):
            api.compress_stream(io.BytesIO(b"x"), io.BytesIO(), **kw)


def test_output_gets_the_input_mode_and_mtime(tmp_path):
    src = tmp_path / "m.bin"
    src.write_bytes(b"hello" * 100)
    os.chmod(src, 0o640)
    os.utime(src, ns=(1_000_000_000_000_000_000, 1_500_000_000_123_456_789))
    api.compress_file(src, tmp_path / "m.ansz")
    st = os.stat(tmp_path / "m.ansz")
    assert st.st_mode & 0o777 == 0o640 and st.st_mtime_ns == 1_500_000_000_123_456_789
    api.decompress_file(tmp_path / "m.ansz", tmp_path / "back")
    assert os.stat(tmp_path / "back").st_mtime_ns == 1_500_000_000_123_456_789


def _leftovers(directory, keep):
    return sorted(p.name for p in directory.iterdir() if p.name not in keep)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_failure_mid_write_leaves_nothing(tmp_path, monkeypatch, threads, error):
    src = make_safetensors(tmp_path / "m.safetensors", ml_dtypes.bfloat16, n=200_000)
    real, calls = chunks.encode_chunk, []

    def flaky(data, dtype, **kw):
        calls.append(1)
        if len(calls) > 3:
            raise error("simulated failure")
        return real(data, dtype, **kw)

    monkeypatch.setattr(chunks, "encode_chunk", flaky)
    with pytest.raises(error):
        api.compress_file(src, tmp_path / "m.ansz", chunk_size=CHUNK, threads=threads)
    assert _leftovers(tmp_path, {"m.safetensors"}) == []
    monkeypatch.undo()
    # also when the existing destination was to be overwritten: it survives untouched
    (tmp_path / "m.ansz").write_bytes(b"old")

    def interrupt(done):
        if done > 2 * CHUNK:
            raise error("stop")

    with pytest.raises(error):
        api.compress_file(src, tmp_path / "m.ansz", chunk_size=CHUNK, threads=threads,
                          overwrite=True, progress=interrupt)
    assert (tmp_path / "m.ansz").read_bytes() == b"old"
    assert _leftovers(tmp_path, {"m.safetensors", "m.ansz"}) == []


def test_decompress_of_a_damaged_file_leaves_nothing(tmp_path):
    src = make_safetensors(tmp_path / "m.safetensors", ml_dtypes.bfloat16, n=200_000)
    api.compress_file(src, tmp_path / "m.ansz", chunk_size=CHUNK)
    blob = bytearray((tmp_path / "m.ansz").read_bytes())
    cf = c.ContainerFile(lambda o, n: memoryview(blob)[o:o + n], len(blob))
    entry = cf.index.chunks[4]
    blob[entry.offset + c.RECORD_HEADER.size + 100] ^= 0x40
    (tmp_path / "bad.ansz").write_bytes(blob)
    with pytest.raises(CorruptDataError, match="chunk 4"):
        api.decompress_file(tmp_path / "bad.ansz", tmp_path / "out", threads=2)
    with pytest.raises(CorruptDataError):
        api.decompress_file(tmp_path / "m.safetensors", tmp_path / "out")  # not a container
    (tmp_path / "new.ansz").write_bytes(_with_version(bytes(blob), 2))
    with pytest.raises(UnsupportedError):
        api.decompress_file(tmp_path / "new.ansz", tmp_path / "out")
    assert _leftovers(tmp_path, {"m.safetensors", "m.ansz", "bad.ansz", "new.ansz"}) == []


def _with_version(blob, version):
    import zlib

    head = blob[:12]
    head = head[:8] + struct.pack("<H", version) + head[10:12] + blob[12:20]
    return head + struct.pack("<I", zlib.crc32(head)) + blob[24:]


def test_verify(tmp_path):
    src = make_safetensors(tmp_path / "m.safetensors", ml_dtypes.bfloat16, n=200_000)
    dst = tmp_path / "m.ansz"
    api.compress_file(src, dst, chunk_size=CHUNK)
    sha = hashlib.sha256(src.read_bytes()).hexdigest()
    good = api.verify_file(dst, threads=2)
    assert good.ok and good.sha256 == sha and good.original_size == src.stat().st_size
    assert good.first_bad is None
    assert api.verify_file(dst, src).ok

    info = api.read_info(dst)
    big = next(s for s in info.segments if s["name"] == "big")
    blob = bytearray(dst.read_bytes())
    cf = c.ContainerFile(lambda o, n: memoryview(blob)[o:o + n], len(blob))
    entry = cf.index.chunks[big["first_chunk"] + 3]
    blob[entry.offset + c.RECORD_HEADER.size + 50] ^= 1
    bad_path = tmp_path / "bad.ansz"
    bad_path.write_bytes(blob)
    bad = api.verify_file(bad_path, threads=2)
    assert not bad.ok and bad.first_bad == "tensor 'big' chunk 3"
    assert bad.message.startswith("chunk 4: ") and bad.sha256 == sha

    header_chunk = cf.index.chunks[0]
    blob2 = bytearray(dst.read_bytes())
    blob2[header_chunk.offset + 5] ^= 1  # record header of the JSON header's chunk
    bad_path.write_bytes(blob2)
    bad = api.verify_file(bad_path)
    assert not bad.ok and bad.first_bad.startswith("bytes [0, ") and bad.first_bad.endswith("chunk 0")

    bad_path.write_bytes(dst.read_bytes()[:-1])
    bad = api.verify_file(bad_path)
    assert not bad.ok and bad.first_bad is None and "trailer" in bad.message

    other = tmp_path / "other"
    data = bytearray(src.read_bytes())
    data[-5] ^= 1
    other.write_bytes(data)
    bad = api.verify_file(dst, other)
    assert not bad.ok and bad.first_bad.endswith("tensors [400248, 400322) chunk 0".replace("400248", str(info.segments[-1]["start"])).replace("400322", str(len(data)))) and str(len(data) - 5) in bad.message
    other.write_bytes(data[:-1])
    bad = api.verify_file(dst, other)
    assert not bad.ok and "bytes" in bad.message

    with pytest.raises(FileNotFoundError):
        api.verify_file(tmp_path / "missing.ansz")


def test_verify_catches_a_forged_index_sha(tmp_path):
    src = tmp_path / "x"
    src.write_bytes(b"x" * 1000)
    api.compress_file(src, tmp_path / "x.ansz")
    blob = (tmp_path / "x.ansz").read_bytes()
    sha = hashlib.sha256(b"x" * 1000).hexdigest()
    forged = _replace_index_text(blob, blob_text=lambda t: t.replace(sha.encode(), b"0" * 64))
    (tmp_path / "x.ansz").write_bytes(forged)
    r = api.verify_file(tmp_path / "x.ansz")
    assert not r.ok and "sha256" in r.message


def _replace_index_text(blob, blob_text):
    import zlib

    off, length, _ = c.parse_trailer(blob[-32:], len(blob) - 32)
    R = c.RECORD_HEADER.size
    rec = c.parse_record_header(blob[off:off + R], 1 << 26, "index", off)
    text = blob_text(c.index_text(rec, blob[off + R:off + R + length]))
    head = c.pack_record(c.INDEX, 0, 0, rec.original_offset, len(text), len(text),
                         c.content_hash(text), rec.previous_hash, rec.number)
    return (blob[:off] + head + text + bytes(c.pad8(len(text)) - len(text))
            + c.pack_trailer(off, len(text), zlib.crc32(text)))


def test_read_info(tmp_path):
    src = make_safetensors(tmp_path / "m.safetensors", np.float32, n=40_000)
    api.compress_file(src, tmp_path / "m.ansz", chunk_size=CHUNK)
    info = api.read_info(tmp_path / "m.ansz")
    assert info.format_version == 1 and info.format == "safetensors"
    assert info.original_size == src.stat().st_size
    assert info.compressed_size == (tmp_path / "m.ansz").stat().st_size
    assert info.sha256 == hashlib.sha256(src.read_bytes()).hexdigest()
    assert info.chunk_size == CHUNK and info.ratio == info.compressed_size / info.original_size
    # "small" (148 bytes) shares an unnamed segment of its dtype; "empty" takes none
    assert [s["name"] for s in info.segments] == [None, "big", None]
    assert [s["dtype"] for s in info.segments] == [None, "F32", "F32"]
    assert sum(s["chunk_count"] for s in info.segments) == info.chunk_count
    assert sum(s["nbytes"] for s in info.segments) == info.original_size
    assert sum(s["compressed_size"] for s in info.segments) < info.compressed_size
    assert info.segments[1]["shape"] == (400, 100) and info.segments[2]["nbytes"] == 148
    with pytest.raises(CorruptDataError):
        api.read_info(src)


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
    x = _weights(ml_dtypes.bfloat16, 3_000_000)  # > one stats piece
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
    broken.write_bytes(_handmade_safetensors([("a", "F32", np.zeros(4, np.float32))])
                       .replace(b'"F32"', b'"F99"'))
    with pytest.raises(FormatError, match="F99"):
        api.file_stats(broken)


def test_progress_reports_cumulative_original_bytes(tmp_path):
    src = make_safetensors(tmp_path / "m.safetensors", np.float16, n=100_000)
    seen = []
    api.compress_file(src, tmp_path / "m.ansz", chunk_size=CHUNK, progress=seen.append)
    assert seen == sorted(seen) and seen[-1] == src.stat().st_size and len(seen) > 3
    seen.clear()
    api.decompress_file(tmp_path / "m.ansz", tmp_path / "back", progress=seen.append, threads=2)
    assert seen == sorted(seen) and seen[-1] == src.stat().st_size


def test_level_2_is_the_default(tmp_path):
    src = make_safetensors(tmp_path / "m.safetensors", ml_dtypes.bfloat16)
    api.compress_file(src, tmp_path / "2.ansz", level=2)
    api.compress_file(src, tmp_path / "default.ansz")
    assert (tmp_path / "2.ansz").read_bytes() == (tmp_path / "default.ansz").read_bytes()


def test_public_names_are_reexported():
    import ansz

    for name in ("compress_file", "decompress_file", "compress_stream", "decompress_stream",
                 "verify_file", "file_stats", "read_info"):
        assert getattr(ansz, name) is getattr(api, name)


def test_pipes_and_devices(tmp_path):
    """A FIFO as input is read as a stream; an existing non-regular output is never replaced."""
    import threading

    data = make_safetensors(tmp_path / "m.safetensors", np.float16, n=20_000).read_bytes()
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)

    def feed(payload):
        with open(fifo, "wb") as f:
            f.write(payload)

    t = threading.Thread(target=feed, args=(data,))
    t.start()
    report = api.compress_file(fifo, tmp_path / "m.ansz", chunk_size=CHUNK)
    t.join()
    assert report.format == "safetensors" and report.original_size == len(data)
    blob = (tmp_path / "m.ansz").read_bytes()
    t = threading.Thread(target=feed, args=(blob,))
    t.start()
    api.decompress_file(fifo, tmp_path / "back")
    t.join()
    assert (tmp_path / "back").read_bytes() == data
    with pytest.raises(AnszError, match="not a regular file"):
        api.compress_file(tmp_path / "m.safetensors", os.devnull, overwrite=True)
    with pytest.raises(AnszError, match="not a regular file"):
        api.read_info(os.devnull)
    with pytest.raises(AnszError, match="not a regular file"):
        api.verify_file(os.devnull)
    assert os.path.exists(os.devnull) and not os.path.isfile(os.devnull)


def test_chunks_never_split_an_element(tmp_path):
    src = tmp_path / "m.safetensors"
    save_file({"d": _weights(np.float64, 3000), "h": _weights(np.float16, 3001)}, str(src))
    roundtrip(tmp_path, src)  # chunk_size 64 KiB; now an odd one
    api.compress_file(src, tmp_path / "odd.ansz", chunk_size=1025)
    info = api.read_info(tmp_path / "odd.ansz")
    blob = (tmp_path / "odd.ansz").read_bytes()
    cf = c.ContainerFile(lambda o, n: memoryview(blob)[o:o + n], len(blob))
    for seg in info.segments:
        width = {"F64": 8, "F16": 2}.get(seg["dtype"], 1)
        lengths = [e.decoded_length for e in
                   cf.index.chunks[seg["first_chunk"]:seg["first_chunk"] + seg["chunk_count"]]]
        assert all(n % width == 0 and n <= 1025 for n in lengths)
        assert all(n == 1025 - 1025 % width for n in lengths[:-1])
    assert info.chunk_size == 1025
    out = io.BytesIO()
    api.decompress_stream(io.BytesIO(blob), out)
    assert out.getvalue() == src.read_bytes()


def test_stream_with_a_huge_safetensors_header_falls_back(tmp_path, monkeypatch):
    data = make_safetensors(tmp_path / "m.safetensors", np.float32, n=1000).read_bytes()
    monkeypatch.setattr(detect, "STREAM_HEADER_LIMIT", 16)
    out = io.BytesIO()
    report = api.compress_stream(Pipe(data), out)
    assert report.format == "bytes" and "too large to buffer" in report.fallback_reason
    back = io.BytesIO()
    api.decompress_stream(io.BytesIO(out.getvalue()), back)
    assert back.getvalue() == data


@pytest.mark.parametrize("window", [4096, 1 << 20])
def test_file_hash_covers_the_whole_file_in_windows(tmp_path, monkeypatch, window):
    # A regular file is hashed by its own thread, window by window (here several windows,
    # one of them partial); the container records the sha256 of every byte.
    monkeypatch.setattr(_io.FileSha256, "WINDOW", window)
    src = make_safetensors(tmp_path / "m.safetensors", np.float32, n=40_000)
    api.compress_file(src, tmp_path / "m.ansz", chunk_size=CHUNK)
    assert api.read_info(tmp_path / "m.ansz").sha256 == hashlib.sha256(
        src.read_bytes()).hexdigest()
    assert api.verify_file(tmp_path / "m.ansz").ok


def test_file_hash_stops_when_compression_fails(tmp_path, monkeypatch):
    src = make_safetensors(tmp_path / "m.safetensors", np.float32, n=40_000)
    hashers = []
    real_init = _io.FileSha256.__init__

    def init(self, *args):
        real_init(self, *args)
        hashers.append(self)

    def fail(*args, **kwargs):
        raise RuntimeError("coder failed")

    monkeypatch.setattr(_io.FileSha256, "__init__", init)
    monkeypatch.setattr(api, "encode_payload", fail)
    with pytest.raises(RuntimeError, match="coder failed"):
        api.compress_file(src, tmp_path / "m.ansz", chunk_size=CHUNK)
    (h,) = hashers
    # told to stop and its thread joined; no output left behind
    assert h._stop and not h._thread.is_alive()
    assert not (tmp_path / "m.ansz").exists()


def test_file_hash_stays_within_its_lead_of_the_pipeline(tmp_path, monkeypatch):
    # The hasher reads at most LEAD bytes past what the pipeline has read (allow), so a
    # file larger than memory is not read from disk twice; closing lifts the limit.
    monkeypatch.setattr(_io.FileSha256, "WINDOW", 4096)
    monkeypatch.setattr(_io.FileSha256, "LEAD", 0)
    data = os.urandom(3 * 4096 + 100)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    class Recorder:  # the hasher's sha256, recording how much it was given
        def __init__(self):
            self.sha, self.fed = hashlib.sha256(), 0

        def update(self, piece):
            self.fed += len(piece)
            self.sha.update(piece)

        def hexdigest(self):
            return self.sha.hexdigest()

    with _io.PositionalFile(str(path)) as f:
        h = _io.FileSha256(f)
        h._sha = rec = Recorder()  # the thread is parked before its first update
        h._thread.join(0.2)
        assert h._thread.is_alive() and rec.fed == 0  # nothing allowed yet
        h.allow(4096)  # one window
        deadline = time.monotonic() + 10
        while rec.fed < 4096 and time.monotonic() < deadline:
            time.sleep(0.01)
        h._thread.join(0.2)
        assert h._thread.is_alive() and rec.fed == 4096
        assert h.hexdigest() == hashlib.sha256(data).hexdigest()
        assert not h._thread.is_alive() and rec.fed == len(data)
