"""Edge and hostile inputs at the limits of the format: files the writer must still store
(and readers still open), and crafted containers whose declared sizes must not turn into
memory or time. Each test builds its own input."""

from __future__ import annotations

import json
import struct

import gguf
import numpy as np
import pytest
from safetensors.numpy import save

import ansz
from ansz import api, chunks
from ansz import container as c

from helpers import roundtrip_stream


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
    blob, report = roundtrip_stream(save(tensors))
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
    blob, report = roundtrip_stream(path.read_bytes())
    assert report.format == "gguf"
    assert api.verify_file(_file(tmp_path, "z.ansz", blob)).ok


def test_tensor_names_of_a_hundred_thousand_characters(tmp_path):
    tensors = {"n" * 100_000 + str(i): np.ones(400, np.float32) for i in range(3)}
    blob, report = roundtrip_stream(save(tensors))
    assert report.format == "safetensors"
    with ansz.open(_file(tmp_path, "n.ansz", blob)) as f:
        assert f.get_tensor("n" * 100_000 + "1").tobytes() == tensors["n" * 100_000 + "1"].tobytes()


def test_a_tensor_with_more_dimensions_than_the_index_describes(tmp_path):
    # 65 dimensions: stored like any tensor (in an unnamed segment), not failed after coding
    shape = [1] * 64 + [300]
    w = np.random.default_rng(0).standard_normal(300).astype(np.float32)
    data = _safetensors({"deep": {"dtype": "F32", "shape": shape, "data_offsets": [0, 1200]}},
                        w.tobytes())
    blob, report = roundtrip_stream(data)
    assert report.format == "safetensors"
    with ansz.open(_file(tmp_path, "d.ansz", blob)) as f:
        assert f.shape("deep") == tuple(shape)
        with pytest.raises(ansz.AnszError, match="65 dimensions"):
            f.get_tensor("deep")  # numpy holds at most 64


def test_a_shape_numpy_cannot_hold_is_an_ansz_error(tmp_path):
    data = _safetensors({"huge": {"dtype": "F32", "shape": [0, 2**63], "data_offsets": [0, 0]},
                         "w": {"dtype": "F32", "shape": [300], "data_offsets": [0, 1200]}},
                        np.ones(300, np.float32).tobytes())
    blob, _ = roundtrip_stream(data)
    with ansz.open(_file(tmp_path, "s.ansz", blob)) as f:
        assert f.shape("huge") == (0, 2**63)
        with pytest.raises(ansz.AnszError, match="numpy cannot represent"):
            f.get_tensor("huge")


def test_many_tiny_tensors_share_chunks(tmp_path):
    # 20 000 four-byte tensors were 20 000 chunk records (~0.2 ms and ~100 bytes each)
    tensors = {f"t{i}": np.full(1, i, np.float32) for i in range(20_000)}
    data = save(tensors)
    blob, report = roundtrip_stream(data)
    path = _file(tmp_path, "t.ansz", blob)
    info = api.read_info(path)
    assert info.chunk_count < 20 and report.compressed_size < len(data) / 2
    with ansz.open(path) as f:
        assert f.get_tensor("t12345").tobytes() == tensors["t12345"].tobytes()
    got = ansz.load_file(path)
    assert all(got[k].tobytes() == v.tobytes() for k, v in tensors.items())


# --- crafted containers that declared their way into memory ----------------------------------

ZERO_PAYLOAD = bytes.fromhex("020000000100")  # one CONSTANT stream of byte 0: any length
MEMORY_CAP = 1 << 30  # address space of the capped subprocess (ansz + numba need ~0.4 GB)


def _crafted(path, records, segments, *, fmt="bytes", max_chunk=64 << 20):
    """Write a container of ``records`` ((data or length of zeros, segment) pairs) and
    ``segments`` with the real writer."""
    import hashlib

    import xxhash

    with open(path, "wb") as fh:
        w = c.ContainerWriter(fh, max_chunk)
        for data, segment in records:
            if isinstance(data, int):
                w.add_chunk(segment, c.BYTES, ZERO_PAYLOAD, data,
                            xxhash.xxh3_64_intdigest(bytes(data)))
            else:
                payload, h = chunks.encode_payload(data, c.BYTES)
                w.add_chunk(segment, c.BYTES, payload, len(data), h)
        w.finish(segments, fmt=fmt, sha256=hashlib.sha256(b"").hexdigest())
    return path


def _run_capped(code: str, cap=MEMORY_CAP):
    """Python ``code`` in a subprocess whose address space is capped at ``cap`` bytes:
    ``(exit status, stderr)``."""
    import subprocess
    import sys

    code = f"import resource; resource.setrlimit(resource.RLIMIT_AS, ({cap}, {cap}))\n" + code
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=300)
    return proc.returncode, proc.stderr.decode(errors="replace")


def _ansz_capped(*args):
    return _run_capped(f"from ansz.cli import main; main({[str(a) for a in args]!r})")


def test_zstd_index_declared_far_beyond_the_file_is_refused_unread(tmp_path):
    import zlib

    import zstandard

    # 60 MB of "[[],[],...]" is ~25x that once parsed. A 2 MB string of random hex keeps
    # its zstd frame near 1 MB, so the text is within 64x the frame + 64 KiB (the bound
    # readers had) but far beyond the container's size.
    noise = np.random.default_rng(0).bytes(1 << 20).hex().encode()
    text = b'["' + noise + b'",' + b"[]," * 20_000_000 + b"[]]"
    z = zstandard.ZstdCompressor(level=3, write_content_size=True).compress(text)
    assert len(text) < 64 * len(z) and len(text) > 30 * (len(z) + (1 << 16))
    path = _crafted(tmp_path / "bomb.ansz", [], [])
    blob = path.read_bytes()
    off = c.FILE_HEADER.size
    head = c.pack_record(c.ZINDEX, 0, 0, 0, len(text), len(z), c.content_hash(text), 0, 0)
    path.write_bytes(blob[:off] + head + z + bytes(c.pad8(len(z)) - len(z))
                     + c.pack_trailer(off, len(z), zlib.crc32(text)))
    rc, err = _ansz_capped("info", path)
    assert rc == 1 and "index record header fields are inconsistent" in err, err
    assert err.count("\n") == 1


def test_open_checks_the_header_length_before_decoding_the_header(tmp_path):
    # a "safetensors" original whose header segment is 1 GiB of zeros after a huge length
    first = (1 << 30).to_bytes(8, "little") + bytes((64 << 20) - 8)
    chunks = [(first, 0)] + [(64 << 20, 0)] * 15
    path = _crafted(tmp_path / "h.ansz", chunks, [c.Segment(None, None, None, 0, 1 << 30)],
                    fmt="safetensors")
    assert path.stat().st_size < 100_000
    rc, err = _run_capped(f"import ansz; ansz.open({str(path)!r})")
    assert rc == 1 and "CorruptDataError" in err and "header length" in err, err[-500:]


def test_open_decodes_no_more_of_a_gguf_header_than_its_parse_needs(tmp_path):
    # a "GGUF" original whose header segment is 1 GiB: a string value of 900 MB in it
    kv = struct.pack("<Q", 1) + b"k" + struct.pack("<IQ", 8, 900 << 20)
    first = b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + kv
    first += bytes((64 << 20) - len(first))
    chunks = [(first, 0)] + [(64 << 20, 0)] * 15
    path = _crafted(tmp_path / "g.ansz", chunks, [c.Segment(None, None, None, 0, 1 << 30)],
                    fmt="gguf")
    assert path.stat().st_size < 100_000
    code = f"import ansz; ansz.open({str(path)!r})"
    rc, err = _run_capped(code, cap=MEMORY_CAP)
    assert rc == 1 and "CorruptDataError" in err and "too large to buffer" in err, err[-500:]


def test_decoding_keeps_few_buffers_whatever_the_chunk_sizes(tmp_path):
    # chunks of 1, 2, ... 40 MiB: a pool that kept every size it met grew to 820 MiB
    sizes = [k << 20 for k in range(1, 41)]
    path = _crafted(tmp_path / "grow.ansz", [(n, 0) for n in sizes],
                    [c.Segment(None, None, None, 0, sum(sizes))])
    rc, err = _ansz_capped("decompress", "-qf", "-T", "1", "-o", "/dev/null", path)
    assert rc == 0 and not err  # (decompress does not check the fake sha256)


def test_safetensors_header_past_the_cap_is_refused_unread(tmp_path):
    # 101 MB of header whose json.loads would take ~2.5 GB: refused from its length alone
    body = b'{"a":{"dtype":"U8","shape":[' + b"[]," * 33_666_666 + b'[]],"data_offsets":[0,0]}}'
    path = tmp_path / "big.safetensors"
    with open(path, "wb") as fh:
        fh.write(len(body).to_bytes(8, "little"))
        fh.write(body)
    assert len(body) > 100_000_000
    rc, err = _ansz_capped("stats", "-q", path)  # predicted as the bytes it is stored as
    assert rc == 0 and not err, err
    assert "100000000-byte limit" in ansz.file_stats(path).fallback_reason
