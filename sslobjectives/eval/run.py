"""A run's evaluation: per-epoch monitoring, the end-of-run metrics and the collapse rule.

Everything reads the EMA teacher's features (the backbone output) and head outputs of the
train and test images. What depends on the objective family — discrete codes to score,
diagnostics of the head outputs — the objective supplies itself (``final_codes``,
``final_stats``), as it supplies its per-step ``stats``; nothing here asks which family it is.

Two marginal entropies, two names:

- ``marginal_entropy`` (per-epoch ``history``): entropy of the mean *normalised* teacher
  distribution the loss targets (centred, prior-normalised or Sinkhorn-balanced);
- ``posterior_marginal_entropy`` (``final``, the table's column): entropy of the mean *raw*
  teacher posterior ``softmax(h / T)`` at the final teacher temperature, on the test images.
  Result files written before the rename carry it as ``final.marginal_entropy``; the run
  folder's reader takes either (:func:`sslobjectives.train.rundir.upgrade_result`).

The collapse rule reads the final metrics, i.e. what the table shows.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from sslobjectives import diagnostics
from sslobjectives.eval.metrics import evaluate_representation, knn_accuracy

#: the end-of-run key of the raw teacher posterior's marginal entropy (an objective's
#: ``final_stats``; the cluster objectives write it)
POSTERIOR_ENTROPY = "posterior_marginal_entropy"


@torch.no_grad()
def extract(
    model: nn.Module, x: torch.Tensor, device: torch.device, batch: int = 512
) -> tuple[torch.Tensor, torch.Tensor]:
    """Backbone features and head outputs of ``x`` (eval mode), on the CPU.

    ``model`` has ``backbone`` and ``head`` (a :class:`~sslobjectives.models.Student`).
    """
    was_training = model.training
    model.eval()
    feats, outs = [], []
    for i in range(0, x.shape[0], batch):
        f = model.backbone(x[i : i + batch].to(device))
        feats.append(f.float().cpu())
        outs.append(model.head(f).float().cpu())
    model.train(was_training)
    return torch.cat(feats), torch.cat(outs)


#: what a run without labels reports in place of the label metrics
NEEDS_LABELS = "label metrics need labels"


def monitor(model: nn.Module, data, device: torch.device, knn_k: int) -> dict[str, float]:
    """Per-epoch k-NN accuracy (with labels) and effective rank of ``model``'s test features."""
    f_te, _ = extract(model, data.x_test, device)
    out = {"effective_rank": float(diagnostics.effective_rank(f_te))}
    if data.y_train is not None:
        f_tr, _ = extract(model, data.x_train, device)
        out["knn"] = knn_accuracy(f_tr, data.y_train, f_te, data.y_test, k=knn_k)
    return out


def final_metrics(
    model: nn.Module, objective, data, device: torch.device, knn_k: int
) -> dict[str, Any]:
    """k-NN, linear probe and retrieval mAP on ``model``'s features, the effective rank, and
    what the objective adds (its codes scored the same way, its own diagnostics).

    Without labels only the label-free part is computed: the effective rank and the
    objective's own diagnostics (marginal or bit entropy, channel health); ``"labels"`` then
    says that the label metrics need labels."""
    f_te, h_te = extract(model, data.x_test, device)
    if data.y_train is None:
        metrics: dict[str, Any] = {"labels": NEEDS_LABELS}
        metrics["effective_rank"] = float(diagnostics.effective_rank(f_te))
        metrics.update(objective.final_stats(h_te))
        return metrics
    f_tr, h_tr = extract(model, data.x_train, device)
    codes = objective.final_codes(h_tr, h_te, with_factors=data.factors_test is not None)
    metrics = evaluate_representation(
        f_tr,
        data.y_train,
        f_te,
        data.y_test,
        factors_test=data.factors_test,
        factor_names=data.factor_names or None,
        k=knn_k,
        **codes,
    )
    metrics["effective_rank"] = float(diagnostics.effective_rank(f_te))
    metrics.update(objective.final_stats(h_te))
    return metrics


#: A binary channel is *closed* when its final BCE is at least this fraction of B ln 2 (the
#: BCE of coin flips): the message carries (almost) nothing.
CHANNEL_CLOSED_FRAC = 0.95


def channel_health(history: list[dict[str, Any]], n_bits: int) -> dict[str, Any]:
    """The binary channel's state at the end of a run, from its last epoch's mean BCE:
    ``bce_ratio`` = BCE / (B ln 2) (1 = coin flips) and ``channel_closed`` (the ratio at
    least :data:`CHANNEL_CLOSED_FRAC`); empty for objectives without a BCE term.

    >>> h = channel_health([{"bce": 170.0}], 256)
    >>> round(h["bce_ratio"], 3), h["channel_closed"]
    (0.958, True)
    """
    bce = [h["bce"] for h in history if isinstance(h.get("bce"), int | float)]
    if not bce or n_bits < 1:
        return {}
    ratio = float(bce[-1]) / (n_bits * math.log(2))
    return {"bce_ratio": ratio, "channel_closed": ratio >= CHANNEL_CLOSED_FRAC}


def collapse_reason(
    final: dict[str, Any], *, min_rank: float, entropy_frac: float, n_clusters: int
) -> str | None:
    """Why the run counts as collapsed, or None; reads the final metrics (the table's).

    Collapsed when the features' effective rank is below ``min_rank``, the raw teacher
    posterior's marginal entropy below ``entropy_frac * log K`` nats, the mean bit
    entropy below ``entropy_frac`` bits, or the teacher is *uniform*: its per-sample entropy
    above ``(1 - entropy_frac) * log K`` nats, i.e. every sample's posterior near uniform
    while the marginal stays uniform too (a fixed point the marginal rule cannot see: the
    clustering objectives end there on shapes, docs/TESTBED.md).

    >>> collapse_reason({"effective_rank": 5.0, "posterior_marginal_entropy": 0.1},
    ...                 min_rank=2.0, entropy_frac=0.1, n_clusters=256)
    'teacher posterior marginal entropy 0.100 < 0.555 nats'
    >>> collapse_reason({"effective_rank": 5.0, "posterior_marginal_entropy": 5.5,
    ...                  "sample_entropy": 5.52}, min_rank=2.0, entropy_frac=0.1, n_clusters=256)
    'uniform teacher: per-sample entropy 5.520 > 4.991 nats (log K = 5.545)'
    >>> collapse_reason({"effective_rank": 5.0, "bit_entropy": 0.5},
    ...                 min_rank=2.0, entropy_frac=0.1, n_clusters=64) is None
    True
    """
    rank = final.get("effective_rank")
    if rank is not None and rank < min_rank:
        return f"effective rank {rank:.3f} < {min_rank}"
    entropy = final.get(POSTERIOR_ENTROPY)
    if entropy is not None:
        floor = entropy_frac * math.log(n_clusters)
        if entropy < floor:
            return f"teacher posterior marginal entropy {entropy:.3f} < {floor:.3f} nats"
    sample = final.get("sample_entropy")
    if sample is not None:
        log_k = math.log(n_clusters)
        ceiling = (1 - entropy_frac) * log_k
        if sample > ceiling:
            return (
                f"uniform teacher: per-sample entropy {sample:.3f} > {ceiling:.3f} nats "
                f"(log K = {log_k:.3f})"
            )
    bit_entropy = final.get("bit_entropy")
    if bit_entropy is not None and bit_entropy < entropy_frac:
        return f"mean bit entropy {bit_entropy:.3f} < {entropy_frac} bits"
    return None
