"""ansz's kernels as the rest of ansz calls them: from the ahead-of-time library where it is
usable, by numba's JIT (:mod:`ansz._kernels`) otherwise. Import this module, never
``ansz._kernels``: every kernel and constant of ``ansz._kernels`` is an attribute here.

The library (see :mod:`ansz._aot`) is built at install time from the same kernel sources
and called through ctypes: no numba import and no compiling, and ctypes releases the GIL
during a call as the kernels' ``nogil=True`` does. It is used only if its binding's
version and source digest match this installation's kernels, and the CPU has every
instruction-set flag the library was built for (on Linux, from /proc/cpuinfo). Otherwise,
or with ANSZ_NO_AOT=1 in the environment, every name resolves to the JIT kernel, importing
numba at the first one. With the library loaded, a call whose argument types, layout or
writability no library signature matches, a kernel that raised, or a returned array larger
than the library's buffer runs the JIT kernel instead (counted by :func:`jit_calls`); so
results, errors and exceptions are always the JIT kernel's.
"""

from __future__ import annotations

import ctypes
import os
from collections import Counter

from ._aot import BINDING_MODULE, BINDING_VERSION, kernel_source_digest

_fallback_reason: str | None = None
_library_path: str | None = None
_jit_calls: Counter = Counter()


def uses_library() -> bool:
    """True if the ahead-of-time library serves the kernels in this process (no numba
    compile at the first call)."""
    return _fallback_reason is None


def fallback_reason() -> str | None:
    """Why every kernel runs by numba's JIT in this process, or None if the library is used."""
    return _fallback_reason


def library_path() -> str | None:
    """The loaded library's path, or None."""
    return _library_path


def jit_calls() -> dict[str, int]:
    """With the library loaded: kernel name -> how many calls it did not serve and passed to
    the JIT kernel (a signature it lacks, an exception, an oversized result)."""
    return dict(_jit_calls)


def _jit_kernel(name: str):
    """The JIT kernel (or constant) ``name`` of ansz._kernels, importing numba."""
    from . import _kernels

    return getattr(_kernels, name)


def _jit_for_library(name: str):
    """The JIT kernel for a call the library passes on (the binding's fallback)."""
    _jit_calls[name] += 1
    return _jit_kernel(name)


def __getattr__(name: str):
    """A name the library does not provide: its JIT kernel or constant."""
    if name.startswith("__"):
        raise AttributeError(name)
    try:
        value = _jit_kernel(name)
    except AttributeError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    globals()[name] = value
    return value


def _cpu_flags() -> set[str] | None:
    """The CPU's feature flags (Linux /proc/cpuinfo, first processor), or None."""
    try:
        with open("/proc/cpuinfo", "rb") as f:
            for line in f:
                if not line.strip():
                    break  # the end of the first processor's block
                key, _, value = line.decode("ascii", "replace").partition(":")
                if key.strip() in ("flags", "Features"):
                    return set(value.split())
    except OSError:
        pass
    return None


def _load() -> str | None:
    """Bind the library's kernels and constants into this module; returns why not, or None."""
    global _library_path
    if os.environ.get("ANSZ_NO_AOT", "") not in ("", "0"):
        return "ANSZ_NO_AOT is set"
    import importlib

    try:
        binding = importlib.import_module(f"{__package__}.{BINDING_MODULE}")
    except ImportError:
        return "no ahead-of-time kernel library (it is built when ansz is installed)"
    if getattr(binding, "BINDING_VERSION", None) != BINDING_VERSION:
        return "the kernel library's binding is of another version of ansz"
    try:
        digest = kernel_source_digest()
    except OSError as exc:
        return f"cannot read the kernel sources ({exc})"
    if binding.SOURCE_DIGEST != digest:
        return "the kernel library was built from other kernel sources (rebuild: pip install)"
    if binding.CPU_FLAGS:
        have = _cpu_flags()
        missing = sorted(set(binding.CPU_FLAGS) - have) if have is not None else ["(unknown)"]
        if missing:
            return f"the kernel library needs CPU features this CPU lacks: {' '.join(missing)}"
    path = os.path.join(os.path.dirname(binding.__file__), binding.LIBRARY)
    try:
        binding.bind(ctypes.CDLL(path), _jit_for_library)
    except Exception as exc:  # a missing or broken file: the JIT still works
        return f"cannot load the kernel library {path} ({type(exc).__name__}: {exc})"
    g = globals()
    g.update(binding.CONSTANTS)
    for name in binding.ENTRIES:
        g[name] = getattr(binding, name)
    _library_path = path
    return None


_fallback_reason = _load()
