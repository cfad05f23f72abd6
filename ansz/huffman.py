"""Canonical, length-limited Huffman codes for uint8 symbols (a comparator coder).

Code lengths come from **package-merge** (Larmore & Hirschberg 1990), which gives the
optimal prefix code among those with every length <= ``limit``; when the limit does not
bind it is a Huffman code. (zstd's HUF instead builds an unlimited Huffman tree and then
repairs over-long lengths with a heuristic, ``HUF_setMaxHeight``, which is faster and
slightly suboptimal; at 256 symbols package-merge costs ~20 us in numba, so ansz takes
the exact answer.) The default limit is 11 bits, zstd's default HUF table log;
decoder tables have ``2^max_length`` uint16 entries (4 KiB at 11 bits).

Codes are canonical (deflate's rule): symbols sorted by (length, symbol) get consecutive
codes, the code shifted left when the length grows. So the lengths alone define the code.
Bits are written MSB-first, the last byte zero-padded (``ansz._kernels.prefix``).
Decoding looks up the next ``max_length`` bits in a table giving symbol and length.

A single present symbol gets a 1-bit code (an incomplete code: the other half of the code
space is invalid and decodes as corrupt).

Serialized table (``HuffmanTable.to_bytes``): ``first``, ``last`` (bytes, first <= last),
then the lengths of symbols first..last as 4-bit nibbles (low nibble first, 0 = absent,
a zero pad nibble if their number is odd). Valid tables have at least one code, lengths
<= 15 and sum(2^-length) <= 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import kernels
from .prefix import encode_prefix

__all__ = ["DEFAULT_LIMIT", "MAX_LIMIT", "code_lengths", "canonical_codes", "expected_bits",
           "HuffmanTable", "encode", "TABLE_STATUS"]

DEFAULT_LIMIT = 11
MAX_LIMIT = 15

#: Nonzero status of ``kernels.huffman_read_table`` -> what is wrong with the table.
TABLE_STATUS = {1: "is truncated", 2: "symbol range is empty", 3: "has a nonzero pad nibble",
                4: "range does not start and end at symbols",
                5: "is over-subscribed (Kraft sum > 1)"}


def _check_counts(counts) -> np.ndarray:
    counts = np.ascontiguousarray(counts, dtype=np.int64)
    if counts.shape != (256,) or (counts < 0).any():
        raise ValueError("counts must be 256 non-negative integers")
    return counts


def code_lengths(counts, limit: int = DEFAULT_LIMIT) -> np.ndarray:
    """Optimal code lengths (uint8[256], 0 for absent symbols) with every length <= limit.

    Package-merge (``kernels.huffman_code_lengths``) over the symbols by increasing count,
    the smaller symbol first on ties: item lists for depths limit..1, each the leaves
    merged (stably, leaves first on ties) with the pairs ("packages") of the list below;
    the first 2m - 2 items of the last list are chosen and a symbol's length is the number
    of chosen items holding it.
    """
    counts = _check_counts(counts)
    present = np.flatnonzero(counts)
    m = present.size
    lengths = np.zeros(256, np.uint8)
    if m == 0:
        return lengths
    if m == 1:
        lengths[present] = 1
        return lengths
    if not 1 <= limit <= MAX_LIMIT or (1 << limit) < m:
        raise ValueError(f"cannot code {m} symbols with lengths <= {limit}")
    return kernels.huffman_code_lengths(counts, np.int64(limit))


def _check_lengths(lengths) -> np.ndarray:
    """lengths as uint8[256] if they form a valid (possibly incomplete) prefix code."""
    a = np.asarray(lengths)
    if a.shape != (256,) or (a < 0).any() or (a > MAX_LIMIT).any():
        raise ValueError(f"Huffman table: lengths must be 256 values in 0..{MAX_LIMIT}")
    a = a.astype(np.int64)
    if not a.any():
        raise ValueError("Huffman table has no symbols")
    kraft = int((np.int64(1) << (MAX_LIMIT - a[a > 0])).sum())
    if kraft > 1 << MAX_LIMIT:
        raise ValueError("Huffman table is over-subscribed (Kraft sum > 1)")
    return a.astype(np.uint8)


def canonical_codes(lengths) -> np.ndarray:
    """Canonical codes (uint32[256], right-aligned) for valid lengths; 0 for absent symbols."""
    return kernels.huffman_canonical_codes(_check_lengths(lengths))


def expected_bits(counts, lengths) -> int:
    """Total payload bits of ``counts`` coded with these lengths (÷ counts.sum() for the mean)."""
    counts = _check_counts(counts)
    lengths = np.asarray(lengths, dtype=np.int64)
    if ((counts > 0) & (lengths == 0)).any():
        raise ValueError("a present symbol has no code")
    return int((counts * lengths).sum())


@dataclass(frozen=True, eq=False)
class HuffmanTable:
    """Code lengths (uint8[256]) of a valid prefix code; the codes are canonical."""

    lengths: np.ndarray

    def __post_init__(self):
        object.__setattr__(self, "lengths", _check_lengths(self.lengths))

    @classmethod
    def from_counts(cls, counts, limit: int = DEFAULT_LIMIT) -> "HuffmanTable":
        return cls(code_lengths(counts, limit))

    @property
    def max_length(self) -> int:
        return int(self.lengths.max())

    def code_table(self) -> tuple[np.ndarray, np.ndarray]:
        """(code uint32[256], length uint8[256]) for the encoder."""
        return canonical_codes(self.lengths), self.lengths

    def to_bytes(self) -> bytes:
        present = np.flatnonzero(self.lengths)
        first, last = int(present[0]), int(present[-1])
        nib = self.lengths[first:last + 1].astype(np.uint8)
        if nib.size % 2:
            nib = np.append(nib, np.uint8(0))
        return bytes([first, last]) + (nib[0::2] | (nib[1::2] << 4)).tobytes()


def encode(symbols, table: HuffmanTable) -> tuple[np.ndarray, int]:
    """Huffman-code uint8 ``symbols``; returns (uint8 bytes, bit count).

    Every symbol must have a code in the table (ValueError otherwise).
    """
    code, length = table.code_table()
    return encode_prefix(symbols, code, length)
