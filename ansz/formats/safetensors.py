"""safetensors layout: parse and validate the header once, never touch tensor data.

File format (huggingface/safetensors README, "Format")::

    u64 LE N | N bytes of UTF-8 JSON, starting with '{', may be space-padded | data section

Every JSON key except ``"__metadata__"`` names a tensor ``{"dtype", "shape", "data_offsets":
[begin, end]}`` whose offsets are relative to the data section (which starts at ``8 + N``).

Everything is checked here, with Python ints (no overflow) and bounds taken from the real file
size, so callers may slice ``file[span.start:span.end]`` without further checks. The only
exception raised for bad input is :class:`~ansz.errors.FormatError`, one line, naming the
offending tensor.

Where ansz departs from the reference loader (``safetensors/src/tensor.rs``) and why:

- Stricter, because ansz must describe every byte it keeps: duplicate JSON keys, keys other than
  dtype/shape/data_offsets in an entry, bools or floats where integers belong, a header not
  starting with ``'{'``, unpaired surrogate escapes and NaN/Infinity are rejected (the reference
  accepts several of these).
- Looser, because ansz stores non-tensor bytes verbatim and so still round-trips such files:
  holes between tensors and bytes after the last tensor are allowed (the spec forbids them),
  and zero-size tensors may sit at any offset inside the data section. Overlaps and offsets
  past the end of the file are errors. ``"__metadata__": null`` means no metadata, as in the
  reference.
- Header length cap: 100 MB, as the reference (:func:`_header_len_cap`), and a header
  whose brackets outnumber what its tensor entries can hold is refused before it is parsed
  (:func:`_decode_header`), so parsing costs a bounded multiple of N in memory.
- Sub-byte dtypes (``F4``, ``F6_E2M3``, ``F6_E3M2``, see :data:`SUBBYTE_BITS`) are
  validated like the others (their bit count must fill whole bytes) but are reported in
  ``SafetensorsLayout.subbyte_tensors``, not ``tensors``. So every span in ``tensors`` has a
  dtype in :data:`SAFETENSORS_BYTES`, and packed sub-byte data is treated like any other
  non-tensor bytes (kept verbatim).
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass
from typing import Any, BinaryIO

from ansz.dtypes import SAFETENSORS_BYTES, SUBBYTE_BITS
from ansz.errors import FormatError
from ansz.formats import TensorSpan

_LENGTH_PREFIX = 8  # the u64 LE header length
#: The largest header accepted, as the reference loader's MAX_HEADER_SIZE.
MAX_HEADER_SIZE = 100_000_000
_U64_MAX = 2**64 - 1  # the reference parses shapes and offsets as 64-bit usize
_METADATA_KEY = "__metadata__"
_ENTRY_KEYS = frozenset({"dtype", "shape", "data_offsets"})


@dataclass(frozen=True)
class SafetensorsLayout:
    """A validated safetensors header.

    ``tensors`` (whole-byte dtypes) and ``subbyte_tensors`` are each sorted by (start, end, name);
    together they never overlap and lie inside ``[data_start, file_size)``. Bytes of the data
    section outside ``tensors`` (holes, trailing bytes, sub-byte tensors) are opaque.
    """

    header_len: int
    data_start: int
    file_size: int
    metadata: dict[str, str] | None
    tensors: tuple[TensorSpan, ...]
    subbyte_tensors: tuple[TensorSpan, ...] = ()


def parse_header(prefix: bytes, file_size: int) -> SafetensorsLayout:
    """Validate a safetensors header and return its layout.

    ``prefix`` holds at least the first ``8 + N`` bytes of a file of ``file_size`` bytes (more is
    ignored). Raises FormatError with a one-line message on anything that breaks the rules in
    the module docstring.
    """
    header_len = _read_header_len(prefix, file_size)
    data_start = _LENGTH_PREFIX + header_len
    if len(prefix) < data_start:
        raise FormatError(
            f"header truncated: have {len(prefix)} of its {data_start} bytes"
        )
    header = _decode_header(bytes(prefix[_LENGTH_PREFIX:data_start]))
    metadata = _parse_metadata(header.pop(_METADATA_KEY, None))

    data_len = file_size - data_start
    spans = sorted(
        (_parse_entry(name, entry, data_start, data_len) for name, entry in header.items()),
        key=lambda span: (span.start, span.end, span.name),
    )
    _check_no_overlap(spans)
    return SafetensorsLayout(
        header_len=header_len,
        data_start=data_start,
        file_size=file_size,
        metadata=metadata,
        tensors=tuple(s for s in spans if s.dtype in SAFETENSORS_BYTES),
        subbyte_tensors=tuple(s for s in spans if s.dtype in SUBBYTE_BITS),
    )


def read_layout(f: str | os.PathLike | BinaryIO) -> SafetensorsLayout:
    """Read and validate the header of a file (a path, or a seekable binary file object).

    Reads exactly ``8 + N`` bytes from offset 0, checking N against the file size before
    reading it; never reads the data section. A file object's position is restored.
    """
    if isinstance(f, (str, bytes, os.PathLike)):
        with open(f, "rb") as fh:
            return _read_layout_from(fh)
    return _read_layout_from(f)


def looks_like_safetensors(prefix: bytes, file_size: int) -> bool:
    """Cheap sniff, never raises: the first 8 bytes give a plausible N and byte 8 is ``'{'``."""
    try:
        _read_header_len(prefix, file_size)
    except FormatError:
        return False
    return len(prefix) > _LENGTH_PREFIX and prefix[_LENGTH_PREFIX] == ord("{")


def _header_len_cap(file_size: int) -> int:
    """Largest header length N accepted in a file of ``file_size`` bytes: the reference's
    :data:`MAX_HEADER_SIZE`, and no more than the bytes after the length prefix.

    Parsing costs memory: json.loads of a safetensors header takes up to ~17x its length
    (measured: a million metadata keys) once :func:`_decode_header` has refused text with
    more brackets than tensor entries hold. A fixed cap keeps that bounded even where the
    file size is only declared (a container's index). A larger header (safetensors#668 met
    a legitimate 126 MB one) is not a safetensors file for the reference loader either;
    ``ansz compress`` then stores the file as plain bytes.
    """
    return min(MAX_HEADER_SIZE, file_size - _LENGTH_PREFIX)


def _read_header_len(prefix: bytes, file_size: int) -> int:
    """N from the length prefix, checked against ``file_size``; FormatError if implausible."""
    if file_size < _LENGTH_PREFIX:
        raise FormatError(
            f"file is {file_size} bytes, shorter than the 8-byte safetensors header length"
        )
    if len(prefix) < _LENGTH_PREFIX:
        raise FormatError(f"header truncated: have {len(prefix)} of the 8 length bytes")
    (header_len,) = struct.unpack_from("<Q", prefix)
    if header_len == 0:
        raise FormatError("header length is 0; the smallest header is '{}'")
    if header_len > MAX_HEADER_SIZE:
        raise FormatError(
            f"header length {header_len} exceeds the {MAX_HEADER_SIZE}-byte limit "
            "(the reference loader's)"
        )
    if header_len > _header_len_cap(file_size):
        raise FormatError(
            f"header length {header_len} exceeds the {file_size - _LENGTH_PREFIX} bytes after "
            f"the length prefix in a {file_size}-byte file"
        )
    return header_len


def _read_layout_from(fh: BinaryIO) -> SafetensorsLayout:
    position = fh.tell()
    try:
        file_size = fh.seek(0, os.SEEK_END)
        fh.seek(0)
        length_bytes = _read_up_to(fh, _LENGTH_PREFIX)
        header_len = _read_header_len(length_bytes, file_size)
        header_bytes = _read_up_to(fh, header_len)
        return parse_header(length_bytes + header_bytes, file_size)
    finally:
        fh.seek(position)


def _read_up_to(fh: BinaryIO, n: int) -> bytes:
    """Up to n bytes (fewer only at EOF); loops because raw files may return short reads."""
    chunks = []
    remaining = n
    while remaining:
        chunk = fh.read(remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _decode_header(raw: bytes) -> dict[str, Any]:
    """The header's JSON object; FormatError for bad UTF-8, bad JSON, or duplicate keys."""
    if raw[:1] != b"{":
        raise FormatError(f"header must start with '{{', found {raw[:1]!r}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise FormatError(f"header is not valid UTF-8 (bad byte at header offset {e.start})") from e
    # json.loads builds every list and object before anything is checked: up to ~25x the
    # text in memory for "[[],[],...]". A valid header has one object per tensor entry (and
    # one for __metadata__), each with two lists; strings may hold brackets too, so this only
    # refuses text that cannot be a header.
    containers = raw.count(b"[") + raw.count(b"{")
    if containers > 3 * raw.count(b'"dtype"') + 2:
        raise FormatError("header is not valid: more lists and objects than its tensor "
                          "entries can hold")
    try:
        header = json.loads(
            text, object_pairs_hook=_object_without_duplicates, parse_constant=_reject_constant
        )
    except json.JSONDecodeError as e:
        raise FormatError(
            f"header is not valid JSON: {e.msg} (line {e.lineno}, column {e.colno})"
        ) from e
    except RecursionError:
        raise FormatError("header JSON is nested too deeply") from None
    except ValueError as e:  # e.g. an integer longer than sys.get_int_max_str_digits()
        raise FormatError(f"header is not valid JSON: {e}") from e
    if not isinstance(header, dict):  # unreachable after the '{' check; kept as the contract
        raise FormatError(f"header must be a JSON object, got {_json_type(header)}")
    return header


def _object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen = set()
        for key, _ in pairs:
            if key in seen:
                raise FormatError(f"header repeats the key {_quote(key)}")
            seen.add(key)
    return obj


def _reject_constant(name: str) -> None:
    raise FormatError(f"header contains {name}, which is not valid JSON")


def _parse_metadata(value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise FormatError(f"__metadata__ must be an object of strings, got {_json_type(value)}")
    for key, text in value.items():
        if not isinstance(text, str):
            raise FormatError(
                f"__metadata__ value for {_quote(key)} must be a string, got {_json_type(text)}"
            )
        _check_encodable(key, "__metadata__ key")
        _check_encodable(text, f"__metadata__ value for {_quote(key)}")
    return value


def _parse_entry(name: str, entry: Any, data_start: int, data_len: int) -> TensorSpan:
    """One tensor entry as an absolute span; offsets are checked against ``data_len``."""
    _check_encodable(name, "tensor name")
    where = f"tensor {_quote(name)}"
    if not isinstance(entry, dict):
        raise FormatError(f"{where}: entry must be a JSON object, got {_json_type(entry)}")
    missing = _ENTRY_KEYS - entry.keys()
    if missing:
        raise FormatError(f"{where}: entry lacks {', '.join(sorted(missing))}")
    unexpected = entry.keys() - _ENTRY_KEYS
    if unexpected:
        raise FormatError(f"{where}: unexpected key {_quote(min(unexpected))}")

    dtype = entry["dtype"]
    if not isinstance(dtype, str):
        raise FormatError(f"{where}: dtype must be a string, got {_json_type(dtype)}")
    if dtype in SAFETENSORS_BYTES:
        element_bits = 8 * SAFETENSORS_BYTES[dtype]
    elif dtype in SUBBYTE_BITS:
        element_bits = SUBBYTE_BITS[dtype]
    else:
        raise FormatError(f"{where}: unknown dtype {_quote(dtype)}")

    shape = _parse_shape(entry["shape"], where)
    element_count = _element_count(shape, where)
    begin, end = _parse_offsets(entry["data_offsets"], where)
    if end > data_len:
        raise FormatError(
            f"{where}: data_offsets end {end} lies past the {data_len}-byte data section"
        )
    total_bits = element_count * element_bits
    if total_bits % 8:
        raise FormatError(f"{where}: {element_count} {dtype} elements do not fill whole bytes")
    if total_bits // 8 != end - begin:
        raise FormatError(
            f"{where}: shape and dtype {dtype} need {total_bits // 8} bytes "
            f"but data_offsets span {end - begin}"
        )
    return TensorSpan(name, dtype, shape, data_start + begin, data_start + end)


def _parse_shape(value: Any, where: str) -> tuple[int, ...]:
    if not isinstance(value, list):
        raise FormatError(f"{where}: shape must be a list, got {_json_type(value)}")
    for dim in value:
        if not _is_u64(dim):
            raise FormatError(
                f"{where}: shape entries must be integers in [0, 2**64), got {_describe(dim)}"
            )
    return tuple(value)


def _element_count(shape: tuple[int, ...], where: str) -> int:
    """Product of ``shape``, refused as soon as a running product leaves u64 (as the reference's
    checked_mul does), so an absurd shape never builds a huge integer."""
    count = 1
    for dim in shape:
        count *= dim
        if count > _U64_MAX:
            raise FormatError(f"{where}: shape's element count overflows 64 bits")
    return count


def _parse_offsets(value: Any, where: str) -> tuple[int, int]:
    if not (isinstance(value, list) and len(value) == 2 and all(map(_is_u64, value))):
        raise FormatError(
            f"{where}: data_offsets must be [begin, end] with integers in [0, 2**64), "
            f"got {_describe(value)}"
        )
    begin, end = value
    if begin > end:
        raise FormatError(f"{where}: data_offsets begin {begin} is after end {end}")
    return begin, end


def _check_no_overlap(spans: list[TensorSpan]) -> None:
    """Non-empty spans (sorted by start) must be disjoint; zero-size spans occupy no bytes."""
    previous = None  # the last non-empty span; it has the largest end so far
    for span in spans:
        if span.start == span.end:
            continue
        if previous is not None and span.start < previous.end:
            raise FormatError(
                f"tensors {_quote(previous.name)} and {_quote(span.name)} overlap "
                f"at file bytes [{span.start}, {min(span.end, previous.end)})"
            )
        previous = span


def _is_u64(value: Any) -> bool:
    return type(value) is int and 0 <= value <= _U64_MAX  # type() excludes bool


def _check_encodable(text: str, what: str) -> None:
    """Reject unpaired surrogates (legal as JSON escapes, not as UTF-8), so names re-encode."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise FormatError(f"{what} {_quote(text)} contains an unpaired surrogate") from None


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return {dict: "object", list: "array", str: "string", type(None): "null"}[type(value)]


def _describe(value: Any) -> str:
    if isinstance(value, list):
        return f"an array of {len(value)} items"
    return _quote(value) if isinstance(value, (bool, int, float, str)) else _json_type(value)


def _quote(value: Any, limit: int = 60) -> str:
    """repr() cut to ``limit`` characters: one line, bounded length, whatever the input."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
