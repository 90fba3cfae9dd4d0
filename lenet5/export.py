"""python -m lenet5.export [MODEL] --onnx PATH [--float64]: a model as an ONNX
graph for onnxruntime and other runtimes (without MODEL: the pretrained one
shipped with the package).  docs/export.md says how to use it; docs/SPEC.md
§15 says what the graph computes.

Exit status: 0 written; 1 a bad model file, or the file could not be written;
2 a bad argument (no --onnx, a path that cannot be written, the onnx package
missing).
"""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from . import cli

PROG = "lenet5.export"


def build_parser() -> argparse.ArgumentParser:
    """The command's options."""
    p = argparse.ArgumentParser(
        prog=cli.prog("lenet5.export"),
        description="Write a model as an ONNX graph (uint8 images (N, 28, 28) in; "
        "outputs and probabilities (N, 10) out).",
    )
    p.add_argument(
        "model",
        nargs="?",
        default=None,
        help="model file (.npz or .dat); default: the pretrained model shipped with lenet5",
    )
    p.add_argument("--onnx", metavar="PATH", required=True, help="where to write the graph (a .onnx file name)")
    p.add_argument(
        "--float64",
        action="store_true",
        help="compute in float64 (outputs within about 1e-13 of lenet5's; slower) instead of float32",
    )
    cli.add_version_option(p)
    return p


def main(argv: Optional[List[str]] = None) -> int:
    """Export a model file from the command line; returns the exit status."""
    p = build_parser()
    args = p.parse_args(argv)
    cli.check_output(p, "--onnx", args.onnx, suffixes=(".onnx",))

    def body() -> int:
        net = cli.load_model(args.model)
        from .onnx_export import build_model, require_onnx, save_model

        try:
            require_onnx()
        except ImportError as e:
            raise cli.Stop(str(e), 2) from None
        save_model(build_model(net.params, float64=args.float64), args.onnx)
        kind = "float64" if args.float64 else "float32"
        cli.say(
            f"{PROG}: wrote {args.onnx} ({kind}; input 'images' uint8 (N, 28, 28), "
            f"outputs 'outputs' and 'probabilities' (N, 10))"
        )
        return 0

    return cli.run(PROG, body)


if __name__ == "__main__":
    sys.exit(main())
