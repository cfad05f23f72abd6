"""Quad Length Codes: a prefix code for uint8 symbols with 8 fixed-length areas.

A code is a 3-bit *prefix* k, selecting area k, followed by ``b_k`` suffix bits, so every
symbol of area k costs ``3 + b_k`` bits and area k holds up to ``2^b_k`` symbols
(``0 <= b_k <= 8``). Symbols ranked by decreasing count (ties: smaller symbol first) fill the
areas in order, area 0 first; the symbol of rank r in area k (whose first rank is base_k)
has code ``k << b_k | (r - base_k)``. Bits are written MSB-first, last byte zero-padded
(``ansz._kernels.prefix``).

:func:`optimal_areas` finds the area sizes that minimize the coded size exactly, by dynamic
programming over the ranked counts: cost(k areas, first i ranks) + b * weight(ranks i..j),
where an area is full (j = i + 2^b) except the last non-empty one (j = n). Any assignment of
symbols to areas can be rearranged into that form without getting longer (sort areas by b,
give the most frequent symbols the shortest codes), so the DP's optimum is the optimum.

Decoding is one 256-entry lookup on the top 8 bits of the bit window (the prefix selects
the area's base rank, suffix mask and length), then the rank-to-symbol table.

Serialized table (``QlcTable.to_bytes``, 5 + n bytes): 4 bytes of ``b_0..b_7`` as nibbles
(area 2k in the low nibble of byte k), 1 byte ``n - 1``, then the n symbols in rank order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import kernels
from .prefix import encode_prefix

__all__ = ["NAREAS", "PREFIX_BITS", "MAX_AREA_BITS", "QlcTable", "optimal_areas",
           "expected_bits", "rank_order", "encode", "TABLE_STATUS"]

NAREAS = 8
PREFIX_BITS = 3
MAX_AREA_BITS = 8

#: Nonzero status of the QLC table kernels (``qlc_build_tables``, ``qlc_read_table``) -> what
#: is wrong with the table.
TABLE_STATUS = {
    kernels.QLC_TABLE_TRUNCATED: "QLC table is truncated",
    kernels.QLC_TABLE_BAD_AREA_BITS: "QLC table: area bits must be 8 integers in 0..8",
    kernels.QLC_TABLE_REPEATED_SYMBOL: "QLC table: symbols must be distinct",
    kernels.QLC_TABLE_TOO_SMALL: "QLC table: areas hold fewer symbols than listed",
}


def _check_counts(counts) -> np.ndarray:
    counts = np.ascontiguousarray(counts, dtype=np.int64)
    if counts.shape != (256,) or (counts < 0).any():
        raise ValueError("counts must be 256 non-negative integers")
    return counts


def rank_order(counts) -> np.ndarray:
    """The present symbols (uint8) by decreasing count, ties by increasing symbol."""
    counts = _check_counts(counts)
    order = np.argsort(-counts, kind="stable")
    return order[counts[order] > 0].astype(np.uint8)


def optimal_areas(counts) -> tuple[np.ndarray, np.ndarray]:
    """Area bits (uint8[8]) minimizing the coded size of ``counts``, and the symbol order.

    Areas left without symbols come last and get 0 bits. With no symbols present every area
    is empty. The dynamic program (module docstring) runs in ``kernels.qlc_optimal_areas``.
    """
    return kernels.qlc_optimal_areas(_check_counts(counts))


def _area_layout(area_bits: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(first rank, symbols held) of each area when n ranked symbols fill them in order."""
    cap = np.int64(1) << area_bits.astype(np.int64)
    base = np.concatenate(([0], np.cumsum(cap)[:-1]))
    held = np.clip(n - base, 0, cap)
    return base, held


def _rank_lengths(area_bits: np.ndarray, n: int) -> np.ndarray:
    """Code length (int64[n]) of each rank."""
    base, held = _area_layout(area_bits, n)
    return np.repeat(PREFIX_BITS + area_bits.astype(np.int64), held)


def _check_area_bits(area_bits) -> np.ndarray:
    a = np.asarray(area_bits)
    if a.shape != (NAREAS,) or (a < 0).any() or (a > MAX_AREA_BITS).any():
        raise ValueError(f"area bits must be {NAREAS} integers in 0..{MAX_AREA_BITS}")
    return a.astype(np.uint8)


def expected_bits(counts, area_bits) -> int:
    """Total payload bits of ``counts`` coded with these area bits (symbols in rank order).

    Divide by ``counts.sum()`` for the expected code length per symbol. Raises ValueError if
    the areas cannot hold every present symbol.
    """
    counts = _check_counts(counts)
    area_bits = _check_area_bits(area_bits)
    order = rank_order(counts)
    if order.size > int((np.int64(1) << area_bits.astype(np.int64)).sum()):
        raise ValueError("areas hold fewer symbols than are present")
    lengths = _rank_lengths(area_bits, order.size)
    return int((counts[order.astype(np.intp)] * lengths).sum())


@dataclass(frozen=True, eq=False)
class QlcTable:
    """Area bits (uint8[8]) and the symbols in rank order (uint8[n], distinct)."""

    area_bits: np.ndarray
    order: np.ndarray

    def __post_init__(self):
        bits = _check_area_bits(self.area_bits)
        order = np.ascontiguousarray(self.order, dtype=np.uint8)
        if order.ndim != 1:
            raise ValueError(TABLE_STATUS[kernels.QLC_TABLE_REPEATED_SYMBOL])
        readonly = order.view()
        readonly.flags.writeable = False  # the one array type the kernel is compiled for
        status, _, _ = kernels.qlc_build_tables(bits.astype(np.int64), readonly)
        if status:  # the checks of streams' tables: distinct symbols that fit the areas
            raise ValueError(TABLE_STATUS[status])
        object.__setattr__(self, "area_bits", bits)
        object.__setattr__(self, "order", order)

    @classmethod
    def from_counts(cls, counts) -> "QlcTable":
        return cls(*optimal_areas(counts))

    def code_table(self) -> tuple[np.ndarray, np.ndarray]:
        """(code uint32[256], length uint8[256]); length 0 for symbols not in the table."""
        return kernels.qlc_code_table(self.area_bits, self.order)

    def to_bytes(self) -> bytes:
        if self.order.size == 0:
            raise ValueError("an empty QLC table has no serialized form")
        b = self.area_bits
        nib = bytes(int(b[2 * k]) | int(b[2 * k + 1]) << 4 for k in range(NAREAS // 2))
        return nib + bytes([self.order.size - 1]) + self.order.tobytes()


def encode(symbols, table: QlcTable) -> tuple[np.ndarray, int]:
    """QLC-code uint8 ``symbols``; returns (uint8 bytes, bit count).

    Every symbol must be in the table (ValueError otherwise).
    """
    code, length = table.code_table()
    return encode_prefix(symbols, code, length)
