#!/usr/bin/env python3
"""Rebuild every golden file of tests/golden/: the containers, MANIFEST.json and vectors.json.

Usage (from the repository root, in the project's environment):

    python tests/golden/make_golden.py

This is the only way to regenerate the golden files, and regenerating is legitimate only
together with a change of docs/FORMAT.md (see README.md here). The output is a function of
this script and of ansz: every input comes from a seeded numpy Generator (one per tensor or
piece, so changing one input leaves the others alone), chunk sizes are fixed and
compression runs on one thread.

Each container is built for given paths through the format (dtype codes, stream methods,
field widths, block types and forms, index record types, levels, coders); after writing
it, the script parses it (``golden_survey``) and stops with an error if a path it was
built for was not taken, so a change of the encoder's choices cannot silently shrink what
the golden files cover. MANIFEST.json records, per container, the sha256 and size of the
original and of the container, the options it was written with, and what it covers as
found by parsing.

Two containers imitate earlier writers that ansz no longer is: dtype codes 7-10 (plain
coding pairs), stream method 2 (rANS with u16 tables) and an uncoded (type 2) index
record. They are written by today's writer with the module state patched
(``writer_patches.py``, which the modelling benchmark's ``plain`` and ``varint`` steps use
too); the tests check that they decode, not that the writer reproduces them.

vectors.json holds byte-exact chunk payloads and streams for small inputs, each with the
options that produce it (a few with patched encoder constants, listed in the vector).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import shutil
import struct
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import ml_dtypes
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import golden_survey as gs  # noqa: E402
from writer_patches import pair_stream, patched_writer  # noqa: E402

import ansz  # noqa: E402
from ansz import blocks, chunks, dtypes, streams  # noqa: E402
from ansz.pairs import Field  # noqa: E402

THREADS = 1
MANIFEST = "MANIFEST.json"
VECTORS = "vectors.json"


def rng(*seed: int) -> np.random.Generator:
    return np.random.default_rng(list(seed))


# ---------------------------------------------------------------------------------------------
# Building originals


def safetensors_file(entries: list, metadata: dict | None = None) -> bytes:
    """A safetensors file: ``entries`` are ``(name, dtype, shape, raw bytes)`` in data order,
    or ``("gap", n)`` for ``n`` bytes between tensors or after the last one that no tensor
    holds. The JSON header is padded with spaces to a multiple of 8, as the library does."""
    header: dict = {}
    if metadata:
        header["__metadata__"] = metadata
    data = bytearray()
    for e in entries:
        if e[0] == "gap":
            data += bytes(range(e[1]))
            continue
        name, dtype, shape, raw = e
        header[name] = {"dtype": dtype, "shape": list(shape),
                        "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-(8 + len(text)) % 8)
    return struct.pack("<Q", len(text)) + text + bytes(data)


def bf16(x) -> np.ndarray:
    return np.asarray(x).astype(ml_dtypes.bfloat16)


def skewed_bytes(r: np.random.Generator, n: int, p: float) -> np.ndarray:
    """Geometric byte values: a few common symbols and a tail (what codes compress)."""
    return ((r.geometric(p, n) - 1) % 256).astype(np.uint8)


def long_tail_bytes(r: np.random.Generator, n: int, tail: float) -> np.ndarray:
    """Bytes 0..7 (geometric), and ``tail`` of them spread over 8..255: on 8 KiB, the rare
    symbols make 14-bit rANS tables pay."""
    x = np.minimum(r.geometric(0.5, n) - 1, 7).astype(np.uint8)
    rare = r.random(n) < tail
    x[rare] = r.integers(8, 256, int(rare.sum()))
    return x


def paired_bytes(r: np.random.Generator, n: int, dominant: float) -> np.ndarray:
    """Bytes in correlated pairs (a, a + d), d in -1..1, a dominant pair (128, 128) taking
    ``dominant`` of them: pair streams code these in fewer bytes than single symbols."""
    m = n // 2
    a = np.clip(np.round(r.standard_normal(m) * 40 + 128), 1, 254)
    d = r.integers(-1, 2, m)
    common = r.random(m) < dominant
    a[common], d[common] = 128, 0
    return np.stack([a, a + d], 1).reshape(-1).astype(np.uint8)


def stacked_norms(r: np.random.Generator, layers: int, width: int) -> np.ndarray:
    """bf16 norm weights of several layers stacked, each layer at its own scale: neighbours
    share an exponent, which pair streams code in fewer bytes than single symbols."""
    scale = np.exp(r.uniform(-1.5, 1.5, (layers, 1)))
    return bf16(scale * (1 + 0.05 * r.standard_normal((layers, width))))


def text_bytes(r: np.random.Generator, n: int) -> bytes:
    words = ("the model weight layer attention head norm bias tensor shape dtype chunk "
             "stream index record header payload coded bytes of a in to is and").split()
    out = []
    size = 0
    while size < n:
        w = words[int(r.integers(len(words)))]
        out.append(w)
        size += len(w) + 1
    return (" ".join(out).encode() + b" " * n)[:n]


def field_sample(dtype: str, kind: str, p: float, n: int, zeros: float, seed: int) -> bytes:
    """``n`` values of a distribution that makes the encoder choose a given field.

    ``kind``: ``gauss`` (weights, p * N(0,1)); ``one+g`` (norm weights near 1, 1 + p N);
    ``s(one+g)`` (the same with a random sign); ``s(1.5+g)``; ``one+lap`` (Laplace noise);
    ``logu`` (log-uniform over e^-p .. e^p); ``logn`` (log-normal). ``zeros`` of the values
    are then set to 0 (outliers outside a wide field's window: escapes).
    """
    r = rng(seed)
    g = r.standard_normal(n)
    if kind == "gauss":
        x = p * g
    elif kind == "one+g":
        x = 1 + p * g
    elif kind == "s(one+g)":
        x = np.sign(r.standard_normal(n)) * (1 + p * g)
    elif kind == "s(1.5+g)":
        x = np.sign(r.standard_normal(n)) * (1.5 + p * g)
    elif kind == "one+lap":
        x = 1 + r.laplace(0, p, n)
    elif kind == "logu":
        x = np.exp(r.uniform(-p, p, n))
    elif kind == "logn":
        x = np.exp(p * g / 3)
    else:
        raise ValueError(kind)
    if zeros:
        x[r.random(n) < zeros] = 0
    np_type = {"BF16": ml_dtypes.bfloat16, "F16": np.float16, "F32": np.float32,
               "F64": np.float64}[dtype]
    return x.astype(np_type).tobytes()


# ---------------------------------------------------------------------------------------------
# What each golden file must cover


@dataclass
class Expect:
    """Paths one tensor's chunks must take (None: not checked).

    Only tensors of at least one chunk carry expectations: how a writer groups smaller ones
    may change without changing what the format can express."""

    dtype_code: int | None = None
    field: tuple[int, int] | None = None  #: (bits, top) of every chunk
    escapes: bool | None = None  #: some chunk escapes
    methods: tuple[str, ...] = ()  #: stream kinds that must occur among its chunks
    block_form: str | None = None  #: of some chunk
    chunks: int | None = None


@dataclass
class Golden:
    """One golden container: how its original is built and how it is compressed."""

    name: str  #: container file name in tests/golden/
    original_name: str  #: the original's file name (its suffix steers format detection)
    original: Callable[[], bytes]
    chunk_size: int
    level: int = 2
    coder: str = "auto"
    api: str = "compress_file"  #: or "compress_stream"
    earlier_writer: str | None = None  #: None, or a key of EARLIER_WRITERS (see earlier_writer())
    description: str = ""
    tensors: dict[str, Expect] = field(default_factory=dict)
    require: dict = field(default_factory=dict)  #: covers key -> values that must be present
    #: golden containers whose originals are the base it is coded against: one is a base
    #: file, several a base directory of their originals (the index's ``parts``)
    base: tuple[str, ...] = ()


# --- bytes ---


def bytes_original() -> bytes:
    return b"".join([
        text_bytes(rng(1, 1), 6144),                             # ZSTD
        rng(1, 2).integers(0, 256, 2048, dtype=np.uint8).tobytes(),  # STORED
        skewed_bytes(rng(1, 3), 4096, 0.2).tobytes(),            # an entropy coder
        bytes(2048),                                             # CONSTANT
        skewed_bytes(rng(1, 4), 1000, 0.6).tobytes(),            # a short last chunk
    ])


# --- safetensors: every safetensors dtype, level 2 ---


def model_entries() -> list:
    f = lambda a: a.tobytes()  # noqa: E731
    r = lambda k: rng(2, k)  # noqa: E731
    return [
        ("embed.weight", "BF16", (64, 96), f(bf16(r(1).standard_normal((64, 96)) * 0.02))),
        ("layers.0.attn.q.weight", "F16", (32, 64),
         f((r(2).standard_normal((32, 64)) * 0.02).astype(np.float16))),
        ("layers.0.mlp.weight", "F32", (32, 32),
         f((r(3).standard_normal((32, 32)) * 0.02).astype(np.float32))),
        ("layers.0.norm.weight", "BF16", (512,), f(bf16(1 + 0.05 * r(4).standard_normal(512)))),
        ("layers.0.norm.bias", "F64", (128,), f(r(5).standard_normal(128) * 0.01)),
        ("zeros", "F32", (256,), bytes(1024)),
        ("empty", "F32", (0, 4), b""),
        ("mask", "BOOL", (1024,), f(r(6).random(1024) < 0.2)),
        ("ids.u8", "U8", (1024,), f(skewed_bytes(r(7), 1024, 0.1))),
        ("q.i8", "I8", (1024,), f(np.clip(np.round(r(8).standard_normal(1024) * 20), -127,
                                          127).astype(np.int8))),
        ("f8.e4m3", "F8_E4M3", (4096,), f(r(9).standard_normal(4096).astype(
            ml_dtypes.float8_e4m3fn))),
        ("f8.e5m2", "F8_E5M2", (1024,), f((r(10).standard_normal(1024) * 0.02).astype(
            ml_dtypes.float8_e5m2))),
        ("f8.e8m0", "F8_E8M0", (1024,), f(np.clip(np.round(r(11).standard_normal(1024) * 2
                                                            + 120), 0, 254).astype(np.uint8))),
        ("f8.e4m3fnuz", "F8_E4M3FNUZ", (1024,), f(r(12).standard_normal(1024).astype(
            ml_dtypes.float8_e4m3fnuz))),
        ("gap", 8),
        ("pos.i64", "I64", (128,), f(np.arange(128, dtype=np.int64))),
        ("ids.i32", "I32", (128,), f(r(13).integers(0, 30000, 128).astype(np.int32))),
        ("ids.u32", "U32", (16,), f(r(14).integers(0, 1 << 32, 16).astype(np.uint32))),
        ("ids.i16", "I16", (32,), f(r(15).integers(-300, 300, 32).astype(np.int16))),
        ("ids.u16", "U16", (32,), f(r(16).integers(0, 1 << 16, 32).astype(np.uint16))),
        ("ids.u64", "U64", (8,), f(r(17).integers(0, 1 << 62, 8).astype(np.uint64))),
        ("rot.c64", "C64", (16,), f((r(18).standard_normal(16) + 1j).astype(np.complex64))),
        ("f4.packed", "F4", (64,), f(r(19).integers(0, 256, 32, dtype=np.uint8))),
        ("gap", 5),
    ]


def model_original() -> bytes:
    return safetensors_file(model_entries(), {"format": "pt", "note": "golden ✓"})


# --- safetensors: one tensor per field a fielded chunk can choose ---

#: (dtype, bits, top, escapes) -> (distribution, parameter, zero fraction, seed, elements):
#: each makes the level-2 encoder choose that field for its one chunk of FIELDS_CHUNK bytes.
FIELDS_CHUNK = 2048
FIELD_CASES = [
    ("BF16", 8, 15, False, ("gauss", 0.01, 0, 0, 1024)),
    ("BF16", 8, 16, False, ("one+g", 0.002, 0, 0, 1024)),
    ("BF16", 9, 15, False, ("s(one+g)", 0.3, 0, 0, 1024)),
    ("BF16", 9, 16, False, ("logn", 3, 0, 0, 1024)),
    ("BF16", 10, 15, True, ("gauss", 0.001, 0.01, 0, 1024)),
    ("BF16", 10, 16, True, ("one+g", 0.3, 0, 0, 1024)),
    ("BF16", 11, 15, False, ("s(one+g)", 0.1, 0, 0, 1024)),
    ("BF16", 11, 16, True, ("one+g", 0.2, 0.01, 0, 1024)),
    ("BF16", 12, 15, False, ("s(one+g)", 0.02, 0, 0, 1024)),
    ("BF16", 12, 16, False, ("one+g", 0.05, 0, 0, 1024)),
    ("F16", 8, 15, False, ("gauss", 0.001, 0, 0, 1024)),
    ("F16", 8, 16, False, ("one+g", 0.002, 0, 0, 1024)),
    ("F16", 9, 15, False, ("s(one+g)", 0.05, 0, 0, 1024)),
    ("F16", 9, 16, False, ("one+g", 0.1, 0, 0, 1024)),
    ("F16", 10, 15, True, ("s(one+g)", 0.02, 0.01, 0, 1024)),
    ("F16", 10, 16, False, ("one+g", 0.05, 0, 0, 1024)),
    ("F16", 11, 15, False, ("s(1.5+g)", 0.02, 0, 0, 1024)),
    ("F16", 11, 16, True, ("one+g", 0.05, 0.01, 0, 1024)),
    ("F16", 12, 15, False, ("s(one+g)", 0.001, 0, 0, 1024)),
    ("F16", 12, 16, False, ("one+g", 0.005, 0, 0, 1024)),
    ("F32", 8, 31, False, ("gauss", 0.001, 0, 0, 512)),
    ("F32", 9, 31, False, ("one+g", 0.3, 0, 0, 512)),
    ("F32", 10, 31, True, ("gauss", 0.001, 0.01, 0, 512)),
    ("F32", 11, 31, False, ("one+g", 0.1, 0, 0, 512)),
    ("F32", 12, 31, True, ("one+g", 0.0005, 0.01, 0, 512)),
    ("F64", 8, 63, False, ("one+g", 0.0005, 0, 0, 256)),
    ("F64", 9, 63, True, ("logu", 5, 0.01, 0, 256)),
    ("F64", 10, 63, False, ("gauss", 0.001, 0, 0, 256)),
    ("F64", 11, 63, True, ("gauss", 0.1, 0.01, 0, 256)),
    ("F64", 12, 63, False, ("one+lap", 0.2, 0, 0, 256)),
]


def field_tensor_name(dtype: str, bits: int, top: int) -> str:
    return f"{dtype.lower()}.b{bits}.t{top}"


def fields_original() -> bytes:
    entries = []
    for dtype, bits, top, _, (kind, p, zeros, seed, n) in FIELD_CASES:
        raw = field_sample(dtype, kind, p, n, zeros, seed)
        entries.append((field_tensor_name(dtype, bits, top), dtype, (n,), raw))
    return safetensors_file(entries)


def fields_expect() -> dict[str, Expect]:
    codes = {"F16": 11, "BF16": 12, "F32": 13, "F64": 14}
    return {field_tensor_name(d, b, t): Expect(dtype_code=codes[d], field=(b, t), escapes=e,
                                               chunks=1)
            for d, b, t, e, _ in FIELD_CASES}


# --- safetensors: level 1 (pair streams) ---


def fast_entries() -> list:
    r = lambda k: rng(3, k)  # noqa: E731
    return [
        ("embed.weight", "BF16", (32, 64), bf16(r(1).standard_normal((32, 64)) * 0.02).tobytes()),
        ("attn.weight", "F16", (32, 64),
         (r(2).standard_normal((32, 64)) * 0.02).astype(np.float16).tobytes()),
        ("mlp.weight", "F32", (16, 64), (r(3).standard_normal((16, 64)) * 0.02).astype(
            np.float32).tobytes()),
        ("norm.weight", "F64", (128,), (1 + 0.01 * r(4).standard_normal(128)).tobytes()),
        ("layers.norm.weight", "BF16", (16, 512), stacked_norms(r(8), 16, 512).tobytes()),
        ("codes.u8", "U8", (16384,), paired_bytes(r(5), 16384, 0.85).tobytes()),
        ("odd.u8", "U8", (4097,), paired_bytes(r(6), 4097 + 1, 0.9)[:4097].tobytes()),
        ("f8.e4m3", "F8_E4M3", (1024,), r(7).standard_normal(1024).astype(
            ml_dtypes.float8_e4m3fn).tobytes()),
    ]


def fast_original() -> bytes:
    return safetensors_file(fast_entries())


# --- safetensors: streams long enough to be wide (method 8) ---

WIDE_CHUNK = 1 << 17  # streams.WIDE_MIN symbols of one byte each


def wide_original() -> bytes:
    r = lambda k: rng(9, k)  # noqa: E731
    return safetensors_file([
        ("codes.u8", "U8", (WIDE_CHUNK,), skewed_bytes(r(1), WIDE_CHUNK, 0.2).tobytes()),
        # scaled as real fp8 weights are: high-entropy bytes, a 14-bit table
        ("w.f8", "F8_E4M3", (WIDE_CHUNK,), (r(2).standard_normal(WIDE_CHUNK) * 0.02 / 0.08
                                            * 448).astype(ml_dtypes.float8_e4m3fn).tobytes()),
    ])


# --- safetensors: a small mixed file (coders, earlier writers, a truncated stream) ---


def small_entries() -> list:
    r = lambda k: rng(4, k)  # noqa: E731
    return [
        ("w.bf16", "BF16", (32, 64), bf16(r(1).standard_normal((32, 64)) * 0.02).tobytes()),
        ("w.f16", "F16", (16, 32), (r(2).standard_normal((16, 32)) * 0.02).astype(
            np.float16).tobytes()),
        ("w.f32", "F32", (512,), (r(3).standard_normal(512) * 0.02).astype(np.float32).tobytes()),
        ("w.f64", "F64", (128,), (r(4).standard_normal(128) * 0.02).tobytes()),
        ("norm.bf16", "BF16", (128,), bf16(1 + 0.05 * r(5).standard_normal(128)).tobytes()),
        ("ids.u8", "U8", (1024,), skewed_bytes(r(6), 1024, 0.15).tobytes()),
        ("f8.e4m3", "F8_E4M3", (2048,), r(7).standard_normal(2048).astype(
            ml_dtypes.float8_e4m3fn).tobytes()),
        ("zeros", "BF16", (64,), bytes(128)),
        ("ids.tail.u8", "U8", (8192,), long_tail_bytes(r(8), 8192, 0.02).tobytes()),
    ]


def small_original() -> bytes:
    return safetensors_file(small_entries(), {"format": "np"})


def tied_original() -> bytes:
    """Repeated bytes: a tied embedding and head, two equal norm weights, and a tensor
    whose second half repeats its first (chunk for chunk)."""
    r = lambda k: rng(10, k)  # noqa: E731
    embed = bf16(r(1).standard_normal((64, 96)) * 0.02).tobytes()  # 3 chunks of 4 KiB
    norm = bf16(1 + 0.05 * r(2).standard_normal(2048)).tobytes()
    half = (r(3).standard_normal(1024) * 0.02).astype(np.float32).tobytes()
    return safetensors_file([
        ("embed.weight", "BF16", (64, 96), embed),
        ("layers.0.norm.weight", "BF16", (2048,), norm),
        ("layers.0.w", "F32", (2048,), half + half),
        ("layers.1.norm.weight", "BF16", (2048,), norm),
        ("lm_head.weight", "BF16", (64, 96), embed),
    ])


def truncated_original() -> bytes:
    """The small file cut inside an F16 tensor, at an odd byte: a stream that ends before
    the data its header promised (coded as format "bytes", the odd tail as BYTES)."""
    data = small_original()
    data_start = 8 + int.from_bytes(data[:8], "little")
    return data[:data_start + 4096 + 501]  # w.bf16 whole, then 501 bytes of w.f16


# --- against a base ---


def tuned(raw: bytes, dtype: str, seed: int, scale: float) -> bytes:
    """A fine-tune's version of a base tensor's bytes: each value times (1 + scale * noise),
    rounded to ``dtype`` (most bf16 values keep their bits at scale 2^-9)."""
    t = {"BF16": ml_dtypes.bfloat16, "F32": np.float32, "F16": np.float16}[dtype]
    x = np.frombuffer(raw, t).astype(np.float64)
    return (x * (1 + scale * rng(11, seed).standard_normal(x.size))).astype(t).tobytes()


def tensors_of(original: bytes) -> dict[str, tuple[str, tuple, bytes]]:
    """The tensors of a safetensors file made by safetensors_file: name -> (dtype, shape,
    bytes)."""
    n = struct.unpack_from("<Q", original)[0]
    header = json.loads(original[8:8 + n])
    data = original[8 + n:]
    return {k: (v["dtype"], tuple(v["shape"]), data[v["data_offsets"][0]:v["data_offsets"][1]])
            for k, v in header.items() if k != "__metadata__"}


def finetune_original() -> bytes:
    """tied.safetensors fine-tuned: its embedding and its F32 tensor changed a little
    (DELTA chunks), one norm kept (COPY_BASE), the head tied to the new embedding, and a
    tensor the base does not have (PLAIN)."""
    base = tensors_of(tied_original())
    embed = tuned(base["embed.weight"][2], "BF16", 1, 2 ** -9)
    return safetensors_file([
        ("embed.weight", "BF16", (64, 96), embed),
        ("layers.0.norm.weight", "BF16", (2048,), base["layers.0.norm.weight"][2]),
        ("layers.0.w", "F32", (2048,), tuned(base["layers.0.w"][2], "F32", 2, 1e-4)),
        ("layers.0.adapter", "BF16", (2048,),
         bf16(rng(11, 3).standard_normal(2048) * 0.01).tobytes()),
        ("lm_head.weight", "BF16", (64, 96), embed),
    ])


def finetune_parts_original() -> bytes:
    """A fine-tune whose tensors come from two base files, tied.safetensors and
    small.safetensors (a model sharded otherwise than its base)."""
    tied, small = tensors_of(tied_original()), tensors_of(small_original())
    return safetensors_file([
        ("embed.weight", "BF16", (64, 96), tuned(tied["embed.weight"][2], "BF16", 4, 2 ** -9)),
        ("w.bf16", "BF16", (32, 64), tuned(small["w.bf16"][2], "BF16", 5, 2 ** -9)),
        ("w.f32", "F32", (512,), tuned(small["w.f32"][2], "F32", 6, 1e-4)),
        ("layers.0.w", "F32", (2048,), tied["layers.0.w"][2]),  # its halves are equal
    ])


# --- GGUF: every block type ---

#: Plane generators for block types gguf.quants cannot quantize: (kind, parameter) per
#: plane name. "f16": fp16 scales of about this size, split in .hi/.lo; "sym": values in
#: 0 .. parameter - 1, bell-shaped around the middle; "i8": int8 around 0 (sd parameter);
#: "e8m0": exponent bytes around 120; "q2": bytes of four bell-shaped 2-bit quants.
SYNTHETIC_PLANES = {
    "Q2_K": {"scales": ("sym", 16), "mins": ("sym", 16), "qs": ("q2", 0), "d": ("f16", 1e-3),
             "dmin": ("f16", 1e-3)},
    "Q3_K": {"q": ("sym", 8), "scales": ("sym", 64), "d": ("f16", 1e-3)},
    "Q4_K": {"d": ("f16", 1e-3), "dmin": ("f16", 1e-3), "scales": ("sym", 64),
             "mins": ("sym", 64), "q": ("sym", 16)},
    "Q5_K": {"d": ("f16", 1e-3), "dmin": ("f16", 1e-3), "scales": ("sym", 64),
             "mins": ("sym", 64), "q": ("sym", 32)},
    "Q6_K": {"q": ("sym", 64), "scales": ("i8", 30), "d": ("f16", 1e-3)},
    "IQ4_NL": {"d": ("f16", 2e-3), "q": ("sym", 16)},
}


def synthetic_blocks(qtype: str, nblocks: int, r: np.random.Generator) -> bytes:
    """``nblocks`` blocks of ``qtype`` whose planes have the skewed distributions of real
    quantized weights, packed with the type's own block layout (ansz.blocks)."""
    bt = blocks.BLOCK_TYPES[qtype]
    spec = SYNTHETIC_PLANES[qtype]
    planes, halves = [], {}
    for pname, k in bt.planes:
        base, _, part = pname.partition(".")
        kind, p = spec[base]
        if kind == "f16":
            if base not in halves:
                v = (np.abs(r.standard_normal((nblocks, 1))) * p + p / 4).astype(np.float16)
                u = v.view(np.uint16)
                halves[base] = {"hi": (u >> 8).astype(np.uint8), "lo": (u & 255).astype(np.uint8)}
            planes.append(halves[base][part])
        elif kind == "sym":
            v = np.round(r.standard_normal((nblocks, k)) * p / 6 + (p - 1) / 2)
            planes.append(np.clip(v, 0, p - 1).astype(np.uint8))
        elif kind == "i8":
            v = np.clip(np.round(r.standard_normal((nblocks, k)) * p), -127, 127)
            planes.append(v.astype(np.int8).view(np.uint8))
        elif kind == "q2":
            q = np.clip(np.round(r.standard_normal((nblocks, k, 4)) * 0.5 + 1.5), 0, 3)
            q = q.astype(np.uint8)
            planes.append(q[..., 0] | q[..., 1] << 2 | q[..., 2] << 4 | q[..., 3] << 6)
        else:
            raise ValueError(kind)
    out = np.zeros((nblocks, bt.block_bytes), np.uint8)
    bt.join(planes, out)
    return out.tobytes()


def gguf_original() -> bytes:
    import gguf
    from gguf import GGMLQuantizationType as T

    r = lambda k: rng(5, k)  # noqa: E731
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.gguf")
        w = gguf.GGUFWriter(path, "llama")
        w.add_name("golden")
        w.add_block_count(1)
        w.add_token_list([f"tok{i}" for i in range(40)])
        w.add_tensor("token_embd.weight", gguf.quants.quantize(
            (r(1).standard_normal((16, 256)) * 0.02).astype(np.float32), T.Q8_0), raw_dtype=T.Q8_0)
        for i, qt in enumerate(("Q4_0", "Q4_1", "Q5_0", "Q5_1", "MXFP4")):
            x = (r(10 + i).standard_normal((16, 256)) * 0.02).astype(np.float32)
            w.add_tensor(f"blk.0.{qt.lower()}.weight", gguf.quants.quantize(x, T[qt]),
                         raw_dtype=T[qt])
        for i, qt in enumerate(SYNTHETIC_PLANES):
            block_elems, block_bytes = gguf.GGML_QUANT_SIZES[T[qt]]
            nb = 128 if block_elems == 32 else 32 if qt in ("Q2_K", "Q3_K") else 16
            raw = np.frombuffer(synthetic_blocks(qt, nb, r(20 + i)), np.uint8)
            w.add_tensor(f"blk.0.{qt.lower()}.weight", raw.reshape(nb * block_elems // 256, -1),
                         raw_dtype=T[qt])
        for i, qt in enumerate(("Q4_0", "Q6_K")):  # random blocks: the planes do not pay
            block_elems, block_bytes = gguf.GGML_QUANT_SIZES[T[qt]]
            raw = r(30 + i).integers(0, 256, (1, 4096 // block_elems * block_bytes), np.uint8)
            w.add_tensor(f"random.{qt.lower()}.weight", raw, raw_dtype=T[qt])
        w.add_tensor("output_norm.weight", (1 + 0.05 * r(40).standard_normal(256)).astype(
            np.float32))
        w.add_tensor("blk.0.attn_k.weight", (r(41).standard_normal((16, 64)) * 0.02).astype(
            np.float16))  # 2 KiB: one chunk
        w.add_tensor("blk.0.attn_v.weight", bf16(r(42).standard_normal((16, 64)) * 0.02).view(
            np.uint16), raw_dtype=T.BF16)
        w.add_tensor("blk.0.ids", np.clip(np.round(r(43).standard_normal(256) * 10), -127,
                                          127).astype(np.int8))
        w.add_tensor("blk.0.pos", np.arange(64, dtype=np.int32))
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        return Path(path).read_bytes()


def gguf_expect(fast: bool) -> dict[str, Expect]:
    out = {}
    codes = {t.name: code for code, t in dtypes.DTYPE_CODES.items() if code >= 32}
    for qt in ("Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "MXFP4", *SYNTHETIC_PLANES):
        name = "token_embd.weight" if qt == "Q8_0" else f"blk.0.{qt.lower()}.weight"
        out[name] = Expect(dtype_code=codes[qt], block_form=None if fast else "planes",
                           chunks=3 if qt == "Q8_0" else None)
    for qt in ("Q4_0", "Q6_K"):
        out[f"random.{qt.lower()}.weight"] = Expect(dtype_code=codes[qt], block_form="whole")
    out["blk.0.attn_k.weight"] = Expect(dtype_code=11)
    out["blk.0.attn_v.weight"] = Expect(dtype_code=12)
    return out


# --- the list ---

ALL_PAIR_CODES = list(range(0, 7)) + [11, 12, 13, 14]


def goldens() -> list[Golden]:
    return [
        Golden("bytes.ansz", "notes.bin", bytes_original, 2048,
               description="opaque bytes: text, random, skewed and zero runs",
               require={"format": ["bytes"], "dtype_codes": [0],
                        "stream_methods": ["STORED", "CONSTANT", "ZSTD"]}),
        Golden("empty.ansz", "empty.bin", lambda: b"", 65536,
               description="an empty file: no chunk record",
               require={"format": ["bytes"], "chunk_count": [0]}),
        Golden("model.safetensors.ansz", "model.safetensors", model_original, 1024,
               description="safetensors with every safetensors dtype, a zero-size tensor, "
                           "a sub-byte tensor, bytes between and after tensors",
               tensors={"embed.weight": Expect(dtype_code=12, chunks=12),
                        "layers.0.attn.q.weight": Expect(dtype_code=11),
                        "layers.0.mlp.weight": Expect(dtype_code=13),
                        "layers.0.norm.bias": Expect(dtype_code=14),
                        "zeros": Expect(dtype_code=13, methods=("CONSTANT",)),
                        "empty": Expect(chunks=0),
                        "mask": Expect(dtype_code=1), "ids.u8": Expect(dtype_code=2),
                        "q.i8": Expect(dtype_code=3),
                        "f8.e4m3": Expect(dtype_code=4),
                        "f8.e5m2": Expect(dtype_code=5), "f8.e8m0": Expect(dtype_code=6),
                        "f8.e4m3fnuz": Expect(dtype_code=0), "pos.i64": Expect(dtype_code=0)},
               require={"format": ["safetensors"], "dtype_codes": ALL_PAIR_CODES,
                        "stream_methods": ["STORED", "CONSTANT"]}),
        Golden("fields.safetensors.ansz", "fields.safetensors", fields_original, FIELDS_CHUNK,
               description="one tensor per field width and top a fielded float chunk can "
                           "choose, some with escapes",
               tensors=fields_expect()),
        Golden("model_fast.safetensors.ansz", "model_fast.safetensors", fast_original, 16384,
               level=1, description="level 1 (--fast): plain fields, rANS only",
               tensors={"layers.norm.weight": Expect(dtype_code=12, field=(8, 15), chunks=1)}),
        Golden("earlier_pairs.safetensors.ansz", "model_fast.safetensors", fast_original, 16384,
               level=1, earlier_writer="pairs",
               description="level 1 as written before wide streams: code streams as rANS "
                           "pair streams (method 7)",
               tensors={"layers.norm.weight": Expect(dtype_code=12, field=(8, 15), chunks=1,
                                                     methods=("RANS_PAIRS/12",)),
                        "codes.u8": Expect(dtype_code=2, chunks=1, methods=("RANS_PAIRS/14",))},
               require={"stream_methods": ["RANS_PAIRS/12", "RANS_PAIRS/14"]}),
        *(Golden(f"small_{c}.safetensors.ansz", "small.safetensors", small_original, 8192,
                 coder=c, description=f"a small mixed file, every stream coded with {c}",
                 require={"stream_methods": m})
          for c, m in (("rans", ["RANS/12", "RANS/14"]), ("huffman", ["HUFFMAN"]),
                       ("qlc", ["QLC"]))),
        Golden("wide.safetensors.ansz", "wide.safetensors", wide_original, WIDE_CHUNK,
               description="chunks of 2^17 symbols: wide rANS streams (method 8), header "
                           "flag 1",
               tensors={"codes.u8": Expect(dtype_code=2, chunks=1, methods=("RANS_WIDE/12x32",)),
                        "w.f8": Expect(dtype_code=4, chunks=1, methods=("RANS_WIDE/14x32",))},
               require={"stream_methods": ["RANS_WIDE/12x32", "RANS_WIDE/14x32"]}),
        Golden("wide_fast.safetensors.ansz", "wide.safetensors", wide_original, WIDE_CHUNK,
               level=1, description="level 1 with chunks of 2^17 symbols: wide rANS streams of "
                                    "64 states",
               tensors={"codes.u8": Expect(dtype_code=2, chunks=1, methods=("RANS_WIDE/12x64",)),
                        "w.f8": Expect(dtype_code=4, chunks=1, methods=("RANS_WIDE/14x64",))},
               require={"stream_methods": ["RANS_WIDE/12x64", "RANS_WIDE/14x64"]}),
        Golden("model.gguf.ansz", "model.gguf", gguf_original, 2048,
               description="GGUF with every block type (planes, and whole for random blocks), "
                           "F32, F16, BF16, I8 and I32 tensors",
               tensors=gguf_expect(False),
               require={"format": ["gguf"],
                        "dtype_codes": sorted(c for c in dtypes.DTYPE_CODES if c >= 32)}),
        Golden("model_fast.gguf.ansz", "model.gguf", gguf_original, 2048, level=1,
               description="the GGUF file at level 1", tensors=gguf_expect(True),
               require={"format": ["gguf"]}),
        Golden("tied.safetensors.ansz", "tied.safetensors", tied_original, 4096,
               description="repeated tensors and chunks stored once: KEPT chunks and "
                           "COPY_CHUNK records, header flag 4 and its Kept_Size",
               tensors={"lm_head.weight": Expect(dtype_code=12, chunks=3),
                        "layers.1.norm.weight": Expect(dtype_code=12, chunks=1)},
               require={"chunk_kinds": ["PLAIN", "PLAIN+KEPT", "COPY_CHUNK"]}),
        Golden("finetune.safetensors.ansz", "finetune.safetensors", finetune_original, 4096,
               base=("tied.safetensors.ansz",),
               description="a fine-tune coded against its base (tied.safetensors): DELTA "
                           "chunks of bf16 and f32, COPY_BASE, a tensor of its own, the head "
                           "tied to the new embedding (DELTA+KEPT, COPY_CHUNK), header "
                           "flags 2 and 4",
               tensors={"embed.weight": Expect(dtype_code=12, chunks=3),
                        "layers.0.w": Expect(dtype_code=13, chunks=2)},
               require={"chunk_kinds": ["DELTA", "DELTA+KEPT", "COPY_BASE", "COPY_CHUNK",
                                        "PLAIN"]}),
        Golden("finetune_parts.safetensors.ansz", "finetune_parts.safetensors",
               finetune_parts_original, 4096,
               base=("tied.safetensors.ansz", "small_rans.safetensors.ansz"),
               description="a fine-tune coded against a base of two files (tied.safetensors "
                           "and small.safetensors): the index's parts, header flags 2 and 8; "
                           "a base tensor with equal halves kept whole (COPY_BASE+KEPT, then "
                           "COPY_CHUNK)",
               require={"chunk_kinds": ["DELTA", "COPY_BASE+KEPT", "COPY_CHUNK"]}),
        Golden("truncated_stream.ansz", "truncated.safetensors", truncated_original, 4096,
               api="compress_stream",
               description="a safetensors stream that ends inside a tensor: format bytes, "
                           "the odd tail as BYTES",
               require={"format": ["bytes"], "dtype_codes": [0, 12]}),
        Golden("earlier_u16.safetensors.ansz", "small.safetensors", small_original, 1024,
               coder="rans", earlier_writer="u16",
               description="as written before fielded floats, varint rANS tables and the zstd "
                           "index: dtype codes 7-10, stream method 2, index record type 2",
               require={"dtype_codes": [7, 8, 9, 10], "stream_methods": ["RANS_U16/12"],
                        "index_record_type": [2]}),
        Golden("earlier_varint.safetensors.ansz", "small.safetensors", small_original, 1024,
               coder="rans", earlier_writer="varint",
               description="as written before fielded floats and the zstd index: dtype codes "
                           "7-10 with varint rANS tables, index record type 2",
               require={"dtype_codes": [7, 8, 9, 10], "stream_methods": ["RANS/12"],
                        "index_record_type": [2]}),
    ]


# ---------------------------------------------------------------------------------------------
# Writing


#: The earlier writers imitated, as recorded in MANIFEST.json.
EARLIER_WRITERS = {
    "pairs": "code streams of level-1 chunks as rANS pair streams (method 7)",
    "u16": "dtype codes 7-10 (plain coding pairs), rANS streams as method 2 (u16 tables), "
           "an uncoded (type 2) index record",
    "varint": "dtype codes 7-10 (plain coding pairs), rANS streams as method 6 (varint "
              "tables), an uncoded (type 2) index record",
}


def earlier_writer(step: str | None):
    """Today's writer patched into an earlier one (writer_patches, as the modelling
    benchmark's ``plain`` and ``varint`` steps): float dtypes get the plain codes 7-10, the
    index record is written uncoded (type 2), and with ``"u16"`` rANS streams are method 2
    with u16 tables."""
    if step is None:
        return contextlib.nullcontext()
    if step not in EARLIER_WRITERS:
        raise ValueError(step)
    if step == "pairs":
        return patched_writer(pair_streams=True)
    return patched_writer(u16_tables=step == "u16", plain_codes=True, raw_index=True)


def options(g: Golden) -> dict:
    opts = {"api": g.api, "original_name": g.original_name, "chunk_size": g.chunk_size,
            "level": g.level, "coder": g.coder, "threads": THREADS}
    if g.base:  # the golden containers whose originals are the base
        opts["base"] = list(g.base)
    return opts


def write_base(opts: dict, originals: Callable[[str], tuple[str, bytes]], workdir: Path
               ) -> Path | None:
    """The base a golden file's options name, written under ``workdir``: its one original
    (a file) or all of them (a directory). ``originals(golden name)`` gives that golden
    container's ``(original name, original bytes)``. None without a base."""
    if not opts.get("base"):
        return None
    where = workdir / "base"
    shutil.rmtree(where, ignore_errors=True)  # nothing of an earlier golden file's base
    where.mkdir()
    paths = []
    for golden in opts["base"]:
        name, data = originals(golden)
        paths.append(where / name)
        paths[-1].write_bytes(data)
    return paths[0] if len(paths) == 1 else where


def compress(original: bytes, opts: dict, workdir: Path, base: Path | None = None) -> bytes:
    """Compress ``original`` as a golden file's options say (what the tests repeat);
    ``base``: where write_base put the base its options name."""
    kw = {"chunk_size": opts["chunk_size"], "level": opts["level"], "coder": opts["coder"],
          "threads": opts["threads"]}
    if base is not None:
        kw["base"] = base
    if opts["api"] == "compress_stream":
        out = io.BytesIO()
        ansz.compress_stream(io.BytesIO(original), out, **kw)
        return out.getvalue()
    src = workdir / opts["original_name"]
    dst = workdir / (opts["original_name"] + ".ansz")
    src.write_bytes(original)
    try:
        ansz.compress_file(src, dst, overwrite=True, **kw)
        return dst.read_bytes()
    finally:
        src.unlink()
        dst.unlink(missing_ok=True)


def check_expectations(g: Golden, survey: dict, cov: dict) -> None:
    """Stop unless the container took every path ``g`` was built for."""
    problems = []
    for key, wanted in g.require.items():
        have = cov[key] if isinstance(cov[key], list) else [cov[key]]
        missing = [w for w in wanted if w not in have]
        if missing:
            problems.append(f"{key}: missing {missing} (found {have})")
    by_name = gs.segment_chunks(survey)
    sizes = {seg["name"]: seg["end"] - seg["start"] for seg in survey["index"]["segments"]}
    for name, e in g.tensors.items():
        chunks = by_name.get(name, [])
        where = f"tensor {name!r}"
        if e.chunks != 0 and sizes.get(name, 0) < g.chunk_size:
            problems.append(f"{where}: smaller than a chunk, so it may not carry expectations")
        if e.chunks is not None and len(chunks) != e.chunks:
            problems.append(f"{where}: {len(chunks)} chunks, expected {e.chunks}")
        if not chunks:
            if e.chunks != 0:
                problems.append(f"{where}: no chunks")
            continue
        for c in chunks:
            if e.dtype_code is not None and c["dtype_code"] != e.dtype_code:
                problems.append(f"{where}: dtype code {c['dtype_code']}, expected {e.dtype_code}")
            if e.field is not None:
                got = None if c["field"] is None else (c["field"]["bits"], c["field"]["top"])
                if got != e.field:
                    problems.append(f"{where}: field (bits, top) {got}, expected {e.field}")
        if e.escapes is not None:
            escapes = any(c["field"] and c["field"]["escapes"] for c in chunks)
            if escapes != e.escapes:
                problems.append(f"{where}: escapes {escapes}, expected {e.escapes}")
        forms = {c["block_form"] for c in chunks}
        if e.block_form is not None and e.block_form not in forms:
            problems.append(f"{where}: block forms {forms}, expected {e.block_form}")
        kinds = {k for c in chunks for k in c["streams"]}
        for m in e.methods:
            if m not in kinds:
                problems.append(f"{where}: no {m} stream (found {sorted(kinds)})")
    if problems:
        raise SystemExit(f"{g.name} does not cover what it was built for:\n  "
                         + "\n  ".join(problems))


def golden_originals() -> Callable[[str], tuple[str, bytes]]:
    """golden container name -> (its original's name, the original), as built here."""
    by_name = {g.name: g for g in goldens()}
    return lambda name: (by_name[name].original_name, by_name[name].original())


def build_container(g: Golden, workdir: Path) -> tuple[bytes, bytes, dict]:
    original = g.original()
    base = write_base(options(g), golden_originals(), workdir)
    with earlier_writer(g.earlier_writer):
        blob = compress(original, options(g), workdir, base)
    if base is None:
        back = io.BytesIO()
        ansz.decompress_stream(io.BytesIO(blob), back, threads=THREADS)
        back = back.getvalue()
    else:  # decoded from a file, with its base
        (workdir / "golden.ansz").write_bytes(blob)
        ansz.decompress_file(workdir / "golden.ansz", workdir / "back", threads=THREADS,
                             overwrite=True, base=base)
        back = (workdir / "back").read_bytes()
        for p in (workdir / "golden.ansz", workdir / "back"):
            p.unlink()
    if back != original:
        raise SystemExit(f"{g.name}: does not decode to its original")
    survey = gs.survey(blob)
    cov = gs.covers(survey)
    check_expectations(g, survey, cov)
    if g.earlier_writer is None:  # the writer must reproduce it for the tests to
        again = compress(original, options(g), workdir, base)
        if again != blob:
            raise SystemExit(f"{g.name}: compressing twice gave different bytes")
    entry = {
        "file": g.name,
        "description": g.description,
        "sha256": hashlib.sha256(blob).hexdigest(),
        "size": len(blob),
        "original": {"name": g.original_name, "sha256": hashlib.sha256(original).hexdigest(),
                     "size": len(original)},
        "options": options(g),
        "produced_by": (f"ansz.{g.api}" if g.earlier_writer is None else
                        f"ansz.{g.api} patched into an earlier writer: "
                        + EARLIER_WRITERS[g.earlier_writer]),
        "writer_reproduces": g.earlier_writer is None,
        "covers": cov,
    }
    return blob, original, entry


# ---------------------------------------------------------------------------------------------
# Byte-exact vectors


@dataclass
class Vector:
    """One byte-exact payload: ``kind`` "stream" (streams.encode_stream), "chunk"
    (chunks.encode_chunk) or "block" (blocks.encode_block_chunk)."""

    name: str
    kind: str
    data: bytes
    options: dict
    expect: list  #: stream kinds the payload must have, in order (checked here)
    dtype: str | None = None
    patch: str | None = None  #: None or a patch of patched(): "u16_tables", "high_scale", "pairs"...
    field_expect: tuple | None = None


def patched(patch: str | None):
    """Encoder constants a vector was made with (writer_patches): ``u16_tables``, rANS
    streams as method 2 with u16 tables (earlier writers); ``high_scale``, 14-bit rANS
    tables always."""
    if patch is None:
        return contextlib.nullcontext()
    if patch not in ("u16_tables", "high_scale", "pairs", "pairs+high_scale"):
        raise ValueError(patch)
    return patched_writer(u16_tables=patch == "u16_tables",
                          always_high_scale=patch.endswith("high_scale"))


def encode_entry(e: dict) -> bytes:
    """The payload a vectors.json entry describes, as today's encoder writes it."""
    data, opts = bytes.fromhex(e["input"]), dict(e["options"])
    with patched(e["patch"]):
        if e["kind"] == "stream" and (e["patch"] or "").startswith("pairs"):
            return pair_stream(np.frombuffer(data, np.uint8))  # as level 1 once wrote them
        if e["kind"] == "stream":
            return streams.encode_stream(np.frombuffer(data, np.uint8), **opts)
        if e["kind"] == "block":
            return blocks.encode_block_chunk(data, e["dtype"], **opts)
        if "field" in opts:
            opts["field"] = Field(*opts["field"])
        return chunks.encode_chunk(data, e["dtype"], **opts)


def decode_entry(e: dict, payload: bytes) -> bytes:
    """What today's decoder makes of a vector's payload (no patch: readers read every form)."""
    n = len(e["input"]) // 2
    if e["kind"] == "stream":
        return streams.decode_stream(payload, n).tobytes()
    if e["kind"] == "block":
        return blocks.decode_block_chunk(payload, e["dtype"], n).tobytes()
    return chunks.decode_chunk(payload, e["dtype"], n,
                              fielded=e["options"].get("fielded", False)).tobytes()


def densest_window(data: bytes, dtype: str, shift: int, bits: int) -> int:
    """The base of the 255 field values holding the most elements (as the encoder picks)."""
    width = {"BF16": 2, "F16": 2, "F32": 4, "F64": 8}[dtype]
    e = np.frombuffer(data, f"<u{width}").astype(np.uint64)
    fields = ((e >> np.uint64(shift)) & np.uint64((1 << bits) - 1)).astype(np.int64)
    counts = np.bincount(fields, minlength=1 << bits)
    return int(np.argmax(np.convolve(counts, np.ones(255, np.int64), "valid")))


def vectors() -> list[Vector]:
    r = lambda k: rng(6, k)  # noqa: E731
    skew = skewed_bytes(r(1), 300, 0.35).tobytes()
    f = lambda kind, p, n, zeros=0, dtype="BF16": field_sample(dtype, kind, p, n, zeros, 7)  # noqa
    bf = bf16(r(2).standard_normal(256) * 0.02).tobytes()
    out = [
        Vector("stream_empty", "stream", b"", {}, ["STORED"]),
        Vector("stream_stored", "stream", bytes(range(0, 256, 17)), {}, ["STORED"]),
        Vector("stream_constant", "stream", b"\x07" * 100, {}, ["CONSTANT"]),
        Vector("stream_rans12_even_table", "stream",
               r(14).permutation(np.repeat(np.arange(4, dtype=np.uint8), (150, 100, 40, 10)))
               .tobytes(), {"coder": "rans"}, ["RANS/12"]),
        Vector("stream_rans12", "stream", skew, {"coder": "rans"}, ["RANS/12"]),
        Vector("stream_rans12_odd_table", "stream",
               r(3).permutation(np.repeat(np.arange(3, dtype=np.uint8), (220, 73, 7))).tobytes(),
               {"coder": "rans"}, ["RANS/12"]),
        Vector("stream_rans14", "stream", long_tail_bytes(r(4), 8192, 0.01).tobytes(),
               {"coder": "rans"}, ["RANS/14"]),
        Vector("stream_rans_u16", "stream", skew, {"coder": "rans"}, ["RANS_U16/12"],
               patch="u16_tables"),
        Vector("stream_huffman", "stream", skew, {"coder": "huffman"}, ["HUFFMAN"]),
        Vector("stream_huffman_odd_range", "stream", bytes([3, 3, 3, 4, 5, 3, 3, 7] * 8),
               {"coder": "huffman"}, ["HUFFMAN"]),
        Vector("stream_qlc", "stream", skew, {"coder": "qlc"}, ["QLC"]),
        Vector("stream_auto", "stream", skew, {}, None),
        Vector("stream_zstd", "stream", text_bytes(r(5), 400), {"try_zstd": True}, ["ZSTD"]),
        Vector("stream_pairs12", "stream", paired_bytes(r(6), 4096, 0.95).tobytes(),
               {}, ["RANS_PAIRS/12"], patch="pairs"),
        Vector("stream_pairs12_odd", "stream", paired_bytes(r(7), 4098, 0.95)[:4097].tobytes(),
               {}, ["RANS_PAIRS/12"], patch="pairs"),
        Vector("stream_pairs14", "stream", paired_bytes(r(8), 4096, 0.95).tobytes(),
               {}, ["RANS_PAIRS/14"], patch="pairs+high_scale"),
        # Chunks: plain coding pairs (dtype codes 7-10, fielded=False) ...
        Vector("chunk_bytes_zstd", "chunk", text_bytes(r(9), 600), {}, ["ZSTD"], dtype="BYTES"),
        Vector("chunk_u8", "chunk", skew, {}, None, dtype="U8"),
        Vector("chunk_bf16_plain", "chunk", bf, {"coder": "rans"}, ["RANS/12", "STORED"],
               dtype="BF16"),
        Vector("chunk_f16_plain", "chunk", (r(10).standard_normal(64) * 0.02).astype(
            np.float16).tobytes(), {"coder": "huffman"}, None, dtype="F16"),
        Vector("chunk_f32_plain", "chunk", (r(11).standard_normal(32) * 0.02).astype(
            np.float32).tobytes(), {"coder": "rans"}, None, dtype="F32"),
        Vector("chunk_f64_plain", "chunk", (r(12).standard_normal(16) * 0.02).tobytes(),
               {"coder": "qlc"}, None, dtype="F64"),
        # ... fielded, as the encoder chooses and with every width forced
        Vector("chunk_bf16_fielded", "chunk", bf, {"fielded": True}, None, dtype="BF16"),
    ]
    forced = [  # (dtype, field shift, field bits, data): every width, escapes in some
        ("BF16", 8, 8, f("one+g", 0.002, 64)),
        ("BF16", 6, 9, f("gauss", 0.02, 64)),
        ("BF16", 5, 10, f("s(one+g)", 0.2, 64)),
        ("BF16", 4, 11, f("s(one+g)", 0.1, 64, 0.05)),
        ("BF16", 4, 12, f("one+g", 0.05, 65, 0.05)),
        ("F16", 7, 9, f("one+g", 0.1, 64, dtype="F16")),
        ("F16", 4, 12, f("one+g", 0.005, 64, 0.05, dtype="F16")),
        ("F32", 21, 10, f("one+g", 0.2, 32, dtype="F32")),
        ("F32", 20, 11, f("one+g", 0.1, 32, 0.1, dtype="F32")),
        ("F64", 52, 11, f("gauss", 0.01, 16, dtype="F64")),
        ("F64", 51, 12, f("one+g", 0.01, 16, 0.1, dtype="F64")),
    ]
    for dtype, shift, bits, data in forced:
        fld = Field(shift, bits, 0 if bits == 8 else densest_window(data, dtype, shift, bits))
        out.append(Vector(f"chunk_{dtype.lower()}_field{bits}_top{shift + bits}", "chunk", data,
                          {"fielded": True, "field": [fld.shift, fld.bits, fld.base]},
                          None, dtype=dtype, field_expect=(bits, shift + bits)))
    out.append(Vector("chunk_bf16_fast", "chunk", stacked_norms(r(13), 8, 512).tobytes(),
                      {"fielded": True, "fast": True}, ["RANS/12", "RANS/12"], dtype="BF16",
                      field_expect=(8, 15)))
    # Block chunks: each type's planes, and the whole-chunk form.
    for i, qt in enumerate(blocks.BLOCK_TYPES):
        bt = blocks.BLOCK_TYPES[qt]
        nb = 32 if bt.block_elems == 32 else 8 if qt == "Q2_K" else 4  # the planes pay
        if qt in SYNTHETIC_PLANES:
            data = synthetic_blocks(qt, nb, r(20 + i))
        else:
            import gguf
            from gguf import GGMLQuantizationType as T

            x = (r(20 + i).standard_normal((1, nb * 32)) * 0.02).astype(np.float32)
            data = gguf.quants.quantize(x, T[qt]).tobytes()
        out.append(Vector(f"block_{qt.lower()}", "block", data, {}, None, dtype=qt))
    out.append(Vector("block_q4_0_whole", "block", r(40).integers(0, 256, 18 * 8, np.uint8)
                      .tobytes(), {}, ["STORED"], dtype="Q4_0"))
    return out


def vector_entry(v: Vector) -> dict:
    entry = {"name": v.name, "kind": v.kind, "dtype": v.dtype, "options": v.options,
             "patch": v.patch, "input": v.data.hex()}
    payload = encode_entry(entry)
    if decode_entry(entry, payload) != v.data:
        raise SystemExit(f"vector {v.name}: does not decode to its input")
    kinds = describe_payload(v, payload)
    if v.expect is not None and kinds["streams"] != v.expect:
        raise SystemExit(f"vector {v.name}: streams {kinds['streams']}, expected {v.expect}")
    if v.field_expect is not None and kinds["field"] != list(v.field_expect):
        raise SystemExit(f"vector {v.name}: field {kinds['field']}, expected {v.field_expect}")
    if v.kind == "block" and v.name.endswith("_whole") != (kinds["block_form"] == "whole"):
        raise SystemExit(f"vector {v.name}: block form {kinds['block_form']}")
    parity = {"_odd_table": 1, "_even_table": 0}
    if any(v.name.endswith(k) and varint_table_bytes(payload) % 2 != p
           for k, p in parity.items()):
        raise SystemExit(f"vector {v.name}: its varint table has the wrong parity")
    return {**entry, "covers": kinds, "payload": payload.hex()}


def varint_table_bytes(stream: bytes) -> int:
    """Bytes of a RANS stream's varint frequency table (pad byte excluded)."""
    pos, entries = 4, stream[3] - stream[2] + 1
    for _ in range(entries):
        pos += 2 if stream[pos] >= 128 else 1
    return pos - 4


def describe_payload(v: Vector, payload: bytes) -> dict:
    if v.kind == "stream":
        return {"streams": [gs.stream_kind(payload)], "field": None, "escapes": None,
                "block_form": None}
    codes = {"BYTES": 0, "U8": 2, "F16": 7, "BF16": 8, "F32": 9, "F64": 10}
    if v.kind == "block":
        code = next(c for c, t in gs.BLOCK_CODES.items() if t[0] == v.dtype)
    else:
        code = codes[v.dtype] + (4 if v.options.get("fielded") else 0)
    c = gs.chunk_survey(code, payload)
    return {"streams": c["streams"],
            "field": None if c["field"] is None else [c["field"]["bits"], c["field"]["top"]],
            "escapes": None if c["field"] is None else c["field"]["escapes"],
            "block_form": c["block_form"]}


# ---------------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=HERE,
                    help="directory to write into (default: tests/golden, replacing its files)")
    args = ap.parse_args()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        work = tmp / "work"
        work.mkdir()
        entries = []
        for g in goldens():
            blob, _, entry = build_container(g, work)
            (tmp / g.name).write_bytes(blob)
            entries.append(entry)
            print(f"{g.name:38} {len(blob):7} bytes  original {entry['original']['size']:7}")
        names = [e["file"] for e in entries]
        if len(set(names)) != len(names):
            raise SystemExit("two golden files share a name")
        vecs = [vector_entry(v) for v in vectors()]
        manifest = {
            "about": "Golden containers: see README.md. Written by make_golden.py; do not edit.",
            "files": entries,
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")
        (tmp / VECTORS).write_text(json.dumps({
            "about": "Byte-exact streams and chunk payloads: see README.md. Written by "
                     "make_golden.py; do not edit.",
            "vectors": vecs}, indent=1) + "\n")
        for stale in out.glob("*.ansz"):
            if stale.name not in names:
                stale.unlink()
        for name in [*names, MANIFEST, VECTORS]:
            shutil.move(tmp / name, out / name)
    total = sum((out / n).stat().st_size for n in [*names, MANIFEST, VECTORS])
    print(f"{len(names)} containers, {len(vecs)} vectors, {total} bytes in {out}")


if __name__ == "__main__":
    main()
