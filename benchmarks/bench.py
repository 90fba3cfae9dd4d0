"""Benchmark: the C core against NumPy (and PyTorch, if installed) on the same work.

    python benchmarks/bench.py               # the full run (a few minutes)
    python benchmarks/bench.py --quick       # a few batches: checks that it works
    python benchmarks/bench.py --json docs/bench.json   # the numbers, under the common header
    python benchmarks/bench.py --inference   # inference against PyTorch and onnxruntime (inference.py)
    python benchmarks/bench.py --isa sse2    # force an instruction-set variant of the fast kernels
    python benchmarks/bench.py --contended   # 1 thread and the default with one core kept busy
    python benchmarks/bench.py --profile     # time and GMAC/s per layer, the machine's peak, PyTorch's ratio
    python benchmarks/bench.py --profile --batch-size 64   # ... and the preset's batch: momentum, decay, warp
    python benchmarks/bench.py --profile --json docs/bench_profile.json

Every --json file starts with the machine, commit, date and versions
(benchmarks/common.py); benchmarks/render_tables.py renders the tables of
docs/benchmarks.md from them.

Every row trains LeNet-5 with softmax cross-entropy (sign -1, lr 0.1) on real
MNIST, in whole batches of 300, and classifies the 10,000 test images.
Training throughput is the median over several repetitions after a warm-up;
the fast kernels and PyTorch float32 at the same thread count are timed in
turns, repetition by repetition, so that their ratio sees the same machine.
"One epoch" is measured (C rows) or derived from the throughput (others).
The ratio column says how many times longer a row takes than the C core on
all threads; the last column, how long its epoch takes against PyTorch
float32's at the same thread count, measured in the same run.  The fast
kernels' rows name their instruction-set variant (docs/SPEC.md §9.4).
PyTorch rows appear only if torch is importable; it is never a dependency.

The same run then sets where people wait beside a peer measured in it
(docs/benchmarks.md): an epoch of ``--preset best`` (``--epochs 2 --warmup
0``, the best of the two epochs' ``train_seconds``) beside an epoch of batch
300 (the best of two; the two runs take turns epoch by epoch), and ``LeNet5.predict`` of one image (the median of
2,000 calls after a warm-up) beside onnxruntime's float32 graph of the
outputs on a normalised input, in turns.
"""

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np
import render_tables  # benchmarks/render_tables.py: the tables' one format
from common import TorchEngine, cpu_id, cpu_model, use_variant, write_json  # benchmarks/common.py

from lenet5 import core
from lenet5.data import load_split
from lenet5.engines import CEngine, get
from lenet5.loop import PRESETS, History, Position, TrainConfig, train
from lenet5.params import init_params

BATCH = 300
LOSS, SIGN, LR = "xent", -1, 0.1


def machine():
    """What bench.py records of the machine beside the common header (common.header)."""
    blas = "unknown"
    try:
        config = np.show_config(mode="dicts")
        blas = config["Build Dependencies"]["blas"]["name"]
        blas += " " + str(config["Build Dependencies"]["blas"].get("version", ""))
    except Exception:
        pass
    return {
        "cpu": cpu_model(),
        "cpu_id": cpu_id(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numpy_blas": blas.strip(),
        "openmp": core.have_openmp(),
        "isa": core.isa(),
        "isa_lanes": core.isa_lanes(),
        "runnable_isas": list(core.runnable_isas()),
    }


CONFIG = TrainConfig(loss=LOSS, sign=SIGN, lr=LR, batch_size=BATCH)


def train_seconds(engine, params, images, labels, batches):
    """Seconds in the engine for `batches` consecutive batches of BATCH images,
    through the package's training loop."""
    n = batches * BATCH
    return train(engine, params, images[:n], labels[:n], CONFIG).train_seconds


def paired_rates(engines, images, labels, batches, repeats, after_round=None):
    """Images/s of each engine in each of `repeats` rounds, measured in turns:
    one repetition of each, then the next round, so that a change in the
    machine's load (a shared VM's neighbours come and go) falls on all of
    them alike.  after_round, if given, is called at the end of each round
    (to measure something else in the same turns)."""
    params = [init_params(0) for _ in engines]
    for engine, p in zip(engines, params):
        train_seconds(engine, p, images, labels, 1)  # warm-up
    rates: list = [[] for _ in engines]
    for _ in range(repeats):
        for k, (engine, p) in enumerate(zip(engines, params)):
            rates[k].append(batches * BATCH / train_seconds(engine, p, images, labels, batches))
        if after_round:
            after_round()
    return rates


def time_training(engine, images, labels, batches, repeats):
    """Median images/s of `repeats` runs of `batches` batches, after a warm-up."""
    return statistics.median(paired_rates([engine], images, labels, batches, repeats)[0])


def time_epoch(engine, images, labels):
    """Seconds for one whole epoch from a fresh model."""
    return train_seconds(engine, init_params(0), images, labels, len(images) // BATCH)


def time_inference(engine, images, repeats):
    params = init_params(0)
    engine.predict(params, images[:100])
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        engine.predict(params, images)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def trainer_peak_memory_mb():
    """Peak resident memory of `python -m lenet5.train` (defaults), in MB.

    The trainer's own process reports VmHWM, the high-water mark of its memory
    image.  (getrusage would not do: a child's ru_maxrss starts from the parent's
    resident size at fork, exec or not, and this process holds gigabytes.)"""
    probe = (
        "import runpy, sys\n"
        "sys.argv = ['lenet5.train', '--quiet']\n"
        "try:\n    runpy.run_module('lenet5.train', run_name='__main__')\n"
        "except SystemExit as e:\n    assert not e.code, e.code\n"
        "for line in open('/proc/self/status'):\n"
        "    if line.startswith('VmHWM:'):\n        print(int(line.split()[1]))\n"
    )
    if not os.path.exists("/proc/self/status"):
        return None  # not Linux: no VmHWM to read
    r = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True)
    return int(r.stdout.split()[-1]) / 1024  # kB -> MB


class EpochRun:
    """A run of config from a fresh model, one epoch at a time (its own
    velocity and history), so that two runs can take turns epoch by epoch."""

    def __init__(self, config, images, labels):
        self.config, self.images, self.labels = config, images, labels
        self.params, self.history, self.epoch = init_params(0), History(), 0
        self.velocity = np.zeros(core.N_PARAMS) if config.uses_velocity else None

    def next_epoch(self):
        """The next epoch's train_seconds."""
        before = self.history.train_seconds
        per_epoch = len(self.images) // self.config.batch_size
        train(
            CEngine("fast"),
            self.params,
            self.images,
            self.labels,
            self.config,
            start=Position(self.epoch, 0),
            history=self.history,
            velocity=self.velocity,
            max_batches=per_epoch,
        )
        self.epoch += 1
        return self.history.train_seconds - before


def preset_beside_batch300(images, labels):
    """The best epoch (train_seconds) of ``--preset best --epochs 2 --warmup 0``
    and of ``--loss xent`` (batch 300) for 2 epochs, the two runs taking turns
    epoch by epoch, so that a change in the machine's load falls on both."""
    preset = EpochRun(TrainConfig(**{**PRESETS["best"], "epochs": 2, "warmup": 0}), images, labels)
    plain = EpochRun(TrainConfig(loss=LOSS, sign=SIGN, lr=LR, batch_size=BATCH, epochs=2), images, labels)
    times: dict = {"preset": [], "plain": []}
    for _ in range(2):
        times["preset"].append(preset.next_epoch())
        times["plain"].append(plain.next_epoch())
    return min(times["preset"]), min(times["plain"])


def one_image_latency(image, calls):
    """Median µs of LeNet5.predict(image) and of onnxruntime's outputs-only
    float32 graph on the image normalised ahead (None without onnxruntime),
    in 5 turns after a warm-up of 300 calls each."""
    from lenet5 import LeNet5

    net = LeNet5.init(seed=0)
    ours = [lambda: net.predict(image)]
    try:
        from inference import OnnxPeer  # benchmarks/inference.py: the one place the peer's graph is built

        ours.append(OnnxPeer(np.array(net.params)).single_call(image))
    except ImportError:
        pass
    times: list = [[] for _ in ours]
    for call in ours:
        for _ in range(300):
            call()
    for _ in range(5):
        for k, call in enumerate(ours):
            for _ in range(calls // 5):
                start = time.perf_counter()
                call()
                times[k].append(time.perf_counter() - start)
    medians = [statistics.median(t) * 1e6 for t in times]
    return medians[0], (medians[1] if len(medians) > 1 else None)


def where_people_wait(train_x, train_y, test_x, quick):
    """The preset's epoch, a batch predict and one image, each beside its peer
    measured in this run; prints the table and returns its rows."""
    from lenet5 import LeNet5

    n_train = 6400 if quick else len(train_x)
    preset, plain = preset_beside_batch300(train_x[:n_train], train_y[:n_train])
    net = LeNet5.init(seed=0)
    params = np.array(net.params)
    model_s, tile_s = [], []
    for _ in range(1 if quick else 5):  # in turns
        start = time.perf_counter()
        net.predict(test_x)
        model_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        core.predict(params, test_x)
        tile_s.append(time.perf_counter() - start)
    one, onnx = one_image_latency(np.ascontiguousarray(test_x[0]), 500 if quick else 2000)
    peak = core.peak_macs(1, 0.05 if quick else 0.3)  # one core, right after: the float64 limit
    forward_macs = sum(macs for name, macs in core.profile_stages() if name in FORWARD)
    rows = [
        {
            "what": f"epoch of --preset best ({n_train:,} images, batch 64, best of 2)",
            "seconds": preset,
            "peer": "epoch of batch 300, xent (best of 2)",
            "peer_seconds": plain,
        },
        {
            "what": f"LeNet5.predict of {len(test_x):,} images (median)",
            "seconds": statistics.median(model_s),
            "peer": "tile kernels, core.predict (median)",
            "peer_seconds": statistics.median(tile_s),
        },
        {
            "what": "LeNet5.predict of one image (median)",
            "seconds": one * 1e-6,
            "peer": "onnxruntime f32, outputs-only graph, normalised input",
            "peer_seconds": None if onnx is None else onnx * 1e-6,
        },
    ]
    print(
        f"\nWhere people wait, each beside its peer in this run (machine: {machine()['cpu']}, "
        f"{os.cpu_count()} cores, {core.default_threads()} threads; fast kernels: {core.isa()})\n"
    )
    for r in rows:
        r["ratio"] = None if r["peer_seconds"] is None else r["seconds"] / r["peer_seconds"]
    rows[2]["float64_limit_seconds"] = forward_macs / peak
    rows[2]["forward_macs"] = forward_macs
    print(render_tables.bench_waits({"waits": rows}))
    print("\n" + render_tables.bench_limit({"waits": rows, "machine": {"isa": core.isa()}}))
    return rows


def busy_core(cpu):
    """A process that spins on one CPU until terminated: another tenant's load."""
    spin = f"import os\nos.sched_setaffinity(0, {{{cpu}}})\nwhile True:\n    pass\n"
    return subprocess.Popen([sys.executable, "-c", spin])


def contended(quick):
    """The fast kernels at 1 thread and at the default, first on an idle
    machine, then with core 0 kept busy by another process: the default must
    not lose to 1 thread (the tiles are handed out dynamically, fast.c)."""
    train_x, train_y = load_split("train", progress=False)
    batches, repeats = (2, 1) if quick else (10, 3)
    default = core.default_threads()
    rates = {}
    for load in ("idle", "core 0 busy"):
        busy = busy_core(0) if load != "idle" else None
        try:
            if busy:
                time.sleep(0.2)
            for threads in (1, default):
                rates[load, threads] = time_training(CEngine("fast", threads), train_x, train_y, batches, repeats)
        finally:
            if busy:
                busy.terminate()
                busy.wait()
    print(
        f"\nC fast kernels, {core.isa()}, batch {BATCH}; machine: {machine()['cpu']}, {os.cpu_count()} cores"
        "\n(another process spinning on core 0 in the second column)\n"
    )
    print("| threads | train images/s, idle | train images/s, core 0 busy |")
    print("|---:|---:|---:|")
    for threads in (1, default):
        print(
            f"| {threads}{' (default)' if threads == default else ''} | {rates['idle', threads]:,.0f} | "
            f"{rates['core 0 busy', threads]:,.0f} |"
        )
    return 0


class ProfiledEngine(CEngine):
    """The fast kernels through core.profile_train_batch: trains exactly as
    CEngine("fast") (the reference update, or momentum and decay) and keeps
    each batch's thread-seconds per stage and per image, and each call's wall time."""

    def __init__(self, threads):
        super().__init__("fast", threads)
        self.name = "c profiled"
        self.per_batch = []
        self.walls = []

    def train_batch(self, params, images, labels, *, loss, sign, lr, **sgd):
        start = time.perf_counter()
        seconds, value, correct = core.profile_train_batch(
            params, images, labels, loss=loss, sign=sign, lr=lr, threads=self.threads, **sgd
        )
        self.walls.append(time.perf_counter() - start)
        self.per_batch.append(seconds / len(images))
        return value, correct


def preset_profile(quick, batch_size):
    """Where a batch of the preset goes (momentum, decay, warp, cosine
    schedule) at batch_size: thread-seconds per stage per image over the
    team (the warp is a stage: each tile warps its images as it loads them),
    the C call's time outside its stages (team starts and barriers, the
    weights' rearranging) and the Python loop's (the rest of train_seconds),
    at 1 thread and the default."""
    train_x, train_y = load_split("train", progress=False)
    n_batches = 4 if quick else 80
    config = TrainConfig(**{**PRESETS["best"], "batch_size": batch_size, "epochs": 1, "warmup": 0})
    stages = [name for name, _ in core.profile_stages()]
    teams = sorted({1, core.default_threads()})
    cells: dict = {}
    for team in teams:
        engine = ProfiledEngine(team)
        velocity = np.zeros(core.N_PARAMS)
        train(engine, init_params(0), train_x, train_y, config, velocity=velocity, max_batches=2)  # warm-up
        engine.per_batch.clear()
        engine.walls.clear()
        history = train(
            engine, init_params(0), train_x, train_y, config, velocity=np.zeros(core.N_PARAMS), max_batches=n_batches
        )
        images = n_batches * batch_size
        per_stage = np.median(engine.per_batch, axis=0)  # thread-seconds per image
        call = sum(engine.walls) / images
        inside = float(np.sum(engine.per_batch)) / n_batches / team  # the stages' wall share
        wall = {name: per_stage[k] / team for k, name in enumerate(stages)}
        cells[team] = {
            "the kernels' 16 tile stages (load to store)": sum(wall[name] for name in FORWARD + BACKWARD),
            "batch sum": wall["batch sum"],
            "update (Nesterov momentum and decay, in phase 2's tasks)": wall["update"],
            "warp (as each tile loads its images)": wall["warp"],
        }
        cells[team]["in the C call, outside the stages"] = max(call - inside, 0.0)
        python = history.train_seconds / images - call
        cells[team]["the Python loop (train_seconds less the C calls)"] = max(python, 0.0)
        cells[team]["**train_seconds per image**"] = history.train_seconds / images
    print(
        f"\nThe preset's batch ({batch_size} images: Nesterov momentum 0.9, decay 5e-4, warp), "
        f"{n_batches} batches; machine: {machine()['cpu']}; fast kernels: {core.isa()}"
    )
    print("wall µs per image (a stage's thread-seconds over the team)\n")
    found = {
        "batch_size": batch_size,
        "batches": n_batches,
        "threads": teams,
        "rows": [{"stage": name, "us_per_image": [1e6 * cells[t][name] for t in teams]} for name in cells[teams[0]]],
    }
    print(render_tables.bench_preset_profile({"preset_profile": found}))
    return found


FORWARD = ("load", "conv1", "pool1", "conv2", "pool2", "conv3", "fc", "output error")
BACKWARD = ("fc back", "conv3 back", "pool2 back", "conv2 back", "conv2 grad", "pool1 back", "conv1 grad", "store")


def profile(quick, use_torch):
    """Where a training batch's time goes (docs/SPEC.md §9.7): thread-seconds
    and multiply-add rate per stage at 1 thread and at the default, beside the
    machine's peak rate in the kernels' own instruction form, then the whole
    batch's rate (unprofiled) and its ratio to PyTorch float32's time, all
    measured in turns, the peak too (a short run after each round, so that
    each round's rate is set against the machine as it was then); each
    stage's time is its median over the batches."""
    train_x, train_y = load_split("train", progress=False)
    batches, repeats = (2, 1) if quick else (10, 9)
    teams = sorted({1, core.default_threads()})
    stages = core.profile_stages()
    per_image = sum(macs for _, macs in stages)
    info = machine()
    print(
        f"\nProfile of a training batch of {BATCH} ({LOSS}, lr {LR}); machine: {info['cpu']}, "
        f"{info['cores']} cores; fast kernels: {core.isa()} ({core.isa_lanes()} images per tile)"
    )
    print(
        f"{per_image:,} multiply-adds per image; the peak is independent vector multiplies then adds "
        "(no fused multiply-add, as the kernels)\n"
    )
    seconds, peak, share, rate, best, torch_rate = {}, {}, {}, {}, {}, {}
    peak_seconds = 0.02 if quick else 0.1  # the short peak run after each round
    for team in teams:
        # In turns: a profiled round, then the C core's and PyTorch's rates, round after round.
        profiled, peers = ProfiledEngine(team), [CEngine("fast", team)]
        if use_torch:
            try:
                peers.append(TorchEngine("float32", team))
            except ImportError:
                use_torch = False
        peaks: list = []
        rates = paired_rates(
            [profiled, *peers],
            train_x,
            train_y,
            batches,
            repeats,
            after_round=lambda into=peaks, t=team: into.append(core.peak_macs(t, peak_seconds)),
        )
        seconds[team] = np.median(profiled.per_batch, axis=0)  # thread-seconds per image, by stage
        rate[team], best[team] = statistics.median(rates[1]), max(rates[1])
        if use_torch:
            torch_rate[team] = statistics.median(rates[2])
        # Each round's share of that round's peak; the peak's median and best.
        share[team] = [r * per_image / p for r, p in zip(rates[1], peaks)]
        peak[team] = (statistics.median(peaks), max(peaks))
    stage_rows = []

    def row(name, macs, picks):
        us, gmacs = [], []
        for t in teams:
            s = sum(seconds[t][k] for k in picks)
            us.append(1e6 * s)
            gmacs.append(macs / s / 1e9 if macs and s > 0 else None)
        stage_rows.append({"stage": name, "macs": macs, "us_per_image": us, "gmacs_per_thread": gmacs})

    names = [name for name, _ in stages]
    for k, (name, macs) in enumerate(stages):
        if name != "warp":  # this batch is not warped (the preset's profile shows the warp)
            row(name, macs, [k])
    for label, group in (
        ("**forward**", FORWARD),
        ("**backward**", BACKWARD),
        ("**batch sum and update**", ("batch sum", "update")),
    ):
        picks = [names.index(name) for name in group]
        row(label, sum(stages[k][1] for k in picks), picks)
    thread_rows = []
    for t in teams:
        achieved, top = rate[t] * per_image, best[t] * per_image
        thread_rows.append(
            {
                "threads": t,
                "images_per_s": [rate[t], best[t]],
                "gmacs": [achieved / 1e9, top / 1e9],
                "peak_gmacs": [peak[t][0] / 1e9, peak[t][1] / 1e9],
                "share_of_peak": [statistics.median(share[t]), top / peak[t][1]],
                "ratio_to_torch_f32": torch_rate[t] / rate[t] if t in torch_rate else None,
                "torch_f32_images_per_s": torch_rate.get(t),
            }
        )
    found = {"batch_size": BATCH, "threads": teams, "stages": stage_rows, "rates": thread_rows}
    print("(µs of thread time per image; GMAC/s a thread)")
    print(render_tables.bench_profile_stages({"profile": found}))
    print(
        "\n(median over the rounds / the best round; the peak is a short run after each round; the "
        "share is the median of each round's rate over that round's peak / the best rate over the best peak)"
    )
    print(render_tables.bench_profile_rates({"profile": found}))
    if len(teams) > 1:
        many = teams[-1]
        print(
            f"\n{many} threads train {rate[many] / rate[1]:.2f} times as fast as 1 (medians); the peak "
            f"loop runs {peak[many][0] / peak[1][0]:.2f} times as fast on {many} threads as on 1: "
            "the machine's own scaling in this run"
        )
    return found


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="a few batches only: checks the output format")
    p.add_argument("--json", metavar="PATH", help="write the numbers and the machine as JSON")
    p.add_argument("--no-torch", action="store_true", help="leave PyTorch out even if installed")
    p.add_argument(
        "--inference",
        action="store_true",
        help="the inference benchmark instead (benchmarks/inference.py; --quick and --json apply)",
    )
    p.add_argument(
        "--isa", choices=core.ISAS, help="run the fast kernels' variant ISA (default: the widest this CPU runs)"
    )
    p.add_argument(
        "--contended",
        action="store_true",
        help="only the fast kernels, 1 thread and the default, idle and with core 0 kept busy",
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help="time and multiply-add rate per layer at 1 thread and the default, the machine's peak",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        metavar="N",
        help="with --profile: also profile the preset's batch of N images (momentum, decay, warp)",
    )
    args = p.parse_args(argv)
    use_variant(p, args.isa)
    if args.contended:
        return contended(args.quick)
    if args.batch_size is not None and not (args.profile and 1 <= args.batch_size <= 60000):
        p.error("--batch-size: needs --profile and a count from 1 to 60000")
    if args.profile:
        found = {"quick": args.quick, "profile": profile(args.quick, not args.no_torch)}
        if args.batch_size:
            found["preset_profile"] = preset_profile(args.quick, args.batch_size)
        if args.json:
            write_json(args.json, found)
        return 0
    if args.inference:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import inference

        return inference.main((["--quick"] if args.quick else []) + (["--json", args.json] if args.json else []))

    train_x, train_y = load_split("train", progress=False)
    test_x, _ = load_split("test", progress=False)
    all_threads = core.default_threads()
    quick = args.quick
    batches, repeats = (2, 1) if quick else (20, 5)
    infer_images = test_x[:600] if quick else test_x

    rows = [
        ("C fast", CEngine("fast", 1), 1, True),
        ("C fast", CEngine("fast", all_threads), all_threads, True),
        ("C reference kernels", CEngine("reference", 1), 1, False),
        ("NumPy", get("numpy"), all_threads, False),
    ]
    if not args.no_torch:
        try:
            import torch  # noqa: F401

            rows += [
                (f"PyTorch {dt}", TorchEngine(dt, all_threads), all_threads, False) for dt in ("float64", "float32")
            ]
            if all_threads > 1:  # the C core's 1-thread row needs its peer
                rows.append(("PyTorch float32", TorchEngine("float32", 1), 1, False))
        except ImportError:
            pass

    # The fast kernels and PyTorch float32 at the same thread count are timed
    # in turns, so that their ratio (the last column) sees the same machine.
    paired = {}
    for threads in sorted({r[2] for r in rows}):
        pair = [r[1] for r in rows if r[2] == threads and r[0] in ("C fast", "PyTorch float32")]
        if len(pair) == 2:
            for engine, rates in zip(pair, paired_rates(pair, train_x, train_y, batches, repeats)):
                paired[id(engine)] = statistics.median(rates)
    results = []
    for name, engine, threads, full_epoch in rows:
        slow = name.startswith(("C reference", "NumPy"))
        n_batches = max(1, batches // 4) if slow else batches
        n_repeats = max(1, repeats - 2) if slow else repeats
        rate = (
            paired[id(engine)]
            if id(engine) in paired
            else time_training(engine, train_x, train_y, n_batches, n_repeats)
        )
        if full_epoch and not quick:
            epoch = time_epoch(engine, train_x, train_y)
            measured = True
        else:
            epoch, measured = len(train_x) // BATCH * BATCH / rate, False
        infer = time_inference(engine, infer_images, 1 if slow or quick else 3)
        results.append(
            {
                "engine": name,
                "threads": threads,
                "train_images_per_s": rate,
                "isa": core.isa() if name == "C fast" else None,
                "epoch_seconds": epoch,
                "epoch_measured": measured,
                "test_images": len(infer_images),
                "inference_seconds": infer,
                "inference_images_per_s": len(infer_images) / infer,
            }
        )
        print(f"  measured {name} ({threads} thread{'s' * (threads > 1)})", file=sys.stderr)

    base = results[1]
    torch_f32 = {r["threads"]: r for r in results if r["engine"] == "PyTorch float32"}
    print(
        f"\nLeNet-5 on MNIST, batch {BATCH}, {LOSS} (sign {SIGN:+d}, lr {LR});"
        f" machine: {machine()['cpu']}, {os.cpu_count()} cores;"
        f" fast kernels: {core.isa()} ({core.isa_lanes()} images per tile)\n"
    )
    for r in results:
        peer = torch_f32.get(r["threads"])
        r["ratio_to_torch_f32"] = peer["train_images_per_s"] / r["train_images_per_s"] if peer else None
        r["ratio_train"] = base["train_images_per_s"] / r["train_images_per_s"]
        r["ratio_inference"] = r["inference_seconds"] / base["inference_seconds"]
    print(render_tables.engines({"rows": results}))
    waits = where_people_wait(train_x, train_y, infer_images, quick)
    peak = None if quick else trainer_peak_memory_mb()
    if peak is not None:
        print(f"\npeak memory of `python -m lenet5.train` (defaults): {peak:.0f} MB")
    if args.json:
        write_json(
            args.json,
            {
                "machine": machine(),
                "batch_size": BATCH,
                "loss": LOSS,
                "quick": quick,
                "rows": results,
                "waits": waits,
                "trainer_peak_memory_mb": peak,
            },
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
