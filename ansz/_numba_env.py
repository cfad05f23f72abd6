"""Point numba's on-disk cache at a user-writable directory before numba is imported.

numba's ``cache=True`` writes next to the source file, and if that directory is not
writable (a system-wide install) the *import* of a cached kernel fails with "no locator
available". Import this module before the first ``import numba``; it only sets a default,
so an explicit ``NUMBA_CACHE_DIR`` from the user wins.
"""

import os


def _user_cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "ansz", "numba")


os.environ.setdefault("NUMBA_CACHE_DIR", _user_cache_dir())


#: Packages numba imports only to register optional features that ansz's kernels never use:
#: scipy for BLAS/LAPACK (``np.dot``, ``np.linalg``: without scipy numba raises ImportError
#: when such a kernel compiles, so ansz's kernels must not use them) and cffi for typing
#: cffi functions. On a machine that has them installed, importing them on the first kernel
#: call measured 0.35 s of the CLI's ~1.1 s start-up (scipy.linalg pulls in numpy.f2py).
OPTIONAL_NUMBA_IMPORTS = ("scipy", "cffi")


def skip_optional_numba_imports() -> None:
    """Make ``import scipy`` / ``import cffi`` fail fast (ImportError) in this process.

    For the ``ansz`` command only (``cli.main`` run as the console script or ``python -m
    ansz``, with no argv given), which owns its process and needs neither; numba handles
    their absence. Library use, and ``cli.main(argv)`` called from Python, leave the process
    alone. Packages already imported are not touched.
    """
    import sys

    for name in OPTIONAL_NUMBA_IMPORTS:
        sys.modules.setdefault(name, None)


#: Thread pools that numpy's BLAS starts when numpy is imported (one thread a core, ~75 ms
#: of CPU at import on 2 cores, competing with the command's own work); ansz calls no BLAS.
BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS")


def single_threaded_blas() -> None:
    """Ask numpy's BLAS for one thread, unless the user set a number. For the ``ansz``
    command's own process only (see :func:`skip_optional_numba_imports`); must run before
    numpy is imported to have an effect."""
    for name in BLAS_THREAD_VARIABLES:
        os.environ.setdefault(name, "1")


def kernel_cache_dir() -> str:
    """Where numba caches ansz's compiled kernels (``NUMBA_CACHE_DIR``, set above)."""
    return os.environ.get("NUMBA_CACHE_DIR") or _user_cache_dir()


def kernel_cache_is_cold() -> bool:
    """True if numba's cache holds no kernel compiled from the current kernel sources (no
    index file ``_kernels_*/<module>.*.nbi`` at least as new as ``ansz/_kernels/<module>.py``):
    a first run compiles the kernels it calls (~25 s for a compress on 2 cores), unless the
    ahead-of-time library serves them (``ansz.kernels.uses_library``, which the caller
    asks). A heuristic for the CLI's first-run notice: numba itself decides per kernel, and a
    partly filled cache counts as warm. Reads directory entries only."""
    kernel_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_kernels")
    try:
        stamps = {f.name[:-3]: f.stat().st_mtime for f in os.scandir(kernel_dir)
                  if f.name.endswith(".py") and f.name != "__init__.py"}
        with os.scandir(kernel_cache_dir()) as dirs:
            for d in dirs:  # numba names a cache directory after the source's directory
                if not (d.name.startswith("_kernels_") and d.is_dir()):
                    continue
                with os.scandir(d.path) as files:
                    for f in files:
                        module = f.name.split(".", 1)[0]
                        if (module in stamps and f.name.endswith(".nbi")
                                and f.stat().st_mtime >= stamps[module]):
                            return False
    except OSError:  # no cache directory yet (or unreadable): nothing cached
        pass
    return True
