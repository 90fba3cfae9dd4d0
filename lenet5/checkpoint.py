"""Checkpoints: a model file that also holds where its run stopped
(docs/SPEC.md §8.4, §10.3), so the run can resume with the same bytes.

A checkpoint is an .npz model whose metadata has a "checkpoint" object:
the position (epoch from 0, next batch), the run's settings (the
``TrainConfig`` fields, plus whatever the caller adds, such as the command
line's ``train_limit`` and ``init``) and the history so far.  A run with
momentum or weight decay also stores its velocity buffer, as the array
``velocity`` beside the parameter blocks.  Every field is
checked on reading: an edited or damaged checkpoint is refused with a
message naming the field, never half trusted.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Mapping, Optional

import numpy as np

from . import rules
from .config import TrainConfig
from .files import PathLike
from .loop import History, Position, batches_per_epoch
from .params import ModelFileError, read_extra_array, read_params, write_params


class CheckpointError(ValueError):
    """A file is not a usable checkpoint; the message names what is wrong."""


@dataclass
class Checkpoint:
    """A run's model and everything needed to continue it."""

    params: np.ndarray
    config: TrainConfig
    position: Position
    history: History
    extra: Dict[str, Any] = field(default_factory=dict)  # caller's settings (e.g. train_limit, init)
    velocity: Optional[np.ndarray] = None  # the momentum buffer, if config.uses_velocity


def save_checkpoint(path: PathLike, ck: Checkpoint) -> None:
    """Write the checkpoint (docs/SPEC.md §10.3) atomically (docs/SPEC.md §10.4)."""
    if Path(path).suffix.lower() != ".npz":
        raise CheckpointError(f"{path}: a checkpoint is an .npz file")
    position = {
        "epoch": ck.position.epoch,
        "batch": ck.position.batch,
        "settings": dict(ck.extra, **ck.config.to_dict()),
        "history": ck.history.to_dict(),
    }
    if ck.config.uses_velocity != (ck.velocity is not None):
        raise CheckpointError("a checkpoint holds a velocity exactly when its run has momentum or weight decay")
    write_params(path, ck.params, {"checkpoint": position}, None if ck.velocity is None else {"velocity": ck.velocity})


def _whole(state: Dict[str, Any], name: str) -> int:
    value = state.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise CheckpointError(f"field {name!r} must be a whole number >= 0, not {value!r}")
    return value


def load_checkpoint(path: PathLike) -> Checkpoint:
    """Read and check a checkpoint (docs/SPEC.md §10.3); CheckpointError says what is wrong."""
    try:
        params, meta = read_params(path)
    except ModelFileError as e:
        raise CheckpointError(str(e)) from None
    state = meta.get("checkpoint")
    if state is None:
        raise CheckpointError(f"{path} is a model, not a checkpoint")
    try:
        if not isinstance(state, dict):
            raise CheckpointError(f"field 'checkpoint' must be an object, not {type(state).__name__}")
        position = Position(_whole(state, "epoch"), _whole(state, "batch"))
        settings = state.get("settings")
        try:
            config = TrainConfig.from_dict(settings)
        except (TypeError, ValueError) as e:
            raise CheckpointError(f"field 'settings': {e}") from None
        try:
            history = History.from_dict(state.get("history", {}))
        except (TypeError, ValueError) as e:
            raise CheckpointError(f"field 'history': {e}") from None
        velocity = _velocity(path, config)
    except CheckpointError as e:
        raise CheckpointError(f"{path}: not a usable checkpoint: {e}") from None
    assert isinstance(settings, dict)
    extra = {k: v for k, v in settings.items() if k not in config.to_dict()}
    return Checkpoint(params, config, position, history, extra, velocity)


def _velocity(path: PathLike, config: TrainConfig) -> Optional[np.ndarray]:
    """The checkpoint's velocity: there exactly when its settings use one, and well formed."""
    try:
        velocity = read_extra_array(path, "velocity")
    except ModelFileError as e:
        raise CheckpointError(str(e)) from None
    if velocity is None:
        if config.uses_velocity:
            raise CheckpointError("array 'velocity' is missing, but the settings have momentum or weight decay")
        return None
    if not config.uses_velocity:
        raise CheckpointError("array 'velocity' is there, but the settings have no momentum or weight decay")
    if velocity.dtype != np.float64 or velocity.shape != (rules.N_PARAMS,) or not np.isfinite(velocity).all():
        raise CheckpointError(f"array 'velocity' must be {rules.N_PARAMS} finite float64 values")
    return np.array(velocity)


# -- the command line's resume policy (docs/SPEC.md §8.4) ------------------------

#: Options a checkpoint fixes beyond TrainConfig's fields; a resumed run takes them from it.
RUN_EXTRAS = ("train_limit", "init")
#: Output options a checkpoint records; a resumed run writes them unless given others.
OUTPUTS = ("save", "json", "plot")
#: Options that say how to run, not what: a resumed run may change them.
HOW_TO_RUN = ("data_dir", "engine", "kernel", "threads", "checkpoint_every")


def run_extras(options: Mapping[str, Any]) -> Dict[str, Any]:
    """What a checkpoint records beyond TrainConfig: the data selection and the
    outputs, as absolute paths (so a resume from another folder finds them)."""
    extra: Dict[str, Any] = {k: options.get(k) for k in RUN_EXTRAS}
    extra["outputs"] = {k: os.path.abspath(options[k]) if options.get(k) else None for k in OUTPUTS}
    return extra


def check_run_extras(path: PathLike, fixed: Mapping[str, Any]) -> Dict[str, Optional[str]]:
    """Check what a checkpoint adds to TrainConfig (the field named if wrong);
    returns its recorded outputs (name -> path or None)."""

    def bad(name: str, value: Any, rule: str) -> CheckpointError:
        return CheckpointError(f"{path}: not a usable checkpoint: field {name!r} must be {rule}, not {value!r}")

    limit = fixed.get("train_limit")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise bad("train_limit", limit, "a whole number >= 1 or null")
    if fixed.get("init") is not None and not isinstance(fixed["init"], str):
        raise bad("init", fixed["init"], "a path or null")
    outputs = fixed.get("outputs")
    if outputs is None:
        outputs = {}
    if not isinstance(outputs, dict) or not all(isinstance(v, str) or v is None for v in outputs.values()):
        raise bad("outputs", outputs, "an object of paths")
    return {name: outputs.get(name) for name in OUTPUTS}


def check_position(path: PathLike, position: Position, n_train: int, batch_size: int) -> int:
    """Refuse a checkpoint whose batch lies past the end of an epoch of this
    data; returns the batches per epoch."""
    per_epoch = batches_per_epoch(n_train, batch_size)
    if position.batch >= per_epoch:
        raise CheckpointError(
            f"{path}: field 'batch' is {position.batch}, past the end of an epoch of {per_epoch} batches"
        )
    return per_epoch


def resume_command(checkpoint: PathLike, options: Mapping[str, Any], quiet: bool = False) -> str:
    """The whole command that continues a run from its checkpoint, with the
    options that say how it ran (not the engine's default)."""
    cmd = ["python", "-m", "lenet5.train", "--resume", str(checkpoint)]
    for name in HOW_TO_RUN:
        value = options.get(name)
        if value is not None and not (name == "engine" and value == "c"):
            cmd += [f"--{name.replace('_', '-')}", str(value)]
    return shlex.join(cmd + (["--quiet"] if quiet else []))
