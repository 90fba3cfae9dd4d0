"""One home for each rule: the argument rules and limits in lenet5.rules (no C
loaded), held to the compiled core when it loads; the settings in
lenet5.config, the signals in lenet5.signals; the old import paths still work;
what the comments say of the variants' lanes is what the build makes."""

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def python(code, **env):
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=dict(os.environ, **env)
    )


def test_the_rules_the_settings_and_the_numpy_twin_load_no_c():
    r = python(
        "import sys\n"
        "import lenet5.rules, lenet5.config, lenet5.signals, lenet5.numpy_engine, lenet5.params\n"
        "from lenet5.config import TrainConfig\n"
        "TrainConfig(loss='xent', epochs=2, warmup=1)\n"
        "lenet5.rules.check_threads(4)\n"
        "assert 'lenet5._core' not in sys.modules and 'lenet5.core' not in sys.modules, sorted(sys.modules)\n"
    )
    assert r.returncode == 0, r.stderr


def test_a_rule_that_differs_from_the_compiled_core_stops_the_import():
    r = python("import lenet5.rules\nlenet5.rules.MAX_THREADS = 7\nimport lenet5.core\n")
    assert r.returncode == 1 and "AssertionError: lenet5.rules: a limit differs" in r.stderr


def test_the_figures_of_the_rules_are_the_cores():
    from lenet5 import core, rules
    from lenet5._core import lib

    assert rules.N_PARAMS == lib.L5_N_PARAMS == 51902
    assert rules.MAX_THREADS == lib.L5_MAX_THREADS
    assert [offset for offset, _ in rules.BLOCKS.values()] == [
        lib.L5_OFF_W1,
        lib.L5_OFF_W2,
        lib.L5_OFF_W3,
        lib.L5_OFF_W4,
        lib.L5_OFF_B1,
        lib.L5_OFF_B2,
        lib.L5_OFF_B3,
        lib.L5_OFF_B4,
    ]
    params = np.arange(rules.N_PARAMS, dtype=np.float64)
    assert core.block(params, "b4").tolist() == list(range(51892, 51902))


def test_documented_import_paths_keep_working():
    from lenet5 import config, core, files, loop, rules, signals

    assert loop.TrainConfig is config.TrainConfig and loop.PRESETS is config.PRESETS
    assert loop.InterruptRequest is signals.InterruptRequest and loop.SignalStop is signals.SignalStop
    assert core.check_threads is rules.check_threads and core.N_PARAMS == rules.N_PARAMS
    assert callable(core.isa) and callable(core.use_isa) and issubclass(core.IsaEnvironmentError, ValueError)
    assert issubclass(loop.Diverged, ArithmeticError) and issubclass(files.WrittenElsewhere, Exception)
    import lenet5

    assert lenet5.TrainConfig is config.TrainConfig


def test_the_generic_variant_has_the_lanes_the_comments_say():
    from lenet5 import core

    header = (ROOT / "csrc" / "lenet5.h").read_text()
    build = (ROOT / "csrc" / "build_ffi.py").read_text()
    stated = int(re.search(r'"generic" \((\d+);', header).group(1))
    default = int(re.search(r'os\.environ\.get\("LENET5_GENERIC_LANES", "(\d+)"\)', build).group(1))
    assert stated == default == 2
    assert "2 (sse2, generic)" in core.isa_lanes.__doc__
    if "generic" in core.runnable_isas() and "LENET5_GENERIC_LANES" not in os.environ:
        before = core.isa()
        try:
            core.use_isa("generic")
            assert core.isa_lanes() == stated
        finally:
            core.use_isa(before)
