"""Streams and chunks: each method round-trips, the cheapest is chosen, and bad blobs fail cleanly."""

import ml_dtypes
import numpy as np
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from ansz import _kernels, chunks, options, rans, streams
from tests.golden import writer_patches
from tests.golden.writer_patches import pair_stream
from ansz.errors import CorruptDataError
from ansz.dtypes import PAIR_LAYOUTS
from ansz.pairs import FIELD_TOPS, Field, choose_field

NP_DTYPES = {"BF16": ml_dtypes.bfloat16, "F16": np.float16, "F32": np.float32, "F64": np.float64,
             "F8_E4M3": ml_dtypes.float8_e4m3fn, "F8_E5M2": ml_dtypes.float8_e5m2}


def stream_rt(symbols, **kw):
    symbols = np.asarray(symbols, np.uint8)
    blob = streams.encode_stream(symbols, **kw)
    np.testing.assert_array_equal(streams.decode_stream(blob, symbols.size), symbols)
    return blob


def test_empty_and_constant_streams_cost_almost_nothing():
    assert len(stream_rt(np.zeros(0, np.uint8))) == 1
    blob = stream_rt(np.full(10_000_000, 7, np.uint8))
    assert blob[0] == streams.CONSTANT and len(blob) == 2


def test_uniform_bytes_are_stored():
    s = np.random.default_rng(0).integers(0, 256, 100_000).astype(np.uint8)
    blob = stream_rt(s)
    assert blob[0] == streams.STORED and len(blob) == s.size + 1


def test_high_entropy_bytes_get_14_bit_tables_and_exponents_keep_12():
    rng = np.random.default_rng(0)
    fp8 = ((rng.standard_normal(100_000) * 0.02 / 0.08 * 448)
           .astype(ml_dtypes.float8_e4m3fn).view(np.uint8))
    blob = stream_rt(fp8)
    assert blob[0] == streams.RANS and blob[1] == 14
    exps = ((rng.standard_normal(100_000) * 0.02).astype(ml_dtypes.bfloat16)
            .view(np.uint16) >> 7).astype(np.uint8)
    blob = stream_rt(exps)
    assert blob[0] == streams.RANS and blob[1] == 12


def test_skewed_bytes_use_rans_and_text_uses_zstd():
    s = np.random.default_rng(0).choice(4, 100_000, p=[0.7, 0.2, 0.05, 0.05]).astype(np.uint8)
    assert stream_rt(s)[0] == streams.RANS
    text = np.frombuffer(b'{"model.layers.0.weight": {"dtype": "BF16"}}' * 2000, np.uint8)
    assert stream_rt(text, try_zstd=True)[0] == streams.ZSTD


def test_bf16_code_stream_within_0_3_percent_of_entropy_tables_included():
    x = (np.random.default_rng(3).standard_normal(1 << 20) * 0.02).astype(ml_dtypes.bfloat16)
    codes = (x.view(np.uint16) >> 7).astype(np.uint8)
    blob = stream_rt(codes)
    counts = np.bincount(codes, minlength=256)
    p = counts[counts > 0] / codes.size
    entropy_bytes = -(p * np.log2(p)).sum() * codes.size / 8
    assert len(blob) <= entropy_bytes * 1.003


@settings(max_examples=40, deadline=None)
@given(name=st.sampled_from(sorted(PAIR_LAYOUTS)), data=st.data())
def test_chunk_roundtrip_any_bytes(name, data):
    width = PAIR_LAYOUTS[name].width
    n = data.draw(st.integers(0, 2000))
    blob = data.draw(st.binary(min_size=n * width, max_size=n * width))
    enc = chunks.encode_chunk(blob, name)
    assert chunks.decode_chunk(enc, name, len(blob)).tobytes() == blob


@pytest.mark.parametrize("name", sorted(NP_DTYPES))
def test_chunk_roundtrip_weights_and_special_values(name):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(50_000) * 0.02
    x[:6] = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-42]
    with np.errstate(over="ignore", invalid="ignore"):
        data = x.astype(NP_DTYPES[name]).tobytes()
    enc = chunks.encode_chunk(data, name)
    assert chunks.decode_chunk(enc, name, len(data)).tobytes() == data
    assert len(enc) < len(data)


def test_fp32_from_bf16_costs_little_more_than_bf16():
    x = (np.random.default_rng(0).standard_normal(100_000) * 0.02).astype(ml_dtypes.bfloat16)
    f32 = x.astype(np.float32).tobytes()
    enc32 = chunks.encode_chunk(f32, "F32")
    enc16 = chunks.encode_chunk(x.tobytes(), "BF16")
    assert len(enc32) < len(enc16) + 100  # the two zero mantissa planes are constant streams


def test_integer_chunks_roundtrip_through_generic_bytes():
    data = np.arange(100_000, dtype=np.int64).tobytes()
    enc = chunks.encode_chunk(data, "I64")
    assert chunks.decode_chunk(enc, "I64", len(data)).tobytes() == data
    assert len(enc) < len(data) // 4


def test_decode_into_unaligned_output():
    data = np.arange(1000, dtype=np.float32).tobytes()
    enc = chunks.encode_chunk(data, "F32")
    buf = np.zeros(len(data) + 1, np.uint8)
    chunks.decode_chunk(enc, "F32", len(data), buf[1:])
    assert buf[1:].tobytes() == data


def valid_chunk():
    x = (np.random.default_rng(0).standard_normal(20_000) * 0.02).astype(ml_dtypes.bfloat16)
    data = x.tobytes()
    return data, chunks.encode_chunk(data, "BF16")


@pytest.mark.parametrize("mutate", [
    lambda b: b[:-1],
    lambda b: b[:10],
    lambda b: b + b"\0\0",
    lambda b: b"\xff\xff\xff\xff" + b[4:],
    lambda b: b[:4] + bytes([9]) + b[5:],           # unknown method
    lambda b: b[:5] + bytes([13]) + b[6:],          # scale_bits not 12 or 14
    lambda b: b[:5] + bytes([14]) + b[6:],          # 14 against a 12-bit table: sum is wrong
    lambda b: b[:6] + bytes([200]) + b[7:],         # first symbol > last
    lambda b: b[:8] + b"\xff\xff" + b[10:],         # a frequency that breaks the sum
])
def test_malformed_chunks_raise_corrupt_data(mutate):
    data, enc = valid_chunk()
    with pytest.raises(CorruptDataError):
        chunks.decode_chunk(mutate(enc), "BF16", len(data))


def test_wrong_sizes_raise_corrupt_data():
    data, enc = valid_chunk()
    with pytest.raises(CorruptDataError):
        chunks.decode_chunk(enc, "BF16", len(data) - 2)
    with pytest.raises(CorruptDataError):
        chunks.decode_chunk(enc, "BF16", len(data) - 1)
    with pytest.raises(CorruptDataError):
        streams.decode_stream(bytes([streams.STORED]) + b"abc", 4)
    with pytest.raises(CorruptDataError):
        streams.decode_stream(b"", 4)


def test_zstd_stream_cannot_expand_past_the_declared_size():
    bomb = bytes([streams.ZSTD]) + zstandard.ZstdCompressor().compress(bytes(10_000_000))
    with pytest.raises(CorruptDataError):
        streams.decode_stream(bomb, 1000)
    with pytest.raises(CorruptDataError):
        streams.decode_stream(bytes([streams.ZSTD]) + b"garbage", 1000)


# ---------------------------------------------------------------------------- fielded chunks

FLOATS = ("BF16", "F16", "F32", "F64")


def narrow_floats(name, n, seed=0):
    """n random elements whose top field (exponent and up) takes few values, so any field
    width from 8 to 12 bits keeps the codes within a byte."""
    width = PAIR_LAYOUTS[name].width
    rng = np.random.default_rng(seed)
    e = rng.integers(0, 256, n * width, dtype=np.uint8).view(f"<u{width}").copy()
    top = FIELD_TOPS[name][0]
    keep = np.array((1 << (top - 5)) - 1, e.dtype)  # 5 random bits left above the low part
    sign = np.array(1 << (8 * width - 1), e.dtype)
    e = (e & (keep | sign)) | np.array(1 << (top - 2), e.dtype)
    return e.tobytes()


@pytest.mark.parametrize("name", FLOATS)
@pytest.mark.parametrize("bits", range(8, 13))
@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 31, 1001])
def test_fielded_chunk_roundtrips_with_every_field_width(name, bits, n):
    data = narrow_floats(name, n, seed=bits * 100 + n)
    layout = PAIR_LAYOUTS[name]
    top = FIELD_TOPS[name][0]
    vals = np.frombuffer(data, f"<u{layout.width}").astype(np.uint64)
    fv = (vals >> np.uint64(top - bits)) & np.uint64((1 << bits) - 1)
    base = int(fv.min()) if n and bits > 8 else 0
    assert n == 0 or int(fv.max()) - base <= 255
    field = Field(top - bits, bits, base)
    enc = chunks.encode_chunk(data, name, fielded=True, field=field)
    assert enc[:4] == bytes([top - bits, bits]) + base.to_bytes(2, "little")
    assert chunks.decode_chunk(enc, name, len(data), fielded=True).tobytes() == data


def spec_packed_plane(vals: np.ndarray, w: int) -> bytes:
    """docs/FORMAT.md, "Packed raw plane", value by value: value i of a sub-plane of S bytes
    sits in byte i % S at bits (i // S) * k."""
    out = []
    for k, at in [(4, 0)] + ([(2, 4)] if w >= 6 else []) + ([(1, w - 1)] if w % 2 else []):
        size = -(-vals.size * k // 8)
        plane = [0] * size
        for i, v in enumerate(vals.tolist()):
            plane[i % size] |= ((v >> at) & ((1 << k) - 1)) << (i // size * k)
        out += plane
    return bytes(out)


@pytest.mark.parametrize("w", range(4, 8))
@pytest.mark.parametrize("n", [1, 2, 3, 5, 7, 8, 9, 15, 17, 1000, 1001, 4099])
def test_packed_plane_is_the_specified_layout_and_padding_is_checked(w, n):
    vals = np.random.default_rng(n * 10 + w).integers(0, 1 << w, n, dtype=np.uint8)
    packed = chunks._pack_plane(vals, w).tobytes()
    assert packed == spec_packed_plane(vals, w)
    back = np.empty(n, np.uint8)
    chunks._unpack_plane(bytes([streams.STORED]) + packed, n, w, back)
    assert np.array_equal(back, vals)
    start = 0  # a padding bit set in any sub-plane's last byte is corrupt
    for k in [4] + ([2] if w >= 6 else []) + ([1] if w % 2 else []):
        size = -(-n * k // 8)
        if (8 // k - 1) * size + size - 1 >= n:  # the last byte's top field is padding
            bad = bytearray(packed)
            bad[start + size - 1] |= 0x80
            with pytest.raises(CorruptDataError, match="padding"):
                chunks._unpack_plane(bytes([streams.STORED]) + bytes(bad), n, w, back)
        start += size


@settings(max_examples=40, deadline=None)
@given(name=st.sampled_from(FLOATS), data=st.data())
def test_fielded_chunk_roundtrip_any_bytes(name, data):
    width = PAIR_LAYOUTS[name].width
    n = data.draw(st.integers(0, 2000))
    blob = data.draw(st.binary(min_size=n * width, max_size=n * width))
    enc = chunks.encode_chunk(blob, name, fielded=True)
    assert chunks.decode_chunk(enc, name, len(blob), fielded=True).tobytes() == blob


@pytest.mark.parametrize("name", FLOATS)
def test_fielded_weights_and_special_values_roundtrip_and_beat_plain_pairs(name):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(200_000) * 0.02
    x[:6] = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-42]
    with np.errstate(over="ignore", invalid="ignore"):
        data = x.astype(NP_DTYPES[name]).tobytes()
    enc = chunks.encode_chunk(data, name, fielded=True)
    assert chunks.decode_chunk(enc, name, len(data), fielded=True).tobytes() == data
    plain = chunks.encode_chunk(data, name)
    # Gaussian weights: the top mantissa bits are skewed inside each octave, which the
    # plain pair stores raw. F16's plain pair already holds 2 of them (and the sign): a tie.
    if name == "F16":
        assert len(enc) <= len(plain) + 8
    else:  # at least 0.05 bit per element saved
        assert len(plain) - len(enc) > x.size * 0.05 / 8


def test_fielded_chunk_chooses_a_wide_field_for_bf16_weights():
    x = (np.random.default_rng(1).standard_normal(1 << 19) * 0.02).astype(ml_dtypes.bfloat16)
    field, _ = choose_field(x.tobytes(), PAIR_LAYOUTS["BF16"])
    assert field.bits > 8 and field.shift + field.bits == 15


@pytest.mark.parametrize("name", ["BF16", "F16"])
def test_one_signed_tensors_take_the_sign_into_the_field(name):
    """Norm weights are all positive and narrow: a field that holds the sign codes it for
    free, and the choice prices the skewed raw byte that is left (coded, not stored)."""
    x = np.abs(np.random.default_rng(2).standard_normal(100_000) * 0.05) + 0.9
    data = x.astype(NP_DTYPES[name]).tobytes()
    field, _ = choose_field(data, PAIR_LAYOUTS[name])
    assert field.shift + field.bits == 16
    enc = chunks.encode_chunk(data, name, fielded=True)
    assert chunks.decode_chunk(enc, name, len(data), fielded=True).tobytes() == data
    assert len(enc) < len(chunks.encode_chunk(data, name))


def fielded_chunk():
    x = (np.random.default_rng(0).standard_normal(20_001) * 0.02).astype(ml_dtypes.bfloat16)
    data = x.tobytes()
    enc = chunks.encode_chunk(data, "BF16", fielded=True)
    assert enc[1] < 13 and enc[1] > 8  # a packed last plane
    return data, enc


@pytest.mark.parametrize("mutate", [
    lambda b: b[:3],                                     # field header truncated
    lambda b: bytes([b[0], 7]) + b[2:],                  # field narrower than 8 bits
    lambda b: bytes([b[0], 13]) + b[2:],                 # wider than 12
    lambda b: bytes([17 - b[1], b[1]]) + b[2:],          # reaches past bit 16
    lambda b: b[:4] + b"\xff\xff\xff\xff" + b[8:],       # code stream length past the end
    lambda b: b[:-1],
    lambda b: b[:-1] + bytes([b[-1] | 0x80]),            # packed plane's padding bits
])
def test_malformed_fielded_chunks_raise_corrupt_data(mutate):
    data, enc = fielded_chunk()
    with pytest.raises(CorruptDataError):
        chunks.decode_chunk(mutate(enc), "BF16", len(data), fielded=True)


def test_fielded_is_only_for_float_dtypes():
    with pytest.raises(CorruptDataError):
        chunks.decode_chunk(b"\0" * 16, "U8", 4, fielded=True)
    with pytest.raises(ValueError):
        chunks.encode_chunk(b"\0" * 4, "I8", fielded=True)


def chunk_with_escapes():
    """Gaussian bf16 weights with 1% exact zeros and a few infinities: a wide field whose
    window leaves those out, so they escape."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal(100_000) * 0.02
    x[rng.choice(x.size, 1000, replace=False)] = 0.0
    x[:3] = [np.inf, -np.inf, 1e-40]
    data = x.astype(ml_dtypes.bfloat16).tobytes()
    enc = chunks.encode_chunk(data, "BF16", fielded=True)
    return data, enc


def test_zeros_and_infinities_escape_from_a_wide_field():
    data, enc = chunk_with_escapes()
    shift, bits, base, escapes = chunks._FIELD_HEAD.unpack_from(enc)
    assert bits > 8 and escapes >= 1003
    assert chunks.decode_chunk(enc, "BF16", len(data), fielded=True).tobytes() == data
    plain = chunks.encode_chunk(data, "BF16")
    assert len(enc) < len(plain)


@pytest.mark.parametrize("delta", [-1, 1, 10**6])
def test_escape_count_must_match_the_escape_codes(delta):
    data, enc = chunk_with_escapes()
    shift, bits, base, escapes = chunks._FIELD_HEAD.unpack_from(enc)
    bad = chunks._FIELD_HEAD.pack(shift, bits, base, escapes + delta) + enc[chunks._FIELD_HEAD.size:]
    with pytest.raises(CorruptDataError):
        chunks.decode_chunk(bad, "BF16", len(data), fielded=True)


def test_an_escape_code_without_escapes_is_corrupt():
    field = Field(5, 10, 0)
    codes = np.array([1, 255, 3], np.uint8)
    out = np.zeros(6, np.uint8)
    assert not __import__("ansz.pairs").pairs.patch_escapes(
        codes, np.zeros(0, np.uint16), PAIR_LAYOUTS["BF16"], out, field)


# ---------------------------------------------------------------------------- rANS tables

@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, (1 << 14) - 1), min_size=1, max_size=256))
def test_varint_table_roundtrips(freqs):
    f = np.array(freqs, np.uint32)
    blob = streams.varint_table(f)
    assert len(blob) % 2 == 0 and len(blob) <= 2 * f.size + 1
    mv = memoryview(b"head" + blob + b"words")
    out = np.zeros(f.size, np.uint32)
    assert streams.read_varint_table(mv, 4, out) == 4 + len(blob)
    np.testing.assert_array_equal(out, f)


def test_varint_tables_are_smaller_than_u16_ones():
    x = (np.random.default_rng(3).standard_normal(1 << 16) * 0.02).astype(ml_dtypes.bfloat16)
    codes = (x.view(np.uint16) >> 7).astype(np.uint8)
    blob = stream_rt(codes)
    assert blob[0] == streams.RANS
    first, last = blob[2], blob[3]
    freq = np.zeros(256, np.uint32)
    end = streams.read_varint_table(memoryview(blob), 4, freq[first:last + 1])
    assert end - 4 < 2 * (last - first + 1)
    # The same words behind a u16 table: a RANS_U16 stream, as earlier versions wrote it.
    legacy = (bytes([streams.RANS_U16]) + blob[1:4] + freq[first:last + 1].astype("<u2").tobytes()
              + blob[end:])
    np.testing.assert_array_equal(streams.decode_stream(legacy, codes.size), codes)


@pytest.mark.parametrize("table", [
    b"\x80\x80\x01",      # a 3-byte varint
    b"\x85",              # truncated
    b"\x05\x7f\x01",      # odd length without its pad byte (then words)
])
def test_malformed_varint_tables_raise_corrupt_data(table):
    blob = bytes([streams.RANS, 12, 0, 2]) + table
    with pytest.raises(CorruptDataError):
        streams.decode_stream(blob, 10)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(sorted(FIELD_TOPS)), st.sampled_from(options.CODERS),
       st.integers(1, 3000), st.floats(0.0, 0.5), st.integers(0, 2**32 - 1))
def test_small_fielded_chunks_stay_within_the_payload_slack(name, coder, n, outliers, seed):
    # Property over small tensors like biases and norms (a few hundred values, some far from
    # the rest): they round-trip and never exceed Decoded_Length + PAYLOAD_SLACK, which the
    # container refuses. (The fallback itself is tested below with a forced bad field.)
    from ansz.container import PAYLOAD_SLACK

    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n) * 0.01 + 0.5
    wild = rng.random(n) < outliers
    x[wild] = rng.standard_normal(int(wild.sum())) * 30
    data = x.astype(NP_DTYPES[name]).tobytes()
    enc = chunks.encode_chunk(data, name, fielded=True, coder=coder)
    assert len(enc) <= len(data) + PAYLOAD_SLACK
    assert chunks.decode_chunk(enc, name, len(data), fielded=True).tobytes() == data


@pytest.mark.parametrize("name", sorted(FIELD_TOPS))
@pytest.mark.parametrize("n", [300, 5000, 100_000])
def test_a_mispriced_field_falls_back_to_the_plain_field(monkeypatch, name, n):
    # Whatever field the choice makes (here a 12-bit field on random bytes, so most
    # elements escape and nothing compresses), the payload stays within the container's
    # slack: the plain 8-bit field is kept. Without the fallback these exceed it.
    from ansz.container import PAYLOAD_SLACK

    top = FIELD_TOPS[name][0]
    layout = PAIR_LAYOUTS[name]
    monkeypatch.setattr(chunks, "field_choice",
                        lambda d, lay: (Field(top - 12, 12, (1 << 12) - 255), 0.0, None))
    data = np.random.default_rng(n).integers(0, 256, n * layout.width, np.uint8).tobytes()
    enc = chunks.encode_chunk(data, name, fielded=True, coder="rans")
    assert len(enc) <= len(data) + PAYLOAD_SLACK
    assert enc[:4] == bytes([layout.code_shift, 8, 0, 0])
    assert chunks.decode_chunk(enc, name, len(data), fielded=True).tobytes() == data


# ------------------------------------------------------------------- pair streams (--fast)


def exponent_stream(n, seed=0):
    """The exponent bytes of n bf16 Gaussian weights: a skewed alphabet of ~20 values."""
    x = (np.random.default_rng(seed).standard_normal(n) * 0.02).astype(ml_dtypes.bfloat16)
    return ((x.view(np.uint16) >> 7) & 0xFF).astype(np.uint8)


# RANS_PAIRS streams (method 7) are what level 1 wrote before wide streams; today's writer
# no longer makes them, the reader still reads them. tests/golden/writer_patches.py keeps
# the encoder they were made with.


@pytest.mark.parametrize("n", [1 << 12, 100_001, 300_000, (1 << 19) + 1])
def test_pair_streams_decode(n):
    codes = exponent_stream(n, seed=n)
    paired = pair_stream(codes)
    assert paired[0] == streams.RANS_PAIRS
    out = np.zeros(n + 1, np.uint8)  # an odd address: decoded through an aligned scratch
    streams.decode_stream(paired, n, out[1:])
    assert out[0] == 0 and np.array_equal(out[1:], codes)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_pair_stream_roundtrips_any_small_alphabet(data):
    n = data.draw(st.integers(2, 3000))
    k = data.draw(st.integers(2, 12))
    codes = np.asarray(data.draw(st.lists(st.integers(0, 255), min_size=k, max_size=k,
                                          unique=True)), np.uint8)
    symbols = codes[np.random.default_rng(n).integers(0, k, n)]
    saved, writer_patches.PAIR_MIN = writer_patches.PAIR_MIN, 2  # pairs for short streams too
    try:
        blob = pair_stream(symbols)
    finally:
        writer_patches.PAIR_MIN = saved
    if blob is None:  # one distinct pair: the coder needs two
        assert np.unique(symbols[: n - n % 2].view(np.uint16)).size == 1
        return
    assert np.array_equal(streams.decode_stream(blob, n), symbols)


def test_pair_streams_with_14_bit_tables(monkeypatch):
    monkeypatch.setattr(streams, "HIGH_SCALE_MIN_GAIN", -1.0)  # always the 14-bit table
    codes = exponent_stream(300_001, seed=5)
    blob = pair_stream(codes)
    assert blob[0] == streams.RANS_PAIRS and blob[1] == 14
    np.testing.assert_array_equal(streams.decode_stream(blob, codes.size), codes)
    with pytest.raises(CorruptDataError):
        streams.decode_stream(blob[:-2], codes.size)


def pair_blob():
    """A RANS_PAIRS stream of 5001 codes."""
    codes = exponent_stream(5001)
    return codes, pair_stream(codes)


def table_end(blob) -> int:
    """Where a pair stream's table ends, before its pad byte if any."""
    ids = np.empty(blob[2] | blob[3] << 8, np.uint16)
    return int(_kernels.read_pair_table(np.frombuffer(blob, np.uint8), np.int64(6), ids,
                                                np.empty(ids.size, np.uint32)))


def with_table(blob, count, entries):
    """blob with its pair table replaced by ``count`` entries, given as their bytes, padded;
    words kept."""
    head = bytearray(blob[:6])
    head[2:4] = count.to_bytes(2, "little")
    end = table_end(blob)
    return bytes(head) + bytes(entries) + b"\0" * (len(entries) % 2) + blob[end + end % 2:]


@pytest.mark.parametrize("mutate, message", [
    (lambda b: b[:5], "header is truncated"),
    (lambda b: b[:5] + b"\x01" + b[6:], "reserved"),
    (lambda b: b[:4] + b"\x07" + b[5:], "last symbol for an even count"),
    (lambda b: b[:1] + bytes([13]) + b[2:], "scale_bits"),
    (lambda b: b[:8], "table is truncated"),
    (lambda b: b[:2] + b"\xff\xff" + b[4:], "table"),  # 65535 entries: table runs out
    (lambda b: with_table(b, 1, [0x80, 0x80, 0x80, 0x01, 5, 0]), "over-long"),
    (lambda b: with_table(b, 2, [0xff, 0xff, 0x03, 1, 0, 1]), "past 65535"),
    # Tables that sum to M = 4096 (these streams have 12-bit tables), but one frequency
    # is 0, or there is one entry.
    (lambda b: with_table(b, 3, [0, 0, 0, 0x80, 0x10, 0, 0x80, 0x10]), "zero frequency"),
    (lambda b: with_table(b, 1, [0, 0x80, 0x20]), "fewer than two"),
    (lambda b: b + b"\0\0", "trailing"),
    (lambda b: b[:-1], "truncated"),
    (lambda b: b[:-2], "truncated|bad state"),
])
def test_malformed_pair_streams_raise_corrupt_data(mutate, message):
    codes, blob = pair_blob()
    assert blob[1] == 12
    n = codes.size - 1  # even
    assert np.array_equal(streams.decode_stream(blob[:4] + b"\0" + blob[5:], n), codes[:n])
    with pytest.raises(CorruptDataError, match=message):
        streams.decode_stream(mutate(blob[:4] + b"\0" + blob[5:]), n)


def test_pair_table_pad_byte_must_be_zero():
    for seed in range(50):  # a table of an odd number of bytes, so followed by a pad byte
        codes = exponent_stream(5001, seed)
        blob = pair_stream(codes)
        end = table_end(blob)
        if end % 2:
            break
    assert end % 2 and blob[end] == 0
    assert np.array_equal(streams.decode_stream(blob, codes.size), codes)
    with pytest.raises(CorruptDataError, match="padding"):
        streams.decode_stream(blob[:end] + b"\1" + blob[end + 1:], codes.size)


@pytest.mark.parametrize("name", list(NP_DTYPES) + ["I8", "BOOL", "BYTES"])
def test_fast_chunks_roundtrip_and_use_64_state_streams_on_bf16_weights(name):
    rng = np.random.default_rng(7)
    if name in NP_DTYPES:
        data = (rng.standard_normal(300_001) * 0.02).astype(NP_DTYPES[name]).tobytes()
    else:
        data = rng.integers(0, 3, 300_001, dtype=np.uint8).tobytes()
        data = data[: len(data) - len(data) % PAIR_LAYOUTS[name].width]
    fielded = name in FIELD_TOPS
    enc = chunks.encode_chunk(data, name, fielded=fielded, fast=True)
    assert chunks.decode_chunk(enc, name, len(data), fielded=fielded).tobytes() == data
    if name == "BF16":
        assert enc[:4] == bytes([7, 8, 0, 0])  # the plain field, no search, no escapes
        assert enc[12] == streams.RANS_WIDE and enc[16] == 6  # 64 states
        best = chunks.encode_chunk(data, name, fielded=True)
        assert len(best) <= len(enc) <= len(best) * 1.01


@pytest.mark.parametrize("name", ["BF16", "F16"])
def test_fast_chunks_decode_their_codes_straight_into_elements(name):
    """A chunk with an 8-bit field, a wide code stream and a stored raw plane (every --fast
    16-bit chunk; default-level fp16 chunks too) decodes without writing its codes aside:
    the codes scratch of the one-call kernel keeps a sentinel, while a chunk with a wider
    field (default-level bf16) fills it. The elements are the original either way."""
    from ansz import kernels

    rng = np.random.default_rng(11)
    data = (rng.standard_normal(300_000) * 0.02).astype(NP_DTYPES[name]).tobytes()
    n = len(data) // 2
    layout = PAIR_LAYOUTS[name]
    for fast in (True, False):
        blob = chunks.encode_chunk(data, name, fielded=True, fast=fast)
        enc = np.frombuffer(blob, np.uint8)
        (code_at, _), (top_at, _) = frames(blob, name, True)[:2]
        bits, code_method, top_method = blob[1], blob[code_at], blob[top_at]
        codes_untouched = (bits == 8 and code_method == streams.RANS_WIDE
                           and top_method == streams.STORED)
        assert codes_untouched or not fast  # --fast always takes the plain 8-bit field
        assert codes_untouched == (name == "F16" or fast)  # default bf16: a wider field
        codes = np.full(n, 0xA5, np.uint8)
        elems = np.zeros(n, np.uint16)
        assert kernels.decode_pairs16(
            enc, True, np.int64(layout.code_shift), np.int64(0), codes, np.empty(n, np.uint8),
            np.zeros(chunks._SLOTS + 3, np.uint8), np.zeros(chunks._SLOTS, np.uint32),
            np.zeros(256, np.uint32), np.empty(n, np.uint16), elems) == 1
        assert elems.tobytes() == data
        assert bool((codes == 0xA5).all()) == codes_untouched, (name, fast)


# --- wide rANS streams (method 8) -----------------------------------------------------------


def exponent_codes(n, seed=0):
    x = (np.random.default_rng(seed).standard_normal(n) * 0.02).astype(ml_dtypes.bfloat16)
    return (x.view(np.uint16) >> 7).astype(np.uint8)


def test_long_rans_streams_are_wide_and_short_ones_are_not():
    codes = exponent_codes(streams.WIDE_MIN)
    wide = stream_rt(codes)
    assert wide[0] == streams.RANS_WIDE and wide[4] == 5 and wide[5] == 0  # 32 states
    narrow = stream_rt(codes[:-1])
    assert narrow[0] == streams.RANS
    # 24 more states of 4 bytes and 2 more header bytes, a table of about half the bytes
    assert abs(len(wide) - len(narrow)) < 4 * 24 + 2


@pytest.mark.parametrize("nstates", rans.WIDE_STATES)
@pytest.mark.parametrize("scale_bits", rans.SCALE_BITS_CHOICES)
@pytest.mark.parametrize("n", [2, 15, 16, 17, 63, 64, 65, 1000, 4096 + 31, 100_001])
def test_wide_symbols_round_trip_at_every_group_boundary(nstates, scale_bits, n):
    codes = exponent_codes(max(n, 1000), seed=n)[:n]
    codes[0] = 100  # at least two symbols whatever n
    freq = rans.normalize_counts(rans.byte_histogram(codes), scale_bits)
    words = rans.encode_symbols_wide(codes, freq, nstates, scale_bits=scale_bits)
    assert words.size >= 2 * nstates
    np.testing.assert_array_equal(
        rans.decode_symbols_wide(words, n, freq, nstates, scale_bits=scale_bits), codes)


def wide_stream(codes, nstates, scale_bits=12):
    """A RANS_WIDE stream of ``nstates`` states, made by hand (the encoder writes 64)."""
    counts = rans.byte_histogram(codes)
    present = np.flatnonzero(counts)
    first, last = int(present[0]), int(present[-1])
    freq = rans.normalize_counts(counts, scale_bits)
    words = rans.encode_symbols_wide(codes, freq, nstates, scale_bits=scale_bits)
    head = bytes([streams.RANS_WIDE, scale_bits, first, last, nstates.bit_length() - 1, 0])
    return head + streams.bitlen_table(freq[first:last + 1]) + words.astype("<u2").tobytes()


def test_a_64_state_stream_decodes():
    codes = exponent_codes(50_000, seed=5)
    np.testing.assert_array_equal(streams.decode_stream(wide_stream(codes, 64), codes.size),
                                  codes)


@pytest.mark.parametrize("kind", ["small", "dense", "wide", "huge"])
def test_bitlen_tables_round_trip_and_are_smaller_than_varints(kind):
    rng = np.random.default_rng(len(kind))
    n = 200
    freq = {"small": rng.integers(0, 3, n), "dense": rng.integers(0, 100, n),
            "wide": rng.integers(0, 1 << 14, n), "huge": rng.integers(0, 1 << 15, n)}[kind]
    freq = freq.astype(np.uint32)
    blob = streams.bitlen_table(freq)
    got = np.zeros(n, np.uint32)
    assert streams.read_bitlen_table(memoryview(blob), 0, got) == len(blob) and len(blob) % 2 == 0
    np.testing.assert_array_equal(got, freq)
    codes = exponent_codes(1 << 16)
    real = rans.normalize_counts(rans.byte_histogram(codes), 12)
    present = np.flatnonzero(real)
    table = real[present[0]:present[-1] + 1]
    assert len(streams.bitlen_table(table)) < 0.7 * len(streams.varint_table(table))


@pytest.mark.parametrize("blob, size, message", [
    (b"", 1, "truncated"),                    # no bit at all
    (b"\xe0", 1, "truncated"),                # "111" and only 5 of the 4 + mantissa bits
    (b"\xfe\x00\x04", 2, "malformed"),        # length 15 (14 zero bits), then "100": 16
    (b"\x00", 1, "truncated"),                # f = 0 in one byte: the pad byte is missing
    (b"\x41\x00", 1, "malformed"),            # nonzero padding bits
    (b"\x00\x01", 1, "malformed"),            # nonzero pad byte
])
def test_malformed_bitlen_tables_raise_corrupt_data(blob, size, message):
    with pytest.raises(CorruptDataError, match=message):
        streams.read_bitlen_table(memoryview(blob), 0, np.zeros(size, np.uint32))


@pytest.mark.parametrize("edit, message", [
    (lambda b: b[:5], "header is truncated"),
    (lambda b: b[:4] + b"\x04" + b[5:], "header is invalid"),  # 16 states
    (lambda b: b[:4] + b"\x07" + b[5:], "header is invalid"),  # 128 states
    (lambda b: b[:5] + b"\x01" + b[6:], "header is invalid"),  # reserved byte
    (lambda b: b[:2] + b[3:4] + b[2:3] + b[4:], "invalid|table"),  # last < first
    (lambda b: b[:-1], "truncated"),  # odd word bytes
    (lambda b: b[:-2], "truncated|corrupt"),
    (lambda b: b + b"\0\0", "trailing|corrupt"),
])
def test_malformed_wide_streams_raise_corrupt_data(edit, message):
    codes = exponent_codes(20_000, seed=7)
    blob = edit(wide_stream(codes, 32))
    with pytest.raises(CorruptDataError, match=message):
        streams.decode_stream(blob, codes.size)


def test_damaged_wide_words_are_caught_or_harmless():
    """Bit flips, truncation and garbage in the words of a wide stream: the lane loop never
    reads past the words (it stops a group short of their end), so every outcome is a
    result or CorruptDataError; a result that differs is left to the chunk's checksum."""
    rng = np.random.default_rng(11)
    codes = exponent_codes(40_000, seed=11)
    blob = wide_stream(codes, 32, 14)
    caught = 0
    for t in range(300):
        b = bytearray(blob)
        k = t % 4
        if k == 0:
            b = b[:int(rng.integers(6, len(b)))]
        elif k == 1:
            b[int(rng.integers(8, len(b)))] ^= 1 << int(rng.integers(0, 8))
        elif k == 2:
            i = int(rng.integers(8, len(b) - 64))
            b[i:i + 64] = rng.integers(0, 256, 64, dtype=np.uint8).tobytes()
        else:
            b = b[:8] + rng.integers(0, 256, len(b) - 8, dtype=np.uint8).tobytes()
        try:
            streams.decode_stream(bytes(b), codes.size)
        except CorruptDataError:
            caught += 1
    assert caught >= 250


# --- chunks decoded in one kernel call (kernels.decode_pairs16 / decode_pairs32) ----------


def one_call_chunks():
    """(name, data, payload, fielded) of 16- and 32-bit chunks of the shape decode_pairs16
    and decode_pairs32 take: level 1's plain field and the default level's chosen fields,
    with wide (32 or 64 states) and narrow code streams; unfielded plain pairs; 8-bit fields
    at another shift; wide fields with packed raw planes, with escapes (stored, constant and
    rANS-coded); 32-bit raw planes that are constant or rANS-coded."""
    rng = np.random.default_rng(7)
    out = []
    for name, dt in (("BF16", ml_dtypes.bfloat16), ("F16", np.float16), ("F32", np.float32)):
        width = PAIR_LAYOUTS[name].width
        for n in (5000, streams.WIDE_MIN + 37):
            data = (rng.standard_normal(n) * 0.02).astype(dt).tobytes()
            for fast in (True, False):
                out.append((name, data, chunks.encode_chunk(data, name, fielded=True,
                                                            fast=fast, coder="rans"), True))
            out.append((name, data, chunks.encode_chunk(data, name, coder="rans"), False))
        data = narrow_floats(name, 5003, seed=3)  # packed planes end in padding bits
        top = FIELD_TOPS[name][0]
        vals = np.frombuffer(data, f"<u{width}").astype(np.uint64)
        for bits in (8, 10, 11, 12):
            for shift in {top - bits, top - bits + (1 if width == 2 else -1)}:  # escapes
                fv = (vals >> np.uint64(shift)) & np.uint64((1 << bits) - 1)
                field = Field(shift, bits, 0 if bits == 8 else int(fv.min()))
                out.append((name, data, chunks.encode_chunk(data, name, fielded=True,
                                                             field=field, coder="rans"), True))
    data, enc = chunk_with_escapes()
    out.append(("BF16", data, enc, True))
    x = (rng.standard_normal(100_000) * 0.02).astype(ml_dtypes.bfloat16)
    x[[5, 500, 5000]] = [1e6, -3e7, 5e9]  # too few escapes to code their stream
    out.append(("BF16", x.tobytes(), chunks.encode_chunk(x.tobytes(), "BF16", fielded=True,
                                                         coder="rans"), True))
    x = (rng.standard_normal(100_000) * 0.02).astype(ml_dtypes.bfloat16).astype(np.float32)
    x[::9] = 0.0  # escapes of many values: a rANS-coded stream
    out.append(("F32", x.tobytes(), chunks.encode_chunk(x.tobytes(), "F32", fielded=True,
                                                        coder="rans"), True))
    x = rng.uniform(0.01, 0.04, 100_000) * rng.choice([-1, 1], 100_000)
    x = x.astype(ml_dtypes.bfloat16).astype(np.float32)
    x[::9] = 0.0  # trained in bf16: constant low planes; escapes of one value, constant
    out.append(("F32", x.tobytes(), chunks.encode_chunk(x.tobytes(), "F32", fielded=True,
                                                        coder="rans"), True))
    x = (rng.standard_normal(streams.WIDE_MIN + 5) * 0.02).astype(np.float16).astype(np.float32)
    x[[5, 500, 5000]] = [1e30, -3e31, 5e32]  # wide-coded raw planes; three stored escapes
    out.append(("F32", x.tobytes(), chunks.encode_chunk(x.tobytes(), "F32", fielded=True,
                                                        coder="rans"), True))
    return out


def frames(enc, name, fielded):
    """[(start, length)] of the streams framed in the chunk payload ``enc``."""
    p, out = chunks._FIELD_HEAD.size if fielded else 0, []
    while p < len(enc):
        length = int.from_bytes(enc[p:p + 4], "little")
        out.append((p + 4, length))
        p += 4 + length + length % 2
    return out


def general_path_only(monkeypatch):
    monkeypatch.setattr(chunks, "_decoded_in_one_call", lambda *a: False)


def test_common_chunks_decode_in_one_call(monkeypatch):
    taken = []
    one_call = chunks._decoded_in_one_call
    monkeypatch.setattr(chunks, "_decoded_in_one_call", lambda *a: taken.append(one_call(*a))
                        or taken[-1])
    cases = one_call_chunks()
    for name, data, enc, fielded in cases:
        assert chunks.decode_chunk(enc, name, len(data), fielded=fielded).tobytes() == data
    assert taken == [True] * len(cases)
    methods = set()
    for name, data, enc, fielded in cases:
        width = PAIR_LAYOUTS[name].width
        escapes = chunks._FIELD_HEAD.unpack_from(enc)[3] if fielded else 0
        kinds = ["codes"] + ["raw"] * (width - 2) + ["top"] + ["escapes"] * (escapes > 0)
        for kind, (start, _) in zip(kinds, frames(enc, name, fielded)):
            methods.add((width, kind, enc[start]))
        assert len(frames(enc, name, fielded)) == len(kinds)
    wanted = {(w, "codes", m) for w in (2, 4) for m in (streams.RANS, streams.RANS_WIDE)}
    wanted |= {(w, "escapes", m) for w in (2, 4) for m in (streams.STORED, streams.RANS)}
    wanted |= {(4, "escapes", streams.CONSTANT)}
    wanted |= {(4, "raw", m) for m in (streams.STORED, streams.CONSTANT, streams.RANS_WIDE)}
    assert methods >= wanted, wanted - methods
    # not that shape: a prefix-coded code stream, a zstd-coded raw plane, an odd address
    data = (np.random.default_rng(1).standard_normal(50_000) * 0.02).astype(
        ml_dtypes.bfloat16).tobytes()
    huffman = chunks.encode_chunk(data, "BF16", fielded=True, coder="huffman")
    parts = [memoryview(huffman)[s:s + n] for s, n in frames(huffman, "BF16", True)]
    zstd_top = chunks._FIELD_HEAD.pack(*chunks._FIELD_HEAD.unpack_from(huffman)) + \
        streams.frame_streams([bytes(parts[0]), bytes([streams.ZSTD]) + zstandard.compress(
            bytes(parts[1][1:]))])
    buf = np.zeros(len(huffman) + 1, np.uint8)
    buf[1:] = np.frombuffer(huffman, np.uint8)
    taken.clear()
    for enc in (huffman, zstd_top, buf[1:]):
        assert chunks.decode_chunk(enc, "BF16", len(data), fielded=True).tobytes() == data
    assert taken == [False, False, False]


def outcome(enc, name, nbytes, fielded):
    try:
        return chunks.decode_chunk(enc, name, nbytes, fielded=fielded).tobytes()
    except CorruptDataError:
        return CorruptDataError


def test_one_call_and_the_general_path_agree_on_damaged_payloads(monkeypatch):
    """Whatever a damaged payload holds, decoding it in one call gives what the general path
    gives: the same bytes, or CorruptDataError from both (the one call gives up, and the
    general path says what is wrong)."""
    rng = np.random.default_rng(11)
    damaged = []
    cases = one_call_chunks()
    small = [c for c in cases if len(c[1]) < 300_000]
    for name, data, enc, fielded in small:
        b = np.frombuffer(enc, np.uint8)
        for _ in range(25):
            m = b.copy()
            # mostly the headers and tables at the front, some anywhere
            at = int(rng.integers(0, min(len(m), 64) if rng.random() < 0.7 else len(m)))
            m[at] ^= np.uint8(1 << int(rng.integers(0, 8)))
            damaged.append((name, len(data), fielded, m.tobytes()))
        for cut in (1, 2, 3, 5, len(enc) // 2):
            damaged.append((name, len(data), fielded, enc[:-cut]))
        damaged.append((name, len(data), fielded, enc + b"\0\0"))
        damaged.append((name, len(data) - PAIR_LAYOUTS[name].width, fielded, enc))
        width = PAIR_LAYOUTS[name].width
        if fielded and enc[1] > 8:  # a packed plane: set its sub-planes' padding bits
            n = len(data) // width
            start, length = frames(enc, name, fielded)[width - 1]
            if enc[start] == streams.STORED:
                w, ends = 16 - enc[1], [(n + 1) // 2]
                ends += [ends[-1] + (n + 3) // 4] if w >= 6 else []
                ends += [ends[-1] + (n + 7) // 8] if w % 2 else []
                for end in ends:
                    m = bytearray(enc)
                    m[start + end] |= 0x80
                    damaged.append((name, len(data), fielded, bytes(m)))
        head = chunks._FIELD_HEAD.unpack_from(enc) if fielded else (0, 8, 0, 0)
        parts = [enc[start:start + n] for start, n in frames(enc, name, fielded)]
        if head[3] and parts[-1][0] == streams.STORED:  # one escaped value more, or fewer
            for more in (1, -1):
                values = parts[-1][1:] + b"\x07\x00" if more > 0 else parts[-1][1:-2]
                damaged.append((name, len(data), fielded, chunks._FIELD_HEAD.pack(
                    *head[:3], head[3] + more) + streams.frame_streams(
                        parts[:-1] + [bytes([streams.STORED]) + values])))
        if fielded:  # every field, escape count and padding the header can declare
            for shift, bits, base, escapes in ((0, 8, 0, 0), (9, 8, 0, 0), (4, 12, 0, 0),
                                               (5, 12, 0, 0), (6, 10, 1023, 0),
                                               (6, 10, 1024, 0), (5, 11, 0, 1), (7, 8, 1, 0),
                                               (7, 8, 0, 1), (6, 9, 0, len(data)),
                                               (20, 11, 0, 0), (21, 11, 0, 0)):
                head = chunks._FIELD_HEAD.pack(shift, bits, base, escapes)
                damaged.append((name, len(data), fielded, head + enc[len(head):]))
    with_one_call = [outcome(enc, name, n, f) for name, n, f, enc in damaged]
    general_path_only(monkeypatch)
    general = [outcome(enc, name, n, f) for name, n, f, enc in damaged]
    assert with_one_call == general
    assert with_one_call.count(CorruptDataError) > len(damaged) // 2  # damage was noticed


# --------------------------------------------------------------------------- streams in one call


def _symbols(rng, kind: str, n: int) -> np.ndarray:
    if kind == "constant":
        return np.full(n, rng.integers(256), np.uint8)
    if kind == "uniform":
        return rng.integers(0, 256, n, np.uint8)
    if kind == "two":
        return rng.choice(np.array([3, 200], np.uint8), n, p=[0.9, 0.1])
    if kind == "rare":  # a few symbols, some rare: where Huffman or QLC can win on small streams
        return rng.choice(np.array([0, 1, 2, 77, 255], np.uint8), n,
                          p=[0.5, 0.25, 0.2, 0.04, 0.01])
    return np.minimum(rng.geometric(rng.uniform(0.05, 0.6), n) + 100, 255).astype(np.uint8)


def _streams_one_by_one(codes, raw, nplanes, last, escapes, code_counts, top_counts, coder,
                        wide_states, head):
    """The chunk's streams as the general path codes them: encode_stream_parts each."""
    n = codes.size
    parts = [codes] + [raw[b * n:(b + 1) * n] for b in range(nplanes)]
    known = [code_counts] + [None] * nplanes
    if last is not None:
        parts[-1] = last
    elif nplanes:
        known[-1] = top_counts
    if escapes is not None and escapes.size:
        parts.append(escapes)
        known.append(None)
    out = [head]
    for symbols, counts in zip(parts, known):
        out.extend(streams.framed_pieces(streams.encode_stream_parts(
            symbols, coder=coder, wide_states=wide_states, counts=counts)))
    return b"".join(out)


def test_streams_in_one_call_are_the_streams_coded_one_by_one(monkeypatch):
    # frame_pair_streams (one kernel call) must make every choice encode_stream_parts makes
    # (stored on a sample, constant, rANS of 8 or 32/64 states, 12- or 14-bit tables, stored
    # when rANS saves too little, and under "auto" a Huffman or QLC stream built where the
    # bound allows and kept when smaller), to the byte.
    from ansz.rans import byte_histogram

    built, won = [], []
    real_prefix_table, real_encode_prefix = streams.prefix_table, streams.encode_prefix_stream
    monkeypatch.setattr(streams, "prefix_table",
                        lambda *a: built.append(a[1]) or real_prefix_table(*a))
    monkeypatch.setattr(streams, "encode_prefix_stream",
                        lambda s, t: won.append(type(t).__name__) or real_encode_prefix(s, t))
    rng = np.random.default_rng(11)
    sizes = [0, 1, 2, 101, 4097, (1 << 16) - 1, 1 << 16, 70_001, streams.WIDE_MIN - 1,
             streams.WIDE_MIN, 150_001]
    kinds = ["constant", "uniform", "two", "rare", "skewed"]
    outcomes = {"rANS only": 0, "prefix built": 0, "Huffman kept": 0, "QLC kept": 0}
    for case in range(200):
        n = sizes[case % len(sizes)] if case < 120 else int(rng.integers(0, 3000))
        nplanes = int(rng.integers(0, 4))
        codes = _symbols(rng, kinds[case % 5], n)
        raw = np.concatenate([_symbols(rng, kinds[int(rng.integers(5))], n)
                              for _ in range(nplanes)] or [np.zeros(0, np.uint8)])
        last = None
        if nplanes and rng.random() < 0.3:
            last = _symbols(rng, kinds[int(rng.integers(5))], int(rng.integers(0, n + 2)))
        escapes = None
        if rng.random() < 0.3:
            escapes = _symbols(rng, kinds[int(rng.integers(5))], 2 * int(rng.integers(0, 300)))
        code_counts = byte_histogram(codes) if rng.random() < 0.5 else None
        top_counts = None
        if nplanes and last is None and rng.random() < 0.5:
            top_counts = byte_histogram(raw[(nplanes - 1) * n:])
        coder = "auto" if rng.random() < 0.6 else "rans"
        wide_states = 32 if rng.random() < 0.5 else 64
        head = bytes(rng.integers(0, 256, 8 * int(rng.integers(0, 2)), np.uint8))
        args = (codes, raw, nplanes, last, escapes, code_counts, top_counts)
        built.clear()
        won.clear()
        expect = _streams_one_by_one(*args, coder, wide_states, head)
        got = streams.frame_pair_streams(*args, coder=coder, wide_states=wide_states,
                                         head=head)
        assert got == expect, case
        outcomes["prefix built" if built else "rANS only"] += 1
        outcomes["Huffman kept"] += "HuffmanTable" in won
        outcomes["QLC kept"] += "QlcTable" in won
    assert min(outcomes.values()) >= 10, outcomes


def test_streams_in_one_call_build_the_prefix_codes_of_the_python_tables():
    # the prefix streams the kernel writes decode, and are the tables' own streams
    rng = np.random.default_rng(5)
    for case in range(60):
        n = int(rng.integers(2, 5000))
        m = int(rng.integers(2, 257))
        p = rng.dirichlet(np.full(m, 0.3))
        symbols = rng.choice(rng.permutation(256)[:m], n, p=p).astype(np.uint8)
        got = streams.frame_pair_streams(symbols, np.zeros(0, np.uint8), 0, None, None,
                                         None, None, coder="auto", wide_states=32)
        blob = next(streams.framed_streams(memoryview(got), 1))
        assert np.array_equal(streams.decode_stream(blob, n), symbols), case
        counts = np.bincount(symbols, minlength=256).astype(np.int64)
        if blob[0] in (streams.HUFFMAN, streams.QLC):
            table = streams.prefix_table(counts,
                                         "huffman" if blob[0] == streams.HUFFMAN else "qlc")
            assert bytes(blob) == streams.encode_prefix_stream(symbols, table), case


def test_one_call_kernels_state_the_format_and_the_tables_as_python_does():
    # the kernels' module cannot import these (each kernel module is self-contained), so
    # it restates them: the stream methods it writes and reads, and the prefix codes'
    # limits and shapes
    from ansz import huffman, kernels, qlc

    assert (kernels.METHOD_STORED, kernels.METHOD_CONSTANT, kernels.METHOD_RANS,
            kernels.METHOD_RANS_WIDE, kernels.METHOD_HUFFMAN, kernels.METHOD_QLC) == (
        streams.STORED, streams.CONSTANT, streams.RANS, streams.RANS_WIDE, streams.HUFFMAN,
        streams.QLC)
    assert (kernels.HUFFMAN_LIMIT, kernels.HUFFMAN_MAX_BITS) == (huffman.DEFAULT_LIMIT,
                                                                 huffman.MAX_LIMIT)
    assert (kernels.QLC_NAREAS, kernels.QLC_PREFIX_BITS, kernels.QLC_MAX_AREA_BITS) == (
        qlc.NAREAS, qlc.PREFIX_BITS, qlc.MAX_AREA_BITS)


def test_streams_in_one_call_refuse_sizes_that_do_not_fit():
    from ansz import kernels

    n = 1000
    codes = np.zeros(n, np.uint8)
    codes[::3] = 5
    raw = np.zeros(n, np.uint8)
    empty = np.zeros(0, np.uint8)
    counts = np.zeros(256, np.int64)
    thresholds = np.array([1 << 16, 16, 1 << 17], np.int64)
    table = np.zeros(65536, np.uint32)
    words = np.zeros(n + 128, np.uint16)
    out = np.zeros(2 * n + 4 * kernels.STREAM_SLACK, np.uint8)

    def call(**change):
        a = dict(codes=codes, raw=raw, nplanes=1, last=empty, packed=False, escapes=empty,
                 code_counts=counts.copy(), codes_counted=False, top_counts=counts.copy(),
                 top_counted=False, wide_states=64, try_prefix=False, thresholds=thresholds,
                 min_gain=1 / 64, high_gain=0.001, table=table, words=words, out=out, pos=0)
        a.update(change)
        return kernels.encode_streams(*(np.int64(v) if k in ("nplanes", "wide_states", "pos")
                                        else v for k, v in a.items()))

    assert call() > 0
    for change in (dict(nplanes=2), dict(packed=True, nplanes=0, raw=empty),
                   dict(code_counts=counts[:255].copy()), dict(wide_states=16),
                   dict(thresholds=thresholds[:2].copy()), dict(min_gain=0.0),
                   dict(table=table[:65535]), dict(words=words[:n + 127]),
                   dict(out=out[:2 * n + 2 * kernels.STREAM_SLACK - 1]), dict(pos=-2)):
        with pytest.raises(ValueError):
            call(**change)
