"""rANS core: normalization is valid and optimal, round trips are exact, bad streams fail."""

import itertools
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ansz import kernels, rans, streams
from ansz.errors import CorruptDataError

from helpers import fuzz


def cross_entropy_bits(counts, freq, scale_bits):
    p = counts > 0
    return float((counts[p] * (scale_bits - np.log2(freq[p]))).sum())


def entropy_bits(counts):
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum() * counts.sum())


counts_strategy = st.lists(st.integers(0, 10**6), min_size=256, max_size=256).filter(
    lambda c: sum(1 for v in c if v) >= 2)


@fuzz(80)
@given(counts=counts_strategy, scale_bits=st.integers(8, 16))
def test_normalize_counts_contract(counts, scale_bits):
    counts = np.array(counts, np.int64)
    freq = rans.normalize_counts(counts, scale_bits)
    assert int(freq.sum()) == 1 << scale_bits
    assert ((freq > 0) == (counts > 0)).all()


def brute_force_best(counts, scale_bits):
    idx = np.flatnonzero(counts)
    M = 1 << scale_bits
    best = math.inf
    for combo in itertools.product(range(1, M), repeat=len(idx)):
        if sum(combo) != M:
            continue
        f = np.zeros(256, np.int64)
        f[idx] = combo
        best = min(best, cross_entropy_bits(counts, f, scale_bits))
    return best


@pytest.mark.parametrize("seed", range(12))
def test_normalize_counts_is_optimal_on_small_cases(seed):
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 5))
    counts = np.zeros(256, np.int64)
    counts[rng.choice(256, k, replace=False)] = rng.integers(1, 2000, k) ** rng.integers(1, 3)
    scale_bits = 5
    freq = rans.normalize_counts(counts, scale_bits)
    assert cross_entropy_bits(counts, freq, scale_bits) <= brute_force_best(counts, scale_bits) + 1e-6


def _scan_normalize():
    """The fix-up of normalize_counts as it was first written, a scan of every symbol per
    unit moved (the heap that replaced it must pick the same symbols, ties included), with
    the same exchange step after it; compiled by numba, so its float arithmetic is the
    kernel's."""
    from numba import njit

    from ansz._kernels import rans as k

    @njit
    def scan(counts, scale_bits):
        M = np.int64(1) << np.int64(scale_bits)
        nsym = counts.size
        total = counts.sum()
        freq = np.zeros(nsym, np.int64)
        used = np.int64(0)
        for s in range(nsym):
            if counts[s] > 0:
                f = np.int64((np.float64(counts[s]) * np.float64(M)) / np.float64(total) + 0.5)
                freq[s] = max(f, 1)
                used += freq[s]
        gain = np.empty(nsym, np.float64)
        loss = np.empty(nsym, np.float64)
        for s in range(nsym):
            k._unit_costs(counts[s], freq[s], gain, loss, s)
        while used != M:
            best = k._argmax_first(gain) if used < M else k._argmin_first(loss)
            step = 1 if used < M else -1
            freq[best] += step
            used += step
            k._unit_costs(counts[best], freq[best], gain, loss, best)
        for _ in range(4 * nsym + 64):
            take, give = k._argmax_first(gain), k._argmin_first(loss)
            if give < 0 or take == give or gain[take] <= loss[give] * (1.0 + 1e-12):
                break
            freq[take] += 1
            freq[give] -= 1
            k._unit_costs(counts[take], freq[take], gain, loss, take)
            k._unit_costs(counts[give], freq[give], gain, loss, give)
        return freq.astype(np.uint32)

    return scan


def test_normalize_counts_picks_what_a_scan_picks():
    """Skewed, flat, tied and sparse histograms of 2 to 4096 symbols, both scales: the same
    table, so that containers stay byte for byte what they were."""
    scan = _scan_normalize()
    rng = np.random.default_rng(5)
    compared = 0
    for trial in range(3000):
        n = int(rng.choice([2, 3, 17, 256, 1000, 4096]))
        kind = trial % 5
        if kind == 0:
            counts = rng.integers(0, 50, n)
        elif kind == 1:
            counts = rng.geometric(rng.uniform(0.01, 0.9), n)
        elif kind == 2:  # every count equal: ties everywhere
            counts = np.full(n, int(rng.integers(1, 20)))
        elif kind == 3:
            counts = rng.integers(0, 3, n) * int(rng.integers(1, 100_000))
        else:  # one dominant symbol and rare ones: the sum is far over
            counts = np.zeros(n, np.int64)
            counts[0] = int(rng.integers(1, 10**6))
            counts[rng.integers(0, n, int(rng.integers(1, n + 1)))] += 1
        counts = counts.astype(np.int64)
        for scale_bits in (12, 14):
            if 2 <= np.count_nonzero(counts) <= 1 << scale_bits:
                np.testing.assert_array_equal(rans.normalize_counts(counts, scale_bits),
                                              scan(counts, np.int64(scale_bits)))
                compared += 1
    assert compared > 4000


def fse_like_normalize(counts, scale_bits):
    """Reference: proportional rounding, min 1, remainder to the largest symbol (FSE's fast path)."""
    M = 1 << scale_bits
    f = np.where(counts > 0, np.maximum(1, np.round(counts * M / counts.sum())), 0).astype(np.int64)
    f[np.argmax(counts)] += M - f.sum()
    return f


def test_normalized_table_is_close_to_entropy_and_beats_fse_rounding():
    rng = np.random.default_rng(0)
    exps = np.clip(np.round(rng.standard_normal(1_000_000) * 2.2 + 120), 90, 130).astype(np.uint8)
    counts = rans.byte_histogram(exps)
    counts[3] = 1  # a lone outlier
    freq = rans.normalize_counts(counts, 12)
    ce, h = cross_entropy_bits(counts, freq, 12), entropy_bits(counts)
    assert ce <= h * 1.003
    assert ce <= cross_entropy_bits(counts, fse_like_normalize(counts, 12), 12) + 1e-6


def roundtrip(symbols, scale_bits=rans.SCALE_BITS):
    symbols = np.asarray(symbols, np.uint8)
    counts = rans.byte_histogram(symbols)
    freq = rans.normalize_counts(counts, scale_bits)
    words = rans.encode_symbols(symbols, freq, scale_bits=scale_bits)
    out = rans.decode_symbols(words, symbols.size, freq, scale_bits=scale_bits)
    np.testing.assert_array_equal(out, symbols)
    return words


@fuzz(60)
@given(data=st.data())
def test_roundtrip_random_distributions(data):
    k = data.draw(st.integers(2, 256))
    alphabet = data.draw(st.lists(st.integers(0, 255), min_size=k, max_size=k, unique=True))
    weights = np.array(data.draw(st.lists(st.floats(0.001, 1.0), min_size=k, max_size=k)))
    n = data.draw(st.integers(0, 5000))
    seed = data.draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    symbols = rng.choice(np.array(alphabet, np.uint8), n, p=weights / weights.sum())
    symbols[:2] = alphabet[:2] if n >= 2 else symbols[:2]  # at least two symbols present
    if len(np.unique(symbols)) < 2:
        return
    roundtrip(symbols, data.draw(st.sampled_from(rans.SCALE_BITS_CHOICES)))


@pytest.mark.parametrize("n", [2, 7, 8, 9, 15, 16, 17, 1000, 1001, 65537])
def test_roundtrip_lengths_around_the_interleave(n):
    rng = np.random.default_rng(n)
    s = rng.integers(0, 3, n).astype(np.uint8)
    s[:2] = [0, 1]
    roundtrip(s)


def test_roundtrip_all_256_symbols_and_extreme_skew():
    roundtrip(np.arange(256, dtype=np.uint8).repeat(40))
    roundtrip(np.arange(256, dtype=np.uint8).repeat(40), rans.SCALE_BITS_HIGH)
    s = np.zeros(1 << 24, np.uint8)
    s[12345] = 1  # one count against 2^24 of another
    words = roundtrip(s)
    # The common symbol costs ~log2(4096/4095) bits: the stream is tiny.
    assert words.size < 2000


def test_coded_size_within_0_3_percent_of_entropy_on_bf16_like_exponents():
    rng = np.random.default_rng(1)
    import ml_dtypes
    from ansz.dtypes import PAIR_LAYOUTS
    from ansz.pairs import split_pairs

    w = (rng.standard_normal(1_000_000) * 0.02).astype(ml_dtypes.bfloat16)
    codes, _ = split_pairs(w.tobytes(), PAIR_LAYOUTS["BF16"])
    words = roundtrip(codes)
    h = entropy_bits(rans.byte_histogram(codes))
    assert words.size * 16 <= h * 1.003


def encoded(n=5000, seed=0):
    rng = np.random.default_rng(seed)
    s = rng.integers(0, 6, n).astype(np.uint8)
    freq = rans.normalize_counts(rans.byte_histogram(s))
    return s, freq, rans.encode_symbols(s, freq)


def test_truncated_stream_is_rejected():
    s, freq, words = encoded()
    for cut in (0, 3, 16, words.size // 2, words.size - 1):
        with pytest.raises(CorruptDataError):
            rans.decode_symbols(words[:cut], s.size, freq)


def test_trailing_words_are_rejected():
    s, freq, words = encoded()
    with pytest.raises(CorruptDataError, match="trailing"):
        rans.decode_symbols(np.concatenate([words, words[:5]]), s.size, freq)


def test_random_words_never_crash():
    s, freq, words = encoded()
    rng = np.random.default_rng(5)
    failures = 0
    for _ in range(200):
        w = rng.integers(0, 65536, int(rng.integers(0, words.size * 2)), dtype=np.uint16)
        try:
            rans.decode_symbols(w, s.size, freq)
        except CorruptDataError:
            failures += 1
    assert failures >= 190  # final-state check catches nearly all garbage


def test_bad_tables_are_rejected():
    s, freq, words = encoded()
    bad = freq.copy()
    bad[0] += 1
    with pytest.raises(CorruptDataError, match="sum"):
        rans.decode_symbols(words, s.size, bad)
    with pytest.raises(CorruptDataError, match="sum"):
        rans.decode_symbols(words, s.size, freq, scale_bits=14)
    with pytest.raises(CorruptDataError, match="scale_bits"):
        rans.decode_symbols(words, s.size, freq, scale_bits=13)
    one = np.zeros(256, np.uint32)
    one[0] = 4096
    with pytest.raises(CorruptDataError):
        rans.decode_symbols(words, s.size, one)


def test_plan_table_is_the_composition_of_its_kernels():
    # plan_table (one kernel call) chooses as normalize_counts + coded_bits + the entropy
    # bound would, to the last bit of the cost, with the 14-bit table forced (gain -1) too.
    from ansz import kernels

    rng = np.random.default_rng(5)
    hists = [np.bincount(rng.integers(0, k, n), minlength=256).astype(np.int64)
             for k, n in ((2, 10), (20, 5000), (256, 100_000))]
    skewed = np.zeros(256, np.int64)
    skewed[:200] = rng.integers(0, 3, 200)
    skewed[7] = 1_000_000
    hists.append(skewed)
    for counts in hists:
        for gain in (0.001, -1.0, 0.5):
            freq = kernels.normalize_counts(counts, np.int64(12))
            cost = kernels.coded_bits(counts, freq, np.int64(12))
            scale = 12
            if kernels.entropy_bits(counts) * (1 - 1e-9) < cost * (1 - gain):
                high = kernels.normalize_counts(counts, np.int64(14))
                high_cost = kernels.coded_bits(counts, high, np.int64(14))
                if high_cost < cost * (1 - gain):
                    scale, freq, cost = 14, high, high_cost
            got = kernels.plan_table(counts, gain)
            assert got[0] == scale and np.array_equal(got[1], freq) and got[2] == cost
    for bad in (np.zeros(256, np.int64), np.eye(1, 256, 3, np.int64)[0],
                np.array([5, -1, 3], np.int64)):
        with pytest.raises(ValueError):
            kernels.plan_table(bad, 0.001)


RANS_L = 1 << 15  # the lower bound of a state between symbols


def reference_wide_words(codes, freq, nstates, scale_bits):
    """The words of rans_encode_wide, one symbol at a time in Python integers from
    ryg's rANS arithmetic (exact division): the codes past the last whole group of nstates
    last to first, then the groups last to first, each lane from last to first (a state
    that renormalizes emits its low word below the words already written)."""
    m, start = 1 << scale_bits, np.concatenate(([0], np.cumsum(freq)))
    x = [RANS_L] * nstates
    words = []  # in the order written: the decoder reads them reversed

    def put(j, s):
        f = int(freq[s])
        if x[j] >= ((RANS_L >> scale_bits) << 16) * f:
            words.append(x[j] & 0xFFFF)
            x[j] >>= 16
        x[j] = (x[j] // f) * m + x[j] % f + int(start[s])

    n = codes.size
    full = n // nstates * nstates
    for i in range(n - 1, full - 1, -1):
        put(i - full, int(codes[i]))
    for g in range(full // nstates - 1, -1, -1):
        for j in range(nstates - 1, -1, -1):
            put(j, int(codes[g * nstates + j]))
    head = [w for v in x for w in (v & 0xFFFF, v >> 16)]
    return np.array(head + words[::-1], np.uint16)


@pytest.mark.parametrize("scale_bits", [12, 14])
@pytest.mark.parametrize("nstates", [32, 64])
def test_wide_encoder_writes_the_reference_words(scale_bits, nstates):
    # The lane encoder looks up the reciprocal, bias and complement of each symbol's
    # frequency and computes its shift and renormalization bound: every frequency from 1
    # (the reciprocal's special case) to near M must give ryg's arithmetic, word for word.
    rng = np.random.default_rng(scale_bits + nstates)
    weights = np.concatenate(([1e-9] * 40, rng.random(200) ** 8, [50.0] * 2, rng.random(14)))
    counts = np.maximum(1, (weights / weights.sum() * 400_000)).astype(np.int64)
    counts[5] = 1 << 20  # one symbol near M
    freq = rans.normalize_counts(counts, scale_bits)
    assert freq.min() == 1 and freq.max() > (1 << scale_bits) // 2
    codes = rng.choice(256, 20_000 + nstates // 2, p=freq / freq.sum()).astype(np.uint8)
    codes[:256] = np.arange(256)  # every symbol, rare ones too
    words = rans.encode_symbols_wide(codes, freq, nstates, scale_bits=scale_bits)
    assert np.array_equal(words, reference_wide_words(codes, freq, nstates, scale_bits))


def _wide_blob(codes, freq, nstates, scale_bits):
    """A RANS_WIDE stream of ``codes`` as encode_stream_parts frames one (of any length)."""
    present = np.flatnonzero(freq)
    first, last = int(present[0]), int(present[-1])
    words = rans.encode_symbols_wide(codes, freq, nstates, scale_bits=scale_bits)
    head = streams._WIDE_HEAD.pack(streams.RANS_WIDE, scale_bits, first, last,
                                   nstates.bit_length() - 1, 0)
    blob = head + streams.bitlen_table(freq[first:last + 1]) + words.astype("<u2").tobytes()
    return np.frombuffer(blob, np.uint8)


def test_joined_wide_decoder_is_decoding_then_joining():
    """The decoder that joins each code with its raw byte as it decodes (an 8-bit field,
    the `--fast` level's chunks) gives the elements that decoding the codes and then
    join_fielded16 give: lengths around the lane groups, both scales and state counts,
    every shift of an 8-bit field in 16 bits, bases 0 to 255; and it refuses a damaged or
    truncated stream, or a short raw plane, without writing past its arrays."""
    from ansz._kernels import rans as k

    rng = np.random.default_rng(23)
    slots_sym = np.zeros((1 << 14) + 3, np.uint8)
    slots_dec = np.zeros(1 << 14, np.uint32)
    table = np.zeros(256, np.uint32)
    checked = refused = 0
    for trial in range(60):
        nstates = (32, 64)[trial % 2]
        scale_bits = (12, 14)[(trial // 2) % 2]
        n = int(rng.choice([1, 31, 64, 65, 127, 1000, 4096 + 17, 70_001]))
        shift, base = int(rng.integers(0, 9)), int(rng.choice([0, 1, 37, 255]))
        counts = rng.integers(1, 500, 256) ** rng.integers(1, 4)
        counts[rng.random(256) < 0.6] = 0
        counts[:2] = 1000
        freq = rans.normalize_counts(counts, scale_bits)
        codes = rng.choice(256, n, p=freq / freq.sum()).astype(np.uint8)
        top = rng.integers(0, 256, n, dtype=np.uint8)
        blob = _wide_blob(codes, freq, nstates, scale_bits)
        want = np.empty(n, np.uint16)
        status, _ = kernels.join_fielded16(codes, top, np.uint32(shift), np.uint32(8),
                                           np.uint32(base), True, np.zeros(0, np.uint16), want)
        assert status == 0
        got = np.zeros(n + 8, np.uint16)
        assert k._decode_joined_stream(blob, top, shift, base, got[:n], slots_sym, slots_dec,
                                       table)
        assert np.array_equal(got[:n], want) and not got[n:].any()
        checked += 1
        for bad in (blob[:-2], blob[:len(blob) // 2], np.concatenate([blob, blob[-2:]])):
            assert not k._decode_joined_stream(bad, top, shift, base, got[:n], slots_sym,
                                               slots_dec, table)
            refused += 1
        assert not got[n:].any()
        assert not k._decode_joined_stream(blob, top[:-1], shift, base, got[:n], slots_sym,
                                           slots_dec, table)
    assert checked == 60 and refused == 180
