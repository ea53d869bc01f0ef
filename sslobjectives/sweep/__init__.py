"""Ablation sweeps: a TOML spec expanded to runs, submitted as SLURM array jobs (through
submitit), to the local pool of worker processes (:mod:`~sslobjectives.sweep.pool`) or
in-process (debug), watched, requeued and collected.

>>> from sslobjectives.sweep import parse_spec
>>> spec = parse_spec({"sweep": {"name": "beta", "seeds": [0, 1]},
...                    "base": {"objective": "bits", "epochs": 2},
...                    "grid": {"objective_cfg": {"beta": [0.05, 0.1]}}})
>>> len(spec.expand()), spec.varied
(4, ['objective_cfg.beta'])

See :mod:`sslobjectives.sweep.spec` for the format and :mod:`sslobjectives.sweep.manager`
for the directory layout; :mod:`~sslobjectives.sweep.manifest`, :mod:`~sslobjectives.sweep.states`,
:mod:`~sslobjectives.sweep.submission`, :mod:`~sslobjectives.sweep.pool` and
:mod:`~sslobjectives.sweep.collection` hold the code.
"""

from sslobjectives.sweep.collection import collect
from sslobjectives.sweep.job import SweepRun, read_attempts
from sslobjectives.sweep.manifest import read_manifest
from sslobjectives.sweep.slurm import SqueueInfoWatcher, install_squeue_watcher, job_states
from sslobjectives.sweep.spec import (
    ExecutorSpec,
    PlannedRun,
    SpecError,
    SweepSpec,
    load_spec,
    parse_spec,
)
from sslobjectives.sweep.states import STATES, RunStatus, format_status, plan, status, wait_for
from sslobjectives.sweep.submission import submit

__all__ = [
    "STATES",
    "ExecutorSpec",
    "PlannedRun",
    "RunStatus",
    "SpecError",
    "SqueueInfoWatcher",
    "SweepRun",
    "SweepSpec",
    "collect",
    "format_status",
    "install_squeue_watcher",
    "job_states",
    "load_spec",
    "parse_spec",
    "plan",
    "read_attempts",
    "read_manifest",
    "status",
    "submit",
    "wait_for",
]
