"""The training-image warp (docs/SPEC.md §8.6): the C core equals its NumPy
twin byte for byte, each image depends on (seed, epoch, index) alone, and a
run with it gives the same bytes at any thread count."""

import numpy as np
import pytest

from lenet5 import core
from lenet5.augment import augment_numpy, splitmix64, uniform_draws
from lenet5.engines import CEngine
from lenet5.loop import AUGMENT_RANGES, TrainConfig, train
from lenet5.params import init_params

RANGES = [AUGMENT_RANGES, dict(shift=14.0, rotate=90.0, scale=0.5), dict(shift=0.5, rotate=0.0, scale=0.0)]


def test_splitmix64_matches_its_published_first_outputs():
    """SplitMix64 seeded with 0 (state += golden gamma, then mix): Vigna's reference values."""
    assert splitmix64(0) == 0xE220A8397B1DCDAF
    assert splitmix64(0x9E3779B97F4A7C15) == 0x6E789E6AA1B965F4


def test_draws_are_uniform_on_minus_one_to_one():
    draws = np.array([uniform_draws(k) for k in range(2000)]).ravel()
    assert draws.min() >= -1.0 and draws.max() < 1.0
    assert abs(draws.mean()) < 0.03 and abs((draws < 0).mean() - 0.5) < 0.02


@pytest.mark.parametrize("ranges", RANGES)
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_c_warp_equals_numpy_twin_byte_for_byte(mnist_train, ranges, threads):
    images = mnist_train[0]
    index = np.array([0, 1, 2, 59999, 12345, 777, 40000, 31, 5, 6, 7])
    for seed, epoch in ((0, 0), (7, 3), (2**63 + 5, 29)):
        c = core.augment(images[index], index, seed=seed, epoch=epoch, threads=threads, **ranges)
        twin = augment_numpy(images[index], index, seed=seed, epoch=epoch, **ranges)
        assert c.tobytes() == twin.tobytes(), (seed, epoch)
        assert not np.array_equal(c, images[index])


def test_a_threaded_warp_of_many_images_equals_the_twin(mnist_train):
    """From 32 images on core.augment splits the work over threads (csrc/augment.c)."""
    images = mnist_train[0][:600]
    index = np.arange(600) * 97
    runs = [core.augment(images, index, seed=11, epoch=5, threads=t, **AUGMENT_RANGES).tobytes() for t in (1, 2, 3)]
    twin = augment_numpy(images, index, seed=11, epoch=5, **AUGMENT_RANGES)
    assert runs[0] == runs[1] == runs[2] == twin.tobytes()


def test_zero_ranges_leave_the_images_unchanged(mnist_train):
    images = mnist_train[0][:50]
    out = core.augment(images, np.arange(50), seed=1, epoch=1, shift=0.0, rotate=0.0, scale=0.0)
    assert np.array_equal(out, images)


def test_each_image_depends_on_seed_epoch_and_index_alone(mnist_train):
    images = mnist_train[0]
    index = np.arange(100, 160)
    base = core.augment(images[index], index, seed=3, epoch=2, threads=2, **AUGMENT_RANGES)
    order = np.random.default_rng(0).permutation(60)
    shuffled = core.augment(images[index[order]], index[order], seed=3, epoch=2, threads=3, **AUGMENT_RANGES)
    assert np.array_equal(shuffled, base[order])  # the batch's order and company do not matter
    alone = core.augment(images[index[5:6]], index[5:6], seed=3, epoch=2, **AUGMENT_RANGES)
    assert np.array_equal(alone[0], base[5])
    for other in (dict(seed=4, epoch=2), dict(seed=3, epoch=3)):
        changed = core.augment(images[index], index, **other, **AUGMENT_RANGES)
        assert (changed != base).any(axis=(1, 2)).mean() > 0.9, other
    same_pixels_new_index = core.augment(images[index], index + 1, seed=3, epoch=2, **AUGMENT_RANGES)
    assert (same_pixels_new_index != base).any(axis=(1, 2)).mean() > 0.9


def test_the_warp_keeps_the_digit_recognisable(mnist_train):
    """A warped digit keeps most of its ink and its place: a shift of at most
    3 px moves the centre of mass by about that much."""
    images = mnist_train[0][:200]
    out = core.augment(images, np.arange(200), seed=0, epoch=0, **AUGMENT_RANGES)
    ink_ratio = out.reshape(200, -1).sum(1) / images.reshape(200, -1).sum(1)
    assert 0.7 < ink_ratio.min() and ink_ratio.max() < 1.35
    grid = np.arange(28)

    def centre(x):
        w = x.astype(float)
        return np.stack([(w.sum(2) * grid).sum(1) / w.sum((1, 2)), (w.sum(1) * grid).sum(1) / w.sum((1, 2))], 1)

    assert np.abs(centre(out) - centre(images)).max() < 5.0


@pytest.mark.parametrize(
    "bad,error",
    [
        (dict(shift=-1.0), ValueError),
        (dict(rotate=91.0), ValueError),
        (dict(scale=0.6), ValueError),
        (dict(shift=float("nan")), ValueError),
        (dict(seed=-1), ValueError),
        (dict(epoch=-1), ValueError),
        (dict(index=np.array([0, -1])), ValueError),
        (dict(index=np.array([0])), ValueError),
        (dict(rotate="12"), TypeError),
    ],
)
def test_augment_refuses_bad_arguments(mnist_train, bad, error):
    args = dict(index=np.array([0, 1]), seed=0, epoch=0, **AUGMENT_RANGES)
    args.update(bad)
    with pytest.raises(error):
        core.augment(mnist_train[0][:2], args.pop("index"), **args)


def test_training_with_augmentation_gives_the_same_bytes_at_any_thread_count(mnist_train):
    images, labels = mnist_train[0][:120], mnist_train[1][:120]
    config = TrainConfig(
        loss="xent", lr=0.05, batch_size=20, epochs=2, shuffle=True, momentum=0.9, augment=True, seed=1
    )
    results = []
    for threads in (1, 2, 3):
        p, v = init_params(1), np.zeros(core.N_PARAMS)
        train(CEngine(threads=threads), p, images, labels, config, velocity=v)
        results.append(p.tobytes())
    assert results[0] == results[1] == results[2]
    plain = init_params(1)
    train(
        CEngine(),
        plain,
        images,
        labels,
        TrainConfig(loss="xent", lr=0.05, batch_size=20, epochs=2, shuffle=True, momentum=0.9, seed=1),
        velocity=np.zeros(core.N_PARAMS),
    )
    assert plain.tobytes() != results[0]  # the warp did reach the training


@pytest.mark.parametrize("ranges", RANGES)
def test_both_warp_kernels_equal_the_twin_under_every_variant(isa, mnist_train, ranges):
    """The fast warp (csrc/fast.c: a vector of pixels at a time, a gather per
    corner where the variant has one) and its readable twin (csrc/augment.c)."""
    images = mnist_train[0][:64]
    index = np.arange(64) * 911 + 3
    twin = augment_numpy(images, index, seed=5, epoch=4, **ranges).tobytes()
    for kernel in ("reference", "fast"):
        assert core.augment(images, index, seed=5, epoch=4, kernel=kernel, **ranges).tobytes() == twin, kernel


@pytest.mark.parametrize("n", [20, 1031])  # 1031: past the core's chunk of 1024 images
def test_training_on_a_warp_equals_training_on_its_images(isa, mnist_train, n):
    """train_batch(warp=...) warps each image as its tile loads it, and updates
    the parameters inside the batch's last phase 2: the same bytes as the
    reference kernels trained on core.augment's images, at any thread count."""
    images, labels = mnist_train[0][:n], mnist_train[1][:n]
    warp = core.Warp(np.arange(n) * 7 + 1, 9, 2, **AUGMENT_RANGES)
    sgd = dict(momentum=0.9, weight_decay=5e-4, nesterov=True)
    want, want_v = init_params(2), np.zeros(core.N_PARAMS)
    for _ in range(2):  # two steps, so the velocity carries something
        core.train_batch(
            want, warp.apply(images), labels, loss="xent", sign=-1, lr=0.05, kernel="reference", velocity=want_v, **sgd
        )
    for threads in (1, 2, 3):
        p, v = init_params(2), np.zeros(core.N_PARAMS)
        for _ in range(2):
            core.train_batch(
                p, images, labels, loss="xent", sign=-1, lr=0.05, threads=threads, velocity=v, warp=warp, **sgd
            )
        assert p.tobytes() == want.tobytes() and v.tobytes() == want_v.tobytes(), threads


def test_a_warp_must_fit_its_batch(mnist_train):
    images, labels = mnist_train[0][:4], mnist_train[1][:4]
    params = init_params(0)
    with pytest.raises(ValueError, match=r"shape \(4,\)"):
        core.train_batch(
            params, images, labels, loss="xent", sign=-1, lr=0.1, warp=core.Warp(np.arange(3), 0, 0, 1, 1, 0.1)
        )
    with pytest.raises(TypeError, match="lenet5.core.Warp"):
        core.train_batch(params, images, labels, loss="xent", sign=-1, lr=0.1, warp=AUGMENT_RANGES)
    assert params.tobytes() == init_params(0).tobytes()
