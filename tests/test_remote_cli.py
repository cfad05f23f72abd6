"""URLs on the command line: compress, decompress, verify and info of memory:// (in
process), HTTP and file:// URLs (the installed command), and the one-line error without the
remote extra."""

from __future__ import annotations

import json
import os
import uuid

import pytest
from helpers import error_lines, invoke, make_bytes, make_model, run

fsspec = pytest.importorskip("fsspec")


@pytest.fixture
def mem():
    fs = fsspec.filesystem("memory")
    root = f"/c-{uuid.uuid4().hex[:12]}"
    fs.mkdir(root)
    yield fs, root
    if fs.exists(root):
        fs.rm(root, recursive=True)


def test_directory_of_urls_round_trip(tmp_path, mem):
    fs, root = mem
    originals = {}
    for i, rel in enumerate(["m0.safetensors", "a/m1.safetensors", "b/c/m2.safetensors"]):
        data = make_model(tmp_path / f"{i}.safetensors", seed=i).read_bytes()
        originals[rel] = data
        fs.pipe(f"{root}/{rel}", data)
    fs.pipe(f"{root}/a/notes.txt", b"not a model")
    r = invoke(["compress", "-r", f"memory://{root}"])
    assert r.exit_code == 0, r.stderr
    assert "3 files compressed" in r.stderr
    assert not fs.exists(f"{root}/a/notes.txt.ansz")
    r = invoke(["verify", "-r", "--json", f"memory://{root}"])
    assert r.exit_code == 0, r.stderr
    lines = [json.loads(ln) for ln in r.stdout.splitlines()]
    assert [ln["ok"] for ln in lines] == [True] * 3
    # the walk's order: a directory's own files, then its subdirectories'
    assert [ln["path"] for ln in lines] == [
        f"memory://{root}/{rel}.ansz" for rel in originals]
    for rel in originals:
        fs.rm(f"{root}/{rel}")
    r = invoke(["decompress", "-r", f"memory://{root}"])
    assert r.exit_code == 0, r.stderr
    for rel, data in originals.items():
        assert fs.cat(f"{root}/{rel}") == data
    # again: every output exists, nothing is replaced without -f
    r = invoke(["decompress", "-r", f"memory://{root}"])
    assert r.exit_code == 1 and len(error_lines(r.stderr)) == 3
    assert all("already exists (use -f to overwrite)" in ln for ln in error_lines(r.stderr))
    r = invoke(["info", "--json", f"memory://{root}/m0.safetensors.ansz"])
    assert r.exit_code == 0 and json.loads(r.stdout)["original_size"] == len(
        originals["m0.safetensors"])


def test_local_and_remote_operands_mix(tmp_path, mem):
    fs, root = mem
    src = make_bytes(tmp_path / "x.bin", 100_000)
    r = invoke(["compress", "-o", f"memory://{root}/x.ansz", src])
    assert r.exit_code == 0, r.stderr
    r = invoke(["decompress", "-o", tmp_path / "back", f"memory://{root}/x.ansz"])
    assert r.exit_code == 0, r.stderr
    assert (tmp_path / "back").read_bytes() == src.read_bytes()
    r = invoke(["verify", "--original", src, f"memory://{root}/x.ansz"])
    assert r.exit_code == 0 and ": OK" in r.stdout
    r = invoke(["compress", "--rm", "-o", f"memory://{root}/y.ansz", tmp_path / "back"])
    assert r.exit_code == 0 and not (tmp_path / "back").exists()
    assert fs.exists(f"{root}/y.ansz")
    r = invoke(["decompress", "-c", f"memory://{root}/y.ansz"])
    assert r.exit_code == 0 and r.stdout_bytes == src.read_bytes()


def test_missing_remote_input_is_one_line(mem):
    fs, root = mem
    r = invoke(["compress", f"memory://{root}/absent.safetensors"])
    assert r.exit_code == 1
    assert error_lines(r.stderr) == [
        f"ansz: memory://{root}/absent.safetensors: No such file or directory"]
    r = invoke(["stats", f"memory://{root}/absent.safetensors"])
    assert r.exit_code == 2 and "needs local files, not URLs" in r.stderr
    assert fs.ls(root, detail=False) == []


def test_http_and_file_urls_with_the_installed_command(tmp_path):
    from bench.rangeserver import RangeServer, url_of

    src = make_model(tmp_path / "m.safetensors", "layers", n=200_000)
    assert run(["compress", "-q", f"file://{src}"]).returncode == 0
    container = tmp_path / "m.safetensors.ansz"
    assert container.is_file()
    with RangeServer(tmp_path) as server:
        url = url_of(server, container)
        proc = run(["decompress", "-o", tmp_path / "back", url])
        assert proc.returncode == 0, proc.stderr
        assert (tmp_path / "back").read_bytes() == src.read_bytes()
        proc = run(["verify", url])
        assert proc.returncode == 0 and proc.stdout.decode().endswith(": OK\n")
        proc = run(["info", "--json", url])
        assert json.loads(proc.stdout)["compressed_size"] == container.stat().st_size
        proc = run(["decompress", "-o", tmp_path / "nope", f"{server.url}/absent.ansz"])
        assert proc.returncode == 1 and len(error_lines(proc.stderr.decode())) == 1
    assert not (tmp_path / "nope").exists()


def test_without_the_extra_the_error_names_it(tmp_path):
    blocker = tmp_path / "no-fsspec"
    blocker.mkdir()
    (blocker / "fsspec.py").write_text("raise ImportError('No module named fsspec')\n")
    env = {**os.environ, "PYTHONPATH": str(blocker)}
    src = make_bytes(tmp_path / "x.bin")
    for args in (["compress", "s3://bucket/model.safetensors"],
                 ["compress", "-o", "gs://bucket/x.ansz", src],
                 ["info", "hf://org/model/m.safetensors.ansz"]):
        proc = run(args, env=env)
        lines = error_lines(proc.stderr.decode())
        assert proc.returncode == 1 and len(lines) == 1, proc.stderr
        assert "pip install 'ansz[remote]'" in lines[0]
    proc = run(["compress", "-q", src], env=env)  # local files need no extra
    assert proc.returncode == 0 and (tmp_path / "x.bin.ansz").is_file()
