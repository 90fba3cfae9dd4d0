"""The profiler (docs/SPEC.md §9.7): a profiled batch trains exactly as an
unprofiled one, its stages add up, their multiply-adds follow the layer shapes,
and bad arguments are refused.  Its times are printed by the benchmark, never
tested."""

import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lenet5 import core
from lenet5._core import ffi, lib
from lenet5.params import init_params

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "bench.py"


def test_stages_and_their_multiply_adds_follow_the_shapes():
    stages = dict(core.profile_stages())
    assert list(stages)[:3] == ["load", "conv1", "pool1"] and list(stages)[-2:] == ["batch sum", "update"]
    # Counted here from the shapes by hand: one multiply-add per (output cell, input map, kernel cell).
    conv1, conv2, conv3, fc = 6 * 28 * 28 * 1 * 25, 16 * 10 * 10 * 6 * 25, 120 * 16 * 25, 120 * 10
    assert (stages["conv1"], stages["conv2"], stages["conv3"], stages["fc"]) == (conv1, conv2, conv3, fc)
    assert stages["conv2 back"] == stages["conv2 grad"] == conv2 and stages["conv1 grad"] == conv1
    assert stages["conv3 back"] == conv3 and stages["fc back"] == fc and stages["batch sum"] == conv3 + fc
    assert sum(stages.values()) == 1_102_800
    assert all(stages[name] == 0 for name in ("load", "pool1", "pool2", "output error", "store", "update"))


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_a_profiled_batch_trains_to_the_same_bits(threads, mnist_train):
    images, labels = mnist_train[0][:37], mnist_train[1][:37]
    plain, profiled = init_params(3), init_params(3)
    loss, correct = core.train_batch(plain, images, labels, loss="xent", sign=-1, lr=0.1, threads=threads)
    seconds, p_loss, p_correct = core.profile_train_batch(
        profiled, images, labels, loss="xent", sign=-1, lr=0.1, threads=threads
    )
    assert plain.tobytes() == profiled.tobytes()
    assert (p_loss, p_correct) == (loss, correct)
    assert seconds.shape == (len(core.profile_stages()),) and np.all(seconds >= 0)
    names = [name for name, _ in core.profile_stages()]
    assert all(seconds[names.index(name)] > 0 for name in ("conv1", "conv2", "conv2 back", "batch sum"))


def test_profile_refuses_bad_arguments(mnist_train):
    params = init_params(0)
    images, labels = mnist_train[0][:4], mnist_train[1][:4]
    with pytest.raises(ValueError, match="lr"):
        core.profile_train_batch(params, images, labels, loss="xent", sign=-1, lr=0.0)
    with pytest.raises(ValueError, match="labels"):
        core.profile_train_batch(params, images, np.full(4, 10, np.uint8), loss="xent", sign=-1, lr=0.1)
    with pytest.raises(ValueError, match="seconds"):
        core.peak_macs(1, 0.0)
    with pytest.raises(ValueError, match="threads"):
        core.peak_macs(-1)
    # The C boundary itself: a wrong stage count, a missing buffer, out-of-range stages and peaks.
    seconds = ffi.new("double[]", lib.L5_PROFILE_STAGES + 1)
    p = ffi.cast("double *", params.ctypes.data)
    x = ffi.cast("uint8_t *", images.ctypes.data)
    y = ffi.cast("uint8_t *", labels.ctypes.data)
    loss, correct = ffi.new("double *"), ffi.new("int64_t *")
    assert (
        lib.l5_profile_train_batch(
            p, core.N_PARAMS, x, y, 4, lib.L5_LOSS_XENT, -1, 0.1, 1, seconds, lib.L5_PROFILE_STAGES + 1, loss, correct
        )
        == lib.L5_ERR_SIZE
    )
    assert (
        lib.l5_profile_train_batch(
            p, core.N_PARAMS, x, y, 4, lib.L5_LOSS_XENT, -1, 0.1, 1, ffi.NULL, lib.L5_PROFILE_STAGES, loss, correct
        )
        == lib.L5_ERR_NULL
    )
    assert lib.l5_profile_stage_name(-1) == ffi.NULL and lib.l5_profile_stage_name(lib.L5_PROFILE_STAGES) == ffi.NULL
    assert lib.l5_profile_stage_macs(lib.L5_PROFILE_STAGES) == -1
    assert lib.l5_peak_macs(1, 0.0) < 0 and lib.l5_peak_macs(1, 61.0) < 0 and lib.l5_peak_macs(-1, 0.1) < 0
    assert params.tobytes() == init_params(0).tobytes()  # nothing was trained by a refused call


def test_peak_is_a_positive_rate():
    assert core.peak_macs(1, 0.01) > 1e8  # any CPU of this century does 0.1 GMAC/s


@pytest.mark.skipif(
    shutil.which("objdump") is None or platform.machine() not in ("x86_64", "AMD64"),
    reason="reads the x86 machine code with objdump",
)
def test_the_peak_loop_multiplies():
    """The peak must time multiplies and adds.  With a fixed x * w the compiler
    forms the product once, outside the loop, and the peak times adds alone:
    twice the truth where multiplies and adds share their units."""
    import lenet5._core

    code = subprocess.run(
        ["objdump", "-d", "--no-show-raw-insn", lenet5._core.__file__], capture_output=True, text=True, check=True
    ).stdout
    built = [isa for isa in ("avx512", "avx2", "sse2", "generic") if f"<l5_fast_peak_macs_{isa}>:" in code]
    assert "sse2" in built and "generic" in built  # every x86-64 build has these
    for isa in built:
        body = code.split(f"<l5_fast_peak_macs_{isa}>:", 1)[1].split("\n\n", 1)[0]
        assert len(re.findall(r"\bv?mulpd\b", body)) >= 4, isa  # one per chain (8 or 12 chains)


def test_profile_benchmark_prints_every_stage_and_the_peak():
    r = subprocess.run(
        [sys.executable, str(BENCH), "--profile", "--quick", "--no-torch"], capture_output=True, text=True, timeout=600
    )
    assert r.returncode == 0, r.stderr
    assert f"fast kernels: {core.isa()}" in r.stdout
    sys.path.insert(0, str(BENCH.parent))
    try:
        from render_tables import STAGE_NAMES  # the stages as the tables spell them out
    finally:
        sys.path.pop(0)
    for name, macs in core.profile_stages():
        if name == "warp":  # a batch of 300 is not warped: --batch-size N's profile shows it
            assert not re.search(r"^\| warp \|", r.stdout, re.M)
            continue
        shown = STAGE_NAMES.get(name, name)
        assert re.search(rf"^\| {re.escape(shown)} \| {macs:,} \|( [\d.-]+ \|)+$", r.stdout, re.M), name
    assert re.search(r"^\| \*\*forward\*\* \| 406,800 \|", r.stdout, re.M)
    rows = re.findall(
        r"^\| (\d+) \| [\d,]+ / [\d,]+ \| ([\d.]+) / [\d.]+ \| ([\d.]+) / [\d.]+ \| "
        r"\d+% / \d+% \| - \|$",
        r.stdout,
        re.M,
    )
    # 1 thread, then the default if that is more (the same in the benchmark's
    # process as here: PyTorch's thread setting in an earlier test no longer moves it).
    teams = [int(row[0]) for row in rows]
    assert teams == sorted({1, core.default_threads()})
    for row in rows:  # the format only: times are never tested
        assert float(row[1]) > 0 and float(row[2]) > 0


def test_the_preset_profile_shows_the_warp_inside_the_training_call():
    r = subprocess.run(
        [sys.executable, str(BENCH), "--profile", "--quick", "--no-torch", "--batch-size", "64"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr
    preset = r.stdout.split("The preset's batch (64 images", 1)[1]
    for row in (
        "warp (as each tile loads its images)",
        "in the C call, outside the stages",
        "**train_seconds per image**",
    ):
        cells = re.search(rf"^\| {re.escape(row)} \|((?: [\d.]+ \|)+)$", preset, re.M)
        assert cells, row
    warp = re.search(r"^\| warp \(as each tile loads its images\) \|((?: [\d.]+ \|)+)$", preset, re.M)
    assert all(float(v) > 0 for v in warp.group(1).split("|") if v.strip())  # the warp ran, and was timed
