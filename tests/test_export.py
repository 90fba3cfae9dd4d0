"""The ONNX export (lenet5/onnx_export.py, docs/SPEC.md §15) run in onnxruntime.

The float64 graph gives lenet5's digit on all 10,000 test images with
outputs within 1e-9, in under 2 GB (slow; 1,000 images in the default run);
the float32 graph the same digit on at least 99.9 %; flat, noisy and single
images; the lean graph of the benchmark; `python -m lenet5.export` and its
one-line refusals; the docs page's examples as written.  Skipped, saying why, without onnx or onnxruntime.
"""

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from lenet5 import LeNet5, core
from lenet5.numpy_engine import normalize, softmax
from lenet5.params import init_params

onnx = pytest.importorskip("onnx", reason="the onnx package is not installed (pip install onnx)")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install onnxruntime)")

from lenet5.onnx_export import OPSET, build_model  # noqa: E402 (after the skips)

ROOT = Path(__file__).resolve().parent.parent
EXPORT = [sys.executable, "-m", "lenet5.export"]


def session(model):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def random_model(seed):
    """A fresh model with random biases, so that some ReLUs are live and some dead in every layer."""
    params = init_params(seed)
    params[core.BLOCKS["b1"][0] :] = np.random.default_rng(seed).normal(0, 0.2, core.N_PARAMS - core.BLOCKS["b1"][0])
    return LeNet5(params)


def odd_images():
    """Flat images (all 0, all 7, all 255), noise, one lone pixel, a two-level image."""
    rng = np.random.default_rng(5)
    flat = [np.full((28, 28), v, np.uint8) for v in (0, 7, 255)]
    lone = np.zeros((28, 28), np.uint8)
    lone[3, 27] = 1
    two = np.zeros((28, 28), np.uint8)
    two[:, :14] = 255
    return np.stack(flat + [lone, two] + list(rng.integers(0, 256, (4, 28, 28), dtype=np.uint8)))


@pytest.fixture(scope="module")
def pretrained():
    return LeNet5.pretrained()


def test_float64_graph_gives_lenet5s_outputs_on_a_thousand_test_images(pretrained, mnist_test):
    """The quick form of the next test (which runs in CI's slow tests)."""
    images = mnist_test[0][:1000]
    outputs, proba = session(build_model(pretrained.params, float64=True)).run(None, {"images": images})
    assert outputs.dtype == np.float64 and proba.dtype == np.float64
    expected = pretrained.forward(images)
    assert np.abs(outputs - expected).max() <= 1e-9
    assert np.array_equal(outputs.argmax(axis=1), pretrained.predict(images))
    assert np.abs(proba - softmax(expected)).max() <= 1e-9


@pytest.mark.slow
def test_float64_graph_gives_lenet5s_digits_and_outputs_on_the_test_set_in_under_2_gb(pretrained, tmp_path, mnist_test):
    """All 10,000 test images in one run, in a process of its own so that its
    peak memory (onnxruntime's arena included) is the run's."""
    path = tmp_path / "lenet5_f64.onnx"
    pretrained.to_onnx(path, float64=True)
    script = textwrap.dedent(f"""
        import json, resource, sys
        import numpy as np, onnxruntime as ort
        from lenet5.data import load_split
        images, _ = load_split("test", download=False, progress=False)
        session = ort.InferenceSession({str(path)!r}, providers=["CPUExecutionProvider"])
        outputs, probabilities = session.run(None, {{"images": images}})
        np.save({str(tmp_path / "out.npy")!r}, outputs)
        np.save({str(tmp_path / "proba.npy")!r}, probabilities)
        print(json.dumps({{"peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                          "dtype": str(outputs.dtype)}}))
    """)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["dtype"] == "float64"
    assert report["peak_mb"] < 2048, report
    outputs, proba = np.load(tmp_path / "out.npy"), np.load(tmp_path / "proba.npy")
    expected = pretrained.forward(mnist_test[0])
    assert outputs.shape == (10000, 10)
    assert np.abs(outputs - expected).max() <= 1e-9
    assert np.array_equal(outputs.argmax(axis=1), pretrained.predict(mnist_test[0]))
    assert np.abs(proba - softmax(expected)).max() <= 1e-9


def test_float32_graph_gives_the_same_digit_on_at_least_999_per_mille(pretrained, mnist_test):
    images = mnist_test[0]
    outputs, proba = session(build_model(pretrained.params)).run(None, {"images": images})
    assert outputs.dtype == np.float32 and proba.dtype == np.float32
    expected = pretrained.forward(images)
    same = np.mean(outputs.argmax(axis=1) == pretrained.predict(images))
    assert same >= 0.999, same
    # the same network, not just a good one: float32 rounding away from lenet5's outputs
    assert np.abs(outputs - expected).max() <= 1e-3 * max(1.0, np.abs(expected).max())
    assert np.allclose(proba.sum(axis=1), 1, atol=1e-5)


@pytest.mark.parametrize("float64", [True, False], ids=["float64", "float32"])
def test_flat_noisy_and_single_images_on_a_model_with_live_and_dead_units(float64, mnist_test):
    """A flat image is all zeros after normalisation (never NaN); every image,
    one at a time or together, gives lenet5's outputs."""
    net = random_model(3)
    images = np.concatenate([odd_images(), mnist_test[0][:50]])
    run = session(build_model(net.params, float64=float64))
    outputs = run.run(["outputs"], {"images": images})[0]
    expected = net.forward(images)
    tol = 1e-9 if float64 else 1e-4 * max(1.0, np.abs(expected).max())
    assert np.isfinite(outputs).all()
    assert np.abs(outputs - expected).max() <= tol
    flat_model = build_model(net.params, float64=float64)
    zero = run.run(["outputs"], {"images": np.zeros((1, 28, 28), np.uint8)})[0]
    assert np.array_equal(run.run(["outputs"], {"images": images[:3]})[0], np.repeat(zero, 3, axis=0))
    assert flat_model.graph.input[0].name == "images"
    for k in (0, 3, 10):
        one = run.run(["outputs"], {"images": images[k : k + 1]})[0]
        assert np.abs(one - expected[k : k + 1]).max() <= tol


def test_the_graph_says_what_it_is(pretrained):
    """Checked by onnx.checker; opset OPSET; uint8 images (N, 28, 28) in, outputs
    and probabilities (N, 10) out, in the graph's type, N dynamic; no Conv in
    the float64 graph (onnxruntime's CPU provider has no float64 Conv)."""
    for float64, elem in [(False, onnx.TensorProto.FLOAT), (True, onnx.TensorProto.DOUBLE)]:
        model = build_model(pretrained.params, float64=float64)
        onnx.checker.check_model(model, full_check=True)
        assert [(o.domain, o.version) for o in model.opset_import] == [("", OPSET)]

        def shape(value_info):
            dims = value_info.type.tensor_type.shape.dim
            return [d.dim_param or d.dim_value for d in dims], value_info.type.tensor_type.elem_type

        assert [(i.name, *shape(i)) for i in model.graph.input] == [("images", ["N", 28, 28], onnx.TensorProto.UINT8)]
        assert [(o.name, *shape(o)) for o in model.graph.output] == [
            ("outputs", ["N", 10], elem),
            ("probabilities", ["N", 10], elem),
        ]
        ops = {node.op_type for node in model.graph.node}
        assert ("Conv" in ops) != float64


def test_the_lean_graph_takes_normalised_input_and_gives_outputs_only(pretrained, mnist_test):
    images = mnist_test[0][:200]
    lean = build_model(pretrained.params, normalised_input=True, probabilities=False)
    assert [i.name for i in lean.graph.input] == ["input"] and [o.name for o in lean.graph.output] == ["outputs"]
    pixels = normalize(images)[:, 0, 2:30, 2:30]
    got = session(lean).run(None, {"input": pixels.astype(np.float32)})[0]
    full = session(build_model(pretrained.params)).run(["outputs"], {"images": images})[0]
    assert np.array_equal(got, full)  # the graph normalises in float64 and rounds to float32 once, as here
    lean64 = build_model(pretrained.params, float64=True, normalised_input=True, probabilities=False)
    got64 = session(lean64).run(None, {"input": pixels})[0]
    assert np.abs(got64 - pretrained.forward(images)).max() <= 1e-9


def test_build_model_refuses_parameters_lenet5_would_refuse():
    params = init_params(0)
    params[7] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        build_model(params)
    with pytest.raises(ValueError, match="shape"):
        build_model(params[:100])


def test_export_command_writes_a_graph_that_runs(tmp_path, mnist_test):
    model_file = tmp_path / "model.npz"
    net = random_model(1)
    net.save(model_file)
    out = tmp_path / "lenet5.onnx"
    r = subprocess.run(
        [*EXPORT, str(model_file), "--onnx", str(out), "--float64"], capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout == "" and len(r.stderr.splitlines()) == 1 and str(out) in r.stderr
    images = mnist_test[0][:100]
    outputs = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(["outputs"], {"images": images})[0]
    assert np.abs(outputs - net.forward(images)).max() <= 1e-9


def test_export_command_defaults_to_the_pretrained_model_and_float32(tmp_path, pretrained, mnist_test):
    script = Path(sys.executable).parent / "lenet5-export"  # the console script pyproject.toml declares
    assert script.is_file(), "lenet5-export is not installed: pip install -e ."
    out = tmp_path / "pretrained.onnx"
    r = subprocess.run([str(script), "--onnx", str(out)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    model = onnx.load(str(out))
    assert model.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert model.SerializeToString() == build_model(pretrained.params).SerializeToString()


@pytest.mark.parametrize(
    "args, status, message",
    [
        ([], 2, "the following arguments are required: --onnx"),
        (["--onnx", "{tmp}/missing/x.onnx"], 2, "does not exist"),
        (["--onnx", "{tmp}/folder.onnx"], 2, "is a folder"),
        (["--onnx", "{tmp}/model.npz"], 2, "use a .onnx file name"),
        (["{tmp}/bad.npz", "--onnx", "{tmp}/x.onnx"], 1, "not a readable .npz model"),
        (["{tmp}/none.dat", "--onnx", "{tmp}/x.onnx"], 1, "no such model file"),
        (["{tmp}/model.txt", "--onnx", "{tmp}/x.onnx"], 1, "unknown model format"),
    ],
)
def test_export_command_refuses_in_one_line(tmp_path, args, status, message):
    (tmp_path / "bad.npz").write_bytes(b"not a zip file")
    (tmp_path / "model.npz").write_bytes(b"a model the user made")
    (tmp_path / "folder.onnx").mkdir()
    args = [a.format(tmp=tmp_path) for a in args]
    r = subprocess.run([*EXPORT, *args], capture_output=True, text=True, timeout=300)
    assert r.returncode == status, r.stderr
    assert message in r.stderr and "Traceback" not in r.stderr
    # argparse's usage may wrap onto indented lines; the message is the one line after it
    lines = [line for line in r.stderr.splitlines() if not line.startswith(("usage:", " "))]
    assert len(lines) == 1, r.stderr
    assert not (tmp_path / "x.onnx").exists()
    assert (tmp_path / "model.npz").read_bytes() == b"a model the user made"


def test_export_without_onnx_says_what_to_install(tmp_path):
    """With the onnx package hidden: the command ends with one line naming
    `pip install onnx`, exit 2; LeNet5.to_onnx raises ImportError saying the same."""
    hide = "import sys; sys.modules['onnx'] = None; "
    r = subprocess.run(
        [
            sys.executable,
            "-c",
            hide + "from lenet5.export import main; sys.exit(main())",
            "--onnx",
            str(tmp_path / "x.onnx"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 2 and "pip install onnx" in r.stderr and "Traceback" not in r.stderr, r.stderr
    r = subprocess.run(
        [
            sys.executable,
            "-c",
            hide + "from lenet5 import LeNet5\n"
            "try:\n    LeNet5.init(0).to_onnx('x.onnx')\n"
            "except ImportError as e:\n    print(e)",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert "pip install onnx" in r.stdout, r.stderr
    assert not (tmp_path / "x.onnx").exists()


def python_blocks(page):
    """The ```python blocks of a docs page (```python notrun ones left out)."""
    return re.findall(r"^```python\n(.*?)^```$", page.read_text(), flags=re.S | re.M)


DOC_BLOCKS = python_blocks(ROOT / "docs" / "export.md")


def test_the_docs_page_has_its_examples():
    assert len(DOC_BLOCKS) == 2 and any("onnxruntime" in b for b in DOC_BLOCKS)


@pytest.mark.parametrize(
    "block",
    [  # the PyTorch one fine-tunes for 20 batches: slow
        pytest.param(b, id=f"block{k}", marks=[pytest.mark.slow] if "import torch" in b else [])
        for k, b in enumerate(DOC_BLOCKS)
    ],
)
def test_the_docs_page_examples_run_as_written(block):
    """docs/export.md's examples, each in a fresh process from the repository's root."""
    if "import torch" in block:
        pytest.importorskip("torch", reason="PyTorch is not installed (pip install torch)")
    r = subprocess.run([sys.executable, "-c", block], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert r.returncode == 0, f"{block}\n{r.stdout}\n{r.stderr}"
