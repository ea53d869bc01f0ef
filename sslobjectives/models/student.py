"""The student: a backbone followed by the projection head its objective reads.

Built from plain values (names and sizes, no run config), so that anything that needs the
model (the trainer, a notebook, a benchmark) builds the same one.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from sslobjectives.models.backbones import build_backbone
from sslobjectives.models.heads import build_head


class Student(nn.Module):
    """Backbone followed by the projection head the objective reads."""

    def __init__(self, backbone: nn.Module, head: nn.Module):
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


def build_student(
    *,
    backbone: str,
    in_channels: int,
    image_size: int,
    head_kind: str,
    head_dim: int,
    head_hidden: int,
    head_layers: int,
    bottleneck_dim: int,
    seed: int,
    backbone_kwargs: dict[str, Any] | None = None,
    head_kwargs: dict[str, Any] | None = None,
) -> Student:
    """The backbone and the head of ``head_kind`` (with ``head_kwargs``, its further options,
    e.g. ``{"logit_norm": "batch"}``), initialised from ``seed``.

    >>> s = build_student(backbone="mlp", in_channels=1, image_size=8, head_kind="binary",
    ...                   head_dim=16, head_hidden=32, head_layers=2, bottleneck_dim=8, seed=0)
    >>> s(torch.randn(3, 1, 8, 8)).shape
    torch.Size([3, 16])
    """
    torch.manual_seed(seed)
    net = build_backbone(backbone, in_channels, image_size, **(backbone_kwargs or {}))
    head = build_head(
        head_kind,
        net.out_dim,
        head_dim,
        head_hidden,
        head_layers,
        bottleneck_dim,
        **(head_kwargs or {}),
    )
    return Student(net, head)
