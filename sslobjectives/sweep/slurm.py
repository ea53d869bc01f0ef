"""SLURM job states without an accounting database.

submitit reads job states with ``sacct``. On a cluster without accounting (the one-node
cluster of ``scripts/slurm-local.sh``, see docs/SLURM.md) ``sacct`` fails: every job is
``UNKNOWN`` to submitit and a cancelled job never becomes ``done()``. ``squeue -t all`` still
lists finished jobs for ``MinJobAge`` seconds, with the state names sacct uses (COMPLETED,
CANCELLED, TIMEOUT, ...). :class:`SqueueInfoWatcher` makes submitit read those, and
:func:`job_states` is the query ``sslobj sweep status`` uses (squeue first; ``sacct`` for the
jobs squeue no longer knows, on clusters that have accounting).

Commands are argument lists (no shell); job ids are checked to be SLURM ids first.
"""

from __future__ import annotations

import re
import shutil
import subprocess

from submitit.slurm.slurm import SlurmInfoWatcher, SlurmJob

#: SLURM states in which a job may still run (or run again).
ACTIVE_STATES = {
    "PENDING",
    "CONFIGURING",
    "RUNNING",
    "COMPLETING",
    "REQUEUED",
    "REQUEUE_FED",
    "REQUEUE_HOLD",
    "RESIZING",
    "SUSPENDED",
    "STOPPED",
    "SIGNALING",
    "STAGE_OUT",
    "RESV_DEL_HOLD",
    "SPECIAL_EXIT",
}
_JOB_ID = re.compile(r"^\d+(_\d+)?$")


class SqueueInfoWatcher(SlurmInfoWatcher):
    """submitit's job watcher, reading states from ``squeue`` instead of ``sacct``.

    Install it with :func:`install_squeue_watcher` (or, in a test,
    ``monkeypatch.setattr(SlurmJob, "watcher", SqueueInfoWatcher(delay_s=5))``). Then
    ``job.done()`` becomes true for a cancelled job, ``job.state`` is ``CANCELLED`` and
    ``job.result()`` raises ``UncompletedJobError`` instead of waiting forever.
    """

    def _make_command(self) -> list[str] | None:
        to_check = {x.split("_")[0] for x in self._registered - self._finished}
        to_check = {x for x in to_check if _JOB_ID.match(x)}
        if not to_check:
            return None
        ids = ",".join(sorted(to_check))
        # read_info() wants a sacct-style header line, then JobID|State|NodeList rows.
        return [
            "sh",
            "-c",
            'echo "JobID|State|NodeList"; squeue -h -r -t all -j "$1" -o "%i|%T|%N" '
            "2>/dev/null || true",
            "sh",
            ids,
        ]


def install_squeue_watcher(delay_s: int = 5) -> SqueueInfoWatcher:
    """Make every submitit ``SlurmJob`` read its state from squeue (idempotent)."""
    if not isinstance(SlurmJob.watcher, SqueueInfoWatcher):
        SlurmJob.watcher = SqueueInfoWatcher(delay_s=delay_s)
    return SlurmJob.watcher


def job_states(job_ids: list[str], timeout_s: float = 30) -> dict[str, str]:
    """``{job_id: STATE}`` for the SLURM jobs ids given (array tasks as ``123_4``).

    Jobs squeue still knows come from ``squeue -t all``; the others from ``sacct`` when
    accounting works. A job neither knows is missing from the answer. Raises
    :class:`SlurmQueryError` when squeue itself fails (then nothing is known).
    """
    ids = sorted({j for j in job_ids if _JOB_ID.match(str(j))})
    if not ids:
        return {}
    if shutil.which("squeue") is None:
        raise SlurmQueryError("squeue not found: is this a SLURM login node?")
    states: dict[str, str] = {}
    for root in sorted({j.split("_")[0] for j in ids}):  # one unknown id fails the whole list
        try:
            proc = subprocess.run(
                ["squeue", "-h", "-r", "-t", "all", "-j", root, "-o", "%i|%T"],
                capture_output=True,
                text=True,
                timeout=timeout_s,
                stdin=subprocess.DEVNULL,
            )
        except (OSError, subprocess.TimeoutExpired) as err:
            raise SlurmQueryError(f"squeue failed: {err}") from None
        if proc.returncode != 0 and "invalid job id" not in proc.stderr.lower():
            raise SlurmQueryError(f"squeue failed: {proc.stderr.strip()[-300:]}")
        states.update(_parse(proc.stdout))
    missing = [j for j in ids if j not in states]
    if missing and shutil.which("sacct") is not None:
        try:
            proc = subprocess.run(
                ["sacct", "-n", "-P", "-X", "-j", ",".join(missing), "-o", "JobID,State"],
                capture_output=True,
                text=True,
                timeout=timeout_s,
                stdin=subprocess.DEVNULL,
            )
        except (OSError, subprocess.TimeoutExpired):
            proc = None
        if proc is not None and proc.returncode == 0:  # fails without accounting
            states.update({k: v for k, v in _parse(proc.stdout).items() if k not in states})
    return {j: states[j] for j in ids if j in states}


class SlurmQueryError(RuntimeError):
    """squeue could not be run or answered with an error (the states are unknown)."""


def node_states(timeout_s: float = 15) -> dict[str, str]:
    """``{node: state}`` from ``sinfo`` (empty when SLURM does not answer)."""
    try:
        proc = subprocess.run(
            ["sinfo", "-h", "-N", "-o", "%N %T"],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired):
        return {}
    if proc.returncode != 0:
        return {}
    states = {}
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2:
            states[parts[0]] = parts[1]
    return states


def _parse(out: str) -> dict[str, str]:
    states = {}
    for line in out.splitlines():
        parts = line.strip().split("|")
        if len(parts) >= 2 and _JOB_ID.match(parts[0]):
            # sacct says "CANCELLED by 0"; keep the state word
            states[parts[0]] = parts[1].split()[0] if parts[1].strip() else "UNKNOWN"
    return states
