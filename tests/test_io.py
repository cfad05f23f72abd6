"""Inputs that stall or change under the reader: non-blocking pipes, files truncated or
rewritten while they are read, and a container closed while another thread reads it. The
runs that once died of SIGBUS run in a subprocess, so a regression fails the test instead
of killing the test run."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import threading
import time

import pytest

import ansz
from ansz import _io, api

from helpers import ANSZ, leftovers, make_model


# --- non-blocking standard input ---------------------------------------------------------------


def _feed_slowly(fd: int, data: bytes, piece: int = 1 << 14) -> threading.Thread:
    """Write ``data`` to ``fd`` in small pieces with pauses (so the reader finds the pipe
    empty again and again), then close it."""

    def run():
        for k in range(0, len(data), piece):
            os.write(fd, data[k:k + piece])
            time.sleep(0.005)
        os.close(fd)

    t = threading.Thread(target=run)
    t.start()
    return t


def _run_with_nonblocking_stdin(args, data: bytes) -> subprocess.CompletedProcess:
    r, w = os.pipe()
    os.set_blocking(r, False)  # shared with the child's stdin: it reads a non-blocking pipe
    feeder = _feed_slowly(w, data)
    try:
        return subprocess.run([ANSZ, *args], stdin=r, capture_output=True, timeout=120)
    finally:
        os.close(r)
        feeder.join()


def test_compress_and_decompress_read_a_nonblocking_stdin_to_its_end(tmp_path):
    data = make_model(tmp_path / "m.safetensors", "layers").read_bytes()
    proc = _run_with_nonblocking_stdin(["compress", "-c"], data)
    assert proc.returncode == 0, proc.stderr
    back = io.BytesIO()
    ansz.decompress_stream(io.BytesIO(proc.stdout), back)
    assert back.getvalue() == data  # not the first pipe-full only
    proc = _run_with_nonblocking_stdin(["decompress", "-c"], proc.stdout)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == data


def test_stream_readers_wait_on_a_file_object_that_has_no_data_yet():
    class Stalling(io.RawIOBase):
        """Answers None ("no data yet") before every piece, as a non-blocking pipe does."""

        def __init__(self, data):
            self._data, self._pos, self._stall = data, 0, True

        def readable(self):
            return True

        def readinto(self, b):
            if self._stall:
                self._stall = False
                return None
            self._stall = True
            n = min(len(b), 1000, len(self._data) - self._pos)
            b[:n] = self._data[self._pos:self._pos + n]
            self._pos += n
            return n

    data = bytes(range(256)) * 400
    out = io.BytesIO()
    ansz.compress_stream(Stalling(data), out, threads=1)
    back = io.BytesIO()
    ansz.decompress_stream(Stalling(out.getvalue()), back, threads=1)
    assert back.getvalue() == data


def test_write_all_waits_on_a_full_nonblocking_pipe():
    r, w = os.pipe()
    os.set_blocking(w, False)
    data = os.urandom(1 << 20)  # more than a pipe holds
    got = bytearray()

    def drain():
        while True:
            piece = os.read(r, 1 << 16)
            if not piece:
                return
            got.extend(piece)
            time.sleep(0.001)

    t = threading.Thread(target=drain)
    t.start()
    with os.fdopen(w, "wb") as fh:
        assert _io.write_all(fh, data) == len(data)
    t.join()
    os.close(r)
    assert bytes(got) == data


# --- files that shrink or change while they are read -----------------------------------------

_TRUNCATE_DURING = r"""
import os, sys
import ansz
from ansz import api
mode, src, dst = sys.argv[1:4]

def truncate_after_first(done):
    if os.path.getsize(victim) > 100:
        os.truncate(victim, 100)

try:
    if mode == "compress":
        victim = src
        api.compress_file(src, dst, threads=1, chunk_size=1 << 16, progress=truncate_after_first)
    elif mode == "decompress":
        victim = src
        api.decompress_file(src, dst, threads=1, progress=truncate_after_first)
    elif mode == "open":
        with ansz.open(src) as f:
            os.truncate(src, 100)
            f.get_tensor("w1")
    elif mode == "verify":
        victim = src
        real = api.decode_record
        def first_then_truncate(*args):
            out = real(*args)
            truncate_after_first(0)
            return out
        api.decode_record = first_then_truncate
        r = api.verify_file(src, threads=1)
        print(r.ok, r.message)
        sys.exit(0 if not r.ok else 3)
except ansz.AnszError as e:
    print(type(e).__name__, e)
    sys.exit(1)
sys.exit(2)
"""


@pytest.mark.parametrize("mode", ["compress", "decompress", "open", "verify"])
def test_a_file_truncated_while_it_is_read_is_an_error_not_a_crash(tmp_path, mode):
    model = make_model(tmp_path / "m.safetensors", "layers", n=2_000_000)
    src, dst = model, tmp_path / "out"
    if mode != "compress":
        src = tmp_path / "m.ansz"
        api.compress_file(model, src, chunk_size=1 << 16)
    proc = subprocess.run([sys.executable, "-c", _TRUNCATE_DURING, mode, str(src), str(dst)],
                          capture_output=True, text=True, timeout=120)
    # a SIGBUS would end it with -7 and print nothing
    assert proc.returncode in (0, 1), (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    assert "shrank" in proc.stdout or "truncated" in proc.stdout, proc.stdout
    assert not dst.exists() and leftovers(tmp_path) == []


def test_an_input_rewritten_while_it_is_compressed_fails(tmp_path):
    src = make_model(tmp_path / "m.safetensors", "layers", n=2_000_000)
    dst = tmp_path / "m.ansz"
    size = src.stat().st_size

    def rewrite_in_place(done):
        if done > size // 2:
            with open(src, "r+b") as fh:  # same size, new bytes: only mtime/ctime tell
                fh.seek(size - 1000)
                fh.write(os.urandom(1000))

    with pytest.raises(_io.FileChangedError, match="changed while it was being read"):
        api.compress_file(src, dst, threads=1, chunk_size=1 << 16, progress=rewrite_in_place)
    assert not dst.exists() and leftovers(tmp_path) == []


# --- closing while another thread reads ----------------------------------------------------------


def test_close_while_get_tensor_runs_in_another_thread(tmp_path):
    model = make_model(tmp_path / "m.safetensors", "layers", n=2_000_000)
    path = tmp_path / "m.ansz"
    api.compress_file(model, path, chunk_size=1 << 16)
    want = hashlib.sha256(ansz.load_file(path)["w2"].tobytes()).hexdigest()
    outcomes = []
    for trial in range(20):
        f = ansz.open(path, threads=2)
        result = []

        def read():
            try:
                result.append(hashlib.sha256(f.get_tensor("w2").tobytes()).hexdigest())
            except ansz.AnszError as e:  # closed before or while it read: a clean error
                result.append(str(e))

        t = threading.Thread(target=read)
        t.start()
        time.sleep(0.0005 * trial)
        f.close()
        t.join()
        (r,) = result
        assert r == want or "closed" in r, r
        outcomes.append(r == want)
    with pytest.raises(ansz.AnszError, match="closed"):
        f.get_tensor("w2")
