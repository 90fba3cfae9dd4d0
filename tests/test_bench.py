"""The benchmark runs and prints what it promises (its speed is never tested)."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "bench.py"


def data_isa():
    from lenet5 import core

    return core.isa()


def test_quick_benchmark_output_format(tmp_path):
    r = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--no-torch", "--json", tmp_path / "b.json"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    first = next(k for k, line in enumerate(lines) if line.startswith("| engine"))
    rows = [line for line in lines[first + 2 : lines.index("", first)]]  # the engine table
    engines = [row.split("|")[1].strip() for row in rows]
    assert engines == ["C fast", "C fast", "C reference kernels", "NumPy"]
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert re.fullmatch(r"[\d,]+", cells[2]) and re.fullmatch(r"[\d.]+( \(est\.\))?", cells[3])
        assert re.fullmatch(r"[\d.]+ / [\d.]+", cells[5])
        assert cells[6] == ("-" if cells[0] != "C fast" else data_isa())
        assert cells[7] == "-"  # no PyTorch row (--no-torch) to compare with
    data = json.loads((tmp_path / "b.json").read_text())
    assert data["quick"] and data["machine"]["cores"] >= 1 and "numpy_blas" in data["machine"]
    assert data["header"]["cpu"] == data["machine"]["cpu"] and data["header"]["date"]  # benchmarks/common.py
    assert len(data["rows"]) == 4
    for row in data["rows"]:
        assert row["train_images_per_s"] > 0 and row["inference_seconds"] > 0
    assert data["rows"][1]["ratio_train"] == 1.0
    assert data["machine"]["isa"] == data_isa() and data["machine"]["isa_lanes"] in (2, 4, 8)
    # Where people wait: each figure beside its peer from the same run, as printed.
    waits = [line for line in lines if line.startswith(("| epoch of --preset", "| LeNet5.predict"))]
    assert len(waits) == 3 and [w["what"].split(" (")[0] for w in data["waits"]] == [
        "epoch of --preset best",
        "LeNet5.predict of 600 images",
        "LeNet5.predict of one image",
    ]
    for line, wait in zip(waits, data["waits"]):
        assert wait["seconds"] > 0
        if wait["peer_seconds"] is None:  # onnxruntime is not installed: no peer, no ratio
            assert wait["what"].endswith("one image (median)") and line.endswith("| - | - |")
        else:
            assert line.rstrip(" |").endswith(f"{wait['seconds'] / wait['peer_seconds']:.2f}")


def test_contended_benchmark_prints_one_thread_beside_the_default():
    r = subprocess.run(
        [sys.executable, str(BENCH), "--contended", "--quick"], capture_output=True, text=True, timeout=600
    )
    assert r.returncode == 0, r.stderr
    rows = [line for line in r.stdout.splitlines() if re.match(r"\| \d", line)]
    assert rows[0].startswith("| 1 |") and "(default)" in rows[-1]
    for row in rows:
        assert re.fullmatch(r"\| \d+( \(default\))? \| [\d,]+ \| [\d,]+ \|", row)


def test_benchmark_refuses_a_variant_the_cpu_lacks():
    from lenet5 import core

    lacking = [name for name in core.ISAS if name not in core.runnable_isas()]
    if not lacking:
        pytest.skip("this CPU runs every variant")
    r = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--isa", lacking[0]], capture_output=True, text=True, timeout=600
    )
    assert r.returncode == 2 and f"--isa: instruction set '{lacking[0]}' cannot run" in r.stderr


def test_pytorch_engine_trains_the_callers_parameters(mnist_train):
    """The benchmark's PyTorch peer follows the Engine protocol: it keeps no
    weights of its own, so it trains and predicts from the flat array it is given.
    (Its gradient is the true one through the output ReLU, so it is not the
    reference's arithmetic: docs/SPEC.md §7.4.)"""
    pytest.importorskip("torch")
    sys.path.insert(0, str(BENCH.parent))
    try:
        from common import TorchEngine  # benchmarks/common.py
    finally:
        sys.path.pop(0)
    from lenet5.engines import CEngine, Engine
    from lenet5.loop import TrainConfig, train
    from lenet5.params import init_params

    images, labels = mnist_train[0][:600], mnist_train[1][:600]
    torch_engine = TorchEngine("float64", 1)
    assert isinstance(torch_engine, Engine)
    config = TrainConfig(loss="xent", batch_size=100)
    theirs = init_params(5)
    history = train(torch_engine, theirs, images, labels, config)
    assert history.batch_loss[-1] < history.batch_loss[0]
    assert not np.array_equal(theirs, init_params(5))  # the caller's array was trained
    assert np.array_equal(torch_engine.predict(theirs, images), CEngine().predict(theirs, images))


@pytest.mark.slow
def test_inference_benchmark_output_format(tmp_path):
    """--inference prints one row per engine it found, lenet5 first, and every
    engine gives the digits lenet5 gives on (nearly) every image."""
    r = subprocess.run(
        [sys.executable, str(BENCH), "--inference", "--quick", "--json", tmp_path / "i.json"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr
    rows = [line for line in r.stdout.splitlines() if line.startswith("| ") and "| engine |" not in line]
    assert rows[0].startswith("| lenet5 float64 (bit-exact) | 1 | ")
    data = json.loads((tmp_path / "i.json").read_text())
    assert data["machine"]["cpu"] and data["images"] == 600 and len(data["rows"]) == len(rows)
    assert data["rows"][0]["latency_us"] > 0 and data["rows"][0]["agreement"] == 1.0
    for row in data["rows"]:
        assert row["batch_seconds"] > 0 and row["agreement"] > 0.99


def test_benchmarks_refuse_bad_settings_in_one_line():
    """An unrunnable LENET5_ISA, or time_to_99.py asked for a run no longer
    than the preset's warm-up or for -1 threads: one line, exit 2, no traceback."""
    import os

    time_to_99 = BENCH.parent / "time_to_99.py"
    cases = [
        ([str(BENCH), "--quick"], {"LENET5_ISA": "neon"}, "LENET5_ISA=neon: instruction set must be one of"),
        ([str(time_to_99)], {"LENET5_ISA": "neon"}, "LENET5_ISA=neon: instruction set must be one of"),
        ([str(time_to_99), "--max-epochs", "1"], {}, "--max-epochs 1: warmup (1 epochs) must be shorter"),
        ([str(time_to_99), "--threads", "-1"], {}, "argument --threads: must be between 1 and"),
    ]
    for args, env, message in cases:
        r = subprocess.run(
            [sys.executable, *args], capture_output=True, text=True, timeout=120, env=dict(os.environ, **env)
        )
        assert r.returncode == 2, (args, r.stderr)
        assert message in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)
