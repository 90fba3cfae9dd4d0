"""Workspaces (docs/SPEC.md §9.8): the fast kernels' memory is the caller's,
kept across calls, and never changes a bit; batches and single images take
the kernel that suits them (the crossover), with the same bits either way."""

import threading

import numpy as np
import pytest

from helpers import CASES, sha256, variant
from lenet5 import LeNet5, core
from lenet5.engines import CEngine
from lenet5.loop import TrainConfig, train


def small_cases():
    return [name for name, case in CASES.items() if case["train_images"] < 60000]


def test_one_workspace_through_every_variant_and_team_keeps_the_golden_bytes(init_params, mnist_train):
    """The calling thread's workspace serves every run below in turn: tiles
    made for one lane count, then another's, teams of 1, 2 and 3.  Each run
    must still give the reference program's bytes."""
    images, labels = mnist_train
    for isa in core.runnable_isas():
        with variant(isa):
            for threads in (1, 2, 3):
                for name in small_cases():
                    case = CASES[name]
                    params = init_params.copy()
                    n = case["train_images"]
                    config = TrainConfig(
                        loss=case["loss"],
                        sign=case["sign"],
                        lr=case["lr"],
                        batch_size=case["batch_size"],
                        epochs=case["epochs"],
                    )
                    train(CEngine("fast", threads), params, images[:n], labels[:n], config)
                    assert sha256(params) == case["output_sha256"], (isa, threads, name)


def test_a_fresh_workspace_and_a_reused_one_give_the_same_bytes(isa, mnist_train):
    images, labels = mnist_train
    runs = []
    for workspace in (None, core.Workspace(), "fresh each batch"):
        params, velocity = LeNet5.init(seed=3).params.copy(), np.zeros(core.N_PARAMS)
        for b in range(6):  # batch sizes 64 then 37: a smaller chunk in a grown workspace
            size = 64 if b < 3 else 37
            x, y = images[b * 64 : b * 64 + size], labels[b * 64 : b * 64 + size]
            ws = core.Workspace() if workspace == "fresh each batch" else workspace
            core.train_batch(
                params,
                x,
                y,
                loss="xent",
                sign=-1,
                lr=0.05,
                threads=2,
                velocity=velocity,
                momentum=0.9,
                weight_decay=5e-4,
                nesterov=True,
                workspace=ws,
            )
        runs.append(params.tobytes() + velocity.tobytes())
    assert runs[0] == runs[1] == runs[2]


def test_a_workspace_serves_one_call_at_a_time(mnist_train):
    """A second call on a workspace that a running call holds is refused with
    a clear error (never two calls in one set of buffers)."""
    images, labels = mnist_train
    shared = core.Workspace()
    params = LeNet5.init(seed=0).params.copy()
    done = threading.Event()
    refused = []

    def long_training():  # whichever call comes second is refused, this one or the loop's
        try:
            core.train_batch(
                params, images[:6000], labels[:6000], loss="xent", sign=-1, lr=0.1, threads=1, workspace=shared
            )
        except RuntimeError as e:
            refused.append(str(e))
        finally:
            done.set()

    worker = threading.Thread(target=long_training)
    worker.start()
    while not done.is_set() and not refused:
        try:
            core.train_batch(
                params.copy(), images[:4], labels[:4], loss="xent", sign=-1, lr=0.1, threads=1, workspace=shared
            )
        except RuntimeError as e:
            refused.append(str(e))
    worker.join()
    assert refused and "in use by another call" in refused[0]
    with pytest.raises(TypeError, match="workspace"):
        core.train_batch(params, images[:4], labels[:4], loss="xent", sign=-1, lr=0.1, workspace="mine")


def test_predict_from_four_threads_at_once_also_during_fit(mnist_train, mnist_test):
    """Four Python threads predict the same model (batches through the tile
    kernels, single images through infer.c) while a fifth fits another model:
    every answer and the fitted bytes are those of the same calls made alone."""
    test_images, _ = mnist_test
    images, labels = mnist_train
    net = LeNet5.init(seed=1)  # not the shipped model: the sanitizer run has no package data
    batch = test_images[:500]
    expect_batch, expect_proba = net.predict(batch), net.predict_proba(batch[:40])
    expect_one = [net.predict(np.ascontiguousarray(test_images[k])) for k in range(20)]
    alone = LeNet5.init(seed=5)
    alone.fit(images[:1280], labels[:1280], loss="xent", batch_size=64, epochs=1, progress=False)

    fitted = LeNet5.init(seed=5)
    errors: list = []
    results: list = [None] * 4
    start = threading.Barrier(5)

    def predictor(k):
        try:
            start.wait()
            got = []
            for _ in range(4):
                got.append(
                    (
                        net.predict(batch).tobytes(),
                        net.predict_proba(batch[:40]).tobytes(),
                        [net.predict(np.ascontiguousarray(test_images[j])) for j in range(20)],
                    )
                )
            results[k] = got
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    def fitter():
        start.wait()
        fitted.fit(images[:1280], labels[:1280], loss="xent", batch_size=64, epochs=1, progress=False)

    threads = [threading.Thread(target=predictor, args=(k,)) for k in range(4)] + [threading.Thread(target=fitter)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for got in results:
        for batch_bytes, proba_bytes, ones in got:
            assert batch_bytes == expect_batch.tobytes() and proba_bytes == expect_proba.tobytes()
            assert ones == expect_one
    assert fitted.params.tobytes() == alone.params.tobytes()


def test_both_sides_of_the_crossover_give_the_same_bits(isa, mnist_test):
    images, _ = mnist_test
    net = LeNet5.init(seed=1)  # not the shipped model: the sanitizer run has no package data
    cut = core.tile_crossover()
    assert cut >= core.isa_lanes()
    for n in (1, cut - 1, cut, cut + 3, 300):
        x = images[:n]
        outputs = net.forward(x)
        assert outputs.tobytes() == core.forward_prepared(net._prepared, x).tobytes()
        assert outputs.tobytes() == core.forward(net.params, x, kernel="reference").tobytes()
        assert net.predict(x).tobytes() == core.predict_prepared(net._prepared, x).tobytes()


def test_the_one_image_path_answers_as_the_general_one(mnist_test):
    images, _ = mnist_test
    net = LeNet5.init(seed=1)  # not the shipped model: the sanitizer run has no package data
    for k in range(50):
        one = np.ascontiguousarray(images[k])
        assert core.predict_one(net._prepared, one) == int(core.predict_prepared(net._prepared, one[None])[0])
        assert net.predict(one) == net.predict(np.asfortranarray(one)) == net.predict(one.reshape(1, 784))[0]
    for bad in (
        images[0].astype(np.int16),
        np.asfortranarray(images[:2, :, 0].repeat(14, 1)),
        images[:2],
        images[0][:, ::2],
    ):
        with pytest.raises(ValueError, match="image"):
            core.predict_one(net._prepared, bad)
    with pytest.raises(TypeError, match="prepared"):
        core.predict_one("weights", np.ascontiguousarray(images[0]))


def test_the_preset_batch_warp_on_the_team_equals_the_twin(mnist_train):
    """The preset's 64 images are warped on the team (from 32 on, docs/SPEC.md
    §9.8); any team gives the NumPy twin's bytes."""
    from lenet5.augment import augment_numpy
    from lenet5.loop import AUGMENT_RANGES

    images = mnist_train[0]
    index = np.arange(64) * 911 % 60000
    twin = augment_numpy(images[index], index, seed=3, epoch=2, **AUGMENT_RANGES).tobytes()
    for threads in (1, 2, 3):
        assert core.augment(images[index], index, seed=3, epoch=2, threads=threads, **AUGMENT_RANGES).tobytes() == twin


def test_the_workspace_entry_points_check_their_arguments_in_c(mnist_train):
    """C never trusts its caller: each refusal comes back as a code, with the
    parameters untouched."""
    from lenet5._core import ffi, lib

    images, labels = mnist_train
    params = LeNet5.init(seed=0).params.copy()
    before = params.copy()
    ws = core.Workspace().pointer
    p = ffi.cast("double *", ffi.from_buffer(params))
    velocity = np.zeros(core.N_PARAMS)  # kept alive: the pointers below do not hold their arrays
    v = ffi.cast("double *", ffi.from_buffer(velocity))
    x = ffi.cast("uint8_t *", ffi.from_buffer(images[:4]))
    y = ffi.cast("uint8_t *", ffi.from_buffer(labels[:4]))
    loss, correct = ffi.new("double *"), ffi.new("int64_t *")
    seconds = ffi.new("double[]", lib.L5_PROFILE_STAGES)

    keys = np.array([0, 1, 2, 3], dtype=np.int64)
    bad_keys = np.array([0, 1, -2, 3], dtype=np.int64)
    k, bad_k = (ffi.cast("int64_t *", ffi.from_buffer(a)) for a in (keys, bad_keys))

    def train(
        ws=ws,
        velocity=v,
        momentum=0.0,
        decay=0.0,
        nesterov=0,
        seconds=ffi.NULL,
        n_seconds=0,
        n=4,
        index=ffi.NULL,
        shift=3.0,
    ):
        return lib.l5_train_batch_ws(
            ws,
            p,
            velocity,
            core.N_PARAMS,
            x,
            y,
            n,
            lib.L5_LOSS_XENT,
            -1,
            0.1,
            momentum,
            decay,
            nesterov,
            index,
            7,
            0,
            shift,
            12.0,
            0.1,
            1,
            seconds,
            n_seconds,
            loss,
            correct,
        )

    assert train(ws=ffi.NULL) == lib.L5_ERR_NULL
    assert train(velocity=ffi.NULL, momentum=0.9) == lib.L5_ERR_NULL  # momentum without a velocity
    assert train(momentum=1.0) == lib.L5_ERR_MOMENTUM and train(nesterov=2) == lib.L5_ERR_MOMENTUM
    assert train(decay=float("inf")) == lib.L5_ERR_DECAY
    assert train(seconds=seconds, n_seconds=lib.L5_PROFILE_STAGES - 1) == lib.L5_ERR_SIZE
    assert train(n=0) == lib.L5_ERR_COUNT
    assert train(index=bad_k) == lib.L5_ERR_AUGMENT and train(index=k, shift=15.0) == lib.L5_ERR_AUGMENT
    out = ffi.new("double[]", 40)
    assert lib.l5_forward_ws(ffi.NULL, p, core.N_PARAMS, x, 4, out, ffi.NULL, 1) == lib.L5_ERR_NULL
    assert lib.l5_forward_ws(ws, p, core.N_PARAMS, x, 4, ffi.NULL, ffi.NULL, 1) == lib.L5_ERR_NULL
    assert lib.l5_forward_ws(ws, p, core.N_PARAMS - 1, x, 4, out, ffi.NULL, 1) == lib.L5_ERR_SIZE
    assert params.tobytes() == before.tobytes()
    assert train(seconds=seconds, n_seconds=lib.L5_PROFILE_STAGES) == lib.L5_OK  # and a good call runs
    assert params.tobytes() != before.tobytes() and sum(seconds[k] for k in range(lib.L5_PROFILE_STAGES)) > 0
