"""The model object cannot be corrupted from Python: a diverged fit keeps the
model it started from, save refuses what load would refuse, the parameters
cannot be made writable or resized, and set_params, unpickling and fit's
options apply load's checks."""

import copy
import pickle
import warnings

import numpy as np
import pytest

from helpers import golden_params
from lenet5 import LeNet5, core
from lenet5.checkpoint import load_checkpoint
from lenet5.loop import Diverged


def bits(a):
    return np.asarray(a).view(np.uint64)


@pytest.fixture
def net():
    return LeNet5(golden_params("xent_b300_n60000_e1.dat"), {"loss": "xent"})


def agree_everywhere(net, images):
    """predict (prepared weights), activations (the page) and params (save) say the same."""
    from_params = core.predict(net.params, images, kernel="reference")
    assert np.array_equal(net.predict(images), from_params)
    for image, digit in zip(images[:5], from_params[:5]):
        assert int(np.argmax(net.activations(image)["outputs"])) == digit


def test_a_diverged_fit_leaves_the_model_as_it_was(net, mnist_train, mnist_test, tmp_path):
    before = net.params.copy()
    meta, correct = dict(net.meta), net.evaluate(*mnist_test).correct
    images, labels = mnist_train[0][:3000], mnist_train[1][:3000]
    ck = tmp_path / "ck.npz"
    with pytest.raises(Diverged):  # climbing the loss with a large step
        net.fit(
            images,
            labels,
            loss="xent",
            sign=+1,
            lr=0.5,
            batch_size=100,
            progress=False,
            checkpoint=ck,
            checkpoint_every=1,
        )
    assert np.array_equal(bits(net.params), bits(before)) and net.meta == meta
    assert net.evaluate(*mnist_test).correct == correct > 9600
    agree_everywhere(net, mnist_test[0][:100])
    net.save(tmp_path / "still.npz")  # the model is still saveable, and loads
    assert np.array_equal(bits(LeNet5.load(tmp_path / "still.npz").params), bits(before))
    progress = load_checkpoint(ck)  # the checkpoint holds the progress before the loss blew up
    assert np.all(np.isfinite(progress.params)) and not np.array_equal(progress.params, before)


def test_an_interrupted_or_finished_fit_still_adopts_its_progress(net, mnist_train):
    before = net.params.copy()
    net.fit(mnist_train[0][:600], mnist_train[1][:600], loss="xent", batch_size=100, progress=False)
    assert not np.array_equal(net.params, before) and np.all(np.isfinite(net.params))


def test_save_refuses_non_finite_parameters_and_keeps_the_old_file(net, tmp_path):
    path = tmp_path / "model.npz"
    net.save(path)
    good = path.read_bytes()
    broken = LeNet5.init(0)
    params = broken.params.copy()
    params[7] = np.nan
    broken._adopt(params)  # around every public check: only a bug could get here
    for target in (path, tmp_path / "model.dat"):
        with pytest.raises(ValueError, match="cannot save: params: 1 parameters are NaN or infinite"):
            broken.save(target)
    assert path.read_bytes() == good and not (tmp_path / "model.dat").exists()


def test_params_cannot_be_made_writable_or_resized(net, mnist_test):
    images = mnist_test[0][:200]
    p = net.params
    with pytest.raises(ValueError):
        p.flags.writeable = True
    with pytest.raises(ValueError):
        p.setflags(write=True)
    with pytest.raises(ValueError):
        p.resize(10, refcheck=False)
    with pytest.raises(ValueError):
        p[0] = 1.0
    with pytest.raises(ValueError):
        core.block(p, "W1")[...] = 0.0
    with pytest.raises(TypeError):  # the memory behind the view is immutable too
        memoryview(p.base)[0] = 0
    with pytest.raises(ValueError, match="writable"):
        core.train_batch(p, images[:10], mnist_test[1][:10], loss="xent", sign=-1, lr=0.1)
    assert net.params.shape == (core.N_PARAMS,)
    agree_everywhere(net, images)
    for twin in (copy.copy(net), copy.deepcopy(net), pickle.loads(pickle.dumps(net))):
        with pytest.raises(ValueError):
            twin.params.flags.writeable = True
        assert np.array_equal(bits(twin.params), bits(net.params))


BAD_PARAMS = [
    ("strings", lambda p: p.astype(str), TypeError, "real numbers"),
    ("complex", lambda p: p.astype(np.complex128), TypeError, "real numbers"),
    ("booleans", lambda p: p > 0, TypeError, "real numbers"),
    ("objects", lambda p: p.astype(object), TypeError, "real numbers"),
    ("a list of strings", lambda p: [str(v) for v in p], TypeError, "real numbers"),
    ("too few", lambda p: p[:-1], ValueError, "shape"),
    ("two-dimensional", lambda p: p.reshape(2, -1), ValueError, "shape"),
    ("a NaN", lambda p: np.where(np.arange(p.size) == 3, np.nan, p), ValueError, "NaN or infinite"),
    ("an infinity", lambda p: np.where(np.arange(p.size) == 3, np.inf, p), ValueError, "NaN or infinite"),
    ("float16 infinities", lambda p: (p * 1e6).astype(np.float16), ValueError, "NaN or infinite"),
]


@pytest.mark.parametrize("what,make,error,message", BAD_PARAMS, ids=[b[0] for b in BAD_PARAMS])
def test_set_params_applies_loads_checks_and_changes_nothing_when_refused(net, mnist_test, what, make, error, message):
    before = net.params.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # float16 overflow on purpose
        bad = make(before.copy())
    with pytest.raises(error, match=message):
        net.set_params(bad)
    with pytest.raises(error, match=message):
        LeNet5(bad)
    assert np.array_equal(bits(net.params), bits(before))
    agree_everywhere(net, mnist_test[0][:50])


def test_set_params_takes_real_numbers_of_any_width(net):
    p = net.params
    for ok in (p.tolist(), p.astype(np.float32), np.round(p * 100).astype(np.int64)):
        net.set_params(ok)
        assert net.params.dtype == np.float64 and np.array_equal(net.params, np.asarray(ok, dtype=np.float64))
        assert not net.params.flags.writeable


class Forged:
    """Pickles as a LeNet5 with the state given: what a tampered pickle holds."""

    def __init__(self, state):
        self.state = state

    def __reduce__(self):
        return (object.__new__, (LeNet5,), self.state)


@pytest.mark.parametrize(
    "state,error,message",
    [
        ({"params": np.full(core.N_PARAMS, np.nan), "meta": {}}, ValueError, "NaN or infinite"),
        ({"params": np.zeros(10), "meta": {}}, ValueError, "shape"),
        ({"params": np.zeros(core.N_PARAMS).astype(str), "meta": {}}, TypeError, "real numbers"),
        ({"params": np.zeros(core.N_PARAMS), "meta": "x"}, TypeError, "not a pickled LeNet5"),
        ({"meta": {}}, TypeError, "not a pickled LeNet5"),
    ],
)
def test_unpickling_applies_loads_checks(state, error, message):
    with pytest.raises(error, match=message):
        pickle.loads(pickle.dumps(Forged(state)))


def test_checkpoint_every_zero_is_an_error_before_any_work(net, mnist_train, tmp_path):
    before = net.params.copy()
    for every, error in ((0, ValueError), (-3, ValueError), (1.5, TypeError)):
        with pytest.raises(error, match="checkpoint_every"):
            net.fit(
                mnist_train[0][:300],
                mnist_train[1][:300],
                batch_size=100,
                progress=False,
                checkpoint=tmp_path / "ck.npz",
                checkpoint_every=every,
            )
    assert np.array_equal(bits(net.params), bits(before)) and not (tmp_path / "ck.npz").exists()
