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
