"""Shared fixtures: real MNIST from data/, the golden models' initial
parameters, and each instruction-set variant.  Helpers that are not fixtures
live in helpers.py."""

import pytest

from helpers import ISA_PARAMS, MANIFEST, golden_params, sha256, variant
from lenet5.data import load_split


@pytest.fixture(scope="session")
def mnist_train():
    return load_split("train", download=False, progress=False)


@pytest.fixture(scope="session")
def mnist_test():
    return load_split("test", download=False, progress=False)


@pytest.fixture(scope="session")
def init_params():
    params = golden_params("init_seed1.dat")
    assert sha256(params) == MANIFEST["init_sha256"]
    return params


@pytest.fixture(params=ISA_PARAMS)
def isa(request):
    """Runs the test under each variant of the fast kernels, then restores the default."""
    with variant(request.param) as name:
        yield name
