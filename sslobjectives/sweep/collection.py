"""Collecting a sweep's finished runs into tables and plots (``sslobj sweep collect``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sslobjectives.sweep.manifest import read_manifest
from sslobjectives.sweep.states import _varied_text
from sslobjectives.train.rundir import RunDir

# ------------------------------------------------------------------------------ wait, collect


def collect(out: str | Path) -> dict[str, Any]:
    """Aggregate the finished runs: ``runs.csv``, ``summary.csv``, ``table.txt`` and plots in
    ``out``, grouped by the varied keys (mean ± 95% CI over seeds); see
    :func:`sslobjectives.results.write_report`."""
    from sslobjectives.results import load_results, write_report

    out = Path(out).resolve()
    manifest = read_manifest(out)
    files, missing = [], []
    for run in manifest["runs"]:
        run_dir = RunDir(out / run["dir"])
        if run_dir.is_done():
            files.append(run_dir.result_path)
        else:
            missing.append(run)
    results = load_results(files)
    if not results:
        raise ValueError(f"no finished runs in {out} yet ({len(missing)} not done)")
    report = write_report(results, out, by=manifest["by"], varied=manifest["varied"])
    report["n_done"] = len(results)
    report["missing"] = [f"{m['label']} s{m['seed']} ({_varied_text(m)})" for m in missing]
    return report
