"""Length-limited canonical Huffman: valid optimal lengths, exact round trips, bad input fails."""

import heapq
import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ansz import huffman, kernels
from ansz.errors import CorruptDataError
from ansz.streams import HUFFMAN, decode_prefix_stream, encode_prefix_stream, entropy_bits

from helpers import damaged_prefix_streams, fuzz, symbols


def round_trip(s, limit=huffman.DEFAULT_LIMIT):
    counts = np.bincount(s, minlength=256)
    if s.size == 0:
        counts[0] = 1  # any table will do for zero symbols
    table = huffman.HuffmanTable.from_counts(counts, limit)
    assert table.max_length <= limit
    buf, nbits = huffman.encode(s, table)
    assert nbits == huffman.expected_bits(np.bincount(s, minlength=256), table.lengths)
    assert buf.size == (nbits + 7) // 8
    stream = encode_prefix_stream(s, table)
    assert stream == bytes([HUFFMAN]) + table.to_bytes() + buf.tobytes()
    assert np.array_equal(decode_prefix_stream(stream, s.size), s)
    out = np.empty(s.size, np.uint8)  # into a given array too
    assert decode_prefix_stream(memoryview(stream), s.size, out) is out
    assert np.array_equal(out, s)


@fuzz(60)
@given(seed=st.integers(0, 2**32 - 1), k=st.integers(1, 256), skew=st.floats(0, 8),
       n=st.integers(0, 3000), limit=st.integers(8, 15))
def test_round_trip_hypothesis(seed, k, skew, n, limit):
    round_trip(symbols(seed, k, skew, n), limit)


@pytest.mark.parametrize("s", [
    np.zeros(0, np.uint8),
    np.array([7], np.uint8),
    np.full(1001, 200, np.uint8),
    np.arange(256, dtype=np.uint8),
    np.tile(np.arange(256, dtype=np.uint8), 13),
    np.concatenate((np.zeros(100000, np.uint8), np.arange(256, dtype=np.uint8))),
], ids=["empty", "one", "all-equal", "all-256", "uniform", "extreme-skew"])
def test_round_trip_edge_cases(s):
    round_trip(s)


def huffman_cost_and_depth(w):
    """Unlimited Huffman: (total cost, max depth) via a heap."""
    if len(w) == 1:
        return int(w[0]), 1
    heap = [(int(x), 0) for x in w]
    heapq.heapify(heap)
    cost = 0
    while len(heap) > 1:
        a, da = heapq.heappop(heap)
        b, db = heapq.heappop(heap)
        cost += a + b
        heapq.heappush(heap, (a + b, max(da, db) + 1))
    return cost, heap[0][1]


counts_strategy = st.dictionaries(st.integers(0, 255), st.integers(1, 10**6), min_size=1).map(
    lambda d: [d.get(s, 0) for s in range(256)])


@fuzz(80)
@given(counts=counts_strategy, limit=st.integers(8, 15))
def test_lengths_are_valid_and_optimal(counts, limit):
    counts = np.array(counts, np.int64)
    lengths = huffman.code_lengths(counts, limit).astype(np.int64)
    present = counts > 0
    assert ((lengths > 0) == present).all()
    assert lengths.max() <= limit
    kraft = (2.0 ** -lengths[present]).sum()
    if present.sum() >= 2:
        assert kraft == 1.0  # package-merge codes are complete
    else:
        assert kraft <= 1.0
    total = huffman.expected_bits(counts, lengths)
    cost, depth = huffman_cost_and_depth(counts[present])
    if depth <= limit:  # not binding: a Huffman code
        assert total == cost
        n = counts.sum()
        h = entropy_bits(counts)
        assert h - 1e-9 * n <= total
        if present.sum() >= 2:  # one symbol costs exactly H + 1 = 1 bit
            assert total < h + n
    else:
        assert total >= cost


@pytest.mark.parametrize("seed", range(20))
def test_length_limited_is_optimal_vs_brute_force(seed):
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 7))
    limit = max(3, int(np.ceil(np.log2(k))))
    w = (rng.integers(1, 50, k) ** rng.integers(1, 5)).astype(np.int64)
    counts = np.zeros(256, np.int64)
    counts[:k] = w
    best = min(int((w * np.array(ls)).sum())
               for ls in itertools.product(range(1, limit + 1), repeat=k)
               if sum(2.0 ** -l for l in ls) <= 1)
    assert huffman.expected_bits(counts, huffman.code_lengths(counts, limit)) == best


@fuzz(40)
@given(counts=counts_strategy, limit=st.integers(8, 12))
def test_canonical_codes_are_prefix_free(counts, limit):
    lengths = huffman.code_lengths(np.array(counts, np.int64), limit)
    codes = huffman.canonical_codes(lengths)
    words = sorted(format(int(codes[s]), f"0{int(lengths[s])}b") for s in np.flatnonzero(lengths))
    # In sorted order, a prefix of a word sorts right before it.
    for a, b in zip(words, words[1:]):
        assert not b.startswith(a)
    assert all(len(x) == int(lengths[s]) for x, s in zip(
        (format(int(codes[s]), f"0{int(lengths[s])}b") for s in np.flatnonzero(lengths)),
        np.flatnonzero(lengths)))


@fuzz(40)
@given(counts=counts_strategy, limit=st.integers(8, 15))
def test_canonical_codes_follow_deflates_rule(counts, limit):
    # by (length, symbol), each code is the one before + 1, shifted left by the change of
    # length; the first is 0 (RFC 1951, 3.2.2)
    lengths = huffman.code_lengths(np.array(counts, np.int64), limit)
    codes = huffman.canonical_codes(lengths)
    order = sorted(np.flatnonzero(lengths), key=lambda s: (int(lengths[s]), int(s)))
    code, prev = -1, int(lengths[order[0]]) if order else 0
    for s in order:
        code = (code + 1) << (int(lengths[s]) - prev)
        prev = int(lengths[s])
        assert int(codes[s]) == code, s
    assert not codes[lengths == 0].any()


@pytest.mark.parametrize("seed", range(10))
def test_bit_writer_writes_no_byte_past_the_stream(seed):
    # the one-call stream coder writes a prefix stream where it has room for exactly the
    # stream's bytes: the writer must not flush past ceil(bits / 8)
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 3000))
    counts = np.zeros(256, np.int64)
    counts[:int(rng.integers(2, 256))] = 1
    s = rng.choice(np.flatnonzero(counts), n).astype(np.uint8)
    table = huffman.HuffmanTable.from_counts(counts + np.bincount(s, minlength=256))
    code, length = table.code_table()
    out = np.full((n * 16 + 7) // 8 + 8, 0xAA, np.uint8)
    nbits = int(kernels.prefix_encode(s, code, length, out))
    assert nbits == int(length[s].astype(np.int64).sum())
    assert (out[(nbits + 7) // 8:] == 0xAA).all()


def test_limit_too_small_is_refused():
    with pytest.raises(ValueError):
        huffman.code_lengths(np.ones(256, np.int64), 7)


def test_bad_tables_are_refused():
    over = np.zeros(256, np.uint8)
    over[:3] = 1  # Kraft sum 3/2
    with pytest.raises(ValueError):  # an encoder's table: a bug, not bad input
        huffman.HuffmanTable(over)
    with pytest.raises(ValueError):
        huffman.HuffmanTable(np.full(256, 16))
    with pytest.raises(ValueError):
        huffman.HuffmanTable(np.zeros(256, np.uint8))
    # in a stream: truncated, empty range, range not starting/ending at symbols, nonzero pad
    # nibble, over-subscribed
    for table in [b"", b"\x05", b"\x05\x04", b"\x00\x03\x11", b"\x00\x02\x11\x10",
                  b"\x00\x00\x00", b"\x00\x01\x10", b"\x00\x02\x11\x01"]:
        with pytest.raises(CorruptDataError, match="Huffman table"):
            decode_prefix_stream(bytes([HUFFMAN]) + table, 1)


def test_incomplete_code_rejects_the_unused_half():
    table = huffman.HuffmanTable.from_counts(np.bincount([9, 9], minlength=256))
    head = bytes([HUFFMAN]) + table.to_bytes()
    assert decode_prefix_stream(head + b"\x00", 8).tolist() == [9] * 8
    with pytest.raises(CorruptDataError):
        decode_prefix_stream(head + b"\x80", 8)
    with pytest.raises(CorruptDataError):
        decode_prefix_stream(head + b"\x00" * 40, 300)  # fast-loop path


@pytest.mark.parametrize("trials", [3000, pytest.param(300_000, marks=pytest.mark.slow)])
def test_damaged_streams_fail_cleanly(trials):
    outcomes = damaged_prefix_streams("huffman", np.random.default_rng(7), trials)
    assert outcomes.total_ok + outcomes.total_corrupt == trials
    assert outcomes.ok["truncate"] == 0  # a cut stream never decodes
    assert outcomes.total_corrupt >= trials // 2


@pytest.mark.parametrize("limit", [8, 11, 12, 15])
def test_binding_limit_on_large_skewed_alphabets(limit):
    counts = np.zeros(256, np.int64)
    counts[:60] = np.round(1.6 ** np.arange(60)[::-1]).astype(np.int64) + 1  # depth ~ 50 unlimited
    counts[60:] = 1
    lengths = huffman.code_lengths(counts, limit).astype(np.int64)
    assert lengths.max() == limit and lengths.min() >= 1
    assert (2.0 ** -lengths).sum() == 1.0
    cost, depth = huffman_cost_and_depth(counts)
    assert depth > limit and huffman.expected_bits(counts, lengths) >= cost
    s = np.repeat(np.arange(256, dtype=np.uint8), np.minimum(counts, 50))
    table = huffman.HuffmanTable(lengths)
    assert np.array_equal(decode_prefix_stream(encode_prefix_stream(s, table), s.size), s)


@fuzz(200)
@given(st.lists(st.integers(0, 10**9), min_size=0, max_size=256))
def test_huffman_payload_bits_matches_a_heap_huffman(counts):
    """The two-queue kernel that prunes auto's coder search equals the textbook heap merge."""
    heap = [c for c in counts if c > 0]
    heapq.heapify(heap)
    total = 0
    while len(heap) > 1:
        w = heapq.heappop(heap) + heapq.heappop(heap)
        total += w
        heapq.heappush(heap, w)
    assert kernels.huffman_payload_bits(np.array(counts, np.int64).reshape(-1)) == total


@fuzz(150)
@given(st.lists(st.integers(0, 1000), min_size=2, max_size=256))
def test_stream_table_kernel_builds_what_the_table_class_builds(counts):
    """The one-kernel parse + build used when decoding equals a table filled from the
    canonical codes the encoder uses: each code's window of 2^(T - len) entries."""
    counts = np.array(counts + [0] * (256 - len(counts)), np.int64)
    if np.count_nonzero(counts) == 0:
        return
    t = huffman.HuffmanTable.from_counts(counts)
    blob = t.to_bytes()
    status, used, T, table = kernels.huffman_read_table(np.frombuffer(blob + b"\x55", np.uint8))
    assert (status, used, T) == (0, len(blob), t.max_length)
    code, length = t.code_table()
    expected = np.zeros(1 << T, np.uint16)
    for sym in np.flatnonzero(length):
        L = int(length[sym])
        start = int(code[sym]) << (T - L)
        expected[start:start + (1 << (T - L))] = (L << 8) | sym
    np.testing.assert_array_equal(table, expected)
