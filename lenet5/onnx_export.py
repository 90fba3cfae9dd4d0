"""The network as an ONNX graph (docs/SPEC.md §15), built with the ``onnx``
package (the extra ``[onnx]``; ``pip install onnx``), for onnxruntime or
any other runtime that reads ONNX opset 17.

    from lenet5.onnx_export import build_model, save_model
    model = build_model(net.params)                  # float32; float64=True for the exact one
    save_model(model, "lenet5.onnx")                 # or LeNet5.to_onnx(path)

The graph takes ``images``, uint8 (N, 28, 28), normalises each image inside
(§4, the flat-image rule included) and gives ``outputs`` (the ten ReLU-ed
outputs) and ``probabilities`` (their softmax), both (N, 10).  Two shapes of
the same network, because onnxruntime's CPU provider has no float64 ``Conv``:

- float32: the standard operators (``Conv``, ``MaxPool``, ``Gemm``), the
  ones runtimes make fastest;
- float64: each convolution is one ``MatMul`` of kernel-row slices of the
  input against a banded weight matrix (§15.3), pooling a ``ReduceMax``.

``build_model(..., normalised_input=True, probabilities=False)`` is the
leanest graph, the benchmark's single-image peer: float ``input`` (N, 28, 28)
already normalised by §4, ``outputs`` only.
"""

from __future__ import annotations

from typing import Any, Dict, List

import numpy as np

from . import core
from ._version import __version__
from .files import PathLike, atomic_write
from .params import check_finite

#: The ONNX operator set the graph is written in (docs/SPEC.md §15.1);
#: onnxruntime reads it since its version 1.12.
OPSET = 17
#: Names of the graph's inputs and outputs.
IMAGES, INPUT, OUTPUTS, PROBABILITIES = "images", "input", "outputs", "probabilities"

MISSING = (
    "exporting to ONNX needs the onnx package: pip install onnx "
    '(or, from a checkout of lenet5, pip install -e ".[onnx]")'
)

S = 28  # side of an image
PAD = 2  # the zero frame of docs/SPEC.md §4
K = 5  # side of every kernel


def require_onnx() -> Any:
    """The onnx package, or ImportError saying how to install it."""
    try:
        import onnx
    except ImportError:
        raise ImportError(MISSING) from None
    return onnx


def _banded(w: np.ndarray, width: int) -> np.ndarray:
    """A convolution's weights ``[c_in][c_out][5][5]`` (§3.1) as the matrix of
    §15.3: one output row of a valid convolution over an input of ``width``
    columns is ``rows @ M``, where ``rows`` holds the five input rows under it
    side by side, each as ``[column][c_in]``, and the result is ``[column][c_out]``.
    M[(kr, c + kc, ci), (c, co)] = w[ci][co][kr][kc]; every other entry is 0."""
    c_in, c_out = w.shape[:2]
    out_w = width - K + 1
    m = np.zeros((K, width, c_in, out_w, c_out))
    for kr in range(K):
        for kc in range(K):
            for c in range(out_w):
                m[kr, c + kc, :, c, :] = w[:, :, kr, kc]
    return m.reshape(K * width * c_in, out_w * c_out)


class _Graph:
    """Nodes and constants as they are added; names are made unique by a counter."""

    def __init__(self, onnx: Any, dtype: Any) -> None:
        self.onnx, self.dtype = onnx, dtype
        self.nodes: List[Any] = []
        self.inits: List[Any] = []
        self.count = 0

    def name(self, hint: str) -> str:
        self.count += 1
        return f"{hint}_{self.count}"

    def const(self, hint: str, value: Any, dtype: Any = None) -> str:
        name = self.name(hint)
        array = np.asarray(value, dtype=dtype or self.dtype)
        self.inits.append(self.onnx.numpy_helper.from_array(array, name))
        return name

    def ints(self, hint: str, values: Any) -> str:
        return self.const(hint, np.asarray(values, dtype=np.int64), np.int64)

    def op(self, op_type: str, inputs: List[str], hint: str = "", output: str = "", **attrs: Any) -> str:
        out = output or self.name(hint or op_type.lower())
        self.nodes.append(self.onnx.helper.make_node(op_type, inputs, [out], **attrs))
        return out


def _normalise(g: _Graph, images: str) -> str:
    """uint8 (N, 28, 28) -> (N, 28, 28) normalised by §4, in float64 whatever the
    graph's type (the sums are of whole numbers, exact in any order; §15.2)."""
    f64 = g.onnx.TensorProto.DOUBLE
    one_row = g.ints("flat", [-1, S * S])
    x = g.op("Reshape", [g.op("Cast", [images], "pixels", to=f64), one_row], "flat_pixels")
    axis = g.ints("axis", [1])
    n_px = g.const("pixel_count", float(S * S), np.float64)
    mean = g.op("Div", [g.op("ReduceSum", [x, axis], "s1", keepdims=1), n_px], "mean")
    s2 = g.op("ReduceSum", [g.op("Mul", [x, x], "squares"), axis], "s2", keepdims=1)
    var = g.op("Sub", [g.op("Div", [s2, n_px]), g.op("Mul", [mean, mean])], "var")
    # the flat-image rule: var is exactly 0 and every pixel equals the mean, so
    # dividing the zero differences by 1 gives the all-zero image, never NaN
    varied = g.op("Greater", [var, g.const("zero", 0.0, np.float64)], "varied")
    std = g.op("Sqrt", [g.op("Where", [varied, var, g.const("one", 1.0, np.float64)])], "std")
    norm = g.op("Div", [g.op("Sub", [x, mean], "centred"), std], "normalised")
    if g.dtype != np.float64:
        norm = g.op("Cast", [norm], "normalised32", to=g.onnx.TensorProto.FLOAT)
    return g.op("Reshape", [norm, g.ints("square", [-1, S, S])], "normalised_images")


def _network_conv(g: _Graph, params: np.ndarray, x: str) -> str:
    """(N, 28, 28) normalised -> (N, 10) outputs with Conv, MaxPool and Gemm (§15.3)."""

    def weights(name: str) -> str:  # [c_out][c_in][kr][kc], as ONNX's Conv reads them
        return g.const(name, core.block(params, name).transpose(1, 0, 2, 3))

    pool: Dict[str, Any] = {"kernel_shape": [2, 2], "strides": [2, 2]}
    x = g.op("Reshape", [x, g.ints("nchw", [-1, 1, S, S])], "input")
    x = g.op(
        "Relu",
        [g.op("Conv", [x, weights("W1"), g.const("b1", core.block(params, "b1"))], "conv1", pads=[PAD] * 4)],
        "layer1",
    )
    x = g.op("MaxPool", [x], "layer2", **pool)
    x = g.op("Relu", [g.op("Conv", [x, weights("W2"), g.const("b2", core.block(params, "b2"))], "conv2")], "layer3")
    x = g.op("MaxPool", [x], "layer4", **pool)
    x = g.op("Relu", [g.op("Conv", [x, weights("W3"), g.const("b3", core.block(params, "b3"))], "conv3")], "layer5")
    x = g.op("Flatten", [x], "layer5_flat")
    return g.op("Gemm", [x, g.const("W4", core.block(params, "W4")), g.const("b4", core.block(params, "b4"))], "fc")


def _network_matmul(g: _Graph, params: np.ndarray, x: str) -> str:
    """(N, 28, 28) normalised -> (N, 10) outputs with MatMul only (§15.3): maps
    are kept as (N, rows, columns * maps), the maps last."""

    def conv(x: str, side: int, name: str, bias: str) -> str:
        """(N, side, side * c_in) -> (N, side - 4, (side - 4) * c_out), ReLU-ed."""
        out_side = side - K + 1
        axis = g.ints("axis", [1])
        shifted = [
            g.op("Slice", [x, g.ints("start", [kr]), g.ints("end", [kr + out_side]), axis], f"{name}_row{kr}")
            for kr in range(K)
        ]  # the rows under kernel row kr of every output row
        band = g.op("Concat", shifted, f"{name}_rows", axis=2)
        out = g.op("MatMul", [band, g.const(name + "_banded", _banded(core.block(params, name), side))], f"{name}_sum")
        b = np.tile(core.block(params, bias), out_side)  # [column][c_out]
        return g.op("Relu", [g.op("Add", [out, g.const(bias, b)], f"{name}_biased")], f"{name}_relu")

    def pool(x: str, side: int, maps: int, name: str) -> str:
        """(N, side, side * maps) -> (N, side/2, side/2 * maps): the largest of each 2 x 2 window."""
        half = side // 2
        cells = g.op("Reshape", [x, g.ints("windows", [-1, half, 2, half, 2, maps])], f"{name}_cells")
        best = g.op("ReduceMax", [cells], f"{name}_max", axes=[2, 4], keepdims=0)
        return g.op("Reshape", [best, g.ints("maps_last", [-1, half, half * maps])], name)

    x = g.op("Pad", [x, g.ints("frame", [0, PAD, PAD, 0, PAD, PAD])], "input")  # (N, 32, 32)
    x = pool(conv(x, S + 2 * PAD, "W1", "b1"), S, 6, "layer2")  # (N, 14, 14 * 6)
    x = pool(conv(x, S // 2, "W2", "b2"), S // 2 - K + 1, 16, "layer4")  # (N, 5, 5 * 16)
    x = g.op("Reshape", [x, g.ints("dense", [-1, 400])], "layer4_flat")  # [row][column][map]
    w3 = core.block(params, "W3").transpose(2, 3, 0, 1).reshape(400, 120)  # [kr][kc][ci] x [co]
    x = g.op("Add", [g.op("MatMul", [x, g.const("W3", w3)], "W3_sum"), g.const("b3", core.block(params, "b3"))])
    x = g.op("Relu", [x], "layer5")
    return g.op(
        "Add",
        [
            g.op("MatMul", [x, g.const("W4", core.block(params, "W4"))], "W4_sum"),
            g.const("b4", core.block(params, "b4")),
        ],
        "fc",
    )


def build_model(
    params: np.ndarray, float64: bool = False, normalised_input: bool = False, probabilities: bool = True
) -> Any:
    """The network with these parameters (51,902 finite values, §3.1) as a
    checked ``onnx.ModelProto`` (docs/SPEC.md §15).

    float64 computes in float64 (outputs within about 1e-13 of lenet5's, the
    MatMul form), else in float32 (the Conv form).  normalised_input takes
    float ``input`` (N, 28, 28) already normalised by §4, in the graph's type,
    instead of uint8 ``images``; probabilities=False leaves the softmax out."""
    onnx = require_onnx()
    params = core.check_params(np.array(params, dtype=np.float64))
    check_finite(params)
    dtype = np.float64 if float64 else np.float32
    g = _Graph(onnx, dtype)
    elem = onnx.TensorProto.DOUBLE if float64 else onnx.TensorProto.FLOAT
    if normalised_input:
        inputs = [onnx.helper.make_tensor_value_info(INPUT, elem, ["N", S, S])]
        x = INPUT
    else:
        inputs = [onnx.helper.make_tensor_value_info(IMAGES, onnx.TensorProto.UINT8, ["N", S, S])]
        x = _normalise(g, IMAGES)
    out = (_network_matmul if float64 else _network_conv)(g, params, x)
    g.op("Relu", [out], output=OUTPUTS)
    outputs = [onnx.helper.make_tensor_value_info(OUTPUTS, elem, ["N", 10])]
    if probabilities:
        g.op("Softmax", [OUTPUTS], output=PROBABILITIES, axis=1)
        outputs.append(onnx.helper.make_tensor_value_info(PROBABILITIES, elem, ["N", 10]))
    graph = onnx.helper.make_graph(g.nodes, "lenet5", inputs, outputs, g.inits)
    model = onnx.helper.make_model(
        graph,
        opset_imports=[onnx.helper.make_opsetid("", OPSET)],
        producer_name="lenet5",
        producer_version=__version__,
        doc_string=_doc(float64, normalised_input),
    )
    # ir_version: the one the opset came with, so older runtimes read the file too
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def _doc(float64: bool, normalised_input: bool) -> str:
    kind = "float64 (MatMul form)" if float64 else "float32 (Conv form)"
    source = "float input (N, 28, 28) normalised by §4" if normalised_input else "uint8 images (N, 28, 28)"
    return f"LeNet-5 for MNIST exported by lenet5 (docs/SPEC.md §15): {kind}, from {source}"


def save_model(model: Any, path: PathLike) -> None:
    """Write an ONNX model to path atomically (§10.4)."""
    data = model.SerializeToString()
    atomic_write(path, lambda f: f.write(data))


def export(params: np.ndarray, path: PathLike, float64: bool = False) -> None:
    """build_model(params, float64) written to path (what ``LeNet5.to_onnx`` does)."""
    save_model(build_model(params, float64=float64), path)
