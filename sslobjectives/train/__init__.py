"""Training: the run config and the resumable trainer."""

from sslobjectives.train.config import RunConfig
from sslobjectives.train.trainer import DistEnv, Trainer, read_result, train

__all__ = ["DistEnv", "RunConfig", "Trainer", "read_result", "train"]
