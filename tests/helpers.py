"""Helpers shared by the test modules: inputs (symbol samples, model files), round trips
through the API, the damage loop, brief-or-long fuzzing, and running the ``ansz`` command.

A plain module rather than conftest.py, which pytest does not mean to be imported: test
modules import these by name (``from helpers import ...``), and the NUMBA_BOUNDSCHECK run
of tests/test_boundscheck.py imports them in a subprocess as ``tests.helpers``. Nothing
here imports hypothesis, click or ``ansz.cli`` until it is used.
"""

from __future__ import annotations

import hashlib
import io
import os
import pty
import shutil
import subprocess
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

#: ANSZ_SLOW_TESTS=1 (or any value but 0): run the tests marked ``slow`` and many
#: hypothesis examples (see :func:`fuzz`); by default the suite fuzzes briefly.
SLOW = os.environ.get("ANSZ_SLOW_TESTS", "0") not in ("", "0")

#: How many times more examples hypothesis tests run with ANSZ_SLOW_TESTS.
SLOW_FACTOR = 20

#: The installed ``ansz`` console script (``pip install -e .``).
ANSZ = shutil.which("ansz")


def fuzz(examples: int, **kw: Any):
    """hypothesis settings: ``examples`` examples by default, :data:`SLOW_FACTOR` times as
    many with ANSZ_SLOW_TESTS; no deadline (the first call of a kernel may compile it)."""
    from hypothesis import settings

    kw.setdefault("deadline", None)
    return settings(max_examples=examples * SLOW_FACTOR if SLOW else examples, **kw)


# --------------------------------------------------------------------------------------------
# Inputs


def symbols(seed: int, k: int, skew: float, n: int, *, law: str = "geometric") -> np.ndarray:
    """``n`` byte symbols over ``k`` random distinct values, skewed by ``skew`` (0: uniform):
    weights ``exp(-skew * rank)`` jittered by up to 50% ("geometric"), or ``rank ** -skew``
    ("zipf")."""
    rng = np.random.default_rng(seed)
    values = rng.choice(256, k, replace=False)
    if law == "geometric":
        w = np.exp(-skew * np.arange(k)) * rng.uniform(0.5, 1.5, k)
    elif law == "zipf":
        w = 1.0 / np.arange(1, k + 1) ** skew
    else:
        raise ValueError(f"unknown law {law!r}")
    return values[rng.choice(k, n, p=w / w.sum())].astype(np.uint8)


def weights(shape, dtype, seed: int = 0) -> np.ndarray:
    """Trained-looking weights: N(0, 0.02) in ``dtype``."""
    return (np.random.default_rng(seed).standard_normal(shape) * 0.02).astype(np.float32).astype(dtype)


#: Kinds of :func:`make_model` besides "mixed" and "layers": one tensor of that dtype.
MODEL_DTYPES = ("bf16", "f16", "f32", "f64", "f8e4m3", "f8e5m2", "i8", "u8", "i32", "i64",
                "bool")


def make_model(path: Path, kind: str = "mixed", seed: int = 0, n: int = 600_000) -> Path:
    """A small but realistic safetensors file, written by the safetensors library.

    "mixed": bf16, f32 and fp8 weights, int64 position ids and a bool mask; a name from
    :data:`MODEL_DTYPES`: one tensor ``t`` of that dtype; "layers": four bf16 tensors
    ``w0``..``w3`` of ``n`` elements in all (several chunks each when ``n`` is large)."""
    import ml_dtypes
    from safetensors.numpy import save_file

    r = np.random.default_rng(seed)
    if kind == "mixed":
        tensors = {
            "embed.weight": weights((96, 64), ml_dtypes.bfloat16, seed),
            "layer.0.attn.weight": weights((64, 64), ml_dtypes.bfloat16, seed + 1),
            "layer.0.attn.bias": weights((64,), np.float32, seed + 2),
            "layer.0.fp8.weight": weights((64, 48), ml_dtypes.float8_e4m3fn, seed + 3),
            "position_ids": np.arange(128, dtype=np.int64).reshape(1, 128),
            "mask": r.random((32, 32)) < 0.3,
        }
    elif kind == "layers":
        tensors = {f"w{i}": (r.standard_normal(n // 4) * 0.02).astype(ml_dtypes.bfloat16)
                   for i in range(4)}
    else:
        tensors = {"t": {
            "bf16": lambda: weights((128, 96), ml_dtypes.bfloat16, seed),
            "f16": lambda: weights((128, 96), np.float16, seed),
            "f32": lambda: weights((96, 64), np.float32, seed),
            "f64": lambda: weights((48, 32), np.float64, seed),
            "f8e4m3": lambda: weights((128, 96), ml_dtypes.float8_e4m3fn, seed),
            "f8e5m2": lambda: weights((128, 96), ml_dtypes.float8_e5m2, seed),
            "i8": lambda: r.integers(-128, 128, (64, 64)).astype(np.int8),
            "u8": lambda: r.integers(0, 256, (64, 64)).astype(np.uint8),
            "i32": lambda: r.integers(-1000, 1000, (64, 64)).astype(np.int32),
            "i64": lambda: np.arange(4096, dtype=np.int64),
            "bool": lambda: r.random((64, 64)) < 0.5,
        }[kind]()}
    save_file(tensors, str(path), metadata={"format": "pt"} if kind != "layers" else None)
    return path


def make_gguf(path: Path, seed: int = 0) -> Path:
    """A small GGUF file written by the gguf package: an f32 and an f16 tensor and a token
    list."""
    import gguf

    r = np.random.default_rng(seed)
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_block_count(1)
    w.add_token_list([f"tok{i}" for i in range(20)])
    w.add_tensor("norm.weight", r.standard_normal(300).astype(np.float32))
    w.add_tensor("embd.weight", (r.standard_normal((16, 64)) * 0.02).astype(np.float16))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def hf_cache_snapshot(root: Path, files: dict[str, bytes], rev: str = "a" * 40) -> Path:
    """A Hugging Face hub cache entry under ``root``, as ``huggingface_hub`` lays it out:
    ``models--org--name/blobs/<sha256>`` holds each file's bytes, and
    ``snapshots/<rev>/<name>`` is a relative symbolic link to its blob
    (``../../blobs/<sha256>``), ``refs/main`` names the revision. Returns the snapshot
    directory."""
    repo = root / "models--org--name"
    (repo / "blobs").mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(rev)
    snap = repo / "snapshots" / rev
    snap.mkdir(parents=True)
    for name, data in files.items():
        oid = hashlib.sha256(data).hexdigest()
        (repo / "blobs" / oid).write_bytes(data)
        link = snap / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(repo / "blobs" / oid, link.parent))
    return snap


def safetensors_dtypes() -> dict:
    """safetensors dtype name -> numpy dtype, for every dtype numpy can hold."""
    import ml_dtypes

    return {
        "BF16": ml_dtypes.bfloat16, "F16": np.float16, "F32": np.float32, "F64": np.float64,
        "F8_E4M3": ml_dtypes.float8_e4m3fn, "F8_E5M2": ml_dtypes.float8_e5m2, "I8": np.int8,
        "U8": np.uint8, "I32": np.int32, "I64": np.int64, "BOOL": np.bool_,
    }


def values(dtype, n: int, seed: int = 0) -> np.ndarray:
    """``n`` plausible values of ``dtype``: N(0, 0.02) floats, integers within +-1000, 10%
    true booleans."""
    rng = np.random.default_rng(seed)
    if dtype in (np.int8, np.uint8, np.int32, np.int64):
        info = np.iinfo(dtype)
        return rng.integers(max(info.min, -1000), min(info.max, 1000), n).astype(dtype)
    if dtype is np.bool_:
        return rng.random(n) < 0.1
    return (rng.standard_normal(n) * 0.02).astype(dtype)


def make_tensors(path: Path, dtype, n: int = 100_000, seed: int = 0) -> Path:
    """A safetensors file of one numpy ``dtype``: "big" (``n`` elements, n/100 x 100),
    "small" (37 elements) and "empty" (0 x 4), with a metadata entry."""
    from safetensors.numpy import save_file

    arrays = {"big": values(dtype, n, seed).reshape(-1, 100), "small": values(dtype, 37, seed + 1),
              "empty": np.zeros((0, 4), dtype)}
    save_file(arrays, str(path), metadata={"note": "test"})
    return path


def handmade_safetensors(tensors, *, holes: bytes = b"", trailing: bytes = b"") -> bytes:
    """A safetensors file written by hand: ``tensors`` are ``(name, dtype name, array[,
    shape])``, with ``holes`` between the first two and ``trailing`` bytes after the data."""
    import json
    import struct

    header, data = {}, b""
    for i, (name, dtype, arr, *shape) in enumerate(tensors):
        if i == 1:
            data += holes
        raw = arr.tobytes()
        header[name] = {"dtype": dtype, "shape": shape[0] if shape else list(arr.shape),
                        "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data + trailing


def make_bytes(path: Path, n: int = 50_000, seed: int = 0) -> Path:
    """Not a model file: text-ish bytes with some repetition."""
    words = [b"alpha ", b"beta ", b"gamma\n", b"\x00\x01\x02", b"delta "]
    r = np.random.default_rng(seed)
    path.write_bytes(b"".join(words[i] for i in r.integers(0, len(words), n // 5))[:n])
    return path


def sha256_of(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def leftovers(directory: Path) -> list[str]:
    """Temporary output files (``.NAME.XXXXXXXX.tmp``) left in ``directory``."""
    return sorted(p.name for p in Path(directory).iterdir() if p.name.endswith(".tmp"))


# --------------------------------------------------------------------------------------------
# Round trips through the API


def roundtrip_file(src: Path, dst: Path, *, threads: int | None = None, **compress_kw: Any):
    """Compress the file ``src`` into ``dst`` (replacing it), decompress that into
    ``dst`` + ".back", and check the bytes and both reports' sizes; the compress report."""
    from ansz import api

    src, dst = Path(src), Path(dst)
    back = dst.with_name(dst.name + ".back")
    report = api.compress_file(src, dst, threads=threads, overwrite=True, **compress_kw)
    assert report.compressed_size == dst.stat().st_size
    assert report.original_size == src.stat().st_size
    restored = api.decompress_file(dst, back, threads=threads, overwrite=True)
    assert back.read_bytes() == src.read_bytes()
    assert (restored.original_size, restored.compressed_size) == (
        report.original_size, report.compressed_size)
    return report


def roundtrip_stream(data: bytes, *, threads: int | None = 1, **compress_kw: Any):
    """Compress ``data`` through ``compress_stream``, decompress it through
    ``decompress_stream`` and check the bytes: ``(container, compress report)``."""
    from ansz import api

    out = io.BytesIO()
    report = api.compress_stream(io.BytesIO(data), out, threads=threads, **compress_kw)
    back = io.BytesIO()
    api.decompress_stream(io.BytesIO(out.getvalue()), back, threads=threads)
    assert back.getvalue() == data
    return out.getvalue(), report


# --------------------------------------------------------------------------------------------
# Damage


def count_file_hashers(monkeypatch) -> list:
    """The ansz._io.FileSha256 objects made from now on (by compression or hash_ahead), in
    the order they are made."""
    from ansz import _io

    made = []

    class Counted(_io.FileSha256):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(_io, "FileSha256", Counted)
    return made


def damage(blob: bytes, rng: np.random.Generator, kind: str,
           span: tuple[int, int] | None = None) -> bytes:
    """A damaged copy of ``blob``; positions are drawn from ``span`` = [lo, hi) (default:
    all of it). Kinds: "truncate" (cut at a position), "flip" (1 to 3 bits flipped),
    "overwrite" (8 random bytes written at a position), "garbage" (everything from lo
    replaced by up to 6000 random bytes), "append" (1 to 3 zero bytes added)."""
    lo, hi = span if span is not None else (0, len(blob))
    b = bytearray(blob)
    if kind == "truncate":
        return bytes(b[: int(rng.integers(lo, hi))])
    if kind == "flip":
        for _ in range(int(rng.integers(1, 4))):
            b[int(rng.integers(lo, hi))] ^= 1 << int(rng.integers(0, 8))
    elif kind == "overwrite":
        i = int(rng.integers(lo, hi))
        b[i:i + 8] = rng.integers(0, 256, 8, dtype=np.uint8).tobytes()
    elif kind == "garbage":
        return bytes(b[:lo]) + rng.integers(0, 256, int(rng.integers(0, 6000)),
                                            dtype=np.uint8).tobytes()
    elif kind == "append":
        b += bytes(int(rng.integers(1, 4)))
    else:
        raise ValueError(f"unknown kind of damage {kind!r}")
    return bytes(b)


@dataclass
class Outcomes:
    """What decoding damaged copies gave, per kind of damage."""

    ok: Counter = field(default_factory=Counter)  #: decoded (to anything: hashes catch that)
    corrupt: Counter = field(default_factory=Counter)  #: raised CorruptDataError

    @property
    def total_ok(self) -> int:
        return sum(self.ok.values())

    @property
    def total_corrupt(self) -> int:
        return sum(self.corrupt.values())

    def __add__(self, other: "Outcomes") -> "Outcomes":
        return Outcomes(self.ok + other.ok, self.corrupt + other.corrupt)


def damage_outcomes(decode: Callable[[bytes], Any], blob: bytes, rng: np.random.Generator,
                    trials: int, kinds: tuple[str, ...] = ("truncate", "flip", "overwrite"),
                    span: tuple[int, int] | None = None) -> Outcomes:
    """Decode ``trials`` damaged copies of ``blob`` (the ``kinds`` of :func:`damage` in
    turn). ``decode`` must return or raise CorruptDataError; anything else fails the test."""
    from ansz.errors import CorruptDataError

    out = Outcomes()
    for trial in range(trials):
        kind = kinds[trial % len(kinds)]
        try:
            decode(damage(blob, rng, kind, span))
        except CorruptDataError:
            out.corrupt[kind] += 1
        else:
            out.ok[kind] += 1
    return out


def damaged_prefix_streams(coder: str, rng: np.random.Generator, trials: int = 300) -> Outcomes:
    """A HUFFMAN or QLC stream (``coder``) of 4000 skewed symbols, decoded after damage: four
    fifths of the trials in its code bits (cut, flipped, replaced by garbage, extended),
    one fifth in its table."""
    from ansz import streams

    s = symbols(5, 60, 0.2, 4000) if coder == "huffman" else symbols(5, 40, 0.3, 4000)
    table = streams.prefix_table(np.bincount(s, minlength=256), coder)
    blob = streams.encode_prefix_stream(s, table)
    head = 1 + len(table.to_bytes())

    def decode(b: bytes) -> None:
        streams.decode_prefix_stream(b, s.size)

    in_codes = damage_outcomes(decode, blob, rng, trials - trials // 5,
                               ("truncate", "flip", "garbage", "append"), (head, len(blob)))
    return in_codes + damage_outcomes(decode, blob, rng, trials // 5, ("overwrite",), (1, head))


# --------------------------------------------------------------------------------------------
# The ansz command


def invoke(args, input=None, env=None, **kw):
    """``ansz ARGS`` in process, through click's CliRunner (stdin is ``input``). An
    exception other than SystemExit is raised here; a traceback in stderr fails."""
    from click.testing import CliRunner

    from ansz.cli import cli

    result = CliRunner().invoke(cli, [str(a) for a in args], input=input, env=env,
                                prog_name="ansz", **kw)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert "Traceback" not in result.stderr
    return result


def run(args, input: bytes | None = b"", **kw) -> subprocess.CompletedProcess:
    """The installed ``ansz ARGS`` in a subprocess: stdin is ``input`` (unless ``stdin`` is
    given), stdout and stderr pipes (unless ``stdout`` is given). A traceback fails."""
    assert ANSZ, "the ansz console script is not installed (pip install -e .)"
    if "stdin" in kw:
        input = None
    kw.setdefault("stdout", subprocess.PIPE)
    proc = subprocess.run([ANSZ, *map(str, args)], input=input, stderr=subprocess.PIPE,
                          timeout=120, **kw)
    assert b"Traceback" not in proc.stderr, proc.stderr.decode()
    return proc


def run_with_tty(args, tty_fd: str, input=b""):
    """Run the installed ``ansz`` with stdin or stdout attached to a pseudo-terminal."""
    master, slave = pty.openpty()
    try:
        kw = {"stdout": slave, "stdin": subprocess.PIPE} if tty_fd == "stdout" else \
             {"stdin": slave, "stdout": subprocess.PIPE}
        proc = subprocess.Popen([ANSZ, *map(str, args)], stderr=subprocess.PIPE, **kw)
        os.close(slave)
        slave = -1
        out, err = proc.communicate(input=input if tty_fd == "stdout" else None, timeout=120)
        return proc.returncode, out, err.decode()
    finally:
        if slave >= 0:
            os.close(slave)
        os.close(master)


def error_lines(stderr: str) -> list[str]:
    """The ``ansz: ...`` lines of a command's stderr."""
    return [ln for ln in stderr.splitlines() if ln.startswith("ansz: ")]


@contextmanager
def at_overwrite_prompt(src: Path) -> Iterator[tuple[subprocess.Popen, int]]:
    """``ansz compress src`` run with stdin and stderr on a terminal, stopped at its question
    whether to overwrite the existing output: yields the process and the terminal's master
    end (to answer, signal or read more); both ends are closed afterwards."""
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen([ANSZ, "compress", src], stdin=slave, stderr=slave,
                                stdout=subprocess.PIPE)
        os.close(slave)
        slave = -1
        seen = b""
        while b"overwrite?" not in seen:
            chunk = os.read(master, 1024)
            assert chunk, seen
            seen += chunk
        yield proc, master
    finally:
        if slave >= 0:
            os.close(slave)
        os.close(master)


def with_index(blob: bytes, mutate: Callable[[dict], None] | None = None,
               text: bytes | None = None) -> bytes:
    """The container ``blob`` with its index replaced (``mutate(obj)`` applied to the JSON, or
    the raw ``text``), every checksum redone so that only the index's meaning can be wrong."""
    import json
    import zlib

    from ansz import container as c

    off, length, _ = c.parse_trailer(blob[-c.TRAILER.size:], len(blob) - c.TRAILER.size)
    r = c.RECORD_HEADER.size
    rec = c.parse_record_header(blob[off:off + r], 1 << 26, "index", off)
    if text is None:
        obj = json.loads(c.index_text(rec, blob[off + r:off + r + length]))
        mutate(obj)
        text = json.dumps(obj).encode()
    head = c.pack_record(c.INDEX, 0, 0, rec.original_offset, len(text), len(text),
                         c.content_hash(text), rec.previous_hash, rec.number)
    return (blob[:off] + head + text + bytes(c.pad8(len(text)) - len(text))
            + c.pack_trailer(off, len(text), zlib.crc32(text)))
