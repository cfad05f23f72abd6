"""Peak memory and speed of the ``ansz`` command on a checkpoint-sized file, per chunk size.

Builds a safetensors file of about ``--gb`` GB from real weights (``--file``'s bf16 tensors,
default mpnet-bf16, repeated under new names, the signs of each later copy flipped at random
so that no chunk repeats another: harness.replicate_tensors) on tmpfs, then for each
``--chunk-sizes`` (default the default chunk size) runs ``ansz compress`` and ``ansz
decompress`` with ``-T --threads`` as whole processes
(harness.run_command: wall, user, sys, peak RSS of the command alone), the chunk sizes
interleaved, and checks the round trip. The budget: peak RSS under 300 MiB for a 1 GB file
with 2 threads.
"""

from __future__ import annotations


from . import harness as h
from .harness import Case, Table, fmt_s

TITLE = "Memory: peak RSS of the command per chunk size"
DESCRIPTION = "peak RSS and speed of ansz compress/decompress on a ~1 GB file, per chunk size"
RUNS = 1
WARMUP = 0
BUDGET_MIB = 300


def add_arguments(p) -> None:
    p.add_argument("--gb", type=float, default=1.0, help="size of the built file (default 1)")
    p.add_argument("--file", default="mpnet-bf16", help="corpus name or path of the weights")
    p.add_argument("--chunk-sizes", default="1M",
                   help="comma-separated chunk sizes (default 1M, the default; "
                        "e.g. 1M,2M,4M,8M)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--ansz", help="the ansz command (default: this environment's)")


def space_needed(args) -> int:
    return int(args.gb * 1e9 * 3.5)


def run(session: h.Session, args) -> list[Table]:
    A = h.ansz_command(args.ansz)
    name, src = h.resolve_input(args.file, session.models)
    model = session.path("model.safetensors")
    size = h.replicate_tensors(src, model, int(args.gb * 1e9))
    sha = h.sha256_file(model)
    T = str(args.threads)
    sizes = [c.strip() for c in args.chunk_sizes.split(",") if c.strip()]
    cases = []
    for cs in sizes:
        packed, back = session.path(f"{cs}.ansz"), session.path(f"{cs}.out")
        cases.append(Case(f"{cs} c", lambda _, p=packed, cs=cs: h.run_command(
            [*A, "compress", "-q", "-f", "-T", T, "--chunk-size", cs, "-o", p, model]),
            setup=lambda p=packed: p.unlink(missing_ok=True)))
        cases.append(Case(f"{cs} d", lambda _, p=packed, b=back: h.run_command(
            [*A, "decompress", "-q", "-f", "-T", T, "-o", b, p]),
            setup=lambda b=back: b.unlink(missing_ok=True)))
    # The first round runs in the listed order, each compress before its decompress; a
    # later round that starts with a decompress reads the previous round's container (the
    # same bytes: the output does not depend on timing).
    rounds = session.interleave(cases)
    t = Table(f"{name}'s bf16 tensors to {size / 1e9:.2f} GB, `-T {T}`",
              ["chunk", "ratio", "compress", "MB/s", "peak RSS MiB", "decompress", "MB/s",
               "peak RSS MiB", f"≤ {BUDGET_MIB} MiB"])
    for cs in sizes:
        packed, back = session.path(f"{cs}.ansz"), session.path(f"{cs}.out")
        if h.sha256_file(back) != sha:
            raise h.BenchError(f"chunk size {cs}: the round trip differs")
        c, d = rounds[f"{cs} c"], rounds[f"{cs} d"]
        peak = max(c.max_rss, d.max_rss) / 2**20
        t.add(cs, f"{packed.stat().st_size / size:.4f}", fmt_s(c.median), f"{c.mbps(size):.0f}",
              f"{c.max_rss / 2**20:.0f}", fmt_s(d.median), f"{d.mbps(size):.0f}",
              f"{d.max_rss / 2**20:.0f}", "yes" if peak <= BUDGET_MIB else "**no**")
        packed.unlink()
        back.unlink()
    t.notes = [f"Whole commands on tmpfs, start-up included; peak RSS is the command's own "
               f"(largest over the runs). The budget: at most {BUDGET_MIB} MiB for a 1 GB file "
               "with 2 threads."]
    return [t]
