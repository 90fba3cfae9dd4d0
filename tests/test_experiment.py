"""The loss-and-sign experiment and the training figure."""

import json
import sys

import numpy as np
import pytest

from lenet5 import experiment, train

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_png(path):
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    import matplotlib.image

    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 300


def test_experiment_on_a_subset(tmp_path, capsys, mnist_test):
    out = tmp_path / "exp"
    status = experiment.main(
        [
            "--batches",
            "30",
            "--batch-size",
            "100",
            "--eval-every",
            "10",
            "--test-images",
            "2000",
            "--out",
            str(out),
            "--json",
            str(tmp_path / "e.json"),
            "--quiet",
        ]
    )
    assert status == 0
    table = capsys.readouterr().out
    rows = [line for line in table.splitlines() if line.startswith("| ") and "loss" not in line]
    assert [r.split("|")[1].strip() + r.split("|")[2].strip() for r in rows] == ["mse+1", "mse-1", "xent-1", "xent+1"]
    assert (out / "experiment.md").read_text().strip() == table.strip()
    assert_png(out / "experiment.png")
    result = json.loads((tmp_path / "e.json").read_text())
    runs = {(r["loss"], r["sign"]): r for r in result["runs"]}
    # The wrong signs end at or below chance: no better than always guessing
    # the most frequent digit of these 2,000 test images.
    chance = np.bincount(mnist_test[1][:2000]).max() / 2000
    for key in [("mse", -1), ("xent", 1)]:
        assert runs[key]["final_test_accuracy"] <= chance, runs[key]
    for key in [("mse", 1), ("xent", -1)]:
        assert runs[key]["final_test_accuracy"] >= 3 * chance, runs[key]
    assert runs[("xent", 1)]["diverged_at"] is not None
    assert all(r["eval_batches"] == [0, 10, 20, 30] for r in result["runs"])


def test_training_figure(tmp_path):
    png = tmp_path / "curves.png"
    status = train.main(
        [
            "--loss",
            "xent",
            "--train-limit",
            "1200",
            "--batch-size",
            "100",
            "--epochs",
            "2",
            "--plot",
            str(png),
            "--quiet",
        ]
    )
    assert status == 0
    assert_png(png)


def test_without_matplotlib_tables_still_print(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now fails
    out = tmp_path / "exp"
    assert (
        experiment.main(
            [
                "--batches",
                "2",
                "--batch-size",
                "50",
                "--eval-every",
                "1",
                "--test-images",
                "200",
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    captured = capsys.readouterr()
    assert "| mse | +1 |" in captured.out
    assert 'pip install matplotlib (in a checkout of lenet5: pip install -e ".[plot]")' in captured.err
    assert not (out / "experiment.png").exists()
    png = tmp_path / "curves.png"
    assert train.main(["--train-limit", "200", "--batch-size", "100", "--plot", str(png), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert err.count("pip install matplotlib") == 1 and err.startswith(f"--plot {png}")
    assert not png.exists()


def test_experiment_argument_errors(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        experiment.main(["--batches", "0", "--out", str(tmp_path)])
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:
        experiment.main(["--batches", "700", "--out", str(tmp_path)])
    assert info.value.code == 2 and "training images" in capsys.readouterr().err
