"""Decoding kernels of the prefix codes: Quad Length Codes (ansz/qlc.py) and length-limited
Huffman (ansz/huffman.py), their tables read and checked. Their encoders (the code tables
built from counts and the bit writer) are rANS' module's, whose one-call stream coder
chooses between them and rANS.

Self-contained (package docstring): every helper these kernels call and every constant they
read is defined here.

Bit order: codes are written MSB-first into bytes (the first code's first bit is bit 7
of byte 0); the last byte is padded with zero bits. Code lengths are 1..16 bits.
Decoders look at a 64-bit big-endian window of the stream starting at bit `pos`: read
from byte pos >> 3 and shifted left by pos & 7, so it holds at least 57 valid bits. The
fast loops read 8 whole bytes and run only while pos >> 3 + 8 <= size; the careful tail
reads byte by byte with a bounds check (bytes past the end read as zero) and then checks
that the codes did not run past the end.
"""

from .. import _numba_env  # noqa: F401  (sets NUMBA_CACHE_DIR before numba loads)

import numpy as np
from numba import njit

# Decoder statuses (0 = ok), numbered as in the other kernel modules. Python wrappers turn
# them into errors.
DECODE_OK = 0
DECODE_TRUNCATED = 1
DECODE_TRAILING = 3
DECODE_BAD_CODE = 4  # a bit pattern that is no code of the table
DECODE_BAD_PADDING = 5  # padding bits (of a prefix-coded stream or a packed plane) are not zero


@njit(cache=True, nogil=True, inline="always")
def _peek64(buf, p):
    """Bytes buf[p : p + 8] as a big-endian uint64; the caller guarantees p + 8 <= size."""
    return ((np.uint64(buf[p]) << np.uint64(56)) | (np.uint64(buf[p + 1]) << np.uint64(48))
            | (np.uint64(buf[p + 2]) << np.uint64(40)) | (np.uint64(buf[p + 3]) << np.uint64(32))
            | (np.uint64(buf[p + 4]) << np.uint64(24)) | (np.uint64(buf[p + 5]) << np.uint64(16))
            | (np.uint64(buf[p + 6]) << np.uint64(8)) | np.uint64(buf[p + 7]))


@njit(cache=True, nogil=True, inline="always")
def _peek64_checked(buf, p):
    """_peek64 for the stream's tail: bytes at or past buf.size read as zero."""
    nb = np.uint64(buf.size)
    v = np.uint64(0)
    for k in range(8):
        q = p + np.uint64(k)
        b = np.uint64(buf[q]) if q < nb else np.uint64(0)
        v = (v << np.uint64(8)) | b
    return v


@njit(cache=True, nogil=True, inline="always")
def _prefix_end_status(buf, pos):
    """Status after decoding the last symbol at bit position pos (uint64)."""
    nb = np.uint64(buf.size)
    if pos > nb * np.uint64(8):
        return DECODE_TRUNCATED
    if (pos + np.uint64(7)) >> np.uint64(3) != nb:
        return DECODE_TRAILING
    r = pos & np.uint64(7)
    if r != np.uint64(0):
        pad = np.uint64(buf[nb - np.uint64(1)]) & ((np.uint64(1) << (np.uint64(8) - r)) - np.uint64(1))
        if pad != np.uint64(0):
            return DECODE_BAD_PADDING
    return DECODE_OK


@njit(cache=True, nogil=True)
def huffman_read_table(buf):
    """Parse the table ``HuffmanTable.to_bytes`` writes at the start of buf (first and last
    symbol, then the code lengths of first..last as nibbles, low nibble first, a zero pad
    nibble if their count is odd) and build huffman_decode's table, as
    ``HuffmanTable.decode_table`` does. Returns (status, bytes used, T, table): status 0 ok,
    1 truncated, 2 empty range, 3 nonzero pad nibble, 4 range not starting and ending at a
    coded symbol, 5 over-subscribed (Kraft sum > 1). Every read is checked; the fill stays
    within 2^T entries because the Kraft sum is checked first.
    """
    empty = np.zeros(1, np.uint16)
    n = buf.size
    if n < 2:
        return 1, 0, 0, empty
    first = np.int64(buf[0])
    last = np.int64(buf[1])
    if last < first:
        return 2, 0, 0, empty
    m = last - first + 1
    used = 2 + (m + 1) // 2
    if n < used:
        return 1, 0, 0, empty
    lengths = np.zeros(256, np.int64)
    for j in range(m):
        b = np.int64(buf[2 + j // 2])
        lengths[first + j] = (b >> 4) if j & 1 else (b & 15)
    if m % 2 and (np.int64(buf[used - 1]) >> 4):
        return 3, 0, 0, empty
    if lengths[first] == 0 or lengths[last] == 0:
        return 4, 0, 0, empty
    kraft = 0
    T = 0
    for s in range(256):
        L = lengths[s]
        if L > 0:
            kraft += 1 << (15 - L)
            T = max(T, L)
    if kraft > 1 << 15:
        return 5, 0, 0, empty
    table = np.zeros(1 << T, np.uint16)
    pos = 0
    for L in range(1, T + 1):  # canonical order: by length, then symbol
        span = 1 << (T - L)
        for s in range(256):
            if lengths[s] == L:
                v = np.uint16((L << 8) | s)
                for k in range(span):
                    table[pos + k] = v
                pos += span
    return 0, used, T, table


@njit(cache=True, nogil=True)
def huffman_decode(buf, table, table_log, out):
    """Decode out.size symbols from buf (uint8[::1]) with a canonical-code lookup table.

    table: uint16[2^table_log], entry = (length << 8) | symbol for the code that the top
    table_log bits of the window start with, length 0 where no code does. Built by
    huffman._decode_table from validated lengths, so 1 <= table_log <= 15, every length
    <= table_log and every index w >> (64 - table_log) < table.size. A group of
    57 // table_log symbols fits the 57 valid window bits, so one window serves a group.
    Invalid codes do not stop the fast loop (they consume no bits, which is harmless since
    the loop counts symbols); they are reported at the end.
    """
    n = out.size
    nb = np.uint64(buf.size)
    tl = np.uint64(table_log)
    sh = np.uint64(64) - tl
    per = 57 // table_log
    pos = np.uint64(0)
    bad = np.uint16(0)
    i = 0
    while i + per <= n and (pos >> np.uint64(3)) + np.uint64(8) <= nb:
        w = _peek64(buf, pos >> np.uint64(3)) << (pos & np.uint64(7))
        for k in range(per):
            e = table[w >> sh]
            ln = e >> np.uint16(8)
            out[i + k] = np.uint8(e & np.uint16(0xFF))
            bad |= np.uint16(ln == np.uint16(0))
            w <<= np.uint64(ln)
            pos += np.uint64(ln)
        i += per
    if bad != np.uint16(0):
        return DECODE_BAD_CODE
    while i < n:
        if pos >= nb * np.uint64(8):  # every code has >= 1 bit
            return DECODE_TRUNCATED
        w = _peek64_checked(buf, pos >> np.uint64(3)) << (pos & np.uint64(7))
        e = table[w >> sh]
        ln = e >> np.uint16(8)
        if ln == np.uint16(0):
            return DECODE_BAD_CODE
        out[i] = np.uint8(e & np.uint16(0xFF))
        pos += np.uint64(ln)
        i += 1
    return _prefix_end_status(buf, pos)


QLC_NAREAS = 8  # areas; a 3-bit prefix selects one (ansz/qlc.py)
QLC_MAX_AREA_BITS = 8  # suffix bits of an area: it holds up to 2^8 ranks
# Table statuses of qlc_read_table / qlc_build_tables (0 = ok); qlc.TABLE_STATUS holds
# their messages.
QLC_TABLE_TRUNCATED = 1
QLC_TABLE_BAD_AREA_BITS = 2  # an area has more than 8 bits (or there are not 8 areas)
QLC_TABLE_REPEATED_SYMBOL = 3
QLC_TABLE_TOO_SMALL = 4  # the areas hold fewer ranks than there are symbols


@njit(cache=True, nogil=True, inline="always")
def _qlc_tables(area_bits, symbols):
    """Validate a QLC table (area bits int64[8], symbols uint8[m] in rank order) and build
    qlc_decode's (lut uint32[256], order uint16[capacity]); returns (status, lut, order).

    Checks, in QlcTable's order: 8 areas of at most 8 bits, distinct symbols, capacity
    sum(2^b) >= m. capacity <= 8 * 256 = 2048 once the bits are checked, and the order
    fill runs over m <= capacity entries.
    """
    lut = np.zeros(256, np.uint32)
    if area_bits.size != QLC_NAREAS:
        return QLC_TABLE_BAD_AREA_BITS, lut, np.zeros(0, np.uint16)
    for k in range(QLC_NAREAS):
        if area_bits[k] < 0 or area_bits[k] > QLC_MAX_AREA_BITS:
            return QLC_TABLE_BAD_AREA_BITS, lut, np.zeros(0, np.uint16)
    m = symbols.size
    seen = np.zeros(256, np.bool_)
    for r in range(m):
        s = symbols[r]
        if seen[s]:
            return QLC_TABLE_REPEATED_SYMBOL, lut, np.zeros(0, np.uint16)
        seen[s] = True
    capacity = np.int64(0)
    for k in range(QLC_NAREAS):
        capacity += 1 << area_bits[k]
    if m > capacity:
        return QLC_TABLE_TOO_SMALL, lut, np.zeros(0, np.uint16)
    # lut entry (base << 12) | (mask << 4) | length for every 8-bit window whose top 3 bits
    # are area k: 32 entries per area.
    base = np.int64(0)
    for k in range(QLC_NAREAS):
        b = area_bits[k]
        e = np.uint32((base << 12) | (((1 << b) - 1) << 4) | (3 + b))
        for t in range(32):
            lut[32 * k + t] = e
        base += 1 << b
    order = np.empty(capacity, np.uint16)
    for r in range(m, capacity):
        order[r] = np.uint16(0xFFFF)
    for r in range(m):
        order[r] = np.uint16(symbols[r])
    return 0, lut, order


@njit(cache=True, nogil=True)
def qlc_build_tables(area_bits, symbols):
    """qlc_decode's tables for a QLC table given as area bits (int64[8]) and its symbols
    in rank order (uint8[m]), validated first; returns (status, lut, order) as
    qlc_read_table."""
    return _qlc_tables(area_bits, symbols)


@njit(cache=True, nogil=True)
def qlc_read_table(buf):
    """Parse the table ``QlcTable.to_bytes`` writes at the start of buf (4 bytes of area
    bits as nibbles, area 2k in the low nibble of byte k; 1 byte m - 1; m symbols), check it
    as QlcTable does and build qlc_decode's tables. Returns (status, bytes used, lut
    uint32[256], order uint16[capacity]): status 0 ok, QLC_TABLE_TRUNCATED (buf ends before
    the table does), QLC_TABLE_BAD_AREA_BITS (a nibble above 8), QLC_TABLE_REPEATED_SYMBOL,
    QLC_TABLE_TOO_SMALL (capacity below m). Reads stay below 5 + m <= buf.size.
    """
    size = buf.size
    if size < 5:
        return QLC_TABLE_TRUNCATED, 0, np.zeros(256, np.uint32), np.zeros(0, np.uint16)
    m = np.int64(buf[4]) + 1
    if size < 5 + m:
        return QLC_TABLE_TRUNCATED, 0, np.zeros(256, np.uint32), np.zeros(0, np.uint16)
    area_bits = np.empty(QLC_NAREAS, np.int64)
    for k in range(QLC_NAREAS):
        area_bits[k] = (np.int64(buf[k >> 1]) >> (4 * (k & 1))) & 15
    status, lut, order = _qlc_tables(area_bits, buf[5:5 + m])
    return status, (5 + m) if status == 0 else 0, lut, order


@njit(cache=True, nogil=True)
def qlc_decode(buf, lut, order, out):
    """Decode out.size QLC symbols from buf (uint8[::1]).

    lut: uint32[256] indexed by the top 8 bits of the window; entry = (base << 12) |
    (mask << 4) | length for the area its top 3 bits select: length = 3 + b, mask = 2^b - 1,
    base = first rank of the area. order: uint16[sum of area capacities], the symbol of each
    rank, 0xFFFF for ranks no symbol has. Built by _qlc_tables (qlc_read_table,
    qlc_build_tables) from validated area bits (b <= 8), so base + mask < order.size and lengths are 3..11: a group of 5 symbols
    (<= 55 bits) fits one window. Unused ranks are ORed into `bad` and reported at the end.
    """
    n = out.size
    nb = np.uint64(buf.size)
    pos = np.uint64(0)
    bad = np.uint32(0)
    per = 5
    i = 0
    while i + per <= n and (pos >> np.uint64(3)) + np.uint64(8) <= nb:
        w = _peek64(buf, pos >> np.uint64(3)) << (pos & np.uint64(7))
        for k in range(per):
            e = np.uint64(lut[w >> np.uint64(56)])
            ln = e & np.uint64(15)
            s = np.uint32(order[(e >> np.uint64(12)) + ((w >> (np.uint64(64) - ln)) & ((e >> np.uint64(4)) & np.uint64(0xFF)))])
            bad |= s
            out[i + k] = np.uint8(s & np.uint32(0xFF))
            w <<= ln
            pos += ln
        i += per
    if bad > np.uint32(0xFF):
        return DECODE_BAD_CODE
    while i < n:
        if pos >= nb * np.uint64(8):
            return DECODE_TRUNCATED
        w = _peek64_checked(buf, pos >> np.uint64(3)) << (pos & np.uint64(7))
        e = np.uint64(lut[w >> np.uint64(56)])
        ln = e & np.uint64(15)
        s = np.uint32(order[(e >> np.uint64(12)) + ((w >> (np.uint64(64) - ln)) & ((e >> np.uint64(4)) & np.uint64(0xFF)))])
        if s > np.uint32(0xFF):
            return DECODE_BAD_CODE
        out[i] = np.uint8(s)
        pos += ln
        i += 1
    return _prefix_end_status(buf, pos)
