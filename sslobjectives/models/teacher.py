"""EMA teacher: the teacher's weights follow the student's [BYOL arXiv 2006.07733; DINO].

``theta_t <- m theta_t + (1 - m) theta_s`` with a cosine momentum schedule from ``base``
(0.996, DINO's default) to ``final`` (1.0) over training.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from sslobjectives.schedules import cosine


def cosine_momentum(step: int, total_steps: int, base: float = 0.996, final: float = 1.0) -> float:
    """Momentum at ``step`` of ``total_steps``: ``final - (final - base)(1 + cos(pi t/T))/2``.

    >>> cosine_momentum(0, 100), cosine_momentum(100, 100)
    (0.996, 1.0)
    """
    if total_steps <= 0:
        raise ValueError(f"total_steps must be > 0, got {total_steps}")
    if not 0.0 <= base <= final <= 1.0:
        raise ValueError(f"need 0 <= base <= final <= 1, got base={base}, final={final}")
    return cosine(step, total_steps, base, final)


class EMATeacher(nn.Module):
    """A frozen copy of a student module, updated by exponential moving average.

    Buffers (e.g. BatchNorm statistics) are copied from the student at each update.

    >>> student = nn.Linear(2, 2)
    >>> teacher = EMATeacher(student)
    >>> with torch.no_grad():
    ...     _ = student.weight.add_(1.0)
    >>> teacher.update(student, momentum=0.5)
    >>> bool(torch.allclose(teacher.module.weight, student.weight - 0.5))
    True
    """

    def __init__(self, student: nn.Module):
        super().__init__()
        self.module = copy.deepcopy(student)
        self.module.requires_grad_(False)

    @torch.no_grad()
    def update(self, student: nn.Module, momentum: float) -> None:
        """``theta_t <- momentum * theta_t + (1 - momentum) * theta_s``."""
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum must be in [0, 1], got {momentum}")
        t_params = list(self.module.parameters())
        s_params = [p.detach() for p in student.parameters()]
        if len(t_params) != len(s_params):
            raise ValueError("student and teacher have different parameter lists")
        torch._foreach_mul_(t_params, momentum)
        torch._foreach_add_(t_params, s_params, alpha=1.0 - momentum)
        for tb, sb in zip(self.module.buffers(), student.buffers(), strict=True):
            tb.copy_(sb)

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)
