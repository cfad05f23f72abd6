"""Repeated chunks stored once (docs/FORMAT.md, "Repeated chunks"): tied tensors and other
repeats in a file become COPY_CHUNK records of KEPT chunks, which every decoder -- seekable,
stream, lazy tensors, verify -- restores, and which hostile files cannot abuse."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

import ansz
from ansz import api, container as c
from ansz.errors import CorruptDataError, UnsupportedError
from ansz.plan import file_chunks
from ansz.repeats import find_repeats

from helpers import handmade_safetensors, leftovers, run, safetensors_dtypes, values

CHUNK = 4096


def _tied(dtype_name: str, dtype, n: int = 6000, seed: int = 0) -> bytes:
    """A safetensors file with a tensor repeated under another name, and another between."""
    w = values(dtype, n, seed)
    other = values(dtype, n // 2, seed + 1)
    return handmade_safetensors([("embed", dtype_name, w), ("mid", dtype_name, other),
                                 ("head", dtype_name, w)])


def _records(blob: bytes) -> list[tuple[c.Record, bytes, int]]:
    """Every chunk record of a container: ``(record, payload, offset)``."""
    cf = c.ContainerFile(lambda o, n: blob[o:o + n], len(blob))
    return [(*cf.chunk(i), e.offset) for i, e in enumerate(cf.index.chunks)]


def _decode_both(blob: bytes) -> tuple[bytes, bytes]:
    cf = c.ContainerFile(lambda o, n: blob[o:o + n], len(blob))
    decode = api._chunk_decoder(cf)
    seekable = b"".join(bytes(decode(i)) for i in range(len(cf.index.chunks)))
    out = io.BytesIO()
    api.decompress_stream(io.BytesIO(blob), out, threads=2)
    return seekable, out.getvalue()


@pytest.mark.parametrize("name", ["BF16", "F16", "F32", "F64", "F8_E4M3", "U8", "I32", "BOOL"])
def test_a_repeated_tensor_is_stored_once_and_every_decoder_restores_it(tmp_path, name):
    dtype = safetensors_dtypes()[name]
    src = tmp_path / "tied.safetensors"
    src.write_bytes(_tied(name, dtype))
    alone = tmp_path / "alone.safetensors"
    alone.write_bytes(handmade_safetensors([("embed", name, values(dtype, 6000)),
                                            ("mid", name, values(dtype, 3000, 1))]))
    dst = tmp_path / "tied.ansz"
    r = api.compress_file(src, dst, chunk_size=CHUNK)
    r_alone = api.compress_file(alone, tmp_path / "alone.ansz", chunk_size=CHUNK)
    # the repeat costs its records only (48 + 8 bytes each), and a few bytes of index
    records = -(-values(dtype, 6000).nbytes // CHUNK)
    assert r.compressed_size <= r_alone.compressed_size + records * 56 + 400
    blob = dst.read_bytes()
    kinds = [(rec.kind, rec.kept) for rec, _, _ in _records(blob)]
    assert (c.COPY_CHUNK, False) in kinds and (c.PLAIN, True) in kinds
    assert c.ContainerFile(lambda o, n: blob[o:o + n], len(blob)).flags & c.FLAG_REPEATS
    original = src.read_bytes()
    assert _decode_both(blob) == (original, original)
    back = tmp_path / "back"
    api.decompress_file(dst, back)
    assert back.read_bytes() == original
    assert api.verify_file(dst, src).ok
    assert api.verify_stream(io.BytesIO(blob), src).ok
    with ansz.open(dst) as f:
        assert f.get_tensor("head").tobytes() == f.get_tensor("embed").tobytes()
        assert f.get_tensor("head").tobytes() == values(dtype, 6000).tobytes()


def test_repeated_chunks_within_a_tensor_and_in_plain_bytes(tmp_path):
    block = np.random.default_rng(1).integers(0, 256, CHUNK, dtype=np.uint8).tobytes()
    # a float tensor whose chunks repeat, then bytes that are no model file
    half = values(np.float32, CHUNK // 4, 3).tobytes()
    model = tmp_path / "m.safetensors"
    model.write_bytes(handmade_safetensors([("w", "F32", np.frombuffer(half * 3, np.float32))]))
    raw = tmp_path / "blob.bin"
    raw.write_bytes(block * 5 + b"tail")
    for src in (model, raw):
        dst = tmp_path / (src.name + ".ansz")
        api.compress_file(src, dst, chunk_size=CHUNK)
        blob = dst.read_bytes()
        recs = _records(blob)
        copies = [rec for rec, _, _ in recs if rec.kind == c.COPY_CHUNK]
        assert len(copies) == (2 if src is model else 4)
        assert sum(rec.kept for rec, _, _ in recs) == 1
        assert _decode_both(blob) == (src.read_bytes(), src.read_bytes())


def test_a_stream_input_is_coded_without_repeats(tmp_path):
    data = _tied("BF16", safetensors_dtypes()["BF16"])
    out = io.BytesIO()
    api.compress_stream(io.BytesIO(data), out, chunk_size=CHUNK)
    blob = out.getvalue()
    assert not c.ContainerFile(lambda o, n: blob[o:o + n], len(blob)).flags & c.FLAG_REPEATS
    assert _decode_both(blob) == (data, data)


def test_a_file_without_repeats_is_written_as_before(tmp_path):
    src = tmp_path / "plain.safetensors"
    src.write_bytes(handmade_safetensors([("a", "F32", values(np.float32, 5000)),
                                          ("b", "F32", values(np.float32, 5000, 1))]))
    dst = tmp_path / "plain.ansz"
    api.compress_file(src, dst, chunk_size=CHUNK)
    blob = dst.read_bytes()
    _, _, flags, _, kept, _ = c.FILE_HEADER.unpack(blob[:c.FILE_HEADER.size])
    assert not flags & c.FLAG_REPEATS and kept == 0
    assert all(rec.kind == c.PLAIN and not rec.kept for rec, _, _ in _records(blob))


def test_the_kept_bytes_stay_within_the_limit():
    distinct = [np.random.default_rng(s).integers(0, 256, CHUNK, np.uint8).tobytes()
                for s in range(3)]
    data = b"".join(d + d for d in distinct)  # a a b b c c

    def read_at(o, n):
        return data[o:o + n]

    chunks = [(0, c.BYTES, o, CHUNK) for o in range(0, len(data), CHUNK)]
    everything = find_repeats(read_at, chunks)
    assert everything.copies == {CHUNK: 0, 3 * CHUNK: 2, 5 * CHUNK: 4}
    assert everything.kept == {0, 2 * CHUNK, 4 * CHUNK} and everything.kept_size == 3 * CHUNK
    limited = find_repeats(read_at, chunks, kept_limit=2 * CHUNK)
    assert limited.copies == {CHUNK: 0, 3 * CHUNK: 2} and limited.kept_size == 2 * CHUNK
    # equal samples but different bytes (a difference away from the sampled bytes): no repeat
    tweaked = bytearray(distinct[0] * 2)
    tweaked[CHUNK + 1000] ^= 1
    assert find_repeats(lambda o, n: bytes(tweaked[o:o + n]),
                        [(0, c.BYTES, 0, CHUNK), (0, c.BYTES, CHUNK, CHUNK)]).copies == {}
    # the writer refuses more kept bytes than its header declares
    w = c.ContainerWriter(io.BytesIO(), CHUNK, c.FLAG_REPEATS, kept_size=CHUNK)
    w.add_chunk(0, c.BYTES, b"x", CHUNK, 1, c.PLAIN | c.KEPT)
    with pytest.raises(ValueError, match="Kept_Size"):
        w.add_chunk(0, c.BYTES, b"x", CHUNK, 1, c.PLAIN | c.KEPT)
    with pytest.raises(ValueError):
        c.ContainerWriter(io.BytesIO(), CHUNK, 0, kept_size=1)


def test_an_input_changed_after_the_search_fails_with_no_output(tmp_path, monkeypatch):
    from ansz import repeats

    src = tmp_path / "m.safetensors"
    src.write_bytes(handmade_safetensors([("a", "F32", values(np.float32, 5000)),
                                          ("b", "F32", values(np.float32, 5000, 1))]))
    real = repeats.find_repeats

    def stale(read_at, chunks, **kw):  # as if "b" had equalled "a" when it was searched
        found = real(read_at, chunks, **kw)
        a = next(i for i, ch in enumerate(chunks) if ch[3] == CHUNK)
        b = next(ch for ch in chunks[a + 1:] if ch[3] == CHUNK and ch[2] >= 20000 + 8)
        found.copies[b[2]] = a
        found.kept.add(chunks[a][2])
        found.kept_size += CHUNK
        return found

    monkeypatch.setattr(repeats, "find_repeats", stale)
    with pytest.raises(ansz.AnszError, match="changed while"):
        api.compress_file(src, tmp_path / "out.ansz", chunk_size=CHUNK)
    assert not (tmp_path / "out.ansz").exists() and leftovers(tmp_path) == []


# --- hostile containers -------------------------------------------------------------------


@pytest.fixture(scope="module")
def tied_blob(tmp_path_factory) -> bytes:
    d = tmp_path_factory.mktemp("tied")
    src = d / "tied.safetensors"
    src.write_bytes(_tied("F32", np.float32, n=3000))
    api.compress_file(src, d / "tied.ansz", chunk_size=CHUNK)
    return (d / "tied.ansz").read_bytes()


def _with_kind(blob: bytes, offset: int, kind: int) -> bytes:
    """``blob`` with the record header at ``offset`` given Chunk_Kind ``kind`` (CRC fixed)."""
    out = bytearray(blob)
    struct.pack_into("<H", out, offset + 2, kind)
    struct.pack_into("<I", out, offset + 44, zlib.crc32(bytes(out[offset:offset + 44])))
    return bytes(out)


def _with_header(blob: bytes, *, flags: int | None = None, kept: int | None = None) -> bytes:
    magic, version, f, max_chunk, k, _ = c.FILE_HEADER.unpack(blob[:c.FILE_HEADER.size])
    head = c.FILE_HEADER.pack(magic, version, f if flags is None else flags, max_chunk,
                              k if kept is None else kept, 0)[:-4]
    return head + struct.pack("<I", zlib.crc32(head)) + blob[c.FILE_HEADER.size:]


def _both_fail(blob: bytes, exc=CorruptDataError, match: str | None = None) -> None:
    with pytest.raises(exc, match=match):
        _decode_both_seekable(blob)
    with pytest.raises(exc, match=match):
        api.decompress_stream(io.BytesIO(blob), io.BytesIO(), threads=2)


def _decode_both_seekable(blob: bytes) -> None:
    cf = c.ContainerFile(lambda o, n: blob[o:o + n], len(blob))
    decode = api._chunk_decoder(cf)
    for i in range(len(cf.index.chunks)):
        decode(i)


def test_hostile_repeats_are_refused(tied_blob):
    recs = _records(tied_blob)
    kept = next(off for rec, _, off in recs if rec.kept)
    copy_rec, _, copy_off = next(r for r in recs if r[0].kind == c.COPY_CHUNK)
    assert _decode_both(tied_blob)[0] == _decode_both(tied_blob)[1]
    # a copy of a chunk that is not KEPT: a stream decoder would not have its bytes
    _both_fail(_with_kind(tied_blob, kept, c.PLAIN), match="cannot repeat")
    # KEPT on a copy, an unknown kind, KEPT without the flag: a newer writer's features
    _both_fail(_with_kind(tied_blob, copy_off, c.COPY_CHUNK | c.KEPT), UnsupportedError)
    _both_fail(_with_kind(tied_blob, copy_off, c.DELTA), UnsupportedError)
    _both_fail(_with_kind(tied_blob, kept, c.PLAIN | 0x0200), UnsupportedError)
    flags = c.FILE_HEADER.unpack(tied_blob[:c.FILE_HEADER.size])[2]
    _both_fail(_with_header(tied_blob, flags=flags & ~c.FLAG_REPEATS, kept=0), UnsupportedError)
    # more kept bytes than the header declares: the stream decoder stops
    with pytest.raises(CorruptDataError, match="Kept_Size"):
        api.decompress_stream(io.BytesIO(_with_header(tied_blob, kept=CHUNK - 1)), io.BytesIO())
    with pytest.raises(UnsupportedError, match="kept"):
        api.decompress_stream(io.BytesIO(_with_header(tied_blob, kept=c.MAX_KEPT_SIZE + 1)),
                              io.BytesIO())
    # a copy of itself, of a later chunk, of a chunk of another length or hash
    payload_at = copy_off + c.RECORD_HEADER.size
    for j in (copy_rec.number, copy_rec.number + 1, 0xFFFFFFFF):
        bad = bytearray(tied_blob)
        struct.pack_into("<I", bad, payload_at, j)
        _both_fail(bytes(bad), match="cannot repeat")
    other = next(rec.number for rec, _, _ in recs
                 if rec.kind == c.PLAIN and rec.content_hash != copy_rec.content_hash)
    bad = bytearray(tied_blob)
    struct.pack_into("<I", bad, payload_at, other)
    _both_fail(bytes(bad), match="cannot repeat")


def test_the_command_decodes_repeats_from_a_pipe(tmp_path):
    src = tmp_path / "tied.safetensors"
    src.write_bytes(_tied("BF16", safetensors_dtypes()["BF16"]))
    dst = tmp_path / "tied.safetensors.ansz"
    assert run(["compress", "-q", "--chunk-size", "4KiB", src]).returncode == 0
    with open(dst, "rb") as fh:
        proc = run(["decompress", "-c"], stdin=fh)
    assert proc.returncode == 0 and proc.stdout == src.read_bytes()
    with open(dst, "rb") as fh:
        assert run(["verify", "-"], stdin=fh).returncode == 0


def test_stats_predicts_the_repeats(tmp_path):
    src = tmp_path / "tied.safetensors"
    src.write_bytes(_tied("BF16", safetensors_dtypes()["BF16"], n=1_200_000))
    real = api.compress_file(src, tmp_path / "tied.ansz")  # the chunk size stats assumes
    predicted = api.file_stats(src)
    assert predicted.exact  # a file this small is coded whole: the figure is exact
    assert predicted.compressed_bytes == real.compressed_size


def test_repeats_in_a_file_coded_against_a_base(tmp_path):
    f32 = np.float32
    base = tmp_path / "base.safetensors"
    base.write_bytes(handmade_safetensors([("embed", "F32", values(f32, 6000, 7))]))
    src = tmp_path / "tied.safetensors"
    src.write_bytes(_tied("F32", f32))
    dst = tmp_path / "tied.ansz"
    api.compress_file(src, dst, chunk_size=CHUNK, base=base)
    blob = dst.read_bytes()
    cf = c.ContainerFile(lambda o, n: blob[o:o + n], len(blob))
    assert cf.flags & c.FLAG_BASE and cf.flags & c.FLAG_REPEATS
    recs = _records(blob)
    copies = [rec for rec, _, _ in recs if rec.kind == c.COPY_CHUNK]
    assert copies and all(recs[copied_number(p)][0].kept
                          for rec, p, _ in recs if rec.kind == c.COPY_CHUNK)
    back = tmp_path / "back"
    api.decompress_file(dst, back, base=base)
    assert back.read_bytes() == src.read_bytes()
    assert api.verify_file(dst, base=base).ok


def copied_number(payload) -> int:
    return int.from_bytes(bytes(payload), "little")
