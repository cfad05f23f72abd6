"""Comparator coders side by side: predicted sizes, and the plumbing the prefix coders share.

:func:`coder_costs` predicts, for one histogram of uint8 codes, the size in bits of each
coder ansz has: the order-0 entropy bound, rANS (as :mod:`ansz.codec` would write it),
length-limited Huffman (:mod:`ansz.huffman`) and Quad Length Codes (:mod:`ansz.qlc`). It is
what ``ansz stats`` shows per tensor.

The prefix coders (Huffman, QLC) share one bit writer, ``_kernels.prefix_encode``: codes
MSB-first, the last byte zero-padded. Their streams (methods :data:`HUFFMAN` and :data:`QLC`
of docs/FORMAT.md, "Stream") are a method byte, the serialized table and those bytes; the
symbol count is known to the caller, as for every ansz stream. :func:`encode_prefix_stream`
and :func:`decode_prefix_stream` write and read them; :mod:`ansz.codec` decides when.
"""

from __future__ import annotations

import numpy as np

from . import _kernels
from .errors import CorruptDataError

__all__ = ["coder_costs", "entropy_bits", "HUFFMAN", "QLC", "PREFIX_CODERS", "prefix_table",
           "prefix_stream_size", "encode_prefix_stream", "decode_prefix_stream"]

#: Stream methods of the prefix coders (docs/FORMAT.md, "Stream"); codec.py re-exports them.
HUFFMAN = 4
QLC = 5
PREFIX_CODERS = ("huffman", "qlc")


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
    nbits = int(_kernels.prefix_encode(symbols, code, length, out))
    if nbits < 0:
        raise ValueError("a symbol has no code in this table")
    return out[:(nbits + 7) // 8], nbits


_STATUS = {
    _kernels.DECODE_TRUNCATED: "is truncated",
    _kernels.DECODE_TRAILING: "has trailing bytes",
    _kernels.DECODE_BAD_CODE: "holds an invalid code",
    _kernels.DECODE_BAD_PADDING: "has nonzero padding bits",
}


def output_array(out: np.ndarray | None, n: int) -> np.ndarray:
    """``out`` checked to be a contiguous uint8 array of ``n`` entries, or a new one."""
    if out is None:
        return np.empty(n, np.uint8)
    if out.size != n or out.dtype != np.uint8 or not out.flags.c_contiguous:
        raise ValueError("out must be a contiguous uint8 array of n entries")
    return out


def check_status(status: int, what: str) -> None:
    """Raise CorruptDataError for a nonzero decoder status."""
    if status != _kernels.DECODE_OK:
        raise CorruptDataError(f"{what} stream {_STATUS.get(status, f'failed ({status})')}")


def as_stream_buffer(buf) -> np.ndarray:
    """A C-contiguous, writable-or-not uint8 view of a bytes-like or array (no copy if possible).

    Kernels take read-only and writable arrays as different types; normalize to one (a
    read-only view is what np.frombuffer gives for bytes, so use that for both).
    """
    if isinstance(buf, np.ndarray):
        buf = np.ascontiguousarray(buf, dtype=np.uint8)
        buf = buf.view()
        buf.flags.writeable = False
        return buf
    return np.frombuffer(memoryview(buf).cast("B"), np.uint8)


def entropy_bits(counts: np.ndarray) -> float:
    """Order-0 entropy of the counts times their total, in bits (no table)."""
    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum())
    if total == 0:
        return 0.0
    p = counts[counts > 0] / total
    return float(-(p * np.log2(p)).sum() * total)


def coder_costs(counts) -> dict[str, float]:
    """Predicted size in bits of coding a stream with this histogram (int64[256]), per coder.

    * ``entropy``: the order-0 bound, sum(c * log2(N / c)); no table.
    * ``rans``: what :func:`ansz.codec.encode_stream` would write for the RANS method:
      method/scale/first/last bytes, varint frequencies for first..last, 8 final states
      (32 bytes) and the cross-entropy of the counts under the table
      :func:`ansz.codec.rans_plan` picks (12 or 14 bits). (A one-symbol stream is CONSTANT,
      2 bytes; the same 16 bits are given.)
    * ``huffman``: 1 method byte + serialized table (``HuffmanTable.to_bytes``) + the payload
      bits rounded up to bytes, with lengths limited to ``huffman.DEFAULT_LIMIT``.
    * ``qlc``: 1 method byte + serialized table (``QlcTable.to_bytes``) + payload bytes.

    Empty input costs 0 everywhere. Sizes never include the 4-byte chunk framing.
    """
    from . import huffman, qlc

    counts = np.ascontiguousarray(counts, dtype=np.int64)
    if counts.shape != (256,) or (counts < 0).any():
        raise ValueError("counts must be 256 non-negative integers")
    present = np.flatnonzero(counts)
    if present.size == 0:
        return {"entropy": 0.0, "rans": 0.0, "huffman": 0.0, "qlc": 0.0}
    out = {"entropy": entropy_bits(counts)}
    if present.size == 1:
        out["rans"] = 16.0
    else:
        from .codec import rans_plan, varint_table

        _, freq, words_bytes = rans_plan(counts)
        table = 4 + len(varint_table(freq[present[0]:present[-1] + 1]))
        out["rans"] = 8.0 * (table + words_bytes)
    for coder in PREFIX_CODERS:
        out[coder] = 8.0 * prefix_stream_size(counts, prefix_table(counts, coder))
    return out


# ---------------------------------------------------------------------------------------------
# Prefix-coded streams (methods HUFFMAN and QLC)


def prefix_table(counts, coder: str):
    """The table ``coder`` ("huffman" or "qlc") builds for a histogram (int64[256]).

    Huffman lengths are limited to ``huffman.DEFAULT_LIMIT`` (11) bits; QLC areas are the
    optimal ones. Needs at least one present symbol.
    """
    from . import huffman, qlc

    if coder == "huffman":
        return huffman.HuffmanTable.from_counts(counts)
    if coder == "qlc":
        return qlc.QlcTable.from_counts(counts)
    raise ValueError(f"unknown prefix coder {coder!r}")


def prefix_stream_size(counts, table) -> int:
    """Exact bytes :func:`encode_prefix_stream` writes for symbols with these counts."""
    from . import huffman, qlc

    if isinstance(table, huffman.HuffmanTable):
        bits = huffman.expected_bits(counts, table.lengths)
    else:
        bits = qlc.expected_bits(counts, table.area_bits)
    return 1 + len(table.to_bytes()) + (bits + 7) // 8


def encode_prefix_stream(symbols: np.ndarray, table) -> bytes:
    """A HUFFMAN or QLC stream (by the table's type): method byte, table, code bytes.

    Every symbol must have a code in the table (ValueError otherwise).
    """
    from . import huffman, qlc

    if isinstance(table, huffman.HuffmanTable):
        method, (data, _) = HUFFMAN, huffman.encode(symbols, table)
    elif isinstance(table, qlc.QlcTable):
        method, (data, _) = QLC, qlc.encode(symbols, table)
    else:
        raise TypeError("table must be a HuffmanTable or a QlcTable")
    return b"".join((bytes([method]), table.to_bytes(), data.data))


_TABLE_STATUS = {1: "is truncated", 2: "symbol range is empty", 3: "has a nonzero pad nibble",
                 4: "range does not start and end at symbols",
                 5: "is over-subscribed (Kraft sum > 1)"}


_QLC_TABLE_STATUS = {
    _kernels.QLC_TABLE_TRUNCATED: "QLC table is truncated",
    _kernels.QLC_TABLE_BAD_AREA_BITS: "QLC table: area bits must be 8 integers in 0..8",
    _kernels.QLC_TABLE_REPEATED_SYMBOL: "QLC table: symbols must be distinct",
    _kernels.QLC_TABLE_TOO_SMALL: "QLC table: areas hold fewer symbols than listed",
}

#: Longest QLC codeword: 3 prefix bits + 8 suffix bits.
_QLC_MAX_CODE_BITS = 11


def decode_prefix_stream(blob, count: int, out: np.ndarray | None = None) -> np.ndarray:
    """Decode a HUFFMAN or QLC stream (method byte included) into ``count`` uint8 symbols.

    The table is parsed and validated first (Huffman: lengths <= 15, Kraft sum <= 1, range
    starting and ending at coded symbols, zero pad nibble; QLC: area bits <= 8, distinct
    symbols that fit the areas); then the code bytes must hold exactly ``count`` valid codes
    and end in zero padding bits, with no byte after the last code. Any failure raises
    CorruptDataError. ``out``, if given, is a contiguous uint8 array of ``count`` entries.
    """
    mv = memoryview(blob).cast("B")
    if len(mv) == 0:
        raise CorruptDataError("empty stream")
    method = mv[0]
    if method == HUFFMAN:  # table parsed and built in one kernel: small streams are common
        buf = np.frombuffer(mv, np.uint8, len(mv) - 1, 1)
        buf.flags.writeable = False  # one kernel type whatever the buffer's owner
        status, used, T, table = _kernels.huffman_read_table(buf)
        if status:
            raise CorruptDataError(f"Huffman table {_TABLE_STATUS[status]}")
        data = buf[used:]
        if data.size > count * T // 8 + 1:
            raise CorruptDataError("Huffman stream is longer than n codes can be")
        out = output_array(out, count)
        check_status(_kernels.huffman_decode(data, table, np.int64(T), out), "Huffman")
        return out
    if method != QLC:
        raise CorruptDataError(f"stream method {method} is not a prefix code")
    buf = np.frombuffer(mv, np.uint8, len(mv) - 1, 1)
    buf.flags.writeable = False  # one kernel type whatever the buffer's owner
    status, used, lut, order = _kernels.qlc_read_table(buf)  # as for HUFFMAN, one kernel
    if status:
        raise CorruptDataError(_QLC_TABLE_STATUS[status])
    data = buf[used:]
    if data.size > count * _QLC_MAX_CODE_BITS // 8 + 1:
        raise CorruptDataError("QLC stream is longer than n codes can be")
    out = output_array(out, count)
    check_status(_kernels.qlc_decode(data, lut, order, out), "QLC")
    return out
