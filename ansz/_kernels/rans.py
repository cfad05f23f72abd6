"""Kernels of rANS: frequency normalization, encoder and decoder tables, the interleaved
encoder and decoders, frequency tables as varints (dense and sparse, for symbol pairs).

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
from numba import njit

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
