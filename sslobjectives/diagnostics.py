"""Collapse and channel diagnostics, read from the same tensors the objective saw.

All functions are pure and return detached tensors. Entropies of cluster distributions are
in nats; per-bit entropies are in bits (so a balanced bit scores 1).

Under ``torch.distributed`` :func:`jensen_gap_summary` and :func:`centering_kl` are of the
joined batch (their batch statistics are reduced over processes); the others are of the rows
they are given, so the objectives gather every process's rows before calling them.
"""

from __future__ import annotations

import math

import torch

from sslobjectives import _dist
from sslobjectives.functional import (
    center_normalize,
    check_matrix,
    inverse_prior_normalize,
    jensen_gap,
)

_TINY = 1e-12


def _entropy(p: torch.Tensor, dim: int = -1) -> torch.Tensor:
    return -(p * torch.log(p.clamp_min(_TINY))).sum(dim=dim)


@torch.no_grad()
def marginal_entropy(probs: torch.Tensor) -> torch.Tensor:
    """``H(E_x p)`` in nats: high when the batch uses many clusters, 0 at full collapse.

    >>> round(float(marginal_entropy(torch.eye(4))), 4) == round(math.log(4), 4)
    True
    """
    check_matrix(probs, "probs")
    return _entropy(probs.float().mean(dim=0))


@torch.no_grad()
def mean_sample_entropy(probs: torch.Tensor) -> torch.Tensor:
    """``E_x H(p(.|x))`` in nats: 0 for one-hot assignments, ``log K`` for uniform ones.

    >>> float(mean_sample_entropy(torch.eye(3)))
    0.0
    """
    check_matrix(probs, "probs")
    return _entropy(probs.float()).mean()


@torch.no_grad()
def kl_to_uniform(probs: torch.Tensor) -> torch.Tensor:
    """``KL(E_x p || uniform) = log K - H(E_x p)`` in nats; 0 for balanced clusters.

    >>> float(kl_to_uniform(torch.full((2, 4), 0.25)))
    0.0
    """
    check_matrix(probs, "probs")
    return (math.log(probs.shape[1]) - marginal_entropy(probs)).clamp_min(0.0)


@torch.no_grad()
def effective_rank(embeddings: torch.Tensor) -> torch.Tensor:
    """RankMe (Garrido et al., arXiv 2210.02885): ``exp(H(sigma / sum sigma))`` of the
    singular values of the (B, D) embeddings. Between 1 (collapse) and ``min(B, D)``.

    >>> round(float(effective_rank(torch.eye(5))), 4)
    5.0
    """
    check_matrix(embeddings, "embeddings")
    s = torch.linalg.svdvals(embeddings.double())
    total = s.sum()
    if total <= 0:
        return torch.tensor(1.0)
    return torch.exp(_entropy(s / total)).float()


def _check_bits(bits: torch.Tensor) -> torch.Tensor:
    check_matrix(bits, "bits")
    if not bool(((bits == 0) | (bits == 1)).all()):
        raise ValueError("bits must contain only 0 and 1")
    return bits.float()


@torch.no_grad()
def bit_marginal_entropy(bits: torch.Tensor) -> torch.Tensor:
    """Per-bit marginal entropy in bits, (D,): 1 for a balanced bit, 0 for a constant one.

    >>> bit_marginal_entropy(torch.tensor([[0.0, 1.0], [1.0, 1.0]]))
    tensor([1., 0.])
    """
    p = _check_bits(bits).mean(dim=0)
    h = -(p * torch.log2(p.clamp_min(_TINY)) + (1 - p) * torch.log2((1 - p).clamp_min(_TINY)))
    return h.clamp_min(0.0)


@torch.no_grad()
def dead_bit_fraction(bits: torch.Tensor) -> torch.Tensor:
    """Fraction of bits constant over the batch (they carry no information).

    >>> float(dead_bit_fraction(torch.tensor([[0.0, 1.0], [1.0, 1.0]])))
    0.5
    """
    b = _check_bits(bits)
    constant = (b == b[:1]).all(dim=0)
    return constant.float().mean()


@torch.no_grad()
def mean_abs_bit_correlation(bits: torch.Tensor) -> torch.Tensor:
    """Mean |Pearson correlation| between pairs of live bits (redundancy of the code).

    Dead bits (constant) have no correlation and are left out; fewer than two live bits
    gives 0.

    >>> float(mean_abs_bit_correlation(torch.tensor([[0.0, 0.0], [1.0, 1.0]])))
    1.0
    """
    b = _check_bits(bits)
    live = b[:, (b != b[:1]).any(dim=0)]
    d = live.shape[1]
    if d < 2:
        return torch.tensor(0.0)
    x = live - live.mean(dim=0)
    x = x / x.norm(dim=0)
    corr = x.T @ x
    off = corr.abs().sum() - corr.diagonal().abs().sum()
    return off / (d * (d - 1))


@torch.no_grad()
def jensen_gap_summary(teacher_logits: torch.Tensor, temp: float) -> dict[str, torch.Tensor]:
    """Mean and max over clusters of :func:`~sslobjectives.functional.jensen_gap`.

    >>> jensen_gap_summary(torch.zeros(3, 2), 0.1)["jensen_gap_max"]
    tensor(0.)
    """
    gap = jensen_gap(teacher_logits, temp)
    return {"jensen_gap_mean": gap.mean(), "jensen_gap_max": gap.max()}


@torch.no_grad()
def centering_kl(teacher_logits: torch.Tensor, temp: float) -> torch.Tensor:
    """Mean over samples of ``KL(q_inverse_prior || q_centered)`` in nats, both teachers
    from the same batch statistics: how far DINO's centering (the Jensen approximation) is
    from the inverse-prior normalisation it approximates (arXiv 2605.11870).

    >>> float(centering_kl(torch.tensor([[1.0, 0.0], [1.0, 0.0]]), 0.5))  # identical rows
    0.0
    """
    q_ip = inverse_prior_normalize(teacher_logits, temp).double()
    q_c = center_normalize(teacher_logits, temp).double()
    kl = (q_ip * (torch.log(q_ip.clamp_min(1e-300)) - torch.log(q_c.clamp_min(1e-300)))).sum(-1)
    # mean over the joined batch when distributed (the normalisations already are global)
    n = _dist.global_count(kl.shape[0], kl.device)
    return (_dist.all_reduce_sum(kl.sum()) / max(n, 1)).clamp_min(0.0).float()


@torch.no_grad()
def cluster_stats(teacher_probs: torch.Tensor) -> dict[str, torch.Tensor]:
    """The collapse diagnostics of a normalised (B, K) teacher, keyed for logs."""
    return {
        "marginal_entropy": marginal_entropy(teacher_probs),
        "sample_entropy": mean_sample_entropy(teacher_probs),
        "kl_to_uniform": kl_to_uniform(teacher_probs),
    }


@torch.no_grad()
def bit_stats(bits: torch.Tensor) -> dict[str, torch.Tensor]:
    """The channel diagnostics of a (B, D) binary message, keyed for logs."""
    return {
        "bit_entropy": bit_marginal_entropy(bits).mean(),
        "dead_bits": dead_bit_fraction(bits),
        "bit_correlation": mean_abs_bit_correlation(bits),
    }
