"""Chunk payloads: a run of whole elements of one dtype, coded as framed streams.

A float or byte chunk is split into coding pairs (:mod:`ansz.pairs`): the code stream plus
``width - 1`` raw byte planes, each coded as a stream on its own (:mod:`ansz.streams`), so a
constant or skewed plane (zero low mantissa bytes of an fp32 model trained in bf16, say)
costs almost nothing while a uniform one is stored. A fielded float chunk first chooses how
wide its code is (docs/FORMAT.md, "Fielded chunk payload"). A block-quantized GGML chunk is
coded field by field (:mod:`ansz.blocks`).

:func:`encode_payload` and :func:`decode_record` are what the pipeline calls: a container
Dtype_Code (:mod:`ansz.dtypes`) in, a payload and its content hash out, and back, checked.
This layer knows dtypes and bytes; the container frames what it returns. A 16- or 32-bit
payload of the common shape decodes in one kernel call (:func:`_decoded_in_one_call`); the
general path, a step per stream, takes every other one and says what is wrong with a
damaged one.
"""

from __future__ import annotations

import struct

import numpy as np

from . import kernels
from .blocks import decode_block_chunk, encode_block_chunk
from .container import FLAG_WIDE_RANS, Record, content_hash
from .dtypes import BLOCK_TYPE_NAMES, DTYPE_CODES, PairLayout, layout_for
from .errors import CorruptDataError
from .options import DEFAULT_LEVEL, FAST_LEVEL
from .pairs import (FIELD_TOPS, NO_ESCAPES, Field, FieldCounts, escaped_values, field_choice,
                    join_pairs, patch_escapes, plain_field, split_pairs)
from .streams import (FAST_WIDE_STATES, STORED, WIDE_MIN, WIDE_STATES, decode_stream,
                      encode_stream_parts, frame_pair_streams, framed_pieces, framed_streams,
                      scratch)


def container_flags(chunk_size: int) -> int:
    """The File_Header Flags for chunks of at most ``chunk_size`` bytes: the features their
    payloads may use (a stream of WIDE_MIN symbols needs a chunk at least that long)."""
    return FLAG_WIDE_RANS if chunk_size >= WIDE_MIN else 0


def encode_payload(data, dtype_code: int, *, coder: str = "auto",
                   level: int = DEFAULT_LEVEL) -> tuple[bytes, int]:
    """Code one chunk of original bytes as the container's ``dtype_code`` says:
    ``(payload, content hash)``. ``coder`` is one of :data:`ansz.options.CODERS`; ``level``
    one of :data:`ansz.options.LEVELS` (1 codes for decoding speed)."""
    d = DTYPE_CODES[dtype_code]
    return (encode_chunk(data, d.name, fielded=d.fielded, coder=coder,
                         fast=level == FAST_LEVEL),
            content_hash(data))


def decode_record(rec: Record, payload, out=None):
    """Decode a chunk record's payload and check its content hash; returns a uint8 array
    (``out`` if given: a writable uint8 array of ``rec.decoded_length`` entries)."""
    d = DTYPE_CODES[rec.dtype_code]
    try:
        data = decode_chunk(payload, d.name, rec.decoded_length, out, fielded=d.fielded)
    except CorruptDataError as e:
        raise CorruptDataError(f"chunk {rec.number}: {e}") from None
    if content_hash(data) != rec.content_hash:
        raise CorruptDataError(f"chunk {rec.number}: content checksum mismatch")
    return data


_FIELD_HEAD = struct.Struct("<BBHI")  # Field_Shift, Field_Bits, Code_Base, Escape_Count


def _packed_size(n: int, w: int) -> int:
    """Bytes of a last raw plane of n values of w < 8 bits, packed as sliced sub-planes
    (docs/FORMAT.md, "Packed raw plane"): bits 0-3, then 4-5 if w >= 6, then the odd bit."""
    return (n + 1) // 2 + ((n + 3) // 4 if w >= 6 else 0) + ((n + 7) // 8 if w in (5, 7) else 0)


def _pack_plane(top: np.ndarray, w: int) -> np.ndarray:
    """The w-bit values of ``top`` (uint8) packed (a scratch array)."""
    packed = scratch("packed", _packed_size(top.size, w))
    kernels.pack_top(top, np.int64(w), packed)
    return packed


def _unpack_plane(blob, n: int, w: int, top: np.ndarray) -> None:
    """Decode the packed last raw plane stream ``blob`` into ``top`` (n uint8 values)."""
    packed = _stored_or_decoded(blob, _packed_size(n, w), "packed")
    if kernels.unpack_top(packed, np.int64(w), top):
        raise CorruptDataError("packed raw plane has nonzero padding bits")


def _stored_or_decoded(blob, size: int, name: str) -> np.ndarray:
    """A stream of ``size`` bytes: a stored one read in place, else decoded into scratch."""
    if len(blob) == size + 1 and blob[0] == STORED:
        return np.frombuffer(blob, np.uint8, size, 1)
    return decode_stream(blob, size, scratch(name, size))


def _join16(codes: np.ndarray, blob, field: Field, escaped: np.ndarray, dst: np.ndarray) -> None:
    """Join a 16-bit chunk's codes and last raw plane (the stream ``blob``: bytes, or packed
    values of a field wider than 8 bits) into ``dst`` (uint8, 2-aligned) and put its escapes
    back, in one kernel call; CorruptDataError for nonzero padding bits or a number of
    escape codes other than ``escaped.size``."""
    n = codes.size
    w = field.top_bits
    top = _stored_or_decoded(blob, n if w == 8 else _packed_size(n, w),
                             "raw" if w == 8 else "packed")
    status, count = kernels.join_fielded16(codes, top, np.uint32(field.shift),
                                           np.uint32(field.bits), np.uint32(field.base), True,
                                           escaped, dst.view(np.uint16))
    if status:
        raise CorruptDataError("packed raw plane has nonzero padding bits")
    if field.lim == 255 and count != escaped.size:
        raise CorruptDataError(f"chunk has a number of escape codes other than {escaped.size}")


def encode_chunk(data, dtype: str, *, fielded: bool = False, coder: str = "auto",
                 field: Field | None = None, fast: bool = False) -> bytes:
    """Code a chunk (bytes-like, a whole number of ``dtype`` elements) as framed streams.

    Layout: for the code stream and then each raw plane, ``u32 length`` + stream + one zero
    byte of padding if the length is odd (so rANS words stay 2-byte aligned when the chunk
    starts 2-byte aligned). Generic byte data (dtype ``BYTES`` and dtypes without a coding
    pair) also tries zstd.

    ``fielded`` (float dtypes only, see :data:`pairs.FIELD_TOPS`): choose the chunk's code
    field with :func:`pairs.choose_field` and write it first as an 8-byte Field_Header;
    the last raw plane is packed at ``16 - bits`` bits per element, and the escaped field
    values follow as one more stream of u16 (docs/FORMAT.md, "Fielded chunk payload"). When
    the chosen field is wider than 8 bits and the chunk is under 64 KiB, or the field made
    it larger than its input, the chunk is also coded with the plain 8-bit field (which
    never escapes) and the smaller kept: the payload never exceeds the container's
    Decoded_Length + PAYLOAD_SLACK. ``field`` (with ``fielded``) forces that field instead,
    with no fallback: for tests and experiments. ``coder`` is passed to
    :func:`encode_stream` for every stream. Block-quantized GGML types
    (:mod:`ansz.blocks`) are coded field by field instead.

    ``fast`` trades a little ratio for decoding (and coding) speed: a fielded chunk takes
    the plain 8-bit field without searching (no escapes, a stored last plane), its wide
    rANS streams have 64 states (FAST_WIDE_STATES) instead of 32, and with "auto" no stream
    tries the prefix coders. The chunk stays an ordinary one.
    """
    if dtype in BLOCK_TYPE_NAMES:
        if fast:
            return encode_block_chunk(data, dtype, coder="rans" if coder == "auto" else coder,
                                      wide_states=FAST_WIDE_STATES)
        return encode_block_chunk(data, dtype, coder=coder)
    layout = layout_for(dtype)
    if field is not None and not fielded:
        raise ValueError("encode_chunk: a forced field needs fielded=True")
    if not fielded:
        return _encode_pairs(data, layout, None, coder, fast)
    if layout.name not in FIELD_TOPS:
        raise ValueError(f"{dtype} has no fielded layout")
    if field is not None or fast:
        return _encode_pairs(data, layout, field or plain_field(layout), coder, fast)
    field, _, counts = field_choice(data, layout)
    payload = _encode_pairs(data, layout, field, coder, counts=counts)
    nbytes = len(memoryview(data).cast("B"))
    if field.bits > 8 and (nbytes < _SMALL_FIELDED or len(payload) > nbytes):
        # The field's price misses the fixed costs of small streams (escapes, tables, final
        # states): on a small chunk also try the plain 8-bit field, which never escapes and
        # stores what does not compress, so the payload stays within Decoded_Length + a
        # few framing bytes (the container's PAYLOAD_SLACK).
        plain = _encode_pairs(data, layout, plain_field(layout), coder)
        if len(plain) <= len(payload):
            payload = plain
    return payload


#: Fielded chunks below this many bytes are also coded with the plain field (see encode_chunk).
_SMALL_FIELDED = 1 << 16


def _encode_pairs(data, layout: PairLayout, field: Field | None, coder: str,
                  fast: bool = False, counts: FieldCounts | None = None) -> bytes:
    """The streams of encode_chunk for a coding-pair layout, with ``field`` (fielded: the
    Field_Header first) or without (None: plain pairs); ``fast`` as for encode_chunk.
    ``counts``: the chunk's exact counts under ``field`` (:func:`pairs.field_choice`), which
    its code stream and an 8-bit field's last plane then need not count again."""
    n = len(memoryview(data).cast("B")) // layout.width
    codes, raw = split_pairs(data, layout, scratch("codes", n),
                             scratch("raw", n * layout.raw_width), field)
    generic = layout.name == "BYTES"
    parts = []
    streams = [codes] + [raw[b * n:(b + 1) * n] for b in range(layout.raw_width)]
    known = [None] * len(streams)
    if counts is not None:
        known[0], known[-1] = counts.codes, counts.top
    last = escapes = None
    if field is not None:
        escaped = escaped_values(data, layout, codes, field,
                                 None if counts is None else int(counts.codes[255]))
        parts.append(_FIELD_HEAD.pack(field.shift, field.bits, field.base, escaped.size))
        if field.top_bits < 8:
            streams[-1] = last = _pack_plane(streams[-1], field.top_bits)
        if escaped.size:
            streams.append(escapes := escaped.astype("<u2").view(np.uint8))
            known.append(None)
    if fast and coder == "auto":
        coder = "rans"  # the prefix coders decode slower than rANS
    wide = FAST_WIDE_STATES if fast else WIDE_STATES
    if not generic:
        top = known[layout.raw_width] if layout.raw_width and last is None else None
        payload = frame_pair_streams(codes, raw, layout.raw_width, last, escapes, known[0], top,
                                     coder=coder, wide_states=wide,
                                     head=parts[0] if parts else b"")
        if payload is not None:
            return payload
    for s, c in zip(streams, known):
        parts.extend(framed_pieces(encode_stream_parts(s, try_zstd=generic, coder=coder,
                                                       wide_states=wide, counts=c)))
    return b"".join(parts)  # the one copy of stored planes (see encode_stream_parts)


def _read_field(mv: memoryview, layout: PairLayout, n: int) -> tuple[Field, int]:
    """The Field_Header at the start of a fielded payload of n elements, checked
    (CorruptDataError): ``(field, escape count)``."""
    if len(mv) < _FIELD_HEAD.size:
        raise CorruptDataError("chunk payload is truncated (field header)")
    shift, bits, base, escapes = _FIELD_HEAD.unpack_from(mv)
    field = Field(shift, bits, base)
    if not field.check(layout.width):
        raise CorruptDataError(f"chunk field (shift {field.shift}, bits {field.bits}, base "
                               f"{field.base}) does not fit {layout.name}")
    if escapes > (0 if field.lim == 256 else n):
        raise CorruptDataError(f"chunk field declares {escapes} escapes for {n} elements")
    return field, escapes


#: The one-call kernels' slot tables hold up to 2^14 entries (the larger scale); the symbol
#: table 3 more, which the lane decoder reads past the last slot.
_SLOTS = 1 << kernels.SCALE_BITS_HIGH
_ELEMENTS = {2: np.uint16, 4: np.uint32}


def _decoded_in_one_call(mv: memoryview, layout: PairLayout, fielded: bool,
                         out: np.ndarray) -> bool:
    """True if ``kernels.decode_pairs16`` (``decode_pairs32``) decoded the chunk payload
    ``mv`` of 16-bit (32-bit) elements into ``out`` in one call (the common shape: every
    stream STORED, CONSTANT or rANS-coded); False leaves it, valid or not, to the general
    path of decode_chunk, which then decodes it or says what is wrong."""
    buf = np.frombuffer(mv, np.uint8)
    if buf.ctypes.data % 2 or out.ctypes.data % layout.width:
        return False
    n = out.size // layout.width
    decode = kernels.decode_pairs16 if layout.width == 2 else kernels.decode_pairs32
    return decode(buf, fielded, np.int64(layout.code_shift), np.int64(0), scratch("codes", n),
                  scratch("raw", 4 * n if layout.width == 4 else n),
                  scratch("slot_symbols", _SLOTS + 3), scratch("slot_entries", _SLOTS, np.uint32),
                  scratch("table", 256, np.uint32), scratch("escaped", n, np.uint16),
                  out.view(_ELEMENTS[layout.width])) == 1


def decode_chunk(blob, dtype: str, nbytes: int, out: np.ndarray | None = None, *,
                 fielded: bool = False) -> np.ndarray:
    """Decode a chunk made by :func:`encode_chunk` into ``nbytes`` bytes (uint8 array).

    ``out``, if given, is a writable uint8 array of ``nbytes`` entries. ``fielded`` must
    be what the encoder was given (the container records it in the dtype code).
    Allocations are bounded by ``nbytes``, which the caller has validated.
    """
    if dtype in BLOCK_TYPE_NAMES:
        return decode_block_chunk(blob, dtype, nbytes, out)
    layout: PairLayout = layout_for(dtype)
    if nbytes % layout.width:
        raise CorruptDataError(f"chunk of {nbytes} bytes is not a whole number of {dtype} elements")
    if fielded and layout.name not in FIELD_TOPS:
        raise CorruptDataError(f"{dtype} has no fielded layout")
    if out is None:
        out = np.empty(nbytes, np.uint8)
    n = nbytes // layout.width
    mv = memoryview(blob).cast("B")
    if layout.width in (2, 4) and _decoded_in_one_call(mv, layout, fielded, out):
        return out
    field, escapes = _read_field(mv, layout, n) if fielded else (None, 0)
    streams = framed_streams(mv, layout.width + (escapes > 0), _FIELD_HEAD.size if fielded else 0)
    if layout.width == 1:
        decode_stream(next(streams), n, out)
        for _ in streams:  # runs the trailing-bytes check
            pass
        return out
    codes = decode_stream(next(streams), n, scratch("codes", n))
    planes = list(streams)
    escaped = decode_stream(planes.pop(), 2 * escapes).view("<u2") if escapes else NO_ESCAPES
    top_bits = 8 if field is None else field.top_bits
    aligned = out.ctypes.data % layout.width == 0
    dst = out if aligned else scratch("unaligned", nbytes)
    if layout.width == 2:
        _join16(codes, planes[0], field or plain_field(layout), escaped, dst)
    else:
        raw = scratch("raw", n * layout.raw_width)
        for b, s in enumerate(planes[:-1]):
            decode_stream(s, n, raw[b * n:(b + 1) * n])
        top = raw[(layout.raw_width - 1) * n:]
        if top_bits == 8:
            decode_stream(planes[-1], n, top)
        else:
            _unpack_plane(planes[-1], n, top_bits, top)
        join_pairs(codes, raw, layout, dst, field)
        if field is not None and field.lim == 255:
            if not patch_escapes(codes, escaped, layout, dst, field):
                raise CorruptDataError(f"chunk has a number of escape codes other than {escapes}")
    if not aligned:
        out[:] = dst
    return out
