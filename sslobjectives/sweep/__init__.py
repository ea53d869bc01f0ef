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
The names below are imported on first use (module ``__getattr__``), so that ``sslobj
--help``, which registers the sweep subcommands, does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "collect": "collection",
    "SweepRun": "job",
    "read_attempts": "job",
    "read_manifest": "manifest",
    "SqueueInfoWatcher": "slurm",
    "install_squeue_watcher": "slurm",
    "job_states": "slurm",
    "ExecutorSpec": "spec",
    "PlannedRun": "spec",
    "SpecError": "spec",
    "SweepSpec": "spec",
    "load_spec": "spec",
    "parse_spec": "spec",
    "STATES": "states",
    "RunStatus": "states",
    "format_status": "states",
    "plan": "states",
    "status": "states",
    "wait_for": "states",
    "submit": "submission",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(f"sslobjectives.sweep.{_HOMES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
