"""Collecting a sweep's finished runs into tables and plots (``sslobj sweep collect``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sslobjectives.sweep.manifest import read_manifest
from sslobjectives.sweep.states import _varied_text
from sslobjectives.train.rundir import RunDir, stale_reason


def _config_hash(config: dict[str, Any]) -> str | None:
    """The config hash of a manifest run's config (None when it no longer validates)."""
    from sslobjectives.train.config import RunConfig

    try:
        return RunConfig.from_dict(config).config_hash
    except (ValueError, TypeError):
        return None


# ------------------------------------------------------------------------------ wait, collect


def collect(out: str | Path, reuse_stale: bool = False) -> dict[str, Any]:
    """Aggregate the finished runs: ``runs.csv``, ``summary.csv``, ``table.txt`` and plots in
    ``out``, grouped by the varied keys (mean ± 95% CI over seeds); see
    :func:`sslobjectives.results.write_report`.

    A finished run whose result was written by other code than this one (stale, see
    :func:`~sslobjectives.train.rundir.stale_reason`) is left out of every table, CSV and plot
    unless ``reuse_stale``; either way ``report["stale_note"]`` says how many and which (also
    under the table), ``report["n_stale"]`` counts them."""
    from sslobjectives.results import stale_note, write_report

    out = Path(out).resolve()
    manifest = read_manifest(out)
    results, missing, stale = [], [], []
    for run in manifest["runs"]:
        run_dir = RunDir(out / run["dir"])
        # checked to be the run's own (run id and config hash): a result.json copied from
        # another run is an error naming the file, never a seed counted twice
        expect = {"run_id": run["run_id"]}
        full = _config_hash(run["config"]) if isinstance(run.get("config"), dict) else None
        if full is not None and full[:12] == run["run_id"]:  # unchanged since submitted
            expect["config_hash"] = full
        result = run_dir.result(expect=expect)
        if result is not None and result.get("status") == "done":
            if stale_reason(result) is not None:
                stale.append(_run_text(run))
                if not reuse_stale:
                    continue
            result["_path"] = str(run_dir.result_path)
            results.append(result)
        else:
            missing.append(run)
    note = stale_note(stale, included=reuse_stale)
    if not results:
        why = f"; {note}" if note else ""
        raise ValueError(f"no finished runs in {out} yet ({len(missing)} not done{why})")
    report = write_report(
        results, out, by=manifest["by"], varied=manifest["varied"], notes=[note]
    )
    report["n_done"] = len(results)
    report["n_stale"] = len(stale)
    report["stale_note"] = note
    report["missing"] = [_run_text(m) for m in missing]
    return report


def _run_text(run: dict[str, Any]) -> str:
    """A manifest run as collect names it: ``label s0 (varied values)``."""
    return f"{run['label']} s{run['seed']} ({_varied_text(run)})"
