"""Tests against a real single-node SLURM cluster (``scripts/slurm-local.sh``).

Skipped only when ``sbatch`` is absent *and* ``CI`` is unset (a laptop without SLURM). Under CI
a missing or broken cluster is a failure, never a skip. The session fixture ``slurm_cluster``
brings the cluster up with ``scripts/slurm-local.sh up`` when ``sinfo`` does not show a usable
node. See docs/SLURM.md.

Jobs are real: submitit pickles the functions below with cloudpickle, sbatch runs them on the
node, and the results come back through the executor folder.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

submitit = pytest.importorskip("submitit")
from conftest import USABLE_STATES, needs_slurm  # noqa: E402
from submitit.slurm.slurm import SlurmJob  # noqa: E402

from sslobjectives.sweep.slurm import SqueueInfoWatcher, node_states  # noqa: E402

PARTITION = "debug"

pytestmark = needs_slurm


# --------------------------------------------------------------------------- helpers / fixture
# The squeue-based watcher and `node_states` (sinfo) live in sslobjectives.sweep.slurm; the
# session fixture `slurm_cluster` is in conftest.py.


def wait_done(job, timeout_s: float):
    """Poll ``job.done()`` with a deadline; on timeout cancel the job and fail with its logs."""
    deadline = time.monotonic() + timeout_s
    while not job.done():
        if time.monotonic() > deadline:
            job.cancel(check=False)
            pytest.fail(
                f"job {job.job_id} not done after {timeout_s:.0f}s\n"
                f"squeue: {_squeue(job.job_id)}\nstderr: {job.stderr()}"
            )
        time.sleep(0.5)
    return job


def _squeue(job_id: str) -> str:
    out = subprocess.run(
        ["squeue", "-h", "-r", "-t", "all", "-j", str(job_id).split("_")[0], "-o", "%i|%T|%R"],
        capture_output=True,
        text=True,
        timeout=15,
        stdin=subprocess.DEVNULL,
    )
    return out.stdout.strip()


def _executor(folder: Path, **params):
    executor = submitit.AutoExecutor(folder=folder / "%j")
    assert executor.cluster == "slurm", "AutoExecutor did not pick SLURM (is sbatch on PATH?)"
    params = {"slurm_partition": PARTITION, "timeout_min": 1, "cpus_per_task": 1, **params}
    executor.update_parameters(**params)
    return executor


# --------------------------------------------------------------------------------------- tests


def test_sinfo_shows_node(slurm_cluster):
    node = subprocess.run(["hostname", "-s"], capture_output=True, text=True).stdout.strip()
    states = node_states()
    assert node in states, f"sinfo does not list {node}: {states}"
    assert states[node] in USABLE_STATES, f"node {node} is {states[node]}"
    partitions = subprocess.run(
        ["sinfo", "-h", "-o", "%P"], capture_output=True, text=True, timeout=15
    ).stdout.split()
    assert f"{PARTITION}*" in partitions, f"default partition {PARTITION!r} missing: {partitions}"


@pytest.mark.timeout(120)
def test_submitit_submit_result(slurm_cluster, tmp_path):
    def where_and_sum(a, b):  # defined locally: cloudpickle ships it by value
        import socket

        return socket.gethostname(), os.environ.get("SLURM_JOB_PARTITION"), a + b

    job = _executor(tmp_path).submit(where_and_sum, 2, 3)
    assert job.job_id.isdigit()
    host, partition, total = wait_done(job, 90).result()
    assert total == 5
    assert partition == PARTITION
    assert host.split(".")[0] in slurm_cluster


@pytest.mark.timeout(120)
def test_submitit_map_array(slurm_cluster, tmp_path):
    def square(x):

        return x * x, os.environ["SLURM_ARRAY_TASK_ID"]

    executor = _executor(tmp_path, slurm_array_parallelism=2)
    jobs = executor.map_array(square, [1, 2, 3, 4])
    assert len(jobs) == 4
    assert len({job.job_id.split("_")[0] for job in jobs}) == 1, "expected one array job"
    results = [wait_done(job, 90).result() for job in jobs]
    assert [r[0] for r in results] == [1, 4, 9, 16]
    assert [r[1] for r in results] == ["0", "1", "2", "3"]


@pytest.mark.timeout(120)
def test_scancel_detected_through_squeue_watcher(slurm_cluster, tmp_path, monkeypatch):
    """Without accounting, only a squeue-based watcher lets submitit see a cancelled job."""
    monkeypatch.setattr(SlurmJob, "watcher", SqueueInfoWatcher(delay_s=5))

    def sleep_long():
        import time

        time.sleep(300)

    job = _executor(tmp_path, timeout_min=5).submit(sleep_long)
    deadline = time.monotonic() + 60
    while job.watcher.get_state(job.job_id, mode="force") != "RUNNING":
        assert time.monotonic() < deadline, f"job never started: {_squeue(job.job_id)}"
        time.sleep(0.5)
    job.cancel()  # runs `scancel <id>`
    deadline = time.monotonic() + 30
    while not job.done(force_check=True):
        assert time.monotonic() < deadline, f"cancel not seen: {_squeue(job.job_id)}"
        time.sleep(0.5)
    assert job.state == "CANCELLED"
    job._results_timeout_s = 1  # result() waits this long for a result file that never comes
    with pytest.raises(submitit.core.utils.UncompletedJobError):
        job.result()
