"""Coding pairs: split/join is an exact inverse for every dtype, and the code is the exponent."""

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ansz import chunks
from ansz.dtypes import PAIR_LAYOUTS, layout_for
from ansz.pairs import join_pairs, split_pairs

from helpers import fuzz

ALL = sorted(PAIR_LAYOUTS)


def roundtrip(data: bytes, name: str) -> bytes:
    layout = PAIR_LAYOUTS[name]
    codes, raw = split_pairs(data, layout)
    assert codes.size == len(data) // layout.width
    assert raw.size == codes.size * layout.raw_width
    out = np.empty(len(data), np.uint8)
    join_pairs(codes, raw, layout, out)
    return out.tobytes()


@fuzz(60)
@given(name=st.sampled_from(ALL), data=st.data())
def test_split_join_is_exact_for_any_bits(name, data):
    width = PAIR_LAYOUTS[name].width
    n = data.draw(st.integers(0, 300))
    blob = data.draw(st.binary(min_size=n * width, max_size=n * width))
    assert roundtrip(blob, name) == blob


@pytest.mark.parametrize("name", ALL)
def test_split_join_extremes(name):
    width = PAIR_LAYOUTS[name].width
    for blob in (b"", b"\xff" * width, b"\x00" * width * 17, bytes(range(256)) * width):
        assert roundtrip(blob, name) == blob


def test_special_floats_roundtrip():
    vals = [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, -1e-45, 5e-324, 1e308, 3.4e38, 1e-40]
    for np_dtype, name in [(ml_dtypes.bfloat16, "BF16"), (np.float16, "F16"),
                           (np.float32, "F32"), (np.float64, "F64")]:
        with np.errstate(over="ignore"):
            data = np.array(vals).astype(np_dtype).tobytes()
        assert roundtrip(data, name) == data


def test_bf16_code_is_the_exponent_and_raw_is_sign_mantissa():
    x = np.array([1.0, -2.0, 0.5, 3.0], dtype=ml_dtypes.bfloat16)
    codes, raw = split_pairs(x.tobytes(), PAIR_LAYOUTS["BF16"])
    assert codes.tolist() == [127, 128, 126, 128]  # biased exponents
    assert raw.tolist() == [0x00, 0x80, 0x00, 0x40]  # sign bit | 7 mantissa bits


def test_f32_raw_planes_are_little_endian_bytes_of_sign_mantissa():
    x = np.array([-1.5, 1.0], dtype=np.float32)  # -1.5: sign 1, mantissa 0x400000
    codes, raw = split_pairs(x.tobytes(), PAIR_LAYOUTS["F32"])
    assert codes.tolist() == [127, 127]
    r = raw.reshape(3, 2)  # planar: plane b holds byte b of every element
    assert [int(r[0, 0]), int(r[1, 0]), int(r[2, 0])] == [0x00, 0x00, 0xC0]
    assert r[:, 1].tolist() == [0, 0, 0]


def test_unknown_and_wide_integer_dtypes_fall_back_to_bytes():
    assert layout_for("I64").name == "BYTES"
    assert layout_for("NOPE").name == "BYTES"
    assert layout_for("F8_E4M3").width == 1


def test_partial_element_is_rejected():
    with pytest.raises(ValueError):
        split_pairs(b"\x00\x01\x02", PAIR_LAYOUTS["BF16"])


@fuzz(200)
@given(st.integers(0, 70), st.data())
def test_escape_gather_and_patch_match_a_plain_scan(n, data):
    # The kernels skip 8-code words without a 255; escapes anywhere (word edges, the
    # n % 8 tail) must be found in order, and a count mismatch reported.
    from ansz.pairs import Field, escaped_values, patch_escapes

    layout = PAIR_LAYOUTS["BF16"]
    field = Field(4, 11, 3)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    elems = rng.integers(0, 1 << 16, n).astype("<u2")
    codes = rng.integers(250, 256, n).astype(np.uint8)  # ~1/6 escapes
    where = np.flatnonzero(codes == 255)
    expect = ((elems[where] >> 4) & 0x7FF).astype(np.uint16)
    got = escaped_values(elems.tobytes(), layout, codes, field)
    assert got.dtype == np.uint16 and got.tolist() == expect.tolist()
    counted = escaped_values(elems.tobytes(), layout, codes, field, where.size)
    assert counted.dtype == np.uint16 and counted.tolist() == expect.tolist()
    for wrong in (where.size + 1, where.size - 1):
        if wrong > 0:
            with pytest.raises(ValueError):
                escaped_values(elems.tobytes(), layout, codes, field, wrong)

    out = elems.copy()
    out[where] &= ~np.uint16(0x7FF << 4)  # clear the escaped fields, then put them back
    assert patch_escapes(codes, expect, layout, out.view(np.uint8), field)
    assert out.tobytes() == elems.tobytes()
    if where.size:
        assert not patch_escapes(codes, expect[:-1], layout, out.view(np.uint8), field)
    assert not patch_escapes(codes, np.append(expect, np.uint16(1)), layout,
                             out.view(np.uint8), field)


@pytest.mark.parametrize("name", ["BF16", "F32"])
def test_field_histogram_step_samples_one_element_in_step_with_a_moving_phase(name):
    from ansz.pairs import field_histogram

    layout = PAIR_LAYOUTS[name]
    width = layout.width
    n = 5000
    data = np.random.default_rng(3).integers(0, 256, n * width).astype(np.uint8)
    whole = data.reshape(-1, width)
    for step in (1, 2, 3):
        j = np.arange(n)
        picked = step * j + (j >> 10) % step
        expect = field_histogram(whole[picked[picked < n]].tobytes(), layout)
        got = field_histogram(data.tobytes(), layout, step)
        assert np.array_equal(got, expect)


def test_field_choice_samples_both_phases_of_alternating_data():
    # A fixed even-element sample never saw the odd elements: a 1 MiB bf16 chunk of pairs
    # (weights, then tiny values) got a field that escaped half of them, 9% larger.
    from ansz.pairs import FIELD_SAMPLE_STEP, choose_field

    rng = np.random.default_rng(4)
    x = np.empty(1 << 19)
    x[0::2] = rng.standard_normal(1 << 18) * 0.02
    x[1::2] = rng.standard_normal(1 << 18) * 1e-12
    data = x.astype(ml_dtypes.bfloat16).tobytes()
    layout = PAIR_LAYOUTS["BF16"]
    assert choose_field(data, layout, FIELD_SAMPLE_STEP)[0] == choose_field(data, layout, 1)[0]


@pytest.mark.parametrize("name", ["BF16", "F16"])
@pytest.mark.parametrize("n", [0, 1, 2047, 2048, 5001, 40_000, 70_001])
def test_field_choice_of_16_bit_floats_matches_the_histogram_choice_and_counts_exactly(name, n):
    # choose_field16 counts each element once (sampled ones apart) and chooses in one call:
    # the field and cost of best_field over the sampled field_histogram, and the counts the
    # chosen field's code stream and last plane have over the whole chunk.
    from ansz.pairs import best_field, field_choice, field_histogram
    from ansz.rans import byte_histogram

    layout = PAIR_LAYOUTS[name]
    rng = np.random.default_rng(n)
    x = rng.standard_normal(n) * 0.02
    x[::37] = 0.0
    x[1::101] = np.inf
    x[2::53] *= 1e-30
    x[3::7] = np.abs(x[3::7])
    typed = x.astype(ml_dtypes.bfloat16 if name == "BF16" else np.float16)
    for data in (typed.tobytes(), rng.integers(0, 256, 2 * n, np.uint8).tobytes()):
        for step in (1, 2, 3):
            field, cost, counts = field_choice(data, layout, step)
            expect_field, expect_cost = best_field(field_histogram(data, layout, step), layout)
            assert field == expect_field
            assert cost == expect_cost or (np.isinf(cost) and np.isinf(expect_cost))
            codes, raw = split_pairs(data, layout, field=field)
            assert np.array_equal(counts.codes, byte_histogram(codes))
            if field.bits == 8:
                assert np.array_equal(counts.top, byte_histogram(raw))
            else:
                assert counts.top is None


def _field_costs_reference(hist):
    """field_costs as its docstring states it, over every value of each width (dense)."""
    import math

    def entropy(counts):
        total = float(sum(counts))
        return sum(c * math.log2(total / c) for c in counts if c > 0)

    n = int(hist.sum())
    costs, bases = [math.inf] * 5, [0] * 5
    if n == 0:
        return costs, bases
    for k in range(5):
        bits = 8 + k
        h = [int(v) for v in hist.reshape(1 << bits, -1).sum(axis=1)]
        base = 0
        if bits > 8:  # the first 255-value window with the most elements
            wins = [sum(h[v:v + 255]) for v in range(1 << bits)]
            base = wins.index(max(wins))
        coded, out = [0] * 256, []
        for v, c in enumerate(h):
            if 0 <= v - base < (255 if bits > 8 else 256):
                coded[v - base] += c
            else:
                out.append(c)
        coded[255] += sum(out)
        present = [c for c in range(256) if coded[c]]
        table = 0.0
        if len(present) > 1:
            table = sum(2.0 if coded[c] * 32 >= n else 1.0
                        for c in range(present[0], present[-1] + 1))
        cost = entropy(coded) / 8 + table + n * (16 - bits) / 8
        if sum(out):
            cost += (entropy(out) + sum(out)) / 8 + 8
        costs[k], bases[k] = cost, base
    return costs, bases


@fuzz(150)
@given(data=st.data())
def test_field_costs_match_the_dense_reference(data):
    # field_costs walks only the bins that hold elements and finds each width's window
    # with two pointers; the reference sums every window of every width.
    from ansz import kernels

    hist = np.zeros(4096, np.int64)
    for _ in range(data.draw(st.integers(0, 5))):
        centre = data.draw(st.integers(0, 4095))
        spread = data.draw(st.sampled_from([0, 3, 40, 300, 1500]))
        lo, hi = max(0, centre - spread), min(4096, centre + spread + 1)
        seed = data.draw(st.integers(0, 2**32 - 1))
        top = data.draw(st.sampled_from([2, 50, 10**6]))
        hist[lo:hi] += np.random.default_rng(seed).integers(0, top, hi - lo)
    costs, bases = kernels.field_costs(hist)
    expect_costs, expect_bases = _field_costs_reference(hist)
    assert list(bases) == expect_bases
    assert np.allclose(costs, expect_costs, rtol=1e-12, atol=0)


def test_choose_field16_refuses_what_it_cannot_index():
    from ansz import kernels

    elems = np.arange(5000, dtype=np.uint16)
    table = np.zeros(2 * 65536, np.uint32)
    counts = np.zeros(512, np.int64)
    for tops, step, tab, cnt in (([17], 1, table, counts), ([11], 2, table, counts),
                                 ([], 1, table, counts), ([15], 0, table, counts),
                                 ([15], 2, table[:65536], counts), ([15], 1, table, counts[:256])):
        with pytest.raises(ValueError):
            kernels.choose_field16(elems, np.int64(step), np.array(tops, np.int64), tab, cnt)


@pytest.mark.parametrize("n", [0, 1, 31, 32, 33, 95, 1000, 4099])
def test_split_pairs16_matches_the_field_arithmetic_for_every_width(n):
    # The 16-bit split runs whole vectors of elements and then a scalar tail: both must give
    # code = field - base (255 at and past the window, below base too) and the compacted
    # raw byte, for every field width, with the F16 plain pair's field ending at bit 16.
    from ansz import kernels
    from ansz.pairs import Field

    elems = np.random.default_rng(n).integers(0, 1 << 16, n).astype(np.uint16)
    x = elems.astype(np.int64)
    for field in (Field(7, 8), Field(8, 8), Field(0, 8), Field(6, 9, 300), Field(5, 10, 1000),
                  Field(4, 11, 761), Field(3, 12, 4095 - 254), Field(4, 12, 0)):
        c = ((x >> field.shift) & ((1 << field.bits) - 1)) - field.base
        expect_codes = np.where((c < 0) | (c > 255), 255, c).astype(np.uint8)
        above = x >> (field.shift + field.bits)
        expect_raw = ((above << field.shift) | (x & ((1 << field.shift) - 1))).astype(np.uint8)
        codes, raw = np.empty(n, np.uint8), np.empty(n, np.uint8)
        kernels.split_pairs16(elems, np.uint32(field.shift), np.uint32(field.bits),
                              np.uint32(field.base), codes, raw)
        assert np.array_equal(codes, expect_codes), field
        assert np.array_equal(raw, expect_raw), field


def _join_fielded16_kernels():
    """join_fielded16 as ansz calls it (the library's, where built) and numba's JIT kernel."""
    from ansz import _kernels, kernels

    return [kernels.join_fielded16, _kernels.join_fielded16]


def _expected_join16(codes, vals, field, escaped):
    """(elements, count of 255 codes) of a 16-bit join, field by field in int64: the code
    plus base modulo 2^bits, the raw value around it, the first escaped.size escapes
    replaced (a field wider than 8 bits only)."""
    x = ((codes.astype(np.int64) + field.base) & ((1 << field.bits) - 1)) << field.shift
    r = vals.astype(np.int64)
    x |= ((r >> field.shift) << (field.shift + field.bits)) | (r & ((1 << field.shift) - 1))
    count = 0
    if field.bits > 8:
        where = np.flatnonzero(codes == 255)
        count, m = where.size, min(where.size, escaped.size)
        fmask = (1 << field.bits) - 1
        x[where[:m]] &= ~(fmask << field.shift)
        x[where[:m]] |= (escaped[:m].astype(np.int64) & fmask) << field.shift
    return (x & 0xFFFF).astype(np.uint16), count


FIELDS16 = [(7, 8, 0), (8, 8, 0), (0, 8, 0), (6, 9, 300), (5, 10, 1000), (4, 11, 761),
            (3, 12, 4095 - 254), (4, 12, 0), (4, 11, 2047)]


@pytest.mark.parametrize("n", [0, 1, 2, 31, 32, 33, 95, 129, 1000, 1001, 4099, 70_001])
def test_join_fielded16_unpacks_joins_and_patches_in_one_pass(n):
    # Whole vectors, the scalar tail of each run between sub-plane slices, escapes in
    # vectors and tails alike (many codes near 255), for every field width, packed and not.
    from ansz import kernels
    from ansz.pairs import Field

    rng = np.random.default_rng(n)
    for kernel in _join_fielded16_kernels():
        for shift, bits, base in FIELDS16:
            field = Field(shift, bits, base)
            w = field.top_bits
            vals = rng.integers(0, 1 << w, n).astype(np.uint8)
            codes = rng.integers(0 if n % 2 else 240, 256, n).astype(np.uint8)
            escaped = rng.integers(0, 1 << 16, int((codes == 255).sum())).astype(np.uint16)
            if bits == 8:
                escaped = escaped[:0]
            expect, count = _expected_join16(codes, vals, field, escaped)
            packed = np.zeros(chunks._packed_size(n, w) if w < 8 else 0, np.uint8)
            if w < 8:
                kernels.pack_top(vals, np.int64(w), packed)
            for top, is_packed in ((vals, False), (packed, True)) if w < 8 else ((vals, True),):
                out = np.full(n, 0xABCD, np.uint16)
                status, got = kernel(codes, top, np.uint32(shift), np.uint32(bits),
                                     np.uint32(base), is_packed, escaped, out)
                assert (status, got) == (0, count), (field, is_packed)
                assert np.array_equal(out, expect), (field, is_packed)


def test_join_fielded16_counts_escape_codes_against_the_escapes_given():
    # A count other than escaped.size is how a corrupt chunk shows: too few, too many, none.
    from ansz.pairs import Field

    n = 1000
    rng = np.random.default_rng(5)
    codes = rng.integers(0, 255, n).astype(np.uint8)
    codes[[3, 40, 41, 500, 999]] = 255
    vals = rng.integers(0, 1 << 5, n).astype(np.uint8)
    field = Field(4, 11, 761)
    for kernel in _join_fielded16_kernels():
        for given in (0, 4, 5, 6):
            out = np.empty(n, np.uint16)
            escaped = np.arange(given, dtype=np.uint16)
            assert kernel(codes, vals, np.uint32(4), np.uint32(11), np.uint32(761), False,
                          escaped, out) == (0, 5)
            if given == 5:
                assert np.array_equal(out, _expected_join16(codes, vals, field, escaped)[0])
        out = np.empty(n, np.uint16)  # an 8-bit field: 255 is a value, nothing to count
        assert kernel(codes, vals, np.uint32(7), np.uint32(8), np.uint32(0), True,
                      np.zeros(0, np.uint16), out) == (0, 0)


@pytest.mark.parametrize("w", range(4, 8))
@pytest.mark.parametrize("n", [1, 3, 5, 7, 9, 15, 17, 1001, 4099])
def test_join_fielded16_reports_nonzero_padding_bits(w, n):
    # A padding bit set in any sub-plane's last byte is DECODE_BAD_PADDING; the values
    # themselves are not padding.
    from ansz import kernels

    vals = np.random.default_rng(n * 10 + w).integers(0, 1 << w, n).astype(np.uint8)
    packed = np.zeros(chunks._packed_size(n, w), np.uint8)
    kernels.pack_top(vals, np.int64(w), packed)
    codes = np.zeros(n, np.uint8)
    field = (15 - (16 - w), 16 - w, 0)
    for kernel in _join_fielded16_kernels():
        out = np.empty(n, np.uint16)
        args = [np.uint32(v) for v in field]
        assert kernel(codes, packed, *args, True, np.zeros(0, np.uint16), out)[0] == 0
        start = 0
        for k in [4] + ([2] if w >= 6 else []) + ([1] if w % 2 else []):
            size = -(-n * k // 8)
            for q in range(8 // k):  # every field of the sub-plane's last byte
                bad = packed.copy()
                bad[start + size - 1] |= ((1 << k) - 1) << (q * k)
                padding = q * size + size - 1 >= n
                status = kernel(codes, bad, *args, True, np.zeros(0, np.uint16), out)[0]
                assert status == (kernels.DECODE_BAD_PADDING if padding else 0), (k, q)
            start += size


def test_join_fielded16_refuses_what_it_cannot_index():
    from ansz import kernels

    n = 100
    codes, vals, out = np.zeros(n, np.uint8), np.zeros(n, np.uint8), np.zeros(n, np.uint16)
    packed = np.zeros(chunks._packed_size(n, 5), np.uint8)
    none = np.zeros(0, np.uint16)
    u = np.uint32
    for args in ((codes[:-1], vals, u(7), u(8), u(0), True, none, out),
                 (codes, vals[:-1], u(7), u(8), u(0), True, none, out),
                 (codes, packed[:-1], u(4), u(11), u(0), True, none, out),
                 (codes, vals, u(4), u(11), u(0), True, none, out),  # not packed
                 (codes, packed, u(6), u(11), u(0), True, none, out),  # past bit 16
                 (codes, vals, u(7), u(7), u(0), True, none, out),
                 (codes, vals, u(3), u(13), u(0), False, none, out),
                 (codes, packed, u(4), u(11), u(2048), True, none, out)):
        with pytest.raises(ValueError):
            kernels.join_fielded16(*args)


@pytest.mark.parametrize("n", [0, 1, 4095, 4096 + (1 << 15) - 1, 4096 + (1 << 15),
                               4096 + (1 << 15) + 1, 300_001, 1 << 19])
def test_code_histogram_counts_every_byte_once_by_either_method(n):
    # Exponent-like codes (a few values) go through the pair table past the sample,
    # uniform bytes, a constant run and a half-constant run count one by one; every count
    # is exact either way, the table's leftover contents notwithstanding.
    from ansz import _kernels, kernels

    rng = np.random.default_rng(n)
    half = rng.integers(0, 256, n).astype(np.uint8)
    half[::2] = 9
    cases = [np.clip(rng.normal(120, 3, n), 0, 255).astype(np.uint8),  # pairs
             (rng.integers(0, 4, n) * 60 + 1).astype(np.uint8),  # pairs, 4 values
             rng.integers(0, 256, n).astype(np.uint8), np.full(n, 7, np.uint8), half]
    for kernel in (kernels.code_histogram, _kernels.code_histogram):
        for data in cases:
            table = rng.integers(0, 1 << 32, 65536, dtype=np.uint64).astype(np.uint32)
            got = kernel(data, table)
            assert got.dtype == np.int64
            assert np.array_equal(got, np.bincount(data, minlength=256))


def test_code_histogram_refuses_a_small_table_when_it_needs_one():
    from ansz import kernels

    data = np.clip(np.random.default_rng(1).normal(120, 3, 1 << 17), 0, 255).astype(np.uint8)
    with pytest.raises(ValueError):
        kernels.code_histogram(data, np.zeros(65535, np.uint32))
    small = data[:1000]  # counted one by one: no table needed
    assert np.array_equal(kernels.code_histogram(small, np.zeros(0, np.uint32)),
                          np.bincount(small, minlength=256))
