"""Golden parity: the reference program's models, reproduced byte for byte.

From the manifest's initial model, each case trains with its loss, sign, lr,
batch size and image count; the result must have the golden SHA-256 and score
the manifest's test count.  Every case runs with the fast kernels at 1, 2 and
3 threads (1 and 3 under each instruction-set variant this CPU runs,
docs/SPEC.md §9.4; the others are skipped, saying why), and with the plain
reference kernels.
"""

import numpy as np
import pytest

from helpers import CASES, golden_params, isa_skip_reason, sha256, variant
from lenet5 import core
from lenet5.engines import CEngine
from lenet5.loop import TrainConfig, train

# isa None: the variant this CPU runs by default.  Each variant is forced at
# 1 and 3 threads (a partial tile, threads sharing tiles and elements).
RUNS = (
    [(name, "fast", 2, None) for name in CASES]
    + [(name, "fast", t, isa) for name in CASES for t in (1, 3) for isa in core.ISAS]
    + [(name, "reference", 1, None) for name in CASES]
)


def is_slow(name):
    """Full-epoch cases take seconds (fast kernels) to a minute (reference)."""
    return CASES[name]["train_images"] >= 60000


def train_case(case, params, images, labels, kernel, threads):
    """The case's run through the package's one training loop."""
    params = params.copy()
    n = case["train_images"]
    config = TrainConfig(
        loss=case["loss"], sign=case["sign"], lr=case["lr"], batch_size=case["batch_size"], epochs=case["epochs"]
    )
    train(CEngine(kernel, threads), params, images[:n], labels[:n], config)
    return params


def marks(name, isa):
    """slow for the full epochs; a visible skip for a variant this CPU cannot run."""
    reason = isa_skip_reason(isa) if isa else None
    return ([pytest.mark.slow] if is_slow(name) else []) + ([pytest.mark.skip(reason=reason)] if reason else [])


@pytest.mark.parametrize(
    "name,kernel,threads,isa",
    [pytest.param(n, k, t, i, id=f"{n}-{k}-t{t}" + (f"-{i}" if i else ""), marks=marks(n, i)) for n, k, t, i in RUNS],
)
def test_golden_model_bytes(name, kernel, threads, isa, init_params, mnist_train, mnist_test):
    with variant(isa):
        check_golden_case(name, kernel, threads, init_params, mnist_train, mnist_test)


def check_golden_case(name, kernel, threads, init_params, mnist_train, mnist_test):
    case = CASES[name]
    images, labels = mnist_train
    trained = train_case(case, init_params, images, labels, kernel, threads)
    assert sha256(trained) == case["output_sha256"]
    assert np.array_equal(trained.view(np.uint64), golden_params(case["output"]).view(np.uint64))
    test_images, test_labels = mnist_test
    # The test count through the fast kernels even for a reference-kernel case: their
    # forward passes are the same bits (test_fast_kernels.py), and the reference
    # kernels would spend seconds on 10,000 images of every small case.
    pred = core.predict(trained, test_images, kernel="fast", threads=threads)
    assert int((pred == test_labels).sum()) == case["test_correct"]


def test_initial_model_scores_like_chance(init_params, mnist_test):
    """A sanity anchor: the untrained model is not accidentally a trained one."""
    images, labels = mnist_test
    assert (core.predict(init_params, images) == labels).mean() < 0.2
