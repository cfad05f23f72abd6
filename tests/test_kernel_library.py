"""The ahead-of-time kernel library (ansz.kernels, ansz._aot) against numba's JIT kernels.

- The kernel modules are self-contained, as numba's cache needs.
- Containers compressed with the library and with the JIT (ANSZ_NO_AOT=1, a subprocess) are
  byte-identical, for every golden original (every dtype, GGML block type, stream method,
  field width; levels 1 and 2; every coder) and a larger file at both levels with every
  coder; each decodes with the other.
- Every kernel call those round trips (and ``ansz stats``, ``ansz.load_file``) make is
  served by the library: no call goes to the JIT, every call matches a signature of
  ansz._aot.spec, no argument declared read-only changes, and every signature of the spec
  is used.
- A process without the library (absent, stale, for another CPU, ANSZ_NO_AOT=1) falls back
  to the JIT and gives the same bytes; with the library, compressing and decompressing
  never imports numba.

Tests that need the library skip when it was not built (see ``ansz.kernels.fallback_reason``;
.ci/run requires it).
"""

from __future__ import annotations

import ast
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
from safetensors.numpy import save_file

import ansz
from ansz import kernels, streams
from ansz._aot import spec
from ansz.options import CODERS

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden"
sys.path.insert(0, str(GOLDEN))

import make_golden as mg  # noqa: E402

needs_library = pytest.mark.skipif(not kernels.uses_library(),
                                   reason=f"no kernel library: {kernels.fallback_reason()}")

LETTERS = {np.dtype(np.uint8): "u8", np.dtype(np.uint16): "u16", np.dtype(np.uint32): "u32",
           np.dtype(np.uint64): "u64", np.dtype(np.int64): "i64"}


def run_python(code: str, *args: str, env: dict | None = None, timeout: int = 900) -> str:
    """Run ``code`` with ``args`` in a fresh interpreter at the repository root; returns its
    stdout."""
    proc = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


# ---------------------------------------------------------------------------------------------
# The kernel modules


def test_kernel_modules_are_self_contained():
    # numba's cache sees only a kernel's own file: every global a function of a kernel
    # module reads is defined in that module, or is numpy, numba (njit, types, intrinsic),
    # llvmlite's IR builder or a builtin.
    import builtins

    modules = sorted((ROOT / "ansz" / "_kernels").glob("[a-z]*.py"))
    assert {m.stem for m in modules} == {"delta", "fields", "prefix", "rans"}
    for path in modules:
        tree = ast.parse(path.read_text())
        defined = set(dir(builtins))
        for node in tree.body:
            if isinstance(node, ast.ImportFrom):  # from numba(.extending) / llvmlite / _numba_env
                assert (node.level, node.module) in (
                    (0, "numba"), (0, "numba.extending"), (0, "llvmlite"), (2, None)), ast.dump(node)
                assert node.level == 0 or [a.name for a in node.names] == ["_numba_env"]
                defined |= {a.asname or a.name for a in node.names}
            elif isinstance(node, ast.Import):
                assert [(a.name, a.asname) for a in node.names] == [("numpy", "np")]
                defined.add("np")
            elif isinstance(node, ast.FunctionDef):
                defined.add(node.name)
            elif isinstance(node, ast.Assign):
                defined |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        for fn in (n for n in tree.body if isinstance(n, ast.FunctionDef)):
            names = [n for n in ast.walk(fn) if isinstance(n, ast.Name)]
            inner = [n for n in ast.walk(fn) if isinstance(n, (ast.FunctionDef, ast.Lambda))]
            local = {a.arg for f in inner for a in f.args.args} | {
                f.name for f in inner if isinstance(f, ast.FunctionDef)} | {
                n.id for n in names if isinstance(n.ctx, ast.Store)}
            free = {n.id for n in names if isinstance(n.ctx, ast.Load)} - local - defined
            assert not free, f"{path.name}: {fn.name} reads {sorted(free)} from outside"


# ---------------------------------------------------------------------------------------------
# The corpus: golden originals and a larger file


def medium_original() -> bytes:
    """~1.6 MB of every float and 8-bit dtype, in several 256 KiB chunks per tensor."""
    r = lambda k: mg.rng(7, k)  # noqa: E731
    return mg.safetensors_file([
        ("w.bf16", "BF16", (512, 256), mg.bf16(r(1).standard_normal((512, 256)) * 0.02).tobytes()),
        ("norm.bf16", "BF16", (16, 512), mg.stacked_norms(r(2), 16, 512).tobytes()),
        ("w.f16", "F16", (256, 256), (r(3).standard_normal((256, 256)) * 0.02).astype(
            np.float16).tobytes()),
        ("w.f32", "F32", (256, 256), (r(4).standard_normal((256, 256)) * 0.02).astype(
            np.float32).tobytes()),
        ("w.f64", "F64", (128, 128), (1 + 0.01 * r(5).standard_normal((128, 128))).tobytes()),
        # scaled as real fp8 weights are: high-entropy bytes, a 14-bit table (wide stream)
        ("w.f8", "F8_E4M3", (256, 512), (r(6).standard_normal((256, 512)) * 0.02 / 0.08 * 448
                                         ).astype(ml_dtypes.float8_e4m3fn).tobytes()),
        ("ids.u8", "U8", (1 << 16,), mg.paired_bytes(r(7), 1 << 16, 0.8).tobytes()),
        ("tail.u8", "U8", (1 << 16,), mg.long_tail_bytes(r(8), 1 << 16, 0.02).tobytes()),
    ])


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> list[dict]:
    """Jobs {name, original (path), options}: the golden containers today's writer makes,
    and the medium file at levels 1 and 2 with every coder."""
    d = tmp_path_factory.mktemp("corpus")
    jobs, made = [], {}
    for g in mg.goldens():
        if g.earlier_writer is not None:
            continue
        key = g.original.__name__
        if key not in made:
            made[key] = d / f"{key}.bin"
            made[key].write_bytes(g.original())
        jobs.append({"name": g.name, "original": str(made[key]), "options": mg.options(g)})
    medium = d / "medium.bin"
    medium.write_bytes(medium_original())
    for level in (1, 2):
        for coder in CODERS:
            jobs.append({"name": f"medium-l{level}-{coder}", "original": str(medium),
                         "options": {"api": "compress_file", "original_name": "medium.safetensors",
                                     "chunk_size": 1 << 18, "level": level, "coder": coder,
                                     "threads": 1}})
    return jobs


def compress_job(job: dict, workdir: Path) -> bytes:
    return mg.compress(Path(job["original"]).read_bytes(), job["options"], workdir)


def decompress(blob: bytes) -> bytes:
    out = io.BytesIO()
    ansz.decompress_stream(io.BytesIO(blob), out, threads=1)
    return out.getvalue()


def test_corpus_covers_every_level_and_coder(corpus):
    options = [j["options"] for j in corpus]
    assert {o["level"] for o in options} == {1, 2}
    assert {o["coder"] for o in options} == {"auto", "rans", "huffman", "qlc"}
    assert any(j["name"].endswith(".gguf.ansz") for j in corpus)


# The JIT side of the parity test: compress every job, decode the library's containers.
JIT_SIDE = r"""
import io, json, sys
from pathlib import Path
sys.path.insert(0, "tests/golden")
import make_golden as mg
import ansz
from ansz import kernels
assert not kernels.uses_library(), kernels.fallback_reason()
jobs = json.loads(Path(sys.argv[1]).read_text())
work = Path(sys.argv[2])
decoded = {}
for job in jobs:
    original = Path(job["original"]).read_bytes()
    Path(job["jit"]).write_bytes(mg.compress(original, job["options"], work))
    out = io.BytesIO()
    ansz.decompress_stream(io.BytesIO(Path(job["library"]).read_bytes()), out, threads=1)
    decoded[job["name"]] = out.getvalue() == original
print(json.dumps({"decoded": decoded, "numba": "numba" in sys.modules}))
"""


@needs_library
def test_library_and_jit_write_the_same_containers(corpus, tmp_path):
    jobs = []
    for job in corpus:
        lib, jit = tmp_path / f"{job['name']}.lib", tmp_path / f"{job['name']}.jit"
        lib.write_bytes(compress_job(job, tmp_path))
        jobs.append({**job, "library": str(lib), "jit": str(jit)})
    (tmp_path / "jobs.json").write_text(json.dumps(jobs))
    work = tmp_path / "work"
    work.mkdir()
    result = json.loads(run_python(JIT_SIDE, str(tmp_path / "jobs.json"), str(work),
                                   env={"ANSZ_NO_AOT": "1"}))
    assert result["numba"]
    for job in jobs:
        original = Path(job["original"]).read_bytes()
        lib, jit = Path(job["library"]).read_bytes(), Path(job["jit"]).read_bytes()
        assert lib == jit, f"{job['name']}: the library's container differs from the JIT's"
        assert result["decoded"][job["name"]], f"{job['name']}: the JIT misdecodes it"
        assert decompress(jit) == original, f"{job['name']}: the library misdecodes it"


# ---------------------------------------------------------------------------------------------
# Every call the product makes is in the library


def call_signature(args) -> tuple[str, ...]:
    """The spec notation of a call's argument types (without the ``out`` marks)."""
    sig = []
    for a in args:
        if isinstance(a, np.ndarray):
            sig.append(f"{LETTERS.get(a.dtype, a.dtype.str)}[{','.join(':' * a.ndim)}]")
        elif isinstance(a, (bool, np.bool_)):
            sig.append("b1")
        elif isinstance(a, np.uint32):
            sig.append("u32")
        elif isinstance(a, (int, np.int64)):
            sig.append("i64")
        elif isinstance(a, (float, np.float64)):
            sig.append("f64")
        else:
            sig.append(type(a).__name__)
    return tuple(sig)


def fine_tune_pair() -> tuple[dict, dict]:
    """(base, fine-tuned) tensors of fp8, bf16 and fp32, each value moved a little."""
    rng = np.random.default_rng(11)
    base, tuned = {}, {}
    for name, t in (("f8", ml_dtypes.float8_e4m3fn), ("bf16", ml_dtypes.bfloat16),
                    ("f32", np.float32)):
        w = rng.standard_normal(50_000) * 0.05
        base[name] = w.astype(t)
        tuned[name] = (w * (1 + 0.05 * rng.standard_normal(w.size))).astype(t)
    return base, tuned


@needs_library
def test_every_kernel_call_is_served_by_the_library(corpus, tmp_path, monkeypatch):
    declared = {k: {tuple(t.split()[0] for t in s): s for s in sigs}
                for k, sigs in spec.SIGNATURES.items()}
    used, problems = set(), []

    def recorder(name, kernel):
        def call(*args):
            sig = call_signature(args)
            full = declared[name].get(sig)
            if full is None:
                problems.append(f"{name}{sig}: no such signature in the library")
                return kernel(*args)
            before = [a.copy() if isinstance(a, np.ndarray) and not t.endswith(" out") else None
                      for a, t in zip(args, full)]
            result = kernel(*args)
            for i, (a, b) in enumerate(zip(args, before)):
                if b is not None and not np.array_equal(a, b):
                    problems.append(f"{name}{sig}: argument {i} is written but not declared out")
            used.add((name, full))
            return result
        return call

    for name in spec.SIGNATURES:
        monkeypatch.setattr(kernels, name, recorder(name, getattr(kernels, name)))
    before = kernels.jit_calls()
    for job in corpus:
        original = Path(job["original"]).read_bytes()
        assert decompress(compress_job(job, tmp_path)) == original, job["name"]
    # forms today's writer no longer makes (the earlier-writer golden files) still decode
    for golden in sorted(GOLDEN.glob("earlier_*.ansz")):
        decompress(golden.read_bytes())
    # ansz stats and the per-tensor reader, on the larger file
    medium = tmp_path / "medium.safetensors"
    medium.write_bytes(medium_original())
    assert ansz.api.file_stats(medium).tensors
    ansz.compress_file(medium, tmp_path / "medium.safetensors.ansz", chunk_size=1 << 18)
    assert len(ansz.load_file(tmp_path / "medium.safetensors.ansz")) == 8
    # a wide stream coded on its own: what chunks take where the one-call coding gives up
    skewed = np.random.default_rng(5).geometric(0.3, streams.WIDE_MIN).astype(np.uint8)
    assert streams.decode_stream(streams.encode_stream(skewed), skewed.size).tobytes() == \
        skewed.tobytes()
    # delta chunks against a base, for elements of 1, 2 and 4 bytes
    base_tensors, tuned = fine_tune_pair()
    save_file(base_tensors, str(tmp_path / "base.safetensors"))
    save_file(tuned, str(tmp_path / "tuned.safetensors"))
    ansz.compress_file(tmp_path / "tuned.safetensors", tmp_path / "tuned.ansz",
                       base=tmp_path / "base.safetensors")
    ansz.decompress_file(tmp_path / "tuned.ansz", tmp_path / "tuned.out",
                         base=tmp_path / "base.safetensors")
    assert (tmp_path / "tuned.out").read_bytes() == (tmp_path / "tuned.safetensors").read_bytes()
    assert not problems, "\n".join(sorted(set(problems)))
    assert kernels.jit_calls() == before, "calls the library passed to the JIT"
    unused = {(k, s) for k, sigs in spec.SIGNATURES.items() for s in sigs} - used
    assert not unused, f"signatures no round trip uses: {sorted(unused)}"


@needs_library
def test_library_passes_to_the_jit_what_it_cannot_serve():
    elems = np.arange(100, dtype=np.uint16)
    before = kernels.jit_calls().get("field_histogram", 0)
    with pytest.raises(ZeroDivisionError):  # step 0: the kernel raised; the JIT's exception
        kernels.field_histogram(elems, np.uint32(0), np.int64(8), np.int64(0))
    assert kernels.jit_calls()["field_histogram"] == before + 1
    strided = np.arange(64, dtype=np.uint8)[::2]  # not contiguous: no library signature
    table = np.zeros(65536, np.uint32)
    assert np.array_equal(kernels.code_histogram(strided, table),
                          np.bincount(strided, minlength=256))
    assert kernels.jit_calls()["code_histogram"] >= 1
    freq = np.array([3, 200], np.uint32)
    readonly = np.zeros(8, np.uint8)
    readonly.flags.writeable = False
    with pytest.raises(Exception, match="readonly|read-only"):
        kernels.write_varints(freq, readonly)  # the library would write: the JIT refuses
    assert not readonly.any()


def test_facade_names_are_the_jit_namespace():
    # Every kernel and constant of ansz._kernels is reachable through the facade, with the
    # same values for the constants.
    from ansz import _kernels

    names = [n for n in vars(_kernels) if not n.startswith("_")
             and (n.isupper() or hasattr(getattr(_kernels, n), "py_func"))]
    assert set(spec.SIGNATURES) <= set(names)
    for n in names:
        assert hasattr(kernels, n), n
        if n.isupper():
            assert getattr(kernels, n) == getattr(_kernels, n), n


# ---------------------------------------------------------------------------------------------
# Without the library: the JIT, the same bytes


# Compresses a small model and bytes at both levels (stdout: sha256 of each container, the
# fallback reason, whether numba was imported, whether each round trip was exact).
ROUND_TRIP = r"""
import hashlib, io, json, sys
import numpy as np
import ansz
from ansz import kernels
rng = np.random.default_rng(5)
sys.path.insert(0, "tests/golden")
import make_golden as mg
model = mg.safetensors_file([
    ("w", "BF16", (64, 128), mg.bf16(rng.standard_normal((64, 128)) * 0.02).tobytes()),
    ("b", "F32", (256,), (rng.standard_normal(256) * 0.02).astype(np.float32).tobytes()),
    ("ids", "U8", (4096,), mg.skewed_bytes(rng, 4096, 0.2).tobytes())])
digests, exact = [], True
for data in (model, mg.skewed_bytes(rng, 20000, 0.1).tobytes()):
    for level in (1, 2):
        for coder in ("auto", "huffman", "qlc"):
            out = io.BytesIO()
            ansz.compress_stream(io.BytesIO(data), out, level=level, coder=coder, threads=1,
                                 chunk_size=8192)
            back = io.BytesIO()
            ansz.decompress_stream(io.BytesIO(out.getvalue()), back, threads=1)
            exact &= back.getvalue() == data
            digests.append(hashlib.sha256(out.getvalue()).hexdigest())
print(json.dumps({"reason": kernels.fallback_reason(), "numba": "numba" in sys.modules,
                  "exact": exact, "digests": digests}))
"""

#: Fallback cases: (code run before ansz.kernels loads, environment, expected reason).
FALLBACKS = {
    "disabled": ("", {"ANSZ_NO_AOT": "1"}, "ANSZ_NO_AOT is set"),
    "absent": ("import sys; sys.modules['ansz._kernels_aot'] = None", {},
               "no ahead-of-time kernel library"),
    "stale": ("import ansz._kernels_aot as b; b.SOURCE_DIGEST = '0' * 32", {},
              "built from other kernel sources"),
    "missing file": ("import ansz._kernels_aot as b; b.LIBRARY = 'no-such-library.so'", {},
                     "cannot load the kernel library"),
    "other CPU": ("import ansz._kernels_aot as b; b.CPU_FLAGS = ('no_such_cpu_flag',)", {},
                  "this CPU lacks: no_such_cpu_flag"),
    "other binding": ("import ansz._kernels_aot as b; b.BINDING_VERSION = -1", {},
                      "another version of ansz"),
}


@pytest.fixture(scope="module")
def reference_digests() -> list[str]:
    """ROUND_TRIP's containers as this environment makes them (with the library if built)."""
    result = json.loads(run_python(ROUND_TRIP))
    assert result["exact"] and result["reason"] == kernels.fallback_reason()
    return result["digests"]


@pytest.mark.parametrize("case", sorted(FALLBACKS))
def test_without_the_library_the_jit_gives_the_same_bytes(case, reference_digests):
    prelude, env, reason = FALLBACKS[case]
    if prelude.startswith("import ansz._kernels_aot") and not kernels.uses_library():
        pytest.skip(f"no kernel library to make stale: {kernels.fallback_reason()}")
    result = json.loads(run_python(prelude + "\n" + ROUND_TRIP, env=env))
    assert reason in (result["reason"] or ""), result["reason"]
    assert result["numba"] and result["exact"]
    assert result["digests"] == reference_digests


NO_NUMBA = r"""
import io, sys
import numpy as np
import ansz.api as api
from ansz import cli, kernels
assert kernels.uses_library(), kernels.fallback_reason()
src, dst, back = sys.argv[1], sys.argv[1] + ".ansz", sys.argv[1] + ".back"
data = open(src, "rb").read()
for level in (1, 2):
    for coder in ("auto", "rans", "huffman", "qlc"):
        out = io.BytesIO()
        api.compress_stream(io.BytesIO(data), out, level=level, coder=coder, chunk_size=4096)
        restored = io.BytesIO()
        api.decompress_stream(io.BytesIO(out.getvalue()), restored)
        assert restored.getvalue() == data
for argv in (["compress", "-f", "-q", src], ["decompress", "-f", "-q", dst, "-o", back]):
    try:
        cli.main(argv)
    except SystemExit as e:
        assert not e.code, e.code
assert open(back, "rb").read() == data
print(",".join(m for m in ("numba", "llvmlite") if m in sys.modules) or "none")
"""


@needs_library
def test_with_the_library_numba_is_never_imported(tmp_path):
    src = tmp_path / "m.safetensors"
    src.write_bytes(mg.small_original())
    assert run_python(NO_NUMBA, str(src)).strip() == "none"
