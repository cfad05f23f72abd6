"""Today's writer with module state patched: the one place that reaches forms ansz no longer
writes (earlier writers) or paths it takes only on some inputs.

ansz keeps no switches for the forms it has stopped writing, and should not grow any; the
golden files (``make_golden.py``: the ``earlier_*`` containers and a few vectors) and the
modelling benchmark (``bench/modelling.py``: its steps before today's default) patch module
attributes for the duration of a ``with`` block instead, through :func:`patched_writer`
only. The containers written inside are valid: today's reader reads every form.

Not thread-safe against other compressions running at the same time in the same process;
the work inside the block may use threads.
"""

from __future__ import annotations

import contextlib
import struct
from typing import Iterator

import numpy as np

from ansz import chunks, container, dtypes, rans, streams

#: RANS_PAIRS streams (stream method 7) were written for streams of at least PAIR_MIN
#: symbols whose pairs take 2 to PAIR_MAX values.
PAIR_MIN, PAIR_MAX = 1 << 12, 1024


def _varint(v: int) -> bytes:
    out = bytearray()
    while v >= 128:
        out.append((v & 127) | 128)
        v >>= 7
    out.append(v)
    return bytes(out)


def pair_stream(symbols: np.ndarray) -> bytes | None:
    """``symbols`` (uint8) as a RANS_PAIRS stream, as level 1 wrote its code streams before
    wide streams (docs/FORMAT.md, "rANS pair stream"); None where pairs do not apply."""
    symbols = np.ascontiguousarray(symbols, np.uint8)
    n = symbols.size
    if n < PAIR_MIN:
        return None
    values = symbols[:n - n % 2].view("<u2")
    ids, ranks, counts = np.unique(values, return_inverse=True, return_counts=True)
    if not 2 <= ids.size <= PAIR_MAX:
        return None
    scale_bits, freq, _ = streams.rans_plan(counts)
    words = rans.encode_symbols(ranks.astype(np.uint16), freq, scale_bits=scale_bits)
    gaps = np.diff(ids.astype(np.int64), prepend=-1) - 1
    table = b"".join(_varint(int(g)) + _varint(int(f)) for g, f in zip(gaps, freq))
    table += b"\0" * (len(table) % 2)
    last = int(symbols[-1]) if n % 2 else 0
    return (struct.pack("<BBHBB", streams.RANS_PAIRS, scale_bits, ids.size, last, 0) + table
            + words.astype("<u2").tobytes())


def _pair_parts(today):
    """encode_stream_parts that codes every stream pairs apply to as a RANS_PAIRS stream."""

    def parts(symbols, *, try_zstd=False, coder="auto", **kw):
        if not try_zstd and coder in ("auto", "rans"):
            paired = pair_stream(symbols)
            if paired is not None and len(paired) < len(symbols):
                return [paired]
        return today(symbols, try_zstd=try_zstd, coder=coder, **kw)

    return parts


def _u16_table(freq) -> bytes:
    return np.asarray(freq).astype("<u2").tobytes()


def _raw_index(text: bytes, offset: int) -> tuple[int, bytes]:
    return container.INDEX, text


@contextlib.contextmanager
def patched_writer(*, u16_tables: bool = False, plain_codes: bool = False,
                   raw_index: bool = False, always_high_scale: bool = False,
                   pair_streams: bool = False) -> Iterator[None]:
    """While the block runs, the writer:

    * ``u16_tables``: writes rANS streams as stream method 2 (RANS_U16), frequency tables
      as u16, instead of method 6 with varint tables;
    * ``plain_codes``: gives float chunks the plain dtype codes 7-10 (no code field)
      instead of the fielded 11-14;
    * ``raw_index``: writes the index record uncoded (record type 2) instead of
      zstd-coded (type 3);
    * ``always_high_scale``: builds the 14-bit rANS table even when the 12-bit one is as
      good (``HIGH_SCALE_MIN_GAIN = -1``);
    * ``pair_streams``: codes every chunk stream of at least PAIR_MIN symbols with 2 to
      PAIR_MAX distinct pairs as a RANS_PAIRS stream (:func:`pair_stream`), as level 1
      coded its code streams before wide streams.

    The three stream patches also turn off the coding of a chunk's streams in one kernel
    call (``chunks.frame_pair_streams``), which knows none of them: every stream then goes
    through the patched functions. Everything is restored on exit, also after an exception.
    """
    saved = (streams.RANS, streams.varint_table, streams.HIGH_SCALE_MIN_GAIN,
             dict(dtypes._CODE_OF), container.index_record, chunks.encode_stream_parts,
             chunks.frame_pair_streams)
    try:
        if u16_tables or always_high_scale or pair_streams:
            chunks.frame_pair_streams = lambda *args, **kwargs: None
        if u16_tables:
            streams.RANS = streams.RANS_U16
            streams.varint_table = _u16_table
        if plain_codes:
            for code, d in dtypes.DTYPE_CODES.items():
                if not d.fielded and d.name in dtypes._CODE_OF:
                    dtypes._CODE_OF[d.name] = min(dtypes._CODE_OF[d.name], code)
        if raw_index:
            container.index_record = _raw_index
        if always_high_scale:
            streams.HIGH_SCALE_MIN_GAIN = -1.0
        if pair_streams:
            chunks.encode_stream_parts = _pair_parts(chunks.encode_stream_parts)
        yield
    finally:
        streams.RANS, streams.varint_table, streams.HIGH_SCALE_MIN_GAIN = saved[:3]
        dtypes._CODE_OF.clear()
        dtypes._CODE_OF.update(saved[3])
        container.index_record = saved[4]
        chunks.encode_stream_parts, chunks.frame_pair_streams = saved[5:]
