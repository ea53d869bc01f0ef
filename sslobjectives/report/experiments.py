"""An experiment: one sweep directory read back (manifest or spec + results)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sslobjectives.report.claims import default_claims_path
from sslobjectives.report.groups import Run
from sslobjectives.results import (
    _flatten,
)
from sslobjectives.sweep.spec import _show
from sslobjectives.train.rundir import RunDir, read_json, stale_reason

# ---------------------------------------------------------------------------- experiments


@dataclass
class Experiment:
    """One sweep directory, read for the report."""

    name: str
    out: Path
    by: list[str]
    varied: list[str]
    zip_keys: list[str]
    runs: list[Run]
    spec_path: str | None = None
    spec_hash: str | None = None
    budget: str = ""
    seeds: list[int] = field(default_factory=list)
    title: str = ""
    base: dict[str, Any] = field(default_factory=dict)
    wall_s: float | None = None  # summed per submission, up to its last result.json
    submissions: int = 0
    reuse_stale: bool = False  # stale results kept (status done) rather than left out

    @property
    def done(self) -> list[dict]:
        return [r.result for r in self.runs if r.status == "done"]

    @property
    def stale(self) -> list[Run]:
        """The finished runs whose result comes from other code (left out unless kept)."""
        return [r for r in self.runs if r.stale]

    def groups(self) -> list[tuple[dict[str, Any], list[Run]]]:
        """``(values of the grouping keys, runs)`` in the spec's order."""
        out: dict[tuple, tuple[dict, list[Run]]] = {}
        for r in self.runs:
            values = {k: r.value(k) for k in self.by}
            key = tuple(_show(v) for v in values.values())
            out.setdefault(key, (values, []))[1].append(r)
        return list(out.values())


def load_experiment(
    out: str | Path, experiments_dir: str | Path | None = None, reuse_stale: bool = False
) -> Experiment:
    """Read a sweep directory: its manifest (or, without one, the spec of the same name in
    ``experiments_dir`` and every ``result.json`` below ``out``). A finished run whose result
    was written by other code gets status ``stale`` (left out of the report) unless
    ``reuse_stale`` (then ``done``); either way its :attr:`Run.stale` says so."""
    out = Path(out)
    manifest = read_json(out / "manifest.json")
    if manifest is not None:
        exp = _from_manifest(out, manifest)
    else:
        exp = _from_results(out, Path(experiments_dir or default_claims_path().parent))
    exp.reuse_stale = reuse_stale
    for r in exp.runs:
        if r.status == "done" and r.result is not None:
            r.stale = stale_reason(r.result)
            if r.stale and not reuse_stale:
                r.status = "stale"
    return exp


def _from_manifest(out: Path, m: dict[str, Any]) -> Experiment:
    runs = []
    for run in m.get("runs", []):
        files = RunDir(out / run["dir"])
        result = files.result(expect={"run_id": run["run_id"]})  # never another run's result
        status = "missing" if result is None else result.get("status")
        status = status if status in ("done", "missing") else "failed"
        if result is not None:
            result["_path"] = str(files.result_path)
        runs.append(Run(run["label"], run["seed"], _flatten(run["config"]), status, result))
    spec = m.get("spec") or {}
    subs = m.get("submissions") or []
    return Experiment(
        name=m.get("name", out.name),
        out=out,
        by=list(m.get("by") or ["label"]),
        varied=list(m.get("varied") or []),
        zip_keys=list(_flatten(spec.get("zip", {}))),
        runs=runs,
        spec_path=m.get("spec_path"),
        spec_hash=m.get("spec_hash"),
        budget=m.get("budget", ""),
        seeds=list(spec.get("sweep", {}).get("seeds", [])),
        title=_title(m.get("spec_text") or ""),
        base=spec.get("base", {}),
        wall_s=_wall_seconds(subs, [r.result["_path"] for r in runs if r.result]),
        submissions=sum(bool(s.get("jobs")) for s in subs),
    )


def _wall_seconds(submissions: list[dict], result_paths: list[str]) -> float | None:
    """Wall-clock seconds the sweep's runs took: per submission that started runs, from its
    time to the newest ``result.json`` (mtime) written before the next such submission;
    summed. A sweep submitted once is timed from submission to its last result; one grown
    later (more seeds) is not charged the time between its submissions."""
    try:
        starts = sorted(
            datetime.strptime(s["time"], "%Y-%m-%dT%H:%M:%S%z").timestamp()
            for s in submissions
            if s.get("jobs")
        )
        ends = [Path(p).stat().st_mtime for p in result_paths]
    except (KeyError, ValueError, OSError):  # an odd timestamp, a vanished result
        return None
    total, timed = 0.0, False
    for i, start in enumerate(starts):
        stop = starts[i + 1] if i + 1 < len(starts) else float("inf")
        window = [e for e in ends if start <= e < stop]
        if window:
            total, timed = total + max(window) - start, True
    return total if timed else None


def _from_results(out: Path, experiments_dir: Path) -> Experiment:
    from sslobjectives.results import load_results
    from sslobjectives.sweep.spec import load_spec

    spec = None
    for path in sorted(experiments_dir.glob("*.toml")):
        try:
            candidate = load_spec(path)
        except ValueError:
            continue
        if candidate.name == out.name:
            spec = candidate
            break
    results = load_results([out], status=None)
    runs = [
        Run(
            r.get("label", ""),
            r.get("seed", 0),
            _flatten(r["config"]),
            "done" if r.get("status") == "done" else "failed",
            r,
        )
        for r in results
    ]
    if spec is None:
        return Experiment(out.name, out, ["label"], [], [], runs)
    return Experiment(
        name=spec.name,
        out=out,
        by=spec.group_by,
        varied=spec.varied,
        zip_keys=list(spec.zip),
        runs=runs,
        spec_path=spec.source,
        spec_hash=spec.spec_hash,
        budget=spec.budget,
        seeds=list(spec.seeds),
        title=_title(Path(spec.source).read_text()),
        base=spec.base,
    )


def _title(spec_text: str) -> str:
    """The first comment line of a spec, without its ``#``."""
    for line in spec_text.splitlines():
        if line.startswith("#"):
            return line.lstrip("#").strip()
        if line.strip():
            break
    return ""
