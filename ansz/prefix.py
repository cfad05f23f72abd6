"""The bit writer that Huffman and QLC share, and what their decoders' status codes mean.

Prefix codes are written MSB-first, the last byte zero-padded (the order the decoders of
``ansz._kernels.prefix`` read); :func:`encode_prefix` writes symbols with any table of codes
and lengths (the kernel ``prefix_encode``, beside the one-call stream coder that also
writes them).
"""

from __future__ import annotations

import numpy as np

from . import kernels


def encode_prefix(symbols: np.ndarray, code: np.ndarray, length: np.ndarray) -> tuple[np.ndarray, int]:
    """Write symbols with a prefix code; returns (uint8 bytes, bit count).

    ``code`` uint32[256] and ``length`` uint8[256] (1..16 for coded symbols, 0 for none).
    Raises ValueError if a symbol has no code.
    """
    symbols = np.ascontiguousarray(symbols, dtype=np.uint8)
    code = np.ascontiguousarray(code, dtype=np.uint32)
    length = np.ascontiguousarray(length, dtype=np.uint8)
    maxlen = int(length.max())
    if maxlen > 16 or (code >= (np.uint64(1) << length.astype(np.uint64))).any():
        raise ValueError("prefix code table is invalid")
    out = np.zeros((symbols.size * maxlen + 7) // 8 + 4, np.uint8)
    nbits = int(kernels.prefix_encode(symbols, code, length, out))
    if nbits < 0:
        raise ValueError("a symbol has no code in this table")
    return out[:(nbits + 7) // 8], nbits


#: Nonzero status of the prefix decoding kernels -> what is wrong with the stream.
DECODE_STATUS = {
    kernels.DECODE_TRUNCATED: "is truncated",
    kernels.DECODE_TRAILING: "has trailing bytes",
    kernels.DECODE_BAD_CODE: "holds an invalid code",
    kernels.DECODE_BAD_PADDING: "has nonzero padding bits",
}
