"""The public surface of the ansz package, pinned: what ``import ansz`` offers, what
``ansz.api`` defines, and the README's Python examples, run as written.

A change here is a change to the API users see: make it on purpose, and say so in the README.
"""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
from pathlib import Path

import ml_dtypes
import numpy as np
from safetensors.numpy import save_file

import ansz
from ansz import api, benchmark, reader, stats, writer

from helpers import weights

README = Path(__file__).resolve().parents[1] / "README.md"

#: ``from ansz import *`` gives exactly these.
ALL = ["AnszError", "CorruptDataError", "FormatError", "__version__", "bench_file",
       "compress_file", "compress_stream", "decompress_file", "decompress_stream", "file_stats",
       "load", "load_file", "load_model_dir", "read_info", "sample_files", "save", "save_file",
       "verify_file", "verify_stream"]

#: What ansz.api itself defines (file_stats comes from ansz.stats, atomic_output from _io).
API = ["CompressReport", "ContainerInfo", "DecompressReport", "VerifyReport", "compress_file",
       "compress_stream", "decompress_file", "decompress_stream", "read_info", "verify_file",
       "verify_stream"]


def test_all_is_pinned():
    assert ansz.__all__ == ALL
    namespace: dict = {}
    exec("from ansz import *", namespace)
    assert sorted(n for n in namespace if n != "__builtins__") == ALL


def test_open_is_public_but_not_in_all():
    """``ansz.open`` reads one tensor at a time; ``from ansz import *`` must not shadow the
    builtin ``open`` with it."""
    assert ansz.open is reader.open and callable(ansz.open)
    assert "open" not in ansz.__all__
    namespace: dict = {}
    exec("from ansz import *\nresult = open", namespace)
    assert namespace["result"] is open


def test_names_come_from_api_reader_and_errors():
    for name in ("compress_file", "decompress_file", "compress_stream", "decompress_stream",
                 "verify_file", "verify_stream", "read_info", "file_stats"):
        assert getattr(ansz, name) is getattr(api, name)
    assert ansz.file_stats is stats.file_stats and ansz.load_file is reader.load_file
    assert ansz.load is reader.load and ansz.load_model_dir is reader.load_model_dir
    assert ansz.save_file is writer.save_file and ansz.save is writer.save
    assert ansz.bench_file is benchmark.bench_file and ansz.sample_files is benchmark.sample_files
    assert issubclass(ansz.CorruptDataError, ansz.AnszError)
    assert issubclass(ansz.FormatError, ansz.AnszError)


def test_api_defines_what_it_documents():
    defined = sorted(n for n, obj in vars(api).items() if not n.startswith("_")
                     and getattr(obj, "__module__", None) == "ansz.api")
    assert defined == API
    keywords = {name: set(inspect.signature(getattr(api, name)).parameters) for name in
                ("compress_file", "compress_stream", "decompress_file", "decompress_stream",
                 "verify_file", "verify_stream", "read_info")}
    assert keywords["compress_file"] == {"src", "dst", "threads", "chunk_size", "level",
                                         "coder", "overwrite", "sync", "strict", "progress",
                                         "base"}
    assert keywords["compress_stream"] == {"ifh", "ofh", "threads", "chunk_size", "level",
                                           "coder", "strict", "progress"}
    assert keywords["decompress_file"] == {"src", "dst", "threads", "overwrite", "sync",
                                           "progress", "base"}
    assert keywords["decompress_stream"] == {"ifh", "ofh", "threads", "progress"}
    assert keywords["verify_file"] == {"path", "original", "threads", "base"}
    assert keywords["verify_stream"] == {"ifh", "original", "threads"}
    assert keywords["read_info"] == {"path"}


def test_import_ansz_loads_neither_numpy_nor_numba():
    code = ("import sys, ansz; ansz.__all__; ansz.AnszError; "
            "print(','.join(m for m in ('numpy', 'numba') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_the_readme_python_examples_run(tmp_path, monkeypatch):
    """Every ```python block of the README, run in order in a directory holding the
    model.safetensors it names (```py blocks are sketches that need a model at hand, such
    as the transformers recipe, and are not run)."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert len(blocks) >= 2
    used = set()
    for block in blocks:
        used |= set(re.findall(r"\bansz\.(\w+)", block))
    assert used <= set(ALL) | {"open"}, used - set(ALL)
    model = {"model.embed_tokens.weight": weights((64, 32), ml_dtypes.bfloat16),
             "model.norm.weight": np.ones(32, np.float32),
             "lm_head.weight": weights((2048, 8), ml_dtypes.bfloat16),
             "a.weight": weights((8, 8), np.float32), "a.bias": np.zeros(8, np.float32)}
    save_file(model, str(tmp_path / "model.safetensors"))
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)
    tensors = namespace["tensors"]
    assert sorted(tensors) == sorted(model)
    assert tensors["model.embed_tokens.weight"].tobytes() == \
        model["model.embed_tokens.weight"].tobytes()
    assert namespace["rows"].tobytes() == model["lm_head.weight"][1000:1064].tobytes()
    assert ansz.load_file(tmp_path / "small.safetensors.ansz").keys() == {"w", "b"}
    assert ansz.load(namespace["blob"])["w"].tolist() == namespace["arrays"]["w"].tolist()
    assert (tmp_path / "restored.safetensors").read_bytes() == \
        (tmp_path / "model.safetensors").read_bytes()
