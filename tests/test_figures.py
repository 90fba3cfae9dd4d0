"""python -m lenet5.evaluate MODEL --figures DIR: the four figures of what a model learned."""

import subprocess
import sys

import pytest

from helpers import CASES, GOLDEN

pytest.importorskip("matplotlib")
Image = pytest.importorskip("PIL.Image")


@pytest.mark.slow
def test_figures_are_written_as_pngs(tmp_path):
    out = tmp_path / "figs"
    r = subprocess.run(
        [sys.executable, "-m", "lenet5.evaluate", str(GOLDEN / "mse_b300_n60000_e1.dat"), "--figures", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    assert f"({CASES['mse_b300_n60000_e1']['test_correct']}/10000)" in r.stdout
    for name in ("confusion.png", "mistakes.png", "filters.png", "feature_maps.png"):
        with Image.open(out / name) as img:
            assert img.format == "PNG" and img.size[0] > 400 and img.size[1] > 300, name
    assert sorted(p.name for p in out.iterdir()) == ["confusion.png", "feature_maps.png", "filters.png", "mistakes.png"]
