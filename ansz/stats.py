"""How compressible a file is, without compressing it: ``ansz stats``.

:func:`file_stats` predicts per tensor (order-0 entropy of the codes, the coding-pair bound,
each coder's size with one table per tensor, zstd-3 on a sample); :func:`coder_costs` is
the size each coder would give one histogram.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from . import container
from ._io import FileSource, open_regular
from .dtypes import layout_for
from .errors import FormatError
from .formats.detect import detect, format_name
from .pairs import FIELD_TOPS, best_field, field_code_counts, field_histogram, split_pairs
from .streams import (PREFIX_CODERS, entropy_bits, prefix_stream_size, prefix_table,
                      rans_plan, varint_table)

_STATS_PIECE = 4 << 20

#: Bytes of each tensor that ``file_stats`` compresses with zstd-3 for its comparison column.
STATS_SAMPLE = 1 << 20


@dataclass
class TensorStats:
    name: str
    dtype: str
    shape: tuple
    nbytes: int
    code_entropy: float  #: bits per element of the code byte (order 0)
    bound_bytes: float  #: coding-pair bound: elements * (code entropy + raw bits) / 8
    predicted_ratio: float  #: bound_bytes / nbytes
    #: predicted ratio per coder of the code stream ("rans", "huffman", "qlc"), one table for
    #: the whole tensor (ansz.coders.coder_costs), raw bits counted as stored
    coder_ratios: dict = field(default_factory=dict)
    zstd3_ratio: float = 1.0  #: zstd level 3 measured on a sample (the first STATS_SAMPLE bytes)


@dataclass
class FileStats:
    path: str
    format: str  #: "safetensors" or "bytes"
    file_size: int
    tensors: list[TensorStats]
    other_bytes: int  #: bytes outside whole-byte tensors (header, padding, sub-byte tensors)
    bound_bytes: float  #: tensor bounds + other bytes counted as stored
    predicted_ratio: float
    coder_ratios: dict = field(default_factory=dict)  #: per coder, over the whole file
    zstd3_ratio: float = 1.0  #: the tensors' zstd-3 sample ratios weighted by size


def file_stats(path) -> FileStats:
    """Predict how well a file compresses, without compressing it.

    For a safetensors file: per whole-byte tensor, the order-0 entropy of its code bytes
    (:mod:`ansz.pairs`), the coding-pair bound and the predicted ratio, the ratio each coder
    would reach with one table for the tensor (:func:`ansz.coders.coder_costs`: rANS,
    Huffman, QLC; raw bits stored; float tensors coded with the tensor's best field, as
    :func:`ansz.pairs.choose_field` picks per chunk), and zstd-3 measured on the tensor's first
    :data:`STATS_SAMPLE` bytes; all other bytes (header, padding, sub-byte tensors) count as
    stored. Any other file is reported as format
    "bytes" with no tensors. Raises FormatError for an ansz container (use :func:`read_info`)
    and for a file that looks like safetensors but whose header is invalid.
    """
    import zstandard

    zstd = zstandard.ZstdCompressor(level=3)
    path = os.fspath(path)
    with open_regular(path) as m:
        if m.read_at(0, len(container.MAGIC)) == container.MAGIC:
            raise FormatError(f"{path} is an ansz container; use info")
        layout, reason = detect(FileSource(m))
        if reason is not None:
            raise FormatError(reason)
        if layout is None:
            return FileStats(path, "bytes", m.size, [], m.size, float(m.size), 1.0)
        tensors = []
        for t in layout.tensors:
            pl = layout_for(t.dtype)
            fielded = pl.name in FIELD_TOPS
            counts = np.zeros(256, np.int64)
            hist = 0
            step = _STATS_PIECE - _STATS_PIECE % pl.width
            for pos in range(t.start, t.end, step):
                piece = m.read_scratch(pos, min(step, t.end - pos))
                codes, _ = split_pairs(piece, pl)
                counts += np.bincount(codes, minlength=256)
                if fielded:
                    hist += field_histogram(piece, pl)
            n = t.nbytes // pl.width
            entropy = entropy_bits(counts) / n if n else 0.0
            bound = n * (entropy + 8 * pl.raw_width) / 8
            raw_bytes = n * pl.raw_width
            if fielded and n:  # the coders see the codes of the tensor's best field
                fld, _ = best_field(hist, pl)
                counts, escaped = field_code_counts(hist, fld, pl)
                raw_bytes = n * (pl.width - 2) + n * fld.top_bits / 8
                if escaped.sum():
                    raw_bytes += (entropy_bits(escaped) + escaped.sum()) / 8
            costs = coder_costs(counts)
            ratios = {c: (costs[c] / 8 + raw_bytes) / t.nbytes if t.nbytes else 1.0
                      for c in ("rans", "huffman", "qlc")}
            sample = m.read_scratch(t.start, min(t.nbytes, STATS_SAMPLE))
            z3 = len(zstd.compress(sample)) / len(sample) if len(sample) else 1.0
            tensors.append(TensorStats(t.name, t.dtype, t.shape, t.nbytes, entropy, bound,
                                       bound / t.nbytes if t.nbytes else 1.0, ratios, z3))
    other = m.size - sum(t.nbytes for t in layout.tensors)
    bound = sum(t.bound_bytes for t in tensors) + other

    def total(ratio_of) -> float:  # other bytes count as stored
        size = sum(ratio_of(t) * t.nbytes for t in tensors) + other
        return size / m.size if m.size else 1.0

    return FileStats(path, format_name(layout), m.size, tensors, other, bound,
                     bound / m.size if m.size else 1.0,
                     {c: total(lambda t, c=c: t.coder_ratios[c]) for c in ("rans", "huffman", "qlc")},
                     total(lambda t: t.zstd3_ratio))


def coder_costs(counts) -> dict[str, float]:
    """Predicted size in bits of coding a stream with this histogram (int64[256]), per coder.

    * ``entropy``: the order-0 bound, sum(c * log2(N / c)); no table.
    * ``rans``: what :func:`ansz.codec.encode_stream` would write for the RANS method:
      method/scale/first/last bytes, varint frequencies for first..last, 8 final states
      (32 bytes) and the cross-entropy of the counts under the table
      :func:`ansz.codec.rans_plan` picks (12 or 14 bits). (A one-symbol stream is CONSTANT,
      2 bytes; the same 16 bits are given.)
    * ``huffman``: 1 method byte + serialized table (``HuffmanTable.to_bytes``) + the payload
      bits rounded up to bytes, with lengths limited to ``huffman.DEFAULT_LIMIT``.
    * ``qlc``: 1 method byte + serialized table (``QlcTable.to_bytes``) + payload bytes.

    Empty input costs 0 everywhere. Sizes never include the 4-byte chunk framing.
    """
    counts = np.ascontiguousarray(counts, dtype=np.int64)
    if counts.shape != (256,) or (counts < 0).any():
        raise ValueError("counts must be 256 non-negative integers")
    present = np.flatnonzero(counts)
    if present.size == 0:
        return {"entropy": 0.0, "rans": 0.0, "huffman": 0.0, "qlc": 0.0}
    out = {"entropy": entropy_bits(counts)}
    if present.size == 1:
        out["rans"] = 16.0
    else:
        _, freq, words_bytes = rans_plan(counts)
        table = 4 + len(varint_table(freq[present[0]:present[-1] + 1]))
        out["rans"] = 8.0 * (table + words_bytes)
    for coder in PREFIX_CODERS:
        out[coder] = 8.0 * prefix_stream_size(counts, prefix_table(counts, coder))
    return out


