"""python -m lenet5.experiment: the loss-and-sign experiment in one command.

From the same initial model, for the same batches, train the four
combinations of output error and update sign, each with its default lr:

    mse  +1  the reference program: mse's error is the NEGATIVE gradient, + descends
    mse  -1  the same error with the sign flipped: climbs
    xent -1  the published fix: xent's error p - y is the POSITIVE gradient, - descends
    xent +1  the famous bug: the textbook error in the reference's update: climbs

It writes a figure (test accuracy and loss over the batches) and a table
(markdown, and JSON with --json) of final accuracy and time.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from . import cli
from .config import DESCENDING_SIGN, TrainConfig
from .data import DataError, load_split
from .engines import Engine
from .files import write_text_atomic
from .loop import BatchReport, train
from .params import init_params
from .plots import plot_experiment

PROG = "lenet5.experiment"

# The four runs: each loss with the sign that descends it and the one that
# climbs, each at the loss's default lr (TrainConfig fills it in).
RUNS = [  # loss, sign, colour
    ("mse", DESCENDING_SIGN["mse"], "tab:blue"),
    ("mse", -DESCENDING_SIGN["mse"], "tab:cyan"),
    ("xent", DESCENDING_SIGN["xent"], "tab:red"),
    ("xent", -DESCENDING_SIGN["xent"], "tab:orange"),
]

Split = Tuple[np.ndarray, np.ndarray]
OnProgress = Callable[[str, int, int], None]  # progress(label, batch, batches)


def run_experiment(
    train_set: Split,
    test: Split,
    batches: int,
    batch_size: int,
    eval_every: int,
    engine: Engine,
    seed: int = 0,
    progress: Optional[OnProgress] = None,
) -> List[Dict[str, Any]]:
    """The four runs, each through the training loop from the same initial
    model; returns a list of dicts with their curves and results."""
    start_params = init_params(seed)
    return [
        _one_run(
            loss, sign, color, start_params.copy(), train_set, test, batches, batch_size, eval_every, engine, progress
        )
        for loss, sign, color in RUNS
    ]


def _one_run(
    loss: str,
    sign: int,
    color: str,
    params: np.ndarray,
    train_set: Split,
    test: Split,
    batches: int,
    batch_size: int,
    eval_every: int,
    engine: Engine,
    progress: Optional[OnProgress],
) -> Dict[str, Any]:
    """One run of run_experiment: train params in place for `batches` batches,
    scoring the test images every eval_every batches; returns its dict."""
    (train_x, train_y), (test_x, test_y) = train_set, test
    config = TrainConfig(loss=loss, sign=sign, batch_size=batch_size)
    label = f"{loss}, sign {sign:+d}, lr {config.lr} ({'descends' if config.descends else 'climbs'})"
    run: Dict[str, Any] = {
        "loss": loss,
        "sign": sign,
        "lr": config.lr,
        "descends": config.descends,
        "color": color,
        "label": label,
        "eval_batches": [],
        "test_accuracy": [],
    }

    def evaluate(b: int) -> None:
        run["eval_batches"].append(b)
        run["test_accuracy"].append(float((engine.predict(params, test_x) == test_y).mean()))

    def on_batch(report: BatchReport) -> None:
        b = report.position.batch
        if b % eval_every == 0 or b == batches:
            evaluate(b)
        if progress:
            progress(label, b, batches)

    evaluate(0)
    history = train(
        engine,
        params,
        train_x[: batches * batch_size],
        train_y[: batches * batch_size],
        config,
        max_batches=batches,
        on_batch=on_batch,
        stop_on_divergence=False,
    )
    run.update(
        batch_loss=history.batch_loss,
        diverged_at=history.diverged_at,
        train_seconds=history.train_seconds,
        final_test_accuracy=run["test_accuracy"][-1],
    )
    return run


def markdown_table(runs: List[Dict[str, Any]]) -> str:
    """The runs' results as a markdown table, one row per run."""
    lines = [
        "| loss | sign | lr | direction | final test accuracy | diverged at batch | train time (s) |",
        "|---|---:|---:|---|---:|---:|---:|",
    ]
    for r in runs:
        lines.append(
            f"| {r['loss']} | {r['sign']:+d} | {r['lr']} | {'descends' if r['descends'] else 'climbs'} | "
            f"{100 * r['final_test_accuracy']:.2f}% | {r['diverged_at'] or '-'} | {r['train_seconds']:.2f} |"
        )
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The command's options."""
    p = argparse.ArgumentParser(prog=cli.prog("lenet5.experiment"), description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--batches",
        type=cli.positive_int,
        default=200,
        metavar="N",
        help="batches per run, from the first training image on (default 200: one epoch)",
    )
    p.add_argument(
        "--batch-size", type=cli.positive_int, default=300, metavar="N", help="images per batch (default 300)"
    )
    p.add_argument(
        "--eval-every",
        type=cli.positive_int,
        default=10,
        metavar="N",
        help="batches between test evaluations (default 10)",
    )
    p.add_argument(
        "--test-images",
        type=cli.positive_int,
        default=10000,
        metavar="N",
        help="test images per evaluation, the first N (default 10000: all)",
    )
    p.add_argument(
        "--out",
        metavar="DIR",
        default="experiment",
        help="folder for the figure experiment.png and the table experiment.md (default ./experiment)",
    )
    cli.add_engine_options(p)
    p.add_argument("--seed", type=cli.seed_int, default=0, help="seed of the shared initial model (default 0)")
    cli.add_data_option(p)
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON (default: none)")
    p.add_argument("--quiet", action="store_true", help="no progress lines (default: a line every 20 batches)")
    cli.add_version_option(p)
    return p


def main(argv: Optional[List[str]] = None) -> int:
    """Run the experiment from the command line; returns the exit status."""
    p = build_parser()
    args = p.parse_args(argv)
    engine = cli.engine_from(args, p)
    cli.check_output(p, "--json", args.json)

    def body() -> int:
        out = Path(args.out)
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            p.error(f"--out {out}: cannot create ({e.strerror or e})")
        try:
            train_set = load_split("train", args.data_dir, progress=not args.quiet)
            test_x, test_y = load_split("test", args.data_dir, progress=not args.quiet)
        except DataError as e:
            raise cli.Stop(f"data error: {e}", 1) from None
        if args.batches * args.batch_size > len(train_set[0]):
            p.error(
                f"--batches {args.batches} of {args.batch_size} need {args.batches * args.batch_size} "
                f"training images; there are {len(train_set[0])}"
            )
        test = (test_x[: args.test_images], test_y[: args.test_images])

        def progress(label: str, b: int, total: int) -> None:
            if not args.quiet and (b % 20 == 0 or b == total):
                cli.say(f"  {label}: batch {b}/{total}")

        runs = run_experiment(
            train_set, test, args.batches, args.batch_size, args.eval_every, engine, args.seed, progress
        )
        table = markdown_table(runs)
        print(table)
        write_text_atomic(out / "experiment.md", table + "\n")
        cli.say(plot_experiment(runs, out / "experiment.png", args.batch_size))
        if args.json:
            keep = (
                "loss",
                "sign",
                "lr",
                "descends",
                "final_test_accuracy",
                "diverged_at",
                "train_seconds",
                "eval_batches",
                "test_accuracy",
                "batch_loss",
            )
            result = {
                "batches": args.batches,
                "batch_size": args.batch_size,
                "engine": args.engine,
                "seed": args.seed,
                "test_images": len(test[1]),
                # JSON has no inf or NaN: a diverged batch's loss becomes null
                "runs": [
                    dict({k: r[k] for k in keep}, batch_loss=[v if math.isfinite(v) else None for v in r["batch_loss"]])
                    for r in runs
                ],
            }
            write_text_atomic(args.json, json.dumps(result, indent=1) + "\n")
        return 0

    return cli.run(PROG, body)


if __name__ == "__main__":
    sys.exit(main())
