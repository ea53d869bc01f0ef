"""The callable a sweep submits: one run, checkpointable, possibly multi-process.

:class:`SweepRun` is a ``submitit.helpers.Checkpointable``: on a timeout or a preemption
submitit calls :meth:`SweepRun.checkpoint`, which returns the same call (config, run dir) to
requeue, and the requeued attempt resumes from the trainer's last per-epoch checkpoint
(``train(..., resume=True)``). A run whose ``result.json`` says done returns it untouched.

With several tasks (``tasks_per_node > 1`` or ``nodes > 1``) every task calls it; it reads
its rank from ``submitit.JobEnvironment``, sets ``MASTER_ADDR``/``MASTER_PORT`` (the port
derived from the job id and the restart count) through
``submitit.helpers.TorchDistributedEnvironment``, initialises ``torch.distributed`` (gloo on
CPU, nccl on GPU) and trains with a :class:`DistEnv`. Only rank 0 writes files.

Every attempt appends lines to ``<run_dir>/attempts.jsonl`` (start, checkpoint signal, end)
so that ``sslobj sweep status`` and the tests can see requeues.
"""

from __future__ import annotations

import os
import socket
import time
import zlib
from contextlib import nullcontext
from datetime import timedelta
from pathlib import Path
from typing import Any

import submitit

from sslobjectives.train.rundir import RunAlreadyRunning, RunDir  # noqa: F401  (old home)


class SweepRun(submitit.helpers.Checkpointable):
    """Train one run of a sweep: ``SweepRun(threads, log)(config_dict, run_dir)``.

    Args:
        threads: torch threads per process (the job's ``cpus_per_task``), so that runs
            sharing a node do not oversubscribe it. None leaves torch's default.
        log: live-metrics backends (the spec's ``executor.log``) the run logs to, in its
            run folder.
    """

    def __init__(self, threads: int | None = None, log: tuple[str, ...] = ()):
        self.threads = threads
        self.log = tuple(log)

    def __call__(self, config: dict[str, Any], run_dir: str) -> dict[str, Any]:
        log = getattr(self, "log", ())  # a job pickled before the attribute existed
        return run_attempt(config, run_dir, threads=self.threads, env=_job_info(), log=log)

    def checkpoint(self, config: dict[str, Any], run_dir: str) -> Any:
        """Called by submitit on a timeout or preemption (rank 0): requeue the same call.

        The model state needs no saving here: the trainer wrote a checkpoint at the end of
        the last epoch, and the requeued attempt resumes from it.
        """
        try:
            files = RunDir(run_dir)
            files.log_attempt(
                "checkpoint",
                job_id=_job_info()["job_id"],
                checkpoint_epoch=files.checkpoint_epoch(),
            )
        except Exception:  # never let bookkeeping prevent the requeue
            pass
        return super().checkpoint(config, run_dir)


# ------------------------------------------------------------------------------ helpers


def run_attempt(
    config: dict[str, Any],
    run_dir: str | Path,
    *,
    threads: int | None,
    env: dict[str, Any],
    on_epoch: Any = None,
    log: tuple[str, ...] = (),
) -> dict[str, Any]:
    """One attempt of one run (every executor calls this): log its start and end in
    ``attempts.jsonl``, hold the run folder's lock, train with ``resume=True``.

    ``env`` is the job's identity (:func:`_job_info`: job id, restarts, task count);
    ``on_epoch`` goes to :func:`~sslobjectives.train.train`. ``log`` names live-metrics
    backends (:mod:`sslobjectives.live`): rank 0 opens them in the run folder once it holds
    the run's lock and closes them when the attempt ends, however it ends.
    """
    import torch

    from sslobjectives.live import RunLogger, open_loggers
    from sslobjectives.train import RunConfig, train
    from sslobjectives.train.trainer import DistEnv

    t0 = time.time()
    previous_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    run_dir_p = Path(run_dir)
    run_dir_p.mkdir(parents=True, exist_ok=True)
    files = RunDir(run_dir_p)
    cfg = RunConfig.from_dict(config)
    dist_env = DistEnv()
    try:
        if env["num_tasks"] > 1:
            dist_env = _init_distributed(env, cfg.device)
        lock = files.lock() if dist_env.is_main else nullcontext()
        with lock:
            if dist_env.is_main:
                files.log_attempt(
                    "start",
                    job_id=env["job_id"],
                    restarts=env["restarts"],
                    host=socket.gethostname(),
                    pid=os.getpid(),
                    world_size=dist_env.world_size,
                    resume_epoch=files.checkpoint_epoch(),
                )
            logger: RunLogger | None = None
            try:
                if log and dist_env.is_main:
                    logger = open_loggers(log, run_dir_p, {**cfg.to_dict(), "run_id": cfg.run_id})
                result = train(
                    cfg, run_dir_p, resume=True, progress=False, dist_env=dist_env,
                    on_epoch=on_epoch, logger=logger,
                )
            except Exception as err:
                # the reason, as JSON next to the run: `sweep status` reads it there and
                # never unpickles submitit's result files
                if dist_env.is_main:
                    files.log_attempt("error", job_id=env["job_id"], error=_reason(err))
                    try:  # kept with the run, where status, compare and collect find it
                        files.record_failure(cfg, _reason(err))
                    except OSError:
                        pass  # the folder cannot take it: attempts.jsonl still says why
                raise
            finally:  # also when the pool stops the attempt at its time limit
                if logger is not None:
                    logger.close()
            wall = time.time() - t0
            if dist_env.is_main:
                files.log_attempt(
                    "end",
                    job_id=env["job_id"],
                    status=result["status"],
                    epochs=len(result.get("history", [])),
                    wall_s=round(wall, 3),
                )
    finally:
        if env["num_tasks"] > 1:
            _destroy_distributed()
        torch.set_num_threads(previous_threads)
    return {
        "run_id": cfg.run_id,
        "status": result["status"],
        "error": result.get("error"),
        "runtime_s": result.get("runtime_s"),
        "wall_s": round(wall, 3),
        "rank": dist_env.rank,
        "world_size": dist_env.world_size,
    }
def _reason(err: BaseException) -> str:
    """One line: the exception's type and the first line of its message."""
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


def read_attempts(run_dir: str | Path) -> list[dict[str, Any]]:
    """The records of ``attempts.jsonl`` (:meth:`RunDir.attempts`)."""
    return RunDir(run_dir).attempts()


def _job_info() -> dict[str, Any]:
    """Job id, rank, task count and restart count from submitit (one task when not in a job)."""
    try:
        env = submitit.JobEnvironment()
        info = {
            "job_id": str(env.job_id),
            "global_rank": env.global_rank,
            "local_rank": env.local_rank,
            "num_tasks": env.num_tasks,
            "num_nodes": env.num_nodes,
            "cluster": env.cluster,
        }
    except RuntimeError:  # not inside a submitit job (called directly)
        info = {
            "job_id": None,
            "global_rank": 0,
            "local_rank": 0,
            "num_tasks": 1,
            "num_nodes": 1,
            "cluster": None,
        }
    info["restarts"] = int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0)
    return info


def master_port(job_id: str, restarts: int) -> int:
    """A port in [20000, 60000) from the job id and restart count (same on every task).

    >>> master_port("123_4", 0) == master_port("123_4", 0) != master_port("123_4", 1)
    True
    """
    return 20000 + zlib.crc32(f"{job_id}:{restarts}".encode()) % 40000


def _init_distributed(env: dict[str, Any], device: str):
    import torch
    import torch.distributed as dist

    from sslobjectives.train.trainer import DistEnv

    os.environ["MASTER_PORT"] = str(master_port(env["job_id"], env["restarts"]))
    tde = submitit.helpers.TorchDistributedEnvironment()
    if env["num_nodes"] == 1:
        tde.master_addr = "127.0.0.1"  # one node: no name resolution needed
    tde.export(set_cuda_visible_devices=False, overwrite=True)
    use_cuda = device != "cpu" and torch.cuda.is_available()
    if not dist.is_initialized():
        dist.init_process_group(
            "nccl" if use_cuda else "gloo",
            init_method="env://",
            rank=tde.rank,
            world_size=tde.world_size,
            timeout=timedelta(minutes=10),
        )
    return DistEnv(rank=tde.rank, world_size=tde.world_size, local_rank=tde.local_rank)


def _destroy_distributed() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()
