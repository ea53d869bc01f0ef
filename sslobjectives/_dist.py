"""Batch statistics over all processes when ``torch.distributed`` is initialised.

A statistic of the batch (a center, a prior, a Sinkhorn column sum, a coding-rate Gram
matrix) must be the statistic of the *joined* batch, so that a W-process run computes what
one process computes on the concatenated batch. In a single process nothing here calls a
collective.

Gradients: every process computes the same global loss from the reduced statistic, so the
gradient of that loss with respect to this process's share of the sum is the gradient with
respect to the sum itself. :func:`all_reduce_sum` therefore passes gradients through
unchanged (identity backward): the input gradients on each rank equal the single-process
input gradients of the joined batch. A trainer wrapping the model in DDP (which averages
parameter gradients over ranks) multiplies the loss by the world size to keep the same
parameter gradients as one process (see ``sslobjectives.train``).
"""

from __future__ import annotations

import torch
import torch.distributed as dist


def world_size() -> int:
    """Number of processes in the default group, 1 when not distributed."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


class _AllReduceSum(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        out = x.clone()
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return grad


def all_reduce_sum(x: torch.Tensor) -> torch.Tensor:
    """Sum of ``x`` over processes (identity in one process); gradients pass through."""
    if world_size() == 1:
        return x
    return _AllReduceSum.apply(x)


def all_reduce_max(x: torch.Tensor) -> torch.Tensor:
    """Element-wise max of ``x`` over processes, without gradient (used for stability only)."""
    if world_size() == 1:
        return x
    out = x.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.MAX)
    return out


def global_count(n: int, device: torch.device | None = None) -> int:
    """Total number of rows over processes given this process's ``n``."""
    if world_size() == 1:
        return n
    t = torch.tensor([n], dtype=torch.long, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return int(t.item())


@torch.no_grad()
def gather_rows(x: torch.Tensor) -> torch.Tensor:
    """The rows of ``x`` from every process, in rank order (``x`` itself in one process).

    For diagnostics only (no gradient): a statistic of the gathered rows is the statistic of
    the joined batch. Processes may hold different numbers of rows.
    """
    if world_size() == 1:
        return x
    x = x.detach().contiguous()
    sizes = [torch.zeros(1, dtype=torch.long, device=x.device) for _ in range(world_size())]
    dist.all_gather(sizes, torch.tensor([x.shape[0]], dtype=torch.long, device=x.device))
    n = [int(s.item()) for s in sizes]
    padded = torch.zeros((max(n), *x.shape[1:]), dtype=x.dtype, device=x.device)
    padded[: x.shape[0]] = x
    parts = [torch.empty_like(padded) for _ in n]
    dist.all_gather(parts, padded)
    return torch.cat([p[:k] for p, k in zip(parts, n, strict=True)])
