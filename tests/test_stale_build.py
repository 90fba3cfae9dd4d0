"""The stale-build guard: in a source checkout, a compiled core built from
other C sources than csrc/ holds now refuses to import and says how to
rebuild; an installed package (no csrc/ beside it) is not checked.

Each case copies lenet5/ (with its compiled core) and csrc/ into a scratch
folder and imports lenet5.core there in a fresh interpreter; nothing is
rebuilt.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lenet5 import _sources

ROOT = Path(__file__).resolve().parent.parent
MESSAGE = "lenet5: the compiled core was built from other sources than"

pytestmark = pytest.mark.skipif(
    not any((ROOT / "lenet5").glob("_core*.so")) and not any((ROOT / "lenet5").glob("_core*.pyd")),
    reason="no compiled core in the source tree (not an editable install)",
)


@pytest.fixture
def checkout(tmp_path):
    """A copy of the source tree's package and C sources."""
    junk = shutil.ignore_patterns("__pycache__")
    shutil.copytree(ROOT / "lenet5", tmp_path / "lenet5", ignore=junk)
    shutil.copytree(ROOT / "csrc", tmp_path / "csrc", ignore=junk)
    return tmp_path.resolve()


def import_core(folder):
    env = dict(os.environ, PYTHONPATH=str(folder))
    return subprocess.run(
        [sys.executable, "-c", "import lenet5.core"], cwd=folder, env=env, capture_output=True, text=True
    )


def test_core_built_from_these_sources_imports(checkout):
    r = import_core(checkout)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("edited", ["fast.c", "lenet5.h", "build_ffi.py"])
def test_edited_source_refuses_to_import_and_says_how_to_rebuild(checkout, edited):
    with open(checkout / "csrc" / edited, "a") as f:
        f.write("\n/* edited after the build */\n" if edited != "build_ffi.py" else "\n# edited\n")
    r = import_core(checkout)
    assert r.returncode != 0
    assert MESSAGE in r.stderr
    assert f"rebuild it with `pip install -e .` in {checkout}" in r.stderr


def test_new_source_file_refuses_to_import(checkout):
    (checkout / "csrc" / "extra.c").write_text("/* a new file the build has not seen */\n")
    r = import_core(checkout)
    assert r.returncode != 0 and MESSAGE in r.stderr


def test_without_csrc_an_installed_package_imports(checkout):
    """An installed wheel has no csrc/ beside the package: nothing to compare."""
    shutil.rmtree(checkout / "csrc")
    r = import_core(checkout)
    assert r.returncode == 0, r.stderr


def test_hash_covers_names_and_bytes_of_the_sources_only(tmp_path):
    (tmp_path / "a.c").write_bytes(b"int a;\n")
    (tmp_path / "a.h").write_bytes(b"")
    (tmp_path / "build_ffi.py").write_bytes(b"# build\n")
    first = _sources.source_hash(tmp_path)
    assert [p.name for p in _sources.source_files(tmp_path)] == ["a.c", "a.h", "build_ffi.py"]
    (tmp_path / "notes.txt").write_text("not a source")
    (tmp_path / "__pycache__").mkdir()
    assert _sources.source_hash(tmp_path) == first
    (tmp_path / "a.h").write_bytes(b"int a;\n")  # the same bytes moved to another file
    (tmp_path / "a.c").write_bytes(b"")
    assert _sources.source_hash(tmp_path) != first
