"""The Python boundary of the C core.

Every function here checks its arrays (dtype, shape, contiguity, writability)
and scalars (range, finiteness) before a pointer reaches C, then makes one
call.  Bad input raises ``TypeError`` (wrong kind of thing) or ``ValueError``
(right kind, wrong value) naming the argument; C is never called with it.
"""

from __future__ import annotations

import dataclasses
import numbers
import os
import threading
from typing import Any, Dict, Optional, Tuple

import numpy as np

from . import _sources
from .rules import (  # noqa: F401  (the rules live in lenet5.rules; lenet5.core.check_* stay importable)
    AUGMENT_LIMITS,
    BLOCKS,
    IMAGE_PIXELS,
    KERNELS,
    LOSSES,
    MAX_THREADS,
    N_CLASSES,
    N_PARAMS,
    _refuse,
    block,
    check_augment_range,
    check_count,
    check_images,
    check_kernel,
    check_labels,
    check_loss,
    check_lr,
    check_momentum,
    check_params,
    check_sign,
    check_threads,
    check_velocity,
    check_weight_decay,
)

# OpenMP threads that wait at a barrier sleep instead of spinning (read by
# libgomp when the core loads it, so set before the import; the caller's own
# OMP_WAIT_POLICY wins).  On a shared machine a spinning thread burns the
# time a preempted team mate needs, and 2 threads then ran 2 to 3 times
# slower than 1; sleeping costs microseconds a batch (docs/SPEC.md §9.1).
os.environ.setdefault("OMP_WAIT_POLICY", "passive")

try:
    from ._core import ffi, lib
except ImportError as e:  # pragma: no cover - depends on how the package was installed
    raise ImportError(
        f"lenet5's compiled C core is missing next to {__file__} ({e}). Either build it in place "
        "with `pip install -e .`, or, after a plain `pip install .`, run Python from another "
        "folder than the source tree (whose lenet5/ has no compiled core)."
    ) from None
# In a source checkout the core must be built from the csrc/ beside it (a core
# older than this check has no hash at all, and is stale too).
_sources.check_fresh(ffi.string(lib.l5_build_sources_hash()).decode() if hasattr(lib, "l5_build_sources_hash") else "")

PREPARED_BYTES: int = lib.L5_PREPARED_BYTES

# lenet5.rules writes the core's figures once for Python, loading no C; here
# they meet the compiled core, and a difference stops the import.
assert (N_PARAMS, IMAGE_PIXELS, N_CLASSES, MAX_THREADS) == (
    lib.L5_N_PARAMS,
    lib.L5_IMAGE_PIXELS,
    lib.L5_N_CLASSES,
    lib.L5_MAX_THREADS,
), "lenet5.rules: a limit differs"
assert LOSSES == {"mse": lib.L5_LOSS_MSE, "xent": lib.L5_LOSS_XENT}, "lenet5.rules: LOSSES differ"
assert KERNELS == {"reference": lib.L5_KERNEL_REFERENCE, "fast": lib.L5_KERNEL_FAST}, "lenet5.rules: KERNELS differ"
assert [offset for offset, _ in BLOCKS.values()] == [
    lib.L5_OFF_W1,
    lib.L5_OFF_W2,
    lib.L5_OFF_W3,
    lib.L5_OFF_W4,
    lib.L5_OFF_B1,
    lib.L5_OFF_B2,
    lib.L5_OFF_B3,
    lib.L5_OFF_B4,
], "lenet5.rules: a block's offset differs"

_ERRORS: Dict[int, str] = {
    lib.L5_ERR_NULL: "a required pointer was NULL",
    lib.L5_ERR_SIZE: "parameter array has the wrong size",
    lib.L5_ERR_COUNT: "no images",
    lib.L5_ERR_LABEL: "a label is outside 0..9",
    lib.L5_ERR_LOSS: "unknown loss",
    lib.L5_ERR_SIGN: "sign must be +1 or -1",
    lib.L5_ERR_LR: "learning rate must be finite and > 0",
    lib.L5_ERR_KERNEL: "unknown kernel",
    lib.L5_ERR_THREADS: f"thread count must be 0 (the default) or 1 to {lib.L5_MAX_THREADS}",
    lib.L5_ERR_PREPARED: "the prepared buffer is the wrong size, misaligned or was never prepared",
    lib.L5_ERR_MOMENTUM: "momentum must lie in [0, 1)",
    lib.L5_ERR_DECAY: "weight decay must be finite and >= 0",
    lib.L5_ERR_AUGMENT: "an augmentation range or image index is out of bounds",
    lib.L5_ERR_ISA: "that instruction set is not built or this CPU lacks it",
    lib.L5_ERR_BUSY: "the workspace is in use by another call (give each thread its own)",
}


def have_openmp() -> bool:
    """True if this build of the core runs on several threads."""
    return bool(lib.l5_have_openmp())


def default_threads() -> int:
    """How many threads the core uses when not told (OpenMP's default, docs/SPEC.md §9.1)."""
    return int(lib.l5_default_threads())


#: The instruction-set variants of the fast kernels, widest first (docs/SPEC.md §9.4).
ISAS: Tuple[str, ...] = ("avx512", "avx2", "sse2", "generic")


def isa() -> str:
    """The instruction-set variant the fast kernels run: one of ISAS. By default
    the widest this CPU supports; ``LENET5_ISA`` or ``use_isa`` choose another.
    IsaEnvironmentError if LENET5_ISA named one that cannot run here."""
    _variant_ready()
    return ffi.string(lib.l5_isa()).decode()


def isa_lanes() -> int:
    """Images per tile of the running variant: 8 (avx512), 4 (avx2), 2 (sse2, generic)."""
    _variant_ready()
    return int(lib.l5_isa_lanes())


def runnable_isas() -> Tuple[str, ...]:
    """The variants this build holds and this CPU can run, widest first."""
    return tuple(name for name in ISAS if lib.l5_isa_status(name.encode()) == lib.L5_ISA_RUNS)


def use_isa(name: str) -> None:
    """Run the fast kernels' variant ``name`` from now on, in this process (all
    variants give the same bits; docs/SPEC.md §9.4). Switch only while no other
    thread is inside the core. ValueError if the name is unknown, the build
    lacks it or this CPU cannot run it."""
    if name not in ISAS:
        raise ValueError(f"instruction set must be one of {', '.join(ISAS)}, not {name!r}")
    status = lib.l5_isa_status(name.encode())
    if status != lib.L5_ISA_RUNS:
        why = "this CPU lacks it" if status == lib.L5_ISA_CPU_LACKS else "this build of lenet5 lacks it"
        raise ValueError(
            f"instruction set {name!r} cannot run: {why} (this machine runs: {', '.join(runnable_isas())})"
        )
    _call(lib.l5_use_isa(name.encode()))
    global _ISA_ENVIRONMENT_PROBLEM
    _ISA_ENVIRONMENT_PROBLEM = None  # an explicit choice replaces the environment's


class IsaEnvironmentError(ValueError):
    """LENET5_ISA names a variant that this build or this CPU cannot run."""


#: Why the LENET5_ISA choice cannot be honoured, or None.  Set at import, raised
#: by the first call that would run the vector kernels (_variant_ready), so
#: that importing works and a command can report it in one line (exit 2).
_ISA_ENVIRONMENT_PROBLEM: Optional[str] = None


def _use_isa_from_environment() -> None:
    """LENET5_ISA=avx512|avx2|sse2|generic forces a variant for the whole process."""
    global _ISA_ENVIRONMENT_PROBLEM
    name = os.environ.get("LENET5_ISA", "")
    if name:
        try:
            use_isa(name)
        except ValueError as e:
            _ISA_ENVIRONMENT_PROBLEM = f"LENET5_ISA={name}: {e}"


def _variant_ready() -> None:
    """Raise IsaEnvironmentError if LENET5_ISA asked for a variant that cannot
    run: no kernel runs on another variant than the one asked for."""
    if _ISA_ENVIRONMENT_PROBLEM is not None:
        raise IsaEnvironmentError(_ISA_ENVIRONMENT_PROBLEM)


def _call(rc: int) -> None:
    """Raise for a return code other than L5_OK: MemoryError, or RuntimeError naming the refusal."""
    if rc == lib.L5_ERR_NOMEM:
        raise MemoryError("lenet5 core: out of memory")
    if rc != lib.L5_OK:  # the checks below should make this unreachable
        raise RuntimeError(f"lenet5 core refused the call: {_ERRORS.get(rc, rc)}")


def _ptr(ctype: str, array: np.ndarray) -> Any:
    """A cffi pointer of type ctype to the array's buffer (no copy)."""
    return ffi.cast(ctype, ffi.from_buffer(array))


class Workspace:
    """The fast kernels' working memory, kept from call to call (docs/SPEC.md
    §9.8): tiles, chunk buffers, rearranged weights and sums, allocated by the
    first call and reused by the next, freed with the object.  One serves one
    call at a time; the calls below take the calling thread's own
    (``thread_workspace()``) unless given one."""

    __slots__ = ("pointer",)

    def __init__(self) -> None:
        raw = lib.l5_workspace_new()
        if raw == ffi.NULL:
            raise MemoryError("lenet5 core: out of memory")
        self.pointer = ffi.gc(raw, lib.l5_workspace_free)

    def __repr__(self) -> str:
        return "Workspace()"


_thread_local = threading.local()


def thread_workspace() -> Workspace:
    """The calling thread's own Workspace, made on its first use and freed with the thread."""
    ws = getattr(_thread_local, "workspace", None)
    if ws is None:
        ws = _thread_local.workspace = Workspace()
    return ws


def _workspace(workspace: Optional[Workspace]) -> Any:
    """The pointer of the given Workspace, or of the calling thread's."""
    if workspace is None:
        return thread_workspace().pointer
    if not isinstance(workspace, Workspace):
        _refuse(TypeError, "workspace", f"must be a lenet5.core.Workspace, not {type(workspace).__name__}")
    return workspace.pointer


def _checked_batch(
    params: Any, images: Any, labels: Any, loss: Any, sign: Any, lr: Any
) -> Tuple[np.ndarray, Tuple[Any, ...]]:
    """The checks every training batch starts with (params writable). Returns
    the labels as the core reads them, which the caller keeps alive through
    the call, and the C arguments: images, labels, n, loss, sign, lr."""
    check_params(params, writable=True)
    n = check_images(images)
    labels = check_labels(labels, n)
    return labels, (
        _ptr("uint8_t *", images),
        _ptr("uint8_t *", labels),
        n,
        check_loss(loss),
        check_sign(sign),
        check_lr(lr),
    )


def train_batch(
    params: np.ndarray,
    images: np.ndarray,
    labels: np.ndarray,
    *,
    loss: str,
    sign: int,
    lr: float,
    kernel: str = "fast",
    threads: Optional[int] = None,
    velocity: Optional[np.ndarray] = None,
    momentum: float = 0.0,
    weight_decay: float = 0.0,
    nesterov: bool = False,
    warp: Optional[Warp] = None,
    workspace: Optional[Workspace] = None,
) -> Tuple[float, int]:
    """Train on one batch in place; returns (summed loss, number correct).

    The loss and the count are those of the forward pass, before the update
    (docs/SPEC.md §6.3). S sums the per-image output-error gradients (mse:
    negative gradient; xent: positive) (docs/SPEC.md §8.1). Without velocity
    the update is the reference's ``params = params + sign * (lr / N) * S``
    (docs/SPEC.md §8.2); with a velocity buffer (zeros before the first batch,
    kept by the caller) it is SGD with momentum, Nesterov's or heavy ball, and
    L2 weight decay (docs/SPEC.md §8.5), and velocity is updated in place.
    The fast kernels work in ``workspace`` (default: the calling thread's own,
    docs/SPEC.md §9.8), so that a run of batches allocates nothing after the first.
    With ``warp`` the batch is trained on ``warp.apply(images)``, the same
    bytes; the fast kernels warp each image in the batch's own thread team
    as they load it (docs/SPEC.md §9.8).
    """
    _variant_ready()
    k, t = check_kernel(kernel), check_threads(threads)
    if k == lib.L5_KERNEL_FAST:
        return _fast_batch(
            params, images, labels, loss, sign, lr, t, velocity, momentum, weight_decay, nesterov, warp, workspace, None
        )
    if warp is not None:  # the reference kernels take the warped bytes
        _checked_warp(warp, check_images(images))
        images = warp.apply(images, kernel=kernel, threads=threads)
    labels, batch = _checked_batch(params, images, labels, loss, sign, lr)
    loss_sum = ffi.new("double *")
    correct = ffi.new("int64_t *")
    sgd = _checked_sgd(velocity, momentum, weight_decay, nesterov)
    if velocity is None:
        _call(lib.l5_train_batch(_ptr("double *", params), N_PARAMS, *batch, k, t, loss_sum, correct))
    else:
        _call(
            lib.l5_train_batch_sgd(
                _ptr("double *", params), _ptr("double *", velocity), N_PARAMS, *batch, *sgd, k, t, loss_sum, correct
            )
        )
    return float(loss_sum[0]), int(correct[0])


def _fast_batch(
    params: Any,
    images: Any,
    labels: Any,
    loss: Any,
    sign: Any,
    lr: Any,
    threads: int,
    velocity: Optional[np.ndarray],
    momentum: Any,
    weight_decay: Any,
    nesterov: Any,
    warp: Optional[Warp],
    workspace: Optional[Workspace],
    seconds: Optional[np.ndarray],
) -> Tuple[float, int]:
    """One checked batch through the fast kernels in a workspace (train_batch's
    and profile_train_batch's); threads already checked.  seconds: None, or
    the stage clocks to add to.  Returns (summed loss, number correct)."""
    labels, batch = _checked_batch(params, images, labels, loss, sign, lr)
    sgd = _checked_sgd(velocity, momentum, weight_decay, nesterov)
    keys, draws = _checked_warp(warp, batch[2]) if warp is not None else (None, (0, 0, 0.0, 0.0, 0.0))
    loss_sum = ffi.new("double *")
    correct = ffi.new("int64_t *")
    _call(
        lib.l5_train_batch_ws(
            _workspace(workspace),
            _ptr("double *", params),
            ffi.NULL if velocity is None else _ptr("double *", velocity),
            N_PARAMS,
            *batch,
            *sgd,
            ffi.NULL if keys is None else _ptr("int64_t *", keys),
            *draws,
            threads,
            ffi.NULL if seconds is None else _ptr("double *", seconds),
            0 if seconds is None else len(seconds),
            loss_sum,
            correct,
        )
    )
    return float(loss_sum[0]), int(correct[0])


def _checked_sgd(
    velocity: Optional[np.ndarray], momentum: Any, weight_decay: Any, nesterov: Any
) -> Tuple[float, float, int]:
    """(momentum, weight_decay, nesterov) as C takes them; all zero without a velocity buffer."""
    if velocity is None:
        if momentum != 0.0 or weight_decay != 0.0 or nesterov:
            raise ValueError("momentum, weight_decay and nesterov need a velocity buffer")
        return 0.0, 0.0, 0
    check_velocity(velocity)
    if not isinstance(nesterov, bool):
        raise TypeError(f"nesterov must be True or False, not {nesterov!r}")
    return check_momentum(momentum), check_weight_decay(weight_decay), int(nesterov)


@dataclasses.dataclass(frozen=True)
class Warp:
    """The seeded affine warp of a batch (docs/SPEC.md §8.6).

    Image i is turned by up to +/- rotate degrees, scaled by up to +/- scale
    and shifted by up to +/- shift pixels, drawn from (seed, epoch, index[i])
    alone, then resampled bilinearly and rounded to bytes.  ``apply`` warps
    images; ``train_batch(..., warp=)`` trains on the warped batch without
    making it first.
    """

    index: np.ndarray
    seed: int
    epoch: int
    shift: float
    rotate: float
    scale: float

    def apply(self, images: np.ndarray, kernel: str = "fast", threads: Optional[int] = None) -> np.ndarray:
        """The warped images, new uint8 images of the same shape (``augment``)."""
        return augment(
            images,
            self.index,
            seed=self.seed,
            epoch=self.epoch,
            shift=self.shift,
            rotate=self.rotate,
            scale=self.scale,
            kernel=kernel,
            threads=threads,
        )


def _checked_warp(warp: Any, n: int) -> Tuple[np.ndarray, Tuple[int, int, float, float, float]]:
    """The index as C takes it (int64, contiguous: the caller keeps it alive
    through the call) and (seed, epoch, shift, rotate, scale), for n images."""
    if not isinstance(warp, Warp):
        raise TypeError(f"warp must be a lenet5.core.Warp, not {type(warp).__name__}")
    index = warp.index
    if not isinstance(index, np.ndarray) or index.shape != (n,) or not np.issubdtype(index.dtype, np.integer):
        raise ValueError(f"index must be an integer numpy array of shape ({n},), one per image")
    if index.min() < 0:
        raise ValueError("index must hold image positions >= 0")
    index = np.ascontiguousarray(index, dtype=np.int64)
    ranges = [
        check_augment_range(v, k) for k, v in (("shift", warp.shift), ("rotate", warp.rotate), ("scale", warp.scale))
    ]
    seed = check_count(warp.seed, "seed", minimum=0)
    epoch = check_count(warp.epoch, "epoch", minimum=0)
    if seed >= 2**64:
        raise ValueError(f"seed must be below 2**64, not {seed}")
    return index, (seed, epoch, ranges[0], ranges[1], ranges[2])


def augment(
    images: np.ndarray,
    index: np.ndarray,
    *,
    seed: int,
    epoch: int,
    shift: float,
    rotate: float,
    scale: float,
    kernel: str = "fast",
    threads: Optional[int] = None,
) -> np.ndarray:
    """The seeded affine warp of each image (docs/SPEC.md §8.6), as new uint8 images of the same shape.

    Image i is turned by up to +/- rotate degrees, scaled by up to +/- scale
    and shifted by up to +/- shift pixels, drawn from (seed, epoch, index[i])
    alone, then resampled bilinearly and rounded to bytes.  The reference
    kernel warps a pixel at a time, the fast one a vector of pixels: the same bytes.
    """
    _variant_ready()
    n = check_images(images)
    k = check_kernel(kernel)
    keys, draws = _checked_warp(Warp(index, seed, epoch, shift, rotate, scale), n)
    out = np.empty_like(images)
    _call(
        lib.l5_augment(
            _ptr("uint8_t *", images),
            _ptr("int64_t *", keys),
            n,
            *draws,
            _ptr("uint8_t *", out),
            k,
            check_threads(threads),
        )
    )
    return out


def forward(
    params: np.ndarray, images: np.ndarray, *, kernel: str = "fast", threads: Optional[int] = None
) -> np.ndarray:
    """The 10 ReLU-ed outputs of each image, shape (N, 10) (docs/SPEC.md §4, §5.1-§5.4)."""
    _variant_ready()
    check_params(params)
    n = check_images(images)
    k, t = check_kernel(kernel), check_threads(threads)
    out = np.empty((n, N_CLASSES), dtype=np.float64)
    if k == lib.L5_KERNEL_FAST:  # in the calling thread's workspace (docs/SPEC.md §9.8)
        _call(
            lib.l5_forward_ws(
                _workspace(None),
                _ptr("double *", params),
                N_PARAMS,
                _ptr("uint8_t *", images),
                n,
                _ptr("double *", out),
                ffi.NULL,
                t,
            )
        )
    else:
        _call(
            lib.l5_forward(
                _ptr("double *", params), N_PARAMS, _ptr("uint8_t *", images), n, _ptr("double *", out), k, t
            )
        )
    return out


def predict(
    params: np.ndarray, images: np.ndarray, *, kernel: str = "fast", threads: Optional[int] = None
) -> np.ndarray:
    """The predicted digit of each image (largest output, ties to the smaller; docs/SPEC.md §5.5)."""
    _variant_ready()
    check_params(params)
    n = check_images(images)
    k, t = check_kernel(kernel), check_threads(threads)
    pred = np.empty(n, dtype=np.int32)
    if k == lib.L5_KERNEL_FAST:
        _call(
            lib.l5_forward_ws(
                _workspace(None),
                _ptr("double *", params),
                N_PARAMS,
                _ptr("uint8_t *", images),
                n,
                ffi.NULL,
                _ptr("int32_t *", pred),
                t,
            )
        )
    else:
        _call(
            lib.l5_predict(
                _ptr("double *", params), N_PARAMS, _ptr("uint8_t *", images), n, _ptr("int32_t *", pred), k, t
            )
        )
    return pred


def image_gradient(params: np.ndarray, image: np.ndarray, label: int, loss: str) -> Tuple[np.ndarray, float]:
    """The per-image gradient buffer G of one image and its loss (docs/SPEC.md §7, §6.3).

    mse: G is the NEGATIVE gradient of E = 1/2 sum (softmax(z) - y)^2 (docs/SPEC.md §6.1);
    xent: G is the POSITIVE gradient of -log softmax(z)[label] (docs/SPEC.md §6.2).
    """
    check_params(params)
    if not isinstance(image, np.ndarray) or image.shape not in ((28, 28), (IMAGE_PIXELS,)):
        raise ValueError("image must be one numpy array of shape (28, 28) or (784,)")
    check_images(image.reshape(1, IMAGE_PIXELS), name="image")
    image = np.ascontiguousarray(image)
    if isinstance(label, bool) or not isinstance(label, numbers.Integral) or not 0 <= int(label) < N_CLASSES:
        raise ValueError(f"label must be an integer in 0..9, not {label!r}")
    code = check_loss(loss)
    grad = np.empty(N_PARAMS, dtype=np.float64)
    value = ffi.new("double *")
    _call(
        lib.l5_image_gradient(
            _ptr("double *", params),
            N_PARAMS,
            _ptr("uint8_t *", image),
            int(label),
            code,
            _ptr("double *", grad),
            value,
        )
    )
    return grad, float(value[0])


def forward_activations(params: np.ndarray, image: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One (28, 28) uint8 image inside the network (reference kernels): the
    first convolution's maps (6, 28, 28) and the second's (16, 10, 10), both
    after their ReLU (docs/SPEC.md §5.2), and the 10 outputs (§5.4)."""
    check_params(params)
    if not isinstance(image, np.ndarray) or image.shape != (28, 28):
        raise ValueError("image must be a numpy array of shape (28, 28)")
    check_images(image.reshape(1, 28, 28), name="image")
    image = np.ascontiguousarray(image)
    layer1 = np.empty((6, 28, 28), dtype=np.float64)
    layer3 = np.empty((16, 10, 10), dtype=np.float64)
    output = np.empty(N_CLASSES, dtype=np.float64)
    _call(
        lib.l5_forward_activations(
            _ptr("double *", params),
            N_PARAMS,
            _ptr("uint8_t *", image),
            _ptr("double *", layer1),
            _ptr("double *", layer3),
            _ptr("double *", output),
        )
    )
    return layer1, layer3, output


def normalize(image: np.ndarray) -> np.ndarray:
    """The 32 x 32 network input of one 28 x 28 uint8 image (docs/SPEC.md §4)."""
    if not isinstance(image, np.ndarray) or image.shape != (28, 28):
        raise ValueError("image must be a numpy array of shape (28, 28)")
    check_images(image.reshape(1, 28, 28), name="image")
    image = np.ascontiguousarray(image)
    out = np.empty((32, 32), dtype=np.float64)
    _call(lib.l5_normalize(_ptr("uint8_t *", image), _ptr("double *", out)))
    return out


class Prepared:
    """Weights laid out for prepared inference (docs/SPEC.md §9.6), made by
    ``prepare(params)``: a read-only copy, so it keeps answering for the
    parameters it was made from whatever happens to them later."""

    __slots__ = ("buffer", "pointer")

    def __init__(self, buffer: np.ndarray) -> None:
        self.buffer = buffer
        self.pointer = _ptr("void *", buffer)  # made once: a single image's call is short

    def __repr__(self) -> str:
        return f"Prepared({PREPARED_BYTES} bytes)"


def check_prepared(prepared: Any, name: str = "prepared") -> Any:
    """A Prepared made by prepare(); returns the pointer to its buffer."""
    if not isinstance(prepared, Prepared):
        _refuse(TypeError, name, f"must be made by lenet5.core.prepare(params), not {type(prepared).__name__}")
    return prepared.pointer


def prepare(params: np.ndarray) -> Prepared:
    """Lay out params once for forward_prepared and predict_prepared (docs/SPEC.md §9.6).
    The values are copied, not computed on: the passes give the bits of forward()."""
    _variant_ready()
    check_params(params)
    # 64-byte aligned (a cache line): conv2's and conv3's weight rows then never straddle two lines
    room = np.empty(PREPARED_BYTES // 8 + 8, dtype=np.float64)
    skip = (-room.ctypes.data % 64) // 8
    buffer = room[skip : skip + PREPARED_BYTES // 8]
    _call(lib.l5_prepare(_ptr("double *", params), N_PARAMS, _ptr("void *", buffer), PREPARED_BYTES))
    buffer.flags.writeable = False
    return Prepared(buffer)


def forward_prepared(prepared: Prepared, images: np.ndarray, *, threads: Optional[int] = None) -> np.ndarray:
    """forward() from prepared weights: the same bits, shape (N, 10) (docs/SPEC.md §9.6).
    Fewer than 16 images run on the calling thread; the GIL is released meanwhile."""
    _variant_ready()
    pointer = check_prepared(prepared)
    n = check_images(images)
    t = check_threads(threads)
    out = np.empty((n, N_CLASSES), dtype=np.float64)
    _call(lib.l5_forward_prepared(pointer, PREPARED_BYTES, _ptr("uint8_t *", images), n, _ptr("double *", out), t))
    return out


def predict_prepared(prepared: Prepared, images: np.ndarray, *, threads: Optional[int] = None) -> np.ndarray:
    """predict() from prepared weights: the same digits, int32 (N,) (docs/SPEC.md §5.5, §9.6)."""
    _variant_ready()
    pointer = check_prepared(prepared)
    n = check_images(images)
    t = check_threads(threads)
    pred = np.empty(n, dtype=np.int32)
    _call(lib.l5_predict_prepared(pointer, PREPARED_BYTES, _ptr("uint8_t *", images), n, _ptr("int32_t *", pred), t))
    return pred


#: Batches of at least this many images take the tile kernels (fast.c), smaller
#: ones the one-image kernel (infer.c), per variant: the crossover measured on 1
#: and 2 threads (docs/SPEC.md §9.8).  Either gives the same bits.
TILE_CROSSOVER: Dict[str, int] = {"avx512": 16, "avx2": 16, "sse2": 4, "generic": 4}


def tile_crossover() -> int:
    """The smallest batch the running variant gives to the tile kernels (docs/SPEC.md §9.8)."""
    return TILE_CROSSOVER[isa()]


def predict_one(prepared: Prepared, image: np.ndarray) -> int:
    """The digit of one (28, 28) C-contiguous uint8 image from prepared weights:
    predict_prepared's answer in fewer steps, for the common case of one
    picture (docs/SPEC.md §9.8).  Anything else is refused: give it to
    predict_prepared, which takes every form."""
    if not is_one_image(image):
        _refuse(ValueError, "image", "must be one C-contiguous uint8 array of shape (28, 28)")
    if type(prepared) is not Prepared:
        check_prepared(prepared)
    return _digit_of_one(prepared.pointer, image)


def is_one_image(image: Any) -> bool:
    """True for exactly one C-contiguous uint8 numpy array of shape (28, 28),
    the input predict_one takes (the cheapest checks first)."""
    return (
        type(image) is np.ndarray and image.shape == _ONE_IMAGE and image.dtype == _UINT8 and image.flags.c_contiguous
    )


def _digit_of_one(pointer: Any, image: np.ndarray) -> int:
    """One call for an image is_one_image() accepted and a Prepared's pointer:
    its digit.  The C call checks the buffer again and answers with the digit
    itself, so nothing is allocated here."""
    if _ISA_ENVIRONMENT_PROBLEM is not None:
        raise IsaEnvironmentError(_ISA_ENVIRONMENT_PROBLEM)
    digit = _predict_one(pointer, PREPARED_BYTES, _from_buffer("uint8_t[]", image))
    if digit < 0:
        _call(digit)
    return digit


_ONE_IMAGE = (28, 28)
_UINT8 = np.dtype(np.uint8)
_predict_one, _from_buffer = lib.l5_predict_one, ffi.from_buffer  # looked up once: the call is short


def profile_stages() -> Tuple[Tuple[str, int], ...]:
    """The stages a profiled training batch is timed in, in the order they
    run, each with its multiply-adds per image (docs/SPEC.md §9.7)."""
    return tuple(
        (ffi.string(lib.l5_profile_stage_name(k)).decode(), int(lib.l5_profile_stage_macs(k)))
        for k in range(lib.L5_PROFILE_STAGES)
    )


def profile_train_batch(
    params: np.ndarray,
    images: np.ndarray,
    labels: np.ndarray,
    *,
    loss: str,
    sign: int,
    lr: float,
    threads: Optional[int] = None,
    velocity: Optional[np.ndarray] = None,
    momentum: float = 0.0,
    weight_decay: float = 0.0,
    nesterov: bool = False,
    warp: Optional[Warp] = None,
    workspace: Optional[Workspace] = None,
) -> Tuple[np.ndarray, float, int]:
    """train_batch with the fast kernels, timed by stage: returns (seconds
    per stage, summed over the threads, in the order of profile_stages();
    summed loss; number correct) (docs/SPEC.md §9.7).  The parameters (and
    the velocity, with momentum) change exactly as train_batch would change them."""
    _variant_ready()
    t = check_threads(threads)
    seconds = np.zeros(lib.L5_PROFILE_STAGES, dtype=np.float64)
    value, count = _fast_batch(
        params, images, labels, loss, sign, lr, t, velocity, momentum, weight_decay, nesterov, warp, workspace, seconds
    )
    return seconds, value, count


def peak_macs(threads: Optional[int] = None, seconds: float = 0.3) -> float:
    """Multiply-adds per second that `threads` threads reach with the running
    variant's vectors: independent multiplies then adds, as the kernels issue
    them (no fused multiply-add), for about `seconds` (docs/SPEC.md §9.7)."""
    _variant_ready()
    t = check_threads(threads)
    if not isinstance(seconds, numbers.Real) or not 0 < float(seconds) <= 60:
        _refuse(ValueError, "seconds", f"must be a number in (0, 60], not {seconds!r}")
    return float(lib.l5_peak_macs(t, float(seconds)))


_use_isa_from_environment()
