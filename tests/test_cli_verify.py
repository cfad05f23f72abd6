"""``ansz verify``: many containers, standard input, -r, --original, --sha256 (the Hugging
Face LFS oid), --json one object per file, a total line, and the exit status (0 only if
every container is OK)."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from ansz import api

from helpers import (ANSZ, error_lines, invoke, make_bytes, make_model, run, run_with_tty,
                     sha256_of)


def _corrupt_middle(path: Path) -> None:
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0x5A
    path.write_bytes(bytes(blob))


@pytest.fixture
def packed(tmp_path) -> list[Path]:
    """Three containers in tmp_path, of m0.safetensors, m1.safetensors and m2.bin."""
    out = []
    for i, make in enumerate((make_model, make_model, make_bytes)):
        src = make(tmp_path / (f"m{i}.safetensors" if i < 2 else f"m{i}.bin"), seed=i)
        dst = Path(str(src) + ".ansz")
        api.compress_file(src, dst)
        out.append(dst)
    return out


def test_several_containers_and_a_total_line(packed):
    r = invoke(["verify", *packed])
    assert r.exit_code == 0 and r.stderr == ""
    assert r.stdout.splitlines() == [f"{p}: OK" for p in packed] + ["total: 3 files, 3 OK"]
    _corrupt_middle(packed[1])
    r = invoke(["verify", *packed])
    assert r.exit_code == 1
    lines = r.stdout.splitlines()
    assert lines[0] == f"{packed[0]}: OK" and lines[2] == f"{packed[2]}: OK"
    assert lines[1].startswith(f"{packed[1]}: FAILED (")
    assert lines[3] == "total: 3 files, 2 OK, 1 failed"
    r = invoke(["verify", "-q", *packed])  # only the failure
    assert r.exit_code == 1 and r.stdout.splitlines() == [lines[1]]


def test_two_containers_are_two_containers(packed):
    r = invoke(["verify", packed[0], packed[1]])
    assert r.exit_code == 0 and r.stderr == ""
    assert r.stdout.splitlines()[:2] == [f"{packed[0]}: OK", f"{packed[1]}: OK"]


def test_a_missing_or_unreadable_input_does_not_stop_the_others(packed, tmp_path):
    r = invoke(["verify", packed[0], tmp_path / "nope.ansz", tmp_path, packed[2]])
    assert r.exit_code == 1
    assert r.stdout.splitlines() == [f"{packed[0]}: OK", f"{packed[2]}: OK",
                                     "total: 4 files, 2 OK, 2 failed"]
    assert error_lines(r.stderr) == [
        f"ansz: {tmp_path / 'nope.ansz'}: No such file or directory",
        f"ansz: {tmp_path}: is a directory -- ignored"]


def test_original_option(packed, tmp_path):
    src = tmp_path / "m0.safetensors"
    r = invoke(["verify", "--original", src, packed[0]])
    assert r.exit_code == 0 and r.stdout == f"{packed[0]}: OK\n" and r.stderr == ""
    r = invoke(["verify", "-v", packed[0], "--original", src])
    assert r.exit_code == 0 and sha256_of(src) in r.stdout
    other = tmp_path / "other"
    data = bytearray(src.read_bytes())
    data[100] ^= 1
    other.write_bytes(bytes(data))
    r = invoke(["verify", "--original", other, packed[0]])
    assert r.exit_code == 1
    assert r.stdout == f"{packed[0]}: FAILED (decoded bytes differ from {other} at byte 100)\n"
    for args in ([packed[0], packed[1]], ["-r", tmp_path]):
        r = invoke(["verify", "--original", src, *args])
        assert r.exit_code == 2 and "--original takes one container" in r.stderr
    r = invoke(["verify", "--original", tmp_path / "missing", packed[0]])
    assert r.exit_code == 1 and "No such file or directory" in r.stderr


def test_a_second_operand_that_is_not_a_container_is_still_the_original(packed, tmp_path):
    src = tmp_path / "m0.safetensors"
    r = invoke(["verify", packed[0], src])
    assert r.exit_code == 0 and r.stdout == f"{packed[0]}: OK\n"
    assert error_lines(r.stderr) == [
        f"ansz: warning: 'ansz verify FILE.ansz ORIGINAL' is deprecated: {src} is not a "
        f"container, so it is taken as the original; write 'ansz verify --original {src} "
        f"{packed[0]}'"]
    other = tmp_path / "other"
    other.write_bytes(src.read_bytes()[:-1])
    r = invoke(["verify", packed[0], other])
    assert r.exit_code == 1 and "FAILED (original" in r.stdout and "--original" in r.stderr
    assert invoke(["verify", "-q", packed[0], src]).stderr == ""


def test_standard_input(packed, tmp_path):
    blob = packed[0].read_bytes()
    for args in (["verify"], ["verify", "-"]):
        r = invoke(args, input=blob)
        assert r.exit_code == 0 and r.stdout == "(stdin): OK\n", r.stderr
    r = invoke(["verify", "--original", tmp_path / "m0.safetensors"], input=blob)
    assert r.exit_code == 0 and r.stdout == "(stdin): OK\n"
    r = invoke(["verify", "--original", tmp_path / "m1.safetensors"], input=blob)
    assert r.exit_code == 1 and r.stdout.startswith("(stdin): FAILED (")
    r = invoke(["verify", "-", packed[1]], input=blob)
    assert r.exit_code == 0 and r.stdout.splitlines()[:2] == ["(stdin): OK", f"{packed[1]}: OK"]
    for bad in (b"", blob[: len(blob) // 2], b"garbage" * 100):
        r = invoke(["verify"], input=bad)
        assert r.exit_code == 1 and r.stdout.startswith("(stdin): FAILED ("), r.stdout
    with open(packed[2], "rb") as fh:  # the installed command, with a file as stdin
        p = run(["verify"], stdin=fh)
    assert p.returncode == 0 and p.stdout == b"(stdin): OK\n"
    p = run(["verify", "--json", "-"], input=blob)
    doc = json.loads(p.stdout)
    assert p.returncode == 0 and doc["path"] == "(stdin)" and doc["ok"] is True
    assert doc["sha256"] == sha256_of(tmp_path / "m0.safetensors")


def test_no_operand_and_a_terminal_is_a_usage_error():
    code, out, err = run_with_tty(["verify"], "stdin")
    assert code == 2 and out == b""
    assert err == ("ansz: verify: missing argument 'FILE.ansz' (standard input is a "
                   "terminal) (see 'ansz verify --help')\n")
    code, out, err = run_with_tty(["verify", "-"], "stdin")
    assert code == 1 and "not read from a terminal" in err


def test_recursive(packed, tmp_path):
    d = tmp_path / "tree"
    (d / "sub").mkdir(parents=True)
    shutil.copy(packed[0], d / "a.safetensors.ansz")
    shutil.copy(packed[2], d / "sub" / "b.bin.ansz")
    shutil.copy(tmp_path / "m0.safetensors", d / "a.safetensors")  # not a container: skipped
    r = invoke(["verify", "-r", d])
    assert r.exit_code == 0, r.stderr
    assert r.stdout.splitlines() == [f"{d / 'a.safetensors.ansz'}: OK",
                                     f"{d / 'sub' / 'b.bin.ansz'}: OK", "total: 2 files, 2 OK"]
    _corrupt_middle(d / "sub" / "b.bin.ansz")
    r = invoke(["verify", "--recursive", d, packed[1]])
    assert r.exit_code == 1 and "total: 3 files, 2 OK, 1 failed" in r.stdout
    empty = tmp_path / "empty"
    empty.mkdir()
    r = invoke(["verify", "-r", empty])
    assert r.exit_code == 0 and r.stdout == "" and "nothing to do" in r.stderr
    r = invoke(["verify", d])
    assert r.exit_code == 1 and "is a directory" in r.stderr


def test_expected_sha256(packed, tmp_path, monkeypatch):
    oid = sha256_of(tmp_path / "m0.safetensors")
    for given in (oid, oid.upper()):
        r = invoke(["verify", "--sha256", given, packed[0]])
        assert r.exit_code == 0 and r.stdout == f"{packed[0]}: OK\n"
    r = invoke(["verify", "--sha256", oid], input=packed[0].read_bytes())
    assert r.exit_code == 0 and r.stdout == "(stdin): OK\n"
    wrong = hashlib.sha256(b"something else").hexdigest()
    r = invoke(["verify", "--sha256", wrong], input=packed[0].read_bytes())
    assert r.exit_code == 1
    assert r.stdout == (f"(stdin): FAILED (sha256 mismatch: the original's sha256 is {oid}, "
                        f"expected {wrong})\n")
    # From a file, a container of another original fails without being decoded.
    monkeypatch.setattr(api, "verify_file", lambda *a, **k: pytest.fail("decoded"))
    r = invoke(["verify", "--sha256", wrong, "--json", packed[0]])
    doc = json.loads(r.stdout)
    assert r.exit_code == 1 and doc["ok"] is False and doc["sha256"] == oid
    assert doc["message"] == f"sha256 mismatch: the original's sha256 is {oid}, expected {wrong}"
    monkeypatch.undo()
    # A container that records the right sha256 but whose data is damaged fails too.
    bad = tmp_path / "bad.ansz"
    shutil.copy(packed[0], bad)
    _corrupt_middle(bad)
    r = invoke(["verify", "--sha256", oid, bad])
    assert r.exit_code == 1 and "FAILED" in r.stdout
    for args in (["--sha256", "xyz", packed[0]], ["--sha256", oid[:-1], packed[0]],
                 ["--sha256", oid, packed[0], packed[1]], ["--sha256", oid, "-r", tmp_path]):
        r = invoke(["verify", *args])
        assert r.exit_code == 2 and len(r.stderr.splitlines()) == 1, args


def test_json_is_one_object_per_file(packed, tmp_path):
    _corrupt_middle(packed[1])
    r = invoke(["verify", "--json", packed[0], packed[1], tmp_path / "nope.ansz"])
    assert r.exit_code == 1
    docs = [json.loads(line) for line in r.stdout.splitlines()]
    assert [d["path"] for d in docs] == [str(packed[0]), str(packed[1]),
                                         str(tmp_path / "nope.ansz")]
    assert [d["ok"] for d in docs] == [True, False, False]
    assert docs[1]["message"] and docs[2]["message"] == "No such file or directory"
    assert docs[2]["sha256"] is None and docs[0]["sha256"] == sha256_of(
        tmp_path / "m0.safetensors")
    assert error_lines(r.stderr) == [f"ansz: {tmp_path / 'nope.ansz'}: No such file or directory"]


def test_verify_habit_through_the_installed_command(packed, tmp_path):
    p = subprocess.run([ANSZ, "-t", *[p.name for p in packed]], cwd=tmp_path,
                       capture_output=True, timeout=120)
    assert p.returncode == 0
    assert p.stdout.decode().splitlines()[-1] == "total: 3 files, 3 OK"
