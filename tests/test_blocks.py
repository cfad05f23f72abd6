"""Block-quantized chunk payloads (ansz.blocks): round trips, plane semantics, damaged input."""

from __future__ import annotations

import gguf
import numpy as np
import pytest
from gguf import GGMLQuantizationType as T

from ansz import blocks, chunks, dtypes, streams
from ansz.errors import CorruptDataError

TYPES = sorted(blocks.BLOCK_TYPES)


def random_blocks(qtype: str, nb: int, seed: int = 0) -> bytes:
    bt = blocks.BLOCK_TYPES[qtype]
    return np.random.default_rng(seed).integers(0, 256, nb * bt.block_bytes, np.uint8).tobytes()


def quantized(qtype: str, rows: int = 64, cols: int = 512, seed: int = 0) -> bytes:
    x = (np.random.default_rng(seed).standard_normal((rows, cols)) * 0.02).astype(np.float32)
    return gguf.quants.quantize(x, T[qtype]).tobytes()


@pytest.mark.parametrize("qtype", TYPES)
def test_layout_matches_ggml(qtype):
    bt = blocks.BLOCK_TYPES[qtype]
    assert gguf.GGML_QUANT_SIZES[T[qtype]] == (bt.block_elems, bt.block_bytes)
    code = dtypes.dtype_code_for(qtype)
    d = dtypes.DTYPE_CODES[code]
    assert code >= 32 and (d.name, d.width, d.code_shift) == (qtype, bt.block_bytes, 0)


@pytest.mark.parametrize("qtype", TYPES)
@pytest.mark.parametrize("nb", [1, 2, 37, 3000])
def test_random_blocks_round_trip(qtype, nb):
    data = random_blocks(qtype, nb, seed=nb)
    bt = blocks.BLOCK_TYPES[qtype]
    planes = bt.split(np.frombuffer(data, np.uint8).reshape(nb, -1))
    assert [p.shape for p in planes] == [(nb, k) for _, k in bt.planes]
    blob = chunks.encode_chunk(data, qtype)
    assert len(blob) <= len(data) + 6  # the whole-chunk fallback bounds the payload
    assert chunks.decode_chunk(blob, qtype, len(data)).tobytes() == data


@pytest.mark.parametrize("qtype", ["Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "MXFP4"])
def test_quantized_weights_compress_and_round_trip(qtype):
    data = quantized(qtype)
    blob = chunks.encode_chunk(data, qtype)
    assert len(blob) < 0.97 * len(data)
    out = np.zeros(len(data), np.uint8)
    assert chunks.decode_chunk(blob, qtype, len(data), out) is out
    assert out.tobytes() == data
    # fast (level 1): the planes are coded with rANS alone, never a prefix coder
    fast = chunks.encode_chunk(data, qtype, fast=True)
    assert chunks.decode_chunk(fast, qtype, len(data)).tobytes() == data
    assert fast == chunks.encode_chunk(data, qtype, coder="rans")


def _block(qtype: str, d_fields: dict[int, int], nb: int = 8, seed: int = 1) -> np.ndarray:
    b = np.frombuffer(random_blocks(qtype, nb, seed), np.uint8).reshape(nb, -1).copy()
    for off, value in d_fields.items():
        b[:, off:off + 2] = np.frombuffer(np.float16(value).tobytes(), np.uint8)
    return b


@pytest.mark.parametrize("qtype, quant_offset", [("Q5_0", 16), ("Q6_K", 32), ("Q3_K", 4),
                                                 ("Q5_K", 0)])
def test_symbol_planes_are_ggml_quant_values_in_element_order(qtype, quant_offset):
    """With unit scales, ggml's dequantized values are the symbol plane minus an offset."""
    if qtype == "Q5_0":
        b = _block(qtype, {0: 1.0})
    elif qtype == "Q6_K":
        b = _block(qtype, {208: 1.0})
        b[:, 192:208] = 1
    elif qtype == "Q3_K":
        b = _block(qtype, {108: 1.0})
        b[:, 96:108] = blocks._pack_scales_q3k(np.full((len(b), 16), 33, np.uint8))
    else:
        b = _block(qtype, {0: 1.0, 2: 0.0})
        b[:, 4:16] = blocks._pack_scales_k4(np.ones((len(b), 8), np.uint8),
                                            np.zeros((len(b), 8), np.uint8))
    bt = blocks.BLOCK_TYPES[qtype]
    symbols = bt.split(b)[[name for name, _ in bt.planes].index("q")]
    values = gguf.quants.dequantize(b.reshape(1, -1), T[qtype]).reshape(len(b), -1)
    np.testing.assert_array_equal(values, symbols.astype(np.float32) - quant_offset)


def test_k4_scales_unpack_like_ggml():
    q = np.frombuffer(random_blocks("Q4_K", 4), np.uint8).reshape(4, 144)[:, 4:16]
    sc, mn = blocks._scales_k4(q)
    for row in range(4):
        for j in range(8):  # ggml's get_scale_min_k4
            if j < 4:
                d, m = q[row, j] & 63, q[row, j + 4] & 63
            else:
                d = (q[row, j + 4] & 0xF) | ((q[row, j - 4] >> 6) << 4)
                m = (q[row, j + 4] >> 4) | ((q[row, j] >> 6) << 4)
            assert (sc[row, j], mn[row, j]) == (d, m)


def test_damaged_payloads_fail_cleanly():
    data = quantized("Q4_1")
    blob = chunks.encode_chunk(data, "Q4_1")
    step = max(1, len(blob) // 200)
    for cut in range(0, len(blob), step):
        with pytest.raises(CorruptDataError):
            chunks.decode_chunk(blob[:cut], "Q4_1", len(data))
    rng = np.random.default_rng(0)
    for _ in range(200):
        bad = bytearray(blob)
        bad[int(rng.integers(len(bad)))] ^= 1 << int(rng.integers(8))
        try:
            chunks.decode_chunk(bytes(bad), "Q4_1", len(data))
        except CorruptDataError:
            pass  # a flip that decodes to other bytes is caught by the chunk's checksum
    with pytest.raises(CorruptDataError):
        chunks.decode_chunk(blob + b"\0\0\0\0", "Q4_1", len(data))  # an extra empty stream
    with pytest.raises(CorruptDataError):
        chunks.decode_chunk(blob, "Q4_1", len(data) - 1)  # not whole blocks
    with pytest.raises(CorruptDataError):
        chunks.decode_chunk(blob, "Q4_1", len(data) + 20)  # planes too short


def test_stream_count_is_checked():
    data = random_blocks("Q8_0", 4)
    one = streams.frame_streams([streams.encode_stream(np.frombuffer(data, np.uint8))])
    assert chunks.decode_chunk(one, "Q8_0", len(data)).tobytes() == data  # the fallback form
    two = streams.frame_streams([streams.encode_stream(np.zeros(4, np.uint8))] * 2)
    with pytest.raises(CorruptDataError, match="streams"):
        chunks.decode_chunk(two, "Q8_0", len(data))
    with pytest.raises(CorruptDataError):
        chunks.decode_chunk(b"\x10\x00\x00\x00" * 100, "Q8_0", len(data))


def test_unknown_type_is_refused():
    with pytest.raises(ValueError):
        blocks.encode_block_chunk(b"\0" * 32, "IQ2_XXS")
    with pytest.raises(ValueError):
        blocks.encode_block_chunk(b"\0" * 33, "Q8_0")
