"""Live metrics: what the trainer reports while a run trains, for the tools researchers watch.

The trainer calls a :class:`RunLogger` (a no-op by default): :meth:`~RunLogger.log_step` with
every step's loss and terms (and the diagnostics on the steps that compute them),
:meth:`~RunLogger.log_epoch` with the epoch's record (k-NN, effective rank, averaged terms and
diagnostics, lr), :meth:`~RunLogger.log_final` with the end-of-run metrics, then
:meth:`~RunLogger.close`. ``result.json``'s history stays the source of truth; a backend only
mirrors it. Each backend lives in its own module and imports its library when opened, with
a one-line error naming the extra to install when it is missing.

>>> logger = open_loggers([], run_dir=".", config={})
>>> logger.log_step(0, {"loss": 1.0}); logger.close()
>>> open_loggers(["tensorbord"], run_dir=".", config={})
Traceback (most recent call last):
...
ValueError: unknown log backend 'tensorbord' (did you mean 'tensorboard'?); valid: ...
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sslobjectives.suggest import did_you_mean

#: backend name -> module (each holds ``open_logger(run_dir, config) -> RunLogger``, the
#: ``LIBRARY`` it imports and the one-line ``INSTALL`` hint when that is missing)
BACKENDS = {
    "tensorboard": "sslobjectives.live.tensorboard",
    "wandb": "sslobjectives.live.wandb",
}


class RunLogger:
    """The interface the trainer calls; this base class logs nothing."""

    def log_step(self, step: int, scalars: dict[str, float]) -> None:
        """``scalars`` of global step ``step`` (loss, terms, sampled diagnostics)."""

    def log_epoch(self, epoch: int, record: dict[str, Any]) -> None:
        """The epoch's history record (what ``result.json`` keeps), after epoch ``epoch``."""

    def log_final(self, final: dict[str, Any]) -> None:
        """The end-of-run metrics (``result.json``'s ``final``)."""

    def close(self) -> None:
        """Flush and release the backend."""


class LoggerGroup(RunLogger):
    """Several loggers called in turn."""

    def __init__(self, loggers: Sequence[RunLogger]):
        self.loggers = list(loggers)

    def log_step(self, step: int, scalars: dict[str, float]) -> None:
        for logger in self.loggers:
            logger.log_step(step, scalars)

    def log_epoch(self, epoch: int, record: dict[str, Any]) -> None:
        for logger in self.loggers:
            logger.log_epoch(epoch, record)

    def log_final(self, final: dict[str, Any]) -> None:
        for logger in self.loggers:
            logger.log_final(final)

    def close(self) -> None:
        for logger in self.loggers:
            logger.close()


def check_backends(names: Sequence[str], installed: bool = True) -> None:
    """ValueError naming the nearest backend for an unknown name and, with ``installed``, the
    extra to install for a backend whose library is missing (found without importing it), so
    that a command can refuse before any run starts."""
    for name in names:
        if name not in BACKENDS:
            raise ValueError(
                f"unknown log backend {name!r}{did_you_mean(name, BACKENDS)}; "
                f"valid: {', '.join(BACKENDS)}"
            )
        backend = importlib.import_module(BACKENDS[name])
        if installed and importlib.util.find_spec(backend.LIBRARY) is None:
            raise ValueError(backend.INSTALL)


def open_loggers(names: Sequence[str], run_dir: str | Path, config: dict[str, Any]) -> RunLogger:
    """One logger writing to every backend in ``names`` (none: the no-op logger).

    ``config`` is the run's config as a dict (shown by backends that keep one). A missing
    library is the backend's ImportError naming its extra (commands check it earlier, with
    :func:`check_backends`)."""
    check_backends(names, installed=False)
    loggers = [
        importlib.import_module(BACKENDS[name]).open_logger(Path(run_dir), config)
        for name in dict.fromkeys(names)
    ]
    return LoggerGroup(loggers) if loggers else RunLogger()


def numeric(record: dict[str, Any]) -> dict[str, float]:
    """The numeric entries of a record (nested tables and text left out), as floats.

    >>> numeric({"knn": 0.5, "epoch": 3, "note": "x", "per_factor": {"a": 1}, "ok": True})
    {'knn': 0.5, 'epoch': 3.0}
    """
    return {
        k: float(v)
        for k, v in record.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }
