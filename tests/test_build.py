"""The build: a missing C compiler is reported as such, and the extension is
compiled the way exactness needs (no contraction, no fast-math)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_missing_compiler_says_so(tmp_path):
    env = dict(os.environ, CC=str(tmp_path / "no-such-cc"))
    r = subprocess.run(
        [sys.executable, "csrc/build_ffi.py", str(tmp_path)], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert r.returncode != 0
    assert "no C compiler found" in r.stderr and "install gcc or" in r.stderr
    assert "Traceback" not in r.stderr


def test_flags_keep_every_rounding(monkeypatch):
    sys.path.insert(0, str(ROOT / "csrc"))
    try:
        import build_ffi

        compile_args, _ = build_ffi._flags()
    finally:
        sys.path.remove(str(ROOT / "csrc"))
    assert "-ffp-contract=off" in compile_args
    assert not any("fast-math" in a and a != "-fno-fast-math" for a in compile_args)
    assert not any(a in ("-Ofast",) for a in compile_args)


def test_extension_is_a_compiled_api_mode_module():
    from lenet5 import _core

    assert _core.__file__.endswith(".so") or _core.__file__.endswith(".pyd")
    assert hasattr(_core, "lib") and hasattr(_core, "ffi")


@pytest.mark.slow
def test_build_without_openmp_and_8_lane_tiles_is_exact(tmp_path, mnist_train):
    """No OpenMP (one thread), and the generic variant built with 8-image tiles
    (LENET5_GENERIC_LANES=8): the avx512 variant's tiling, run on a CPU
    without AVX-512, still gives the golden bytes."""
    package = tmp_path / "lenet5"
    package.mkdir()
    for source in (ROOT / "lenet5").glob("*.py"):
        (package / source.name).write_text(source.read_text())
    env = dict(os.environ, LENET5_OPENMP="0", LENET5_GENERIC_LANES="8")
    build = subprocess.run(
        [sys.executable, "csrc/build_ffi.py", str(tmp_path)], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert build.returncode == 0, build.stderr
    assert "warning" not in build.stderr
    golden_init = ROOT / "tests" / "golden" / "init_seed1.dat"
    check = (
        "import hashlib, numpy as np, lenet5.core as c\n"
        "from lenet5.data import load_split\n"
        f"assert not c.have_openmp() and c.__file__.startswith({str(tmp_path)!r})\n"
        "assert c.isa() == 'generic' and c.isa_lanes() == 8\n"
        "x, y = load_split('train')\n"
        f"p = np.fromfile({str(golden_init)!r}, '<f8')\n"
        "for s in range(0, 100, 10):\n"
        "    c.train_batch(p, x[s:s+10], y[s:s+10], loss='xent', sign=-1, lr=0.1, threads=2)\n"
        "print(hashlib.sha256(p.tobytes()).hexdigest())\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", check],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=dict(os.environ, LENET5_DATA=str(ROOT / "data"), LENET5_ISA="generic"),
    )
    assert r.returncode == 0, r.stderr
    from helpers import CASES

    assert r.stdout.strip() == CASES["xent_b10_n100_e1"]["output_sha256"]
