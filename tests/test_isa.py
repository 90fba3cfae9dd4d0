"""Runtime dispatch (docs/SPEC.md §9.4): one build holds a variant of the
vector kernels per instruction set; the widest the CPU runs is the default,
LENET5_ISA or use_isa choose another, and a variant the CPU lacks is refused
with a message that says so."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lenet5 import core
from lenet5._core import lib

ROOT = Path(__file__).resolve().parent.parent
LANES = {"avx512": 8, "avx2": 4, "sse2": 2, "generic": 2}


def test_default_is_the_widest_variant_the_cpu_runs():
    runnable = core.runnable_isas()
    assert runnable and runnable[-1] == "generic"
    assert list(runnable) == [name for name in core.ISAS if name in runnable]
    env = {k: v for k, v in os.environ.items() if k != "LENET5_ISA"}
    r = subprocess.run(
        [sys.executable, "-c", "import lenet5.core as c; print(c.isa(), c.isa_lanes())"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [runnable[0], str(LANES[runnable[0]])]


def test_every_runnable_variant_can_be_chosen_and_reports_its_lanes():
    before = core.isa()
    try:
        for name in core.runnable_isas():
            core.use_isa(name)
            assert core.isa() == name
            if name != "generic":  # LENET5_GENERIC_LANES may widen the generic build
                assert core.isa_lanes() == LANES[name]
    finally:
        core.use_isa(before)


def test_unknown_or_unrunnable_variant_is_refused_and_changes_nothing():
    before = core.isa()
    with pytest.raises(ValueError, match="must be one of avx512, avx2, sse2, generic, not 'neon'"):
        core.use_isa("neon")
    for name in core.ISAS:
        if name not in core.runnable_isas():
            with pytest.raises(ValueError, match=f"'{name}' cannot run: this (CPU|build of lenet5) lacks it"):
                core.use_isa(name)
    assert core.isa() == before
    assert lib.l5_use_isa(b"neon") == lib.L5_ERR_ISA
    assert lib.l5_use_isa(core.ffi.NULL) == lib.L5_ERR_ISA


@pytest.mark.parametrize("name", ["generic", "sse2"])
def test_environment_forces_a_variant(name):
    if name not in core.runnable_isas():
        pytest.skip(f"{name} does not run here")
    r = subprocess.run(
        [sys.executable, "-c", "import lenet5.core as c; print(c.isa())"],
        env=dict(os.environ, LENET5_ISA=name),
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == name


@pytest.mark.parametrize("lacking", [None, "neon"])
def test_environment_naming_a_variant_that_cannot_run_fails_clearly(lacking):
    """The library: importing works, the first call that would run the kernels
    raises IsaEnvironmentError (no kernel runs on another variant than asked)."""
    lacking = lacking or ([name for name in core.ISAS if name not in core.runnable_isas()] or ["neon"])[0]
    code = (
        "import numpy as np, lenet5.core as c\n"
        "try:\n    c.predict(np.zeros(c.N_PARAMS), np.zeros((1, 784), np.uint8))\n"
        "except c.IsaEnvironmentError as e:\n    print('refused:', e)\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], env=dict(os.environ, LENET5_ISA=lacking), capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"refused: LENET5_ISA={lacking}: ")
    assert "this machine runs: " in r.stdout or "must be one of" in r.stdout


@pytest.mark.parametrize("command", [["train", "--train-limit", "300"], ["evaluate"], ["predict", "x.png"]])
def test_commands_report_an_unrunnable_variant_in_one_line(command, tmp_path):
    """A command given LENET5_ISA it cannot honour: one line, exit status 2, nothing written."""
    r = subprocess.run(
        [sys.executable, "-m", f"lenet5.{command[0]}", *command[1:]],
        cwd=tmp_path,
        env=dict(os.environ, LENET5_ISA="neon", LENET5_DATA=str(ROOT / "data")),
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2, r.stderr
    assert r.stderr.splitlines() == [
        f"lenet5.{command[0]}: LENET5_ISA=neon: instruction set must be one of avx512, avx2, sse2, generic, not 'neon'"
    ]
    assert list(tmp_path.iterdir()) == []


def test_no_march_native_and_every_x86_variant_is_built():
    sys.path.insert(0, str(ROOT / "csrc"))
    try:
        import build_ffi

        compile_args, _ = build_ffi._flags()
        built = build_ffi.built_isas()
    finally:
        sys.path.remove(str(ROOT / "csrc"))
    assert not any(a.startswith("-march") for a in compile_args)
    if core.runnable_isas()[0] in ("avx512", "avx2", "sse2"):  # an x86 machine
        assert built == ["avx512", "avx2", "sse2", "generic"]
        assert all(lib.l5_isa_status(name.encode()) != lib.L5_ISA_NOT_BUILT for name in core.ISAS)
