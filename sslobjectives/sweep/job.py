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

import json
import os
import socket
import time
import zlib
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import submitit

ATTEMPTS_FILE = "attempts.jsonl"
LOCK_FILE = ".running.lock"


class RunAlreadyRunning(RuntimeError):
    """Another process holds the run directory's lock."""


class SweepRun(submitit.helpers.Checkpointable):
    """Train one run of a sweep: ``SweepRun(threads)(config_dict, run_dir)``.

    Args:
        threads: torch threads per process (the job's ``cpus_per_task``), so that runs
            sharing a node do not oversubscribe it. None leaves torch's default.
    """

    def __init__(self, threads: int | None = None):
        self.threads = threads

    def __call__(self, config: dict[str, Any], run_dir: str) -> dict[str, Any]:
        import torch

        from sslobjectives.train import RunConfig, train
        from sslobjectives.train.trainer import DistEnv

        t0 = time.time()
        previous_threads = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(self.threads)
        run_dir_p = Path(run_dir)
        run_dir_p.mkdir(parents=True, exist_ok=True)
        cfg = RunConfig.from_dict(config)
        env = _job_info()
        dist_env = DistEnv()
        try:
            if env["num_tasks"] > 1:
                dist_env = _init_distributed(env, cfg.device)
            lock = _run_lock(run_dir_p) if dist_env.is_main else _nullcontext()
            with lock:
                if dist_env.is_main:
                    log_attempt(
                        run_dir_p,
                        "start",
                        job_id=env["job_id"],
                        restarts=env["restarts"],
                        host=socket.gethostname(),
                        pid=os.getpid(),
                        world_size=dist_env.world_size,
                        resume_epoch=checkpoint_epoch(run_dir_p),
                    )
                result = train(cfg, run_dir_p, resume=True, progress=False, dist_env=dist_env)
                wall = time.time() - t0
                if dist_env.is_main:
                    log_attempt(
                        run_dir_p,
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
            "runtime_s": result.get("runtime_s"),
            "wall_s": round(wall, 3),
            "rank": dist_env.rank,
            "world_size": dist_env.world_size,
        }

    def checkpoint(self, config: dict[str, Any], run_dir: str) -> Any:
        """Called by submitit on a timeout or preemption (rank 0): requeue the same call.

        The model state needs no saving here: the trainer wrote a checkpoint at the end of
        the last epoch, and the requeued attempt resumes from it.
        """
        try:
            log_attempt(
                Path(run_dir),
                "checkpoint",
                job_id=_job_info()["job_id"],
                checkpoint_epoch=checkpoint_epoch(Path(run_dir)),
            )
        except Exception:  # never let bookkeeping prevent the requeue
            pass
        return super().checkpoint(config, run_dir)


# ------------------------------------------------------------------------------ helpers


def log_attempt(run_dir: Path, event: str, **fields: Any) -> None:
    """Append one JSON line to ``attempts.jsonl`` (a single small write)."""
    record = {"event": event, "time": round(time.time(), 3), **fields}
    line = json.dumps(record, default=str) + "\n"
    fd = os.open(run_dir / ATTEMPTS_FILE, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def read_attempts(run_dir: str | Path) -> list[dict[str, Any]]:
    """The records of ``attempts.jsonl`` (a torn last line is skipped)."""
    path = Path(run_dir) / ATTEMPTS_FILE
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def checkpoint_epoch(run_dir: Path) -> int:
    """Epochs completed according to the run's checkpoint (0 without one)."""
    from sslobjectives.train.trainer import CHECKPOINT_FILE

    path = Path(run_dir) / CHECKPOINT_FILE
    if not path.exists():
        return 0
    import torch

    try:
        return int(torch.load(path, map_location="cpu", weights_only=True)["epoch"])
    except Exception:
        return -1


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


@contextmanager
def _nullcontext():
    yield


@contextmanager
def _run_lock(run_dir: Path):
    """Exclusive lock on the run directory while training (best effort where flock is not
    supported): two attempts of one run never write the same checkpoint."""
    import fcntl

    fd = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunAlreadyRunning(
                f"{run_dir} is being trained by another process (lock {LOCK_FILE} is held)"
            ) from None
        except OSError:
            pass  # filesystem without flock: go on unlocked
        yield
    finally:
        os.close(fd)


def lock_held(run_dir: str | Path) -> bool:
    """Whether some process is training in ``run_dir`` right now (this machine's view)."""
    import fcntl

    path = Path(run_dir) / LOCK_FILE
    if not path.exists():
        return False
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)
