"""The maths of the objectives: pure, stateless torch functions, one formula each.

Every other module calls these; no formula is written twice. Shapes: ``B`` samples in the
batch, ``K`` clusters (prototypes), ``D`` bits or embedding dimensions.

Papers:
- [KAA] Kittler, Atito, Awais, "Information theoretic underpinning of self-supervised learning
  by clustering", arXiv 2605.11870: teacher normalised by inverse cluster priors, centering as
  its Jensen approximation.
- [BITS] Zaher, Moummad, Buisson, Joly, "Self-Supervised Learning as Discrete Communication",
  arXiv 2602.09764: binary message, BCE agreement, coding-rate regulariser.
- [DINO] Caron et al., arXiv 2104.14294: centering.  [SwAV] Caron et al., arXiv 2006.09882:
  Sinkhorn-Knopp.  [MCR2] Yu et al., arXiv 2006.08558: coding rate.

Conventions:
- Float32 or float64 in, same dtype out. Half-precision inputs (and any call under autocast)
  are computed in float32 and returned in the input dtype: softmax over large ``K``, Sinkhorn
  and log-determinants are numerically delicate.
- Batch statistics (means over ``B``) are taken over all processes when
  ``torch.distributed`` is initialised (:mod:`sslobjectives._dist`).
- Bad input raises :class:`ValueError` naming the problem. The finiteness check is skipped
  while ``torch.compile`` traces (it would break the graph); objectives check their loss.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import AbstractContextManager

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from sslobjectives import _dist

__all__ = [
    "binary_agreement_loss",
    "binary_message",
    "center_normalize",
    "cluster_cross_entropy",
    "cluster_prior",
    "coding_rate",
    "inverse_prior_normalize",
    "jensen_gap",
    "multicrop_binary_agreement",
    "multicrop_cosine_distance",
    "multicrop_cross_entropy",
    "sinkhorn_knopp",
    "soft_message",
]


# --------------------------------------------------------------------------- validation


def _is_compiling() -> bool:
    return torch.compiler.is_compiling()


def _all_finite(x: torch.Tensor) -> bool:
    """Whether every value is finite, in one reduction pass: min and max propagate NaN and
    are infinite iff some value is (``isfinite(x).all()`` takes four passes)."""
    lo, hi = torch.aminmax(x)
    return bool(torch.isfinite(lo) & torch.isfinite(hi))


def check_matrix(x: object, name: str, *, allow_empty: bool = False) -> torch.Tensor:
    """Raise ``ValueError`` unless ``x`` is a finite floating (B, K) tensor with B, K >= 1."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 2:
        raise ValueError(f"{name} must have shape (batch, dim), got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if x.shape[0] == 0 and not allow_empty:
        raise ValueError(f"{name} is an empty batch (shape {tuple(x.shape)})")
    if x.shape[1] == 0:
        raise ValueError(f"{name} has zero features (shape {tuple(x.shape)})")
    if not _is_compiling() and x.numel() and not _all_finite(x):
        bad = int((~torch.isfinite(x)).sum())
        raise ValueError(f"{name} has {bad} non-finite value(s) (NaN or inf)")
    return x


def check_positive(value: float, name: str) -> float:
    """Raise ``ValueError`` unless ``value`` is a finite number > 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number > 0, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def _float32_region(x: torch.Tensor) -> AbstractContextManager:
    """Autocast disabled, so matmuls and reductions run in the dtype we chose."""
    return torch.autocast(device_type=x.device.type, enabled=False)


def _work_dtype(x: torch.Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def _unit_rows(x: torch.Tensor, work: torch.dtype) -> torch.Tensor:
    """Rows of ``x`` scaled to unit norm in the dtype ``work``.

    The norm is floored at the smallest normal number of ``x``'s own dtype (and at
    ``F.normalize``'s 1e-12): the gradient of ``x / |x|`` is ``1 / |x|`` times the upstream
    gradient, and it is returned in ``x``'s dtype, so a float16 row of norm 3e-7 (subnormal,
    with a few bits of precision left) would receive a gradient beyond float16's range
    (65504): infinite. Rows under the floor are scaled by ``1 / floor`` instead; float32,
    bfloat16 and float64 rows are unaffected (their floor is 1e-12).
    """
    floor = max(1e-12, torch.finfo(x.dtype).tiny)
    return F.normalize(x.to(work), dim=-1, eps=floor)


# --------------------------------------------------------------------------- batch reductions


def _batch_mean(x: torch.Tensor) -> torch.Tensor:
    """Mean over the (global) batch of a (B, K) tensor -> (K,)."""
    n = _dist.global_count(x.shape[0], x.device)
    return _dist.all_reduce_sum(x.sum(dim=0)) / n


def _batch_logsumexp(x: torch.Tensor) -> torch.Tensor:
    """``log sum_b exp(x_bk)`` over the (global) batch of a (B, K) tensor -> (K,)."""
    if _dist.world_size() == 1:
        return torch.logsumexp(x, dim=0)
    m = _dist.all_reduce_max(x.max(dim=0).values)
    return m + torch.log(_dist.all_reduce_sum(torch.exp(x - m).sum(dim=0)))


def _batch_log_normalize(x: torch.Tensor) -> torch.Tensor:
    """``x - log sum_b exp(x_bk)``: the columns of ``exp`` of the result sum to 1 over the
    (global) batch. In one process that is ``log_softmax`` over the batch, one fused kernel
    where the composite ``logsumexp`` takes several passes."""
    if _dist.world_size() == 1:
        return F.log_softmax(x, dim=0)
    return x - _batch_logsumexp(x)


def _log_posterior(teacher_logits: torch.Tensor, temp: float) -> torch.Tensor:
    z = teacher_logits.to(_work_dtype(teacher_logits))
    return F.log_softmax(z / temp, dim=-1)


# --------------------------------------------------------------------------- teacher normalisations


def cluster_prior(
    teacher_logits: torch.Tensor, temp: float, mean: str = "arithmetic"
) -> torch.Tensor:
    """Batch estimate of the cluster prior from the posteriors ``p = softmax(z / temp)``.

    ``mean="arithmetic"``: ``P(k) = (1/B) sum_b p(k|x_b)`` [KAA].
    ``mean="geometric"``: ``G(k) = exp((1/B) sum_b log p(k|x_b))``; ``G <= P`` (AM-GM), and
    centering is normalisation by ``G`` (see :func:`center_normalize`).

    Args:
        teacher_logits: (B, K). temp: > 0.
    Returns:
        (K,) — not renormalised: ``P`` sums to 1, ``G`` to at most 1.

    >>> z = torch.tensor([[2.0, 0.0], [0.0, 2.0]])
    >>> cluster_prior(z, 1.0)
    tensor([0.5000, 0.5000])
    >>> bool((cluster_prior(z, 1.0, "geometric") <= cluster_prior(z, 1.0)).all())
    True
    """
    check_matrix(teacher_logits, "teacher_logits")
    temp = check_positive(temp, "temp")
    with _float32_region(teacher_logits):
        logp = _log_posterior(teacher_logits, temp)
        if mean == "arithmetic":
            n = _dist.global_count(logp.shape[0], logp.device)
            out = torch.exp(_batch_logsumexp(logp) - math.log(n))
        elif mean == "geometric":
            out = torch.exp(_batch_mean(logp))
        else:
            raise ValueError(f"mean must be 'arithmetic' or 'geometric', got {mean!r}")
    return out.to(teacher_logits.dtype)


def inverse_prior_normalize(
    teacher_logits: torch.Tensor, temp: float, prior: torch.Tensor | None = None
) -> torch.Tensor:
    """Teacher posterior normalised by the inverse cluster priors [KAA].

    ``q(k|x) = (p(k|x) / P(k)) / sum_j (p(j|x) / P(j))`` with ``p = softmax(z / temp)`` and
    ``P(k) = (1/B) sum_b p(k|x_b)`` the batch prior, unless a (running) ``prior`` is given.
    This is one cluster-scaling step of Sinkhorn-Knopp from the posteriors
    (:func:`sinkhorn_knopp` with ``n_iter=1, start="posterior"``), the first step towards
    balanced clusters.

    Computed in log space (``log P`` by log-sum-exp over the batch), so a cluster whose
    posterior underflows to 0 everywhere is still normalised without NaN.

    Args:
        teacher_logits: (B, K). temp: > 0. prior: (K,) positive, or None.
    Returns:
        (B, K), rows sum to 1.

    >>> z = torch.tensor([[3.0, 0.0], [3.0, 1.0]])
    >>> q = inverse_prior_normalize(z, 1.0)
    >>> q.sum(dim=1)
    tensor([1.0000, 1.0000])
    >>> bool(q[:, 1].mean() > torch.softmax(z, 1)[:, 1].mean())  # rare cluster weighted up
    True
    """
    check_matrix(teacher_logits, "teacher_logits")
    temp = check_positive(temp, "temp")
    with _float32_region(teacher_logits):
        logp = _log_posterior(teacher_logits, temp)
        if prior is None:  # log(p / (B * P)), the constant B cancels in the softmax
            q = F.softmax(_batch_log_normalize(logp), dim=-1)
        else:
            log_prior = _check_prior(prior, logp.shape[1]).to(logp.dtype).log()
            q = F.softmax(logp - log_prior, dim=-1)
    return q.to(teacher_logits.dtype)


def _check_prior(prior: object, k: int) -> torch.Tensor:
    if not isinstance(prior, torch.Tensor) or prior.shape != (k,):
        shape = tuple(prior.shape) if isinstance(prior, torch.Tensor) else type(prior).__name__
        raise ValueError(f"prior must be a tensor of shape ({k},), got {shape}")
    if _is_compiling():  # a value check is a host sync and would break the graph
        return prior
    if not bool((prior > 0).all()) or not bool(torch.isfinite(prior).all()):
        raise ValueError("prior must be finite and strictly positive")
    return prior


def center_normalize(
    teacher_logits: torch.Tensor, temp: float, center: torch.Tensor | None = None
) -> torch.Tensor:
    """DINO's centered teacher: ``softmax((z - c) / temp)`` [DINO].

    ``c`` is the batch mean of the logits unless a (running) ``center`` of shape (K,) or
    (1, K) is given. With the batch mean this is *exactly* normalisation by the geometric-mean
    prior: ``softmax((z - mean_b z)/temp) = (p / G) / sum_j (p_j / G_j)``, ``G`` from
    :func:`cluster_prior` with ``mean="geometric"`` — the Jensen approximation of the
    inverse-prior normalisation [KAA].

    Args:
        teacher_logits: (B, K). temp: > 0. center: (K,) or (1, K), or None.
    Returns:
        (B, K), rows sum to 1.

    >>> z = torch.tensor([[1.0, 0.0], [3.0, 0.0]])
    >>> center_normalize(z, 1.0)
    tensor([[0.2689, 0.7311],
            [0.7311, 0.2689]])
    """
    check_matrix(teacher_logits, "teacher_logits")
    temp = check_positive(temp, "temp")
    with _float32_region(teacher_logits):
        z = teacher_logits.to(_work_dtype(teacher_logits))
        if center is None:
            c = _batch_mean(z)
        else:
            if not isinstance(center, torch.Tensor) or center.numel() != z.shape[1]:
                raise ValueError(
                    f"center must be a tensor with {z.shape[1]} elements, "
                    f"got {tuple(center.shape) if isinstance(center, torch.Tensor) else center}"
                )
            c = center.reshape(-1).to(z.dtype)
        q = F.softmax((z - c) / temp, dim=-1)
    return q.to(teacher_logits.dtype)


def sinkhorn_knopp(
    teacher_logits: torch.Tensor, temp: float, n_iter: int = 3, start: str = "exp"
) -> torch.Tensor:
    """Balanced teacher assignment by Sinkhorn-Knopp [SwAV; DINOv2 arXiv 2304.07193], in log
    space.

    Solves ``min_q sum_b KL(q_b || p_b)`` with rows summing to 1 and cluster marginals
    ``(1/B) sum_b q_bk = 1/K``; the solution has the form ``q_bk ∝ p_bk exp(-lambda_k)``
    (``proofs/balanced_teacher_lagrange.py``). From a start matrix it alternates a cluster
    scaling (each cluster's column sums to ``B/K``) and a row normalisation (each row sums to
    1), ``n_iter`` times, so rows sum to 1 exactly and the marginals are uniform up to the
    remaining iterations' error.

    ``start="exp"`` (default) starts from ``exp(z / temp)``: SwAV's Algorithm 1 and DINOv2's
    ``sinkhorn_knopp_teacher`` (whose global scaling by the total mass and per-step ``1/K``,
    ``1/B`` factors cancel in the normalisations), to float precision at any ``n_iter``.
    ``start="posterior"`` starts from the posteriors ``softmax(z / temp)`` (one extra row
    normalisation), so that one iteration is :func:`inverse_prior_normalize` [KAA]; the two
    starts have the same limit but differ at a few iterations.

    At the default 3 iterations the marginals are not exactly uniform: the README states the
    measured error (``tests/test_sinkhorn_fidelity.py`` recomputes it).

    Args:
        teacher_logits: (B, K). temp: > 0. n_iter: >= 1. start: ``"exp"`` or ``"posterior"``.
    Returns:
        (B, K), rows sum to 1.

    >>> q = sinkhorn_knopp(torch.tensor([[4.0, 0.0], [4.0, 0.0], [0.0, 1.0]]), 1.0, n_iter=50)
    >>> q.mean(dim=0)
    tensor([0.5000, 0.5000])
    """
    check_matrix(teacher_logits, "teacher_logits")
    temp = check_positive(temp, "temp")
    if isinstance(n_iter, bool) or not isinstance(n_iter, int) or n_iter < 1:
        raise ValueError(f"n_iter must be an integer >= 1, got {n_iter!r}")
    if start not in SINKHORN_STARTS:
        raise ValueError(f"start must be one of {', '.join(SINKHORN_STARTS)}, got {start!r}")
    with _float32_region(teacher_logits):
        if start == "posterior":
            logq = _log_posterior(teacher_logits, temp)
        else:  # exp(z/T) in log space: the column step's log-sum-exp absorbs any overflow
            logq = teacher_logits.to(_work_dtype(teacher_logits)) / temp
        for i in range(n_iter):
            logq = _batch_log_normalize(logq)
            if i < n_iter - 1:
                logq = F.log_softmax(logq, dim=-1)
        q = F.softmax(logq, dim=-1)  # the last row step and the exp in one kernel
    return q.to(teacher_logits.dtype)


#: where :func:`sinkhorn_knopp` starts: ``exp(z/T)`` (SwAV, DINOv2) or ``softmax(z/T)`` [KAA]
SINKHORN_STARTS = ("exp", "posterior")


def jensen_gap(teacher_logits: torch.Tensor, temp: float) -> torch.Tensor:
    """Per cluster, ``log P(k) - (1/B) sum_b log p(k|x_b) = log(P(k) / G(k)) >= 0`` [KAA].

    The gap between the log of the arithmetic-mean prior and its Jensen lower bound, i.e.
    how far centering (geometric mean) is from inverse-prior normalisation (arithmetic mean)
    for that cluster. Zero iff the cluster's posterior is the same for every sample. Rounding
    below zero is clamped to 0.

    Args:
        teacher_logits: (B, K). temp: > 0.
    Returns:
        (K,).

    >>> jensen_gap(torch.tensor([[1.0, 0.0], [1.0, 0.0]]), 0.5)
    tensor([0., 0.])
    >>> bool((jensen_gap(torch.tensor([[2.0, 0.0], [0.0, 2.0]]), 1.0) > 0).all())
    True
    """
    check_matrix(teacher_logits, "teacher_logits")
    temp = check_positive(temp, "temp")
    with _float32_region(teacher_logits):
        logp = _log_posterior(teacher_logits, temp)
        n = _dist.global_count(logp.shape[0], logp.device)
        gap = _batch_logsumexp(logp) - math.log(n) - _batch_mean(logp)
    return gap.clamp_min(0.0).to(teacher_logits.dtype)


# --------------------------------------------------------------------------- cluster agreement


def cluster_cross_entropy(
    student_logits: torch.Tensor,
    teacher_probs: torch.Tensor,
    student_temp: float,
    reduction: str = "mean",
) -> torch.Tensor:
    """``-sum_k q(k|x) log softmax(s / student_temp)_k`` per sample [DINO, KAA].

    With the teacher ``q`` fixed this is ``H(q) + KL(q || p_student)``: minimising it over the
    student minimises the KL (``proofs/cross_entropy_kl.py``). The teacher is detached here.

    Args:
        student_logits: (B, K). teacher_probs: (B, K), rows on the simplex.
        student_temp: > 0. reduction: ``"mean"`` (over the global batch), ``"sum"`` or
        ``"none"`` (per sample, (B,)).
    Returns:
        scalar, or (B,) for ``reduction="none"``.

    >>> s = torch.tensor([[0.0, 0.0]])
    >>> cluster_cross_entropy(s, torch.tensor([[1.0, 0.0]]), 1.0)
    tensor(0.6931)
    """
    check_matrix(student_logits, "student_logits")
    check_matrix(teacher_probs, "teacher_probs")
    if student_logits.shape != teacher_probs.shape:
        raise ValueError(
            f"student_logits {tuple(student_logits.shape)} and teacher_probs "
            f"{tuple(teacher_probs.shape)} differ in shape"
        )
    student_temp = check_positive(student_temp, "student_temp")
    with _float32_region(student_logits):
        logp = F.log_softmax(student_logits.to(_work_dtype(student_logits)) / student_temp, -1)
        per_sample = -(teacher_probs.detach().to(logp.dtype) * logp).sum(dim=-1)
    return _reduce(per_sample, reduction).to(student_logits.dtype)


def _reduce(per_sample: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "none":
        return per_sample
    total = _dist.all_reduce_sum(per_sample.sum())
    if reduction == "sum":
        return total
    if reduction == "mean":
        return total / _dist.global_count(per_sample.shape[0], per_sample.device)
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


# --------------------------------------------------------------------------- binary channel


def binary_message(logits: torch.Tensor) -> torch.Tensor:
    """The teacher's B-bit message ``1[logits > 0]`` as float [BITS].

    MAP decoding of ``sigmoid(logits)`` under a symmetric prior: ``sigmoid(a) > 1/2`` iff
    ``a > 0``. No gradient flows (a hard threshold).

    Args:
        logits: (B, D).
    Returns:
        (B, D) of 0.0 / 1.0 in the input dtype.

    >>> binary_message(torch.tensor([[-1.0, 0.0, 2.0]]))
    tensor([[0., 0., 1.]])
    """
    check_matrix(logits, "logits")
    return (logits.detach() > 0).to(logits.dtype)


def soft_message(logits: torch.Tensor, tau: float) -> torch.Tensor:
    """Soft teacher targets ``sigmoid(logits / tau)`` (the BITS ablation of hard targets).

    Args:
        logits: (B, D). tau: > 0.
    Returns:
        (B, D) in (0, 1), detached.

    >>> soft_message(torch.tensor([[0.0, 2.0]]), 1.0)
    tensor([[0.5000, 0.8808]])
    """
    check_matrix(logits, "logits")
    tau = check_positive(tau, "tau")
    return torch.sigmoid(logits.detach() / tau)


def binary_agreement_loss(
    student_logits: torch.Tensor, teacher_bits: torch.Tensor, reduction: str = "mean"
) -> torch.Tensor:
    """Element-wise binary cross-entropy of the student's logits against the teacher's bits.

    ``sum_d [softplus(s_d) - t_d s_d]`` per sample: the cross-entropy of the whole message in
    nats, the sum of its per-bit cross-entropies [BITS]. Targets may be hard (0/1, from
    :func:`binary_message`) or soft (in [0, 1]). The teacher is detached here.

    Args:
        student_logits: (B, D). teacher_bits: (B, D) in [0, 1].
        reduction: ``"mean"`` over the global batch (of the per-sample sum over bits),
        ``"sum"`` or ``"none"`` ((B,)).
    Returns:
        scalar, or (B,).

    >>> binary_agreement_loss(torch.zeros(1, 2), torch.tensor([[1.0, 0.0]]))
    tensor(1.3863)
    """
    check_matrix(student_logits, "student_logits")
    check_matrix(teacher_bits, "teacher_bits")
    if student_logits.shape != teacher_bits.shape:
        raise ValueError(
            f"student_logits {tuple(student_logits.shape)} and teacher_bits "
            f"{tuple(teacher_bits.shape)} differ in shape"
        )
    if not _is_compiling() and not bool(((teacher_bits >= 0) & (teacher_bits <= 1)).all()):
        raise ValueError("teacher_bits must lie in [0, 1]")
    per_sample = F.binary_cross_entropy_with_logits(
        student_logits, teacher_bits.detach().to(student_logits.dtype), reduction="none"
    ).sum(dim=-1)
    return _reduce(per_sample, reduction)


# --------------------------------------------------------------------------- coding rate


class _Gram(torch.autograd.Function):
    """``XᵀX`` with the backward ``X (G' + G'ᵀ)``: one matmul where autograd's ``mm`` takes two.

    Same value as ``x.T @ x``; the backward is built from differentiable ops, so higher-order
    gradients stay exact.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return x.T @ x

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return x @ (grad + grad.T)


def mean_unit_rows(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``(a/|a| + b/|b|) / 2`` row by row, in float32 (float64 stays float64).

    SimDINO's coding-rate input (arXiv 2502.10385, ``expa_type = 1``): the average of the
    student's and the teacher's unit embeddings of one view, not renormalised. Norms are
    floored as in :func:`coding_rate`, so tiny float16 rows keep finite gradients.

    Args:
        a, b: (n, d), same shape. Returns: (n, d).

    >>> mean_unit_rows(torch.tensor([[3.0, 4.0]]), torch.tensor([[0.0, 2.0]]))
    tensor([[0.3000, 0.9000]])
    """
    check_matrix(a, "a", allow_empty=True)
    check_matrix(b, "b", allow_empty=True)
    if a.shape != b.shape:
        raise ValueError(
            f"a and b must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    work = _work_dtype(a)
    return (_unit_rows(a, work) + _unit_rows(b, work)) / 2


#: Largest ``cond * machine epsilon`` at which the Cholesky path is trusted: the matrix
#: ``I + a G`` of unit rows has condition number at most ``1 + d / eps^2``, and a Cholesky
#: factor loses about ``cond * machine epsilon`` of relative accuracy (it fails outright once
#: that reaches 1: float32 at ``eps <= 5e-3`` on rank-one inputs).
_CHOLESKY_ROUNDOFF = 1e-2


def coding_rate(z: torch.Tensor, eps: float, normalize: bool = True) -> torch.Tensor:
    """Coding rate ``R_eps(Z) = 1/2 logdet(I_d + d / (n eps^2) Z^T Z)`` of L2-normalised rows.

    [MCR2] arXiv 2006.08558; used as the ``H(Z)`` surrogate in [BITS] and SimDINO
    (arXiv 2502.10385). By Sylvester's identity ``det(I_d + a Z^T Z) = det(I_n + a Z Z^T)``
    the log-determinant is taken of the smaller Gram matrix, through a Cholesky factorisation
    (the matrix is ``I`` plus a PSD matrix, so always positive definite). ``n = 0`` gives 0.
    Under ``torch.distributed`` the d x d Gram matrix is summed over processes (``n`` is the
    global batch), so the rate is that of the joined batch.

    Small distortions: the condition number of ``I + a G`` reaches ``1 + d / eps^2``, so
    when ``d / eps^2`` times the working dtype's machine epsilon exceeds 1e-2, rounding would
    make the Cholesky factor inaccurate or fail on degenerate (rank-deficient) inputs. There
    the rate is ``1/2 sum_i log(1 + a lambda_i)`` over the Gram matrix's eigenvalues, in
    float64, clamped at zero as MCR2 does: exact for every input, rank-one and ``n = 1``
    included, with finite gradients (the eigenvalues' backward needs no eigengap). The
    choice depends on ``d`` and ``eps`` only, never on the data.

    For unit-norm rows: ``1/2 log(1 + d/eps^2) <= R <= r/2 log(1 + d/(r eps^2))``,
    ``r = min(n, d)``; the lower bound is rank-one collapse, the upper equal eigenvalues
    (``proofs/coding_rate_bounds.py``).

    Args:
        z: (n, d). eps: > 0, the distortion. normalize: L2-normalise the rows first
            (default); ``False`` takes the rows as they are (SimDINO's rate of the average of
            two unit vectors, which is not unit-norm).
    Returns:
        scalar in nats.

    >>> z = torch.eye(2)
    >>> round(float(coding_rate(z, 1.0)), 4) == round(math.log(2.0), 4)  # 2 * 1/2 log(1+1)
    True
    >>> ones = torch.ones(8, 4)  # rank one: the lower bound, at a tiny distortion too
    >>> round(float(coding_rate(ones, 1e-4)), 4) == round(0.5 * math.log(1 + 4 / 1e-8), 4)
    True
    """
    check_matrix(z, "z", allow_empty=True)
    eps = check_positive(eps, "eps")
    n_local, d = z.shape
    work = _work_dtype(z)
    spectral = d / (eps * eps) * torch.finfo(work).eps > _CHOLESKY_ROUNDOFF
    if spectral:
        work = torch.float64
    with _float32_region(z):
        x = _unit_rows(z, work) if normalize else z.to(work)
        distributed = _dist.world_size() > 1
        n = _dist.global_count(n_local, z.device) if distributed else n_local
        if n == 0:
            return (z.sum() * 0.0).to(z.dtype)
        alpha = d / (n * eps * eps)
        if distributed or d <= n:
            gram = _dist.all_reduce_sum(_Gram.apply(x))
        else:
            gram = _Gram.apply(x.T)
        if spectral:
            eigenvalues = torch.linalg.eigvalsh(gram).clamp_min(0.0)
            rate = 0.5 * torch.log1p(alpha * eigenvalues).sum()
        else:
            m = gram.shape[0]
            eye = torch.eye(m, dtype=x.dtype, device=x.device)
            chol = torch.linalg.cholesky(eye + alpha * gram)
            rate = torch.log(torch.diagonal(chol)).sum()
    return rate.to(z.dtype)


# --------------------------------------------------------------------------- multi-crop sums


def _pair_count(n_student: int, n_teacher: int) -> int:
    """Ordered (student view, teacher view) pairs, a view never predicting itself."""
    return n_student * n_teacher - min(n_student, n_teacher)


def _multicrop_sum(
    student: list[torch.Tensor],
    targets: list[torch.Tensor],
    partition: Callable[[torch.Tensor], torch.Tensor],
    scale: float,
) -> torch.Tensor:
    """``sum_t sum_{s != t} mean_b [partition(s_b) - targets_t,b . s_b * scale]``.

    Every loss here is, per pair, a per-row partition term of the student alone minus a term
    linear in the student logits. So the sum over pairs factorises: each student view ``s``
    meets the sum of the targets it must predict, ``sum_t targets_t - targets_s`` (itself
    left out), and its partition term ``n_targets(s)`` times. The work grows with the number
    of views, not the number of pairs. Teacher view ``t`` is student view ``t``.
    """
    n_teacher = len(targets)
    total_target = targets[0]
    for t in targets[1:]:
        total_target = total_target + t
    total = student[0].new_zeros((), dtype=_work_dtype(student[0]))
    for i, s in enumerate(student):
        is_teacher_view = i < n_teacher
        weight = total_target - targets[i] if is_teacher_view else total_target
        n_targets = n_teacher - 1 if is_teacher_view else n_teacher
        s32 = s.to(total.dtype)
        total = total + n_targets * partition(s32).sum() - scale * (weight * s32).sum()
    n = _dist.global_count(student[0].shape[0], student[0].device)
    return _dist.all_reduce_sum(total) / (n * _pair_count(len(student), n_teacher))


class _MulticropCrossEntropy(torch.autograd.Function):
    """Eager kernel of :func:`multicrop_cross_entropy`, before the mean over pairs and batch.

    Per student view, ``-w . log_softmax(s / T)`` with ``w`` the sum of the teacher
    posteriors the view must predict (its own, for a teacher view, left out). The backward
    ``(softmax(s/T) rowsum(w) - w) / T`` is one fused aten kernel per view plus an in-place
    scaling, where autograd of the same expression takes three passes and two temporaries.
    Second-order gradients are not supported (nor are they under ``torch.compile``).
    """

    @staticmethod
    def forward(ctx, temp: float, n_teacher: int, *tensors: torch.Tensor) -> torch.Tensor:
        targets, student = tensors[:n_teacher], tensors[n_teacher:]
        total = targets[0]
        for t in targets[1:]:
            total = total + t
        out = total.new_zeros(())
        log_probs = []
        for i, s in enumerate(student):
            logp = F.log_softmax(s.to(total.dtype) / temp, dim=-1)
            out = out - torch.dot(total.reshape(-1), logp.reshape(-1))
            if i < n_teacher:
                out = out + torch.dot(targets[i].reshape(-1), logp.reshape(-1))
            log_probs.append(logp)
        ctx.save_for_backward(total, *targets, *log_probs)
        ctx.temp, ctx.n_teacher, ctx.dtypes = temp, n_teacher, [s.dtype for s in student]
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor):
        total, *saved = ctx.saved_tensors
        targets, log_probs = saved[: ctx.n_teacher], saved[ctx.n_teacher :]
        scale = grad * (-1.0 / ctx.temp)
        grads = []
        for i, (logp, dtype) in enumerate(zip(log_probs, ctx.dtypes, strict=True)):
            w = total - targets[i] if i < ctx.n_teacher else total
            # w - softmax * rowsum(w): minus the gradient w.r.t. s / T
            g = torch._log_softmax_backward_data(w, logp, -1, logp.dtype)
            grads.append(g.mul_(scale).to(dtype))
        return (None, None, *([None] * ctx.n_teacher), *grads)


def multicrop_cross_entropy(
    student_logits: list[torch.Tensor], teacher_probs: list[torch.Tensor], student_temp: float
) -> torch.Tensor:
    """Mean of :func:`cluster_cross_entropy` over all (student view, teacher view) pairs
    except a view with itself; teacher view ``t`` is student view ``t`` [DINO multi-crop].

    The sum over pairs factorises (cost linear in the number of views): each student view
    meets the sum of the teacher posteriors it must predict. Eager, that is
    ``-(sum_t q_t) . log_softmax(s/T)`` on aten's fused ``log_softmax`` kernels
    (:class:`_MulticropCrossEntropy`; no second-order gradients); under ``torch.compile``
    the same sum as ``logsumexp(s/T) - q . s / T`` (rows of ``q`` sum to 1), which inductor
    fuses into one pass over each view.

    Args:
        student_logits: V_s tensors (B, K). teacher_probs: V_t tensors (B, K).
    Returns:
        scalar.

    >>> s = [torch.zeros(1, 2), torch.zeros(1, 2)]
    >>> q = [torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])]
    >>> multicrop_cross_entropy(s, q, 0.1)
    tensor(0.6931)
    """
    student_temp = check_positive(student_temp, "student_temp")
    _check_pairs(student_logits, teacher_probs)
    with _float32_region(student_logits[0]):
        q = [t.detach().to(_work_dtype(t)) for t in teacher_probs]

        if _is_compiling():

            def partition(s: torch.Tensor) -> torch.Tensor:
                return torch.logsumexp(s / student_temp, dim=-1)

            loss = _multicrop_sum(student_logits, q, partition, 1.0 / student_temp)
        else:  # the composite eager logsumexp takes ~2x the passes of fused log_softmax
            total = _MulticropCrossEntropy.apply(student_temp, len(q), *q, *student_logits)
            n = _dist.global_count(student_logits[0].shape[0], student_logits[0].device)
            pairs = _pair_count(len(student_logits), len(q))
            loss = _dist.all_reduce_sum(total) / (n * pairs)
    return loss.to(student_logits[0].dtype)


def multicrop_binary_agreement(
    student_logits: list[torch.Tensor], teacher_bits: list[torch.Tensor]
) -> torch.Tensor:
    """Mean of :func:`binary_agreement_loss` over all (student view, teacher view) pairs
    except a view with itself: BITS' symmetric BCE, extended to multi-crop [BITS Eq. 8].

    Uses ``BCE(s, t) = softplus(s) - t s`` per bit, so the pairs factorise.

    Args:
        student_logits: V_s tensors (B, D). teacher_bits: V_t tensors (B, D) in [0, 1].
    Returns:
        scalar.

    >>> s = [torch.zeros(1, 2), torch.zeros(1, 2)]
    >>> t = [torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])]
    >>> multicrop_binary_agreement(s, t)
    tensor(1.3863)
    """
    _check_pairs(student_logits, teacher_bits)
    with _float32_region(student_logits[0]):
        t = [b.detach().to(_work_dtype(b)) for b in teacher_bits]
        loss = _multicrop_sum(student_logits, t, lambda s: F.softplus(s).sum(dim=-1), 1.0)
    return loss.to(student_logits[0].dtype)


def _check_pairs(student: list[torch.Tensor], teacher: list[torch.Tensor]) -> None:
    if len(teacher) > len(student):
        raise ValueError(
            f"{len(teacher)} teacher views but only {len(student)} student views: the teacher "
            "views must be the first student views"
        )
    if _pair_count(len(student), len(teacher)) == 0:
        raise ValueError(
            f"fewer than two views ({len(student)} student, {len(teacher)} teacher): "
            "no view pair to compare"
        )


def multicrop_cosine_distance(
    student: list[torch.Tensor], teacher: list[torch.Tensor]
) -> torch.Tensor:
    """Mean of ``1 - cos(s, t) = 1/2 |s/|s| - t/|t||^2`` over all (student view, teacher view)
    pairs except a view with itself: SimDINO's alignment term (arXiv 2502.10385).

    Args:
        student: V_s tensors (B, D). teacher: V_t tensors (B, D), detached here.
    Returns:
        scalar in [0, 2].

    >>> multicrop_cosine_distance([torch.ones(1, 2), -torch.ones(1, 2)], [torch.ones(1, 2)])
    tensor(2.)
    """
    _check_pairs(student, teacher)
    with _float32_region(student[0]):
        s = [_unit_rows(v, _work_dtype(v)) for v in student]
        t = [_unit_rows(v.detach(), _work_dtype(v)) for v in teacher]
        loss = _multicrop_sum(s, t, lambda x: x.new_ones(x.shape[0]), 1.0)
    return loss.to(student[0].dtype)
