"""verify_file and read_info: a container checked end to end (every chunk, the sha256, an
original to compare with), and described from its index alone.
"""

import hashlib
import zlib

import ml_dtypes
import numpy as np
import pytest

from ansz import api
from ansz import container as c
from ansz.errors import CorruptDataError

from helpers import make_tensors

CHUNK = 64 << 10


def test_verify(tmp_path):
    src = make_tensors(tmp_path / "m.safetensors", ml_dtypes.bfloat16, n=200_000)
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
    off, length, _ = c.parse_trailer(blob[-32:], len(blob) - 32)
    R = c.RECORD_HEADER.size
    rec = c.parse_record_header(blob[off:off + R], 1 << 26, "index", off)
    text = blob_text(c.index_text(rec, blob[off + R:off + R + length]))
    head = c.pack_record(c.INDEX, 0, 0, rec.original_offset, len(text), len(text),
                         c.content_hash(text), rec.previous_hash, rec.number)
    return (blob[:off] + head + text + bytes(c.pad8(len(text)) - len(text))
            + c.pack_trailer(off, len(text), zlib.crc32(text)))


def test_read_info(tmp_path):
    src = make_tensors(tmp_path / "m.safetensors", np.float32, n=40_000)
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


def test_verify_stream(tmp_path):
    """verify_stream checks what verify_file checks, from a pipe-like object; it stops at
    the first bad chunk, and knows the size and sha256 only from the index at the end."""
    import io

    from ansz.errors import UnsupportedError

    src = make_tensors(tmp_path / "m.safetensors", ml_dtypes.bfloat16, n=200_000)
    dst = tmp_path / "m.ansz"
    api.compress_file(src, dst, chunk_size=CHUNK)
    blob = dst.read_bytes()
    sha = hashlib.sha256(src.read_bytes()).hexdigest()
    for threads in (1, 2):
        good = api.verify_stream(io.BytesIO(blob), threads=threads)
        assert good.ok and good.sha256 == sha and good.original_size == src.stat().st_size
        assert api.verify_stream(io.BytesIO(blob), src, threads=threads).ok
    cf = c.ContainerFile(lambda o, n: memoryview(blob)[o:o + n], len(blob))
    entry = cf.index.chunks[5]
    bad = bytearray(blob)
    bad[entry.offset + c.RECORD_HEADER.size + 50] ^= 1
    r = api.verify_stream(io.BytesIO(bytes(bad)))
    assert not r.ok and r.first_bad == "chunk 5" and r.sha256 == "" and r.message
    for cut in (0, 10, len(blob) // 2, len(blob) - 1):
        r = api.verify_stream(io.BytesIO(blob[:cut]))
        assert not r.ok and r.message, cut
    r = api.verify_stream(io.BytesIO(blob + b"\0"))
    assert not r.ok
    r = api.verify_stream(io.BytesIO(b"not a container at all" * 10))
    assert not r.ok
    other = tmp_path / "other"
    data = bytearray(src.read_bytes())
    data[-5] ^= 1
    other.write_bytes(data)
    r = api.verify_stream(io.BytesIO(blob), other)
    assert not r.ok and r.message == (f"decoded bytes differ from {other} at byte "
                                      f"{len(data) - 5}") and r.sha256 == sha
    other.write_bytes(data[:-1])
    r = api.verify_stream(io.BytesIO(blob), other)
    assert not r.ok and f"is {len(data) - 1} bytes" in r.message
    other.write_bytes(bytes(src.read_bytes()) + b"more")
    r = api.verify_stream(io.BytesIO(blob), other)
    assert not r.ok and f"is {len(data) + 4} bytes" in r.message
    forged = _replace_index_text(blob, blob_text=lambda t: t.replace(sha.encode(), b"0" * 64))
    r = api.verify_stream(io.BytesIO(forged))
    assert not r.ok and "sha256" in r.message
    head = c.pack_file_header(c.parse_file_header(blob), flags=0x8000)
    with pytest.raises(UnsupportedError):
        api.verify_stream(io.BytesIO(head + blob[len(head):]))
    with pytest.raises(FileNotFoundError):
        api.verify_stream(io.BytesIO(blob), tmp_path / "missing")
