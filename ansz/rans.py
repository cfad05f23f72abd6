"""Interleaved rANS over uint8 symbols, given a normalized frequency table.

This layer knows symbols, frequencies and 16-bit words, nothing of files or tensors. The
kernels and their invariants are in :mod:`ansz._kernels.rans`; this module builds the per-symbol
tables and normalizes arrays at the Python boundary so each kernel compiles once.

Contract: ``freq`` is uint32[256], sums to ``M = 2**scale_bits`` with ``scale_bits`` one of
``SCALE_BITS_CHOICES`` (12, the default, or 14), has at least two nonzero entries (a
single-symbol stream needs no coder) and is nonzero for every symbol that is encoded. Why
only those two: see :mod:`ansz._kernels.rans`.

*Wide* streams (:func:`encode_symbols_wide`) interleave 32 or 64 states instead of
``NSTATES``, which lets the kernels step 16 states at once (vector instructions); their
words are laid out the same way.

A *sparse* alphabet of up to 65536 symbols (byte pairs, say) is coded the same way over
dense ids: the encoder takes uint16 ids ``0 .. A-1`` and ``freq`` of ``A`` entries; the
decoder takes the increasing symbol values ``ids`` (uint16[A]) with their frequencies and
writes the symbol values themselves (:func:`decode_sparse`).
"""

from __future__ import annotations

import numpy as np

from . import kernels
from .kernels import NSTATES, SCALE_BITS, SCALE_BITS_CHOICES, SCALE_BITS_HIGH, WIDE_STATES
from .errors import CorruptDataError

__all__ = ["SCALE_BITS", "SCALE_BITS_HIGH", "SCALE_BITS_CHOICES", "NSTATES", "WIDE_STATES",
           "encode_symbols", "decode_symbols", "decode_sparse", "encode_symbols_wide",
           "decode_symbols_wide", "normalize_counts", "byte_histogram", "check_freq_table"]


def byte_histogram(data: np.ndarray) -> np.ndarray:
    """Counts (int64[256]) of each value in a uint8 array."""
    return kernels.byte_histogram(np.ascontiguousarray(data, dtype=np.uint8))


def normalize_counts(counts: np.ndarray, scale_bits: int = SCALE_BITS) -> np.ndarray:
    """Frequencies summing to 2**scale_bits that minimize the coded size of ``counts``.

    ``counts`` has one entry per symbol of the alphabet (256 for bytes; at most 65536).
    Every symbol with a nonzero count gets freq >= 1, every absent symbol 0. Needs at least
    two present symbols and no more than 2**scale_bits of them.
    """
    counts = np.ascontiguousarray(counts, dtype=np.int64)
    present = int(np.count_nonzero(counts))
    if counts.ndim != 1 or counts.size > 1 << 16 or (counts < 0).any():
        raise ValueError("counts must be at most 65536 non-negative integers")
    if not 1 <= scale_bits <= 16:
        raise ValueError("scale_bits must be in [1, 16]")
    if present < 2 or present > (1 << scale_bits):
        raise ValueError(f"cannot normalize {present} present symbols to 2**{scale_bits}")
    return kernels.normalize_counts(counts, np.int64(scale_bits))


def check_freq_table(freq: np.ndarray, scale_bits: int = SCALE_BITS, size: int = 256) -> None:
    """Raise CorruptDataError unless ``freq`` satisfies the module contract (for an
    alphabet of ``size`` symbols)."""
    if scale_bits not in SCALE_BITS_CHOICES:
        raise CorruptDataError(f"rANS scale_bits {scale_bits} is not one of {SCALE_BITS_CHOICES}")
    if freq.shape != (size,):
        raise CorruptDataError(f"rANS frequency table must have {size} entries")
    total = int(freq.sum(dtype=np.int64))
    if total != 1 << scale_bits:
        raise CorruptDataError(f"rANS frequencies sum to {total}, not {1 << scale_bits}")
    if np.count_nonzero(freq) < 2:
        raise CorruptDataError("rANS frequency table has fewer than two symbols")


def encode_symbols(symbols: np.ndarray, freq: np.ndarray, out: np.ndarray | None = None,
                   scale_bits: int = SCALE_BITS) -> np.ndarray:
    """rANS-encode ``symbols`` with table ``freq``; returns the uint16 word stream.

    ``symbols`` is uint8 with ``freq`` of 256 entries, or uint16 dense ids of a sparse
    alphabet with one ``freq`` entry per id. The stream starts with the NSTATES final states
    (low word first) followed by the renormalization words in decoding order. Every symbol
    must have freq >= 1. ``out``, if given, is scratch space of exactly ``symbols.size + 2 *
    NSTATES`` uint16 words; the result is then a view of it.
    """
    wide = getattr(symbols, "dtype", None) == np.uint16
    symbols = np.ascontiguousarray(symbols, dtype=np.uint16 if wide else np.uint8)
    freq = np.ascontiguousarray(freq, dtype=np.uint32)
    check_freq_table(freq, scale_bits, freq.size if wide else 256)
    if wide and symbols.size and int(symbols.max()) >= freq.size:
        raise ValueError("symbol ids must be below freq.size")
    if out is None:
        out = np.empty(symbols.size + 2 * NSTATES, np.uint16)
    elif out.size != symbols.size + 2 * NSTATES or out.dtype != np.uint16:
        raise ValueError("out must hold symbols.size + 2 * NSTATES uint16 words")
    start = kernels.rans_encode(symbols, kernels.encoder_table(freq, np.int64(scale_bits)),
                                 out)
    return out[start:]


_DECODE_ERRORS = {
    kernels.DECODE_TRUNCATED: "rANS stream is truncated",
    kernels.DECODE_BAD_STATE: "rANS stream is corrupt (bad state)",
    kernels.DECODE_TRAILING: "rANS stream has trailing words",
}


#: The byte alphabet's symbol values, for build_decoder_tables.
_BYTES = np.arange(256, dtype=np.uint8)


def _check_status(status: int) -> None:
    if status != kernels.DECODE_OK:
        raise CorruptDataError(_DECODE_ERRORS.get(status, f"rANS decode failed ({status})"))


def _words(words: np.ndarray, freq: np.ndarray, scale_bits: int, size: int = 256
           ) -> tuple[np.ndarray, np.ndarray]:
    """``(words, freq)`` as the kernels take them, freq validated (CorruptDataError)."""
    freq = np.ascontiguousarray(freq, dtype=np.uint32)
    check_freq_table(freq, scale_bits, size)
    return np.require(words, dtype=np.uint16, requirements=["C", "A"]), freq


def decode_symbols(words: np.ndarray, count: int, freq: np.ndarray,
                   out: np.ndarray | None = None, scale_bits: int = SCALE_BITS) -> np.ndarray:
    """Decode ``count`` symbols from a word stream made by :func:`encode_symbols`.

    ``freq`` is validated here; a malformed stream raises CorruptDataError. ``out``, if
    given, is a writable uint8 array of ``count`` entries that receives the symbols.
    """
    words, freq = _words(words, freq, scale_bits)
    if out is None:
        out = np.empty(count, np.uint8)
    elif out.size != count or out.dtype != np.uint8:
        raise ValueError("out must be a uint8 array of count entries")
    return _decode(words, _BYTES, freq, out, scale_bits)


def decode_sparse(words: np.ndarray, ids: np.ndarray, freq: np.ndarray, out: np.ndarray,
                  scale_bits: int = SCALE_BITS) -> np.ndarray:
    """Decode ``out.size`` symbols of a sparse alphabet into ``out`` (writable uint16).

    The stream was made by :func:`encode_symbols` from the dense ids ``0 .. A-1``; id ``i``
    is the symbol value ``ids[i]`` (uint16[A], strictly increasing), with frequency
    ``freq[i]`` (every one >= 1). Tables and streams are validated: CorruptDataError.
    """
    ids = np.ascontiguousarray(ids, dtype=np.uint16)
    words, freq = _words(words, freq, scale_bits, ids.size)
    if ids.size > 1 and not (ids[1:] > ids[:-1]).all():
        raise CorruptDataError("rANS symbol values are not increasing")
    if not freq.all():
        raise CorruptDataError("rANS table has a zero frequency")
    if out.dtype != np.uint16:
        raise ValueError("out must be a uint16 array")
    return _decode(words, ids, freq, out, scale_bits)


def _decode(words: np.ndarray, ids: np.ndarray, freq: np.ndarray, out: np.ndarray,
            scale_bits: int) -> np.ndarray:
    """Build the slot tables for the symbol values ``ids`` (their dtype is ``out``'s) from the
    validated ``freq`` and decode ``out.size`` symbols into ``out``."""
    sym_of_slot = np.empty(1 << scale_bits, ids.dtype)
    dec_of_slot = np.empty(1 << scale_bits, np.uint32)
    kernels.build_decoder_tables(ids, freq, sym_of_slot, dec_of_slot)
    decode = kernels.rans_decode12 if scale_bits == SCALE_BITS else kernels.rans_decode14
    _check_status(decode(words, sym_of_slot, dec_of_slot, out))
    return out


def encode_symbols_wide(symbols: np.ndarray, freq: np.ndarray, nstates: int,
                        out: np.ndarray | None = None, scale_bits: int = SCALE_BITS) -> np.ndarray:
    """:func:`encode_symbols` for uint8 ``symbols`` with ``nstates`` (one of WIDE_STATES)
    interleaved states; ``out``, if given, holds exactly ``symbols.size + 2 * nstates``
    words."""
    if nstates not in WIDE_STATES:
        raise ValueError(f"nstates must be one of {WIDE_STATES}")
    symbols = np.ascontiguousarray(symbols, dtype=np.uint8)
    freq = np.ascontiguousarray(freq, dtype=np.uint32)
    check_freq_table(freq, scale_bits)
    if out is None:
        out = np.empty(symbols.size + 2 * nstates, np.uint16)
    elif out.size != symbols.size + 2 * nstates or out.dtype != np.uint16:
        raise ValueError("out must hold symbols.size + 2 * nstates uint16 words")
    sb = np.int64(scale_bits)
    start = kernels.rans_encode_wide(symbols, kernels.encoder_table(freq, sb),
                                     kernels.encoder_table_lanes(freq, sb), out,
                                     np.int64(nstates), sb)
    return out[start:]


def decode_symbols_wide(words: np.ndarray, count: int, freq: np.ndarray, nstates: int,
                        out: np.ndarray | None = None, scale_bits: int = SCALE_BITS
                        ) -> np.ndarray:
    """Decode ``count`` symbols from a stream made by :func:`encode_symbols_wide` with
    ``nstates`` states; as :func:`decode_symbols` otherwise."""
    if nstates not in WIDE_STATES:
        raise CorruptDataError(f"wide rANS stream of {nstates} states")
    words, freq = _words(words, freq, scale_bits)
    if out is None:
        out = np.empty(count, np.uint8)
    elif out.size != count or out.dtype != np.uint8:
        raise ValueError("out must be a uint8 array of count entries")
    sym_of_slot = np.zeros((1 << scale_bits) + 3, np.uint8)  # 3 bytes read past the last slot
    dec_of_slot = np.empty(1 << scale_bits, np.uint32)
    kernels.build_decoder_tables(_BYTES, freq, sym_of_slot[:1 << scale_bits], dec_of_slot)
    decode = kernels.rans_decode_wide12 if scale_bits == SCALE_BITS else kernels.rans_decode_wide14
    _check_status(decode(words, sym_of_slot, dec_of_slot, out, np.int64(nstates)))
    return out
