"""Training: the run config, the run folder and the resumable trainer.

The trainer (and torch with it) is imported on first use, so that readers of run folders
(reports, sweep status) can import :mod:`sslobjectives.train.rundir` without it.
"""

from __future__ import annotations

import importlib
from typing import Any

from sslobjectives.train.config import RunConfig
from sslobjectives.train.rundir import RunDir, read_result

_TRAINER_NAMES = ("DistEnv", "Trainer", "train")

__all__ = ["DistEnv", "RunConfig", "RunDir", "Trainer", "read_result", "train"]


def __getattr__(name: str) -> Any:
    if name in _TRAINER_NAMES:
        return getattr(importlib.import_module("sslobjectives.train.trainer"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
