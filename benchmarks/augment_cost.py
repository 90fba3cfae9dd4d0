"""What the augmentation costs: the preset's batches with and without the warp.

    python benchmarks/augment_cost.py [--batches N] [--repeats R] [--threads T] [--json docs/augment_cost.json]

Both sides run the training loop with the preset's settings (docs/SPEC.md
§8.9) and differ only in --augment, so the ratio is the warp's share of an
epoch (the loop times the warp as part of each batch's engine time).  The
two are run in turns, R times each, and the medians compared, so that noise
from other work on the machine falls on both alike.
"""

import argparse
import dataclasses
import statistics

import numpy as np
from common import cpu_model, write_json  # benchmarks/common.py

from lenet5 import core
from lenet5.data import load_split
from lenet5.engines import CEngine
from lenet5.loop import PRESETS, TrainConfig, train
from lenet5.params import init_params


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batches", type=int, default=200)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", metavar="PATH", help="write the figures, under the common header, as JSON")
    args = p.parse_args()
    images, labels = load_split("train", progress=False)
    preset = TrainConfig(**PRESETS["best"])
    engine = CEngine(threads=args.threads)
    seconds = {False: [], True: []}
    for _ in range(args.repeats):
        for augment in (False, True):
            config = dataclasses.replace(preset, augment=augment)
            history = train(
                engine,
                init_params(0),
                images,
                labels,
                config,
                velocity=np.zeros(core.N_PARAMS),
                max_batches=args.batches,
            )
            seconds[augment].append(history.train_seconds)
    plain, warped = statistics.median(seconds[False]), statistics.median(seconds[True])
    per_epoch = len(images) // preset.batch_size
    print(f"CPU: {cpu_model()}; threads: {args.threads or core.default_threads()}")
    print(f"{args.batches} batches of {preset.batch_size}, median of {args.repeats}:")
    print(f"| without --augment | {plain:.3f} s | one epoch {plain * per_epoch / args.batches:.1f} s (est.) |")
    print(f"| with --augment    | {warped:.3f} s | one epoch {warped * per_epoch / args.batches:.1f} s (est.) |")
    print(f"augmentation costs {100 * (warped / plain - 1):+.1f} % per epoch")
    if args.json:
        write_json(
            args.json,
            {
                "batches": args.batches,
                "batch_size": preset.batch_size,
                "repeats": args.repeats,
                "seconds_without": plain,
                "seconds_with": warped,
                "cost": warped / plain - 1,
            },
            threads=args.threads or core.default_threads(),
        )


if __name__ == "__main__":
    main()
