"""Streams: a run of uint8 symbols coded by the method that makes it smallest, and framing.

A *stream* is a run of uint8 symbols whose length the caller knows. It is coded as one of
(docs/FORMAT.md, "Stream"):

* ``STORED``   the bytes as they are;
* ``CONSTANT`` one symbol repeated (two bytes, whatever the length);
* ``RANS``     a frequency table (LEB128 varints) and interleaved rANS words (:mod:`ansz.rans`);
  ``RANS_U16``, the same with a table of u16, is still read;
* ``RANS_PAIRS`` rANS over pairs of symbols (a sparse table of the pairs present), which
  earlier versions wrote for level 1; still read;
* ``RANS_WIDE`` the ``RANS`` coder with 32 (64 at level 1) interleaved states instead of 8,
  which the kernels step 16 at a time, and a compact table (what large streams are coded
  with);
* ``ZSTD``     a zstd frame (offered for generic byte data, where LZ matches can win);
* ``HUFFMAN``  a length-limited canonical Huffman table and code bytes (:mod:`ansz.huffman`);
* ``QLC``      a Quad Length Codes table and code bytes (:mod:`ansz.qlc`).

The entropy coder is chosen per stream: ``coder="auto"`` takes whichever of rANS, Huffman
and QLC gives the fewest bytes; ``"rans"``, ``"huffman"`` or ``"qlc"`` forces one (STORED and
CONSTANT are still used where they win, and zstd is still tried for generic bytes).

Streams are framed into a chunk payload by :func:`frame_streams` (each ``u32 length``, the
stream, a zero byte if the length is odd) and read back by :func:`framed_streams`.

This layer knows symbols and bytes, nothing of dtypes, files or containers.
"""

from __future__ import annotations

import struct
import threading

import numpy as np

from . import huffman, kernels, qlc, rans
from .errors import CorruptDataError
from .options import CODERS
from .prefix import DECODE_STATUS

#: Stream methods (docs/FORMAT.md, "Stream"): the first byte of every stream.
STORED = 0
CONSTANT = 1
RANS_U16 = 2  #: rANS with a u16 frequency table (written by earlier versions; still read)
ZSTD = 3
HUFFMAN = 4
QLC = 5
RANS = 6  #: rANS with a LEB128 frequency table (what the encoder writes)
RANS_PAIRS = 7  #: rANS over symbol pairs with a sparse LEB128 table (fast chunks)
RANS_WIDE = 8  #: RANS with 32 or 64 interleaved states, decoded 16 at a time
METHODS = (STORED, CONSTANT, RANS_U16, ZSTD, HUFFMAN, QLC, RANS, RANS_PAIRS, RANS_WIDE)
PREFIX_CODERS = ("huffman", "qlc")

#: An entropy-coded stream must be at least this much smaller than storing it (1/64 =
#: 1.6%), or it is stored: decoding a near-uniform plane costs time for nothing.
MIN_GAIN = 1 / 64

ZSTD_LEVEL = 3

#: 14-bit rANS tables must save at least this fraction of the coded bits over 12-bit ones
#: (measured: fp8 bytes 0.37% -> 0.07% above entropy; bf16 exponents 0.09% -> 0.06%, kept
#: at 12 bits, whose smaller slot tables decode faster).
HIGH_SCALE_MIN_GAIN = 0.001

_RANS_HEAD = struct.Struct("<BBBB")  # method, scale_bits, first symbol, last symbol
_WIDE_HEAD = struct.Struct("<BBBBBB")  # as _RANS_HEAD, then log2(states), a zero byte

#: rANS streams of at least WIDE_MIN symbols are RANS_WIDE with WIDE_STATES states. With 32
#: states the lane decoder runs ~1.75x the 8-state loop's speed (1.45 against 0.83 Gsym/s on
#: bf16 codes, one core), for 96 more bytes of final states, which its compact table more
#: than saves: every corpus file came out a little smaller. 64 states decode at ~2.1
#: Gsym/s, but their 224 bytes made every corpus file larger (MiniLM bf16 0.65848 against
#: 0.65839 before wide streams, 0.65837 with 32).
WIDE_MIN = 1 << 17
WIDE_STATES = 32
#: What level 1 (decoding speed first) uses: 64 states decode ~1.5x as fast as 32.
FAST_WIDE_STATES = 64
_PAIRS_HEAD = struct.Struct("<BBHBB")  # method, scale_bits, pair count, odd last symbol, 0

_U32 = struct.Struct("<I")


_scratch_store = threading.local()


def scratch(name: str, size: int, dtype=np.uint8) -> np.ndarray:
    """A per-thread reusable array of ``size`` elements (contents undefined).

    Chunk coding needs several chunk-sized temporaries; fresh ones cost a page fault per
    4 KiB on first touch (measured ~25% of a bf16 chunk's decode time on this VM), so each
    thread keeps its own and grows it as needed. Never return one to a caller.
    """
    buf = getattr(_scratch_store, name, None)
    if buf is None or buf.size < size or buf.dtype != dtype:
        buf = np.empty(size, dtype)
        setattr(_scratch_store, name, buf)
    return buf[:size]


def rans_plan(counts: np.ndarray) -> tuple[int, np.ndarray, float]:
    """Choose the rANS table for a histogram: ``(scale_bits, freq, predicted bytes)``.

    The predicted size covers the words only (cross-entropy plus the final states), not the
    stream header or table. 14-bit tables are chosen when they cut the coded bits by more
    than :data:`HIGH_SCALE_MIN_GAIN`; that happens on high-entropy streams with many rare
    symbols (fp8 bytes, wide float fields), while plain bf16 exponents keep 12 bits and the
    decoder's slot tables stay in L1. Needs at least two present symbols.
    """
    counts = np.ascontiguousarray(counts, np.int64)
    scale, freq, cost = kernels.plan_table(counts, HIGH_SCALE_MIN_GAIN)  # one kernel call
    return int(scale), freq, cost / 8 + 4 * rans.NSTATES


_SAMPLE_MIN = 1 << 16
_SAMPLE_STEP = 16


def _looks_incompressible(symbols: np.ndarray) -> bool:
    """True if a 1/16 sample's order-0 entropy leaves no room for MIN_GAIN (with a margin).

    Saves the full histogram on near-uniform planes (sign/mantissa bytes), ~12% of the
    time of a bf16 chunk. A false "compressible" only costs that histogram.
    """
    bits, n = kernels.sampled_entropy(symbols, np.int64(_SAMPLE_STEP))
    return bits / n > 8 * (1 - MIN_GAIN / 2)


def varint_table(freq: np.ndarray) -> bytes:
    """Frequencies (each < 2^14) as LEB128 varints: 1 byte below 128, else 2 (low 7 bits
    with the high bit set, then the rest), then a zero byte if that makes an odd count, so
    the rANS words that follow a 4-byte header stay 2-byte aligned."""
    f = np.asarray(freq)
    if f.size and not 0 <= int(f.min()) <= int(f.max()) < 1 << 14:
        raise ValueError("varint_table: frequencies must be in [0, 2^14)")
    f = np.ascontiguousarray(f, np.uint32)
    out = np.empty(2 * f.size + 1, np.uint8)
    return out[:kernels.write_varints(f, out)].tobytes()


def bitlen_table(freq: np.ndarray) -> bytes:
    """Frequencies (each < 2^15) as a RANS_WIDE stream's table: bit lengths as changes, then
    the bits below each leading 1, MSB-first, padded to an even number of bytes
    (docs/FORMAT.md, "Wide rANS stream")."""
    f = np.ascontiguousarray(freq, np.uint32)
    if f.size and int(f.max()) >= 1 << 15:
        raise ValueError("bitlen_table: frequencies must be below 2^15")
    out = np.empty(3 * f.size + 2, np.uint8)
    return out[:kernels.write_bitlen_table(f, out)].tobytes()


def read_bitlen_table(mv: memoryview, start: int, freq: np.ndarray) -> int:
    """Read ``freq.size`` entries written by :func:`bitlen_table` from ``mv[start:]`` into
    ``freq`` (uint32); returns where the words start. CorruptDataError if it is truncated,
    has a bit length above 15 or nonzero padding."""
    end = int(kernels.read_bitlen_table(np.frombuffer(mv, np.uint8), np.int64(start), freq))
    if end == -1:
        raise CorruptDataError("wide rANS table is truncated")
    if end < 0:
        raise CorruptDataError("wide rANS table is malformed")
    return end


def read_varint_table(mv: memoryview, start: int, freq: np.ndarray) -> int:
    """Read ``freq.size`` varints written by :func:`varint_table` from ``mv[start:]`` into
    ``freq`` (uint32); returns where the rANS words start. CorruptDataError on a varint
    longer than 2 bytes, a truncated table or a nonzero pad byte."""
    end = int(kernels.read_varints(np.frombuffer(mv, np.uint8), np.int64(start), freq))
    if end == -2:
        raise CorruptDataError("rANS table has a varint longer than 2 bytes")
    if end < 0:
        raise CorruptDataError("rANS table is truncated")
    return _past_pad(mv, end, "rANS")


def _past_pad(mv: memoryview, end: int, what: str) -> int:
    """Where the words start after a table ending at ``end``: past the zero byte that
    follows a table of odd length (CorruptDataError if it is not there or not zero)."""
    if end % 2:
        if end >= len(mv) or mv[end] != 0:
            raise CorruptDataError(f"{what} table has a bad padding byte")
        end += 1
    return end


def _word_stream(mv: memoryview, start: int, what: str) -> np.ndarray:
    """The u16 words of ``mv[start:]`` (an even number of bytes, else CorruptDataError)."""
    if (len(mv) - start) % 2:
        raise CorruptDataError(f"{what} stream is truncated")
    return np.frombuffer(mv, "<u2", (len(mv) - start) // 2, start)


def encode_stream(symbols: np.ndarray, *, try_zstd: bool = False, coder: str = "auto",
                  wide_states: int = WIDE_STATES) -> bytes:
    """:func:`encode_stream_parts`, joined."""
    return b"".join(encode_stream_parts(symbols, try_zstd=try_zstd, coder=coder,
                                        wide_states=wide_states))


def encode_stream_parts(symbols: np.ndarray, *, try_zstd: bool = False, coder: str = "auto",
                        wide_states: int = WIDE_STATES, counts: np.ndarray | None = None
                        ) -> list:
    """Code a uint8 array as the smallest of STORED / CONSTANT / the entropy coder(s) (/ ZSTD).

    ``coder`` (one of :data:`CODERS`) selects the entropy coder: "auto" tries rANS, Huffman
    and QLC and keeps the smallest (the prefix coders are only built when a lower bound says
    they could beat rANS, which on large streams they rarely can); "rans", "huffman" or
    "qlc" uses that one. Whatever the coder, an entropy-coded stream must save
    :data:`MIN_GAIN` over STORED, a one-symbol stream is CONSTANT, and with ``try_zstd``
    zstd is kept if smaller. The result does not record the symbol count:
    :func:`decode_stream` is told it.

    ``counts``, if given, is the byte histogram of ``symbols`` (int64[256], exact: what
    :func:`rans.byte_histogram` returns), which the caller had counted already.

    A rANS stream of at least :data:`WIDE_MIN` symbols is RANS_WIDE with ``wide_states``
    states (one of ``rans.WIDE_STATES``: 32 by default, 64 where decoding speed comes
    first).

    Returns the stream as a list of bytes-like pieces to concatenate. A STORED stream's
    second piece is ``symbols``' own memory (not a copy): the caller joins the pieces before
    changing ``symbols``. A chunk's stored planes are so copied once, into the payload,
    rather than twice (fresh memory costs a page fault per 4 KiB here).
    """
    if coder not in CODERS:
        raise ValueError(f"unknown coder {coder!r}; expected one of {', '.join(CODERS)}")
    symbols = np.ascontiguousarray(symbols, dtype=np.uint8)
    n = symbols.size
    if n == 0:
        return [bytes([STORED])]
    budget = n * (1 - MIN_GAIN)
    if not try_zstd and n >= _SAMPLE_MIN and _looks_incompressible(symbols):
        return [bytes([STORED]), symbols.data]
    if counts is None:
        counts = kernels.code_histogram(symbols, scratch("pair_table", 65536, np.uint32))
    present = np.flatnonzero(counts)
    if present.size == 1:
        return [bytes([CONSTANT, int(present[0])])]
    best = None
    first, last = int(present[0]), int(present[-1])
    if coder in ("auto", "rans"):
        scale_bits, freq, words_bytes = rans_plan(counts)
        table_bytes = 2 * (last - first + 1)
        if n >= WIDE_MIN:
            words_bytes += 4 * (wide_states - rans.NSTATES)
        if words_bytes + table_bytes < budget:
            if n >= WIDE_MIN:
                words = rans.encode_symbols_wide(
                    symbols, freq, wide_states,
                    scratch("words", n + 2 * wide_states, np.uint16), scale_bits)
                head = _WIDE_HEAD.pack(RANS_WIDE, scale_bits, first, last,
                                       wide_states.bit_length() - 1, 0)
            else:
                words = rans.encode_symbols(symbols, freq,
                                            scratch("words", n + 2 * rans.NSTATES, np.uint16),
                                            scale_bits)
                head = _RANS_HEAD.pack(RANS, scale_bits, first, last)
            table = (bitlen_table if n >= WIDE_MIN else varint_table)(freq[first:last + 1])
            blob = b"".join((head, table, words.astype("<u2", copy=False).data))
            if len(blob) < budget:
                best = blob
    if coder == "auto":
        # Each prefix stream is at least its method byte, its smallest possible table and
        # a payload bound; build only the ones that could still win. The bound is the
        # unlimited-Huffman payload, and for QLC, once Huffman is built, Huffman's own
        # payload: QLC codes are prefix codes of at most 3 + 8 = 11 bits, and the Huffman
        # table is the best such code (huffman.DEFAULT_LIMIT = 11). This skips most of the
        # costly QLC area searches on large streams (they were a third of bf16 compress time).
        payload = (int(kernels.huffman_payload_bits(counts)) + 7) // 8
        prefix = [("huffman", 2 + (last - first + 2) // 2), ("qlc", 5 + present.size)]
    else:
        prefix = [(coder, 0)] if coder in ("huffman", "qlc") else []
        payload = 0
    for c, table_min in prefix:
        limit = budget if best is None else len(best)
        if coder == "auto" and 1 + table_min + payload >= limit:
            continue
        table = prefix_table(counts, c)
        size = prefix_stream_size(counts, table)
        if c == "huffman":  # and every QLC code is >= 3 bits long
            payload = max(payload, size - 1 - len(table.to_bytes()), (3 * n + 7) // 8)
        if size < budget and (best is None or size < len(best)):
            best = encode_prefix_stream(symbols, table)
    if try_zstd:
        import zstandard

        zblob = bytes([ZSTD]) + zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(symbols)
        if len(zblob) < budget and (best is None or len(zblob) < len(best)):
            best = zblob
    if best is None:
        return [bytes([STORED]), symbols.data]
    return [best]


def decode_stream(blob, count: int, out: np.ndarray | None = None) -> np.ndarray:
    """Decode a stream made by :func:`encode_stream` into ``count`` uint8 symbols.

    ``blob`` is bytes-like. ``out``, if given, is a writable uint8 array of ``count``
    entries and receives the symbols. Malformed input raises CorruptDataError; the only
    allocation is ``out`` itself (``count`` bytes, which the caller bounds).
    """
    mv = memoryview(blob).cast("B")
    if out is None:
        out = np.empty(count, np.uint8)
    if len(mv) == 0:
        raise CorruptDataError("empty stream")
    method = mv[0]
    if method == STORED:
        if len(mv) - 1 != count:
            raise CorruptDataError(f"stored stream holds {len(mv) - 1} bytes, expected {count}")
        out[:] = np.frombuffer(mv, np.uint8, count, 1)
    elif method == CONSTANT:
        if len(mv) != 2:
            raise CorruptDataError("constant stream must be 2 bytes")
        out[:] = mv[1]
    elif method == RANS or method == RANS_U16:
        if len(mv) < _RANS_HEAD.size:
            raise CorruptDataError("rANS stream header is truncated")
        _, scale_bits, first, last = _RANS_HEAD.unpack_from(mv)
        if last < first:
            raise CorruptDataError("rANS table symbol range is empty")
        freq = np.zeros(256, np.uint32)
        if method == RANS:
            table_end = read_varint_table(mv, _RANS_HEAD.size, freq[first:last + 1])
        else:
            table_end = _RANS_HEAD.size + 2 * (last - first + 1)
            if len(mv) < table_end:
                raise CorruptDataError("rANS stream is truncated")
            freq[first:last + 1] = np.frombuffer(mv, "<u2", last - first + 1, _RANS_HEAD.size)
        rans.decode_symbols(_word_stream(mv, table_end, "rANS"), count, freq, out, scale_bits)
    elif method == RANS_PAIRS:
        _decode_pairs(mv, count, out)
    elif method == RANS_WIDE:
        if len(mv) < _WIDE_HEAD.size:
            raise CorruptDataError("wide rANS stream header is truncated")
        _, scale_bits, first, last, log2_states, reserved = _WIDE_HEAD.unpack_from(mv)
        if last < first or reserved or (1 << log2_states) not in rans.WIDE_STATES:
            raise CorruptDataError("wide rANS stream header is invalid")
        freq = np.zeros(256, np.uint32)
        table_end = read_bitlen_table(mv, _WIDE_HEAD.size, freq[first:last + 1])
        rans.decode_symbols_wide(_word_stream(mv, table_end, "rANS"), count, freq,
                                 1 << log2_states, out, scale_bits)
    elif method == ZSTD:
        import zstandard

        frame = mv[1:]
        try:
            # Our frames always declare their size; check it before zstandard allocates it.
            declared = zstandard.frame_content_size(frame)
            if declared != count:
                raise CorruptDataError(f"zstd stream declares {declared} bytes, expected {count}")
            data = zstandard.ZstdDecompressor().decompress(frame, max_output_size=count)
        except zstandard.ZstdError as e:
            raise CorruptDataError(f"zstd stream is corrupt: {e}") from None
        if len(data) != count:
            raise CorruptDataError(f"zstd stream decodes to {len(data)} bytes, expected {count}")
        out[:] = np.frombuffer(data, np.uint8)
    elif method == HUFFMAN or method == QLC:
        decode_prefix_stream(mv, count, out)
    else:
        # A writer that uses a method this document does not define says so in the file
        # header's Flags, which readers check first (docs/FORMAT.md, "File_Header").
        raise CorruptDataError(f"unknown stream method {method}")
    return out


def _decode_pairs(mv: memoryview, count: int, out: np.ndarray) -> None:
    """Decode the RANS_PAIRS stream ``mv`` into ``out`` (count uint8 symbols)."""
    if len(mv) < _PAIRS_HEAD.size:
        raise CorruptDataError("rANS pair stream header is truncated")
    _, scale_bits, npairs, last, reserved = _PAIRS_HEAD.unpack_from(mv)
    if reserved:
        raise CorruptDataError("rANS pair stream header has a nonzero reserved byte")
    if count % 2 == 0 and last != 0:
        raise CorruptDataError("rANS pair stream has a last symbol for an even count")
    if len(mv) < _PAIRS_HEAD.size + 2 * npairs:  # each entry is at least 2 bytes
        raise CorruptDataError("rANS pair table is truncated")
    ids = np.empty(npairs, np.uint16)
    freq = np.empty(npairs, np.uint32)
    end = int(kernels.read_pair_table(np.frombuffer(mv, np.uint8), np.int64(_PAIRS_HEAD.size),
                                         ids, freq))
    if end < 0:
        raise CorruptDataError({-1: "rANS pair table is truncated",
                                -2: "rANS pair table has an over-long varint"}.get(
                                    end, "rANS pair table has a value past 65535"))
    words = _word_stream(mv, _past_pad(mv, end, "rANS pair"), "rANS pair")
    even = count - count % 2
    aligned = out.ctypes.data % 2 == 0  # a raw plane can start at an odd address
    target = out[:even] if aligned else scratch("pairs", even)
    rans.decode_sparse(words, ids, freq, target.view(np.uint16), scale_bits)
    if not aligned:
        out[:even] = target
    if count % 2:
        out[count - 1] = last


def frame_streams(blobs) -> bytes:
    """Stream blobs framed as a chunk payload: each ``u32 length`` + blob + a zero byte if
    the length is odd (docs/FORMAT.md, "Chunk payload")."""
    parts = []
    for blob in blobs:
        parts.extend(framed_pieces([blob]))
    return b"".join(parts)


def framed_pieces(pieces: list) -> list:
    """One stream, given as bytes-like pieces, framed as :func:`frame_streams` frames it."""
    length = sum(memoryview(p).nbytes for p in pieces)
    return [_U32.pack(length), *pieces] + ([b"\0"] if length % 2 else [])


#: encode_stream_parts' sampling threshold and step and WIDE_MIN, as the one-call kernel
#: (kernels.encode_streams) takes them.
_THRESHOLDS = np.array([_SAMPLE_MIN, _SAMPLE_STEP, WIDE_MIN], np.int64)
_THRESHOLDS.flags.writeable = False
#: Stands in for an absent packed plane or escapes stream. Writable like the arrays it
#: stands in for (it has no bytes to write): to numba a read-only array is a type of its own,
#: and the JIT kernel would be compiled once more for each mix.
_NO_BYTES = np.zeros(0, np.uint8)


def frame_pair_streams(codes: np.ndarray, raw: np.ndarray, nplanes: int,
                       last: np.ndarray | None, escapes: np.ndarray | None,
                       code_counts: np.ndarray | None, top_counts: np.ndarray | None, *,
                       coder: str, wide_states: int, head: bytes = b"") -> bytes | None:
    """``head`` and the framed streams of a coding-pair chunk, each coded as
    :func:`encode_stream_parts` codes it (no zstd), in one kernel call: the codes (uint8),
    the ``nplanes`` planes of ``raw`` (the last one replaced by ``last`` if given: a packed
    plane), then ``escapes`` (bytes) if not None. ``code_counts`` / ``top_counts``: the
    exact counts of the codes / of the unpacked last plane if known (int64[256]), else None.

    Returns None for a ``coder`` other than "auto" or "rans": the caller then codes the
    streams one by one with encode_stream_parts.
    """
    if coder not in ("auto", "rans"):
        return None
    codes = np.ascontiguousarray(codes, np.uint8)
    n = codes.size
    lengths = [n] * (1 + nplanes)
    if last is not None:
        lengths[-1] = last.size
    if escapes is not None and escapes.size:
        lengths.append(escapes.size)
    out = scratch("payload", len(head) + sum(lengths) + len(lengths) * kernels.STREAM_SLACK)
    out[:len(head)] = np.frombuffer(head, np.uint8)
    end = kernels.encode_streams(
        codes, np.ascontiguousarray(raw[:nplanes * n], np.uint8), np.int64(nplanes),
        _NO_BYTES if last is None else last, last is not None,
        _NO_BYTES if escapes is None else escapes,
        scratch("code_counts", 256, np.int64) if code_counts is None else code_counts,
        code_counts is not None,
        scratch("top_counts", 256, np.int64) if top_counts is None else top_counts,
        top_counts is not None, np.int64(wide_states), coder == "auto", _THRESHOLDS,
        MIN_GAIN, HIGH_SCALE_MIN_GAIN, scratch("pair_table", 65536, np.uint32),
        scratch("words", max(lengths) + 2 * max(wide_states, rans.NSTATES), np.uint16), out,
        np.int64(len(head)))
    return out[:end].tobytes()


def framed_streams(mv: memoryview, nstreams: int | None, pos: int = 0, *,
                   max_streams: int = 64):
    """Yield the stream blobs framed by :func:`frame_streams` in ``mv[pos:]``, checking
    every length and pad byte: exactly ``nstreams`` of them, or with None as many as there
    are up to the end (at most ``max_streams``). Nothing may follow the last one."""
    count = 0
    while (count < nstreams) if nstreams is not None else (pos < len(mv)):
        if nstreams is None and count >= max_streams:
            raise CorruptDataError("chunk payload has too many streams")
        if pos + 4 > len(mv):
            raise CorruptDataError("chunk payload is truncated (stream length)")
        (length,) = _U32.unpack_from(mv, pos)
        pos += 4
        if length > len(mv) - pos:
            raise CorruptDataError("chunk payload is truncated (stream body)")
        yield mv[pos:pos + length]
        count += 1
        pos += length
        if length & 1:
            if pos >= len(mv) or mv[pos] != 0:
                raise CorruptDataError("chunk payload has a bad padding byte")
            pos += 1
    if pos != len(mv):
        raise CorruptDataError("chunk payload has trailing bytes")


def entropy_bits(counts: np.ndarray) -> float:
    """Order-0 entropy of the counts times their total, in bits (no table)."""
    return float(kernels.entropy_bits(np.ascontiguousarray(counts, dtype=np.int64)))


# ---------------------------------------------------------------------------------------------
# Prefix-coded streams (methods HUFFMAN and QLC)


def output_array(out: np.ndarray | None, n: int) -> np.ndarray:
    """``out`` checked to be a contiguous uint8 array of ``n`` entries, or a new one."""
    if out is None:
        return np.empty(n, np.uint8)
    if out.size != n or out.dtype != np.uint8 or not out.flags.c_contiguous:
        raise ValueError("out must be a contiguous uint8 array of n entries")
    return out


def check_status(status: int, what: str) -> None:
    """Raise CorruptDataError for a nonzero decoder status."""
    if status != kernels.DECODE_OK:
        raise CorruptDataError(f"{what} stream {DECODE_STATUS.get(status, f'failed ({status})')}")


def prefix_table(counts, coder: str):
    """The table ``coder`` ("huffman" or "qlc") builds for a histogram (int64[256]).

    Huffman lengths are limited to ``huffman.DEFAULT_LIMIT`` (11) bits; QLC areas are the
    optimal ones. Needs at least one present symbol.
    """
    if coder == "huffman":
        return huffman.HuffmanTable.from_counts(counts)
    if coder == "qlc":
        return qlc.QlcTable.from_counts(counts)
    raise ValueError(f"unknown prefix coder {coder!r}")


def prefix_stream_size(counts, table) -> int:
    """Exact bytes :func:`encode_prefix_stream` writes for symbols with these counts."""
    if isinstance(table, huffman.HuffmanTable):
        bits = huffman.expected_bits(counts, table.lengths)
    else:
        bits = qlc.expected_bits(counts, table.area_bits)
    return 1 + len(table.to_bytes()) + (bits + 7) // 8


def encode_prefix_stream(symbols: np.ndarray, table) -> bytes:
    """A HUFFMAN or QLC stream (by the table's type): method byte, table, code bytes.

    Every symbol must have a code in the table (ValueError otherwise).
    """
    if isinstance(table, huffman.HuffmanTable):
        method, (data, _) = HUFFMAN, huffman.encode(symbols, table)
    elif isinstance(table, qlc.QlcTable):
        method, (data, _) = QLC, qlc.encode(symbols, table)
    else:
        raise TypeError("table must be a HuffmanTable or a QlcTable")
    return b"".join((bytes([method]), table.to_bytes(), data.data))


#: Longest QLC codeword: 3 prefix bits + 8 suffix bits.
_QLC_MAX_CODE_BITS = 11


def decode_prefix_stream(blob, count: int, out: np.ndarray | None = None) -> np.ndarray:
    """Decode a HUFFMAN or QLC stream (method byte included) into ``count`` uint8 symbols.

    The table is parsed and validated first (Huffman: lengths <= 15, Kraft sum <= 1, range
    starting and ending at coded symbols, zero pad nibble; QLC: area bits <= 8, distinct
    symbols that fit the areas); then the code bytes must hold exactly ``count`` valid codes
    and end in zero padding bits, with no byte after the last code. Any failure raises
    CorruptDataError. ``out``, if given, is a contiguous uint8 array of ``count`` entries.
    """
    mv = memoryview(blob).cast("B")
    if len(mv) == 0:
        raise CorruptDataError("empty stream")
    method = mv[0]
    if method == HUFFMAN:  # table parsed and built in one kernel: small streams are common
        buf = np.frombuffer(mv, np.uint8, len(mv) - 1, 1)
        buf.flags.writeable = False  # one kernel type whatever the buffer's owner
        status, used, T, table = kernels.huffman_read_table(buf)
        if status:
            raise CorruptDataError(f"Huffman table {huffman.TABLE_STATUS[status]}")
        data = buf[used:]
        if data.size > count * T // 8 + 1:
            raise CorruptDataError("Huffman stream is longer than n codes can be")
        out = output_array(out, count)
        check_status(kernels.huffman_decode(data, table, np.int64(T), out), "Huffman")
        return out
    if method != QLC:
        raise CorruptDataError(f"stream method {method} is not a prefix code")
    buf = np.frombuffer(mv, np.uint8, len(mv) - 1, 1)
    buf.flags.writeable = False  # one kernel type whatever the buffer's owner
    status, used, lut, order = kernels.qlc_read_table(buf)  # as for HUFFMAN, one kernel
    if status:
        raise CorruptDataError(qlc.TABLE_STATUS[status])
    data = buf[used:]
    if data.size > count * _QLC_MAX_CODE_BITS // 8 + 1:
        raise CorruptDataError("QLC stream is longer than n codes can be")
    out = output_array(out, count)
    check_status(kernels.qlc_decode(data, lut, order, out), "QLC")
    return out
