"""Lazy random access to the tensors of a compressed safetensors file, like ``safe_open``.

::

    with ansz.open("model.safetensors.ansz") as f:      # reads header, trailer and index only
        names = f.keys()                                # sorted, as safetensors' safe_open
        meta = f.metadata()                             # the original "__metadata__", or None
        w = f.get_tensor("model.embed_tokens.weight")   # decodes only this tensor's chunks

    tensors = ansz.load_file("model.safetensors.ansz")  # {name: numpy array}

How it works: the container's index (``docs/FORMAT.md``) lists every chunk with the original
bytes it holds. Opening decodes the first segment, which for a safetensors original is the
original file's 8-byte length and JSON header (its length checked against the 100 MB cap
before the rest is decoded), and parses it with :func:`ansz.formats.safetensors.parse_header`;
the header, not the index's descriptive name/dtype/shape fields, is the authority on tensors,
and the segments the index does name must agree with it (else
:class:`~ansz.errors.CorruptDataError`). ``get_tensor`` then reads and decodes exactly the
chunks that hold the tensor's bytes (each checked against its xxh3 checksum), in parallel
over chunks on a thread pool when there are several, straight into the returned array; small
tensors share chunks, which are decoded once and copied out.

Decisions:

- Only containers whose original was a safetensors file can be opened: any other container
  (format ``"bytes"``, including a ``.safetensors`` file whose header was invalid and so was
  stored as plain bytes) raises :class:`~ansz.errors.FormatError` on :func:`open`, as
  ``safe_open`` refuses a file that is not safetensors. Use :func:`ansz.decompress_file`.
- ``metadata()`` is the original ``__metadata__`` dict (str -> str), or ``None`` when the
  header has none (as ``safe_open``).
- Dtypes map to numpy, with ml_dtypes for BF16 and the 8-bit floats (F8_E4M3 -> float8_e4m3fn,
  F8_E5M2 -> float8_e5m2, F8_E8M0 -> float8_e8m0fnu, F8_E4M3FNUZ/F8_E5M2FNUZ -> the fnuz
  types). Sub-byte dtypes (F4, F6_E2M3, F6_E3M2) have no numpy type: ``get_tensor`` raises
  :class:`~ansz.errors.AnszError` for them (they are still listed by ``keys()``).
- ``framework="pt"`` returns torch tensors (on the CPU) sharing memory with the decoded numpy
  array; torch is imported only then, and is not a dependency of ansz.
- Arrays are freshly decoded, writable and owned by the caller; they stay valid after the file
  is closed.
"""

from __future__ import annotations

import os
from typing import Any

from . import _numba_env  # noqa: F401  (sets NUMBA_CACHE_DIR before numba is imported)
from ._io import PositionalFile
from ._pool import ordered_map, resolve_threads
from .chunks import decode_record
from .container import ContainerFile
from .errors import AnszError, CorruptDataError, FormatError

__all__ = ["open", "load_file", "AnszFile"]

_FRAMEWORKS = {"np": "np", "numpy": "np", "pt": "pt", "torch": "pt", "pytorch": "pt"}

#: safetensors dtype -> (module, attribute) of its numpy dtype (ml_dtypes for the small floats).
_NUMPY_DTYPES = {
    "BOOL": ("numpy", "bool_"), "U8": ("numpy", "uint8"), "I8": ("numpy", "int8"),
    "I16": ("numpy", "int16"), "U16": ("numpy", "uint16"), "I32": ("numpy", "int32"),
    "U32": ("numpy", "uint32"), "I64": ("numpy", "int64"), "U64": ("numpy", "uint64"),
    "F16": ("numpy", "float16"), "F32": ("numpy", "float32"), "F64": ("numpy", "float64"),
    "C64": ("numpy", "complex64"),
    "BF16": ("ml_dtypes", "bfloat16"), "F8_E4M3": ("ml_dtypes", "float8_e4m3fn"),
    "F8_E5M2": ("ml_dtypes", "float8_e5m2"), "F8_E8M0": ("ml_dtypes", "float8_e8m0fnu"),
    "F8_E4M3FNUZ": ("ml_dtypes", "float8_e4m3fnuz"),
    "F8_E5M2FNUZ": ("ml_dtypes", "float8_e5m2fnuz"),
}

#: safetensors dtype -> torch dtype attribute, for the dtypes ``torch.from_numpy`` cannot take:
#: the array is viewed as a same-width integer type and the tensor re-viewed as this dtype.
_TORCH_VIEWS = {
    "BF16": "bfloat16", "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2",
    "F8_E8M0": "float8_e8m0fnu", "F8_E4M3FNUZ": "float8_e4m3fnuz",
    "F8_E5M2FNUZ": "float8_e5m2fnuz", "U16": "uint16", "U32": "uint32", "U64": "uint64",
}


def open(path, framework: str = "np", *, threads: int | None = None) -> "AnszFile":  # noqa: A001
    """Open a ``.safetensors.ansz`` container for lazy, per-tensor reading.

    Reads and checks the container's header, trailer and index, and decodes the original
    safetensors header; no tensor data is decoded until :meth:`AnszFile.get_tensor`.
    ``framework`` is ``"np"`` (numpy arrays) or ``"pt"`` (torch tensors). ``threads``: as in
    :mod:`ansz.api` (``None`` or 0 = all cores), used to decode a tensor's chunks in parallel.
    Use as a context manager (or call :meth:`AnszFile.close`).
    """
    return AnszFile(path, framework, threads=threads)


def load_file(path, framework: str = "np", *, threads: int | None = None) -> dict[str, Any]:
    """Every tensor of a ``.safetensors.ansz`` container, ``{name: array}`` in file order.

    Like ``safetensors.numpy.load_file``. Decodes all tensor chunks on one thread pool (so many
    small tensors decode in parallel too). Raises AnszError for a sub-byte tensor, which numpy
    cannot represent.
    """
    with AnszFile(path, framework, threads=threads) as f:
        return f._get_many(f._names_in_file_order())


class AnszFile:
    """An open container (see :func:`open`); safe_open's ``keys``/``metadata``/``get_tensor``."""

    def __init__(self, path, framework: str = "np", *, threads: int | None = None):
        if framework not in _FRAMEWORKS:
            raise AnszError(f"unknown framework {framework!r}; use 'np' or 'pt'")
        self._framework = _FRAMEWORKS[framework]
        if self._framework == "pt":
            _torch()  # fail now, not at the first tensor
        self._nthreads = resolve_threads(threads)
        self.path = os.fspath(path)
        self._file = PositionalFile(self.path)
        self._chunk_starts: list[int] | None = None
        try:
            if not self._file.regular:
                raise AnszError(f"{self.path} is not a regular file")
            self._cf = ContainerFile(self._file.read_at, self._file.size,
                                     read_record=self._file.read_scratch)
            self._open_header()
        except BaseException:
            self._file.close()
            raise
        self._closed = False

    def _open_header(self) -> None:
        from .formats.safetensors import MAX_HEADER_SIZE, parse_header

        index = self._cf.index
        if index.format != "safetensors":
            raise FormatError(f"{self.path}: the original is not a safetensors file (format "
                              f"{index.format!r}); use ansz.decompress_file")
        segments = index.segments
        if not segments or segments[0].name is not None or segments[0].start != 0:
            raise CorruptDataError(f"{self.path}: index has no safetensors header segment")
        # The first chunk alone, and the header's length checked, before the rest: a hostile
        # index cannot make us decode a huge "header".
        end = segments[0].end
        first = self._decode([(0, min(end, index.chunks[0].decoded_length))])[0].tobytes()
        size = int.from_bytes(first[:8], "little")
        if end != 8 + size or size > MAX_HEADER_SIZE:
            raise CorruptDataError(f"{self.path}: stored safetensors header length {size} is "
                                   f"invalid (its segment has {end} bytes; at most "
                                   f"{MAX_HEADER_SIZE})")
        head = first + self._decode([(len(first), end)])[0].tobytes()
        try:
            layout = parse_header(head, index.original_size)
        except FormatError as e:
            raise CorruptDataError(f"{self.path}: stored safetensors header is invalid: "
                                   f"{e}") from None
        del head
        # The header is the authority on tensors; the index names only the larger ones
        # (small tensors share unnamed segments), and those must agree with it.
        spans = {t.name: t for t in layout.tensors + layout.subbyte_tensors}
        for seg in segments:
            t = spans.get(seg.name) if seg.name is not None else None
            if seg.name is not None and (t is None or (seg.dtype, seg.shape, seg.start, seg.end)
                                         != (t.dtype, tuple(t.shape), t.start, t.end)):
                raise CorruptDataError(f"{self.path}: index disagrees with the safetensors "
                                       f"header on tensor {_quote(seg.name)}")
        self._tensors: dict[str, tuple[str, tuple[int, ...], int, int]] = {
            t.name: (t.dtype, tuple(t.shape), t.start, t.end) for t in spans.values()}
        self._metadata = None if layout.metadata is None else dict(layout.metadata)

    # -- safe_open's API ---------------------------------------------------------------------

    def keys(self) -> list[str]:
        """Tensor names, sorted (as ``safe_open``); sub-byte tensors included."""
        self._check_open()
        return sorted(self._tensors)

    def metadata(self) -> dict[str, str] | None:
        """The original header's ``__metadata__`` (a new dict each call), or None if absent."""
        self._check_open()
        return None if self._metadata is None else dict(self._metadata)

    def get_tensor(self, name: str) -> Any:
        """Decode one tensor: only its chunks are read and decoded (and checksum-checked)."""
        self._check_open()
        return self._get_many([name])[name]

    def dtype(self, name: str) -> str:
        """The tensor's safetensors dtype name (``"BF16"``, ``"F4"``...), without decoding it."""
        self._check_open()
        return self._entry(name)[0]

    def shape(self, name: str) -> tuple[int, ...]:
        """The tensor's shape, without decoding it."""
        self._check_open()
        return self._entry(name)[1]

    def __contains__(self, name: object) -> bool:
        return name in self._tensors

    def __len__(self) -> int:
        return len(self._tensors)

    def close(self) -> None:
        if not getattr(self, "_closed", True):
            self._closed = True
            self._file.close()  # closes the descriptor once reads in progress end

    def __enter__(self) -> "AnszFile":
        self._check_open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self._tensors)} tensors"
        return f"<ansz.AnszFile {self.path!r} ({state})>"

    # -- internals ---------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise AnszError(f"{self.path}: file is closed")

    def _entry(self, name: str) -> tuple[str, tuple[int, ...], int, int]:
        entry = self._tensors.get(name) if isinstance(name, str) else None
        if entry is None:
            raise AnszError(f"{self.path}: no tensor named {_quote(name)}")
        return entry

    def _names_in_file_order(self) -> list[str]:
        return sorted(self._tensors, key=lambda n: (self._tensors[n][2], n))

    def _get_many(self, names: list[str]) -> dict[str, Any]:
        entries = [self._entry(n) for n in names]
        dtypes = [_numpy_dtype(n, dtype) for n, (dtype, _, _, _) in zip(names, entries)]
        raw = self._decode([(start, end) for _, _, start, end in entries])
        out = {}
        for name, (dtype, shape, _, _), npdtype, buf in zip(names, entries, dtypes, raw):
            try:
                arr = buf.view(npdtype).reshape(shape)
            except ValueError:  # more dimensions or elements than numpy allows
                raise AnszError(f"tensor {_quote(name)} has shape {_quote(list(shape))} "
                                f"({len(shape)} dimensions), which numpy cannot represent"
                                ) from None
            out[name] = _to_torch(arr, dtype) if self._framework == "pt" else arr
        return out

    def _decode(self, ranges: list[tuple[int, int]]) -> list:
        """The original bytes ``[start, end)`` of each range (uint8 arrays), decoding each
        chunk they touch once, on one ordered thread pool. A chunk wholly inside one range is
        decoded straight into place; one shared with others (a run of small tensors) is
        decoded once and copied to each."""
        import bisect

        import numpy as np

        chunks = self._cf.index.chunks
        if self._chunk_starts is None:
            self._chunk_starts = [c.original_offset for c in chunks]
        bufs = [np.empty(end - start, np.uint8) for start, end in ranges]
        users: dict[int, list[int]] = {}  # chunk -> the ranges it overlaps
        for k, (start, end) in enumerate(ranges):
            i = bisect.bisect_right(self._chunk_starts, start) - 1
            while start < end and i < len(chunks) and chunks[i].original_offset < end:
                if i >= 0:
                    users.setdefault(i, []).append(k)
                i += 1

        def work(i: int) -> None:
            lo = chunks[i].original_offset
            hi = lo + chunks[i].decoded_length
            ks = users[i]
            start, end = ranges[ks[0]]
            if len(ks) == 1 and start <= lo and hi <= end:
                decode_record(*self._cf.chunk(i), bufs[ks[0]][lo - start:hi - start])
                return
            data = decode_record(*self._cf.chunk(i))
            for k in ks:
                start, end = ranges[k]
                a, b = max(start, lo), min(end, hi)
                bufs[k][a - start:b - start] = data[a - lo:b - lo]

        threads = min(self._nthreads, len(users))
        for _ in ordered_map(work, sorted(users), threads):
            pass
        return bufs


def _numpy_dtype(name: str, dtype: str):
    import importlib

    import numpy as np

    where = _NUMPY_DTYPES.get(dtype)
    if where is None:
        raise AnszError(f"tensor {_quote(name)} has dtype {dtype}, which numpy cannot "
                        "represent (sub-byte types are packed); decompress the file and read "
                        "it with a library that supports it")
    module, attr = where
    t = np.dtype(getattr(importlib.import_module(module), attr))
    return t.newbyteorder("<") if t.itemsize > 1 and module == "numpy" else t


def _torch():
    try:
        import torch
    except ImportError:
        raise AnszError("framework 'pt' needs PyTorch, which is not installed "
                        "(pip install torch), or use framework='np'") from None
    return torch


def _to_torch(arr, dtype: str):
    import numpy as np

    torch = _torch()
    arr = arr.astype(arr.dtype.newbyteorder("="), copy=False)  # torch wants native order
    view = _TORCH_VIEWS.get(dtype)
    if view is None:
        return torch.from_numpy(arr)
    target = getattr(torch, view, None)
    if target is None:
        raise AnszError(f"this PyTorch ({torch.__version__}) has no {view} dtype for {dtype}")
    signed = {1: np.int8, 2: np.int16, 4: np.int32, 8: np.int64}[arr.dtype.itemsize]
    return torch.from_numpy(arr.view(signed)).view(target)


def _quote(name: Any, limit: int = 80) -> str:
    text = repr(name)
    return text if len(text) <= limit else text[:limit - 4] + "...'"

