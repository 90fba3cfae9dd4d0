"""Render the docs' benchmark tables from the benchmarks' JSON files, so tables cannot drift from numbers.

    python benchmarks/render_tables.py           # rewrite every table in README.md and docs/*.md
    python benchmarks/render_tables.py --check   # exit 1 if a table differs from its JSON
    python benchmarks/render_tables.py --list    # the tables, their JSON files and where they appear

A table in a Markdown file sits between two marker comments:

    <!-- table: bench.waits -->
    | what | lenet5 | ... |
    <!-- end table -->

and everything between them is what ``TABLES[name]`` renders from its JSON
file in docs/ (written by the benchmark's ``--json``, under the common
header of benchmarks/common.py).  A file holds every figure its tables
show; this script only formats them (ratios included, where the benchmark
measured them in turns).  To change a table, re-run its benchmark with
``--json docs/<name>.json`` (the command each table's entry names) and then
this script; never edit a table by hand.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence

ROOT = Path(__file__).resolve().parent.parent
MARKER = re.compile(r"^<!-- table: ([\w.-]+) -->\n(.*?)^<!-- end table -->$", re.M | re.S)

Json = Dict[str, Any]


def num(value: Optional[float], digits: int = 1, unit: str = "") -> str:
    """value with thousands separators and `digits` decimals ('-' for None)."""
    return "-" if value is None else f"{value:,.{digits}f}{unit}"


def table(head: Sequence[str], align: str, rows: List[Sequence[str]]) -> str:
    """A Markdown table; align holds one letter a column: l (left) or r (right)."""
    lines = ["| " + " | ".join(head) + " |", "|" + "".join("---|" if a == "l" else "---:|" for a in align)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def cpu_label(header: Json) -> str:
    """How a table names a run's CPU: the header's label, else model name and family/model."""
    if header.get("label"):
        return str(header["label"])
    family, model = header.get("cpu_family", "?"), header.get("cpu_model", "?")
    return f"{header.get('cpu', 'unknown')} (family {family} model {model})"


def major_minor(header: Json, name: str) -> str:
    version = header.get("versions", {}).get(name)
    return "" if not version else ".".join(str(version).split("+")[0].split(".")[:2]) + " "


# ----------------------------------------------------------------------------
# bench.py (docs/bench.json, docs/bench_profile.json, docs/bench_preset_profile.json)


def bench_waits(data: Json) -> str:
    def shown(t: Optional[float]) -> str:
        return "-" if t is None else f"{t * 1e6:.1f} µs" if t < 1e-3 else f"{t:.3f} s"

    return table(
        ["what", "lenet5", "peer, same run", "peer's time", "ratio"],
        "lrlrr",
        [
            [r["what"], shown(r["seconds"]), r["peer"], shown(r["peer_seconds"]), num(r["ratio"], 2)]
            for r in data["waits"]
        ],
    )


def bench_limit(data: Json) -> str:
    one = data["waits"][-1]
    limit, macs = one["float64_limit_seconds"], one["forward_macs"]
    return (
        f"One image's {macs:,} multiply-adds take {limit * 1e6:.1f} µs at one core's float64 peak "
        f"measured right after ({macs / limit / 1e9:.1f} GMAC/s, {data['machine']['isa']}): the call is "
        f"{one['seconds'] / limit:.2f} times that limit."
    )


def engines(run: Json) -> str:
    rows = run["rows"]
    base = max((r for r in rows if r["engine"] == "C fast"), key=lambda r: r["threads"])  # the ratios' base
    out = []
    for r in rows:
        epoch = f"{r['epoch_seconds']:.2f}" + ("" if r["epoch_measured"] else " (est.)")
        out.append(
            [
                r["engine"],
                r["threads"],
                num(r["train_images_per_s"], 0),
                epoch,
                f"{r['inference_seconds']:.3f}",
                f"{r['ratio_train']:.1f} / {r['ratio_inference']:.1f}",
                r["isa"] or "-",
                num(r["ratio_to_torch_f32"], 2),
            ]
        )
    threads = f"{base['threads']} thread{'s' * (base['threads'] > 1)}"
    return table(
        [
            "engine",
            "threads",
            "train images/s",
            "one epoch (s)",
            f"inference of {rows[0]['test_images']} (s)",
            f"x slower than C fast, {threads} (train / inference)",
            "variant",
            "epoch time / PyTorch f32, same threads",
        ],
        "lrrrrrlr",
        out,
    )


def bench_engines(data: Json) -> str:
    return engines(data)


def bench_engines_other(data: Json) -> str:
    return engines(data["other_machines"][0])


def bench_variants(data: Json) -> str:
    """The C fast rows of every run in the file (other machines first), each
    beside PyTorch float32 at the same thread count in the same run."""
    out = []
    for run in [*data.get("other_machines", []), data]:
        machine = run["machine"]
        torch = {r["threads"]: r for r in run["rows"] if r["engine"] == "PyTorch float32"}
        for r in run["rows"]:
            if r["engine"] == "C fast":
                peer = torch.get(r["threads"])
                out.append(
                    [
                        cpu_label(run.get("header", machine)),
                        f"{r['isa']} ({machine['isa_lanes']})",
                        r["threads"],
                        num(r["train_images_per_s"], 0),
                        num(peer["train_images_per_s"] if peer else None, 0),
                        num(r["ratio_to_torch_f32"], 2),
                    ]
                )
    return table(
        [
            "CPU",
            "variant (images per tile)",
            "threads",
            "C fast train images/s",
            "PyTorch f32 images/s",
            "epoch time / PyTorch f32",
        ],
        "llrrrr",
        out,
    )


#: The profile's stage names as the docs spell them out.
STAGE_NAMES = {
    "load": "load (normalise into tiles)",
    "conv2 back": "conv2 back (input error)",
    "conv2 grad": "conv2 grad (weights, bias)",
    "batch sum": "batch sum (phase 2)",
}


def threads_head(t: int) -> str:
    return f"{t} thread{'s' * (t > 1)}"


def bench_profile_stages(data: Json) -> str:
    p = data["profile"]
    head = ["stage", "multiply-adds per image"]
    for t in p["threads"]:
        head += (
            [f"{threads_head(t)}: µs", "GMAC/s"] if t == 1 else [f"{threads_head(t)}: µs a thread", "GMAC/s a thread"]
        )
    rows = []
    for r in p["stages"]:
        cells = [STAGE_NAMES.get(r["stage"], r["stage"]), f"{r['macs']:,}"]
        for us, rate in zip(r["us_per_image"], r["gmacs_per_thread"]):
            cells += [num(us, 1), num(rate, 1)]
        rows.append(cells)
    return table(head, "lr" + "rr" * len(p["threads"]), rows)


def bench_profile_rates(data: Json) -> str:
    rows = []
    for r in data["profile"]["rates"]:
        ratio = r["ratio_to_torch_f32"]
        rows.append(
            [
                r["threads"],
                " / ".join(num(v, 0) for v in r["images_per_s"]),
                " / ".join(num(v, 1) for v in r["gmacs"]),
                " / ".join(num(v, 1) for v in r["peak_gmacs"]),
                " / ".join(f"{v:.0%}" for v in r["share_of_peak"]),
                "-" if ratio is None else f"{ratio:.2f} ({r['torch_f32_images_per_s']:,.0f} images/s)",
            ]
        )
    return table(
        [
            "threads",
            "train images/s (median / best round)",
            "GMAC/s",
            "peak GMAC/s (median / best)",
            "share of peak",
            "epoch time / PyTorch f32 (medians)",
        ],
        "rrrrrr",
        rows,
    )


def bench_preset_profile(data: Json) -> str:
    p = data["preset_profile"]
    return table(
        ["stage", *(threads_head(t) for t in p["threads"])],
        "l" + "r" * len(p["threads"]),
        [[r["stage"], *(f"{us:.2f}" for us in r["us_per_image"])] for r in p["rows"]],
    )


# ----------------------------------------------------------------------------
# inference.py (docs/inference.json)


def inference(data: Json) -> str:
    header, rows = data.get("header", {}), data["rows"]  # no header yet: a run being printed
    ours = {r["threads"]: r for r in rows if r["engine"].startswith("lenet5")}
    names = {
        "lenet5 float64": "lenet5 float64 (bit-exact)",
        "PyTorch float32": f"PyTorch {major_minor(header, 'torch')}float32",
        "onnxruntime float32": f"onnxruntime {major_minor(header, 'onnxruntime')}float32",
    }
    out = []
    for r in rows:
        base = ours.get(r["threads"])
        lat = r["latency_us"]
        out.append(
            [
                names.get(r["engine"], r["engine"]),
                r["threads"],
                num(lat, 1),
                "-" if lat is None else f"{lat / ours[1]['latency_us']:.2f}",
                f"{r['batch_seconds']:.3f}",
                "-" if base is None else f"{r['batch_seconds'] / base['batch_seconds']:.2f}",
                "100%" if r["agreement"] == 1 else f"{100 * r['agreement']:.2f}%",
            ]
        )
    return table(
        [
            "engine",
            "threads",
            "one image (µs)",
            "x lenet5 (one image)",
            f"{data['images']:,} images (s)",
            f"x lenet5 ({data['images']:,}, same threads)",
            "same digits as lenet5",
        ],
        "lrrrrrr",
        out,
    )


# ----------------------------------------------------------------------------
# pictures.py (docs/pictures.json)

#: pictures.py's kinds as docs/pictures.md names them.
PICTURE_KINDS = {
    "plain photo": "plain photo",
    "thin pen": "thin pen (1 px)",
    "uneven light": "uneven light and a shadow",
    "coloured ink": "coloured ink on tinted paper",
    "EXIF orientation": "phone photo, EXIF orientation 3/6/8",
    "transparent": "transparent PNG (black, white, colour ink)",
    "blocky scan (MNIST)": "blocky 8 x 8 scan of an MNIST digit",
    "blocky scan (UCI 8 x 8)": "blocky 8 x 8 scan, UCI digits",
}


def pictures(data: Json) -> str:
    """Per kind, how many of per_kind read right: the tests' pictures (tests_right,
    counted on tests/picture_kinds.py's makers) and pictures.py's (right)."""
    sets = [data.get("tests_right", {}), data["right"]]
    kinds = list(data["right"])
    rows, totals = [], []
    for kind in kinds:
        rows.append(
            [PICTURE_KINDS.get(kind, kind)]
            + [str(s.get(kind, {}).get(side, "")) for s in sets for side in ("before", "after")]
        )
    for s in sets:  # a run without --before has no "before" counts
        for side in ("before", "after"):
            counts = [s[k][side] for k in kinds if side in s.get(k, {})]
            totals.append(f"{100 * sum(counts) / (len(counts) * data['per_kind']):.1f} %" if counts else "")
    rows.append(["all", *totals])
    return table(
        ["Kind of picture", "tests: before", "tests: after", "independent: before", "independent: after"], "lllll", rows
    )


# ----------------------------------------------------------------------------
# read_numbers.py (docs/read_numbers.json)

NUMBER_KINDS = {
    "apart": "apart",
    "nearly": "nearly touching",
    "touching": "touching",
    "photo": "photos, uneven light (JPEG)",
}


def read_numbers(data: Json) -> str:
    readers = list(data["results"])
    names = {"lenet5": "lenet5", "tesseract": "Tesseract"}
    head = ["kind"]
    for reader in readers:
        head += [f"{names.get(reader, reader)}: numbers right", "digits right", "ms per picture"]
    rows = []
    for kind, label in NUMBER_KINDS.items():
        cells = [label]
        for reader in readers:
            r = data["results"][reader][kind]
            cells += [f"{r['numbers_right_pct']:.0f} %", f"{r['digits_right_pct']:.1f} %", f"{r['ms_per_picture']:.0f}"]
        rows.append(cells)
    return table(head, "l" + "rrr" * len(readers), rows)


# ----------------------------------------------------------------------------
# serve_load.py (docs/serve_load.json)


def serve_load(report: Json) -> str:
    rows = []
    for row in report["load"]:
        b, n = row["before"], row["now"]
        ratio = row.get("ratio", n["per_second"] / b["per_second"] if b["per_second"] else None)
        errors = "".join(f" ({r['errors']} errors)" for r in (b, n) if r["errors"])
        rows.append(
            [
                row["body"],
                row["clients"],
                row["connections"],
                num(b["per_second"]),
                f"{num(b['p50_ms'])} / {num(b['p99_ms'])}",
                num(n["per_second"]),
                f"{num(n['p50_ms'])} / {num(n['p99_ms'])}",
                num(ratio, 2) + errors,
            ]
        )
    return table(
        [
            "body",
            "clients",
            "connections",
            "before req/s",
            "before p50 / p99 ms",
            "now req/s",
            "now p50 / p99 ms",
            "now / before req/s",
        ],
        "lrlrrrrr",
        rows,
    )


def serve_hostile(report: Json) -> str:
    rows = []
    d, m, bo = report["dribble"], report["mixed"], report["bombs"]
    if d:
        rows.append(
            [
                f"{d['now']['requests']} JSON requests while {d['now']['dribblers']} connections dribble headers: "
                "p50 / slowest ms, errors",
                *(f"{num(d[s]['p50_ms'])} / {num(d[s]['max_ms'])}, {d[s]['errors']}" for s in ("before", "now")),
            ]
        )
    if m:
        rows.append(
            [
                "8 clients x mixed JSON and PNG, kept-alive: requests, errors",
                *(f"{m[s]['requests']}, {m[s]['errors']}" for s in ("before", "now")),
            ]
        )
    if bo:

        def said(r: Json) -> str:
            codes = ", ".join("no answer" if c is None else str(c) for c in r["statuses"])
            died = "" if r["alive"] else ", server died"
            return f"{codes} in {r['seconds']:.1f} s, peak {r['peak_mb']:,.0f} MB{died}"

        rows.append(
            [
                f"{len(bo['now']['statuses'])} strip bombs ({bo['now']['bytes']:,} bytes each) at once, "
                f"{bo['now']['cap_gb']:g} GB cap: answers, time, peak memory",
                *(said(bo[s]) for s in ("before", "now")),
            ]
        )
    return table(["hostile", "before", "now"], "lll", rows)


# ----------------------------------------------------------------------------


class Table(NamedTuple):
    source: str  # the JSON file, relative to the repository
    render: Callable[[Json], str]
    command: str  # what writes the file


TABLES: Dict[str, Table] = {
    "bench.waits": Table("docs/bench.json", bench_waits, "python benchmarks/bench.py --json docs/bench.json"),
    "bench.limit": Table("docs/bench.json", bench_limit, "python benchmarks/bench.py --json docs/bench.json"),
    "bench.engines": Table("docs/bench.json", bench_engines, "python benchmarks/bench.py --json docs/bench.json"),
    "bench.engines.other": Table(
        "docs/bench.json", bench_engines_other, "an earlier bench.py --json, kept under other_machines"
    ),
    "bench.variants": Table(
        "docs/bench.json", bench_variants, "bench.py --json (and --isa NAME runs kept under other_machines)"
    ),
    "bench.profile.stages": Table(
        "docs/bench_profile.json",
        bench_profile_stages,
        "python benchmarks/bench.py --profile --json docs/bench_profile.json",
    ),
    "bench.profile.rates": Table(
        "docs/bench_profile.json",
        bench_profile_rates,
        "python benchmarks/bench.py --profile --json docs/bench_profile.json",
    ),
    "bench.preset_profile": Table(
        "docs/bench_preset_profile.json",
        bench_preset_profile,
        "python benchmarks/bench.py --profile --batch-size 64 --json docs/bench_preset_profile.json",
    ),
    "inference": Table("docs/inference.json", inference, "python benchmarks/inference.py --json docs/inference.json"),
    "pictures": Table(
        "docs/pictures.json",
        pictures,
        "python benchmarks/pictures.py --before old_images.py --tests-kinds --json docs/pictures.json",
    ),
    "read_numbers": Table(
        "docs/read_numbers.json", read_numbers, "python benchmarks/read_numbers.py --json docs/read_numbers.json"
    ),
    "serve_load": Table(
        "docs/serve_load.json", serve_load, "python benchmarks/serve_load.py --json docs/serve_load.json"
    ),
    "serve_load.hostile": Table(
        "docs/serve_load.json", serve_hostile, "python benchmarks/serve_load.py --json docs/serve_load.json"
    ),
}


def documents(root: Path) -> List[Path]:
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def render_text(text: str, root: Path, where: str, problems: List[str]) -> str:
    """text with every marked table rendered afresh; unknown names go to problems."""

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in TABLES:
            problems.append(f"{where}: no table named {name!r} (render_tables.py knows {', '.join(TABLES)})")
            return match.group(0)
        spec = TABLES[name]
        data = json.loads((root / spec.source).read_text())
        return f"<!-- table: {name} -->\n{spec.render(data)}\n<!-- end table -->"

    return MARKER.sub(fill, text)


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--check", action="store_true", help="change nothing; exit 1 if a table differs from its JSON")
    p.add_argument("--list", action="store_true", help="list the tables, their JSON files and where they appear")
    p.add_argument("--root", type=Path, default=ROOT, help="the repository (default: this checkout)")
    args = p.parse_args(argv)
    problems: List[str] = []
    seen: Dict[str, List[str]] = {name: [] for name in TABLES}
    for path in documents(args.root):
        if not path.exists():
            continue
        where = str(path.relative_to(args.root))
        text = path.read_text()
        for name in MARKER.findall(text):
            seen.setdefault(name[0], []).append(where)
        fresh = render_text(text, args.root, where, problems)
        if fresh == text:
            continue
        if args.check:
            changed = [
                m.group(1) for m, n in zip(MARKER.finditer(text), MARKER.finditer(fresh)) if m.group(0) != n.group(0)
            ]
            problems.append(
                f"{where}: {', '.join(changed)} differ from their JSON (run python benchmarks/render_tables.py)"
            )
        else:
            path.write_text(fresh)
            print(f"rendered {where}")
    if args.list:
        for name, spec in TABLES.items():
            print(f"{name}: {spec.source} ({spec.command}); in {', '.join(seen[name]) or 'no document'}")
    for problem in problems:
        print(f"render_tables.py: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
