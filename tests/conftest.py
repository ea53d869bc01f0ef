"""Shared fixtures: the local SLURM cluster the `slurm`-marked tests submit to, and the run
ids of the committed default comparison."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SLURM_LOCAL = REPO / "scripts" / "slurm-local.sh"
USABLE_STATES = {"idle", "mixed", "allocated", "completing"}

#: Mark for a test module that needs SLURM: it may skip only when sbatch is missing and CI is
#: unset; under CI a missing cluster is a failure.
needs_slurm = [
    pytest.mark.slurm,
    pytest.mark.skipif(
        shutil.which("sbatch") is None and not os.environ.get("CI"),
        reason="no SLURM here (sbatch not found) and not under CI",
    ),
]


@pytest.fixture(scope="session")
def comparison_run_ids() -> set[str]:
    """Run ids of `sslobj compare --seeds 5`'s runs: docs/compare (seeds 0-2) and
    docs/testbed-colour/seeds-3-4 (their run folders are not in git; their runs.csv are)."""
    ids: set[str] = set()
    for folder in ("compare", "testbed-colour/seeds-3-4"):
        with open(REPO / "docs" / folder / "runs.csv", newline="") as fh:
            ids |= {row["run_id"] for row in csv.DictReader(fh)}
    return ids


def _cluster_usable() -> bool:
    from sslobjectives.sweep.slurm import node_states

    return any(state in USABLE_STATES for state in node_states().values())


@pytest.fixture(scope="session")
def slurm_cluster() -> dict[str, str]:
    """A responding SLURM cluster with a usable node; starts it with slurm-local.sh if needed."""
    from sslobjectives.sweep.slurm import node_states

    if not _cluster_usable():
        if os.geteuid() != 0:
            pytest.fail(f"SLURM is not up and starting it needs root: sudo {SLURM_LOCAL} up")
        proc = subprocess.run(
            [shutil.which("bash") or "/bin/bash", str(SLURM_LOCAL), "up"],
            capture_output=True,
            text=True,
            timeout=900,  # may apt-get install slurm-wlm + munge
            stdin=subprocess.DEVNULL,
        )
        if proc.returncode != 0 or not _cluster_usable():
            pytest.fail(
                f"{SLURM_LOCAL} up failed (rc={proc.returncode}):\n"
                f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
            )
    return node_states()
