"""Where each run of a sweep stands (pending, running, requeued, done, failed ...), the
plan of a spec, and the status table."""

from __future__ import annotations

import pickle
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sslobjectives.sweep.manifest import (
    MANIFEST,
    SUBMITIT_DIR,
    _latest_jobs,
    _update_manifest_spec,
    read_manifest,
)
from sslobjectives.sweep.slurm import (
    ACTIVE_STATES,
    SlurmQueryError,
    job_states,
)
from sslobjectives.sweep.spec import SweepSpec, _show
from sslobjectives.texttable import format_text_table
from sslobjectives.train.rundir import RunDir, run_dir_for

# ------------------------------------------------------------------------------ status

#: Per-run states shown by ``sweep status``.
STATES = ("unsubmitted", "pending", "running", "requeued", "done", "failed", "unknown")
#: States in which a run is not submitted again.
IN_PROGRESS = ("pending", "running", "requeued", "unknown")


@dataclass
class RunStatus:
    """Where one run of a sweep stands."""

    run_id: str
    label: str
    seed: int
    varied: dict[str, Any]
    run_dir: Path
    state: str
    job_id: str | None = None
    attempts: int = 0
    detail: str = ""
    stderr_tail: str = ""
    runtime_s: float | None = None


def status(out: str | Path) -> list[RunStatus]:
    """Every run of the sweep in ``out`` with its state (see :data:`STATES`)."""
    out = Path(out).resolve()
    manifest = read_manifest(out)
    return _statuses(manifest, out)


def _statuses(manifest: dict[str, Any], out: Path) -> list[RunStatus]:
    latest = _latest_jobs(manifest)
    slurm_ids = [j for j, s in latest.values() if j and s.get("kind") == "slurm"]
    try:
        sched, slurm_ok = job_states(slurm_ids), True
    except SlurmQueryError:
        sched, slurm_ok = {}, False
    out_list = []
    for run in manifest.get("runs", []):
        run_dir = out / run["dir"]
        st = RunStatus(
            run_id=run["run_id"],
            label=run["label"],
            seed=run["seed"],
            varied=run.get("varied", {}),
            run_dir=run_dir,
            state="unsubmitted",
        )
        job = latest.get(st.run_id)
        _fill_state(st, job, sched, slurm_ok, out)
        out_list.append(st)
    return out_list


def _fill_state(st: RunStatus, job, sched: dict[str, str], slurm_ok: bool, out: Path) -> None:
    result = RunDir(st.run_dir).result()
    attempts = RunDir(st.run_dir).attempts()
    st.attempts = sum(a.get("event") == "start" for a in attempts)
    if result is not None and result.get("status") == "done":
        st.state = "done"
        st.runtime_s = result.get("runtime_s")
        if st.attempts > 1:
            st.detail = f"{st.attempts} attempts"
        if job:
            st.job_id = job[0]
        return
    if job is None:
        if result is not None:  # failed before this sweep recorded a job (e.g. compare)
            st.state, st.detail = "failed", str(result.get("error", "failed"))
        return
    job_id, sub = job
    st.job_id = job_id
    kind = sub.get("kind")
    if job_id is None:  # queued in a local pool that has not started it yet
        if _pid_alive(sub.get("submitter_pid"), sub.get("host")):
            st.state, st.detail = "pending", "waiting for a local slot"
        elif result is not None:
            st.state, st.detail = "failed", str(result.get("error", "failed"))
        return
    job_attempts = [a for a in attempts if str(a.get("job_id")) == str(job_id)]
    starts = sum(a.get("event") == "start" for a in job_attempts)
    signalled = any(a.get("event") == "checkpoint" for a in job_attempts)
    folder = Path(sub.get("folder") or out / SUBMITIT_DIR)
    if kind == "slurm":
        sched_state = sched.get(job_id)
    elif kind == "local":
        sched_state = _local_state(job_id, sub, folder)
    else:  # debug runs synchronously: whatever it left is final
        sched_state = None
    if sched_state in ACTIVE_STATES:
        if sched_state in ("PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED") and (
            starts or signalled
        ):
            st.state, st.detail = "requeued", f"{sched_state.lower()} after attempt {starts}"
        elif sched_state in ("RUNNING", "COMPLETING", "CONFIGURING"):
            st.state = "running"
            if starts > 1:
                st.detail = f"attempt {starts} (requeued)"
        else:
            st.state = "pending"
            st.detail = "" if sched_state == "PENDING" else sched_state.lower()
        return
    if result is not None:  # the trainer recorded a failure (e.g. non-finite loss)
        st.state, st.detail = "failed", str(result.get("error", "failed"))
        st.stderr_tail = _stderr_tail(folder, job_id)
        return
    if kind == "local":
        outcome = _local_outcome(folder, job_id)
    else:
        outcome = _submitit_outcome(folder, job_id)
    if sched_state is None and kind == "slurm" and not slurm_ok:
        st.state, st.detail = "unknown", "SLURM could not be queried"
        return
    st.state = "failed"
    if sched_state == "COMPLETED" or (outcome and outcome[0] == "success"):
        st.detail = "job finished without writing a result"
    elif sched_state:
        st.detail = f"job {sched_state.lower()}"
    elif kind == "slurm":
        st.detail = "job no longer known to SLURM and no result"
    elif kind == "local":
        st.detail = "process ended without a result (killed?)"
    else:
        st.detail = sub.get("errors", {}).get(st.run_id, "no result")
    if outcome and outcome[0] == "error":
        last = [ln for ln in str(outcome[1]).strip().splitlines() if ln.strip()]
        if last:
            st.detail += f": {last[-1].strip()}"
    st.stderr_tail = _stderr_tail(folder, job_id)


def _local_state(job_id: str, sub: dict[str, Any], folder: Path) -> str | None:
    """A local job's state from the pool's ``state.json`` (only on the submitting host): an
    active state counts only while the pool process lives (a killed pool runs nothing)."""
    from sslobjectives.sweep.pool import ACTIVE, read_state

    if sub.get("host") != socket.gethostname():
        return "UNKNOWN_HOST"
    state = read_state(folder, job_id)
    if state is None:
        return None
    if state.get("state") in ACTIVE:
        alive = _pid_alive(state.get("pool_pid"), state.get("host"))
        return state["state"] if alive else None
    return state.get("state")


def _local_outcome(folder: Path, job_id: str) -> tuple[str, Any] | None:
    """``("error", reason)`` of a local job that ended without a result."""
    from sslobjectives.sweep.pool import read_state

    state = read_state(folder, job_id) or {}
    return ("error", state["error"]) if state.get("error") else None


def _pid_alive(pid: int | None, host: str | None) -> bool:
    if pid is None or host != socket.gethostname():
        return False
    try:
        stat = Path(f"/proc/{int(pid)}/stat").read_text()
    except (ValueError, OSError):
        return False
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def _job_paths(folder: Path, job_id: str):
    from submitit.core.utils import JobPaths

    return JobPaths(folder / "%j", job_id=job_id, task_id=0)


def _submitit_outcome(folder: Path, job_id: str) -> tuple[str, Any] | None:
    """``("success", value)`` / ``("error", traceback)`` from submitit's result pickle."""
    path = _job_paths(folder, job_id).result_pickle
    if not path.exists():
        return None
    try:
        with open(path, "rb") as fh:
            return pickle.load(fh)
    except Exception:  # a torn or foreign pickle says nothing reliable
        return None


def _stderr_tail(folder: Path, job_id: str, lines: int = 12) -> str:
    path = _job_paths(folder, job_id).stderr
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip().splitlines()[-lines:])


Log = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


def wait_for(
    out: str | Path,
    *,
    timeout_s: float | None = None,
    poll_s: float = 5.0,
    log: Log = _quiet,
) -> list[RunStatus]:
    """Poll :func:`status` until no run is pending, running or requeued."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    last = None
    while True:
        states = status(out)
        counts = _count(s.state for s in states)
        if counts != last:
            log(counts)
            last = counts
        if not any(s.state in IN_PROGRESS for s in states):
            return states
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"sweep {out} still in progress after {timeout_s:.0f} s: {counts}")
        time.sleep(poll_s)


# ------------------------------------------------------------------------------ plan


def plan(spec: SweepSpec, out: str | Path | None = None) -> list[RunStatus]:
    """The runs the spec expands to, with their state in ``out`` (if it holds the sweep)."""
    out = Path(out or spec.default_out()).resolve()
    runs = spec.expand()
    known: dict[str, RunStatus] = {}
    if (out / MANIFEST).exists():
        manifest = read_manifest(out)
        _update_manifest_spec(manifest, spec, runs, out)  # in memory only
        known = {s.run_id: s for s in _statuses(manifest, out)}
    out_list = []
    for r in runs:
        if r.run_id in known:
            out_list.append(known[r.run_id])
            continue
        run_dir = run_dir_for(out, r.config)
        result = RunDir(run_dir).result()
        state = "done" if result and result.get("status") == "done" else "unsubmitted"
        out_list.append(
            RunStatus(r.run_id, r.config.display_name, r.config.seed, r.varied, run_dir, state)
        )
    return out_list


# ------------------------------------------------------------------------------ formatting


def format_status(states: list[RunStatus], varied: list[str], tails: bool = True) -> str:
    """A text table of run states; failed runs are followed by the tail of their stderr."""
    varied = [k for k in varied if k != "label"]  # the label has its own column
    header = ["state", "label", "seed", *varied, "job", "attempts", "detail"]
    rows = []
    for s in states:
        rows.append(
            [
                s.state,
                s.label,
                str(s.seed),
                *(_show(s.varied.get(k)) for k in varied),
                s.job_id or "-",
                str(s.attempts),
                s.detail,
            ]
        )
    lines = [format_text_table(header, rows)]
    lines.append(_count(s.state for s in states))
    if tails:
        for s in states:
            if s.state == "failed" and s.stderr_tail:
                lines.append(f"\n--- {s.label} s{s.seed} (job {s.job_id}): tail of stderr")
                lines.append(s.stderr_tail)
    return "\n".join(lines)


def _count(states) -> str:
    counts: dict[str, int] = {}
    for s in states:
        counts[s] = counts.get(s, 0) + 1
    return ", ".join(f"{counts[k]} {k}" for k in STATES if k in counts)


def _varied_text(run: dict[str, Any]) -> str:
    return ", ".join(f"{k}={_show(v)}" for k, v in run.get("varied", {}).items()) or "-"
