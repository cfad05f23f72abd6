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


@njit(cache=True, nogil=True, inline="always")
def _unkey(k, ones, sign):
    """Inverse of _key."""
    return k ^ (sign if k & sign else ones)


@njit(cache=True, nogil=True)
def delta_encode(target, base, syms, raw):
    """Symbols and packed raw bits of ``target`` against ``base`` (unsigned arrays of one
    width, n elements each): ``syms`` (uint8, at least n) gets one symbol per element,
    ``raw`` (uint8, at least ``ceil(n * (W - 2) / 8)`` bytes) the raw bits. Returns the
    number of raw bytes written, or -1 if the sizes disagree (nothing is written then)."""
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
        length = np.uint64(64)
        while not (a >> (length - one)) & one:
            length -= one
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
        nbytes += 1
    return nbytes


@njit(cache=True, nogil=True)
def delta_raw_bits(syms, width):
    """The number of raw bits the symbols of W-bit elements (``width`` = W) call for, or -1
    if a symbol is none that :func:`delta_encode` writes for that width."""
    neg_offset = 2 * width + 2
    total = 0
    for i in range(syms.size):
        s = np.int64(syms[i])
        if s == 0:
            continue
        m = s - neg_offset if s >= neg_offset else s
        if m < 2 or m == 3 or m > 2 * width + 1:
            return -1
        length = m >> 1
        if length >= 2:
            total += length - 2
    return total


@njit(cache=True, nogil=True)
def delta_decode(base, syms, raw, out):
    """Rebuild the target elements: ``out[i] = unkey(key(base[i]) +- a_i)`` from the symbols
    (n uint8) and the packed raw bits (``raw``, exactly the bytes they take). ``base`` and
    ``out`` are unsigned arrays of one width, n elements each. Returns DECODE_OK, or
    DECODE_BAD_CODE (an invalid symbol), DECODE_TRUNCATED (``raw`` too short),
    DECODE_TRAILING (too long), DECODE_BAD_PADDING (nonzero bits after the last raw bit),
    DECODE_BAD_SIZE (sizes disagree). ``out`` holds garbage after an error."""
    n = out.size
    width = out.itemsize * 8
    if base.size != n or syms.size != n:
        return DECODE_BAD_SIZE
    ones, sign, neg_offset = _masks(width)
    one = np.uint64(1)
    limit = np.uint64(2 * width + 1)
    nraw_bytes = raw.size
    buf = np.uint64(0)
    nbuf = np.uint64(0)
    rp = 0
    for i in range(n):
        s = np.uint64(syms[i])
        v = np.uint64(base[i])
        if s == 0:
            out[i] = base[i]
            continue
        neg = s >= neg_offset
        m = s - neg_offset if neg else s
        if m < 2 or m == 3 or m > limit:
            return DECODE_BAD_CODE
        length = m >> one
        if length >= 2:
            nraw = length - np.uint64(2)
            top = np.uint64(2) | (m & one)
        else:
            nraw = np.uint64(0)
            top = one
        if nbuf < nraw:
            if rp + 4 <= nraw_bytes:  # nbuf < 30 here: 32 more bits fit the buffer
                buf |= (np.uint64(raw[rp]) | (np.uint64(raw[rp + 1]) << np.uint64(8))
                        | (np.uint64(raw[rp + 2]) << np.uint64(16))
                        | (np.uint64(raw[rp + 3]) << np.uint64(24))) << nbuf
                rp += 4
                nbuf += np.uint64(32)
            else:
                while nbuf < nraw and rp < nraw_bytes:  # rp < nraw_bytes: in bounds
                    buf |= np.uint64(raw[rp]) << nbuf
                    rp += 1
                    nbuf += np.uint64(8)
                if nbuf < nraw:
                    return DECODE_TRUNCATED
        a = (top << nraw) | (buf & ((one << nraw) - one))
        buf >>= nraw
        nbuf -= nraw
        k = _key(v, ones, sign)
        k = (k - a) & ones if neg else (k + a) & ones
        out[i] = _unkey(k, ones, sign)
    if rp != nraw_bytes or nbuf >= 8:
        return DECODE_TRAILING
    if buf:
        return DECODE_BAD_PADDING
    return DECODE_OK
