"""The training loop: the one place that walks epochs and batches.

Everything that trains calls ``train`` here: ``LeNet5.fit`` and so the
command line, the loss-and-sign experiment, the benchmark and the golden
tests.  A new training option goes into ``TrainConfig`` and this loop, once.

    config = TrainConfig(loss="xent", batch_size=300, epochs=1)
    history = train(engine, params, images, labels, config)

The loop (docs/SPEC.md §8.3): each epoch walks the images in file order, or
in a permutation fixed by (seed, epoch) when shuffling, in consecutive
batches; a final partial batch is dropped.  Because the order is a function
of (seed, epoch), a run can stop after any batch and resume from its
``Position`` with the same bytes (§8.4).  Time spent in the engine is the
run's ``train_seconds``; what the callers do between batches (evaluation,
checkpoints, progress) is not counted.

The settings live in lenet5.config and the stop signals in lenet5.signals;
their names stay importable from here (``lenet5.loop.TrainConfig``,
``lenet5.loop.InterruptRequest``, ...).
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from . import core, rules
from .config import (  # noqa: F401  (re-exported: the settings' old home)
    ADDED_FIELDS,
    AUGMENT_RANGES,
    DEFAULT_LR,
    DESCENDING_SIGN,
    PRESETS,
    SCHEDULES,
    TrainConfig,
)
from .engines import Engine
from .signals import STOP_SIGNALS, InterruptRequest, SignalStop  # noqa: F401  (re-exported)


@dataclass(frozen=True)
class Position:
    """Where a run is: the epoch (from 0) and the next batch within it (docs/SPEC.md §8.4)."""

    epoch: int = 0
    batch: int = 0


@dataclass
class History:
    """What a run recorded: per batch, per epoch, and the time in the engine."""

    batch_loss: List[float] = field(default_factory=list)  # summed loss / batch size
    batch_accuracy: List[float] = field(default_factory=list)  # correct / batch size
    running_accuracy: List[float] = field(default_factory=list)  # over the epoch so far
    test_accuracy: List[float] = field(default_factory=list)  # one per epoch, if evaluated
    val_accuracy: List[float] = field(default_factory=list)  # one per epoch, with a hold-out
    train_seconds: float = 0.0
    diverged_at: Optional[int] = None  # first batch (counted from 1) whose loss was not finite

    def to_dict(self) -> Dict[str, Any]:
        """The fields as a JSON-ready dict (a checkpoint's history, docs/SPEC.md §10.3)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Any) -> History:
        """A history from a checkpoint; unknown keys are ignored."""
        if not isinstance(values, dict):
            raise ValueError(f"history must be a JSON object, not {type(values).__name__}")
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


@dataclass(frozen=True)
class BatchReport:
    """What ``on_batch`` is told after each batch."""

    position: Position  # the position after this batch
    batches_per_epoch: int
    loss_sum: float  # this batch's summed loss
    correct: int  # this batch's correct predictions (before the update)
    epoch_loss: float  # mean loss per image over the epoch so far
    epoch_accuracy: float  # accuracy over the epoch so far


class Diverged(ArithmeticError):
    """The loss or the parameters became NaN or infinite."""

    def __init__(self, position: Position, loss: float) -> None:
        super().__init__(f"training diverged at epoch {position.epoch + 1}, batch {position.batch}: the loss is {loss}")
        self.position, self.loss = position, loss


class Stopped(Exception):
    """``should_stop`` asked the loop to stop; the run can resume at ``position``."""

    def __init__(self, position: Position) -> None:
        super().__init__(f"stopped at epoch {position.epoch + 1}, before batch {position.batch + 1}")
        self.position = position


def batches_per_epoch(n_images: int, batch_size: int) -> int:
    """Whole batches in an epoch (the final partial batch is dropped, docs/SPEC.md §8.3)."""
    if batch_size > n_images:
        raise ValueError(f"batch size {batch_size} is larger than the {n_images} training images")
    return n_images // batch_size


def epoch_order(n: int, epoch: int, seed: int, shuffle: bool) -> Optional[np.ndarray]:
    """The image order of one epoch: None for file order, or the permutation
    fixed by (seed, epoch) (docs/SPEC.md §8.3)."""
    if not shuffle:
        return None
    return np.random.default_rng([seed, epoch]).permutation(n)


#: The generator stream of the validation split, apart from the shuffles' [seed, epoch].
VAL_STREAM = 2**32 - 1


def validation_split(n: int, val: int, seed: int) -> Tuple[np.ndarray, np.ndarray]:
    """(training rows, validation rows) of n images with val held out
    (docs/SPEC.md §8.8): the first val of the permutation fixed by
    default_rng([seed, VAL_STREAM]), each part in file order."""
    if val >= n:
        raise ValueError(f"val {val} leaves no training images of the {n}")
    order = np.random.default_rng([seed, VAL_STREAM]).permutation(n)
    return np.sort(order[val:]), np.sort(order[:val])


def train(
    engine: Engine,
    params: np.ndarray,
    images: np.ndarray,
    labels: np.ndarray,
    config: TrainConfig,
    *,
    start: Position = Position(),
    history: Optional[History] = None,
    velocity: Optional[np.ndarray] = None,
    file_index: Optional[np.ndarray] = None,
    max_batches: Optional[int] = None,
    on_batch: Optional[Callable[[BatchReport], None]] = None,
    on_epoch: Optional[Callable[[int], None]] = None,
    should_stop: Optional[Callable[[], bool]] = None,
    stop_on_divergence: bool = True,
) -> History:
    """Train params in place from ``start`` to the end of ``config.epochs``.

    on_batch(report) runs after every batch, on_epoch(epochs_done) after every
    whole epoch.  should_stop() is asked after each batch: when true, the loop
    raises ``Stopped`` with the position to resume from.  max_batches ends the
    run after that many batches (the experiment's and the benchmark's
    partial epochs).  A loss or parameter that becomes NaN or infinite raises
    ``Diverged`` at once; with stop_on_divergence=False it is only recorded in
    ``history.diverged_at`` and training goes on (the experiment shows the
    collapse).  Returns the history, extended in place if one was given.

    velocity is the momentum buffer a config with momentum or weight decay
    needs (zeros to start; the caller keeps it, e.g. for checkpoints).
    file_index[r] is row r's index in the training file, which keys its
    augmentation (default: r itself).
    """
    n = rules.check_images(images)
    if config.uses_velocity and velocity is None:
        raise ValueError("momentum or weight decay needs a velocity buffer (np.zeros(N_PARAMS) to start)")
    sgd: Dict[str, Any] = {}
    if config.uses_velocity:
        sgd = dict(
            velocity=rules.check_velocity(velocity),
            momentum=config.momentum,
            weight_decay=config.weight_decay,
            nesterov=config.nesterov,
        )
    ids = np.arange(n, dtype=np.int64) if file_index is None else np.asarray(file_index, dtype=np.int64)
    if ids.shape != (n,):
        raise ValueError(f"file_index must hold one index per image ({n}), not shape {ids.shape}")
    per_epoch = batches_per_epoch(n, config.batch_size)
    if not (0 <= start.epoch and 0 <= start.batch < per_epoch):
        raise ValueError(f"start position {start} is outside the run's {per_epoch} batches per epoch")
    history = History() if history is None else history
    sign = config.sign
    assert sign is not None  # TrainConfig.__post_init__ filled it in
    b_size, done = config.batch_size, 0
    epoch, first = start.epoch, start.batch
    # A run that is allowed to diverge overflows on purpose: no warnings for it.
    quiet = np.errstate(all="ignore") if not stop_on_divergence else contextlib.nullcontext()
    with quiet:
        while epoch < config.epochs:
            order = epoch_order(n, epoch, config.seed, config.shuffle)
            seen = correct_total = 0
            loss_total = 0.0
            for b in range(first, per_epoch):
                rows = slice(b * b_size, (b + 1) * b_size) if order is None else order[b * b_size : (b + 1) * b_size]
                t0 = time.perf_counter()
                # The engine warps the batch (the C core as it loads each image, on the batch's threads).
                warp = core.Warp(ids[rows], config.seed, epoch, **AUGMENT_RANGES) if config.augment else None
                loss_sum, correct = engine.train_batch(
                    params,
                    images[rows],
                    labels[rows],
                    loss=config.loss,
                    sign=sign,
                    lr=config.batch_lr(epoch, b, per_epoch),
                    warp=warp,
                    **sgd,
                )
                history.train_seconds += time.perf_counter() - t0
                position = Position(epoch, b + 1)
                if not (math.isfinite(loss_sum) and np.isfinite(params).all()):
                    if stop_on_divergence:
                        raise Diverged(position, loss_sum)
                    if history.diverged_at is None:
                        history.diverged_at = len(history.batch_loss) + 1
                seen += b_size
                correct_total += correct
                loss_total += loss_sum
                history.batch_loss.append(loss_sum / b_size)
                history.batch_accuracy.append(correct / b_size)
                history.running_accuracy.append(correct_total / seen)
                if on_batch:
                    on_batch(
                        BatchReport(position, per_epoch, loss_sum, correct, loss_total / seen, correct_total / seen)
                    )
                done += 1
                if max_batches is not None and done >= max_batches:
                    return history
                if should_stop and should_stop() and b + 1 < per_epoch:
                    raise Stopped(position)
            epoch, first = epoch + 1, 0
            if on_epoch:
                on_epoch(epoch)
            if should_stop and should_stop() and epoch < config.epochs:
                raise Stopped(Position(epoch, 0))
    return history
