"""Figures of training runs, and the matplotlib plumbing every figure shares.

What a run did over time: ``plot_training`` (loss and accuracy per batch,
``train --plot``), ``plot_experiment`` (the four loss-and-sign runs,
``lenet5 experiment``) and ``plot_augmented`` (the warp's samples,
docs/augmented.png).  Figures of a trained *model* (its confusion matrix,
mistakes, filters, feature maps: ``evaluate --figures``) are in
``lenet5.figures``, which draws with this module's helpers.

matplotlib is an optional extra: ``pip install matplotlib`` (in a checkout:
``pip install -e ".[plot]"``).  Without it, nothing is drawn and the caller
gets a sentence saying how to get the figures."""

from __future__ import annotations

import math
from typing import Any, Iterable, List, Mapping, Optional, Sequence

from ._version import install_hint
from .files import PathLike, atomic_write

MISSING = f"matplotlib is not installed, so no figure was written; get it with: {install_hint('plot')}"


def have_matplotlib() -> bool:
    """True if matplotlib can be imported (the [plot] extra is installed)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _pyplot() -> Any:
    """matplotlib.pyplot on the file-only Agg backend, or None without matplotlib."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")  # files only, no screen needed
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: PathLike, plt: Any) -> None:
    """Write fig as a PNG atomically (docs/SPEC.md §10.4), then close it."""
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110, bbox_inches="tight"))
    plt.close(fig)


def _finite(values: Iterable[Optional[float]]) -> List[float]:
    """The values with None, inf and NaN as NaN: matplotlib leaves a gap there."""
    return [v if v is not None and math.isfinite(v) else float("nan") for v in values]


def plot_training(history: Mapping[str, Any], path: PathLike, title: str = "") -> str:
    """Loss and running accuracy per batch, test accuracy per epoch; returns a message."""
    plt = _pyplot()
    if plt is None:
        return MISSING
    batches = range(1, len(history["batch_loss"]) + 1)
    fig, (ax_loss, ax_acc) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    ax_loss.plot(batches, _finite(history["batch_loss"]), lw=1, color="tab:red")
    ax_loss.set_ylabel("training loss per image")
    ax_loss.set_yscale("log")
    ax_loss.set_title(f"lenet5 training: {title}" if title else "lenet5 training")
    ax_acc.plot(batches, [100 * a for a in history["running_accuracy"]], lw=1, label="running accuracy over the epoch")
    n_epochs = len(history["test_accuracy"])
    if n_epochs:
        per_epoch = len(history["batch_loss"]) // n_epochs
        ax_acc.plot(
            [per_epoch * (e + 1) for e in range(n_epochs)],
            [100 * a for a in history["test_accuracy"]],
            "o",
            color="black",
            label="test accuracy after each epoch",
        )
    ax_acc.set_xlabel("batch")
    ax_acc.set_ylabel("accuracy (%)")
    ax_acc.set_ylim(0, 100)
    ax_acc.grid(alpha=0.3)
    ax_acc.legend(loc="lower right")
    _save(fig, path, plt)
    return f"figure written to {path}"


def plot_experiment(runs: Sequence[Mapping[str, Any]], path: PathLike, batch_size: int) -> str:
    """Test accuracy and training loss over the batches of the four runs."""
    plt = _pyplot()
    if plt is None:
        return MISSING
    fig, (ax_acc, ax_loss) = plt.subplots(2, 1, figsize=(9, 7.5), sharex=True)
    for run in runs:
        style = "-" if run["descends"] else "--"
        ax_acc.plot(
            run["eval_batches"],
            [100 * a for a in run["test_accuracy"]],
            style,
            marker=".",
            color=run["color"],
            label=run["label"],
        )
        ax_loss.plot(
            range(1, len(run["batch_loss"]) + 1),
            _finite(run["batch_loss"]),
            style,
            lw=1,
            color=run["color"],
            label=run["label"],
        )
    ax_acc.axhline(10, color="gray", lw=0.8, ls=":")
    ax_acc.text(1, 11, "chance", color="gray", fontsize=8)
    ax_acc.set_ylabel("test accuracy (%)")
    ax_acc.set_ylim(0, 100)
    ax_acc.grid(alpha=0.3)
    ax_acc.legend(loc="center right", fontsize=9)
    ax_acc.set_title(f"Same initial model, batches of {batch_size}: the sign decides")
    ax_loss.set_yscale("log")
    ax_loss.set_ylabel("training loss per image\n(each run's own loss; gaps: inf/NaN)")
    ax_loss.set_xlabel("batch")
    ax_loss.grid(alpha=0.3)
    _save(fig, path, plt)
    return f"figure written to {path}"


def plot_augmented(images: Any, labels: Sequence[int], warped: Sequence[Any], path: PathLike) -> str:
    """A grid of training images (top row) and warped copies of them (rows
    below, one per epoch), each titled with its label: the labels must still
    fit (docs/SPEC.md §8.6).  Returns a sentence saying what was written."""
    plt = _pyplot()
    if plt is None:
        return MISSING
    rows, cols = 1 + len(warped), len(labels)
    fig, axes = plt.subplots(rows, cols, figsize=(1.1 * cols, 1.2 * rows))
    for c in range(cols):
        for r, grid in enumerate([images] + list(warped)):
            ax = axes[r][c]
            ax.imshow(grid[c], cmap="gray_r", vmin=0, vmax=255)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(str(labels[c]) if r == 0 else f"{labels[c]}, epoch {r - 1}", fontsize=7)
    _save(fig, path, plt)
    return f"wrote {path}"
