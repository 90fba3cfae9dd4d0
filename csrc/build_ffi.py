"""cffi build script for lenet5's C core (out-of-line API mode).

setup.py names it in ``cffi_modules``; setuptools then compiles csrc/*.c into
the extension module ``lenet5._core``.

Flags: optimise, and never let the compiler fuse a multiply with an add or
reorder a sum (``-ffp-contract=off``, no fast-math): the core must round every
operation exactly as the reference program does.  OpenMP is used when the
compiler accepts it; set LENET5_OPENMP=0 to build without it.
LENET5_SANITIZE=1 builds with AddressSanitizer and UndefinedBehaviorSanitizer
(for the sanitizer tests).  Warnings are on (-Wall -Wextra) and the core has
none; LENET5_WERROR=1 makes any an error (CI's extra build does).

No ``-march=native``: a build must run on any CPU of its architecture.  The
vector kernels (ISA_SOURCES) are compiled once more per instruction set in
ISAS that the compiler can target, each with its flags, its lane count and
its own name suffix (``-DL5_ISA=avx2``), into objects linked beside the rest;
csrc/dispatch.c picks the widest the CPU runs (docs/SPEC.md §9.4).  setup.py
compiles those objects through cffi's ``pre_run`` hook (isa_objects).

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
SOURCES = ["common.c", "loss.c", "update.c", "workspace.c", "augment.c", "reference.c", "dispatch.c", "api.c"]
# The vector kernels, compiled once per instruction set.
ISA_SOURCES = ["fast.c", "infer.c"]
# Instruction set -> (compiler flags, images per tile of fast.c), widest
# first.  "generic" is the compiler's default target (SSE2 on x86-64; NEON or
# plain code elsewhere, through the same vector extensions) and is always
# built, with the 16-byte vectors every such target has.
ISAS = {
    "avx512": (["-mavx512f"], 8),
    "avx2": (["-mavx2"], 4),
    "sse2": (["-msse2"], 2),
    "generic": ([], 2),
}
# LENET5_GENERIC_LANES=4 or 8 builds the generic variant with wider tiles: the
# tests use it to run the 8-lane code on a CPU without AVX-512.
GENERIC_LANES = ("2", "4", "8")
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
            f.write("#ifdef _OPENMP\n#include <omp.h>\n#endif\nint main(void) { return 0; }\n")
        cmd = cc + flags + [src, "-o", os.path.join(tmp, "probe")]
        return subprocess.run(cmd, capture_output=True).returncode == 0


def _flags():
    cc = _compiler()
    if not shutil.which(cc[0]):
        sys.exit(
            f"lenet5: no C compiler found (looked for {cc[0]!r}).\n"
            "lenet5's core is C and is compiled at install time: install gcc or\n"
            "clang (Debian/Ubuntu: apt-get install gcc python3-dev) and run pip again."
        )
    # -Wno-psabi: vectors wider than the target's registers (generic, sse2): GCC notes
    # an ABI change that static functions never see.
    # -Wall -Wextra: the core builds without a warning; LENET5_WERROR=1 (CI's extra build)
    # turns any new one into an error.
    compile_args = ["-O3", "-ffp-contract=off", "-fno-fast-math", "-std=c11", "-Wall", "-Wextra", "-Wno-psabi"]
    if os.environ.get("LENET5_WERROR", "0") == "1":
        compile_args.append("-Werror")
    # dispatch.c offers the variants that are built
    compile_args += [f"-DL5_BUILT_{isa.upper()}" for isa in built_isas() if isa != "generic"]
    link_args = []
    if os.environ.get("LENET5_OPENMP", "1") != "0" and _accepts(["-fopenmp"]):
        compile_args.append("-fopenmp")
        link_args.append("-fopenmp")
    else:  # one thread: the OpenMP pragmas are simply not used
        compile_args.append("-Wno-unknown-pragmas")
    if os.environ.get("LENET5_SANITIZE", "0") == "1":
        san = ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined", "-fno-omit-frame-pointer", "-g"]
        compile_args += san
        link_args += san
    return compile_args, link_args


def built_isas():
    """The instruction sets of ISAS this compiler can target, widest first."""
    return [isa for isa, (flags, _) in ISAS.items() if not flags or _accepts(flags)]


def isa_objects(out_dir):
    """Compile ISA_SOURCES once per built instruction set into out_dir, the
    compilations in parallel; return the object files.  A failed compile ends
    the build with the compiler's message."""
    compile_args, _ = _flags()
    os.makedirs(out_dir, exist_ok=True)
    jobs = []
    generic_lanes = os.environ.get("LENET5_GENERIC_LANES", "2")
    if generic_lanes not in GENERIC_LANES:
        sys.exit(f"lenet5: LENET5_GENERIC_LANES must be one of {', '.join(GENERIC_LANES)}, not {generic_lanes!r}")
    for isa in built_isas():
        flags, lanes = ISAS[isa]
        if isa == "generic":
            lanes = int(generic_lanes)
        for source in ISA_SOURCES:
            obj = os.path.join(out_dir, f"{source[:-2]}_{isa}.o")
            cmd = (
                _compiler()
                + compile_args
                + flags
                + [
                    "-fPIC",
                    f"-DL5_ISA={isa}",
                    f"-DL5_LANES={lanes}",
                    "-I",
                    HERE,
                    "-c",
                    os.path.join(HERE, source),
                    "-o",
                    obj,
                ]
            )
            jobs.append((obj, cmd, subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)))
    for obj, cmd, job in jobs:
        _, err = job.communicate()
        sys.stderr.write(err)
        if job.returncode != 0:
            sys.exit(f"lenet5: compiling {os.path.basename(obj)} failed:\n{shlex.join(cmd)}")
    return [obj for obj, _, _ in jobs]


def make_builder(absolute=False, objects=()):
    """The FFI builder.  setuptools wants source paths relative to the project;
    a scratch build elsewhere (``python csrc/build_ffi.py DIR``) needs absolute
    ones, and passes the per-ISA objects it compiled (setup.py adds them later)."""
    where = (lambda p: p) if absolute else os.path.relpath
    compile_args, link_args = _flags()
    sources_hash = _sources_module().source_hash(HERE)
    builder = FFI()
    builder.cdef(_cdef() + HASH_CDEF)
    builder.set_source(
        "lenet5._core",
        f'#include "lenet5.h"\nstatic const char *l5_build_sources_hash(void) {{ return "{sources_hash}"; }}\n',
        sources=[where(os.path.join(HERE, s)) for s in SOURCES],
        include_dirs=[where(HERE)],
        depends=[where(os.path.join(HERE, f)) for f in HEADERS + ISA_SOURCES],
        extra_objects=list(objects),
        extra_compile_args=compile_args,
        extra_link_args=link_args,
        libraries=["m"],
    )
    return builder


if __name__ == "__main__":
    # python csrc/build_ffi.py DIR: build lenet5/_core into DIR (e.g. the sanitizer build)
    target = sys.argv[1] if len(sys.argv) > 1 else "."
    objects = isa_objects(os.path.join(os.path.abspath(target), "isa_objects"))
    print(make_builder(absolute=True, objects=objects).compile(tmpdir=target, verbose=False))
else:
    ffibuilder = make_builder()
