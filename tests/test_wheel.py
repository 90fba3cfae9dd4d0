"""`pip wheel .` builds a wheel that installs into a fresh environment and
reproduces the golden models under every instruction-set variant this CPU
runs, forced one at a time with LENET5_ISA (docs/SPEC.md §9.4): a build made
without -march=native, so it runs on any CPU of its architecture."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lenet5 import core

ROOT = Path(__file__).resolve().parent.parent


def run(cmd, **kwargs):
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=1200, **kwargs)
    assert r.returncode == 0, f"{cmd}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


@pytest.mark.slow
def test_wheel_installs_into_a_fresh_environment_and_every_variant_gives_the_golden_bytes(tmp_path):
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", tmp_path / "dist", ROOT])
    wheels = list((tmp_path / "dist").glob("lenet5_exact-*.whl"))
    assert len(wheels) == 1, wheels
    env_dir = tmp_path / "env"
    run([sys.executable, "-m", "venv", env_dir])
    python = env_dir / "bin" / "python"
    run([python, "-m", "pip", "install", "-q", wheels[0], "pytest", "hypothesis"])
    where = run([python, "-c", "import lenet5.core as c; print(c.__file__, c.runnable_isas())"], cwd=tmp_path)
    assert str(env_dir) in where.stdout and str(ROOT) not in where.stdout.split()[0]
    # the default-variant rows of the short golden cases (2 threads), run
    # from outside the checkout so that `lenet5` is the installed wheel's
    for isa in core.runnable_isas():
        env = dict(os.environ, LENET5_ISA=isa, LENET5_DATA=str(ROOT / "data"))
        r = run(
            [
                python,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "--rootdir",
                tmp_path,
                "-o",
                "addopts=",
                ROOT / "tests" / "test_golden.py",
                "-k",
                "fast-t2 and not 60000",
            ],
            cwd=tmp_path,
            env=env,
        )
        assert "4 passed" in r.stdout, (isa, r.stdout)
