"""Choosing the entropy coder: HUFFMAN and QLC streams, ``--coder``, and "auto is smallest".

Streams go through ``streams.encode_stream(..., coder=...)`` / ``decode_stream``; files through
``compress_file(..., coder=...)`` / ``decompress_file``; the CLI through ``--coder``. Damaged
prefix streams must raise CorruptDataError (never crash, hang or return silently wrong
lengths); the NUMBA_BOUNDSCHECK run of the same decoders is in test_boundscheck.py.
"""

from __future__ import annotations

import io

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from safetensors.numpy import save_file

import ansz
from ansz import options, stats, streams
from ansz.errors import AnszError, CorruptDataError

from helpers import damage_outcomes, error_lines, fuzz, invoke, roundtrip_file, symbols

FORCED = ("rans", "huffman", "qlc")
METHOD = {"rans": streams.RANS, "huffman": streams.HUFFMAN, "qlc": streams.QLC}


def sample(seed: int, k: int, skew: float, n: int) -> np.ndarray:
    """n symbols over k random byte values with Zipf-like weights (skew 0 = uniform)."""
    return symbols(seed, k, skew, n, law="zipf")


def stream_rt(symbols: np.ndarray, coder: str, **kw) -> bytes:
    blob = streams.encode_stream(symbols, coder=coder, **kw)
    got = streams.decode_stream(blob, symbols.size)
    np.testing.assert_array_equal(got, symbols)
    return blob


# ---------------------------------------------------------------------------------------------
# Streams


@fuzz(60)
@given(seed=st.integers(0, 2**32 - 1), k=st.integers(1, 256), skew=st.floats(0, 3),
       n=st.integers(0, 5000))
def test_every_coder_round_trips_and_auto_is_smallest(seed, k, skew, n):
    s = sample(seed, k, skew, n)
    sizes = {}
    for coder in ("auto",) + FORCED:
        blob = stream_rt(s, coder)
        sizes[coder] = len(blob)
        if coder != "auto":  # a forced coder, or a method every coder may fall back to
            assert blob[0] in (METHOD[coder], streams.STORED, streams.CONSTANT)
    assert sizes["auto"] == min(sizes.values())


def test_forced_coders_are_used_where_entropy_coding_pays():
    s = sample(1, 20, 1.2, 50_000)
    for coder in FORCED:
        assert stream_rt(s, coder)[0] == METHOD[coder]
    # Small streams: a prefix code's table costs less than rANS's u16 frequencies and its
    # 32 bytes of final states.
    small = sample(2, 6, 1.0, 300)
    assert stream_rt(small, "auto")[0] in (streams.HUFFMAN, streams.QLC)


def test_forced_coders_keep_stored_and_constant():
    uniform = np.random.default_rng(0).integers(0, 256, 100_000).astype(np.uint8)
    const = np.full(1000, 9, np.uint8)
    for coder in FORCED:
        assert stream_rt(uniform, coder)[0] == streams.STORED
        assert stream_rt(const, coder) == bytes([streams.CONSTANT, 9])


def test_zstd_is_still_tried_for_generic_bytes():
    text = np.frombuffer(b'{"model.layers.0.weight": {"dtype": "BF16"}}' * 2000, np.uint8)
    for coder in FORCED:
        assert stream_rt(text, coder, try_zstd=True)[0] == streams.ZSTD


def test_unknown_coder_is_refused():
    with pytest.raises(ValueError, match="unknown coder"):
        streams.encode_stream(np.zeros(10, np.uint8), coder="fse")


def test_stream_layout_is_method_table_codes():
    s = sample(3, 5, 1.0, 4000)
    counts = np.bincount(s, minlength=256)
    for coder in ("huffman", "qlc"):
        table = streams.prefix_table(counts, coder)
        blob = streams.encode_stream(s, coder=coder)
        head = bytes([METHOD[coder]]) + table.to_bytes()
        assert blob.startswith(head)
        assert len(blob) == streams.prefix_stream_size(counts, table)
        assert stats.coder_costs(counts)[coder] == 8 * len(blob)


def test_decode_into_a_given_output():
    s = sample(4, 30, 1.0, 10_000)
    for coder in ("huffman", "qlc"):
        blob = streams.encode_stream(s, coder=coder)
        out = np.zeros(s.size + 1, np.uint8)
        streams.decode_stream(blob, s.size, out[1:])
        np.testing.assert_array_equal(out[1:], s)


# ---------------------------------------------------------------------------------------------
# Damaged prefix streams


def prefix_blob(coder: str, seed: int = 5, n: int = 3001) -> tuple[np.ndarray, bytes, int]:
    """(symbols, stream, table bytes) with a last byte that has padding bits."""
    for extra in range(16):
        s = sample(seed + extra, 12, 1.0, n)
        blob = streams.encode_stream(s, coder=coder)
        assert blob[0] == METHOD[coder]
        counts = np.bincount(s, minlength=256)
        table = streams.prefix_table(counts, coder)
        bits = (8 * (len(blob) - 1 - len(table.to_bytes())))
        from ansz import huffman, qlc

        used = (huffman.expected_bits(counts, table.lengths) if coder == "huffman"
                else qlc.expected_bits(counts, table.area_bits))
        if used < bits:
            return s, blob, len(table.to_bytes())
    raise AssertionError("no sample with padding bits")


@pytest.mark.parametrize("coder", ["huffman", "qlc"])
def test_damaged_prefix_streams_raise_corrupt_data(coder):
    s, blob, tlen = prefix_blob(coder)
    n = s.size
    bad = {
        "truncated by one byte": blob[:-1],
        "truncated in the table": blob[:1 + tlen - 1],
        "method only": blob[:1],
        "trailing byte": blob + b"\0",
        "nonzero padding": blob[:-1] + bytes([blob[-1] | 1]),
    }
    if coder == "huffman":
        bad["first > last"] = blob[:1] + bytes([blob[2], blob[1]]) + blob[3:]
        # every length 1: Kraft sum 12/2 > 1
        bad["over-subscribed"] = (blob[:3] + bytes([0x11] * (tlen - 2)) + blob[1 + tlen:])
    else:
        bad["area bits 9"] = blob[:1] + bytes([0x99]) + blob[2:]
        sym = bytearray(blob)
        sym[7] = sym[6]  # a repeated symbol
        bad["repeated symbol"] = bytes(sym)
        bad["more symbols than areas hold"] = blob[:1] + bytes(4) + blob[5:]
    for what, b in bad.items():
        with pytest.raises(CorruptDataError):
            streams.decode_stream(b, n)
            pytest.fail(what)
    # (n + 1 may decode: the zero padding bits can spell the all-zero codeword. The count
    # is fixed by the chunk, and the chunk's hash is checked.)
    with pytest.raises(CorruptDataError):
        streams.decode_stream(blob, n + 100)  # more symbols than the codes hold
    with pytest.raises(CorruptDataError):
        streams.decode_stream(blob, n - 50)  # fewer: trailing bytes


@pytest.mark.parametrize("coder", ["huffman", "qlc"])
def test_random_damage_gives_symbols_or_corrupt_data(coder):
    s, blob, _ = prefix_blob(coder)

    def decode(b: bytes) -> None:
        assert streams.decode_stream(b, s.size).size == s.size

    outcomes = damage_outcomes(decode, blob, np.random.default_rng(7), 300)
    # Every truncation is caught; flipped code bits may decode to other symbols (the
    # chunk's xxh3 catches those), flips in the table mostly are caught here.
    assert outcomes.corrupt["truncate"] == 100 and outcomes.total_corrupt > 100


# ---------------------------------------------------------------------------------------------
# Files and the CLI


def model(path, kind: str, seed: int = 0, n: int = 300_000):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n) * 0.02
    tensors = {
        "bf16": {"w": x.astype(ml_dtypes.bfloat16).reshape(-1, 100),
                 "norm": (1 + x[:384]).astype(ml_dtypes.bfloat16),
                 "tiny": x[:7].astype(ml_dtypes.bfloat16)},
        "fp8": {"w": (x / 0.08 * 448).astype(ml_dtypes.float8_e4m3fn).reshape(-1, 100),
                "bias": (x[:384] * 100).astype(ml_dtypes.float8_e4m3fn),
                "f16": x[:3000].astype(np.float16)},
    }[kind]
    save_file(tensors, str(path), metadata={"kind": kind})
    return path


@pytest.mark.parametrize("kind", ["bf16", "fp8"])
def test_files_round_trip_with_every_coder_and_auto_is_smallest(tmp_path, kind):
    src = model(tmp_path / f"{kind}.safetensors", kind)
    sizes = {}
    for coder in ("auto",) + FORCED:
        dst = tmp_path / f"{kind}.{coder}.ansz"
        sizes[coder] = roundtrip_file(src, dst, coder=coder, chunk_size=64 << 10,
                                      threads=2).compressed_size
        assert ansz.verify_file(dst).ok
        buf = io.BytesIO()
        ansz.decompress_stream(io.BytesIO(dst.read_bytes()), buf)
        assert buf.getvalue() == src.read_bytes()
    assert sizes["auto"] == min(sizes.values()), sizes
    assert len(set(sizes.values())) > 1  # the coders really differ


def test_compress_stream_takes_a_coder_and_output_does_not_depend_on_threads(tmp_path):
    data = model(tmp_path / "m.safetensors", "fp8", n=50_000).read_bytes()
    outs = []
    for threads in (1, 2):
        buf = io.BytesIO()
        ansz.compress_stream(io.BytesIO(data), buf, coder="qlc", threads=threads,
                             chunk_size=16 << 10)
        outs.append(buf.getvalue())
    assert outs[0] == outs[1]
    back = io.BytesIO()
    ansz.decompress_stream(io.BytesIO(outs[0]), back)
    assert back.getvalue() == data


@pytest.mark.parametrize("coder", ["", "QLC", "fse", 3])
def test_api_refuses_unknown_coders(tmp_path, coder):
    src = tmp_path / "x.bin"
    src.write_bytes(b"abc")
    with pytest.raises(AnszError, match="coder must be one of"):
        ansz.compress_file(src, tmp_path / "x.ansz", coder=coder)
    assert not (tmp_path / "x.ansz").exists()


def test_cli_coder_qlc_round_trip(tmp_path):
    src = model(tmp_path / "m.safetensors", "fp8", n=60_000)
    r = invoke(["compress", "-q", "--coder", "qlc", src])
    assert r.exit_code == 0, r.stderr
    packed = tmp_path / "m.safetensors.ansz"
    r = invoke(["decompress", "-q", "-o", tmp_path / "back", packed])
    assert r.exit_code == 0, r.stderr
    assert (tmp_path / "back").read_bytes() == src.read_bytes()
    auto = tmp_path / "auto.ansz"
    r = invoke(["compress", "-q", "-o", auto, src])
    assert r.exit_code == 0 and auto.stat().st_size <= packed.stat().st_size


def test_cli_unknown_coder_is_a_usage_error(tmp_path):
    src = tmp_path / "x.bin"
    src.write_bytes(b"abc")
    r = invoke(["compress", "--coder", "fse", src])
    assert r.exit_code == 2
    errors = error_lines(r.stderr)
    assert len(errors) == 1 and "fse" in errors[0]
    assert not (tmp_path / "x.bin.ansz").exists()


def test_coder_names_are_auto_and_the_forced_ones():
    assert options.CODERS[0] == "auto" and set(options.CODERS[1:]) == set(FORCED)
