"""Clustering objectives: the student's cluster posterior predicts a normalised teacher's.

They differ only in how the teacher posterior is normalised against collapse
(``proofs/`` derives each from the balanced-cluster constraint):

- ``dino``: centering, ``softmax((z - c)/T_t)`` with a running center [DINO, arXiv 2104.14294]
  — the Jensen (geometric-mean) approximation of inverse-prior normalisation.
- ``kl_inverse_prior``: ``q ∝ p / P`` with the batch or running cluster prior ``P``
  [Kittler, Atito, Awais, arXiv 2605.11870].
- ``sinkhorn``: the balanced assignment by Sinkhorn-Knopp, 3 iterations from ``exp(z/T)``
  [SwAV, arXiv 2006.09882; DINOv2, arXiv 2304.07193]: close to balanced, not exactly.

The loss is the mean over (student view, teacher view) pairs, a view never predicting
itself, of ``cluster_cross_entropy`` (``functional.multicrop_cross_entropy``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sslobjectives import _dist, diagnostics
from sslobjectives import functional as Fn
from sslobjectives.objectives.base import LossOutput, Objective, check_config_values
from sslobjectives.schedules import RunSchedules, TeacherTempSchedule


@dataclass(frozen=True)
class ClusterConfig:
    """Shared hyperparameters of the clustering objectives.

    Attributes:
        student_temp: 0.1, DINO's (arXiv 2104.14294, Sec. 3.1) and DINOv2's value.
        teacher_temp: 0.07, DINO's final teacher temperature for ViTs.
        warmup_teacher_temp: 0.04, DINO's starting teacher temperature.
        warmup_teacher_temp_epochs: 30, DINO's warm-up length (set it to your run's scale).
    """

    student_temp: float = 0.1
    teacher_temp: float = 0.07
    warmup_teacher_temp: float = 0.04
    warmup_teacher_temp_epochs: float = 30

    def __post_init__(self) -> None:
        check_config_values(self)
        Fn.check_positive(self.student_temp, "student_temp")
        _ = self.schedule  # constructing it validates the temperatures

    @property
    def schedule(self) -> TeacherTempSchedule:
        """The teacher-temperature warm-up of these settings (``schedules.py``)."""
        return TeacherTempSchedule.of(self)


class ClusterObjective(Objective):
    """Common body: normalise the teacher (subclass), cross-entropy over view pairs, stats."""

    head_kind = "cluster"
    #: buffers sized on the first batch (K is only known then)
    lazy_buffers: tuple[str, ...] = ()

    def __init__(self, config=None):
        super().__init__(config)
        #: the teacher-temperature schedule, built once: from the config, or the run's
        self.teacher_temp: TeacherTempSchedule = self.config.schedule

    def use_schedules(self, schedules: RunSchedules) -> None:
        """Read the teacher temperature from the run's schedules."""
        if schedules.teacher_temp is not None:
            self.teacher_temp = schedules.teacher_temp

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        for name in self.lazy_buffers:  # take the saved size before copying into it
            if prefix + name in state_dict:
                setattr(self, name, torch.empty_like(state_dict[prefix + name]))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def teacher_probs(self, teacher: torch.Tensor, temp: float) -> torch.Tensor:
        """(V_t * B, K) teacher logits -> (V_t * B, K) normalised teacher posteriors."""
        raise NotImplementedError  # pragma: no cover - abstract

    def compute(self, student, teacher, epoch, stats) -> LossOutput:
        cfg = self.config
        temp = self.teacher_temp(epoch)
        joined = torch.cat([t.detach() for t in teacher])
        q = self.teacher_probs(joined, temp)
        loss = Fn.multicrop_cross_entropy(student, list(q.chunk(len(teacher))), cfg.student_temp)
        out = LossOutput(loss=loss, terms={"cross_entropy": loss})
        if stats:
            out.stats = lambda: self.diagnostics(q.detach(), joined, temp, len(teacher))
        return out

    @staticmethod
    def diagnostics(
        q: torch.Tensor, joined: torch.Tensor, temp: float, n_teacher: int
    ) -> dict[str, torch.Tensor]:
        """Diagnostics of the joined batch (every process's rows, view by view) from the
        normalised teacher posteriors ``q`` and the teacher logits ``joined``."""
        q_all = torch.cat([_dist.gather_rows(v) for v in q.chunk(n_teacher)])
        out = diagnostics.cluster_stats(q_all)
        out.update(diagnostics.jensen_gap_summary(joined, temp))
        out["centering_kl"] = diagnostics.centering_kl(joined, temp)
        out["teacher_temp"] = torch.tensor(temp)
        return out

    # -- end-of-run evaluation ----------------------------------------------------------

    def final_codes(self, train_out, test_out, with_factors):
        """The test images' cluster assignments, scored against the latent factors."""
        return {"assign_test": test_out.argmax(dim=1)} if with_factors else {}

    def final_stats(self, test_out):
        """Entropies of the raw teacher posterior ``softmax(h / T)`` at the final teacher
        temperature, before any normalisation, and the cluster usage. At temperature 1 the
        unit-norm prototype logits (in [-1, 1]) look uniform whatever the representation, and
        after the normalisation the marginal is near-uniform by construction (exactly so for
        ``sinkhorn``): either would say nothing about collapse. Hence its own key,
        ``posterior_marginal_entropy``, distinct from the per-step ``marginal_entropy`` of the
        normalised teacher."""
        temp = self.teacher_temp(None)
        stats = diagnostics.cluster_stats(torch.softmax(test_out / temp, dim=-1))
        out: dict = {"teacher_temp": temp}
        out["posterior_marginal_entropy"] = float(stats.pop("marginal_entropy"))
        out.update({k: float(v) for k, v in stats.items()})
        out["cluster_usage"] = torch.bincount(
            test_out.argmax(dim=1), minlength=test_out.shape[1]
        ).tolist()
        return out


@dataclass(frozen=True)
class DinoConfig(ClusterConfig):
    """Config of :class:`DINO`; besides :class:`ClusterConfig`:

    Attributes:
        center_momentum: 0.9, DINO's running-center momentum (arXiv 2104.14294, Sec. 3.1).
    """

    center_momentum: float = 0.9

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.center_momentum < 1.0:
            raise ValueError(f"center_momentum must be in [0, 1), got {self.center_momentum}")


class DINO(ClusterObjective):
    """DINO: teacher centered by a running mean of its logits, then sharpened [DINO].

    The loss uses the center from *before* this batch; in training mode the center is then
    updated, ``c <- m c + (1 - m) mean(teacher logits)`` (mean over all processes).

    Equals DINO's ``DINOLoss`` (arXiv 2104.14294, Algorithm 1): loss, input gradients and
    running center, step after step (``tests/test_objectives.py::
    test_dino_equals_paper_reference``). Deliberate difference: the teacher-temperature
    warm-up is linear in the fractional ``epoch`` the caller passes and reaches
    ``teacher_temp`` at ``warmup_teacher_temp_epochs``; DINO's table steps once per epoch and
    reaches it one epoch earlier.

    >>> torch.manual_seed(0) and None
    >>> obj = DINO()
    >>> views = [torch.randn(8, 16) for _ in range(4)]
    >>> out = obj(views, views[:2], epoch=0)
    >>> sorted(out.terms), obj.center.shape
    (['cross_entropy'], torch.Size([16]))
    """

    name = "dino"
    Config = DinoConfig
    lazy_buffers = ("center",)

    def __init__(self, config: DinoConfig | None = None):
        super().__init__(config)
        self.register_buffer("center", torch.zeros(0))

    def teacher_probs(self, teacher: torch.Tensor, temp: float) -> torch.Tensor:
        if self.center.numel() != teacher.shape[1]:
            self.center = teacher.new_zeros(teacher.shape[1])
        q = Fn.center_normalize(teacher, temp, center=self.center)
        if self.training:
            self._update_center(teacher)
        return q

    @torch.no_grad()
    def _update_center(self, teacher: torch.Tensor) -> None:
        n = _dist.global_count(teacher.shape[0], teacher.device)
        batch_center = _dist.all_reduce_sum(teacher.sum(dim=0)) / n
        m = self.config.center_momentum
        self.center.mul_(m).add_(batch_center.to(self.center.dtype), alpha=1 - m)


@dataclass(frozen=True)
class InversePriorConfig(ClusterConfig):
    """Config of :class:`KLInversePrior`; besides :class:`ClusterConfig`:

    Attributes:
        prior_momentum: ``None`` (default) uses the batch prior, the estimate the clustering
            paper (arXiv 2605.11870) derives; a value in [0, 1) keeps a running prior
            ``P <- m P + (1 - m) P_batch`` and normalises by it (including this batch).
    """

    prior_momentum: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        m = self.prior_momentum
        if m is not None and not 0.0 <= m < 1.0:
            raise ValueError(f"prior_momentum must be None or in [0, 1), got {m}")


class KLInversePrior(ClusterObjective):
    """KL clustering with the teacher normalised by the inverse cluster priors [KAA].

    ``q(k|x) ∝ p(k|x) / P(k)``: a cluster the batch over-uses is weighted down, a rare one up,
    which is what keeps the clusters balanced (``proofs/balanced_teacher_lagrange.py``).

    Equals the paper's normalisation with the batch prior ``P = mean_b p`` (arXiv
    2605.11870; no upstream code): ``tests/test_objectives.py::
    test_kl_inverse_prior_batch_prior_equals_reference``. ``prior_momentum`` (a running
    prior) is ours: ``test_kl_inverse_prior_running_prior_equals_reference``.

    >>> obj = KLInversePrior.from_config(prior_momentum=0.9)
    >>> views = [torch.randn(8, 16) for _ in range(3)]
    >>> float(obj(views, views[:2]).loss) > 0
    True
    """

    name = "kl_inverse_prior"
    Config = InversePriorConfig
    lazy_buffers = ("prior",)

    def __init__(self, config: InversePriorConfig | None = None):
        super().__init__(config)
        self.register_buffer("prior", torch.zeros(0))

    def teacher_probs(self, teacher: torch.Tensor, temp: float) -> torch.Tensor:
        m = self.config.prior_momentum
        if m is None:
            return Fn.inverse_prior_normalize(teacher, temp)
        k = teacher.shape[1]
        if self.prior.numel() != k:
            self.prior = teacher.new_full((k,), 1.0 / k)
        prior = m * self.prior + (1 - m) * Fn.cluster_prior(teacher, temp)
        if self.training:
            self.prior.copy_(prior)
        return Fn.inverse_prior_normalize(teacher, temp, prior=prior)


@dataclass(frozen=True)
class SinkhornConfig(ClusterConfig):
    """Config of :class:`Sinkhorn`; besides :class:`ClusterConfig`:

    Attributes:
        n_iter: 3, the iterations of SwAV (arXiv 2006.09882) and DINOv2's teacher
            (arXiv 2304.07193). Three iterations do not balance the clusters exactly; the
            README states the measured marginal error.
        start: ``"exp"`` (default) starts from ``exp(z / T)`` as SwAV and DINOv2's
            ``sinkhorn_knopp_teacher`` do; ``"posterior"`` starts from ``softmax(z / T)``, so
            that one iteration is ``kl_inverse_prior``'s normalisation (claim 2).
    """

    n_iter: int = 3
    start: str = "exp"

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.n_iter, bool) or not isinstance(self.n_iter, int) or self.n_iter < 1:
            raise ValueError(f"n_iter must be an integer >= 1, got {self.n_iter!r}")
        if self.start not in Fn.SINKHORN_STARTS:
            raise ValueError(
                f"start must be one of {', '.join(Fn.SINKHORN_STARTS)}, got {self.start!r}"
            )


class Sinkhorn(ClusterObjective):
    """Teacher assignments balanced by Sinkhorn-Knopp over all teacher views [SwAV, DINOv2].

    At the defaults the teacher is DINOv2's ``sinkhorn_knopp_teacher`` (SwAV's Algorithm 1:
    start ``exp(z/T)``, 3 iterations) to float precision: ``tests/test_sinkhorn_fidelity.py::
    test_default_sinkhorn_equals_the_dinov2_swav_teacher`` and
    ``test_the_sinkhorn_objective_uses_the_dinov2_teacher_by_default``. Deliberate
    differences: ``start="posterior"`` (from ``softmax(z/T)``, one iteration =
    ``kl_inverse_prior``); the loss is the mean over view pairs (DINO's convention) where
    DINOv2 sums its pair terms.

    >>> obj = Sinkhorn()
    >>> views = [torch.randn(8, 16) for _ in range(2)]
    >>> float(obj(views, [v + 0.1 for v in views]).loss) > 0
    True
    """

    name = "sinkhorn"
    Config = SinkhornConfig

    def teacher_probs(self, teacher: torch.Tensor, temp: float) -> torch.Tensor:
        return Fn.sinkhorn_knopp(teacher, temp, self.config.n_iter, start=self.config.start)
