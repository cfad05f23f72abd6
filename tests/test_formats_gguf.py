"""GGUF files: header parsing (ansz.formats.gguf), hostile headers, and whole-file round trips."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import gguf
import numpy as np
import pytest
from gguf import GGMLQuantizationType as T

import ansz
from ansz import container, dtypes
from ansz.errors import FormatError
from ansz.formats import gguf as g

from helpers import invoke, roundtrip_file


# --- files ---------------------------------------------------------------------------------


def write_with_gguf(path: Path, seed: int = 0) -> Path:
    """A small GGUF written by the gguf package: floats, real quantizations, random K-quants."""
    r = np.random.default_rng(seed)
    w = gguf.GGUFWriter(path, "llama")
    w.add_block_count(2)
    w.add_token_list([f"tok{i}" for i in range(50)])
    w.add_tensor("norm.weight", r.standard_normal(300).astype(np.float32))
    w.add_tensor("embd.weight", (r.standard_normal((16, 64)) * 0.02).astype(np.float16))
    x = (r.standard_normal((96, 512)) * 0.02).astype(np.float32)
    for qt in ("Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1"):
        w.add_tensor(f"{qt.lower()}.weight", gguf.quants.quantize(x, T[qt]), raw_dtype=T[qt])
    for qt in ("Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "IQ4_NL", "MXFP4", "IQ2_XXS"):
        bs, nbytes = gguf.GGML_QUANT_SIZES[T[qt]]
        raw = r.integers(0, 256, (8, 512 // bs * nbytes), np.uint8)
        w.add_tensor(f"{qt.lower()}.weight", raw, raw_dtype=T[qt])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def _s(b: bytes) -> bytes:
    return struct.pack("<Q", len(b)) + b


def build(kvs=(), tensors=(), *, version=3, alignment=None, counts=None, tail=b""):
    """GGUF bytes by hand. kvs: (key, type, packed value); tensors: (name, ne, type id,
    offset or None for the next aligned one, data bytes)."""
    align = alignment or 32
    kv_bytes = b""
    kvs = list(kvs)
    if alignment is not None:
        kvs.append((b"general.alignment", 4, struct.pack("<I", alignment)))
    for key, vtype, value in kvs:
        kv_bytes += _s(key) + struct.pack("<I", vtype) + value
    info, data, pos = b"", b"", 0
    for name, ne, tid, offset, payload in tensors:
        pos = -(-pos // align) * align if offset is None else offset
        info += _s(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", d) for d in ne)
        info += struct.pack("<IQ", tid, pos)
        data = data.ljust(pos, b"\0")[:pos] + payload if offset is None else data
        pos += len(payload)
    n_t, n_kv = counts or (len(tensors), len(kvs))
    head = b"GGUF" + struct.pack("<IQQ", version, n_t, n_kv) + kv_bytes + info
    head = head.ljust(-(-len(head) // align) * align, b"\0")
    return head + data + tail


def sample(seed=0) -> bytes:
    r = np.random.default_rng(seed)
    q8 = gguf.quants.quantize((r.standard_normal((4, 64)) * 0.02).astype(np.float32), T.Q8_0)
    return build(
        [(b"general.name", 8, _s(b"tiny")), (b"tokens", 9, struct.pack("<IQ", 8, 3)
                                              + _s(b"a") + _s(b"bb") + _s(b"")),
         (b"ints", 9, struct.pack("<IQ", 5, 4) + bytes(16))],
        [(b"w", [64, 4], 8, None, q8.tobytes()),
         (b"b", [10], 0, None, r.standard_normal(10).astype(np.float32).tobytes()),
         (b"k", [256], 12, None, r.integers(0, 256, 144, np.uint8).tobytes())],
        alignment=64)


def roundtrip(tmp_path: Path, data: bytes, name="m.gguf", **kw):
    """``data``, written to tmp_path/NAME, through compress_file and back: (report, container)."""
    src, dst = tmp_path / name, tmp_path / (name + ".ansz")
    src.write_bytes(data)
    return roundtrip_file(src, dst, threads=2, **kw), dst


# --- parsing -------------------------------------------------------------------------------


def test_type_table_agrees_with_the_gguf_package():
    for tid, (name, elems, size) in dtypes.GGML_TYPES.items():
        assert T(tid).name == name
        assert gguf.GGML_QUANT_SIZES[T(tid)] == (elems, size)


def test_layout_matches_gguf_reader(tmp_path):
    path = write_with_gguf(tmp_path / "w.gguf")
    layout = g.read_layout(lambda n: path.read_bytes()[:n], path.stat().st_size)
    reader = gguf.GGUFReader(path)
    assert layout.data_start == reader.data_offset
    ours = {t.name: t for t in layout.tensors}
    assert len(ours) == len(reader.tensors)
    for t in reader.tensors:
        mine = ours[t.name]
        assert (mine.dtype, mine.start, mine.nbytes) == (t.tensor_type.name, t.data_offset, t.n_bytes)
        assert mine.shape == tuple(int(d) for d in reversed(t.shape))


def test_sample_parses():
    data = sample()
    layout = g.parse_header(data, len(data))
    assert layout.alignment == 64 and [t.name for t in layout.tensors] == ["w", "b", "k"]
    assert [t.dtype for t in layout.tensors] == ["Q8_0", "F32", "Q4_K"]


def _read_metadata(data: bytes, limit=None):
    reads = []

    def head(n):
        reads.append(n)
        return data[:n]

    return g.read_metadata(head, len(data), limit), reads


def test_read_metadata_matches_gguf_reader(tmp_path):
    path = write_with_gguf(tmp_path / "w.gguf")
    data = path.read_bytes()
    got, _ = _read_metadata(data)
    reader = gguf.GGUFReader(path)
    want = {f.name: f.contents() for f in reader.fields.values()
            if not f.name.startswith("GGUF.")}  # the reader's pseudo-fields: version, counts
    assert list(got) == list(want)
    assert got == want and got["tokenizer.ggml.tokens"][7] == "tok7"


def test_read_metadata_gives_every_value_type():
    scalars = [(b"u8", 0, b"\xff", 255), (b"i8", 1, b"\xff", -1),
               (b"u16", 2, struct.pack("<H", 65535), 65535), (b"i16", 3, struct.pack("<h", -2), -2),
               (b"u32", 4, struct.pack("<I", 2**32 - 1), 2**32 - 1),
               (b"i32", 5, struct.pack("<i", -3), -3), (b"f32", 6, struct.pack("<f", 0.5), 0.5),
               (b"yes", 7, b"\1", True), (b"no", 7, b"\0", False),
               (b"u64", 10, struct.pack("<Q", 2**64 - 1), 2**64 - 1),
               (b"i64", 11, struct.pack("<q", -2**63), -2**63),
               (b"f64", 12, struct.pack("<d", 1e300), 1e300),
               (b"text", 8, _s("h\u00e9llo".encode()), "h\u00e9llo"),
               (b"raw", 8, _s(b"\xffab"), "\udcffab")]
    ints = np.arange(-3, 3, dtype="<i2")
    kvs = [(k, t, v) for k, t, v, _ in scalars] + [
        (b"ints", 9, struct.pack("<IQ", 3, 6) + ints.tobytes()),
        (b"flags", 9, struct.pack("<IQ", 7, 3) + b"\1\0\1"),
        (b"words", 9, struct.pack("<IQ", 8, 3) + _s(b"a") + _s(b"") + _s(b"ccc")),
        (b"none", 9, struct.pack("<IQ", 6, 0))]
    data = build(kvs, [(b"w", [4], 0, None, bytes(16))], alignment=64)
    got, reads = _read_metadata(data)
    for key, _, _, value in scalars:
        assert got[key.decode()] == value and type(got[key.decode()]) is type(value), key
    assert got["raw"].encode("utf-8", "surrogateescape") == b"\xffab"
    assert got["ints"].dtype == np.dtype("<i2") and got["ints"].tolist() == ints.tolist()
    assert not got["ints"].flags.writeable
    assert got["flags"].dtype == np.bool_ and got["flags"].tolist() == [True, False, True]
    assert got["words"] == ["a", "", "ccc"] and got["none"].dtype == np.float32
    assert got["general.alignment"] == 64 and len(got) == len(scalars) + 5
    assert reads == [len(data)]  # a small file: one read


def test_read_metadata_reads_only_as_far_as_the_pairs():
    big = build([(b"k", 8, _s(b"x" * 100_000))],
                [(b"w", [1 << 20], 0, None, bytes(4 << 20))])
    got, reads = _read_metadata(big)
    assert got == {"k": "x" * 100_000} and max(reads) < 1 << 20
    with pytest.raises(FormatError, match="too large"):
        _read_metadata(big, limit=1 << 16)


@pytest.mark.parametrize("case", ["huge kv count", "huge string value", "huge array",
                                  "huge string array", "nested array", "unknown value type",
                                  "repeated key"])
def test_read_metadata_refuses_hostile_pairs(case):
    data = HOSTILE[case]()
    with pytest.raises(FormatError) as e:
        _read_metadata(data)
    assert "\n" not in str(e.value)


def test_every_truncation_of_the_header_is_a_clean_error():
    data = sample()
    end = g.parse_header(data, len(data)).tensors[-1].end
    for cut in range(end):
        with pytest.raises(FormatError) as e:
            g.parse_header(data[:cut], cut)
        assert "\n" not in str(e.value)


HOSTILE = {
    "huge tensor count": lambda: build(counts=(2**63, 0)),
    "huge kv count": lambda: build(counts=(0, 2**40)),
    "huge key length": lambda: b"GGUF" + struct.pack("<IQQQ", 3, 0, 1, 2**62) + bytes(64),
    "huge string value": lambda: build([(b"k", 8, struct.pack("<Q", 2**63))]),
    "huge array": lambda: build([(b"k", 9, struct.pack("<IQ", 12, 2**61))]),
    "huge string array": lambda: build([(b"k", 9, struct.pack("<IQ", 8, 2**60) + _s(b"x"))]),
    "nested array": lambda: build([(b"k", 9, struct.pack("<IQ", 9, 1))]),
    "unknown value type": lambda: build([(b"k", 13, b"")]),
    "repeated key": lambda: build([(b"k", 0, b"\1"), (b"k", 0, b"\1")]),
    "alignment not a power of two": lambda: build(alignment=48),
    "alignment of type u64": lambda: build([(b"general.alignment", 10, struct.pack("<Q", 32))]),
    "too many dims": lambda: build(tensors=[(b"t", [1] * 5, 0, None, bytes(4))]),
    "unknown type": lambda: build(tensors=[(b"t", [4], 99, None, bytes(16))]),
    "huge dims": lambda: build(tensors=[(b"t", [2**40, 2**40], 0, None, bytes(4))]),
    "offset past EOF": lambda: build(tensors=[(b"t", [4], 0, 2**50, bytes(16))]),
    "data past EOF": lambda: build(tensors=[(b"t", [64], 0, None, bytes(16))]),
    "misaligned offset": lambda: build(tensors=[(b"t", [4], 0, 4, bytes(16))], tail=bytes(64)),
    "overlap": lambda: build(tensors=[(b"a", [8], 0, 0, bytes(32)), (b"b", [8], 0, 0, b"")],
                             tail=bytes(32)),
    "row not whole blocks": lambda: build(tensors=[(b"t", [16], 8, None, bytes(17))]),
    "repeated name": lambda: build(tensors=[(b"t", [4], 0, None, bytes(16)),
                                            (b"t", [4], 0, None, bytes(16))]),
    "bad utf-8 name": lambda: build(tensors=[(b"\xff", [4], 0, None, bytes(16))]),
    "version 1": lambda: build(version=1),
    "data start past EOF": lambda: build(tensors=[(b"t", [0], 0, None, b"")])[:-1],
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_header_is_a_one_line_error(case):
    data = HOSTILE[case]()
    with pytest.raises(FormatError) as e:
        g.parse_header(data, len(data))
    assert "\n" not in str(e.value) and len(str(e.value)) < 300


@pytest.mark.parametrize("case", ["huge tensor count", "huge string array", "offset past EOF",
                                  "overlap", "misaligned offset", "unknown type"])
def test_hostile_file_falls_back_to_bytes_and_round_trips(tmp_path, case):
    report, _ = roundtrip(tmp_path, HOSTILE[case]())
    assert report.format == "bytes"
    assert report.fallback_reason.startswith("invalid GGUF file: ")
    fs = ansz.file_stats(tmp_path / "m.gguf")  # predicted as the bytes it is stored as
    assert fs.format == "bytes" and fs.fallback_reason == report.fallback_reason


def test_random_header_damage_never_escapes_format_error():
    data = sample(1)
    end = g.parse_header(data, len(data)).data_start
    rng = np.random.default_rng(0)
    for _ in range(300):
        bad = bytearray(data)
        for _ in range(int(rng.integers(1, 4))):
            bad[int(rng.integers(end))] = int(rng.integers(256))
        try:
            g.parse_header(bytes(bad), len(bad))
        except FormatError:
            pass


def test_stream_header_limit():
    data = sample()
    with pytest.raises(FormatError, match="too large"):
        g.read_layout(lambda n: data[:n], None, limit=64)
    layout = g.read_layout(lambda n: data[:n], None, limit=1 << 20)
    assert [t.name for t in layout.tensors] == ["w", "b", "k"]


def test_file_without_tensors_needs_no_padding():
    data = b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + _s(b"k") + struct.pack("<I", 0) + b"x"
    layout = g.parse_header(data, len(data))
    assert layout.tensors == () and layout.data_start == len(data)


def test_sniff():
    assert g.looks_like_gguf(sample())
    assert not g.looks_like_gguf(b"GGUF\0\0\0\3")  # big-endian version: not recognised
    assert not g.looks_like_gguf(b"GGU")


# --- whole files ---------------------------------------------------------------------------


def test_gguf_file_round_trips_tensor_by_tensor(tmp_path):
    path = write_with_gguf(tmp_path / "w.gguf")
    report, dst = roundtrip(tmp_path, path.read_bytes(), chunk_size=1024)
    assert report.format == "gguf" and report.fallback_reason is None
    info = ansz.read_info(dst)
    assert info.format == "gguf"
    dtypes = {s["name"]: s["dtype"] for s in info.segments if s["name"]}
    assert dtypes["q4_k.weight"] == "Q4_K" and dtypes["norm.weight"] == "F32"
    assert dtypes["iq2_xxs.weight"] == "IQ2_XXS"  # coded as bytes, still by its own name
    cf = container.ContainerFile(lambda o, n: dst.read_bytes()[o:o + n], dst.stat().st_size)
    for seg in cf.index.segments:
        width = {"Q4_K": 144, "Q6_K": 210, "Q8_0": 34}.get(seg.dtype)
        for c in cf.index.chunks[seg.first_chunk:seg.first_chunk + seg.chunk_count]:
            if width:  # chunks cut at block boundaries
                assert c.decoded_length % width == 0
                assert cf.chunk(cf.index.chunks.index(c))[0].dtype == seg.dtype
    assert ansz.verify_file(dst).ok


def test_quantized_gguf_beats_plain_bytes(tmp_path):
    r = np.random.default_rng(0)
    x = (r.standard_normal((256, 1024)) * 0.02).astype(np.float32)
    q = gguf.quants.quantize(x, T.Q5_0).tobytes()
    data = build(tensors=[(b"w", [1024, 256], 6, None, q)])
    report, _ = roundtrip(tmp_path, data)
    as_bytes, _ = roundtrip(tmp_path, b"X" + data[1:], name="m.bin")  # no magic: bytes
    assert report.format == "gguf" and as_bytes.format == "bytes"
    assert report.compressed_size < 0.95 * as_bytes.compressed_size


def test_stream_compression_of_gguf(tmp_path):
    data = sample()
    out = io.BytesIO()
    report = ansz.compress_stream(io.BytesIO(data), out, threads=1)
    assert report.format == "gguf"
    back = io.BytesIO()
    ansz.decompress_stream(io.BytesIO(out.getvalue()), back)
    assert back.getvalue() == data


def test_truncated_stream_falls_back_to_bytes():
    data = sample()
    cut = data[:-50]  # the header promises more tensor data than the stream holds
    out = io.BytesIO()
    report = ansz.compress_stream(io.BytesIO(cut), out, threads=1)
    assert report.format == "bytes"
    back = io.BytesIO()
    ansz.decompress_stream(io.BytesIO(out.getvalue()), back)
    assert back.getvalue() == cut


def test_truncated_files_round_trip_as_bytes(tmp_path):
    data = sample()
    for cut in (0, 3, 8, 24, 40, 100, len(data) - 1):
        report, _ = roundtrip(tmp_path, data[:cut])
        assert report.format == "bytes"


def test_named_gguf_that_is_not_gguf(tmp_path):
    report, _ = roundtrip(tmp_path, b"hello world" * 10)
    assert report.format == "bytes" and "invalid GGUF file" in report.fallback_reason


def test_cli_round_trip(tmp_path):
    path = write_with_gguf(tmp_path / "w.gguf", seed=3)
    res = invoke(["compress", "-q", path])
    assert res.exit_code == 0, res.output
    original = path.read_bytes()
    path.unlink()
    res = invoke(["decompress", "-q", str(path) + ".ansz"])
    assert res.exit_code == 0, res.output
    assert path.read_bytes() == original
    res = invoke(["info", str(path) + ".ansz"])
    assert res.exit_code == 0 and "gguf" in res.output
