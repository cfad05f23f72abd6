"""How an input is cut for coding: segments (the header, each tensor, the bytes between) and
the chunks of each segment.

Compression (:mod:`ansz.api`) follows this plan chunk by chunk; ``ansz stats``
(:mod:`ansz.stats`) codes a sample of the same chunks to predict the result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from . import container
from .dtypes import BYTES, DTYPE_CODES, ELEMENT_BYTES, dtype_code_for


@dataclass
class PlannedSegment:
    name: str | None
    dtype: str | None
    shape: tuple | None
    start: int
    end: int | None  # None: until the end of the stream


#: Tensors smaller than this are not segments of their own: a run of them (same dtype, no
#: bytes between) is one unnamed segment, so it shares chunk records, index entries and code
#: tables instead of paying ~100 bytes and ~0.2 ms each (100 000 four-byte tensors took
#: 22 s and came out 20% larger than the input). Readers find every tensor from the
#: original's own header, so nothing is lost. 1 KiB leaves the corpus's ratios as they were
#: or better; 4 KiB made mpnet-bf16 6.5 kB larger (its 1.5 kB biases and norm weights
#: differ in scale, and one table for both costs more than two).
SMALL_TENSOR = 1 << 10


def plan_segments(layout, size: int | None) -> list[PlannedSegment]:
    """Segments covering the input: the header, each tensor, and the bytes between and after.

    ``layout`` is a safetensors or GGUF layout (:func:`ansz.formats.detect.detect`) or None
    for plain bytes; ``size`` is the input's length (None: a stream of unknown length). A
    tensor of at least :data:`SMALL_TENSOR` bytes is a named segment; smaller ones (and any
    tensor whose shape the index cannot describe) are grouped in runs of one dtype with
    ``name`` and ``shape`` None; zero-size tensors take no segment at all.
    """
    plan: list[PlannedSegment] = []
    pos = 0
    if layout is not None:
        plan.append(PlannedSegment(None, None, None, 0, layout.data_start))
        pos = layout.data_start
        spans = sorted(layout.tensors + getattr(layout, "subbyte_tensors", ()),
                       key=lambda s: (s.start, s.end, s.name))
        for t in spans:
            if t.start == t.end:
                continue
            if t.start > pos:
                plan.append(PlannedSegment(None, None, None, pos, t.start))
            if t.nbytes >= SMALL_TENSOR and container.describable(t.name, t.dtype, t.shape):
                plan.append(PlannedSegment(t.name, t.dtype, t.shape, t.start, t.end))
            elif (plan[-1].name is None and plan[-1].dtype == t.dtype
                  and plan[-1].end == t.start):
                plan[-1].end = t.end
            else:
                plan.append(PlannedSegment(None, t.dtype, None, t.start, t.end))
            pos = t.end
    if size is None or size > pos:
        plan.append(PlannedSegment(None, None, None, pos, size))
    return plan


def chunk_step(seg: PlannedSegment, chunk_size: int) -> tuple[int, int]:
    """``(dtype code, step)``: how a segment's data is coded, and the length of its chunks
    (``chunk_size`` rounded down to whole elements; the last chunk may be shorter)."""
    code = dtype_code_for(seg.dtype)
    width = ELEMENT_BYTES.get(seg.dtype, 1) if seg.dtype else 1
    return code, chunk_size - chunk_size % width


def chunk_code(code: int, length: int) -> int:
    """The dtype code a chunk of ``length`` bytes of a ``code`` segment is coded with: BYTES
    when the chunk is not whole elements (the short end of a truncated stream)."""
    return code if length % DTYPE_CODES[code].width == 0 else BYTES


def file_chunks(plan: list[PlannedSegment], chunk_size: int) -> Iterator[tuple[int, int, int, int]]:
    """``(segment, dtype code, start, length)`` of every chunk of a file whose plan has only
    known ends, in order: the chunks compression writes for it."""
    for si, seg in enumerate(plan):
        if seg.end is None:
            raise ValueError("file_chunks needs a plan with known segment ends")
        code, step = chunk_step(seg, chunk_size)
        for pos in range(seg.start, seg.end, step):
            n = min(step, seg.end - pos)
            yield si, chunk_code(code, n), pos, n
