"""ansz: lossless compression of neural-network model files with rANS over coding pairs.

The public API lives in :mod:`ansz.api` (files and streams), :mod:`ansz.reader` (lazy
per-tensor reading: ``open``, ``load_file``, ``load``, ``load_model_dir``) and
:mod:`ansz.writer` (``save_file``, ``save``: containers straight from arrays) and
:mod:`ansz.benchmark` (``bench_file``, ``sample_files``: what ``ansz bench`` measures), and is
re-exported here lazily, so that importing ``ansz`` (and running ``ansz --help``) loads
neither numpy nor numba.
"""

from __future__ import annotations

__version__ = "0.1.0"

_API = {
    "compress_file", "decompress_file", "compress_stream", "decompress_stream",
    "verify_file", "verify_stream", "file_stats", "read_info",
}

_READER = {"open", "load_file", "load", "load_model_dir"}

_WRITER = {"save_file", "save"}

_BENCHMARK = {"bench_file", "sample_files"}

# ``ansz.open`` is left out of ``__all__`` so that ``from ansz import *`` cannot shadow the
# builtin ``open``; use it qualified, as ``ansz.open(...)``.
__all__ = sorted(_API | (_READER - {"open"}) | _WRITER | _BENCHMARK
                 | {"AnszError", "CorruptDataError", "FormatError", "__version__"})

from .errors import AnszError, CorruptDataError, FormatError  # noqa: E402  (light: no numpy)


def __getattr__(name: str):
    if name in _API:
        from . import api

        return getattr(api, name)
    if name in _READER:
        from . import reader

        return getattr(reader, name)
    if name in _WRITER:
        from . import writer

        return getattr(writer, name)
    if name in _BENCHMARK:
        from . import benchmark

        return getattr(benchmark, name)
    raise AttributeError(f"module 'ansz' has no attribute {name!r}")
