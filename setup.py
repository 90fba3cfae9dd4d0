"""Build glue: metadata lives in pyproject.toml; this file only names the cffi
build script, which compiles the C core into lenet5._core."""
from setuptools import setup

setup(cffi_modules=["csrc/build_ffi.py:ffibuilder"])
