"""The README and the docs: short, true, and their examples runnable.

The examples themselves run in CI (tests/run_doc_examples.py, from .ci/run);
here the harness is held to its rules on small made-up pages, and the real
pages are checked without running them."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import run_doc_examples as harness

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


def test_readme_is_short_and_keeps_its_tagged_lines():
    lines = README.read_text().splitlines()
    assert len(lines) <= 250
    for tag in ("# install and train", "# install and test"):
        assert sum(line.endswith(tag) for line in lines) == 1, tag


def test_the_long_form_is_in_at_least_four_docs_pages_the_readme_links():
    text = README.read_text()
    for page in ("usage", "exactness", "robustness", "development"):
        assert (ROOT / "docs" / f"{page}.md").is_file()
        assert f"(docs/{page}.md" in text, page


def test_every_block_of_the_docs_is_well_formed_and_names_files_that_exist():
    r = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "run_doc_examples.py"), "--check"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert r.returncode == 0, r.stderr
    assert " 0 problem(s)" in r.stdout


def test_the_readme_reads_pictures_with_the_shipped_model():
    for block in harness.blocks_of(README):
        if "load_image" in block.text or "predict docs/" in block.text:
            assert "model.npz" not in block.text and "--model" not in block.text, block.where


def test_one_tolerance_for_the_numpy_twin_everywhere():
    stated = set()
    for path in [README, *sorted((ROOT / "docs").glob("*.md")), ROOT / "lenet5" / "numpy_engine.py"]:
        stated |= set(re.findall(r"to about (1e-\d+)", path.read_text().replace("\n", " ")))
    assert stated == {"1e-13"}


def run_page(tmp_path, text, *args):
    page = tmp_path / "page.md"
    page.write_text(text)
    return subprocess.run(
        [sys.executable, str(ROOT / "tests" / "run_doc_examples.py"), str(page), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )


def test_the_harness_runs_python_and_console_blocks_and_checks_their_output(tmp_path):
    r = run_page(
        tmp_path,
        "```python\nprint(6 * 7)\n```\n\n```console\n$ echo hello world\nhello ...\n$ false\n$ echo $?\n1\n```\n",
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2 examples run, 0 failed" in r.stdout


@pytest.mark.parametrize(
    "page, why",
    [
        ("```python\nraise SystemExit(3)\n```\n", "exit status 3"),
        ("```console\n$ echo hello\ngoodbye\n```\n", "where the docs show"),
        ("```console\n$ false\n$ echo done\n```\n", "exit status 1"),
        ("```python\nimport time; time.sleep(30)\n```\n", "did not finish within 2 s"),
    ],
)
def test_the_harness_fails_a_block_that_does_not_do_what_it_shows(tmp_path, page, why):
    r = run_page(tmp_path, page, "--timeout", "2")
    assert r.returncode == 1 and why in r.stderr, r.stdout + r.stderr


def test_the_harness_skips_notrun_blocks_but_still_checks_their_files(tmp_path):
    r = run_page(tmp_path, "```python notrun\nraise SystemExit(1)\n```\n")
    assert r.returncode == 0 and "0 examples run" in r.stdout, r.stdout + r.stderr
    r = run_page(tmp_path, "```console notrun\n$ lenet5 predict docs/no-such-picture.png\n```\n")
    assert r.returncode == 1 and "docs/no-such-picture.png, which is not in the repository" in r.stderr
    r = run_page(tmp_path, "```python nortun\nprint(1)\n```\n")
    assert r.returncode == 1 and "unknown word(s) after ```python: nortun" in r.stderr


def test_the_harness_removes_what_the_examples_write(tmp_path):
    r = run_page(tmp_path, "```python\nopen('doc-example-output.txt', 'w').write('x')\n```\n")
    assert r.returncode == 0, r.stderr
    assert not (ROOT / "doc-example-output.txt").exists()
