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
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

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
    disagree, or ``raw`` holds MAX_RAW_WORDS words or more). ``out`` holds garbage after an
    error."""
    n = out.size
    width = out.itemsize * 8
    if (base.size != n or syms.size != n or raw_bits < 0 or raw.size < raw_bits // 64 + 2
            or raw.size >= MAX_RAW_WORDS):
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


#: Elements per block of _rebuild: its per-element scratch (16 bytes each) stays in L1.
REBUILD_BLOCK = 1024
#: _rebuild_lanes gathers at 31-bit byte offsets for elements of up to 16 bits, so raw
#: stays below 2 GiB (a chunk's raw bits take a few hundred MB at most: 64 Mi elements of
#: 32 bits have at most 30 each).
MAX_RAW_WORDS = 1 << 28
#: The elements of a block the vector code takes: a multiple of REBUILD_LANES, which the
#: lanes of both intrinsics divide (_code_positions steps 8 uint64, _rebuild_lanes 16 uint32
#: for elements of up to 16 bits, 8 uint64 for 32-bit ones); the rest go one by one.
REBUILD_LANES = 16
POSITION_LANES = 8


def _declare(module, name, fnty):
    fn = module.globals.get(name)
    return fn if fn is not None else ir.Function(module, fnty, name=name)


def _splat(builder, vector_type, value):
    """``value`` (a scalar of the element type) in every lane of a ``vector_type``."""
    i32 = ir.IntType(32)
    u = builder.insert_element(ir.Constant(vector_type, ir.Undefined), value, ir.Constant(i32, 0))
    return builder.shuffle_vector(u, ir.Constant(vector_type, ir.Undefined),
                                  ir.Constant(ir.VectorType(i32, vector_type.count),
                                              [0] * vector_type.count))


@intrinsic
def _rebuild_lanes(typingctx, base, out, codes, at, raw, start, count, limit):
    """An intrinsic: elements ``start + j`` for j in [0, count) (count a multiple of
    REBUILD_LANES) rebuilt a vector at a time, as _rebuild's scalar tail rebuilds one:
    ``codes[j]`` (the symbol's code) and ``at[j]`` (its first raw bit; one past ``limit`` =
    64 * (raw.size - 2) + 63 is read at ``limit``) from _rebuild's first pass, and the raw
    bytes from the byte that holds that bit, gathered. ``base`` and ``out`` are unsigned
    arrays of one width W (8, 16 or 32 bits); ``codes``, ``at``, ``raw`` uint64. For W <= 16
    the lanes are 16 of 32 bits, each gathering 4 bytes (with the bit's place in its byte
    shifted out, at least 25 bits, and such an element has at most 14); for W = 32, 8 of 64
    bits gathering 8 bytes (at least 57 bits, for at most 30). The caller guarantees
    ``start + count <= out.size == base.size`` and ``count <= codes.size, at.size``; with
    ``limit`` as above every gathered byte lies in ``raw``. LLVM's cost model keeps its
    loop vectorizer from gathers on recent x86 cores, so the vector code is written out:
    masked gathers and per-lane shifts."""
    sig = types.void(base, out, codes, at, raw, start, count, limit)
    width = base.dtype.bitwidth
    lanes = 16 if width <= 16 else 8

    def codegen(context, builder, signature, args):
        arrays = [context.make_array(t)(context, builder, v)
                  for t, v in zip(signature.args[:5], args[:5])]
        bp, op, cp, ap, rp = (arr.data for arr in arrays)
        start_v, count_v, limit_v = args[5:]
        i1, i8, i32, i64 = ir.IntType(1), ir.IntType(8), ir.IntType(32), ir.IntType(64)
        it = i32 if lanes == 16 else i64  # the lanes' integer type
        iw = ir.IntType(width)
        v64, vt, vw = (ir.VectorType(t, lanes) for t in (i64, it, iw))
        vp = ir.VectorType(ir.PointerType(it), lanes)

        def const(c):
            return ir.Constant(vt, [c] * lanes)

        gather = _declare(builder.module, f"llvm.masked.gather.v{lanes}i{it.width}.v{lanes}p0",
                          ir.FunctionType(vt, [vp, i32, ir.VectorType(i1, lanes), vt]))
        all_lanes = ir.Constant(ir.VectorType(i1, lanes), [1] * lanes)

        def words_at(byte_index):  # a word of the lane type at byte offsets of raw
            i8p = builder.bitcast(rp, ir.PointerType(i8))
            gep = ir.instructions.GEPInstr(builder.block, i8p, [byte_index], inbounds=True,
                                           name="", source_etype=i8)
            gep.type = ir.VectorType(i8p.type, lanes)  # llvmlite: typed by the base
            builder._insert(gep)
            return builder.call(gather, [builder.bitcast(gep, vp), ir.Constant(i32, 1),
                                         all_lanes, const(0)])

        def narrow(x):  # a <lanes x i64> as the lane type
            return x if it is i64 else builder.trunc(x, vt)

        ones, sign = (1 << width) - 1, 1 << (width - 1)
        shift = width - 1
        entry = builder.basic_block
        head = builder.append_basic_block("lanes.head")
        body = builder.append_basic_block("lanes.body")
        done = builder.append_basic_block("lanes.done")
        builder.branch(head)
        builder.position_at_end(head)
        j = builder.phi(i64)
        j.add_incoming(ir.Constant(i64, 0), entry)
        builder.cbranch(builder.icmp_signed("<", j, count_v), body, done)
        builder.position_at_end(body)

        def load(ptr, index, t):
            at_ptr = builder.bitcast(builder.gep(ptr, [index]), ir.PointerType(t))
            return builder.load(at_ptr, align=1)

        code = narrow(load(cp, j, v64))
        p = load(ap, j, v64)
        lim = _splat(builder, v64, limit_v)
        p = builder.select(builder.icmp_unsigned("<", p, lim), p, lim)  # min(p, limit)
        byte = builder.lshr(p, ir.Constant(v64, [3] * lanes))
        word = builder.lshr(words_at(byte if it is i64 else builder.trunc(byte, vt)),
                            narrow(builder.and_(p, ir.Constant(v64, [7] * lanes))))
        nraw = builder.and_(code, const(0xFF))
        top = builder.and_(builder.lshr(code, const(8)), const(3))
        low = builder.and_(word, builder.sub(builder.shl(const(1), nraw), const(1)))
        a = builder.or_(builder.shl(top, nraw), low)
        i = builder.add(start_v, j)
        x = builder.zext(load(bp, i, vw), vt)
        flip = builder.or_(builder.and_(builder.sub(const(0), builder.lshr(x, const(shift))),
                                        const(ones)), const(sign))
        k = builder.xor(x, flip)  # key(x)
        neg = builder.sub(const(0), builder.and_(builder.lshr(code, const(16)), const(1)))
        delta = builder.add(builder.xor(a, neg), builder.and_(neg, const(1)))
        k = builder.and_(builder.add(k, delta), const(ones))  # k + a, or k - a
        back = builder.or_(builder.and_(builder.sub(builder.lshr(k, const(shift)), const(1)),
                                        const(ones)), const(sign))
        res = builder.trunc(builder.xor(k, back), vw)  # unkey(k)
        builder.store(res, builder.bitcast(builder.gep(op, [i]), ir.PointerType(vw)), align=1)
        j.add_incoming(builder.add(j, ir.Constant(i64, lanes)), builder.basic_block)
        builder.branch(head)
        builder.position_at_end(done)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def _code_positions(typingctx, syms, code_of, codes, at, start, count, pos):
    """An intrinsic: _rebuild's first pass for elements ``start + j``, j in [0, count)
    (count a multiple of POSITION_LANES), 8 at a time: ``codes[j] = code_of[syms[start +
    j]]`` (a gather from the 256-entry table) and ``at[j]`` = ``pos`` + the raw bits of the
    elements before it (a prefix sum inside the vector, in three shifted adds, plus the
    running total); returns the position after the last. ``syms`` uint8, ``code_of``,
    ``codes``, ``at`` uint64; the caller guarantees ``start + count <= syms.size`` and
    ``count <= codes.size, at.size``, and ``code_of`` has 256 entries."""
    sig = types.int64(syms, code_of, codes, at, start, count, pos)

    def codegen(context, builder, signature, args):
        arrays = [context.make_array(t)(context, builder, v)
                  for t, v in zip(signature.args[:4], args[:4])]
        sp, tp, cp, ap = (arr.data for arr in arrays)
        start_v, count_v, pos_v = args[4:]
        i1, i8, i32, i64 = ir.IntType(1), ir.IntType(8), ir.IntType(32), ir.IntType(64)
        lanes = POSITION_LANES
        v64, v8, vp = (ir.VectorType(t, lanes) for t in (i64, i8, ir.PointerType(i64)))
        zero = ir.Constant(v64, [0] * lanes)
        gather = _declare(builder.module, "llvm.masked.gather.v8i64.v8p0",
                          ir.FunctionType(v64, [vp, i32, ir.VectorType(i1, lanes), v64]))
        all_lanes = ir.Constant(ir.VectorType(i1, lanes), [1] * lanes)

        def shifted_up(x, k):  # lane i takes lane i - k, the first k lanes 0
            mask = [lanes + 0 if i < k else i - k for i in range(lanes)]
            return builder.shuffle_vector(x, zero, ir.Constant(ir.VectorType(i32, lanes), mask))

        entry = builder.basic_block
        head = builder.append_basic_block("positions.head")
        body = builder.append_basic_block("positions.body")
        done = builder.append_basic_block("positions.done")
        builder.branch(head)
        builder.position_at_end(head)
        j, p = builder.phi(i64), builder.phi(i64)
        j.add_incoming(ir.Constant(i64, 0), entry)
        p.add_incoming(pos_v, entry)
        builder.cbranch(builder.icmp_signed("<", j, count_v), body, done)
        builder.position_at_end(body)
        s_ptr = builder.bitcast(builder.gep(sp, [builder.add(start_v, j)]), ir.PointerType(v8))
        s = builder.zext(builder.load(s_ptr, align=1), v64)
        gep = ir.instructions.GEPInstr(builder.block, tp, [s], inbounds=True, name="",
                                       source_etype=i64)
        gep.type = vp  # llvmlite: typed by the base
        builder._insert(gep)
        code = builder.call(gather, [gep, ir.Constant(i32, 8), all_lanes, zero])
        builder.store(code, builder.bitcast(builder.gep(cp, [j]), ir.PointerType(v64)), align=1)
        nraw = builder.and_(code, ir.Constant(v64, [0xFF] * lanes))
        total = builder.add(nraw, shifted_up(nraw, 1))
        total = builder.add(total, shifted_up(total, 2))
        total = builder.add(total, shifted_up(total, 4))  # inclusive prefix sums
        before = builder.add(_splat(builder, v64, p), builder.sub(total, nraw))
        builder.store(before, builder.bitcast(builder.gep(ap, [j]), ir.PointerType(v64)),
                      align=1)
        p.add_incoming(builder.add(p, builder.extract_element(total, ir.Constant(i32, lanes - 1))),
                       body)
        j.add_incoming(builder.add(j, ir.Constant(i64, lanes)), body)
        builder.branch(head)
        builder.position_at_end(done)
        return p

    return sig, codegen


@njit(cache=True, nogil=True, inline="always")
def _rebuild(base, syms, raw, raw_bits, out, code_of, ones, sign, shift):
    """delta_decode's loop (sizes checked there); ``code_of``: the width's symbol table
    (:func:`_symbol_table`), ``ones``, ``sign``: its masks, ``shift``: its sign bit.

    Block by block, two passes: the first looks up each element's code and gives it the
    position of its raw bits (a running sum, 8 elements at a time: _code_positions), the
    second rebuilds the elements independently, 16 or 8 at a time (_rebuild_lanes); each
    pass takes the block's last few one by one. No branches: an unchanged element has code
    0 (no raw bits, a = 0, out = base)."""
    one = np.uint64(1)
    # raw-bit positions past the last one whose 8 bytes lie in raw (an error, reported
    # below) are read there instead
    limit = np.uint64(raw.size - 2) * np.uint64(64) + np.uint64(63)
    n = out.size
    codes = np.empty(REBUILD_BLOCK, np.uint64)
    at = np.empty(REBUILD_BLOCK, np.uint64)
    pos = np.uint64(0)  # the next raw bit
    bad = np.uint64(0)
    for start in range(0, n, REBUILD_BLOCK):
        m = min(REBUILD_BLOCK, n - start)
        whole = m - m % REBUILD_LANES
        pos = np.uint64(_code_positions(syms, code_of, codes, at, np.int64(start),
                                        np.int64(whole), np.int64(pos)))
        for j in range(whole, m):
            code = code_of[syms[start + j]]
            codes[j] = code
            at[j] = pos
            pos += code & np.uint64(0xFF)
        for j in range(m):
            bad |= codes[j]
        _rebuild_lanes(base, out, codes, at, raw, np.int64(start), np.int64(whole), limit)
        for j in range(whole, m):
            code = codes[j]
            nraw = code & np.uint64(0xFF)
            p = min(at[j], limit)
            q = p >> np.uint64(6)
            r = p & np.uint64(63)
            word = (raw[q] >> r) | ((raw[q + one] << one) << (np.uint64(63) - r))
            a = (((code >> np.uint64(8)) & np.uint64(3)) << nraw) | (word & ((one << nraw) - one))
            x = np.uint64(base[start + j])
            k = x ^ (((np.uint64(0) - (x >> shift)) & ones) | sign)  # key(x)
            neg = np.uint64(0) - ((code >> np.uint64(16)) & one)
            k = (k + ((a ^ neg) + (neg & one))) & ones  # k + a, or k - a
            out[start + j] = k ^ ((((k >> shift) - one) & ones) | sign)  # unkey(k)
    bad >>= np.uint64(17)
    if bad:
        return DECODE_BAD_CODE
    if pos > np.uint64(raw_bits):
        return DECODE_TRUNCATED
    if pos < np.uint64(raw_bits):
        return DECODE_TRAILING
    if raw[raw_bits >> 6] >> np.uint64(raw_bits & 63):  # bits after the last raw bit
        return DECODE_BAD_PADDING
    return DECODE_OK
