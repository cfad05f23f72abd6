"""The choices a caller has, and their limits: plain constants, so that the command line can
check its arguments without importing numpy (``ansz --help`` stays instant).
"""

from __future__ import annotations

from .errors import AnszError

#: Values of ``coder``: "auto" keeps the smallest of rANS, Huffman and QLC per stream; the
#: others force one.
CODERS = ("auto", "rans", "huffman", "qlc")

#: Compression levels. 1 ("fast") puts decoding speed first: float chunks take the plain
#: 8-bit field without a search, large rANS streams have 64 states (decoded 16 at a time)
#: instead of 32, no stream tries the prefix coders, and chunks are 2 MiB unless told
#: (:data:`FAST_CHUNK_SIZE`); bf16 files come out ~0.6% larger (mostly the plain field) and
#: their chunks decode ~1.75x faster. 2, the default, keeps the smallest of everything.
LEVELS = (1, 2)
DEFAULT_LEVEL = 2
FAST_LEVEL = 1

#: Default chunk size (bytes of original data per chunk): the unit of parallelism, of memory,
#: and of adaptivity (each chunk has its own tables). On synthetic N(0, 0.02) bf16 weights,
#: which do not drift, 1/2/4/8 MiB give the same ratio (0.6594 .. 0.6593). On the real corpus
#: 1 MiB beats 4 MiB everywhere: MiniLM bf16 0.6630 vs 0.6637, f32 0.8189 vs 0.8208, fp16
#: 0.8466 vs 0.8472, fp8 0.8191 vs 0.8206, MPNet bf16 0.6646 vs 0.6648 (256 KiB is no better
#: on bf16/fp16/fp8). It is also no slower (mpnet-bf16 in process, 2 threads: 303/545 MB/s
#: compress/decompress against 270/469 with 4 MiB) and needs less memory (peak RSS for a 1 GB
#: file with 2 threads: 177/170 MiB against 217/193).
DEFAULT_CHUNK_SIZE = 1 << 20
#: Level 1's default chunk size. Its chunks decode so fast that what each chunk costs
#: beside its kernel (reading its record, handing it to a thread and back, checking it) is a
#: large part of decoding: mpnet-bf16 from tmpfs to a null sink, in process, 2 threads,
#: 94 -> 76 ms with 2 MiB chunks (mpnet-fp16 99 -> 85 ms; minilm-f32 44 -> 45), and 4 MiB
#: no faster. Ratios move by at most 0.0012 either way (minilm-fp8e4m3 0.8179 -> 0.8191,
#: mpnet-bf16 0.66460 -> 0.66459, the GGUF files a little smaller).
FAST_CHUNK_SIZE = 2 << 20
MIN_CHUNK_SIZE = 1 << 10
#: The largest Max_Chunk_Size a version-1 container may declare (docs/FORMAT.md), 64 MiB.
MAX_CHUNK_SIZE = 1 << 26


def check_coder(coder: str | None) -> str:
    """``coder`` checked against :data:`CODERS` (None: "auto"); AnszError otherwise."""
    if coder is None:
        return "auto"
    if coder not in CODERS:
        raise AnszError(f"coder must be one of {', '.join(CODERS)}, got {coder!r}")
    return coder


def check_level(level: int | None) -> int:
    """``level`` checked against :data:`LEVELS` (None: :data:`DEFAULT_LEVEL`)."""
    if level is None:
        return DEFAULT_LEVEL
    if type(level) is not int or level not in LEVELS:
        raise AnszError(f"level must be one of {', '.join(map(str, LEVELS))}, got {level!r}")
    return level


def default_chunk_size(level: int | None) -> int:
    """The chunk size a ``level`` (None: the default level) codes with unless told:
    :data:`FAST_CHUNK_SIZE` at level 1, else :data:`DEFAULT_CHUNK_SIZE`."""
    return FAST_CHUNK_SIZE if level == FAST_LEVEL else DEFAULT_CHUNK_SIZE


def check_chunk_size(chunk_size: int | None, level: int | None = None) -> int:
    """``chunk_size`` checked against [MIN_CHUNK_SIZE, MAX_CHUNK_SIZE] (None: the default
    of ``level``, :func:`default_chunk_size`)."""
    if chunk_size is None:
        return default_chunk_size(level)
    if type(chunk_size) is not int or not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE:
        raise AnszError(f"chunk size must be an integer from {MIN_CHUNK_SIZE} to "
                        f"{MAX_CHUNK_SIZE} bytes, got {chunk_size!r}")
    return chunk_size
