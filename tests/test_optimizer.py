"""SGD with momentum and weight decay (docs/SPEC.md §8.5) and the learning-rate
schedules (§8.7): the C update equals its NumPy transcription bit for bit, at
every thread count and in both kernel sets; decay pulls toward zero whatever
the sign; the schedule's rate is the one each batch gets; a resume carries the
velocity and gives the same bytes."""

import json
import math

import numpy as np
import pytest

from lenet5 import core
from lenet5.checkpoint import Checkpoint, CheckpointError, load_checkpoint, save_checkpoint
from lenet5.engines import CEngine
from lenet5.loop import History, Position, TrainConfig, train
from lenet5.numpy_engine import NumpyEngine, sgd_update
from lenet5.params import init_params


def batch_sum(params, images, labels, loss):
    """S of docs/SPEC.md §8.1: the per-image gradients added in image order from +0."""
    s = np.zeros(core.N_PARAMS)
    for image, label in zip(images, labels):
        s = s + core.image_gradient(params, image, int(label), loss)[0]
    return s


@pytest.mark.parametrize("nesterov", [False, True])
@pytest.mark.parametrize("loss,sign", [("xent", -1), ("mse", +1), ("xent", +1)])
def test_momentum_update_equals_numpy_twin_bit_for_bit(mnist_train, nesterov, loss, sign):
    images, labels = mnist_train
    start = init_params(3)
    runs = {
        (kernel, threads): (start.copy(), np.zeros(core.N_PARAMS))
        for kernel, threads in (("reference", None), ("fast", 1), ("fast", 2), ("fast", 3))
    }
    twin, twin_v = start.copy(), np.zeros(core.N_PARAMS)
    for step in range(3):  # three batches, so the velocity carries something
        x, y = images[7 * step : 7 * step + 7], labels[7 * step : 7 * step + 7]
        s = batch_sum(twin, x, y, loss)
        sgd_update(twin, twin_v, s, len(x), sign=sign, lr=0.05, momentum=0.9, weight_decay=1e-3, nesterov=nesterov)
        for (kernel, threads), (p, v) in runs.items():
            core.train_batch(
                p,
                x,
                y,
                loss=loss,
                sign=sign,
                lr=0.05,
                kernel=kernel,
                threads=threads,
                velocity=v,
                momentum=0.9,
                weight_decay=1e-3,
                nesterov=nesterov,
            )
    assert not np.array_equal(twin, start)
    for (kernel, threads), (p, v) in runs.items():
        assert p.tobytes() == twin.tobytes(), (kernel, threads)
        assert v.tobytes() == twin_v.tobytes(), (kernel, threads)


def test_heavy_ball_and_nesterov_differ(mnist_train):
    images, labels = mnist_train
    out = []
    for nesterov in (False, True):
        p, v = init_params(0), np.zeros(core.N_PARAMS)
        for b in range(2):
            core.train_batch(
                p,
                images[b * 20 : (b + 1) * 20],
                labels[b * 20 : (b + 1) * 20],
                loss="xent",
                sign=-1,
                lr=0.05,
                velocity=v,
                momentum=0.9,
                nesterov=nesterov,
            )
        out.append(p)
    assert not np.array_equal(out[0], out[1])


@pytest.mark.parametrize("sign", [-1, +1])
def test_weight_decay_pulls_toward_zero_whatever_the_sign(mnist_train, sign):
    """One step from zero velocity: w' = w + lr * (sign * S/B - lambda * w), so
    the decayed run minus the undecayed one is -lr * lambda * w for both signs."""
    images, labels = mnist_train
    start = init_params(2)
    steps = {}
    for decay in (0.0, 0.01):
        p = start.copy()
        core.train_batch(
            p,
            images[:10],
            labels[:10],
            loss="xent",
            sign=sign,
            lr=0.1,
            velocity=np.zeros(core.N_PARAMS),
            momentum=0.5,
            weight_decay=decay,
        )
        steps[decay] = p
    pull = steps[0.01] - steps[0.0]
    np.testing.assert_allclose(pull, -0.1 * 0.01 * start, rtol=1e-6, atol=1e-15)
    moved = start != 0
    assert (np.abs(steps[0.01][moved]) < np.abs(steps[0.0][moved]) + 1e-12).mean() > 0.95


def test_numpy_engine_with_momentum_tracks_the_c_core(mnist_train):
    """The NumPy engine sums S in BLAS order, so it agrees to rounding, not to the bit."""
    images, labels = mnist_train
    runs = []
    for engine in (CEngine(), NumpyEngine()):
        p, v = init_params(1), np.zeros(core.N_PARAMS)
        for b in range(3):
            engine.train_batch(
                p,
                images[b * 30 : (b + 1) * 30],
                labels[b * 30 : (b + 1) * 30],
                loss="xent",
                sign=-1,
                lr=0.05,
                velocity=v,
                momentum=0.9,
                weight_decay=5e-4,
                nesterov=True,
            )
        runs.append(p)
    np.testing.assert_allclose(runs[0], runs[1], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize(
    "change,error",
    [
        (dict(momentum=-0.1), ValueError),
        (dict(momentum=1.0), ValueError),
        (dict(momentum=float("nan")), ValueError),
        (dict(weight_decay=-1e-4), ValueError),
        (dict(weight_decay=float("inf")), ValueError),
        (dict(nesterov=1), TypeError),
        (dict(velocity=np.zeros(10)), ValueError),
        (dict(velocity=np.zeros(core.N_PARAMS, dtype=np.float32)), TypeError),
    ],
)
def test_train_batch_refuses_bad_optimizer_arguments(mnist_train, change, error):
    images, labels = mnist_train
    p = init_params(0)
    args = dict(velocity=np.zeros(core.N_PARAMS), momentum=0.9, weight_decay=0.0, nesterov=False)
    args.update(change)
    with pytest.raises(error):
        core.train_batch(p, images[:4], labels[:4], loss="xent", sign=-1, lr=0.1, **args)
    assert np.array_equal(p, init_params(0))


def test_momentum_without_a_velocity_is_refused(mnist_train):
    images, labels = mnist_train
    with pytest.raises(ValueError, match="velocity"):
        core.train_batch(init_params(0), images[:4], labels[:4], loss="xent", sign=-1, lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match="velocity"):
        train(
            CEngine(), init_params(0), images[:40], labels[:40], TrainConfig(loss="xent", batch_size=10, momentum=0.9)
        )


@pytest.mark.parametrize(
    "bad",
    [
        dict(momentum=-0.5),
        dict(weight_decay=-1.0),
        dict(schedule="linear"),
        dict(nesterov=True),
        dict(warmup=3, epochs=3),
        dict(val=-1),
    ],
)
def test_config_refuses_bad_settings(bad):
    with pytest.raises((TypeError, ValueError)):
        TrainConfig(loss="xent", **bad)


def test_schedules_follow_their_formulas():
    lr, per_epoch, epochs = 0.2, 10, 6

    def rates(**kw):
        c = TrainConfig(loss="xent", lr=lr, epochs=epochs, **kw)
        return [c.batch_lr(e, b, per_epoch) for e in range(epochs) for b in range(per_epoch)]

    assert rates() == [lr] * 60
    step = rates(schedule="step")
    assert step[:20] == [lr] * 20 and step[20:40] == [lr * 0.1] * 20 and step[40:] == [lr * 0.1**2] * 20
    cosine = rates(schedule="cosine", warmup=1)
    assert cosine[:10] == [lr * (i + 1) / 10 for i in range(10)]
    assert cosine[10] == lr and all(a > b > 0 for a, b in zip(cosine[10:], cosine[11:]))
    assert cosine[35] == lr * 0.5 * (1 + math.cos(math.pi * 25 / 50))
    assert cosine[-1] < lr * 0.01


class RecordingEngine(CEngine):
    """The C engine, noting the lr each batch was given."""

    def __init__(self):
        super().__init__()
        self.rates = []

    def train_batch(self, params, images, labels, **kw):
        self.rates.append(kw["lr"])
        return super().train_batch(params, images, labels, **kw)


def test_each_batch_trains_with_its_scheduled_rate(mnist_train):
    images, labels = mnist_train
    config = TrainConfig(loss="xent", lr=0.1, batch_size=20, epochs=3, schedule="cosine", warmup=1)
    engine = RecordingEngine()
    train(engine, init_params(0), images[:100], labels[:100], config)
    assert engine.rates == [config.batch_lr(e, b, 5) for e in range(3) for b in range(5)]


def preset_like(**kw):
    return TrainConfig(
        loss="xent",
        lr=0.05,
        batch_size=20,
        epochs=2,
        shuffle=True,
        momentum=0.9,
        nesterov=True,
        weight_decay=5e-4,
        schedule="cosine",
        warmup=1,
        augment=True,
        seed=4,
        **kw,
    )


@pytest.mark.parametrize("stop_after", [3, 7])
def test_resume_with_velocity_gives_the_same_bytes(tmp_path, mnist_train, stop_after):
    images, labels = mnist_train[0][:200], mnist_train[1][:200]
    config = preset_like()
    whole, whole_v = init_params(0), np.zeros(core.N_PARAMS)
    train(CEngine(threads=2), whole, images, labels, config, velocity=whole_v)

    part, part_v = init_params(0), np.zeros(core.N_PARAMS)
    history = train(CEngine(threads=1), part, images, labels, config, velocity=part_v, max_batches=stop_after)
    position = Position(stop_after // 10, stop_after % 10)
    save_checkpoint(tmp_path / "ck.npz", Checkpoint(part, config, position, history, {}, part_v))
    ck = load_checkpoint(tmp_path / "ck.npz")
    assert ck.velocity is not None and ck.velocity.tobytes() == part_v.tobytes()
    resumed, resumed_v = ck.params.copy(), ck.velocity.copy()
    train(
        CEngine(threads=3),
        resumed,
        images,
        labels,
        ck.config,
        start=ck.position,
        history=ck.history,
        velocity=resumed_v,
    )
    assert resumed.tobytes() == whole.tobytes()
    assert resumed_v.tobytes() == whole_v.tobytes()


def test_checkpoint_velocity_must_match_its_settings(tmp_path):
    p = init_params(0)
    with pytest.raises(CheckpointError, match="velocity"):
        save_checkpoint(tmp_path / "a.npz", Checkpoint(p, preset_like(), Position(), History(), {}, None))
    plain = TrainConfig(loss="xent")
    save_checkpoint(tmp_path / "b.npz", Checkpoint(p, plain, Position(), History(), {}, None))
    assert load_checkpoint(tmp_path / "b.npz").velocity is None
    # A checkpoint whose settings were edited to have momentum, but holds no velocity.
    with np.load(tmp_path / "b.npz") as f:
        arrays = {k: f[k] for k in f.files}
    arrays["meta"] = np.array(str(arrays["meta"]).replace('"momentum": 0.0', '"momentum": 0.9'))
    np.savez(tmp_path / "c.npz", **arrays)
    with pytest.raises(CheckpointError, match="velocity"):
        load_checkpoint(tmp_path / "c.npz")


def test_old_checkpoints_without_the_new_settings_still_load(tmp_path):
    p = init_params(0)
    save_checkpoint(tmp_path / "old.npz", Checkpoint(p, TrainConfig(), Position(0, 1), History(), {}, None))
    with np.load(tmp_path / "old.npz") as f:
        arrays = {k: f[k] for k in f.files}
    meta = json.loads(str(arrays["meta"]))
    for name in ("momentum", "nesterov", "weight_decay", "schedule", "warmup", "augment", "val"):
        del meta["checkpoint"]["settings"][name]
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(tmp_path / "old.npz", **arrays)
    ck = load_checkpoint(tmp_path / "old.npz")
    assert ck.config == TrainConfig() and ck.velocity is None
