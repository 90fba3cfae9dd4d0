"""The one command (lenet5 SUB), --version everywhere, and the command line's
paper cuts: a closed pipe, figures without matplotlib, nothing saved, the
warm-up hint, a missing shipped model, the thread range."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import lenet5
from lenet5.__main__ import SUBCOMMANDS
from lenet5._version import install_hint

#: The optional dependencies, hidden from the import system: a core-only install.
CORE_ONLY = (
    "import sys\n"
    "for name in ('PIL', 'matplotlib', 'starlette', 'uvicorn', 'onnx', 'onnxruntime', 'torch'):\n"
    "    sys.modules[name] = None\n"
)


def run(*args, code=None, timeout=120):
    command = [sys.executable, "-c", code] if code else [sys.executable, "-m", "lenet5", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


def test_version_from_the_command_and_the_module():
    r = run("--version")
    assert r.returncode == 0 and r.stdout == f"lenet5 {lenet5.__version__}\n" and not r.stderr


@pytest.mark.parametrize("sub", list(SUBCOMMANDS))
def test_every_subcommand_has_help_and_a_version_in_a_core_only_install(sub):
    module = SUBCOMMANDS[sub][0]
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not in this version")
    code = CORE_ONLY + f"from lenet5.__main__ import main\nsys.exit(main({[sub, '--help']!r}))\n"
    r = run(code=code)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("usage:") and "--version" in r.stdout and not r.stderr
    code = CORE_ONLY + f"from lenet5.__main__ import main\nsys.exit(main({[sub, '--version']!r}))\n"
    r = run(code=code)
    assert r.returncode == 0 and r.stdout == f"lenet5 {lenet5.__version__}\n", r.stderr


def test_help_lists_every_subcommand():
    r = run("--help")
    assert r.returncode == 0
    for sub in SUBCOMMANDS:
        assert f"\n  {sub} " in r.stdout


@pytest.mark.parametrize("args, says", [([], "name a command"), (["trian"], "unknown command 'trian'")])
def test_no_or_an_unknown_subcommand_is_an_argument_error(args, says):
    r = run(*args)
    assert r.returncode == 2 and says in r.stderr and not r.stdout


def test_the_subcommand_runs_with_its_arguments():
    r = run("train", "--batch-size", "0")
    assert r.returncode == 2 and r.stderr.startswith("usage: lenet5 train ")
    assert r.stderr.endswith("lenet5 train: error: argument --batch-size: must be at least 1, not 0\n")
    r = run(code="import sys\nfrom lenet5.train import main\nsys.exit(main(['--batch-size', '0']))\n")
    assert r.returncode == 2 and r.stderr.startswith("usage: python -m lenet5.train ")


@pytest.mark.parametrize(
    "script", ["lenet5", "lenet5-train", "lenet5-evaluate", "lenet5-predict", "lenet5-serve", "lenet5-experiment"]
)
def test_installed_scripts_say_their_version(script):
    path = Path(sys.executable).parent / script
    if not path.exists():
        pytest.skip(f"{script} is not installed beside {sys.executable}")
    r = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout == f"lenet5 {lenet5.__version__}\n", r.stderr


def test_install_hints_name_what_pip_can_fetch():
    assert install_hint("images") == 'pip install pillow scipy (in a checkout of lenet5: pip install -e ".[images]")'
    assert install_hint("plot").startswith("pip install matplotlib ")
    for extra in ("images", "plot", "test", "lint"):
        assert "lenet5-exact" not in install_hint(extra)


def test_a_closed_pipe_ends_the_command_quietly():
    p = subprocess.Popen(
        [sys.executable, "-m", "lenet5", "evaluate"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    p.stdout.close()  # the reader leaves before the first line, as `| head -0` would
    err = p.stderr.read()
    assert p.wait(timeout=120) == 141 and err == ""


def test_figures_without_matplotlib_fail_with_the_install_line(tmp_path):
    out = tmp_path / "figs"
    code = CORE_ONLY + f"from lenet5.evaluate import main\nsys.exit(main(['--figures', {str(out)!r}]))\n"
    r = run(code=code)
    assert r.returncode == 1 and not r.stdout
    assert r.stderr.strip() == (
        f"lenet5.evaluate: --figures {out}: matplotlib is not installed, so no figure "
        f"was written; get it with: {install_hint('plot')}"
    )
    assert not out.exists()


def test_training_without_save_says_the_model_was_not_kept():
    r = run("train", "--train-limit", "300", "--quiet", timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stderr == "the trained model was not saved: give --save PATH to keep it\n"


def test_a_warmup_as_long_as_the_run_says_how_to_fix_it():
    r = run("train", "--preset", "best", "--epochs", "1")
    assert r.returncode == 2
    assert r.stderr.splitlines()[-1].endswith(
        "--warmup 1 must be shorter than the run (--epochs 1): give --epochs 2 or more, or --warmup 0 "
        "(--preset best warms up for 1)"
    )


def test_a_missing_shipped_model_is_one_line_not_a_traceback(tmp_path):
    code = (
        "import sys, pathlib\nimport lenet5.model\n"
        f"lenet5.model.PRETRAINED_PATH = pathlib.Path({str(tmp_path / 'gone.npz')!r})\n"
        "from lenet5.evaluate import main\nsys.exit(main([]))\n"
    )
    r = run(code=code)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.startswith("lenet5.evaluate: no model to use: the shipped model cannot be read (")
    assert "give one with --model PATH" in r.stderr


def test_the_cores_thread_refusal_names_the_real_range():
    from lenet5 import core
    from lenet5._core import ffi, lib

    params = np.zeros(core.N_PARAMS)
    images = np.zeros((1, 28, 28), np.uint8)
    labels = np.zeros(1, np.uint8)
    rc = lib.l5_train_batch(
        ffi.from_buffer("double[]", params),
        core.N_PARAMS,
        ffi.from_buffer("uint8_t[]", images),
        ffi.from_buffer("uint8_t[]", labels),
        1,
        core.LOSSES["mse"],
        1,
        0.5,
        core.KERNELS["fast"],
        core.MAX_THREADS + 1,
        ffi.new("double *"),
        ffi.new("int64_t *"),
    )
    assert rc == lib.L5_ERR_THREADS
    with pytest.raises(RuntimeError, match=f"thread count must be 0 \\(the default\\) or 1 to {core.MAX_THREADS}$"):
        core._call(rc)
