"""The fast kernels against the plain reference kernels, bit for bit.

Random models (several scales), random and real images, odd batch sizes that
leave partial tiles, 1, 2, 3 threads and every instruction-set variant this
CPU runs (2, 4 or 8 images per tile): training, forward and prediction must
agree to the last bit.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lenet5 import core
from lenet5.params import init_params


def bits(a):
    return np.asarray(a).view(np.uint64)


def random_case(seed, n, scale, real_images):
    rng = np.random.default_rng(seed)
    params = init_params(seed) * scale
    params[core.BLOCKS["b1"][0] :] += rng.normal(0, 0.1 * scale, core.N_PARAMS - core.BLOCKS["b1"][0])
    if real_images is not None:
        idx = rng.choice(len(real_images[0]), n, replace=False)
        images, labels = real_images[0][idx], real_images[1][idx]
    else:
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n).astype(np.uint8)
    return params, np.ascontiguousarray(images), np.ascontiguousarray(labels)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seed=st.integers(0, 2**31),
    n=st.sampled_from([1, 2, 3, 5, 7, 9, 13]),
    scale=st.sampled_from([0.5, 1.0, 2.0]),
    loss=st.sampled_from(["mse", "xent"]),
    sign=st.sampled_from([1, -1]),
    real=st.booleans(),
    threads=st.sampled_from([1, 2, 3]),
)
def test_train_batch_fast_equals_reference(seed, n, scale, loss, sign, real, threads, isa, mnist_train):
    params, images, labels = random_case(seed, n, scale, mnist_train if real else None)
    ref, fast = params.copy(), params.copy()
    r = core.train_batch(ref, images, labels, loss=loss, sign=sign, lr=0.3, kernel="reference")
    f = core.train_batch(fast, images, labels, loss=loss, sign=sign, lr=0.3, kernel="fast", threads=threads)
    assert np.array_equal(bits(ref), bits(fast))
    assert r[1] == f[1]
    assert r[0] == pytest.approx(f[0], rel=1e-12)


@pytest.mark.parametrize("n", [1, 7, 301, 1030])
@pytest.mark.parametrize("threads", [1, 3])
def test_forward_fast_equals_reference(n, threads, isa, mnist_train):
    params, images, _ = random_case(n, n, 1.0, mnist_train)
    ref = core.forward(params, images, kernel="reference")
    fast = core.forward(params, images, kernel="fast", threads=threads)
    assert np.array_equal(bits(ref), bits(fast))
    assert np.array_equal(
        core.predict(params, images, kernel="reference"), core.predict(params, images, threads=threads)
    )


def test_large_batch_spans_chunks(mnist_train):
    """A batch larger than the core's internal chunk (1024) still sums in order."""
    params, images, labels = random_case(3, 1031, 1.0, mnist_train)
    ref, fast = params.copy(), params.copy()
    core.train_batch(ref, images, labels, loss="xent", sign=-1, lr=0.1, kernel="reference")
    core.train_batch(fast, images, labels, loss="xent", sign=-1, lr=0.1, threads=2)
    assert np.array_equal(bits(ref), bits(fast))


def test_flat_image_gives_zero_input_not_nan():
    """The reference divides by a zero deviation; we give a flat image a zero input."""
    for value in (0, 37, 255):
        flat = np.full((28, 28), value, dtype=np.uint8)
        assert np.array_equal(core.normalize(flat), np.zeros((32, 32)))
    params = init_params(0)
    images = np.zeros((5, 28, 28), dtype=np.uint8)
    images[1] = 200
    for kernel in ("reference", "fast"):
        p = params.copy()
        loss, _ = core.train_batch(p, images, np.arange(5, dtype=np.uint8), loss="mse", sign=1, lr=0.5, kernel=kernel)
        assert np.isfinite(loss) and np.isfinite(p).all()


def test_flat_images_among_real_ones_train_as_the_reference(isa, mnist_train):
    """A tile normalises its lanes together: flat images (zero input) beside
    real ones, in every lane position of 2, 4 and 8 lanes, and a last tile
    short of images, give the reference's bits."""
    images, labels = mnist_train[0][:19].copy(), mnist_train[1][:19]
    flat = [0, 9, 2, 11, 4, 13, 6, 15]  # one per lane position, modulo 8
    images[flat] = np.array([0, 200, 255, 37, 1, 128, 254, 90], dtype=np.uint8)[:, None, None]
    ref, fast = init_params(4), init_params(4)
    core.train_batch(ref, images, labels, loss="xent", sign=-1, lr=0.1, kernel="reference")
    core.train_batch(fast, images, labels, loss="xent", sign=-1, lr=0.1, threads=2)
    assert np.array_equal(bits(ref), bits(fast))


def test_normalize_matches_spec(mnist_train):
    """Mean 0 and deviation 1 over the 28x28 block, zeros in the frame."""
    image = mnist_train[0][0]
    x = core.normalize(image)
    inner = x[2:30, 2:30]
    assert abs(inner.mean()) < 1e-12 and abs(inner.std() - 1) < 1e-12
    assert not x[:2].any() and not x[30:].any() and not x[:, :2].any() and not x[:, 30:].any()
    pixels = image.astype(np.float64)
    mean = pixels.sum() / 784
    std = np.sqrt(float((image.astype(np.int64) ** 2).sum()) / 784 - mean * mean)
    assert np.array_equal(inner, (pixels - mean) / std)
