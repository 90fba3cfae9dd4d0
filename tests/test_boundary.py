"""Bad input to the Python layer raises a clear error, and C is never called."""

import numpy as np
import pytest

from lenet5 import core
from lenet5.params import init_params


class Spy:
    """Stands in for the compiled library and fails the test if called."""

    def __init__(self, real):
        self.real = real

    def __getattr__(self, name):
        value = getattr(self.real, name)
        if callable(value) and name.startswith("l5_"):

            def refuse(*args):
                raise AssertionError(f"C was called: {name}")

            return refuse
        return value


@pytest.fixture
def no_c(monkeypatch):
    monkeypatch.setattr(core, "lib", Spy(core.lib))


P = init_params(0)
X = np.zeros((3, 28, 28), dtype=np.uint8)
Y = np.array([1, 2, 3], dtype=np.uint8)
GOOD = dict(loss="xent", sign=-1, lr=0.1)

BAD_TRAIN = [
    ("params list", dict(params=list(P)), TypeError, "params must be a numpy array"),
    ("params float32", dict(params=P.astype(np.float32)), TypeError, "float64"),
    ("params short", dict(params=P[:-1].copy()), ValueError, "shape"),
    ("params strided", dict(params=np.repeat(P, 2)[::2]), ValueError, "C-contiguous"),
    ("images float", dict(images=X.astype(np.float64)), TypeError, "uint8"),
    ("images 27x28", dict(images=np.zeros((3, 27, 28), np.uint8)), ValueError, "shape"),
    ("images rank 4", dict(images=np.zeros((3, 1, 28, 28), np.uint8)), ValueError, "shape"),
    (
        "images empty",
        dict(images=np.zeros((0, 28, 28), np.uint8), labels=np.zeros(0, np.uint8)),
        ValueError,
        "no images",
    ),
    ("images strided", dict(images=np.zeros((6, 28, 28), np.uint8)[::2]), ValueError, "C-contiguous"),
    ("labels 10", dict(labels=np.array([1, 10, 3])), ValueError, "0..9"),
    ("labels -1", dict(labels=np.array([1, -1, 3])), ValueError, "0..9"),
    ("labels float", dict(labels=np.array([1.0, 2.0, 3.0])), TypeError, "integer"),
    ("labels count", dict(labels=np.array([1, 2], np.uint8)), ValueError, "match"),
    ("loss", dict(loss="hinge"), ValueError, "loss"),
    ("sign 0", dict(sign=0), ValueError, "sign"),
    ("sign 2", dict(sign=2), ValueError, "sign"),
    ("sign True", dict(sign=True), ValueError, "sign"),
    ("lr 0", dict(lr=0.0), ValueError, "lr"),
    ("lr negative", dict(lr=-0.1), ValueError, "lr"),
    ("lr nan", dict(lr=float("nan")), ValueError, "lr"),
    ("lr inf", dict(lr=float("inf")), ValueError, "lr"),
    ("lr string", dict(lr="0.1"), TypeError, "lr"),
    ("kernel", dict(kernel="turbo"), ValueError, "kernel"),
    ("threads 0", dict(threads=0), ValueError, "threads"),
    ("threads -1", dict(threads=-1), ValueError, "threads"),
    ("threads float", dict(threads=1.5), TypeError, "threads"),
    ("threads huge", dict(threads=100000), ValueError, "between 1 and 1024"),
]


@pytest.mark.parametrize("what,change,error,message", BAD_TRAIN, ids=[b[0] for b in BAD_TRAIN])
def test_train_batch_rejects(no_c, what, change, error, message):
    args = dict(params=P.copy(), images=X, labels=Y, **GOOD)
    args.update(change)
    with pytest.raises(error, match=message):
        core.train_batch(args.pop("params"), args.pop("images"), args.pop("labels"), **args)


def test_read_only_params_rejected_for_training(no_c):
    p = P.copy()
    p.flags.writeable = False
    with pytest.raises(ValueError, match="writable"):
        core.train_batch(p, X, Y, **GOOD)


@pytest.mark.parametrize("fn", [core.forward, core.predict])
def test_forward_and_predict_reject(no_c, fn):
    with pytest.raises(TypeError):
        fn(P, X.astype(np.int16))
    with pytest.raises(ValueError):
        fn(P[:100].copy(), X)
    with pytest.raises(ValueError):
        fn(P, X, threads=0)


def test_image_gradient_rejects(no_c):
    with pytest.raises(ValueError, match="label"):
        core.image_gradient(P, X[0], 10, "mse")
    with pytest.raises(ValueError, match="image"):
        core.image_gradient(P, X, 1, "mse")
    with pytest.raises(ValueError, match="loss"):
        core.image_gradient(P, X[0], 1, "l1")


def test_good_input_reaches_c():
    """The spy's counterpart: the same call with good input runs."""
    p = P.copy()
    loss, correct = core.train_batch(p, X, Y, **GOOD)
    assert np.isfinite(loss) and 0 <= correct <= 3 and not np.array_equal(p, P)


def test_c_checks_sizes_itself():
    """C never trusts its caller: wrong sizes and labels come back as codes."""
    from lenet5._core import ffi, lib

    p = P.copy()
    loss, correct = ffi.new("double *"), ffi.new("int64_t *")
    pp = ffi.cast("double *", ffi.from_buffer(p))
    xp = ffi.cast("uint8_t *", ffi.from_buffer(X))
    bad_labels = np.array([1, 200, 3], np.uint8)
    lp = ffi.cast("uint8_t *", ffi.from_buffer(bad_labels))
    assert lib.l5_train_batch(pp, 51901, xp, lp, 3, 1, -1, 0.1, 1, 0, loss, correct) == lib.L5_ERR_SIZE
    assert lib.l5_train_batch(pp, 51902, xp, lp, 3, 1, -1, 0.1, 1, 0, loss, correct) == lib.L5_ERR_LABEL
    assert lib.l5_train_batch(pp, 51902, xp, lp, 0, 1, -1, 0.1, 1, 0, loss, correct) == lib.L5_ERR_COUNT
    assert lib.l5_train_batch(pp, 51902, xp, lp, 1, 1, 0, 0.1, 1, 0, loss, correct) == lib.L5_ERR_SIGN
    assert lib.l5_train_batch(pp, 51902, xp, lp, 1, 1, -1, float("nan"), 1, 0, loss, correct) == lib.L5_ERR_LR
    assert lib.l5_train_batch(ffi.NULL, 51902, xp, lp, 1, 1, -1, 0.1, 1, 0, loss, correct) == lib.L5_ERR_NULL
    assert lib.l5_train_batch(pp, 51902, xp, lp, 1, 1, -1, 0.1, 1, 5000, loss, correct) == lib.L5_ERR_THREADS
    assert np.array_equal(p, P)
