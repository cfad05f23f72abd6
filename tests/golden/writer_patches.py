"""Today's writer with module state patched: the one place that reaches forms ansz no longer
writes (earlier writers) or paths it takes only on some inputs.

ansz keeps no switches for the forms it has stopped writing, and should not grow any; the
golden files (``make_golden.py``: the ``earlier_*`` containers and a few vectors) and the
modelling benchmark (``bench/modelling.py``: its steps before today's default) patch module
attributes for the duration of a ``with`` block instead, through :func:`patched_writer`
only. The containers written inside are valid: today's reader reads every form.

Not thread-safe against other compressions running at the same time in the same process;
the work inside the block may use threads.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import numpy as np

from ansz import container, dtypes, streams


def _u16_table(freq) -> bytes:
    return np.asarray(freq).astype("<u2").tobytes()


def _raw_index(text: bytes, offset: int) -> tuple[int, bytes]:
    return container.INDEX, text


@contextlib.contextmanager
def patched_writer(*, u16_tables: bool = False, plain_codes: bool = False,
                   raw_index: bool = False, always_high_scale: bool = False) -> Iterator[None]:
    """While the block runs, the writer:

    * ``u16_tables``: writes rANS streams as stream method 2 (RANS_U16), frequency tables
      as u16, instead of method 6 with varint tables;
    * ``plain_codes``: gives float chunks the plain dtype codes 7-10 (no code field)
      instead of the fielded 11-14;
    * ``raw_index``: writes the index record uncoded (record type 2) instead of
      zstd-coded (type 3);
    * ``always_high_scale``: builds the 14-bit rANS table even when the 12-bit one is as
      good (``HIGH_SCALE_MIN_GAIN = -1``).

    Everything is restored on exit, also after an exception.
    """
    saved = (streams.RANS, streams.varint_table, streams.HIGH_SCALE_MIN_GAIN,
             dict(dtypes._CODE_OF), container.index_record)
    try:
        if u16_tables:
            streams.RANS = streams.RANS_U16
            streams.varint_table = _u16_table
        if plain_codes:
            for code, d in dtypes.DTYPE_CODES.items():
                if not d.fielded and d.name in dtypes._CODE_OF:
                    dtypes._CODE_OF[d.name] = min(dtypes._CODE_OF[d.name], code)
        if raw_index:
            container.index_record = _raw_index
        if always_high_scale:
            streams.HIGH_SCALE_MIN_GAIN = -1.0
        yield
    finally:
        streams.RANS, streams.varint_table, streams.HIGH_SCALE_MIN_GAIN = saved[:3]
        dtypes._CODE_OF.clear()
        dtypes._CODE_OF.update(saved[3])
        container.index_record = saved[4]
