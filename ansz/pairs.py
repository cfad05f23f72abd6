"""Coding pairs: split fixed-width elements into an entropy-coded *code* byte and *raw* bits.

Every element is read as a little-endian unsigned integer ``e`` of ``width`` bytes. Its code
is the 8 bits at ``code_shift``; its raw part is everything else, compacted::

    code = (e >> code_shift) & 0xFF
    raw  = ((e >> (code_shift + 8)) << code_shift) | (e & ((1 << code_shift) - 1))
    e    = ((raw >> code_shift) << (code_shift + 8)) | (code << code_shift) | (raw & low_mask)

so ``raw`` has ``8 * width - 8`` bits per element, stored as ``width - 1`` byte *planes*:
plane b (bytes ``b*n .. b*n + n``) holds byte b (little-endian) of every element's raw value. For bf16, code_shift = 7 makes the code the exponent and raw = sign|mantissa.

Which bits are the code is decided here and only here: :data:`PAIR_LAYOUTS`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import UnsupportedError


@dataclass(frozen=True)
class PairLayout:
    """How one dtype splits into (code, raw). ``width`` in bytes, ``code_shift`` in bits."""

    name: str
    width: int
    code_shift: int

    @property
    def raw_width(self) -> int:
        """Raw bytes per element (``width - 1``)."""
        return self.width - 1


# dtype name (safetensors spelling) -> layout. Measured choices are noted beside each; the
# layouts are part of the container format (docs/FORMAT.md, "Dtype codes").
PAIR_LAYOUTS: dict[str, PairLayout] = {
    # BF16: the 8 exponent bits; raw = sign + 7 mantissa bits.
    "BF16": PairLayout("BF16", 2, 7),
    # F16: the high byte (sign, 5 exponent bits, top 2 mantissa bits). Code entropy on the
    # corpus (bits/element): shift 8 -> 5.544 / 5.563 (MiniLM / MPNet fp16), shift 7 (no sign,
    # top 3 mantissa bits) -> 5.541 / 5.567, shift 6 -> 6.54: a tie, so the plain high byte.
    "F16": PairLayout("F16", 2, 8),
    # F32: the 8 exponent bits (MiniLM f32: 2.614 bits; the high byte, shift 24: 2.692).
    "F32": PairLayout("F32", 4, 23),
    # F64: the top 8 of the 11 exponent bits; the low 3 go to raw. Not measured: the corpus
    # has no f64 weights.
    "F64": PairLayout("F64", 8, 55),
    # Whole-byte codes: every 8-bit type, and any byte stream.
    "BYTES": PairLayout("BYTES", 1, 0),
}

# Every 1-byte dtype codes its whole byte.
for _name in ("BOOL", "U8", "I8", "F8_E4M3", "F8_E5M2", "F8_E8M0"):
    PAIR_LAYOUTS[_name] = PairLayout(_name, 1, 0)
del _name


def layout_for(dtype: str) -> PairLayout:
    """The coding-pair layout for a dtype, or the whole-byte layout for dtypes without one.

    Integer dtypes wider than a byte (and anything unknown) are coded as a plain byte stream.
    """
    return PAIR_LAYOUTS.get(dtype, PAIR_LAYOUTS["BYTES"])


_UINT = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


def _as_elements(data, layout: PairLayout) -> np.ndarray:
    buf = np.frombuffer(data, dtype=np.uint8)
    if buf.size % layout.width:
        raise ValueError(f"{buf.size} bytes is not a whole number of {layout.name} elements")
    return buf.view(np.dtype(_UINT[layout.width]).newbyteorder("<"))


def split_pairs(data, layout: PairLayout, codes: np.ndarray | None = None,
                raw: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Split ``data`` (bytes-like, a whole number of elements) into ``(codes, raw)``.

    ``codes`` is uint8 with one entry per element; ``raw`` is uint8 with ``raw_width`` planes
    of one byte per element (see the module docstring). Both are C-contiguous and writable:
    the given arrays (scratch space the caller reuses, of exactly those sizes) or new ones.
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
    from . import _kernels

    e = np.ascontiguousarray(elems, dtype=_UINT[layout.width])
    split = {2: _kernels.split_pairs16, 4: _kernels.split_pairs32}.get(layout.width, _kernels.split_pairs)
    split(e, np.uint32(layout.code_shift), codes, raw)
    return codes, raw


def join_pairs(codes: np.ndarray, raw: np.ndarray, layout: PairLayout, out: np.ndarray) -> None:
    """Inverse of :func:`split_pairs`: write the elements, as bytes, into ``out``.

    ``out`` is a writable C-contiguous uint8 array of ``codes.size * width`` bytes.
    """
    n = codes.size
    if out.size != n * layout.width or raw.size != n * layout.raw_width:
        raise ValueError("join_pairs: codes, raw and out sizes disagree")
    if layout.width == 1:
        out[:] = codes
        return
    from . import _kernels

    e = out.view(_UINT[layout.width])
    join = {2: _kernels.join_pairs16, 4: _kernels.join_pairs32}.get(layout.width, _kernels.join_pairs)
    join(codes, raw, np.uint32(layout.code_shift), e)
