"""Plan, submit, watch and collect a sweep.

Directory layout of a sweep ``<out>/``::

    manifest.json        spec (text, data and hash), run ids, job ids of every submission
    runs/<label>-s<seed>-<run_id>/
        config.json      the resolved run config
        checkpoint.pt    per-epoch checkpoint (the trainer's)
        result.json      written once, atomically, when the run ends (done or failed)
        attempts.jsonl   one line per attempt start / checkpoint signal / end
    submitit/<job_id>/   submitit's pickles and the job's stdout/stderr logs
    runs.csv summary.csv table.txt curves.png bit_usage.png    (written by collect)

Runs are identified by :attr:`RunConfig.run_id` (a hash of the resolved config): submitting a
spec again submits only the runs that are neither done nor queued/running, so a failed or
cancelled run is redone and a finished result is never touched (the trainer returns a done
``result.json`` as it is).
"""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sslobjectives.sweep.job import SweepRun
from sslobjectives.sweep.slurm import (
    ACTIVE_STATES,
    SlurmQueryError,
    install_squeue_watcher,
    job_states,
)
from sslobjectives.sweep.spec import ExecutorSpec, PlannedRun, SpecError, SweepSpec, _show
from sslobjectives.texttable import format_text_table
from sslobjectives.train.rundir import FileLock, RunDir, run_dir_for, write_json_atomic

MANIFEST = "manifest.json"
SUBMITIT_DIR = "submitit"
#: Per-run states shown by ``sweep status``.
STATES = ("unsubmitted", "pending", "running", "requeued", "done", "failed", "unknown")
#: States in which a run is not submitted again.
IN_PROGRESS = ("pending", "running", "requeued", "unknown")

Log = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


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


# ------------------------------------------------------------------------------ manifest


def read_manifest(out: str | Path) -> dict[str, Any]:
    """The sweep's manifest; a ``FileNotFoundError`` naming the directory when absent."""
    path = Path(out) / MANIFEST
    if not path.exists():
        raise FileNotFoundError(f"{out} is not a sweep directory (no {MANIFEST})")
    return json.loads(path.read_text())


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


# ------------------------------------------------------------------------------ status


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
        sched_state = _local_state(job_id, sub, st.run_dir)
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


def _local_state(job_id: str, sub: dict[str, Any], run_dir: Path) -> str | None:
    """A local job's state from its controller process (only on the submitting host)."""
    if sub.get("host") != socket.gethostname():
        return "UNKNOWN_HOST"
    alive = _controller_alive(job_id)
    if RunDir(run_dir).lock_held():
        return "RUNNING"
    return "PENDING" if alive else None


def _pid_alive(pid: int | None, host: str | None) -> bool:
    if pid is None or host != socket.gethostname():
        return False
    try:
        stat = Path(f"/proc/{int(pid)}/stat").read_text()
    except (ValueError, OSError):
        return False
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def _controller_alive(pid_text: str) -> bool:
    try:
        pid = int(pid_text)
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (ValueError, OSError):
        return False
    state = stat.rsplit(")", 1)[-1].split()[0] if ")" in stat else "?"
    return b"submitit.local._local" in cmd and state not in ("Z", "X")


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


# ------------------------------------------------------------------------------ submit


@dataclass
class SubmitReport:
    out: Path
    kind: str
    submitted: list[str] = field(default_factory=list)  # run ids
    skipped: dict[str, str] = field(default_factory=dict)  # run id -> state
    jobs: dict[str, str] = field(default_factory=dict)  # run id -> job id
    folder: Path | None = None
    errors: dict[str, str] = field(default_factory=dict)


def submit(
    spec: SweepSpec,
    out: str | Path | None = None,
    *,
    executor: str | None = None,
    wait: bool = False,
    log: Log = _quiet,
    poll_s: float = 5.0,
) -> SubmitReport:
    """Submit the runs of ``spec`` that are neither done nor in progress.

    ``slurm``: one array job (``map_array``, at most ``array_parallelism`` at once); returns
    at once unless ``wait``. ``local``: a pool of ``array_parallelism`` submitit local jobs,
    returns when all ended. ``debug``: in this process, one after the other (an exception
    drops into pdb, as submitit's debug executor does).
    """
    kind = executor or spec.executor.kind
    problems = spec.executor.problems_for(kind)
    if problems:
        raise SpecError(spec.source, problems)
    out = Path(out or spec.default_out()).resolve()
    out.mkdir(parents=True, exist_ok=True)
    with _submit_lock(out):
        manifest = read_manifest(out) if (out / MANIFEST).exists() else _new_manifest()
        old_hash = manifest.get("spec_hash")
        if old_hash and old_hash != spec.spec_hash:
            log(
                f"note: the spec changed since the last submission ({old_hash} -> "
                f"{spec.spec_hash}); runs of the new spec are added, finished ones are kept"
            )
        runs = spec.expand()
        _update_manifest_spec(manifest, spec, runs, out)
        states = {s.run_id: s for s in _statuses(manifest, out)}
        report = SubmitReport(out=out, kind=kind, folder=out / SUBMITIT_DIR)
        todo: list[PlannedRun] = []
        for r in runs:
            st = states[r.run_id]
            if st.state in ("done", *IN_PROGRESS):
                report.skipped[r.run_id] = st.state
                continue
            if st.state == "failed":
                log(
                    f"resubmitting failed run {r.config.display_name} s{r.config.seed}: {st.detail}"
                )
            todo.append(r)
        _write_manifest(out, manifest)
        if not todo:
            counts = _count(report.skipped.values())
            log(f"nothing to submit: {counts or 'no runs'}")
            return report
        for r in todo:
            RunDir.for_config(out, r.config).write_config(r.config.to_dict())
        sub = {
            "time": _now(),
            "kind": kind,
            "host": socket.gethostname(),
            "folder": str(out / SUBMITIT_DIR),
            "executor": dataclasses.asdict(spec.executor) | {"kind": kind},
            "jobs": {},
        }
        manifest["submissions"].append(sub)
        submitter = {"slurm": _submit_slurm, "local": _submit_local, "debug": _submit_debug}
        submitter[kind](spec.executor, todo, out, manifest, sub, report, log)
    if wait and kind == "slurm":
        wait_for(out, log=log, poll_s=poll_s)
    return report


def _calls(runs: list[PlannedRun], out: Path) -> tuple[list[dict], list[str]]:
    return (
        [r.config.to_dict() for r in runs],
        [str(run_dir_for(out, r.config)) for r in runs],
    )


def _submit_slurm(ex_spec: ExecutorSpec, runs, out, manifest, sub, report, log) -> None:
    from submitit import SlurmExecutor

    install_squeue_watcher()
    executor = SlurmExecutor(
        folder=out / SUBMITIT_DIR / "%j", max_num_timeout=ex_spec.max_num_timeout
    )
    params: dict[str, Any] = {
        "job_name": manifest["name"],
        "time": int(ex_spec.timeout_min),
        "cpus_per_task": ex_spec.cpus_per_task,
        "ntasks_per_node": ex_spec.tasks_per_node,
        "nodes": ex_spec.nodes,
        "array_parallelism": ex_spec.array_parallelism,
    }
    if ex_spec.gpus_per_node:
        params["gpus_per_node"] = ex_spec.gpus_per_node
    if ex_spec.partition:
        params["partition"] = ex_spec.partition
    if ex_spec.mem_gb is not None:
        params["mem"] = executor._convert_parameters({"mem": ex_spec.mem_gb})["mem"]
    if ex_spec.signal_delay_s is not None:
        params["signal_delay_s"] = ex_spec.signal_delay_s
    params.update(ex_spec.slurm)
    executor.update_parameters(**params)
    configs, dirs = _calls(runs, out)
    jobs = executor.map_array(SweepRun(threads=ex_spec.cpus_per_task), configs, dirs)
    for r, job in zip(runs, jobs, strict=True):
        sub["jobs"][r.run_id] = job.job_id
        report.jobs[r.run_id] = job.job_id
        report.submitted.append(r.run_id)
    sub["array_job"] = jobs[0].job_id.split("_")[0] if jobs else None
    _write_manifest(out, manifest)
    log(
        f"submitted {len(jobs)} runs as SLURM array job {sub['array_job']} "
        f"(at most {ex_spec.array_parallelism} at once); logs: {out / SUBMITIT_DIR}"
    )


def _submit_local(ex_spec: ExecutorSpec, runs, out, manifest, sub, report, log) -> None:
    from submitit import LocalExecutor

    executor = LocalExecutor(
        folder=out / SUBMITIT_DIR / "%j", max_num_timeout=ex_spec.max_num_timeout
    )
    params: dict[str, Any] = {
        "timeout_min": ex_spec.timeout_min,
        "tasks_per_node": ex_spec.tasks_per_node,
        "gpus_per_node": ex_spec.gpus_per_node,
    }
    if ex_spec.signal_delay_s is not None:
        params["signal_delay_s"] = ex_spec.signal_delay_s
    executor.update_parameters(**params)
    fn = SweepRun(threads=ex_spec.cpus_per_task)
    configs, dirs = _calls(runs, out)
    log(
        f"running {len(runs)} runs locally, {ex_spec.array_parallelism} at a time; "
        f"logs: {out / SUBMITIT_DIR}"
    )
    pending = list(zip(runs, configs, dirs, strict=True))
    sub["submitter_pid"] = os.getpid()
    sub["jobs"].update({r.run_id: None for r in runs})  # queued here until a slot frees
    _write_manifest(out, manifest)
    running: list[tuple[PlannedRun, Any]] = []
    done = 0
    while pending or running:
        while pending and len(running) < ex_spec.array_parallelism:
            r, config, run_dir = pending.pop(0)
            job = executor.submit(fn, config, run_dir)
            sub["jobs"][r.run_id] = job.job_id
            report.jobs[r.run_id] = job.job_id
            report.submitted.append(r.run_id)
            _write_manifest(out, manifest)
            running.append((r, job))
        time.sleep(0.5)
        for r, job in list(running):
            if job.done():
                running.remove((r, job))
                done += 1
                msg = _finished_message(r, job, out)
                if msg.startswith("FAILED"):
                    report.errors[r.run_id] = msg
                log(f"[{done}/{len(runs)}] {msg}")


def _finished_message(r: PlannedRun, job, out: Path) -> str:
    name = f"{r.config.display_name} s{r.config.seed} ({r.describe()})"
    result = RunDir.for_config(out, r.config).result()
    if result and result.get("status") == "done":
        return f"done {name} in {result.get('runtime_s', 0):.1f} s"
    try:
        if job is not None:
            job.result()
        reason = result.get("error") if result else "no result"
    except Exception as err:  # the job's exception, re-raised by submitit
        reason = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
    return f"FAILED {name}: {reason}"


def _submit_debug(ex_spec: ExecutorSpec, runs, out, manifest, sub, report, log) -> None:
    from submitit import DebugExecutor

    executor = DebugExecutor(folder=out / SUBMITIT_DIR / "%j")
    fn = SweepRun(threads=ex_spec.cpus_per_task)
    configs, dirs = _calls(runs, out)
    log(f"running {len(runs)} runs in this process (debug executor)")
    for i, (r, config, run_dir) in enumerate(zip(runs, configs, dirs, strict=True), 1):
        job = executor.submit(fn, config, run_dir)
        sub["jobs"][r.run_id] = job.job_id
        report.jobs[r.run_id] = job.job_id
        report.submitted.append(r.run_id)
        _write_manifest(out, manifest)
        try:
            # the call itself (not job.result(), which would open pdb on an exception)
            job.submission().result()
        except Exception as err:
            sub.setdefault("errors", {})[r.run_id] = f"{type(err).__name__}: {err}"
            report.errors[r.run_id] = str(err)
            _write_manifest(out, manifest)
            log(f"[{i}/{len(runs)}] FAILED {r.config.display_name} s{r.config.seed}")
            raise
        log(f"[{i}/{len(runs)}] {_finished_message(r, None, out)}")


def _submit_lock(out: Path) -> FileLock:
    """One ``submit`` at a time per sweep directory."""
    return FileLock(out / ".submit.lock", f"another `sweep submit` is running on {out}")


# ------------------------------------------------------------------------------ wait, collect


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


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")
