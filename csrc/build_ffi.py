"""cffi build script for lenet5's C core (out-of-line API mode).

setup.py names it in ``cffi_modules``; setuptools then compiles csrc/*.c into
the extension module ``lenet5._core``.

Flags: optimise, and never let the compiler fuse a multiply with an add or
reorder a sum (``-ffp-contract=off``, no fast-math): the core must round every
operation exactly as the reference program does.  OpenMP and ``-march=native``
are used when the compiler accepts them; set LENET5_OPENMP=0 or
LENET5_NATIVE=0 to build without them.  LENET5_SANITIZE=1 builds with
AddressSanitizer and UndefinedBehaviorSanitizer (for the sanitizer tests).

The module records which sources it was built from: a SHA-256 of csrc/
(lenet5/_sources.py says which files) that lenet5.core compares with the
csrc/ beside the package on import, so an edited but not rebuilt checkout
fails loudly instead of running old C.
"""
import importlib.util
import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))
# In dependency order (core.h says why): helpers, the kernel sets, entry points.
SOURCES = ["common.c", "augment.c", "reference.c", "fast.c", "infer.c", "api.c"]
HEADERS = ["lenet5.h", "core.h"]
# The one C function the module adds to lenet5.h's API (defined in the preamble).
HASH_CDEF = "const char *l5_build_sources_hash(void);\n"


def _sources_module():
    """lenet5/_sources.py, loaded by path: importing the package would import
    numpy, which a build environment need not have."""
    path = os.path.join(HERE, os.pardir, "lenet5", "_sources.py")
    spec = importlib.util.spec_from_file_location("_lenet5_sources", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cdef():
    """What cffi must know of the API: lenet5.h itself, less its include guard
    and #includes (cffi reads the #defines and prototypes; comments are ignored).
    One source of truth, so the binding can never drift from the header."""
    skip = ("#ifndef", "#endif", "#include", "#define LENET5_H")
    with open(os.path.join(HERE, "lenet5.h"), encoding="utf-8") as f:
        return "".join(line for line in f if not line.strip().startswith(skip))


def _compiler():
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    return shlex.split(cc)


def _accepts(flags):
    """True if the C compiler builds and links a small program with flags."""
    cc = _compiler()
    if not shutil.which(cc[0]):
        return False
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "probe.c")
        with open(src, "w") as f:
            f.write("#ifdef _OPENMP\n#include <omp.h>\n#endif\n"
                    "int main(void) { return 0; }\n")
        cmd = cc + flags + [src, "-o", os.path.join(tmp, "probe")]
        return subprocess.run(cmd, capture_output=True).returncode == 0


def _flags():
    cc = _compiler()
    if not shutil.which(cc[0]):
        sys.exit(
            f"lenet5: no C compiler found (looked for {cc[0]!r}).\n"
            "lenet5's core is C and is compiled at install time: install gcc or\n"
            "clang (Debian/Ubuntu: apt-get install gcc python3-dev) and run pip again.")
    compile_args = ["-O3", "-ffp-contract=off", "-fno-fast-math", "-std=c11"]
    link_args = []
    if os.environ.get("LENET5_NATIVE", "1") != "0" and _accepts(["-march=native"]):
        compile_args.append("-march=native")
    else:  # 32-byte vectors without AVX: GCC notes an ABI change that static functions never see
        compile_args.append("-Wno-psabi")
    if os.environ.get("LENET5_OPENMP", "1") != "0" and _accepts(["-fopenmp"]):
        compile_args.append("-fopenmp")
        link_args.append("-fopenmp")
    else:  # one thread: the OpenMP pragmas are simply not used
        compile_args.append("-Wno-unknown-pragmas")
    if os.environ.get("LENET5_SANITIZE", "0") == "1":
        san = ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined",
               "-fno-omit-frame-pointer", "-g"]
        compile_args += san
        link_args += san
    return compile_args, link_args


def make_builder(absolute=False):
    """The FFI builder.  setuptools wants source paths relative to the project;
    a scratch build elsewhere (``python csrc/build_ffi.py DIR``) needs absolute ones."""
    where = (lambda p: p) if absolute else os.path.relpath
    compile_args, link_args = _flags()
    sources_hash = _sources_module().source_hash(HERE)
    builder = FFI()
    builder.cdef(_cdef() + HASH_CDEF)
    builder.set_source(
        "lenet5._core",
        '#include "lenet5.h"\n'
        f'static const char *l5_build_sources_hash(void) {{ return "{sources_hash}"; }}\n',
        sources=[where(os.path.join(HERE, s)) for s in SOURCES],
        include_dirs=[where(HERE)],
        depends=[where(os.path.join(HERE, h)) for h in HEADERS],
        extra_compile_args=compile_args,
        extra_link_args=link_args,
        libraries=["m"],
    )
    return builder


if __name__ == "__main__":
    # python csrc/build_ffi.py DIR: build lenet5/_core into DIR (e.g. the sanitizer build)
    target = sys.argv[1] if len(sys.argv) > 1 else "."
    print(make_builder(absolute=True).compile(tmpdir=target, verbose=False))
else:
    ffibuilder = make_builder()
