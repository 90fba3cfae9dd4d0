"""The docs' benchmark tables are rendered from the benchmarks' JSON files
(benchmarks/render_tables.py): --check fails when a table and its file part."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RENDER = ROOT / "benchmarks" / "render_tables.py"


def render(*args, root=ROOT):
    return subprocess.run(
        [sys.executable, str(RENDER), "--root", str(root), *args], capture_output=True, text=True, timeout=60
    )


def copy_docs(tmp_path):
    shutil.copy(ROOT / "README.md", tmp_path / "README.md")
    shutil.copytree(ROOT / "docs", tmp_path / "docs", ignore=shutil.ignore_patterns("*.png", "*.jpg", "figures"))
    return tmp_path


def test_every_table_in_the_docs_matches_its_json():
    r = render("--check")
    assert r.returncode == 0, r.stderr
    listed = render("--list").stdout
    for name in (
        "bench.waits",
        "bench.engines",
        "bench.variants",
        "inference",
        "pictures",
        "read_numbers",
        "serve_load",
    ):
        assert f"{name}: docs/" in listed and "no document" not in listed.split(f"{name}:")[1].split("\n")[0]


def test_a_changed_number_fails_the_check_until_rendered(tmp_path):
    root = copy_docs(tmp_path)
    bench = json.loads((root / "docs/bench.json").read_text())
    bench["rows"][0]["train_images_per_s"] = 12345.4
    (root / "docs/bench.json").write_text(json.dumps(bench))
    r = render("--check", root=root)
    assert r.returncode == 1
    assert "docs/benchmarks.md: bench.engines, bench.variants differ from their JSON" in r.stderr
    before = (root / "docs/benchmarks.md").read_text()
    assert render(root=root).returncode == 0
    after = (root / "docs/benchmarks.md").read_text()
    assert "| C fast | 1 | 12,345 |" in after and "| C fast | 1 | 12,345 |" not in before
    assert render("--check", root=root).returncode == 0


def test_a_table_edited_by_hand_fails_the_check(tmp_path):
    root = copy_docs(tmp_path)
    page = root / "docs/server.md"
    text = page.read_text()
    row = next(line for line in text.splitlines() if line.startswith("| JSON | 1 | kept-alive |"))
    page.write_text(text.replace(row, row[:-2] + "9 |"))  # one figure of the table changed by hand
    r = render("--check", root=root)
    assert r.returncode == 1 and "docs/server.md: serve_load differ" in r.stderr
    assert page.read_text() != text  # --check changes nothing


def test_an_unknown_table_is_named(tmp_path):
    root = copy_docs(tmp_path)
    with open(root / "docs/usage.md", "a") as f:
        f.write("\n<!-- table: no.such -->\n| a |\n<!-- end table -->\n")
    r = render("--check", root=root)
    assert r.returncode == 1 and "docs/usage.md: no table named 'no.such'" in r.stderr


def test_the_common_header_names_the_machine_commit_date_and_versions(tmp_path):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import common
    finally:
        sys.path.pop(0)
    common.write_json(str(tmp_path / "x.json"), {"rows": [1]}, threads=1)
    data = json.loads((tmp_path / "x.json").read_text())
    header = data.pop("header")
    assert data == {"rows": [1]}
    assert header["cpu"] and header["cpu"] == common.cpu_model() and header["threads"] == 1
    assert header["commit"] is None or len(header["commit"].split("-")[0]) == 40
    assert header["date"].endswith("Z") and header["versions"]["numpy"] and header["versions"]["lenet5"]
    assert set(header["flags"]) <= set(common.FLAGS) and header["cores"] >= 1
    assert common.cpu_id().startswith("family ")
