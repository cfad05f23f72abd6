"""Every numba kernel of ansz, in self-contained modules by topic; this package's namespace
holds them all (the JIT side of :mod:`ansz.kernels`, which the rest of ansz imports).

- :mod:`.fields`: coding pairs and fields, sampling, bit packing;
- :mod:`.rans`: byte histograms, normalization, rANS encoding and decoding, pair tables,
  varints, the prefix codes' encoders (Huffman and QLC tables from counts, the bit writer),
  a coding-pair chunk's streams coded in one call (rANS or a prefix code, whichever is
  smaller), and whole 16- and 32-bit chunks decoded in one call (with the joining of their
  pairs and the unpacking of their last raw plane);
- :mod:`.prefix`: the Huffman and QLC decoders and their table readers;
- :mod:`.delta`: delta chunks (a chunk coded against the same elements of a base tensor).

numba's on-disk cache notices only edits to the file of the function it compiles, and it
freezes the globals a kernel reads into the compiled code. So each module is
self-contained: a kernel, every @njit helper it calls and every constant it reads live in
the same file, and no module imports another. The decoder statuses (DECODE_*) share one
numbering; a module defines those it returns, and this package refuses to load if two
modules give one name different values.

Callers normalize their arrays (dtype, C-contiguity, writability) before calling, so each
kernel compiles once per element width. Kernels run with bounds checking off: every size
and offset they rely on is either validated in the kernel before the unchecked loop or
guaranteed by construction, and that is stated beside each loop. No kernel uses BLAS or
LAPACK (np.dot, np.linalg): the ansz command keeps scipy out of its process
(_numba_env.skip_optional_numba_imports).
"""

from . import delta, fields, prefix, rans


def _exports() -> dict:
    """The kernels (numba dispatchers) and constants (upper-case names) of the modules."""
    out: dict = {}
    for module in (fields, rans, prefix, delta):
        for name, value in vars(module).items():
            if name.startswith("_") or not (name.isupper() or hasattr(value, "py_func")):
                continue
            if name in out and out[name] != value:
                raise ImportError(f"ansz._kernels: {module.__name__}.{name} = {value!r} "
                                  f"differs from another kernel module's {out[name]!r}")
            out[name] = value
    return out


globals().update(_exports())
