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
"""
from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Callable, Dict, List, Optional

import numpy as np

from . import core
from .engines import Engine

#: The learning rate each loss trains well with (docs/SPEC.md §8.2).
DEFAULT_LR = {"mse": 0.5, "xent": 0.1}
#: The sign that descends each loss: mse's error is the negative gradient, xent's the positive.
DESCENDING_SIGN = {"mse": +1, "xent": -1}


@dataclass(frozen=True)
class TrainConfig:
    """What a training run does; checked when made.  ``sign`` and ``lr``
    default to the ones that descend the loss (None fills them in)."""

    loss: str = "mse"
    sign: Optional[int] = None
    lr: Optional[float] = None
    batch_size: int = 300
    epochs: int = 1
    shuffle: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        core.check_loss(self.loss)
        sign = DESCENDING_SIGN[self.loss] if self.sign is None else core.check_sign(self.sign)
        lr = DEFAULT_LR[self.loss] if self.lr is None else core.check_lr(self.lr)
        object.__setattr__(self, "sign", sign)
        object.__setattr__(self, "lr", lr)
        object.__setattr__(self, "batch_size", core.check_count(self.batch_size, "batch_size"))
        object.__setattr__(self, "epochs", core.check_count(self.epochs, "epochs"))
        object.__setattr__(self, "seed", core.check_count(self.seed, "seed", minimum=0))
        if not isinstance(self.shuffle, bool):
            raise TypeError(f"shuffle must be True or False, not {self.shuffle!r}")

    @property
    def descends(self) -> bool:
        """True if the sign descends the loss (the other one climbs it)."""
        return self.sign == DESCENDING_SIGN[self.loss]

    def climb_warning(self) -> Optional[str]:
        """A sentence saying why this run will climb the loss, or None."""
        if self.descends:
            return None
        assert self.sign is not None  # __post_init__ filled it in
        good = DESCENDING_SIGN[self.loss]
        kind = "positive" if self.loss == "xent" else "negative"
        return (f"loss {self.loss} with sign {self.sign:+d} climbs the loss: {self.loss}'s output "
                f"error is the {kind} gradient, so w = w {'+' if self.sign > 0 else '-'} lr/B * S "
                f"goes uphill; expect training to collapse to chance. Sign {good:+d} descends.")

    def to_dict(self) -> Dict[str, Any]:
        """The fields as a JSON-ready dict (a checkpoint's settings, docs/SPEC.md §10.3)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Any) -> TrainConfig:
        """A config from a checkpoint's settings: every field must be there."""
        if not isinstance(values, dict):
            raise ValueError(f"settings must be a JSON object, not {type(values).__name__}")
        names = [f.name for f in fields(cls)]
        missing = [n for n in names if n not in values]
        if missing:
            raise ValueError(f"settings lack {', '.join(missing)}")
        return cls(**{n: values[n] for n in names})


@dataclass(frozen=True)
class Position:
    """Where a run is: the epoch (from 0) and the next batch within it (docs/SPEC.md §8.4)."""

    epoch: int = 0
    batch: int = 0


@dataclass
class History:
    """What a run recorded: per batch, per epoch, and the time in the engine."""

    batch_loss: List[float] = field(default_factory=list)        # summed loss / batch size
    batch_accuracy: List[float] = field(default_factory=list)    # correct / batch size
    running_accuracy: List[float] = field(default_factory=list)  # over the epoch so far
    test_accuracy: List[float] = field(default_factory=list)     # one per epoch, if evaluated
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

    position: Position        # the position after this batch
    batches_per_epoch: int
    loss_sum: float           # this batch's summed loss
    correct: int              # this batch's correct predictions (before the update)
    epoch_loss: float         # mean loss per image over the epoch so far
    epoch_accuracy: float     # accuracy over the epoch so far


class Diverged(ArithmeticError):
    """The loss or the parameters became NaN or infinite."""

    def __init__(self, position: Position, loss: float) -> None:
        super().__init__(f"training diverged at epoch {position.epoch + 1}, "
                         f"batch {position.batch}: the loss is {loss}")
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


def train(engine: Engine, params: np.ndarray, images: np.ndarray, labels: np.ndarray,
          config: TrainConfig, *, start: Position = Position(), history: Optional[History] = None,
          max_batches: Optional[int] = None,
          on_batch: Optional[Callable[[BatchReport], None]] = None,
          on_epoch: Optional[Callable[[int], None]] = None,
          should_stop: Optional[Callable[[], bool]] = None,
          stop_on_divergence: bool = True) -> History:
    """Train params in place from ``start`` to the end of ``config.epochs``.

    on_batch(report) runs after every batch, on_epoch(epochs_done) after every
    whole epoch.  should_stop() is asked after each batch: when true, the loop
    raises ``Stopped`` with the position to resume from.  max_batches ends the
    run after that many batches (the experiment's and the benchmark's
    partial epochs).  A loss or parameter that becomes NaN or infinite raises
    ``Diverged`` at once; with stop_on_divergence=False it is only recorded in
    ``history.diverged_at`` and training goes on (the experiment shows the
    collapse).  Returns the history, extended in place if one was given.
    """
    n = core.check_images(images)
    per_epoch = batches_per_epoch(n, config.batch_size)
    if not (0 <= start.epoch and 0 <= start.batch < per_epoch):
        raise ValueError(f"start position {start} is outside the run's {per_epoch} batches per epoch")
    history = History() if history is None else history
    sign, lr = config.sign, config.lr
    assert sign is not None and lr is not None  # TrainConfig.__post_init__ filled them in
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
                rows = slice(b * b_size, (b + 1) * b_size) if order is None else order[b * b_size:(b + 1) * b_size]
                t0 = time.perf_counter()
                loss_sum, correct = engine.train_batch(params, images[rows], labels[rows],
                                                       loss=config.loss, sign=sign, lr=lr)
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
                    on_batch(BatchReport(position, per_epoch, loss_sum, correct,
                                         loss_total / seen, correct_total / seen))
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


#: The signals that ask a run to stop and save: Ctrl-C, kill/timeout/systemd, a closed terminal.
STOP_SIGNALS = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n))


class SignalStop(KeyboardInterrupt):
    """A stop signal that cannot wait for the batch boundary (the second one,
    or one outside training); ``signum`` gives the exit status 128 + signum."""

    def __init__(self, signum: int, message: str = "") -> None:
        super().__init__(message or f"stopped by {signal.Signals(signum).name}")
        self.signum = signum


class InterruptRequest:
    """Turns Ctrl-C, SIGTERM and SIGHUP into a request to stop at the next
    batch boundary: use it as ``should_stop`` (docs/SPEC.md §8.4).  The first
    signal's number is ``signum``; a second signal raises ``SignalStop`` at
    once (an atomic save under way then removes its temporary file).
    Outside the main thread (where signals cannot be caught) it never asks."""

    def __init__(self) -> None:
        self.signum: Optional[int] = None
        self._previous: Dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        """True once a stop signal arrived."""
        return self.signum is not None

    def __enter__(self) -> InterruptRequest:
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is not None:
            raise SignalStop(signum, f"{signal.Signals(signum).name} again while stopping: stopped at once")
        self.signum = signum

    def __call__(self) -> bool:
        """True once a stop signal arrived: stop at this batch boundary."""
        return self.requested

    def __exit__(self, *exc: Any) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, signal.SIG_DFL if previous is None else previous)
        self._previous.clear()
