"""GGUF layout (llama.cpp's model format): parse and validate the header, never touch tensor data.

File format (ggml-org/ggml ``docs/gguf.md``), all little-endian::

    u32 magic "GGUF" | u32 version (2 or 3) | u64 tensor_count | u64 kv_count
    kv_count x  (string key, u32 value_type, value)
    tensor_count x (string name, u32 n_dims, u64 ne[n_dims], u32 ggml_type, u64 offset)
    zero padding to ``general.alignment`` (u32 key, default 32)
    data section: tensor i at data_start + offset_i, each offset a multiple of the alignment

A string is ``u64 length`` + UTF-8 bytes; a value is one of 13 scalar types, a string, or an
array (``u32 element type, u64 count``, elements). Version 1 (u32 counts) is obsolete and
refused, as llama.cpp does.

Why a hand-written parser and not ``gguf.GGUFReader``: the reader maps the whole file with
numpy and builds views from the header's counts and lengths as it goes; a hostile count or
length surfaces as whatever numpy raises (ValueError, IndexError, a huge allocation of
``count`` Python objects), and it needs ``requests``, ``tqdm`` and ``pyyaml`` at run time.
This parser reads only the header, checks every count, length and offset against the bytes
that exist before using it, keeps no value but ``general.alignment`` (:func:`read_metadata`,
for ``ansz.open``, returns them all, with the same checks), and raises
:class:`~ansz.errors.FormatError` with a one-line message. The GGML type table below is
checked against the ``gguf`` package in the tests.

Like :mod:`ansz.formats.safetensors`, everything outside the tensors (header, metadata,
padding, trailing bytes) is kept verbatim, so holes between tensors are allowed; overlapping
tensors, offsets past the end of the file, unknown tensor types, misaligned offsets and
duplicate names are errors. Big-endian GGUF files (version field byte-swapped) are not
recognised as GGUF and fall back to generic bytes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from ansz.dtypes import GGML_TYPES
from ansz.errors import FormatError
from ansz.formats import TensorSpan

MAGIC = b"GGUF"
VERSIONS = (2, 3)
DEFAULT_ALIGNMENT = 32
MAX_DIMS = 4  #: GGML_MAX_DIMS
MAX_NAME_BYTES = 65535  #: tensor names (llama.cpp allows 63; real files stay far below this)
_U64_MAX = 2**64 - 1
_I64_MAX = 2**63 - 1

# GGUF value types: id -> fixed size (None: string 8, array 9).
_SCALAR_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_STRING, _ARRAY, _UINT32 = 8, 9, 4
_ALIGNMENT_KEY = b"general.alignment"


class _NeedMore(Exception):
    """The prefix ends before the header does, but the file goes on: read more and retry."""

    def __init__(self, need: int):
        self.need = need


@dataclass(frozen=True)
class GGUFLayout:
    """A validated GGUF header: ``tensors`` sorted by start, disjoint, inside the file."""

    version: int
    alignment: int
    data_start: int
    file_size: int
    tensors: tuple[TensorSpan, ...]

    @property
    def header_len(self) -> int:
        return self.data_start


def looks_like_gguf(prefix: bytes) -> bool:
    """Cheap sniff, never raises: the magic and a supported little-endian version."""
    return (len(prefix) >= 8 and bytes(prefix[:4]) == MAGIC
            and struct.unpack_from("<I", prefix, 4)[0] in VERSIONS)


def parse_header(prefix, file_size: int) -> GGUFLayout:
    """Validate a GGUF header held in ``prefix`` (the first bytes of a ``file_size``-byte file).

    Raises FormatError if the header breaks a rule, or if ``prefix`` ends before the header
    does (read more: :func:`header_needs` tells how much).
    """
    try:
        return _parse(memoryview(prefix).cast("B"), file_size)
    except _NeedMore as e:
        raise FormatError(f"header truncated: needs at least {e.need} bytes, have "
                          f"{len(prefix)}") from None


def read_layout(head, file_size: int | None, limit: int | None = None) -> GGUFLayout:
    """Read and validate a GGUF header through ``head(n)``, which returns the input's first
    ``n`` bytes (fewer only where the input ends).

    The header is read in growing prefixes (at most ``limit`` bytes, else FormatError).
    ``file_size`` None means a stream of unknown length: tensor ranges are not checked
    against an end (the caller meets it while reading).
    """
    return _read_growing(head, file_size, limit, _parse)


def read_metadata(head, file_size: int, limit: int | None = None) -> dict[str, Any]:
    """The metadata key-value pairs of a GGUF file, read through ``head(n)`` as
    :func:`read_layout` reads the header (only up to the end of the pairs).

    Keys and strings are decoded as UTF-8 (bytes that are not valid UTF-8 become lone
    surrogates, ``errors="surrogateescape"``, so ``s.encode("utf-8", "surrogateescape")``
    gives them back). Integers, floats and bools become ``int``, ``float`` and ``bool``; an
    array of numbers or bools becomes a read-only 1-D numpy array of its little-endian
    element type (so a vocabulary's scores cost 4 bytes each, not a Python object); an
    array of strings a ``list`` of ``str``. ``general.alignment`` is included. Memory: the
    prefix read, plus about 7 times its string data in Python objects at most.
    """
    return _read_growing(head, file_size, limit, _parse_metadata)


def _read_growing(head, file_size: int | None, limit: int | None, parse):
    """``parse(prefix, size)`` on growing prefixes of the input until it has enough."""
    n = 1 << 16 if file_size is None else min(1 << 16, file_size)
    if limit is not None:
        n = min(n, limit)
    while True:
        prefix = head(n)
        ended = len(prefix) < n
        size = file_size if file_size is not None else (len(prefix) if ended else 2**64)
        try:
            return parse(memoryview(prefix).cast("B"), size)
        except _NeedMore as e:
            if ended:  # the input is shorter than it said (a file that shrank)
                raise FormatError("header truncated") from None
            n = max(e.need, 4 * n)
            if file_size is not None:
                n = min(n, file_size)
            if limit is not None and n > limit:
                if e.need > limit:
                    raise FormatError(f"header of more than {limit} bytes is too large to "
                                      "buffer") from None
                n = limit


class _Cursor:
    def __init__(self, mv: memoryview, file_size: int):
        self.mv, self.pos, self.file_size = mv, 0, file_size
        self.n_kv = 0

    def take(self, n: int, what: str) -> memoryview:
        end = self.pos + n
        if end > self.file_size:
            raise FormatError(f"{what} at byte {self.pos} runs past the end of the "
                              f"{self.file_size}-byte file")
        if end > len(self.mv):
            raise _NeedMore(end)
        out = self.mv[self.pos:end]
        self.pos = end
        return out

    def u32(self, what: str) -> int:
        return struct.unpack("<I", self.take(4, what))[0]

    def u64(self, what: str) -> int:
        return struct.unpack("<Q", self.take(8, what))[0]

    def string(self, what: str) -> memoryview:
        n = self.u64(f"{what} length")
        return self.take(n, what)  # take() checks n against the file before slicing

    def remaining(self) -> int:
        return self.file_size - self.pos


def _parse(mv: memoryview, file_size: int) -> GGUFLayout:
    c = _Cursor(mv, file_size)
    version, n_tensors = _start(c)
    alignment = DEFAULT_ALIGNMENT
    keys = set()
    for key, vtype in _kv_keys(c, keys):
        if key == _ALIGNMENT_KEY:
            if vtype != _UINT32:
                raise FormatError("general.alignment must be a uint32")
            alignment = c.u32("general.alignment")
            if alignment == 0 or alignment & (alignment - 1):
                raise FormatError(f"general.alignment {alignment} is not a power of two")
        else:
            _skip_value(c, vtype, _quote(key))

    infos = []
    names = set()
    for i in range(n_tensors):
        raw = c.string(f"name of tensor {i}")
        if len(raw) > MAX_NAME_BYTES:
            raise FormatError(f"name of tensor {i} is {len(raw)} bytes long")
        try:
            name = bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            raise FormatError(f"name of tensor {i} is not valid UTF-8") from None
        where = f"tensor {_quote(name)}"
        if name in names:
            raise FormatError(f"{where} is repeated")
        names.add(name)
        n_dims = c.u32(f"{where} dimension count")
        if n_dims > MAX_DIMS:
            raise FormatError(f"{where} has {n_dims} dimensions (at most {MAX_DIMS})")
        ne = [c.u64(f"{where} dimensions") for _ in range(n_dims)]
        type_id = c.u32(f"{where} type")
        offset = c.u64(f"{where} offset")
        if type_id not in GGML_TYPES:
            raise FormatError(f"{where} has unknown GGML type {type_id}")
        dtype, block_elems, block_bytes = GGML_TYPES[type_id]
        count = 1
        for d in ne:
            if d > _I64_MAX:
                raise FormatError(f"{where} has a dimension of {d}")
            count *= d
            if count > _I64_MAX:
                raise FormatError(f"{where}: element count overflows 64 bits")
        if ne and ne[0] % block_elems:
            raise FormatError(f"{where}: row of {ne[0]} elements is not whole {dtype} blocks "
                              f"of {block_elems}")
        infos.append((name, dtype, tuple(reversed(ne)), offset, count // block_elems * block_bytes))

    data_start = -(-c.pos // alignment) * alignment
    if not infos:  # no tensors (a vocabulary-only file): no padding is needed
        data_start = min(data_start, file_size)
    if data_start > file_size:
        raise FormatError(f"data section would start at byte {data_start}, past the end of "
                          f"the {file_size}-byte file")
    tensors = []
    for name, dtype, shape, offset, nbytes in infos:
        where = f"tensor {_quote(name)}"
        if offset % alignment:
            raise FormatError(f"{where}: offset {offset} is not a multiple of the alignment "
                              f"{alignment}")
        start = data_start + offset
        if start + nbytes > file_size:
            raise FormatError(f"{where}: data [{start}, {start + nbytes}) lies past the end of "
                              f"the {file_size}-byte file")
        tensors.append(TensorSpan(name, dtype, shape, start, start + nbytes))
    tensors.sort(key=lambda t: (t.start, t.end, t.name))
    previous = None
    for t in tensors:
        if t.start == t.end:
            continue
        if previous is not None and t.start < previous.end:
            raise FormatError(f"tensors {_quote(previous.name)} and {_quote(t.name)} overlap")
        previous = t
    return GGUFLayout(version, alignment, data_start, file_size, tuple(tensors))


def _start(c: _Cursor) -> tuple[int, int]:
    """Check magic, version and counts: ``(version, tensor count)``; leaves the cursor at
    the first key-value pair, with ``c.n_kv`` set."""
    if bytes(c.take(4, "magic")) != MAGIC:
        raise FormatError("not a GGUF file (bad magic)")
    version = c.u32("version")
    if version not in VERSIONS:
        raise FormatError(f"GGUF version {version} is not supported (only 2 and 3)")
    n_tensors = c.u64("tensor count")
    n_kv = c.u64("metadata count")
    # Every tensor info takes at least 8 + 4 + 4 + 8 bytes and every kv at least 8 + 4 + 1:
    # refuse counts the file cannot hold before looping over them.
    if n_tensors * 24 + n_kv * 13 > c.remaining():
        raise FormatError(f"{n_tensors} tensors and {n_kv} metadata entries cannot fit in a "
                          f"{c.file_size}-byte file")
    c.n_kv = n_kv
    return version, n_tensors


def _kv_keys(c: _Cursor, keys: set):
    """Yield ``(key, value type)`` of each key-value pair, the cursor at its value (which
    the caller must read or skip before the next); repeated keys are refused."""
    for i in range(c.n_kv):
        key = bytes(c.string(f"metadata key {i}"))
        if key in keys:
            raise FormatError(f"metadata key {_quote(key)} is repeated")
        keys.add(key)
        yield key, c.u32(f"type of metadata {_quote(key)}")


def _parse_metadata(mv: memoryview, file_size: int) -> dict[str, Any]:
    c = _Cursor(mv, file_size)
    _start(c)
    out: dict[str, Any] = {}
    for key, vtype in _kv_keys(c, set()):
        out[_text(key)] = _read_value(c, vtype, _quote(key))
    return out


#: GGUF scalar value type -> struct format (little-endian).
_SCALAR_FORMATS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
                   10: "<Q", 11: "<q", 12: "<d"}


def _read_value(c: _Cursor, vtype: int, where: str) -> Any:
    import numpy as np

    if vtype in _SCALAR_SIZES:
        raw = c.take(_SCALAR_SIZES[vtype], f"value of metadata {where}")
        return struct.unpack(_SCALAR_FORMATS[vtype], raw)[0]
    if vtype == _STRING:
        return _text(c.string(f"value of metadata {where}"))
    if vtype == _ARRAY:
        etype = c.u32(f"element type of metadata {where}")
        count = c.u64(f"length of metadata {where}")
        if etype in _SCALAR_SIZES:
            raw = c.take(count * _SCALAR_SIZES[etype], f"array metadata {where}")
            arr = np.frombuffer(raw, _SCALAR_FORMATS[etype].replace("?", "b1")).copy()
            arr.flags.writeable = False
            return arr
        if etype == _STRING:
            if count * 8 > c.remaining():
                raise FormatError(f"array metadata {where} of {count} strings runs past the "
                                  "end of the file")
            return [_text(c.string(f"string in metadata {where}")) for _ in range(count)]
        raise FormatError(f"metadata {where}: arrays of type {etype} are not supported")
    raise FormatError(f"metadata {where} has unknown value type {vtype}")


def _text(raw) -> str:
    return bytes(raw).decode("utf-8", "surrogateescape")


def _skip_value(c: _Cursor, vtype: int, where: str) -> None:
    if vtype in _SCALAR_SIZES:
        c.take(_SCALAR_SIZES[vtype], f"value of metadata {where}")
    elif vtype == _STRING:
        c.string(f"value of metadata {where}")
    elif vtype == _ARRAY:
        etype = c.u32(f"element type of metadata {where}")
        count = c.u64(f"length of metadata {where}")
        if etype in _SCALAR_SIZES:
            c.take(count * _SCALAR_SIZES[etype], f"array metadata {where}")
        elif etype == _STRING:
            if count * 8 > c.remaining():
                raise FormatError(f"array metadata {where} of {count} strings runs past the "
                                  "end of the file")
            for _ in range(count):
                c.string(f"string in metadata {where}")
        else:
            raise FormatError(f"metadata {where}: arrays of type {etype} are not supported")
    else:
        raise FormatError(f"metadata {where} has unknown value type {vtype}")


def _quote(name) -> str:
    if isinstance(name, (bytes, bytearray)):
        name = bytes(name).decode("utf-8", "backslashreplace")
    text = repr(name)
    return text if len(text) <= 80 else text[:76] + "...'"
