"""Inference benchmark: lenet5's prepared inference against PyTorch and onnxruntime.

    python benchmarks/bench.py --inference            # this benchmark
    python benchmarks/inference.py [--quick] [--json docs/inference.json]

Every engine takes the same thing in, raw uint8 MNIST images, and gives the
same thing out, the predicted digits: each normalises the image (docs/SPEC.md
§4) and runs the network itself (onnxruntime's single image excepted, see
below).  lenet5 computes in float64 and is bit-exact with the reference
program; PyTorch and onnxruntime compute in float32.
Two figures per engine, on 1 thread unless the row says otherwise:

- single-image latency: the median of 2,000 calls with one 28 x 28 image,
  after a warm-up (lenet5: ``LeNet5.predict(image)``, the public call);
- the 10,000 test images in one call (the median of 15 runs).

The engines take turns, in 5 rounds, so that a change in the machine's load
falls on all of them alike.

PyTorch runs in eval mode under ``torch.inference_mode()`` with
``torch.set_num_threads``; onnxruntime runs the float32 graphs that
``lenet5.onnx_export`` builds (``LeNet5.to_onnx``'s, docs/SPEC.md §15) with one
intra- and one inter-op thread: 10,000 uint8 images normalised in the graph,
and, for one image, its best case, the outputs-only graph on pixels
normalised beforehand (only ``session.run`` is timed).  Peers that are not
installed are left out.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import render_tables  # benchmarks/render_tables.py: the tables' one format
from common import cpu_model, write_json  # benchmarks/common.py

from lenet5 import LeNet5, core
from lenet5.data import load_split
from lenet5.numpy_engine import normalize

#: Rounds in which the engines take turns (see run).
ROUNDS = 5


def call_times(call: Callable[[], Any], calls: int) -> List[float]:
    """The times of calls consecutive calls, in seconds."""
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return times


class TorchPeer:
    """The shipped PyTorch module (``LeNet5.to_torch()``, lenet5/torch_model.py)
    in float32, eval mode: uint8 images in, normalised in the module (§4, in
    float64, then cast), digits out."""

    def __init__(self, net: LeNet5, threads: int) -> None:
        import torch

        self.torch = torch
        torch.set_num_threads(threads)
        self.net = net.to_torch().float().eval()

    def predict(self, images: np.ndarray) -> np.ndarray:
        with self.torch.inference_mode():
            return self.net(self.torch.from_numpy(images.reshape(-1, 28, 28))).argmax(dim=1).numpy()


class OnnxPeer:
    """onnxruntime on the graphs lenet5 exports (lenet5/onnx_export.py, docs/SPEC.md
    §15), float32, one thread: for a batch, uint8 images in (normalised in the
    graph), outputs only; for one image, its best case, the outputs-only graph
    on an image normalised beforehand (§4), so that only ``session.run`` is timed."""

    def __init__(self, params: np.ndarray) -> None:
        import onnxruntime as ort

        from lenet5.onnx_export import build_model, require_onnx

        require_onnx()  # ImportError without the onnx package: the peer is left out
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL

        def session(model: Any) -> Any:
            return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])

        self.batch = session(build_model(params, probabilities=False))
        self.single = session(build_model(params, normalised_input=True, probabilities=False))

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Digits of uint8 images (N, 28, 28): the graph's outputs, then their argmax (§5.5)."""
        return self.batch.run(["outputs"], {"images": images.reshape(-1, 28, 28)})[0].argmax(axis=1)

    def single_call(self, image: np.ndarray) -> Callable[[], Any]:
        """The timed call for one (28, 28) image: the lean graph on its normalised pixels."""
        normalised = np.ascontiguousarray(normalize(image[None])[:, 0, 2:30, 2:30], dtype=np.float32)
        feed = {"input": normalised}
        return lambda: self.single.run(["outputs"], feed)


def run(quick: bool = False) -> Dict[str, Any]:
    """Measure every available engine; returns the rows and the machine."""
    test_x, _ = load_split("test", progress=False)
    images = test_x[:600] if quick else test_x
    one = np.ascontiguousarray(test_x[0])  # one (28, 28) image
    calls, warmup, repeats = (200, 50, ROUNDS) if quick else (2000, 300, 3 * ROUNDS)
    net = LeNet5.init(seed=0)
    params = np.array(net.params)
    all_threads = core.default_threads()
    expect = net.predict(images)
    # (engine, threads, one image, all images); a latency of None: not measured
    # (one image never wakes a thread team, so only 1-thread rows have one).
    engines: List[Tuple[str, int, Optional[Callable[[], Any]], Callable[[], np.ndarray]]] = [
        ("lenet5 float64", 1, lambda: net.predict(one, threads=1), lambda: net.predict(images, threads=1))
    ]
    if all_threads > 1:
        engines.append(("lenet5 float64", all_threads, None, lambda: net.predict(images, threads=all_threads)))
    try:
        torch = TorchPeer(net, 1)
        engines.append(("PyTorch float32", 1, lambda: torch.predict(one), lambda: torch.predict(images)))
        if all_threads > 1:

            def torch_all() -> np.ndarray:  # the thread count is global to PyTorch: set it per call
                torch.torch.set_num_threads(all_threads)
                try:
                    return torch.predict(images)
                finally:
                    torch.torch.set_num_threads(1)

            engines.append(("PyTorch float32", all_threads, None, torch_all))
    except ImportError:
        pass
    try:
        ort = OnnxPeer(params)
        engines.append(("onnxruntime float32", 1, ort.single_call(one), lambda: ort.predict(images)))
    except ImportError:
        pass
    # The machine's load changes from second to second, so the engines take
    # turns: ROUNDS rounds, each giving every engine its share of the calls.
    single: Dict[int, List[float]] = {k: [] for k in range(len(engines))}
    batch: Dict[int, List[float]] = {k: [] for k in range(len(engines))}
    for _, _, one_call, all_call in engines:  # warm up
        if one_call is not None:
            call_times(one_call, warmup)
        all_call()
    for _ in range(ROUNDS):
        for k, (_, _, one_call, all_call) in enumerate(engines):
            if one_call is not None:
                single[k] += call_times(one_call, calls // ROUNDS)
            batch[k] += call_times(all_call, max(1, repeats // ROUNDS))
    rows: List[Dict[str, Any]] = []
    for k, (engine, threads, one_call, all_call) in enumerate(engines):
        rows.append(
            {
                "engine": engine,
                "threads": threads,
                "latency_us": statistics.median(single[k]) * 1e6 if one_call is not None else None,
                "batch_seconds": statistics.median(batch[k]),
                "agreement": float(np.mean(all_call() == expect)),
            }
        )
        print(f"  measured {engine} ({threads} thread{'s' * (threads > 1)})", file=sys.stderr)
    return {
        "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "numpy": np.__version__},
        "single_image_rounds": ROUNDS,
        "quick": quick,
        "images": len(images),
        "single_image_calls": calls,
        "rows": rows,
    }


def report(result: Dict[str, Any]) -> str:
    """The rows as a Markdown table (benchmarks/render_tables.py's, as in
    docs/benchmarks.md), with ratios to lenet5 on the same thread count."""
    lines = [
        f"Inference of LeNet-5 on MNIST; machine: {result['machine']['cpu']}, {result['machine']['cores']} cores",
        f"(single image: median of {result['single_image_calls']} calls; "
        f"batch: {result['images']} test images in one call)",
        "",
    ]
    return "\n".join(lines) + render_tables.inference(result)


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="few calls and 600 images: checks that it runs")
    p.add_argument("--json", metavar="PATH", help="write the numbers and the machine as JSON")
    args = p.parse_args(argv)
    result = run(args.quick)
    print(report(result))
    if args.json:
        write_json(args.json, result, threads=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
