"""Golden parity: the reference program's models, reproduced byte for byte.

From the manifest's initial model, each case trains with its loss, sign, lr,
batch size and image count; the result must have the golden SHA-256 and score
the manifest's test count.  Every case runs with the fast kernels at 1, 2 and
3 threads and with the plain reference kernels.
"""
import numpy as np
import pytest

from lenet5 import core
from conftest import CASES, golden_params, sha256

RUNS = [(name, "fast", t) for name in CASES for t in (1, 2, 3)] + \
       [(name, "reference", 1) for name in CASES]


def train_case(case, params, images, labels, kernel, threads):
    params = params.copy()
    b = case["batch_size"]
    for _ in range(case["epochs"]):
        for start in range(0, case["train_images"] - b + 1, b):
            core.train_batch(params, images[start:start + b], labels[start:start + b],
                             loss=case["loss"], sign=case["sign"], lr=case["lr"],
                             kernel=kernel, threads=threads)
    return params


@pytest.mark.parametrize("name,kernel,threads", RUNS,
                         ids=[f"{n}-{k}-t{t}" for n, k, t in RUNS])
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
