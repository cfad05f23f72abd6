"""zstd's command line: ``ansz FILE``, ``-z``/``-d``/``-t``/``-l``/``-b``, bundled short
options (``-dc``, ``-kd``), compression levels (``-1`` ... ``-19``, ``--fast``, ``--best``)
and the ``unansz`` and ``anszcat`` commands. Each form is checked by what it does to
files, through CliRunner, and the main ones through the installed commands."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from ansz import api
from ansz.cli import cli
from ansz.cli.habits import MODES

from helpers import ANSZ, error_lines, invoke, make_model, run


@pytest.fixture
def model(tmp_path, monkeypatch) -> Path:
    """A bf16 model in the current directory (tmp_path), and its container beside it."""
    monkeypatch.chdir(tmp_path)
    src = make_model(tmp_path / "m.safetensors", "bf16")
    api.compress_file(src, tmp_path / "m.safetensors.ansz")
    return src


def _container_of(args, tmp_path, src) -> bytes:
    """The container ``ansz ARGS -o OUT SRC`` writes."""
    out = tmp_path / "out.ansz"
    if out.exists():
        out.unlink()
    r = invoke([*args, "-o", out, src])
    assert r.exit_code == 0, (args, r.stderr)
    return out.read_bytes()


def test_a_file_operand_alone_compresses(model, tmp_path):
    packed = tmp_path / "m.safetensors.ansz"
    packed.unlink()
    for args in (["m.safetensors"], ["-z", "m.safetensors"], ["--compress", "m.safetensors"],
                 ["-k", "m.safetensors"], ["-q", "m.safetensors"]):
        r = invoke(args)
        assert r.exit_code == 0, (args, r.stderr)
        assert packed.is_file() and model.is_file()
        assert api.verify_file(packed, model).ok
        packed.unlink()
    r = invoke(["--rm", "m.safetensors"])
    assert r.exit_code == 0 and not model.exists() and packed.is_file()


@pytest.mark.parametrize("args", [["-d"], ["--decompress"], ["--uncompress"], ["-kd"],
                                  ["-dk"], ["-d", "-q"], ["-dq"], ["-dT2"], ["-d", "-T", "1"]])
def test_decompress_forms(args, model, tmp_path):
    original = model.read_bytes()
    model.unlink()
    r = invoke([*args, "m.safetensors.ansz"])
    assert r.exit_code == 0, r.stderr
    assert model.read_bytes() == original and (tmp_path / "m.safetensors.ansz").is_file()


def test_decompress_to_stdout_force_and_output(model, tmp_path):
    original = model.read_bytes()
    for args in (["-dc"], ["-cd"], ["-d", "-c"], ["--decompress", "--stdout"], ["-dcq"]):
        r = invoke([*args, "m.safetensors.ansz"])
        assert r.exit_code == 0, (args, r.stderr)
        assert r.stdout_bytes == original
    r = invoke(["-d", "m.safetensors.ansz"])  # the original exists: refused
    assert r.exit_code == 1 and "already exists" in r.stderr
    model.write_bytes(b"stale")
    assert invoke(["-df", "m.safetensors.ansz"]).exit_code == 0
    assert model.read_bytes() == original
    for args in (["-d", "-o", "out"], ["-do", "out"], ["-d", "--output", "out"],
                 ["-o", "out", "-d"]):
        r = invoke([*args, "m.safetensors.ansz"])
        assert r.exit_code == 0, (args, r.stderr)
        assert (tmp_path / "out").read_bytes() == original
        (tmp_path / "out").unlink()
    r = invoke(["-d", "--", "m.safetensors.ansz"])
    assert r.exit_code == 1 and "already exists" in r.stderr  # after --, still an operand


def test_test_and_list(model, tmp_path):
    for args in (["-t"], ["--test"], ["-tq"]):
        r = invoke([*args, "m.safetensors.ansz"])
        assert r.exit_code == 0, r.stderr
        assert r.stdout == ("" if "q" in args[0] else "m.safetensors.ansz: OK\n")
    for args in (["-l"], ["--list"]):
        r = invoke([*args, "m.safetensors.ansz"])
        assert r.exit_code == 0 and r.stdout == invoke(["info", "m.safetensors.ansz"]).stdout
        assert "sha256" in r.stdout
    bad = tmp_path / "bad.ansz"
    bad.write_bytes(b"not a container")
    assert invoke(["-t", bad]).exit_code == 1


def test_compress_to_stdout(model, tmp_path):
    expected = (tmp_path / "m.safetensors.ansz").read_bytes()
    for args, stdin in ((["-c", "m.safetensors"], None), (["-c"], model.read_bytes()),
                        (["-"], model.read_bytes()), (["-zc", "m.safetensors"], None),
                        (["-kc", "m.safetensors"], None)):
        r = invoke(args, input=stdin)
        assert r.exit_code == 0, (args, r.stderr)
        assert r.stdout_bytes == expected, args


def test_levels(model, tmp_path):
    default = _container_of(["compress"], tmp_path, model)
    fast = _container_of(["compress", "--fast"], tmp_path, model)
    assert fast != default  # two real levels
    for args in (["compress", "-1"], ["-1"], ["compress", "--level", "1"], ["-z1"],
                 ["compress", "-19", "--fast"], ["compress", "--best", "-1"]):
        assert _container_of(args, tmp_path, model) == fast, args
    for args in (["compress", "-2"], ["compress", "-3"], ["compress", "-19"], ["-19"],
                 ["--best"], ["compress", "--level", "19"], ["compress", "-1", "-19"],
                 ["compress", "--fast", "--best"], ["-z19"], ["-k9"]):
        assert _container_of(args, tmp_path, model) == default, args


@pytest.mark.parametrize("args, word", [
    (["compress", "-22"], "-22"), (["-20"], "-20"), (["compress", "-0"], "-0"),
    (["compress", "--ultra", "-22"], "--ultra"), (["--ultra"], "--ultra"),
])
def test_levels_out_of_range(args, word, model):
    r = invoke([*args, "m.safetensors"])
    assert r.exit_code == 2
    assert r.stderr == (f"ansz: compress: {word}: no such compression level (ansz takes -1 to "
                        "-19; -2 to -19 all mean its smallest output) "
                        "(see 'ansz compress --help')\n")
    r = invoke(["compress", "--level", "20", "m.safetensors"])
    assert r.exit_code == 2 and "1<=x<=19" in r.stderr
    r = invoke(["-d", "-19", "m.safetensors.ansz"])
    assert r.exit_code == 2 and "levels are options of compress" in r.stderr
    assert not Path("m.safetensors.ansz.ansz").exists()


def test_level_values_of_other_options_are_left_alone(model):
    r = invoke(["compress", "-T", "-1", "m.safetensors"])  # -1 is the value of -T
    assert r.exit_code == 2 and "'-T'" in r.stderr and "level" not in r.stderr


def test_a_subcommand_name_wins_over_a_file_of_that_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_model(tmp_path / "compress", "f32")
    data = (tmp_path / "compress").read_bytes()
    r = invoke(["compress"], input=data)  # the subcommand, reading stdin
    assert r.exit_code == 0 and r.stdout_bytes[:8] == b"\x89ANSZ\r\n\x1a"
    assert not (tmp_path / "compress.ansz").exists()
    r = invoke(["./compress"])  # the file
    assert r.exit_code == 0 and (tmp_path / "compress.ansz").is_file()


def test_unknown_words_and_options_are_still_usage_errors(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = invoke(["frobnicate"])
    assert r.exit_code == 2 and r.stderr.startswith("ansz: no such command")
    r = invoke(["-x"])
    assert r.exit_code == 2 and r.stderr.startswith("ansz: no such option")
    r = invoke(["-d", "-t", "a.ansz"])
    assert (r.exit_code, r.stderr) == (2, "ansz: -d and -t exclude each other "
                                          "(see 'ansz --help')\n")
    r = invoke(["-dl", "a.ansz"])
    assert r.exit_code == 2 and "exclude each other" in r.stderr
    r = invoke(["missing.safetensors"])  # a file name: compress says it is missing
    assert r.exit_code == 1
    assert error_lines(r.stderr) == ["ansz: missing.safetensors: No such file or directory"]
    r = invoke(["-c", "-k", "-x", "f"])
    assert r.exit_code == 2 and r.stderr.startswith("ansz: compress: no such option")


def test_help_and_version_stay_the_groups():
    assert invoke(["-h"]).stdout == invoke(["--help"]).stdout
    assert "zstd's forms work too" in invoke(["--help"]).stdout
    assert invoke(["-V"]).stdout.startswith("ansz ")
    r = invoke(["-d", "--help"])
    assert r.exit_code == 0 and r.stdout.startswith("Usage: ansz decompress")


def test_b_is_bench():
    if "bench" not in cli.commands:
        pytest.skip("no bench command in this ansz")
    r = invoke(["-b", "--help"])
    assert r.exit_code == 0 and r.stdout == invoke(["bench", "--help"]).stdout


def test_every_mode_names_a_command_or_bench():
    assert set(MODES.values()) - set(cli.commands) <= {"bench"}


# -------------------------------------------------------------------------------------------
# Through the installed commands


def test_installed_command_habits(model, tmp_path):
    original = model.read_bytes()
    model.unlink()
    p = run(["-dc", "m.safetensors.ansz"], cwd=tmp_path)
    assert p.returncode == 0 and p.stdout == original
    p = run(["-kd", "m.safetensors.ansz"], cwd=tmp_path)
    assert p.returncode == 0 and model.read_bytes() == original
    (tmp_path / "m.safetensors.ansz").unlink()
    p = run(["-19", "m.safetensors"], cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert api.verify_file(tmp_path / "m.safetensors.ansz", model).ok
    p = run(["-t", "m.safetensors.ansz"], cwd=tmp_path)
    assert p.returncode == 0 and p.stdout == b"m.safetensors.ansz: OK\n"
    p = run(["--ultra", "-22", "m.safetensors"], cwd=tmp_path)
    assert p.returncode == 2 and len(p.stderr.splitlines()) == 1


def test_unansz_and_anszcat(model, tmp_path):
    unansz, anszcat = shutil.which("unansz"), shutil.which("anszcat")
    assert unansz and anszcat, "console scripts not installed (pip install -e .)"
    assert os.path.dirname(unansz) == os.path.dirname(ANSZ)
    original = model.read_bytes()
    p = subprocess.run([anszcat, "m.safetensors.ansz"], cwd=tmp_path, capture_output=True,
                       timeout=120)
    assert p.returncode == 0 and p.stdout == original
    p = subprocess.run([anszcat], input=(tmp_path / "m.safetensors.ansz").read_bytes(),
                       capture_output=True, timeout=120)
    assert p.returncode == 0 and p.stdout == original
    model.unlink()
    p = subprocess.run([unansz, "m.safetensors.ansz"], cwd=tmp_path, capture_output=True,
                       timeout=120)
    assert p.returncode == 0 and model.read_bytes() == original, p.stderr
    p = subprocess.run([unansz, "m.safetensors.ansz"], cwd=tmp_path, capture_output=True,
                       timeout=120)
    assert p.returncode == 1 and re.fullmatch(
        rb"ansz: m.safetensors.ansz: m.safetensors already exists \(use -f to overwrite\)\n",
        p.stderr)
    p = subprocess.run([unansz, "--help"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and p.stdout.startswith("Usage: ansz decompress")


def test_completion_after_a_mode_flag(tmp_path):
    env = dict(os.environ, _ANSZ_COMPLETE="bash_complete", COMP_WORDS="ansz -d ",
               COMP_CWORD="2")
    p = subprocess.run([ANSZ], env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and p.stdout.splitlines() == ["file,"]
