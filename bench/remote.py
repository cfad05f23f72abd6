"""Many models, many machines: what ``ansz.open(URL)`` fetches, and ``--cluster``'s speed.

* Lazy reads: ``--file`` (default mpnet-bf16, 219 MB) is compressed once, then served by a
  local HTTP server that answers range requests after ``--latency`` ms each
  (:mod:`bench.rangeserver`), and held in fsspec's ``memory://``. For each, ``ansz.open``
  the URL, then read one tensor (the median-sized one, the largest of the layers, and the
  largest): the bytes fetched and the round trips after opening, against the goal of under
  2% of the file and at most 3 round trips for one tensor. Every tensor read is checked
  against the original.
* Throughput: ``--file``'s tensors split into ``--shards`` files; ``ansz compress -r -f``
  on that directory as plain commands (all cores) and with ``--cluster local:1`` and
  ``local:2`` (start-up of the local cluster included), the outputs removed before every
  run; the round trip is checked.
* Engine overhead: ``--tiny`` small model files (a few tens of kB) through plain
  ``compress -r`` and ``--cluster local:1`` (one worker: the tasks run one after another,
  as the plain command's files do), and the same with one file; the per-file cost is
  (time for all - time for one) / (files - 1), so start-up cancels, and the difference of
  the two is the engine's cost per task.
"""

from __future__ import annotations

import hashlib
import json
import struct
import time
from pathlib import Path

from . import harness as h
from .harness import Case, Table, fmt_s

TITLE = "Many models, many machines: lazy remote reads and --cluster"
DESCRIPTION = ("ansz.open(URL): bytes and round trips for one tensor; compress -r --cluster "
               "with 1 and 2 workers; the engine's cost per task")
RUNS = 3
WARMUP = 0
GOAL_FRACTION = 0.02  #: of the container's bytes, for one tensor
GOAL_ROUND_TRIPS = 3  #: after open, for one tensor


def add_arguments(p) -> None:
    p.add_argument("--file", default="mpnet-bf16", help="corpus name or path (safetensors)")
    p.add_argument("--latency", type=float, default=20.0,
                   help="milliseconds the HTTP server waits before each answer (default 20)")
    p.add_argument("--shards", type=int, default=4, help="files the model is split into")
    p.add_argument("--tiny", type=int, default=40, help="small files for the overhead")
    p.add_argument("--ansz", help="the ansz command (default: this environment's)")


def space_needed(args) -> int:
    return int(1.2e9)


# ---------------------------------------------------------------------------------------------
# Inputs


def split_model(src: Path, out_dir: Path, shards: int) -> list[Path]:
    """Write ``src``'s tensors into ``shards`` safetensors files of about equal size
    (``model-0000K-of-0000N.safetensors``), tensors whole and in file order."""
    spans = h.safetensors_tensors(src)
    total = sum(t.end - t.start for t in spans)
    groups: list[list] = [[] for _ in range(shards)]
    done = 0
    for t in spans:
        k = min(shards - 1, done * shards // max(1, total))
        groups[k].append(t)
        done += t.end - t.start
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    with open(src, "rb") as f:
        for k, group in enumerate(groups):
            entries, offset, blobs = {}, 0, []
            for t in group:
                f.seek(t.start)
                data = f.read(t.end - t.start)
                entries[t.name] = {"dtype": t.dtype, "shape": list(t.shape),
                                   "data_offsets": [offset, offset + len(data)]}
                offset += len(data)
                blobs.append(data)
            text = json.dumps(entries, separators=(",", ":")).encode()
            text += b" " * (-len(text) % 8)
            p = out_dir / f"model-{k + 1:05d}-of-{shards:05d}.safetensors"
            with open(p, "wb") as out:
                out.write(struct.pack("<Q", len(text)) + text)
                for b in blobs:
                    out.write(b)
            paths.append(p)
    return paths


def tiny_models(src: Path, out_dir: Path, n: int) -> list[Path]:
    """``n`` files, each one small real tensor of ``src`` (the smallest bf16 ones of at
    least 1 KiB, in turn)."""
    spans = [t for t in h.safetensors_tensors(src) if t.end - t.start >= 1024]
    spans.sort(key=lambda t: t.end - t.start)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    with open(src, "rb") as f:
        for i in range(n):
            t = spans[i % max(1, min(len(spans), 16))]
            f.seek(t.start)
            data = f.read(t.end - t.start)
            text = json.dumps({t.name: {"dtype": t.dtype, "shape": list(t.shape),
                                        "data_offsets": [0, len(data)]}}).encode()
            text += b" " * (-len(text) % 8)
            p = out_dir / f"tiny-{i:03d}.safetensors"
            p.write_bytes(struct.pack("<Q", len(text)) + text + data)
            paths.append(p)
    return paths


def _digest(paths: list[Path]) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


def _remove_outputs(directory: Path) -> None:
    for p in directory.glob("*.ansz"):
        p.unlink()


# ---------------------------------------------------------------------------------------------
# Lazy reads


def _chosen_tensors(src: Path) -> list[tuple[str, h.TensorSpan]]:
    """The median-sized tensor, the median of those of at least 1 MB (a layer's weight),
    the largest in a layer and the largest."""
    spans = h.safetensors_tensors(src)
    by_size = sorted(spans, key=lambda t: (t.end - t.start, t.name))
    big = [t for t in by_size if t.end - t.start >= 1 << 20]
    layers = [t for t in by_size if "layer" in t.name]
    picks = [("median", by_size[len(by_size) // 2])]
    if big:
        picks.append(("median of ≥ 1 MB", big[len(big) // 2]))
    if layers:
        picks.append(("largest in a layer", layers[-1]))
    picks.append(("largest", by_size[-1]))
    return picks


def lazy_reads(session: h.Session, src: Path, container: Path, latency_ms: float) -> Table:
    import fsspec
    import numpy as np

    import ansz

    from .rangeserver import RangeServer, url_of

    size = container.stat().st_size
    original = src.stat().st_size
    picks = _chosen_tensors(src)
    own = {s["name"]: s["compressed_size"] for s in ansz.read_info(container).segments
           if s["name"] is not None}
    t = Table(f"`ansz.open(URL)` on {src.name} ({original / 1e6:.0f} MB; its container "
              f"{size / 1e6:.0f} MB): one tensor",
              ["store", "read", "tensor MB", "its records", "bytes fetched", "% of container",
               "% of original", "round trips", "requests", "seconds",
               f"< {GOAL_FRACTION:.0%}, ≤ {GOAL_ROUND_TRIPS} trips"])
    mem = fsspec.filesystem("memory")
    mem_path = f"/ansz-bench-{container.name}"
    mem.pipe(mem_path, container.read_bytes())
    with open(src, "rb") as f, RangeServer(container.parent, latency=latency_ms / 1e3) as server:
        stores = [(f"http, +{latency_ms:g} ms a request", url_of(server, container)),
                  ("memory://", f"memory://{mem_path}")]
        for store, url in stores:
            session.progress(f"lazy reads: {store}")
            start = time.perf_counter()
            server.reset()
            with ansz.open(url) as af:
                opened = af.io_counters()
                t.add(store, "open: header, trailer, index", "—", "—", f"{opened['bytes']:,}",
                      f"{100 * opened['bytes'] / size:.3f}%",
                      f"{100 * opened['bytes'] / original:.3f}%", opened["round_trips"],
                      opened["requests"], f"{time.perf_counter() - start:.3f}", "—")
                af.get_tensor(min(own, key=own.get))  # untimed: the decoders' first use
                for label, span in picks:
                    before = af.io_counters()
                    start = time.perf_counter()
                    arr = af.get_tensor(span.name)
                    seconds = time.perf_counter() - start
                    after = af.io_counters()
                    f.seek(span.start)
                    if np.asarray(arr).tobytes() != f.read(span.end - span.start):
                        raise h.BenchError(f"{span.name} read from {url} differs")
                    got = after["bytes"] - before["bytes"]
                    trips = after["round_trips"] - before["round_trips"]
                    ok = got / size < GOAL_FRACTION and trips <= GOAL_ROUND_TRIPS
                    t.add(store, f"{label}: `{span.name}`",
                          f"{(span.end - span.start) / 1e6:.2f}", f"{own[span.name]:,}",
                          f"{got:,}", f"{100 * got / size:.3f}%",
                          f"{100 * got / original:.3f}%", trips,
                          after["requests"] - before["requests"], f"{seconds:.3f}",
                          "yes" if ok else "**no**")
            if store.startswith("http"):
                t.notes.append(f"HTTP: the server answered {server.requests} requests and sent "
                               f"{server.bytes_sent:,} bytes for the open and the "
                               f"{len(picks)} reads (the counters above agree).")
    mem.rm(mem_path)
    t.notes += [
        "Round trips after open: calls that wait for the store (fsspec's HTTP file system "
        "asks a batch of ranges at once: one round trip; memory:// is synchronous, one per "
        "range). Opening is the size (HEAD) and the first and last 64 KiB in one round trip.",
        "Its records: the tensor's chunk records in the container; a read fetches those and "
        "nothing else (no range is widened; fewer where some lie in the file's last 64 KiB, "
        "held since open), so a tensor whose own records are over 2% of "
        "the file cannot meet that goal (the largest here, and a layer's largest when it is "
        "over 2% of the model). The first read after open is an untimed one of the smallest "
        "tensor: the decoders' first use."]
    return t


# ---------------------------------------------------------------------------------------------
# Cluster


def throughput(session: h.Session, A: list[str], src: Path, shards: int) -> Table:
    d = session.path("shards")
    paths = split_model(src, d, shards)
    originals = _digest(paths)
    total = sum(p.stat().st_size for p in paths)
    cases = [Case("plain", lambda _: h.run_command([*A, "compress", "-q", "-f", "-r", d]),
                  setup=lambda: _remove_outputs(d))]
    reports = {n: session.path(f"local-{n}.json") for n in (1, 2)}
    for n in (1, 2):
        cases.append(Case(f"local:{n}", lambda _, n=n: h.run_command(
            [*A, "compress", "-q", "-r", "--json", "--cluster", f"local:{n}", d],
            stdout=reports[n]), setup=lambda: _remove_outputs(d)))
    rounds = session.interleave(cases)
    for p in paths:  # the round trip, from the last run's containers
        p.rename(p.with_name(p.name + ".orig"))
    h.run_command([*A, "decompress", "-q", "-r", "--cluster", "local:2", d])
    if _digest(paths) != originals:
        raise h.BenchError("the shards did not come back byte for byte")
    start_1, start_2 = _start_up(1), _start_up(2)
    t = Table(f"`ansz compress -r` on {src.name} split into {shards} files "
              f"({total / 1e6:.0f} MB)", ["command", "workers", "time", "MB/s",
                                          "× plain", "cluster start-up", "tasks per worker",
                                          "MB/s while busy"])
    plain = rounds["plain"]
    t.add("`ansz compress -r -f DIR` (all cores)", "—", fmt_s(plain.median),
          f"{plain.mbps(total):.0f}", "1.00", "—", "—", "—")
    for n, start in ((1, start_1), (2, start_2)):
        r = rounds[f"local:{n}"]
        totals = json.loads(reports[n].read_text().splitlines()[-1])["totals"]
        busy = totals["task_seconds"] / totals["workers"]
        t.add(f"`ansz compress -r --cluster local:{n} DIR`", n, fmt_s(r.median),
              f"{r.mbps(total):.0f}", f"{plain.median / r.median:.2f}", f"{start:.2f} s",
              fmt_s(busy), f"{total / 1e6 / max(1e-9, busy):.0f}")
    t.notes = [f"Whole commands, median of {len(plain.times)}; the outputs are removed before "
               "each run (a run over finished outputs skips them). A worker's tasks use the "
               "machine's cores over its workers (2 threads with one worker, 1 each with "
               "two), so every row uses all cores. Cluster start-up is a local cluster's "
               "(its worker processes started, ansz not yet imported in them), measured on "
               "its own in this process, and is inside the --cluster times. Tasks per worker: "
               "the tasks' seconds added up (the last run's --json totals) over the workers; "
               "MB/s while busy is the files' bytes over that: the engine's fixed costs "
               "(importing it, starting and stopping the cluster, each worker's first import "
               "of ansz) left out."]
    return t


def _start_up(n: int) -> float:
    from ansz import cluster

    start = time.perf_counter()
    with cluster.Cluster(f"local:{n}"):
        pass
    return time.perf_counter() - start


def overhead(session: h.Session, A: list[str], src: Path, n: int) -> Table:
    many = session.path("tiny")
    one = session.path("tiny-one")
    paths = tiny_models(src, many, n)
    tiny_models(src, one, 1)
    mean_size = sum(p.stat().st_size for p in paths) / len(paths)
    cases = []
    for label, extra in (("plain", []), ("cluster", ["--cluster", "local:1"])):
        for d, tag in ((many, "many"), (one, "one")):
            force = ["-f"] if not extra else []
            cases.append(Case(f"{label} {tag}", lambda _, d=d, extra=extra, force=force:
                              h.run_command([*A, "compress", "-q", "-r", *force, *extra, d]),
                              setup=lambda d=d: _remove_outputs(d)))
    rounds = session.interleave(cases)

    def per_file(label: str) -> float:
        return (rounds[f"{label} many"].median - rounds[f"{label} one"].median) / (n - 1)

    plain, clus = per_file("plain"), per_file("cluster")
    t = Table(f"The engine's cost per task: {n} files of {mean_size / 1e3:.0f} kB",
              ["command", f"{n} files", "1 file", "per file", "engine per task"])
    t.add("`ansz compress -r -f DIR`", fmt_s(rounds["plain many"].median),
          fmt_s(rounds["plain one"].median), f"{plain * 1e3:.1f} ms", "—")
    t.add("`ansz compress -r --cluster local:1 DIR`", fmt_s(rounds["cluster many"].median),
          fmt_s(rounds["cluster one"].median), f"{clus * 1e3:.1f} ms",
          f"{(clus - plain) * 1e3:.1f} ms")
    t.notes = ["Per file: (time for all − time for one) / (files − 1), so start-up cancels. "
               "One worker runs its tasks one after another, as the plain command does; "
               "a task's cost beyond the plain command's is the engine's round trip, the "
               "check for an existing output and the report back."]
    return t


def run(session: h.Session, args) -> list[Table]:
    A = h.ansz_command(args.ansz)
    name, src = h.resolve_input(args.file, session.models)
    container = session.path(f"{src.name}.ansz")
    session.progress(f"compressing {src.name}")
    h.run_command([*A, "compress", "-q", "-f", "-o", container, src])
    tables = [lazy_reads(session, src, container, args.latency)]
    container.unlink()
    tables.append(throughput(session, A, src, args.shards))
    tables.append(overhead(session, A, src, args.tiny))
    return tables
