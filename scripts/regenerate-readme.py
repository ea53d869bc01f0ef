#!/usr/bin/env python
"""Render the README's default-comparison block from the files in docs/compare/.

Every number the README quotes from the default comparison (the table, the date, the wall
clock, the k-NN and mAP ranges, the headline pair) sits between two markers,

    <!-- compare:begin ... -->
    <!-- compare:end -->

and is rendered here from ``docs/compare/table.txt`` (verbatim), ``docs/compare/summary.csv``
(the ranges and the pair) and ``docs/compare/measured.json`` (when, where and how long: what
the two other files do not hold). ``tests/test_readme_compare.py`` fails when the README's
block is not what this script renders from the committed files.

    python scripts/regenerate-readme.py          # re-render README.md from docs/compare/
    python scripts/regenerate-readme.py --run    # first rerun `sslobj compare --out docs/compare`
    python scripts/regenerate-readme.py --check  # exit 1 if README.md is stale

``--run`` trains the default comparison (18 runs and the baselines; on the testbed about
30 minutes on two free cores), times it and rewrites ``measured.json``; results of other
code are rerun (as ``sslobj compare`` does), so the numbers are the current code's.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import subprocess
import sys
import textwrap
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BEGIN = (
    "<!-- compare:begin (rendered from docs/compare/ by scripts/regenerate-readme.py: "
    "rerun or edit the script, not this block) -->"
)
END = "<!-- compare:end -->"
WIDTH = 95
#: The BITS paper's fixed-head pair (arXiv 2602.09764, Table 1, ViT-B/16, ImageNet-1K, mAP).
PAPER_PAIR = ("bits-fixed", 43.44, "dino", 35.68)
#: Columns holding a clustering objective's marginal entropy (old and new name).
CLUSTER_COLUMNS = ("posterior_marginal_entropy", "marginal_entropy")


class StaleError(Exception):
    """The README's block is not what the committed files render."""


def _number(text: str | None) -> float | None:
    try:
        value = float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def read_summary(path: Path) -> list[dict[str, str]]:
    """The objectives' rows of ``summary.csv`` (baseline and reference rows left out)."""
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    return [r for r in rows if r.get("label") and not r.get("baseline")]


def read_baselines(path: Path) -> dict[str, dict[str, str]]:
    """The baseline and reference rows of ``summary.csv`` by name (``baseline: raw``, ...)."""
    with open(path, newline="") as fh:
        return {r["baseline"]: r for r in csv.DictReader(fh) if r.get("baseline")}


def _t95(n: int) -> str:
    """The 97.5% quantile of Student's t with ``n - 1`` degrees of freedom, 2 decimals: the
    factor of the tables' 95% CIs (:func:`sslobjectives.results.t_factor`)."""
    from sslobjectives.results import t_factor

    return f"{t_factor(n):.2f}" if n >= 2 else "undefined"


def gate_paragraph(rows: list[dict[str, str]], base: dict[str, dict[str, str]]) -> str:
    """What the table says against its floor and ceiling: the baselines' k-NN, each method's
    margin over the best floor, and which methods passed the validity gate."""
    from sslobjectives.baselines import GATE_BASELINES

    floors = [k for k in GATE_BASELINES if k in base]
    if not floors or not rows:
        return ""
    best = max(floors, key=lambda k: float(base[k]["knn"]))
    floor = float(base[best]["knn"])
    margins = [float(r["knn"]) - floor for r in rows]
    text = (
        "Against the same split's baselines: raw pixels k-NN "
        + " / ".join(f"{float(base[k]['knn']):.3f}" for k in floors if "raw" in k)
        + " (raw / centred)"
    )
    if "baseline: untrained" in base:
        text += f", the untrained backbone {_pm(base['baseline: untrained'], 'knn')}"
    if "baseline: untrained-centred" in base:
        text += f" (centred {_pm(base['baseline: untrained-centred'], 'knn')})"
    if "reference: supervised" in base:
        text += f", the supervised reference {float(base['reference: supervised']['knn']):.3f}"
    if min(margins) >= 0:
        where = f"{min(margins):.3f}–{max(margins):.3f} above"
    elif max(margins) <= 0:
        where = f"{-max(margins):.3f}–{-min(margins):.3f} below"
    else:
        where = f"between {-min(margins):.3f} below and {max(margins):.3f} above"
    text += f"; every method's mean k-NN is {where} the best of them ({best.split(': ')[1]})."
    learned = [r for r in rows if r.get("learned") == "True"]
    not_learned = [r for r in rows if r.get("learned") == "False"]
    if learned:
        text += f" Learned (95% CIs wholly above every floor): {_names(learned)}."
    if not_learned:
        why = sorted(
            {part for r in not_learned for part in (r.get("not_beaten") or "?").split("; ")}
        )
        text += f" Not learned by that rule: {_names(not_learned)} (CI not above " + "; ".join(why)
        if any(m > 0 for m in margins):  # a mean above the floor whose CI still reaches it
            n = int(not_learned[0].get("n") or 0)
            text += f"; a 95% t-interval over {n} seeds is {_t95(n)} standard errors wide each side"
        text += ")."
    return text


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    minutes, secs = divmod(seconds, 60)
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


def _words(n: int) -> str:
    return {1: "one", 2: "two", 3: "three", 4: "four"}.get(n, str(n))


def _range(values: list[float]) -> str:
    lo, hi = min(values), max(values)
    return f"{lo:.3f}" if f"{lo:.3f}" == f"{hi:.3f}" else f"{lo:.3f}–{hi:.3f}"


def _names(rows: list[dict[str, str]]) -> str:
    return ", ".join(f"`{r['label']}`" for r in rows)


def _all_overlap(rows: list[dict[str, str]], metric: str) -> bool:
    """Whether the 95% CIs of ``metric`` share a point (in 1-D: pairwise overlap)."""
    lows = [float(r[metric]) - float(r[metric + "_ci"] or 0) for r in rows]
    highs = [float(r[metric]) + float(r[metric + "_ci"] or 0) for r in rows]
    return max(lows) <= min(highs)


def _pm(row: dict[str, str], metric: str) -> str:
    return f"{float(row[metric]):.3f} ± {float(row[metric + '_ci'] or 0):.3f}"


def numbers_paragraph(rows: list[dict[str, str]], measured: dict) -> str:
    """What the README says about the table: k-NN and mAP ranges, the headline pair."""
    knn = [r for r in rows if _number(r.get("knn")) is not None]
    mapped = [r for r in rows if _number(r.get("map")) is not None]
    cluster = [r for r in mapped if any(_number(r.get(c)) is not None for c in CLUSTER_COLUMNS)]
    other = [r for r in mapped if r not in cluster]
    where = f"On {measured.get('dataset', 'digits')}"
    if measured.get("epochs"):
        where += f" with {measured['epochs']} epochs"
    parts = []
    if knn:
        parts.append(
            f"k-NN {_range([float(r['knn']) for r in knn])} over the {len(knn)} methods, "
            + (
                "within each other's 95% CIs"
                if _all_overlap(knn, "knn")
                else "their 95% CIs not all overlapping"
            )
        )
    if cluster and other:
        parts.append(
            f"retrieval mAP {_range([float(r['map']) for r in cluster])} for the cluster "
            f"objectives ({_names(cluster)}) and {_range([float(r['map']) for r in other])} for "
            f"the continuous and binary ones ({_names(other)})"
        )
    text = f"{where}: " + "; ".join(parts) + "."
    by_label = {r["label"]: r for r in mapped}
    bits, paper_bits, dino, paper_dino = PAPER_PAIR
    if bits in by_label and dino in by_label:
        b, d = by_label[bits], by_label[dino]
        order = "the paper's order" if float(b["map"]) > float(d["map"]) else "the reverse"
        lo_b = float(b["map"]) - float(b["map_ci"] or 0)
        lo_d = float(d["map"]) - float(d["map_ci"] or 0)
        hi_b = float(b["map"]) + float(b["map_ci"] or 0)
        hi_d = float(d["map"]) + float(d["map_ci"] or 0)
        overlap = max(lo_b, lo_d) <= min(hi_b, hi_d)
        text += (
            f" The BITS paper's fixed-head pair on mAP (ImageNet, ViT-B/16: `{bits}` {paper_bits} "
            f"above `{dino}` {paper_dino}) is here `{bits}` {_pm(b, 'map')} vs `{dino}` "
            f"{_pm(d, 'map')}: in the means {order}, "
            + ("the CIs overlapping" if overlap else "the CIs apart")
            + f" ({b.get('n', '?')} seeds)."
        )
    return text


def _fill(text: str) -> str:
    return textwrap.fill(text, WIDTH, break_on_hyphens=False, break_long_words=False)


def render(compare_dir: Path) -> str:
    """The README's block (markers included) from the files of ``compare_dir``."""
    table = (compare_dir / "table.txt").read_text().rstrip("\n")
    rows = read_summary(compare_dir / "summary.csv")
    gate = gate_paragraph(rows, read_baselines(compare_dir / "summary.csv"))
    measured = json.loads((compare_dir / "measured.json").read_text())
    n_runs = sum(int(r["n"]) for r in rows if r.get("n"))
    jobs = int(measured.get("jobs", 1))
    threads = int(measured.get("threads", 1))
    how = (
        f"this machine: {measured['cpus']} CPU cores, torch {measured['torch']}, "
        f"{_words(threads)} thread{'s' if threads != 1 else ''} per run; "
        f"{_duration(measured['wall_s'])} wall for the {n_runs} runs, {_words(jobs)} at a time"
    )
    if measured.get("source"):
        how += f"; package sources {measured['source']}"
    if measured.get("also"):
        how += f", {measured['also']}"
    head = (
        f"The default comparison as measured on {measured['date']} ({how}; `docs/compare/` "
        "holds the table, `summary.csv` and the plots; the runs are seeded, so rerunning "
        "`sslobj compare --out docs/compare` gives the same numbers):"
    )
    return "\n".join(
        [
            BEGIN,
            _fill(head),
            "",
            "```",
            table,
            "```",
            "",
            _fill(numbers_paragraph(rows, measured)),
        ]
        + (["", _fill(gate)] if gate else [])
        + [
            END,
        ]
    )


def readme_block(readme: str) -> tuple[int, int]:
    """Start and end offsets of the marked block in ``readme`` (markers included)."""
    start = readme.find("<!-- compare:begin")
    end = readme.find(END)
    if start < 0 or end < start or readme.count("<!-- compare:begin") != 1:
        raise StaleError("README.md needs one <!-- compare:begin --> ... <!-- compare:end -->")
    return start, end + len(END)


def regenerate(readme_path: Path, compare_dir: Path, check: bool = False) -> bool:
    """Rewrite the block of ``readme_path`` from ``compare_dir``; True when it changed. With
    ``check``, raise :class:`StaleError` instead of writing."""
    readme = readme_path.read_text()
    start, end = readme_block(readme)
    new = readme[:start] + render(compare_dir) + readme[end:]
    if new == readme:
        return False
    if check:
        raise StaleError(
            f"{readme_path}: the comparison block is not what docs/compare renders; run "
            "python scripts/regenerate-readme.py"
        )
    readme_path.write_text(new)
    return True


def run_compare(compare_dir: Path) -> None:
    """``sslobj compare --out compare_dir`` (the default comparison), timed into
    ``measured.json`` with the machine it ran on."""
    import torch

    from sslobjectives.train.rundir import code_version

    start = time.monotonic()
    cmd = [sys.executable, "-m", "sslobjectives", "compare", "--out", str(compare_dir)]
    subprocess.run(cmd, check=True, cwd=ROOT)
    wall = time.monotonic() - start
    manifest = json.loads((compare_dir / "manifest.json").read_text())
    spec = manifest.get("spec") or {}
    executor = spec.get("executor") or {}
    base = spec.get("base") or {}
    measured = {
        "date": date.today().isoformat(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__.split("+")[0]
        + (" CUDA" if torch.cuda.is_available() else " CPU"),
        "threads": executor.get("cpus_per_task", 1),
        "jobs": executor.get("array_parallelism", 1),
        "wall_s": round(wall, 1),
        "dataset": base.get("dataset", "digits"),
        "epochs": base.get("epochs"),
        # the package sources the runs came from (what decides staleness): a test checks
        # that they are the checkout's, so a package change without a rerun fails CI
        "source": code_version()["source"],
    }
    (compare_dir / "measured.json").write_text(json.dumps(measured, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", action="store_true", help="rerun sslobj compare first")
    parser.add_argument("--check", action="store_true", help="exit 1 if README.md is stale")
    parser.add_argument("--root", type=Path, default=ROOT, help="checkout (default: this one)")
    args = parser.parse_args(argv)
    compare_dir = args.root / "docs" / "compare"
    try:
        if args.run:
            run_compare(compare_dir)
        changed = regenerate(args.root / "README.md", compare_dir, check=args.check)
    except StaleError as err:
        print(f"regenerate-readme: {err}", file=sys.stderr)
        return 1
    except (OSError, KeyError, ValueError, subprocess.CalledProcessError) as err:
        print(f"regenerate-readme: {err}", file=sys.stderr)
        return 2
    if not args.check:
        print("README.md " + ("updated from docs/compare/" if changed else "already up to date"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
