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
import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from . import engines
from .data import DataError, load_split
from .model import atomic_write, init_params
from .plots import plot_experiment
from .train import DEFAULT_LR, DESCENDING_SIGN, _positive_int, _threads

# The four runs: each loss with the sign that descends it and the one that
# climbs, each at the loss's default lr (the trainer's defaults).
RUNS = [  # loss, sign, colour
    ("mse", DESCENDING_SIGN["mse"], "tab:blue"),
    ("mse", -DESCENDING_SIGN["mse"], "tab:cyan"),
    ("xent", DESCENDING_SIGN["xent"], "tab:red"),
    ("xent", -DESCENDING_SIGN["xent"], "tab:orange"),
]


def run_experiment(train, test, batches, batch_size, eval_every, engine, seed=0, progress=None):
    """The four runs; returns a list of dicts with their curves and results."""
    (train_x, train_y), (test_x, test_y) = train, test
    start_params = init_params(seed)
    runs = []
    for loss, sign, color in RUNS:
        lr, descends = DEFAULT_LR[loss], sign == DESCENDING_SIGN[loss]
        params = start_params.copy()
        label = f"{loss}, sign {sign:+d}, lr {lr} ({'descends' if descends else 'climbs'})"
        run = {"loss": loss, "sign": sign, "lr": lr, "descends": descends, "color": color,
               "label": label, "batch_loss": [], "eval_batches": [], "test_accuracy": [],
               "diverged_at": None}

        def evaluate(b):
            run["eval_batches"].append(b)
            run["test_accuracy"].append(float((engine.predict(params, test_x) == test_y).mean()))

        evaluate(0)
        seconds = 0.0
        for b in range(batches):
            rows = slice(b * batch_size, (b + 1) * batch_size)
            t0 = time.perf_counter()
            with np.errstate(all="ignore"):
                value, _ = engine.train_batch(params, train_x[rows], train_y[rows],
                                              loss=loss, sign=sign, lr=lr)
            seconds += time.perf_counter() - t0
            run["batch_loss"].append(value / batch_size)
            if run["diverged_at"] is None and not (math.isfinite(value) and np.isfinite(params).all()):
                run["diverged_at"] = b + 1
            if (b + 1) % eval_every == 0 or b + 1 == batches:
                evaluate(b + 1)
            if progress:
                progress(label, b + 1, batches)
        run["train_seconds"] = seconds
        run["final_test_accuracy"] = run["test_accuracy"][-1]
        runs.append(run)
    return runs


def markdown_table(runs):
    lines = ["| loss | sign | lr | direction | final test accuracy | diverged at batch | train time (s) |",
             "|---|---:|---:|---|---:|---:|---:|"]
    for r in runs:
        lines.append(f"| {r['loss']} | {r['sign']:+d} | {r['lr']} | {'descends' if r['descends'] else 'climbs'} | "
                     f"{100 * r['final_test_accuracy']:.2f}% | {r['diverged_at'] or '-'} | {r['train_seconds']:.2f} |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m lenet5.experiment", description=__doc__.split("\n\n")[0])
    p.add_argument("--batches", type=_positive_int, default=200, help="batches per run (default 200: one epoch)")
    p.add_argument("--batch-size", type=_positive_int, default=300)
    p.add_argument("--eval-every", type=_positive_int, default=10, help="batches between test evaluations")
    p.add_argument("--test-images", type=_positive_int, default=10000, help="test images per evaluation")
    p.add_argument("--out", metavar="DIR", default="experiment", help="folder for the figure and table")
    p.add_argument("--engine", choices=sorted(engines.ENGINES), default="c")
    p.add_argument("--threads", type=_threads, default=None, help="threads of the C core")
    p.add_argument("--seed", type=int, default=0, help="seed of the shared initial model")
    p.add_argument("--data-dir", metavar="DIR")
    p.add_argument("--json", metavar="PATH", help="write the results as JSON")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        p.error(f"--out {out}: cannot create ({e.strerror or e})")
    try:
        train = load_split("train", args.data_dir, progress=not args.quiet)
        test_x, test_y = load_split("test", args.data_dir, progress=not args.quiet)
    except DataError as e:
        print(f"lenet5.experiment: data error: {e}", file=sys.stderr)
        return 1
    if args.batches * args.batch_size > len(train[0]):
        p.error(f"--batches {args.batches} of {args.batch_size} need {args.batches * args.batch_size} "
                f"training images; there are {len(train[0])}")
    test = (test_x[:args.test_images], test_y[:args.test_images])
    engine = engines.get(args.engine, threads=args.threads)

    def progress(label, b, total):
        if not args.quiet and (b % 20 == 0 or b == total):
            print(f"  {label}: batch {b}/{total}", file=sys.stderr, flush=True)

    runs = run_experiment(train, test, args.batches, args.batch_size, args.eval_every, engine,
                          args.seed, progress)
    table = markdown_table(runs)
    print(table)
    (out / "experiment.md").write_text(table + "\n")
    message = plot_experiment(runs, out / "experiment.png", args.batch_size)
    print(message, file=sys.stderr)
    if args.json:
        keep = ("loss", "sign", "lr", "descends", "final_test_accuracy", "diverged_at", "train_seconds",
                "eval_batches", "test_accuracy", "batch_loss")
        result = {"batches": args.batches, "batch_size": args.batch_size, "engine": args.engine,
                  "seed": args.seed, "test_images": len(test[1]),
                  # JSON has no inf or NaN: a diverged batch's loss becomes null
                  "runs": [dict({k: r[k] for k in keep},
                                batch_loss=[v if math.isfinite(v) else None for v in r["batch_loss"]])
                           for r in runs]}
        atomic_write(args.json, lambda f: f.write(json.dumps(result, indent=1).encode() + b"\n"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
