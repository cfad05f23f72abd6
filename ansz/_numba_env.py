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
