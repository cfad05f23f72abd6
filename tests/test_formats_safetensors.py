"""ansz.formats.safetensors: real files from the safetensors library, one hostile header per rule,
and fuzzing (the only allowed outcomes are a layout or FormatError)."""

import io
import json
import struct

import ml_dtypes
import numpy as np
import pytest
import safetensors
from hypothesis import HealthCheck, given
from hypothesis import strategies as st
from safetensors.numpy import save, save_file

from ansz.dtypes import SAFETENSORS_BYTES as SAFETENSORS_DTYPES
from ansz.dtypes import SUBBYTE_BITS as SUBBYTE_DTYPE_BITS
from ansz.errors import FormatError
from ansz.formats.safetensors import (
    SafetensorsLayout,
    TensorSpan,
    looks_like_safetensors,
    parse_header,
    read_layout,
)

from helpers import fuzz

FUZZ = fuzz(150, suppress_health_check=[HealthCheck.too_slow])


def build(header, data: bytes = b"") -> bytes:
    """u64 LE length + ``header`` (dict → compact JSON, str → UTF-8, bytes as is) + data."""
    if isinstance(header, dict):
        header = json.dumps(header, separators=(",", ":"))
    if isinstance(header, str):
        header = header.encode("utf-8")
    return struct.pack("<Q", len(header)) + header + data


def entry(dtype: str, shape, begin: int, end: int) -> dict:
    return {"dtype": dtype, "shape": list(shape), "data_offsets": [begin, end]}


def parse(file: bytes) -> SafetensorsLayout:
    return parse_header(file, len(file))


def sample_arrays() -> dict[str, tuple[np.ndarray, str]]:
    """name -> (array, the safetensors dtype name the library writes for it)."""
    rng = np.random.default_rng(0)
    normal = rng.standard_normal((4, 6)).astype(np.float32)
    return {
        "w.bf16": (normal.astype(ml_dtypes.bfloat16), "BF16"),
        "w.f8e4m3": (normal.astype(ml_dtypes.float8_e4m3fn), "F8_E4M3"),
        "w.f8e5m2": (normal.astype(ml_dtypes.float8_e5m2), "F8_E5M2"),
        "w.f16": (normal.astype(np.float16), "F16"),
        "w.f32": (normal, "F32"),
        "w.f64": (normal[:2].astype(np.float64), "F64"),
        "ids.i64": (rng.integers(-(2**40), 2**40, size=7), "I64"),
        "ids.u16": (rng.integers(0, 2**16, size=(3, 3), dtype=np.uint16), "U16"),
        "q.i8": (rng.integers(-128, 128, size=9, dtype=np.int8), "I8"),
        "q.u8": (rng.integers(0, 256, size=(2, 2, 2), dtype=np.uint8), "U8"),
        "mask": (rng.random(5) > 0.5, "BOOL"),
        "scalar": (np.array(1.5, dtype=np.float32), "F32"),
        "empty": (np.zeros((0, 4), dtype=np.float32), "F32"),
    }


# --- real files -----------------------------------------------------------------------------


def test_real_file_spans_hold_the_arrays(tmp_path):
    arrays = sample_arrays()
    path = tmp_path / "model.safetensors"
    save_file({name: a for name, (a, _) in arrays.items()}, path)
    file = path.read_bytes()

    layout = read_layout(path)

    assert layout == parse(file)
    (header_len,) = struct.unpack("<Q", file[:8])
    assert (layout.header_len, layout.data_start) == (header_len, 8 + header_len)
    assert layout.file_size == len(file)
    assert layout.metadata is None and layout.subbyte_tensors == ()
    assert [s.start for s in layout.tensors] == sorted(s.start for s in layout.tensors)
    assert {s.name for s in layout.tensors} == set(arrays)
    for span in layout.tensors:
        array, dtype = arrays[span.name]
        assert span.dtype == dtype
        assert span.shape == array.shape
        assert span.nbytes == array.nbytes == array.size * SAFETENSORS_DTYPES[dtype]
        assert file[span.start : span.end] == array.tobytes()
    # The reference writer leaves no holes: the non-empty spans tile the data section.
    nonempty = [s for s in layout.tensors if s.nbytes]
    assert nonempty[0].start == layout.data_start and nonempty[-1].end == layout.file_size
    assert all(a.end == b.start for a, b in zip(nonempty, nonempty[1:]))


def test_metadata_round_trips():
    metadata = {"format": "pt", "note": "ünïcode ✓", "empty": ""}
    file = save({"x": np.arange(6, dtype=np.int32)}, metadata=metadata)
    assert parse(file).metadata == metadata


def test_parse_header_accepts_a_prefix_of_just_the_header():
    file = save({"x": np.arange(1000, dtype=np.float32)})
    layout = parse(file)
    assert parse_header(file[: layout.data_start], len(file)) == layout
    assert parse_header(memoryview(file), len(file)) == layout


class CountingBytesIO(io.BytesIO):
    """BytesIO that counts the bytes handed out by read()/readinto()."""

    def __init__(self, data: bytes):
        super().__init__(data)
        self.bytes_read = 0

    def read(self, size=-1):
        data = super().read(size)
        self.bytes_read += len(data)
        return data

    def readinto(self, buffer):
        n = super().readinto(buffer)
        self.bytes_read += n
        return n


def test_read_layout_on_a_file_object_reads_only_the_header():
    file = save({"big": np.zeros(1 << 18, dtype=np.float32), "b": np.ones(3, dtype=np.int8)})
    fh = CountingBytesIO(file)
    fh.seek(123)

    layout = read_layout(fh)

    assert layout == parse(file)
    assert fh.bytes_read == layout.data_start
    assert fh.tell() == 123


def test_read_layout_checks_the_length_before_reading_the_header():
    fh = CountingBytesIO(struct.pack("<Q", 10**12) + b"{" + bytes(100))
    with pytest.raises(FormatError, match="exceeds"):
        read_layout(fh)
    assert fh.bytes_read == 8


def test_read_layout_on_a_path_reports_format_errors(tmp_path):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(build('{"x":1}'))
    with pytest.raises(FormatError, match="entry must be a JSON object"):
        read_layout(str(path))


def test_looks_like_safetensors():
    file = save({"x": np.ones(4, dtype=np.float16)})
    assert looks_like_safetensors(file, len(file))
    assert looks_like_safetensors(file[:9], len(file))
    assert not looks_like_safetensors(file[:8], len(file))  # cannot see byte 8
    assert not looks_like_safetensors(file, 20)  # header would run past the end
    assert not looks_like_safetensors(b"\x00" * 16, 16)  # N = 0
    assert not looks_like_safetensors(build(b"[]"), 10)
    assert not looks_like_safetensors(b"\x89PNG\r\n\x1a\n" + bytes(100), 108)
    assert not looks_like_safetensors(b"short", 5)


# --- dtypes ---------------------------------------------------------------------------------


def test_dtype_table():
    contract = {
        "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "F8_E8M0": 1,
        "I16": 2, "U16": 2, "F16": 2, "BF16": 2, "I32": 4, "U32": 4, "F32": 4,
        "I64": 8, "U64": 8, "F64": 8,
    }  # fmt: skip
    assert contract.items() <= SAFETENSORS_DTYPES.items()
    assert not SAFETENSORS_DTYPES.keys() & SUBBYTE_DTYPE_BITS.keys()


@pytest.mark.parametrize("dtype", sorted(SAFETENSORS_DTYPES))
def test_every_whole_byte_dtype_parses_and_the_reference_agrees(dtype):
    nbytes = 6 * SAFETENSORS_DTYPES[dtype]
    file = build({"t": entry(dtype, [2, 3], 0, nbytes)}, bytes(nbytes))
    safetensors.deserialize(file)  # the name is one the library knows
    (span,) = parse(file).tensors
    assert (span.dtype, span.shape, span.nbytes) == (dtype, (2, 3), nbytes)


@pytest.mark.parametrize("dtype", sorted(SUBBYTE_DTYPE_BITS))
def test_subbyte_dtypes_are_validated_and_reported_apart(dtype):
    nbytes = 8 * SUBBYTE_DTYPE_BITS[dtype] // 8  # 8 elements fill whole bytes for 4 and 6 bits
    file = build({"p": entry(dtype, [8], 0, nbytes), "w": entry("U8", [2], nbytes, nbytes + 2)},
                 bytes(nbytes + 2))
    safetensors.deserialize(file)
    layout = parse(file)
    assert [s.name for s in layout.tensors] == ["w"]
    assert [(s.name, s.nbytes) for s in layout.subbyte_tensors] == [("p", nbytes)]

    with pytest.raises(FormatError, match="do not fill whole bytes"):
        parse(build({"p": entry(dtype, [3], 0, 2)}, bytes(2)))


# --- unusual but accepted -------------------------------------------------------------------


def test_unusual_but_parseable_files_are_accepted():
    data = bytes(range(40))
    header = {
        "b": entry("F32", [2], 16, 24),  # out of order in the JSON, after a hole [4, 16)
        "a": entry("U8", [4], 0, 4),
        "z.inside": entry("F32", [0], 20, 20),  # zero-size, inside b's bytes
        "z.shared": entry("I64", [3, 0], 4, 4),  # zero-size, sharing a's end offset
        "z.front": entry("BF16", [0], 0, 0),
        "__metadata__": None,
    }
    file = build(json.dumps(header) + "    ", data)  # space padding; bytes [24, 40) trail
    layout = parse(file)
    assert layout.metadata is None
    relative = [(s.name, s.start - layout.data_start, s.end - layout.data_start) for s in layout.tensors]
    assert relative == [
        ("z.front", 0, 0), ("a", 0, 4), ("z.shared", 4, 4), ("b", 16, 24), ("z.inside", 20, 20),
    ]  # fmt: skip
    assert layout.file_size - layout.data_start == len(data)


def test_empty_header_and_names():
    assert parse(build("{}")).tensors == ()
    layout = parse(build({"": entry("U8", [1], 0, 1), "__metadata__": {}}, b"x"))
    assert layout.metadata == {}
    assert layout.tensors == (TensorSpan("", "U8", (1,), layout.data_start, layout.data_start + 1),)


# --- hostile headers: one per rule ----------------------------------------------------------

OK_ENTRY = entry("F32", [2], 0, 8)
HOSTILE = {
    # length prefix
    "file shorter than 8 bytes": (b"\x02\x00\x00", "shorter than the 8-byte"),
    "header length 0": (struct.pack("<Q", 0) + bytes(8), "header length is 0"),
    "header past end of file": (struct.pack("<Q", 100) + b"{}", "exceeds"),
    "header length near 2**64": (struct.pack("<Q", 2**64 - 1) + b"{}", "exceeds"),
    # header bytes
    "first byte not brace": (build(' {"a":1}'), "must start with '{'"),
    "header is an array": (build("[]"), "must start with '{'"),
    "not UTF-8": (build(b'{"\xff\xfe":1}'), "not valid UTF-8"),
    "not JSON": (build('{"a":}'), "not valid JSON"),
    "trailing garbage": (build("{}  x"), "not valid JSON"),
    "trailing NUL padding": (build("{}\x00"), "not valid JSON"),
    "NaN": (build('{"a":NaN}'), "NaN"),
    "huge integer": (build('{"a":' + "9" * 5000 + "}"), "not valid JSON"),
    "deep nesting": (build('{"a":' + "[" * 100_000 + "]" * 100_000 + "}"), "more lists and objects"),
    # brackets a header could hold (metadata full of "dtype"), nested past the recursion limit
    "deep nesting, padded": (
        build('{"__metadata__":{' + ",".join(f'"k{i}":"dtype"' for i in range(40_000))
              + '},"a":' + "[" * 100_000 + "]" * 100_000 + "}"),
        "nested too deeply",
    ),
    # json.loads would build a million lists (~25x the text) before any check
    "list bomb": (build('{"a":{"dtype":"U8","shape":[' + "[]," * 10**6 + '[]],"data_offsets":[0,0]}}'),
                  "more lists and objects"),
    "duplicate tensor": (build('{"a":1,"a":2}'), "repeats the key 'a'"),
    "duplicate field": (
        build('{"a":{"dtype":"U8","dtype":"U8","shape":[],"data_offsets":[0,1]}}', b"x"),
        "repeats the key 'dtype'",
    ),
    # __metadata__
    "metadata not object": (build({"__metadata__": ["x"]}), "__metadata__ must be an object"),
    "metadata value not str": (build({"__metadata__": {"k": 1}}), "must be a string, got number"),
    "metadata surrogate": (build('{"__metadata__":{"k":"\\udc00"}}'), "unpaired surrogate"),
    # entry structure
    "entry not object": (build({"a": [1]}), "entry must be a JSON object, got array"),
    "missing shape": (build({"a": {"dtype": "U8", "data_offsets": [0, 0]}}), "lacks shape"),
    "extra key": (build({"a": {**OK_ENTRY, "x": 1}}, bytes(8)), "unexpected key 'x'"),
    "name surrogate": (build('{"\\ud800":1}'), "unpaired surrogate"),
    # dtype
    "dtype not str": (build({"a": {**OK_ENTRY, "dtype": 4}}, bytes(8)), "dtype must be a string"),
    "unknown dtype": (build({"a": {**OK_ENTRY, "dtype": "F128"}}, bytes(8)), "unknown dtype 'F128'"),
    "lowercase dtype": (build({"a": {**OK_ENTRY, "dtype": "f32"}}, bytes(8)), "unknown dtype"),
    # shape
    "shape not list": (build({"a": {**OK_ENTRY, "shape": 2}}, bytes(8)), "shape must be a list"),
    "shape negative": (build({"a": {**OK_ENTRY, "shape": [-2]}}, bytes(8)), "shape entries"),
    "shape bool": (build({"a": {**OK_ENTRY, "shape": [True, 2]}}, bytes(8)), "got True"),
    "shape float": (build({"a": {**OK_ENTRY, "shape": [2.0]}}, bytes(8)), "shape entries"),
    "shape dim 2**64": (build({"a": {**OK_ENTRY, "shape": [2**64]}}, bytes(8)), "shape entries"),
    "shape product overflows": (
        build({"a": {**OK_ENTRY, "shape": [2**32, 2**32, 0]}}, bytes(8)),
        "overflows 64 bits",
    ),
    # data_offsets
    "offsets one item": (build({"a": {**OK_ENTRY, "data_offsets": [8]}}, bytes(8)), "data_offsets must be"),
    "offsets negative": (build({"a": {**OK_ENTRY, "data_offsets": [-8, 0]}}, bytes(8)), "data_offsets must be"),
    "offsets bool": (build({"a": {**OK_ENTRY, "data_offsets": [False, 8]}}, bytes(8)), "data_offsets must be"),
    "offsets not list": (build({"a": {**OK_ENTRY, "data_offsets": "0-8"}}, bytes(8)), "data_offsets must be"),
    "begin after end": (build({"a": entry("U8", [0], 8, 0)}, bytes(8)), "begin 8 is after end 0"),
    "size mismatch": (build({"a": entry("F32", [2], 0, 4)}, bytes(8)), "need 8 bytes but data_offsets span 4"),
    "end past data": (build({"a": entry("F32", [2], 4, 12)}, bytes(8)), "lies past the 8-byte data section"),
    "huge end": (build({"a": entry("U8", [1], 2**64 - 2, 2**64 - 1)}, bytes(8)), "lies past"),
    "overlap": (
        build({"a": entry("F32", [2], 0, 8), "b": entry("U8", [4], 6, 10)}, bytes(10)),
        "tensors 'a' and 'b' overlap",
    ),
    "same offsets": (
        build({"a": entry("U8", [4], 0, 4), "b": entry("I8", [4], 0, 4)}, bytes(4)),
        "overlap",
    ),
    "overlap past a zero-size tensor": (
        build({"a": entry("U8", [8], 0, 8), "z": entry("U8", [0], 4, 4), "b": entry("U8", [2], 6, 8)}, bytes(8)),
        "tensors 'a' and 'b' overlap",
    ),
}  # fmt: skip


@pytest.mark.parametrize("file, fragment", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_header_raises_format_error(file, fragment):
    with pytest.raises(FormatError) as info:
        parse(file)
    message = str(info.value)
    assert fragment in message
    assert "\n" not in message and len(message) < 200


def test_truncated_prefix():
    file = save({"x": np.ones(4, dtype=np.float16)})
    with pytest.raises(FormatError, match="header truncated"):
        parse_header(file[:20], len(file))
    with pytest.raises(FormatError, match="header truncated"):
        parse_header(file[:5], len(file))


def test_long_names_are_cut_in_messages():
    name = "n\n" * 10_000
    with pytest.raises(FormatError) as info:
        parse(build({name: entry("U8", [1], 0, 2)}, b"xx"))
    assert "\n" not in str(info.value) and len(str(info.value)) < 200


# --- fuzzing --------------------------------------------------------------------------------


def assert_layout_invariants(layout: SafetensorsLayout) -> None:
    spans = sorted(layout.tensors + layout.subbyte_tensors, key=lambda s: (s.start, s.end))
    end_so_far = layout.data_start
    for span in spans:
        assert layout.data_start <= span.start <= span.end <= layout.file_size
        if span.nbytes:
            assert span.start >= end_so_far
            end_so_far = span.end
    for span in layout.tensors:
        element_count = int(np.prod(span.shape, dtype=object))
        assert span.nbytes == element_count * SAFETENSORS_DTYPES[span.dtype]


def parse_or_format_error(prefix: bytes, file_size: int) -> None:
    assert isinstance(looks_like_safetensors(prefix, file_size), bool)
    try:
        layout = parse_header(prefix, file_size)
    except FormatError as e:
        assert "\n" not in str(e)
        return
    assert_layout_invariants(layout)


VALID_FILE = save(
    {
        "a": np.ones((2, 3), dtype=ml_dtypes.bfloat16),
        "b": np.zeros(0, dtype=np.float32),
        "c": np.arange(5, dtype=np.int64),
    },
    metadata={"format": "pt"},
)


@FUZZ
@given(data=st.binary(max_size=300), file_size=st.integers(0, 2**64))
def test_fuzz_random_bytes(data, file_size):
    parse_or_format_error(data, file_size)
    parse_or_format_error(data, len(data))


@FUZZ
@given(header=st.binary(max_size=300), data_len=st.integers(0, 64))
def test_fuzz_random_header_bytes(header, data_len):
    file = build(header, bytes(data_len))
    parse_or_format_error(file, len(file))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


@FUZZ
@given(
    field=st.sampled_from(["dtype", "shape", "data_offsets"]),
    name=st.sampled_from(["a", "b", "c"]),
    value=json_values | st.lists(st.integers(-2, 2**64 + 1), max_size=3),
)
def test_fuzz_replaced_header_values(field, name, value):
    header = json.loads(VALID_FILE[8 : parse(VALID_FILE).data_start])
    header[name][field] = value
    file = build(json.dumps(header), VALID_FILE[parse(VALID_FILE).data_start :])
    parse_or_format_error(file, len(file))


@FUZZ
@given(st.data())
def test_fuzz_mutated_valid_file(data):
    file = bytearray(VALID_FILE)
    data_start = parse(VALID_FILE).data_start
    for _ in range(data.draw(st.integers(1, 4))):
        action = data.draw(st.sampled_from(["flip", "insert", "delete", "relength"]))
        position = data.draw(st.integers(0, min(len(file), data_start) - 1))
        if action == "flip":
            file[position] = data.draw(st.integers(0, 255))
        elif action == "insert":
            file[position:position] = data.draw(st.binary(min_size=1, max_size=4))
        elif action == "delete":
            del file[position : position + data.draw(st.integers(1, 4))]
        else:  # make the length prefix agree with (or miss) a shifted header end
            file[:8] = struct.pack("<Q", max(0, data_start - 8 + data.draw(st.integers(-6, 6))))
    file = bytes(file)
    parse_or_format_error(file, len(file))
    parse_or_format_error(file, data.draw(st.integers(0, 2 * len(file))))


def test_header_longer_than_the_reference_cap_is_refused_from_its_length():
    from ansz.formats.safetensors import MAX_HEADER_SIZE

    prefix = struct.pack("<Q", MAX_HEADER_SIZE + 1) + b"{"
    with pytest.raises(FormatError, match=f"exceeds the {MAX_HEADER_SIZE}-byte limit"):
        parse_header(prefix, 10 * MAX_HEADER_SIZE)  # a big file: only the cap refuses it
    assert not looks_like_safetensors(prefix, 10 * MAX_HEADER_SIZE)
