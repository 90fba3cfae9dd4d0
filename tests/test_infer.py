"""Prepared inference (csrc/infer.c, docs/SPEC.md §9.6) against the reference kernels.

Bit for bit on random models and real images, for every batch size from 1 to
20 (the calling thread alone below 16, a team above) and several thread
counts; its checks against bad buffers; the GIL released around the call;
several Python threads at once giving what serial calls give; and a LeNet5
whose predictions follow its parameters through every public way to change them.
"""

import copy
import pickle
import threading
import time

import numpy as np
import pytest

from lenet5 import LeNet5, core
from lenet5.core import ffi, lib
from lenet5.params import init_params


def bits(a):
    return np.asarray(a).view(np.uint64)


def random_model(seed, scale=1.0):
    """A model with random biases, so that every layer has live and dead ReLUs."""
    rng = np.random.default_rng(seed)
    params = init_params(seed) * scale
    params[core.BLOCKS["b1"][0] :] += rng.normal(0, 0.1 * scale, core.N_PARAMS - core.BLOCKS["b1"][0])
    return params


def test_prepared_equals_reference_bit_for_bit(isa, mnist_test):
    """Finite weights: conv3 leaves out the terms of zero inputs (docs/SPEC.md
    §9.6), and still gives the reference's bits under every variant."""
    rng = np.random.default_rng(7)
    for seed, scale in [(0, 1.0), (1, 0.5), (2, 2.0), (3, 1.0)]:
        params = random_model(seed, scale)
        prepared = core.prepare(params)
        for n in range(1, 21):
            images = np.ascontiguousarray(mnist_test[0][rng.choice(10000, n, replace=False)])
            ref = core.forward(params, images, kernel="reference")
            for threads in (None, 1, 2, 3):
                out = core.forward_prepared(prepared, images, threads=threads)
                assert np.array_equal(bits(out), bits(ref)), (seed, n, threads)
                pred = core.predict_prepared(prepared, images, threads=threads)
                assert np.array_equal(pred, core.predict(params, images, kernel="reference"))


def test_prepared_equals_reference_on_odd_images_and_odd_parameters(isa, mnist_test):
    """Flat, random and saturated images; finite parameters, then parameters
    with inf and NaN in them (prepared inference then adds every term the
    reference adds, padding included, so even those agree to the bit)."""
    rng = np.random.default_rng(3)
    images = np.concatenate(
        [
            np.zeros((1, 28, 28), np.uint8),
            np.full((1, 28, 28), 255, np.uint8),
            rng.integers(0, 256, (5, 28, 28), dtype=np.uint8),
            mnist_test[0][:3],
        ]
    )
    for seed in range(4):
        params = random_model(seed)  # finite: the frame's rows and zero inputs' terms are left out
        ref = core.forward(params, images, kernel="reference")
        assert np.array_equal(bits(core.forward_prepared(core.prepare(params), images)), bits(ref))
        where = rng.integers(0, core.N_PARAMS, 30)
        params[where] = rng.choice([np.inf, -np.inf, np.nan], 30)
        ref = core.forward(params, images, kernel="reference")
        out = core.forward_prepared(core.prepare(params), images)
        assert np.array_equal(bits(out), bits(ref))


def test_prepared_weights_are_a_copy():
    params = random_model(4)
    prepared = core.prepare(params)
    image = np.full((1, 28, 28), 7, np.uint8)
    image[0, 10:18, 12:15] = 200
    before = core.forward_prepared(prepared, image)
    params[:] = 0.0
    assert np.array_equal(bits(core.forward_prepared(prepared, image)), bits(before))
    assert not prepared.buffer.flags.writeable


def test_prepared_boundary_refuses_bad_input_before_c():
    params = random_model(0)
    prepared = core.prepare(params)
    images = np.zeros((2, 28, 28), np.uint8)
    with pytest.raises(TypeError, match="prepared must be made by lenet5.core.prepare"):
        core.forward_prepared(params, images)
    with pytest.raises(TypeError, match="dtype uint8"):
        core.predict_prepared(prepared, images.astype(np.float64))
    with pytest.raises(ValueError, match="threads must be between 1 and 1024, not 0"):
        core.predict_prepared(prepared, images, threads=0)
    with pytest.raises(ValueError, match="shape"):
        core.prepare(params[:-1])


def test_c_refuses_bad_prepared_buffers():
    """C never trusts its caller: wrong size, misaligned, never prepared, NULL."""
    params = random_model(0)
    buf = np.zeros(lib.L5_PREPARED_BYTES // 8 + 1, np.float64)
    raw = ffi.cast("char *", ffi.from_buffer(buf))
    image = np.zeros(784, np.uint8)
    pred = np.empty(1, np.int32)
    img = ffi.cast("uint8_t *", ffi.from_buffer(image))
    out = ffi.cast("int32_t *", ffi.from_buffer(pred))
    par = ffi.cast("double *", ffi.from_buffer(params))
    size = lib.L5_PREPARED_BYTES
    assert lib.l5_predict_prepared(raw, size, img, 1, out, 1) == lib.L5_ERR_PREPARED  # all zeros
    assert lib.l5_predict_one(raw, size, img) == lib.L5_ERR_PREPARED
    assert lib.l5_prepare(par, core.N_PARAMS, raw, size - 8) == lib.L5_ERR_PREPARED
    assert lib.l5_prepare(par, core.N_PARAMS, raw + 4, size) == lib.L5_ERR_PREPARED
    assert lib.l5_prepare(par, core.N_PARAMS - 1, raw, size) == lib.L5_ERR_SIZE
    assert lib.l5_prepare(ffi.NULL, core.N_PARAMS, raw, size) == lib.L5_ERR_NULL
    assert lib.l5_prepare(par, core.N_PARAMS, raw, size) == lib.L5_OK
    assert lib.l5_predict_prepared(raw, size, img, 0, out, 1) == lib.L5_ERR_COUNT
    assert lib.l5_predict_prepared(raw, size, img, 1, out, -1) == lib.L5_ERR_THREADS
    assert lib.l5_predict_prepared(raw, size, img, 1, ffi.NULL, 1) == lib.L5_ERR_NULL
    assert lib.l5_forward_prepared(raw, size, ffi.NULL, 1, ffi.NULL, 1) == lib.L5_ERR_NULL
    assert lib.l5_predict_prepared(raw + 8, size, img, 1, out, 1) == lib.L5_ERR_PREPARED  # not its start
    assert lib.l5_predict_prepared(raw, size, img, 1, out, 1) == lib.L5_OK
    assert lib.l5_predict_one(raw, size - 8, img) == lib.L5_ERR_PREPARED
    assert lib.l5_predict_one(raw, size, ffi.NULL) == lib.L5_ERR_NULL
    assert lib.l5_predict_one(raw, size, img) == pred[0]


def test_the_gil_is_released_during_the_call(mnist_test):
    """While one thread is inside a long prepared call, another runs Python.
    With the GIL held, the second thread could not record a single tick
    strictly inside the call (it needs the GIL to run at all)."""
    prepared = core.prepare(random_model(0))
    images = np.ascontiguousarray(np.tile(mnist_test[0][:1000], (4, 1, 1)))
    ticks, stop = [], threading.Event()

    def spin():
        while not stop.is_set():
            ticks.append(time.perf_counter())

    spinner = threading.Thread(target=spin)
    spinner.start()
    try:
        time.sleep(0.02)
        start = time.perf_counter()
        core.predict_prepared(prepared, images, threads=1)
        end = time.perf_counter()
    finally:
        stop.set()
        spinner.join()
    margin = (end - start) / 4
    inside = [t for t in ticks if start + margin < t < end - margin]
    assert end - start > 0.02  # a call long enough to tell
    assert len(inside) > 10


def test_concurrent_predict_from_threads_equals_serial(mnist_test):
    net = LeNet5(random_model(5))
    chunks = [np.ascontiguousarray(mnist_test[0][i * 37 : (i + 1) * 37 + i]) for i in range(12)]
    singles = [np.ascontiguousarray(mnist_test[0][500 + i]) for i in range(40)]
    serial = [net.predict(c) for c in chunks]
    serial_out = [net.forward(c) for c in chunks]
    serial_one = [net.predict(s) for s in singles]
    results = []  # list.append is atomic: each thread adds what it saw

    def work(k):
        for _ in range(3):
            for i in range(len(chunks)):
                j = (i + k) % len(chunks)
                results.append((j, net.predict(chunks[j], threads=1 + k % 2), net.forward(chunks[j])))
            results.append(("one", [net.predict(s) for s in singles], None))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 6 * 3 * (len(chunks) + 1)
    for j, pred, out in results:
        if j == "one":
            assert pred == serial_one
        else:
            assert np.array_equal(pred, serial[j]) and np.array_equal(bits(out), bits(serial_out[j]))


def expect_follows(net, images):
    """net's prediction and outputs are the reference kernels' on net.params now."""
    assert np.array_equal(bits(net.forward(images)), bits(core.forward(net.params, images, kernel="reference")))
    assert np.array_equal(net.predict(images), core.predict(net.params, images, kernel="reference"))
    assert net.evaluate(images, core.predict(net.params, images, kernel="reference")).accuracy == 1.0


def test_predictions_follow_every_public_change_of_parameters(mnist_train, mnist_test, tmp_path):
    images = np.ascontiguousarray(mnist_test[0][:200])
    net = LeNet5.init(seed=1)
    expect_follows(net, images)
    with pytest.raises(ValueError, match="read-only"):
        net.params[0] = 1.0
    with pytest.raises(ValueError, match="read-only"):
        core.block(net.params, "b4")[:] = 5.0
    with pytest.raises(ValueError, match="writable"):
        core.train_batch(net.params, images[:10], mnist_test[1][:10], loss="xent", sign=-1, lr=0.1)

    before = net.predict(images)
    net.fit(mnist_train[0][:600], mnist_train[1][:600], loss="xent", batch_size=100, progress=False)
    assert not np.array_equal(net.predict(images), before)  # training changed the answers...
    expect_follows(net, images)  # ...and they are the new weights'
    assert not net.params.flags.writeable

    other = random_model(9)
    net.set_params(other)
    expect_follows(net, images)
    other[:] = 0.0  # set_params copied: the caller's array is still the caller's
    assert net.params.any()

    net.params = random_model(10)
    assert np.array_equal(net.params, random_model(10))
    expect_follows(net, images)
    with pytest.raises(ValueError, match="NaN or infinite"):
        net.set_params(np.full(core.N_PARAMS, np.nan))
    assert np.array_equal(net.params, random_model(10))  # a refused change changes nothing
    expect_follows(net, images)

    net.save(tmp_path / "m.npz")
    loaded = LeNet5.load(tmp_path / "m.npz")
    expect_follows(loaded, images)
    assert np.array_equal(loaded.predict(images), net.predict(images))


def test_copied_and_pickled_models_are_prepared_and_locked(mnist_test):
    net = LeNet5(random_model(11), {"note": "x"})
    images = np.ascontiguousarray(mnist_test[0][:50])
    for twin in (copy.deepcopy(net), copy.copy(net), pickle.loads(pickle.dumps(net))):
        assert twin.meta == {"note": "x"} and not twin.params.flags.writeable
        assert np.array_equal(bits(twin.params), bits(net.params))
        expect_follows(twin, images)
