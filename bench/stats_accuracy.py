"""How close ``ansz stats`` predicts what ``ansz compress`` and ``zstd -3`` really write.

For each file (default: every corpus file present, safetensors and GGUF; or the names and
paths given), through the installed commands, each once (their sizes are what is measured):

* ``ansz stats --json FILE``: its predicted ratio for ansz (the default level) and for
  zstd -3, and how long it took;
* ``ansz compress -f -o OUT FILE``: the real container, and how long it took;
* ``zstd -3 -f -o OUT FILE`` (the zstd command; without one, the ``zstandard`` module at
  level 3 on the whole file): the real zstd frame.

The target: every prediction within 1 point (absolute) of the real ratio.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from . import harness as h
from .harness import Table

TITLE = "ansz stats: predicted against real ratios"
DESCRIPTION = "ansz stats' predicted ratios against real ansz compress and zstd -3"
RUNS = 1
WARMUP = 0
TARGET = 0.01  #: largest allowed |predicted - real| ratio


def add_arguments(p) -> None:
    p.add_argument("files", nargs="*",
                   help="corpus names or file paths (default: every corpus file present)")
    p.add_argument("--ansz", help="the ansz command (default: the one of this environment)")


def space_needed(args) -> int:
    return int(1e9)


def _zstd3_size(path: Path, out: Path) -> tuple[int, str]:
    """Bytes of ``zstd -3`` of ``path`` and how they were made."""
    exe = shutil.which("zstd")
    if exe:
        h.run_command([exe, "-q", "-3", "-f", "-o", out, path])
        return out.stat().st_size, "zstd -3"
    import zstandard

    return len(zstandard.ZstdCompressor(level=3).compress(path.read_bytes())), "zstandard 3"


def run(session: h.Session, args) -> list[Table]:
    ansz = h.ansz_command(args.ansz)
    if args.files:
        files = [h.resolve_input(spec, session.models) for spec in args.files]
    else:
        present, missing = h.present_corpus(session.models)
        if not present:
            raise h.BenchError(f"no corpus file in {session.models}: run "
                               "python scripts/fetch_models.py and python scripts/fetch_gguf.py")
        files = [(f.name, f.path(session.models)) for f in present]
        for f in missing:
            session.progress(f"{f.name} missing (run {f.fetch}); left out")
    t = Table("Predicted (ansz stats) against real, in percent of the original size",
              ["file", "size", "ansz: stats", "ansz: real", "error", "zstd -3: stats",
               "zstd -3: real", "error", "stats time", "compress time"])
    worst = 0.0
    zstd_how = ""
    for name, path in files:
        size = path.stat().st_size
        report = session.path("stats.json")
        st = h.run_command([*ansz, "stats", "--json", path], stdout=report)
        pred = json.loads(report.read_text())
        packed = session.path("out.ansz")
        ct = h.run_command([*ansz, "compress", "-q", "-f", "-o", packed, path])
        real = packed.stat().st_size / size
        zsize, zstd_how = _zstd3_size(path, session.path("out.zst"))
        zreal = zsize / size
        err, zerr = pred["ratio"] - real, pred["zstd3_ratio"] - zreal
        worst = max(worst, abs(err), abs(zerr))
        t.add(name, f"{size / 1e6:.1f} MB", f"{100 * pred['ratio']:.2f}", f"{100 * real:.2f}",
              f"{100 * err:+.2f}", f"{100 * pred['zstd3_ratio']:.2f}", f"{100 * zreal:.2f}",
              f"{100 * zerr:+.2f}", f"{st.wall:.2f} s", f"{ct.wall:.2f} s")
        session.progress(f"{name}: ansz {100 * pred['ratio']:.2f}% vs {100 * real:.2f}%, "
                         f"zstd {100 * pred['zstd3_ratio']:.2f}% vs {100 * zreal:.2f}%")
        packed.unlink()
    t.notes.append(f"Errors are predicted minus real, in points. Target: within "
                   f"{100 * TARGET:.0f} point; worst here {100 * worst:.2f} "
                   f"({'met' if worst <= TARGET else 'MISSED'}). Real zstd: `{zstd_how}` on the "
                   "whole file. Times are whole processes, start-up included.")
    return [t]
