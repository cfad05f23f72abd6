"""Kernels of delta chunks: a float tensor's chunk coded against the same elements of a base
tensor (docs/FORMAT.md, "Delta chunk payload").

Self-contained (package docstring): every helper these kernels call and every constant they
read is defined here.

For W-bit elements (W = 8, 16 or 32: the array's item size), ``key(x) = x ^ (all ones if
x's sign bit is set, else the sign bit)`` maps float bits to integers in the floats' order;
``d = key(u) - key(v) mod 2^W``, read as a signed W-bit integer, is the change from the base
element v to the target element u in units in the last place. Its symbol is 0 for d = 0,
else ``2L + b`` (plus ``2W + 2`` if d < 0) with ``a = |d|``, ``L = bitlen(a)`` and ``b`` the
bit of ``a`` below its leading one (0 if L = 1); the ``max(L - 2, 0)`` low bits of ``a``
are the raw bits, packed LSB first in element order into one bit string.
"""

from .. import _numba_env  # noqa: F401  (sets NUMBA_CACHE_DIR before numba loads)

import numpy as np
from numba import njit

# Decoder statuses (0 = ok), numbered as in the other kernel modules.
DECODE_OK = 0
DECODE_TRUNCATED = 1
DECODE_TRAILING = 3
DECODE_BAD_CODE = 4  # a symbol no difference has
DECODE_BAD_PADDING = 5  # padding bits (of a prefix-coded stream or a packed plane) are not zero
DECODE_BAD_SIZE = 6  # arrays of disagreeing sizes (a caller's bug, never a file's)


@njit(cache=True, nogil=True, inline="always")
def _masks(width):
    """(all ones, sign bit, 2W + 2) for W-bit elements, as uint64."""
    w = np.uint64(width)
    ones = (np.uint64(1) << w) - np.uint64(1) if width < 64 else ~np.uint64(0)
    return ones, np.uint64(1) << (w - np.uint64(1)), np.uint64(2 * width + 2)


@njit(cache=True, nogil=True, inline="always")
def _key(x, ones, sign):
    """The order-preserving integer of float bits x."""
    return x ^ (ones if x & sign else sign)


def _bit_lengths():
    """uint64[256]: the bit length of each byte value."""
    out = np.zeros(256, np.uint64)
    for v in range(1, 256):
        out[v] = v.bit_length()
    return out


_BIT_LENGTH_8 = _bit_lengths()


@njit(cache=True, nogil=True, inline="always")
def _bit_length(a):
    """The bit length of a (uint64, below 2^32)."""
    high = a >> np.uint64(16)
    length = np.uint64(16) if high else np.uint64(0)
    t = high if high else a
    high = t >> np.uint64(8)
    length += np.uint64(8) if high else np.uint64(0)
    t = high if high else t
    return length + _BIT_LENGTH_8[t]


@njit(cache=True, nogil=True)
def delta_encode(target, base, syms, raw):
    """Symbols and packed raw bits of ``target`` against ``base`` (unsigned arrays of one
    width, n elements each): ``syms`` (uint8, at least n) gets one symbol per element,
    ``raw`` (uint8, at least ``ceil(n * (W - 2) / 8)`` bytes) the raw bits (their last byte
    padded with zero bits). Returns the number of raw bits, or -1 if the sizes disagree
    (nothing is written then)."""
    n = target.size
    width = target.itemsize * 8
    if base.size != n or syms.size < n or raw.size < (n * (width - 2) + 7) // 8:
        return -1
    ones, sign, neg_offset = _masks(width)
    one = np.uint64(1)
    acc = np.uint64(0)
    nacc = np.uint64(0)
    nbytes = 0
    for i in range(n):  # raw's size is checked above: at most W - 2 bits per element
        d = (_key(np.uint64(target[i]), ones, sign) - _key(np.uint64(base[i]), ones, sign)) & ones
        if d == 0:
            syms[i] = 0
            continue
        neg = d & sign
        a = ((~d) + one) & ones if neg else d
        if a == 0:  # d = -2^(W-1), whose magnitude is the sign bit
            a = sign
        length = _bit_length(a)
        if length >= 2:
            nraw = length - np.uint64(2)
            s = np.uint64(2) * length + ((a >> nraw) & one)
        else:
            nraw = np.uint64(0)
            s = np.uint64(2)
        syms[i] = np.uint8(s + (neg_offset if neg else np.uint64(0)))
        if nraw:
            acc |= (a & ((one << nraw) - one)) << nacc
            nacc += nraw
            while nacc >= 8:
                raw[nbytes] = np.uint8(acc & np.uint64(0xFF))
                nbytes += 1
                acc >>= np.uint64(8)
                nacc -= np.uint64(8)
    if nacc:
        raw[nbytes] = np.uint8(acc & np.uint64(0xFF))
    return np.int64(nbytes) * 8 + np.int64(nacc)


def _symbol_table(width):
    """What each symbol of W-bit differences means, packed in a uint64: raw bit count (bits
    0-7), the bits of |d| above them (8-9), negative (16), invalid (17)."""
    table = np.full(256, 1 << 17, np.uint64)
    table[0] = 0
    for s in range(1, 256):
        neg = s >= 2 * width + 2
        m = s - (2 * width + 2) if neg else s
        if m < 2 or m == 3 or m > 2 * width + 1:
            continue
        length = m >> 1
        code = ((length - 2) | ((2 | (m & 1)) << 8)) if length >= 2 else (1 << 8)
        table[s] = code | (1 << 16 if neg else 0)
    return table


# Global arrays are constants to numba: the decoding loop reads them as such.
_SYMBOLS_8 = _symbol_table(8)
_SYMBOLS_16 = _symbol_table(16)
_SYMBOLS_32 = _symbol_table(32)


@njit(cache=True, nogil=True)
def delta_decode(base, syms, raw, raw_bits, out):
    """Rebuild the target elements: ``out[i] = unkey(key(base[i]) +- a_i)`` from the symbols
    (n uint8) and the packed raw bits: ``raw_bits`` bits in ``raw`` (uint64 words of the
    raw stream read little-endian, bit k in word k >> 6), at least ``raw_bits // 64 + 2``
    words, every bit after the stream's bytes zero (a word past the last is read ahead).
    ``base`` and ``out`` are unsigned arrays of one width, n elements each. Returns
    DECODE_OK, or DECODE_BAD_CODE (a symbol no difference has), DECODE_TRUNCATED (the
    symbols call for more raw bits than there are), DECODE_TRAILING (for fewer),
    DECODE_BAD_PADDING (nonzero bits after the last raw bit), DECODE_BAD_SIZE (sizes
    disagree). ``out`` holds garbage after an error."""
    n = out.size
    width = out.itemsize * 8
    if base.size != n or syms.size != n or raw_bits < 0 or raw.size < raw_bits // 64 + 2:
        return DECODE_BAD_SIZE
    # the element loop, compiled once per width with its masks as constants
    if width == 8:
        return _rebuild(base, syms, raw, raw_bits, out, _SYMBOLS_8, np.uint64(0xFF),
                        np.uint64(0x80), np.uint64(7))
    if width == 16:
        return _rebuild(base, syms, raw, raw_bits, out, _SYMBOLS_16, np.uint64(0xFFFF),
                        np.uint64(0x8000), np.uint64(15))
    return _rebuild(base, syms, raw, raw_bits, out, _SYMBOLS_32, np.uint64(0xFFFFFFFF),
                    np.uint64(0x80000000), np.uint64(31))


@njit(cache=True, nogil=True, inline="always")
def _rebuild(base, syms, raw, raw_bits, out, code_of, ones, sign, shift):
    """delta_decode's loop (sizes checked there); ``code_of``: the width's symbol table
    (:func:`_symbol_table`), ``ones``, ``sign``: its masks, ``shift``: its sign bit."""
    one = np.uint64(1)
    last = np.uint64(raw.size - 2)
    pos = np.int64(0)  # the next raw bit
    bad = np.uint64(0)
    for i in range(out.size):
        s = syms[i]
        if s == 0:  # unchanged: most elements of a bf16 fine-tune
            out[i] = base[i]
            continue
        code = code_of[s]
        bad |= code
        nraw = code & np.uint64(0xFF)
        at = pos
        pos += np.int64(nraw)
        # words q and q + 1 lie in raw: q is clamped (which only a position past raw_bits,
        # an error reported after the loop, needs); unsigned: no wraparound code
        q = min(np.uint64(at >> 6), last)
        r = np.uint64(at & 63)
        word = (raw[q] >> r) | ((raw[q + one] << one) << (np.uint64(63) - r))
        a = (((code >> np.uint64(8)) & np.uint64(3)) << nraw) | (word & ((one << nraw) - one))
        x = np.uint64(base[i])
        k = x ^ (((np.uint64(0) - (x >> shift)) & ones) | sign)  # key(x)
        neg = np.uint64(0) - ((code >> np.uint64(16)) & one)
        k = (k + ((a ^ neg) + (neg & one))) & ones  # k + a, or k - a
        out[i] = k ^ ((((k >> shift) - one) & ones) | sign)  # unkey(k)
    bad >>= np.uint64(17)
    if bad:
        return DECODE_BAD_CODE
    if pos > raw_bits:
        return DECODE_TRUNCATED
    if pos < raw_bits:
        return DECODE_TRAILING
    if raw[raw_bits >> 6] >> np.uint64(raw_bits & 63):  # bits after the last raw bit
        return DECODE_BAD_PADDING
    return DECODE_OK
