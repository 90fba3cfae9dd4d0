"""The model: one object to train, predict, evaluate and save.

    from lenet5 import LeNet5
    net = LeNet5.init(seed=0)                # or LeNet5.load("model.npz") (.npz or .dat)
    net.fit(train_images, train_labels, loss="xent", epochs=1, test=(test_images, test_labels))
    net.predict(images)                      # uint8 (N, 28, 28) or (28, 28) -> labels
    net.predict_proba(images)                # softmax of the outputs, rows sum to 1
    net.evaluate(images, labels)             # accuracy and confusion matrix
    net.save("model.npz")

``fit`` is the training loop of ``lenet5.loop`` with what a person wants
around it: progress, a test evaluation per epoch, checkpoints, a clean stop
on Ctrl-C.  The command line ``python -m lenet5.train`` is a thin wrapper
over it.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

import numpy as np

from . import core, engines
from .checkpoint import Checkpoint, save_checkpoint
from .core import _digit_of_one
from .core import is_one_image as _is_one_image
from .files import PathLike, save_or_rescue
from .loop import (
    BatchReport,
    Diverged,
    History,
    InterruptRequest,
    Position,
    Stopped,
    TrainConfig,
    batches_per_epoch,
    train,
    validation_split,
)
from .outputs import softmax
from .params import Meta, ModelFileError, check_finite, init_params, read_params, write_params
from .progress import Progress

__all__ = ["LeNet5", "Evaluation", "FitResult", "Interrupted", "ModelFileError"]


@dataclass
class Evaluation:
    """What evaluate() found: accuracy, counts and the confusion matrix
    (rows: true digit, columns: predicted digit)."""

    accuracy: float
    correct: int
    total: int
    confusion: np.ndarray

    def __str__(self) -> str:
        lines = [
            f"accuracy {100 * self.accuracy:.2f}% ({self.correct}/{self.total})",
            "true\\pred " + " ".join(f"{j:>5d}" for j in range(10)),
        ]
        for i, row in enumerate(self.confusion):
            lines.append(f"{i:>9d} " + " ".join(f"{v:>5d}" for v in row))
        return "\n".join(lines)


@dataclass
class FitResult:
    """What fit() did: the settings, the history and the final test score."""

    config: TrainConfig
    history: History
    train_images: int
    images_seen: int
    engine: str
    kernel: Optional[str]
    threads: Optional[int]
    test_correct: Optional[int] = None
    test_images: Optional[int] = None

    @property
    def test_accuracy(self) -> Optional[float]:
        """Correct / images of the last test evaluation, or None if there was none."""
        if self.test_correct is None or not self.test_images:
            return None
        return self.test_correct / self.test_images

    @property
    def images_per_second(self) -> Optional[float]:
        """Training images per second of time in the engine, or None before any."""
        seconds = self.history.train_seconds
        return self.images_seen / seconds if seconds > 0 else None

    def summary(self) -> Dict[str, Any]:
        """The run as a JSON-ready dict (the trainer's ``--json``)."""
        h = self.history
        return {
            "test_accuracy": self.test_accuracy,
            "test_correct": self.test_correct,
            "test_images": self.test_images,
            "train_seconds": h.train_seconds,
            "images_per_second": self.images_per_second,
            "train_images": self.train_images,
            "images_seen": self.images_seen,
            "final_batch_loss": h.batch_loss[-1] if h.batch_loss else None,
            **self.config.to_dict(),
            "engine": self.engine,
            "kernel": self.kernel,
            "threads": self.threads,
            # the instruction-set variant of the fast kernels (docs/SPEC.md §9.4)
            "isa": core.isa() if self.engine == "c" and self.kernel == "fast" else None,
            "epoch_test_accuracy": list(h.test_accuracy),
            **({"epoch_val_accuracy": list(h.val_accuracy)} if self.config.val else {}),
        }


class Interrupted(KeyboardInterrupt):
    """fit() stopped at a batch boundary on Ctrl-C, SIGTERM or SIGHUP
    (``signum``); a checkpoint, if one was asked for, holds the position to resume from."""

    def __init__(
        self, position: Position, batches_per_epoch: int, checkpoint: Optional[PathLike], signum: Optional[int] = None
    ) -> None:
        where = (
            f"epoch {position.epoch + 1}, after batch {position.batch} of {batches_per_epoch}"
            if position.batch
            else f"the end of epoch {position.epoch}"
        )
        saved = (
            f"; checkpoint written to {checkpoint}" if checkpoint else "; no checkpoint was asked for, nothing saved"
        )
        signum = signal.SIGINT if signum is None else signum  # exit status 128 + signum
        by = "" if signum == signal.SIGINT else f" by {signal.Signals(signum).name}"
        super().__init__(f"interrupted{by} at {where}{saved}")
        self.position, self.checkpoint, self.signum = position, checkpoint, signum


ImagesLike = np.ndarray

#: The shipped model (package data) and the one command that rebuilds it, byte for byte.
PRETRAINED_PATH = Path(__file__).parent / "pretrained" / "lenet5_best_seed0.npz"
PRETRAINED_COMMAND = "python -m lenet5.train --preset best --seed 0 --save lenet5/pretrained/lenet5_best_seed0.npz"


def _as_images(images: Any) -> np.ndarray:
    """Accept (28, 28), (N, 28, 28) or (N, 784) uint8; copy if not contiguous."""
    if not isinstance(images, np.ndarray):
        raise TypeError(f"images must be a numpy array, not {type(images).__name__}")
    if images.ndim == 2 and images.shape == (28, 28):
        images = images[None]
    images = np.ascontiguousarray(images)  # a copy only if it was not contiguous
    core.check_images(images)
    return images


class LeNet5:
    """A LeNet-5 model: one flat array of 51,902 doubles (docs/SPEC.md §3.1)
    and its metadata."""

    def __init__(self, params: Any, meta: Optional[Meta] = None) -> None:
        self.set_params(params)
        self.meta: Meta = dict(meta or {})

    @property
    def params(self) -> np.ndarray:
        """The flat parameter array (docs/SPEC.md §3.1), read-only: the model keeps
        its weights prepared for inference (docs/SPEC.md §9.6), so every change goes
        through ``set_params`` (or ``fit``), which prepares them again.  The array is
        a view of immutable memory: it cannot be made writable or resized."""
        return self._params

    @params.setter
    def params(self, params: Any) -> None:
        self.set_params(params)

    def set_params(self, params: Any) -> None:
        """Replace the parameters with a copy of params and prepare them: 51,902
        finite real numbers (float64, or floats and integers that float64 holds),
        the checks ``load`` applies to a file.  A refused array changes nothing."""
        self._adopt(self._checked_params(params))

    @staticmethod
    def _checked_params(params: Any) -> np.ndarray:
        """A private float64 copy of params after load's checks: real numbers
        (no strings, complex or booleans), 51,902 of them, all finite."""
        array = np.asarray(params)
        if array.dtype.kind not in "fiu":
            raise TypeError(f"params must be real numbers (float64), not {array.dtype}")
        if array.shape != (core.N_PARAMS,):
            raise ValueError(f"params must have shape ({core.N_PARAMS},), not {array.shape}")
        array = np.array(array, dtype=np.float64, copy=True)
        check_finite(array)
        return array

    def __getstate__(self) -> Dict[str, Any]:
        """What pickle and copy keep: the parameters and metadata (the prepared
        weights are made again on the way back)."""
        return {"params": self._params, "meta": self.meta}

    def __setstate__(self, state: Any) -> None:
        """Unpickling: the parameters get set_params' checks, the metadata must be a dict."""
        if not isinstance(state, dict) or not isinstance(state.get("meta"), dict) or "params" not in state:
            raise TypeError("not a pickled LeNet5: expected a dict with 'params' and a 'meta' dict")
        params = self._checked_params(state["params"])
        self.meta = dict(state["meta"])
        self._adopt(params)

    def _adopt(self, params: np.ndarray) -> None:
        """Keep a copy of params (checked) in immutable memory and prepare it.

        The array handed out is a view of a ``bytes`` object: numpy refuses to
        make it writable or to resize it, so the prepared weights, ``params``,
        ``activations`` and ``save`` cannot come to disagree."""
        locked = np.frombuffer(np.ascontiguousarray(params, dtype=np.float64).tobytes(), dtype=np.float64)
        self._prepared = core.prepare(locked)
        self._params = locked

    @classmethod
    def init(cls, seed: int = 0) -> LeNet5:
        """A fresh model from a seed (docs/SPEC.md §3.2)."""
        return cls(init_params(seed), {"seed": seed})

    @classmethod
    def pretrained(cls) -> LeNet5:
        """The model shipped with the package: ``--preset best`` from seed 0 on
        all 60,000 training images (docs/usage.md, "The shipped model"; rebuilt
        byte for byte by ``PRETRAINED_COMMAND``)."""
        return cls.load(PRETRAINED_PATH)

    @classmethod
    def load(cls, path: PathLike) -> LeNet5:
        """A model from a .npz or .dat file; ModelFileError says what is wrong."""
        params, meta = read_params(path)
        return cls(params, meta)

    def save(self, path: PathLike) -> None:
        """Write the model atomically (.npz with metadata, or .dat; docs/SPEC.md §10.1, §10.2, §10.4).
        Non-finite parameters (a diverged model) are refused with ValueError and
        nothing is written: ``load`` would refuse the file."""
        check_finite(self._params, "cannot save: params")
        write_params(path, self.params, self.meta)

    # -- elsewhere: ONNX and PyTorch (lenet5/onnx_export.py, lenet5/torch_model.py; docs/export.md) --

    def to_onnx(self, path: PathLike, float64: bool = False) -> None:
        """Write the model as an ONNX graph: uint8 ``images`` (N, 28, 28) in,
        ``outputs`` and ``probabilities`` (N, 10) out, float32 (or float64)
        (docs/SPEC.md §15).  Needs the onnx package (``pip install onnx``)."""
        from .onnx_export import export

        export(self._params, path, float64=float64)

    def to_torch(self) -> Any:
        """The model as a float64 ``torch.nn.Module`` (lenet5.torch_model.LeNet5Module;
        docs/SPEC.md §15.5).  Needs PyTorch (``pip install torch``)."""
        from .torch_model import to_module

        return to_module(self._params)

    @classmethod
    def from_torch(cls, module_or_state_dict: Any) -> LeNet5:
        """A model from a LeNet5Module or its state_dict (docs/SPEC.md §15.5),
        checked as ``load`` checks a file's parameters."""
        from .torch_model import from_state

        return cls(from_state(module_or_state_dict))

    def forward(self, images: ImagesLike, threads: Optional[int] = None) -> np.ndarray:
        """The 10 ReLU-ed outputs per image, shape (N, 10) (docs/SPEC.md §4, §5.1-§5.4)."""
        images = _as_images(images)
        if len(images) >= core.tile_crossover():  # the tile kernels: same bits (docs/SPEC.md §9.8)
            return core.forward(self._params, images, threads=threads)
        return core.forward_prepared(self._prepared, images, threads=threads)

    def predict(self, images: ImagesLike, threads: Optional[int] = None) -> Union[int, np.ndarray]:
        """Predicted digits: an int array of N labels (one int for one (28, 28) image;
        docs/SPEC.md §5.5)."""
        if _is_one_image(images):  # one picture: checked, then one call (docs/SPEC.md §9.8)
            return _digit_of_one(self._prepared.pointer, images)
        single = isinstance(images, np.ndarray) and images.shape == (28, 28)
        pred = self._predict(_as_images(images), threads)
        return int(pred[0]) if single else pred

    def _predict(self, images: np.ndarray, threads: Optional[int]) -> np.ndarray:
        """The digits of checked images: the tile kernels for a batch, the
        one-image kernel below the crossover (docs/SPEC.md §9.8); the same digits."""
        if len(images) >= core.tile_crossover():
            return core.predict(self._params, images, threads=threads)
        return core.predict_prepared(self._prepared, images, threads=threads)

    def predict_proba(self, images: ImagesLike, threads: Optional[int] = None) -> np.ndarray:
        """Softmax of the outputs, shape (N, 10); each row sums to 1 (docs/SPEC.md §6.4)."""
        return softmax(self.forward(images, threads))

    def activations(self, image: np.ndarray) -> Dict[str, np.ndarray]:
        """What one (28, 28) uint8 image looks like inside the network: the
        feature maps of the two convolutions after their ReLU ("conv1" (6, 28,
        28), "conv2" (16, 10, 10)), the 10 "outputs" and their softmax
        "probabilities" (docs/SPEC.md §5.2, §6.4)."""
        conv1, conv2, outputs = core.forward_activations(self._params, image)
        return {"conv1": conv1, "conv2": conv2, "outputs": outputs, "probabilities": softmax(outputs[None])[0]}

    def evaluate(self, images: ImagesLike, labels: Any, threads: Optional[int] = None) -> Evaluation:
        """Accuracy and confusion matrix on labelled images."""
        images = _as_images(images)
        labels = core.check_labels(np.asarray(labels), len(images))
        pred = self._predict(images, threads)
        confusion = np.zeros((10, 10), dtype=np.int64)
        np.add.at(confusion, (labels, pred), 1)
        correct = int(np.trace(confusion))
        return Evaluation(correct / len(labels), correct, len(labels), confusion)

    def fit(
        self,
        images: ImagesLike,
        labels: Any,
        *,
        loss: str = "mse",
        sign: Optional[int] = None,
        lr: Optional[float] = None,
        batch_size: int = 300,
        epochs: int = 1,
        shuffle: bool = False,
        seed: int = 0,
        momentum: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
        schedule: str = "constant",
        warmup: int = 0,
        augment: bool = False,
        val: int = 0,
        engine: str = "c",
        kernel: Optional[str] = None,
        threads: Optional[int] = None,
        test: Optional[Tuple[np.ndarray, np.ndarray]] = None,
        progress: bool = True,
        checkpoint: Optional[PathLike] = None,
        checkpoint_every: Optional[int] = None,
        resume: Optional[Checkpoint] = None,
        checkpoint_extra: Optional[Dict[str, Any]] = None,
    ) -> FitResult:
        """Train in place on (images, labels) and return what happened.

        The options are the command line's (``python -m lenet5.train --help``):
        loss 'mse' or 'xent'; sign and lr default to the ones that descend the
        loss; epochs of whole batches in file order, or shuffled by (seed,
        epoch).  momentum (with nesterov) and weight_decay make the update
        SGD with momentum and L2 decay (docs/SPEC.md §8.5); schedule
        'constant', 'step' or 'cosine' after warmup epochs of linear warm-up
        sets each batch's lr (§8.7); augment warps each training image by a
        draw from (seed, epoch, index) (§8.6); val holds out that many
        training images, seeded, and scores them after every epoch (§8.8).
        engine 'c' (kernel 'fast' or 'reference', threads) or 'numpy'.
        test=(images, labels) is evaluated after every epoch.
        progress shows a bar on a terminal and a line per epoch elsewhere.
        checkpoint writes model and position there every checkpoint_every
        batches (default None: each epoch; 0 is an error); resume continues a loaded Checkpoint
        (its settings win; the model's parameters are replaced by its own).
        Ctrl-C, SIGTERM or SIGHUP stops at the next batch boundary, writes the
        checkpoint and raises ``Interrupted`` (a second one: ``SignalStop`` at
        once), keeping the weights trained so far; a loss that turns NaN or
        infinite raises ``lenet5.loop.Diverged`` at once and the model is left
        as it was when fit was called (the checkpoint, if one was asked for,
        holds the progress up to its last write).  A checkpoint that cannot be written (a full disk) is written
        elsewhere and raises ``lenet5.files.WrittenElsewhere`` saying where.
        """
        images = _as_images(images)
        labels = core.check_labels(np.asarray(labels), len(images))
        params = self._params.copy()  # trained in place, then adopted (and prepared) at the end
        if resume is not None:
            config, start, history = resume.config, resume.position, resume.history
            params[...] = resume.params
        else:
            config = TrainConfig(
                loss=loss,
                sign=sign,
                lr=lr,
                batch_size=batch_size,
                epochs=epochs,
                shuffle=shuffle,
                seed=seed,
                momentum=momentum,
                nesterov=nesterov,
                weight_decay=weight_decay,
                schedule=schedule,
                warmup=warmup,
                augment=augment,
                val=val,
            )
            start, history = Position(), History()
        velocity = None
        if config.uses_velocity:
            velocity = (
                np.zeros(core.N_PARAMS) if resume is None or resume.velocity is None else np.array(resume.velocity)
            )
        file_index = np.arange(len(images))
        if config.val:
            file_index, val_rows = validation_split(len(images), config.val, config.seed)
            val_x, val_y = images[val_rows], labels[val_rows]
            images, labels = images[file_index], labels[file_index]
        eng = engines.get(engine, kernel=kernel, threads=threads)
        per_epoch = batches_per_epoch(len(images), config.batch_size)
        every = per_epoch if checkpoint_every is None else core.check_count(checkpoint_every, "checkpoint_every")
        if test is not None:
            test_x = _as_images(test[0])
            test_y = core.check_labels(np.asarray(test[1]), len(test_x), name="test labels")
        extra = dict(checkpoint_extra or {})
        result = FitResult(
            config,
            history,
            len(images),
            config.epochs * per_epoch * config.batch_size,
            engine,
            getattr(eng, "kernel", None),
            (threads or core.default_threads()) if engine == "c" else None,
        )
        show = Progress(progress)

        def save_at(position: Position) -> None:
            if checkpoint:  # a failed write lands elsewhere and stops the run (WrittenElsewhere)
                state = Checkpoint(params, config, position, history, extra, velocity)
                save_or_rescue(checkpoint, lambda path: save_checkpoint(path, state))

        def score_test() -> None:
            if test is not None:
                result.test_correct = int((eng.predict(params, test_x) == test_y).sum())
                result.test_images = len(test_y)

        def on_batch(report: BatchReport) -> None:
            show.batch(report)
            if report.position.batch % every == 0 and report.position.batch < per_epoch:
                save_at(report.position)

        def on_epoch(done: int) -> None:
            score_test()
            line = f"epoch {done}/{config.epochs}: "
            if config.val:
                history.val_accuracy.append(float((eng.predict(params, val_x) == val_y).mean()))
                line += f"validation accuracy {100 * history.val_accuracy[-1]:.2f}%, "
            if result.test_accuracy is not None:
                history.test_accuracy.append(result.test_accuracy)
                line += f"test accuracy {100 * result.test_accuracy:.2f}%, "
            line += (
                f"train loss {history.batch_loss[-1]:.4f} (last batch), "
                f"{history.train_seconds:.2f} s in training so far"
            )
            show.end_epoch(line)
            save_at(Position(done, 0))
            if done < config.epochs:
                show.start_epoch(done + 1, config.epochs, per_epoch)

        if start.epoch < config.epochs:
            show.start_epoch(start.epoch + 1, config.epochs, per_epoch, start.batch)
        diverged = False
        try:
            with InterruptRequest() as stop:  # also while the last checkpoint is saved
                try:
                    train(
                        eng,
                        params,
                        images,
                        labels,
                        config,
                        start=start,
                        history=history,
                        velocity=velocity,
                        file_index=file_index,
                        on_batch=on_batch,
                        on_epoch=on_epoch,
                        should_stop=stop,
                    )
                except Stopped as s:
                    show.close()
                    save_at(s.position)
                    raise Interrupted(s.position, per_epoch, checkpoint, stop.signum) from None
        except Diverged:
            diverged = True  # NaN weights are never adopted: the model stays as it was
            raise
        finally:
            show.close()
            if not diverged:
                self._adopt(params)  # whatever training reached, interrupted too
        if result.test_correct is None:  # resumed from a finished checkpoint
            score_test()
        self.meta = {
            "loss": config.loss,
            "sign": config.sign,
            "lr": config.lr,
            "batch_size": config.batch_size,
            "epochs": config.epochs,
            "images_seen": result.images_seen,
            "test_accuracy": result.test_accuracy,
        }
        return result

    def __repr__(self) -> str:
        return f"LeNet5({core.N_PARAMS} parameters, meta={self.meta})"
