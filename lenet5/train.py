"""python -m lenet5.train: train LeNet-5 on MNIST from the shell.

A thin wrapper over ``LeNet5.fit``: it reads the options, the data and the
starting model, trains, and writes what was asked.  The defaults reproduce
the reference program: mse loss, sign +1, lr 0.5, batch 300, one epoch,
images in file order, a final partial batch dropped.

Exit status: 0 done; 1 a data or model file is bad; 2 a bad argument;
3 the loss became NaN or infinite (no model written); 128 + the number of the signal
that stopped it (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import tempfile
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from . import checkpoint, cli
from .checkpoint import (
    OUTPUTS,
    RUN_EXTRAS,
    Checkpoint,
    CheckpointError,
    check_position,
    check_run_extras,
    load_checkpoint,
    run_extras,
)
from .config import DEFAULT_LR, DESCENDING_SIGN, PRESETS, SCHEDULES, TrainConfig
from .data import DataError, load_split
from .files import WrittenElsewhere, save_or_rescue, write_text_atomic
from .loop import Diverged
from .model import FitResult, Interrupted, LeNet5
from .params import ModelFileError
from .signals import InterruptRequest

PROG = "lenet5.train"


def build_parser() -> argparse.ArgumentParser:
    """The command's options."""
    p = argparse.ArgumentParser(
        prog=cli.prog("lenet5.train"),
        description="Train LeNet-5 on MNIST. Defaults reproduce the reference program "
        "(mse, sign +1, lr 0.5, batch 300, 1 epoch, file order).",
    )
    p.add_argument(
        "--loss",
        choices=sorted(DEFAULT_LR),
        default=None,
        help="output error: mse (the reference's, returns the negative gradient) "
        "or xent (softmax cross-entropy, returns the positive gradient p - y); "
        "default mse",
    )
    p.add_argument(
        "--sign",
        type=cli.sign_value,
        default=None,
        help="update w = w + sign * lr/B * S; default: the one that descends "
        f"(+1 for mse, -1 for xent: {DESCENDING_SIGN})",
    )
    p.add_argument(
        "--lr",
        type=cli.learning_rate,
        default=None,
        help=f"learning rate (default {DEFAULT_LR['mse']} for mse, {DEFAULT_LR['xent']} for xent)",
    )
    p.add_argument(
        "--batch-size", type=cli.positive_int, default=None, metavar="N", help="images per batch (default 300)"
    )
    p.add_argument(
        "--epochs", type=cli.positive_int, default=None, metavar="N", help="passes over the data (default 1)"
    )
    p.add_argument(
        "--train-limit",
        type=cli.positive_int,
        default=None,
        metavar="N",
        help="use only the first N training images (default: all 60,000)",
    )
    p.add_argument(
        "--shuffle",
        action="store_true",
        default=None,
        help="shuffle the training images each epoch, by (--seed, epoch) (default: file order)",
    )
    p.add_argument(
        "--seed", type=cli.seed_int, default=None, help="seed of the initial weights and of the shuffle (default 0)"
    )
    p.add_argument(
        "--momentum",
        type=cli.momentum_value,
        default=None,
        metavar="MU",
        help="SGD momentum in [0, 1); the update keeps a velocity (default 0: the reference's update)",
    )
    p.add_argument(
        "--nesterov",
        action="store_true",
        default=None,
        help="Nesterov's momentum step instead of heavy ball (needs --momentum)",
    )
    p.add_argument(
        "--weight-decay",
        type=cli.decay_value,
        default=None,
        metavar="L",
        help="L2 weight decay, always toward zero whatever --sign says (default 0)",
    )
    p.add_argument(
        "--schedule",
        choices=SCHEDULES,
        default=None,
        help="learning rate over the run: constant (default), step (a tenth after each third), cosine",
    )
    p.add_argument(
        "--warmup",
        type=cli.count_or_zero,
        default=None,
        metavar="EPOCHS",
        help="epochs of linear learning-rate warm-up (default 0)",
    )
    p.add_argument(
        "--augment",
        action="store_true",
        default=None,
        help="warp each training image by a random shift, turn and scale drawn from "
        "(--seed, epoch, image index) (default: off)",
    )
    p.add_argument(
        "--val",
        type=cli.count_or_zero,
        default=None,
        metavar="N",
        help="hold out N training images (by --seed) and report their accuracy each epoch (default 0)",
    )
    p.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default=None,
        help="named settings; options given explicitly override them. best: "
        + ", ".join(f"{k} {v}" for k, v in PRESETS["best"].items()),
    )
    p.add_argument(
        "--init", metavar="PATH", help="start from this model file (.npz or .dat) instead of a seeded new one"
    )
    p.add_argument(
        "--save",
        metavar="PATH",
        help="write the trained model (.npz, or .dat: the reference layout); default: not saved",
    )
    cli.add_data_option(p)
    cli.add_version_option(p)
    cli.add_engine_options(p)
    p.add_argument("--json", metavar="PATH", help="write the run's summary as JSON (default: none)")
    p.add_argument(
        "--plot", metavar="PNG", help="write a figure of the training curves (needs matplotlib; default: none)"
    )
    p.add_argument(
        "--checkpoint",
        metavar="PATH",
        help="write model and position here (.npz), atomically, every --checkpoint-every "
        "batches and at the end of each epoch (default: none)",
    )
    p.add_argument(
        "--checkpoint-every",
        type=cli.positive_int,
        default=None,
        metavar="N",
        help="batches between checkpoints (default: once per epoch)",
    )
    p.add_argument("--resume", metavar="PATH", help="continue the run saved in this checkpoint")
    p.add_argument(
        "--quiet", action="store_true", help="no progress (default: a bar on a terminal, a line per epoch in a log)"
    )
    return p


def check_extras(args: argparse.Namespace, fixed: Dict[str, Any]) -> None:
    """Take what the checkpoint fixes beyond TrainConfig and its recorded outputs
    where no other was given; the checkpoint resumed is the one the run updates."""
    try:
        outputs = check_run_extras(args.resume, fixed)
    except CheckpointError as e:
        raise cli.Stop(f"cannot resume: {e}", 1) from None
    for name in OUTPUTS:
        if getattr(args, name) is None:
            setattr(args, name, outputs[name])
    if args.checkpoint is None:
        args.checkpoint = args.resume


def resume_command(args: argparse.Namespace) -> str:
    """The whole command that continues this run from its checkpoint."""
    return checkpoint.resume_command(args.checkpoint, vars(args), args.quiet)


def resolve(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Tuple[TrainConfig, Optional[Checkpoint]]:
    """The run's settings, from the options or the checkpoint being resumed,
    and the checkpoint; output paths are checked before any work."""
    # The settings asked for: the preset's, overridden by each option given.
    requested: Dict[str, Any] = dict(PRESETS[args.preset]) if args.preset else {}
    requested.update(
        {
            name: getattr(args, name)
            for name in list(TrainConfig().to_dict()) + list(RUN_EXTRAS)
            if getattr(args, name) is not None
        }
    )
    resume = None
    if args.resume:
        try:
            resume = load_checkpoint(args.resume)
        except CheckpointError as e:
            raise cli.Stop(f"cannot resume: {e}", 1) from None
        fixed: Dict[str, Any] = dict(resume.extra, **resume.config.to_dict())
        for name in list(resume.config.to_dict()) + list(RUN_EXTRAS):
            if name in requested and requested[name] != fixed.get(name):
                parser.error(
                    f"--{name.replace('_', '-')} {requested[name]} differs from the checkpoint's "
                    f"{fixed.get(name)}; leave it out to resume"
                )
            setattr(args, name, fixed.get(name))
        check_extras(args, fixed)
        config = resume.config
    else:
        warmup, epochs = requested.get("warmup", 0), requested.get("epochs", 1)
        if isinstance(warmup, int) and isinstance(epochs, int) and warmup >= epochs:
            parser.error(
                f"--warmup {warmup} must be shorter than the run (--epochs {epochs}): give --epochs "
                f"{warmup + 1} or more, or --warmup {epochs - 1}"
                + (f" (--preset {args.preset} warms up for {warmup})" if args.preset else "")
            )
        try:
            config = TrainConfig(**{k: v for k, v in requested.items() if k not in RUN_EXTRAS})
        except (TypeError, ValueError) as e:  # the argument types checked each value already
            parser.error(str(e))
    cli.check_output(parser, "--save", args.save, (".npz", ".dat"))
    cli.check_output(parser, "--checkpoint", args.checkpoint, (".npz",))
    cli.check_output(parser, "--plot", args.plot, (".png",))
    cli.check_output(parser, "--json", args.json)
    cli.check_distinct(
        parser, {"--save": args.save, "--checkpoint": args.checkpoint, "--plot": args.plot, "--json": args.json}
    )
    return config, resume


def load_data(
    args: argparse.Namespace, batch_size: int, val: int = 0
) -> Tuple[Tuple[np.ndarray, np.ndarray], Tuple[np.ndarray, np.ndarray]]:
    """The training images (up to --train-limit, --val of them to be held out) and the test set."""
    try:
        train_x, train_y = load_split("train", args.data_dir, progress=not args.quiet)
        test = load_split("test", args.data_dir, progress=not args.quiet)
    except DataError as e:
        raise cli.Stop(f"data error: {e}", 1) from None
    if args.train_limit:
        if args.train_limit > len(train_x):
            raise cli.Stop(f"--train-limit {args.train_limit} exceeds the {len(train_x)} training images", 2)
        train_x, train_y = train_x[: args.train_limit], train_y[: args.train_limit]
    if val >= len(train_x):
        raise cli.Stop(f"--val {val} leaves none of the {len(train_x)} training images to train on", 2)
    if batch_size > len(train_x) - val:
        raise cli.Stop(f"--batch-size {batch_size} is larger than the {len(train_x) - val} training images", 2)
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


def fit(
    net: LeNet5,
    args: argparse.Namespace,
    config: TrainConfig,
    resume: Optional[Checkpoint],
    train: Tuple[np.ndarray, np.ndarray],
    test: Tuple[np.ndarray, np.ndarray],
) -> FitResult:
    """net.fit with the options, turning its stops into the command's."""
    try:
        return net.fit(
            *train,
            **config.to_dict(),
            engine=args.engine,
            kernel=args.kernel,
            threads=args.threads,
            test=test,
            progress=not args.quiet,
            checkpoint=args.checkpoint,
            checkpoint_every=args.checkpoint_every,
            resume=resume,
            checkpoint_extra=run_extras(vars(args)),
        )
    except Diverged as e:
        what = f"the loss is {e.loss}" if not math.isfinite(e.loss) else "the parameters became NaN or infinite"
        cause = (
            f"the learning rate {config.lr} is too large (--loss {config.loss} trains well with "
            f"--lr {DEFAULT_LR[config.loss]})"
            if config.descends
            else f"--sign {config.sign:+d} climbs the loss (--loss {config.loss} descends with "
            f"--sign {DESCENDING_SIGN[config.loss]:+d})"
        )
        raise cli.Stop(
            f"training diverged at epoch {e.position.epoch + 1}, batch {e.position.batch}: {what}. "
            f"The likely cause: {cause}. No model was written.",
            3,
        ) from None
    except WrittenElsewhere as e:  # a checkpoint could not be written: the run stops there, not lost
        args.checkpoint = str(e.written)
        raise cli.Stop(
            f"--checkpoint {e.wanted}: {e.reason.strerror or e.reason}; the run stopped and its "
            f"checkpoint was saved to {e.written} instead; resume with: {resume_command(args)}",
            1,
        ) from None
    except OSError as e:
        raise cli.Stop(
            f"--checkpoint {args.checkpoint}: {e.strerror or e}; nor could it be saved in "
            f"{os.getcwd()} or {tempfile.gettempdir()}; the run stopped",
            1,
        ) from None
    except Interrupted as e:
        raise cli.Stop(
            f"{e}" + (f"; resume with: {resume_command(args)}" if args.checkpoint else ""), 128 + e.signum
        ) from None


def save_model(args: argparse.Namespace, net: LeNet5) -> Optional[cli.Stop]:
    """Write --save; if that fails the trained model is saved elsewhere, never
    lost, and the Stop to end with says where (docs/SPEC.md §10.4)."""
    try:
        save_or_rescue(args.save, net.save)
    except WrittenElsewhere as e:
        args.save = str(e.written)
        return cli.Stop(
            f"--save {e.wanted}: {e.reason.strerror or e.reason}; the trained model was saved to {e.written} instead", 1
        )
    except OSError as e:
        where = f"{args.save}, {os.getcwd()} or {tempfile.gettempdir()}"
        args.save = None
        return cli.Stop(f"--save: the trained model could not be saved in {where} ({e.strerror or e})", 1)
    return None


def report(args: argparse.Namespace, net: LeNet5, result: FitResult) -> None:
    """The model first (the run's most costly result), the summary line, then
    the other files asked for."""
    s = result.summary()
    failed = save_model(args, net) if args.save else None
    print(
        f"test accuracy {100 * s['test_accuracy']:.2f}% ({s['test_correct']}/{s['test_images']}) | "
        f"train {s['train_seconds']:.2f} s | {s['images_per_second'] or 0:,.0f} images/s | "
        f"{s['loss']} sign {s['sign']:+d} lr {s['lr']} batch {s['batch_size']}"
        + (f" | {s['isa']}" if s["isa"] else "")
        + (f" | saved {args.save}" if args.save else ""),
        flush=True,
    )
    if failed:
        raise failed
    if not args.save:
        cli.say(
            "the trained model was not saved: give --save PATH to keep it"
            + (f" (the checkpoint {args.checkpoint} holds it)" if args.checkpoint else "")
        )
    if args.json:
        try:
            write_text_atomic(args.json, json.dumps(s, indent=1) + "\n")
        except OSError as e:
            raise cli.Stop(
                f"--json {args.json}: {e.strerror or e}"
                + (f" (the model is saved in {args.save})" if args.save else ""),
                1,
            ) from None
    if args.plot:
        from .plots import plot_training

        try:
            cli.say(
                plot_training(
                    result.history.to_dict(), args.plot, title=f"{s['loss']}, sign {s['sign']:+d}, lr {s['lr']}"
                )
            )
        except OSError as e:
            raise cli.Stop(f"--plot {args.plot}: {e.strerror or e}", 1) from None


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
        train, test = load_data(args, config.batch_size, config.val)
        net = starting_model(args, config, resume)
        if resume is not None:
            position = resume.position
            try:
                per_epoch = check_position(args.resume, position, len(train[0]) - config.val, config.batch_size)
            except CheckpointError as e:
                raise cli.Stop(f"cannot resume: {e}", 1) from None
            writes = [f"--{k} {getattr(args, k)}" for k in (*OUTPUTS, "checkpoint") if getattr(args, k)]
            cli.say(
                f"resuming at epoch {position.epoch + 1}, batch {position.batch} of {per_epoch}; "
                f"writing {', '.join(writes)}"
            )
        warning = config.climb_warning()
        if warning:
            cli.say(f"warning: --{warning}")
        result = fit(net, args, config, resume, train, test)
        with InterruptRequest() as stop:  # a first signal now waits until the trained model is written
            report(args, net, result)
        if stop.signum is not None:
            raise cli.Stop(
                f"{signal.Signals(stop.signum).name} while writing the results; all were written", 128 + stop.signum
            )
        return 0

    return cli.run(PROG, body)


if __name__ == "__main__":
    sys.exit(main())
