"""Files named by URL through the API: round trips over memory://, file:// and a local HTTP
server, the error without the remote extra, atomic outputs, and what ansz.open(URL) fetches.
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
from helpers import leftovers, make_bytes, make_model

import ansz
from ansz import api
from ansz.errors import AnszError, FormatError, OutputExistsError

fsspec = pytest.importorskip("fsspec")


@pytest.fixture
def mem():
    """A fresh directory of fsspec's in-memory file system: ``(file system, "memory://DIR")``;
    removed afterwards."""
    fs = fsspec.filesystem("memory")
    root = f"/t-{uuid.uuid4().hex[:12]}"
    fs.mkdir(root)
    yield fs, f"memory://{root}"
    if fs.exists(root):
        fs.rm(root, recursive=True)


def _names(fs, url: str) -> list[str]:
    return sorted(p.rpartition("/")[2] for p in fs.ls(url[len("memory://"):], detail=False))


def _zoo_tensors(n: int = 24, elements: int = 1 << 17) -> dict[str, np.ndarray]:
    """``n`` bf16 tensors of ``elements`` each (weights-like)."""
    r = np.random.default_rng(7)
    return {f"layer.{i:02d}.weight": (r.standard_normal(elements) * 0.02).astype(
        ml_dtypes.bfloat16) for i in range(n)}


# ---------------------------------------------------------------------------------------------
# Round trips


def test_memory_round_trip_byte_for_byte(tmp_path, mem):
    fs, root = mem
    src = make_model(tmp_path / "m.safetensors", "layers", n=400_000)
    fs.pipe(f"{root[9:]}/m.safetensors", src.read_bytes())
    rep = api.compress_file(f"{root}/m.safetensors", f"{root}/m.safetensors.ansz",
                            chunk_size=64 << 10)
    assert rep.format == "safetensors" and rep.original_size == src.stat().st_size
    assert rep.compressed_size == fs.size(f"{root[9:]}/m.safetensors.ansz")
    # the same container as from the local file
    api.compress_file(src, tmp_path / "local.ansz", chunk_size=64 << 10)
    assert fs.cat(f"{root[9:]}/m.safetensors.ansz") == (tmp_path / "local.ansz").read_bytes()
    api.decompress_file(f"{root}/m.safetensors.ansz", f"{root}/back.safetensors")
    assert fs.cat(f"{root[9:]}/back.safetensors") == src.read_bytes()
    assert api.verify_file(f"{root}/m.safetensors.ansz", f"{root}/m.safetensors").ok
    info = api.read_info(f"{root}/m.safetensors.ansz")
    assert info.original_size == src.stat().st_size and info.chunk_count > 4
    assert _names(fs, root) == ["back.safetensors", "m.safetensors", "m.safetensors.ansz"]


def test_local_to_remote_and_back(tmp_path, mem):
    fs, root = mem
    src = make_bytes(tmp_path / "notes.bin", 200_000)
    api.compress_file(src, f"{root}/notes.bin.ansz")
    api.decompress_file(f"{root}/notes.bin.ansz", tmp_path / "back.bin")
    assert (tmp_path / "back.bin").read_bytes() == src.read_bytes()
    bad = api.verify_file(f"{root}/notes.bin.ansz", tmp_path / "back.bin")
    assert bad.ok
    (tmp_path / "back.bin").write_bytes(b"x" + src.read_bytes()[1:])
    differs = api.verify_file(f"{root}/notes.bin.ansz", tmp_path / "back.bin")
    assert not differs.ok and "differ" in differs.message and "byte 0" in differs.message


def test_file_urls_are_local_paths(tmp_path):
    src = make_model(tmp_path / "m.safetensors")
    rep = api.compress_file(f"file://{src}", f"file://{tmp_path}/m.ansz")
    assert rep.dst == f"{tmp_path}/m.ansz" and (tmp_path / "m.ansz").is_file()
    api.decompress_file(f"file://{tmp_path}/m.ansz", f"file://localhost{tmp_path}/back")
    assert (tmp_path / "back").read_bytes() == src.read_bytes()
    with ansz.open(f"file://{tmp_path}/m.ansz") as f:
        assert f.io_counters() is None  # a local file: no requests to count


def test_http_round_trip(tmp_path):
    from bench.rangeserver import RangeServer, url_of

    src = make_model(tmp_path / "m.safetensors", "layers", n=200_000)
    api.compress_file(src, tmp_path / "m.safetensors.ansz", chunk_size=64 << 10)
    with RangeServer(tmp_path) as server:
        url = url_of(server, tmp_path / "m.safetensors.ansz")
        api.decompress_file(url, tmp_path / "back")
        assert (tmp_path / "back").read_bytes() == src.read_bytes()
        assert api.verify_file(url, url_of(server, src)).ok
        rep = api.compress_file(url_of(server, src), tmp_path / "again.ansz",
                                chunk_size=64 << 10)
        assert rep.format == "safetensors"
    assert (tmp_path / "again.ansz").read_bytes() == (tmp_path / "m.safetensors.ansz").read_bytes()


# ---------------------------------------------------------------------------------------------
# Errors


def test_without_the_extra_a_url_names_it(monkeypatch, tmp_path):
    for name in [m for m in sys.modules if m == "fsspec" or m.startswith("fsspec.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "fsspec", None)  # import fsspec: ImportError
    src = make_bytes(tmp_path / "x.bin")
    for call in (lambda: api.compress_file("s3://bucket/x.bin", tmp_path / "x.ansz"),
                 lambda: api.compress_file(src, "gs://bucket/x.ansz"),
                 lambda: ansz.open("hf://org/model/m.safetensors.ansz"),
                 lambda: api.read_info("memory://x.ansz")):
        with pytest.raises(AnszError) as e:
            call()
        assert "pip install 'ansz[remote]'" in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "x.ansz").exists()


def test_a_missing_store_package_is_named(tmp_path):
    """fsspec knows s3:// but needs s3fs for it: the one-line error says so."""
    import importlib.util

    if importlib.util.find_spec("s3fs") is not None:
        pytest.skip("s3fs is installed")
    with pytest.raises(AnszError) as e:
        api.read_info("s3://bucket/model.safetensors.ansz")
    assert "s3fs" in str(e.value) and "\n" not in str(e.value)


def test_unknown_protocol_and_missing_object(mem):
    fs, root = mem
    with pytest.raises(AnszError, match="nosuchproto"):
        api.decompress_file("nosuchproto://a/b.ansz", f"{root}/b")
    with pytest.raises(FileNotFoundError):
        api.decompress_file(f"{root}/absent.ansz", f"{root}/b")
    assert _names(fs, root) == []
    # a host that cannot be reached is not a missing file
    with pytest.raises(OSError, match="Cannot connect") as err:
        api.read_info("http://127.0.0.1:1/x.ansz")
    assert not isinstance(err.value, FileNotFoundError)


def test_existing_remote_output_needs_overwrite(tmp_path, mem):
    fs, root = mem
    src = make_bytes(tmp_path / "x.bin")
    fs.pipe(f"{root[9:]}/x.bin.ansz", b"keep me")
    with pytest.raises(OutputExistsError):
        api.compress_file(src, f"{root}/x.bin.ansz")
    assert fs.cat(f"{root[9:]}/x.bin.ansz") == b"keep me"
    api.compress_file(src, f"{root}/x.bin.ansz", overwrite=True)
    api.decompress_file(f"{root}/x.bin.ansz", tmp_path / "back")
    assert (tmp_path / "back").read_bytes() == src.read_bytes()
    with pytest.raises(AnszError, match="same file"):
        api.compress_file(f"{root}/x.bin.ansz", f"{root}/x.bin.ansz", overwrite=True)
    # the same object spelled otherwise (memory:///t vs memory://t) is still the input itself
    other_spelling = "memory://" + root[len("memory://"):].lstrip("/") + "/x.bin.ansz"
    assert other_spelling != f"{root}/x.bin.ansz"
    before = fs.cat(f"{root[9:]}/x.bin.ansz")
    with pytest.raises(AnszError, match="same file"):
        api.decompress_file(f"{root}/x.bin.ansz", other_spelling, overwrite=True)
    assert fs.cat(f"{root[9:]}/x.bin.ansz") == before


def test_remote_output_is_all_or_nothing(tmp_path, mem):
    fs, root = mem
    src = make_model(tmp_path / "m.safetensors", "layers", n=400_000)
    calls = []

    def fail_midway(done: int) -> None:
        calls.append(done)
        if len(calls) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        api.compress_file(src, f"{root}/m.ansz", chunk_size=64 << 10, progress=fail_midway)
    assert len(calls) == 3 and _names(fs, root) == []  # neither the output nor a temporary
    api.compress_file(src, tmp_path / "m.ansz", chunk_size=64 << 10)
    fs.pipe(f"{root[9:]}/m.ansz", (tmp_path / "m.ansz").read_bytes())
    calls.clear()
    with pytest.raises(KeyboardInterrupt):
        api.decompress_file(f"{root}/m.ansz", f"{root}/back", progress=fail_midway)
    assert _names(fs, root) == ["m.ansz"]
    # a remote input that is not the model it is named as: --strict writes nothing
    fs.pipe(f"{root[9:]}/bad.safetensors", b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}    ")
    with pytest.raises(FormatError):
        api.compress_file(f"{root}/bad.safetensors", f"{root}/bad.ansz", strict=True)
    assert _names(fs, root) == ["bad.safetensors", "m.ansz"]
    assert leftovers(tmp_path) == []


# ---------------------------------------------------------------------------------------------
# Lazy reads


def test_open_url_fetches_only_the_tensor_asked_for(tmp_path, mem):
    fs, root = mem
    tensors = _zoo_tensors()
    url = f"{root}/zoo.safetensors.ansz"
    ansz.save_file(tensors, url, chunk_size=64 << 10)
    size = fs.size(url[9:])
    with ansz.open(url) as f:
        opened = f.io_counters()
        # the size, then the first and last 64 KiB (two calls: memory:// is synchronous)
        assert opened["requests"] == 3 and opened["round_trips"] <= 3
        assert sorted(f.keys()) == sorted(tensors)
        got = f.get_tensor("layer.13.weight")
        after = f.io_counters()
        assert got.tobytes() == tensors["layer.13.weight"].tobytes()
        assert after["round_trips"] - opened["round_trips"] == 1
        fetched = after["bytes"] - opened["bytes"]
        info = api.read_info(url)
        seg = next(s for s in info.segments if s["name"] == "layer.13.weight")
        assert seg["compressed_size"] <= fetched < seg["compressed_size"] + (256 << 10)
        assert opened["bytes"] + fetched < size / 4
        # a slice of rows fetches only the chunks holding them
        part = f.get_slice("layer.02.weight")[:1000]
        assert part.tobytes() == tensors["layer.02.weight"][:1000].tobytes()
        assert f.io_counters()["bytes"] - after["bytes"] < 2 * (64 << 10)
        # nothing is kept between reads: the same tensor again costs the same
        before = f.io_counters()["bytes"]
        f.get_tensor("layer.13.weight")
        assert f.io_counters()["bytes"] - before == fetched


def test_open_url_over_http_counts_what_the_server_sent(tmp_path):
    from bench.rangeserver import RangeServer, url_of

    tensors = _zoo_tensors(n=16)
    path = tmp_path / "zoo.safetensors.ansz"
    ansz.save_file(tensors, path, chunk_size=64 << 10)
    with RangeServer(tmp_path) as server:
        with ansz.open(url_of(server, path)) as f:
            opened = server.requests
            assert opened <= 3
            names = ["layer.03.weight", "layer.04.weight", "layer.11.weight"]
            got = f.get_tensors(names) if hasattr(f, "get_tensors") else {
                n: f.get_tensor(n) for n in names}
            for n in names:
                assert got[n].tobytes() == tensors[n].tobytes()
            counted = f.io_counters()
        assert server.requests - opened <= 3
        assert counted["bytes"] == server.bytes_sent
        assert server.bytes_sent < path.stat().st_size / 3


def test_open_url_of_a_truncated_container_is_an_error(tmp_path, mem):
    fs, root = mem
    blob = ansz.save(_zoo_tensors(n=4, elements=1 << 12))
    fs.pipe(f"{root[9:]}/cut.ansz", blob[:-100])
    with pytest.raises(AnszError):
        ansz.open(f"{root}/cut.ansz")
    fs.pipe(f"{root[9:]}/tiny.ansz", b"ANSZ")
    with pytest.raises(AnszError):
        ansz.open(f"{root}/tiny.ansz")
    assert Path(tmp_path).exists()


def test_remote_benchmark_pieces(tmp_path):
    """The remote benchmark's inputs keep the model's tensors, and its lazy-read table
    counts what a read fetched (the full benchmark needs the corpus and takes a minute)."""
    from bench import harness as h
    from bench.remote import lazy_reads, split_model, tiny_models

    src = make_model(tmp_path / "m.safetensors", "layers", n=400_000)
    shards = split_model(src, tmp_path / "shards", 3)
    spans = {t.name: t for t in h.safetensors_tensors(src)}
    seen = {}
    for p in shards:
        for t in h.safetensors_tensors(p):
            with open(p, "rb") as f:
                f.seek(t.start)
                seen[t.name] = f.read(t.end - t.start)
    data = src.read_bytes()
    assert {n: data[t.start:t.end] for n, t in spans.items()} == seen
    (tiny,) = tiny_models(src, tmp_path / "tiny", 1)
    (one,) = h.safetensors_tensors(tiny)
    assert tiny.read_bytes()[one.start:one.end] == seen[one.name]
    container = tmp_path / "m.safetensors.ansz"
    api.compress_file(src, container, chunk_size=64 << 10)

    class Quiet:
        def progress(self, msg: str) -> None:
            pass

    table = lazy_reads(Quiet(), src, container, latency_ms=0)
    opens = [r for r in table.rows if r[1].startswith("open")]
    reads = [r for r in table.rows if not r[1].startswith("open")]
    assert len(opens) == 2 and len(reads) >= 4
    for r in reads:  # a read fetches no more than the tensor's own records (those in the
        # file's last 64 KiB are held since open), in one round trip
        assert int(r[4].replace(",", "")) <= int(r[3].replace(",", "")) and r[7] in "01"
    assert any(r[3] == r[4] and r[7] == "1" for r in reads)
