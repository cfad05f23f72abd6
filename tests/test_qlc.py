"""Quad Length Codes: optimal areas (vs brute force), exact round trips, bad input fails cleanly."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ansz import kernels, qlc
from ansz.errors import CorruptDataError
from ansz.stats import coder_costs
from ansz.streams import QLC, decode_prefix_stream, encode_prefix_stream, entropy_bits

from helpers import damaged_prefix_streams, fuzz, symbols


def round_trip(s):
    counts = np.bincount(s, minlength=256)
    table = qlc.QlcTable.from_counts(counts)
    buf, nbits = qlc.encode(s, table)
    assert nbits == qlc.expected_bits(counts, table.area_bits)
    assert buf.size == (nbits + 7) // 8
    if table.order.size:  # (a stream never prefix-codes zero symbols)
        stream = encode_prefix_stream(s, table)
        assert stream == bytes([QLC]) + table.to_bytes() + buf.tobytes()
        assert np.array_equal(decode_prefix_stream(stream, s.size), s)


@fuzz(60)
@given(seed=st.integers(0, 2**32 - 1), k=st.integers(1, 256), skew=st.floats(0, 8),
       n=st.integers(0, 3000))
def test_round_trip_hypothesis(seed, k, skew, n):
    round_trip(symbols(seed, k, skew, n))


@pytest.mark.parametrize("s", [
    np.zeros(0, np.uint8),
    np.array([7], np.uint8),
    np.full(1001, 200, np.uint8),
    np.arange(256, dtype=np.uint8),
    np.tile(np.arange(256, dtype=np.uint8), 13),
    np.concatenate((np.zeros(100000, np.uint8), np.arange(256, dtype=np.uint8))),  # extreme skew
    np.concatenate((np.full(5000, 3, np.uint8), [9])).astype(np.uint8),
], ids=["empty", "one", "all-equal", "all-256", "uniform", "extreme-skew", "two"])
def test_round_trip_edge_cases(s):
    round_trip(s)


def test_zero_symbols_with_a_table():
    table = qlc.QlcTable.from_counts(np.bincount([1, 2, 2], minlength=256))
    buf, nbits = qlc.encode(np.zeros(0, np.uint8), table)
    assert nbits == 0 and buf.size == 0
    assert decode_prefix_stream(bytes([QLC]) + table.to_bytes(), 0).size == 0


def test_symbol_outside_table_is_refused():
    table = qlc.QlcTable.from_counts(np.bincount([1, 2, 2], minlength=256))
    with pytest.raises(ValueError):
        qlc.encode(np.array([3], np.uint8), table)


counts_strategy = st.dictionaries(st.integers(0, 255), st.integers(1, 10**6)).map(
    lambda d: [d.get(s, 0) for s in range(256)])


@fuzz(60)
@given(counts=counts_strategy)
def test_expected_length_is_at_least_the_entropy(counts):
    counts = np.array(counts, np.int64)
    bits, order = qlc.optimal_areas(counts)
    assert np.array_equal(order, qlc.rank_order(counts))
    total = qlc.expected_bits(counts, bits)
    assert total >= entropy_bits(counts) - 1e-6 * max(1, total)
    # Kraft: the listed codes fit the code space.
    lengths = np.repeat(3 + bits.astype(np.int64), np.clip(
        order.size - np.concatenate(([0], np.cumsum(1 << bits.astype(np.int64))[:-1])),
        0, 1 << bits.astype(np.int64)))
    assert (2.0 ** -lengths).sum() <= 1 + 1e-12


def set_partitions(items):
    if not items:
        yield []
        return
    first, rest = items[0], items[1:]
    for p in set_partitions(rest):
        yield [[first]] + p
        for i in range(len(p)):
            yield p[:i] + [[first] + p[i]] + p[i + 1:]


def brute_force(weights):
    """Best size over every way to put symbols into <= 8 areas (any grouping, any order)."""
    best = math.inf
    for p in set_partitions(list(range(len(weights)))):
        if len(p) > qlc.NAREAS:
            continue
        cost = sum((3 + math.ceil(math.log2(len(b)))) * sum(weights[i] for i in b) for b in p)
        best = min(best, cost)
    return best


@pytest.mark.parametrize("seed", range(25))
def test_areas_are_optimal_vs_brute_force(seed):
    rng = np.random.default_rng(seed)
    k = int(rng.integers(1, 10))
    counts = np.zeros(256, np.int64)
    w = rng.integers(1, 1000, k) ** int(rng.integers(1, 4))
    counts[rng.choice(256, k, replace=False)] = w
    bits, _ = qlc.optimal_areas(counts)
    assert qlc.expected_bits(counts, bits) == brute_force(list(w))


def greedy_best(counts):
    """Best over every multiset of 8 area sizes, sorted symbols given to sorted areas."""
    import itertools

    w = np.sort(counts[counts > 0])[::-1]
    best = math.inf
    for combo in itertools.combinations_with_replacement(range(qlc.MAX_AREA_BITS + 1), qlc.NAREAS):
        if sum(1 << b for b in combo) < w.size:
            continue
        lengths = np.repeat(3 + np.array(combo), [1 << b for b in combo])[:w.size]
        best = min(best, int((w * lengths).sum()))
    return best


@pytest.mark.parametrize("seed", range(3))
def test_areas_are_optimal_vs_all_area_multisets(seed):
    rng = np.random.default_rng(100 + seed)
    counts = np.bincount(np.clip(rng.normal(128, 4 + 6 * seed, 5000), 0, 255).astype(np.int64),
                         minlength=256)
    bits, _ = qlc.optimal_areas(counts)
    assert qlc.expected_bits(counts, bits) == greedy_best(counts)


@pytest.mark.parametrize("seed", range(20))
def test_code_table_follows_the_areas(seed):
    # rank r in area k (first rank base_k) has the code k << b_k | (r - base_k) of
    # 3 + b_k bits; symbols outside the table have none
    rng = np.random.default_rng(seed)
    m = int(rng.integers(1, 257))
    order = rng.permutation(256)[:m].astype(np.uint8)
    bits = rng.integers(0, 9, 8).astype(np.uint8)
    bits[int(rng.integers(8))] = 8  # room for every rank
    code, length = qlc.QlcTable(bits, order).code_table()
    expect_code, expect_length = np.zeros(256, np.int64), np.zeros(256, np.int64)
    r = 0
    for k, b in enumerate(bits.tolist()):
        for j in range(1 << b):
            if r == m:
                break
            expect_code[order[r]], expect_length[order[r]] = (k << b) | j, 3 + b
            r += 1
    assert np.array_equal(code, expect_code) and np.array_equal(length, expect_length)


def test_bad_tables_are_refused():
    # in a stream: truncated (twice), area bits > 8, repeated symbol, more symbols than fit
    for data in [b"", b"\x00" * 4, b"\x99\x00\x00\x00\x00\x05", b"\x00\x00\x00\x00\x01\x05\x05",
                 b"\x00\x00\x00\x00\x09" + bytes(range(10))]:
        with pytest.raises(CorruptDataError, match="QLC table"):
            decode_prefix_stream(bytes([QLC]) + data, 1)
    with pytest.raises(ValueError):  # an encoder's table: a bug, not bad input
        qlc.QlcTable(np.full(8, 9), np.zeros(1, np.uint8))


@pytest.mark.parametrize("trials", [3000, pytest.param(300_000, marks=pytest.mark.slow)])
def test_damaged_streams_fail_cleanly(trials):
    outcomes = damaged_prefix_streams("qlc", np.random.default_rng(7), trials)
    assert outcomes.total_ok + outcomes.total_corrupt == trials
    assert outcomes.ok["truncate"] == 0  # a cut stream never decodes
    assert outcomes.total_corrupt >= trials // 2


def bf16_exponents(n, seed=0):
    import ml_dtypes

    x = (np.random.default_rng(seed).standard_normal(n) * 0.02).astype(ml_dtypes.bfloat16)
    return ((x.view(np.uint16) >> 7) & 0xFF).astype(np.uint8)


def test_coder_costs_order_on_gaussian_bf16_exponents():
    counts = np.bincount(bf16_exponents(1 << 20), minlength=256)
    c = coder_costs(counts)
    assert c["entropy"] <= c["rans"] <= c["huffman"] <= c["qlc"]


def test_coder_costs_edge_cases():
    assert coder_costs(np.zeros(256, np.int64)) == {"entropy": 0.0, "rans": 0.0,
                                                      "huffman": 0.0, "qlc": 0.0}
    c = coder_costs(np.bincount([5] * 10, minlength=256))
    assert c["entropy"] == 0 and c["rans"] == 16


def optimal_areas_numpy(counts):
    """The numpy dynamic program that _kernels.qlc_optimal_areas replaced, kept as reference."""
    counts = np.asarray(counts, np.int64)
    order = qlc.rank_order(counts)
    n = order.size
    bits = np.zeros(qlc.NAREAS, np.uint8)
    if n == 0:
        return bits, order
    W = np.concatenate(([0], np.cumsum(counts[order.astype(np.intp)]))).astype(np.float64)
    cost = np.full(n + 1, np.inf)
    cost[0] = 0.0
    choice = np.full((qlc.NAREAS, n + 1), -1, np.int64)
    prev = np.tile(np.arange(n + 1), (qlc.NAREAS, 1))
    for k in range(qlc.NAREAS):
        new = cost.copy()  # area k empty
        for b in range(qlc.MAX_AREA_BITS + 1):
            size = 1 << b
            if size < n:  # a full area ending before n: j = i + size
                j = np.arange(size, n)
                cand = cost[j - size] + b * (W[j] - W[j - size])
                better = cand < new[j]
                new[j[better]] = cand[better]
                choice[k, j[better]] = b
                prev[k, j[better]] = j[better] - size
            i = np.arange(max(0, n - size), n)  # the area that reaches rank n, maybe partial
            cand = cost[i] + b * (W[n] - W[i])
            m = int(np.argmin(cand))
            if cand[m] < new[n]:
                new[n] = cand[m]
                choice[k, n] = b
                prev[k, n] = i[m]
        cost = new
    used = []
    j = n
    for k in range(qlc.NAREAS - 1, -1, -1):
        if choice[k, j] >= 0:
            used.append(int(choice[k, j]))
        j = int(prev[k, j])
    assert j == 0
    bits[:len(used)] = used[::-1]
    return bits, order


# Ties (small counts), realistic spreads, totals past 2^53 (float rounding in the costs), and
# geometric-ish weights over many symbols.
dp_counts = st.one_of(
    st.dictionaries(st.integers(0, 255), st.integers(1, 4)),
    st.dictionaries(st.integers(0, 255), st.integers(1, 10**6)),
    st.dictionaries(st.integers(0, 255), st.integers(1, 2**52), max_size=40),
    st.tuples(st.integers(1, 256), st.floats(0.0, 0.3), st.integers(0, 2**32 - 1)).map(
        lambda a: {int(s): int(1 + 10**6 * np.exp(-a[1] * r))
                   for r, s in enumerate(np.random.default_rng(a[2]).permutation(256)[:a[0]])}),
).map(lambda d: np.array([d.get(s, 0) for s in range(256)], np.int64))


@fuzz(300)
@given(counts=dp_counts)
def test_optimal_areas_kernel_matches_the_numpy_dp(counts):
    bits, order = qlc.optimal_areas(counts)
    ref_bits, ref_order = optimal_areas_numpy(counts)
    assert bits.dtype == np.uint8 and order.dtype == np.uint8
    np.testing.assert_array_equal(order, ref_order)
    np.testing.assert_array_equal(bits, ref_bits)


@pytest.mark.parametrize("counts", [
    np.zeros(256, np.int64), np.eye(1, 256, 9, np.int64)[0], np.ones(256, np.int64),
    np.arange(256, dtype=np.int64)[::-1] + 1, np.full(256, 2**54, np.int64),
], ids=["none", "one", "all-equal", "all-distinct", "huge"])
def test_optimal_areas_kernel_matches_the_numpy_dp_edge_cases(counts):
    bits, order = qlc.optimal_areas(counts)
    ref_bits, ref_order = optimal_areas_numpy(counts)
    np.testing.assert_array_equal(order, ref_order)
    np.testing.assert_array_equal(bits, ref_bits)


def read_table_numpy(buf):
    """QlcTable.read's checks and the numpy decode tables that _kernels.qlc_read_table
    replaced: (lut, order, bytes used), or CorruptDataError with QlcTable's message."""
    mv = memoryview(buf).cast("B")
    if len(mv) < 5:
        raise CorruptDataError("QLC table is truncated")
    bits = np.array([(mv[k // 2] >> (4 * (k % 2))) & 15 for k in range(qlc.NAREAS)], np.int64)
    n = mv[4] + 1
    if len(mv) < 5 + n:
        raise CorruptDataError("QLC table is truncated")
    syms = np.frombuffer(mv, np.uint8, n, 5)
    if (bits > qlc.MAX_AREA_BITS).any():
        raise CorruptDataError("QLC table: area bits must be 8 integers in 0..8")
    if np.unique(syms).size != syms.size:
        raise CorruptDataError("QLC table: symbols must be distinct")
    cap = np.int64(1) << bits
    if syms.size > int(cap.sum()):
        raise CorruptDataError("QLC table: areas hold fewer symbols than listed")
    base = np.concatenate(([0], np.cumsum(cap)[:-1]))
    entry = (base << 12) | ((cap - 1) << 4) | (qlc.PREFIX_BITS + bits)
    lut = np.repeat(entry, 256 // qlc.NAREAS).astype(np.uint32)
    order = np.full(int(cap.sum()), 0xFFFF, np.uint16)
    order[:syms.size] = syms
    return lut, order, 5 + n


@st.composite
def table_bytes(draw):
    """Serialized QLC tables, valid or near it: nibbles 0..15 (mostly <= 8, often small
    areas), m - 1, m symbols (distinct or not), the whole cut short or followed by bytes."""
    nibbles = draw(st.lists(st.one_of(st.integers(0, 8), st.integers(0, 3)),
                            min_size=8, max_size=8))
    if draw(st.integers(0, 4)) == 0:
        nibbles[draw(st.integers(0, 7))] = draw(st.integers(9, 15))
    m = draw(st.integers(1, 256))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if draw(st.booleans()):
        syms = rng.permutation(256)[:m]
    else:
        syms = rng.integers(0, 256, m)
    blob = (bytes(nibbles[2 * k] | nibbles[2 * k + 1] << 4 for k in range(4)) + bytes([m - 1])
            + syms.astype(np.uint8).tobytes())
    end = draw(st.integers(0, len(blob))) if draw(st.integers(0, 2)) == 0 else len(blob)
    return blob[:end] + bytes(draw(st.integers(0, 3)))


@fuzz(400)
@given(blob=table_bytes())
def test_read_table_kernel_checks_and_builds_what_the_numpy_version_did(blob):
    """qlc_read_table, which every QLC stream is decoded with, agrees with the numpy
    reference: the same error message, or the same tables and length."""
    buf = np.frombuffer(blob, np.uint8)
    status, used, lut, order = kernels.qlc_read_table(buf)
    try:
        ref_lut, ref_order, ref_used = read_table_numpy(blob)
    except CorruptDataError as e:
        assert status != 0 and qlc.TABLE_STATUS[status] == str(e)
        return
    assert (status, used) == (0, ref_used)
    assert lut.dtype == np.uint32 and order.dtype == np.uint16
    np.testing.assert_array_equal(lut, ref_lut)
    np.testing.assert_array_equal(order, ref_order)
