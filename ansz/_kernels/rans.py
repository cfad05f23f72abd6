"""Kernels of rANS: byte histograms and their entropy, frequency normalization, encoder and
decoder tables, the interleaved encoder and decoders, frequency tables as varints (dense and
sparse, for symbol pairs); the encoders of the prefix codes (Huffman code lengths by
package-merge, canonical codes, QLC areas, the bit writer); and whole chunks in one call: a
coding-pair chunk's streams coded, each with rANS or a prefix code, whichever is smaller,
and 16- and 32-bit chunks decoded.

Self-contained (package docstring): every helper these kernels call and every constant they
read is defined here.

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

from .. import _numba_env  # noqa: F401  (sets NUMBA_CACHE_DIR before numba loads)

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

RANS_L = 1 << 15
NSTATES = 8
SCALE_BITS = 12
SCALE_BITS_HIGH = 14
SCALE_BITS_CHOICES = (SCALE_BITS, SCALE_BITS_HIGH)

# Decoder statuses (0 = ok), numbered as in the other kernel modules. Python wrappers turn
# them into errors.
DECODE_OK = 0
DECODE_TRUNCATED = 1
DECODE_BAD_STATE = 2
DECODE_TRAILING = 3
DECODE_BAD_PADDING = 5  # padding bits (of a prefix-coded stream or a packed plane) are not zero

# --------------------------------------------------------------------------- histograms
#
# What choosing a stream's coding counts: its bytes (all of them, or a sample), and the
# order-0 entropy of the counts.


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


#: code_histogram counts the first PAIR_SAMPLE codes one by one, and the rest two at a
#: time (a 65536-bin table of byte pairs) when those first ones span at most 2^PAIR_MAX_BITS
#: values in entropy (the pairs' hot bins then stay in L1) and no value has more than half
#: of them (pairs of one value would chain their increments), and PAIR_MIN codes remain.
#: Measured on 1 MiB chunks of codes, one core: mpnet bf16 exponents 0.24 -> 0.12 ms,
#: fp16 high bytes 0.20 -> 0.14 ms; uniform bytes would take 0.27 ms by pairs against 0.18,
#: a constant run 0.59 against 0.33, which the sample sends to byte_histogram.
PAIR_SAMPLE = 4096
PAIR_MIN = 1 << 15
PAIR_MAX_BITS = 6.0


@njit(cache=True, nogil=True)
def code_histogram(data, table):
    """byte_histogram of data (uint8[::1]), counted two bytes at a time where that is faster
    (see PAIR_SAMPLE). table: uint32[65536] scratch, its contents undefined on entry and on
    return; ValueError if it is smaller (unless data is small enough not to use it)."""
    n = data.size
    s = min(n, PAIR_SAMPLE)
    counts = byte_histogram(data[:s])
    top = np.int64(0)
    for v in range(256):
        top = max(top, counts[v])
    rest = n - s
    if (rest < PAIR_MIN or n >= (1 << 32) or 2 * top > s
            or entropy_bits(counts) > PAIR_MAX_BITS * s):
        more = byte_histogram(data[s:])
        for v in range(256):
            counts[v] += more[v]
        return counts
    if table.size < 65536:
        raise ValueError("code_histogram: table must hold 65536 entries")
    for v in range(65536):
        table[v] = 0
    pairs = data[s:s + rest // 2 * 2].view(np.uint16)
    m = pairs.size
    i = 0
    while i + 2 <= m:
        table[np.int64(pairs[i])] += 1
        table[np.int64(pairs[i + 1])] += 1
        i += 2
    if i < m:
        table[np.int64(pairs[i])] += 1
    if rest % 2:
        counts[data[n - 1]] += 1
    low = np.zeros(256, np.uint32)  # pair p = high * 256 + low: both bytes count
    for hi in range(256):
        acc = np.uint32(0)
        for lo in range(256):
            c = table[hi * 256 + lo]
            acc += c
            low[lo] += c
        counts[hi] += np.int64(acc)
    for v in range(256):
        counts[v] += np.int64(low[v])
    return counts


@njit(cache=True, nogil=True)
def entropy_bits(counts):
    """Order-0 entropy of counts (int64[A], none negative) times their total, in bits:
    sum(c * log2(total / c)) over the nonzero counts; 0.0 for an empty histogram."""
    total = np.int64(0)
    for c in counts:
        total += c
    if total == 0:
        return 0.0
    t = np.float64(total)
    acc = 0.0
    for c in counts:
        if c > 0:
            p = np.float64(c) / t
            acc -= p * np.log2(p)
    return acc * t


@njit(cache=True, nogil=True)
def sampled_entropy(data, step):
    """(entropy_bits of the histogram of data[::step], the sample's size) for a uint8[::1]
    array and step >= 1: how compressible a plane looks, without a full histogram."""
    h = np.zeros(256, np.int64)
    n = 0
    for i in range(0, data.size, step):
        h[data[i]] += 1
        n += 1
    return entropy_bits(h), n


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


@njit(cache=True, nogil=True, inline="always")
def _first_before(key, a, b, up):
    """Whether symbol a comes before b: the larger key (``up``) or the smaller, and on equal
    keys the smaller index (the order _argmax_first and _argmin_first scan in)."""
    if key[a] != key[b]:
        return key[a] > key[b] if up else key[a] < key[b]
    return a < b


@njit(cache=True, nogil=True)
def _sift_down(heap, size, i, key, up):
    """Restore the heap order of heap[:size] (symbols, in _first_before's order) below i."""
    while True:
        first = i
        for child in (2 * i + 1, 2 * i + 2):
            if child < size and _first_before(key, heap[child], heap[first], up):
                first = child
        if first == i:
            return
        heap[i], heap[first] = heap[first], heap[i]
        i = first


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
    # Fix the sum: one unit at a time to the symbol of largest gain (first index on ties)
    # while short, or from the one of smallest finite loss while over; the sum moves one way
    # only. Only the chosen symbol's value changes, so a heap of the candidates in that
    # order, its top re-sifted after each step, picks exactly what a scan would.
    if used != M:
        up = used < M
        key = gain if up else loss
        heap = np.empty(nsym, np.int64)
        size = 0
        for s in range(nsym):
            if (key[s] > -1.0) if up else (key[s] < np.inf):
                heap[size] = s
                size += 1
        for i in range(size // 2 - 1, -1, -1):
            _sift_down(heap, size, i, key, up)
        while used != M and size > 0:
            best = heap[0]
            if up:
                freq[best] += 1
                used += 1
            else:
                freq[best] -= 1
                used -= 1
            _unit_costs(counts[best], freq[best], gain, loss, best)
            if not up and not key[best] < np.inf:  # at frequency 1: no longer a donor
                size -= 1
                heap[0] = heap[size]
            _sift_down(heap, size, 0, key, up)
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
def plan_table(counts, min_gain):
    """The rANS table for a histogram (int64[A], none negative, 2 to 2^SCALE_BITS present):
    (scale_bits, freq uint32[A], coded bits of the words) with freq = normalize_counts at
    SCALE_BITS, or at SCALE_BITS_HIGH where that cuts the coded bits by more than the
    fraction min_gain. The high table is not built when the order-0 entropy is already
    within min_gain of the SCALE_BITS cost (a margin of 1e-9 absorbs rounding), since no
    table codes below it. ValueError for a histogram outside the contract."""
    present = 0
    for c in counts:
        if c < 0:
            raise ValueError("plan_table: a negative count")
        present += c > 0
    if present < 2 or present > (1 << SCALE_BITS):
        raise ValueError("plan_table: fewer than two symbols present, or too many")
    freq = normalize_counts(counts, SCALE_BITS)
    cost = coded_bits(counts, freq, SCALE_BITS)
    if entropy_bits(counts) * (1 - 1e-9) >= cost * (1 - min_gain):
        return SCALE_BITS, freq, cost
    high = normalize_counts(counts, SCALE_BITS_HIGH)
    high_cost = coded_bits(counts, high, SCALE_BITS_HIGH)
    if high_cost < cost * (1 - min_gain):
        return SCALE_BITS_HIGH, high, high_cost
    return SCALE_BITS, freq, cost


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
    """Read ids.size entries of a RANS_PAIRS stream's table (each two LEB128 varints: the
    gap to the previous value minus one, then the frequency) from buf[start:] into ids (uint16)
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


# --------------------------------------------------------------------------- wide rANS
#
# The same coder with 32 or 64 states (RANS_WIDE streams): symbol i belongs to state
# i % nstates and the words are consumed group by group, lane by lane, exactly as above. So
# many independent states let the decoder and encoder step 16 of them at once in vector
# registers: per 16 symbols a gather of the slot entries (and of the symbols), a multiply,
# and for the states that renormalize an expanding load of the next words (a compressing
# store when encoding), as in Giesen's "Interleaved entropy coders" (2014). The vector code
# is LLVM's generic masked gather / expand / compress intrinsics, emitted below through
# numba's @intrinsic; LLVM lowers them to AVX-512 instructions where the CPU has them (and to
# slower equivalent code where it does not). Measured on 1 MiB of bf16 codes, one core:
# 64 states decode at ~2.6 Gsym/s against ~0.83 for the 8-state loop above.

LANES = 16  # states stepped together: one 512-bit vector of uint32
WIDE_STATES = (32, 64)  # the state counts RANS_WIDE streams may use


def _declare(module, name, fnty):
    fn = module.globals.get(name)
    return fn if fn is not None else ir.Function(module, fnty, name=name)


def _vector_tools(builder):
    """(i1, i8, i16, i32, i64, vec, const, splat) for 16-lane LLVM IR in ``builder``."""
    i1, i8, i16, i32, i64 = (ir.IntType(b) for b in (1, 8, 16, 32, 64))

    def vec(t):
        return ir.VectorType(t, LANES)

    def const(t, c):
        return ir.Constant(vec(t), [c] * LANES)

    def splat(value, t):
        u = builder.insert_element(ir.Constant(vec(t), ir.Undefined), value, ir.Constant(i32, 0))
        return builder.shuffle_vector(u, ir.Constant(vec(t), ir.Undefined),
                                      ir.Constant(vec(i32), [0] * LANES))

    return i1, i8, i16, i32, i64, vec, const, splat


def _gather32(builder, base, index, scale):
    """16 uint32 loaded from the bytes at ``base + scale * index[k]`` (``base`` a pointer,
    ``index`` a vector of 16 non-negative i32, ``scale`` 1 or 4). The addresses are one
    vector GEP from the scalar base with 32-bit indices, the form x86 lowers to a single
    16-lane ``vpgatherdd``; 64-bit address vectors took two 8-lane gathers plus the widening,
    and decoding ran 15-30% slower."""
    i1, i8, _, i32, _, vec, const, _ = _vector_tools(builder)
    elem = i32 if scale == 4 else i8
    ptr = builder.bitcast(base, ir.PointerType(elem))
    gep = ir.instructions.GEPInstr(builder.block, ptr, [index], inbounds=True, name="",
                                   source_etype=elem)
    gep.type = ir.VectorType(ptr.type, LANES)  # llvmlite would type it by the scalar base
    builder._insert(gep)
    i32ptr = ir.PointerType(i32)
    gather = _declare(builder.module, "llvm.masked.gather.v16i32.v16p0",
                      ir.FunctionType(vec(i32), [vec(i32ptr), i32, vec(i1), vec(i32)]))
    return builder.call(gather, [builder.bitcast(gep, vec(i32ptr)), ir.Constant(i32, 1),
                                 const(i1, 1), const(i32, 0)])


def _popcount16(builder, mask):
    """The number of true lanes of a 16-lane i1 vector, as an i64."""
    i16, i64 = ir.IntType(16), ir.IntType(64)
    ctpop = _declare(builder.module, "llvm.ctpop.i16", ir.FunctionType(i16, [i16]))
    return builder.zext(builder.call(ctpop, [builder.bitcast(mask, i16)]), i64)


def _lane_loop(builder, stp, nvec, g0, p0, more, step):
    """The loop both lane kernels run, emitted at ``builder``: ``nvec`` vectors of 16 uint32
    states loaded from ``stp`` and stored back there at the end, a group counter ``g`` (from
    ``g0``) and a word pointer ``p`` (from ``p0``). While ``more(g, p)`` (an i1) holds, the
    body ``step(g, p, states)`` is emitted once and returns ``(g, p, states)`` for the next
    round. Returns ``(g, p)`` as they are when the loop ends."""
    i32, i64 = ir.IntType(32), ir.IntType(64)
    vec = ir.VectorType(i32, LANES)
    state_ptrs = [builder.bitcast(builder.gep(stp, [ir.Constant(i64, LANES * k)]),
                                  ir.PointerType(vec)) for k in range(nvec)]
    initial = [builder.load(ptr, align=4) for ptr in state_ptrs]
    entry = builder.basic_block
    head = builder.append_basic_block("lanes.head")
    body = builder.append_basic_block("lanes.body")
    done = builder.append_basic_block("lanes.done")
    builder.branch(head)
    builder.position_at_end(head)
    g, p = builder.phi(i64), builder.phi(i64)
    xs = [builder.phi(vec) for _ in range(nvec)]
    g.add_incoming(g0, entry)
    p.add_incoming(p0, entry)
    for x, x0 in zip(xs, initial):
        x.add_incoming(x0, entry)
    builder.cbranch(more(g, p), body, done)
    builder.position_at_end(body)
    g_next, p_next, new = step(g, p, xs)
    end = builder.basic_block
    g.add_incoming(g_next, end)
    p.add_incoming(p_next, end)
    for x, nx in zip(xs, new):
        x.add_incoming(nx, end)
    builder.branch(head)
    builder.position_at_end(done)
    for x, ptr in zip(xs, state_ptrs):
        builder.store(x, ptr, align=4)
    return g, p


def _lanes_decoder(nvec, joined=False):
    """An intrinsic: the fast loop of a decoder of 16 * nvec states.

    ``(words, dec_of_slot, sym_of_slot, out, st, ptr, ngroups, scale_bits) -> (groups, ptr)``
    decodes whole groups of 16 * nvec symbols, states from and back to ``st`` (uint32), while
    a group's worth of words remains (``ptr + 16 * nvec <= words.size``, so the expanding
    loads stay inside ``words``) and fewer than ``ngroups`` groups are done. The caller
    guarantees ``ngroups * 16 * nvec <= out.size``, ``dec_of_slot.size >= M`` and
    ``sym_of_slot.size >= M + 3`` (a symbol is read as 4 bytes at its own address), with
    ``M = 2^scale_bits``, and tables built from a valid frequency table, so each state
    stays in [RANS_L, 2^31) and each slot below M.

    ``joined``: ``(words, dec_of_slot, sym_of_slot, top, out, st, ptr, ngroups, scale_bits,
    shift, base) -> (groups, ptr)`` joins each symbol s with the byte of ``top`` (uint8) at
    its index into the 16-bit element of an 8-bit field at bit ``shift`` (0 <= shift <= 8)
    with ``base``, as join_fielded16 joins them: out (uint16) gets
    ``((r >> shift) << (shift + 8)) | (((s + base) & 255) << shift) | (r & (2^shift - 1))``.
    The caller also guarantees ``ngroups * 16 * nvec <= top.size``.
    """
    nin = 5 if joined else 4  # the arrays before st

    def codegen(context, builder, signature, args):
        arrays = [context.make_array(t)(context, builder, a)
                  for t, a in zip(signature.args[:nin + 1], args[:nin + 1])]
        wp, dp, sp = (a.data for a in arrays[:3])
        tp = arrays[3].data if joined else None
        op, stp = arrays[nin - 1].data, arrays[nin].data
        nw = arrays[0].nitems
        ptr0_v, ng_v, sb_v = args[nin + 1:nin + 4]
        i1, i8, i16, i32, i64, vec, const, splat = _vector_tools(builder)
        expand = _declare(builder.module, "llvm.masked.expandload.v16i16",
                          ir.FunctionType(vec(i16), [ir.PointerType(i16), vec(i1), vec(i16)]))
        sb = splat(builder.trunc(sb_v, i32), i32)
        slot_mask = builder.sub(builder.shl(const(i32, 1), sb), const(i32, 1))
        if joined:  # in 16-bit lanes (the elements' width)
            sh_v, base_v = (builder.trunc(a, i16) for a in args[nin + 4:nin + 6])
            sh = splat(sh_v, i16)
            # a shift by shift + 8 done as shift + 7, then 1: for shift 8 it would be 16,
            # which LLVM leaves undefined in 16-bit lanes
            top_sh = splat(builder.add(sh_v, ir.Constant(i16, 7)), i16)
            low = builder.sub(builder.shl(const(i16, 1), sh), const(i16, 1))
            b0 = splat(base_v, i16)

        def more(g, p):  # groups left, and a group's worth of words
            room = builder.icmp_signed("<=", builder.add(p, ir.Constant(i64, LANES * nvec)),
                                       nw)
            return builder.and_(builder.icmp_signed("<", g, ng_v), room)

        def put(at_index, s):  # the symbols (the low bytes of s), or their elements
            if not joined:
                at = builder.gep(op, [at_index])
                builder.store(builder.trunc(s, vec(i8)),
                              builder.bitcast(at, ir.PointerType(vec(i8))), align=1)
                return
            src = builder.bitcast(builder.gep(tp, [at_index]), ir.PointerType(vec(i8)))
            r = builder.zext(builder.load(src, align=1), vec(i16))
            t = builder.and_(builder.add(builder.trunc(s, vec(i16)), b0), const(i16, 0xFF))
            e = builder.shl(builder.shl(builder.lshr(r, sh), top_sh), const(i16, 1))
            e = builder.or_(builder.or_(e, builder.shl(t, sh)), builder.and_(r, low))
            at = builder.gep(op, [at_index])
            builder.store(e, builder.bitcast(at, ir.PointerType(vec(i16))), align=2)

        def step(g, p, xs):
            first = builder.mul(g, ir.Constant(i64, LANES * nvec))
            pc, new = p, []
            for k, x in enumerate(xs):
                slot = builder.and_(x, slot_mask)
                e = _gather32(builder, dp, slot, 4)
                s = _gather32(builder, sp, slot, 1)
                put(builder.add(first, ir.Constant(i64, LANES * k)), s)
                x = builder.add(builder.mul(builder.lshr(e, const(i32, 16)),
                                            builder.lshr(x, sb)),
                                builder.and_(e, const(i32, 0xFFFF)))
                low_x = builder.icmp_unsigned("<", x, const(i32, RANS_L))
                w = builder.call(expand, [builder.gep(wp, [pc]), low_x, const(i16, 0)])
                x = builder.select(low_x, builder.or_(builder.shl(x, const(i32, 16)),
                                                      builder.zext(w, vec(i32))), x)
                pc = builder.add(pc, _popcount16(builder, low_x))
                new.append(x)
            return builder.add(g, ir.Constant(i64, 1)), pc, new

        g, p = _lane_loop(builder, stp, nvec, ir.Constant(i64, 0), ptr0_v, more, step)
        return context.make_tuple(builder, signature.return_type, [g, p])

    if joined:
        @intrinsic
        def decode_joined(typingctx, words, dec_of_slot, sym_of_slot, top, out, st, ptr0,
                          ngroups, scale_bits, shift, base):
            return types.UniTuple(types.int64, 2)(words, dec_of_slot, sym_of_slot, top, out,
                                                  st, ptr0, ngroups, scale_bits, shift,
                                                  base), codegen

        return decode_joined

    @intrinsic
    def decode_groups(typingctx, words, dec_of_slot, sym_of_slot, out, st, ptr0, ngroups,
                      scale_bits):
        return types.UniTuple(types.int64, 2)(words, dec_of_slot, sym_of_slot, out, st, ptr0,
                                              ngroups, scale_bits), codegen

    return decode_groups


def _lanes_encoder(nvec):
    """An intrinsic: the whole groups of an encoder of 16 * nvec states.

    ``(codes, enc_lanes, out, st, ptr, ngroups, scale_bits) -> ptr`` encodes groups
    ``ngroups - 1`` down
    to 0 (of 16 * nvec codes each, lanes last to first), states from and back to ``st``
    (uint32), writing words below ``out[ptr]`` as rans_encode does: the states that
    renormalize store their low 16 bits with one compressing store. enc_lanes is
    encoder_table_lanes'; the caller guarantees every code has a row with freq >= 1,
    ``ngroups * 16 * nvec <= codes.size`` and ``ptr`` at least one word per code of room.
    """

    @intrinsic
    def encode_groups(typingctx, codes, enc_lanes, out, st, ptr0, ngroups, scale_bits):
        sig = types.int64(codes, enc_lanes, out, st, ptr0, ngroups, scale_bits)

        def codegen(context, builder, signature, args):
            arrays = [context.make_array(t)(context, builder, a)
                      for t, a in zip(signature.args[:4], args[:4])]
            cp, ep, op, stp = (a.data for a in arrays)
            ptr0_v, ng_v, sb_v = args[4:]
            i1, i8, i16, i32, i64, vec, const, splat = _vector_tools(builder)
            sb = splat(builder.trunc(sb_v, i32), i32)
            m = builder.shl(const(i32, 1), sb)
            x_max_shift = builder.sub(const(i32, 31), sb)
            compress = _declare(builder.module, "llvm.masked.compressstore.v16i16",
                                ir.FunctionType(ir.VoidType(), [vec(i16), ir.PointerType(i16), vec(i1)]))
            ctlz = _declare(builder.module, "llvm.ctlz.v16i32",
                            ir.FunctionType(vec(i32), [vec(i32), i1]))

            def more(g, p):  # groups left (encoded last to first)
                return builder.icmp_signed(">", g, ir.Constant(i64, 0))

            def step(g, p, xs):
                g1 = builder.sub(g, ir.Constant(i64, 1))
                first = builder.mul(g1, ir.Constant(i64, LANES * nvec))
                pc, new = p, [None] * nvec
                for k in reversed(range(nvec)):
                    x = xs[k]
                    src = builder.gep(cp, [builder.add(first, ir.Constant(i64, LANES * k))])
                    code = builder.load(builder.bitcast(src, ir.PointerType(vec(i8))), align=1)
                    row = builder.shl(builder.zext(code, vec(i32)), const(i32, 1))
                    rcp, packed = (_gather32(builder, ep, builder.add(row, const(i32, off)), 4)
                                   for off in (0, 1))
                    cmpl = builder.and_(packed, const(i32, 0xFFFF))
                    bias = builder.lshr(packed, const(i32, 16))
                    # x_max = ((RANS_L >> scale_bits) << 16) * freq, freq = M - cmpl, and
                    # rcp_shift = ceil(log2(freq)) - 1 (0 for freq 1), as encoder_table
                    freq = builder.sub(m, cmpl)
                    x_max = builder.shl(freq, x_max_shift)
                    ceil_log2 = builder.sub(const(i32, 32), builder.call(
                        ctlz, [builder.sub(freq, const(i32, 1)), ir.Constant(i1, 0)]))
                    at_least_1 = builder.icmp_unsigned(">", ceil_log2, const(i32, 1))
                    rcp_shift = builder.sub(builder.select(at_least_1, ceil_log2, const(i32, 1)),
                                            const(i32, 1))
                    big = builder.icmp_unsigned(">=", x, x_max)
                    pc = builder.sub(pc, _popcount16(builder, big))
                    builder.call(compress,
                                 [builder.trunc(x, vec(i16)), builder.gep(op, [pc]), big])
                    x = builder.select(big, builder.lshr(x, const(i32, 16)), x)
                    q = builder.trunc(builder.lshr(builder.mul(builder.zext(x, vec(i64)),
                                                               builder.zext(rcp, vec(i64))),
                                                   const(i64, 32)), vec(i32))
                    q = builder.lshr(q, rcp_shift)
                    new[k] = builder.add(builder.add(x, bias), builder.mul(q, cmpl))
                return g1, pc, new

            _, p = _lane_loop(builder, stp, nvec, ng_v, ptr0_v, more, step)
            return p

        return sig, codegen

    return encode_groups


_decode_groups32 = _lanes_decoder(2)
_decode_groups64 = _lanes_decoder(4)
_decode_joined32 = _lanes_decoder(2, joined=True)
_decode_joined64 = _lanes_decoder(4, joined=True)
_encode_groups32 = _lanes_encoder(2)
_encode_groups64 = _lanes_encoder(4)


@njit(cache=True, nogil=True)
def encoder_table_lanes(freq, scale_bits):
    """uint32[A * 2]: symbol s at [2s, 2s+2) = (rcp_freq, (bias << 16) | cmpl_freq), the part
    of encoder_table's row the lane encoder looks up (rcp_freq < 2^32, bias < 2^15, cmpl_freq
    < 2^14 for a symbol with freq >= 1); it computes x_max and rcp_shift from freq = M -
    cmpl_freq."""
    enc = encoder_table(freq, scale_bits)
    out = np.empty(freq.size * 2, np.uint32)
    for s in range(freq.size):
        out[2 * s] = np.uint32(enc[8 * s + 1])
        out[2 * s + 1] = np.uint32((enc[8 * s + 3] << np.uint64(16)) | enc[8 * s + 4])
    return out


@njit(cache=True, nogil=True)
def rans_encode_wide(codes, enc, enc_lanes, out, nstates, scale_bits):
    """rans_encode with nstates (32 or 64) states: codes (uint8) into out (uint16[::1], at
    least codes.size + 2 * nstates words), words written backwards from its end; returns the
    index of the first word. enc and enc_lanes are encoder_table's and encoder_table_lanes'
    for the same frequencies (every code's >= 1) at scale_bits. The codes past the last whole group go
    first, one by one; the whole groups then 16 states at a time. Returns -1 (nothing
    written) for another nstates or too small an out."""
    if (nstates != 32 and nstates != 64) or out.size < codes.size + 2 * nstates:
        return -1
    n = np.uint64(codes.size)
    ns = np.uint64(nstates)
    ptr = np.uint64(out.size)
    states = np.full(nstates, np.uint64(RANS_L), np.uint64)
    full = (n // ns) * ns
    i = n
    while i > full:
        i -= np.uint64(1)
        j = i - full
        states[j], ptr = _enc_put(states[j], codes[i], enc, out, ptr)
    st = np.empty(nstates, np.uint32)
    for j in range(nstates):
        st[j] = np.uint32(states[j])
    sb = np.int64(scale_bits)
    if nstates == 32:
        p = _encode_groups32(codes, enc_lanes, out, st, np.int64(ptr), np.int64(full // ns), sb)
    else:
        p = _encode_groups64(codes, enc_lanes, out, st, np.int64(ptr), np.int64(full // ns), sb)
    p -= 2 * nstates
    for j in range(nstates):
        out[p + 2 * j] = np.uint16(st[j] & np.uint32(0xFFFF))
        out[p + 2 * j + 1] = np.uint16(st[j] >> np.uint32(16))
    return p


@njit(cache=True, nogil=True, inline="always")
def _wide_states(words, nstates):
    """The nstates initial states of a RANS_WIDE stream's words, and a DECODE_* status:
    DECODE_TRUNCATED if the words cannot hold them, DECODE_BAD_STATE if one is outside
    [RANS_L, 2^31)."""
    st = np.empty(nstates, np.uint32)
    if words.size < 2 * nstates:
        return DECODE_TRUNCATED, st
    for j in range(nstates):
        xj = np.uint32(words[2 * j]) | (np.uint32(words[2 * j + 1]) << np.uint32(16))
        if xj < np.uint32(RANS_L) or xj >= np.uint32(1 << 31):
            return DECODE_BAD_STATE, st
        st[j] = xj
    return DECODE_OK, st


@njit(cache=True, nogil=True, inline="always")
def _wide_step(st, j, sym_of_slot, dec_of_slot, words, ptr, scale_bits):
    """One symbol of state st[j], every read checked: (symbol, ptr); ptr -1 if the words
    ran out."""
    xj = st[j]
    slot = xj & np.uint32((1 << scale_bits) - 1)
    s = sym_of_slot[slot]
    e = dec_of_slot[slot]
    xj = (e >> np.uint32(16)) * (xj >> np.uint32(scale_bits)) + (e & np.uint32(0xFFFF))
    if xj < np.uint32(RANS_L):
        if ptr >= words.size:
            return s, np.int64(-1)
        xj = (xj << np.uint32(16)) | np.uint32(words[ptr])
        ptr += 1
    st[j] = np.uint32(xj)
    return s, ptr


@njit(cache=True, nogil=True, inline="always")
def _wide_end(st, ptr, nw):
    """The status of a RANS_WIDE stream decoded up to word ptr of nw with states st: every
    word read and every state back at the encoder's initial RANS_L."""
    if ptr != nw:
        return DECODE_TRAILING
    for j in range(st.size):
        if st[j] != np.uint32(RANS_L):
            return DECODE_BAD_STATE
    return DECODE_OK


@njit(cache=True, nogil=True, inline="always")
def _wide_tables_ok(sym_of_slot, dec_of_slot, scale_bits):
    """The slot tables are large enough for the lane loop (M entries, M + 3 symbols)."""
    return (sym_of_slot.size >= (1 << scale_bits) + 3
            and dec_of_slot.size >= (1 << scale_bits))


@njit(cache=True, nogil=True, inline="always")
def _rans_decode_wide(words, sym_of_slot, dec_of_slot, out, nstates, scale_bits):
    """_rans_decode for a stream of nstates (32 or 64) states: the lane loop while a group's
    words remain, then a careful loop checking every read. sym_of_slot (uint8) must have
    M + 3 entries (the lane loop reads a symbol as 4 bytes); the rest as _rans_decode.
    Returns a DECODE_* status; another nstates is DECODE_BAD_STATE, a table of the wrong
    size DECODE_TRUNCATED."""
    n = out.size
    if nstates != 32 and nstates != 64:
        return DECODE_BAD_STATE
    if not _wide_tables_ok(sym_of_slot, dec_of_slot, scale_bits):
        return DECODE_TRUNCATED
    status, st = _wide_states(words, nstates)
    if status != DECODE_OK:
        return status
    ptr = np.int64(2 * nstates)
    if nstates == 32:
        groups, ptr = _decode_groups32(words, dec_of_slot, sym_of_slot, out, st, ptr,
                                       np.int64(n // 32), np.int64(scale_bits))
    else:
        groups, ptr = _decode_groups64(words, dec_of_slot, sym_of_slot, out, st, ptr,
                                       np.int64(n // 64), np.int64(scale_bits))
    for i in range(groups * nstates, n):
        out[i], ptr = _wide_step(st, i % nstates, sym_of_slot, dec_of_slot, words, ptr,
                                 scale_bits)
        if ptr < 0:
            return DECODE_TRUNCATED
    return _wide_end(st, ptr, words.size)


@njit(cache=True, nogil=True, inline="always")
def _rans_decode_wide_joined(words, sym_of_slot, dec_of_slot, top, shift, base, elems,
                             nstates, scale_bits):
    """_rans_decode_wide of elems.size codes, each joined with top[i] (uint8, at least
    elems.size) into elems[i] (uint16) as an 8-bit field at bit ``shift`` (0 to 8) with
    ``base`` (below 256): the lane decoder's ``joined`` form, no codes written aside.
    Returns a DECODE_* status (DECODE_TRUNCATED also for a short top or shift/base out of
    range)."""
    n = elems.size
    if nstates != 32 and nstates != 64:
        return DECODE_BAD_STATE
    if (not _wide_tables_ok(sym_of_slot, dec_of_slot, scale_bits) or top.size < n
            or not (0 <= shift <= 8) or not (0 <= base < 256)):
        return DECODE_TRUNCATED
    status, st = _wide_states(words, nstates)
    if status != DECODE_OK:
        return status
    ptr = np.int64(2 * nstates)
    sh64, base64 = np.int64(shift), np.int64(base)
    if nstates == 32:
        groups, ptr = _decode_joined32(words, dec_of_slot, sym_of_slot, top, elems, st, ptr,
                                       np.int64(n // 32), np.int64(scale_bits), sh64, base64)
    else:
        groups, ptr = _decode_joined64(words, dec_of_slot, sym_of_slot, top, elems, st, ptr,
                                       np.int64(n // 64), np.int64(scale_bits), sh64, base64)
    sh = np.uint32(shift)
    low = (np.uint32(1) << sh) - np.uint32(1)
    for i in range(groups * nstates, n):
        s, ptr = _wide_step(st, i % nstates, sym_of_slot, dec_of_slot, words, ptr, scale_bits)
        if ptr < 0:
            return DECODE_TRUNCATED
        t = (np.uint32(s) + np.uint32(base)) & np.uint32(0xFF)
        elems[i] = _joined16(np.uint32(top[i]), t, sh, sh + np.uint32(8), low)
    return _wide_end(st, ptr, words.size)


@njit(cache=True, nogil=True)
def rans_decode_wide12(words, sym_of_slot, dec_of_slot, out, nstates):
    """_rans_decode_wide with M = 2^12."""
    return _rans_decode_wide(words, sym_of_slot, dec_of_slot, out, nstates, 12)


@njit(cache=True, nogil=True)
def rans_decode_wide14(words, sym_of_slot, dec_of_slot, out, nstates):
    """_rans_decode_wide with M = 2^14."""
    return _rans_decode_wide(words, sym_of_slot, dec_of_slot, out, nstates, 14)


# --------------------------------------------------------------------------- compact tables
#
# RANS_WIDE streams code their frequency table by bit lengths: for each entry f, its bit
# length b (0 for f = 0) as a change from the previous entry's (a prefix code: "0" same,
# "10s" +-1, "110s" +-2 with s = 1 for a decrease, "111" then b in 4 bits), then the b - 1
# bits of f below its leading 1. Bits go MSB-first; the last byte is zero-padded, and a zero
# byte follows if the table takes an odd number of bytes. Neighbouring symbols of a weight
# histogram have frequencies of similar size, so this takes about half the bytes of varints.


@njit(cache=True, nogil=True, inline="always")
def _put_bits(out, p, acc, nacc, value, nbits):
    """Append the low nbits of value to the bit accumulator (acc, nacc < 8 bits pending),
    flushing whole bytes to out[p:]; returns (p, acc, nacc)."""
    acc = (acc << np.uint64(nbits)) | np.uint64(value)
    nacc += nbits
    while nacc >= 8:
        nacc -= 8
        out[p] = np.uint8((acc >> np.uint64(nacc)) & np.uint64(0xFF))
        p += 1
    acc &= (np.uint64(1) << np.uint64(nacc)) - np.uint64(1)
    return p, acc, nacc


@njit(cache=True, nogil=True)
def write_bitlen_table(freq, out):
    """Write freq (uint32, each < 2^15) as the compact table above into out (uint8, at least
    3 * freq.size + 2 bytes). Returns the bytes written, padding included."""
    p = 0
    acc = np.uint64(0)
    nacc = 0
    prev = 0
    for i in range(freq.size):
        f = np.int64(freq[i])
        b = 0
        while (np.int64(1) << b) <= f:
            b += 1
        d = b - prev
        if d == 0:
            p, acc, nacc = _put_bits(out, p, acc, nacc, 0, 1)
        elif d == 1 or d == -1:
            p, acc, nacc = _put_bits(out, p, acc, nacc, 4 | np.int64(d < 0), 3)
        elif d == 2 or d == -2:
            p, acc, nacc = _put_bits(out, p, acc, nacc, 12 | np.int64(d < 0), 4)
        else:
            p, acc, nacc = _put_bits(out, p, acc, nacc, (7 << 4) | b, 7)
        if b >= 2:
            p, acc, nacc = _put_bits(out, p, acc, nacc, f - (np.int64(1) << (b - 1)), b - 1)
        prev = b
    if nacc:
        p, acc, nacc = _put_bits(out, p, acc, nacc, 0, 8 - nacc)
    return _pad_even(out, p)


@njit(cache=True, nogil=True)
def read_bitlen_table(buf, start, freq):
    """Read freq.size entries written by write_bitlen_table from buf[start:] into freq
    (uint32). Returns where the table ends (after its padding), -1 if buf ends first, -2 for
    a bit length above 15 or nonzero padding bits or byte. Every read is checked."""
    pos = np.int64(start) * 8  # bit position
    end = np.int64(buf.size) * 8
    prev = 0
    for i in range(freq.size):
        # the change of bit length: up to 7 bits
        if pos >= end:
            return -1
        bit = (buf[pos >> 3] >> (7 - (pos & 7))) & 1
        pos += 1
        if bit == 0:
            b = prev
        else:
            code = 0
            for _ in range(2):
                if pos >= end:
                    return -1
                code = (code << 1) | ((buf[pos >> 3] >> (7 - (pos & 7))) & 1)
                pos += 1
            if code < 2:  # "10s"
                b = prev - 1 if code == 1 else prev + 1
            elif code == 2:  # "110s"
                if pos >= end:
                    return -1
                s = (buf[pos >> 3] >> (7 - (pos & 7))) & 1
                pos += 1
                b = prev - 2 if s else prev + 2
            else:  # "111" then 4 bits
                b = 0
                for _ in range(4):
                    if pos >= end:
                        return -1
                    b = (b << 1) | ((buf[pos >> 3] >> (7 - (pos & 7))) & 1)
                    pos += 1
        if b < 0 or b > 15:
            return -2
        f = np.int64(0)
        if b >= 1:
            f = np.int64(1)
            for _ in range(b - 1):
                if pos >= end:
                    return -1
                f = (f << 1) | np.int64((buf[pos >> 3] >> (7 - (pos & 7))) & 1)
                pos += 1
        freq[i] = np.uint32(f)
        prev = b
    while pos & 7:  # padding bits: zero
        if (buf[pos >> 3] >> (7 - (pos & 7))) & 1:
            return -2
        pos += 1
    p = pos >> 3
    if p % 2:
        if p >= buf.size:
            return -1
        if buf[p] != 0:
            return -2
        p += 1
    return p


# --------------------------------------------------------------------------- joining 16-bit pairs
#
# The inverse of fields.split_pairs16 for a decoded chunk: an element is its field value
# (code + base, modulo 2^bits; or, for a field wider than 8 bits, the value stored aside for
# an escape code 255) at bit `shift`, with the raw value's bits around it (docs/FORMAT.md,
# "Fielded chunk payload"). It lives beside the rANS decoders so that decode_pairs16 can
# decode a whole chunk in one call.

JOIN16_LANES = 32  # 16-bit elements _join16_vectors joins at once: 512 bits


def _join16_vectors(nsrc):
    """An intrinsic: the whole vectors of one run of join_fielded16 whose top values come
    from ``nsrc`` (1 to 3) byte sources, JOIN16_LANES elements at a time in 16-bit lanes.

    ``(elems, codes, top, escaped, params, first, nvec, k, shift, bits, base, patch) -> k``
    joins elements first .. first + nvec * JOIN16_LANES - 1. Element i's top value is the OR
    over sources s of ((top[i + params[4s]] >> params[4s + 1]) & params[4s + 2]) <<
    params[4s + 3]. With ``patch`` nonzero, a vector whose codes include 255 takes the field
    values of its escapes from escaped[k:] in order (one expanding load) when all of them
    are there (k + their number <= escaped.size), and k advances by their number either
    way; the new k is returned. The caller guarantees every index read or written lies in
    its array, a valid field (8 <= bits, shift + bits <= 16, base < 2^bits) and params
    with shifts under 8 and masks under 256. All scalars are int64.
    """

    @intrinsic
    def join_vectors(typingctx, elems, codes, top, escaped, params, first, nvec, k0, shift,
                     bits, base, patch):
        sig = types.int64(elems, codes, top, escaped, params, first, nvec, k0, shift, bits,
                          base, patch)

        def codegen(context, builder, signature, args):
            arrays = [context.make_array(t)(context, builder, a)
                      for t, a in zip(signature.args[:5], args[:5])]
            ep, cp, tp, xp, pp = (a.data for a in arrays)
            nesc = arrays[3].nitems
            first, nv, k0_v, sh_v, bits_v, base_v, patch_v = args[5:]
            i1, i8, i16, i32, i64 = (ir.IntType(b) for b in (1, 8, 16, 32, 64))
            lanes = JOIN16_LANES
            v16, v8, v1 = (ir.VectorType(t, lanes) for t in (i16, i8, i1))
            mask_int = ir.IntType(lanes)

            def splat(value):  # an i16, or an i64 taken modulo 2^16
                if value.type != i16:
                    value = builder.trunc(value, i16)
                u = builder.insert_element(ir.Constant(v16, ir.Undefined), value,
                                           ir.Constant(i32, 0))
                return builder.shuffle_vector(u, ir.Constant(v16, ir.Undefined),
                                              ir.Constant(ir.VectorType(i32, lanes), [0] * lanes))

            def param(j):
                return builder.load(builder.gep(pp, [ir.Constant(i64, j)]))

            srcs = [(param(4 * s), splat(param(4 * s + 1)), splat(param(4 * s + 2)),
                     splat(param(4 * s + 3))) for s in range(nsrc)]
            one = ir.Constant(i16, 1)
            sh16 = builder.trunc(sh_v, i16)
            bits16 = builder.trunc(bits_v, i16)
            sh = splat(sh16)
            top_sh = splat(builder.sub(builder.add(sh16, bits16), one))  # shift + bits - 1
            fmask = splat(builder.sub(builder.shl(one, bits16), one))
            low = splat(builder.sub(builder.shl(one, sh16), one))
            b0 = splat(base_v)
            ones = ir.Constant(v16, [1] * lanes)
            c255 = ir.Constant(v8, [255] * lanes)
            patch_mask = builder.select(builder.icmp_signed("!=", patch_v, ir.Constant(i64, 0)),
                                        ir.Constant(mask_int, -1), ir.Constant(mask_int, 0))
            ctpop = _declare(builder.module, f"llvm.ctpop.i{lanes}",
                             ir.FunctionType(mask_int, [mask_int]))
            expand = _declare(builder.module, f"llvm.masked.expandload.v{lanes}i16",
                              ir.FunctionType(v16, [ir.PointerType(i16), v1, v16]))

            def load(ptr, at, t):
                return builder.load(builder.bitcast(builder.gep(ptr, [at]), ir.PointerType(t)),
                                    align=1)

            entry = builder.basic_block
            head = builder.append_basic_block("join.head")
            body = builder.append_basic_block("join.body")
            esc = builder.append_basic_block("join.escapes")
            store = builder.append_basic_block("join.store")
            done = builder.append_basic_block("join.done")
            builder.branch(head)
            builder.position_at_end(head)
            j, k = builder.phi(i64), builder.phi(i64)
            j.add_incoming(ir.Constant(i64, 0), entry)
            k.add_incoming(k0_v, entry)
            builder.cbranch(builder.icmp_signed("<", j, nv), body, done)

            builder.position_at_end(body)
            at = builder.add(first, builder.mul(j, ir.Constant(i64, lanes)))
            code8 = load(cp, at, v8)
            t = builder.and_(builder.add(builder.zext(code8, v16), b0), fmask)
            r = None
            for off, shr, msk, shl in srcs:
                v = builder.zext(load(tp, builder.add(at, off), v8), v16)
                v = builder.shl(builder.and_(builder.lshr(v, shr), msk), shl)
                r = v if r is None else builder.or_(r, v)
            is_esc = builder.icmp_unsigned("==", code8, c255)
            bits_esc = builder.and_(builder.bitcast(is_esc, mask_int), patch_mask)
            builder.cbranch(builder.icmp_unsigned("!=", bits_esc, ir.Constant(mask_int, 0)),
                            esc, store)

            builder.position_at_end(esc)  # rare: the vector holds escapes
            k_end = builder.add(k, builder.zext(builder.call(ctpop, [bits_esc]), i64))
            fits = builder.icmp_signed("<=", k_end, nesc)
            take = builder.select(fits, is_esc, ir.Constant(v1, [0] * lanes))
            got = builder.call(expand, [builder.gep(xp, [k]), take, ir.Constant(v16, [0] * lanes)])
            t_esc = builder.select(take, builder.and_(got, fmask), t)
            builder.branch(store)

            builder.position_at_end(store)
            t_all, k_next = builder.phi(v16), builder.phi(i64)
            t_all.add_incoming(t, body)
            t_all.add_incoming(t_esc, esc)
            k_next.add_incoming(k, body)
            k_next.add_incoming(k_end, esc)
            # (r >> shift) << (shift + bits) as two shifts: shift + bits may be 16
            e = builder.shl(builder.shl(builder.lshr(r, sh), top_sh), ones)
            e = builder.or_(builder.or_(e, builder.shl(t_all, sh)), builder.and_(r, low))
            builder.store(e, builder.bitcast(builder.gep(ep, [at]), ir.PointerType(v16)),
                          align=2)
            j.add_incoming(builder.add(j, ir.Constant(i64, 1)), store)
            k.add_incoming(k_next, store)
            builder.branch(head)

            builder.position_at_end(done)
            return k

        return sig, codegen

    return join_vectors


_join16_vectors1 = _join16_vectors(1)
_join16_vectors2 = _join16_vectors(2)
_join16_vectors3 = _join16_vectors(3)


@njit(cache=True, nogil=True, inline="always")
def _joined16(r, t, sh, sb, low):
    """The 16-bit element of raw value r and field value t, the field at bits [sh, sb) and
    low = 2^sh - 1 (all uint32): the scalar form of the joins below."""
    return np.uint16(((r >> sh) << sb) | (t << sh) | (r & low))


@njit(cache=True, nogil=True, inline="always")
def _join16_run(elems, codes, top, escaped, params, nsrc, a, b, k, shift, bits, base, patch):
    """Join elements a .. b - 1 as join_fielded16 does, the top value of element i being
    the OR over the nsrc sources of params (see _join16_vectors): whole vectors by the
    intrinsic, the rest one by one. Returns the next escape index k."""
    nvec = (b - a) // JOIN16_LANES
    if nvec > 0:
        a64, nv, sh64, bits64, base64 = (np.int64(a), np.int64(nvec), np.int64(shift),
                                         np.int64(bits), np.int64(base))
        if nsrc == 1:
            k = _join16_vectors1(elems, codes, top, escaped, params, a64, nv, k, sh64, bits64,
                                 base64, patch)
        elif nsrc == 2:
            k = _join16_vectors2(elems, codes, top, escaped, params, a64, nv, k, sh64, bits64,
                                 base64, patch)
        else:
            k = _join16_vectors3(elems, codes, top, escaped, params, a64, nv, k, sh64, bits64,
                                 base64, patch)
    sh = np.uint32(shift)
    sb = sh + np.uint32(bits)
    fmask = (np.uint32(1) << np.uint32(bits)) - np.uint32(1)
    low = (np.uint32(1) << sh) - np.uint32(1)
    b0 = np.uint32(base)
    for i in range(a + nvec * JOIN16_LANES, b):
        r = np.uint32(0)
        for s in range(nsrc):
            v = np.uint32(top[i + params[4 * s]]) >> np.uint32(params[4 * s + 1])
            r |= (v & np.uint32(params[4 * s + 2])) << np.uint32(params[4 * s + 3])
        c = codes[i]
        t = (np.uint32(c) + b0) & fmask
        if patch and c == 255:
            if k < escaped.size:
                t = np.uint32(escaped[k]) & fmask
            k += 1
        elems[i] = _joined16(r, t, sh, sb, low)
    return k


@njit(cache=True, nogil=True, inline="always")
def _set_source(src, s, start, nbytes, kb, at):
    """Row s of join_fielded16's sources (at least 1 byte, so that i // S is defined)."""
    src[s, 0] = start
    src[s, 1] = max(nbytes, 1)
    src[s, 2] = kb
    src[s, 3] = at


@njit(cache=True, nogil=True)
def join_fielded16(codes, top, shift, bits, base, packed, escaped, elems):
    """Inverse of split_pairs16 for a fielded chunk, its escapes put back, in one pass:
    (status, count).

    codes: uint8[n]; elems: uint16[n], written. top: the last raw plane, one byte per
    element (n bytes) unless ``packed`` and the field is wider than 8 bits, when it is the
    plane of 16 - bits bit values packed as pack_top packs them. For a field wider than 8
    bits the k-th element whose code is 255 takes field value escaped[k] (uint16, modulo
    2^bits); count is the number of codes 255 (0 for an 8-bit field, whose 255 is a value).
    On a count other than escaped.size, which the caller reports as corrupt, the escaped
    elements are unspecified. status is DECODE_BAD_PADDING if a packed plane's padding bits
    are not zero, else DECODE_OK. ValueError for sizes or a field outside this contract.
    """
    n = elems.size
    if not (8 <= bits <= 12 and shift + bits <= 16 and base < (np.uint32(1) << bits)):
        raise ValueError("join_fielded16: the field does not fit 16-bit elements")
    if codes.size != n:
        raise ValueError("join_fielded16: codes and elems differ in size")
    w = 16 - np.int64(bits) if packed else np.int64(8)
    s4, s2, s1 = (n + 1) // 2, (n + 3) // 4, (n + 7) // 8
    # the sources of the top value: (first byte, bytes S, bits per value kb, bit of the
    # value); value i of a source sits in its byte i % S at bit (i // S) * kb
    src = np.zeros((3, 4), np.int64)
    if w == 8:
        _set_source(src, 0, 0, n, 8, 0)
        nsrc, size = 1, n
    else:
        _set_source(src, 0, 0, s4, 4, 0)
        nsrc, size = 1, s4
        if w >= 6:
            _set_source(src, 1, size, s2, 2, 4)
            nsrc, size = 2, size + s2
        if w % 2 == 1:
            _set_source(src, nsrc, size, s1, 1, w - 1)
            nsrc, size = nsrc + 1, size + s1
    if top.size != size:
        raise ValueError("join_fielded16: the top plane has the wrong size")
    ok = True
    for s in range(nsrc):  # packed: the fields past the last value are padding, zero
        start, m_bytes, kb = src[s, 0], src[s, 1], src[s, 2]
        if kb == 8 or n == 0:
            continue
        m = 8 // kb
        for jb in range(max(0, n - (m - 1) * m_bytes), m_bytes):
            b = top[start + jb]
            for q in range(m):
                if q * m_bytes + jb >= n:
                    ok &= ((b >> np.uint8(q * kb)) & np.uint8((1 << kb) - 1)) == 0
    patch = np.int64(bits > 8)
    params = np.zeros(12, np.int64)
    k = np.int64(0)
    a = np.int64(0)
    while a < n:  # runs over which every source's slice is one
        b = n
        for s in range(nsrc):
            start, m_bytes, kb, at = src[s, 0], src[s, 1], src[s, 2], src[s, 3]
            q = a // m_bytes
            b = min(b, (q + 1) * m_bytes)
            params[4 * s] = start - q * m_bytes
            params[4 * s + 1] = q * kb
            params[4 * s + 2] = (1 << kb) - 1
            params[4 * s + 3] = at
        k = _join16_run(elems, codes, top, escaped, params, nsrc, a, b, k, shift, bits, base,
                        patch)
        a = b
    return (DECODE_OK if ok else DECODE_BAD_PADDING), k


# A packed last raw plane of w bits (4 <= w <= 7) is the sliced sub-planes of its bits, low
# first, as fields.pack_top writes them; unpack_top reads them back. Each (k, at) is spelled
# out with literal constants: LLVM vectorizes a loop whose shifts are constants, and a
# runtime shift measured 5-10x slower.


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


# --------------------------------------------------------------------------- whole chunks
#
# Nearly every chunk of a 16- or 32-bit float model has one shape: each of its streams (the
# codes, the raw planes, a packed last plane, the escaped values) STORED, CONSTANT, RANS or
# RANS_WIDE. decode_pairs16 and decode_pairs32 decode such a payload in one call, with the
# GIL released throughout, where the general path (ansz.chunks) takes a Python step and a
# kernel call per stream. They check everything the general path checks for that shape and
# give up (return 0) on anything else, valid or not: the caller then decodes the payload the
# general way, which reports what is wrong. The payload starts at an even address, so the
# words of a rANS stream (at an even offset: frames and tables are padded) are aligned.

# The stream methods of docs/FORMAT.md ("Stream") read here (ansz.streams names them all).
METHOD_STORED = 0
METHOD_CONSTANT = 1
METHOD_RANS = 6
METHOD_RANS_WIDE = 8


@njit(cache=True, nogil=True, inline="always")
def _u32_at(buf, p):
    """The little-endian u32 at buf[p:p + 4] (the caller checked p + 4 <= buf.size)."""
    return (np.int64(buf[p]) | (np.int64(buf[p + 1]) << 8) | (np.int64(buf[p + 2]) << 16)
            | (np.int64(buf[p + 3]) << 24))


@njit(cache=True, nogil=True, inline="always")
def _frame(buf, p):
    """The stream framed at buf[p:] (u32 length, body, a zero byte if the length is odd):
    (body start, body length, where the next frame starts), or (-1, 0, 0) if the frame is
    truncated or its pad byte is not zero."""
    nb = buf.size
    if p + 4 > nb:
        return -1, 0, 0
    length = _u32_at(buf, p)
    start = p + 4
    if length > nb - start:
        return -1, 0, 0
    nxt = start + length
    if length & 1:
        if nxt >= nb or buf[nxt] != 0:
            return -1, 0, 0
        nxt += 1
    return start, length, nxt


@njit(cache=True, nogil=True, inline="always")
def _table_ok(freq, scale_bits):
    """What check_freq_table checks: scale_bits 12 or 14, a sum of 2^scale_bits, at least
    two symbols."""
    if scale_bits != SCALE_BITS and scale_bits != SCALE_BITS_HIGH:
        return False
    total = np.int64(0)
    present = 0
    for s in range(256):
        total += np.int64(freq[s])
        present += freq[s] != 0
    return total == (np.int64(1) << scale_bits) and present >= 2


@njit(cache=True, nogil=True, inline="always")
def _code_stream_tables(blob, sym_of_slot, dec_of_slot, freq):
    """Read the header and frequency table of the RANS or RANS_WIDE stream ``blob`` and
    build its slot tables: (nstates, scale_bits, where its words start), nstates 0 for any
    other method or anything wrong. sym_of_slot (uint8) holds at least 2^14 + 3 entries,
    dec_of_slot (uint32) 2^14; freq is uint32[256] scratch."""
    nb = blob.size
    if nb < 4:
        return 0, 0, 0
    method = blob[0]
    scale_bits = np.int64(blob[1])
    first = np.int64(blob[2])
    last = np.int64(blob[3])
    if last < first:
        return 0, 0, 0
    for s in range(256):
        freq[s] = 0
    if method == METHOD_RANS_WIDE:
        if nb < 6 or blob[5] != 0 or (blob[4] != 5 and blob[4] != 6):
            return 0, 0, 0
        nstates = np.int64(1) << np.int64(blob[4])
        end = read_bitlen_table(blob, 6, freq[first:last + 1])
        if end < 0:
            return 0, 0, 0
    elif method == METHOD_RANS:
        nstates = np.int64(NSTATES)
        end = read_varints(blob, 4, freq[first:last + 1])
        if end < 0:
            return 0, 0, 0
        if end % 2:
            if end >= nb or blob[end] != 0:
                return 0, 0, 0
            end += 1
    else:
        return 0, 0, 0
    if (nb - end) % 2 or not _table_ok(freq, scale_bits):
        return 0, 0, 0
    m = np.int64(1) << scale_bits
    if sym_of_slot.size < m + 3 or dec_of_slot.size < m:
        return 0, 0, 0
    build_decoder_tables(np.arange(256).astype(np.uint8), freq, sym_of_slot[:m],
                         dec_of_slot[:m])
    return nstates, scale_bits, end


@njit(cache=True, nogil=True)
def _decode_code_stream(blob, codes, sym_of_slot, dec_of_slot, freq):
    """Decode the RANS or RANS_WIDE stream ``blob`` into ``codes`` (its size is the symbol
    count); False for any other method or anything wrong. sym_of_slot, dec_of_slot, freq:
    as _code_stream_tables."""
    nstates, scale_bits, end = _code_stream_tables(blob, sym_of_slot, dec_of_slot, freq)
    if nstates == 0:
        return False
    words = blob[end:].view(np.uint16)
    if nstates == NSTATES:
        if scale_bits == SCALE_BITS:
            status = _rans_decode(words, sym_of_slot, dec_of_slot, codes, SCALE_BITS)
        else:
            status = _rans_decode(words, sym_of_slot, dec_of_slot, codes, SCALE_BITS_HIGH)
    elif scale_bits == SCALE_BITS:
        status = _rans_decode_wide(words, sym_of_slot, dec_of_slot, codes, nstates, SCALE_BITS)
    else:
        status = _rans_decode_wide(words, sym_of_slot, dec_of_slot, codes, nstates,
                                   SCALE_BITS_HIGH)
    return status == DECODE_OK


@njit(cache=True, nogil=True)
def _decode_joined_stream(blob, top, shift, base, elems, sym_of_slot, dec_of_slot, freq):
    """Decode the RANS_WIDE code stream ``blob`` of elems.size codes, each joined with its
    byte of ``top`` into elems as _rans_decode_wide_joined joins them; False for another
    method or anything wrong. sym_of_slot, dec_of_slot, freq: as _code_stream_tables."""
    if blob.size == 0 or blob[0] != METHOD_RANS_WIDE:
        return False
    nstates, scale_bits, end = _code_stream_tables(blob, sym_of_slot, dec_of_slot, freq)
    if nstates == 0:
        return False
    words = blob[end:].view(np.uint16)
    if scale_bits == SCALE_BITS:
        status = _rans_decode_wide_joined(words, sym_of_slot, dec_of_slot, top, shift, base,
                                          elems, nstates, SCALE_BITS)
    else:
        status = _rans_decode_wide_joined(words, sym_of_slot, dec_of_slot, top, shift, base,
                                          elems, nstates, SCALE_BITS_HIGH)
    return status == DECODE_OK


@njit(cache=True, nogil=True)
def _byte_stream(blob, out, sym_of_slot, dec_of_slot, freq):
    """The out.size bytes of the stream ``blob``: a STORED one read in place (a view of
    blob), a CONSTANT one or a RANS / RANS_WIDE one decoded into ``out``; (False, out) for
    any other method or anything wrong."""
    n = out.size
    if blob.size == 0:
        return False, out
    if blob[0] == METHOD_STORED:
        return blob.size == n + 1, blob[1:]
    if blob[0] == METHOD_CONSTANT:
        if blob.size != 2:
            return False, out
        out[:] = blob[1]
        return True, out
    return _decode_code_stream(blob, out, sym_of_slot, dec_of_slot, freq), out


@njit(cache=True, nogil=True, inline="always")
def _simple(payload, start, length):
    """True if the stream framed at payload[start:start + length] is one _byte_stream reads:
    checked for every stream before any is decoded, so a chunk the general path must take
    is not half decoded first."""
    if length == 0:
        return False
    m = payload[start]
    return (m == METHOD_STORED or m == METHOD_CONSTANT or m == METHOD_RANS
            or m == METHOD_RANS_WIDE)


@njit(cache=True, nogil=True, inline="always")
def _escapes(blob, esc, sym_of_slot, dec_of_slot, freq):
    """Read the escaped field values (u16, little-endian) of the stream ``blob`` into
    ``esc``; False if _byte_stream cannot."""
    raw = esc.view(np.uint8)
    ok, got = _byte_stream(blob, raw, sym_of_slot, dec_of_slot, freq)
    if ok and blob[0] == METHOD_STORED:
        raw[:] = got  # read in place, at an odd address
    return ok


@njit(cache=True, nogil=True, inline="always")
def _packed_top_size(n, w):
    """Bytes of a last raw plane of n values of w bits: n for w = 8, else packed as sliced
    sub-planes (docs/FORMAT.md, "Packed raw plane")."""
    if w == 8:
        return n
    size = (n + 1) // 2
    if w >= 6:
        size += (n + 3) // 4
    if w == 5 or w == 7:
        size += (n + 7) // 8
    return size


@njit(cache=True, nogil=True, inline="always")
def _chunk_field(payload, fielded, shift, base, width, n):
    """The field of a chunk payload of n elements of ``width`` bytes, read and checked as
    ansz.chunks reads a Field_Header (Field.check, and at most n escapes, none for an 8-bit
    field): (where its streams start, shift, bits, base, escape count), the start -1 if the
    header is truncated or wrong. Not ``fielded``: the plain 8-bit field at ``shift`` with
    ``base``, no escapes, the streams at 0."""
    p = np.int64(0)
    bits = np.int64(8)
    nesc = np.int64(0)
    if fielded:
        if payload.size < 8:
            return np.int64(-1), shift, bits, base, nesc
        shift = np.int64(payload[0])
        bits = np.int64(payload[1])
        base = np.int64(payload[2]) | (np.int64(payload[3]) << 8)
        nesc = _u32_at(payload, 4)
        p = np.int64(8)
    fits = shift + bits < 8 * width + (1 if width == 2 else 0)
    if not (8 <= bits <= 12 and 0 <= shift and fits and 0 <= base < (1 << bits)):
        p = np.int64(-1)
    if nesc > (0 if bits == 8 else n):
        p = np.int64(-1)
    return p, shift, bits, base, nesc


@njit(cache=True, nogil=True)
def decode_pairs16(payload, fielded, shift, base, codes, raw, sym_of_slot, dec_of_slot, freq,
                   escaped, elems):
    """Decode a 16-bit chunk payload of the shape above into ``elems`` (uint16[n]); 1 if it
    did, 0 if the payload is not of that shape or not valid (``elems`` then unspecified).

    payload: uint8, starting at an even address. ``fielded``: it starts with a Field_Header
    (docs/FORMAT.md); otherwise its field is 8 bits at ``shift`` with ``base`` (the layout's
    plain pair). codes, raw: uint8[n] and escaped: uint16[n], scratch; sym_of_slot,
    dec_of_slot, freq: as _decode_code_stream. The elements are joined as join_fielded16
    joins them.
    """
    n = elems.size
    nb = payload.size
    if n == 0 or codes.size != n or raw.size != n or escaped.size != n or freq.size != 256:
        return 0
    p, shift, bits, base, nesc = _chunk_field(payload, fielded, shift, base, 2, n)
    if p < 0:
        return 0
    cs, clen, p = _frame(payload, p)
    if cs < 0:
        return 0
    ts, tlen, p = _frame(payload, p)
    if ts < 0:
        return 0
    es, elen = p, np.int64(0)
    if nesc:
        es, elen, p = _frame(payload, p)
        if es < 0:
            return 0
    if p != nb or not (_simple(payload, cs, clen) and _simple(payload, ts, tlen)
                       and (nesc == 0 or _simple(payload, es, elen))):
        return 0
    if (bits == 8 and payload[cs] == METHOD_RANS_WIDE and payload[ts] == METHOD_STORED
            and tlen == n + 1):
        # the common shape of an 8-bit field: the codes decoded straight into elements
        return 1 if _decode_joined_stream(payload[cs:cs + clen], payload[ts + 1:ts + tlen],
                                          shift, base, elems, sym_of_slot, dec_of_slot,
                                          freq) else 0
    ok, codes = _byte_stream(payload[cs:cs + clen], codes, sym_of_slot, dec_of_slot, freq)
    if not ok:
        return 0
    ok, top = _byte_stream(payload[ts:ts + tlen], raw[:_packed_top_size(n, 16 - bits)],
                           sym_of_slot, dec_of_slot, freq)
    if not ok:
        return 0
    esc = escaped[:nesc]
    if nesc and not _escapes(payload[es:es + elen], esc, sym_of_slot, dec_of_slot, freq):
        return 0
    status, count = join_fielded16(codes, top, np.uint32(shift), np.uint32(bits),
                                   np.uint32(base), True, esc, elems)
    if status != DECODE_OK or (bits > 8 and count != nesc):
        return 0
    return 1


@njit(cache=True, nogil=True)
def decode_pairs32(payload, fielded, shift, base, codes, raw, sym_of_slot, dec_of_slot, freq,
                   escaped, elems):
    """decode_pairs16 for 32-bit elements (three raw planes): ``elems`` is uint32[n], raw
    uint8[4n] scratch (decoded planes, and a packed last plane before unpacking). The
    elements are joined as fields.join_pairs32 joins them, their escapes put back as
    fields.patch_escapes puts them.
    """
    n = elems.size
    nb = payload.size
    if (n == 0 or codes.size != n or raw.size != 4 * n or escaped.size != n
            or freq.size != 256):
        return 0
    p, shift, bits, base, nesc = _chunk_field(payload, fielded, shift, base, 4, n)
    if p < 0:
        return 0
    starts = np.zeros(5, np.int64)
    lengths = np.zeros(5, np.int64)
    for f in range(4 + (nesc > 0)):
        starts[f], lengths[f], p = _frame(payload, p)
        if starts[f] < 0 or not _simple(payload, starts[f], lengths[f]):
            return 0
    if p != nb:
        return 0
    ok, codes = _byte_stream(payload[starts[0]:starts[0] + lengths[0]], codes, sym_of_slot,
                             dec_of_slot, freq)
    if not ok:
        return 0
    ok0, plane0 = _byte_stream(payload[starts[1]:starts[1] + lengths[1]], raw[:n],
                               sym_of_slot, dec_of_slot, freq)
    ok1, plane1 = _byte_stream(payload[starts[2]:starts[2] + lengths[2]], raw[n:2 * n],
                               sym_of_slot, dec_of_slot, freq)
    if not (ok0 and ok1):
        return 0
    top_blob = payload[starts[3]:starts[3] + lengths[3]]
    w = 16 - bits
    if w == 8:
        ok2, top = _byte_stream(top_blob, raw[2 * n:3 * n], sym_of_slot, dec_of_slot, freq)
        if not ok2:
            return 0
    else:
        ok2, packed = _byte_stream(top_blob, raw[3 * n:3 * n + _packed_top_size(n, w)],
                                   sym_of_slot, dec_of_slot, freq)
        top = raw[2 * n:3 * n]
        if not ok2 or unpack_top(packed, w, top) != DECODE_OK:
            return 0
    esc = escaped[:nesc]
    if nesc and not _escapes(payload[starts[4]:starts[4] + lengths[4]], esc, sym_of_slot,
                             dec_of_slot, freq):
        return 0
    sh = np.uint32(shift)
    sb = sh + np.uint32(bits)
    fmask = (np.uint32(1) << np.uint32(bits)) - np.uint32(1)
    low = (np.uint32(1) << sh) - np.uint32(1)
    b0 = np.uint32(base)
    for i in range(n):
        r = (np.uint32(plane0[i]) | (np.uint32(plane1[i]) << np.uint32(8))
             | (np.uint32(top[i]) << np.uint32(16)))
        t = (np.uint32(codes[i]) + b0) & fmask
        elems[i] = ((r >> sh) << sb) | (t << sh) | (r & low)
    if bits > 8:  # put the escaped field values back; their number must be nesc
        count = 0
        for i in range(n):  # a vectorized count: escapes are few, or none
            count += np.int64(codes[i] == 255)
        if count != nesc:
            return 0
        keep = ~(fmask << sh)
        k = 0
        i = 0
        while k < nesc:
            if codes[i] == 255:
                elems[i] = (elems[i] & keep) | ((np.uint32(esc[k]) & fmask) << sh)
                k += 1
            i += 1
    return 1


# --------------------------------------------------------------------------- prefix-code encoders
#
# The encoding side of the prefix codes (ansz/huffman.py, ansz/qlc.py; their decoders are
# the prefix kernels'): code tables from counts and the bit writer, here beside the one-call
# stream coder below, which chooses between them and rANS. Codes are written MSB-first into
# bytes (the first code's first bit is bit 7 of byte 0), the last byte padded with zeros.

METHOD_HUFFMAN = 4
METHOD_QLC = 5
HUFFMAN_LIMIT = 11  # the longest code encode_stream_parts' Huffman tables give (DEFAULT_LIMIT)
HUFFMAN_MAX_BITS = 15  # the longest code a Huffman table may hold (huffman.MAX_LIMIT)
QLC_NAREAS = 8  # areas; a 3-bit prefix selects one (ansz/qlc.py)
QLC_PREFIX_BITS = 3
QLC_MAX_AREA_BITS = 8  # suffix bits of an area: it holds up to 2^8 ranks


@njit(cache=True, nogil=True)
def prefix_encode(symbols, code, length, out):
    """Write the prefix code of each uint8 symbol into out (uint8[::1]); return the bit count.

    code: uint32[256] (right-aligned code bits), length: uint8[256] in 0..16, with
    code[s] < 2^length[s]. Returns -1 if a symbol has length 0 (no code), in which case the
    bits written are meaningless. Writes exactly (bits + 7) // 8 bytes (flushes of 4 bytes
    of whole bits, then the rest, zero-padded), which out must hold: at most
    (symbols.size * max(length) + 7) // 8, or what the counts of the symbols say.
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
def _package_merge(weights, limit):
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
def huffman_code_lengths(counts, limit):
    """Optimal code lengths (uint8[256], 0 for absent symbols), each <= limit, for counts
    (int64[256], non-negative) with at least two present symbols, at most 2^limit
    (ValueError otherwise): package-merge over the present symbols by increasing count,
    equal counts by increasing symbol."""
    if counts.size != 256 or not 1 <= limit <= 62:
        raise ValueError("huffman_code_lengths: counts must hold 256 entries, limit 1..62")
    m = 0
    for s in range(256):
        if counts[s] > 0:
            m += 1
    if m < 2 or (1 << limit) < m:
        raise ValueError("huffman_code_lengths: needs 2 to 2^limit present symbols")
    order = _sorted_present(counts, m, False)
    weights = np.empty(m, np.int64)
    for q in range(m):
        weights[q] = counts[order[q]]
    got = _package_merge(weights, limit)
    lengths = np.zeros(256, np.uint8)
    for q in range(m):
        lengths[order[q]] = np.uint8(got[q])
    return lengths


@njit(cache=True, nogil=True)
def huffman_canonical_codes(lengths):
    """Canonical codes (uint32[256], right-aligned; 0 for absent symbols) of code lengths
    (uint8[256], each <= HUFFMAN_MAX_BITS, Kraft sum <= 1: the caller checks the sum). In
    order of (length, symbol) each code is the one before + 1, shifted left by the change
    of length (Deflate's rule), so it stays below 2^length."""
    if lengths.size != 256:
        raise ValueError("huffman_canonical_codes: lengths must hold 256 entries")
    codes = np.zeros(256, np.uint32)
    code = np.int64(0)
    for ln in range(1, HUFFMAN_MAX_BITS + 1):
        for s in range(256):
            if lengths[s] == ln:
                codes[s] = np.uint32(code)
                code += 1
        code <<= 1
    return codes


@njit(cache=True, nogil=True)
def qlc_code_table(area_bits, order):
    """(code uint32[256], length uint8[256]) of a QLC table: area bits (uint8[8], each <=
    QLC_MAX_AREA_BITS; ValueError otherwise) and the symbols in rank order (uint8[m],
    distinct, no more than the areas hold: checked by the caller). Ranks fill the areas in
    order; the symbol of rank r in area k, whose first rank is base, has the code
    k << b_k | (r - base) of 3 + b_k bits. Symbols not in the table have length 0."""
    if area_bits.size != QLC_NAREAS:
        raise ValueError("qlc_code_table: area_bits must hold 8 entries")
    for k in range(QLC_NAREAS):
        if area_bits[k] > QLC_MAX_AREA_BITS:
            raise ValueError("qlc_code_table: an area has more than 8 bits")
    code = np.zeros(256, np.uint32)
    length = np.zeros(256, np.uint8)
    m = order.size
    base = 0
    for k in range(QLC_NAREAS):
        b = np.int64(area_bits[k])
        held = min(max(m - base, 0), 1 << b)
        for r in range(held):
            s = order[base + r]
            code[s] = np.uint32((k << b) | r)
            length[s] = np.uint8(QLC_PREFIX_BITS + b)
        base += 1 << b
    return code, length


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


@njit(cache=True, nogil=True)
def _prefix_streams(symbols, counts, present, first, last, budget, best, out, body):
    """encode_stream_parts' prefix coders under "auto", after rANS: a Huffman, then a QLC
    stream, each built only where the bound (method byte + smallest table + payload bound)
    says it could beat the best so far, and written at out[body:] if it is smaller than
    that and than budget. counts: the symbols' (int64[256]) with ``present`` >= 2 symbols,
    ``first`` .. ``last``; best: the size of the stream at out[body:], -1 for none. Returns
    the size of the stream at out[body:] then (-1: none). out must hold body + budget
    bytes: a stream is written only when it is smaller than budget (<= symbols.size), and
    prefix_encode writes no byte past its end."""
    n = symbols.size
    payload = (huffman_payload_bits(counts) + 7) // 8  # bound of every prefix payload
    huffman_table = 2 + (last - first + 2) // 2
    limit = budget if best < 0 else np.float64(best)
    if 1 + huffman_table + payload < limit:
        lengths = huffman_code_lengths(counts, HUFFMAN_LIMIT)
        bits = np.int64(0)
        for s in range(256):
            bits += counts[s] * np.int64(lengths[s])
        size = 1 + huffman_table + (bits + 7) // 8
        # QLC's payload is no smaller than this code's (the best of at most 11 bits, as
        # QLC's are) nor than 3 bits a symbol
        payload = max(payload, (bits + 7) // 8, (3 * n + 7) // 8)
        if size < budget and (best < 0 or size < best):
            out[body] = METHOD_HUFFMAN
            out[body + 1] = np.uint8(first)
            out[body + 2] = np.uint8(last)
            for i in range(huffman_table - 2):  # nibbles, low first, a zero pad nibble
                s = first + 2 * i
                high = lengths[s + 1] if s + 1 <= last else np.uint8(0)
                out[body + 3 + i] = lengths[s] | (high << np.uint8(4))
            prefix_encode(symbols, huffman_canonical_codes(lengths), lengths,
                          out[body + 1 + huffman_table:])
            best = size
    limit = budget if best < 0 else np.float64(best)
    if 1 + 5 + present + payload < limit:
        area_bits, order = qlc_optimal_areas(counts)
        code, length = qlc_code_table(area_bits, order)
        bits = np.int64(0)
        for s in range(256):
            bits += counts[s] * np.int64(length[s])
        size = 1 + 5 + present + (bits + 7) // 8
        if size < budget and (best < 0 or size < best):
            out[body] = METHOD_QLC
            for k in range(QLC_NAREAS // 2):
                out[body + 1 + k] = area_bits[2 * k] | (area_bits[2 * k + 1] << np.uint8(4))
            out[body + 5] = np.uint8(present - 1)
            for r in range(present):
                out[body + 6 + r] = order[r]
            prefix_encode(symbols, code, length, out[body + 6 + present:])
            best = size
    return best


# --------------------------------------------------------------------------- streams coded in one call
#
# encode_streams codes the streams of a coding-pair chunk (ansz.chunks) as
# ansz.streams.encode_stream_parts codes each one, with the same choices to the last byte:
# STORED when a sample looks incompressible, CONSTANT for one symbol, RANS or RANS_WIDE when
# that saves MIN_GAIN, and under "auto" a HUFFMAN or QLC stream where one is smaller still
# (built only where a bound says it could be), else STORED; and frames them.


@njit(cache=True, nogil=True)
def huffman_payload_bits(counts):
    """Payload bits of an unlimited Huffman code for counts (int64[k]): the sum of the
    weights of every merge (two-queue method on the sorted nonzero counts). A lower bound
    on the payload of every prefix code. 0 for fewer than two present symbols."""
    m = 0
    for s in range(counts.size):
        if counts[s] > 0:
            m += 1
    order = _sorted_present(counts, m, False)
    leaves = np.empty(m, np.int64)
    for q in range(m):
        leaves[q] = counts[order[q]]
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


#: What one stream needs in out beyond its symbols: the frame's length and pad byte, the
#: method byte, and the largest header and table (a RANS_WIDE table takes at most 3 bytes a
#: symbol, + 2), which a rANS stream only keeps when it is smaller than the symbols.
STREAM_SLACK = 4 + 1 + 1 + 6 + 3 * 256 + 2


@njit(cache=True, nogil=True, inline="always")
def _put_u32(out, p, v):
    """Write v (0 <= v < 2^32) little-endian at out[p:p + 4]."""
    out[p] = np.uint8(v & 0xFF)
    out[p + 1] = np.uint8((v >> 8) & 0xFF)
    out[p + 2] = np.uint8((v >> 16) & 0xFF)
    out[p + 3] = np.uint8((v >> 24) & 0xFF)


@njit(cache=True, nogil=True)
def _encode_stream(symbols, counts, counted, wide_states, try_prefix, thresholds, min_gain,
                   high_gain, table, words, out, pos):
    """Frame the stream of ``symbols`` (uint8) at out[pos:] as encode_stream_parts codes it
    and frame_streams frames it: returns where it ends. ``counts`` (int64[256]) are the symbols'
    counts if ``counted``, else they are counted here into it; the other arguments as for
    encode_streams, which checked that out holds pos + symbols.size + STREAM_SLACK bytes
    and words symbols.size + 2 * max(wide_states, NSTATES) words."""
    n = symbols.size
    body = pos + 4
    budget = n * (1.0 - min_gain)
    stored = n == 0
    if n >= thresholds[0]:  # judged on a sample first
        bits, sampled = sampled_entropy(symbols, thresholds[1])
        stored = bits / sampled > 8.0 * (1.0 - min_gain / 2.0)
    length = n + 1  # stored
    if not stored:
        if not counted:
            h = code_histogram(symbols, table)
            for v in range(256):
                counts[v] = h[v]
        present = 0
        first = -1
        last = -1
        for v in range(256):
            if counts[v] > 0:
                present += 1
                if first < 0:
                    first = v
                last = v
        if present == 1:
            out[body] = METHOD_CONSTANT
            out[body + 1] = np.uint8(first)
            length = 2
        else:
            scale_bits, freq, cost = plan_table(counts, high_gain)
            words_bytes = cost / 8.0 + 4 * NSTATES
            table_bytes = 2 * (last - first + 1)
            wide = n >= thresholds[2]
            if wide:
                words_bytes += 4 * (wide_states - NSTATES)
            best = -1
            if words_bytes + table_bytes < budget:
                sb = np.int64(scale_bits)
                enc = encoder_table(freq, sb)
                if wide:
                    w = words[:n + 2 * wide_states]
                    start = rans_encode_wide(symbols, enc, encoder_table_lanes(freq, sb), w,
                                             wide_states, sb)
                    head = 6
                    out[body] = METHOD_RANS_WIDE
                    out[body + 4] = 5 if wide_states == 32 else 6  # log2 of the states
                    out[body + 5] = 0
                    tlen = write_bitlen_table(freq[first:last + 1], out[body + head:])
                else:
                    w = words[:n + 2 * NSTATES]
                    start = rans_encode(symbols, enc, w)
                    head = 4
                    out[body] = METHOD_RANS
                    tlen = write_varints(freq[first:last + 1], out[body + head:])
                out[body + 1] = np.uint8(scale_bits)
                out[body + 2] = np.uint8(first)
                out[body + 3] = np.uint8(last)
                nwords = w.size - start
                size = head + tlen + 2 * nwords
                if size < budget:
                    # through views indexed from 0: out[p + i] would keep LLVM from
                    # vectorizing the copy (measured 30x slower on a stored plane)
                    src = w[start:]
                    dst = out[body + head + tlen:body + size]
                    for i in range(nwords):
                        v = src[i]
                        dst[2 * i] = np.uint8(v & np.uint16(0xFF))
                        dst[2 * i + 1] = np.uint8(v >> np.uint16(8))
                    best = size
            if try_prefix:
                best = _prefix_streams(symbols, counts, present, first, last, budget, best,
                                       out, body)
            stored = best < 0
            if not stored:
                length = best
    if stored:
        out[body] = METHOD_STORED
        dst = out[body + 1:body + 1 + n]
        for i in range(n):
            dst[i] = symbols[i]
    _put_u32(out, pos, length)
    end = body + length
    if length % 2:
        out[end] = 0
        end += 1
    return end


@njit(cache=True, nogil=True)
def encode_streams(codes, raw, nplanes, last, packed, escapes, code_counts, codes_counted,
                   top_counts, top_counted, wide_states, try_prefix, thresholds, min_gain,
                   high_gain, table, words, out, pos):
    """Frame a coding-pair chunk's streams at out[pos:], each as encode_stream_parts codes
    it: the codes (uint8[n]), the raw planes (raw: nplanes planes of n bytes, the last one
    replaced by ``last`` if ``packed``), then ``escapes`` (bytes) if there are any. Returns
    where they end.

    code_counts / top_counts (int64[256]): the counts of the codes / of the last plane when
    codes_counted / top_counted (an unpacked last plane only), else unused. wide_states:
    the states of RANS_WIDE streams; try_prefix: whether the prefix coders (Huffman of at
    most HUFFMAN_LIMIT bits, QLC) compete ("auto").
    thresholds (int64[3]): streams of at least thresholds[0] symbols are first judged on a
    sample of one in thresholds[1]; streams of at least thresholds[2] are RANS_WIDE;
    min_gain and high_gain: MIN_GAIN and HIGH_SCALE_MIN_GAIN (ansz.streams names all five).
    table: uint32[65536] scratch; words: uint16 scratch of at least the longest stream's
    length + 2 * max(wide_states, NSTATES) words. ValueError if a size does not fit (out
    must hold pos + every stream's symbols + STREAM_SLACK each), or a threshold, min_gain
    or wide_states is out of range.
    """
    n = codes.size
    if (nplanes < 0 or raw.size != nplanes * n or code_counts.size != 256
            or top_counts.size != 256 or (packed and nplanes == 0)):
        raise ValueError("encode_streams: raw, planes or counts sizes disagree")
    if (thresholds.size != 3 or thresholds[1] < 1 or thresholds[0] < 1
            or not 0.0 < min_gain < 1.0 or (wide_states != 32 and wide_states != 64)):
        raise ValueError("encode_streams: a threshold, min_gain or wide_states is out of range")
    longest = max(n, escapes.size, last.size if packed else 0)
    need = n + nplanes * n + (last.size - n if packed else 0) + escapes.size
    nstreams = 1 + nplanes + (1 if escapes.size else 0)
    if (table.size < 65536 or words.size < longest + 2 * max(wide_states, NSTATES)
            or pos < 0 or out.size < pos + need + nstreams * STREAM_SLACK):
        raise ValueError("encode_streams: table, words or out is too small")
    counts = np.empty(256, np.int64)  # of the streams not counted by the caller
    for s in range(nstreams):  # one call site: numba's compile time grows with each
        if s == 0:
            symbols, stream_counts, counted = codes, code_counts, codes_counted
        elif s <= nplanes:
            symbols, stream_counts, counted = raw[(s - 1) * n:s * n], counts, False
            if s == nplanes and packed:
                symbols = last
            elif s == nplanes and top_counted:
                stream_counts, counted = top_counts, True
        else:
            symbols, stream_counts, counted = escapes, counts, False
        pos = _encode_stream(symbols, stream_counts, counted, wide_states, try_prefix,
                             thresholds, min_gain, high_gain, table, words, out, pos)
    return pos
