"""Symbolic links, and what -r finds: the command reads through a link to a regular file
(named as an operand or met by -r), writes its output beside the link, never lets --rm
delete a link or its target, and does not descend into linked directories. The trees are
shaped like a Hugging Face hub cache (blobs/, snapshots/<rev>/ of relative links, refs/main).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from helpers import (error_lines, hf_cache_snapshot, invoke, leftovers, make_bytes, make_gguf,
                     make_model, run, sha256_of)


def _files(root: Path) -> dict[str, tuple[str, bytes]]:
    """Every entry under ``root``: ("link", target) or ("file", bytes)."""
    out = {}
    for p in sorted(root.rglob("*")):
        key = str(p.relative_to(root))
        if p.is_symlink():
            out[key] = ("link", os.readlink(p))
        elif p.is_file():
            out[key] = ("file", p.read_bytes())
    return out


def _warnings(stderr: str) -> list[str]:
    return [ln for ln in error_lines(stderr) if ": warning: " in ln or ln.startswith(
        "ansz: warning: ")]


@pytest.fixture
def snapshot(tmp_path) -> Path:
    a = make_model(tmp_path / "a.safetensors", "bf16", seed=1).read_bytes()
    b = make_model(tmp_path / "b.safetensors", "mixed", seed=2).read_bytes()
    (tmp_path / "a.safetensors").unlink()
    (tmp_path / "b.safetensors").unlink()
    return hf_cache_snapshot(tmp_path / "hub", {
        "model-00001-of-00002.safetensors": a, "model-00002-of-00002.safetensors": b,
        "config.json": b'{"model_type": "llama"}\n'})


def test_recursive_compress_reads_through_the_links_of_a_snapshot(snapshot):
    repo = snapshot.parents[1]
    before = _files(repo)
    r = invoke(["compress", "-r", snapshot])
    assert r.exit_code == 0, r.stderr
    assert "nothing to do" not in r.stderr and _warnings(r.stderr) == []
    after = _files(repo)
    new = sorted(set(after) - set(before))
    rev = snapshot.name
    assert new == [f"snapshots/{rev}/model-00001-of-00002.safetensors.ansz",
                   f"snapshots/{rev}/model-00002-of-00002.safetensors.ansz"]
    assert all(after[k] == v for k, v in before.items())  # links and blobs untouched
    for k in new:  # regular files beside the links, that restore the blobs' bytes
        assert after[k][0] == "file"
        link = repo / k[: -len(".ansz")]
        back = link.with_name(link.name + ".back")
        assert invoke(["decompress", "-o", back, repo / k]).exit_code == 0
        assert back.read_bytes() == link.resolve().read_bytes()


def test_rm_keeps_links_and_blobs_with_one_warning(snapshot):
    repo = snapshot.parents[1]
    before = _files(repo)
    r = invoke(["compress", "-r", "--rm", snapshot])
    assert r.exit_code == 0, r.stderr
    (warning,) = _warnings(r.stderr)  # one for the run, not one per link
    assert "--rm does not delete symbolic links" in warning and "2 inputs" in warning
    after = _files(repo)
    assert all(after[k] == v for k, v in before.items())
    assert sum(k.endswith(".ansz") for k in after) == 2
    # A link named as an operand: the same; -q silences the warning.
    link = snapshot / "model-00001-of-00002.safetensors"
    r = invoke(["compress", "-f", "--rm", link])
    assert r.exit_code == 0 and link.is_symlink() and link.resolve().is_file()
    (warning,) = _warnings(r.stderr)
    assert warning == (f"ansz: warning: --rm does not delete symbolic links or the files they "
                       f"point to: {link} is; kept")
    r = invoke(["compress", "-q", "-f", "--rm", link])
    assert r.exit_code == 0 and r.stderr == "" and link.is_symlink()
    assert _files(repo) == after


def test_rm_through_the_command_keeps_the_blob(snapshot):
    link = snapshot / "model-00002-of-00002.safetensors"
    blob = link.resolve()
    digest = sha256_of(blob)
    p = run(["compress", "--rm", link])
    assert p.returncode == 0, p.stderr
    assert link.is_symlink() and sha256_of(blob) == digest
    assert Path(str(link) + ".ansz").is_file()
    assert len(_warnings(p.stderr.decode())) == 1


def test_decompress_and_verify_read_a_linked_container(tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    src = make_model(tmp_path / "m.safetensors", "mixed")
    assert invoke(["compress", "-q", "-o", store / "0123abcd", src]).exit_code == 0
    view = tmp_path / "view"
    view.mkdir()
    link = view / "m.safetensors.ansz"
    link.symlink_to("../store/0123abcd")
    assert invoke(["verify", link]).exit_code == 0
    r = invoke(["decompress", "--rm", link])
    assert r.exit_code == 0, r.stderr
    assert (view / "m.safetensors").read_bytes() == src.read_bytes()  # beside the link
    assert link.is_symlink() and (store / "0123abcd").is_file()
    assert sorted(p.name for p in store.iterdir()) == ["0123abcd"]
    assert len(_warnings(r.stderr)) == 1


def test_decompress_over_the_link_needs_force_and_replaces_only_the_link(snapshot):
    link = snapshot / "model-00001-of-00002.safetensors"
    blob = link.resolve()
    original = blob.read_bytes()
    assert invoke(["compress", "-q", "-r", snapshot]).exit_code == 0
    r = invoke(["decompress", "-r", snapshot])
    assert r.exit_code == 1 and "already exists" in r.stderr
    assert link.is_symlink()
    r = invoke(["decompress", "-r", "-f", snapshot])
    assert r.exit_code == 0, r.stderr
    assert not link.is_symlink() and link.read_bytes() == original
    assert blob.read_bytes() == original  # the blob itself was not written through the link
    assert leftovers(snapshot) == []


def test_linked_directories_are_not_descended_and_loops_end(tmp_path):
    d = tmp_path / "d"
    (d / "sub").mkdir(parents=True)
    make_model(d / "sub" / "real.safetensors", "f32")
    (d / "sub" / "loop").symlink_to("..")  # would walk forever if followed
    outside = tmp_path / "outside"
    outside.mkdir()
    make_model(outside / "far.safetensors", "f32")
    (d / "elsewhere").symlink_to(outside)
    (d / "broken.safetensors").symlink_to("nowhere.safetensors")
    r = invoke(["compress", "-r", d])
    assert r.exit_code == 0, r.stderr
    assert (d / "sub" / "real.safetensors.ansz").is_file()
    assert not (outside / "far.safetensors.ansz").exists()
    assert sorted(_warnings(r.stderr)) == sorted([
        f"ansz: {d / 'broken.safetensors'}: warning: is a broken symbolic link -- ignored",
        f"ansz: {d / 'elsewhere'}: warning: is a symbolic link to a directory -- not followed",
        f"ansz: {d / 'sub' / 'loop'}: warning: is a symbolic link to a directory -- not "
        "followed"])
    # A directory named as an operand is followed even if it is a link.
    r = invoke(["compress", "-q", "-r", d / "elsewhere"])
    assert r.exit_code == 0 and (outside / "far.safetensors.ansz").is_file()


def test_nothing_to_do_is_a_warning(tmp_path):
    d = tmp_path / "empty"
    d.mkdir()
    (d / "notes.txt").write_text("no model here\n")
    for cmd, what in (("compress", "*.safetensors or *.gguf"),
                      ("decompress", "*.safetensors.ansz or *.gguf.ansz")):
        r = invoke([cmd, "-r", d])
        assert r.exit_code == 0 and r.stdout == ""
        assert r.stderr == f"ansz: {d}: warning: no {what} files under it -- nothing to do\n"
        assert invoke([cmd, "-q", "-r", d]).stderr == ""
    # an operand that is not there is still an error
    r = invoke(["compress", "-r", tmp_path / "missing"])
    assert r.exit_code == 1 and "No such file or directory" in r.stderr


def test_recursive_finds_gguf_and_safetensors(tmp_path):
    d = tmp_path / "models"
    (d / "q").mkdir(parents=True)
    make_gguf(d / "q" / "model-q4.gguf")
    make_model(d / "model.safetensors", "bf16")
    make_bytes(d / "README.md")
    (d / "tokenizer.gguf.json").write_text("{}")
    before = _files(d)
    r = invoke(["compress", "-r", "--rm", d])
    assert r.exit_code == 0, r.stderr
    assert sorted(k for k in _files(d)) == ["README.md", "model.safetensors.ansz",
                                           "q/model-q4.gguf.ansz", "tokenizer.gguf.json"]
    r = invoke(["info", "--json", d / "q" / "model-q4.gguf.ansz"])
    assert '"format": "gguf"' in r.stdout
    r = invoke(["decompress", "-r", "--rm", d])
    assert r.exit_code == 0, r.stderr
    assert _files(d) == before
