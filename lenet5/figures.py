"""Figures of a trained model: what it learned and where it fails;
``python -m lenet5.evaluate MODEL --figures DIR`` writes them.  (Figures of a
training *run* over time are ``lenet5.plots``'s, whose matplotlib helpers
this module uses.)

  confusion.png     the confusion matrix as a heatmap (rows: true digit)
  mistakes.png      the most confident mistakes: image, true label, answer, probability
  filters.png       the 6 first-layer filters and the 16 x 6 second-layer ones (W1, W2)
  feature_maps.png  one digit through every layer: input, conv1, pool1, conv2, pool2,
                    conv3 (120 values), the 10 outputs

matplotlib is the optional extra ``plot``; without it ``write_figures`` says
how to get it and draws nothing.  The activations come from the NumPy twin's
forward pass (docs/SPEC.md §5): pictures need no bit-exactness.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, List

import numpy as np

from . import rules
from .model import Evaluation, LeNet5
from .numpy_engine import forward
from .plots import MISSING, _pyplot, _save


def _confusion(plt: Any, result: Evaluation, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    shown = np.log10(1 + result.confusion)  # the diagonal dwarfs the mistakes: a log scale shows both
    im = ax.imshow(shown, cmap="viridis")
    for i in range(10):
        for j in range(10):
            v = int(result.confusion[i, j])
            if v:
                ax.text(
                    j,
                    i,
                    str(v),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="black" if shown[i, j] > 0.6 * shown.max() else "white",
                )
    ax.set_xticks(range(10))
    ax.set_yticks(range(10))
    ax.set_xlabel("predicted digit")
    ax.set_ylabel("true digit")
    ax.set_title(f"Confusion matrix: {100 * result.accuracy:.2f}% of {result.total} correct")
    fig.colorbar(im, ax=ax, label="log10(1 + count)")
    _save(fig, path, plt)


def _mistakes(plt: Any, images: np.ndarray, labels: np.ndarray, proba: np.ndarray, path: Path, count: int = 24) -> None:
    pred = proba.argmax(axis=1)
    wrong = np.flatnonzero(pred != labels)
    worst = wrong[np.argsort(-proba[wrong, pred[wrong]], kind="stable")][:count]
    cols = 8
    rows = max(1, -(-len(worst) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.3, rows * 1.55), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, k in zip(axes.ravel(), worst):
        ax.imshow(images[k], cmap="gray_r")
        ax.set_title(f"true {labels[k]}, read {pred[k]}\n{100 * proba[k, pred[k]]:.1f}%", fontsize=8)
    fig.suptitle(f"The {len(worst)} most confident mistakes (of {len(wrong)})")
    _save(fig, path, plt)


def _filters(plt: Any, params: np.ndarray, path: Path) -> None:
    w1, w2 = rules.block(params, "W1")[0], rules.block(params, "W2")  # (6, 5, 5), (6, 16, 5, 5)
    fig = plt.figure(figsize=(10, 5.2))
    grid = fig.add_gridspec(7, 17, width_ratios=[1.3] + [1] * 16, hspace=0.35, wspace=0.15)
    for m in range(6):
        ax = fig.add_subplot(grid[m + 1, 0])
        ax.imshow(w1[m], cmap="RdBu_r", vmin=-abs(w1[m]).max(), vmax=abs(w1[m]).max())
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_ylabel(f"conv1 {m + 1}", fontsize=7, rotation=0, ha="right", va="center")
        for o in range(16):
            ax2 = fig.add_subplot(grid[m + 1, o + 1])
            k = w2[m, o]
            ax2.imshow(k, cmap="RdBu_r", vmin=-abs(k).max(), vmax=abs(k).max())
            ax2.axis("off")
            if m == 0:
                ax2.set_title(f"{o + 1}", fontsize=7)
    fig.text(
        0.5,
        0.93,
        "Left: the 6 first-layer filters (W1). Right: the second layer's 16 filters "
        "(columns), one 5 x 5 kernel per input map (rows). Red positive, blue negative.",
        ha="center",
        fontsize=9,
    )
    _save(fig, path, plt)


def _feature_maps(plt: Any, params: np.ndarray, image: np.ndarray, label: int, path: Path) -> None:
    a = forward(params, image[None])
    layers = [
        ("input (normalised, 32 x 32)", a["input"][0]),
        ("conv1: 6 x 28 x 28", a["layer1"][0]),
        ("pool1: 6 x 14 x 14", a["layer2"][0]),
        ("conv2: 16 x 10 x 10", a["layer3"][0]),
        ("pool2: 16 x 5 x 5", a["layer4"][0]),
    ]
    fig = plt.figure(figsize=(12, 9))
    grid = fig.add_gridspec(len(layers) + 2, 16, hspace=0.6)
    for row, (title, maps) in enumerate(layers):
        for m in range(maps.shape[0]):
            ax = fig.add_subplot(grid[row, m])
            ax.imshow(maps[m], cmap="magma")
            ax.axis("off")
            if m == 0:  # the row's title, left-aligned over its first map
                ax.text(0, -0.25, title, transform=ax.transAxes, fontsize=9, ha="left", va="bottom")
    ax = fig.add_subplot(grid[len(layers), :])
    ax.bar(range(120), a["layer5"][0], color="tab:purple")
    ax.set_title("conv3: 120 values", fontsize=9, loc="left")
    ax.set_xlim(-1, 120)
    ax = fig.add_subplot(grid[len(layers) + 1, :])
    ax.bar(range(10), a["output"][0], color=["tab:red" if d == label else "tab:gray" for d in range(10)])
    ax.set_xticks(range(10))
    ax.set_title(f"outputs (true digit {label} in red)", fontsize=9, loc="left")
    _save(fig, path, plt)


def write_figures(net: LeNet5, images: np.ndarray, labels: np.ndarray, result: Evaluation, folder: Path) -> List[str]:
    """Draw the four figures into folder; returns the lines to tell the user."""
    plt = _pyplot()
    if plt is None:
        return [MISSING]
    folder.mkdir(parents=True, exist_ok=True)
    proba = net.predict_proba(images)
    right = np.flatnonzero(proba.argmax(axis=1) == labels)
    example = int(right[0]) if right.size else 0
    _confusion(plt, result, folder / "confusion.png")
    _mistakes(plt, images, labels, proba, folder / "mistakes.png")
    _filters(plt, net.params, folder / "filters.png")
    _feature_maps(plt, net.params, images[example], int(labels[example]), folder / "feature_maps.png")
    return [f"figures written to {folder}: confusion.png, mistakes.png, filters.png, feature_maps.png"]
