"""Block-quantized tensors (GGML/GGUF types): code each field of the block struct as its own plane.

A GGML quantized tensor is an array of fixed-size *blocks*; each block packs a few fp16
scales, some packed scale bytes and the element quants (nibbles, 2/3/5/6-bit values split
over several arrays, or int8 bytes). Coded as one byte stream these fields mix into a
near-uniform byte distribution (zstd -19 saves about 6% on a Q4_K_M file). Here every
field is gathered across the chunk's blocks into a contiguous *plane* and each plane is
coded on its own with :func:`ansz.streams.encode_stream` (stored, constant or rANS, whichever
is smallest), so a skewed field (the exponent byte of the fp16 scales, the 6-bit sub-block
scales, the bell-shaped quants) is entropy-coded and a uniform one costs nothing extra.

Two kinds of plane:

* *byte planes* copy a field's bytes (the high or low byte of an fp16, int8 quants, packed
  scale bytes that are not worth unpacking);
* *symbol planes* hold one value per byte, unpacked from bits spread over several fields:
  the 5-bit quants of Q5_0 (low nibble in ``qs``, high bit in ``qh``) become one plane of
  values 0..31, so the coder sees their real (bell-shaped) distribution instead of a
  near-uniform low nibble plus a separate high bit. The unpacking is a bijection on the
  block's bytes, so any block (even random bytes) round-trips.

:data:`BLOCK_TYPES` lists each type's planes in payload order; docs/FORMAT.md ("Block-quantized
chunk payload") specifies them bit by bit. Planes are unpacked and packed with numpy
reshapes, shifts and masks (no compiled kernel).

Measured choices, on the two real GGUF files of ``scripts/fetch_gguf.py`` (gemma-3-270m
Q4_K_M and SmolLM2-135M Q4_1), 1 MiB chunks; each figure is coded size / the field's bytes:

* fp16 scales as two byte planes, high byte (sign, exponent, 2 mantissa bits) then low:
  Q8_0 ``d`` high 0.369, low 0.870; Q4_K ``d`` high 0.306, low 1.00 (stored).
* 4-bit quants: one plane of 4-bit values (the low nibbles of the field's bytes, then the
  high nibbles) against whole bytes and two nibble planes: Q4_K 0.9620 / 0.9631 / 0.9622,
  Q4_1 0.9639 / 0.9645 / 0.9641. One plane: the two nibbles of a byte are two elements with
  the same distribution, and one table costs less than two.
* Q4_K/Q5_K ``scales[12]`` unpacked into 8 six-bit scales and 8 six-bit mins (two planes):
  0.856, against 0.905 as bytes.
* Q6_K quants as 6-bit symbols (``ql`` nibble + 2 ``qh`` bits): 0.959 of ``ql + qh``,
  against 0.975 for ``ql`` nibbles + ``qh`` bytes and 0.977 for both as bytes.
* Q5_0 quants as 5-bit symbols: 0.939 of ``qs + qh``, against 0.9955 for ``qs`` nibbles +
  ``qh`` bytes and 0.9998 for both as bytes.
* Q8_0 ``qs`` as int8 bytes: 0.946.

Per type, all planes against the chunk coded as one byte stream: Q8_0 0.927 vs 0.946,
Q5_0 0.905 vs 1.000, Q4_K 0.945 vs 0.972, Q6_K 0.953 vs 1.000, Q4_1 0.878 vs 0.961. Tried
and left out: choosing the Q8_0 quant table by the block's scale (4 or 8 buckets of ``d``
per chunk) would save 0.6% of the ``qs`` plane, not worth a variable stream count.

Q2_K, Q3_K, Q5_K, Q5_1, IQ4_NL and MXFP4 follow the same rules by analogy (no real file of
those types was at hand); their planes are pinned by round-trip tests on random blocks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .dtypes import BLOCK_TYPE_NAMES, GGML_BLOCKS
from .errors import CorruptDataError
from .streams import WIDE_STATES, decode_stream, encode_stream, frame_streams, framed_streams

_AR4 = np.arange(4, dtype=np.uint8)


@dataclass(frozen=True)
class BlockType:
    """A GGML block-quantized type: its planes ``(name, symbols per block)`` and how to split
    a block into them and join them back. Block sizes are :data:`ansz.dtypes.GGML_BLOCKS`'."""

    name: str
    planes: tuple[tuple[str, int], ...]
    split: Callable[[np.ndarray], list[np.ndarray]]  # (nb, block_bytes) -> planes (nb, k)
    join: Callable[[list[np.ndarray], np.ndarray], None]  # planes -> (nb, block_bytes)

    @property
    def block_elems(self) -> int:
        return GGML_BLOCKS[self.name][0]

    @property
    def block_bytes(self) -> int:
        return GGML_BLOCKS[self.name][1]


# ------------------------------------------------------------------------------------------
# Field helpers. ``b`` is a (nb, block_bytes) uint8 array; planes are (nb, k) uint8 arrays.


def _f16(b: np.ndarray, off: int) -> list[np.ndarray]:
    """An fp16 field as [high byte, low byte] (the high byte holds sign and exponent)."""
    return [b[:, off + 1:off + 2], b[:, off:off + 1]]


def _put_f16(b: np.ndarray, off: int, hi: np.ndarray, lo: np.ndarray) -> None:
    b[:, off + 1:off + 2] = hi
    b[:, off:off + 1] = lo


def _nibbles(q: np.ndarray) -> np.ndarray:
    """Packed bytes (nb, k) -> (nb, 2k): all low nibbles, then all high nibbles."""
    return np.concatenate((q & 15, q >> 4), axis=1)


def _pack_nibbles(s: np.ndarray) -> np.ndarray:
    k = s.shape[1] // 2
    return (s[:, :k] & 15) | (s[:, k:] << 4)


def _bits(x: np.ndarray, shift, mask: int) -> np.ndarray:
    return (x >> shift) & mask


def _scales_k4(q: np.ndarray) -> list[np.ndarray]:
    """Q4_K/Q5_K ``scales[12]`` -> [8 six-bit scales, 8 six-bit mins] (ggml get_scale_min_k4)."""
    sc = np.concatenate((q[:, 0:4] & 63, (q[:, 8:12] & 15) | ((q[:, 0:4] >> 6) << 4)), axis=1)
    mn = np.concatenate((q[:, 4:8] & 63, (q[:, 8:12] >> 4) | ((q[:, 4:8] >> 6) << 4)), axis=1)
    return [sc, mn]


def _pack_scales_k4(sc: np.ndarray, mn: np.ndarray) -> np.ndarray:
    out = np.empty((sc.shape[0], 12), np.uint8)
    out[:, 0:4] = (sc[:, 0:4] & 63) | ((sc[:, 4:8] >> 4) << 6)
    out[:, 4:8] = (mn[:, 0:4] & 63) | ((mn[:, 4:8] >> 4) << 6)
    out[:, 8:12] = (sc[:, 4:8] & 15) | ((mn[:, 4:8] & 15) << 4)
    return out


def _scales_q3k(q: np.ndarray) -> np.ndarray:
    """Q3_K ``scales[12]`` -> 16 six-bit scales: scale i = low4 | high2 << 4 where low4 is
    nibble i // 8 of byte i % 8 and high2 is bits 2 * (i // 4) of byte 8 + i % 4."""
    low = np.concatenate((q[:, 0:8] & 15, q[:, 0:8] >> 4), axis=1)
    high = _bits(q[:, None, 8:12], (2 * _AR4)[None, :, None], 3).reshape(-1, 16)
    return low | (high << 4)


def _pack_scales_q3k(s: np.ndarray) -> np.ndarray:
    out = np.empty((s.shape[0], 12), np.uint8)
    out[:, 0:8] = (s[:, 0:8] & 15) | ((s[:, 8:16] & 15) << 4)
    h = (_bits(s.reshape(-1, 4, 4), 4, 3) << (2 * _AR4)[None, :, None])
    out[:, 8:12] = np.bitwise_or.reduce(h, axis=1)
    return out


# ------------------------------------------------------------------------------------------
# Quant symbol planes (bijections between the packed fields and one value per byte).


def _q5_32(qh: np.ndarray, qs: np.ndarray) -> np.ndarray:
    """Q5_0/Q5_1: element k (0..31) = nibble k // 16 of qs[k % 16] | bit k of qh (u32 LE) << 4."""
    high = np.unpackbits(qh, axis=1, bitorder="little")
    return _nibbles(qs) | (high << 4)


def _unq5_32(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    qh = np.packbits(_bits(s, 4, 1), axis=1, bitorder="little")
    return qh, _pack_nibbles(s)


def _q5k(qh: np.ndarray, qs: np.ndarray) -> np.ndarray:
    """Q5_K: for c in 0..3, l in 0..31: low = qs[32c+l] & 15 with qh[l] bit 2c,
    high = qs[32c+l] >> 4 with qh[l] bit 2c+1; symbol order (c, low/high, l)."""
    ql = qs.reshape(-1, 4, 1, 32)
    nib = np.concatenate((ql & 15, ql >> 4), axis=2)  # (nb, 4, 2, 32)
    shift = (2 * _AR4[:, None] + np.arange(2, dtype=np.uint8)[None, :])[None, :, :, None]
    return (nib | (_bits(qh[:, None, None, :], shift, 1) << 4)).reshape(-1, 256)


def _unq5k(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = s.reshape(-1, 4, 2, 32)
    qs = ((s[:, :, 0] & 15) | (s[:, :, 1] << 4)).reshape(-1, 128)
    shift = (2 * _AR4[:, None] + np.arange(2, dtype=np.uint8)[None, :])[None, :, :, None]
    qh = np.bitwise_or.reduce((_bits(s, 4, 1) << shift).reshape(-1, 8, 32), axis=1)
    return qh, qs


def _q6k(ql: np.ndarray, qh: np.ndarray) -> np.ndarray:
    """Q6_K: for half h, k in 0..3, l in 0..31: nibble k // 2 of ql[64h + 32(k % 2) + l]
    with bits 2k..2k+1 of qh[32h + l] as bits 4..5; symbol order (h, k, l)."""
    q = ql.reshape(-1, 2, 1, 2, 32)
    nib = np.concatenate((q & 15, q >> 4), axis=2).reshape(-1, 2, 4, 32)
    high = _bits(qh.reshape(-1, 2, 1, 32), (2 * _AR4)[None, None, :, None], 3)
    return (nib | (high << 4)).reshape(-1, 256)


def _unq6k(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = s.reshape(-1, 2, 2, 2, 32)  # (h, nibble, part, l)
    ql = ((s[:, :, 0] & 15) | (s[:, :, 1] << 4)).reshape(-1, 128)
    high = _bits(s.reshape(-1, 2, 4, 32), 4, 3) << (2 * _AR4)[None, None, :, None]
    qh = np.bitwise_or.reduce(high, axis=2).reshape(-1, 64)
    return ql, qh


def _q3k(hmask: np.ndarray, qs: np.ndarray) -> np.ndarray:
    """Q3_K: for n in 0..1, j in 0..3, l in 0..31: bits 2j..2j+1 of qs[32n + l] with bit
    4n + j of hmask[l] as bit 2; symbol order (n, j, l)."""
    low = _bits(qs.reshape(-1, 2, 1, 32), (2 * _AR4)[None, None, :, None], 3)
    shift = (4 * np.arange(2, dtype=np.uint8)[:, None] + _AR4[None, :])[None, :, :, None]
    high = _bits(hmask[:, None, None, :], shift, 1)
    return (low | (high << 2)).reshape(-1, 256)


def _unq3k(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = s.reshape(-1, 2, 4, 32)
    qs = np.bitwise_or.reduce((s & 3) << (2 * _AR4)[None, None, :, None], axis=2).reshape(-1, 64)
    shift = (4 * np.arange(2, dtype=np.uint8)[:, None] + _AR4[None, :])[None, :, :, None]
    hmask = np.bitwise_or.reduce((_bits(s, 2, 1) << shift).reshape(-1, 8, 32), axis=1)
    return hmask, qs


# ------------------------------------------------------------------------------------------
# The types. Each split returns planes in the order of ``planes``; join inverts it.


def _simple(name: str, fields: list[tuple[str, str, int, int]]) -> BlockType:
    """A type whose planes are plain fields: (plane name, kind, offset, size) with kind
    ``f16`` (two planes: high byte, low byte), ``bytes`` or ``nibbles`` (one 4-bit plane)."""
    planes: list[tuple[str, int]] = []
    for pname, kind, _, size in fields:
        if kind == "f16":
            planes += [(pname + ".hi", 1), (pname + ".lo", 1)]
        elif kind == "nibbles":
            planes.append((pname, 2 * size))
        else:
            planes.append((pname, size))

    def split(b):
        out = []
        for _, kind, off, size in fields:
            if kind == "f16":
                out += _f16(b, off)
            elif kind == "nibbles":
                out.append(_nibbles(b[:, off:off + size]))
            else:
                out.append(b[:, off:off + size])
        return out

    def join(ps, b):
        it = iter(ps)
        for _, kind, off, size in fields:
            if kind == "f16":
                _put_f16(b, off, next(it), next(it))
            elif kind == "nibbles":
                b[:, off:off + size] = _pack_nibbles(next(it))
            else:
                b[:, off:off + size] = next(it)

    return BlockType(name, tuple(planes), split, join)


def _q5_0(name: str, with_m: bool) -> BlockType:
    q = 4 if with_m else 2  # offset of qh
    planes = [("d.hi", 1), ("d.lo", 1)] + ([("m.hi", 1), ("m.lo", 1)] if with_m else [])

    def split(b):
        out = _f16(b, 0) + (_f16(b, 2) if with_m else [])
        return out + [_q5_32(b[:, q:q + 4], b[:, q + 4:q + 20])]

    def join(ps, b):
        _put_f16(b, 0, ps[0], ps[1])
        if with_m:
            _put_f16(b, 2, ps[2], ps[3])
        b[:, q:q + 4], b[:, q + 4:q + 20] = _unq5_32(ps[-1])

    return BlockType(name, tuple(planes + [("q", 32)]), split, join)


def _q2k() -> BlockType:
    # scales[16] (low nibble scale, high nibble min), qs[64] (2-bit), d, dmin
    def split(b):
        return [b[:, 0:16] & 15, b[:, 0:16] >> 4, b[:, 16:80]] + _f16(b, 80) + _f16(b, 82)

    def join(ps, b):
        b[:, 0:16] = (ps[0] & 15) | (ps[1] << 4)
        b[:, 16:80] = ps[2]
        _put_f16(b, 80, ps[3], ps[4])
        _put_f16(b, 82, ps[5], ps[6])

    planes = (("scales", 16), ("mins", 16), ("qs", 64), ("d.hi", 1), ("d.lo", 1),
              ("dmin.hi", 1), ("dmin.lo", 1))
    return BlockType("Q2_K", planes, split, join)


def _q3k_type() -> BlockType:
    # hmask[32], qs[64], scales[12], d
    def split(b):
        return [_q3k(b[:, 0:32], b[:, 32:96]), _scales_q3k(b[:, 96:108])] + _f16(b, 108)

    def join(ps, b):
        b[:, 0:32], b[:, 32:96] = _unq3k(ps[0])
        b[:, 96:108] = _pack_scales_q3k(ps[1])
        _put_f16(b, 108, ps[2], ps[3])

    return BlockType("Q3_K", (("q", 256), ("scales", 16), ("d.hi", 1), ("d.lo", 1)),
                     split, join)


def _q4k() -> BlockType:
    # d, dmin, scales[12], qs[128]
    def split(b):
        return _f16(b, 0) + _f16(b, 2) + _scales_k4(b[:, 4:16]) + [_nibbles(b[:, 16:144])]

    def join(ps, b):
        _put_f16(b, 0, ps[0], ps[1])
        _put_f16(b, 2, ps[2], ps[3])
        b[:, 4:16] = _pack_scales_k4(ps[4], ps[5])
        b[:, 16:144] = _pack_nibbles(ps[6])

    planes = (("d.hi", 1), ("d.lo", 1), ("dmin.hi", 1), ("dmin.lo", 1), ("scales", 8),
              ("mins", 8), ("q", 256))
    return BlockType("Q4_K", planes, split, join)


def _q5k_type() -> BlockType:
    # d, dmin, scales[12], qh[32], qs[128]
    def split(b):
        return (_f16(b, 0) + _f16(b, 2) + _scales_k4(b[:, 4:16])
                + [_q5k(b[:, 16:48], b[:, 48:176])])

    def join(ps, b):
        _put_f16(b, 0, ps[0], ps[1])
        _put_f16(b, 2, ps[2], ps[3])
        b[:, 4:16] = _pack_scales_k4(ps[4], ps[5])
        b[:, 16:48], b[:, 48:176] = _unq5k(ps[6])

    planes = (("d.hi", 1), ("d.lo", 1), ("dmin.hi", 1), ("dmin.lo", 1), ("scales", 8),
              ("mins", 8), ("q", 256))
    return BlockType("Q5_K", planes, split, join)


def _q6k_type() -> BlockType:
    # ql[128], qh[64], scales[16] int8, d
    def split(b):
        return [_q6k(b[:, 0:128], b[:, 128:192]), b[:, 192:208]] + _f16(b, 208)

    def join(ps, b):
        b[:, 0:128], b[:, 128:192] = _unq6k(ps[0])
        b[:, 192:208] = ps[1]
        _put_f16(b, 208, ps[2], ps[3])

    return BlockType("Q6_K", (("q", 256), ("scales", 16), ("d.hi", 1), ("d.lo", 1)),
                     split, join)


_TYPES = [
    _simple("Q4_0", [("d", "f16", 0, 2), ("q", "nibbles", 2, 16)]),
    _simple("Q4_1", [("d", "f16", 0, 2), ("m", "f16", 2, 2), ("q", "nibbles", 4, 16)]),
    _q5_0("Q5_0", False),
    _q5_0("Q5_1", True),
    _simple("Q8_0", [("d", "f16", 0, 2), ("q", "bytes", 2, 32)]),
    _q2k(),
    _q3k_type(),
    _q4k(),
    _q5k_type(),
    _q6k_type(),
    _simple("IQ4_NL", [("d", "f16", 0, 2), ("q", "nibbles", 2, 16)]),
    _simple("MXFP4", [("e", "bytes", 0, 1), ("q", "nibbles", 1, 16)]),
]

#: GGML type name -> its block layout, for every type coded by fields.
BLOCK_TYPES: dict[str, BlockType] = {t.name: t for t in _TYPES}
if tuple(BLOCK_TYPES) != BLOCK_TYPE_NAMES:  # the container's dtype codes are numbered by them
    raise ImportError("ansz.blocks implements other types than dtypes.BLOCK_TYPE_NAMES")


def block_type(qtype: str) -> BlockType:
    try:
        return BLOCK_TYPES[qtype]
    except KeyError:
        raise ValueError(f"{qtype!r} is not a block-quantized type ansz codes by field") from None


# ------------------------------------------------------------------------------------------
# Chunk payloads


def encode_block_chunk(data, qtype: str, *, coder: str = "auto",
                       wide_states: int = WIDE_STATES) -> bytes:
    """Code a chunk of whole ``qtype`` blocks (bytes-like) as framed plane streams.

    The payload is the type's planes in order, each framed as in a chunk payload (``u32``
    length, the stream, a zero byte if the length is odd). If that is larger than the chunk
    itself (random data whose unpacked planes do not compress), the payload is instead a
    single framed stream of the chunk's bytes, so a payload never exceeds ``len(data) + 6``.
    ``coder`` and ``wide_states`` are passed to :func:`ansz.streams.encode_stream` for every
    stream.
    """
    bt = block_type(qtype)
    buf = np.frombuffer(data, np.uint8)
    if buf.size % bt.block_bytes:
        raise ValueError(f"{buf.size} bytes is not a whole number of {qtype} blocks")
    b = buf.reshape(-1, bt.block_bytes)
    blob = frame_streams([encode_stream(np.ascontiguousarray(p).reshape(-1), coder=coder,
                                        wide_states=wide_states) for p in bt.split(b)])
    if len(blob) > buf.size:
        whole = frame_streams([encode_stream(buf, coder=coder, wide_states=wide_states)])
        if len(whole) < len(blob):
            return whole
    return blob


def decode_block_chunk(blob, qtype: str, nbytes: int, out: np.ndarray | None = None) -> np.ndarray:
    """Decode a payload made by :func:`encode_block_chunk` into ``nbytes`` bytes (uint8 array).

    ``out``, if given, is a writable uint8 array of ``nbytes`` entries. Malformed payloads
    raise CorruptDataError; allocations are bounded by a small multiple of ``nbytes``
    (the unpacked planes), which the caller has validated.
    """
    bt = block_type(qtype)
    if nbytes % bt.block_bytes:
        raise CorruptDataError(f"chunk of {nbytes} bytes is not a whole number of {qtype} blocks")
    if out is None:
        out = np.empty(nbytes, np.uint8)
    if not out.flags.c_contiguous:  # reshape below must be a view, not a copy
        raise ValueError("out must be a contiguous uint8 array")
    streams = list(framed_streams(memoryview(blob).cast("B"), None))
    if len(streams) == 1:
        decode_stream(streams[0], nbytes, out)
        return out
    if len(streams) != len(bt.planes):
        raise CorruptDataError(f"{qtype} chunk payload has {len(streams)} streams, "
                               f"expected {len(bt.planes)} (or 1)")
    nb = nbytes // bt.block_bytes
    planes = [decode_stream(s, nb * k).reshape(nb, k) for s, (_, k) in zip(streams, bt.planes)]
    bt.join(planes, out.reshape(nb, bt.block_bytes))
    return out
