"""Coding pairs: split/join is an exact inverse for every dtype, and the code is the exponent."""

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansz.pairs import PAIR_LAYOUTS, join_pairs, layout_for, split_pairs

ALL = sorted(PAIR_LAYOUTS)


def roundtrip(data: bytes, name: str) -> bytes:
    layout = PAIR_LAYOUTS[name]
    codes, raw = split_pairs(data, layout)
    assert codes.size == len(data) // layout.width
    assert raw.size == codes.size * layout.raw_width
    out = np.empty(len(data), np.uint8)
    join_pairs(codes, raw, layout, out)
    return out.tobytes()


@settings(max_examples=60, deadline=None)
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
