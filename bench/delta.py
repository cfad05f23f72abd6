"""A fine-tune and a training checkpoint compressed against their base, beside ansz alone and
``zstd --patch-from=BASE``, in one run.

Data: the files ``scripts/make_finetunes.py`` makes (all-MiniLM-L6-v2 trained 300 AdamW
steps, fp32 and bf16, with a checkpoint every 50 steps), in ``--dir`` (default
``<models>/finetune``). Pairs (``--pairs``, ``TARGET:BASE`` stems): the fine-tune against the
base, and a checkpoint against the one before. For each pair and dtype:

* how close the target is to its base: the share of float elements whose sign and exponent
  are unchanged, and the relative L2 change ``|new - old| / |old|``;
* ratios (container / target size): ``ansz --base``, ``ansz`` alone, and the zstd command
  line with ``--patch-from=BASE`` at each ``--zstd-level``;
* decoding, file to file on two threads, interleaved: ``ansz decompress --base`` against
  ``ansz decompress`` of the container coded alone (``ansz.decompress_file``, in process, as
  the levels benchmark does), and ``zstd -d --patch-from`` (a process, single-threaded as
  zstd decodes).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from . import harness as h
from .harness import Case, Table

TITLE = "Fine-tunes and checkpoints against their base"
DESCRIPTION = "ansz --base against ansz alone and zstd --patch-from, on a fine-tune and a checkpoint"
RUNS = 5
WARMUP = 1
DEFAULT_PAIRS = "finetune:base,ckpt-0150:ckpt-0100"


def add_arguments(p) -> None:
    p.add_argument("--dir", help="the files of scripts/make_finetunes.py (default "
                                 "<models>/finetune)")
    p.add_argument("--pairs", default=DEFAULT_PAIRS,
                   help=f"TARGET:BASE file stems, comma-separated (default {DEFAULT_PAIRS})")
    p.add_argument("--dtypes", default="bf16,f32", help="dtypes (default bf16,f32)")
    p.add_argument("--zstd-levels", default="3",
                   help="zstd --patch-from levels, comma-separated (default 3; 19 takes "
                        "minutes per fp32 file)")


def space_needed(args) -> int:
    return int(1.5e9)


def closeness(old: Path, new: Path) -> tuple[float, float]:
    """(share of float elements with sign and exponent unchanged, relative L2 change)."""
    import ml_dtypes
    from safetensors.numpy import load_file

    a, b = load_file(str(old)), load_file(str(new))
    n = same = 0
    diff2 = norm2 = 0.0
    for name, x in a.items():
        if x.dtype not in (np.float32, ml_dtypes.bfloat16) or name not in b:
            continue
        y = b[name]
        bits, mant = (np.uint16, 7) if x.itemsize == 2 else (np.uint32, 23)
        ux, uy = x.view(bits).ravel(), y.view(bits).ravel()
        n += ux.size
        same += int(np.count_nonzero((ux >> mant) == (uy >> mant)))
        fx, fy = x.astype(np.float64), y.astype(np.float64)
        diff2 += float(np.sum((fy - fx) ** 2))
        norm2 += float(np.sum(fx ** 2))
    if not n:
        raise h.BenchError(f"{new.name}: no float tensors shared with {old.name}")
    return same / n, (diff2 / norm2) ** 0.5


def measure(session: h.Session, directory: Path, target: str, base: str, dtype: str,
            zstd_levels: list[int]) -> tuple[list, dict]:
    import ansz

    src = directory / f"{target}-{dtype}.safetensors"
    ref = directory / f"{base}-{dtype}.safetensors"
    for path in (src, ref):
        if not path.is_file():
            raise h.BenchError(f"{path}: missing (run scripts/make_finetunes.py --out "
                               f"{directory})")
    n = src.stat().st_size
    label = f"{target} / {base} {dtype}"
    session.progress(f"{label}: coding")
    delta = session.path(f"{target}-{dtype}.delta.ansz")
    alone = session.path(f"{target}-{dtype}.ansz")
    ratio = {"ansz --base": ansz.compress_file(src, delta, base=ref, threads=2,
                                               overwrite=True).ratio,
             "ansz": ansz.compress_file(src, alone, threads=2, overwrite=True).ratio}
    out = session.path(f"{target}-{dtype}.out")
    zout = session.path(f"{target}-{dtype}.zout")
    zstd = shutil.which("zstd")
    frames = {}
    for level in zstd_levels:
        if zstd is None:
            raise h.BenchError("zstd is not installed (its --patch-from is the reference)")
        frame = session.path(f"{target}-{dtype}.{level}.zst")
        h.run_command([zstd, "-q", "-f", f"-{level}", f"--patch-from={ref}", src, "-o",
                       frame])
        frames[level] = frame
        ratio[f"zstd -{level} --patch-from"] = frame.stat().st_size / n
    cases = [Case("ansz --base d", lambda: ansz.decompress_file(delta, out, base=ref,
                                                               threads=2, overwrite=True)),
             Case("ansz d", lambda: ansz.decompress_file(alone, out, threads=2,
                                                        overwrite=True))]
    for level, frame in frames.items():
        cases.append(Case(f"zstd -{level} d", lambda f=frame: h.run_command(
            [zstd, "-q", "-d", "-f", f"--patch-from={ref}", f, "-o", zout])))
    rounds = session.interleave(cases)
    want = h.sha256_file(src)
    ansz.decompress_file(delta, out, base=ref, overwrite=True)
    if h.sha256_file(out) != want:
        raise h.BenchError(f"{label}: ansz --base did not restore the file")
    for level, frame in frames.items():
        h.run_command([zstd, "-q", "-d", "-f", f"--patch-from={ref}", frame, "-o", zout])
        if h.sha256_file(zout) != want:
            raise h.BenchError(f"{label}: zstd --patch-from did not restore the file")
    same, rel = closeness(ref, src)
    speeds = {c.name: rounds[c.name].mbps(n) for c in cases}
    speeds["ratio"] = rounds.speedup("ansz --base d", "ansz d").median
    return [label, f"{same:.4f}", f"{rel:.2e}"], {"ratio": ratio, "speed": speeds}


def run(session: h.Session, args) -> list[Table]:
    directory = Path(args.dir) if args.dir else session.models / "finetune"
    pairs = [p.split(":") for p in args.pairs.split(",") if p]
    if any(len(p) != 2 for p in pairs):
        raise h.BenchError(f"--pairs: {args.pairs!r} is not TARGET:BASE,...")
    levels = [int(x) for x in args.zstd_levels.split(",") if x]
    zcols = [f"zstd -{lv} --patch-from" for lv in levels]
    sizes = Table("Ratio (container / file): against the base, alone, and zstd --patch-from",
                  ["pair", "sign+exp unchanged", "rel. L2 change", "ansz --base", "ansz",
                   *zcols, "ansz alone / --base"])
    speed = Table("Decoding file to file (MB/s of the restored file, median)",
                  ["pair", "ansz --base", "ansz", "--base / alone",
                   *[f"zstd -{lv} -d --patch-from" for lv in levels]])
    for target, base in pairs:
        for dtype in args.dtypes.split(","):
            head, got = measure(session, directory, target, base, dtype, levels)
            r, s = got["ratio"], got["speed"]
            sizes.add(*head, f"{r['ansz --base']:.4f}", f"{r['ansz']:.4f}",
                      *[f"{r[c]:.4f}" for c in zcols],
                      f"{r['ansz'] / r['ansz --base']:.2f}×")
            speed.add(head[0], f"{s['ansz --base d']:.0f}", f"{s['ansz d']:.0f}",
                      f"{s['ratio']:.2f}×", *[f"{s[f'zstd -{lv} d']:.0f}" for lv in levels])
    sizes.notes = ["Closeness over the float tensors. zstd runs with --patch-from=BASE (its "
                   "window the whole base)."]
    speed.notes = ["ansz on two threads through ansz.decompress_file (each chunk's base bytes "
                   "read with pread and checked by xxh3); zstd -d is one process, one thread. "
                   "`--base / alone`: the median per-round speed of decoding against the "
                   "base over decoding the file coded alone."]
    return [sizes, speed]
