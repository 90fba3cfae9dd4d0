"""python -m lenet5.train: train LeNet-5 on MNIST from the shell.

The defaults reproduce the reference program: mse loss, sign +1, lr 0.5,
batch 300, one epoch, images in file order, a final partial batch dropped.

Exit status: 0 done; 1 a data or model file is bad; 2 a bad argument;
3 the loss became NaN or infinite (no model written); 130 interrupted.
"""
import argparse
import json
import math
import signal
import sys
import time
from pathlib import Path

import numpy as np

from . import core, engines
from .data import DataError, load_split
from .model import ModelFileError, check_writable, init_params, read_params, write_params

DEFAULT_LR = {"mse": 0.5, "xent": 0.1}
#: The sign that descends each loss: mse's error is the negative gradient, xent's the positive.
DESCENDING_SIGN = {"mse": +1, "xent": -1}


class Stop(Exception):
    """Ends the command with a message and an exit status."""

    def __init__(self, message, status):
        super().__init__(message)
        self.status = status


def _sign(text):
    if text in ("+1", "1"):
        return 1
    if text == "-1":
        return -1
    raise argparse.ArgumentTypeError(f"must be +1 or -1, not {text!r}")


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _threads(text):
    value = _positive_int(text)
    if value > core.MAX_THREADS:
        raise argparse.ArgumentTypeError(f"must be at most {core.MAX_THREADS}, not {value}")
    return value


def _lr(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, not {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be finite and > 0, not {text}")
    return value


def build_parser():
    p = argparse.ArgumentParser(
        prog="python -m lenet5.train",
        description="Train LeNet-5 on MNIST. Defaults reproduce the reference program "
                    "(mse, sign +1, lr 0.5, batch 300, 1 epoch, file order).")
    p.add_argument("--loss", choices=["mse", "xent"], default=None,
                   help="output error: mse (the reference's, returns the negative gradient) "
                        "or xent (softmax cross-entropy, returns the positive gradient p - y); "
                        "default mse")
    p.add_argument("--sign", type=_sign, default=None,
                   help="update w = w + sign * lr/B * S; default: the one that descends "
                        "(+1 for mse, -1 for xent)")
    p.add_argument("--lr", type=_lr, default=None, help="learning rate (default 0.5 mse, 0.1 xent)")
    p.add_argument("--batch-size", type=_positive_int, default=None, help="images per batch (default 300)")
    p.add_argument("--epochs", type=_positive_int, default=None, help="passes over the data (default 1)")
    p.add_argument("--train-limit", type=_positive_int, default=None,
                   help="use only the first N training images")
    p.add_argument("--shuffle", action="store_true", default=None,
                   help="shuffle the training images each epoch (seeded by --seed)")
    p.add_argument("--seed", type=int, default=None,
                   help="seed of the initial weights and of the shuffle (default 0)")
    p.add_argument("--init", metavar="PATH", help="start from this model file (.npz or .dat)")
    p.add_argument("--save", metavar="PATH", help="write the trained model (.npz, or .dat: the reference layout)")
    p.add_argument("--data-dir", metavar="DIR", help="folder holding the MNIST files")
    p.add_argument("--threads", type=_threads, default=None,
                   help="threads of the C core (default: OMP_NUM_THREADS, else all cores)")
    p.add_argument("--engine", choices=sorted(engines.ENGINES), default="c",
                   help="c (the exact core, default) or numpy (the NumPy twin)")
    p.add_argument("--kernel", choices=sorted(core.KERNELS), default="fast",
                   help="C kernels: fast (default) or reference (the plain, readable ones; same bits)")
    p.add_argument("--json", metavar="PATH", help="write the run's summary as JSON")
    p.add_argument("--plot", metavar="PNG", help="write a figure of the training curves (needs matplotlib)")
    p.add_argument("--checkpoint", metavar="PATH",
                   help="write model and position here (.npz), atomically, every --checkpoint-every batches")
    p.add_argument("--checkpoint-every", type=_positive_int, default=None, metavar="N",
                   help="batches between checkpoints (default: once per epoch)")
    p.add_argument("--resume", metavar="PATH", help="continue the run saved in this checkpoint")
    p.add_argument("--quiet", action="store_true", help="no progress bar, only the summary line")
    return p


#: Settings a checkpoint fixes; a resumed run takes them from it.
RUN_SETTINGS = ("loss", "sign", "lr", "batch_size", "epochs", "train_limit", "shuffle", "seed", "init")


def resolve_settings(args, parser):
    """Fill defaults (or the checkpoint's settings) and check the paths to write."""
    state = None
    if args.resume:
        try:
            params, meta = read_params(args.resume)
        except ModelFileError as e:
            raise Stop(f"cannot resume: {e}", 1) from None
        state = meta.get("checkpoint")
        if not isinstance(state, dict):
            raise Stop(f"cannot resume: {args.resume} is a model, not a checkpoint", 1)
        for name in RUN_SETTINGS:
            given = getattr(args, name)
            if given is not None and given != state["settings"][name]:
                parser.error(f"--{name.replace('_', '-')} {given} differs from the checkpoint's "
                             f"{state['settings'][name]}; leave it out to resume")
            setattr(args, name, state["settings"][name])
        state["params"] = params
    args.loss = args.loss or "mse"
    args.sign = DESCENDING_SIGN[args.loss] if args.sign is None else args.sign
    args.lr = DEFAULT_LR[args.loss] if args.lr is None else args.lr
    args.batch_size = args.batch_size or 300
    args.epochs = args.epochs or 1
    args.shuffle = bool(args.shuffle)
    args.seed = 0 if args.seed is None else args.seed
    if args.save and Path(args.save).suffix.lower() not in (".npz", ".dat"):
        parser.error(f"--save {args.save}: use a .npz or .dat file name")
    if args.checkpoint and Path(args.checkpoint).suffix.lower() != ".npz":
        parser.error(f"--checkpoint {args.checkpoint}: use a .npz file name")
    if args.plot and Path(args.plot).suffix.lower() != ".png":
        parser.error(f"--plot {args.plot}: use a .png file name")
    for flag in ("save", "json", "plot", "checkpoint"):
        path = getattr(args, flag)
        if path:
            try:
                check_writable(path)
            except ModelFileError as e:
                parser.error(f"--{flag} {e}")
    return state


class Interrupt:
    """Turns Ctrl-C into a request to stop at the next batch boundary."""

    def __init__(self):
        self.requested = False

    def __enter__(self):
        self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:  # a second Ctrl-C stops at once
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc):
        signal.signal(signal.SIGINT, self.previous)


def epoch_order(n, epoch, seed, shuffle):
    """The image order of one epoch: file order, or a permutation fixed by (seed, epoch)."""
    if not shuffle:
        return None
    return np.random.default_rng([seed, epoch]).permutation(n)


def run(args, state, say):
    """Train as args say; returns the summary dict."""
    try:
        train_x, train_y = load_split("train", args.data_dir, progress=not args.quiet)
        test_x, test_y = load_split("test", args.data_dir, progress=not args.quiet)
    except DataError as e:
        raise Stop(f"data error: {e}", 1) from None
    if args.train_limit:
        if args.train_limit > len(train_x):
            raise Stop(f"--train-limit {args.train_limit} exceeds the {len(train_x)} training images", 2)
        train_x, train_y = train_x[:args.train_limit], train_y[:args.train_limit]
    n, batch = len(train_x), args.batch_size
    if batch > n:
        raise Stop(f"--batch-size {batch} is larger than the {n} training images", 2)
    batches_per_epoch = n // batch
    every = args.checkpoint_every or batches_per_epoch

    if state:
        params = state["params"]
        epoch, next_batch = state["epoch"], state["batch"]
        history = state["history"]
        say(f"resuming at epoch {epoch + 1}, batch {next_batch} of {batches_per_epoch}")
    else:
        if args.init:
            try:
                params, _ = read_params(args.init)
            except ModelFileError as e:
                raise Stop(f"--init: {e}", 1) from None
        else:
            params = init_params(args.seed)
        epoch, next_batch = 0, 0
        history = {"batch_loss": [], "batch_accuracy": [], "running_accuracy": [],
                   "test_accuracy": [], "train_seconds": 0.0}

    if args.sign != DESCENDING_SIGN[args.loss]:
        say(f"warning: --loss {args.loss} with --sign {args.sign:+d} climbs the loss. "
            f"{args.loss}'s output error is the {'positive' if args.loss == 'xent' else 'negative'} "
            f"gradient, so w = w {'+' if args.sign > 0 else '-'} lr/B * S goes uphill; "
            f"expect training to collapse to chance. Use --sign {DESCENDING_SIGN[args.loss]:+d} to descend.")

    engine = engines.get(args.engine, kernel=args.kernel, threads=args.threads)
    settings = {name: getattr(args, name) for name in RUN_SETTINGS}

    def checkpoint(epoch, batch_index):
        if args.checkpoint:
            position = {"epoch": epoch, "batch": batch_index, "settings": settings, "history": history}
            write_params(args.checkpoint, params, {"checkpoint": position})

    from tqdm import tqdm

    test_correct = None
    with Interrupt() as interrupt:
        while epoch < args.epochs:
            order = epoch_order(n, epoch, args.seed, args.shuffle)
            seen = correct = 0
            loss_total = 0.0
            bar = tqdm(total=batches_per_epoch, initial=next_batch, disable=args.quiet,
                       desc=f"epoch {epoch + 1}/{args.epochs}", unit="batch", file=sys.stderr)
            t0 = time.perf_counter()
            for b in range(next_batch, batches_per_epoch):
                rows = slice(b * batch, (b + 1) * batch) if order is None else order[b * batch:(b + 1) * batch]
                loss_sum, ok = engine.train_batch(params, train_x[rows], train_y[rows],
                                                  loss=args.loss, sign=args.sign, lr=args.lr)
                if not math.isfinite(loss_sum) or not np.isfinite(params).all():
                    bar.close()
                    raise Stop(
                        f"training diverged at epoch {epoch + 1}, batch {b + 1}: the loss is "
                        f"{loss_sum}. The likely cause: a sign that climbs the loss "
                        f"(--loss {args.loss} descends with --sign {DESCENDING_SIGN[args.loss]:+d}) "
                        f"or a learning rate too large (--lr {args.lr}). No model was written.", 3)
                seen += batch
                correct += ok
                loss_total += loss_sum
                history["batch_loss"].append(loss_sum / batch)
                history["batch_accuracy"].append(ok / batch)
                history["running_accuracy"].append(correct / seen)
                bar.set_postfix(loss=f"{loss_total / seen:.4f}", acc=f"{correct / seen:.3f}")
                bar.update(1)
                if interrupt.requested:
                    history["train_seconds"] += time.perf_counter() - t0
                    bar.close()
                    checkpoint(epoch, b + 1)
                    where = f"epoch {epoch + 1}, after batch {b + 1} of {batches_per_epoch}"
                    saved = f"; checkpoint written to {args.checkpoint} (resume with --resume)" \
                        if args.checkpoint else "; no checkpoint was asked for, nothing saved"
                    raise Stop(f"interrupted at {where}{saved}", 130)
                if (b + 1) % every == 0 and b + 1 < batches_per_epoch:
                    history["train_seconds"] += time.perf_counter() - t0
                    checkpoint(epoch, b + 1)
                    t0 = time.perf_counter()
            history["train_seconds"] += time.perf_counter() - t0
            bar.close()
            pred = engine.predict(params, test_x)
            test_correct = int((pred == test_y).sum())
            history["test_accuracy"].append(test_correct / len(test_y))
            epoch, next_batch = epoch + 1, 0
            if not args.quiet:
                say(f"epoch {epoch}: test accuracy {100 * test_correct / len(test_y):.2f}%")
            checkpoint(epoch, 0)

    if test_correct is None:  # resumed from a checkpoint that had already finished
        test_correct = int((engine.predict(params, test_x) == test_y).sum())
    seconds = history["train_seconds"]
    images = args.epochs * batches_per_epoch * batch
    summary = {
        "test_accuracy": test_correct / len(test_y), "test_correct": test_correct,
        "test_images": len(test_y), "train_seconds": seconds,
        "images_per_second": images / seconds if seconds > 0 else None,
        "train_images": n, "images_seen": images,
        "final_batch_loss": history["batch_loss"][-1] if history["batch_loss"] else None,
        "loss": args.loss, "sign": args.sign, "lr": args.lr, "batch_size": batch,
        "epochs": args.epochs, "shuffle": args.shuffle, "seed": args.seed,
        "engine": args.engine, "kernel": args.kernel,
        "threads": args.threads or (core.default_threads() if args.engine == "c" else None),
        "epoch_test_accuracy": history["test_accuracy"],
    }
    if args.save:
        meta = {k: summary[k] for k in ("loss", "sign", "lr", "batch_size", "epochs",
                                          "images_seen", "test_accuracy")}
        write_params(args.save, params, meta)
    return summary, history


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)

    def say(message):
        print(message, file=sys.stderr, flush=True)

    try:
        state = resolve_settings(args, parser)
        summary, history = run(args, state, say)
    except Stop as e:
        say(f"lenet5.train: {e}")
        return e.status
    except KeyboardInterrupt:
        say("lenet5.train: interrupted before training started; nothing saved")
        return 130
    print(f"test accuracy {100 * summary['test_accuracy']:.2f}% "
          f"({summary['test_correct']}/{summary['test_images']}) | "
          f"train {summary['train_seconds']:.2f} s | "
          f"{summary['images_per_second'] or 0:,.0f} images/s | "
          f"{summary['loss']} sign {summary['sign']:+d} lr {summary['lr']} batch {summary['batch_size']}"
          + (f" | saved {args.save}" if args.save else ""), flush=True)
    if args.json:
        from .model import atomic_write
        atomic_write(args.json, lambda f: f.write(json.dumps(summary, indent=1).encode() + b"\n"))
    if args.plot:
        from .plots import plot_training
        message = plot_training(history, args.plot, title=f"{args.loss}, sign {args.sign:+d}, lr {args.lr}")
        say(message)
    return 0


if __name__ == "__main__":
    sys.exit(main())
