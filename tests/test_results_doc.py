"""docs/RESULTS.md is the report of the committed specs at their committed budgets, and the
figures the README quotes from it are the ones it holds.

The sweep results themselves (results/) are not in the repository; these tests read the
generated markdown. Regenerate both with ``bash scripts/reproduce-results.sh``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sslobjectives.sweep import load_spec

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "RESULTS.md"
README = (ROOT / "README.md").read_text()
SPECS = sorted((ROOT / "experiments").glob("0*.toml"))


def _sections() -> dict[str, str]:
    """Sweep name -> its section of RESULTS.md."""
    text = RESULTS.read_text()
    parts = re.split(r"^## ", text, flags=re.M)[1:]
    out = {}
    for part in parts:
        m = re.search(r"^- sweep `([^`]+)`", part, re.M)
        assert m, part[:200]
        out[m.group(1)] = part
    return out


def _table(section: str) -> dict[str, dict[str, str]]:
    """First column -> {column: cell} of the section's results table."""
    lines = [ln for ln in section.splitlines() if ln.startswith("| ")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = {}
    for ln in lines[1:]:  # the |---| line does not start with "| "
        cells = [c.strip() for c in ln.strip("|").split("|")]
        rows[cells[0]] = dict(zip(header, cells, strict=True))
    return rows


def _mean(cell: str) -> float:
    """The mean of a cell: "0.823 ± 0.166", "0.540 (exact)", "0.879 [0.738, 1.000]"."""
    return float(cell.split()[0])


def test_every_committed_spec_has_a_section():
    assert set(_sections()) == {load_spec(p).name for p in SPECS}


def _spec_cases():
    for path in SPECS:
        yield pytest.param(path, id=path.stem)


@pytest.mark.parametrize("path", list(_spec_cases()))
def test_every_committed_spec_is_reported_at_its_committed_budget(path):
    spec = load_spec(path)
    sec = _sections()[spec.name]
    # the spec hash covers the budget, seeds, grid and base settings
    assert f"(hash {spec.spec_hash})" in sec, f"{spec.name}: RESULTS.md is of another spec"
    n = len(spec.expand())
    assert f"runs: {n} planned: {n} done" in sec, spec.name
    assert "0 failed, 0 not run" in sec, spec.name
    assert f"seeds {', '.join(map(str, spec.seeds))};" in sec, spec.name
    assert len(spec.seeds) >= 3, "at least 3 seeds everywhere (issue 6)"


def test_every_figure_the_report_shows_is_committed():
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", RESULTS.read_text())
    assert len(links) >= 30
    for link in links:
        assert (RESULTS.parent / link).is_file(), link


def test_the_readme_links_the_report_and_the_command_that_regenerates_it():
    assert "(docs/RESULTS.md)" in README
    assert "bash scripts/reproduce-results.sh" in README
    script = (ROOT / "scripts" / "reproduce-results.sh").read_text()
    assert "experiments/0*.toml" in script and "sslobj report" in script
    assert "-o docs/RESULTS.md" in script


def test_the_run_count_and_time_the_readme_states():
    sections = _sections()
    planned = sum(int(re.search(r"runs: (\d+) planned", s).group(1)) for s in sections.values())
    assert f"{planned} runs" in README
    walls = [re.search(r"measured: ([\d.]+) min wall clock", s) for s in sections.values()]
    # a sweep whose runs were all finished before its submission (experiment 1b and stage 1
    # of 8 reuse docs/compare's runs: the same run ids) has no wall clock of its own
    minutes = sum(float(m.group(1)) for m in walls if m)
    assert f"{round(minutes)} minutes of sweeps" in README


# (sweep, group, column, the value as the README quotes it: its digits set the rounding)
QUOTED = [
    ("objective-comparison-testbed", "dino", "map", "0.379"),
    ("objective-comparison-testbed", "sinkhorn", "map", "0.404"),
    ("objective-comparison-testbed", "bits-fixed", "map", "0.323"),
    ("objective-comparison-testbed", "bits-reset", "map", "0.297"),
    ("objective-comparison-testbed", "simdino", "map", "0.239"),
    ("objective-comparison-testbed", "bits-reset", "linear", "0.805"),
    ("objective-comparison-testbed", "simdino", "linear", "0.650"),
    ("objective-comparison-testbed", "simdino", "knn", "0.798"),
    ("objective-comparison-testbed", "bits-fixed", "knn", "0.842"),
    ("objective-comparison-testbed", "baseline: raw", "knn", "0.540"),
    ("objective-comparison-digits", "baseline: raw", "knn", "0.976"),
    ("reset-period", "none", "map", "0.323"),
    ("reset-period", "1", "map", "0.276"),
    ("reset-period", "2", "map", "0.287"),
    ("reset-period", "4", "map", "0.297"),
    ("reset-period", "1", "bce_ratio", "1.049"),
    ("coding-rate-weight", "0.05", "map", "0.281"),
    ("coding-rate-weight", "0.1", "map", "0.293"),
    ("coding-rate-weight", "0.2", "map", "0.309"),
    ("coding-rate-weight", "0.5", "map", "0.323"),
    ("coding-rate-weight", "0.05", "knn", "0.693"),
    ("channel-width", "256", "map", "0.323"),
    ("channel-width", "512", "map", "0.322"),
    ("channel-width", "128", "bce_ratio", "1.000"),
    ("hard-vs-soft-targets", "soft-1", "bce_ratio", "1.001"),
    ("hard-vs-soft-targets", "soft-1", "knn", "0.757"),
    ("hard-vs-soft-targets", "soft-1", "linear", "0.583"),
    ("hard-vs-soft-targets", "soft-0.05", "map", "0.323"),
    ("what-the-bits-say", "256", "bit_entropy", "0.997"),
    ("domain-shift", "reference: supervised", "knn", "0.354"),
    ("domain-shift", "baseline: raw-centred", "knn", "0.425"),
]


@pytest.mark.parametrize(("sweep", "group", "column", "quoted"), QUOTED)
def test_quoted_figures_are_the_reports(sweep, group, column, quoted):
    mean = _mean(_table(_sections()[sweep])[group][column])
    digits = len(quoted.split(".")[1])
    assert f"{mean:.{digits}f}" == quoted, (sweep, group, column, mean)
    assert quoted in README


def test_quoted_collapse_counts_and_learned_groups_are_the_reports():
    """No testbed run collapsed; the groups the README says did not learn are the report's."""
    tables = {s: _table(sec) for s, sec in _sections().items()}
    for sweep, table in tables.items():
        if sweep != "objective-comparison-digits":
            for group, row in table.items():
                assert row["collapsed"] in ("0", "–"), (sweep, group)
    one_b = tables["objective-comparison-testbed"]
    learned = {g for t in tables.values() for g, row in t.items() if row["learned"] == "yes"}
    assert learned == set()  # the centred untrained backbone is a floor no group clears
    assert all(
        "untrained-centred" in row["learned"]
        for g, row in one_b.items()
        if not g.startswith(("baseline", "reference"))
    )
    assert _mean(one_b["baseline: untrained-centred"]["knn"]) > max(
        _mean(row["knn"]) for g, row in one_b.items() if not g.startswith(("baseline", "ref"))
    )
    assert tables["reset-period"]["1"]["learned"].startswith("no (channel closed")
    assert tables["channel-width"]["128"]["learned"].startswith("no (channel closed")
    assert tables["what-the-bits-say"]["64"]["learned"].startswith("no (channel closed")
    assert all(
        row["learned"].startswith("no") for g, row in tables["domain-shift"].items()
        if not g.startswith(("baseline", "reference"))
    )
    assert all(
        row["learned"].startswith("no (under raw")
        for g, row in tables["objective-comparison-digits"].items()
        if not g.startswith(("baseline", "reference"))
    )


@pytest.mark.parametrize(
    ("sweep", "line", "verdict"),
    [
        ("objective-comparison-testbed", "- bits-fixed vs simdino:", "invalid testbed"),
        ("objective-comparison-testbed", "- bits-reset vs simdino:", "invalid testbed"),
        ("objective-comparison-testbed", "- dino vs ", "invalid testbed"),
        ("reset-period", "- reset_period=1 vs reset_period=none:", "channel closed"),
        ("reset-period", "- reset_period=2 vs reset_period=none:", "invalid testbed"),
        ("coding-rate-weight", "- objective_cfg.beta=0.1 vs objective_cfg.beta=0.2:", "invalid"),
        ("what-the-bits-say", "- head_dim=256: 0.997", "invalid testbed"),
        ("what-the-bits-say", "- head_dim=256: 0.951", "invalid testbed"),
    ],
)
def test_quoted_verdicts_are_the_reports(sweep, line, verdict):
    found = [ln for ln in _sections()[sweep].splitlines() if re.match(line, ln)]  # a regex
    assert found and all(f"**{verdict}" in ln for ln in found), found


def test_experiment_six_gaps_and_verdicts():
    """The Jensen gap is larger at T = 0.02 than at 0.04 for every normalisation, 3-6 times
    (DINO's batch centre quoted), and every claim is invalid testbed (no group passed)."""
    sec = _sections()["centering-vs-inverse-prior"]
    rows = [ln for ln in sec.splitlines() if ln.startswith("| ")]
    header = [c.strip() for c in rows[0].strip("|").split("|")]
    gap = {}
    for ln in rows[1:]:
        cells = dict(zip(header, [c.strip() for c in ln.strip("|").split("|")], strict=True))
        if cells["label"]:  # not a baseline row
            key = (cells["label"], cells["objective_cfg.teacher_temp"])
            gap[key] = _mean(cells["jensen_gap_mean"])
    labels = {label for label, _ in gap}
    assert len(labels) == 4
    ratios = [gap[(label, "0.02")] / gap[(label, "0.04")] for label in labels]
    assert all(3 <= r <= 6.5 for r in ratios), ratios
    assert f"{gap[('dino-batch-centre', '0.02')]:.3f}" == "11.408" and "11.408" in README
    assert f"{gap[('dino-batch-centre', '0.04')]:.3f}" == "3.052" and "3.052" in README
    verdicts = [ln for ln in sec.splitlines() if ln.startswith("- ") and "→" in ln]
    assert verdicts and all("**invalid testbed" in ln for ln in verdicts)
