"""An exported backbone: its weights and what rebuilds it, in one file ``torch.load`` reads
with ``weights_only=True`` (only tensors, strings, numbers, lists and dicts inside).

``sslobj export RUN_DIR --out backbone.pt`` writes the teacher's backbone of a run; use it::

    from sslobjectives.models import load_backbone
    net = load_backbone("backbone.pt")
    features = net(images)  # (N, C, H, W) floats in [0, 1] -> (N, D)

>>> import tempfile, torch
>>> from sslobjectives.models.backbones import build_backbone
>>> _ = torch.manual_seed(0)
>>> net = build_backbone("mlp", in_channels=1, image_size=8)
>>> path = tempfile.mkdtemp() + "/backbone.pt"
>>> torch.save(backbone_payload(net, backbone="mlp", backbone_kwargs={}, in_channels=1,
...                             image_size=8), path)
>>> again = load_backbone(path)
>>> x = torch.rand(2, 1, 8, 8)
>>> bool(torch.equal(again(x), net.eval()(x)))
True
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from sslobjectives.models.backbones import build_backbone

#: the file's format tag; a reader refuses other tags
FORMAT = "sslobjectives.backbone/1"


def backbone_payload(
    module: nn.Module,
    *,
    backbone: str,
    backbone_kwargs: dict[str, Any],
    in_channels: int,
    image_size: int,
    image_shape: tuple[int, ...] | None = None,
    **provenance: Any,
) -> dict[str, Any]:
    """The dict to ``torch.save``: weights (on the CPU), the arguments of
    :func:`~sslobjectives.models.backbones.build_backbone`, the ``(C, H, W)`` of the images it
    was trained on (default square ``image_size``) and ``provenance`` (run id, epoch, dataset
    ...: plain values only)."""
    shape = image_shape or (in_channels, image_size, image_size)
    return {
        "format": FORMAT,
        "backbone": backbone,
        "backbone_kwargs": dict(backbone_kwargs),
        "in_channels": int(in_channels),
        "image_size": int(image_size),
        "image_shape": [int(n) for n in shape],
        "out_dim": int(module.out_dim),
        "state_dict": {k: v.detach().cpu().clone() for k, v in module.state_dict().items()},
        "provenance": provenance,
    }


def load_backbone(path: str | Path, map_location: Any = "cpu") -> nn.Module:
    """The backbone saved in ``path`` (by ``sslobj export``), in eval mode.

    Raises ValueError when the file is not an exported backbone."""
    payload = torch.load(path, map_location=map_location, weights_only=True)
    return backbone_from_payload(payload, source=str(path))


def backbone_from_payload(payload: Any, source: str = "<payload>") -> nn.Module:
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise ValueError(
            f"{source} is not an exported backbone (format {found!r}, expected {FORMAT!r}); "
            "write one with sslobj export RUN_DIR --out FILE"
        )
    net = build_backbone(
        payload["backbone"],
        payload["in_channels"],
        payload["image_size"],
        **payload["backbone_kwargs"],
    )
    net.load_state_dict(payload["state_dict"])
    return net.eval()
