"""Which format an input is: safetensors, GGUF, or plain bytes.

``source`` is anything with ``size`` (None for a stream), ``name`` and ``head(n)`` (the first
``n`` bytes, fewer only where the input ends).
"""

from __future__ import annotations

from ..errors import AnszError
from . import gguf
from .gguf import GGUFLayout
from .safetensors import SafetensorsLayout, looks_like_safetensors, parse_header

#: A header read from a stream (and a GGUF file's header) is buffered whole, in pieces; a
#: larger one falls back to bytes. (A safetensors header is capped lower, at 100 MB.)
STREAM_HEADER_LIMIT = 256 << 20


def detect(source) -> tuple[SafetensorsLayout | None, str | None]:
    """``(layout, None)`` for safetensors, ``(None, None)`` for other data, and
    ``(None, reason)`` for data that looks like safetensors (or is named so) but is invalid."""
    size = source.size
    known = size if size is not None else 2**64  # a stream: offsets are checked while reading
    head = source.head(9)
    if gguf.looks_like_gguf(head) or source.name.endswith(".gguf"):
        return _detect_gguf(source)
    named = source.name.endswith(".safetensors")
    if not looks_like_safetensors(head, known):
        if not named:
            return None, None
        try:  # say why the named file is not safetensors
            parse_header(head, known)
        except AnszError as e:
            return None, f"not a valid safetensors file: {e}"
        return None, "not a valid safetensors file"
    header_len = int.from_bytes(head[:8], "little")
    if size is None and header_len > STREAM_HEADER_LIMIT:
        return None, (f"safetensors header of {header_len} bytes is too large to buffer "
                      "from a stream")
    prefix = source.head(8 + header_len)
    try:
        return parse_header(prefix, known if size is not None else len(prefix) + 2**64), None
    except AnszError as e:
        return None, f"invalid safetensors header: {e}"


def _detect_gguf(source) -> tuple[GGUFLayout | None, str | None]:
    """``(layout, None)`` for a valid GGUF file, else ``(None, reason)`` (coded as bytes)."""
    try:
        return gguf.read_layout(source.head, source.size, STREAM_HEADER_LIMIT), None
    except AnszError as e:
        return None, f"invalid GGUF file: {e}"


def format_name(layout) -> str:
    """The index's ``format`` label of a layout :func:`detect` returned."""
    return "gguf" if isinstance(layout, gguf.GGUFLayout) else "safetensors"
