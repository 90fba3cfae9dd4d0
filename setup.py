"""Build glue: metadata lives in pyproject.toml; this file only names the cffi
build script, which compiles the C core into lenet5._core, and adds the
per-instruction-set objects of the vector kernels (csrc/build_ffi.py says why)."""
import importlib.util
import os

from setuptools import setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))


def _build_ffi():
    """csrc/build_ffi.py, loaded by path (csrc/ is no package)."""
    spec = importlib.util.spec_from_file_location("_lenet5_build_ffi", os.path.join(HERE, "csrc", "build_ffi.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class BuildExt(build_ext):
    def pre_run(self, ext, ffi):
        """cffi's hook, called just before it writes the module's C: compile
        fast.c and infer.c once per instruction set and link them in."""
        ext.extra_objects += _build_ffi().isa_objects(os.path.join(self.build_temp, "isa_objects"))


setup(cffi_modules=["csrc/build_ffi.py:ffibuilder"], cmdclass={"build_ext": BuildExt})
