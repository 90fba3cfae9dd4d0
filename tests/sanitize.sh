#!/usr/bin/env bash
# Build the C core with AddressSanitizer and UndefinedBehaviorSanitizer into a
# scratch copy of the package and run the core tests against it; any report
# fails the run.  Usage: tests/sanitize.sh [PYTHON]   (default: python3).
# CI calls it from .ci/run with the virtual environment's python.
set -euo pipefail
python=${1:-python3}
# An absolute path (the script changes folder), keeping a venv's own name:
# resolving its symlink would leave the virtual environment.
case "$python" in
    */*) python="$(cd "$(dirname "$python")" && pwd)/$(basename "$python")" ;;
    *) python=$(command -v "$python") ;;
esac
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

mkdir -p "$work/lenet5"
cp "$root"/lenet5/*.py "$work/lenet5/"
(cd "$root" && LENET5_SANITIZE=1 "$python" csrc/build_ffi.py "$work" > /dev/null)

# The sanitizer runtimes must be loaded before anything else: Python itself is
# not instrumented.  Leak checking is off (the interpreter keeps memory on
# purpose); any other report aborts the process and fails the tests.
# pytest captures only Python-level output (--capture=sys) so that a report,
# written by the runtime straight to file descriptor 2, is seen.
asan=$(gcc -print-file-name=libasan.so)
export LD_PRELOAD="$asan"
export ASAN_OPTIONS=detect_leaks=0:halt_on_error=1:abort_on_error=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export PYTHONPATH="$work"
export LENET5_EXPECT_CORE_IN="$work"
export LENET5_DATA="$root/data"
# Run from the scratch folder: `python -m` puts the current folder first on
# sys.path, so this copy, not the repository's, is the lenet5 imported.
cd "$work"
"$python" -m pytest -q -p no:cacheprovider --capture=sys --rootdir "$root" \
    "$root/tests/test_core_edges.py" "$root/tests/test_fast_kernels.py" "$root/tests/test_boundary.py" \
    "$root/tests/test_gradients.py" "$root/tests/test_infer.py" "$root/tests/test_workspace.py" \
    "$root/tests/test_golden.py::test_golden_model_bytes" -k "not n60000"
echo "sanitizers: no reports"
