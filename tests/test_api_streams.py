"""compress_stream and decompress_stream on file objects that are not files: in-memory
buffers, pipes with short reads and writes, FIFOs; streams that end early, carry trailing
bytes or a header too large to buffer; and devices, never replaced by the file API.
"""

import io
import os
import threading

import numpy as np
import pytest

from ansz import api
from ansz.errors import AnszError, CorruptDataError
from ansz.formats import detect

from helpers import make_tensors

CHUNK = 64 << 10


class Pipe(io.RawIOBase):
    """Non-seekable: short reads, no seek/tell; and short writes on the output side."""

    def __init__(self, data=b"", step=7777):
        self._data, self._pos, self._step = data, 0, step
        self.written = bytearray()

    def readable(self):
        return True

    def writable(self):
        return True

    def readinto(self, b):
        n = min(len(b), self._step, len(self._data) - self._pos)
        b[:n] = self._data[self._pos:self._pos + n]
        self._pos += n
        return n

    def write(self, b):
        n = min(len(b), self._step)
        self.written += bytes(memoryview(b).cast("B")[:n])
        return n


@pytest.mark.parametrize("kind", ["bytesio", "pipe"])
@pytest.mark.parametrize("what", ["safetensors", "bytes", "empty"])
def test_streams(tmp_path, kind, what):
    if what == "safetensors":
        data = make_tensors(tmp_path / "m.safetensors", np.float16, n=70_000).read_bytes()
    elif what == "bytes":
        data = b"stream me " * 20_000
    else:
        data = b""
    if kind == "bytesio":
        ifh, ofh = io.BytesIO(data), io.BytesIO()
    else:
        ifh, ofh = Pipe(data), Pipe()
    done = []
    report = api.compress_stream(ifh, ofh, threads=2, chunk_size=CHUNK, progress=done.append)
    blob = ofh.getvalue() if kind == "bytesio" else bytes(ofh.written)
    assert report.format == ("safetensors" if what == "safetensors" else "bytes")
    assert report.compressed_size == len(blob) and report.original_size == len(data)
    assert done == sorted(done) and (done[-1] if done else 0) == len(data)
    # the same container as from the file API
    src = tmp_path / "src"
    src.write_bytes(data)
    api.compress_file(src, tmp_path / "file.ansz", chunk_size=CHUNK)
    assert (tmp_path / "file.ansz").read_bytes() == blob
    out = io.BytesIO() if kind == "bytesio" else Pipe()
    back = api.decompress_stream(io.BytesIO(blob) if kind == "bytesio" else Pipe(blob), out,
                                 threads=2)
    assert (out.getvalue() if kind == "bytesio" else bytes(out.written)) == data
    assert back.original_size == len(data) and back.compressed_size == len(blob)


def test_stream_that_ends_inside_a_tensor_still_round_trips(tmp_path):
    data = make_tensors(tmp_path / "m.safetensors", np.float32, n=50_000).read_bytes()
    for cut in (9, 120, len(data) // 2 + 1, len(data) - 1):
        out = io.BytesIO()
        report = api.compress_stream(Pipe(data[:cut]), out, chunk_size=CHUNK)
        assert report.format == "bytes" and report.fallback_reason
        back = io.BytesIO()
        api.decompress_stream(io.BytesIO(out.getvalue()), back)
        assert back.getvalue() == data[:cut]


def test_decompress_stream_rejects_trailing_and_truncated_input(tmp_path):
    out = io.BytesIO()
    api.compress_stream(io.BytesIO(b"x" * 100_000), out, chunk_size=CHUNK)
    blob = out.getvalue()
    with pytest.raises(CorruptDataError, match="after the container"):
        api.decompress_stream(io.BytesIO(blob + b"\0"), io.BytesIO())
    with pytest.raises(CorruptDataError, match="truncated"):
        api.decompress_stream(io.BytesIO(blob[:-40]), io.BytesIO())
    with pytest.raises(CorruptDataError):
        api.decompress_stream(io.BytesIO(b""), io.BytesIO())


def test_stream_with_a_huge_safetensors_header_falls_back(tmp_path, monkeypatch):
    data = make_tensors(tmp_path / "m.safetensors", np.float32, n=1000).read_bytes()
    monkeypatch.setattr(detect, "STREAM_HEADER_LIMIT", 16)
    out = io.BytesIO()
    report = api.compress_stream(Pipe(data), out)
    assert report.format == "bytes" and "too large to buffer" in report.fallback_reason
    back = io.BytesIO()
    api.decompress_stream(io.BytesIO(out.getvalue()), back)
    assert back.getvalue() == data


def test_pipes_and_devices(tmp_path):
    """A FIFO as input is read as a stream; an existing non-regular output is never replaced."""
    data = make_tensors(tmp_path / "m.safetensors", np.float16, n=20_000).read_bytes()
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)

    def feed(payload):
        with open(fifo, "wb") as f:
            f.write(payload)

    t = threading.Thread(target=feed, args=(data,))
    t.start()
    report = api.compress_file(fifo, tmp_path / "m.ansz", chunk_size=CHUNK)
    t.join()
    assert report.format == "safetensors" and report.original_size == len(data)
    blob = (tmp_path / "m.ansz").read_bytes()
    t = threading.Thread(target=feed, args=(blob,))
    t.start()
    api.decompress_file(fifo, tmp_path / "back")
    t.join()
    assert (tmp_path / "back").read_bytes() == data
    with pytest.raises(AnszError, match="not a regular file"):
        api.compress_file(tmp_path / "m.safetensors", os.devnull, overwrite=True)
    with pytest.raises(AnszError, match="not a regular file"):
        api.read_info(os.devnull)
    with pytest.raises(AnszError, match="not a regular file"):
        api.verify_file(os.devnull)
    assert os.path.exists(os.devnull) and not os.path.isfile(os.devnull)
