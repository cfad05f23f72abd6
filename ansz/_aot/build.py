"""Compile ansz's kernels ahead of time: object files of C-callable entries, and their binding.

    python -m ansz._aot.build WORKDIR --library FILENAME [--cpu host] [--jobs N]

Run from the repository root by setup.py's build_ext, which then compiles ``runtime.cpp``
(numba's runtime) and links everything into the library FILENAME. Writes into WORKDIR:
``kernels<i>.o`` (one per worker), ``_kernels_aot.py`` (the binding, see :mod:`ansz._aot`)
and ``build.json`` (``objects``, ``binding``, ``exports``: the symbols the library must
export, ``seconds``). Exits non-zero, with a message, if anything fails; the caller then
installs without the library.

The kernels stay written once, as the @njit functions of :mod:`ansz._kernels`. For each
signature of :mod:`.spec` a generated *entry* takes raw pointers and sizes, wraps them with
``numba.carray``, calls the kernel and stores its results (integers, floats, copies of
returned arrays) into memory the caller passes. Each entry is compiled by numba's JIT
without Python wrappers; its optimized LLVM IR (``Dispatcher.inspect_llvm``, which includes
the kernel and everything it calls) is renamed to the entry's symbol, linked with the
others by llvmlite and emitted as an object for this CPU (``--cpu``). An entry keeps
numba's calling convention: ``int32 entry(void *ret, void **excinfo, args..., int64 *meta,
double *fmeta, [result buffer, capacity]...)``, returning 0, or nonzero if the kernel raised.
Needs numba and llvmlite here, none at run time.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

from . import BINDING_MODULE, BINDING_VERSION, kernel_source_digest
from .spec import RESULT_CAPACITY, SIGNATURES

#: Integer results (and returned arrays' shapes) an entry can store, after meta[0], which is
#: 1 if a returned array did not fit its buffer; and float results.
META_SLOTS = 16
FMETA_SLOTS = 4

#: The exported function that initializes numba's runtime (runtime.cpp).
INIT_SYMBOL = "ansz_kernels_init"

DTYPES = {"u8": "uint8", "u16": "uint16", "u32": "uint32", "u64": "uint64", "i64": "int64"}
SCALARS = {"u32": "uint32", "i64": "int64", "f64": "float64", "b1": "boolean"}

#: /proc/cpuinfo flags that name instruction-set extensions (not "hypervisor" and the like).
ISA_FLAG_PREFIXES = ("sse", "ssse3", "avx", "fma", "bmi", "f16c", "movbe", "abm", "lzcnt",
                     "popcnt", "aes", "pclmul", "sha", "vaes", "vpclmul", "gfni", "adx", "amx",
                     "cx16", "xsave")

#: The flags the x86-64 psABI levels guarantee, for libraries built for one of them.
LEVEL_FLAGS = {
    "x86-64": (),
    "x86-64-v2": ("cx16", "popcnt", "sse4_1", "sse4_2", "ssse3"),
    "x86-64-v3": ("abm", "avx", "avx2", "bmi1", "bmi2", "cx16", "f16c", "fma", "movbe",
                  "popcnt", "sse4_1", "sse4_2", "ssse3", "xsave"),
}


@dataclass(frozen=True)
class Arg:
    """One argument of a signature (:mod:`.spec` notation)."""

    name: str
    dtype: str  #: dtype letters (u8 ... i64, or u32 / i64 / f64 / b1 for a scalar)
    ndim: int  #: 0 for a scalar
    out: bool  #: an array the kernel writes


def parse_signature(params: list[str], sig: tuple[str, ...]) -> list[Arg]:
    """The arguments of ``sig`` for a kernel with parameters ``params``; ValueError if a
    type is not in :mod:`.spec` notation."""
    if len(params) != len(sig):
        raise ValueError(f"{len(sig)} types for the parameters {params}")
    args = []
    for name, text in zip(params, sig):
        t, _, flag = text.partition(" ")
        if t.endswith("]"):
            base, _, dims = t.partition("[")
            ndim = dims.count(":")
            if base not in DTYPES or dims not in (":]", ":,:]") or flag not in ("", "out"):
                raise ValueError(f"bad array type {text!r}")
            args.append(Arg(name, base, ndim, flag == "out"))
        elif t in SCALARS and not flag:
            args.append(Arg(name, t, 0, False))
        else:
            raise ValueError(f"bad type {text!r}")
    return args


# ---------------------------------------------------------------------------------------------
# Entries (in a worker: numba)


def _result_kinds(kernel: str, rtype) -> tuple[bool, list[tuple]]:
    """(is a tuple, [("int",) | ("bool",) | ("float",) | ("array", dtype name, ndim)]) of a
    kernel's numba return type; TypeError for anything else."""
    from numba import types

    is_tuple = isinstance(rtype, types.BaseTuple)
    parts = list(rtype.types) if is_tuple else ([] if rtype == types.none else [rtype])
    kinds = []
    for r in parts:
        if isinstance(r, types.Boolean):
            kinds.append(("bool",))
        elif isinstance(r, types.Integer) and (r.signed or r.bitwidth < 64):
            kinds.append(("int",))
        elif isinstance(r, types.Float):
            kinds.append(("float",))
        elif isinstance(r, types.Array) and r.layout == "C" and r.ndim in (1, 2):
            kinds.append(("array", str(r.dtype), r.ndim))
        else:
            raise TypeError(f"{kernel}: cannot return {r} from the library")
    return is_tuple, kinds


def make_entry(kernel: str, index: int, dispatcher, sig: tuple[str, ...]):
    """(symbol, numba argument types, entry source, binding record) of one signature."""
    from numba import types

    params = list(inspect.signature(dispatcher.py_func).parameters)
    args = parse_signature(params, sig)
    argtys = tuple(types.Array(getattr(types, DTYPES[a.dtype]), a.ndim, "C") if a.ndim
                   else getattr(types, SCALARS[a.dtype]) for a in args)
    dispatcher.compile(argtys)
    is_tuple, results = _result_kinds(kernel, dispatcher.overloads[argtys].signature.return_type)
    arrays = [r for r in results if r[0] == "array"]
    capacity = RESULT_CAPACITY.get(kernel, ())
    if len(capacity) != len(arrays):
        raise ValueError(f"{kernel} returns {len(arrays)} arrays; RESULT_CAPACITY has "
                         f"{len(capacity)} sizes")

    symbol = f"ansz_{kernel}_{index}"
    cparams, ctypes_, call = [], [], []
    for i, a in enumerate(args):
        if a.ndim:
            dims = [f"n{i}_{d}" for d in range(a.ndim)]
            cparams += [f"p{i}", *dims]
            ctypes_ += [types.CPointer(getattr(types, DTYPES[a.dtype]))] + [types.intp] * a.ndim
            call.append(f"carray(p{i}, ({', '.join(dims)},))")
        else:
            cparams.append(f"a{i}")
            ctypes_.append(getattr(types, SCALARS[a.dtype]))
            call.append(f"a{i}")
    cparams += ["meta", "fmeta"]
    ctypes_ += [types.CPointer(types.int64), types.CPointer(types.float64)]
    body = [f"m = carray(meta, ({META_SLOTS},))", f"fm = carray(fmeta, ({FMETA_SLOTS},))",
            f"res = kernel_{kernel}({', '.join(call)})"]
    stored, slot, fslot, j = [], 1, 0, 0
    for k, r in enumerate(results):
        value = f"res[{k}]" if is_tuple else "res"
        if r[0] == "array":
            cparams += [f"r{j}", f"c{j}"]
            ctypes_ += [types.CPointer(getattr(types, r[1])), types.intp]
            body += [f"v{j} = {value}", f"if v{j}.size > c{j}:", "    m[0] = 1", "    return 0",
                     f"o{j} = carray(r{j}, (c{j},))"]
            if r[2] == 1:
                body += [f"for i in range(v{j}.size):", f"    o{j}[i] = v{j}[i]"]
            else:
                body += [f"for i in range(v{j}.shape[0]):",
                         f"    for k in range(v{j}.shape[1]):",
                         f"        o{j}[i * v{j}.shape[1] + k] = v{j}[i, k]"]
            body += [f"m[{slot + d}] = v{j}.shape[{d}]" for d in range(r[2])]
            stored.append(["array", r[1], r[2], slot])
            slot += r[2]
            j += 1
        elif r[0] == "float":
            body.append(f"fm[{fslot}] = np.float64({value})")
            stored.append(["float", fslot])
            fslot += 1
        else:
            body.append(f"m[{slot}] = np.int64({value})")
            stored.append([r[0], slot])
            slot += 1
    if slot > META_SLOTS or fslot > FMETA_SLOTS:
        raise ValueError(f"{kernel}: too many results for the entry's slots")
    body += ["m[0] = 0", "return 0"]
    source = f"def {symbol}({', '.join(cparams)}):\n" + "".join(f"    {ln}\n" for ln in body)
    record = {"kernel": kernel, "symbol": symbol, "signature": list(sig), "params": params,
              "args": [[a.dtype, a.ndim, a.out] for a in args], "results": stored,
              "tuple": is_tuple, "capacity": list(capacity)}
    return symbol, tuple(ctypes_), source, record


def _emit_object(entries: list, path: str, cpu: str) -> None:
    """Compile the entries (symbol, argument types, function) and write one object file."""
    import llvmlite.binding as ll
    from numba import njit

    merged = None
    for symbol, argtys, function in entries:
        dispatcher = njit(nogil=True, no_cpython_wrapper=True, no_cfunc_wrapper=True)(function)
        dispatcher.compile(argtys)
        module = ll.parse_assembly(dispatcher.inspect_llvm(argtys))
        # numba mangles a function's name Itanium-style: <length><name> appears in it.
        own = [f for f in module.functions
               if not f.is_declaration and f"{len(symbol)}{symbol}" in f.name]
        if len(own) != 1:
            raise RuntimeError(f"{symbol}: found {len(own)} functions for it in numba's IR")
        own[0].name = symbol
        own[0].linkage = ll.Linkage.external
        for value in (*module.functions, *module.global_variables):
            if (value.name != symbol and not value.is_declaration
                    and value.linkage not in (ll.Linkage.internal, ll.Linkage.private)):
                value.visibility = ll.Visibility.hidden  # the library exports entries only
        if merged is None:
            merged = module
        else:
            merged.link_in(module)
    merged.verify()
    target = ll.Target.from_triple(merged.triple)
    if cpu == "host":
        machine = target.create_target_machine(cpu=ll.get_host_cpu_name(),
                                               features=ll.get_host_cpu_features().flatten(),
                                               opt=3, reloc="pic", codemodel="default")
    else:
        machine = target.create_target_machine(cpu=cpu, opt=3, reloc="pic",
                                               codemodel="default")
    with open(path, "wb") as f:
        f.write(machine.emit_object(merged))


def run_worker(kernels: list[str], path: str, cpu: str) -> None:
    """Compile the entries of ``kernels`` into the object file ``path``; their binding
    records, the kernel constants and the times go to ``path + ".json"``."""
    import numpy as np
    from numba import carray

    from .. import _kernels

    t0, c0 = time.perf_counter(), time.process_time()
    namespace = {"__name__": "ansz_aot_entries", "carray": carray, "np": np}
    entries, records = [], []
    for kernel in kernels:
        dispatcher = getattr(_kernels, kernel)
        namespace[f"kernel_{kernel}"] = dispatcher
        for index, sig in enumerate(SIGNATURES[kernel]):
            symbol, argtys, source, record = make_entry(kernel, index, dispatcher, sig)
            exec(compile(source, f"<entry {symbol}>", "exec"), namespace)
            entries.append((symbol, argtys, namespace[symbol]))
            records.append(record)
    t1 = time.perf_counter()
    _emit_object(entries, path, cpu)
    constants = {k: v for k, v in vars(_kernels).items()
                 if k.isupper() and isinstance(v, (int, tuple))}
    with open(path + ".json", "w") as f:
        json.dump({"records": records, "constants": constants,
                   "seconds": {"compile": t1 - t0, "emit": time.perf_counter() - t1,
                               "cpu": time.process_time() - c0}}, f)


# ---------------------------------------------------------------------------------------------
# The binding (numba-free)


_CTYPES = {"u32": "c_uint32", "i64": "c_int64", "f64": "c_double", "b1": "c_bool"}
_SCALAR_CHECK = {"u32": "type({0}) is _u32",
                 "i64": "(type({0}) is int or type({0}) is _i64)",
                 "f64": "(type({0}) is float or type({0}) is _f64)",
                 "b1": "(type({0}) is bool or type({0}) is _bool)"}
#: numpy's flag bits: C_CONTIGUOUS | ALIGNED, and WRITEABLE too for an array written.
_IN_FLAGS, _OUT_FLAGS = 0x0001 | 0x0100, 0x0001 | 0x0100 | 0x0400


def _arg_check(name: str, dtype: str, ndim: int, out: bool) -> str:
    if not ndim:
        return _SCALAR_CHECK[dtype].format(name)
    flags = _OUT_FLAGS if out else _IN_FLAGS
    return (f"type({name}) is _nd and {name}.ndim == {ndim} and ({name}.dtype is _d_{dtype} "
            f"or {name}.dtype == _d_{dtype}) and {name}.flags.num & {flags} == {flags}")


def _kernel_source(kernel: str, records: list[dict]) -> tuple[list[str], list[str]]:
    """(wrapper function lines, bind() lines) of one kernel."""
    params = records[0]["params"]
    plist = ", ".join(params)
    lines = [f"def {kernel}({plist}):",
             f'    """{kernel} of ansz._kernels, in the library for {len(records)} '
             f'signature{"s" if len(records) > 1 else ""}; other calls run the JIT kernel."""',
             "    s = _slots"]
    bind = []
    for e, rec in enumerate(records):
        fn = f"_{rec['symbol']}"
        argtypes, cargs = ["_ct.c_void_p", "_ct.c_void_p"], ["s.ret", "s.exc"]
        checks = []
        for name, (dtype, ndim, out) in zip(params, rec["args"]):
            checks.append(_arg_check(name, dtype, ndim, out))
            if ndim:
                argtypes += ["_ct.c_void_p"] + ["_ct.c_ssize_t"] * ndim
                cargs += [f"_addr(id({name}) + _DATA).value"] + [
                    f"{name}.shape[{d}]" for d in range(ndim)]
            else:
                argtypes.append(f"_ct.{_CTYPES[dtype]}")
                cargs.append(name)
        argtypes += ["_ct.c_void_p", "_ct.c_void_p"]
        cargs += ["s.meta", "s.fmeta"]
        alloc, values, j = [], [], 0
        for r in rec["results"]:
            if r[0] == "array":
                alloc.append(f"r{j} = _np.empty({rec['capacity'][j]}, _np.{r[1]})")
                argtypes += ["_ct.c_void_p", "_ct.c_ssize_t"]
                cargs += [f"_addr(id(r{j}) + _DATA).value", f"r{j}.size"]
                if r[2] == 1:
                    values.append(f"r{j}[:m.item({r[3]})]")
                else:
                    values.append(f"r{j}[:m.item({r[3]}) * m.item({r[3] + 1})].reshape("
                                  f"m.item({r[3]}), m.item({r[3] + 1}))")
                j += 1
            elif r[0] == "float":
                values.append(f"s.f.item({r[1]})")
            elif r[0] == "bool":
                values.append(f"bool(m.item({r[1]}))")
            else:
                values.append(f"m.item({r[1]})")
        if rec["tuple"]:
            result = "(" + ", ".join(values) + ("," if len(values) == 1 else "") + ")"
        else:
            result = values[0] if values else "None"
        cond = " and\n            ".join(checks) or "True"
        lines.append(f"    {'if' if e == 0 else 'elif'} ({cond}):")
        if alloc:  # sizes from the caller's arguments: if one cannot be made, the JIT decides
            lines.append("        try:")
            lines += [f"            {a}" for a in alloc]
            lines += ["        except Exception:", f"            return _jit({kernel!r})({plist})"]
        lines.append(f"        if {fn}({', '.join(cargs)}) == 0:")
        lines.append("            m = s.m")
        lines.append("            if m.item(0) == 0:")
        lines.append(f"                return {result}")
        bind += [f"    {fn} = lib.{rec['symbol']}",
                 f"    {fn}.restype = _ct.c_int32",
                 f"    {fn}.argtypes = [{', '.join(argtypes)}]"]
    lines.append(f"    return _jit({kernel!r})({plist})")
    return lines, bind


def binding_source(records: list[dict], constants: dict, info: dict) -> str:
    """The binding module (see :mod:`ansz._aot`) for the entries ``records``."""
    by_kernel: dict[str, list[dict]] = {}
    for rec in records:
        by_kernel.setdefault(rec["kernel"], []).append(rec)
    kernels = sorted(by_kernel)
    functions, bind_lines = [], []
    for kernel in kernels:
        lines, bind = _kernel_source(kernel, by_kernel[kernel])
        functions.append("\n".join(lines))
        bind_lines += bind
    symbols = [f"_{rec['symbol']}" for k in kernels for rec in by_kernel[k]]
    entries = {k: [tuple(rec["signature"]) for rec in by_kernel[k]] for k in kernels}
    head = f'''"""ctypes binding of ansz's ahead-of-time kernel library, which ansz.kernels loads.

Generated by ansz._aot.build from ansz/_kernels/ (numba {info["numba"]}, CPU {info["cpu"]}): do
not edit.
"""

import ctypes as _ct
import threading as _threading

import numpy as _np

BINDING_VERSION = {BINDING_VERSION!r}
SOURCE_DIGEST = {info["source_digest"]!r}
LIBRARY = {info["library"]!r}
CPU_FLAGS = {tuple(info["cpu_flags"])!r}
CONSTANTS = {constants!r}
ENTRIES = {entries!r}

_nd = _np.ndarray
_u32, _i64, _f64, _bool = _np.uint32, _np.int64, _np.float64, _np.bool_
#: An array's data pointer is read where numpy keeps it, the first field after the object
#: header (PyArrayObject), ~10x faster than a.ctypes.data; bind() checks it on a few arrays.
_addr = _ct.c_void_p.from_address
_DATA = object.__basicsize__
''' + "".join(f"_d_{k} = _np.dtype(_np.{v})\n" for k, v in DTYPES.items()) + f'''

class _Slots(_threading.local):
    """Per-thread memory an entry writes: its return value, its exception info, the integer
    results (m[0]: 1 if a returned array did not fit its buffer) and the float results."""

    def __init__(self):
        self.words = _np.zeros(2 + {META_SLOTS} + {FMETA_SLOTS}, _np.int64)
        base = self.words.ctypes.data
        self.ret, self.exc = base, base + 8
        self.meta, self.fmeta = base + 16, base + {8 * (2 + META_SLOTS)}
        self.m = self.words[2:{2 + META_SLOTS}]
        self.f = self.words[{2 + META_SLOTS}:].view(_np.float64)


_slots = _Slots()


def bind(lib, jit):
    """Bind the entries of ``lib`` (the loaded library) and initialize its runtime; ``jit(name)``
    gives the JIT kernel for the calls the library does not serve."""
    global _jit, {", ".join(symbols)}
    probes = (_np.zeros(3), _np.arange(10, dtype=_np.uint16)[3:], _np.empty((4, 2), _np.uint8)[1])
    if any(_addr(id(a) + _DATA).value != a.ctypes.data for a in probes):
        raise OSError("numpy's arrays do not keep their data pointer where the binding reads it")
    _jit = jit
{chr(10).join(bind_lines)}
    if lib.{INIT_SYMBOL}() != 0:
        raise OSError("the kernel library's runtime did not initialize")
'''
    return head + "\n\n" + "\n\n\n".join(functions) + "\n"


# ---------------------------------------------------------------------------------------------
# The build


def cpu_flags(cpu: str) -> list[str]:
    """The CPU flags a library built for ``cpu`` may need: the build host's instruction-set
    flags (/proc/cpuinfo) for "host", a psABI level's flags, else none (not checked)."""
    if cpu in LEVEL_FLAGS:
        return list(LEVEL_FLAGS[cpu])
    if cpu != "host":
        return []
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return sorted(x for x in line.split(":", 1)[1].split()
                                  if x.startswith(ISA_FLAG_PREFIXES))
    except OSError:
        pass
    return []


def _worker_env(cpu: str, cache: str) -> dict:
    """The environment of a worker: none of the caller's NUMBA_* settings (a debugging
    NUMBA_BOUNDSCHECK or NUMBA_OPT must not shape the library), a private numba cache
    (a function loaded from a cache has no IR to inspect) and the target CPU."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_")}
    env["NUMBA_CACHE_DIR"] = cache
    if cpu != "host":
        env["NUMBA_CPU_NAME"] = cpu
    return env


def build(workdir: str, library: str, cpu: str = "host", jobs: int = 2) -> dict:
    """Compile every kernel signature into object files in ``workdir`` with ``jobs``
    workers, write the binding there, and return the build.json record."""
    t0 = time.perf_counter()
    os.makedirs(workdir, exist_ok=True)
    names = sorted(SIGNATURES, key=lambda k: -len(SIGNATURES[k]))  # similar work per group
    jobs = max(1, min(jobs, len(names)))
    groups = [names[i::jobs] for i in range(jobs)]
    cache = tempfile.mkdtemp(prefix="ansz-aot-numba-")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    objects, procs = [], []
    try:
        for i, group in enumerate(groups):
            obj = os.path.join(workdir, f"kernels{i}.o")
            objects.append(obj)
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "ansz._aot.build", workdir, "--worker", obj,
                 "--kernels", ",".join(group), "--cpu", cpu],
                cwd=root, env=_worker_env(cpu, os.path.join(cache, str(i)))))
        failed = [p.args for p in procs if p.wait() != 0]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        shutil.rmtree(cache, ignore_errors=True)
    if failed:
        raise RuntimeError(f"{len(failed)} of {len(procs)} workers failed")
    parts = []
    for obj in objects:
        with open(obj + ".json") as f:
            parts.append(json.load(f))
    constants = {k: tuple(v) if isinstance(v, list) else v  # JSON made tuples lists
                 for k, v in parts[0]["constants"].items()}
    records = [r for part in parts for r in part["records"]]
    info = {"numba": _numba_version(), "cpu": cpu, "cpu_flags": cpu_flags(cpu),
            "library": library, "source_digest": kernel_source_digest()}
    with open(os.path.join(workdir, BINDING_MODULE + ".py"), "w") as f:
        f.write(binding_source(records, constants, info))
    result = {"objects": objects, "binding": os.path.join(workdir, BINDING_MODULE + ".py"),
              "exports": [INIT_SYMBOL] + [r["symbol"] for r in records],
              "entries": len(records), "seconds": time.perf_counter() - t0,
              "workers": [p["seconds"] for p in parts]}
    with open(os.path.join(workdir, "build.json"), "w") as f:
        json.dump(result, f, indent=1)
    return result


def _numba_version() -> str:
    """numba's version, from its installed metadata (without importing numba)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("numba")
    except PackageNotFoundError:
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ansz._aot.build",
                                 description=__doc__.split("\n")[0])
    ap.add_argument("workdir")
    ap.add_argument("--library", help="the library's file name (recorded in the binding)")
    ap.add_argument("--cpu", default="host",
                    help="LLVM CPU name to compile for: host (default), x86-64-v3, ...")
    ap.add_argument("--jobs", type=int, default=min(os.cpu_count() or 1, 4))
    ap.add_argument("--worker", help=argparse.SUPPRESS)  # a worker's object file
    ap.add_argument("--kernels", help=argparse.SUPPRESS)  # a worker's kernels
    opts = ap.parse_args(argv)
    if opts.worker:
        run_worker(opts.kernels.split(","), opts.worker, opts.cpu)
        return 0
    if not opts.library:
        ap.error("--library is required")
    try:
        result = build(opts.workdir, opts.library, opts.cpu, opts.jobs)
    except Exception as exc:  # reported, and the install goes on without the library
        print(f"ansz._aot.build: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    slowest = max(result["workers"], key=lambda w: w["compile"] + w["emit"])
    print(f"ansz._aot.build: {result['entries']} entries in {result['seconds']:.1f} s "
          f"({len(result['workers'])} workers; slowest: compile {slowest['compile']:.1f} s, "
          f"emit {slowest['emit']:.1f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
