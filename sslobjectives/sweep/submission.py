"""Submitting the runs of a sweep that are neither done nor in progress: SLURM array jobs,
a local process pool or in-process debug."""

from __future__ import annotations

import dataclasses
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sslobjectives.sweep.job import SweepRun
from sslobjectives.sweep.manifest import (
    MANIFEST,
    SUBMITIT_DIR,
    _new_manifest,
    _now,
    _update_manifest_spec,
    _write_manifest,
    read_manifest,
)
from sslobjectives.sweep.slurm import (
    install_squeue_watcher,
)
from sslobjectives.sweep.spec import ExecutorSpec, PlannedRun, SpecError, SweepSpec
from sslobjectives.sweep.states import IN_PROGRESS, Log, _count, _quiet, _statuses, wait_for
from sslobjectives.train.rundir import FileLock, RunDir, run_dir_for

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
    on_event: Callable[[str, PlannedRun, dict[str, Any]], None] | None = None,
    reuse_stale: bool = False,
) -> SubmitReport:
    """Submit the runs of ``spec`` that are neither done nor in progress.

    ``slurm``: one array job (``map_array``, at most ``array_parallelism`` at once); returns
    at once unless ``wait``. ``local``: the project's own pool of ``array_parallelism``
    worker processes (:mod:`sslobjectives.sweep.pool`), returns when all ended. ``debug``: in
    this process, one after the other; a failed run is recorded and the next one goes on.

    The folder is locked while this works on it (:class:`FolderLock`); partial files left by
    dead processes (``.*.tmp-<pid>``) are removed first. ``on_event(kind, run, info)`` sees
    the local pool's ``start``, ``epoch``, ``requeue`` and ``end`` events (progress bars).

    A run folder holding a file that is not the run's is an error before anything is
    submitted; a finished run of other code is submitted again unless ``reuse_stale``.
    """
    kind = executor or spec.executor.kind
    problems = spec.executor.problems_for(kind)
    if problems:
        raise SpecError(spec.source, problems)
    out = Path(out or spec.default_out()).resolve()
    out.mkdir(parents=True, exist_ok=True)
    with FolderLock(out):
        removed = clean_partial_files(out)
        if removed:
            log(f"removed {removed} partial file(s) left by interrupted processes")
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
        problems = [s.problem for s in states.values() if s.problem]
        if problems:  # known before any run starts: refuse, naming the files
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise ValueError(problems[0] + more)
        todo: list[PlannedRun] = []
        for r in runs:
            st = states[r.run_id]
            if st.state == "done" and st.stale and not reuse_stale:
                log(
                    f"rerunning {r.config.display_name} s{r.config.seed}: its result is stale "
                    f"({st.stale}); --reuse-stale keeps it"
                )
                todo.append(r)
                continue
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
        if kind == "local":
            _submit_local(spec.executor, todo, out, manifest, sub, report, log, on_event)
        else:
            submitter = {"slurm": _submit_slurm, "debug": _submit_debug}
            try:
                submitter[kind](spec.executor, todo, out, manifest, sub, report, log)
            finally:
                _remove_stray_folder(out)
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
    jobs = executor.map_array(
        SweepRun(threads=ex_spec.cpus_per_task, log=ex_spec.log), configs, dirs
    )
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


def _submit_local(ex_spec: ExecutorSpec, runs, out, manifest, sub, report, log, on_event=None):
    """The lean local pool (:mod:`sslobjectives.sweep.pool`): ``array_parallelism`` workers,
    ``timeout_min`` per attempt, requeued at most ``max_num_timeout`` times."""
    from sslobjectives.sweep.pool import LocalPool, PoolJob

    configs, dirs = _calls(runs, out)
    folder = out / SUBMITIT_DIR
    by_id = {}
    jobs = []
    for i, (r, config, run_dir) in enumerate(zip(runs, configs, dirs, strict=True)):
        # unique per submission: attempts.jsonl tells the attempts of one job from the next
        job_id = f"{os.getpid()}-{len(manifest['submissions'])}_{i}"
        job = PoolJob(job_id, config, run_dir, name=_run_name(r))
        by_id[job.job_id] = r
        jobs.append(job)
        sub["jobs"][r.run_id] = job.job_id
        report.jobs[r.run_id] = job.job_id
        report.submitted.append(r.run_id)
    sub["submitter_pid"] = os.getpid()
    workers = min(ex_spec.array_parallelism, len(runs))
    _write_manifest(out, manifest)
    log(f"running {len(runs)} runs locally, {workers} at a time; logs: {folder}")
    done = 0

    def event(kind: str, job, info: dict[str, Any]) -> None:
        nonlocal done
        r = by_id[job.job_id]
        if kind == "start" and info.get("resume_epoch"):
            log(f"resuming {job.name} from epoch {info['resume_epoch']} of {r.config.epochs}")
        elif kind == "requeue":
            log(
                f"requeued {job.name} ({info['reason']}; timeout {job.timeouts} of at most "
                f"{ex_spec.max_num_timeout})"
            )
        elif kind == "end":
            done += 1
            msg = _finished_message(r, out, info.get("error") or job.error)
            if msg.startswith("FAILED"):
                report.errors[r.run_id] = msg
            log(f"[{done}/{len(runs)}] {msg}")
        if on_event is not None:
            on_event(kind, r, info)

    pool = LocalPool(
        folder,
        workers=workers,
        threads=ex_spec.cpus_per_task,
        timeout_s=60 * float(ex_spec.timeout_min),
        signal_delay_s=30 if ex_spec.signal_delay_s is None else ex_spec.signal_delay_s,
        max_num_timeout=ex_spec.max_num_timeout,
        on_event=event,
        log=ex_spec.log,
    )
    pool.run(jobs)


def _run_name(r: PlannedRun) -> str:
    return f"{r.config.display_name} s{r.config.seed}"


def _finished_message(
    r: PlannedRun, out: Path, reason: str | None = None, job_id: str | None = None
) -> str:
    name = f"{_run_name(r)} ({r.describe()})"
    run = RunDir.for_config(out, r.config)
    result = run.result(expect=r.config)
    if result and result.get("status") == "done":
        return f"done {name} in {result.get('runtime_s', 0):.1f} s"
    # the reason from the JSON the job wrote, never from submitit's result pickle
    errors = [a for a in run.attempts() if a.get("event") == "error"]
    if job_id is not None:
        errors = [a for a in errors if str(a.get("job_id")) == str(job_id)] or errors
    reason = reason or (result.get("error") if result else None)
    reason = reason or (errors[-1].get("error") if errors else None) or "no result"
    reason = str(reason).strip().splitlines()[0] if str(reason).strip() else "no result"
    return f"FAILED {name}: {reason}"


def _submit_debug(ex_spec: ExecutorSpec, runs, out, manifest, sub, report, log) -> None:
    from submitit import DebugExecutor

    executor = DebugExecutor(folder=out / SUBMITIT_DIR / "%j")
    fn = SweepRun(threads=ex_spec.cpus_per_task, log=ex_spec.log)
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
        except Exception as err:  # noqa: BLE001 - the run's failure, recorded; the next runs go on
            text = str(err).strip().splitlines()
            reason = f"{type(err).__name__}: {text[0]}" if text else type(err).__name__
            sub.setdefault("errors", {})[r.run_id] = reason
            _write_manifest(out, manifest)
        msg = _finished_message(r, out)
        if msg.startswith("FAILED"):
            report.errors[r.run_id] = msg
        log(f"[{i}/{len(runs)}] {msg}")


def _remove_stray_folder(out: Path) -> None:
    """submitit makes the folder pattern ``submitit/%j`` itself, unexpanded and empty:
    remove it, so that a sweep folder holds only job folders."""
    stray = out / SUBMITIT_DIR / "%j"
    try:
        stray.rmdir()  # only when empty
    except OSError:
        pass


class FolderBusy(RuntimeError):
    """Another process works on a compare or sweep folder."""


LOCK_NAME = ".submit.lock"


class FolderLock(FileLock):
    """One process at a time works on a compare or sweep folder (``flock`` on
    ``<out>/.submit.lock``, which holds the holder's pid and host).

    The kernel drops a ``flock`` when its holder dies, however it dies, so the lock of a dead
    process is taken over as it is: the pid in the file only names the holder in the error.
    Re-entrant within a process (``compare`` holds it around ``submit``, which takes it too).
    """

    _held: dict[Path, int] = {}  # noqa: RUF012  (the process's own holds, by lock path)

    def __init__(self, out: str | Path):
        self.out = Path(out).resolve()
        super().__init__(self.out / LOCK_NAME, "", FolderBusy)

    def __enter__(self) -> FolderLock:
        if FolderLock._held.get(self.path):
            FolderLock._held[self.path] += 1
            self.nested = True
            return self
        self.nested = False
        try:
            super().__enter__()
        except FolderBusy:
            holder = (self.path.read_text(errors="replace").strip() or "?").split()[0]
            raise FolderBusy(
                f"another sslobj process (pid {holder}) is working on {self.out}; wait for it "
                "to end (or stop it), then run the command again"
            ) from None
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
        FolderLock._held[self.path] = 1
        return self

    def __exit__(self, *exc: Any) -> None:
        FolderLock._held[self.path] -= 1
        if not self.nested:
            del FolderLock._held[self.path]
            super().__exit__(*exc)


def clean_partial_files(out: str | Path) -> int:
    """Remove the temporary files (``.<name>.tmp-<pid>``) of atomic writes whose process is
    gone; returns how many. Call it holding the folder's lock."""
    removed = 0
    for path in Path(out).rglob(".*.tmp-*"):
        pid = path.name.rsplit(".tmp-", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and not _pid_running(int(pid)):
            try:
                path.unlink()
                removed += 1
            except OSError:
                pass
    return removed


def _pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
