"""Golden parity: the reference program's models, reproduced byte for byte.

From the manifest's initial model, each case trains with its loss, sign, lr,
batch size and image count; the result must have the golden SHA-256 and score
the manifest's test count.  Every case runs with the fast kernels at 1, 2 and
3 threads and with the plain reference kernels.
"""
import numpy as np
import pytest

from conftest import CASES, golden_params, sha256
from lenet5 import core
from lenet5.engines import CEngine
from lenet5.loop import TrainConfig, train

RUNS = [(name, "fast", t) for name in CASES for t in (1, 2, 3)] + \
       [(name, "reference", 1) for name in CASES]


def is_slow(name):
    """Full-epoch cases take seconds (fast kernels) to a minute (reference)."""
    return CASES[name]["train_images"] >= 60000


def train_case(case, params, images, labels, kernel, threads):
    """The case's run through the package's one training loop."""
    params = params.copy()
    n = case["train_images"]
    config = TrainConfig(loss=case["loss"], sign=case["sign"], lr=case["lr"],
                         batch_size=case["batch_size"], epochs=case["epochs"])
    train(CEngine(kernel, threads), params, images[:n], labels[:n], config)
    return params


@pytest.mark.parametrize("name,kernel,threads", [
    pytest.param(n, k, t, id=f"{n}-{k}-t{t}", marks=[pytest.mark.slow] if is_slow(n) else [])
    for n, k, t in RUNS])
def test_golden_model_bytes(name, kernel, threads, init_params, mnist_train, mnist_test):
    case = CASES[name]
    images, labels = mnist_train
    trained = train_case(case, init_params, images, labels, kernel, threads)
    assert sha256(trained) == case["output_sha256"]
    assert np.array_equal(trained.view(np.uint64), golden_params(case["output"]).view(np.uint64))
    test_images, test_labels = mnist_test
    pred = core.predict(trained, test_images, kernel=kernel, threads=threads)
    assert int((pred == test_labels).sum()) == case["test_correct"]


def test_initial_model_scores_like_chance(init_params, mnist_test):
    """A sanity anchor: the untrained model is not accidentally a trained one."""
    images, labels = mnist_test
    assert (core.predict(init_params, images) == labels).mean() < 0.2
