"""The core's threads: a child forked after the core ran threads can use it,
asking the thread count runs none, another library's OpenMP setting does not
move the default, and OMP_NUM_THREADS beyond the CPUs is capped with a note."""

import os
import subprocess
import sys

import pytest

# -- fork safety and the thread count -------------------------------------------

FORK_AFTER_THREADS = """
import multiprocessing, os, sys
import numpy as np
from lenet5 import LeNet5
from lenet5.data import REPO_DATA
net = LeNet5.init(0)
x = (np.arange(64 * 784) % 251).astype(np.uint8).reshape(64, 28, 28)
want = net.forward(x, threads=2)  # the pool has run a team
def child_forward(_):
    return net.forward(x)
if sys.argv[1] == "os.fork":
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(w, b"same" if np.array_equal(child_forward(0), want) else b"diff")
        os._exit(0)
    os.waitpid(pid, 0)
    print(os.read(r, 4).decode())
else:
    with multiprocessing.get_context("fork").Pool(2) as pool:
        outs = pool.map(child_forward, range(4))
    print("same" if all(np.array_equal(o, want) for o in outs) else "diff")
print("parent", np.array_equal(net.forward(x, threads=2), want))
"""


def python_with_omp_threads(threads: str, code: str, *args: str) -> subprocess.CompletedProcess:
    """Run `python -c code args` with OMP_NUM_THREADS=threads; it must succeed."""
    r = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ, OMP_NUM_THREADS=threads),
    )
    assert r.returncode == 0, r.stderr
    return r


@pytest.mark.parametrize("how", ["os.fork", "multiprocessing"])
def test_a_child_forked_after_the_core_ran_threads_can_use_it(how):
    r = python_with_omp_threads("2", FORK_AFTER_THREADS, how)
    assert r.stdout.split() == ["same", "parent", "True"]
    assert r.stderr.count("forked after the C core ran threads; it runs on one thread here") <= (
        1 if how == "os.fork" else 4
    )


def test_asking_the_thread_count_is_not_running_threads():
    """A fork after default_threads() alone (no team has run): the child keeps
    its threads, with no note."""
    code = (
        "import os, lenet5.core as c\n"
        "print(c.default_threads())\n"
        "pid = os.fork()\n"
        "if pid == 0:\n    print('child', c.default_threads(), flush=True)\n    os._exit(0)\n"
        "os.waitpid(pid, 0)\n"
    )
    r = python_with_omp_threads("2", code)
    assert r.stdout.split() == ["2", "child", "2"] and "forked" not in r.stderr


def test_another_librarys_openmp_setting_does_not_move_the_default():
    """PyTorch's set_num_threads calls omp_set_num_threads; lenet5's default
    stays what OpenMP's default was when the library loaded (docs/SPEC.md §9.1)."""
    # The OpenMP runtime the core itself loaded, found in this process's maps.
    code = (
        "import ctypes, re, lenet5.core as c\n"
        "before = c.default_threads()\n"
        "maps = open('/proc/self/maps').read()\n"
        "found = re.findall(r'(/\\S*lib(?:g|i5|)omp\\S*\\.so\\S*)', maps)\n"
        "if not found:\n    print('no-runtime'); raise SystemExit\n"
        "ctypes.CDLL(found[0]).omp_set_num_threads(1)\n"
        "print(before, c.default_threads())\n"
    )
    r = python_with_omp_threads("2", code)
    if r.stdout.split() == ["no-runtime"]:
        pytest.skip("the core runs without a shared OpenMP runtime")
    assert r.stdout.split() == ["2", "2"]


def test_omp_num_threads_beyond_the_cpus_is_capped_with_a_note():
    code = "import lenet5.core as c; print(c.default_threads()); print(c.default_threads())"
    r = python_with_omp_threads("10000", code)
    cpus = len(os.sched_getaffinity(0))
    assert r.stdout.split() == [str(cpus), str(cpus)]
    assert r.stderr.count("OMP_NUM_THREADS is more than the CPUs") == 1
