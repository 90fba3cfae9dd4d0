"""The benchmark runs and prints what it promises (its speed is never tested)."""
import json
import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "bench.py"


def test_quick_benchmark_output_format(tmp_path):
    r = subprocess.run([sys.executable, str(BENCH), "--quick", "--no-torch", "--json", tmp_path / "b.json"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    rows = [line for line in r.stdout.splitlines() if line.startswith("| ") and "engine" not in line]
    engines = [row.split("|")[1].strip() for row in rows]
    assert engines == ["C fast", "C fast", "C reference kernels", "NumPy"]
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert re.fullmatch(r"[\d,]+", cells[2]) and re.fullmatch(r"[\d.]+( \(est\.\))?", cells[3])
        assert re.fullmatch(r"[\d.]+ / [\d.]+", cells[5])
    data = json.loads((tmp_path / "b.json").read_text())
    assert data["quick"] and data["machine"]["cores"] >= 1 and "numpy_blas" in data["machine"]
    assert len(data["rows"]) == 4
    for row in data["rows"]:
        assert row["train_images_per_s"] > 0 and row["inference_seconds"] > 0
    assert data["rows"][1]["ratio_train"] == 1.0
