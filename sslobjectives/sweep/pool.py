"""The local executor: a lean pool of worker processes on this machine.

submitit's ``LocalExecutor`` starts two interpreters per run (a controller and the task, each
importing what it needs), exchanges pickles, and stops requeueing after 6 attempts whatever
``max_num_timeout`` says, so under load a run could end an epoch short and be marked failed.
Here ``workers`` processes are started once (``spawn``: no inherited torch thread state) and
train one run after another; this process keeps each attempt's time limit:

* at ``timeout_s - signal_delay_s`` after an attempt started, the worker gets ``SIGUSR2``; it
  finishes the epoch in progress, whose checkpoint the trainer writes, and stops there;
* the run is requeued (an ``attempts.jsonl`` "checkpoint" record, then a new attempt that
  resumes from the checkpoint) at most ``max_num_timeout`` times, exactly as SLURM's requeue;
* an attempt still running at ``timeout_s`` is killed (its last checkpoint survives) and
  counts as a timeout as well.

Workers die with this process (``PR_SET_PDEATHSIG`` where Linux offers it, and a watchdog that
polls the parent's pid everywhere), so a ``kill -9`` of the submitter leaves no run training.

Each job has a folder ``<folder>/<job_id>/`` (the layout submitit uses): ``state.json``
(JSON, replaced atomically by the pool; ``sslobj sweep status`` reads it) and the job's
``<job_id>_0_log.out`` / ``<job_id>_0_log.err``.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import wait as wait_ready
from pathlib import Path
from typing import Any

from sslobjectives.train.rundir import RunDir, read_json, write_json_atomic

STATE_FILE = "state.json"
#: Job states written to ``state.json`` (those of SLURM where one fits).
ACTIVE = ("PENDING", "RUNNING", "REQUEUED")
FINAL = ("COMPLETED", "FAILED", "TIMEOUT", "CANCELLED")

Event = Callable[[str, "PoolJob", dict[str, Any]], None]


def job_folder(folder: str | Path, job_id: str) -> Path:
    return Path(folder) / str(job_id)


def log_paths(folder: str | Path, job_id: str) -> tuple[Path, Path]:
    """``(stdout, stderr)`` of a job (task 0), named as submitit names them."""
    d = job_folder(folder, job_id)
    return d / f"{job_id}_0_log.out", d / f"{job_id}_0_log.err"


def read_state(folder: str | Path, job_id: str) -> dict[str, Any] | None:
    """A job's ``state.json`` (None when absent or unreadable)."""
    return read_json(job_folder(folder, job_id) / STATE_FILE)


@dataclass
class PoolJob:
    """One run handed to the pool, and where it stands."""

    job_id: str
    config: dict[str, Any]
    run_dir: str
    name: str = ""
    state: str = "PENDING"
    attempts: int = 0
    timeouts: int = 0
    error: str | None = None
    resume_epoch: int = 0
    worker: _Worker | None = field(default=None, repr=False)
    started: float | None = None  # monotonic start of the current attempt
    signalled: bool = False


@dataclass
class _Worker:
    process: Any
    conn: Any
    job: PoolJob | None = None


class LocalPool:
    """Run jobs on ``workers`` processes with ``threads`` torch threads each.

    Args:
        folder: where each job gets its folder (state and logs).
        timeout_s: time limit of one attempt (from the attempt's start in its worker).
        signal_delay_s: ``SIGUSR2`` this long before the limit (stop after the epoch).
        max_num_timeout: requeues after a timeout before the run is given up (TIMEOUT).
        on_event: called with ``(kind, job, info)`` for ``start`` (``resume_epoch``),
            ``epoch`` (``epoch``, ``loss``, ``knn``), ``requeue`` (``reason``) and ``end``
            (``status``, ``error``).
        log: live-metrics backends every run logs to in its run folder (opened and closed
            by the worker around each attempt, :func:`~sslobjectives.sweep.job.run_attempt`).
    """

    def __init__(
        self,
        folder: str | Path,
        *,
        workers: int,
        threads: int | None = 1,
        timeout_s: float = 3600.0,
        signal_delay_s: float = 30.0,
        max_num_timeout: int = 3,
        on_event: Event | None = None,
        poll_s: float = 0.2,
        log: tuple[str, ...] = (),
    ):
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        if max_num_timeout < 0:
            raise ValueError(f"max_num_timeout must be >= 0, got {max_num_timeout}")
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        self.folder = Path(folder)
        self.n_workers = workers
        self.threads = threads
        self.timeout_s = float(timeout_s)
        self.signal_at_s = max(0.0, float(timeout_s) - float(signal_delay_s))
        self.max_num_timeout = max_num_timeout
        self.on_event = on_event or (lambda *_: None)
        self.poll_s = poll_s
        self.log = tuple(log)
        self.host = socket.gethostname()
        self.workers: list[_Worker] = []

    # ---------------------------------------------------------------- bookkeeping

    def write_state(self, job: PoolJob) -> None:
        d = job_folder(self.folder, job.job_id)
        d.mkdir(parents=True, exist_ok=True)
        write_json_atomic(
            d / STATE_FILE,
            {
                "job_id": job.job_id,
                "state": job.state,
                "run_dir": job.run_dir,
                "pool_pid": os.getpid(),
                "host": self.host,
                "worker_pid": job.worker.process.pid if job.worker else None,
                "attempts": job.attempts,
                "timeouts": job.timeouts,
                "max_num_timeout": self.max_num_timeout,
                "error": job.error,
                "time": round(time.time(), 3),
            },
        )

    def _job_log(self, job: PoolJob, line: str) -> None:
        """A line in the job's stderr log, written by the pool (e.g. a kill at the limit)."""
        _, err = log_paths(self.folder, job.job_id)
        err.parent.mkdir(parents=True, exist_ok=True)
        with open(err, "a") as fh:
            fh.write(f"[pool {time.strftime('%H:%M:%S')}] {line}\n")

    # ---------------------------------------------------------------- workers

    def _start_worker(self) -> _Worker:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        parent_conn, child_conn = ctx.Pipe()
        proc = ctx.Process(
            target=_worker_main,
            args=(child_conn, os.getpid(), self.threads, self.log),
            name="sslobj-pool-worker",
            daemon=True,
        )
        # Started with SIGINT ignored (kept across exec): a Ctrl-C during its start-up would
        # otherwise print the child's traceback. The pool alone decides what Ctrl-C does.
        in_main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if in_main else None
        try:
            proc.start()
        finally:
            if in_main:
                signal.signal(signal.SIGINT, previous)
        child_conn.close()
        worker = _Worker(proc, parent_conn)
        self.workers.append(worker)
        return worker

    def _stop_workers(self, grace_s: float = 5.0, asked: bool = False) -> None:
        """Stop every worker: after ``grace_s`` of their own exit when ``asked`` to (sent
        None), else at once (SIGTERM), then SIGKILL what is left."""
        deadline = time.monotonic() + grace_s
        for w in self.workers:
            if asked:
                w.process.join(max(0.0, deadline - time.monotonic()))
            if w.process.is_alive():
                w.process.terminate()
        deadline = time.monotonic() + grace_s
        for w in self.workers:
            w.process.join(max(0.0, deadline - time.monotonic()))
            if w.process.is_alive():
                w.process.kill()
                w.process.join(1.0)
            w.conn.close()
        self.workers = []

    def _assign(self, worker: _Worker, job: PoolJob) -> None:
        job.worker, job.started, job.signalled = worker, None, False
        job.attempts += 1
        job.state = "RUNNING"
        worker.job = job
        out, err = log_paths(self.folder, job.job_id)
        out.parent.mkdir(parents=True, exist_ok=True)
        worker.conn.send((job.job_id, job.config, job.run_dir, str(out), str(err), job.timeouts))
        self.write_state(job)

    # ---------------------------------------------------------------- the loop

    def run(self, jobs: list[PoolJob]) -> list[PoolJob]:
        """Run every job to an end (COMPLETED, FAILED or TIMEOUT); returns them.

        On an exception here (Ctrl-C included) the workers are stopped, the jobs still
        pending or running are marked CANCELLED, and the exception propagates.
        """
        pending = list(jobs)
        for job in pending:
            self.write_state(job)
        try:
            while pending or any(w.job for w in self.workers):
                self._fill(pending)
                self._poll(pending)
                self._enforce_limits(pending)
        except BaseException:
            for job in jobs:
                if job.state in ACTIVE:
                    job.state, job.error = "CANCELLED", "interrupted"
                    self.write_state(job)  # naming the worker, which is stopped next
                    job.worker = None
            self._stop_workers(grace_s=2.0)
            raise
        for w in self.workers:
            try:
                w.conn.send(None)
            except OSError:
                pass
        self._stop_workers(asked=True)
        return jobs

    def _fill(self, pending: list[PoolJob]) -> None:
        idle = [w for w in self.workers if w.job is None]
        while len(pending) > len(idle) and len(self.workers) < self.n_workers:
            idle.append(self._start_worker())
        for w in idle:
            if not pending:
                break
            self._assign(w, pending.pop(0))

    def _poll(self, pending: list[PoolJob]) -> None:
        busy = [w for w in self.workers if w.job is not None]
        if not busy:
            return
        handles = [w.conn for w in busy] + [w.process.sentinel for w in busy]
        ready = wait_ready(handles, timeout=self.poll_s)
        for w in busy:
            if w.conn in ready:
                try:
                    while w.conn.poll():
                        self._message(w, w.conn.recv(), pending)
                        if w.job is None:
                            break
                except (EOFError, OSError):
                    pass
            if w.job is not None and not w.process.is_alive():
                self._worker_died(w)

    def _message(self, w: _Worker, msg: tuple, pending: list[PoolJob]) -> None:
        kind, job_id, info = msg
        job = w.job
        if job is None or job.job_id != job_id:
            return
        if kind == "start":
            job.started = time.monotonic()
            job.resume_epoch = int(info.get("resume_epoch", 0))
            self.on_event("start", job, info)
        elif kind == "epoch":
            self.on_event("epoch", job, info)
        elif kind == "timeout":
            w.job = None
            self._timed_out(job, pending, "stopped after the epoch at the time limit's signal")
        elif kind == "end":
            w.job = None
            job.worker = None
            job.error = info.get("error")
            job.state = "COMPLETED" if info.get("status") == "done" else "FAILED"
            self.write_state(job)
            self.on_event("end", job, info)

    def _timed_out(self, job: PoolJob, pending: list[PoolJob], reason: str) -> None:
        job.worker = None
        job.timeouts += 1
        if job.timeouts > self.max_num_timeout:
            job.state = "TIMEOUT"
            job.error = (
                f"timed out {job.timeouts} times (max_num_timeout = {self.max_num_timeout}); "
                "raise timeout_min or max_num_timeout"
            )
            self.write_state(job)
            self.on_event("end", job, {"status": "failed", "error": job.error})
            return
        job.state = "REQUEUED"
        self.write_state(job)
        self.on_event("requeue", job, {"reason": reason})
        pending.insert(0, job)  # it resumes before runs that have not started

    def _worker_died(self, w: _Worker) -> None:
        job = w.job
        code = w.process.exitcode
        self.workers.remove(w)
        w.conn.close()
        w.job = None
        if job is None:
            return
        job.worker = None
        job.state, job.error = "FAILED", f"worker process died (exit code {code})"
        self._job_log(job, job.error)
        self.write_state(job)
        self.on_event("end", job, {"status": "failed", "error": job.error})

    def _enforce_limits(self, pending: list[PoolJob]) -> None:
        now = time.monotonic()
        for w in list(self.workers):
            job = w.job
            if job is None or job.started is None:
                continue
            elapsed = now - job.started
            if elapsed >= self.timeout_s:
                # the epoch in progress outlived the signal: kill; the last checkpoint stays
                self._job_log(job, f"killed at the time limit ({self.timeout_s:.0f} s)")
                w.process.kill()
                w.process.join(5.0)
                self.workers.remove(w)
                w.conn.close()
                w.job = None
                self._timed_out(job, pending, "killed at the time limit")
            elif elapsed >= self.signal_at_s and not job.signalled:
                job.signalled = True
                try:
                    os.kill(w.process.pid, signal.SIGUSR2)
                except ProcessLookupError:
                    pass


# ------------------------------------------------------------------------------ the worker


class _TimeLimit(BaseException):
    """Raised in a worker after the epoch during which SIGUSR2 arrived (not an Exception:
    nothing on the way may swallow it)."""


_signalled = threading.Event()


def _die_with_parent(parent_pid: int) -> None:
    """Exit when the pool process dies, even by SIGKILL: ``PR_SET_PDEATHSIG`` on Linux, and a
    watchdog thread polling the parent pid everywhere (also covers the race before prctl)."""
    try:
        import ctypes
        import ctypes.util

        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass

    def watch() -> None:
        while True:
            if os.getppid() != parent_pid:
                os._exit(1)
            time.sleep(1.0)

    if os.getppid() != parent_pid:
        os._exit(1)
    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


def _on_usr2(signum: int, frame: Any) -> None:
    _signalled.set()
    print(
        f"Caught signal SIGUSR2 on {socket.gethostname()}: time limit near; "
        "stopping after this epoch's checkpoint to be requeued",
        file=sys.stderr,
        flush=True,
    )


def _redirect(out: str, err: str) -> None:
    """Point this process's stdout and stderr (file descriptors 1 and 2) at a job's logs."""
    sys.stdout.flush()
    sys.stderr.flush()
    for path, fd in ((out, 1), (err, 2)):
        log_fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(log_fd, fd)
        os.close(log_fd)


def _worker_main(
    conn, parent_pid: int, threads: int | None, log: tuple[str, ...] = ()
) -> None:
    _die_with_parent(parent_pid)
    # Ctrl-C reaches the whole process group: the pool decides what happens to the workers
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGUSR2, _on_usr2)
    import torch

    from sslobjectives.sweep.job import run_attempt
    from sslobjectives.train import trainer  # noqa: F401  (imported once, before any run)

    if threads:
        torch.set_num_threads(threads)
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        job_id, config, run_dir, out, err, restarts = task
        _redirect(out, err)
        _signalled.clear()
        epochs = int(config.get("epochs", 0))
        files = RunDir(run_dir)
        resume_epoch = max(files.checkpoint_epoch(), 0)
        print(f"[{time.strftime('%H:%M:%S')}] job {job_id} attempt {restarts + 1}: {run_dir}")
        conn.send(("start", job_id, {"resume_epoch": resume_epoch, "pid": os.getpid()}))

        def on_epoch(record: dict[str, Any], job_id=job_id, epochs=epochs) -> None:
            info = {k: record.get(k) for k in ("epoch", "loss", "knn")}
            conn.send(("epoch", job_id, info))
            if _signalled.is_set() and record.get("epoch", 0) + 1 < epochs:
                raise _TimeLimit

        env = {
            "job_id": job_id,
            "global_rank": 0,
            "local_rank": 0,
            "num_tasks": 1,
            "num_nodes": 1,
            "cluster": "local",
            "restarts": restarts,
        }
        try:
            result = run_attempt(
                config, run_dir, threads=threads, env=env, on_epoch=on_epoch, log=log
            )
        except _TimeLimit:
            files.log_attempt(
                "checkpoint", job_id=job_id, checkpoint_epoch=files.checkpoint_epoch()
            )
            conn.send(("timeout", job_id, {"checkpoint_epoch": files.checkpoint_epoch()}))
            continue
        except Exception as exc:
            traceback.print_exc()
            sys.stderr.flush()
            text = str(exc).strip().splitlines()
            reason = f"{type(exc).__name__}: {text[-1]}" if text else type(exc).__name__
            conn.send(("end", job_id, {"status": "failed", "error": reason}))
            continue
        sys.stdout.flush()
        conn.send(("end", job_id, {"status": result["status"], "error": result.get("error")}))
