"""The ``ansz`` command end to end: through click's CliRunner (fast, in process) and through a
subprocess of the installed ``ansz`` script (real stdin/stdout/stderr, pipes and terminals).

Conventions under test are those of man/ansz.1 (zstd/xz/gzip habits): exit 0/1/2/130, one
line per error on stderr and never a traceback, keep going past a bad input, never
overwrite without -f, never write compressed data to a terminal.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

from ansz import __version__, api, container
from ansz.cli import cli
from ansz.cli.args import Size
from ansz.cli.report import human_size, percent
from ansz.errors import AnszError

from helpers import (ANSZ, at_overwrite_prompt, count_file_hashers, error_lines, invoke,
                     leftovers, make_bytes, make_model, run, run_with_tty, sha256_of, weights)

ROOT = Path(__file__).resolve().parents[1]
MAN = ROOT / "man" / "ansz.1"

# -------------------------------------------------------------------------------------------
# Start-up, version, help


def test_import_cli_loads_neither_numpy_nor_numba():
    code = ("import sys, ansz.cli; "
            "print(','.join(m for m in ('numpy', 'numba', 'rich') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_help_loads_neither_numpy_nor_numba():
    code = ("import sys\nfrom ansz.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print('LOADED', ','.join(m for m in ('numpy', 'numba') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().endswith("LOADED"), out.stdout
    assert "compress" in out.stdout


def test_cli_process_skips_numbas_optional_imports(tmp_path):
    # numba imports scipy and cffi, when installed, only for features ansz does not use;
    # the ansz command (main() with no argv) keeps them out (0.35 s of start-up), freezes
    # the GC for its exit, and still round-trips; main(argv) called from Python leaves the
    # process alone.
    src = make_model(tmp_path / "m.safetensors")
    code = ("import sys\nfrom ansz.cli import main\n"
            "def run(args):\n    sys.argv = ['ansz', *args]\n    try:\n        main()\n"
            "    except SystemExit as e:\n        assert not e.code, e.code\n"
            f"run(['compress', '-q', '-f', {str(src)!r}])\n"
            f"run(['decompress', '-q', '-f', '-o', {str(tmp_path / 'back')!r}, {str(src) + '.ansz'!r}])\n"
            "print('BLOCKED', all(sys.modules.get(m, 0) is None for m in ('scipy', 'cffi')))\n"
            "import gc\nprint('FROZEN', gc.get_freeze_count() > 0)\n"
            "import os\nprint('BLAS', os.environ.get('OPENBLAS_NUM_THREADS'), "
            "os.environ.get('MKL_NUM_THREADS'))")
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env=env)
    # and numpy's BLAS (which ansz never calls) starts no thread pool: one thread
    assert out.stdout.split() == ["BLOCKED", "True", "FROZEN", "True", "BLAS", "1", "1"], (
        out.stdout + out.stderr)
    assert (tmp_path / "back").read_bytes() == src.read_bytes()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={**env, "OPENBLAS_NUM_THREADS": "3"})
    assert out.stdout.split()[-3:] == ["BLAS", "3", "1"]  # the user's choice wins
    code = ("import os, sys\nfrom ansz.cli import main\ntry:\n    main(['--version'])\n"
            "except SystemExit:\n    pass\nprint('LEFT', 'cffi' not in sys.modules or "
            "sys.modules['cffi'] is not None, 'OPENBLAS_NUM_THREADS' not in os.environ)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env=env)
    assert out.stdout.strip().endswith("LEFT True True"), out.stdout


def test_version_and_help():
    for args in (["--version"], ["-V"]):
        r = invoke(args)
        assert r.exit_code == 0 and r.stdout.strip() == f"ansz {__version__}"
    r = invoke(["--help"])
    assert r.exit_code == 0
    for name in ("compress", "decompress", "verify", "stats", "info"):
        assert name in r.stdout
        assert invoke([name, "-h"]).exit_code == 0


def test_console_script_and_python_m():
    assert run(["--version"]).stdout.decode().strip() == f"ansz {__version__}"
    proc = subprocess.run([sys.executable, "-m", "ansz", "--help"], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0 and "decompress" in proc.stdout


@pytest.mark.parametrize("args", [
    ["bogus"],
    ["compress", "--no-such-option"],
    ["compress", "-T", "-1", "x"],
    ["compress", "-T", "many", "x"],
    ["compress", "--chunk-size", "4Q", "x"],
    ["compress", "--chunk-size", "0", "x"],
    ["compress", "--chunk-size", "512", "x"],
    ["compress", "--chunk-size", "65M", "x"],
    ["compress", "-o", "out", "a", "b"],
    ["compress", "-c", "a", "b"],
    ["compress", "-c", "-o", "out", "a"],
    ["compress", "-", "-"],
    ["decompress", "-o", "out", "a.ansz", "b.ansz"],
    ["verify", "-", "-"],
    ["verify", "--original", "x", "a.ansz", "b.ansz"],
    ["verify", "--sha256", "0" * 63, "a.ansz"],
    ["stats"],
    ["stats", "-"],
    ["stats", "--top", "0", "x"],
    ["info"],
    ["info", "-"],
])
def test_usage_errors_exit_2(args, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = invoke(args)
    assert r.exit_code == 2, (args, r.stderr)
    assert r.stdout == "" and len(r.stderr.splitlines()) == 1, r.stderr
    assert re.fullmatch(r"ansz: .+ \(see '\S+( \w+)? --help'\)\n", r.stderr), r.stderr


def test_bad_threads_env_is_a_usage_error():
    r = invoke(["compress", "x"], env={"ANSZ_THREADS": "lots"})
    assert r.exit_code == 2 and "ANSZ_THREADS" in r.stderr


@pytest.mark.parametrize("text, n", [
    ("65536", 65536), ("64K", 64 << 10), ("64k", 64 << 10), ("4M", 4 << 20), ("4MiB", 4 << 20),
    ("4MB", 4 << 20), ("4 MiB", 4 << 20), ("1G", 1 << 30), ("100B", 100),
])
def test_size_parser(text, n):
    assert Size().convert(text, None, None) == n


@pytest.mark.parametrize("text", ["", "M", "4Q", "-1", "1.5M", "4iB", "0", "4Mi B"])
def test_size_parser_rejects(text):
    import click

    with pytest.raises(click.BadParameter):
        Size().convert(text, None, None)


def test_human_size():
    assert human_size(0) == "0 B"
    assert human_size(999) == "999 B"
    assert human_size(1000) == "1.00 kB"
    assert human_size(66_400) == "66.4 kB"
    assert human_size(797_000_000) == "797 MB"
    assert human_size(999_600_000) == "1.00 GB"
    assert human_size(1_200_000_000) == "1.20 GB"


# -------------------------------------------------------------------------------------------
# Man page <-> CLI


def _cli_options() -> dict[str, set[str]]:
    """Every option string per (sub)command, from click's command tree; zstd's mode
    options (``-d``, ``--test``...), which are read before click parses, count as the
    group's."""
    import click

    from ansz.cli.habits import MODES

    # context_settings as in a real run (-h/--help); click caches the help option per command
    ctx = click.Context(cli, info_name="ansz", **cli.context_settings)
    found = {"ansz": {o for p in cli.get_params(ctx) for o in (*p.opts, *p.secondary_opts)}
             | set(MODES)}
    for name, cmd in cli.commands.items():
        sub = click.Context(cmd, parent=ctx, info_name=name, **cmd.context_settings)
        found[name] = {o for p in cmd.get_params(sub) if isinstance(p, click.Option)
                       for o in (*p.opts, *p.secondary_opts)}
    return found


def _man_option_tokens(text: str) -> set[str]:
    """Option-looking tokens in roff source: ``\\-\\-long\\-name`` and a standalone ``\\-x``."""
    body = "\n".join(ln for ln in text.splitlines() if not ln.startswith('.\\"'))
    longs = re.findall(r"\\-\\-([A-Za-z0-9]+(?:\\-[A-Za-z0-9]+)*)", body)
    body = re.sub(r"\\-\\-[A-Za-z0-9]+(?:\\-[A-Za-z0-9]+)*", " ", body)
    shorts = re.findall(r"(?<![\w\\/.])\\-([A-Za-z0-9])(?![\w\\])", body)
    return {"--" + s.replace("\\-", "-") for s in longs} | {"-" + s for s in shorts}


def test_man_page_documents_every_option_and_only_real_ones():
    text = MAN.read_text(encoding="utf-8")
    per_command = _cli_options()
    cli_all = set().union(*per_command.values())
    man_all = _man_option_tokens(text)
    missing = {f"{cmd} {opt}" for cmd, opts in per_command.items() for opt in opts
               if opt not in man_all}
    assert not missing, f"options missing from man/ansz.1: {sorted(missing)}"
    unknown = man_all - cli_all
    assert not unknown, f"man/ansz.1 mentions options the CLI lacks: {sorted(unknown)}"
    for name in cli.commands:  # every subcommand documented, with a heading of its own
        assert re.search(rf"^\.(TP|SS|B|BR|BI)\b.*\b{name}\b", text, re.M), name
    for word in ("EXIT STATUS", "ANSZ_THREADS", "sha256sum", "\\-\\-json"):
        assert word in text


def test_man_page_token_scanner():
    toks = _man_option_tokens(r"""
.BR \-o ", " \-\-output " \fIFILE\fR"
.BR \-\-progress ", " \-\-no\-progress
neural\-network SHA\-256 model\-0000*\-of\-00004 \-o ./\- \-T 2
""")
    assert toks == {"-o", "--output", "--progress", "--no-progress", "-T"}


def test_man_page_renders_without_warnings():
    if not shutil.which("groff"):
        pytest.skip("groff not installed")
    proc = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", str(MAN)],
                          capture_output=True, text=True)
    assert proc.returncode == 0
    bad = [ln for ln in proc.stderr.splitlines() if "cannot adjust line" not in ln]
    assert not bad, bad


# -------------------------------------------------------------------------------------------
# Round trips

KINDS = ["bf16", "f16", "f32", "f64", "f8e4m3", "f8e5m2", "i8", "u8", "i32", "i64", "bool",
         "mixed"]


@pytest.mark.parametrize("kind", KINDS)
def test_roundtrip_safetensors_every_dtype(kind, tmp_path):
    src = make_model(tmp_path / f"{kind}.safetensors", kind)
    original = src.read_bytes()
    r = invoke(["compress", src])
    assert r.exit_code == 0, r.stderr
    packed = tmp_path / f"{kind}.safetensors.ansz"
    assert packed.exists() and src.exists()  # keeps the input by default
    src.unlink()
    r = invoke(["decompress", packed])
    assert r.exit_code == 0, r.stderr
    assert src.read_bytes() == original
    assert leftovers(tmp_path) == []


def test_roundtrip_compresses_bf16(tmp_path):
    src = make_model(tmp_path / "w.safetensors", "bf16")
    assert invoke(["compress", "-q", src]).exit_code == 0
    assert (tmp_path / "w.safetensors.ansz").stat().st_size < 0.9 * src.stat().st_size


def test_compress_hashes_a_file_once_and_ahead_of_its_imports(tmp_path, monkeypatch):
    # A regular file compressed to a file: the command starts its sha256 before it imports
    # the API (hash_ahead), and compress_file takes that hash instead of starting another.
    # To standard output (compress_stream) the pipeline's own reads are hashed: none ahead.
    from ansz import _io

    made = count_file_hashers(monkeypatch)
    src = make_model(tmp_path / "w.safetensors", "bf16")
    assert invoke(["compress", "-q", src]).exit_code == 0
    assert [h._owns_file for h in made] == [True] and _io._ahead is None  # hash_ahead's
    info = api.read_info(tmp_path / "w.safetensors.ansz")
    assert info.sha256 == hashlib.sha256(src.read_bytes()).hexdigest()
    assert invoke(["compress", "-q", "-c", src]).exit_code == 0
    assert len(made) == 1


@pytest.mark.parametrize("kind", ["bf16", "mixed"])
def test_fast_roundtrips_and_codes_bf16_exponents_in_64_state_streams(kind, tmp_path):
    from safetensors.numpy import save_file

    src = tmp_path / "w.safetensors"
    if kind == "bf16":  # 1.2 MB of weights: one chunk (--fast cuts 2 MiB), long enough to be wide
        save_file({"w": weights((600, 1000), ml_dtypes.bfloat16, 3)}, str(src))
    else:
        make_model(src, kind)
    original = src.read_bytes()
    assert invoke(["compress", "-q", "--fast", "-o", tmp_path / "fast.ansz", src]).exit_code == 0
    assert invoke(["compress", "-q", "-o", tmp_path / "best.ansz", src]).exit_code == 0
    r = invoke(["decompress", "-c", tmp_path / "fast.ansz"])
    assert r.exit_code == 0 and r.stdout_bytes == original
    fast, best = (tmp_path / "fast.ansz").read_bytes(), (tmp_path / "best.ansz").read_bytes()
    if kind == "bf16":
        from ansz import container, streams

        cf = container.ContainerFile(lambda o, n: memoryview(fast)[o:o + n], len(fast))
        i = next(i for i, e in enumerate(cf.index.chunks) if e.decoded_length == 1_200_000)
        code = bytes(cf.chunk(i)[1])[12:17]  # the code stream's method, ..., its states
        assert code[0] == streams.RANS_WIDE and code[4] == 6
        assert len(best) < len(fast) < 1.01 * len(best)
    r = invoke(["decompress", "--fast", tmp_path / "fast.ansz"])
    assert r.exit_code == 2 and "--fast" in r.stderr  # a compress option only


@pytest.mark.parametrize("maker", ["bytes", "empty", "tiny", "random"])
def test_roundtrip_not_safetensors(maker, tmp_path):
    src = tmp_path / "data.bin"
    if maker == "bytes":
        make_bytes(src)
    elif maker == "empty":
        src.write_bytes(b"")
    elif maker == "tiny":
        src.write_bytes(b"x")
    else:
        src.write_bytes(np.random.default_rng(3).integers(0, 256, 70_000, dtype=np.uint8).tobytes())
    original = src.read_bytes()
    assert invoke(["compress", src]).exit_code == 0
    out = tmp_path / "restored.bin"
    r = invoke(["decompress", "-o", out, tmp_path / "data.bin.ansz"])
    assert r.exit_code == 0, r.stderr
    assert out.read_bytes() == original


def test_summary_line_like_zstd(tmp_path):
    src = make_model(tmp_path / "model.safetensors", "bf16")
    r = invoke(["compress", src])
    line = r.stderr.strip()
    assert re.fullmatch(rf"{re.escape(str(src))} : \d+\.\d% \(\d[\d.]* [kMG]?B => \d[\d.]* "
                        rf"[kMG]?B, {re.escape(str(src))}\.ansz\)", line), line
    r = invoke(["decompress", "-f", str(src) + ".ansz"])
    assert re.fullmatch(rf"{re.escape(str(src))}\.ansz : .* => .*, {re.escape(str(src))}",
                        r.stderr.strip()), r.stderr
    assert invoke(["compress", "-qf", src]).stderr == ""
    r = invoke(["compress", "-vf", src])
    assert "format safetensors" in r.stderr


def test_empty_file_summary_and_info(tmp_path):
    src = tmp_path / "empty"
    src.write_bytes(b"")
    r = invoke(["compress", src])
    assert r.exit_code == 0 and "n/a (0 B =>" in r.stderr
    info = json.loads(invoke(["info", "--json", str(src) + ".ansz"]).stdout)
    assert info["original_size"] == 0 and info["ratio"] is None
    assert info["sha256"] == hashlib.sha256(b"").hexdigest()


def test_output_gets_input_mode_and_mtime(tmp_path):
    src = make_bytes(tmp_path / "a.bin")
    os.chmod(src, 0o640)
    os.utime(src, (1_600_000_000, 1_600_000_000))
    assert invoke(["compress", src]).exit_code == 0
    st = (tmp_path / "a.bin.ansz").stat()
    assert (st.st_mode & 0o777, int(st.st_mtime)) == (0o640, 1_600_000_000)


def test_threads_do_not_change_the_bytes(tmp_path):
    src = make_model(tmp_path / "m.safetensors", "bf16", seed=5)
    outs = []
    for t in ("1", "2"):
        out = tmp_path / f"t{t}.ansz"
        r = invoke(["compress", "-T", t, "--chunk-size", "8K", "-o", out, src])
        assert r.exit_code == 0, r.stderr
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]
    for t in ("1", "2"):
        dec = tmp_path / f"d{t}"
        assert invoke(["decompress", "-T", t, "-o", dec, tmp_path / "t1.ansz"]).exit_code == 0
        assert dec.read_bytes() == src.read_bytes()
    assert invoke(["verify", "-T", "2", tmp_path / "t2.ansz", src]).exit_code == 0


def test_stdin_stdout_in_process(tmp_path):
    data = make_model(tmp_path / "m.safetensors", "mixed").read_bytes()
    packed = invoke(["compress"], input=data)
    assert packed.exit_code == 0 and packed.stderr == ""  # summary muted on stdout
    assert packed.stdout_bytes[:1] and packed.stdout_bytes != data
    back = invoke(["decompress", "-"], input=packed.stdout_bytes)
    assert back.exit_code == 0 and back.stdout_bytes == data
    r = invoke(["compress", "-o", tmp_path / "from_stdin.ansz"], input=data)
    assert r.exit_code == 0
    assert "(stdin) :" in r.stderr
    r = invoke(["decompress", "-c", tmp_path / "from_stdin.ansz"])
    assert r.stdout_bytes == data
    r = invoke(["decompress", "-v", "-c", tmp_path / "from_stdin.ansz"])
    assert "(stdout)" in r.stderr  # -v shows the summary even when writing to stdout


def test_pipeline_through_installed_command(tmp_path):
    src = make_model(tmp_path / "m.safetensors", "mixed")
    data = src.read_bytes()
    packed = run(["compress", "-c"], input=data)  # cat m.safetensors | ansz compress -c > m.ansz
    assert packed.returncode == 0 and packed.stderr == b""
    (tmp_path / "m.ansz").write_bytes(packed.stdout)
    # ansz decompress -c m.ansz | sha256sum
    out = run(["decompress", "-c", "m.ansz"], cwd=tmp_path)
    assert out.returncode == 0 and hashlib.sha256(out.stdout).hexdigest() == sha256_of(src)
    back = run(["decompress"], input=packed.stdout)
    assert back.returncode == 0 and back.stdout == data
    # a real shell pipeline, with a closed reader at the end (| head) ending quietly
    sh = subprocess.run(f"cat m.safetensors | {ANSZ} compress | {ANSZ} decompress | sha256sum",
                        shell=True, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert sh.stdout.split()[0] == sha256_of(src) and sh.stderr == ""
    sh = subprocess.run(f"{ANSZ} decompress -c m.ansz | head -c 10 >/dev/null",
                        shell=True, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert "Traceback" not in sh.stderr and "Error" not in sh.stderr


def test_file_named_dash_after_double_dash(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("-").write_bytes(b"a file called dash\n" * 50)
    r = invoke(["compress", "--", "-"])
    assert r.exit_code == 0, r.stderr
    assert Path("-.ansz").exists() and r.stdout_bytes == b""
    Path("-").unlink()
    assert invoke(["decompress", "--", "-.ansz"]).exit_code == 0
    assert Path("-").read_bytes() == b"a file called dash\n" * 50
    # "-o --" is a file called "--", not the end of options
    assert invoke(["compress", "-o", "--", "-f", "--", "-"]).exit_code == 0
    assert Path("--").exists()


def _feed_fifo(path: Path, data: bytes):
    import threading

    os.mkfifo(path)

    def write():
        with open(path, "wb") as fh:
            fh.write(data)

    t = threading.Thread(target=write, daemon=True)
    t.start()
    return t


def test_named_pipe_input_is_read_as_a_stream(tmp_path):
    """``ansz compress -o x.ansz <(cmd)``: a pipe has no size to map; it must not come out as
    an empty container."""
    data = make_model(tmp_path / "m.safetensors", "mixed").read_bytes()
    t = _feed_fifo(tmp_path / "fifo", data)
    r = invoke(["compress", "--rm", "-o", tmp_path / "x.ansz", tmp_path / "fifo"])
    t.join(10)
    assert r.exit_code == 0, r.stderr
    assert (tmp_path / "fifo").exists()  # --rm never removes what is not a regular file
    os.unlink(tmp_path / "fifo")
    t = _feed_fifo(tmp_path / "fifo", (tmp_path / "x.ansz").read_bytes())
    r = invoke(["decompress", "-o", tmp_path / "y", tmp_path / "fifo"])
    t.join(10)
    assert r.exit_code == 0, r.stderr
    assert (tmp_path / "y").read_bytes() == data


def test_multiple_files_one_missing(tmp_path):
    a = make_bytes(tmp_path / "a.bin", seed=1)
    b = make_model(tmp_path / "b.safetensors", "f32")
    missing = tmp_path / "missing.bin"
    (tmp_path / "dir").mkdir()
    r = invoke(["compress", a, missing, tmp_path / "dir", b])
    assert r.exit_code == 1
    errors = error_lines(r.stderr)
    assert len(errors) == 2, r.stderr
    assert errors[0] == f"ansz: {missing}: No such file or directory"
    assert errors[1] == f"ansz: {tmp_path / 'dir'}: is a directory -- ignored"
    assert (tmp_path / "a.bin.ansz").exists() and (tmp_path / "b.safetensors.ansz").exists()
    # several inputs decompressed with -c come out one after the other
    r = invoke(["decompress", "-c", tmp_path / "a.bin.ansz", tmp_path / "b.safetensors.ansz"])
    assert r.stdout_bytes == a.read_bytes() + b.read_bytes()
    # the same through the installed command
    p = run(["compress", "-f", a, missing, b])
    assert p.returncode == 1
    assert error_lines(p.stderr.decode()) == [f"ansz: {missing}: No such file or directory"]


def test_never_overwrite_without_force(tmp_path):
    src = make_bytes(tmp_path / "a.bin")
    dst = tmp_path / "a.bin.ansz"
    dst.write_bytes(b"precious")
    r = invoke(["compress", src])
    assert r.exit_code == 1
    assert error_lines(r.stderr) == [f"ansz: {src}: {dst} already exists (use -f to overwrite)"]
    assert dst.read_bytes() == b"precious"
    r = invoke(["compress", "-o", dst], input=b"stdin data")
    assert r.exit_code == 1 and dst.read_bytes() == b"precious"
    assert invoke(["compress", "-f", src]).exit_code == 0
    assert dst.read_bytes() != b"precious"
    r = invoke(["decompress", dst])  # a.bin exists
    assert r.exit_code == 1 and "already exists" in r.stderr
    r = invoke(["compress", "-f", "-o", src, src])
    assert r.exit_code == 1 and "same file" in r.stderr
    assert leftovers(tmp_path) == []


def test_rm_removes_source_only_on_success(tmp_path):
    src = make_bytes(tmp_path / "a.bin")
    data = src.read_bytes()
    (tmp_path / "a.bin.ansz").write_bytes(b"in the way")
    r = invoke(["compress", "--rm", src])  # output exists: fails, keeps the source
    assert r.exit_code == 1 and src.exists()
    r = invoke(["compress", "--rm", "-f", src])
    assert r.exit_code == 0 and not src.exists()
    packed = tmp_path / "a.bin.ansz"
    r = invoke(["decompress", "-c", "--rm", packed])  # never with stdout
    assert r.exit_code == 0 and packed.exists() and "--rm ignored" in r.stderr
    assert invoke(["decompress", "--rm", "-k", packed]).exit_code == 0  # -k after --rm wins
    assert packed.exists()
    src.unlink()
    assert invoke(["decompress", "--rm", packed]).exit_code == 0
    assert not packed.exists() and src.read_bytes() == data
    # a corrupt container is never removed, and leaves no output behind
    invoke(["compress", src])
    blob = bytearray(packed.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    packed.write_bytes(bytes(blob))
    src.unlink()
    r = invoke(["decompress", "--rm", packed])
    assert r.exit_code == 1 and len(error_lines(r.stderr)) == 1
    assert packed.exists() and not src.exists() and leftovers(tmp_path) == []


def test_output_to_dev_null_writes_through_and_keeps_the_device(tmp_path):
    src = make_bytes(tmp_path / "a.bin")
    assert invoke(["compress", "-f", "-o", "/dev/null", src]).exit_code == 0
    packed = tmp_path / "a.ansz"
    assert invoke(["compress", "-o", packed, src]).exit_code == 0
    assert invoke(["decompress", "-f", "-o", "/dev/null", packed]).exit_code == 0
    assert os.path.exists("/dev/null") and not os.path.isfile("/dev/null")


def test_rm_syncs_and_verifies_before_removing(tmp_path, monkeypatch):
    src = make_bytes(tmp_path / "a.bin")
    synced = []
    real_atomic = api.atomic_output

    def spy(dst, **kw):
        synced.append(kw.get("sync"))
        return real_atomic(dst, **kw)

    monkeypatch.setattr(api, "atomic_output", spy)
    assert invoke(["compress", "-k", "-o", tmp_path / "k.ansz", src]).exit_code == 0
    assert synced == [False]  # no fsync when the source stays
    # An output that does not verify against the source keeps the source.
    monkeypatch.setattr(api, "verify_file", lambda *a, **k: api.VerifyReport(
        str(a[0]), False, 0, "", "chunk 0", "simulated mismatch"))
    r = invoke(["compress", "--rm", src])
    assert r.exit_code == 1 and src.exists() and "does not verify" in r.stderr
    assert synced == [False, True]


def test_the_command_and_the_api_refuse_the_same_outputs_alike(tmp_path):
    """One overwrite policy: the command says what the API says, with -f for overwrite=True."""
    src = make_bytes(tmp_path / "a.bin")
    existing = tmp_path / "old.ansz"
    existing.write_bytes(b"keep me")
    (tmp_path / "dir").mkdir()
    (tmp_path / "link").symlink_to(src)
    for dst, force in [(existing, False), (src, True), (tmp_path / "link", True),
                       (tmp_path / "dir", True)]:
        with pytest.raises(AnszError) as refused:
            api.compress_file(src, dst, overwrite=force)
        r = invoke(["compress", *(["-f"] if force else []), "-o", dst, src])
        said = str(refused.value).replace("overwrite=True replaces it", "use -f to overwrite")
        assert (r.exit_code, error_lines(r.stderr)) == (1, [f"ansz: {src}: {said}"])
    assert existing.read_bytes() == b"keep me" and (tmp_path / "dir").is_dir()
    assert leftovers(tmp_path) == []


def test_unknown_suffix_on_decompress(tmp_path):
    src = make_bytes(tmp_path / "a.bin")
    r = invoke(["decompress", src])
    assert r.exit_code == 1
    assert error_lines(r.stderr) == [
        f"ansz: {src}: unknown suffix (expected .ansz) -- use -o FILE or -c"]
    r = invoke(["compress", "-q", src])
    os.rename(tmp_path / "a.bin.ansz", tmp_path / "a.zst")
    r = invoke(["decompress", "-o", tmp_path / "back.bin", tmp_path / "a.zst"])
    assert r.exit_code == 0 and (tmp_path / "back.bin").read_bytes() == src.read_bytes()
    # compressing a .ansz again needs -f
    r = invoke(["compress", tmp_path / "back.bin", tmp_path / "a.zst"])
    assert r.exit_code == 0
    r = invoke(["compress", tmp_path / "back.bin.ansz"])
    assert r.exit_code == 1 and "already has .ansz suffix" in r.stderr


def _corrupt_middle(path: Path) -> None:
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0x5A
    path.write_bytes(bytes(blob))


def test_verify_ok_and_failed(tmp_path):
    src = make_model(tmp_path / "m.safetensors", "mixed")
    invoke(["compress", "-q", src])
    packed = tmp_path / "m.safetensors.ansz"
    r = invoke(["verify", packed])
    assert r.exit_code == 0 and r.stdout == f"{packed}: OK\n" and r.stderr == ""
    assert invoke(["verify", "-q", packed]).stdout == ""
    assert invoke(["verify", packed, src]).exit_code == 0
    other = tmp_path / "other"
    blob = bytearray(src.read_bytes())
    blob[-1] ^= 1
    other.write_bytes(bytes(blob))
    r = invoke(["verify", packed, other])
    assert r.exit_code == 1 and r.stdout.startswith(f"{packed}: FAILED (")
    shutil.copy(packed, tmp_path / "bad.ansz")
    _corrupt_middle(tmp_path / "bad.ansz")
    r = invoke(["verify", tmp_path / "bad.ansz"])
    assert r.exit_code == 1
    assert re.fullmatch(rf"{re.escape(str(tmp_path / 'bad.ansz'))}: FAILED \(.+\)\n", r.stdout)
    r = invoke(["decompress", "-o", tmp_path / "out", tmp_path / "bad.ansz"])
    assert r.exit_code == 1 and len(error_lines(r.stderr)) == 1
    assert not (tmp_path / "out").exists() and leftovers(tmp_path) == []
    p = run(["verify", tmp_path / "bad.ansz"])
    assert p.returncode == 1 and b"FAILED" in p.stdout


def test_verify_json(tmp_path):
    src = make_model(tmp_path / "m.safetensors", "bf16")
    invoke(["compress", "-q", src])
    packed = tmp_path / "m.safetensors.ansz"
    r = invoke(["verify", "--json", packed])
    doc = json.loads(r.stdout)
    assert set(doc) == {"path", "ok", "original_size", "sha256", "first_bad", "message"}
    assert doc["ok"] is True and doc["sha256"] == sha256_of(src)
    assert doc["original_size"] == src.stat().st_size
    _corrupt_middle(packed)
    r = invoke(["verify", "--json", packed])
    doc = json.loads(r.stdout)
    assert r.exit_code == 1 and doc["ok"] is False and doc["message"]
    r = invoke(["verify", "--json", tmp_path / "nope.ansz"])
    assert r.exit_code == 1 and json.loads(r.stdout)["ok"] is False
    assert len(error_lines(r.stderr)) == 1


def _from_a_newer_ansz(tmp_path: Path, flags: int = 0x8000) -> Path:
    """A sound container whose file header sets a flag this ansz does not know (its CRC
    fixed): what a newer writer's feature looks like."""
    src = make_model(tmp_path / "m.safetensors", "mixed")
    packed = tmp_path / "m.safetensors.ansz"
    api.compress_file(src, packed)
    src.unlink()
    blob = packed.read_bytes()
    head = container.pack_file_header(container.parse_file_header(blob), flags=flags)
    packed.write_bytes(head + blob[len(head):])
    return packed


@pytest.mark.parametrize("args", [["decompress"], ["decompress", "-c"], ["verify"],
                                  ["verify", "--json"], ["info"], ["info", "--json"]])
def test_a_container_from_a_newer_ansz_exits_3(args, tmp_path):
    packed = _from_a_newer_ansz(tmp_path)
    r = invoke([*args, packed])
    assert r.exit_code == 3
    (line,) = error_lines(r.stderr)
    assert line.startswith(f"ansz: {packed}: needs a newer ansz than {__version__}: ")
    assert "header flags 0x8000" in line
    if "--json" in args and args[0] == "verify":
        doc = json.loads(r.stdout)
        assert doc["ok"] is False and "needs a newer ansz" in doc["message"]
    else:
        assert r.stdout == ""  # neither restored bytes, nor "OK", nor "FAILED"
    assert not (tmp_path / "m.safetensors").exists() and leftovers(tmp_path) == []


def test_newer_and_corrupt_containers_are_told_apart(tmp_path):
    newer = _from_a_newer_ansz(tmp_path)
    corrupt = tmp_path / "corrupt.ansz"
    blob = bytearray(newer.read_bytes())
    blob[10] ^= 0x01  # the flags again, without fixing the header's CRC: corrupt, not newer
    corrupt.write_bytes(bytes(blob))
    r = invoke(["decompress", "-c", corrupt])
    assert r.exit_code == 1 and "needs a newer" not in r.stderr and "checksum" in r.stderr
    # With several inputs: 3 only if every failure is for want of a newer ansz.
    good = tmp_path / "good.ansz"
    api.compress_file(make_bytes(tmp_path / "x.bin"), good)
    assert invoke(["info", good, newer]).exit_code == 3
    assert invoke(["info", newer, corrupt, good]).exit_code == 1
    # ... and through the installed command, from standard input too.
    assert run(["decompress", "-c"], input=newer.read_bytes()).returncode == 3
    p = run(["verify", newer])
    assert p.returncode == 3 and p.stdout == b""


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty", "middle"])
def test_bad_containers_one_line_no_traceback(damage, tmp_path):
    src = make_model(tmp_path / "m.safetensors", "mixed")
    invoke(["compress", "-q", src])
    packed = tmp_path / "m.safetensors.ansz"
    blob = packed.read_bytes()
    packed.write_bytes({"truncate": blob[: len(blob) * 2 // 3], "garbage": b"not ansz" * 100,
                        "empty": b"", "middle": blob}[damage])
    if damage == "middle":
        _corrupt_middle(packed)
    checks = [["decompress", "-f", packed], ["decompress", "-c", packed], ["verify", packed]]
    if damage != "middle":  # info reads only the header, trailer and index
        checks.append(["info", packed])
    for args in checks:
        r = invoke(args)
        assert r.exit_code == 1, (args, r.stderr)
        if args[0] != "verify" or error_lines(r.stderr):
            assert len(error_lines(r.stderr)) == 1, (args, r.stderr)
    r = invoke(["decompress"], input=packed.read_bytes())
    assert r.exit_code == 1 and len(error_lines(r.stderr)) == 1
    p = run(["decompress", "-c", packed])
    assert p.returncode == 1 and len(error_lines(p.stderr.decode())) == 1


def test_info_json_and_text(tmp_path):
    src = make_model(tmp_path / "m.safetensors", "mixed")
    b = make_bytes(tmp_path / "b.bin")
    invoke(["compress", "-q", src, b])
    packed = tmp_path / "m.safetensors.ansz"
    r = invoke(["info", "--json", packed, tmp_path / "b.bin.ansz"])
    assert r.exit_code == 0
    docs = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(docs) == 2
    keys = {"path", "format_version", "format", "original_size", "compressed_size", "ratio",
            "sha256", "segment_count", "chunk_count", "chunk_size", "base", "segments"}
    assert all(set(d) == keys for d in docs)
    assert all(d["base"] is None for d in docs)  # neither was compressed against a base
    d = docs[0]
    assert d["format"] == "safetensors" and docs[1]["format"] == "bytes"
    assert d["original_size"] == src.stat().st_size
    assert d["compressed_size"] == packed.stat().st_size
    assert d["sha256"] == sha256_of(src) and d["chunk_count"] >= 1 and d["segment_count"] >= 1
    assert d["ratio"] == pytest.approx(d["compressed_size"] / d["original_size"])
    seg_keys = {"name", "dtype", "shape", "start", "end", "nbytes", "chunk_count",
                "compressed_size"}
    assert all(set(seg) == seg_keys for seg in d["segments"])
    named = {seg["name"]: seg for seg in d["segments"] if seg["name"] is not None}
    assert named["embed.weight"]["dtype"] == "BF16" and named["embed.weight"]["shape"] == [96, 64]
    assert sum(seg["nbytes"] for seg in d["segments"]) == d["original_size"]
    assert len(d["segments"]) == d["segment_count"]
    r = invoke(["info", packed])
    assert r.exit_code == 0 and sha256_of(src) in r.stdout and "format version" in r.stdout
    r = invoke(["info", packed, tmp_path / "b.bin.ansz"])
    assert r.stdout.splitlines()[-1].startswith("total: 2 files, ")
    r = invoke(["info", packed, tmp_path / "missing.ansz"])
    assert r.exit_code == 1 and sha256_of(src) in r.stdout and len(error_lines(r.stderr)) == 1


def test_io_errors_are_one_line(tmp_path):
    src = make_bytes(tmp_path / "a.bin")
    r = invoke(["compress", "-o", tmp_path / "no" / "such" / "dir.ansz", src])
    assert r.exit_code == 1 and len(error_lines(r.stderr)) == 1
    assert "No such file or directory" in r.stderr
    if os.geteuid() != 0:
        locked = tmp_path / "locked.bin"
        locked.write_bytes(b"secret")
        locked.chmod(0)
        r = invoke(["compress", locked])
        assert r.exit_code == 1 and "Permission denied" in r.stderr


def test_interrupt_exits_130_quietly(tmp_path, monkeypatch):
    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(api, "compress_file", interrupted)
    r = invoke(["compress", make_bytes(tmp_path / "a.bin")])
    assert r.exit_code == 130 and r.stderr == ""


def test_internal_error_is_one_line(tmp_path, monkeypatch):
    def bug(*a, **k):
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(api, "compress_file", bug)
    a, b = make_bytes(tmp_path / "a.bin"), make_bytes(tmp_path / "b.bin")
    r = invoke(["compress", a, b])
    assert r.exit_code == 1
    errors = error_lines(r.stderr)
    assert len(errors) == 2 and "internal error: RuntimeError: boom second line" in errors[0]


# -------------------------------------------------------------------------------------------
# Terminals and progress


def test_refuse_compressed_data_to_or_from_a_terminal(tmp_path):
    src = make_bytes(tmp_path / "a.bin", n=2000)
    code, _, err = run_with_tty(["compress", "-c", src], "stdout")
    assert code == 1
    assert error_lines(err) == [
        f"ansz: {src}: compressed data not written to a terminal (use -f to force)"]
    code, _, err = run_with_tty(["compress"], "stdout", input=b"data")
    assert code == 1 and "not written to a terminal" in err
    code, _, err = run_with_tty(["decompress"], "stdin")
    assert code == 1 and "not read from a terminal" in err


def test_existing_output_prompt_on_a_terminal(tmp_path):
    """With stdin and stderr on a terminal, ask before overwriting; anything but yes keeps it."""
    src = make_bytes(tmp_path / "a.bin", n=1000)
    (tmp_path / "a.bin.ansz").write_bytes(b"keep me")
    with at_overwrite_prompt(src) as (proc, master):
        os.write(master, b"n\n")
        proc.communicate(timeout=120)
    assert proc.returncode == 1
    assert (tmp_path / "a.bin.ansz").read_bytes() == b"keep me"


def test_no_progress_when_stderr_is_not_a_tty(tmp_path):
    src = make_model(tmp_path / "m.safetensors", "bf16")
    p = run(["compress", src])
    assert p.returncode == 0
    lines = p.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{src} : ")
    assert b"\x1b[" not in p.stderr and b"\r" not in p.stderr
    r = invoke(["decompress", "-f", str(src) + ".ansz"])
    assert "\x1b[" not in r.stderr and len(r.stderr.splitlines()) == 1
    r = invoke(["compress", "-f", "--progress", src])  # forced: drawn even on a pipe
    assert r.exit_code == 0 and "\x1b[" in r.stderr


def test_first_run_notice_only_with_a_cold_cache_and_progress(tmp_path, monkeypatch):
    # Without the kernel library numba compiles every kernel on the first run (~30 s): the
    # CLI says so when it shows progress and the cache holds nothing compiled from the
    # current kernel sources.
    from ansz import kernels

    monkeypatch.setattr(kernels, "uses_library", lambda: False)
    src = make_model(tmp_path / "m.safetensors", "bf16")
    cache = tmp_path / "cache"
    env = {"NUMBA_CACHE_DIR": str(cache)}  # read by the check only: numba is loaded
    r = invoke(["compress", "-f", "--progress", src], env=env)
    assert r.exit_code == 0 and "first run: compiling kernels" in r.stderr
    assert str(cache) in r.stderr
    r = invoke(["compress", "-f", "--no-progress", src], env=env)
    assert r.exit_code == 0 and "first run" not in r.stderr
    (cache / "_kernels_x").mkdir(parents=True)
    (cache / "_kernels_x" / "rans.rans_encode-1.py311.nbi").write_bytes(b"")
    r = invoke(["decompress", "-f", "--progress", str(src) + ".ansz"], env=env)
    assert r.exit_code == 0 and "first run" not in r.stderr


def test_no_first_run_notice_with_the_kernel_library(tmp_path):
    # The library's kernels need no compiling: no notice, even with an empty numba cache.
    from ansz import kernels

    if not kernels.uses_library():
        pytest.skip(f"the kernel library is not in use: {kernels.fallback_reason()}")
    src = make_model(tmp_path / "m.safetensors", "bf16")
    r = invoke(["compress", "-f", "--progress", src],
               env={"NUMBA_CACHE_DIR": str(tmp_path / "cache")})
    assert r.exit_code == 0 and "first run" not in r.stderr and "\x1b[" in r.stderr


# -------------------------------------------------------------------------------------------
# Model directories (-r)


def _model_dir(root: Path) -> Path:
    """A sharded Hugging Face model directory: 3 shards, their index json, config and
    tokenizer files, and a shard in a subdirectory."""
    d = root / "model"
    (d / "extra").mkdir(parents=True)
    weight_map = {}
    for i in range(3):
        name = f"model-0000{i + 1}-of-00003.safetensors"
        make_model(d / name, "mixed", seed=10 * i)
        weight_map[f"layer.{i}.weight"] = name
    index = {"metadata": {"total_size": 123456}, "weight_map": weight_map}
    (d / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
    (d / "config.json").write_text('{"model_type": "llama"}\n')
    (d / "tokenizer.json").write_text('{"version": "1.0"}\n')
    make_model(d / "extra" / "adapter.safetensors", "bf16")
    return d


def _tree(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def test_directory_round_trip_with_rm_is_byte_identical(tmp_path):
    d = _model_dir(tmp_path)
    before = _tree(d)
    shards = sorted(k for k in before if k.endswith(".safetensors"))
    assert len(shards) == 4
    r = invoke(["compress", "-r", "--rm", "-T", "2", d])
    assert r.exit_code == 0, r.stderr
    after = _tree(d)
    assert sorted(after) == sorted([s + ".ansz" for s in shards]
                                   + ["config.json", "model.safetensors.index.json",
                                      "tokenizer.json"])
    for k in ("config.json", "model.safetensors.index.json", "tokenizer.json"):
        assert after[k] == before[k]  # left exactly as they were
    lines = [ln for ln in r.stderr.splitlines() if " : " in ln][:-1]  # one summary per file
    # a directory's own files first (sorted), then its subdirectories
    order = [s for s in shards if "/" not in s] + ["extra/adapter.safetensors"]
    assert r.stderr.splitlines()[-1].startswith(f"{len(order)} files compressed : ")
    assert [ln.split(" : ")[0] for ln in lines] == [str(d / s) for s in order]
    r = invoke(["decompress", "-r", "--rm", d])
    assert r.exit_code == 0, r.stderr
    assert _tree(d) == before
    assert not leftovers(d) and not leftovers(d / "extra")


def test_directory_round_trip_keeping_inputs(tmp_path):
    d = _model_dir(tmp_path)
    copy = tmp_path / "copy"
    assert invoke(["compress", "-r", d]).exit_code == 0
    shutil.copytree(d, copy)
    for p in copy.rglob("*.safetensors"):
        p.unlink()  # the copy holds only containers and the other files
    r = invoke(["decompress", "--recursive", copy])
    assert r.exit_code == 0, r.stderr
    restored = {k: v for k, v in _tree(copy).items() if not k.endswith(".ansz")}
    assert restored == {k: v for k, v in _tree(d).items() if not k.endswith(".ansz")}
    assert len(restored) == 7
    # a second compress -r refuses to overwrite, file by file, and says so (exit 1)
    r = invoke(["compress", "-r", d])
    assert r.exit_code == 1 and len(error_lines(r.stderr)) == 4


def test_directory_without_r_is_refused(tmp_path):
    d = _model_dir(tmp_path)
    before = _tree(d)
    for cmd in ("compress", "decompress"):
        r = invoke([cmd, d])
        assert r.exit_code == 1
        assert error_lines(r.stderr) == [f"ansz: {d}: is a directory -- ignored"]
    assert _tree(d) == before


def test_directory_with_output_or_stdout_is_a_usage_error(tmp_path):
    d = _model_dir(tmp_path)
    for extra in (["-o", tmp_path / "x"], ["-c"]):
        r = invoke(["compress", "-r", *extra, d])
        assert r.exit_code == 2
    assert not list(d.rglob("*.ansz"))


def test_directory_bad_file_does_not_stop_the_others(tmp_path):
    d = _model_dir(tmp_path)
    before = _tree(d)
    assert invoke(["compress", "-r", "--rm", d]).exit_code == 0
    bad = d / "model-00002-of-00003.safetensors.ansz"
    _corrupt_middle(bad)
    damaged = bad.read_bytes()
    r = invoke(["decompress", "-r", "--rm", d])
    assert r.exit_code == 1
    errors = error_lines(r.stderr)
    assert len(errors) == 1 and errors[0].startswith(f"ansz: {bad}: ")
    assert bad.read_bytes() == damaged  # kept: never removed after a failure
    assert not (d / "model-00002-of-00003.safetensors").exists()
    for k, v in before.items():
        if k != "model-00002-of-00003.safetensors":
            assert (d / k).read_bytes() == v


def test_several_files_end_with_a_total_line(tmp_path):
    a = make_bytes(tmp_path / "a.bin", seed=1)
    b = make_model(tmp_path / "b.safetensors", "f32")
    missing = tmp_path / "missing.bin"
    r = invoke(["compress", a, missing, b])
    assert r.exit_code == 1
    comp = [tmp_path / "a.bin.ansz", tmp_path / "b.safetensors.ansz"]
    orig_total = a.stat().st_size + b.stat().st_size
    comp_total = sum(p.stat().st_size for p in comp)
    last = r.stderr.strip().splitlines()[-1]
    # the files done are counted, the missing one is not
    assert last == (f"2 files compressed : {percent(comp_total, orig_total)} "
                    f"({human_size(orig_total)} => {human_size(comp_total)})")
    r = invoke(["decompress", "-f", *comp])
    assert r.exit_code == 0
    assert r.stderr.strip().splitlines()[-1] == (
        f"2 files decompressed : {human_size(comp_total)} => {human_size(orig_total)}")
    # one file: no total; -q: nothing at all
    r = invoke(["decompress", "-f", comp[0]])
    assert "files decompressed" not in r.stderr
    assert invoke(["decompress", "-f", "-q", *comp]).stderr == ""


def test_time_left_is_not_counted_from_before_the_first_chunk(monkeypatch):
    """A first run compiles kernels for ~30 s before the first chunk is done; the bar's
    speed and time left start at that chunk, not at the start of the run."""
    import rich.progress

    from ansz.cli import report

    now = [100.0]
    monkeypatch.setattr(report, "_clock", lambda: now[0])
    bars = []
    real = rich.progress.Progress

    class Spy(real):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            bars.append(self)

    monkeypatch.setattr(rich.progress, "Progress", Spy)
    rep = report.Reporter(progress=True)
    with rep.progress_bar("m.safetensors", 100 * 2**20) as update:
        now[0] += 30.0  # compiling
        update(1 * 2**20)
        for i in range(2, 6):  # then 1 MiB every 10 ms
            now[0] += 0.01
            update(i * 2**20)
        task = bars[0].tasks[0]
        assert task.speed == pytest.approx(100 * 2**20, rel=0.01)
        assert task.time_remaining == 1  # 95 MiB left, rounded up to whole seconds


def test_vv_states_the_settings_in_effect(tmp_path):
    from ansz import kernels

    src = make_bytes(tmp_path / "a.bin")
    r = invoke(["compress", "-vv", "-T", "1", "--fast", "--chunk-size", "256K", src])
    assert r.exit_code == 0, r.stderr
    first = r.stderr.splitlines()[0]
    assert first.startswith(f"ansz {__version__}, level 1, coder auto, chunks of 256 KiB, "
                            "1 thread, kernels: ")
    assert ("ahead-of-time library" in first) == (kernels.fallback_reason() is None)
    for level, chunks in (["--fast"], "2 MiB"), ([], "1 MiB"):
        r = invoke(["compress", "-vv", "-f", "-T", "1", *level, src])
        assert r.exit_code == 0, r.stderr
        assert f", chunks of {chunks}, 1 thread, " in r.stderr.splitlines()[0]
        assert api.read_info(tmp_path / "a.bin.ansz").chunk_size == {"2 MiB": 2 << 20,
                                                                     "1 MiB": 1 << 20}[chunks]
    r = invoke(["decompress", "-vv", "-f", "-T", "2", tmp_path / "a.bin.ansz"])
    assert r.stderr.splitlines()[0].startswith(f"ansz {__version__}, 2 threads, kernels: ")
    assert "kernels:" not in invoke(["decompress", "-v", "-f", tmp_path / "a.bin.ansz"]).stderr
