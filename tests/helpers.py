"""What several test files share (``from helpers import ...``): the golden
models and their hashes, the instruction-set variants, and running the
trainer's command line.  Fixtures live in conftest.py."""

import contextlib
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

GOLDEN = Path(__file__).parent / "golden"
MANIFEST = json.loads((GOLDEN / "MANIFEST.json").read_text())
CASES = {case["name"]: case for case in MANIFEST["cases"]}


def sha256(params):
    return hashlib.sha256(np.asarray(params, dtype="<f8").tobytes()).hexdigest()


def file_sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def golden_params(name):
    return np.fromfile(GOLDEN / name, dtype="<f8").astype(np.float64)


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
ISA_PARAMS = [
    pytest.param(
        name, id=name, marks=pytest.mark.skipif(isa_skip_reason(name) is not None, reason=str(isa_skip_reason(name)))
    )
    for name in ("avx512", "avx2", "sse2", "generic")
]


@contextlib.contextmanager
def variant(name):
    """Run the fast kernels' variant name (None: leave it) inside the block, then restore the one before."""
    from lenet5 import core

    before = core.isa()
    if name:
        core.use_isa(name)
    try:
        yield name
    finally:
        core.use_isa(before)


def train_cmd(*args, module="lenet5.train"):
    """The command line of python -m lenet5.train with args (any values, made text)."""
    return [sys.executable, "-m", module, *map(str, args)]


def run_train(*args, cwd=None, module="lenet5.train", timeout=600):
    """Run the trainer (or another command module) to the end; its CompletedProcess, output as text."""
    return subprocess.run(train_cmd(*args, module=module), cwd=cwd, capture_output=True, text=True, timeout=timeout)


#: A short shuffled xent run the signal and full-disk tests interrupt.
RUN = ("--loss", "xent", "--train-limit", 3000, "--batch-size", 50, "--shuffle", "--seed", 3)


def checkpoint_state(path):
    """The position a checkpoint file records."""
    from lenet5.params import read_params

    return read_params(path)[1]["checkpoint"]


def temp_leftovers(folder):
    """The temporary files of lenet5's atomic writes left in folder."""
    import os

    from lenet5.files import TEMP_PREFIX

    return [n for n in os.listdir(folder) if n.startswith(TEMP_PREFIX)]
