"""SimDINO: continuous agreement plus coding rate [Wu et al., arXiv 2502.10385].

The continuous baseline of the BITS paper: L2-normalised student embeddings are pulled to
the teacher's, ``1/2 |s/|s| - t/|t||^2 = 1 - cos(s, t)``, over all view pairs except a view
with itself, and the coding rate of the student's global views is maximised.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sslobjectives import _dist, diagnostics
from sslobjectives import functional as Fn
from sslobjectives.objectives.base import LossOutput, Objective, check_config_values


@dataclass(frozen=True)
class SimDinoConfig:
    """Hyperparameters of :class:`SimDINO`.

    Attributes:
        gamma: 0.01, weight of the coding rate against the alignment term. At our sizes the
            rate (up to ``r/2 log(1 + d/(r eps^2))``, ~200 nats at d = 256) is two orders of
            magnitude above the alignment (<= 2), so 0.01 puts the two on the same scale;
            SimDINO's reference configurations likewise weight the two terms unequally.
        eps: 0.5, SimDINO's coding-rate distortion (arXiv 2502.10385).
    """

    gamma: float = 0.01
    eps: float = 0.5

    def __post_init__(self) -> None:
        check_config_values(self)
        if not isinstance(self.gamma, (int, float)) or self.gamma < 0:
            raise ValueError(f"gamma must be a number >= 0, got {self.gamma!r}")
        Fn.check_positive(self.eps, "eps")


class SimDINO(Objective):
    """Cosine agreement of normalised embeddings minus ``gamma`` times the coding rate.

    >>> torch.manual_seed(0) and None
    >>> obj = SimDINO()
    >>> v = torch.randn(8, 16)
    >>> round(float(obj([v, v], [v, v]).terms["align"]), 6)  # identical views agree
    0.0
    """

    name = "simdino"
    Config = SimDinoConfig
    head_kind = "embedding"

    def compute(self, student, teacher, epoch, stats) -> LossOutput:
        cfg = self.config
        align = Fn.multicrop_cosine_distance(student, teacher)
        rate = torch.stack([Fn.coding_rate(v, cfg.eps) for v in student[: len(teacher)]]).mean()
        out = LossOutput(loss=align - cfg.gamma * rate, terms={"align": align, "rate": rate})
        if stats:
            out.stats = lambda: _stats([v.detach() for v in teacher])
        return out


def _stats(teacher: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    """Effective rank of the teacher embeddings of the joined batch (every process's rows,
    view by view)."""
    embeddings = torch.cat([_dist.gather_rows(v) for v in teacher])
    return {"effective_rank": diagnostics.effective_rank(embeddings)}
