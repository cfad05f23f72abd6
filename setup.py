"""Build ansz's ahead-of-time kernel library while building the package (pip install . / -e .).

Everything else is in pyproject.toml. The library is an optional extension: if it cannot be
built here (no C++ compiler, a numba without the APIs the build uses, any error), a warning
is printed, the install goes on without it, and ansz runs its kernels by numba's JIT.
Environment: ANSZ_AOT=0 skips the library; ANSZ_AOT_CPU picks the CPU it is compiled for
("host", the default: this machine's; "x86-64-v3" for a wheel meant for other machines).
"""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = os.path.dirname(os.path.abspath(__file__))
LIBRARY_EXTENSION = "ansz._kernels_aot_lib"  # the library (ansz/_aot/__init__.py)
BINDING = "_kernels_aot.py"  # its binding, beside it: ansz._aot.BINDING_MODULE
RUNTIME_SOURCE = os.path.join("ansz", "_aot", "runtime.cpp")


class BuildKernelLibrary(build_ext):
    """build_ext that builds the kernel library (ansz/_aot/build.py, in a subprocess so
    numba stays out of this process) and puts its binding beside it."""

    def run(self):
        try:
            super().run()
        except Exception as exc:  # e.g. no compiler toolchain configured at all
            self._warn(f"{type(exc).__name__}: {exc}")

    def build_extension(self, ext):
        if ext.name != LIBRARY_EXTENSION:
            return super().build_extension(ext)
        target = os.path.abspath(self.get_ext_fullpath(ext.name))
        binding = os.path.join(os.path.dirname(target), BINDING)
        for stale in (target, binding):  # from an earlier build in the same directory
            if os.path.exists(stale):
                os.remove(stale)
        if os.environ.get("ANSZ_AOT", "1") == "0":
            print("ansz: ANSZ_AOT=0: no kernel library; numba compiles the kernels at first use")
            return
        start = time.perf_counter()
        try:
            self._build_library(target, binding)
        except Exception as exc:
            for partial in (target, binding):
                if os.path.exists(partial):
                    os.remove(partial)
            self._warn(f"{type(exc).__name__}: {exc}")
            return
        print(f"ansz: kernel library built in {time.perf_counter() - start:.1f} s: {target}")

    def _build_library(self, target, binding):
        numba = importlib.util.find_spec("numba")
        if numba is None:
            raise RuntimeError("numba is not installed where the package is built")
        work = os.path.abspath(os.path.join(self.build_temp, "ansz-kernels"))
        shutil.rmtree(work, ignore_errors=True)
        # numba's runtime first: without a compiler this fails at once, not after the kernels.
        unix = self.compiler.compiler_type == "unix"
        runtime = self.compiler.compile(
            [RUNTIME_SOURCE], output_dir=work,
            include_dirs=[os.path.join(numba.submodule_search_locations[0], "core", "runtime")],
            extra_postargs=["-O2", "-fvisibility=hidden"] if unix else ["/O2", "/EHsc"])
        cmd = [sys.executable, "-m", "ansz._aot.build", work, "--library",
               os.path.basename(target), "--cpu", os.environ.get("ANSZ_AOT_CPU", "host")]
        if subprocess.run(cmd, cwd=ROOT).returncode != 0:
            raise RuntimeError("compiling the kernels failed (see above)")
        with open(os.path.join(work, "build.json")) as f:
            built = json.load(f)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        self.compiler.link_shared_object(
            built["objects"] + runtime, target, libraries=["m"] if unix else [],
            export_symbols=built["exports"], target_lang="c++")
        shutil.copyfile(built["binding"], binding)  # last: no binding without its library

    def _warn(self, why):
        print(f"ansz: WARNING: the kernel library was not built ({why}); ansz works without "
              f"it, but numba compiles the kernels at first use (about 30 s, once)",
              file=sys.stderr)

    def _library_files(self):
        """(built, in place) paths of the library: in the build directory and, for editable
        installs, in the source tree."""
        filename = self.get_ext_filename(LIBRARY_EXTENSION)
        package_dir = self.get_finalized_command("build_py").get_package_dir("ansz")
        return (os.path.join(self.build_lib, filename),
                os.path.join(package_dir, os.path.basename(filename)))

    def get_outputs(self):
        outputs = super().get_outputs()  # in place: the keys of get_output_mapping
        if not self.inplace:
            outputs.append(os.path.join(os.path.dirname(self._library_files()[0]), BINDING))
        return outputs

    def get_output_mapping(self):
        """In place: the binding goes with the library."""
        mapping = super().get_output_mapping()
        built, inplace = self._library_files()
        if built in mapping:
            mapping[os.path.join(os.path.dirname(built), BINDING)] = os.path.join(
                os.path.dirname(inplace), BINDING)
        return mapping

    def copy_extensions_to_source(self):
        """In place: the library and its binding, or neither if the library was not built
        (no stale pair from an earlier build is left behind)."""
        super().copy_extensions_to_source()
        built, inplace = self._library_files()
        binding = (os.path.join(os.path.dirname(built), BINDING),
                   os.path.join(os.path.dirname(inplace), BINDING))
        if os.path.exists(built) and os.path.exists(binding[0]):
            self.copy_file(*binding, level=self.verbose)
        else:
            for stale in (inplace, binding[1]):
                if os.path.exists(stale):
                    os.remove(stale)

setup(ext_modules=[Extension(LIBRARY_EXTENSION, sources=[], depends=[RUNTIME_SOURCE],
                             optional=True)],
      cmdclass={"build_ext": BuildKernelLibrary})
