"""Coding pairs: split fixed-width elements into an entropy-coded *code* byte and *raw* bits.

Every element is read as a little-endian unsigned integer ``e`` of ``width`` bytes. Its code
is the 8 bits at ``code_shift``; its raw part is everything else, compacted::

    code = (e >> code_shift) & 0xFF
    raw  = ((e >> (code_shift + 8)) << code_shift) | (e & ((1 << code_shift) - 1))
    e    = ((raw >> code_shift) << (code_shift + 8)) | (code << code_shift) | (raw & low_mask)

so ``raw`` has ``8 * width - 8`` bits per element, stored as ``width - 1`` byte *planes*:
plane b (bytes ``b*n .. b*n + n``) holds byte b (little-endian) of every element's raw value. For bf16, code_shift = 7 makes the code the exponent and raw = sign|mantissa.

Which bits are the code is decided in :data:`ansz.dtypes.PAIR_LAYOUTS`; this module splits
and joins.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .dtypes import PairLayout


_UINT = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


@dataclass(frozen=True)
class Field:
    """Which bits of an element are its code: ``bits`` bits from bit ``shift``, minus ``base``.

    ``code = ((e >> shift) & (2**bits - 1)) - base`` when that is below :attr:`lim`, else
    the escape code 255 (wider fields only: the caller stores those values aside, as
    zeros, infinities and subnormals fall far from the bulk of the exponents). A layout's plain pair
    is ``Field(code_shift, 8, 0)``; wider fields join the top mantissa bits to the exponent
    (the code is then the exponent *and* where the value sits inside its octave, which the
    order-0 bound of the plain pair leaves on the table). Invariants: 8 <= bits <= 12 and
    shift + bits < 8 * width (or == 16 for 16-bit elements, F16's plain pair, whose kernels
    work in 32 bits), so the raw value has 8 * width - bits bits, its last plane
    ``16 - bits``.
    """

    shift: int
    bits: int
    base: int = 0

    def check(self, width: int) -> bool:
        """True if the field is valid for elements of ``width`` bytes."""
        return (MIN_FIELD_BITS <= self.bits <= MAX_FIELD_BITS and self.shift >= 0
                and self.shift + self.bits < 8 * width + (width == 2)
                and 0 <= self.base < (1 << self.bits))

    @property
    def lim(self) -> int:
        """Field values ``base .. base + lim - 1`` are coded directly; the rest escape."""
        return 256 if self.bits == 8 else 255

    @property
    def top_bits(self) -> int:
        """Bits of the raw value's last plane (8 for a plain pair)."""
        return 16 - self.bits


MIN_FIELD_BITS = 8
MAX_FIELD_BITS = 12

#: Float dtype -> the tops (the bit just above the field) that :func:`choose_field` widens
#: downwards, per chunk. First the top of the exponent without the sign (on most tensors
#: the sign is independent of the rest, and leaving it out keeps the field's values in one
#: run of at most 256); for 16-bit floats also the sign bit's top (16), which wins where the
#: sign is skewed (norm weights, some fp16 tensors: measured 0.00038 of mpnet-fp16's ratio,
#: 130 of its 389 chunks; 0.00002-0.00003 on the bf16 files). Wider elements keep one top:
#: their 32/64-bit kernels cannot shift by the full width.
FIELD_TOPS: dict[str, tuple[int, ...]] = {"BF16": (15, 16), "F16": (15, 16), "F32": (31,),
                                          "F64": (63,)}


def plain_field(layout: PairLayout) -> Field:
    """The field of a layout's plain coding pair (8 bits at ``code_shift``, no base)."""
    return Field(layout.code_shift, 8, 0)


def _as_elements(data, layout: PairLayout) -> np.ndarray:
    buf = np.frombuffer(data, dtype=np.uint8)
    if buf.size % layout.width:
        raise ValueError(f"{buf.size} bytes is not a whole number of {layout.name} elements")
    return buf.view(np.dtype(_UINT[layout.width]).newbyteorder("<"))


#: choose_field prices one element in every FIELD_SAMPLE_STEP of a chunk of at least
#: FIELD_SAMPLE_MIN elements, the phase moving every 1024 samples (``ansz._kernels.fields``,
#: "Sampling for the field choice"): a fixed phase never saw the odd elements of data alternating
#: between two ranges, and a 1 MiB bf16 chunk of such pairs grew 9%. Half the elements
#: choose as well as all of them (corpus ratios within +-0.00002; 1/4 lost
#: 0.00003-0.00005) for half of the histogram pass, the largest step of the choice. Smaller
#: chunks count every element: a sample of a few hundred elements can leave the others
#: outside the field's window, to escape.
FIELD_SAMPLE_STEP = 2
FIELD_SAMPLE_MIN = 1 << 15


def choose_field(data, layout: PairLayout, step: int | None = None) -> tuple[Field, float]:
    """The field with the smallest predicted chunk size, among those of ``FIELD_TOPS``.

    Candidates are 8 to 12 bits wide, ending at one of the tops. A wider one takes as its
    base the start of the 255-value window holding the most elements; the rest escape. Each
    is priced as the order-0 entropy of its codes + its varint table + the escaped values'
    entropy + its last raw plane stored (``16 - bits`` bits per element), on one element in
    every ``step`` (default: see FIELD_SAMPLE_STEP). Returns ``(field, predicted bytes
    of those parts for the sampled elements)``. One histogram pass per top serves every
    width.
    """
    field, cost, _ = field_choice(data, layout, step)
    return field, cost


@dataclass(frozen=True)
class FieldCounts:
    """Exact counts over a whole chunk that :func:`field_choice` gets along with its field:
    of the codes (int64[256], escapes at 255) and, for an 8-bit field, of the last raw plane
    (int64[256]; None for a wider field, whose last plane is packed)."""

    codes: np.ndarray
    top: np.ndarray | None


def field_choice(data, layout: PairLayout, step: int | None = None
                 ) -> tuple[Field, float, FieldCounts | None]:
    """:func:`choose_field`, and for 16-bit floats the chunk's :class:`FieldCounts` under
    the chosen field (None for wider elements): what coding its streams would count again.

    For 16-bit floats one kernel call (``kernels.choose_field16``) counts every element once
    and chooses; wider elements take :func:`field_histogram` and :func:`best_field`.
    """
    if step is None:
        big = len(memoryview(data).cast("B")) >= FIELD_SAMPLE_MIN * layout.width
        step = FIELD_SAMPLE_STEP if big else 1
    if layout.width != 2:
        return (*best_field(field_histogram(data, layout, step), layout), None)
    from . import kernels
    from .streams import scratch

    elems = np.ascontiguousarray(_as_elements(data, layout), np.uint16)
    counts = np.empty(512, np.int64)
    tops = FIELD_TOPS[layout.name]
    t, k, base, cost = kernels.choose_field16(
        elems, np.int64(step), np.array(tops, np.int64),
        scratch("field_table", 0 if step == 1 else 2 * 65536, np.uint32), counts)
    bits = MIN_FIELD_BITS + k
    field = Field(tops[t] - bits, bits, int(base))
    return field, float(cost), FieldCounts(counts[:256], counts[256:] if bits == 8 else None)


def field_histogram(data, layout: PairLayout, step: int = 1) -> np.ndarray:
    """Counts of the bits that choosing a field needs, of one element in every ``step`` (see
    FIELD_SAMPLE_STEP); histograms of several pieces of a tensor add up. For 16-bit floats,
    of every 16-bit value (int64[65536]); otherwise of the 12 bits below each of
    ``FIELD_TOPS[layout.name]`` (int64[tops, 4096])."""
    from . import kernels

    elems = np.ascontiguousarray(_as_elements(data, layout))
    if layout.width == 2:
        return kernels.field_histogram(elems, np.uint32(0), np.int64(16), np.int64(step))
    return np.stack([kernels.field_histogram(elems, np.uint32(top - MAX_FIELD_BITS),
                                              np.int64(MAX_FIELD_BITS), np.int64(step))
                     for top in FIELD_TOPS[layout.name]])


def _fold(hist: np.ndarray, layout: PairLayout) -> tuple[np.ndarray, np.ndarray | None]:
    """``(12-bit histograms below each top, raw-byte histograms of each top's 8-bit field)``
    from a :func:`field_histogram`; the raw-byte ones only for 16-bit floats."""
    if layout.width != 2:
        return hist, None
    from . import kernels

    tops = np.array(FIELD_TOPS[layout.name], np.int64)
    return kernels.fold_u16_histogram(np.ascontiguousarray(hist, np.int64), tops)


def best_field(hist: np.ndarray, layout: PairLayout) -> tuple[Field, float]:
    """:func:`choose_field` from a :func:`field_histogram`. Ties go to the first top.

    For 16-bit floats the 8-bit field's raw byte is priced coded where that pays (norm
    weights and other narrow tensors have skewed mantissas); one kernel call
    (``kernels.choose_field``) prices every candidate.
    """
    from . import kernels

    tops, raws = _fold(hist, layout)
    tops = np.ascontiguousarray(tops, np.int64)
    raw_coded = raws is not None
    if not raw_coded:
        raws = np.zeros((tops.shape[0], 256), np.int64)
    t, k, base, cost = kernels.choose_field(tops, raws, raw_coded)
    bits = MIN_FIELD_BITS + k
    return Field(FIELD_TOPS[layout.name][t] - bits, bits, int(base)), float(cost)


def field_code_counts(hist: np.ndarray, field: Field, layout: PairLayout
                      ) -> tuple[np.ndarray, np.ndarray]:
    """``(counts of the 256 codes, counts of the escaped field values)`` under ``field``,
    from a :func:`field_histogram` of ``layout``'s elements."""
    row = FIELD_TOPS[layout.name].index(field.shift + field.bits)
    h = np.asarray(_fold(hist, layout)[0][row], np.int64).reshape(1 << field.bits, -1).sum(axis=1)
    if field.lim == 256:
        return h, np.zeros(0, np.int64)
    codes = np.zeros(256, np.int64)
    window = h[field.base:field.base + 255]
    codes[:window.size] = window
    escaped = np.concatenate((h[:field.base], h[field.base + 255:]))
    codes[255] = escaped.sum()
    return codes, escaped


def split_pairs(data, layout: PairLayout, codes: np.ndarray | None = None,
                raw: np.ndarray | None = None, field: Field | None = None,
                ) -> tuple[np.ndarray, np.ndarray]:
    """Split ``data`` (bytes-like, a whole number of elements) into ``(codes, raw)``.

    ``codes`` is uint8 with one entry per element; ``raw`` is uint8 with ``raw_width`` planes
    of one byte per element (see the module docstring; with a wider ``field`` the last plane
    holds ``field.top_bits`` bits per element). Both are C-contiguous and writable: the
    given arrays (scratch space the caller reuses, of exactly those sizes) or new ones.
    ``field`` defaults to the layout's plain pair; codes of escaped values are 255 (see
    :class:`Field`; :func:`escaped_values` lists them).
    """
    elems = _as_elements(data, layout)
    n = elems.size
    if codes is None:
        codes = np.empty(n, np.uint8)
    if raw is None:
        raw = np.empty(n * layout.raw_width, np.uint8)
    if codes.size != n or raw.size != n * layout.raw_width:
        raise ValueError("split_pairs: codes/raw arrays have the wrong size")
    if layout.width == 1:
        codes[:] = elems
        return codes, raw
    from . import kernels

    field = field or plain_field(layout)
    if not field.check(layout.width) or (field.bits == 8 and field.base):
        raise ValueError(f"split_pairs: {field} does not fit {layout.name} (an 8-bit field "
                         "has base 0: its codes are the values)")
    e = np.ascontiguousarray(elems, dtype=_UINT[layout.width])
    split = {2: kernels.split_pairs16, 4: kernels.split_pairs32}.get(layout.width, kernels.split_pairs)
    split(e, np.uint32(field.shift), np.uint32(field.bits), np.uint32(field.base), codes, raw)
    return codes, raw


def escaped_values(data, layout: PairLayout, codes: np.ndarray, field: Field,
                   count: int | None = None) -> np.ndarray:
    """The field values (uint16, in element order) of the elements whose code escaped.
    ``count``, if given, is how many codes are 255 (a :class:`FieldCounts` knows it; an
    8-bit field, which never escapes, ignores it)."""
    if field.lim == 256 or count == 0:
        return np.zeros(0, np.uint16)
    from . import kernels

    elems = np.ascontiguousarray(_as_elements(data, layout), dtype=_UINT[layout.width])
    # only the pages written are touched
    escaped = np.empty(elems.size if count is None else count, np.uint16)
    found = kernels.gather_escapes(_codes(codes, elems.size), elems, np.uint32(field.shift),
                                   np.uint32(field.bits), escaped)
    if count is None:
        return escaped[:found].copy()
    if found != count:
        raise ValueError(f"escaped_values: {found} codes are 255, not {count}")
    return escaped


def patch_escapes(codes: np.ndarray, escaped: np.ndarray, layout: PairLayout, out: np.ndarray,
                  field: Field) -> bool:
    """After :func:`join_pairs`, put the escaped field values back into ``out``.

    Returns False if ``codes`` holds a different number of escape codes than ``escaped``.
    """
    from . import kernels

    elems = out.view(_UINT[layout.width])
    count = kernels.patch_escapes(_codes(codes, elems.size),
                                   np.ascontiguousarray(escaped, np.uint16),
                                   np.uint32(field.shift), np.uint32(field.bits), elems)
    return count == escaped.size


def _codes(codes: np.ndarray, n: int) -> np.ndarray:
    """``codes`` as the kernels take them: C-contiguous uint8, one per element."""
    codes = np.ascontiguousarray(codes, np.uint8)
    if codes.size != n:
        raise ValueError("codes and elements differ in number")
    return codes


def join_pairs(codes: np.ndarray, raw: np.ndarray, layout: PairLayout, out: np.ndarray,
               field: Field | None = None) -> None:
    """Inverse of :func:`split_pairs`: write the elements, as bytes, into ``out``.

    ``out`` is a writable C-contiguous uint8 array of ``codes.size * width`` bytes.
    """
    n = codes.size
    if out.size != n * layout.width or raw.size != n * layout.raw_width:
        raise ValueError("join_pairs: codes, raw and out sizes disagree")
    if layout.width == 1:
        out[:] = codes
        return
    from . import kernels

    field = field or plain_field(layout)
    if not field.check(layout.width):
        raise ValueError(f"join_pairs: {field} does not fit {layout.name}")
    e = out.view(_UINT[layout.width])
    shift, bits, base = np.uint32(field.shift), np.uint32(field.bits), np.uint32(field.base)
    if layout.width == 2:  # the chunk decoder's kernel, given no escapes to put back
        kernels.join_fielded16(codes, raw, shift, bits, base, False, NO_ESCAPES, e)
        return
    join = kernels.join_pairs32 if layout.width == 4 else kernels.join_pairs
    join(codes, raw, shift, bits, base, e)


#: An empty escape list (read-only): what a chunk without escapes passes to the kernels.
NO_ESCAPES = np.zeros(0, np.uint16)
NO_ESCAPES.flags.writeable = False
