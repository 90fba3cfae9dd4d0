"""Shared fixtures: real MNIST from data/, and the golden models."""
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from lenet5.data import load_split

GOLDEN = Path(__file__).parent / "golden"
MANIFEST = json.loads((GOLDEN / "MANIFEST.json").read_text())
CASES = {case["name"]: case for case in MANIFEST["cases"]}


def sha256(params):
    return hashlib.sha256(np.asarray(params, dtype="<f8").tobytes()).hexdigest()


def file_sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def golden_params(name):
    return np.fromfile(GOLDEN / name, dtype="<f8").astype(np.float64)


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


def isa_skip_reason(name):
    """Why the variant cannot run here, or None if it can."""
    from lenet5 import core
    if name in core.runnable_isas():
        return None
    from lenet5._core import lib
    if lib.l5_isa_status(name.encode()) == lib.L5_ISA_CPU_LACKS:
        return f"{name}: compiled into this build, but this CPU cannot run it"
    return f"{name}: not built (the compiler cannot target it here)"


#: One pytest.param per instruction-set variant, skipped visibly where it cannot run.
ISA_PARAMS = [pytest.param(name, id=name, marks=pytest.mark.skipif(isa_skip_reason(name) is not None,
                                                                 reason=str(isa_skip_reason(name))))
              for name in ("avx512", "avx2", "sse2", "generic")]


@pytest.fixture(params=ISA_PARAMS)
def isa(request):
    """Runs the test under each variant of the fast kernels, then restores the default."""
    from lenet5 import core
    before = core.isa()
    core.use_isa(request.param)
    yield request.param
    core.use_isa(before)
