"""Containers written straight from arrays, without a ``.safetensors`` file first.

::

    ansz.save_file({"w": w, "b": b}, "model.safetensors.ansz", metadata={"format": "pt"})
    blob = ansz.save({"w": w})                   # the container as bytes
    tensors = ansz.load(blob)                    # and back

The container decodes to exactly the bytes ``safetensors.numpy.save_file(tensors, path,
metadata)`` writes (``safetensors.torch.save_file`` for torch tensors), so ``ansz decompress``
gives a file safetensors itself could have written. How:

- The tensors' order in the file and their dtype names are the safetensors library's own: it
  serializes the same names and dtypes with no data (a header only), and its order (dtype
  alignment descending, then name) and names are read back from that.
- The header JSON is then written as the library writes it (serde_json's compact form,
  ``{"__metadata__":{...},"name":{"dtype":..,"shape":[..],"data_offsets":[a,b]},...}``, padded
  with spaces to a multiple of 8), with the real shapes and offsets. The tests hold it to
  the library's output byte for byte.
- Two differences are the library's doing. With no tensors and ``metadata={}`` it writes
  ``{},"__metadata__":{}}`` (its JSON writer, told the header has no entries, closes it at
  once), a header it cannot read back; ansz writes ``{"__metadata__":{}}``. And it keeps
  ``metadata`` in a hash map, so a file it writes lists two or more metadata keys in an
  order that changes from run to run; here they keep the dict's order, one of the orders
  the library may write, so the same tensors give the same container every time.
- Tensor bytes are never copied into one buffer: the compressor reads each chunk from the
  arrays themselves (a chunk that spans small tensors is assembled), so memory stays at the
  chunks in flight, as for :func:`ansz.compress_file`. Only an array that is big-endian
  (the library byte-swaps one too) or not C-contiguous is first copied. Do not modify the
  arrays while a save runs.
- A numpy array that is not C-contiguous (a transpose, a strided view) is written as its
  elements in C order, i.e. as ``np.ascontiguousarray(a)`` would be: safetensors.numpy
  writes such an array's memory as it lies, which is not the array (its docstring asks
  for contiguous arrays).

Values may be numpy arrays or torch tensors. A torch tensor that is on the CPU and
contiguous is read in place (a view); any other (on a GPU, a transposed view) is copied to
a contiguous CPU tensor when the save starts, as ``safetensors.torch`` asks. torch is
imported only when a torch tensor is given. Anything the library would refuse (a dtype it
has no name for, a name or metadata that is not a string) is an AnszError, and nothing is
written.
"""

from __future__ import annotations

import bisect
import io
import json
import os
import time
from typing import Any, Mapping

from . import _numba_env  # noqa: F401  (sets NUMBA_CACHE_DIR before numba is imported)
from . import api
from ._io import BackgroundSha256, check_output
from ._pool import resolve_threads
from .errors import AnszError
from .options import check_chunk_size, check_coder, check_level

__all__ = ["save_file", "save"]

#: torch dtype (without "torch.") -> safetensors dtype, for the dtypes safetensors stores.
_TORCH_TYPES = {
    "bool": "BOOL", "uint8": "U8", "int8": "I8", "int16": "I16", "uint16": "U16",
    "int32": "I32", "uint32": "U32", "int64": "I64", "uint64": "U64", "float16": "F16",
    "bfloat16": "BF16", "float32": "F32", "float64": "F64", "complex64": "C64",
    "float8_e4m3fn": "F8_E4M3", "float8_e5m2": "F8_E5M2", "float8_e8m0fnu": "F8_E8M0",
    "float8_e4m3fnuz": "F8_E4M3FNUZ", "float8_e5m2fnuz": "F8_E5M2FNUZ",
}


def save_file(tensors: Mapping[str, Any], path, metadata: Mapping[str, str] | None = None, *,
              level: int | None = None, threads: int | None = None,
              chunk_size: int | None = None, coder: str | None = None,
              overwrite: bool = False) -> api.CompressReport:
    """Write ``tensors`` ({name: numpy array or torch tensor}) as a container at ``path``.

    Decodes to the bytes ``safetensors.numpy.save_file(tensors, ..., metadata)`` writes
    (module docstring). ``level``, ``threads``, ``chunk_size`` and ``coder`` as for
    :func:`ansz.compress_file`. Written atomically; an existing ``path`` is replaced only
    with ``overwrite=True``. Returns the report ``compress_file`` would (``src`` is
    ``"<tensors>"``).
    """
    path = os.fspath(path)
    check_output(path, overwrite=overwrite)
    start = time.perf_counter()
    source, options = _prepare(tensors, metadata, level, threads, chunk_size, coder)
    with api.atomic_output(path, overwrite=overwrite) as out:
        result = api._compress(source, out, *options)
    return api.CompressReport("<tensors>", path, *result, time.perf_counter() - start)


def save(tensors: Mapping[str, Any], metadata: Mapping[str, str] | None = None, *,
         level: int | None = None, threads: int | None = None, chunk_size: int | None = None,
         coder: str | None = None) -> bytes:
    """The container :func:`save_file` would write, as bytes (like
    ``safetensors.numpy.save``; :func:`ansz.load` reads it back)."""
    source, options = _prepare(tensors, metadata, level, threads, chunk_size, coder)
    out = io.BytesIO()
    api._compress(source, out, *options)
    return out.getvalue()


def _prepare(tensors, metadata, level, threads, chunk_size, coder):
    """The source to compress and ``_compress``'s options, every argument checked first."""
    level = check_level(level)
    options = (resolve_threads(threads), check_chunk_size(chunk_size, level), None,
               check_coder(coder), level)
    arrays = _arrays(tensors)
    header, order = _header(arrays, _metadata(metadata))
    return _TensorsSource(header, [arrays[name] for name in order]), options


# ---------------------------------------------------------------------------------------------
# Arguments


def _arrays(tensors) -> dict[str, Any]:
    """Each value as a C-contiguous little-endian numpy array (views where possible)."""
    import numpy as np

    if not isinstance(tensors, Mapping):
        raise AnszError(f"tensors must be a dict of name -> array, got {type(tensors).__name__}")
    out = {}
    for name, value in tensors.items():
        if not isinstance(name, str):
            raise AnszError(f"tensor names must be strings, got {_quote(name)}")
        _check_text(name, "tensor name")
        if name == "__metadata__":
            raise AnszError("'__metadata__' is the header's metadata key, not a tensor name")
        if _is_torch(value):
            arr = _from_torch(name, value)
        elif isinstance(value, np.ndarray):
            arr = value
        else:
            raise AnszError(f"tensor {_quote(name)} is a {type(value).__name__}, not a numpy "
                            "array or torch tensor")
        if arr.dtype.byteorder == ">":
            arr = arr.astype(arr.dtype.newbyteorder("<"))
        if not arr.flags.c_contiguous:
            arr = arr.copy(order="C")
        out[name] = arr
    return out


def _metadata(metadata) -> dict[str, str] | None:
    if metadata is None:
        return None
    if not isinstance(metadata, Mapping):
        raise AnszError(f"metadata must be a dict of str -> str, got {type(metadata).__name__}")
    for key, value in metadata.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise AnszError(f"metadata must map strings to strings, got {_quote(key)}: "
                            f"{_quote(value)}")
        _check_text(key, "metadata key")
        _check_text(value, f"metadata value of {_quote(key)}")
    return dict(metadata)


def _is_torch(value) -> bool:
    return type(value).__module__.split(".")[0] == "torch" and hasattr(value, "detach")


def _from_torch(name: str, t):
    """A torch tensor's bytes as a numpy array of the matching dtype (a view of a CPU
    contiguous tensor; otherwise a CPU copy of this one tensor)."""
    import torch

    from .reader import _TORCH_VIEWS, _numpy_dtype

    t = t.detach()
    if t.device.type == "meta" or t.layout != torch.strided:
        raise AnszError(f"tensor {_quote(name)} has no dense data to save (device "
                        f"{t.device.type}, layout {str(t.layout).removeprefix('torch.')})")
    if t.device.type != "cpu":
        t = t.cpu()
    t = t.contiguous()
    kind = str(t.dtype).removeprefix("torch.")
    dtype = _TORCH_TYPES.get(kind)
    if dtype is None:
        raise AnszError(f"tensor {_quote(name)} has dtype torch.{kind}, which safetensors "
                        "does not store")
    if dtype not in _TORCH_VIEWS:
        return t.numpy()
    same_width = {1: torch.int8, 2: torch.int16, 4: torch.int32, 8: torch.int64}
    return t.view(same_width[t.element_size()]).numpy().view(_numpy_dtype(name, dtype))


# ---------------------------------------------------------------------------------------------
# The header


def _header(arrays: dict[str, Any], metadata: dict[str, str] | None) -> tuple[bytes, list[str]]:
    """``(8-byte length + header JSON, tensor names in file order)``, as the library writes
    them for these arrays."""
    names, dtypes = _library_order(arrays)
    parts = []
    if metadata is not None:
        parts.append('"__metadata__":' + _json(metadata))
    offset = 0
    for name in names:
        arr = arrays[name]
        end = offset + arr.nbytes
        shape = ",".join(str(d) for d in arr.shape)
        parts.append(f'{_json(name)}:{{"dtype":{_json(dtypes[name])},"shape":[{shape}],'
                     f'"data_offsets":[{offset},{end}]}}')
        offset = end
    text = ("{" + ",".join(parts) + "}").encode("utf-8")
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text, names


def _library_order(arrays: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
    """The order the safetensors library writes these tensors in, and its dtype name for
    each: asked of the library itself, on the same names and dtypes with no data."""
    import numpy as np
    from safetensors.numpy import save as library_save

    labels: dict[Any, str] = {}  # numpy dtype -> safetensors name, checked once per dtype
    for name, arr in arrays.items():
        if arr.dtype not in labels:
            try:
                blob = library_save({"t": np.zeros(0, arr.dtype)})
                labels[arr.dtype] = _header_of(blob)["t"]["dtype"]
            except Exception:  # the library's SafetensorError, or its TypeError
                raise AnszError(f"tensor {_quote(name)} has dtype {arr.dtype}, which safetensors "
                                "does not store") from None
    shadow = _header_of(library_save({name: np.zeros(0, arr.dtype)
                                      for name, arr in arrays.items()}))
    order = list(shadow)
    if sorted(order) != sorted(arrays):
        raise AnszError("the safetensors library wrote other tensors than it was given")
    return order, {name: labels[arrays[name].dtype] for name in order}


def _header_of(blob: bytes) -> dict[str, Any]:
    n = int.from_bytes(blob[:8], "little")
    return json.loads(blob[8:8 + n])


def _json(value) -> str:
    """``value`` as serde_json writes it: compact, UTF-8 (not \\u escapes) beyond ASCII,
    control characters as \\b \\f \\n \\r \\t or \\u00xx."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _check_text(text: str, what: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise AnszError(f"{what} {_quote(text)} is not valid Unicode (an unpaired "
                        "surrogate)") from None


def _quote(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 4] + "...'"


# ---------------------------------------------------------------------------------------------
# The bytes, read where they are


class _TensorsSource:
    """The safetensors file the arrays make, as a compression input (like
    :class:`ansz._io.FileSource`): any range, served from the header and the arrays
    themselves; a range inside one array is a view of it."""

    def __init__(self, header: bytes, arrays: list):
        import numpy as np

        self._parts = [np.frombuffer(header, np.uint8)]
        self._parts += [a.reshape(-1).view(np.uint8) for a in arrays]
        self._starts = []
        pos = 0
        for part in self._parts:
            self._starts.append(pos)
            pos += part.size
        self.size = pos
        self.name = "<tensors>"

    def head(self, n: int) -> bytes:
        return bytes(self.read(0, n))

    def read(self, start: int, n: int):
        import numpy as np

        end = min(start + n, self.size)
        pieces = []
        i = bisect.bisect_right(self._starts, start) - 1
        pos = start
        while pos < end:
            part, at = self._parts[i], self._starts[i]
            take = min(end, at + part.size) - pos
            if take > 0:
                pieces.append(part[pos - at:pos - at + take])
                pos += take
            i += 1
        if len(pieces) == 1:
            return pieces[0]
        return np.concatenate(pieces) if pieces else np.empty(0, np.uint8)

    def release(self, upto: int) -> None:
        pass

    def hasher(self, depth: int) -> BackgroundSha256:
        return BackgroundSha256(depth)
