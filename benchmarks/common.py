"""What every benchmark shares: the machine's header, the JSON file, the PyTorch network.

- ``cpu_info()`` is the one reader of /proc/cpuinfo; ``header()`` is the
  common head of every ``docs/<name>.json`` a benchmark writes: the CPU's
  model name, family and model numbers, a summary of its vector flags, the
  core and thread counts, the commit, the date (UTC) and the versions of
  what was measured;
- ``write_json(path, body)`` writes ``{"header": header(), **body}``;
  ``benchmarks/render_tables.py`` renders the docs' tables from those files;
- ``TorchEngine`` is the one PyTorch LeNet-5 the benchmarks train and time:
  ``lenet5.torch_model.LeNet5Module`` (the module ``LeNet5.to_torch`` gives,
  docs/SPEC.md §15.5) driven as a lenet5 Engine on the caller's flat
  parameters;
- ``use_variant`` picks the fast kernels' instruction-set variant for a
  benchmark's ``--isa`` option.

Benchmarks import it as ``common`` (they run as scripts from benchmarks/, so
the folder is on ``sys.path``).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from lenet5 import __version__, core

ROOT = Path(__file__).resolve().parent.parent

#: The vector flags the header names (the ones the fast kernels' variants use).
FLAGS = ("sse2", "sse4_1", "avx", "avx2", "fma", "avx512f")

#: The distributions whose versions the header records, when installed.
VERSIONS = ("numpy", "cffi", "torch", "onnxruntime", "onnx", "pillow", "scipy", "starlette", "uvicorn")


def cpu_info() -> Dict[str, str]:
    """The first processor's fields of /proc/cpuinfo ('model name', 'cpu family',
    'model', 'flags', ...); on a system without it, the model name from platform."""
    fields: Dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if not line.strip():
                    if fields:
                        break  # the first processor's block is enough
                    continue
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    fields.setdefault("model name", platform.processor() or "unknown")
    return fields


def cpu_model() -> str:
    """The CPU's model name, e.g. 'Intel(R) Xeon(R) Processor'."""
    return cpu_info()["model name"]


def cpu_id() -> str:
    """'family F model M' (both '?' where the system does not say)."""
    info = cpu_info()
    return f"family {info.get('cpu family', '?')} model {info.get('model', '?')}"


def commit() -> Optional[str]:
    """The checkout's commit, with '-dirty' if files differ from it; None outside git."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("-dirty" if dirty else "")


def versions() -> Dict[str, str]:
    """Python's, lenet5's and the installed VERSIONS' (read from metadata: nothing is imported)."""
    found = {"python": platform.python_version(), "lenet5": __version__}
    for name in VERSIONS:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found


def header(threads: Optional[int] = None) -> Dict[str, Any]:
    """The common head of a benchmark's JSON: machine, commit, date, versions."""
    info = cpu_info()
    flags = set(info.get("flags", "").split())
    return {
        "cpu": info["model name"],
        "cpu_family": info.get("cpu family"),
        "cpu_model": info.get("model"),
        "flags": [f for f in FLAGS if f in flags],
        "cores": os.cpu_count(),
        "threads": threads if threads is not None else core.default_threads(),
        "isa": core.isa(),
        "commit": commit(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "versions": versions(),
    }


def write_json(path: str, body: Dict[str, Any], threads: Optional[int] = None) -> None:
    """Write {"header": header(threads), **body} to path (indented, a final newline)."""
    Path(path).write_text(json.dumps({"header": header(threads), **body}, indent=1) + "\n")


def use_variant(parser: Any, name: Optional[str]) -> None:
    """Run the fast kernels' variant name (None: the default, or LENET5_ISA's);
    one that cannot run here ends the benchmark with one line (exit 2)."""
    try:
        if name:
            core.use_isa(name)
        else:
            core.isa()  # raises IsaEnvironmentError (a ValueError) for a LENET5_ISA that cannot run
    except ValueError as e:
        parser.error(f"--isa: {e}" if name else str(e))


class TorchEngine:
    """The shipped PyTorch module (``lenet5.torch_model.LeNet5Module``) as a
    lenet5 Engine in float32 or float64: it trains the caller's flat parameter
    array (copied into the module before a batch, read back after: plain SGD on
    the summed cross-entropy, or the update of docs/SPEC.md §8.5 with a
    velocity) and keeps no weights of its own.  The input is normalised as the
    module does it (§4, in float64, then cast).  The copies cost microseconds
    against a batch's milliseconds."""

    def __init__(self, dtype_name: str, threads: int) -> None:
        import torch

        from lenet5 import torch_model

        self.torch, self.dtype, self.threads = torch, getattr(torch, dtype_name), threads
        self.keys = torch_model.STATE_SHAPES
        self.module = torch_model.LeNet5Module().to(self.dtype)
        self.from_state = torch_model.from_state
        torch.set_num_threads(threads)
        self.name = f"pytorch {dtype_name}"

    def _tensors(self, flat: np.ndarray) -> List[Any]:
        """The blocks of a flat array in the module's layout and dtype, in STATE_SHAPES' order."""
        out = []
        for name, shape in self.keys.values():
            block = core.block(flat, name)
            block = block.transpose(1, 0, 2, 3) if block.ndim == 4 else block.T if block.ndim == 2 else block
            out.append(self.torch.tensor(np.ascontiguousarray(block), dtype=self.dtype).reshape(shape))
        return out

    def _load(self, params: np.ndarray) -> List[Any]:
        """Copy params into the module; its parameters in STATE_SHAPES' order."""
        state = dict(self.module.named_parameters())
        weights = [state[key] for key in self.keys]
        with self.torch.no_grad():
            for w, value in zip(weights, self._tensors(params)):
                w.copy_(value)
                w.grad = None
        return weights

    def _store(self, flat: np.ndarray, tensors: List[Any]) -> None:
        """Write tensors (STATE_SHAPES' order) back into a flat array, in lenet5's layout."""
        flat[...] = self.from_state(dict(zip(self.keys, (t.detach() for t in tensors))))

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
        warp: Optional[core.Warp] = None,
    ) -> Tuple[float, int]:
        """Plain SGD, or with a velocity the update of docs/SPEC.md §8.5 in this
        engine's precision (the velocity is kept in the caller's float64 array);
        with a warp, on the C core's warp of the batch (§8.6)."""
        if warp is not None:
            images = warp.apply(images, threads=self.threads)
        if (loss, sign) != ("xent", -1):
            raise ValueError("the PyTorch engine trains cross-entropy with sign -1 only")
        t = self.torch
        t.set_num_threads(self.threads)
        w = self._load(params)
        out = self.module(t.from_numpy(np.array(images)))  # a copy: the caller's may be read-only
        value = t.nn.functional.cross_entropy(out, t.tensor(labels, dtype=t.long), reduction="sum")
        value.backward()
        with t.no_grad():
            if velocity is None:
                for p in w:
                    p -= (lr / len(images)) * p.grad
            else:
                v = self._tensors(velocity)
                for p, vp in zip(w, v):
                    g = -(p.grad / len(images)) - weight_decay * p
                    vp.mul_(momentum).add_(g)
                    p += lr * (g + momentum * vp) if nesterov else lr * vp
                self._store(velocity, v)
        self._store(params, w)
        return float(value.detach()), int((out.detach().argmax(1).numpy() == labels).sum())

    def forward(self, params: np.ndarray, images: np.ndarray) -> np.ndarray:
        self._load(params)
        with self.torch.no_grad():
            out = self.module(self.torch.from_numpy(np.array(images).reshape(-1, 28, 28)))
        return out.to(self.torch.float64).numpy()

    def predict(self, params: np.ndarray, images: np.ndarray) -> np.ndarray:
        return self.forward(params, images).argmax(1)
