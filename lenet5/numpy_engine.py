"""The NumPy twin: the same network, the same maths (docs/SPEC.md §4-§8), written the way
a NumPy programmer would, vectorised over the whole batch.

Convolutions are im2col (``sliding_window_view``) plus one matrix product;
the error over a convolution's input is col2im: 25 shifted products added up.
Sums run in whatever order BLAS chooses, so results agree with the C core to
about 1e-13 rather than to the bit (docs/SPEC.md §1); the tests hold it to that.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Dict, Optional, Tuple

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from . import rules
from .outputs import softmax

if TYPE_CHECKING:  # the warp is the C core's (docs/SPEC.md §8.6); this engine imports no C
    from .core import Warp

K = 5


def _blocks(params: np.ndarray) -> Dict[str, np.ndarray]:
    """Views of the parameter blocks by name (docs/SPEC.md §3.1)."""
    return {name: rules.block(params, name) for name in rules.BLOCKS}


def normalize(images: np.ndarray) -> np.ndarray:
    """(N, 28, 28) uint8 -> (N, 1, 32, 32) float64, per docs/SPEC.md §4; flat images -> 0."""
    x = images.reshape(len(images), 784).astype(np.float64)
    mean = x.sum(axis=1) / 784
    var = (images.reshape(len(images), 784).astype(np.int64) ** 2).sum(axis=1) / 784 - mean * mean
    flat = ~(var > 0)
    std = np.sqrt(np.where(flat, 1.0, var))
    out = np.zeros((len(images), 1, 32, 32))
    out[:, 0, 2:30, 2:30] = ((x - mean[:, None]) / std[:, None]).reshape(-1, 28, 28)
    out[flat] = 0.0
    return out


def im2col(x: np.ndarray) -> np.ndarray:
    """(N, C, H, W) -> (N, OH, OW, C*25): every 5x5 window as one row."""
    n, c, h, w = x.shape
    windows = sliding_window_view(x, (K, K), axis=(2, 3))  # (N, C, OH, OW, 5, 5)
    return windows.transpose(0, 2, 3, 1, 4, 5).reshape(n, h - K + 1, w - K + 1, c * K * K)


def conv_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """x (N, C, H, W), w [c_in][c_out][5][5] -> relu(conv + b), and the columns
    (docs/SPEC.md §5.2)."""
    cols = im2col(x)
    wmat = w.transpose(0, 2, 3, 1).reshape(-1, w.shape[1])  # (c_in*25, c_out)
    out = np.maximum(cols @ wmat + b, 0.0)
    return out.transpose(0, 3, 1, 2), cols


def conv_weight_grad(cols: np.ndarray, err: np.ndarray) -> np.ndarray:
    """Sum over the batch of input windows times errors -> [c_in][c_out][5][5]
    (docs/SPEC.md §7.2, summed over the batch as §8.1)."""
    n, c_out, oh, ow = err.shape
    g = cols.reshape(-1, cols.shape[-1]).T @ err.transpose(0, 2, 3, 1).reshape(-1, c_out)
    c_in = cols.shape[-1] // (K * K)
    return g.reshape(c_in, K, K, c_out).transpose(0, 3, 1, 2)


def conv_input_error(err: np.ndarray, w: np.ndarray, x: np.ndarray) -> np.ndarray:
    """col2im: each kernel offset scatters err * w into the input, then relugrad(x)
    (docs/SPEC.md §7.2)."""
    n, c_out, oh, ow = err.shape
    e = np.zeros(x.shape)
    e_rows = err.transpose(0, 2, 3, 1)  # (N, OH, OW, c_out)
    for i in range(K):
        for j in range(K):
            e[:, :, i : i + oh, j : j + ow] += (e_rows @ w[:, :, i, j].T).transpose(0, 3, 1, 2)
    return e * (x > 0)


def maxpool(x: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """2x2 max pool; also which of the four cells won (first on ties) (docs/SPEC.md §5.3)."""
    n, c, h, w = x.shape
    cells = x.reshape(n, c, h // 2, 2, w // 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(n, c, h // 2, w // 2, 4)
    win = cells.argmax(axis=-1)
    return np.take_along_axis(cells, win[..., None], axis=-1)[..., 0], win


def maxpool_backward(err: np.ndarray, win: np.ndarray) -> np.ndarray:
    """Each pooled error back to the cell that won its window, zeros elsewhere (docs/SPEC.md §7.3)."""
    n, c, oh, ow = err.shape
    cells = np.zeros((n, c, oh, ow, 4))
    np.put_along_axis(cells, win[..., None], err[..., None], axis=-1)
    return cells.reshape(n, c, oh, ow, 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(n, c, 2 * oh, 2 * ow)


def forward(params: np.ndarray, images: np.ndarray) -> Dict[str, np.ndarray]:
    """All activations of a batch, kept for the backward pass (docs/SPEC.md §2, §5)."""
    p = _blocks(params)
    a = {"input": normalize(images)}
    a["layer1"], a["cols1"] = conv_forward(a["input"], p["W1"], p["b1"])
    a["layer2"], a["win2"] = maxpool(a["layer1"])
    a["layer3"], a["cols2"] = conv_forward(a["layer2"], p["W2"], p["b2"])
    a["layer4"], a["win4"] = maxpool(a["layer3"])
    flat4 = a["layer4"].reshape(len(images), -1)
    a["layer5"] = np.maximum(flat4 @ p["W3"].transpose(0, 2, 3, 1).reshape(-1, 120) + p["b3"], 0.0)
    a["output"] = np.maximum(a["layer5"] @ p["W4"] + p["b4"], 0.0)
    return a


def output_error(z: np.ndarray, labels: np.ndarray, loss: str) -> Tuple[np.ndarray, np.ndarray]:
    """d and the per-image loss (docs/SPEC.md §6.1, §6.2, §6.3); mse's d is the
    negative gradient, xent's the positive."""
    y = np.zeros_like(z)
    y[np.arange(len(z)), labels] = 1.0
    p = softmax(z)
    if loss == "mse":
        inner = p[np.arange(len(z)), labels] - (p * p).sum(axis=1)
        d = p * ((y - p) - inner[:, None])
        return d, 0.5 * ((p - y) ** 2).sum(axis=1)
    return p - y, -np.log(p[np.arange(len(z)), labels])


def batch_gradient(
    params: np.ndarray, images: np.ndarray, labels: np.ndarray, loss: str
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """S = the sum over the batch of the per-image gradient buffers
    (docs/SPEC.md §7, §8.1), the per-image losses, and the predictions of the
    forward pass."""
    p = _blocks(params)
    a = forward(params, images)
    d, losses = output_error(a["output"], labels, loss)
    n = len(images)
    g = np.zeros(rules.N_PARAMS)
    gb = _blocks(g)
    gb["W4"][...] = a["layer5"].T @ d
    gb["b4"][...] = d.sum(axis=0)
    w3 = p["W3"].transpose(0, 2, 3, 1).reshape(-1, 120)  # (400, 120)
    e5 = (d @ p["W4"].T) * (a["layer5"] > 0)
    gb["W3"][...] = (a["layer4"].reshape(n, -1).T @ e5).reshape(16, K, K, 120).transpose(0, 3, 1, 2)
    gb["b3"][...] = e5.sum(axis=0)
    e4 = (e5 @ w3.T).reshape(a["layer4"].shape) * (a["layer4"] > 0)
    e3 = maxpool_backward(e4, a["win4"])
    gb["W2"][...] = conv_weight_grad(a["cols2"], e3)
    gb["b2"][...] = e3.sum(axis=(0, 2, 3))
    e2 = conv_input_error(e3, p["W2"], a["layer2"])
    e1 = maxpool_backward(e2, a["win2"])
    gb["W1"][...] = conv_weight_grad(a["cols1"], e1)
    gb["b1"][...] = e1.sum(axis=(0, 2, 3))
    return g, losses, a["output"].argmax(axis=1)


def sgd_update(
    params: np.ndarray,
    velocity: np.ndarray,
    s: np.ndarray,
    n: int,
    *,
    sign: int,
    lr: float,
    momentum: float,
    weight_decay: float,
    nesterov: bool,
) -> None:
    """SGD with momentum and L2 weight decay from the batch sum S of n images,
    in place (docs/SPEC.md §8.5).  A line-by-line transcription of the C
    core's momentum_update (csrc/update.c): each NumPy operation rounds each
    element once, in the same order, so given the same S it gives the same
    bytes (the tests hold it to that)."""
    g = s / float(n)
    if sign < 0:
        g = -g
    g = g - weight_decay * params
    velocity[...] = momentum * velocity + g
    if nesterov:
        params[...] = params + lr * (g + momentum * velocity)
    else:
        params[...] = params + lr * velocity


class NumpyEngine:
    """Trains and predicts like the C engine, in NumPy."""

    name = "numpy"
    chunk = 500  # images per forward pass when predicting: bounds the im2col memory

    def train_batch(
        self,
        params: np.ndarray,
        images: np.ndarray,
        labels: np.ndarray,
        *,
        loss: str,
        sign: int,
        lr: float,
        velocity: Optional[np.ndarray] = None,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        warp: Optional[Warp] = None,
    ) -> Tuple[float, int]:
        """Train on one batch in place, w + sign * lr/B * S (docs/SPEC.md §8.2),
        or with a velocity buffer SGD with momentum and weight decay (§8.5);
        with a warp, on ``warp.apply(images)`` (§8.6); returns (summed loss,
        number correct) of the forward pass."""
        if warp is not None:
            images = warp.apply(images)
        rules.check_params(params, writable=True)
        n = rules.check_images(images)
        labels = rules.check_labels(labels, n)
        rules.check_loss(loss)
        sign, lr = rules.check_sign(sign), rules.check_lr(lr)
        s, losses, pred = batch_gradient(params, images.reshape(n, 28, 28), labels, loss)
        if velocity is None:
            if momentum != 0.0 or weight_decay != 0.0 or nesterov:
                raise ValueError("momentum, weight_decay and nesterov need a velocity buffer")
            k = lr / n
            params += sign * (k * s)
        else:
            rules.check_velocity(velocity)
            sgd_update(
                params,
                velocity,
                s,
                n,
                sign=sign,
                lr=lr,
                momentum=rules.check_momentum(momentum),
                weight_decay=rules.check_weight_decay(weight_decay),
                nesterov=bool(nesterov),
            )
        return float(losses.sum()), int((pred == labels).sum())

    def forward(self, params: np.ndarray, images: np.ndarray) -> np.ndarray:
        """The 10 ReLU-ed outputs of each image, shape (N, 10), in chunks of ``chunk`` images."""
        rules.check_params(params)
        n = rules.check_images(images)
        images = images.reshape(n, 28, 28)
        return np.concatenate([forward(params, images[i : i + self.chunk])["output"] for i in range(0, n, self.chunk)])

    def predict(self, params: np.ndarray, images: np.ndarray) -> np.ndarray:
        """The predicted digit of each image (first largest output, docs/SPEC.md §5.5)."""
        return self.forward(params, images).argmax(axis=1)
