"""compress_file and compress_stream, with decompression to check them: every dtype, odd
and broken files, levels and arguments, threads, chunking, progress, and the sha256 that a
thread of its own computes. Small chunk sizes make small files take the multi-chunk paths.
"""

import hashlib
import io
import os
import threading
import time

import ml_dtypes
import numpy as np
import pytest
from safetensors.numpy import save_file

import ansz
from ansz import _io, api, streams
from ansz import container as c
from ansz.errors import AnszError

from helpers import (count_file_hashers, handmade_safetensors, make_tensors, roundtrip_file,
                     safetensors_dtypes, values)

CHUNK = 64 << 10
DTYPES = safetensors_dtypes()


def roundtrip(tmp_path, src, **kw):
    """``src`` through compress_file (64 KiB chunks) into tmp_path/out.ansz and back."""
    return roundtrip_file(src, tmp_path / "out.ansz", chunk_size=CHUNK, **kw)


@pytest.mark.parametrize("dtype", sorted(DTYPES))
def test_round_trip_every_dtype(tmp_path, dtype):
    src = make_tensors(tmp_path / "m.safetensors", DTYPES[dtype])
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
    src.write_bytes(b"some text " * 30_000 + np.random.default_rng(0).integers(0, 256, 100_000, dtype=np.uint8).tobytes())
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


def test_file_with_holes_trailing_bytes_and_subbyte_tensor(tmp_path):
    src = tmp_path / "odd.safetensors"
    f4 = np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8)  # 10000 packed F4 elements
    b = values(np.float32, 3)
    src.write_bytes(handmade_safetensors(
        [("a", "BF16", values(ml_dtypes.bfloat16, 50_000)), ("b", "F32", b),
         ("packed", "F4", f4, [100, 100])], holes=b"\x01" * 1001, trailing=b"tail" * 1000))
    report = roundtrip(tmp_path, src)
    assert report.format == "safetensors", report.fallback_reason
    segs = api.read_info(tmp_path / "out.ansz").segments
    # "b" (12 bytes) is below SMALL_TENSOR: an unnamed segment of its dtype
    assert [s["name"] for s in segs] == [None, "a", None, None, "packed", None]
    assert [s["dtype"] for s in segs] == [None, "BF16", None, "F32", "F4", None]
    assert segs[2]["nbytes"] == 1001 and segs[3]["nbytes"] == 12 and segs[-1]["nbytes"] == 4000
    with ansz.open(tmp_path / "out.ansz") as f:
        assert f.keys() == ["a", "b", "packed"]
        assert f.get_tensor("b").tobytes() == b.tobytes()


def test_broken_safetensors_header_falls_back_to_bytes(tmp_path):
    good = handmade_safetensors([("a", "F32", values(np.float32, 1000))])
    src = tmp_path / "broken.safetensors"
    src.write_bytes(good.replace(b'"F32"', b'"F33"'))
    report = roundtrip(tmp_path, src)
    assert report.format == "bytes" and "F33" in report.fallback_reason
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\xff" * 100)
    report = roundtrip(tmp_path, garbage)
    assert report.format == "bytes" and "not a valid safetensors file" in report.fallback_reason


def test_strict_refuses_a_broken_model_file_before_publishing(tmp_path):
    from ansz.errors import FormatError

    good = handmade_safetensors([("a", "F32", values(np.float32, 1000))])
    src = tmp_path / "broken.safetensors"
    src.write_bytes(good.replace(b'"F33"', b"").replace(b'"F32"', b'"F33"'))
    dst = tmp_path / "broken.ansz"
    with pytest.raises(FormatError, match="F33"):
        api.compress_file(src, dst, strict=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.safetensors"]
    out = io.BytesIO()
    with pytest.raises(FormatError, match="F33"):
        api.compress_stream(io.BytesIO(src.read_bytes()), out, strict=True)
    assert out.getvalue() == b""  # the header is checked before anything is written
    out = io.BytesIO()
    with pytest.raises(FormatError, match="input ended at byte 500"):
        api.compress_stream(io.BytesIO(good[:500]), out, strict=True)
    with pytest.raises(AnszError):  # what was written is not a container
        api.decompress_stream(io.BytesIO(out.getvalue()), io.BytesIO())
    # A sound file, and a file that is no model at all, are not affected.
    ok = tmp_path / "ok.safetensors"
    ok.write_bytes(good)
    assert api.compress_file(ok, tmp_path / "ok.ansz", strict=True).format == "safetensors"
    other = tmp_path / "notes.txt"
    other.write_bytes(b"plain text\n" * 100)
    assert api.compress_file(other, tmp_path / "notes.ansz", strict=True).format == "bytes"


def test_threads_do_not_change_the_output(tmp_path):
    src = make_tensors(tmp_path / "m.safetensors", ml_dtypes.bfloat16, n=300_000)
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


@pytest.mark.parametrize("dtype", sorted(DTYPES))
def test_level_1_round_trips_every_dtype_and_uses_64_state_streams(tmp_path, dtype):
    src = make_tensors(tmp_path / "m.safetensors", DTYPES[dtype], n=400_000)
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


def test_level_2_is_the_default(tmp_path):
    src = make_tensors(tmp_path / "m.safetensors", ml_dtypes.bfloat16)
    api.compress_file(src, tmp_path / "2.ansz", level=2)
    api.compress_file(src, tmp_path / "default.ansz")
    assert (tmp_path / "2.ansz").read_bytes() == (tmp_path / "default.ansz").read_bytes()


def test_bad_arguments():
    for kw in ({"level": 0}, {"level": 3}, {"level": "1"}, {"level": 1.0}):
        with pytest.raises(AnszError, match="level"):
            api.compress_stream(io.BytesIO(b"x"), io.BytesIO(), **kw)
    for kw in ({"chunk_size": 10}, {"chunk_size": 1 << 30}, {"chunk_size": 1.5}, {"threads": -1}):
        with pytest.raises(AnszError):
            api.compress_stream(io.BytesIO(b"x"), io.BytesIO(), **kw)


def test_progress_reports_cumulative_original_bytes(tmp_path):
    src = make_tensors(tmp_path / "m.safetensors", np.float16, n=100_000)
    seen = []
    api.compress_file(src, tmp_path / "m.ansz", chunk_size=CHUNK, progress=seen.append)
    assert seen == sorted(seen) and seen[-1] == src.stat().st_size and len(seen) > 3
    seen.clear()
    api.decompress_file(tmp_path / "m.ansz", tmp_path / "back", progress=seen.append, threads=2)
    assert seen == sorted(seen) and seen[-1] == src.stat().st_size


def test_chunks_never_split_an_element(tmp_path):
    src = tmp_path / "m.safetensors"
    save_file({"d": values(np.float64, 3000), "h": values(np.float16, 3001)}, str(src))
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


def test_level_1_cuts_2_mib_chunks_unless_told(tmp_path):
    """Level 1 codes for decoding speed, whose per-chunk costs 2 MiB chunks halve; the
    default level keeps 1 MiB; a chunk size given wins at either level. Every compress
    entry point (file, stream, ansz.save) picks the same."""
    from ansz.options import DEFAULT_CHUNK_SIZE, FAST_CHUNK_SIZE

    assert (DEFAULT_CHUNK_SIZE, FAST_CHUNK_SIZE) == (1 << 20, 2 << 20)
    tensors = {"w": (np.random.default_rng(3).standard_normal(3 << 20) * 0.02).astype(
        ml_dtypes.bfloat16)}  # 6 MiB
    src = tmp_path / "m.safetensors"
    save_file(tensors, str(src))

    def lengths(blob):
        cf = c.ContainerFile(lambda o, n: memoryview(blob)[o:o + n], len(blob))
        return cf.max_chunk_size, [e.decoded_length for e in cf.index.chunks][1:]  # 0: header

    for level, size, want in ((1, None, 2 << 20), (None, None, 1 << 20), (2, None, 1 << 20),
                              (1, 1 << 20, 1 << 20), (2, 2 << 20, 2 << 20)):
        dst = tmp_path / f"{level}-{size}.ansz"
        api.compress_file(src, dst, level=level, chunk_size=size)
        out = io.BytesIO()
        with open(src, "rb") as fh:
            api.compress_stream(fh, out, level=level, chunk_size=size)
        saved = ansz.save(tensors, level=level, chunk_size=size)
        for blob in (dst.read_bytes(), out.getvalue(), saved):
            assert lengths(blob) == (want, [want] * ((6 << 20) // want)), (level, size)
        assert api.read_info(dst).chunk_size == want
        back = io.BytesIO()
        api.decompress_stream(io.BytesIO(out.getvalue()), back)
        assert back.getvalue() == src.read_bytes()


@pytest.mark.parametrize("window", [4096, 1 << 20])
def test_file_hash_covers_the_whole_file_in_windows(tmp_path, monkeypatch, window):
    # A regular file is hashed by its own thread, window by window (here several windows,
    # one of them partial); the container records the sha256 of every byte.
    monkeypatch.setattr(_io.FileSha256, "WINDOW", window)
    src = make_tensors(tmp_path / "m.safetensors", np.float32, n=40_000)
    api.compress_file(src, tmp_path / "m.ansz", chunk_size=CHUNK)
    assert api.read_info(tmp_path / "m.ansz").sha256 == hashlib.sha256(
        src.read_bytes()).hexdigest()
    assert api.verify_file(tmp_path / "m.ansz").ok


def _count_hashed_bytes(monkeypatch) -> list[int]:
    """The sizes of the reads the file hasher's thread makes, as they happen."""
    hashed = []
    real_read_into = _io.PositionalFile.read_into

    def read_into(self, offset, view):
        real_read_into(self, offset, view)
        if threading.current_thread().name == "ansz-sha256":
            hashed.append(len(view))

    monkeypatch.setattr(_io.PositionalFile, "read_into", read_into)
    return hashed


def test_file_hash_stops_when_compression_fails(tmp_path, monkeypatch):
    src = make_tensors(tmp_path / "m.safetensors", np.float32, n=40_000)
    monkeypatch.setattr(_io.FileSha256, "LEAD", 0)  # it may hash only what has been coded
    hashed = _count_hashed_bytes(monkeypatch)

    def fail(*args, **kwargs):
        raise RuntimeError("coder failed")

    monkeypatch.setattr(api, "encode_payload", fail)
    with pytest.raises(RuntimeError, match="coder failed"):
        api.compress_file(src, tmp_path / "m.ansz", chunk_size=CHUNK)
    # Told to stop, not to finish the file (as a successful run does); its thread is gone,
    # and no output is left behind.
    assert sum(hashed) == 0
    assert "ansz-sha256" not in {t.name for t in threading.enumerate()}
    assert not (tmp_path / "m.ansz").exists()


def test_file_hash_stays_within_its_lead_of_the_pipeline(tmp_path, monkeypatch):
    # The hasher reads at most LEAD bytes past what the pipeline has read (allow), so a
    # file larger than memory is not read from disk twice; closing lifts the limit.
    monkeypatch.setattr(_io.FileSha256, "WINDOW", 4096)
    monkeypatch.setattr(_io.FileSha256, "LEAD", 0)
    hashed = _count_hashed_bytes(monkeypatch)
    data = os.urandom(3 * 4096 + 100)
    path = tmp_path / "f.bin"
    path.write_bytes(data)

    def settles_at(n: int) -> bool:
        deadline = time.monotonic() + 10
        while sum(hashed) < n and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)  # and reads no further
        return sum(hashed) == n

    with _io.PositionalFile(str(path)) as f:
        h = _io.FileSha256(f)
        assert settles_at(0)  # nothing allowed yet
        h.allow(4096)
        assert settles_at(4096)  # one window
        assert h.hexdigest() == hashlib.sha256(data).hexdigest()
        assert sum(hashed) == len(data)


def test_compression_takes_the_hash_started_ahead_for_its_file(tmp_path, monkeypatch):
    # hash_ahead (the command's, before its imports) starts the file's sha256; compress_file
    # of that file takes it rather than hashing the file again, and the digest is the file's.
    made = count_file_hashers(monkeypatch)
    src = make_tensors(tmp_path / "m.safetensors", np.float32, n=40_000)
    _io.hash_ahead(str(src))
    assert len(made) == 1
    api.compress_file(src, tmp_path / "m.ansz", chunk_size=CHUNK, threads=2)
    assert len(made) == 1 and _io._ahead is None
    assert api.read_info(tmp_path / "m.ansz").sha256 == hashlib.sha256(
        src.read_bytes()).hexdigest()
    made[0]._thread.join(10)
    assert not made[0]._thread.is_alive() and made[0]._file.fh.closed  # its own file, closed


def test_a_hash_started_ahead_is_not_taken_for_a_changed_or_other_file(tmp_path, monkeypatch):
    monkeypatch.setattr(_io.FileSha256, "LEAD", 0)  # a hash not taken stays at its start
    made = count_file_hashers(monkeypatch)
    src = make_tensors(tmp_path / "m.safetensors", np.float32, n=40_000)
    other = make_tensors(tmp_path / "o.safetensors", np.float16, n=30_000)
    _io.hash_ahead(str(src))
    _io.hash_ahead(str(src))  # a second start stops the first
    made[0]._thread.join(10)
    assert not made[0]._thread.is_alive() and made[0]._file.fh.closed
    api.compress_file(other, tmp_path / "o.ansz", chunk_size=CHUNK)  # another file: stopped
    assert len(made) == 3 and _io._ahead is None
    made[1]._thread.join(10)
    assert not made[1]._thread.is_alive() and made[1]._file.fh.closed
    # the same path, rewritten after its old bytes were hashed: the new ones are hashed
    monkeypatch.setattr(_io.FileSha256, "LEAD", 1 << 30)
    _io.hash_ahead(str(src))
    made[3]._thread.join(10)
    assert not made[3]._thread.is_alive()
    data = bytearray(src.read_bytes())
    data[-1] ^= 1
    time.sleep(0.01)
    src.write_bytes(bytes(data))
    os.utime(src, ns=(time.time_ns(), time.time_ns() + 10**9))
    api.compress_file(src, tmp_path / "m.ansz", chunk_size=CHUNK)
    assert len(made) == 5
    assert api.read_info(tmp_path / "m.ansz").sha256 == hashlib.sha256(data).hexdigest()
    assert api.verify_file(tmp_path / "m.ansz", src).ok


def test_hash_ahead_of_what_is_not_a_regular_file_starts_nothing(tmp_path, monkeypatch):
    # and stops the hasher it finds waiting: that file is not the one compressed next
    monkeypatch.setattr(_io.FileSha256, "LEAD", 0)
    made = count_file_hashers(monkeypatch)
    src = make_tensors(tmp_path / "m.safetensors", np.float32, n=4_000)
    _io.hash_ahead(str(src))
    _io.hash_ahead(str(tmp_path / "missing"))
    _io.hash_ahead(str(tmp_path))
    assert len(made) == 1 and _io._ahead is None
    made[0]._thread.join(10)
    assert not made[0]._thread.is_alive() and made[0]._file.fh.closed
