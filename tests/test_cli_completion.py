"""Shell completion of the ``ansz`` command, asked as bash asks it: the installed command
run with ``_ANSZ_COMPLETE=bash_complete``, ``COMP_WORDS`` and ``COMP_CWORD`` (click's
protocol), answering one ``type,value`` line per completion. ``file`` tells the shell to
complete file names itself (bash: ``compopt -o default``, which lists directories too)."""

from __future__ import annotations

import os
import subprocess

import pytest

from helpers import ANSZ, invoke


def complete(words: str, cwd) -> list[tuple[str, str]]:
    """What ``ansz`` answers bash for the command line ``words`` (the cursor at its end)."""
    assert ANSZ, "the ansz console script is not installed (pip install -e .)"
    env = dict(os.environ, _ANSZ_COMPLETE="bash_complete", COMP_WORDS=words,
               COMP_CWORD=str(len(words.split(" ")) - 1))
    proc = subprocess.run([ANSZ], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    return [tuple(line.split(",", 1)) for line in proc.stdout.splitlines() if line]


@pytest.mark.parametrize("words", [
    "ansz compress ",
    "ansz compress -r ",
    "ansz compress -o ",
    "ansz compress --output ",
    "ansz compress -k model.safetensors mo",
    "ansz decompress ",
    "ansz decompress -o ",
    "ansz verify ",
    "ansz verify x.ansz ",
    "ansz verify --original ",
    "ansz info ",
    "ansz info a.ansz ",
    "ansz stats ",
])
def test_file_operands_and_options_complete_as_file_names(words, tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"x")
    (tmp_path / "subdir").mkdir()
    incomplete = words.split(" ")[-1]
    assert complete(words, tmp_path) == [("file", incomplete)]


def test_options_and_commands_still_complete_as_words(tmp_path):
    got = complete("ansz compress --ou", tmp_path)
    assert got == [("plain", "--output")]
    got = complete("ansz ", tmp_path)
    names = {value for kind, value in got if kind == "plain"}
    assert {"compress", "decompress", "verify", "stats", "info"} <= names
    # an option's value that is not a file is not completed as one
    assert all(kind != "file" for kind, _ in complete("ansz compress -T ", tmp_path))


def test_the_bash_script_knows_file_and_dir_completion(tmp_path):
    env = dict(os.environ, _ANSZ_COMPLETE="bash_source")
    script = subprocess.run([ANSZ], env=env, capture_output=True, text=True, timeout=60).stdout
    assert "compopt -o default" in script and "compopt -o dirnames" in script


def test_missing_files_keep_anszs_own_message(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for args in (["compress", "nope"], ["decompress", "nope.ansz"], ["info", "nope.ansz"],
                 ["compress", "-o", "sub/out.ansz", "nope"]):
        r = invoke(args)
        assert r.exit_code == 1, (args, r.stderr)
        assert r.stderr.endswith(": No such file or directory\n"), (args, r.stderr)
