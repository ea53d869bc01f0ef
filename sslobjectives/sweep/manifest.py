"""The sweep's manifest (``manifest.json``): spec, run ids and every submission's job ids."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from sslobjectives.sweep.spec import PlannedRun, SweepSpec
from sslobjectives.train.rundir import run_dir_for, write_json_atomic

# ------------------------------------------------------------------------------ manifest

MANIFEST = "manifest.json"
SUBMITIT_DIR = "submitit"


def read_manifest(out: str | Path) -> dict[str, Any]:
    """The sweep's manifest; a ``FileNotFoundError`` naming the directory when absent."""
    path = Path(out) / MANIFEST
    if not path.exists():
        raise FileNotFoundError(f"{out} is not a sweep directory (no {MANIFEST})")
    try:
        manifest = json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(
            f"{path} is not valid JSON ({type(err).__name__}): it was not written by this "
            "project; restore it, or submit the spec again into a new --out"
        ) from None
    problems = _manifest_problems(manifest)
    if problems:
        raise ValueError(
            f"{path} is not a sweep manifest ({problems}): restore it, or submit the spec "
            "again into a new --out"
        )
    return manifest


def _manifest_problems(m: Any) -> str:
    """What is wrong with the shape of a manifest ('' when nothing): the commands index
    into it, and a hand-edited file must fail here, naming itself, not deep inside them."""
    if not isinstance(m, dict):
        return "not a JSON object"
    if not isinstance(m.get("runs", []), list) or not isinstance(m.get("submissions", []), list):
        return "runs and submissions must be lists"
    for run in m.get("runs", []):
        if not isinstance(run, dict) or not all(k in run for k in ("run_id", "dir", "label")):
            return "a run without run_id, dir or label"
        if not isinstance(run["dir"], str) or ".." in Path(run["dir"]).parts:
            return f"run dir {run['dir']!r} leaves the sweep directory"
        if Path(run["dir"]).is_absolute():
            return f"run dir {run['dir']!r} is not relative to the sweep directory"
    for sub in m.get("submissions", []):
        if not isinstance(sub, dict) or not isinstance(sub.get("jobs", {}), dict):
            return "a submission without a jobs table"
    return ""


def _new_manifest() -> dict[str, Any]:
    return {"version": 1, "created": _now(), "submitit_folder": SUBMITIT_DIR, "submissions": []}


def _update_manifest_spec(manifest: dict, spec: SweepSpec, runs: list[PlannedRun], out: Path):
    manifest.update(
        name=spec.name,
        spec_hash=spec.spec_hash,
        spec_path=str(Path(spec.source).resolve()) if spec.source != "<spec>" else None,
        spec=spec.data,
        spec_text=_spec_text(spec),
        budget=spec.budget,
        varied=spec.varied,
        by=spec.group_by,
        runs=[
            {
                "run_id": r.run_id,
                "label": r.config.display_name,
                "seed": r.config.seed,
                "dir": str(run_dir_for(Path("."), r.config)),
                "varied": r.varied,
                "config": r.config.to_dict(),
            }
            for r in runs
        ],
        updated=_now(),
    )


def _spec_text(spec: SweepSpec) -> str | None:
    try:
        return Path(spec.source).read_text()
    except OSError:
        return None


def _write_manifest(out: Path, manifest: dict[str, Any]) -> None:
    manifest["updated"] = _now()
    write_json_atomic(out / MANIFEST, manifest)


def _latest_jobs(manifest: dict[str, Any]) -> dict[str, tuple[str, dict[str, Any]]]:
    """run id -> (job id, submission) of the last submission that included the run."""
    latest: dict[str, tuple[str, dict[str, Any]]] = {}
    for sub in manifest.get("submissions", []):
        for run_id, job_id in sub.get("jobs", {}).items():
            latest[run_id] = (job_id, sub)
    return latest


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")
