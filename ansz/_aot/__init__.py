"""The ahead-of-time kernel library: what its build (:mod:`.build`, run by setup.py at
install) and its loader (:mod:`ansz.kernels`) agree on. numba-free and cheap to import.

The build compiles the kernels of :mod:`ansz._kernels` for the signatures of :mod:`.spec`
into one shared library, ``ansz/_kernels_aot_lib<EXT_SUFFIX>``, and writes its ctypes
binding ``ansz/_kernels_aot.py`` beside it. The binding defines:

- ``BINDING_VERSION``: :data:`BINDING_VERSION` of the build that wrote it;
- ``SOURCE_DIGEST``: :func:`kernel_source_digest` of the kernels it was compiled from;
- ``LIBRARY``: the library's file name, in the binding's directory;
- ``CPU_FLAGS``: the /proc/cpuinfo flags the library's code may need (empty: not checked);
- ``CONSTANTS``: the kernel modules' constants (name -> value);
- ``ENTRIES``: kernel name -> the signatures (:mod:`.spec` notation) the library holds;
- ``bind(lib, jit)``: takes the loaded ``ctypes.CDLL`` and ``jit(name)``, which returns the
  JIT kernel ``name`` for the calls the library cannot serve; after it, the binding's
  function of each kernel in ``ENTRIES`` behaves as the JIT kernel.
"""

from __future__ import annotations

import hashlib
import os

#: Changes whenever the binding's interface above changes; the loader refuses other versions.
BINDING_VERSION = 1

#: The generated binding module, in ``ansz`` (setup.py writes it under this name).
BINDING_MODULE = "_kernels_aot"

_KERNEL_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                           "_kernels")


def kernel_source_digest(kernel_dir: str = _KERNEL_DIR) -> str:
    """A digest of the kernel sources: every ``*.py`` of ``kernel_dir`` (default: this
    installation's ``ansz/_kernels``), by name and content. OSError if one is unreadable."""
    h = hashlib.sha256()
    for name in sorted(n for n in os.listdir(kernel_dir) if n.endswith(".py")):
        with open(os.path.join(kernel_dir, name), "rb") as f:
            data = f.read()
        h.update(f"{name}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()[:32]
