"""TensorBoard backend of the live metrics (``--log tensorboard``; extra ``[tensorboard]``).

Event files go to ``<run folder>/tensorboard/``: ``step/<name>`` per training step (x axis:
the global step), ``epoch/<name>`` per epoch (x axis: epochs completed) and ``final/<name>``
once. Watch them with ``tensorboard --logdir <out>/runs``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sslobjectives.live import RunLogger, numeric

#: the folder below the run folder that holds the event files
LOG_DIR = "tensorboard"
#: the library the backend needs, and what to do when it is missing
LIBRARY = "tensorboard"
INSTALL = (
    "--log tensorboard needs the tensorboard package: pip install 'sslobjectives[tensorboard]'"
)


class TensorBoardLogger(RunLogger):
    def __init__(self, log_dir: Path):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ImportError(INSTALL) from None
        self.log_dir = Path(log_dir)
        self.writer = SummaryWriter(log_dir=str(self.log_dir))

    def log_step(self, step: int, scalars: dict[str, float]) -> None:
        for name, value in scalars.items():
            self.writer.add_scalar(f"step/{name}", value, step)

    def log_epoch(self, epoch: int, record: dict[str, Any]) -> None:
        values = numeric(record)
        values.pop("epoch", None)  # the x axis already
        for name, value in values.items():
            self.writer.add_scalar(f"epoch/{name}", value, epoch + 1)

    def log_final(self, final: dict[str, Any]) -> None:
        for name, value in numeric(final).items():
            self.writer.add_scalar(f"final/{name}", value, 0)

    def close(self) -> None:
        self.writer.close()


def open_logger(run_dir: Path, config: dict[str, Any]) -> TensorBoardLogger:
    return TensorBoardLogger(run_dir / LOG_DIR)
