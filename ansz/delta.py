"""Delta chunk payloads: a float chunk coded against the same elements of a base tensor.

docs/FORMAT.md ("Delta chunk payload") specifies the bytes; :mod:`ansz._kernels.delta` holds
the transform. A payload is an 8-byte header (method 0, three zero bytes, the number of raw
bits as a u32) and two framed streams: one symbol per element (the signed bit length of
the change in units in the last place, with the bit below its leading one), coded as any
ansz stream; and the remaining low bits of each change, packed, coded as a stream too
(stored when they do not compress).

This layer knows dtypes and bytes; which chunks have a base, and where its bytes come from,
is :mod:`ansz.base`'s business.
"""

from __future__ import annotations

import struct

import numpy as np

from . import kernels
from .dtypes import DTYPE_CODES
from .errors import CorruptDataError
from .options import DEFAULT_LEVEL, FAST_LEVEL
from .prefix import DECODE_STATUS
from .streams import (FAST_WIDE_STATES, decode_stream, encode_stream_parts, framed_pieces,
                      framed_streams, scratch)

#: Delta_Method 0: one table of symbols for the chunk, raw bits packed LSB first.
METHOD_PLAIN = 0
_HEAD = struct.Struct("<B3xI")  # Delta_Method, Reserved, Raw_Bits

#: Element dtype names a delta chunk may code (their dtype codes, plain and fielded).
DELTA_DTYPES = ("F8_E4M3", "F8_E5M2", "F16", "BF16", "F32")
_UINT = {1: np.uint8, 2: np.uint16, 4: np.uint32}


def delta_capable(dtype_code: int) -> bool:
    """Whether chunks of this container Dtype_Code may be delta chunks."""
    d = DTYPE_CODES.get(dtype_code)
    return d is not None and d.name in DELTA_DTYPES


def _elements(data, width: int) -> np.ndarray:
    """``data`` (bytes-like, whole elements) as an aligned unsigned array of ``width`` bytes."""
    raw = np.frombuffer(data, np.uint8) if not isinstance(data, np.ndarray) else data
    if raw.ctypes.data % width:
        raw = raw.copy()
    return raw.view(_UINT[width])


def encode_delta(data, base, dtype_code: int, *, coder: str = "auto",
                 level: int = DEFAULT_LEVEL) -> bytes:
    """The delta payload of chunk ``data`` against ``base`` (bytes-like, equal lengths, whole
    elements of ``dtype_code``, which :func:`delta_capable` accepts). ``coder`` and ``level``
    as for :func:`ansz.chunks.encode_payload`."""
    width = DTYPE_CODES[dtype_code].width
    target, before = _elements(data, width), _elements(base, width)
    n = target.size
    syms = scratch("delta_syms", n)
    raw = scratch("delta_raw", (n * (8 * width - 2) + 7) // 8)
    bits = kernels.delta_encode(target, before, syms, raw)
    if bits < 0:
        raise ValueError("encode_delta: target and base differ in size")
    if level == FAST_LEVEL and coder == "auto":
        coder = "rans"
    parts = [_HEAD.pack(METHOD_PLAIN, bits)]
    for stream in (syms, raw[:(bits + 7) // 8]):
        # wide rANS streams of 64 states, at every level: they decode ~1.5x as fast as 32
        # for 128 more bytes, which a chunk of changes hardly notices
        parts.extend(framed_pieces(encode_stream_parts(stream, coder=coder,
                                                       wide_states=FAST_WIDE_STATES)))
    return b"".join(parts)


def decode_delta(payload, base, dtype_code: int, out: np.ndarray) -> np.ndarray:
    """Decode a delta payload against ``base`` (bytes-like of ``out.size`` bytes) into
    ``out`` (a writable uint8 array of whole elements). CorruptDataError for a malformed
    payload; the caller checks the content hash."""
    width = DTYPE_CODES[dtype_code].width
    n = out.size // width
    mv = memoryview(payload).cast("B")
    if len(mv) < _HEAD.size:
        raise CorruptDataError("delta payload is truncated")
    if mv[0] != METHOD_PLAIN or any(mv[1:4]):
        raise CorruptDataError(f"delta payload has unknown method {mv[0]} or reserved bits")
    bits = _HEAD.unpack_from(mv)[1]
    if bits > n * (8 * width - 2):
        raise CorruptDataError(f"delta payload declares {bits} raw bits for {n} elements")
    streams = framed_streams(mv, 2, _HEAD.size)
    syms = decode_stream(next(streams), n, scratch("delta_syms", n))
    nraw = (bits + 7) // 8
    words = bits // 64 + 2  # the kernel reads the raw bits as words, one past the last
    raw = scratch("delta_raw", 8 * words)
    decode_stream(next(streams), nraw, raw[:nraw])
    raw[nraw:] = 0
    for _ in streams:  # runs the trailing-bytes check
        pass
    before = _elements(base, width)
    aligned = out.ctypes.data % width == 0
    dst = out if aligned else scratch("delta_out", out.size)
    status = kernels.delta_decode(before, syms, raw.view("<u8"), np.int64(bits),
                                  dst.view(_UINT[width]))
    if status:
        raise CorruptDataError(f"delta raw bits {DECODE_STATUS.get(status, 'are invalid')}")
    if not aligned:
        out[:] = dst
    return out
