"""SimDINO: continuous agreement plus coding rate [Wu et al., arXiv 2502.10385].

The continuous baseline of the BITS paper: L2-normalised student embeddings are pulled to
the teacher's, ``1/2 |s/|s| - t/|t||^2 = 1 - cos(s, t)``, over all view pairs except a view
with itself, and a coding rate is maximised. At the defaults this is SimDINO's loss as its
reference code computes it (``MCRLoss`` with its defaults ``eps = 0.5``, ``coeff = 1``,
``expa_type = 1``): the rate of the average of each global view's normalised student and
teacher embeddings, ``R(Z)`` with SimDINO's ``eps`` as our ``eps^2``, weighted by
``1/n + 1/d`` (``n`` the global batch, ``d`` the embedding dimension).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from sslobjectives import _dist, diagnostics
from sslobjectives import functional as Fn
from sslobjectives.objectives.base import LossOutput, Objective, check_config_values

#: what the coding rate is taken of
RATE_INPUTS = ("mean", "student")


@dataclass(frozen=True)
class SimDinoConfig:
    """Hyperparameters of :class:`SimDINO`.

    Attributes:
        gamma: weight of the coding rate. ``None`` (default) is SimDINO's batch- and
            dimension-dependent weight ``(d + n) / (d n) = 1/n + 1/d`` (``n`` the global batch,
            ``d`` the embedding dimension; 0.0117 at n = 128, d = 256); a number fixes it
            (the variant this project used before, ``gamma=0.01``).
        eps: ``sqrt(0.5)``, the distortion ``eps`` of :func:`~sslobjectives.functional.coding_rate`.
            SimDINO's ``--eps 0.5`` enters its rate as ``d / (n eps)``, i.e. it is our
            ``eps^2``: ``eps = sqrt(0.5)`` here is SimDINO's default.
        rate_input: ``"mean"`` (default, SimDINO's ``expa_type = 1``): the rate of
            ``(s/|s| + t/|t|) / 2`` per global view, student and (detached) teacher averaged,
            not renormalised; ``"student"`` (SimDINO's ``expa_type = 0``): the rate of the
            student's normalised global views alone.
    """

    gamma: float | None = None
    eps: float = math.sqrt(0.5)
    rate_input: str = "mean"

    def __post_init__(self) -> None:
        check_config_values(self)
        g = self.gamma
        if g is not None and (isinstance(g, bool) or not isinstance(g, (int, float)) or g < 0):
            raise ValueError(
                f"gamma must be None (SimDINO's 1/n + 1/d) or a number >= 0, got {g!r}"
            )
        Fn.check_positive(self.eps, "eps")
        if self.rate_input not in RATE_INPUTS:
            raise ValueError(
                f"rate_input must be one of {', '.join(RATE_INPUTS)}, got {self.rate_input!r}"
            )


class SimDINO(Objective):
    """Cosine agreement of normalised embeddings minus a weighted coding rate [SimDINO].

    Terms: ``align`` = mean over view pairs of ``1 - cos(s, t)``; ``rate`` = mean over the
    global views of the (unweighted) coding rate; ``loss = align - w * rate`` with ``w`` =
    ``gamma``, or ``1/n + 1/d`` when ``gamma`` is None (stat ``rate_weight``).

    Equals SimDINO's ``MCRLoss`` at its defaults plus the constant 1 (SimDINO maximises the
    cosine similarity, ``-cos``; we minimise the distance ``1 - cos``: same gradients):
    ``tests/test_objectives.py::test_simdino_equals_simdino_loss_at_its_defaults``, against a
    reference written from the paper. Deliberate differences: the constant; under
    ``torch.distributed`` the covariance is summed over processes (a 2-process run equals one
    process on the joined batch), where SimDINO's default ``reduce_cov = 0`` takes each
    process's own covariance with the global batch size in its scale; ``gamma=0.01,
    rate_input="student", eps=0.5`` is the variant this project used before
    (``test_simdino_student_rate_variant_equals_reference``).

    >>> torch.manual_seed(0) and None
    >>> obj = SimDINO()
    >>> v = torch.randn(8, 16)
    >>> round(float(obj([v, v], [v, v]).terms["align"]), 6)  # identical views agree
    0.0
    """

    name = "simdino"
    Config = SimDinoConfig
    head_kind = "embedding"

    def rate_weight(self, n: int, d: int) -> float:
        """``gamma``, or SimDINO's ``(d + n) / (d n)`` for ``n`` samples of dimension ``d``."""
        if self.config.gamma is not None:
            return float(self.config.gamma)
        return (d + n) / (d * n)

    def compute(self, student, teacher, epoch, stats) -> LossOutput:
        cfg = self.config
        align = Fn.multicrop_cosine_distance(student, teacher)
        globals_ = student[: len(teacher)]
        if cfg.rate_input == "mean":
            rates = [
                Fn.coding_rate(Fn.mean_unit_rows(s, t.detach()), cfg.eps, normalize=False)
                for s, t in zip(globals_, teacher, strict=True)
            ]
        else:
            rates = [Fn.coding_rate(s, cfg.eps) for s in globals_]
        rate = torch.stack(rates).mean().to(student[0].dtype)  # the averaged views are float32
        n = _dist.global_count(student[0].shape[0], student[0].device)
        w = self.rate_weight(n, student[0].shape[1])
        out = LossOutput(loss=align - w * rate, terms={"align": align, "rate": rate})
        if stats:
            out.stats = lambda: _stats([v.detach() for v in teacher], w)
        return out


def _stats(teacher: list[torch.Tensor], rate_weight: float) -> dict[str, torch.Tensor]:
    """Effective rank of the teacher embeddings of the joined batch (every process's rows,
    view by view), and the coding-rate weight the loss used."""
    embeddings = torch.cat([_dist.gather_rows(v) for v in teacher])
    return {
        "effective_rank": diagnostics.effective_rank(embeddings),
        "rate_weight": torch.tensor(rate_weight),
    }
