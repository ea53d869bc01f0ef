"""Shared fixtures: the local SLURM cluster the `slurm`-marked tests submit to."""

from __future__ import annotations

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
