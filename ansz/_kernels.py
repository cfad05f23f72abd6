"""Every numba kernel of ansz, and nothing else.

numba's on-disk cache notices only edits to the file of the function it compiles, so all
kernels and the helpers they call live here (STYLE.md, "numba practice"). Callers normalize
their arrays (dtype, C-contiguity, writability) before calling, so each kernel compiles once
per element width. Kernels run with bounds checking off: every size and offset they rely on
is either validated here before the unchecked loop or guaranteed by construction, and that
is stated beside each loop. No kernel uses BLAS or LAPACK (np.dot, np.linalg): the ansz
command keeps scipy out of its process (_numba_env.skip_optional_numba_imports).

rANS parameters (ryg_rans's rans_byte.h scheme with 16-bit words):
  * state x is a uint32 kept in [RANS_L, RANS_L << 16) = [2^15, 2^31) between symbols;
  * probabilities are quantized to M = 2^scale_bits with scale_bits in SCALE_BITS_CHOICES =
    (12, 14); the decoder is compiled once per choice (rans_decode12 / rans_decode14 around
    one inline body), because a compile-time shift/mask measured ~8% faster than a runtime
    one. M <= RANS_L makes one 16-bit read always enough to renormalize. 12 bits keeps the
    slot tables (20 KiB) in L1 and is the default; 14 bits pays for high-entropy streams
    with many rare symbols (fp8 bytes: 0.37% -> 0.07% above entropy);
  * NSTATES states are interleaved: symbol i belongs to state i % NSTATES;
  * the encoder runs backwards and writes 16-bit words backwards; the decoder reads forwards.
"""

from . import _numba_env  # noqa: F401  (sets NUMBA_CACHE_DIR before numba loads)

import numpy as np
from numba import njit

RANS_L = 1 << 15
NSTATES = 8
SCALE_BITS = 12
SCALE_BITS_HIGH = 14
SCALE_BITS_CHOICES = (SCALE_BITS, SCALE_BITS_HIGH)

# Status codes returned by decoders (0 = ok). Python wrappers turn them into errors.
DECODE_OK = 0
DECODE_TRUNCATED = 1
DECODE_BAD_STATE = 2
DECODE_TRAILING = 3
DECODE_BAD_PADDING = 5  # padding bits (of a prefix-coded stream or a packed plane) are not zero


# --------------------------------------------------------------------------- coding pairs
#
# An element e (unsigned, width W bytes) splits at a *field* of `bits` bits starting at bit
# `shift` (shift + bits < 8W, or <= 16 for W = 2): the code is the field minus `base`; the raw value r is
# everything else, compacted: r = ((e >> (shift + bits)) << shift) | (e & low), a value of
# 8W - bits bits. Raw is planar: raw[b * n + i] is byte b (little-endian) of r_i, for b in
# [0, W - 1); the last plane holds the top 16 - bits bits of r (a whole byte when bits = 8,
# the coding-pair layouts of ansz.pairs; fewer when mantissa bits join the code). The
# code is (field - base) when that is below 255, else 255, an *escape* of a wide field whose
# value the caller stores aside (patch_escapes puts it back); a plain 8-bit field has base
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


@njit(cache=True, nogil=True)
def split_pairs16(elems, shift, bits, base, codes, raw):
    """split_pairs for 16-bit elements in 32-bit arithmetic, which LLVM vectorizes."""
    n = elems.size
    sh, sb, fmask, low, b0 = _pair_shifts(shift, bits, base, np.uint32(1))
    for i in range(n):
        e = np.uint32(elems[i])
        codes[i] = _field_code(e, sh, fmask, b0)
        raw[i] = np.uint8(((e >> sb) << sh) | (e & low))


@njit(cache=True, nogil=True)
def join_pairs16(codes, raw, shift, bits, base, elems):
    """join_pairs for 16-bit elements in 32-bit arithmetic, which LLVM vectorizes."""
    n = elems.size
    sh, sb, fmask, low, b0 = _pair_shifts(shift, bits, base, np.uint32(1))
    for i in range(n):
        r = np.uint32(raw[i])
        t = (np.uint32(codes[i]) + b0) & fmask
        elems[i] = np.uint16(((r >> sh) << sb) | (t << sh) | (r & low))


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
    for i in range(4096):
        n += hist[i]
    costs = np.empty(5, np.float64)  # loops, not np.full/slice fills: faster first compile
    for k in range(5):
        costs[k] = np.inf
    bases = np.zeros(5, np.int64)
    for k in range(5):
        bits = 8 + k
        size = 1 << bits
        group = 1 << (4 - k)
        h = np.zeros(size + 1, np.int64)  # h[size]: the escapes
        for v in range(size):
            acc = np.int64(0)
            for g in range(group):
                acc += hist[v * group + g]
            h[v] = acc
        if n == 0:
            continue
        base = 0
        if bits > 8:
            win = np.int64(0)
            for v in range(min(255, size)):
                win += h[v]
            best = win
            for v in range(1, size):  # window [v, v + 255)
                win -= h[v - 1]
                if v + 254 < size:
                    win += h[v + 254]
                if win > best:
                    best = win
                    base = v
        coded = np.zeros(256, np.int64)
        out = np.zeros(size, np.int64)
        nout = np.int64(0)
        for v in range(size):
            c = v - base
            if 0 <= c < 255 or (bits == 8 and c == 255):
                coded[c] += h[v]
            else:
                out[v] = h[v]
                nout += h[v]
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
            cost += (_entropy_bits(out, 0, size) + nout) / 8.0 + 8.0
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


@njit(cache=True, nogil=True, inline="always")
def _unpack_slices(packed, vals, k, at, first):
    """Put the fields of the sliced plane ``packed`` at bits [at, at + k) of vals (assign
    when ``first``, else OR). Returns False if a field past the last value is not 0."""
    n = vals.size
    S = packed.size
    m = 8 // k
    mask = np.uint8((1 << k) - 1)
    full = max(0, min(S, n - (m - 1) * S))  # bytes j < full hold m values
    for j in range(full):
        b = packed[j]
        for q in range(m):
            v = ((b >> np.uint8(q * k)) & mask) << np.uint8(at)
            if first:
                vals[q * S + j] = v
            else:
                vals[q * S + j] |= v
    ok = True
    for j in range(full, S):
        b = packed[j]
        for q in range(m):
            v = (b >> np.uint8(q * k)) & mask
            if q * S + j >= n:
                ok &= v == 0
            elif first:
                vals[q * S + j] = v << np.uint8(at)
            else:
                vals[q * S + j] |= v << np.uint8(at)
    return ok


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


@njit(cache=True, nogil=True)
def unpack_top(packed, w, vals):
    """Inverse of pack_top. packed.size is what pack_top writes for vals.size values and w
    (checked by the caller). Returns DECODE_OK or DECODE_BAD_PADDING."""
    n = vals.size
    s4 = (n + 1) // 2
    s2 = (n + 3) // 4
    s1 = (n + 7) // 8
    ok = _unpack_slices(packed[:s4], vals, 4, 0, True)
    if w == 5:
        ok &= _unpack_slices(packed[s4:s4 + s1], vals, 1, 4, False)
    elif w == 6:
        ok &= _unpack_slices(packed[s4:s4 + s2], vals, 2, 4, False)
    elif w == 7:
        ok &= _unpack_slices(packed[s4:s4 + s2], vals, 2, 4, False)
        ok &= _unpack_slices(packed[s4 + s2:s4 + s2 + s1], vals, 1, 6, False)
    return DECODE_OK if ok else DECODE_BAD_PADDING


# --------------------------------------------------------------------------- histograms


@njit(cache=True, nogil=True)
def byte_histogram(data):
    """Counts of each byte value in a uint8[::1] array, as int64[256].

    Four sub-histograms break the store-to-load dependency on runs of equal bytes.
    """
    h = np.zeros((4, 256), np.int64)
    n = data.size
    n4 = n - n % 4
    for i in range(0, n4, 4):
        h[0, data[i]] += 1
        h[1, data[i + 1]] += 1
        h[2, data[i + 2]] += 1
        h[3, data[i + 3]] += 1
    for i in range(n4, n):
        h[0, data[i]] += 1
    out = np.zeros(256, np.int64)
    for s in range(256):
        out[s] = h[0, s] + h[1, s] + h[2, s] + h[3, s]
    return out


# --------------------------------------------------------------------------- normalization


@njit(cache=True, nogil=True, inline="always")
def _unit_costs(c, f, gain, loss, s):
    """normalize_counts' gain[s] and loss[s] for count c and frequency f."""
    if c > 0:
        gain[s] = np.float64(c) * np.log2((f + 1.0) / f)
        loss[s] = np.float64(c) * np.log2(f / (f - 1.0)) if f > 1 else np.inf
    else:
        gain[s] = -1.0
        loss[s] = np.inf


@njit(cache=True, nogil=True, inline="always")
def _argmax_first(v):
    """The first index of v's largest value above -1.0 (-1 if none)."""
    best = -1
    bestv = -1.0
    for s in range(v.size):
        if v[s] > bestv:
            bestv = v[s]
            best = s
    return best


@njit(cache=True, nogil=True, inline="always")
def _argmin_first(v):
    """The first index of v's smallest finite value (-1 if none)."""
    best = -1
    bestv = np.inf
    for s in range(v.size):
        if v[s] < bestv:
            bestv = v[s]
            best = s
    return best


@njit(cache=True, nogil=True)
def normalize_counts(counts, scale_bits):
    """Quantize counts to integer frequencies summing to M = 2^scale_bits.

    counts: int64[A] for an alphabet of A symbols (256 for bytes, fewer for a compacted pair
    alphabet), at least two nonzero (one symbol needs no coder), and the number of
    nonzero entries must be <= M. Returns uint32[A] with freq[s] >= 1 where counts[s] > 0
    and freq[s] == 0 where counts[s] == 0, minimizing the coded size
    sum(counts[s] * log2(M / freq[s])). The objective is separable and convex in each
    freq, so a point where no single unit moved from one symbol to another helps is optimal:
    start from the rounded proportional split, fix the sum greedily, then swap units while a
    swap gains.
    """
    M = np.int64(1) << np.int64(scale_bits)
    nsym = counts.size
    total = np.int64(0)
    for s in range(nsym):
        total += counts[s]
    freq = np.zeros(nsym, np.int64)
    used = np.int64(0)
    for s in range(nsym):
        c = counts[s]
        if c > 0:
            f = np.int64((np.float64(c) * np.float64(M)) / np.float64(total) + 0.5)
            if f < 1:
                f = 1
            freq[s] = f
            used += f
    # gain[s]: what +1 on freq[s] saves, c*log2((f+1)/f) (-1 for absent symbols, never
    # taken); loss[s]: what -1 costs, c*log2(f/(f-1)) (inf where f <= 1, never given).
    # Kept per symbol and recomputed only for the symbol that changed: each step is then
    # a scan of A floats, not A logarithms (pair alphabets take hundreds of steps).
    gain = np.empty(nsym, np.float64)
    loss = np.empty(nsym, np.float64)
    for s in range(nsym):
        _unit_costs(counts[s], freq[s], gain, loss, s)
    while used != M:
        if used < M:
            best = _argmax_first(gain)
            freq[best] += 1
            used += 1
        else:
            best = _argmin_first(loss)
            freq[best] -= 1
            used -= 1
        _unit_costs(counts[best], freq[best], gain, loss, best)
    # Exchange: move a unit from the cheapest donor to the best taker while that gains.
    for _ in range(4 * nsym + 64):
        take = _argmax_first(gain)
        give = _argmin_first(loss)
        if give < 0 or take == give or gain[take] <= loss[give] * (1.0 + 1e-12):
            break
        freq[take] += 1
        freq[give] -= 1
        _unit_costs(counts[take], freq[take], gain, loss, take)
        _unit_costs(counts[give], freq[give], gain, loss, give)
    out = np.zeros(nsym, np.uint32)
    for s in range(nsym):
        out[s] = np.uint32(freq[s])
    return out


# --------------------------------------------------------------------------- rANS


@njit(cache=True, nogil=True, inline="always")
def _enc_put(x, s, enc, out, ptr):
    """Encode symbol s into state x (uint64 in [RANS_L, 2^31)); may emit one word at out[ptr-1].

    enc[8*s : 8*s+5] = (x_max, rcp_freq, rcp_shift, bias, cmpl_freq), from encoder_table.
    Returns the new (x, ptr). x // freq is computed as a multiply by a fixed-point reciprocal
    (ryg's RansEncPutSymbol), exact because x < 2^31.
    """
    k = np.uint64(s) << np.uint64(3)
    # Branch-free renormalization: the word is always stored at ptr - 1 (>= 0, since out has
    # room for one word per symbol plus the states) and kept only if ptr moves.
    c = np.uint64(x >= enc[k])
    out[ptr - np.uint64(1)] = np.uint16(x & np.uint64(0xFFFF))
    ptr -= c
    x >>= c << np.uint64(4)
    q = ((x * enc[k + np.uint64(1)]) >> np.uint64(32)) >> enc[k + np.uint64(2)]
    return x + enc[k + np.uint64(3)] + q * enc[k + np.uint64(4)], ptr


@njit(cache=True, nogil=True)
def encoder_table(freq, scale_bits):
    """uint64[A * 8]: symbol s at [8s, 8s+5) = (x_max, rcp_freq, rcp_shift, bias, cmpl_freq)
    for freq (uint32[A], A symbols) summing to M = 2^scale_bits.

    As ryg's RansEncSymbolInit: x // freq becomes a multiply by a fixed-point reciprocal,
    exact for x < 2^31 (Alverson); freq == 1 uses rcp = 2^32 - 1 with a compensating bias.
    x_max = ((RANS_L >> scale_bits) << 16) * freq < 2^31, so nothing here overflows uint64.
    """
    enc = np.zeros(freq.size * 8, np.uint64)
    M = np.uint64(1) << np.uint64(scale_bits)
    unit = np.uint64((RANS_L >> scale_bits) << 16)
    start = np.uint64(0)
    for s in range(freq.size):
        f = np.uint64(freq[s])
        k = 8 * s
        enc[k] = unit * f
        enc[k + 4] = M - f
        if f >= np.uint64(2):
            shift = np.uint64(1)  # ceil(log2(f))
            while (np.uint64(1) << shift) < f:
                shift += np.uint64(1)
            enc[k + 1] = ((np.uint64(1) << (shift + np.uint64(31))) + f - np.uint64(1)) // f
            enc[k + 2] = shift - np.uint64(1)
            enc[k + 3] = start
        else:
            enc[k + 1] = np.uint64(0xFFFFFFFF)
            enc[k + 3] = start + M - np.uint64(1)
        start += f
    return enc


@njit(cache=True, nogil=True)
def coded_bits(counts, freq, scale_bits):
    """Bits of the rANS words for counts (int64[A]) under freq (uint32[A]; every counted
    symbol has freq >= 1): sum(counts[s] * (scale_bits - log2 freq[s])), the cross-entropy."""
    acc = 0.0
    for s in range(counts.size):
        if counts[s] > 0:
            acc += np.float64(counts[s]) * (scale_bits - np.log2(np.float64(freq[s])))
    return acc


@njit(cache=True, nogil=True)
def write_varints(freq, out):
    """Write freq (uint32, each < 2^14) as LEB128 varints into out (uint8, >= 2 * freq.size
    + 1 bytes): 1 byte below 128, else the low 7 bits with bit 7 set, then the rest; then a
    zero byte if the count so far is odd. Returns the bytes written."""
    p = 0
    for i in range(freq.size):
        p = _write_varint(np.int64(freq[i]), out, p)
    return _pad_even(out, p)


@njit(cache=True, nogil=True, inline="always")
def _write_varint(v, out, p):
    """Write v >= 0 as a LEB128 varint (low 7 bits first) at out[p:]; returns the end."""
    while v >= 128:
        out[p] = np.uint8((v & 127) | 128)
        v >>= 7
        p += 1
    out[p] = np.uint8(v)
    return p + 1


@njit(cache=True, nogil=True, inline="always")
def _pad_even(out, p):
    """A zero byte at out[p] if p is odd, so what follows starts at an even offset."""
    if p % 2:
        out[p] = 0
        p += 1
    return p


@njit(cache=True, nogil=True)
def pair_histogram(values, counts, ids, cnt, bytes_cnt):
    """The distinct values of ``values`` (uint16) in increasing order into ids (uint16) and
    their counts into cnt (int64), both of 65536 entries; returns how many. Adds to
    bytes_cnt (int64[256]) the counts of the values' low and high bytes. counts is
    uint32[65536] scratch, all zero on entry and again on return."""
    for i in range(values.size):
        counts[values[i]] += np.uint32(1)
    k = 0
    for v in range(65536):
        c = counts[v]
        if c:
            ids[k] = np.uint16(v)
            cnt[k] = np.int64(c)
            bytes_cnt[v & 255] += np.int64(c)
            bytes_cnt[v >> 8] += np.int64(c)
            counts[v] = 0
            k += 1
    return k


@njit(cache=True, nogil=True)
def pair_ranks(values, ids, rank, out):
    """out[i] = the index of values[i] in ids (uint16, increasing; every value is in ids).
    rank is uint16[65536] scratch."""
    for i in range(ids.size):
        rank[ids[i]] = np.uint16(i)
    for i in range(values.size):
        out[i] = rank[values[i]]


@njit(cache=True, nogil=True)
def write_pair_table(ids, freq, out):
    """Write a sparse table as LEB128 varints into out (uint8, >= 5 * ids.size + 1 bytes):
    for each entry, ids[i] - ids[i-1] - 1 (ids[-1] = -1; ids uint16, increasing), then
    freq[i] (< 2^14); then a zero byte if the count so far is odd. Returns the bytes
    written."""
    p = 0
    prev = np.int64(-1)
    for i in range(ids.size):
        p = _write_varint(np.int64(ids[i]) - prev - np.int64(1), out, p)
        p = _write_varint(np.int64(freq[i]), out, p)
        prev = np.int64(ids[i])
    return _pad_even(out, p)


@njit(cache=True, nogil=True, inline="always")
def _read_varint(buf, p, max_bytes):
    """(value, next offset) of the LEB128 varint at buf[p:], or (-1, -1) if buf ends first
    and (-2, -2) if it is longer than max_bytes. Every read is checked."""
    v = np.int64(0)
    for k in range(max_bytes):
        if p >= buf.size:
            return np.int64(-1), -1
        b = np.int64(buf[p])
        p += 1
        v |= (b & 127) << (7 * k)
        if b < 128:
            return v, p
    return np.int64(-2), -2


@njit(cache=True, nogil=True)
def read_pair_table(buf, start, ids, freq):
    """Read ids.size entries written by write_pair_table from buf[start:] into ids (uint16)
    and freq (uint32). Returns the offset after them, -1 if buf ends first, -2 for an
    over-long varint, -3 for a symbol value past 65535. Every read is checked."""
    p = start
    prev = np.int64(-1)
    for i in range(ids.size):
        d, p = _read_varint(buf, p, 3)
        if p < 0:
            return p
        f, p = _read_varint(buf, p, 2)
        if p < 0:
            return p
        prev += d + np.int64(1)
        if prev > 65535:
            return -3
        ids[i] = np.uint16(prev)
        freq[i] = np.uint32(f)
    return p


@njit(cache=True, nogil=True)
def rans_encode(codes, enc, out):
    """Encode codes (uint8, or uint16 ids of a compacted alphabet) with NSTATES interleaved
    rANS states into out (uint16[::1]).

    enc: uint64[A * 8] from encoder_table; only rows of symbols with freq >= 1 may be
    used, which holds because the caller builds the table from these codes' histogram.
    out must have at least codes.size + 2 * NSTATES words: a symbol emits at most one word
    because freq >= 1 and scale_bits < 16. Words are written backwards
    from the end of out; returns the index of the first word. out[start:] holds the final
    states, state j as (low word, high word) for j = 0..NSTATES-1, then the renormalization
    words in the order the decoder consumes them.
    """
    n = np.uint64(codes.size)
    ptr = np.uint64(out.size)
    x0 = x1 = x2 = x3 = x4 = x5 = x6 = x7 = np.uint64(RANS_L)
    ns = np.uint64(NSTATES)
    full = (n // ns) * ns
    # The tail (the last n % NSTATES symbols) first, then whole groups; all in reverse.
    i = n
    while i > full:
        i -= np.uint64(1)
        j = i - full
        s = codes[i]
        if j == 0:
            x0, ptr = _enc_put(x0, s, enc, out, ptr)
        elif j == 1:
            x1, ptr = _enc_put(x1, s, enc, out, ptr)
        elif j == 2:
            x2, ptr = _enc_put(x2, s, enc, out, ptr)
        elif j == 3:
            x3, ptr = _enc_put(x3, s, enc, out, ptr)
        elif j == 4:
            x4, ptr = _enc_put(x4, s, enc, out, ptr)
        elif j == 5:
            x5, ptr = _enc_put(x5, s, enc, out, ptr)
        else:
            x6, ptr = _enc_put(x6, s, enc, out, ptr)
    while i > 0:
        i -= ns
        x7, ptr = _enc_put(x7, codes[i + np.uint64(7)], enc, out, ptr)
        x6, ptr = _enc_put(x6, codes[i + np.uint64(6)], enc, out, ptr)
        x5, ptr = _enc_put(x5, codes[i + np.uint64(5)], enc, out, ptr)
        x4, ptr = _enc_put(x4, codes[i + np.uint64(4)], enc, out, ptr)
        x3, ptr = _enc_put(x3, codes[i + np.uint64(3)], enc, out, ptr)
        x2, ptr = _enc_put(x2, codes[i + np.uint64(2)], enc, out, ptr)
        x1, ptr = _enc_put(x1, codes[i + np.uint64(1)], enc, out, ptr)
        x0, ptr = _enc_put(x0, codes[i], enc, out, ptr)
    states = (x0, x1, x2, x3, x4, x5, x6, x7)
    p = np.int64(ptr) - 2 * NSTATES
    for j in range(NSTATES):
        out[p + 2 * j] = np.uint16(states[j] & np.uint64(0xFFFF))
        out[p + 2 * j + 1] = np.uint16(states[j] >> np.uint64(16))
    return p


@njit(cache=True, nogil=True, inline="always")
def _dec_get(x, sym_of_slot, dec_of_slot, words, ptr, scale_bits):
    """Decode one symbol from state x and renormalize; returns (x, ptr, symbol).

    dec_of_slot[slot] packs (freq << 16) | (slot - start). The caller guarantees
    ptr < words.size; the read is unconditional and only used when x < RANS_L (a cmov,
    not a branch: renormalization is a coin flip the predictor cannot learn).
    """
    slot = x & np.uint32((1 << scale_bits) - 1)
    e = dec_of_slot[slot]
    x = (e >> np.uint32(16)) * (x >> np.uint32(scale_bits)) + (e & np.uint32(0xFFFF))
    w = np.uint32(words[ptr])
    c = x < np.uint32(RANS_L)
    x = np.uint32((x << np.uint32(16)) | w) if c else np.uint32(x)
    return x, ptr + np.uint64(c), sym_of_slot[slot]


@njit(cache=True, nogil=True, inline="always")
def _rans_decode(words, sym_of_slot, dec_of_slot, out, scale_bits):
    """Decode out.size symbols from words (uint16[::1]) produced by rans_encode.

    Inlined into rans_decode12/14, which pass scale_bits as a constant. sym_of_slot
    (uint8[M], or uint16[M] with a uint16 out: pair symbols) and dec_of_slot (uint32[M])
    come from build_decoder_tables, built from a
    validated frequency table (at least two nonzero freqs, summing to M = 2^scale_bits, so
    each freq < M). With such tables every state stays in
    [RANS_L, 2^31) whatever the words hold, and slot = x & (M - 1) < M, so only the word
    pointer needs checking: the fast loop runs while a whole group's worth of words
    (NSTATES) remains, and the careful loop checks every read. Returns DECODE_OK, or an
    error status for truncated input, trailing words, or final states that differ from the
    encoder's initial state (a corrupt stream).
    """
    n = np.uint64(out.size)
    nw = np.uint64(words.size)
    if nw < np.uint64(2 * NSTATES):
        return DECODE_TRUNCATED
    st = np.empty(NSTATES, np.uint32)
    for j in range(NSTATES):
        xj = np.uint32(words[2 * j]) | (np.uint32(words[2 * j + 1]) << np.uint32(16))
        if xj < np.uint32(RANS_L) or xj >= np.uint32(1 << 31):
            return DECODE_BAD_STATE
        st[j] = xj
    x0, x1, x2, x3, x4, x5, x6, x7 = st[0], st[1], st[2], st[3], st[4], st[5], st[6], st[7]
    ptr = np.uint64(2 * NSTATES)
    mask = np.uint32((1 << scale_bits) - 1)
    sb = np.uint32(scale_bits)
    ns = np.uint64(NSTATES)
    full = (n // ns) * ns
    last_safe = nw - ns  # nw >= 2 * NSTATES, so no wrap
    i = np.uint64(0)
    while i < full and ptr <= last_safe:
        x0, ptr, out[i] = _dec_get(x0, sym_of_slot, dec_of_slot, words, ptr, scale_bits)
        x1, ptr, out[i + np.uint64(1)] = _dec_get(x1, sym_of_slot, dec_of_slot, words, ptr, scale_bits)
        x2, ptr, out[i + np.uint64(2)] = _dec_get(x2, sym_of_slot, dec_of_slot, words, ptr, scale_bits)
        x3, ptr, out[i + np.uint64(3)] = _dec_get(x3, sym_of_slot, dec_of_slot, words, ptr, scale_bits)
        x4, ptr, out[i + np.uint64(4)] = _dec_get(x4, sym_of_slot, dec_of_slot, words, ptr, scale_bits)
        x5, ptr, out[i + np.uint64(5)] = _dec_get(x5, sym_of_slot, dec_of_slot, words, ptr, scale_bits)
        x6, ptr, out[i + np.uint64(6)] = _dec_get(x6, sym_of_slot, dec_of_slot, words, ptr, scale_bits)
        x7, ptr, out[i + np.uint64(7)] = _dec_get(x7, sym_of_slot, dec_of_slot, words, ptr, scale_bits)
        i += ns
    st[0], st[1], st[2], st[3], st[4], st[5], st[6], st[7] = x0, x1, x2, x3, x4, x5, x6, x7
    # Careful loop: the rest of the symbols, every read checked.
    while i < n:
        j = i % ns
        xj = st[j]
        slot = xj & mask
        out[i] = sym_of_slot[slot]
        e = dec_of_slot[slot]
        xj = (e >> np.uint32(16)) * (xj >> sb) + (e & np.uint32(0xFFFF))
        if xj < np.uint32(RANS_L):
            if ptr >= nw:
                return DECODE_TRUNCATED
            xj = (xj << np.uint32(16)) | np.uint32(words[ptr])
            ptr += np.uint64(1)
        st[j] = np.uint32(xj)
        i += np.uint64(1)
    if ptr != nw:
        return DECODE_TRAILING
    for j in range(NSTATES):
        if st[j] != np.uint32(RANS_L):
            return DECODE_BAD_STATE
    return DECODE_OK


@njit(cache=True, nogil=True)
def rans_decode12(words, sym_of_slot, dec_of_slot, out):
    """_rans_decode with M = 2^12."""
    return _rans_decode(words, sym_of_slot, dec_of_slot, out, 12)


@njit(cache=True, nogil=True)
def rans_decode14(words, sym_of_slot, dec_of_slot, out):
    """_rans_decode with M = 2^14."""
    return _rans_decode(words, sym_of_slot, dec_of_slot, out, 14)


@njit(cache=True, nogil=True)
def read_varints(buf, start, freq):
    """Read freq.size varints (1 byte < 128, or a byte >= 128 then one < 128: low 7 bits
    first) from buf[start:] into freq (uint32). Returns the offset after them, or -1 if buf
    ends first, or -2 for a varint longer than 2 bytes. Every read is checked."""
    p = start
    for i in range(freq.size):
        v, p = _read_varint(buf, p, 2)
        if p < 0:
            return p
        freq[i] = np.uint32(v)
    return p


@njit(cache=True, nogil=True)
def build_decoder_tables(ids, freq, sym_of_slot, dec_of_slot):
    """Fill the slot tables (sym_of_slot[M] of ids' dtype, dec_of_slot uint32[M]) from freq
    (uint32) summing to M, whose entry i is symbol ids[i] (increasing: 0..255 as uint8 for
    bytes, the uint16 values present for a sparse alphabet).

    Slot k belongs to the entry i with start[i] <= k < start[i] + freq[i]; its entries are
    ids[i] and (freq[i] << 16) | (k - start[i]). The caller has checked sum(freq) == M.
    """
    k = 0
    for i in range(freq.size):
        f = np.uint32(freq[i])
        s = ids[i]
        for r in range(f):
            sym_of_slot[k] = s
            dec_of_slot[k] = (f << np.uint32(16)) | np.uint32(r)
            k += 1


# ===================================================================================
# Prefix codes: Quad Length Codes (ansz/qlc.py) and length-limited Huffman (ansz/huffman.py)
# ===================================================================================
#
# Bit order: codes are written MSB-first into bytes (the first code's first bit is bit 7
# of byte 0); the last byte is padded with zero bits. Code lengths are 1..16 bits.
# Decoders look at a 64-bit big-endian window of the stream starting at bit `pos`: read
# from byte pos >> 3 and shifted left by pos & 7, so it holds at least 57 valid bits. The
# fast loops read 8 whole bytes and run only while pos >> 3 + 8 <= size; the careful tail
# reads byte by byte with a bounds check (bytes past the end read as zero) and then checks
# that the codes did not run past the end.

DECODE_BAD_CODE = 4  # a bit pattern that is no code of the table


@njit(cache=True, nogil=True)
def prefix_encode(symbols, code, length, out):
    """Write the prefix code of each uint8 symbol into out (uint8[::1]); return the bit count.

    code: uint32[256] (right-aligned code bits), length: uint8[256] in 0..16, with
    code[s] < 2^length[s]. Returns -1 if a symbol has length 0 (no code), in which case the
    bits written are meaningless. out must hold (symbols.size * max(length) + 7) // 8 + 4
    bytes: 4-byte flushes never pass the rounded-up end.
    """
    n = symbols.size
    acc = np.uint64(0)
    nacc = np.uint64(0)  # valid bits at the bottom of acc, < 32 between symbols
    p = 0
    bad = False
    for i in range(n):
        s = symbols[i]
        ln = np.uint64(length[s])
        bad |= ln == np.uint64(0)
        acc = (acc << ln) | np.uint64(code[s])
        nacc += ln  # < 48
        if nacc >= np.uint64(32):
            nacc -= np.uint64(32)
            v = acc >> nacc
            out[p] = np.uint8(v >> np.uint64(24))
            out[p + 1] = np.uint8(v >> np.uint64(16))
            out[p + 2] = np.uint8(v >> np.uint64(8))
            out[p + 3] = np.uint8(v)
            p += 4
    nbits = np.int64(p) * 8 + np.int64(nacc)
    # Left-align the remaining nacc < 32 bits and emit whole bytes (zero padding).
    v = (acc << (np.uint64(32) - nacc)) & np.uint64(0xFFFFFFFF)
    k = 0
    while np.uint64(8 * k) < nacc:
        out[p] = np.uint8(v >> np.uint64(24 - 8 * k))
        p += 1
        k += 1
    if bad:
        return np.int64(-1)
    return nbits


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


@njit(cache=True, nogil=True, inline="always")
def _sorted_present(counts, n, descending):
    """The n indices s with counts[s] > 0, sorted by count (descending or ascending), equal
    counts by increasing s: a stable insertion sort. Hand-written because np.sort/argsort
    add seconds to each kernel's first compile, and n <= 256 here (<= ~33K moves)."""
    out = np.empty(n, np.int64)
    k = 0
    for s in range(counts.size):
        c = counts[s]
        if c <= 0:
            continue
        j = k
        while j > 0 and ((counts[out[j - 1]] < c) if descending else (counts[out[j - 1]] > c)):
            out[j] = out[j - 1]
            j -= 1
        out[j] = s
        k += 1
    return out


@njit(cache=True, nogil=True)
def huffman_payload_bits(counts):
    """Payload bits of an unlimited Huffman code for counts (int64[k]): the sum of the
    weights of every merge (two-queue method on the sorted nonzero counts). A lower bound
    on the payload of every prefix code. 0 for fewer than two present symbols."""
    m = 0
    for s in range(counts.size):
        if counts[s] > 0:
            m += 1
    ranked = _sorted_present(counts, m, False)
    leaves = np.empty(m, np.int64)
    for r in range(m):
        leaves[r] = counts[ranked[r]]
    merged = np.empty(max(m - 1, 0), np.int64)
    i = 0  # next leaf
    j = 0  # next merged node to take
    k = 0  # merged nodes made
    total = np.int64(0)
    for _ in range(m - 1):
        pair = np.int64(0)
        for _ in range(2):
            if i < m and (j >= k or leaves[i] <= merged[j]):
                pair += leaves[i]
                i += 1
            else:
                pair += merged[j]
                j += 1
        merged[k] = pair
        k += 1
        total += pair
    return total


@njit(cache=True, nogil=True)
def package_merge(weights, limit):
    """Optimal code lengths (int64[m]) with every length <= limit for weights (int64[m],
    m >= 2, ascending, 2^limit >= m, both checked by the caller), by package-merge.

    List 0 is the leaves; list d merges the leaves with the pairwise sums ("packages") of
    list d - 1, stably, a leaf first on ties. The first 2m - 2 items of the last list are
    chosen; a chosen prefix of list d holds the a lightest leaves and p - a packages, which
    choose the first 2(p - a) items of list d - 1; a leaf's length is the number of lists
    whose chosen prefix holds it. Lists have at most 2m items; returns all zeros if a
    chosen prefix would be longer than its list (impossible for valid input).
    """
    m = weights.size
    lengths = np.zeros(m, np.int64)
    leaf = np.zeros((limit, 2 * m), np.uint8)  # leaf[d, q]: item q of list d is a leaf
    size = np.zeros(limit, np.int64)
    cur = np.empty(2 * m, np.int64)
    nxt = np.empty(2 * m, np.int64)
    for q in range(m):  # loops, not slice assignments: those cost ~3 s of compile time
        cur[q] = weights[q]
        leaf[0, q] = 1
    size[0] = m
    for d in range(1, limit):
        npk = size[d - 1] // 2
        i = 0
        j = 0
        o = 0
        while i < m or j < npk:
            if j < npk:
                pk = cur[2 * j] + cur[2 * j + 1]
            if j >= npk or (i < m and weights[i] <= pk):
                nxt[o] = weights[i]
                leaf[d, o] = 1
                i += 1
            else:
                nxt[o] = pk
                j += 1
            o += 1
        size[d] = o
        cur, nxt = nxt, cur
    p = 2 * m - 2
    for d in range(limit - 1, -1, -1):
        if p > size[d]:
            for q in range(m):
                lengths[q] = 0
            return lengths
        a = 0
        for q in range(p):
            a += leaf[d, q]
        for q in range(a):
            lengths[q] += 1
        p = 2 * (p - a)
    return lengths


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
# Table statuses of qlc_read_table / qlc_build_tables (0 = ok); coders._QLC_TABLE_STATUS
# holds their messages.
QLC_TABLE_TRUNCATED = 1
QLC_TABLE_BAD_AREA_BITS = 2  # an area has more than 8 bits (or there are not 8 areas)
QLC_TABLE_REPEATED_SYMBOL = 3
QLC_TABLE_TOO_SMALL = 4  # the areas hold fewer ranks than there are symbols


@njit(cache=True, nogil=True)
def qlc_optimal_areas(counts):
    """Optimal QLC area bits for counts (int64[256], non-negative; checked by the caller).

    Returns (area bits uint8[8], order uint8[n]): order is the n present symbols by
    decreasing count, ties by increasing symbol (as qlc.rank_order), and the area bits
    minimize sum(count * (3 + b_area)) with the areas filled in rank order. cost[j] after
    area k: least bits of ranks [0, j) in areas 0..k, the best of area k empty (kept on
    ties), a full area of 2^b ranks [j - 2^b, j) for j < n (smaller b kept on ties) or,
    for j = n, an area holding the last 1..2^b ranks (smaller b, then smaller first rank
    kept on ties). These are the numpy version's candidates and tie-breaks, and its costs:
    float64 sums of the int64 prefix sums, evaluated in the same order, so the two return
    the same bits. Used areas are returned first, in order; empty areas last with 0 bits.

    Every index is below n + 1 <= counts.size + 1, or 8. With n <= 256 area 7 alone can
    hold every rank, so cost[n] ends finite and the backtrack ends at rank 0.
    """
    n = np.int64(0)
    for s in range(counts.size):
        if counts[s] > 0:
            n += 1
    ranked = _sorted_present(counts, n, True)  # equal counts by increasing symbol
    order = np.empty(n, np.uint8)
    W = np.zeros(n + 1, np.int64)  # W[j]: total count of ranks [0, j)
    Wf = np.zeros(n + 1, np.float64)
    for r in range(n):
        s = ranked[r]
        order[r] = np.uint8(s)
        W[r + 1] = W[r] + counts[s]
        Wf[r + 1] = np.float64(W[r + 1])
    bits = np.zeros(QLC_NAREAS, np.uint8)
    if n == 0:
        return bits, order
    cost = np.empty(n + 1, np.float64)  # a loop, not np.full: ~1 s less compile time
    for j in range(1, n + 1):
        cost[j] = np.inf
    cost[0] = 0.0
    new = np.empty(n + 1, np.float64)
    # choice[k, j]: b of area k when areas 0..k cover ranks [0, j), -1 if area k is empty;
    # prev[k, j]: the first rank of area k (j if it is empty).
    choice = np.empty((QLC_NAREAS, n + 1), np.int8)
    prev = np.empty((QLC_NAREAS, n + 1), np.int64)
    for k in range(QLC_NAREAS):
        for j in range(n):
            best = cost[j]  # area k empty
            bestb = np.int64(-1)
            besti = j
            for b in range(QLC_MAX_AREA_BITS + 1):
                size = 1 << b
                if size > j:
                    break
                cand = cost[j - size] + np.float64(b) * (Wf[j] - Wf[j - size])
                if cand < best:
                    best = cand
                    bestb = b
                    besti = j - size
            new[j] = best
            choice[k, j] = bestb
            prev[k, j] = besti
        best = cost[n]
        bestb = np.int64(-1)
        besti = n
        for b in range(QLC_MAX_AREA_BITS + 1):
            size = 1 << b
            fb = np.float64(b)
            bmin = np.inf  # first minimum over the first rank i of the last area
            bi = np.int64(-1)
            for i in range(max(0, n - size), n):
                cand = cost[i] + fb * (Wf[n] - Wf[i])
                if cand < bmin:
                    bmin = cand
                    bi = i
            if bmin < best:
                best = bmin
                bestb = b
                besti = bi
        new[n] = best
        choice[k, n] = bestb
        prev[k, n] = besti
        cost, new = new, cost
    used = np.zeros(QLC_NAREAS, np.uint8)  # area bits from the last used area back
    nused = np.int64(0)
    j = n
    for k in range(QLC_NAREAS - 1, -1, -1):
        if choice[k, j] >= 0:
            used[nused] = np.uint8(choice[k, j])
            nused += 1
        j = prev[k, j]
    for t in range(nused):
        bits[t] = used[nused - 1 - t]
    return bits, order


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
