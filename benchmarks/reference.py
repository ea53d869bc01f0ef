"""Reference implementations: the papers' formulas, written the way the original code does.

These are the baselines of the "vs reference" ratio: the code people copy today.

- A Python loop over (teacher view, student view) pairs, a view never predicting itself,
  with the per-pair loss recomputed for every pair (DINO's ``DINOLoss`` recomputes the
  student's ``log_softmax`` for every teacher view; BITS' symmetric BCE, SimDINO's cosine).
- Teacher normalisations as separate steps in probability space: DINO's centered softmax
  with the running center updated after the loss; the inverse-prior posterior
  ``q ∝ p / P``; Sinkhorn-Knopp unfused and in place on the transposed (K, B) matrix, as in
  SwAV and DINOv2.
- The coding rate as ``1/2 logdet(I_d + d/(n eps^2) ZᵀZ)`` on the d×d matrix.

Each reference takes its hyperparameters from the library objective it mirrors, and
``tests/test_benchmarks.py`` checks that it returns the library's loss and gradients — that is
what makes the comparison fair. One deliberate difference from SwAV's code: SwAV starts
Sinkhorn from ``exp(z / T)``, the library (after the clustering paper) from the posterior
``softmax(z / T)``; the reference starts from the posterior too, at the same cost.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from sslobjectives.objectives import Objective

Views = list[torch.Tensor]


def _mean_over_pairs(
    student: Views, targets: Views, pair_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    total, n_terms = 0.0, 0
    for it, t in enumerate(targets):
        for iv, s in enumerate(student):
            if iv == it:
                continue
            total = total + pair_loss(s, t)
            n_terms += 1
    return total / n_terms


class _ClusterReference:
    """DINO's loss loop: student logits divided by ``T_s`` once per view, then for every pair
    ``sum(-q * log_softmax(s))`` over clusters."""

    def __init__(self, objective: Objective, dim: int, device: torch.device):
        cfg = objective.config
        self.student_temp = cfg.student_temp
        self.teacher_temp = cfg.schedule(None)

    def teacher_probs(self, teacher_out: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, student: Views, teacher: Views) -> torch.Tensor:
        student_out = [s / self.student_temp for s in student]
        q = self.teacher_probs(torch.cat(teacher).detach())
        return _mean_over_pairs(student_out, list(q.chunk(len(teacher))), _cross_entropy)


def _cross_entropy(s: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    return torch.sum(-q * F.log_softmax(s, dim=-1), dim=-1).mean()


class DINOReference(_ClusterReference):
    """DINO: centered, sharpened teacher softmax; running center updated after the loss."""

    def __init__(self, objective: Objective, dim: int, device: torch.device):
        super().__init__(objective, dim, device)
        self.momentum = objective.config.center_momentum
        self.center = torch.zeros(1, dim, device=device)

    def teacher_probs(self, teacher_out: torch.Tensor) -> torch.Tensor:
        q = F.softmax((teacher_out - self.center) / self.teacher_temp, dim=-1)
        self.update_center(teacher_out)
        return q

    @torch.no_grad()
    def update_center(self, teacher_out: torch.Tensor) -> None:
        batch_center = torch.sum(teacher_out, dim=0, keepdim=True) / len(teacher_out)
        self.center = self.center * self.momentum + batch_center * (1 - self.momentum)


class InversePriorReference(_ClusterReference):
    """Teacher posterior divided by the batch cluster prior ``P(k) = E_x p(k|x)``."""

    def __init__(self, objective: Objective, dim: int, device: torch.device):
        if objective.config.prior_momentum is not None:
            raise ValueError("the reference implements the batch prior (prior_momentum=None)")
        super().__init__(objective, dim, device)

    def teacher_probs(self, teacher_out: torch.Tensor) -> torch.Tensor:
        p = F.softmax(teacher_out / self.teacher_temp, dim=-1)
        prior = p.mean(dim=0)
        q = p / prior
        return q / q.sum(dim=-1, keepdim=True)


@torch.no_grad()
def sinkhorn_reference(
    teacher_logits: torch.Tensor, temp: float, n_iter: int, start: str = "exp"
) -> torch.Tensor:
    """SwAV/DINOv2-style Sinkhorn-Knopp: (K, B) matrix, unfused in-place scalings, from
    ``exp(z/T)`` (or from ``softmax(z/T)`` for ``start="posterior"``)."""
    z = teacher_logits / temp
    Q = (torch.exp(z) if start == "exp" else F.softmax(z, dim=-1)).t()
    K, B = Q.shape
    Q /= torch.sum(Q)
    for _ in range(n_iter):
        Q /= torch.sum(Q, dim=1, keepdim=True)  # every cluster gets mass 1/K
        Q /= K
        Q /= torch.sum(Q, dim=0, keepdim=True)  # every sample gets mass 1/B
        Q /= B
    Q *= B
    return Q.t()


class SinkhornReference(_ClusterReference):
    def __init__(self, objective: Objective, dim: int, device: torch.device):
        super().__init__(objective, dim, device)
        self.n_iter, self.start = objective.config.n_iter, objective.config.start

    def teacher_probs(self, teacher_out: torch.Tensor) -> torch.Tensor:
        return sinkhorn_reference(teacher_out, self.teacher_temp, self.n_iter, self.start)


def coding_rate_logdet(z: torch.Tensor, eps: float, normalize: bool = True) -> torch.Tensor:
    """``1/2 logdet(I_d + d/(n eps^2) ZᵀZ)`` of the L2-normalised rows (or the rows as they
    are), on the d×d matrix."""
    n, d = z.shape
    if normalize:
        z = F.normalize(z, dim=-1)
    eye = torch.eye(d, dtype=z.dtype, device=z.device)
    return 0.5 * torch.logdet(eye + d / (n * eps**2) * z.T @ z)


class BitsReference:
    """BITS: teacher bits ``1[a > 0]``, BCE over view pairs, minus beta times the coding rate."""

    def __init__(self, objective: Objective, dim: int, device: torch.device):
        cfg = objective.config
        self.beta, self.eps, self.targets, self.tau = cfg.beta, cfg.eps, cfg.targets, cfg.tau

    def __call__(self, student: Views, teacher: Views) -> torch.Tensor:
        if self.targets == "hard":
            bits = [(t.detach() > 0).to(t.dtype) for t in teacher]
        else:
            bits = [torch.sigmoid(t.detach() / self.tau) for t in teacher]
        bce = _mean_over_pairs(student, bits, _bce_pair)
        rates = [coding_rate_logdet(s, self.eps) for s in student[: len(teacher)]]
        return bce - self.beta * sum(rates) / len(rates)


def _bce_pair(s: torch.Tensor, bits: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(s, bits, reduction="none").sum(dim=-1).mean()


class SimDINOReference:
    """SimDINO: cosine distance of normalised embeddings over pairs, minus the weighted rate
    of the averaged student and teacher global views (or of the student's alone)."""

    def __init__(self, objective: Objective, dim: int, device: torch.device):
        cfg = objective.config
        self.objective, self.eps, self.rate_input = objective, cfg.eps, cfg.rate_input

    def __call__(self, student: Views, teacher: Views) -> torch.Tensor:
        s = [F.normalize(v, dim=-1) for v in student]
        t = [F.normalize(v.detach(), dim=-1) for v in teacher]
        align = _mean_over_pairs(s, t, lambda a, b: (1 - (a * b).sum(dim=-1)).mean())
        if self.rate_input == "mean":
            pairs = zip(s[: len(t)], t, strict=True)
            rates = [coding_rate_logdet((a + b) / 2, self.eps, False) for a, b in pairs]
        else:
            rates = [coding_rate_logdet(v, self.eps) for v in student[: len(teacher)]]
        w = self.objective.rate_weight(*student[0].shape)
        return align - w * sum(rates) / len(rates)


REFERENCES: dict[str, type] = {
    "dino": DINOReference,
    "kl_inverse_prior": InversePriorReference,
    "sinkhorn": SinkhornReference,
    "bits": BitsReference,
    "simdino": SimDINOReference,
}


def make_reference(
    name: str, objective: Objective, dim: int, device: torch.device
) -> Callable[[Views, Views], torch.Tensor]:
    """The reference of objective ``name``, configured like ``objective``."""
    return REFERENCES[name](objective, dim, device)
