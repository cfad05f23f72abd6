"""Lazy random access to the tensors of a compressed model file, like safetensors' ``safe_open``.

::

    with ansz.open("model.safetensors.ansz") as f:      # reads header, trailer and index only
        names = f.keys()                                # sorted, as safetensors' safe_open
        meta = f.metadata()                             # the original "__metadata__", or None
        w = f.get_tensor("model.embed_tokens.weight")   # decodes only this tensor's chunks
        rows = f.get_slice("lm_head.weight")[0:128]     # ... or only the chunks of these rows
        some = f.get_tensors(["a", "b"])                # several, on one thread pool

    tensors = ansz.load_file("model.safetensors.ansz")  # {name: numpy array}
    state = ansz.load_model_dir("path/to/model", framework="pt")  # sharded, with its index

How it works: the container's index (``docs/FORMAT.md``) lists every chunk with the original
bytes it holds. Opening decodes the first segment, which for a safetensors original is the
original file's 8-byte length and JSON header (its length checked against the 100 MB cap
before the rest is decoded), and parses it with :func:`ansz.formats.safetensors.parse_header`;
for a GGUF original it is the GGUF header, decoded in growing prefixes only as far as
:func:`ansz.formats.gguf.read_layout` needs (at most 256 MiB, as the writer). The header,
not the index's descriptive name/dtype/shape fields, is the authority on tensors, and the
segments the index does name must agree with it (else :class:`~ansz.errors.CorruptDataError`).
``get_tensor`` then reads and decodes exactly the chunks that hold the tensor's bytes (each
checked against its xxh3 checksum), in parallel over chunks on a thread pool when there are
several, straight into the returned array; small tensors share chunks, which are decoded
once and copied out.

Decisions:

- Containers whose original was a safetensors or a GGUF file can be opened: any other
  container (format ``"bytes"``, including a ``.safetensors`` file whose header was invalid
  and so was stored as plain bytes) raises :class:`~ansz.errors.FormatError` on
  :func:`open`, as ``safe_open`` refuses a file that is not safetensors. Use
  :func:`ansz.decompress_file`. A file that is not a container at all is refused with its
  name in the message.
- safetensors: ``metadata()`` is the original ``__metadata__`` dict (str -> str), or
  ``None`` when the header has none (as ``safe_open``). ``dtype()`` is the safetensors
  dtype name.
- GGUF: ``metadata()`` is the file's key-value pairs (:func:`ansz.formats.gguf.read_metadata`:
  str -> int, float, bool, str, a list of str, or a read-only numpy array for an array of
  numbers), parsed at the first call. ``dtype()`` is the GGML type name (``"Q4_K"``,
  ``"F16"``...), ``shape()`` the tensor's shape in numpy order (GGUF's ``ne`` reversed).
  F32, F16, BF16, F64 and I8-I64 tensors are arrays of that type and shape; a
  block-quantized tensor is its raw block bytes, a uint8 array of shape ``shape[:-1] +
  (shape[-1] // block_elements * block_bytes,)`` (the gguf package's ``GGUFReader``
  convention: one row of blocks per row).
- Dtypes map to numpy, with ml_dtypes for BF16 and the 8-bit floats (F8_E4M3 -> float8_e4m3fn,
  F8_E5M2 -> float8_e5m2, F8_E8M0 -> float8_e8m0fnu, F8_E4M3FNUZ/F8_E5M2FNUZ -> the fnuz
  types). Sub-byte dtypes (F4, F6_E2M3, F6_E3M2) have no numpy type: ``get_tensor`` raises
  :class:`~ansz.errors.AnszError` for them (they are still listed by ``keys()``).
- ``framework="pt"`` returns torch tensors (on the CPU) sharing memory with the decoded numpy
  array; torch is imported only then, and is not a dependency of ansz.
- Arrays are freshly decoded, writable and owned by the caller; they stay valid after the file
  is closed.
- :meth:`AnszFile.close` may be called while other threads read: their reads end with an
  AnszError ("file is closed") or complete.

A container coded against a base is read with that base (``base=``): :class:`BaseFile`
opens it (a model file, or a container of one, read here by ranges: reading a base can need
this module itself), :func:`open_base_for` checks it against what the container records, and
:func:`base_in_directory` picks a base from a model directory; the chunk kinds that use it
are :mod:`ansz.base`'s.
"""

from __future__ import annotations

import bisect
import builtins
import hashlib
import json
import operator
import os
from typing import Any, Iterable, Iterator

from . import _numba_env  # noqa: F401  (sets NUMBA_CACHE_DIR before numba is imported)
from ._io import PositionalFile
from ._pool import ordered_map, resolve_threads
from .chunks import decode_record
from .container import FLAG_REPEATS, MAGIC, MAX_BASE_NAME, ContainerFile
from .errors import (AnszError, AnszIndexError, BaseMismatchError, CorruptDataError,
                     FormatError)
from .remote import is_remote, local_path

__all__ = ["open", "load_file", "load", "load_model_dir", "AnszFile", "TensorSlice"]

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

#: A strided slice of at most this many rows decodes only the chunks of those rows; a longer
#: one (or a slice of step 1 or -1) decodes the rows' covering range.
_MAX_ROW_RANGES = 4096

#: A covering range of rows is decoded at most this many bytes at a time (whole rows; at
#: least one row), each block indexed into the result before the next is decoded.
_SLICE_BLOCK = 32 << 20

#: A container opened by URL fetches the chunk records of a read in batches of at most this
#: many bytes (one round trip each): memory holds one batch beside the decoded arrays.
_PREFETCH_BYTES = 64 << 20

#: The largest ``*.safetensors.index.json`` :func:`load_model_dir` reads (a real one for a
#: model of hundreds of billions of parameters is well under 10 MB).
MAX_MODEL_INDEX = 100_000_000


def open(path, framework: str = "np", *, threads: int | None = None,  # noqa: A001
         base=None) -> "AnszFile":
    """Open a ``.safetensors.ansz`` or ``.gguf.ansz`` container for lazy, per-tensor reading.

    ``path`` may be a URL (``s3://``, ``hf://``, ``https://``..., through fsspec: the
    ``remote`` extra): opening then fetches the file's first and last 64 KiB in one round
    trip (and the index, if it is larger, in one more), and each read fetches only the chunk
    records it decodes, neighbours coalesced, in one round trip per 64 MiB; nothing is kept
    between reads (:meth:`AnszFile.io_counters` counts the requests).

    Reads and checks the container's header, trailer and index, and decodes the original's
    header; no tensor data is decoded until :meth:`AnszFile.get_tensor` (or ``get_slice``,
    ``get_tensors``). ``framework`` is ``"np"`` (numpy arrays) or ``"pt"`` (torch tensors).
    ``threads``: as in :mod:`ansz.api` (``None`` or 0 = all cores), used to decode a
    tensor's chunks in parallel. Use as a context manager (or call :meth:`AnszFile.close`).
    ``base``: the base file (a path) of a container compressed against one; it is checked
    at open and read, as the container, where the tensors asked for need it.
    """
    return AnszFile(path, framework, threads=threads, base=base)


def load_file(path, framework: str = "np", *, threads: int | None = None,
              base=None) -> dict[str, Any]:
    """Every tensor of a container, ``{name: array}`` in file order.

    Like ``safetensors.numpy.load_file`` (``safetensors.torch.load_file`` with
    ``framework="pt"``: the dict is a state dict ``torch.nn.Module.load_state_dict``
    takes). Decodes all tensor chunks on one thread pool (so many small tensors decode in
    parallel too). Raises AnszError for a sub-byte tensor, which numpy cannot represent.
    ``base``: the base file of a container compressed against one, as for :func:`open`.
    """
    with AnszFile(path, framework, threads=threads, base=base) as f:
        return f.get_tensors()


def load(data, framework: str = "np", *, threads: int | None = None) -> dict[str, Any]:
    """Every tensor of a container held in memory (``bytes``, ``bytearray`` or a buffer),
    as :func:`load_file`; like ``safetensors.numpy.load``."""
    f = AnszFile.__new__(AnszFile)
    f._setup(_MemoryFile(data), "<bytes>", framework, threads)
    with f:
        return f.get_tensors()


class AnszFile:
    """An open container (see :func:`open`): safe_open's ``keys``, ``offset_keys``,
    ``metadata``, ``get_tensor``, ``get_tensors`` and ``get_slice``, plus ``dtype``,
    ``shape``, ``len(f)``, ``name in f`` and ``for name in f`` (names sorted, as ``keys``)."""

    def __init__(self, path, framework: str = "np", *, threads: int | None = None, base=None):
        path = local_path(os.fspath(path))
        if is_remote(path):
            from .remote import RemoteFile

            file = RemoteFile(path)
            try:
                file.hold_ends()  # header, trailer and index: one round trip (two if large)
            except BaseException:
                file.close()
                raise
        else:
            file = PositionalFile(path)
        self._setup(file, path, framework, threads, base)

    def _setup(self, file, path: str, framework: str, threads: int | None, base=None) -> None:
        self._closed = True
        self._file = file
        self._base = None
        self.path = path
        try:
            if framework not in _FRAMEWORKS:
                raise AnszError(f"unknown framework {framework!r}; use 'np' or 'pt'")
            self._framework = _FRAMEWORKS[framework]
            if self._framework == "pt":
                _torch()  # fail now, not at the first tensor
            self._nthreads = resolve_threads(threads)
            self._chunk_starts: list[int] | None = None
            if not file.regular:
                raise AnszError(f"{path} is not a regular file")
            try:
                self._cf = ContainerFile(file.read_at, file.size, read_record=file.read_scratch)
            except AnszError as e:
                raise type(e)(f"{path}: {e}{self._what_it_is()}") from None
            self._decode_chunk = self._chunk_decoder(base)
            self._open_header()
        except BaseException:
            if self._base is not None:
                self._base.close()
            file.close()
            raise
        self._closed = False

    def _chunk_decoder(self, base):
        """``decode(i, out=None)`` of this container's chunks; opens and checks ``base``
        for a container compressed against one (AnszError if it is missing or wrong)."""
        from .base import chunk_decoder

        if self._cf.index.base is None and base is None:
            if self._cf.flags & FLAG_REPEATS:  # COPY_CHUNK records
                return chunk_decoder(self._cf, None, self.path)

            def decode(i: int, out=None):
                return decode_record(*self._cf.chunk(i), out)

            return decode

        self._base = open_base_for(self._cf, base, self.path)
        return chunk_decoder(self._cf, self._base, self.path)

    def _what_it_is(self) -> str:
        """For a file that is not a container: what it looks like, if anything."""
        from .formats import gguf
        from .formats.safetensors import looks_like_safetensors

        try:
            prefix = bytes(self._file.read_at(0, 9))
        except (OSError, AnszError):
            return ""
        if prefix[:len(MAGIC)] == MAGIC[:len(prefix)]:
            return ""
        if looks_like_safetensors(prefix, self._file.size):
            return "; it looks like a plain safetensors file (open it with safetensors.safe_open)"
        if gguf.looks_like_gguf(prefix):
            return "; it looks like a plain GGUF file"
        return ""

    def _open_header(self) -> None:
        index = self._cf.index
        self.format = index.format  #: the original's format: "safetensors" or "gguf"
        if index.format not in ("safetensors", "gguf"):
            raise FormatError(f"{self.path}: the original is neither a safetensors nor a GGUF "
                              f"file (format {index.format!r}); use ansz.decompress_file")
        segments = index.segments
        if not segments or segments[0].name is not None or segments[0].start != 0:
            raise CorruptDataError(f"{self.path}: index has no {index.format} header segment")
        if index.format == "safetensors":
            spans = self._open_safetensors(segments[0].end)
        else:
            spans = self._open_gguf(segments[0].end)
        # The header is the authority on tensors; the index names only the larger ones
        # (small tensors share unnamed segments), and those must agree with it.
        by_name = {t.name: t for t in spans}
        for seg in segments:
            t = by_name.get(seg.name) if seg.name is not None else None
            if seg.name is not None and (t is None or (seg.dtype, seg.shape, seg.start, seg.end)
                                         != (t.dtype, tuple(t.shape), t.start, t.end)):
                raise CorruptDataError(f"{self.path}: index disagrees with the {index.format} "
                                       f"header on tensor {_quote(seg.name)}")
        self._tensors: dict[str, tuple[str, tuple[int, ...], int, int]] = {
            t.name: (t.dtype, tuple(t.shape), t.start, t.end) for t in by_name.values()}

    def _open_safetensors(self, end: int) -> list:
        from .formats.safetensors import MAX_HEADER_SIZE, parse_header

        index = self._cf.index
        # The first chunk alone, and the header's length checked, before the rest: a hostile
        # index cannot make us decode a huge "header".
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
        self._metadata = None if layout.metadata is None else dict(layout.metadata)
        return list(layout.tensors + layout.subbyte_tensors)

    def _open_gguf(self, end: int) -> list:
        from .formats import gguf

        layout = self._gguf_header(gguf.read_layout)
        if layout.data_start != end:
            raise CorruptDataError(f"{self.path}: stored GGUF header ends at byte "
                                   f"{layout.data_start}, its segment at {end}")
        self._metadata = None  # parsed at the first metadata() call
        return list(layout.tensors)

    def _gguf_header(self, read):
        """``read(head, size, limit)`` of :mod:`ansz.formats.gguf` on the stored header:
        decodes growing prefixes, never past the header segment nor the writer's limit."""
        from .formats.detect import STREAM_HEADER_LIMIT

        index = self._cf.index
        end = index.segments[0].end

        def head(n: int):
            return self._decode([(0, min(n, end))])[0]

        try:
            return read(head, index.original_size, STREAM_HEADER_LIMIT)
        except FormatError as e:
            raise CorruptDataError(f"{self.path}: stored GGUF header is invalid: {e}") from None

    # -- safe_open's API ---------------------------------------------------------------------

    def keys(self) -> list[str]:
        """Tensor names, sorted (as ``safe_open``); sub-byte tensors included."""
        self._check_open()
        return sorted(self._tensors)

    def offset_keys(self) -> list[str]:
        """Tensor names in the order of their data in the file (as ``safe_open``)."""
        self._check_open()
        return self._names_in_file_order()

    def metadata(self) -> dict[str, Any] | None:
        """A new dict each call. safetensors: the original header's ``__metadata__`` (str ->
        str), or None if absent. GGUF: the key-value pairs (see the module docstring)."""
        self._check_open()
        if self.format == "gguf":
            if self._metadata is None:
                from .formats import gguf

                self._metadata = self._gguf_header(gguf.read_metadata)
            return {k: list(v) if isinstance(v, list) else v for k, v in self._metadata.items()}
        return None if self._metadata is None else dict(self._metadata)

    def get_tensor(self, name: str) -> Any:
        """Decode one tensor: only its chunks are read and decoded (and checksum-checked)."""
        self._check_open()
        return self._get_many([name])[name]

    def get_tensors(self, names: Iterable[str] | None = None) -> dict[str, Any]:
        """``{name: array}`` for ``names`` (in that order), or every tensor in file order.

        The chunks of all of them are decoded on one thread pool, each chunk once.
        """
        self._check_open()
        if names is None:
            names = self._names_in_file_order()
        elif isinstance(names, str):
            raise AnszError("get_tensors takes a list of names, not one name (use get_tensor)")
        names = list(names)
        for name in names:
            self._entry(name)
        return self._get_many(list(dict.fromkeys(names)))

    def get_slice(self, name: str) -> "TensorSlice":
        """A lazy view of one tensor: index it (``sl[0:10, :]``) to decode only the chunks
        of the rows asked for; ``get_shape()`` and ``get_dtype()`` decode nothing."""
        self._check_open()
        self._entry(name)
        return TensorSlice(self, name)

    def dtype(self, name: str) -> str:
        """The tensor's dtype name (safetensors' ``"BF16"``, GGML's ``"Q4_K"``), without
        decoding it."""
        self._check_open()
        return self._entry(name)[0]

    def shape(self, name: str) -> tuple[int, ...]:
        """The tensor's shape, without decoding it."""
        self._check_open()
        return self._entry(name)[1]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._tensors

    def __len__(self) -> int:
        return len(self._tensors)

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def close(self) -> None:
        if not getattr(self, "_closed", True):
            self._closed = True
            self._file.close()  # closes the descriptor once reads in progress end
            if self._base is not None:
                self._base.close()

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

    def _array_layout(self, name: str):
        """``(numpy dtype, shape)`` of the array a tensor decodes to: a GGUF block-quantized
        tensor is uint8, one row of blocks per row."""
        import numpy as np

        dtype, shape, start, end = self._entry(name)
        if self.format == "gguf":
            from .dtypes import GGML_BLOCKS

            elements, size = GGML_BLOCKS[dtype]
            if elements > 1:
                rows = shape[:-1] if shape else ()
                return np.dtype(np.uint8), (*rows, (shape[-1] if shape else 1) // elements * size)
        return _numpy_dtype(name, dtype), shape

    def _names_in_file_order(self) -> list[str]:
        return sorted(self._tensors, key=lambda n: (self._tensors[n][2], n))

    def _get_many(self, names: list[str]) -> dict[str, Any]:
        entries = [self._entry(n) for n in names]
        layouts = [self._array_layout(n) for n in names]
        raw = self._decode([(start, end) for _, _, start, end in entries])
        out = {}
        for name, (dtype, _, _, _), (npdtype, shape), buf in zip(names, entries, layouts, raw):
            out[name] = self._wrap(buf.view(npdtype), name, shape, dtype)
        return out

    def _wrap(self, flat, name: str, shape: tuple[int, ...], dtype: str):
        """A decoded flat array reshaped, in the file's framework."""
        try:
            arr = flat.reshape(shape)
        except ValueError:  # more dimensions or elements than numpy allows
            raise AnszError(f"tensor {_quote(name)} has shape {_quote(list(shape))} "
                            f"({len(shape)} dimensions), which numpy cannot represent"
                            ) from None
        return _to_torch(arr, dtype) if self._framework == "pt" else arr

    def _slice(self, name: str, key) -> Any:
        """``tensor[key]`` for a basic numpy index ``key``, decoding only the rows it touches;
        a long range of rows is decoded a block of at most :data:`_SLICE_BLOCK` bytes at a
        time, each block indexed into the result, so memory is the result plus one block."""
        import numpy as np

        self._check_open()
        dtype, _, start, _ = self._entry(name)
        npdtype, shape = self._array_layout(name)
        key, out_shape = _check_key(key, name, shape)
        row_bytes = npdtype.itemsize * _product(shape[1:])

        def rows_block(ranges: list[tuple[int, int]]):
            bufs = self._decode([(start + a * row_bytes, start + b * row_bytes) for a, b in ranges])
            flat = bufs[0] if len(bufs) == 1 else np.concatenate([np.empty(0, np.uint8), *bufs])
            return flat.view(npdtype).reshape((sum(b - a for a, b in ranges), *shape[1:]))

        if not shape:  # a 0-d tensor: its one element
            block = self._decode([(start, start + npdtype.itemsize)])[0].view(npdtype).reshape(())
            out = block[key]
        else:
            pos, rows, axis = _first_axis(key, shape)
            if pos is not None and not isinstance(key[pos], slice):  # one row
                out = rows_block([(rows[0], rows[0] + 1)])[_replace(key, pos, 0)]
            elif abs(rows.step) > 1 and len(rows) <= _MAX_ROW_RANGES:  # single rows
                block = rows_block([(i, i + 1) for i in rows])
                out = block[_replace(key, pos, slice(None))]
            else:  # covering ranges of rows, a block at a time
                out = np.empty(out_shape, npdtype)
                per = max(1, _SLICE_BLOCK // max(1, row_bytes * abs(rows.step)))
                for b in range(0, len(rows), per):
                    part = rows[b:b + per]
                    lo, hi = min(part[0], part[-1]), max(part[0], part[-1]) + 1
                    stop = part.start - lo + part.step * len(part)
                    within = slice(part.start - lo, stop if stop >= 0 else None, part.step)
                    where = (slice(None),) * axis + (slice(b, b + len(part)),)
                    out[where] = rows_block([(lo, hi)])[_replace(key, pos, within)]
        out = np.asarray(out)
        if out.base is not None:
            out = out.copy()  # do not keep the decoded rows alive for a part of them
        return _to_torch(out, dtype) if self._framework == "pt" else out

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
                self._decode_chunk(i, bufs[ks[0]][lo - start:hi - start])
                return
            data = self._decode_chunk(i)
            for k in ks:
                start, end = ranges[k]
                a, b = max(start, lo), min(end, hi)
                bufs[k][a - start:b - start] = data[a - lo:b - lo]

        prefetch = getattr(self._file, "prefetch", None)
        order = sorted(users)
        if prefetch is None:
            batches = [order]
        else:  # a file over a network: each batch's records fetched at once, then decoded
            batches, size = [[]], 0
            for i in order:
                n = chunks[i].end - chunks[i].offset
                if batches[-1] and size + n > _PREFETCH_BYTES:
                    batches.append([])
                    size = 0
                batches[-1].append(i)
                size += n
        for batch in batches:
            threads = min(self._nthreads, len(batch))
            if prefetch is None:
                for _ in ordered_map(work, batch, threads):
                    pass
                continue
            with prefetch([(chunks[i].offset, chunks[i].end) for i in batch]):
                for _ in ordered_map(work, batch, threads):
                    pass
        return bufs

    def io_counters(self) -> dict[str, int] | None:
        """For a container opened by URL: ``{"requests", "round_trips", "bytes"}`` asked of
        the store so far, opening included (see :class:`ansz.remote.RemoteFile`); None for a
        local file."""
        counters = getattr(self._file, "counters", None)
        return None if counters is None else counters()


class TensorSlice:
    """One tensor of an open :class:`AnszFile`, decoded only where it is indexed (as
    safetensors' ``get_slice``). ``sl[key]`` takes numpy's basic indices -- integers
    (negative from the end), slices (with steps), ``...`` and ``None`` -- with numpy's
    results and errors (:class:`~ansz.errors.AnszIndexError`, an IndexError); lists and
    arrays of indices are refused. It decodes only the chunks holding the rows the first
    axis selects (the covering range of rows for a slice of step 1 or -1 or a long strided
    one), 32 MiB of rows at a time, so a column slice of a large tensor needs the result
    and one block, not the tensor. ``get_shape()`` is the shape of the array indexed (for
    a GGUF block-quantized tensor its raw uint8 blocks: see :mod:`ansz.reader`),
    ``get_dtype()`` the dtype name.
    """

    def __init__(self, file: AnszFile, name: str):
        self._file = file
        self.name = name

    def get_shape(self) -> list[int]:
        self._file._check_open()
        return list(self._file._array_layout(self.name)[1])

    def get_dtype(self) -> str:
        return self._file.dtype(self.name)

    def __getitem__(self, key) -> Any:
        return self._file._slice(self.name, key)

    def __repr__(self) -> str:
        return f"<ansz.TensorSlice {self.name!r} of {self._file.path!r}>"


def load_model_dir(directory, framework: str = "np", *,
                   threads: int | None = None) -> dict[str, Any]:
    """Every tensor of a model directory in one dict (a state dict with ``framework="pt"``).

    With one ``*.safetensors.index.json`` in ``directory`` (as Hugging Face writes for
    sharded models), its ``weight_map`` says which shard holds each tensor: exactly those
    tensors are read, each from ``SHARD.ansz`` if it exists (a container
    ``ansz compress`` wrote), else from the plain ``SHARD``; a tensor missing from its
    shard is an AnszError. Without an index, every ``*.safetensors.ansz`` and
    ``*.safetensors`` file in ``directory`` (not below it) is read, a shard present in both
    forms once (from the container), and a name in two shards is an AnszError. Shards are
    read one after another, each on ``threads`` threads.
    """
    directory = os.fspath(directory)
    if framework not in _FRAMEWORKS:
        raise AnszError(f"unknown framework {framework!r}; use 'np' or 'pt'")
    names = sorted(os.listdir(directory))
    indexes = [n for n in names if n.endswith(".safetensors.index.json")]
    if len(indexes) > 1:
        raise AnszError(f"{directory}: several index files ({', '.join(indexes)}); load the "
                        "shards with ansz.load_file")
    if indexes:
        wanted = _weight_map(os.path.join(directory, indexes[0]))
    else:
        shards = {n[:-len(".ansz")] if n.endswith(".ansz") else n for n in names
                  if n.endswith((".safetensors", ".safetensors.ansz"))}
        wanted = {shard: None for shard in sorted(shards)}
    out: dict[str, Any] = {}
    for shard, tensors in wanted.items():
        path = os.path.join(directory, shard)
        packed = path + ".ansz"
        if os.path.exists(packed):
            got = _load_shard(packed, tensors, framework, threads)
        elif os.path.exists(path):
            got = _load_plain(path, tensors, framework)
        else:
            raise AnszError(f"{directory}: shard {shard} (or {shard}.ansz) is missing")
        for name, value in got.items():
            if name in out:
                raise AnszError(f"{directory}: tensor {_quote(name)} is in more than one shard")
            out[name] = value
    return out


def _weight_map(path: str) -> dict[str, list[str]]:
    """shard file name -> its tensor names, from a ``*.safetensors.index.json``."""
    with builtins.open(path, "rb") as fh:  # (``open`` here is ansz.open)
        text = fh.read(MAX_MODEL_INDEX + 1)
    if len(text) > MAX_MODEL_INDEX:
        raise AnszError(f"{path} is larger than {MAX_MODEL_INDEX} bytes")
    try:
        weight_map = json.loads(text).get("weight_map")
    except (ValueError, AttributeError, RecursionError):
        raise AnszError(f"{path} is not a JSON object") from None
    if not isinstance(weight_map, dict):
        raise AnszError(f"{path} has no weight_map object")
    shards: dict[str, list[str]] = {}
    for name, shard in weight_map.items():
        if (not isinstance(shard, str) or not shard or shard != os.path.basename(shard)
                or shard in (".", "..")):
            raise AnszError(f"{path}: tensor {_quote(name)} maps to {_quote(shard)}, which is "
                            "not a file name in its directory")
        shards.setdefault(shard, []).append(name)
    return shards


def _load_shard(path: str, names: list[str] | None, framework: str, threads: int | None):
    with AnszFile(path, framework, threads=threads) as f:
        missing = [n for n in names or () if n not in f]
        if missing:
            raise AnszError(f"{path}: no tensor named {_quote(missing[0])} (the index puts "
                            "it in this shard)")
        return f.get_tensors(names)


def _load_plain(path: str, names: list[str] | None, framework: str) -> dict[str, Any]:
    """Tensors of a plain safetensors file, read with ``pread`` into arrays of their own."""
    import numpy as np

    from .formats.safetensors import read_layout

    layout = read_layout(path)
    spans = {t.name: t for t in layout.tensors + layout.subbyte_tensors}
    if names is None:
        names = [t.name for t in sorted(spans.values(), key=lambda t: (t.start, t.name))]
    out = {}
    with PositionalFile(path) as fh:
        for name in names:
            t = spans.get(name)
            if t is None:
                raise AnszError(f"{path}: no tensor named {_quote(name)} (the index puts it "
                                "in this shard)")
            npdtype = _numpy_dtype(name, t.dtype)
            buf = np.empty(t.nbytes, np.uint8)
            fh.read_into(t.start, memoryview(buf))
            try:
                arr = buf.view(npdtype).reshape(t.shape)
            except ValueError:
                raise AnszError(f"tensor {_quote(name)} has shape {_quote(list(t.shape))}, "
                                "which numpy cannot represent") from None
            out[name] = _to_torch(arr, t.dtype) if _FRAMEWORKS[framework] == "pt" else arr
    return out


# ---------------------------------------------------------------------------------------------
# Helpers


class _MemoryFile:
    """A container held in memory, read like :class:`ansz._io.PositionalFile`."""

    regular = True

    def __init__(self, data):
        import numpy as np

        self._data = np.frombuffer(memoryview(data).cast("B"), np.uint8)
        self.size = self._data.size

    def read_at(self, offset: int, length: int):
        return self._data[offset:offset + length]

    read_scratch = read_at

    def close(self) -> None:
        pass


def _check_key(key, name: str, shape: tuple[int, ...]) -> tuple[tuple, tuple[int, ...]]:
    """``(key as a tuple, the result's shape)``, ``key`` checked as numpy checks a basic
    index on ``shape`` (numpy's own message on failure), without allocating anything of the
    tensor's size."""
    import numpy as np

    key = key if isinstance(key, tuple) else (key,)
    out = []
    for k in key:
        if k is None or k is Ellipsis or isinstance(k, slice):
            out.append(k)
            continue
        try:
            if isinstance(k, (bool, np.bool_)):
                raise TypeError
            out.append(operator.index(k))
        except TypeError:
            raise AnszIndexError(f"tensor {_quote(name)}: index {_quote(k)} is not supported; "
                                 "use integers, slices, ... and None") from None
    key = tuple(out)
    try:
        dummy = np.broadcast_to(np.empty((), np.uint8), shape)  # no memory of its own
    except (ValueError, OverflowError):
        raise AnszError(f"tensor {_quote(name)} has shape {_quote(list(shape))}, which numpy "
                        "cannot represent") from None
    try:
        return key, np.shape(dummy[key])
    except (IndexError, TypeError, ValueError) as e:
        raise AnszIndexError(f"tensor {_quote(name)} of shape {tuple(shape)}: {e}") from None


def _first_axis(key: tuple, shape: tuple[int, ...]) -> tuple[int | None, range, int]:
    """For a checked basic index ``key`` on an array of ``shape`` (at least 1-d):
    ``(position in key of the index of the first axis, or None if an ellipsis (or nothing)
    covers it; the rows it selects, in the result's order; the result's axis they make)``.
    An integer index selects one row and makes no axis."""
    n = shape[0]
    consumed = sum(1 for k in key if k is not None and k is not Ellipsis)
    nones = 0
    for pos, k in enumerate(key):
        if k is None:
            nones += 1
        elif k is Ellipsis:
            if len(shape) > consumed:  # the ellipsis covers the first axis
                return None, range(n), nones
        elif isinstance(k, slice):
            return pos, range(*k.indices(n)), nones
        else:  # an integer, already checked to be in range
            row = k + n if k < 0 else k
            return pos, range(row, row + 1), nones
    return None, range(n), nones  # nothing indexes it: all of it, after the Nones


def _replace(key: tuple, pos: int | None, part) -> tuple:
    """``key`` with the index of the first axis (at ``pos``) replaced by ``part``; with
    ``pos`` None (an ellipsis covers the first axis) ``key`` itself."""
    return key if pos is None else key[:pos] + (part,) + key[pos + 1:]


def _product(dims) -> int:
    out = 1
    for d in dims:
        out *= d
    return out


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


# ---------------------------------------------------------------------------------------------
# Base files: what a container coded against a base is decoded with


#: Bytes read at a time when hashing a base.
_BASE_PIECE = 16 << 20


class BaseFile:
    """An open base file: ``tensors`` ({name: (dtype, shape, start, end)}), ``size`` (of the
    original bytes), :meth:`read` of any range (thread-safe), :meth:`identity` (what a
    container records) and :meth:`check` (against a record). Use as a context manager."""

    def __init__(self, path):
        self.path = os.fspath(path)
        self._file = PositionalFile(self.path)
        self._container: Any = None  # an ansz.reader.AnszFile for a container base
        self._tensors = None
        try:
            if not self._file.regular:
                raise AnszError(f"base {self.path} is not a regular file")
            if self._file.read_at(0, len(MAGIC)) == MAGIC:
                self._open_container()
            else:
                self._open_plain()
        except BaseException:
            self.close()
            raise
        self._identity: dict | None = None

    def _open_plain(self) -> None:
        self.size = self._file.size
        self._tensors: dict | None = None

    @property
    def tensors(self) -> dict[str, tuple[str, tuple[int, ...], int, int]]:
        """The base's tensors (parsed at the first use: decoding needs only bytes)."""
        if self._tensors is None:
            from ._io import FileSource
            from .formats.detect import detect

            layout, reason = detect(FileSource(self._file))
            if layout is None:
                raise AnszError(f"base {self.path} is not a safetensors or GGUF file, nor a "
                                f"container of one ({reason or 'unknown format'})")
            self._tensors = {t.name: (t.dtype, tuple(t.shape), t.start, t.end)
                             for t in layout.tensors}
        return self._tensors

    def _open_container(self) -> None:
        self._file.close()
        try:
            f = AnszFile(self.path, threads=1)  # read() runs on the caller's worker threads
        except BaseMismatchError:  # it needs a base of its own
            raise AnszError(f"base {self.path} was itself compressed against a base; "
                            "decompress it first") from None
        self._container = f
        self.size = f._cf.index.original_size
        self._tensors = dict(f._tensors)

    @property
    def name(self) -> str:
        """The base's file name as a hint for the record (a container's without ``.ansz``)."""
        name = os.path.basename(self.path)
        if self._container is not None and name.endswith(".ansz"):
            name = name[:-len(".ansz")]
        return name[:MAX_BASE_NAME]

    def read(self, start: int, n: int) -> Any:
        """The base's original bytes ``[start, start + n)`` (all inside it) as a uint8 array,
        which may be a per-thread buffer reused by this thread's next read."""
        if start < 0 or n < 0 or start + n > self.size:
            raise CorruptDataError(f"base range [{start}, {start + n}) lies outside the base's "
                                   f"{self.size} bytes")
        if self._container is not None:
            return self._container._decode([(start, start + n)])[0]
        return self._file.read_scratch(start, n)

    def identity(self, stop=None) -> dict | None:
        """``{"name", "size", "sha256"}`` of the base's original bytes (a container base's
        sha256 from its index; a plain file's read once). ``stop``, a threading.Event, if
        set meanwhile, ends the reading early: None is returned."""
        if self._identity is None:
            if self._container is not None:
                digest = self._container._cf.index.sha256
            else:
                sha = hashlib.sha256()
                for pos in range(0, self.size, _BASE_PIECE):
                    if stop is not None and stop.is_set():
                        return None
                    sha.update(self.read(pos, min(_BASE_PIECE, self.size - pos)))
                digest = sha.hexdigest()
            self._identity = {"name": self.name, "size": self.size, "sha256": digest}
        return self._identity

    def check(self, record: dict, what: str) -> None:
        """Raise BaseMismatchError unless this may be the base ``record`` (an index's)
        describes: of its size, and given as a container, of its sha256. (The bytes of a
        plain base are checked chunk by chunk as they are used: :func:`chunk_decoder`.)"""
        if self.size == record["size"] and (
                self._container is None
                or self._container._cf.index.sha256 == record["sha256"]):
            return
        from .base import mismatch

        raise mismatch(self.path, what, record)

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
        self._file.close()

    def __enter__(self) -> "BaseFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class BaseParts:
    """A base made of several files (the shards of a model): their original bytes one
    after another, in the order given, with :class:`BaseFile`'s interface. A tensor is in
    one file, so every range read is inside one (a range across two is corrupt)."""

    def __init__(self, directory, files: list[BaseFile]):
        self.path = os.fspath(directory)
        self.parts = files
        self._starts = [0]
        for f in files:
            self._starts.append(self._starts[-1] + f.size)
        self.size = self._starts[-1]
        self._tensors: dict | None = None

    @property
    def name(self) -> str:
        """The directory's name, as a hint for the record."""
        return os.path.basename(os.path.normpath(self.path))[:MAX_BASE_NAME]

    @property
    def tensors(self) -> dict[str, tuple[str, tuple[int, ...], int, int]]:
        """Every file's tensors at their place in the base's bytes (the first file that has
        a name gives it)."""
        if self._tensors is None:
            merged: dict = {}
            for f, at in zip(self.parts, self._starts):
                for name, (dtype, shape, start, end) in f.tensors.items():
                    merged.setdefault(name, (dtype, shape, at + start, at + end))
            self._tensors = merged
        return self._tensors

    def read(self, start: int, n: int) -> Any:
        """:meth:`BaseFile.read` of the base's bytes ``[start, start + n)``."""
        i = bisect.bisect_right(self._starts, start) - 1
        if start < 0 or n < 0 or i >= len(self.parts) or start + n > self._starts[i + 1]:
            raise CorruptDataError(f"base range [{start}, {start + n}) is not inside one of "
                                   "the base's files")
        return self.parts[i].read(start - self._starts[i], n)

    def identity(self, stop=None) -> dict | None:
        """``{"name", "size", "parts"}``: each file's :meth:`BaseFile.identity` (None if
        ``stop`` was set meanwhile)."""
        parts = []
        for f in self.parts:
            if (part := f.identity(stop)) is None:
                return None
            parts.append(part)
        return {"name": self.name, "size": self.size, "parts": parts}

    def check(self, record: dict, what: str) -> None:
        """:meth:`BaseFile.check` of every file against its record."""
        parts = record.get("parts", [])
        if len(parts) != len(self.parts):
            from .base import mismatch

            raise mismatch(self.path, what, record)
        for f, r in zip(self.parts, parts):
            f.check(r, what)

    def close(self) -> None:
        for f in self.parts:
            f.close()

    def __enter__(self) -> "BaseParts":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_base_for(cf: ContainerFile, base, what: str) -> "BaseFile | BaseParts | None":
    """The base a container needs, opened and checked (None for a container without one).
    ``base`` is the base file, or a directory holding it (the file the index names, or
    that name plus .ansz) or, for a base of several files, all of them.
    BaseMismatchError if it needs one and ``base`` is None or another file; AnszError if
    ``base`` is given for a container that has none."""
    from .base import checked_base_bytes, needed_base

    record = cf.index.base
    if record is None:
        if base is not None:
            raise AnszError(f"{what} was not compressed against a base; do not give one")
        return None
    if base is None:
        if not any(seg.base is not None for seg in cf.index.segments):
            return None  # no chunk can use the base (none of its tensors paired): not needed
        raise BaseMismatchError(f"{what} was compressed against a base: {needed_base(record)}; "
                                "give it (--base BASE; base= in Python)")
    base = os.fspath(base)
    if os.path.isdir(base):
        paths = [_base_file_in(base, p, record, what) for p in record.get("parts", [record])]
    elif "parts" in record:
        raise BaseMismatchError(f"{what} was compressed against several files: "
                                f"{needed_base(record)}; give that directory (--base DIR)")
    else:
        paths = [base]
    b = _open_base_files(base, paths)
    try:
        b.check(record, what)
        # the first chunk that uses the base, checked now: a wrong base is reported before
        # anything is written, not at its first differing chunk
        index = cf.index
        for seg in index.segments:
            if seg.base is not None and seg.chunk_count:
                checked_base_bytes(cf, b, seg.first_chunk, what)
                break
    except BaseException:
        b.close()
        raise
    return b


def _open_base_files(directory: str, paths: list[str]) -> "BaseFile | BaseParts":
    """One BaseFile, or the BaseParts of several (closing what was opened on an error)."""
    if len(paths) == 1:
        return BaseFile(paths[0])
    files: list[BaseFile] = []
    try:
        for p in paths:
            files.append(BaseFile(p))
    except BaseException:
        for f in files:
            f.close()
        raise
    return BaseParts(directory, files)


def _base_file_in(directory: str, part: dict, record: dict, what: str) -> str:
    """The file of ``directory`` that is the base file ``part`` (of the base ``record``)
    names: that name, or that name plus .ansz. BaseMismatchError if there is none."""
    from .base import needed_base

    name = part["name"]
    if not name or name != os.path.basename(name) or name in (".", ".."):
        raise CorruptDataError(f"{what}: the base's name {name!r} is not a file name")
    for candidate in (name, name + ".ansz"):
        path = os.path.join(directory, candidate)
        if os.path.isfile(path):
            return path
    raise BaseMismatchError(f"base directory {directory} has no {name}: {what} "
                            f"{needed_base(record)}")


#: Names of the files a base directory offers (model files and containers of them).
_MODEL_NAMES = (".safetensors", ".gguf", ".safetensors.ansz", ".gguf.ansz")


def _input_or_its_container(candidate: str, path: str) -> bool:
    """Whether the existing file ``candidate`` is the input ``path`` itself or its own
    container (``path`` + .ansz, the output to be replaced): never a base of it."""
    return (os.path.samefile(candidate, path)
            or os.path.abspath(candidate) == os.path.abspath(path) + ".ansz")


def open_base(base, path) -> "BaseFile | BaseParts":
    """The base to compress the model file ``path`` against: the file ``base``, or for a
    directory (a model's base, e.g. its shards) the files in it that hold tensors of
    ``path``'s names, dtypes and shapes -- each tensor from the first file (by name) that
    has it, so that a fine-tune sharded otherwise than its base still finds all of its
    tensors. Several files make a :class:`BaseParts`; a directory where no file shares a
    tensor gives the file of ``path``'s own name (else AnszError)."""
    from ._io import FileSource
    from .formats.detect import detect

    base = os.fspath(base)
    if not os.path.isdir(base):
        return BaseFile(base)
    directory, path = base, os.fspath(path)
    with PositionalFile(path) as f:
        layout, _ = detect(FileSource(f))
    wanted = {} if layout is None else {t.name: (t.dtype, tuple(t.shape))
                                        for t in layout.tensors}
    own = os.path.basename(path)
    names = sorted(os.listdir(directory))
    chosen: list[BaseFile] = []
    try:
        for name in names:
            candidate = os.path.join(directory, name)
            if (not name.endswith(_MODEL_NAMES) or not os.path.isfile(candidate)
                    or _input_or_its_container(candidate, path)
                    or (name.endswith(".ansz") and name[:-len(".ansz")] in names)):
                continue  # not a model file, the input or its own container (the output),
                # or a container of a file that is there too
            try:
                b = BaseFile(candidate)
            except AnszError:
                continue  # not a model file: nothing to share
            try:
                tensors = b.tensors
            except BaseException as e:
                b.close()
                if isinstance(e, AnszError):
                    continue
                raise
            claimed = [t for t, key in wanted.items() if tensors.get(t, (None, None))[:2] == key]
            if claimed:
                chosen.append(b)
                for t in claimed:
                    del wanted[t]
            else:
                b.close()
        if not chosen:
            for name in (own, own + ".ansz"):
                candidate = os.path.join(directory, name)
                if os.path.isfile(candidate) and not _input_or_its_container(candidate, path):
                    return BaseFile(candidate)
            raise AnszError(f"base directory {directory} has no model file with a tensor of "
                            f"{own}")
    except BaseException:
        for b in chosen:
            b.close()
        raise
    return chosen[0] if len(chosen) == 1 else BaseParts(directory, chosen)
