"""--cluster on a local Dask cluster of two worker processes (one per module: starting one
takes about a second): a directory of shards compressed and restored byte for byte, a re-run
that skips what is done, a worker killed mid-task (the engine runs the task again and
nothing partial is left), failures reported per file, and the command line's refusals."""

from __future__ import annotations

import concurrent.futures
import json
import logging
import os
import time
from pathlib import Path

import pytest
from helpers import error_lines, invoke, make_model, run

distributed = pytest.importorskip("distributed")

from ansz import api, cluster  # noqa: E402
from ansz.errors import AnszError  # noqa: E402


@pytest.fixture(scope="module")
def address():
    """The scheduler address of a local cluster of two single-threaded worker processes."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None,
                                  silence_logs=logging.CRITICAL) as lc:
        yield lc.scheduler_address


def _shards(root: Path, n: int = 4) -> dict[Path, bytes]:
    """``n`` shards of a model (two in a subdirectory), as a hub lays them out."""
    out = {}
    for i in range(n):
        sub = root / "part2" if i >= n // 2 else root
        sub.mkdir(parents=True, exist_ok=True)
        p = make_model(sub / f"model-{i + 1:05d}-of-{n:05d}.safetensors", "layers", seed=i,
                       n=200_000)
        out[p] = p.read_bytes()
    return out


def _json_lines(stdout: str) -> tuple[list[dict], dict]:
    objs = [json.loads(ln) for ln in stdout.splitlines()]
    assert "totals" in objs[-1]
    return objs[:-1], objs[-1]["totals"]


def test_shards_round_trip_and_rerun_skips(tmp_path, address):
    shards = _shards(tmp_path)
    r = invoke(["compress", "-r", "--cluster", address, "--json", "--chunk-size", "64K",
                tmp_path])
    assert r.exit_code == 0, r.stderr
    files, totals = _json_lines(r.stdout)
    assert totals["done"] == 4 and totals["failed"] == 0 and totals["workers"] == 2
    assert {f["src"] for f in files} == {str(p) for p in shards}
    assert "total: 4 files, 4 compressed" in r.stderr
    for p in shards:  # the same container as ansz compress writes
        api.compress_file(p, tmp_path / "local.ansz", chunk_size=64 << 10, overwrite=True)
        assert Path(f"{p}.ansz").read_bytes() == (tmp_path / "local.ansz").read_bytes()
    (tmp_path / "local.ansz").unlink()
    stamps = {p: os.stat(f"{p}.ansz").st_mtime_ns for p in shards}

    # a re-run skips what verifies; a missing output is made again
    gone = sorted(shards)[1]
    Path(f"{gone}.ansz").unlink()
    r = invoke(["compress", "-r", "--cluster", address, "--json", "--chunk-size", "64K",
                tmp_path])
    assert r.exit_code == 0, r.stderr
    files, totals = _json_lines(r.stdout)
    assert (totals["done"], totals["skipped"]) == (1, 3)
    assert [f["src"] for f in files if f["status"] == "done"] == [str(gone)]
    for p in shards:
        if p != gone:
            assert os.stat(f"{p}.ansz").st_mtime_ns == stamps[p]

    r = invoke(["verify", "-r", "--cluster", address, tmp_path])
    assert r.exit_code == 0 and "total: 4 files, 4 OK" in r.stderr, r.stderr

    for p in shards:
        p.unlink()
    r = invoke(["decompress", "-r", "--cluster", address, tmp_path])
    assert r.exit_code == 0, r.stderr
    for p, data in shards.items():
        assert p.read_bytes() == data
    assert not list(tmp_path.rglob("*.tmp"))


def test_failures_are_reported_per_file(tmp_path, address):
    shards = _shards(tmp_path, 3)
    for p in shards:
        api.compress_file(p, f"{p}.ansz")
        p.unlink()
    bad = sorted(shards)[0]
    blob = bytearray(Path(f"{bad}.ansz").read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    Path(f"{bad}.ansz").write_bytes(bytes(blob))
    r = invoke(["decompress", "-r", "--cluster", address, "--json", tmp_path])
    assert r.exit_code == 1
    files, totals = _json_lines(r.stdout)
    assert (totals["done"], totals["failed"]) == (2, 1)
    failed = [f for f in files if f["status"] == "failed"]
    assert [f["src"] for f in failed] == [f"{bad}.ansz"] and failed[0]["message"]
    lines = error_lines(r.stderr)
    assert len(lines) == 1 and lines[0].startswith(f"ansz: {bad}.ansz: ")
    assert not bad.exists()  # nothing partial
    for p, data in shards.items():
        if p != bad:
            assert p.read_bytes() == data
    assert not list(tmp_path.rglob("*.tmp"))
    # an output in the way that does not verify: kept without -f, replaced with it
    p = sorted(shards)[1]
    p.write_bytes(b"not the original")
    r = invoke(["decompress", "--cluster", address, f"{p}.ansz"])
    assert r.exit_code == 1 and "does not verify" in r.stderr and "use -f" in r.stderr
    assert p.read_bytes() == b"not the original"
    r = invoke(["decompress", "-f", "--cluster", address, f"{p}.ansz"])
    assert r.exit_code == 0 and p.read_bytes() == shards[p]


def _holder_of(path: Path) -> "psutil.Process | None":  # noqa: F821
    """The process (one of this one's descendants) that has ``path`` open."""
    import psutil

    for proc in psutil.Process().children(recursive=True):
        try:
            if any(f.path == str(path) for f in proc.open_files()):
                return proc
        except psutil.Error:
            continue
    return None


def test_a_worker_killed_mid_task_is_retried_and_leaves_nothing(tmp_path, address):
    """The input is first a FIFO that holds the first attempt mid-file (its temporary output
    written to); the FIFO is then replaced by the real file and that attempt's worker
    killed: the engine runs the task again, which removes the temporary and writes the
    container whole."""
    real = make_model(tmp_path / "real.bin", "layers", n=400_000).read_bytes()
    (tmp_path / "real.bin").unlink()
    src = tmp_path / "model.safetensors"
    os.mkfifo(src)
    fd = os.open(src, os.O_RDWR)  # a writer: the worker's open does not wait, its reads do
    try:
        os.write(fd, real[:60_000])  # the header and some chunks, within the pipe's buffer
        task = cluster.FileTask("compress", str(src), f"{src}.ansz",
                                options={"chunk_size": 4096, "threads": 1})
        with cluster.Cluster(address) as c, concurrent.futures.ThreadPoolExecutor(1) as ex:
            pending = ex.submit(c.run, [task])
            deadline = time.monotonic() + 60
            temporary = holder = None
            while holder is None and time.monotonic() < deadline:
                temps = list(tmp_path.glob(".model.safetensors.ansz.*.tmp"))
                if temps and temps[0].stat().st_size > 0:
                    temporary = temps[0]
                    holder = _holder_of(temporary)
                time.sleep(0.02)
            assert holder is not None, "the first attempt never started writing"
            staged = tmp_path / "staged"
            staged.write_bytes(real)
            os.replace(staged, src)  # the retry reads the real file
            holder.kill()
            (result,) = pending.result(timeout=120)
            c.client.wait_for_workers(2, timeout=60)  # the nanny restarted it
    finally:
        os.close(fd)
    assert result.status == "done", result.message
    assert not temporary.exists() and not list(tmp_path.glob("*.tmp"))
    api.decompress_file(f"{src}.ansz", tmp_path / "back")
    assert (tmp_path / "back").read_bytes() == real


def test_an_io_error_that_lasts_is_a_failed_file(tmp_path, address):
    """An OSError on a worker is retried by the engine; one that persists ends as that
    file's failure, naming it, while the other files are done."""
    good = make_model(tmp_path / "good.safetensors")
    unreadable = tmp_path / "dir.safetensors"
    unreadable.mkdir()
    tasks = [cluster.FileTask("compress", str(unreadable), f"{unreadable}.ansz"),
             cluster.FileTask("compress", str(good), f"{good}.ansz")]
    with cluster.Cluster(address) as c:
        bad, ok = c.run(tasks, retries=1)
    assert bad.status == "failed" and "Is a directory" in bad.message
    assert str(unreadable) in bad.message
    assert ok.status == "done" and not (tmp_path / "dir.safetensors.ansz").exists()


def test_command_line_refusals(tmp_path, address):
    p = make_model(tmp_path / "m.safetensors")
    for args, words in (
            (["compress", "--cluster", address, "-c", p], "-c/--stdout"),
            (["compress", "--cluster", address, "--rm", p], "--rm"),
            (["compress", "--cluster", address, "-"], "standard input"),
            (["compress", "--json", p], "--json goes with --cluster"),
            (["compress", "--cluster", "local:0", p], "1 to 1024"),
            (["compress", "--cluster", "tcp://somehost", p], "port"),
            (["compress", "--cluster", address, "--base", p, p], "--base"),
            (["verify", "--cluster", address, "--original", p, f"{p}.ansz"], "--original")):
        r = invoke(args)
        assert r.exit_code == 2 and words in r.stderr, (args, r.stderr)
    assert not (tmp_path / "m.safetensors.ansz").exists()
    r = invoke(["compress", "--cluster", address, tmp_path / "absent.safetensors", p])
    assert r.exit_code == 1 and "absent.safetensors: No such file" in r.stderr
    assert (tmp_path / "m.safetensors.ansz").is_file()  # the others went on


def test_unreachable_scheduler_is_one_error():
    with pytest.raises(AnszError, match="cannot connect"):
        cluster.Cluster("tcp://127.0.0.1:9", timeout=1)


def test_without_the_extra_the_error_names_it(tmp_path):
    blocker = tmp_path / "no-distributed"
    blocker.mkdir()
    (blocker / "distributed.py").write_text("raise ImportError('No module named distributed')\n")
    p = make_model(tmp_path / "m.safetensors")
    proc = run(["compress", "--cluster", "local:1", p],
               env={**os.environ, "PYTHONPATH": str(blocker)})
    lines = error_lines(proc.stderr.decode())
    assert proc.returncode == 1 and lines == [
        "ansz: --cluster needs the cluster extra (pip install 'ansz[cluster]')"]
    assert not (tmp_path / "m.safetensors.ansz").exists()


def test_workers_get_absolute_paths(tmp_path, address, monkeypatch):
    """A worker on another machine has a working directory of its own: a relative operand
    goes to it as an absolute path."""
    make_model(tmp_path / "m.safetensors")
    monkeypatch.chdir(tmp_path)
    r = invoke(["compress", "--cluster", address, "--json", "m.safetensors"])
    assert r.exit_code == 0, r.stderr
    (task,) = [json.loads(line) for line in r.stdout.splitlines() if '"src"' in line]
    assert task["src"] == str(tmp_path / "m.safetensors")
    assert task["dst"] == str(tmp_path / "m.safetensors.ansz")


def test_a_scheduler_without_workers_is_an_error_not_a_hang():
    with distributed.LocalCluster(n_workers=0, dashboard_address=None,
                                  silence_logs=logging.CRITICAL) as lc:
        with pytest.raises(AnszError, match="no workers"):
            cluster.Cluster(lc.scheduler_address, timeout=1)
