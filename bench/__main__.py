"""``python -m bench NAME [options]``: run one benchmark (or ``scoreboard``: all of
BENCHMARKS.md's) and print its stamped markdown tables."""

from __future__ import annotations

import argparse
import importlib
import os
import shlex
import sys
from pathlib import Path

from . import BENCHMARKS, SCOREBOARD
from . import harness as h

DEFAULT_OUTPUT = h.REPO / "BENCHMARKS.md"


def _module(name: str):
    return importlib.import_module(BENCHMARKS[name])


def _common(p: argparse.ArgumentParser, mod=None) -> None:
    runs = f" (default {mod.RUNS})" if mod else ""
    warm = f" (default {mod.WARMUP})" if mod else ""
    p.add_argument("--runs", type=int, help=f"timed runs per case{runs}")
    p.add_argument("--warmup", type=int, help=f"untimed warm-up runs per case{warm}")
    p.add_argument("--models", help=f"corpus directory (default ${h.MODELS_ENV}, else "
                                    f"{h.DEFAULT_MODELS})")
    p.add_argument("--tmp-dir", help=f"where temporary files go (default ${h.TMPDIR_ENV}, "
                                     "else a tmpfs with room, else the system's)")
    p.add_argument("--write", nargs="?", const=str(DEFAULT_OUTPUT), metavar="FILE",
                   help="also write the tables into their section of FILE "
                        "(default BENCHMARKS.md)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    ap.add_argument("--list", action="store_true", help="list the benchmarks")
    sub = ap.add_subparsers(dest="name", metavar="NAME")
    for name in BENCHMARKS:
        mod = _module(name)
        p = sub.add_parser(name, help=mod.DESCRIPTION, description=mod.__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        mod.add_arguments(p)
        _common(p, mod)
    p = sub.add_parser("scoreboard", help=f"run {', '.join(SCOREBOARD)} with their defaults",
                       description="Run the benchmarks of BENCHMARKS.md's scoreboard "
                                   f"({', '.join(SCOREBOARD)}), one after the other, each "
                                   "with its default options.")
    _common(p)
    return ap


def run_one(name: str, args: argparse.Namespace, command: str,
            git: tuple[str, bool | None]) -> str:
    """Run benchmark ``name`` with ``args``; returns its report (and writes it if asked).
    ``git``: the commit and tree state when the command started."""
    mod = _module(name)
    need = mod.space_needed(args) if hasattr(mod, "space_needed") else 0
    tmp = h.choose_tmpdir(args.tmp_dir, need_bytes=need)
    runs = args.runs if args.runs is not None else mod.RUNS
    warmup = args.warmup if args.warmup is not None else mod.WARMUP
    if runs < 1 or warmup < 0:
        raise h.BenchError("--runs must be at least 1 and --warmup at least 0")
    info = h.machine_info(git=git)
    with h.workdir_in(tmp) as work:
        session = h.Session(command, info, h.models_dir(args.models), tmp, work, runs, warmup,
                            args.quiet)
        tables = mod.run(session, args)
    section, title = mod.section(args) if hasattr(mod, "section") else (name, mod.TITLE)
    report = h.render_report(tables, info, command, tmp, heading=title,
                             load_after=h.load_average())
    if args.write:
        h.write_section(Path(args.write), section, report)
    return report


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ap = parser()
    args = ap.parse_args(argv)
    if args.list or not args.name:
        for name in BENCHMARKS:
            print(f"{name:<10} {_module(name).DESCRIPTION}")
        print(f"{'scoreboard':<10} runs {', '.join(SCOREBOARD)}: BENCHMARKS.md's tables")
        return 0
    command = shlex.join(["python", "-m", "bench", *argv])
    git = h.git_state()  # before --write changes BENCHMARKS.md
    try:
        if args.name == "scoreboard":
            for name in SCOREBOARD:
                defaults = ap.parse_args([name])
                for opt in ("runs", "warmup", "models", "tmp_dir", "write", "quiet"):
                    setattr(defaults, opt, getattr(args, opt))
                print(run_one(name, defaults, command, git), flush=True)
        else:
            print(run_one(args.name, args, command, git), flush=True)
    except h.BenchError as e:
        print(f"bench: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130
    if args.write:
        print(f"wrote {os.path.relpath(args.write)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
