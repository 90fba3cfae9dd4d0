"""The training settings: ``TrainConfig``, the presets and the learning-rate
schedules (docs/SPEC.md §8.2, §8.5-§8.9).  Pure Python: it loads no C, so
settings are checked (by lenet5.rules) before anything runs.

    config = TrainConfig(loss="xent", batch_size=300, epochs=1)
    config.batch_lr(epoch, batch, per_epoch)   # the rate of one batch
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Dict, Optional

from . import rules

#: The learning rate each loss trains well with (docs/SPEC.md §8.2).
DEFAULT_LR = {"mse": 0.5, "xent": 0.1}
#: The sign that descends each loss: mse's error is the negative gradient, xent's the positive.
DESCENDING_SIGN = {"mse": +1, "xent": -1}
#: Learning-rate schedules (docs/SPEC.md §8.7).
SCHEDULES = ("constant", "step", "cosine")
#: The ranges of the training-image warp (docs/SPEC.md §8.6): up to +/- 3 pixels
#: of shift, 12 degrees of rotation and 10 % of scale.
AUGMENT_RANGES = {"shift": 3.0, "rotate": 12.0, "scale": 0.1}
#: Named settings for ``--preset`` (docs/SPEC.md §8.9); explicit options override them.
#: "best" was chosen on a validation hold-out of the training set, never on the test set.
PRESETS: Dict[str, Dict[str, Any]] = {
    "best": {
        "loss": "xent",
        "lr": 0.05,
        "batch_size": 64,
        "epochs": 20,
        "shuffle": True,
        "momentum": 0.9,
        "nesterov": True,
        "weight_decay": 5e-4,
        "schedule": "cosine",
        "warmup": 1,
        "augment": True,
    },
}
#: Fields added after the first checkpoints: a checkpoint without them ran
#: with these values (the reference's plain update, no warp, no hold-out).
ADDED_FIELDS = {
    "momentum": 0.0,
    "nesterov": False,
    "weight_decay": 0.0,
    "schedule": "constant",
    "warmup": 0,
    "augment": False,
    "val": 0,
}


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
    momentum: float = 0.0  # SGD momentum mu (docs/SPEC.md §8.5)
    nesterov: bool = False  # Nesterov's step instead of heavy ball
    weight_decay: float = 0.0  # L2 decay lambda, always toward zero
    schedule: str = "constant"  # lr over the run (docs/SPEC.md §8.7)
    warmup: int = 0  # epochs of linear warm-up
    augment: bool = False  # warp each training image (docs/SPEC.md §8.6)
    val: int = 0  # training images held out for validation (§8.8)

    def __post_init__(self) -> None:
        rules.check_loss(self.loss)
        sign = DESCENDING_SIGN[self.loss] if self.sign is None else rules.check_sign(self.sign)
        lr = DEFAULT_LR[self.loss] if self.lr is None else rules.check_lr(self.lr)
        object.__setattr__(self, "sign", sign)
        object.__setattr__(self, "lr", lr)
        object.__setattr__(self, "batch_size", rules.check_count(self.batch_size, "batch_size"))
        object.__setattr__(self, "epochs", rules.check_count(self.epochs, "epochs"))
        object.__setattr__(self, "seed", rules.check_count(self.seed, "seed", minimum=0))
        for flag in ("shuffle", "nesterov", "augment"):
            if not isinstance(getattr(self, flag), bool):
                raise TypeError(f"{flag} must be True or False, not {getattr(self, flag)!r}")
        object.__setattr__(self, "momentum", rules.check_momentum(self.momentum))
        object.__setattr__(self, "weight_decay", rules.check_weight_decay(self.weight_decay))
        if self.nesterov and self.momentum == 0.0:
            raise ValueError("nesterov needs a momentum above 0")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {list(SCHEDULES)}, not {self.schedule!r}")
        object.__setattr__(self, "warmup", rules.check_count(self.warmup, "warmup", minimum=0))
        if self.warmup >= self.epochs:
            raise ValueError(f"warmup ({self.warmup} epochs) must be shorter than the run ({self.epochs})")
        object.__setattr__(self, "val", rules.check_count(self.val, "val", minimum=0))

    @property
    def uses_velocity(self) -> bool:
        """True if the update is SGD with momentum or decay, which keeps a
        velocity buffer (docs/SPEC.md §8.5); False for the reference's."""
        return self.momentum > 0.0 or self.weight_decay > 0.0

    def batch_lr(self, epoch: int, batch: int, per_epoch: int) -> float:
        """The learning rate of one batch (docs/SPEC.md §8.7): a function of
        its position alone, so a resumed run uses the same rates.

        With i = epoch * per_epoch + batch, T = epochs * per_epoch batches in
        all and W = warmup * per_epoch of warm-up: lr * (i + 1) / W while
        i < W; then constant: lr; step: lr * 0.1 ** (3 * epoch // epochs),
        a tenth after each third of the run; cosine:
        lr * 0.5 * (1 + cos(pi * (i - W) / (T - W))).
        """
        lr = self.lr
        assert lr is not None  # __post_init__ filled it in
        i, total, warm = epoch * per_epoch + batch, self.epochs * per_epoch, self.warmup * per_epoch
        if i < warm:
            return lr * (i + 1) / warm
        if self.schedule == "step":
            return lr * 0.1 ** (3 * epoch // self.epochs)
        if self.schedule == "cosine":
            return lr * 0.5 * (1.0 + math.cos(math.pi * (i - warm) / (total - warm)))
        return lr

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
        return (
            f"loss {self.loss} with sign {self.sign:+d} climbs the loss: {self.loss}'s output "
            f"error is the {kind} gradient, so w = w {'+' if self.sign > 0 else '-'} lr/B * S "
            f"goes uphill; expect training to collapse to chance. Sign {good:+d} descends."
        )

    def to_dict(self) -> Dict[str, Any]:
        """The fields as a JSON-ready dict (a checkpoint's settings, docs/SPEC.md §10.3)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Any) -> TrainConfig:
        """A config from a checkpoint's settings: every field must be there."""
        if not isinstance(values, dict):
            raise ValueError(f"settings must be a JSON object, not {type(values).__name__}")
        names = [f.name for f in fields(cls)]
        missing = [n for n in names if n not in values and n not in ADDED_FIELDS]
        if missing:
            raise ValueError(f"settings lack {', '.join(missing)}")
        return cls(**{n: values.get(n, ADDED_FIELDS.get(n)) for n in names})
