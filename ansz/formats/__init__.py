"""Parsers for the model-file formats ansz understands (each returns a layout; none reads
tensor data); :mod:`ansz.formats.detect` tells which format an input is."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TensorSpan:
    """One tensor's bytes: ``file[start:end]``, offsets absolute in the file. ``dtype`` is the
    file's own type name (safetensors' ``"BF16"``, GGML's ``"Q4_K"``); ``shape`` is outermost
    first (numpy order; GGUF's ``ne`` reversed), in elements."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    start: int
    end: int

    @property
    def nbytes(self) -> int:
        return self.end - self.start
