"""Kernels of coding pairs and fields: split/join, escapes, field sampling and choice, bit
packing of the last raw plane. (Joining 16-bit pairs and unpacking the last raw plane are
decoding steps: they live with the decoders in :mod:`.rans`, as do the byte histograms that
coding a stream needs.)

Self-contained (package docstring): every helper these kernels call and every constant they
read is defined here.
"""

from .. import _numba_env  # noqa: F401  (sets NUMBA_CACHE_DIR before numba loads)

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

# --------------------------------------------------------------------------- coding pairs
#
# An element e (unsigned, width W bytes) splits at a *field* of `bits` bits starting at bit
# `shift` (shift + bits < 8W, or <= 16 for W = 2): the code is the field minus `base`; the raw value r is
# everything else, compacted: r = ((e >> (shift + bits)) << shift) | (e & low), a value of
# 8W - bits bits. Raw is planar: raw[b * n + i] is byte b (little-endian) of r_i, for b in
# [0, W - 1); the last plane holds the top 16 - bits bits of r (a whole byte when bits = 8,
# the coding-pair layouts of ansz.pairs; fewer when mantissa bits join the code). The
# code is (field - base) when that is below 255, else 255, an *escape* of a wide field whose
# value the caller stores aside (patch_escapes puts it back, or join_fielded16 of
# ansz._kernels.rans while joining 16-bit elements); a plain 8-bit field has base
# 0, so 255 is just its value. Joining adds base back
# modulo 2^bits, so any input decodes to some elements (the content hash catches damage).


@njit(cache=True, nogil=True, inline="always")
def _field_code(e, sh, fmask, b0):
    """The code byte of element e: field - base, or 255 when that is 255 or more (the
    escape of a wide field; for a plain 8-bit field, with base 0, 255 is the value itself,
    so one rule serves both). Below base, the unsigned difference wraps: an escape too."""
    c = ((e >> sh) & fmask) - b0
    return np.uint8(min(c, type(c)(255)))


@njit(cache=True, nogil=True, inline="always")
def _pair_shifts(shift, bits, base, one):
    """(shift, shift + bits, field mask, low mask, base) in the type of ``one`` (np.uint32(1)
    for the 16/32-bit kernels, which LLVM vectorizes, np.uint64(1) for the generic ones)."""
    t = type(one)
    sh = t(shift)
    return sh, sh + t(bits), (one << t(bits)) - one, (one << sh) - one, t(base)


@njit(cache=True, nogil=True)
def split_pairs(elems, shift, bits, base, codes, raw):
    """Split unsigned elements into code bytes and planar raw bytes (see above).

    elems: uint16/32/64[::1] of n elements; codes: uint8[n]; raw: uint8[n * (width - 1)].
    Planes are contiguous runs (vectorizable here, and a natural unit for byte-plane
    modelling). Sizes and shift/bits are checked by the caller (pairs.split_pairs).
    """
    n = elems.size
    rw = elems.itemsize - 1
    sh, sb, fmask, low, b0 = _pair_shifts(shift, bits, base, np.uint64(1))
    for i in range(n):
        e = np.uint64(elems[i])
        codes[i] = _field_code(e, sh, fmask, b0)
        r = ((e >> sb) << sh) | (e & low)
        for b in range(rw):
            raw[b * n + i] = np.uint8(r >> np.uint64(8 * b))


@njit(cache=True, nogil=True)
def join_pairs(codes, raw, shift, bits, base, elems):
    """Inverse of split_pairs: elems[i] = code/raw merged. Sizes checked by the caller."""
    n = elems.size
    rw = elems.itemsize - 1
    sh, sb, fmask, low, b0 = _pair_shifts(shift, bits, base, np.uint64(1))
    for i in range(n):
        r = np.uint64(0)
        for b in range(rw):
            r |= np.uint64(raw[b * n + i]) << np.uint64(8 * b)
        t = (np.uint64(codes[i]) + b0) & fmask
        elems[i] = ((r >> sh) << sb) | (t << sh) | (r & low)


SPLIT16_LANES = 32  # 16-bit elements _split16_vectors splits at once: 512 bits


def _declare(module, name, fnty):
    """The function ``name`` of the LLVM module (an intrinsic), declared once."""
    fn = module.globals.get(name)
    return fn if fn is not None else ir.Function(module, fnty, name=name)


@intrinsic
def _split16_vectors(typingctx, elems, codes, raw, nvec, shift, bits, base):
    """An intrinsic: split_pairs16 of the first nvec * SPLIT16_LANES elements, in vectors of
    SPLIT16_LANES uint16 (numba widens 16-bit arithmetic to 64 bits, and its loops then
    vectorize 8 elements at a time; these take 32). The caller guarantees nvec *
    SPLIT16_LANES <= elems.size, codes.size and raw.size, and a valid field (shift + bits
    <= 16, bits >= 8, base < 2^bits), so every shift below is under 16 bits. nvec, shift,
    bits and base are int64."""
    sig = types.void(elems, codes, raw, nvec, shift, bits, base)

    def codegen(context, builder, signature, args):
        ep, cp, rp = (context.make_array(t)(context, builder, a).data
                      for t, a in zip(signature.args[:3], args[:3]))
        i8, i16, i32, i64 = (ir.IntType(b) for b in (8, 16, 32, 64))
        v16 = ir.VectorType(i16, SPLIT16_LANES)
        v8 = ir.VectorType(i8, SPLIT16_LANES)

        def splat(value):  # an i16, or an i64 argument taken modulo 2^16
            if value.type != i16:
                value = builder.trunc(value, i16)
            u = builder.insert_element(ir.Constant(v16, ir.Undefined), value, ir.Constant(i32, 0))
            return builder.shuffle_vector(u, ir.Constant(v16, ir.Undefined),
                                          ir.Constant(ir.VectorType(i32, SPLIT16_LANES),
                                                      [0] * SPLIT16_LANES))

        nv, sh_v, bits_v, base_v = args[3:]
        one = ir.Constant(i16, 1)
        sh16 = builder.trunc(sh_v, i16)
        bits16 = builder.trunc(bits_v, i16)
        sh = splat(sh16)
        top = splat(builder.sub(builder.add(sh16, bits16), one))  # shift + bits - 1 < 16
        fmask = splat(builder.sub(builder.shl(one, bits16), one))
        low = splat(builder.sub(builder.shl(one, sh16), one))
        b0 = splat(base_v)
        ones = ir.Constant(v16, [1] * SPLIT16_LANES)
        c255 = ir.Constant(v16, [255] * SPLIT16_LANES)
        entry = builder.basic_block
        head = builder.append_basic_block("split.head")
        body = builder.append_basic_block("split.body")
        done = builder.append_basic_block("split.done")
        builder.branch(head)
        builder.position_at_end(head)
        j = builder.phi(i64)
        j.add_incoming(ir.Constant(i64, 0), entry)
        builder.cbranch(builder.icmp_signed("<", j, nv), body, done)
        builder.position_at_end(body)
        at = builder.mul(j, ir.Constant(i64, SPLIT16_LANES))
        x = builder.load(builder.bitcast(builder.gep(ep, [at]), ir.PointerType(v16)), align=2)
        code = builder.sub(builder.and_(builder.lshr(x, sh), fmask), b0)
        code = builder.select(builder.icmp_unsigned("<", code, c255), code, c255)
        builder.store(builder.trunc(code, v8),
                      builder.bitcast(builder.gep(cp, [at]), ir.PointerType(v8)), align=1)
        # (x >> (shift + bits)) as two shifts: shift + bits may be 16 (F16's plain pair)
        above = builder.lshr(builder.lshr(x, top), ones)
        r = builder.or_(builder.shl(above, sh), builder.and_(x, low))
        builder.store(builder.trunc(r, v8),
                      builder.bitcast(builder.gep(rp, [at]), ir.PointerType(v8)), align=1)
        j.add_incoming(builder.add(j, ir.Constant(i64, 1)), body)
        builder.branch(head)
        builder.position_at_end(done)
        return context.get_dummy_value()

    return sig, codegen


@njit(cache=True, nogil=True)
def split_pairs16(elems, shift, bits, base, codes, raw):
    """split_pairs for 16-bit elements: whole vectors of SPLIT16_LANES by
    _split16_vectors, the rest in 32-bit arithmetic. Sizes and the field are checked by the
    caller (pairs.split_pairs)."""
    n = elems.size
    nvec = n // SPLIT16_LANES
    _split16_vectors(elems, codes, raw, np.int64(nvec), np.int64(shift), np.int64(bits),
                     np.int64(base))
    sh, sb, fmask, low, b0 = _pair_shifts(shift, bits, base, np.uint32(1))
    for i in range(nvec * SPLIT16_LANES, n):
        e = np.uint32(elems[i])
        codes[i] = _field_code(e, sh, fmask, b0)
        raw[i] = np.uint8(((e >> sb) << sh) | (e & low))


@njit(cache=True, nogil=True)
def split_pairs32(elems, shift, bits, base, codes, raw):
    """split_pairs for 32-bit elements (three raw planes) in 32-bit arithmetic."""
    n = elems.size
    sh, sb, fmask, low, b0 = _pair_shifts(shift, bits, base, np.uint32(1))
    for i in range(n):
        e = np.uint32(elems[i])
        codes[i] = _field_code(e, sh, fmask, b0)
        r = ((e >> sb) << sh) | (e & low)
        raw[i] = np.uint8(r)
        raw[n + i] = np.uint8(r >> np.uint32(8))
        raw[2 * n + i] = np.uint8(r >> np.uint32(16))


@njit(cache=True, nogil=True)
def join_pairs32(codes, raw, shift, bits, base, elems):
    """join_pairs for 32-bit elements (three raw planes) in 32-bit arithmetic."""
    n = elems.size
    sh, sb, fmask, low, b0 = _pair_shifts(shift, bits, base, np.uint32(1))
    for i in range(n):
        r = (np.uint32(raw[i]) | (np.uint32(raw[n + i]) << np.uint32(8))
             | (np.uint32(raw[2 * n + i]) << np.uint32(16)))
        t = (np.uint32(codes[i]) + b0) & fmask
        elems[i] = ((r >> sh) << sb) | (t << sh) | (r & low)


@njit(cache=True, nogil=True, inline="always")
def _next_escape(codes, words, i):
    """The first index >= i whose code is 255, or codes.size. words is codes[:8 * (size //
    8)] viewed as uint64: a word of 8 codes without a 255 (a zero byte of the complemented
    word) is skipped whole, since escapes are rare."""
    n = codes.size
    while i < n:
        if i % 8 == 0 and i + 8 <= n:
            x = ~words[i // 8]
            if ((x - np.uint64(0x0101010101010101)) & ~x & np.uint64(0x8080808080808080)) == 0:
                i += 8
                continue
        if codes[i] == 255:
            return i
        i += 1
    return n


@njit(cache=True, nogil=True)
def gather_escapes(codes, elems, shift, bits, escaped):
    """Write the field value (e >> shift) & (2^bits - 1) of each element whose code is 255,
    in element order, to escaped (uint16), at most escaped.size of them; returns how many
    codes are 255. codes.size == elems.size (checked by the caller)."""
    sh = np.uint64(shift)
    fmask = (np.uint64(1) << np.uint64(bits)) - np.uint64(1)
    words = codes[:codes.size // 8 * 8].view(np.uint64)
    k = 0
    i = _next_escape(codes, words, 0)
    while i < codes.size:
        if k < escaped.size:
            escaped[k] = np.uint16((np.uint64(elems[i]) >> sh) & fmask)
        k += 1
        i = _next_escape(codes, words, i + 1)
    return k


@njit(cache=True, nogil=True)
def patch_escapes(codes, escaped, shift, bits, elems):
    """Put escaped field values back: the k-th element whose code is 255 gets field value
    escaped[k] (uint16, taken modulo 2^bits), for k < escaped.size. Returns how many codes
    are 255: a count other than escaped.size means a corrupt chunk. codes.size ==
    elems.size (checked by the caller)."""
    sh = np.uint64(shift)
    fmask = (np.uint64(1) << np.uint64(bits)) - np.uint64(1)
    keep = ~(fmask << sh)
    words = codes[:codes.size // 8 * 8].view(np.uint64)
    k = 0
    i = _next_escape(codes, words, 0)
    while i < codes.size:
        if k < escaped.size:
            t = np.uint64(escaped[k]) & fmask
            elems[i] = (np.uint64(elems[i]) & keep) | (t << sh)
        k += 1
        i = _next_escape(codes, words, i + 1)
    return k


# Sampling for the field choice: with step s, one element in every s, taken in runs of 1024
# samples whose phase moves on each run (samples j = 1024r .. 1024r + 1023 are elements
# s*j + r % s), so data alternating with a period that divides s (pairs, interleaved rows)
# is sampled in every phase. The run loops keep integer division out of the inner loop.


@njit(cache=True, nogil=True)
def field_histogram(elems, shift, bits, step):
    """Counts (int64[2^bits]) of the field (e >> shift) & (2^bits - 1) of one element in
    every step (step >= 1; sampled as described above): bits 12 gives the field histogram
    of a top (shift + 12 <= 8 * width, checked by the caller; coarser fields sharing the same
    top bit are sums of adjacent counts, so one pass serves every candidate width), and
    shift 0, bits 16 every value of a 16-bit element.
    """
    counts = np.zeros(1 << bits, np.int64)
    sh = np.uint64(shift)
    mask = np.uint64((1 << bits) - 1)
    n = elems.size
    r = 0
    while step * 1024 * r < n:
        i = step * 1024 * r + r % step
        end = min(step * 1024 * (r + 1), n)
        while i < end:
            counts[(np.uint64(elems[i]) >> sh) & mask] += 1
            i += step
        r += 1
    return counts


@njit(cache=True, nogil=True, inline="always")
def _entropy_bits(counts, lo, hi):
    """Order-0 entropy in bits of counts[lo:hi] times their total."""
    total = 0.0
    for i in range(lo, hi):
        total += counts[i]
    if total == 0.0:
        return 0.0
    acc = 0.0
    for i in range(lo, hi):
        c = np.float64(counts[i])
        if c > 0.0:
            acc += c * np.log2(total / c)
    return acc


@njit(cache=True, nogil=True)
def fold_u16_histogram(h, tops):
    """From a 65536-bin histogram of 16-bit values, for each top t in tops (12 <= t <= 16):
    the 4096-bin histogram of bits [t - 12, t) and the 256-bin histogram of the raw byte
    left by the 8-bit field ending at t (bits above t, then bits below t - 8). One pass."""
    nt = tops.size
    h12 = np.zeros((nt, 4096), np.int64)
    raw = np.zeros((nt, 256), np.int64)
    for v in range(65536):
        c = h[v]
        if c == 0:
            continue
        for k in range(nt):
            t = tops[k]
            h12[k, (v >> (t - 12)) & 0xFFF] += c
            raw[k, ((v >> t) << (t - 8)) | (v & ((1 << (t - 8)) - 1))] += c
    return h12, raw


@njit(cache=True, nogil=True)
def field_costs(hist):
    """Predicted cost of each field width 8..12 from the 12-bit field histogram (int64[4096]).

    Returns (cost in bytes float64[5], base int64[5]) for widths 8 + k. Width 8 codes every
    value (base 0). A wider one takes the 255-value window with the most elements; the rest
    escape. Cost = order-0 entropy of the codes (escapes as one symbol) + its varint table
    (first to last present code, 12-bit scale) + the escapes' own entropy with 1 bit of slack each
    + 8 bytes + the last raw plane stored (16 - bits bits per element). A width with no
    elements costs inf.
    """
    n = np.int64(0)
    nnz = 0
    for i in range(4096):
        n += hist[i]
        if hist[i] != 0:
            nnz += 1
    costs = np.empty(5, np.float64)  # loops, not np.full/slice fills: faster first compile
    for k in range(5):
        costs[k] = np.inf
    bases = np.zeros(5, np.int64)
    if n == 0:
        return costs, bases
    # The bins with elements (a chunk's values fill a few hundred of the 4096), ascending,
    # then those of each width: every loop below walks these, not all 2^bits values.
    pos = np.empty(nnz, np.int64)
    cnt = np.empty(nnz, np.int64)
    j = 0
    for i in range(4096):
        if hist[i] != 0:
            pos[j] = i
            cnt[j] = hist[i]
            j += 1
    vp = np.empty(nnz, np.int64)  # the values of width 8 + k with elements, ascending
    vc = np.empty(nnz, np.int64)  # and their counts
    below = np.empty(nnz + 1, np.int64)  # below[j]: the elements of vp[:j]
    coded = np.empty(256, np.int64)
    for k in range(5):
        bits = 8 + k
        m = 0
        for i in range(nnz):
            v = pos[i] >> (4 - k)
            if m > 0 and vp[m - 1] == v:
                vc[m - 1] += cnt[i]
            else:
                vp[m] = v
                vc[m] = cnt[i]
                m += 1
        below[0] = 0
        for i in range(m):
            below[i + 1] = below[i] + vc[i]
        base = np.int64(0)
        if bits > 8:
            # The first window [v, v + 255) with the most elements. A window's count only
            # grows where a value enters it, at v = vp[j] - 254, so the first best window
            # starts at 0 or at one of those: each is counted with two pointers.
            best = np.int64(-1)
            lo = 0  # the first value at or above v
            hi = 0  # one past the last value at or below v + 254
            for j in range(-1, m):
                v = np.int64(0) if j < 0 else max(np.int64(0), vp[j] - 254)
                while lo < m and vp[lo] < v:
                    lo += 1
                while hi < m and vp[hi] <= v + 254:
                    hi += 1
                win = below[hi] - below[lo]
                if win > best:
                    best = win
                    base = v
        for c in range(256):
            coded[c] = 0
        nout = np.int64(0)
        total = 0.0  # of the escaped values' counts, in ascending order (_entropy_bits)
        for i in range(m):
            c = vp[i] - base
            if 0 <= c < 255 or (bits == 8 and c == 255):
                coded[c] += vc[i]
            else:
                nout += vc[i]
                total += vc[i]
        coded[255] += nout if bits > 8 else 0
        first = -1
        last = -1
        for c in range(256):
            if coded[c] > 0:
                if first < 0:
                    first = c
                last = c
        # varint table: 2 bytes for a frequency >= 128 of M = 4096, i.e. count >= n / 32
        table = 0.0
        if last > first:
            for c in range(first, last + 1):
                table += 2.0 if coded[c] * 32 >= n else 1.0
        cost = _entropy_bits(coded, 0, 256) / 8.0 + table + n * (16 - bits) / 8.0
        if nout > 0:
            acc = 0.0  # _entropy_bits of the escaped values' counts
            for i in range(m):
                c = vp[i] - base
                if not (0 <= c < 255):
                    x = np.float64(vc[i])
                    acc += x * np.log2(total / x)
            cost += (acc + nout) / 8.0 + 8.0
        costs[k] = cost
        bases[k] = base
    return costs, bases


@njit(cache=True, nogil=True)
def choose_field(h12, raw, raw_coded):
    """The cheapest field among those priced by field_costs for each top t (row t of h12,
    int64[tops, 4096]): returns (t, k, base, cost) for width 8 + k; ties go to the smaller
    t, then k. With raw_coded, the 8-bit field's raw byte (histogram raw[t], int64[tops,
    256]) is priced coded where that saves 1/64 (MIN_GAIN) as encode_stream would code it:
    entropy + 0.1% + 36 bytes of header and states + 1.2 bytes a table entry; else stored.
    Without elements every cost is inf and the answer is (0, 0, 0, inf).
    """
    best_t, best_k, best_base, best_cost = 0, 0, np.int64(0), np.inf
    for t in range(h12.shape[0]):
        costs, bases = field_costs(h12[t])
        if raw_coded:
            n = np.int64(0)
            first, last = -1, -1
            for v in range(256):
                n += raw[t, v]
                if raw[t, v] > 0:
                    if first < 0:
                        first = v
                    last = v
            if n > 0:
                byte_cost = 2.0  # a one-value byte: a CONSTANT stream
                if last > first:
                    byte_cost = (_entropy_bits(raw[t], 0, 256) * 1.001 / 8.0 + 36.0
                                 + 1.2 * (last - first + 1))
                    if byte_cost >= n * (1.0 - 1.0 / 64.0):
                        byte_cost = np.float64(n)
                costs[0] += byte_cost - n
        for k in range(5):
            if costs[k] < best_cost:
                best_t, best_k, best_base, best_cost = t, k, bases[k], costs[k]
    return best_t, best_k, best_base, best_cost


@njit(cache=True, nogil=True)
def _count_u16_runs(elems, step, table):
    """Count each element's value once in table (uint32[2 * 65536], zeroed here): at v if
    field_histogram's sampling with this step takes it, else at 65536 + v. Run r of the
    sampling covers elements step*1024*r .. step*1024*(r + 1) - 1 and takes those i with
    i % step == r % step. The indices are 16-bit values (+ 65536): table.size is checked by
    the caller."""
    n = elems.size
    for v in range(2 * 65536):
        table[v] = 0
    r = 0
    while step * 1024 * r < n:
        lo = step * 1024 * r
        hi = min(lo + step * 1024, n)
        if step == 2:  # the sampled and the other element of each pair, two tables at once
            off0 = 0 if r % 2 == 0 else 65536
            off1 = 65536 - off0
            i = lo
            while i + 1 < hi:
                table[off0 + np.int64(elems[i])] += 1
                table[off1 + np.int64(elems[i + 1])] += 1
                i += 2
            if i < hi:
                table[off0 + np.int64(elems[i])] += 1
        else:
            for p in range(step):
                off = 0 if p == r % step else 65536
                i = lo + p
                while i < hi:
                    table[off + np.int64(elems[i])] += 1
                    i += step
        r += 1


@njit(cache=True, nogil=True)
def _fold_u16_table(table, both, tops, h12, raw):
    """Add the 65536-bin counts table[:65536] (+ table[65536:] if ``both``) into h12 and raw
    as fold_u16_histogram folds them, for each top of tops (12 <= t <= 16, checked by the
    caller; h12 is int64[tops.size, 4096], raw int64[tops.size, 256])."""
    nt = tops.size
    for v in range(65536):
        c = np.int64(table[v])
        if both:
            c += np.int64(table[65536 + v])
        if c == 0:
            continue
        for j in range(nt):
            t = tops[j]
            h12[j, (v >> (t - 12)) & 0xFFF] += c
            raw[j, ((v >> t) << (t - 8)) | (v & ((1 << (t - 8)) - 1))] += c


@njit(cache=True, nogil=True)
def _count_u16_folded(elems, tops, h12, raw):
    """Add every element into h12 and raw as _fold_u16_table folds a value (no table: for
    small chunks)."""
    nt = tops.size
    for i in range(elems.size):
        v = np.int64(elems[i])
        for j in range(nt):
            t = tops[j]
            h12[j, (v >> (t - 12)) & 0xFFF] += 1
            raw[j, ((v >> t) << (t - 8)) | (v & ((1 << (t - 8)) - 1))] += 1


@njit(cache=True, nogil=True)
def _chosen_counts(h12row, rawrow, k, base, counts):
    """counts[:256]: the codes of the field of width 8 + k and ``base`` whose 12-bit field
    histogram (same top) is h12row (escapes at 255); counts[256:512]: rawrow."""
    for c in range(512):
        counts[c] = 0
    bits = 8 + k
    group = 1 << (4 - k)
    for v in range(1 << bits):
        acc = np.int64(0)
        for g in range(group):
            acc += h12row[v * group + g]
        code = v - base
        if bits == 8:
            counts[v] += acc
        elif 0 <= code < 255:
            counts[code] += acc
        else:
            counts[255] += acc
    for v in range(256):
        counts[256 + v] = rawrow[v]


@njit(cache=True, nogil=True)
def choose_field16(elems, step, tops, table, counts):
    """choose_field for 16-bit elements from the elements themselves, in one call, and the
    exact counts the chosen field's streams need.

    elems: uint16[n]; step >= 1 as for field_histogram; tops: int64[nt] (12 <= t <= 16,
    nt >= 1); table: uint32[2 * 65536] scratch (contents undefined; unused when step == 1);
    counts: int64[512], written. Returns what choose_field(h12, raw, True) returns for the
    fold_u16_histogram of field_histogram(elems, 0, 16, step): (t, k, base, cost). Writes to
    counts[:256] the counts of the codes of that field (width 8 + k, top tops[t], base)
    over all n elements (escapes at 255), to counts[256:] those of the raw byte its 8-bit
    field at top tops[t] leaves over all n elements (the last raw plane when k == 0).

    With step 1 every element is counted straight into the folded histograms; otherwise
    each element is counted once into a 65536-bin table, the sampled ones into its first
    half and the others into its second (_count_u16_runs), and the halves are folded: the
    first for the choice, both for the counts.
    """
    nt = tops.size
    if counts.size < 512 or step < 1 or nt == 0:
        raise ValueError("choose_field16: counts must hold 512 entries, step be >= 1, "
                         "tops not be empty")
    for j in range(nt):
        if not 12 <= tops[j] <= 16:
            raise ValueError("choose_field16: a top is not in [12, 16]")
    h12 = np.zeros((nt, 4096), np.int64)
    raw = np.zeros((nt, 256), np.int64)
    if step == 1:
        _count_u16_folded(elems, tops, h12, raw)
    else:
        if table.size < 2 * 65536:
            raise ValueError("choose_field16: table must hold 2 * 65536 entries")
        _count_u16_runs(elems, step, table)
        _fold_u16_table(table, False, tops, h12, raw)
    best_t, best_k, best_base, best_cost = choose_field(h12, raw, True)
    if step == 1:
        _chosen_counts(h12[best_t], raw[best_t], best_k, best_base, counts)
    else:
        full12 = np.zeros((1, 4096), np.int64)
        fullraw = np.zeros((1, 256), np.int64)
        _fold_u16_table(table, True, tops[best_t:best_t + 1], full12, fullraw)
        _chosen_counts(full12[0], fullraw[0], best_k, best_base, counts)
    return best_t, best_k, best_base, best_cost


# --------------------------------------------------------------------------- bit packing
#
# Sliced packing of k-bit fields (k in 1, 2, 4; m = 8 / k fields per byte): for n values,
# the packed plane has S = ceil(n / m) bytes and byte j holds, at bits [q*k, q*k + k), the
# field of value j + q*S (q = 0 .. m-1); fields past the last value are 0. Unlike
# consecutive packing, every loop below walks contiguous bytes with constant shifts, so LLVM
# vectorizes both directions. One pass over the packed bytes handles all m slices (the q
# loop has a constant trip count and unrolls): one loop per slice instead measured 2.7x
# slower unpacking the 1-bit slices (w = 5: 0.117 -> 0.043 ms for 2^19 values).


@njit(cache=True, nogil=True, inline="always")
def _pack_slices(vals, packed, k, at):
    """Pack bits [at, at + k) of every value of vals into the sliced plane ``packed``."""
    n = vals.size
    S = packed.size
    m = 8 // k
    mask = np.uint8((1 << k) - 1)
    full = max(0, min(S, n - (m - 1) * S))  # bytes j < full hold m values
    for j in range(full):
        b = np.uint8(0)
        for q in range(m):
            b |= ((vals[q * S + j] >> np.uint8(at)) & mask) << np.uint8(q * k)
        packed[j] = b
    for j in range(full, S):
        b = np.uint8(0)
        for q in range(m):
            if q * S + j < n:
                b |= ((vals[q * S + j] >> np.uint8(at)) & mask) << np.uint8(q * k)
        packed[j] = b


# A w-bit plane (4 <= w <= 7) is the sliced sub-planes of its bits, low first: bits 0-3 as
# k = 4, then bits 4-5 as k = 2 (w >= 6), then the last odd bit as k = 1 (w = 5 or 7). Each
# (k, at) is spelled out with literal constants: LLVM vectorizes a loop whose shifts are
# constants, and a runtime shift measured 5-10x slower.


@njit(cache=True, nogil=True)
def pack_top(vals, w, packed):
    """Pack the w-bit values (uint8[n]) into packed (uint8, ceil(n/2) + the sub-planes)."""
    n = vals.size
    s4 = (n + 1) // 2
    s2 = (n + 3) // 4
    s1 = (n + 7) // 8
    _pack_slices(vals, packed[:s4], 4, 0)
    if w == 5:
        _pack_slices(vals, packed[s4:s4 + s1], 1, 4)
    elif w == 6:
        _pack_slices(vals, packed[s4:s4 + s2], 2, 4)
    elif w == 7:
        _pack_slices(vals, packed[s4:s4 + s2], 2, 4)
        _pack_slices(vals, packed[s4 + s2:s4 + s2 + s1], 1, 6)
