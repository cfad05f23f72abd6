"""Interleaved rANS over uint8 symbols, given a normalized frequency table.

This layer knows symbols, frequencies and 16-bit words, nothing of files or tensors. The
kernels and their invariants are in :mod:`ansz._kernels`; this module builds the per-symbol
tables and normalizes arrays at the Python boundary so each kernel compiles once.

Contract: ``freq`` is uint32[256], sums to ``M = 2**scale_bits`` with ``scale_bits`` one of
``SCALE_BITS_CHOICES`` (12, the default, or 14), has at least two nonzero entries (a
single-symbol stream needs no coder) and is nonzero for every symbol that is encoded. Why
only those two: see :mod:`ansz._kernels`.
"""

from __future__ import annotations

import numpy as np

from . import _kernels
from ._kernels import NSTATES, SCALE_BITS, SCALE_BITS_CHOICES, SCALE_BITS_HIGH
from .errors import CorruptDataError

__all__ = ["SCALE_BITS", "SCALE_BITS_HIGH", "SCALE_BITS_CHOICES", "NSTATES", "encode_symbols",
           "decode_symbols", "normalize_counts",
           "byte_histogram", "check_freq_table"]


def byte_histogram(data: np.ndarray) -> np.ndarray:
    """Counts (int64[256]) of each value in a uint8 array."""
    return _kernels.byte_histogram(np.ascontiguousarray(data, dtype=np.uint8))


def normalize_counts(counts: np.ndarray, scale_bits: int = SCALE_BITS) -> np.ndarray:
    """Frequencies summing to 2**scale_bits that minimize the coded size of ``counts``.

    Every symbol with a nonzero count gets freq >= 1, every absent symbol 0. Needs at least
    two present symbols and no more than 2**scale_bits of them.
    """
    counts = np.ascontiguousarray(counts, dtype=np.int64)
    present = int(np.count_nonzero(counts))
    if counts.shape != (256,) or (counts < 0).any():
        raise ValueError("counts must be 256 non-negative integers")
    if not 1 <= scale_bits <= 16:
        raise ValueError("scale_bits must be in [1, 16]")
    if present < 2 or present > (1 << scale_bits):
        raise ValueError(f"cannot normalize {present} present symbols to 2**{scale_bits}")
    return _kernels.normalize_counts(counts, np.int64(scale_bits))


def check_freq_table(freq: np.ndarray, scale_bits: int = SCALE_BITS) -> None:
    """Raise CorruptDataError unless ``freq`` satisfies the module contract."""
    if scale_bits not in SCALE_BITS_CHOICES:
        raise CorruptDataError(f"rANS scale_bits {scale_bits} is not one of {SCALE_BITS_CHOICES}")
    if freq.shape != (256,):
        raise CorruptDataError("rANS frequency table must have 256 entries")
    total = int(freq.sum(dtype=np.int64))
    if total != 1 << scale_bits:
        raise CorruptDataError(f"rANS frequencies sum to {total}, not {1 << scale_bits}")
    if np.count_nonzero(freq) < 2:
        raise CorruptDataError("rANS frequency table has fewer than two symbols")


def encode_symbols(symbols: np.ndarray, freq: np.ndarray, out: np.ndarray | None = None,
                   scale_bits: int = SCALE_BITS) -> np.ndarray:
    """rANS-encode uint8 ``symbols`` with table ``freq``; returns the uint16 word stream.

    The stream starts with the NSTATES final states (low word first) followed by the
    renormalization words in decoding order. Every symbol must have freq >= 1. ``out``, if
    given, is scratch space of exactly ``symbols.size + 2 * NSTATES`` uint16 words; the
    result is then a view of it.
    """
    symbols = np.ascontiguousarray(symbols, dtype=np.uint8)
    freq = np.ascontiguousarray(freq, dtype=np.uint32)
    check_freq_table(freq, scale_bits)
    if out is None:
        out = np.empty(symbols.size + 2 * NSTATES, np.uint16)
    elif out.size != symbols.size + 2 * NSTATES or out.dtype != np.uint16:
        raise ValueError("out must hold symbols.size + 2 * NSTATES uint16 words")
    start = _kernels.rans_encode(symbols, _kernels.encoder_table(freq, np.int64(scale_bits)),
                                 out)
    return out[start:]


_DECODE_ERRORS = {
    _kernels.DECODE_TRUNCATED: "rANS stream is truncated",
    _kernels.DECODE_BAD_STATE: "rANS stream is corrupt (bad state)",
    _kernels.DECODE_TRAILING: "rANS stream has trailing words",
}


def decode_symbols(words: np.ndarray, count: int, freq: np.ndarray,
                   out: np.ndarray | None = None, scale_bits: int = SCALE_BITS) -> np.ndarray:
    """Decode ``count`` symbols from a word stream made by :func:`encode_symbols`.

    ``freq`` is validated here; a malformed stream raises CorruptDataError. ``out``, if
    given, is a writable uint8 array of ``count`` entries that receives the symbols.
    """
    freq = np.ascontiguousarray(freq, dtype=np.uint32)
    check_freq_table(freq, scale_bits)
    words = np.require(words, dtype=np.uint16, requirements=["C", "A"])
    if out is None:
        out = np.empty(count, np.uint8)
    elif out.size != count or out.dtype != np.uint8:
        raise ValueError("out must be a uint8 array of count entries")
    sym_of_slot = np.empty(1 << scale_bits, np.uint8)
    dec_of_slot = np.empty(1 << scale_bits, np.uint32)
    _kernels.build_decoder_tables(freq, sym_of_slot, dec_of_slot)
    decode = _kernels.rans_decode12 if scale_bits == SCALE_BITS else _kernels.rans_decode14
    status = decode(words, sym_of_slot, dec_of_slot, out)
    if status != _kernels.DECODE_OK:
        raise CorruptDataError(_DECODE_ERRORS.get(status, f"rANS decode failed ({status})"))
    return out
