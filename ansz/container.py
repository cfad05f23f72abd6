"""The .ansz container: file header, chunk records, footer index and trailer.

``docs/FORMAT.md`` specifies every byte; this module is its reference implementation. Layout::

    File_Header (24) | Chunk_Record* | Index_Record | Trailer (32)
    Chunk_Record = Record_Header (48) | payload | zero padding to a multiple of 8
    Index_Record = Record_Header (48) | index JSON | zero padding to a multiple of 8

Records follow the original file's order, so a reader on a pipe decodes front to back; the
index and the fixed trailer at EOF let a reader with a seekable file find any chunk, and
``info`` read only the trailer and the index.

This layer knows records, chunks and the index, and nothing of what a chunk payload holds:
:mod:`ansz.chunks` codes and decodes payloads. It checks a record's Dtype_Code only against
the table of known codes and their element widths (:mod:`ansz.dtypes`). It knows nothing of
safetensors: a segment's name, dtype and shape are metadata it stores and type-checks but
does not interpret.

Every field read from a container is checked before it is used to index or allocate anything;
the only exceptions raised for bad input are :class:`CorruptDataError` and
:class:`UnsupportedError`, with one-line messages.
"""

from __future__ import annotations

import bisect
import json
import os
import re
import struct
import zlib
from dataclasses import dataclass
from typing import Any, BinaryIO, Callable, Iterator, NamedTuple

import xxhash

from ._io import read_fully, write_all
from .dtypes import BYTES, DTYPE_CODES
from .errors import AnszError, BaseMismatchError, CorruptDataError, UnsupportedError
from .options import MAX_CHUNK_SIZE

MAGIC = b"\x89ANSZ\r\n\x1a"
TRAILER_MAGIC = MAGIC[::-1]
FORMAT_VERSION = 1
#: File_Header Flags bits: features a file may use that a reader must know (docs/FORMAT.md).
FLAG_WIDE_RANS = 0x0001  #: stream method 8 (RANS_WIDE)
#: coded against a base file: chunk kinds other than PLAIN, a "base" in the index
FLAG_BASE = 0x0002
#: repeated chunks: COPY_CHUNK records of KEPT chunks; the header's Kept_Size
FLAG_REPEATS = 0x0004
#: with FLAG_BASE: the base may be several files (the index's base lists its "parts")
FLAG_BASE_FILES = 0x0008
KNOWN_FLAGS = FLAG_WIDE_RANS | FLAG_BASE | FLAG_REPEATS | FLAG_BASE_FILES

#: Chunk kinds (the low byte of a chunk record's Chunk_Kind; DELTA and COPY_BASE need
#: FLAG_BASE, COPY_CHUNK FLAG_BASE or FLAG_REPEATS).
PLAIN = 0  #: the payload codes the chunk alone
DELTA = 1  #: the payload codes the chunk against the same bytes of its segment's base tensor
COPY_BASE = 2  #: empty payload: the chunk is those base bytes as they are
COPY_CHUNK = 3  #: payload u32 j: the chunk repeats chunk j (< this one, itself no COPY_CHUNK)
CHUNK_KINDS = (PLAIN, DELTA, COPY_BASE, COPY_CHUNK)
#: Chunk_Kind bit (FLAG_REPEATS): a later COPY_CHUNK repeats this chunk, so a stream decoder
#: keeps its bytes.
KEPT = 0x0100
#: The largest Kept_Size (the bytes a stream decoder keeps for COPY_CHUNK records) a reader
#: accepts and the writer uses.
MAX_KEPT_SIZE = 1 << 28

FILE_HEADER = struct.Struct("<8sHHIII")  # magic, version, flags, max_chunk_size, reserved, crc
RECORD_HEADER = struct.Struct("<BBHIQIIQQII")  # see Record below; crc last
TRAILER = struct.Struct("<QQII8s")  # index_offset, index_length, index_crc, trailer_crc, magic
assert (FILE_HEADER.size, RECORD_HEADER.size, TRAILER.size) == (24, 48, 32)

CHUNK = 1  #: record type of a chunk of the original file
INDEX = 2  #: record type of the footer index (the last record), JSON as it is
ZINDEX = 3  #: the footer index as one zstd frame of the JSON (what the writer uses if smaller)
INDEXES = (INDEX, ZINDEX)

ALIGN = 8  #: payloads are zero-padded so that every record starts at a multiple of 8
MAX_CHUNK_SIZE_LIMIT = MAX_CHUNK_SIZE  #: 64 MiB: the largest Max_Chunk_Size a v1 decoder accepts
PAYLOAD_SLACK = 256  #: a chunk payload is at most Decoded_Length + 256 bytes
MAX_INDEX_LENGTH = 1 << 30  #: index JSON is at most 1 GiB
#: A zstd-coded index's JSON is at most as long as the container plus 64 KiB (a real one is
#: under 0.1% of the container), so a small hostile file cannot make a reader parse a large
#: index: parsing JSON costs up to ~25x its length in memory (measured with json.loads).
INDEX_SLACK = 1 << 16
INDEX_ZSTD_LEVEL = 16  #: level 19 was 4x slower (0.28 s for a 2 GB model) for a 7% smaller index
MAX_JSON_INT = (1 << 53) - 1  #: sizes and offsets in the index (exact in every JSON reader)
MAX_SHAPE_DIMS = 64
MAX_RECORD_NUMBER = (1 << 32) - 1  #: Record_Number is a u32 (the index record's is the count)
MAX_DTYPE_CHARS = 64
_U64 = (1 << 64) - 1

_INDEX_KEYS = frozenset({"format", "original_size", "sha256", "segments", "chunks"})
_SEGMENT_KEYS = frozenset({"name", "dtype", "shape", "start", "end", "first_chunk", "chunk_count"})
_BASE_KEYS = frozenset({"name", "size", "sha256"})
_BASE_PARTS_KEYS = frozenset({"name", "size", "parts"})  #: a base of several files
MAX_BASE_PARTS = 4096  #: files of a base made of several (a model's shards)
_SEGMENT_BASE_KEYS = frozenset({"start", "end", "xxh3"})
MAX_BASE_NAME = 4096  #: characters of the base's file-name hint
_SHA256_RE = re.compile(r"[0-9a-f]{64}\Z")
_HASH_RE = re.compile(r"[0-9a-f]{16}\Z")
_FORMAT_RE = re.compile(r"[a-z0-9_.-]{1,32}\Z")


def pad8(n: int) -> int:
    """n rounded up to a multiple of :data:`ALIGN`."""
    return -(-n // ALIGN) * ALIGN


def record_size(payload_length: int) -> int:
    """Bytes a record takes: its header, payload and padding."""
    return RECORD_HEADER.size + pad8(payload_length)


def content_hash(data) -> int:
    """xxh3_64 (seed 0) of decoded bytes: the per-chunk checksum."""
    return xxhash.xxh3_64_intdigest(data)


# ---------------------------------------------------------------------------------------------
# Fixed structures


@dataclass(frozen=True)
class Record:
    """A parsed, CRC-checked record header (docs/FORMAT.md, "Record_Header")."""

    type: int
    dtype_code: int
    segment: int
    original_offset: int
    decoded_length: int
    payload_length: int
    content_hash: int
    previous_hash: int
    number: int
    kind: int = PLAIN  #: Chunk_Kind's kind (docs/FORMAT.md, "Chunk kinds"); PLAIN for the index
    kept: bool = False  #: Chunk_Kind's KEPT bit: a later chunk repeats this one

    @property
    def dtype(self) -> str:
        return DTYPE_CODES[self.dtype_code].name

    @property
    def fielded(self) -> bool:
        return DTYPE_CODES[self.dtype_code].fielded



def pack_file_header(max_chunk_size: int, flags: int = 0, kept_size: int = 0) -> bytes:
    head = FILE_HEADER.pack(MAGIC, FORMAT_VERSION, flags, max_chunk_size, kept_size, 0)[:-4]
    return head + struct.pack("<I", zlib.crc32(head))


def parse_file_header(buf) -> int:
    """Check a file header (at least its first 24 bytes) and return Max_Chunk_Size. Flags
    outside :data:`KNOWN_FLAGS` are unsupported (a newer writer's features)."""
    return parse_file_header_fields(buf)[0]


def parse_file_header_fields(buf) -> tuple[int, int, int]:
    """:func:`parse_file_header`, returning ``(Max_Chunk_Size, Flags, Kept_Size)``."""
    buf = bytes(buf[:FILE_HEADER.size])
    if not buf:
        raise CorruptDataError("not an ansz container (empty input)")
    if buf[:len(MAGIC)] != MAGIC[:len(buf)]:
        raise CorruptDataError("not an ansz container (bad magic)")
    if len(buf) < FILE_HEADER.size:
        raise CorruptDataError(f"truncated: file header needs {FILE_HEADER.size} bytes, have {len(buf)}")
    _, version, flags, max_chunk, reserved, crc = FILE_HEADER.unpack(buf)
    if zlib.crc32(buf[:-4]) != crc:
        raise CorruptDataError("file header is corrupt (checksum mismatch)")
    if version != FORMAT_VERSION:
        raise UnsupportedError(f"container format version {version} is not supported "
                               f"(this ansz reads version {FORMAT_VERSION})")
    if flags & ~KNOWN_FLAGS or (reserved and not flags & FLAG_REPEATS):
        raise UnsupportedError(f"container uses features this ansz does not know (header flags "
                               f"{flags:#06x}, reserved {reserved:#x}); a newer ansz wrote it")
    if reserved > MAX_KEPT_SIZE:
        raise UnsupportedError(f"container's repeated chunks need {reserved} bytes kept, more "
                               f"than the {MAX_KEPT_SIZE} this ansz accepts")
    if max_chunk == 0:
        raise CorruptDataError("file header declares a maximum chunk size of 0")
    if max_chunk > MAX_CHUNK_SIZE_LIMIT:
        raise UnsupportedError(f"container's maximum chunk size {max_chunk} exceeds the "
                               f"{MAX_CHUNK_SIZE_LIMIT} this ansz accepts")
    return max_chunk, flags, reserved


def pack_record(rtype: int, dtype_code: int, segment: int, original_offset: int,
                decoded_length: int, payload_length: int, chash: int, previous_hash: int,
                number: int, kind: int = PLAIN) -> bytes:
    head = RECORD_HEADER.pack(rtype, dtype_code, kind, segment, original_offset, decoded_length,
                              payload_length, chash, previous_hash, number, 0)[:-4]
    return head + struct.pack("<I", zlib.crc32(head))


def max_index_json(index_offset: int, payload_length: int) -> int:
    """The longest index JSON a reader accepts from an index record at ``index_offset`` with
    ``payload_length`` bytes of payload: the container's size (which those two fix) plus
    :data:`INDEX_SLACK`, and never more than :data:`MAX_INDEX_LENGTH`."""
    size = index_offset + record_size(payload_length) + TRAILER.size
    return min(MAX_INDEX_LENGTH, size + INDEX_SLACK)


def parse_record_header(buf, max_chunk_size: int, where: str, offset: int, *,
                        flags: int = 0) -> Record:
    """Check the 48-byte record header found at container ``offset``: CRC, type, reserved
    bits (a chunk's kind, with :data:`FLAG_BASE` in the file's ``flags``), dtype code,
    chunk limits and index lengths (:func:`max_index_json`).

    Checks that need more context (record numbers, hashes, the index) are the caller's. The
    writer runs this same function on every header it packs.
    """
    buf = bytes(buf)
    if len(buf) < RECORD_HEADER.size:
        raise CorruptDataError(f"truncated: {where} header needs {RECORD_HEADER.size} bytes, "
                               f"have {len(buf)}")
    (rtype, code, reserved, segment, offset, decoded, payload, chash, prev, number,
     crc) = RECORD_HEADER.unpack(buf)
    if zlib.crc32(buf[:-4]) != crc:
        raise CorruptDataError(f"{where} header is corrupt (checksum mismatch)")
    if rtype not in (CHUNK, *INDEXES):
        raise CorruptDataError(f"{where} has unknown record type {rtype}")
    if reserved and not (rtype == CHUNK and _known_kind(reserved, flags)):
        raise UnsupportedError(f"{where} uses reserved bits {reserved:#06x}")
    if code not in DTYPE_CODES:
        raise UnsupportedError(f"{where} uses dtype code {code}, unknown to this ansz")
    if rtype == CHUNK:
        width = DTYPE_CODES[code].width
        if not 1 <= decoded <= max_chunk_size:
            raise CorruptDataError(f"{where} decodes to {decoded} bytes, outside [1, {max_chunk_size}]")
        if decoded % width:
            raise CorruptDataError(f"{where}: {decoded} bytes are not whole {DTYPE_CODES[code].name} elements")
        if payload > decoded + PAYLOAD_SLACK:
            raise CorruptDataError(f"{where} payload of {payload} bytes is too long for {decoded} "
                                   "decoded bytes")
    elif (code != BYTES or segment != 0 or payload > MAX_INDEX_LENGTH
          or (rtype == INDEX and decoded != payload)
          or (rtype == ZINDEX and not payload <= decoded <= max_index_json(offset, payload))):
        raise CorruptDataError(f"{where}: index record header fields are inconsistent")
    return Record(rtype, code, segment, offset, decoded, payload, chash, prev, number,
                  reserved & 0xFF, bool(reserved & KEPT))


def _known_kind(chunk_kind: int, flags: int) -> bool:
    """Whether a chunk record's Chunk_Kind is one a file with ``flags`` may use."""
    kind, kept = chunk_kind & 0xFF, chunk_kind & KEPT
    if chunk_kind & ~(0xFF | KEPT) or (kept and not flags & FLAG_REPEATS):
        return False
    if flags & FLAG_BASE:
        return kind in CHUNK_KINDS and not (kept and kind == COPY_CHUNK)
    if flags & FLAG_REPEATS:
        return kind == PLAIN or (kind == COPY_CHUNK and not kept)
    return kind == PLAIN


def copy_chunk_payload(j: int) -> bytes:
    """The payload of a COPY_CHUNK chunk that repeats chunk ``j``."""
    return int(j).to_bytes(4, "little")


def copied_chunk(rec: Record, payload) -> int:
    """The chunk number ``j`` a COPY_CHUNK record repeats, checked to be an earlier one (its
    length and hash are the caller's to check)."""
    if rec.payload_length != 4 or len(payload) != 4:
        raise CorruptDataError(f"chunk {rec.number}: malformed chunk reference")
    j = int.from_bytes(bytes(payload), "little")
    if j >= rec.number:
        raise CorruptDataError(f"chunk {rec.number}: refers to chunk {j}, which it cannot repeat")
    return j


def pack_trailer(index_offset: int, index_length: int, index_crc: int) -> bytes:
    head = TRAILER.pack(index_offset, index_length, index_crc, 0, TRAILER_MAGIC)[:20]
    return head + struct.pack("<I", zlib.crc32(head)) + TRAILER_MAGIC


def parse_trailer(buf, trailer_offset: int) -> tuple[int, int, int]:
    """Check the trailer found at ``trailer_offset``: ``(index_offset, index_length, crc)``."""
    buf = bytes(buf)
    if len(buf) != TRAILER.size or buf[-8:] != TRAILER_MAGIC:
        raise CorruptDataError("truncated or damaged: no ansz trailer at the end of the file")
    index_offset, index_length, index_crc, crc, _ = TRAILER.unpack(buf)
    if zlib.crc32(buf[:20]) != crc:
        raise CorruptDataError("trailer is corrupt (checksum mismatch)")
    if (index_offset < FILE_HEADER.size or index_length > MAX_INDEX_LENGTH
            or index_offset + RECORD_HEADER.size + pad8(index_length) != trailer_offset):
        raise CorruptDataError("trailer's index position is inconsistent with the file length")
    return index_offset, index_length, index_crc


def _check_padding(buf, where: str) -> None:
    if any(bytes(buf)):
        raise CorruptDataError(f"{where}: padding bytes are not zero")


# ---------------------------------------------------------------------------------------------
# The index


class ChunkEntry(NamedTuple):
    """One chunk in the index: where its record is and what it decodes to."""

    offset: int  #: container offset of its record header
    original_offset: int
    decoded_length: int
    payload_length: int
    content_hash: int

    @property
    def end(self) -> int:
        """Container offset just past its record."""
        return self.offset + record_size(self.payload_length)


@dataclass
class Segment:
    """A contiguous range of the original file and the chunks coding it.

    ``name``/``dtype``/``shape`` are metadata (``None`` for opaque bytes); the container stores
    and type-checks them, but only the record's dtype code decides how a chunk is decoded.
    """

    name: str | None
    dtype: str | None
    shape: tuple[int, ...] | None
    start: int
    end: int
    first_chunk: int = 0
    chunk_count: int = 0
    #: in a container coded against a base: the base file's bytes ``[start, end)`` (as long
    #: as this segment) its DELTA and COPY_BASE chunks use, or None
    base: tuple[int, int] | None = None
    #: with ``base``: XXH3_64 of the base bytes of each of its chunks, in order
    base_hashes: list[int] | None = None

    @property
    def nbytes(self) -> int:
        return self.end - self.start


@dataclass
class Index:
    format: str
    original_size: int
    sha256: str
    segments: list[Segment]
    chunks: list[ChunkEntry]
    #: the base file of a container coded against one: name (a hint), size, sha256
    base: dict | None = None

    def chunk_segments(self) -> list[int]:
        """Segment number of every chunk."""
        out = []
        for i, seg in enumerate(self.segments):
            out.extend([i] * seg.chunk_count)
        return out

    def to_json(self) -> bytes:
        obj = {
            "format": self.format,
            "original_size": self.original_size,
            "sha256": self.sha256,
            "segments": [{"name": s.name, "dtype": s.dtype,
                          "shape": None if s.shape is None else list(s.shape),
                          "start": s.start, "end": s.end, "first_chunk": s.first_chunk,
                          "chunk_count": s.chunk_count} for s in self.segments],
            "chunks": [[c.offset, c.original_offset, c.decoded_length, c.payload_length,
                        f"{c.content_hash:016x}"] for c in self.chunks],
        }
        if self.base is not None:  # only then: other containers keep their bytes
            obj["base"] = base_record(self.base)
            for seg, s in zip(obj["segments"], self.segments):
                seg["base"] = None if s.base is None else {
                    "start": s.base[0], "end": s.base[1],
                    "xxh3": [f"{h:016x}" for h in s.base_hashes or ()]}
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def index_text(rec: Record, payload) -> bytes:
    """The index JSON of an index record: its payload, or for ZINDEX the payload's one zstd
    frame decoded to exactly ``rec.decoded_length`` bytes (bounded by the header checks)."""
    if rec.type == INDEX:
        return bytes(payload)
    import zstandard

    try:
        if zstandard.frame_content_size(payload) != rec.decoded_length:
            raise CorruptDataError("index frame's size disagrees with its record")
        text = zstandard.ZstdDecompressor().decompress(payload, max_output_size=rec.decoded_length)
    except zstandard.ZstdError as e:
        raise CorruptDataError(f"index is corrupt ({_short(e)})") from None
    if len(text) != rec.decoded_length:
        raise CorruptDataError("index decodes to the wrong size")
    return text


def index_record(text: bytes, index_offset: int) -> tuple[int, bytes]:
    """``(record type, payload)`` for index JSON ``text`` in a record at ``index_offset``:
    zstd-coded when that is smaller and within the reader's bound (:func:`max_index_json`;
    thousands of zero-size tensors make an index that zstd shrinks past it)."""
    import zstandard

    z = zstandard.ZstdCompressor(level=INDEX_ZSTD_LEVEL, write_content_size=True).compress(text)
    if len(z) < len(text) <= max_index_json(index_offset, len(z)):
        return ZINDEX, z
    return INDEX, text


def parse_index(payload, *, max_chunk_size: int, index_offset: int, flags: int = 0) -> Index:
    """Parse and validate the index JSON of a container whose index record is at ``index_offset``.
    With :data:`FLAG_BASE` in ``flags`` it must record its base (and each segment its base
    range, or null), else it must not.

    Checks every type and range, that chunk records tile ``[24, index_offset)`` and the chunks
    tile ``[0, original_size)``, and that the segments partition both. The JSON text is already
    bounded by the file length; nothing is allocated from its numbers.
    """
    try:
        obj = json.loads(bytes(payload).decode("utf-8"), object_pairs_hook=_no_duplicates,
                         parse_constant=_no_constant)
    except (ValueError, RecursionError) as e:  # JSONDecodeError, UnicodeDecodeError, huge ints
        raise CorruptDataError(f"index is not valid JSON ({_short(e)})") from None
    based = bool(flags & FLAG_BASE)
    if not isinstance(obj, dict) or obj.keys() != (_INDEX_KEYS | {"base"} if based else _INDEX_KEYS):
        raise CorruptDataError("index JSON lacks or adds top-level keys")
    fmt, size, sha = obj["format"], obj["original_size"], obj["sha256"]
    if not (isinstance(fmt, str) and _FORMAT_RE.match(fmt)):
        raise CorruptDataError("index: bad format label")
    _check_int(size, "index: original_size")
    if not (isinstance(sha, str) and _SHA256_RE.match(sha)):
        raise CorruptDataError("index: sha256 must be 64 lowercase hex digits")
    chunks = _parse_chunks(obj["chunks"], max_chunk_size, index_offset, size)
    base = _parse_base(obj["base"], several=bool(flags & FLAG_BASE_FILES)) if based else None
    segments = _parse_segments(obj["segments"], chunks, size, base,
                               base_part_starts(base) if based else None)
    return Index(fmt, size, sha, segments, chunks, base)


def base_record(base: dict) -> dict:
    """The index's ``base`` object of a base record: ``name``, ``size`` and ``sha256`` of
    one file, or ``name``, ``size`` and the ``parts`` (each such a record) of several."""
    if "parts" in base:
        return {"name": base["name"], "size": base["size"],
                "parts": [base_record(p) for p in base["parts"]]}
    return {k: base[k] for k in ("name", "size", "sha256")}


def base_part_starts(base: dict) -> list[int]:
    """Where each file of a base record starts in the base's bytes (its files' bytes one
    after another), and the end: ``[0, size]`` for a base of one file."""
    starts = [0]
    for p in base.get("parts", [base]):
        starts.append(starts[-1] + p["size"])
    return starts


def _parse_base(raw: Any, *, several: bool = False) -> dict:
    """The index's record of the base: a file's name hint, size and sha256, or (if
    ``several`` may be: :data:`FLAG_BASE_FILES`) for a base of several files the files'
    records, their sizes adding up to its size and their names distinct file names
    (checked)."""
    several = several and isinstance(raw, dict) and "parts" in raw
    if not isinstance(raw, dict) or raw.keys() != (_BASE_PARTS_KEYS if several else _BASE_KEYS):
        raise CorruptDataError("index: base is malformed")
    name = raw["name"]
    if not (isinstance(name, str) and len(name) <= MAX_BASE_NAME):
        raise CorruptDataError("index: base name must be a string of at most "
                               f"{MAX_BASE_NAME} characters")
    _check_int(raw["size"], "index: base size")
    if several:
        parts = raw["parts"]
        if not (isinstance(parts, list) and 2 <= len(parts) <= MAX_BASE_PARTS):
            raise CorruptDataError(f"index: a base of several files lists 2 to "
                                   f"{MAX_BASE_PARTS} of them")
        parts = [_parse_base(p) for p in parts]
        names = [p["name"] for p in parts]
        if (sum(p["size"] for p in parts) != raw["size"] or len(set(names)) != len(names)
                or not all(n and n == os.path.basename(n) and n not in (".", "..")
                           for n in names)):
            raise CorruptDataError("index: the base's files are malformed (names or sizes)")
        return {"name": name, "size": raw["size"], "parts": parts}
    sha = raw["sha256"]
    if not (isinstance(sha, str) and _SHA256_RE.match(sha)):
        raise CorruptDataError("index: base sha256 must be 64 lowercase hex digits")
    return dict(raw)


def _parse_chunks(raw: Any, max_chunk_size: int, index_offset: int, size: int) -> list[ChunkEntry]:
    if not isinstance(raw, list):
        raise CorruptDataError("index: chunks must be a list")
    out = []
    offset, original = FILE_HEADER.size, 0
    for i, c in enumerate(raw):
        if not (isinstance(c, list) and len(c) == 5 and isinstance(c[4], str)
                and _HASH_RE.match(c[4])):
            raise CorruptDataError(f"index: chunk {i} is malformed")
        for v in c[:4]:
            _check_int(v, f"index: chunk {i}")
        entry = ChunkEntry(c[0], c[1], c[2], c[3], int(c[4], 16))
        if entry.offset != offset or entry.original_offset != original:
            raise CorruptDataError(f"index: chunk {i} is not contiguous with chunk {i - 1}")
        if not 1 <= entry.decoded_length <= max_chunk_size:
            raise CorruptDataError(f"index: chunk {i} length {entry.decoded_length} is outside "
                                   f"[1, {max_chunk_size}]")
        if entry.payload_length > entry.decoded_length + PAYLOAD_SLACK:
            raise CorruptDataError(f"index: chunk {i} payload is too long")
        offset = entry.end
        original += entry.decoded_length
        if offset > index_offset or original > size:
            raise CorruptDataError(f"index: chunk {i} lies past the end of the data")
        out.append(entry)
    if offset != index_offset:
        raise CorruptDataError("index: chunk records do not reach the index record")
    if original != size:
        raise CorruptDataError(f"index: chunks cover {original} bytes, original_size is {size}")
    return out


def _parse_segments(raw: Any, chunks: list[ChunkEntry], size: int,
                    base: dict | None = None, part_starts: list[int] | None = None
                    ) -> list[Segment]:
    if not isinstance(raw, list):
        raise CorruptDataError("index: segments must be a list")
    out = []
    pos = 0  # end of the last non-empty segment
    next_chunk = 0
    for i, s in enumerate(raw):
        where = f"index: segment {i}"
        keys = _SEGMENT_KEYS | {"base"} if base is not None else _SEGMENT_KEYS
        if not isinstance(s, dict) or s.keys() != keys:
            raise CorruptDataError(f"{where} is malformed")
        name, dtype, shape = s["name"], s["dtype"], s["shape"]
        if not describable(name, dtype, shape):
            raise CorruptDataError(f"{where}: bad name, dtype or shape")
        for key in ("start", "end", "first_chunk", "chunk_count"):
            _check_int(s[key], f"{where}: {key}")
        start, end, first, count = s["start"], s["end"], s["first_chunk"], s["chunk_count"]
        if first != next_chunk or count > len(chunks) - first:
            raise CorruptDataError(f"{where}: chunk range is inconsistent")
        if start == end:  # empty segments carry no bytes and no chunks, and may sit anywhere
            if count or end > size:
                raise CorruptDataError(f"{where}: empty segment is inconsistent")
        else:
            if start != pos or end < start or end > size or count == 0:
                raise CorruptDataError(f"{where}: range [{start}, {end}) is not contiguous")
            last = chunks[first + count - 1]
            if (chunks[first].original_offset != start
                    or last.original_offset + last.decoded_length != end):
                raise CorruptDataError(f"{where}: its chunks do not cover [{start}, {end})")
            pos = end
        next_chunk = first + count
        span, hashes = None, None
        if base is not None and s["base"] is not None:
            span, hashes = _parse_segment_base(s["base"], where, end - start, count,
                                               part_starts)
        out.append(Segment(name, dtype, None if shape is None else tuple(shape), start, end,
                           first, count, span, hashes))
    if pos != size or next_chunk != len(chunks):
        raise CorruptDataError("index: segments do not cover the file")
    return out


def _parse_segment_base(raw: Any, where: str, nbytes: int, count: int, part_starts: list[int]
                        ) -> tuple[tuple[int, int], list[int]]:
    """A segment's base object: its base range (as long as the segment, inside one file of
    the base, whose files start at ``part_starts``: see :func:`base_part_starts`) and the
    XXH3_64 of each of its chunks' base bytes (checked)."""
    if not isinstance(raw, dict) or raw.keys() != _SEGMENT_BASE_KEYS:
        raise CorruptDataError(f"{where}: base is malformed")
    b, e, hashes = raw["start"], raw["end"], raw["xxh3"]
    _check_int(b, f"{where}: base start")
    _check_int(e, f"{where}: base end")
    part = bisect.bisect_right(part_starts, b) - 1
    if e < b or e - b != nbytes or part >= len(part_starts) - 1 or e > part_starts[part + 1]:
        raise CorruptDataError(f"{where}: base range [{b}, {e}) does not fit the segment or "
                               "lies outside the base's files")
    if not (isinstance(hashes, list) and len(hashes) == count
            and all(isinstance(h, str) and _HASH_RE.match(h) for h in hashes)):
        raise CorruptDataError(f"{where}: base hashes are malformed")
    return (b, e), [int(h, 16) for h in hashes]


def describable(name: Any, dtype: Any, shape: Any) -> bool:
    """Whether a segment's descriptive fields are within the index's rules: ``name`` a
    string or None, ``dtype`` 1 to :data:`MAX_DTYPE_CHARS` characters or None, ``shape`` at
    most :data:`MAX_SHAPE_DIMS` integers in [0, 2**64) (a tuple or list) or None. Writers
    check a tensor with it before planning a segment for it."""
    return ((name is None or isinstance(name, str))
            and (dtype is None or (isinstance(dtype, str) and 0 < len(dtype) <= MAX_DTYPE_CHARS))
            and (shape is None or (isinstance(shape, (list, tuple)) and len(shape) <= MAX_SHAPE_DIMS
                                   and all(type(d) is int and 0 <= d <= _U64 for d in shape))))


def _check_int(v: Any, where: str) -> None:
    if type(v) is not int or not 0 <= v <= MAX_JSON_INT:
        raise CorruptDataError(f"{where} must be an integer in [0, 2**53)")


def _no_duplicates(pairs):
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise CorruptDataError("index JSON repeats a key")
    return obj


def _no_constant(name):
    raise CorruptDataError(f"index JSON contains {name}")


def _short(e: Exception) -> str:
    text = str(e).splitlines()[0] if str(e) else type(e).__name__
    return text if len(text) <= 80 else text[:77] + "..."


# ---------------------------------------------------------------------------------------------
# Writing


class ContainerWriter:
    """Append a container to a binary file object (which may be a pipe: only ``write`` is used).

    Call :meth:`add_chunk` for each chunk in original-file order, then :meth:`finish`.
    """

    def __init__(self, fh: BinaryIO, max_chunk_size: int, flags: int = 0,
                 base: dict | None = None, kept_size: int = 0):
        if not 1 <= max_chunk_size <= MAX_CHUNK_SIZE_LIMIT:
            raise ValueError(f"max_chunk_size must be in [1, {MAX_CHUNK_SIZE_LIMIT}]")
        if flags & ~KNOWN_FLAGS:
            raise ValueError(f"unknown header flags {flags:#06x}")
        if bool(flags & FLAG_BASE) != (base is not None):
            raise ValueError("a base is recorded exactly when FLAG_BASE is set")
        if flags & FLAG_BASE_FILES and not flags & FLAG_BASE:
            raise ValueError("FLAG_BASE_FILES needs FLAG_BASE")
        if not 0 <= kept_size <= (MAX_KEPT_SIZE if flags & FLAG_REPEATS else 0):
            raise ValueError("a Kept_Size needs FLAG_REPEATS and at most MAX_KEPT_SIZE")
        self._fh = fh
        self.flags = flags
        self.base = base
        self.max_chunk_size = max_chunk_size
        self.offset = 0  #: bytes written so far
        self.original_size = 0  #: original bytes covered by the chunks so far
        self.chunks: list[ChunkEntry] = []
        self._segments: list[int] = []
        self.kept_size = kept_size
        self._kept = 0  # bytes of the KEPT chunks so far
        self._write(pack_file_header(max_chunk_size, flags, kept_size))

    def add_chunk(self, segment: int, dtype_code: int, payload: bytes, decoded_length: int,
                  chash: int, kind: int = PLAIN) -> None:
        """Append one chunk record of Chunk_Kind ``kind`` (a kind, or PLAIN | KEPT). Its
        header passes the reader's own checks (:func:`parse_record_header`) before anything
        is written, and the KEPT chunks fit the header's Kept_Size."""
        if self._segments and segment < self._segments[-1]:
            raise ValueError("chunks must come in segment order")
        if len(self.chunks) > MAX_RECORD_NUMBER:
            raise AnszError(f"more than {MAX_RECORD_NUMBER} chunks do not fit in a container; "
                            "use a larger chunk size")
        previous = self.chunks[-1].content_hash if self.chunks else 0
        entry = ChunkEntry(self.offset, self.original_size, decoded_length, len(payload), chash)
        head = pack_record(CHUNK, dtype_code, segment, self.original_size, decoded_length,
                           len(payload), chash, previous, len(self.chunks), kind)
        try:
            parse_record_header(head, self.max_chunk_size, f"chunk {len(self.chunks)}",
                                self.offset, flags=self.flags)
        except AnszError as e:
            raise ValueError(f"the writer made a record the reader refuses: {e}") from None
        if kind & KEPT:
            self._kept += decoded_length
            if self._kept > self.kept_size:
                raise ValueError("the KEPT chunks exceed the header's Kept_Size")
        self._write(head)
        self._write(payload)
        self._write(bytes(pad8(len(payload)) - len(payload)))
        self.chunks.append(entry)
        self._segments.append(segment)
        self.original_size += decoded_length

    def finish(self, segments: list[Segment], *, fmt: str, sha256: str) -> int:
        """Write the index and trailer; ``segments`` get their chunk ranges filled in here.

        Returns the container's total size. The index record and trailer pass the reader's
        own checks before they are written, so a writer bug cannot produce an unreadable file;
        an index past the format's limits raises AnszError.
        """
        counts: dict[int, int] = {}
        for s in self._segments:
            counts[s] = counts.get(s, 0) + 1
        first = 0
        for i, seg in enumerate(segments):
            seg.first_chunk, seg.chunk_count = first, counts.pop(i, 0)
            first += seg.chunk_count
        if counts:
            raise ValueError("chunks refer to segments that were not given")
        index = Index(fmt, self.original_size, sha256, segments, self.chunks, self.base)
        body = index.to_json()
        if len(body) > MAX_INDEX_LENGTH:
            raise AnszError(f"the index would take {len(body)} bytes, more than a container "
                            f"holds ({MAX_INDEX_LENGTH}); use a larger chunk size")
        index_offset = self.offset
        previous = self.chunks[-1].content_hash if self.chunks else 0
        rtype, payload = index_record(body, index_offset)
        head = pack_record(rtype, BYTES, 0, self.original_size, len(body), len(payload),
                           content_hash(body), previous, len(self.chunks))
        trailer = pack_trailer(index_offset, len(payload), zlib.crc32(body))
        # What a reader checks of the index, run on what is about to be written.
        try:
            rec = parse_record_header(head, self.max_chunk_size, "index record", index_offset)
            if index_text(rec, payload) != body:
                raise CorruptDataError("index record does not decode to the index")
            parse_index(body, max_chunk_size=self.max_chunk_size, index_offset=index_offset,
                        flags=self.flags)
            parse_trailer(trailer, index_offset + record_size(len(payload)))
        except CorruptDataError as e:
            raise ValueError(f"the writer made an index the reader refuses: {e}") from None
        self._write(head)
        self._write(payload)
        self._write(bytes(pad8(len(payload)) - len(payload)))
        self._write(trailer)
        return self.offset

    def _write(self, data) -> None:
        self.offset += write_all(self._fh, data)


# ---------------------------------------------------------------------------------------------
# Reading a seekable container


class ContainerFile:
    """A container with random access: header, trailer and index are validated on creation.

    ``read_at(offset, length)`` returns up to ``length`` bytes at ``offset`` (bytes-like);
    ``size`` is the container's length. Only the header, trailer and index are read here;
    :meth:`chunk` reads one chunk record, with one call of ``read_record`` (default
    ``read_at``; a reader may pass one that fills a reused buffer, since the payload is
    decoded before the calling thread reads again), and checks it against the index.
    """

    def __init__(self, read_at: Callable[[int, int], Any], size: int, *,
                 read_record: Callable[[int, int], Any] | None = None):
        self._read_at = read_at
        self._read_record = read_record or read_at
        self.size = size
        self.max_chunk_size, self.flags, self.kept_size = parse_file_header_fields(
            read_at(0, min(size, FILE_HEADER.size)))
        if size < FILE_HEADER.size + RECORD_HEADER.size + TRAILER.size:
            raise CorruptDataError(f"truncated: a container is at least "
                                   f"{FILE_HEADER.size + RECORD_HEADER.size + TRAILER.size} bytes")
        trailer_offset = size - TRAILER.size
        index_offset, index_length, index_crc = parse_trailer(
            read_at(trailer_offset, TRAILER.size), trailer_offset)
        # The index record in one read (one request for a file read over a network); the
        # trailer's checks bound its length by the file's.
        record = memoryview(read_at(index_offset, trailer_offset - index_offset)).cast("B")
        if len(record) != trailer_offset - index_offset:
            raise CorruptDataError("truncated: the file ends inside the index record")
        rec = parse_record_header(record[:RECORD_HEADER.size], self.max_chunk_size,
                                  "index record", index_offset)
        if rec.type not in INDEXES or rec.payload_length != index_length:
            raise CorruptDataError("trailer does not point at the index record")
        body_end = RECORD_HEADER.size + index_length
        body = index_text(rec, record[RECORD_HEADER.size:body_end])
        _check_padding(record[body_end:], "index record")
        del record
        if zlib.crc32(body) != index_crc or content_hash(body) != rec.content_hash:
            raise CorruptDataError("index is corrupt (checksum mismatch)")
        self.index = parse_index(body, max_chunk_size=self.max_chunk_size,
                                 index_offset=index_offset, flags=self.flags)
        chunks = self.index.chunks
        if (rec.number != len(chunks) or rec.original_offset != self.index.original_size
                or rec.previous_hash != (chunks[-1].content_hash if chunks else 0)):
            raise CorruptDataError("index record header disagrees with the index")
        self.segment_of = self.index.chunk_segments()

    def chunk(self, i: int) -> tuple[Record, Any]:
        """Chunk ``i``'s checked record header and its payload (a view of what
        ``read_record`` returned)."""
        entry = self.index.chunks[i]
        where = f"chunk {i}"
        size = record_size(entry.payload_length)
        buf = memoryview(self._read_record(entry.offset, size)).cast("B")
        if len(buf) < size:
            raise CorruptDataError(f"truncated: {where} record needs {size} bytes, "
                                   f"have {len(buf)}")
        rec = parse_record_header(buf[:RECORD_HEADER.size], self.max_chunk_size, where,
                                  entry.offset, flags=self.flags)
        previous = self.index.chunks[i - 1].content_hash if i else 0
        if (rec.type != CHUNK or rec.number != i or rec.segment != self.segment_of[i]
                or rec.original_offset != entry.original_offset
                or rec.decoded_length != entry.decoded_length
                or rec.payload_length != entry.payload_length
                or rec.content_hash != entry.content_hash or rec.previous_hash != previous):
            raise CorruptDataError(f"{where}: record header disagrees with the index")
        end = RECORD_HEADER.size + rec.payload_length
        _check_padding(buf[end:size], where)
        return rec, buf[RECORD_HEADER.size:end]


# ---------------------------------------------------------------------------------------------
# Reading a stream


class StreamReader:
    """Read a container front to back from a file object (a pipe is fine: only reads).

    :meth:`records` yields each chunk's checked record and payload; when it is exhausted the
    index, the trailer and the end of the stream have been checked against everything seen,
    and :attr:`index` is set. Memory is bounded by the declared maximum chunk size, except the
    index, which is read in pieces and so costs only the bytes actually present.
    """

    _PIECE = 1 << 20

    def __init__(self, fh: BinaryIO):
        self._fh = fh
        self.offset = 0
        self.max_chunk_size, self.flags, self.kept_size = parse_file_header_fields(
            self._read(FILE_HEADER.size, "file header", exact=False))
        if self.flags & FLAG_BASE:
            raise BaseMismatchError("compressed against a base model: decode it from a file, "
                                    "giving the base (--base BASE); a stream cannot be")
        self.index: Index | None = None

    @property
    def payload_capacity(self) -> int:
        """The most bytes a chunk's padded payload can take in this container (what
        :meth:`records` reads into one buffer): Max_Chunk_Size + PAYLOAD_SLACK, padded."""
        return pad8(self.max_chunk_size + PAYLOAD_SLACK)

    def records(self, buffers=None) -> Iterator[tuple[Record, memoryview]]:
        """Each chunk's record and payload, checked as far as the record alone allows; a
        COPY_CHUNK's payload is checked to name an earlier KEPT chunk of its length and
        content hash (see :func:`copied_chunk`), and the KEPT chunks to fit Kept_Size.

        A payload is a view of a uint8 array: a fresh one, or with ``buffers`` (an object
        whose ``get(n)`` returns n bytes of an array of :attr:`payload_capacity`, such as
        :class:`ansz._pool.BufferPool`) one it gave, which the caller hands back once done
        with the payload (``payload.obj``)."""
        import numpy as np

        kept: dict[int, tuple[int, int]] = {}  # KEPT chunk -> (length, content hash)
        kept_bytes = 0
        seen: list[ChunkEntry] = []
        segments: list[int] = []
        previous, original = 0, 0
        while True:
            where = f"chunk {len(seen)}"
            record_offset = self.offset
            rec = parse_record_header(self._read(RECORD_HEADER.size, f"{where} header"),
                                      self.max_chunk_size, where, record_offset,
                                      flags=self.flags)
            if rec.number != len(seen) or rec.previous_hash != previous:
                raise CorruptDataError(f"{where}: record is out of sequence")
            if rec.type in INDEXES:
                break
            if rec.original_offset != original or (segments and rec.segment < segments[-1]):
                raise CorruptDataError(f"{where}: record is out of sequence")
            padded = pad8(rec.payload_length)
            # bounded: payload <= max chunk size + slack
            buf = np.empty(padded, np.uint8) if buffers is None else buffers.get(padded)
            self._readinto(memoryview(buf), f"{where} payload")
            _check_padding(buf[rec.payload_length:], where)
            payload = memoryview(buf)[:rec.payload_length]
            if rec.kind == COPY_CHUNK:
                j = copied_chunk(rec, payload)
                if kept.get(j) != (rec.decoded_length, rec.content_hash):
                    raise CorruptDataError(f"{where}: refers to chunk {j}, which it cannot "
                                           "repeat")
            if rec.kept:
                kept[rec.number] = (rec.decoded_length, rec.content_hash)
                kept_bytes += rec.decoded_length
                if kept_bytes > self.kept_size:
                    raise CorruptDataError(f"{where}: the kept chunks exceed the header's "
                                           f"Kept_Size ({self.kept_size} bytes)")
            yield rec, payload
            seen.append(ChunkEntry(record_offset, original, rec.decoded_length,
                                   rec.payload_length, rec.content_hash))
            segments.append(rec.segment)
            previous, original = rec.content_hash, original + rec.decoded_length
        self._finish(rec, record_offset, seen, segments)

    def _finish(self, rec: Record, index_offset: int, seen: list[ChunkEntry],
                segments: list[int]) -> None:
        length = rec.payload_length
        pieces = []
        while length:
            n = min(length, self._PIECE)
            pieces.append(self._read(n, "index"))
            length -= n
        body = index_text(rec, b"".join(pieces))
        _check_padding(self._read(pad8(rec.payload_length) - rec.payload_length, "index"),
                       "index record")
        if content_hash(body) != rec.content_hash:
            raise CorruptDataError("index is corrupt (checksum mismatch)")
        index = parse_index(body, max_chunk_size=self.max_chunk_size, index_offset=index_offset)
        if (index.chunks != seen or index.chunk_segments() != segments
                or rec.original_offset != index.original_size):
            raise CorruptDataError("index disagrees with the chunk records")
        trailer_offset = self.offset
        got = parse_trailer(self._read(TRAILER.size, "trailer"), trailer_offset)
        if got != (index_offset, rec.payload_length, zlib.crc32(body)):
            raise CorruptDataError("trailer disagrees with the index record")
        if read_fully(self._fh, memoryview(bytearray(1))):
            raise CorruptDataError("unexpected data after the container's trailer")
        self.index = index

    def _read(self, n: int, what: str, exact: bool = True) -> bytes:
        buf = bytearray(n)
        got = self._readinto(memoryview(buf), what, exact)
        return bytes(buf[:got])

    def _readinto(self, view: memoryview, what: str, exact: bool = True) -> int:
        got = read_fully(self._fh, view)
        self.offset += got
        if exact and got < len(view):
            raise CorruptDataError(f"truncated: the stream ends inside the {what}")
        return got
