"""Objectives with state, and a registry: ``build("bits", beta=0.2)``.

>>> sorted(names())
['bits', 'dino', 'kl_inverse_prior', 'simdino', 'sinkhorn']
>>> build("bits", beta=0.2).config.beta
0.2
"""

from __future__ import annotations

from typing import Any

from sslobjectives.objectives.base import (
    LossOutput,
    NonFiniteLossError,
    Objective,
    TeacherTempSchedule,
    check_views,
    nearest_key,
)
from sslobjectives.objectives.bits import BITS, BitsConfig
from sslobjectives.objectives.cluster import (
    DINO,
    ClusterConfig,
    DinoConfig,
    InversePriorConfig,
    KLInversePrior,
    Sinkhorn,
    SinkhornConfig,
)
from sslobjectives.objectives.simdino import SimDINO, SimDinoConfig

REGISTRY: dict[str, type[Objective]] = {
    cls.name: cls for cls in (DINO, KLInversePrior, Sinkhorn, BITS, SimDINO)
}


def names() -> list[str]:
    """The registered objective names."""
    return list(REGISTRY)


def get(name: str) -> type[Objective]:
    """The objective class registered as ``name``; unknown names list the valid ones."""
    if name not in REGISTRY:
        raise ValueError(
            f"unknown objective {name!r}{nearest_key(name, names())}. "
            f"Valid objectives: {', '.join(names())}"
        )
    return REGISTRY[name]


def build(name: str, **cfg: Any) -> Objective:
    """Build the objective ``name`` with config keys ``cfg`` (unknown keys are errors)."""
    return get(name).from_config(**cfg)


__all__ = [
    "BITS",
    "DINO",
    "REGISTRY",
    "BitsConfig",
    "ClusterConfig",
    "DinoConfig",
    "InversePriorConfig",
    "KLInversePrior",
    "LossOutput",
    "NonFiniteLossError",
    "Objective",
    "SimDINO",
    "SimDinoConfig",
    "Sinkhorn",
    "SinkhornConfig",
    "TeacherTempSchedule",
    "build",
    "check_views",
    "get",
    "names",
]
