"""Gradient clipping: DINO's per-parameter clipping, or one global norm.

DINO (arXiv 2104.14294; its ``clip_gradients``, used by SimDINO and BITS' DINO-family
recipe) clips every parameter tensor's gradient on its own: with ``n`` the L2 norm of that
tensor's gradient, ``grad <- grad * c / (n + 1e-6)`` whenever that factor is below 1. The
global mode is :func:`torch.nn.utils.clip_grad_norm_`: one norm over all gradients together,
one common factor ``c / (n + 1e-6)`` capped at 1.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

#: the ``clip_mode`` values of :class:`~sslobjectives.train.config.RunConfig`
CLIP_MODES = ("per_param", "global")


@torch.no_grad()
def clip_gradients(parameters: Iterable[torch.Tensor], max_norm: float, mode: str) -> None:
    """Clip the gradients of ``parameters`` in place (parameters without a gradient are skipped).

    >>> p = nn.Parameter(torch.zeros(2)); q = nn.Parameter(torch.zeros(1))
    >>> p.grad, q.grad = torch.tensor([3.0, 4.0]), torch.tensor([1.0])
    >>> clip_gradients([p, q], 2.5, "per_param")  # |p.grad| = 5 is halved, q's 1 < 2.5 kept
    >>> p.grad, q.grad
    (tensor([1.5000, 2.0000]), tensor([1.]))
    """
    if mode not in CLIP_MODES:
        raise ValueError(f"clip mode must be one of {', '.join(CLIP_MODES)}, got {mode!r}")
    params = [p for p in parameters if p.grad is not None]
    if not params:
        return
    if mode == "global":
        nn.utils.clip_grad_norm_(params, max_norm)
        return
    grads = [p.grad for p in params]
    norms = torch._foreach_norm(grads, 2.0)
    # DINO's factor; where it is >= 1 the gradient stays as it is (a product with 1.0 is exact)
    for g, n in zip(grads, norms, strict=True):
        g.mul_((max_norm / (n + 1e-6)).clamp(max=1.0))
