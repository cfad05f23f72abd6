"""What compress_file and decompress_file write: the overwrite policy (never the input or a
directory, another file only with overwrite=True), the input's mode and times, and nothing
at all -- not even a temporary file -- when they fail or are interrupted.
"""

import os
import struct
import zlib

import ml_dtypes
import pytest

from ansz import api, chunks
from ansz import container as c
from ansz.errors import AnszError, CorruptDataError, OutputExistsError, UnsupportedError

from helpers import make_tensors

CHUNK = 64 << 10


def test_overwrite_same_file_and_directory_refusals(tmp_path):
    src = tmp_path / "a.bin"
    src.write_bytes(b"abc" * 1000)
    dst = tmp_path / "a.ansz"
    dst.write_bytes(b"keep me")
    with pytest.raises(OutputExistsError, match=r"a.ansz already exists \(overwrite=True "):
        api.compress_file(src, dst)
    assert dst.read_bytes() == b"keep me"
    api.compress_file(src, dst, overwrite=True)
    assert dst.read_bytes()[:8] == c.MAGIC
    with pytest.raises(AnszError, match="already exists"):
        api.decompress_file(dst, src)
    with pytest.raises(AnszError, match="input and output are the same file"):
        api.compress_file(src, src, overwrite=True)
    os.link(src, tmp_path / "hardlink")
    with pytest.raises(AnszError, match="input and output are the same file"):
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
    src = make_tensors(tmp_path / "m.safetensors", ml_dtypes.bfloat16, n=200_000)
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
    src = make_tensors(tmp_path / "m.safetensors", ml_dtypes.bfloat16, n=200_000)
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
    head = blob[:12]
    head = head[:8] + struct.pack("<H", version) + head[10:12] + blob[12:20]
    return head + struct.pack("<I", zlib.crc32(head)) + blob[24:]
