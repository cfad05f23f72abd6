"""The ``ansz`` command where its surroundings fail or push: file names at the length limit,
ownership of outputs, a full disk, a race for the same output, usage errors, standard output
full or closed, and signals that land where Python swallows them.

Most tests run the installed ``ansz`` in a subprocess: these are properties of the process
(its standard streams, its signal handling, the interpreter's exit), not of click.
"""

from __future__ import annotations

import errno
import io
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from ansz import __version__, api
from ansz.cli import jobs, signals

from helpers import ANSZ, at_overwrite_prompt, invoke, leftovers, make_model, run


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    """A small model and its container (shared: tests must not change them)."""
    d = tmp_path_factory.mktemp("model")
    src = make_model(d / "m.safetensors", "bf16")
    assert run(["compress", "-q", src]).returncode == 0
    return src


def run_stdout_closed(args, stdin=None) -> subprocess.CompletedProcess:
    """``ansz ARGS >&-``: descriptor 1 closed, as the shell does it."""
    return subprocess.run(["sh", "-c", 'exec "$@" >&-', "sh", ANSZ, *map(str, args)],
                          stdin=stdin, stderr=subprocess.PIPE, timeout=120)


# -------------------------------------------------------------------------------------------
# Output names at the length limit (NAME_MAX: 255 bytes)


def test_255_byte_names_round_trip(tmp_path):
    # 2-byte characters at odd offsets: cutting the name for the temporary file at a fixed
    # byte count would split one.
    stem = "x" + "é" * 120 + "abcd"
    assert len(os.fsencode(stem)) == 245
    name = stem + ".safetensors"[:5]  # 250 bytes: its container's name is 255
    src = tmp_path / name
    make_model(src, "bf16")
    original = src.read_bytes()
    p = run(["compress", "-q", src])
    assert p.returncode == 0, p.stderr.decode()
    container = tmp_path / (name + ".ansz")
    assert len(os.fsencode(container.name)) == 255
    src.unlink()
    p = run(["decompress", "-q", container])
    assert p.returncode == 0, p.stderr.decode()
    assert src.read_bytes() == original
    longest = tmp_path / ("y" + "é" * 127)  # 255 bytes, from -o
    p = run(["decompress", "-q", "-o", longest, container])
    assert p.returncode == 0, p.stderr.decode()
    assert longest.read_bytes() == original
    assert leftovers(tmp_path) == []


def test_temporary_name_fits_and_is_whole_characters(tmp_path):
    for name in ("a" + "é" * 127, "ab" + "é" * 126 + "c", "€" * 85, "short"):
        dst = tmp_path / name
        with api.atomic_output(dst) as fh:
            fh.write(b"data")
            (tmp,) = [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
            assert len(os.fsencode(tmp)) <= 255
            assert tmp.startswith("." + name[:10]) and "\udcc3" not in tmp
            os.fsencode(tmp).decode("utf-8")  # no split character
        assert dst.read_bytes() == b"data"
        dst.unlink()


# -------------------------------------------------------------------------------------------
# Ownership


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file away needs root")
def test_output_keeps_the_input_owner_and_group(tmp_path):
    src = make_model(tmp_path / "m.safetensors", "bf16")
    os.chown(src, 1234, 5678)
    os.chmod(src, 0o640)
    assert run(["compress", "-q", src]).returncode == 0
    st = os.stat(tmp_path / "m.safetensors.ansz")
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (1234, 5678, 0o640)
    os.chown(tmp_path / "m.safetensors.ansz", 4321, 8765)
    assert run(["decompress", "-q", "-f", tmp_path / "m.safetensors.ansz"]).returncode == 0
    st = os.stat(src)
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (4321, 8765, 0o640)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to make the other user's file")
def test_owner_not_permitted_is_not_an_error(tmp_path, monkeypatch):
    """Where chown is refused (not root), the output is written with the caller's ids."""
    src = make_model(tmp_path / "m.safetensors", "bf16")
    os.chown(src, 1234, 5678)
    calls = []

    def refuse(path, uid, gid):
        calls.append((uid, gid))
        raise PermissionError(errno.EPERM, os.strerror(errno.EPERM), path)

    monkeypatch.setattr(os, "chown", refuse)
    api.compress_file(src, tmp_path / "m.ansz")
    st = os.stat(tmp_path / "m.ansz")
    assert (st.st_uid, st.st_gid) == (os.geteuid(), os.getegid())
    assert calls == [(1234, 5678), (-1, 5678)]
# -------------------------------------------------------------------------------------------
# A full disk is reported under the output's name


class _FullDisk(io.FileIO):
    def write(self, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("command", ["compress", "decompress", "compress-stdin"])
def test_disk_full_names_the_output(command, tmp_path, monkeypatch):
    src = make_model(tmp_path / "m.safetensors", "bf16")
    api.compress_file(src, tmp_path / "m.ansz")
    real_fdopen = os.fdopen
    monkeypatch.setattr(os, "fdopen",
                        lambda fd, mode="r", *a, **kw: _FullDisk(fd, "w") if "w" in mode
                        else real_fdopen(fd, mode, *a, **kw))

    def full_disk_pwrite(fd, data, offset):  # decompress_file's workers write in place
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "pwrite", full_disk_pwrite)
    out = tmp_path / "out"
    if command == "compress":
        r = invoke(["compress", "-o", out, src])
    elif command == "decompress":
        r = invoke(["decompress", "-o", out, tmp_path / "m.ansz"])
    else:
        r = invoke(["compress", "-o", out], input=src.read_bytes())
    assert r.exit_code == 1
    assert r.stderr == f"ansz: {out}: No space left on device\n"
    assert not out.exists() and leftovers(tmp_path) == []


@pytest.mark.parametrize("command", ["compress", "decompress"])
def test_disk_full_device_names_the_device(command, model):
    src = model if command == "compress" else f"{model}.ansz"
    p = run([command, "-f", "-o", "/dev/full", src])
    assert (p.returncode, p.stderr.decode()) == (1,
                                                  "ansz: /dev/full: No space left on device\n")


# -------------------------------------------------------------------------------------------
# Two processes writing the same output with -f


def _output_appears_after_the_check(monkeypatch):
    """Another writer creates the output between the CLI's check and the API's publish."""
    real = jobs.check_output

    def check_then_race(src, dst, force, rep):
        decision = real(src, dst, force, rep)
        Path(dst).write_bytes(b"the other writer's output")
        return decision

    monkeypatch.setattr(jobs, "check_output", check_then_race)


@pytest.mark.parametrize("stdin", [False, True])
def test_force_overwrites_an_output_that_appeared_meanwhile(stdin, tmp_path, monkeypatch):
    src = make_model(tmp_path / "m.safetensors", "bf16")
    out = tmp_path / "out.ansz"
    _output_appears_after_the_check(monkeypatch)
    args = ["compress", "-f", "-o", out] + ([] if stdin else [src])
    r = invoke(args, input=src.read_bytes() if stdin else None)
    assert r.exit_code == 0, r.stderr
    restored = tmp_path / "restored"
    api.decompress_file(out, restored)
    assert restored.read_bytes() == src.read_bytes()
    assert leftovers(tmp_path) == []


def test_without_force_an_output_that_appeared_meanwhile_is_kept(tmp_path, monkeypatch):
    src = make_model(tmp_path / "m.safetensors", "bf16")
    _output_appears_after_the_check(monkeypatch)
    r = invoke(["compress", src])
    dst = tmp_path / "m.safetensors.ansz"
    assert r.exit_code == 1  # with the command line's wording, not the API's
    assert r.stderr == f"ansz: {src}: {dst} already exists (use -f to overwrite)\n"
    assert dst.read_bytes() == b"the other writer's output"
    assert leftovers(tmp_path) == []


# -------------------------------------------------------------------------------------------
# Usage errors: one line, status 2, through CliRunner as through the command


@pytest.mark.parametrize("args, line", [
    (["compress", "-x"], r"ansz: compress: no such option:? '?-x'?"
                         r" \(see 'ansz compress --help'\)"),
    (["frobnicate"], r"ansz: no such command:? '?frobnicate'? \(see 'ansz --help'\)"),
    (["-x"], r"ansz: no such option:? '?-x'? \(see 'ansz --help'\)"),
    (["verify", "--original", "o", "a.ansz", "b.ansz"],
     r"ansz: verify: --original takes one container \(see 'ansz verify --help'\)"),
    (["compress", "-c", "-o", "x", "a"],
     r"ansz: compress: -o/--output and -c/--stdout exclude each other"
     r" \(see 'ansz compress --help'\)"),
    (["info", "-"], r"ansz: info: needs seekable files, not standard input"
                    r" \(see 'ansz info --help'\)"),
    (["stats", "x", "-"], r"ansz: stats: needs files, not standard input"
                          r" \(see 'ansz stats --help'\)"),
    (["bench", "-"], r"ansz: bench: needs files, not standard input"
                     r" \(see 'ansz bench --help'\)"),
    (["compress", "--chunk-size", "1"], r"ansz: compress: invalid value for '--chunk-size': "
                                        r"'1': size must be 1 KiB to 64 MiB"
                                        r" \(see 'ansz compress --help'\)"),
])
def test_usage_error_is_one_line(args, line, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = invoke(args)
    assert r.exit_code == 2 and r.stdout == ""
    assert re.fullmatch(line + "\n", r.stderr), r.stderr
    p = run(args, cwd=tmp_path)
    assert p.returncode == 2 and p.stdout == b""
    assert p.stderr.decode() == r.stderr


# -------------------------------------------------------------------------------------------
# Standard output that fails: one line on stderr, status 1, never a traceback

FULL = "ansz: error writing to standard output: No space left on device\n"


@pytest.mark.parametrize("args", [
    ["--help"],
    ["--version"],
    ["compress", "--help"],
    ["verify", "{c}"],
    ["verify", "--json", "{c}"],
    ["stats", "{m}"],
    ["stats", "--json", "{m}"],
    ["info", "{c}"],
    ["info", "--json", "{c}"],
    ["decompress", "-c", "{c}"],
    ["compress", "-c", "{m}"],
])
def test_stdout_full_is_one_line(args, model):
    args = [a.format(m=model, c=f"{model}.ansz") for a in args]
    with open("/dev/full", "wb") as full:
        p = run(args, stdout=full)
    assert (p.returncode, p.stderr.decode()) == (1, FULL)


@pytest.mark.parametrize("args, stdin", [
    (["--version"], None),
    (["verify", "{c}"], None),
    (["stats", "--json", "{m}"], None),
    (["decompress", "-c", "{c}"], None),
    (["decompress"], "{c}"),  # standard input to standard output
])
def test_stdout_closed_is_one_line(args, stdin, model):
    names = {"m": model, "c": f"{model}.ansz"}
    args = [a.format(**names) for a in args]
    with open(stdin.format(**names) if stdin else os.devnull, "rb") as fh:
        p = run_stdout_closed(args, stdin=fh)
    assert (p.returncode, p.stderr.decode()) == (1, "ansz: standard output is closed\n")


def test_stdout_closed_does_not_matter_when_unused(model, tmp_path):
    """Descriptor 1 closed is held on /dev/null: the output file does not take its number,
    and the command writes its file as usual."""
    out = tmp_path / "out.ansz"
    p = run_stdout_closed(["compress", "-q", "-o", out, model])
    assert (p.returncode, p.stderr) == (0, b"")
    p = run(["decompress", "-c", out])
    assert p.returncode == 0 and p.stdout == model.read_bytes()


def test_stdin_closed_is_an_error_not_empty_input(tmp_path):
    p = subprocess.run(["sh", "-c", 'exec "$@" <&-', "sh", ANSZ, "compress", "-o",
                        tmp_path / "x.ansz"], stderr=subprocess.PIPE, timeout=120)
    assert p.returncode == 1
    assert p.stderr.decode() == "ansz: (stdin): Bad file descriptor\n"
    assert list(tmp_path.iterdir()) == []


def test_broken_pipe_stays_quiet(model):
    """A reader that goes away is not an error worth a message (``| head``)."""
    big = model.parent / "big.bin"
    big.write_bytes(np.random.default_rng(1).integers(0, 4, 8 << 20, dtype=np.uint8))
    comp = model.parent / "big.bin.ansz"
    assert run(["compress", "-q", "-f", big]).returncode == 0
    p = subprocess.run(f'"{ANSZ}" decompress -c "{comp}" | head -c 10 >/dev/null; '
                       'echo "status ${PIPESTATUS[0]}" >&2', shell=True, executable="bash",
                       stderr=subprocess.PIPE, timeout=120)
    assert p.stderr.decode() == "status 1\n"


# -------------------------------------------------------------------------------------------
# Signals that land where Python swallows them

SIGNAL_IN_DEL = textwrap.dedent("""
    import signal, sys

    import ansz.container as container
    from ansz import cli

    SIG = signal.{sig}
    real_write_all = container.write_all
    raised = []

    class Bomb:
        def __del__(self):  # an exception here is "ignored" by Python: printed, dropped
            signal.raise_signal(SIG)

    def write_all(fh, data):
        if not raised:  # the first write: the temporary output exists
            raised.append(True)
            Bomb()
        return real_write_all(fh, data)

    container.write_all = write_all
    sys.argv = ["ansz", *sys.argv[1:]]
    cli.main()
""")


@pytest.mark.parametrize("sig, status", [("SIGTERM", 143), ("SIGINT", 130), ("SIGHUP", 129)])
def test_signal_raised_inside_del_still_stops_the_run(sig, status, tmp_path):
    src = make_model(tmp_path / "m.safetensors", "bf16")
    p = subprocess.run([sys.executable, "-c", SIGNAL_IN_DEL.format(sig=sig), "compress", src],
                       capture_output=True, timeout=120)
    err = p.stderr.decode()
    assert "Traceback" not in err and "Exception ignored" not in err, err
    assert p.returncode == status, err
    assert sorted(x.name for x in tmp_path.iterdir()) == ["m.safetensors"]


SWALLOWED = textwrap.dedent("""
    import signal, sys

    import ansz.container as container
    from ansz import cli

    real_write_all = container.write_all
    swallowed = []

    def write_all(fh, data):
        if not swallowed:  # code that discards the signal's exception: the run goes on
            swallowed.append(True)
            try:
                signal.raise_signal(signal.{sig})
            except KeyboardInterrupt:
                pass
        return real_write_all(fh, data)

    container.write_all = write_all
    sys.argv = ["ansz", *sys.argv[1:]]
    cli.main()
""")


@pytest.mark.parametrize("sig, status", [("SIGINT", 130), ("SIGTERM", 143)])
@pytest.mark.parametrize("stream", [False, True])
def test_a_discarded_signal_still_stops_the_run(sig, status, stream, tmp_path):
    """The run stops after the chunk it was coding, not with status 0 at its end."""
    src = make_model(tmp_path / "m.safetensors", "bf16")
    args = ["compress", "-o", tmp_path / "out.ansz"] + ([] if stream else [src])
    with open(src, "rb") as fh:
        p = subprocess.run([sys.executable, "-c", SWALLOWED.format(sig=sig), *args],
                           stdin=fh, capture_output=True, timeout=120)
    assert (p.returncode, p.stderr) == (status, b"")
    assert sorted(x.name for x in tmp_path.iterdir()) == ["m.safetensors"]


CONVERTED = SWALLOWED.replace("""        except KeyboardInterrupt:
            pass""", """        except KeyboardInterrupt:  # as numba's C code does: PyErr_Print, then raise
            sys.excepthook(*sys.exc_info())  # another exception
            raise ImportError("numba._devicearray failed to import")""")
assert CONVERTED != SWALLOWED


@pytest.mark.parametrize("sig, status", [("SIGINT", 130), ("SIGHUP", 129)])
def test_a_signal_turned_into_another_error_still_stops_the_run_quietly(sig, status,
                                                                          tmp_path):
    src = make_model(tmp_path / "m.safetensors", "bf16")
    p = subprocess.run([sys.executable, "-c", CONVERTED.format(sig=sig), "compress", src],
                       capture_output=True, timeout=120)
    assert (p.returncode, p.stderr) == (status, b"")
    assert sorted(x.name for x in tmp_path.iterdir()) == ["m.safetensors"]


STUCK = textwrap.dedent("""
    import os, sys, time

    import ansz.container as container
    from ansz import cli

    def write_all(fh, data):  # code that discards every interrupt: the run never stops
        open(os.environ["ANSZ_TEST_STUCK_MARK"], "w").close()  # now it is stuck
        while True:
            try:
                time.sleep(60)
            except KeyboardInterrupt:
                pass

    container.write_all = write_all
    sys.argv = ["ansz", *sys.argv[1:]]
    cli.main()
""")


def test_a_run_that_does_not_stop_is_ended_at_the_deadline(tmp_path, tmp_path_factory):
    # An input named like a temporary file, next to the output: it must survive.
    src = make_model(tmp_path / ".m.abcdefgh.tmp", "bf16")
    original = src.read_bytes()
    # The signal goes once the run is stuck in its first write: the temporary output
    # exists a little earlier (before the format is detected), and a signal that lands
    # there ends the run at once, as it should, without the deadline to measure.
    mark = tmp_path_factory.mktemp("stuck") / "mark"
    proc = subprocess.Popen([sys.executable, "-c", STUCK, "compress", src],
                            stderr=subprocess.PIPE,
                            env={**os.environ, "ANSZ_TEST_STUCK_MARK": str(mark)})
    try:
        give_up = time.monotonic() + 120
        # the input and the temporary output, and the run inside the write
        while len(leftovers(tmp_path)) < 2 or not mark.exists():
            assert proc.poll() is None and time.monotonic() < give_up
            time.sleep(0.02)
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        took = time.monotonic() - sent
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 143 and proc.stderr.read() == b""
    assert signals.STOP_DEADLINE <= took < signals.STOP_DEADLINE + 10
    assert os.listdir(tmp_path) == [src.name] and src.read_bytes() == original


def test_other_unraisable_exceptions_are_still_reported(tmp_path):
    src = make_model(tmp_path / "m.safetensors", "bf16")
    script = SIGNAL_IN_DEL.format(sig="SIGTERM").replace(
        "signal.raise_signal(SIG)", "raise ValueError('not a signal')")
    p = subprocess.run([sys.executable, "-c", script, "compress", "-q", src],
                       capture_output=True, timeout=120)
    assert p.returncode == 0
    assert "Exception ignored" in p.stderr.decode() and "not a signal" in p.stderr.decode()
    assert (tmp_path / "m.safetensors.ansz").exists()


def test_unraisable_interrupt_is_delivered_again(monkeypatch):
    """The hook itself: the signal is sent to the main thread again, once the hook has
    returned, and nothing is printed; other exceptions go to the previous hook."""
    sent = queue.Queue()
    monkeypatch.setattr("_thread.interrupt_main", sent.put)
    previous = []
    hook = signals.redeliver_swallowed_interrupts(previous.append)

    class Unraisable:
        def __init__(self, exc):
            self.exc_type, self.exc_value = type(exc), exc

    hook(Unraisable(signals.Terminated(signal.SIGHUP)))
    assert sent.get(timeout=10) == signal.SIGHUP
    hook(Unraisable(KeyboardInterrupt()))
    assert sent.get(timeout=10) == signal.SIGINT
    other = Unraisable(ValueError("x"))
    hook(other)
    assert previous == [other] and sent.empty()


def test_an_ignored_sighup_stays_ignored(model, tmp_path):
    """nohup: a SIGHUP ignored by the parent is not turned into an interrupt."""
    out = tmp_path / "out.ansz"
    proc = subprocess.Popen([ANSZ, "compress", "-q", "-o", out, model], stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:  # SIGHUP all along the run
        proc.send_signal(signal.SIGHUP)
        time.sleep(0.02)
    proc.kill()
    proc.wait()
    assert proc.returncode == 0 and proc.stderr.read() == b""
    assert out.read_bytes() == Path(f"{model}.ansz").read_bytes()


def test_signal_at_the_overwrite_prompt_is_an_interrupt(model, tmp_path):
    src = tmp_path / "m.safetensors"
    shutil.copyfile(model, src)
    (tmp_path / "m.safetensors.ansz").write_bytes(b"keep me")
    with at_overwrite_prompt(src) as (proc, master):
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
        os.set_blocking(master, False)
        try:
            seen = os.read(master, 4096)
        except OSError:  # nothing more, or the terminal is gone
            seen = b""
    assert proc.returncode == 143, seen
    assert b"internal error" not in seen and b"Traceback" not in seen
    assert (tmp_path / "m.safetensors.ansz").read_bytes() == b"keep me"


def test_sigint_keeps_its_default_action_while_the_command_imports():
    """Until main() runs, Ctrl-C ends the command at once rather than as a traceback out of
    an import; main() gives SIGINT back to Python."""
    script = textwrap.dedent("""
        import signal, sys
        sys.modules["__main__"].__file__ = "/usr/bin/ansz"  # as the console script
        import ansz.cli
        print(signal.getsignal(signal.SIGINT) == signal.SIG_DFL)
        try:
            ansz.cli.main(["--version"])
        except SystemExit:
            pass
        print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)
    """)
    p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                       timeout=60)
    assert p.stdout.splitlines() == ["True", f"ansz {__version__}", "True"], p.stdout + p.stderr
