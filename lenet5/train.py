"""python -m lenet5.train: train LeNet-5 on MNIST from the shell.

A thin wrapper over ``LeNet5.fit``: it reads the options, the data and the
starting model, trains, and writes what was asked.  The defaults reproduce
the reference program: mse loss, sign +1, lr 0.5, batch 300, one epoch,
images in file order, a final partial batch dropped.

Exit status: 0 done; 1 a data or model file is bad; 2 a bad argument;
3 the loss became NaN or infinite (no model written); 130 interrupted.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from . import cli
from .checkpoint import Checkpoint, CheckpointError, load_checkpoint
from .data import DataError, load_split
from .files import write_text_atomic
from .loop import DEFAULT_LR, DESCENDING_SIGN, Diverged, TrainConfig
from .model import FitResult, Interrupted, LeNet5
from .params import ModelFileError

PROG = "lenet5.train"


def build_parser() -> argparse.ArgumentParser:
    """The command's options."""
    p = argparse.ArgumentParser(
        prog="python -m lenet5.train",
        description="Train LeNet-5 on MNIST. Defaults reproduce the reference program "
                    "(mse, sign +1, lr 0.5, batch 300, 1 epoch, file order).")
    p.add_argument("--loss", choices=sorted(DEFAULT_LR), default=None,
                   help="output error: mse (the reference's, returns the negative gradient) "
                        "or xent (softmax cross-entropy, returns the positive gradient p - y); "
                        "default mse")
    p.add_argument("--sign", type=cli.sign_value, default=None,
                   help="update w = w + sign * lr/B * S; default: the one that descends "
                        f"(+1 for mse, -1 for xent: {DESCENDING_SIGN})")
    p.add_argument("--lr", type=cli.learning_rate, default=None,
                   help=f"learning rate (default {DEFAULT_LR['mse']} for mse, {DEFAULT_LR['xent']} for xent)")
    p.add_argument("--batch-size", type=cli.positive_int, default=None, metavar="N",
                   help="images per batch (default 300)")
    p.add_argument("--epochs", type=cli.positive_int, default=None, metavar="N",
                   help="passes over the data (default 1)")
    p.add_argument("--train-limit", type=cli.positive_int, default=None, metavar="N",
                   help="use only the first N training images (default: all 60,000)")
    p.add_argument("--shuffle", action="store_true", default=None,
                   help="shuffle the training images each epoch, by (--seed, epoch) (default: file order)")
    p.add_argument("--seed", type=cli.seed_int, default=None,
                   help="seed of the initial weights and of the shuffle (default 0)")
    p.add_argument("--init", metavar="PATH",
                   help="start from this model file (.npz or .dat) instead of a seeded new one")
    p.add_argument("--save", metavar="PATH",
                   help="write the trained model (.npz, or .dat: the reference layout); default: not saved")
    cli.add_data_option(p)
    cli.add_engine_options(p)
    p.add_argument("--json", metavar="PATH", help="write the run's summary as JSON (default: none)")
    p.add_argument("--plot", metavar="PNG",
                   help="write a figure of the training curves (needs matplotlib; default: none)")
    p.add_argument("--checkpoint", metavar="PATH",
                   help="write model and position here (.npz), atomically, every --checkpoint-every "
                        "batches and at the end of each epoch (default: none)")
    p.add_argument("--checkpoint-every", type=cli.positive_int, default=None, metavar="N",
                   help="batches between checkpoints (default: once per epoch)")
    p.add_argument("--resume", metavar="PATH", help="continue the run saved in this checkpoint")
    p.add_argument("--quiet", action="store_true",
                   help="no progress (default: a bar on a terminal, a line per epoch in a log)")
    return p


#: Options a checkpoint fixes beyond TrainConfig's fields; a resumed run takes them from it.
RUN_EXTRAS = ("train_limit", "init")


def resolve(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Tuple[TrainConfig, Optional[Checkpoint]]:
    """The run's settings, from the options or the checkpoint being resumed,
    and the checkpoint; output paths are checked before any work."""
    resume = None
    if args.resume:
        try:
            resume = load_checkpoint(args.resume)
        except CheckpointError as e:
            raise cli.Stop(f"cannot resume: {e}", 1) from None
        fixed: Dict[str, Any] = dict(resume.extra, **resume.config.to_dict())
        for name in list(resume.config.to_dict()) + list(RUN_EXTRAS):
            given = getattr(args, name)
            if given is not None and given != fixed.get(name):
                parser.error(f"--{name.replace('_', '-')} {given} differs from the checkpoint's "
                             f"{fixed.get(name)}; leave it out to resume")
            setattr(args, name, fixed.get(name))
        config = resume.config
    else:
        try:
            config = TrainConfig(loss=args.loss or "mse", sign=args.sign, lr=args.lr,
                                 batch_size=args.batch_size or 300, epochs=args.epochs or 1,
                                 shuffle=bool(args.shuffle), seed=args.seed or 0)
        except (TypeError, ValueError) as e:  # the argument types checked each value already
            parser.error(str(e))
    cli.check_output(parser, "--save", args.save, (".npz", ".dat"))
    cli.check_output(parser, "--checkpoint", args.checkpoint, (".npz",))
    cli.check_output(parser, "--plot", args.plot, (".png",))
    cli.check_output(parser, "--json", args.json)
    return config, resume


def load_data(args: argparse.Namespace, batch_size: int) -> Tuple[Tuple[np.ndarray, np.ndarray],
                                                                  Tuple[np.ndarray, np.ndarray]]:
    """The training images (up to --train-limit) and the test set."""
    try:
        train_x, train_y = load_split("train", args.data_dir, progress=not args.quiet)
        test = load_split("test", args.data_dir, progress=not args.quiet)
    except DataError as e:
        raise cli.Stop(f"data error: {e}", 1) from None
    if args.train_limit:
        if args.train_limit > len(train_x):
            raise cli.Stop(f"--train-limit {args.train_limit} exceeds the {len(train_x)} training images", 2)
        train_x, train_y = train_x[:args.train_limit], train_y[:args.train_limit]
    if batch_size > len(train_x):
        raise cli.Stop(f"--batch-size {batch_size} is larger than the {len(train_x)} training images", 2)
    return (train_x, train_y), test


def starting_model(args: argparse.Namespace, config: TrainConfig, resume: Optional[Checkpoint]) -> LeNet5:
    """The model training starts from: the checkpoint's, --init's, or a new one from --seed."""
    if resume is not None:
        return LeNet5(resume.params)
    if args.init:
        try:
            return LeNet5.load(args.init)
        except ModelFileError as e:
            raise cli.Stop(f"--init: {e}", 1) from None
    return LeNet5.init(config.seed)


def fit(net: LeNet5, args: argparse.Namespace, config: TrainConfig, resume: Optional[Checkpoint],
        train: Tuple[np.ndarray, np.ndarray], test: Tuple[np.ndarray, np.ndarray]) -> FitResult:
    """net.fit with the options, turning its stops into the command's."""
    try:
        return net.fit(*train, **config.to_dict(), engine=args.engine, kernel=args.kernel,
                       threads=args.threads, test=test, progress=not args.quiet,
                       checkpoint=args.checkpoint, checkpoint_every=args.checkpoint_every,
                       resume=resume, checkpoint_extra={k: getattr(args, k) for k in RUN_EXTRAS})
    except Diverged as e:
        raise cli.Stop(
            f"{e}. The likely cause: a sign that climbs the loss (--loss {config.loss} descends "
            f"with --sign {DESCENDING_SIGN[config.loss]:+d}) or a learning rate too large "
            f"(--lr {DEFAULT_LR[config.loss]}). No model was written.", 3) from None
    except Interrupted as e:
        raise cli.Stop(f"{e}" + (" (resume with --resume)" if args.checkpoint else ""), 130) from None


def report(args: argparse.Namespace, net: LeNet5, result: FitResult) -> None:
    """The summary line, then the files asked for."""
    s = result.summary()
    print(f"test accuracy {100 * s['test_accuracy']:.2f}% ({s['test_correct']}/{s['test_images']}) | "
          f"train {s['train_seconds']:.2f} s | {s['images_per_second'] or 0:,.0f} images/s | "
          f"{s['loss']} sign {s['sign']:+d} lr {s['lr']} batch {s['batch_size']}"
          + (f" | {s['isa']}" if s["isa"] else "")
          + (f" | saved {args.save}" if args.save else ""), flush=True)
    if args.save:
        net.save(args.save)
    if args.json:
        write_text_atomic(args.json, json.dumps(s, indent=1) + "\n")
    if args.plot:
        from .plots import plot_training
        cli.say(plot_training(result.history.to_dict(), args.plot,
                              title=f"{s['loss']}, sign {s['sign']:+d}, lr {s['lr']}"))


def main(argv: Optional[List[str]] = None) -> int:
    """Train from the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)

    def body() -> int:
        config, resume = resolve(args, parser)
        cli.engine_from(args, parser)  # an option the engine cannot honour: exit 2 now
        if args.plot:
            from .plots import MISSING, have_matplotlib
            if not have_matplotlib():  # said now, not after an hour of training
                cli.say(f"--plot {args.plot}: {MISSING}")
                args.plot = None
        train, test = load_data(args, config.batch_size)
        net = starting_model(args, config, resume)
        if resume is not None:
            position, per_epoch = resume.position, len(train[0]) // config.batch_size
            if position.batch >= per_epoch:
                raise cli.Stop(f"cannot resume: {args.resume}: field 'batch' is {position.batch}, past the "
                               f"end of an epoch of {per_epoch} batches", 1)
            cli.say(f"resuming at epoch {position.epoch + 1}, batch {position.batch} of {per_epoch}")
        warning = config.climb_warning()
        if warning:
            cli.say(f"warning: --{warning}")
        result = fit(net, args, config, resume, train, test)
        report(args, net, result)
        return 0

    return cli.run(PROG, body)


if __name__ == "__main__":
    sys.exit(main())
