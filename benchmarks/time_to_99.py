"""Time to 99 % test accuracy with ``--preset best``: the C core beside PyTorch
float32 trained with the same recipe.

    python benchmarks/time_to_99.py [--max-epochs N] [--threads T] [--no-torch] [--json docs/time_to_99.json]

Both engines run the one training loop (lenet5.loop.train) with the preset's
settings: the same network, initial weights, image order, learning rate per
batch, momentum, weight decay and augmented images (the loop warps them in C
for both).  Only the arithmetic differs: the C core in float64 to the bit,
PyTorch in float32.  After each epoch the test set is scored; the figure is
the time spent in training (the loop's train_seconds) up to the first epoch
at or above 99 %.  Print only: never a timed test.
"""

import argparse
import dataclasses

import numpy as np
from common import TorchEngine, cpu_model, use_variant, write_json  # benchmarks/common.py

from lenet5 import cli, core
from lenet5.data import load_split
from lenet5.engines import CEngine
from lenet5.loop import PRESETS, History, Position, TrainConfig, train
from lenet5.params import init_params


def time_to(engine, target, config, train_set, test_set):
    """(seconds in training, epochs) until the test accuracy first reaches target, or (None, epochs)."""
    params, velocity, history = init_params(config.seed), np.zeros(core.N_PARAMS), History()
    for epoch in range(config.epochs):
        train(
            engine,
            params,
            *train_set,
            config,
            start=Position(epoch, 0),
            history=history,
            velocity=velocity,
            max_batches=len(train_set[0]) // config.batch_size,
        )
        accuracy = float((engine.predict(params, test_set[0]) == test_set[1]).mean())
        print(
            f"  {engine.name}: epoch {epoch + 1}, test accuracy {100 * accuracy:.2f}%, "
            f"{history.train_seconds:.1f} s in training",
            flush=True,
        )
        if accuracy >= target:
            return history.train_seconds, epoch + 1
    return None, config.epochs


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--max-epochs", type=cli.positive_int, default=PRESETS["best"]["epochs"])
    p.add_argument("--threads", type=cli.thread_count, default=None)
    p.add_argument("--no-torch", action="store_true")
    p.add_argument("--json", metavar="PATH", help="write the figures, under the common header, as JSON")
    args = p.parse_args()
    use_variant(p, None)
    try:
        config = dataclasses.replace(
            TrainConfig(**PRESETS["best"]), epochs=min(args.max_epochs, PRESETS["best"]["epochs"])
        )
    except ValueError as e:  # e.g. a run no longer than the preset's warm-up
        p.error(f"--max-epochs {args.max_epochs}: {e}")
    train_set, test_set = load_split("train", progress=False), load_split("test", progress=False)
    threads = args.threads or core.default_threads()
    engines = [CEngine(threads=threads)]
    if not args.no_torch:
        try:
            engines.append(TorchEngine("float32", threads))
        except ImportError:
            print("torch is not installed: the C core alone")
    print(f"CPU: {cpu_model()}; threads: {threads}; preset best (schedule over {config.epochs} epochs)")
    rows = [(e.name, *time_to(e, 0.99, config, train_set, test_set)) for e in engines]
    for name, seconds, epochs in rows:
        shown = f"{seconds:.1f} s ({epochs} epochs)" if seconds is not None else f"not within {epochs} epochs"
        print(f"| {name} | time to 99 %: {shown} |")
    ratio = rows[1][1] / rows[0][1] if len(rows) == 2 and rows[0][1] and rows[1][1] else None
    if ratio is not None:
        print(f"PyTorch float32 / C: {ratio:.2f}")
    if args.json:
        write_json(
            args.json,
            {
                "preset": "best",
                "epochs": config.epochs,
                "target": 0.99,
                "rows": [{"engine": name, "seconds": seconds, "epochs": epochs} for name, seconds, epochs in rows],
                "torch_over_c": ratio,
            },
            threads=threads,
        )


if __name__ == "__main__":
    main()
