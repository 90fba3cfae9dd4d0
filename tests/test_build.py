"""The build: a missing C compiler is reported as such, and the extension is
compiled the way exactness needs (no contraction, no fast-math)."""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_missing_compiler_says_so(tmp_path):
    env = dict(os.environ, CC=str(tmp_path / "no-such-cc"))
    r = subprocess.run([sys.executable, "csrc/build_ffi.py", str(tmp_path)], cwd=ROOT, env=env,
                       capture_output=True, text=True)
    assert r.returncode != 0
    assert "no C compiler found" in r.stderr and "install gcc or" in r.stderr
    assert "Traceback" not in r.stderr


def test_flags_keep_every_rounding(monkeypatch):
    sys.path.insert(0, str(ROOT / "csrc"))
    try:
        import build_ffi
        compile_args, _ = build_ffi._flags()
    finally:
        sys.path.remove(str(ROOT / "csrc"))
    assert "-ffp-contract=off" in compile_args
    assert not any("fast-math" in a and a != "-fno-fast-math" for a in compile_args)
    assert not any(a in ("-Ofast",) for a in compile_args)


def test_extension_is_a_compiled_api_mode_module():
    from lenet5 import _core
    assert _core.__file__.endswith(".so") or _core.__file__.endswith(".pyd")
    assert hasattr(_core, "lib") and hasattr(_core, "ffi")
