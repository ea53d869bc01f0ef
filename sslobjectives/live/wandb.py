"""Weights & Biases backend of the live metrics (``--log wandb``; extra ``[wandb]``).

One W&B run per run folder: its id is the run id, so a resumed run continues the same W&B
run. The project is ``$WANDB_PROJECT`` (default ``sslobjectives``); files go below the run
folder. ``WANDB_MODE=offline`` logs without a network (``wandb sync`` uploads later).
Per-step scalars are logged at the global step as ``step/<name>``, per-epoch ones as
``epoch/<name>`` against ``epoch`` (epochs completed), the end-of-run metrics to the summary.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sslobjectives.live import RunLogger, numeric

#: the library the backend needs, and what to do when it is missing
LIBRARY = "wandb"
INSTALL = "--log wandb needs the wandb package: pip install 'sslobjectives[wandb]'"


class WandbLogger(RunLogger):
    def __init__(self, run_dir: Path, config: dict[str, Any]):
        try:
            import wandb
        except ImportError:
            raise ImportError(INSTALL) from None
        run_id = str(config.get("run_id") or "") or None
        self.run = wandb.init(
            project=os.environ.get("WANDB_PROJECT", "sslobjectives"),
            name=Path(run_dir).name,
            id=run_id,
            resume="allow",
            dir=str(run_dir),
            config=config,
        )
        self.run.define_metric("epoch")
        self.run.define_metric("epoch/*", step_metric="epoch")

    def log_step(self, step: int, scalars: dict[str, float]) -> None:
        self.run.log({f"step/{k}": v for k, v in scalars.items()}, step=step)

    def log_epoch(self, epoch: int, record: dict[str, Any]) -> None:
        values = {f"epoch/{k}": v for k, v in numeric(record).items() if k != "epoch"}
        self.run.log({**values, "epoch": epoch + 1})

    def log_final(self, final: dict[str, Any]) -> None:
        for name, value in numeric(final).items():
            self.run.summary[f"final/{name}"] = value

    def close(self) -> None:
        self.run.finish()


def open_logger(run_dir: Path, config: dict[str, Any]) -> WandbLogger:
    return WandbLogger(run_dir, config)
