"""Objectives with state, and a registry: ``build("bits", beta=0.2)``.

>>> sorted(names())
['bits', 'dino', 'kl_inverse_prior', 'simdino', 'sinkhorn']
>>> build("bits", beta=0.2).config.beta
0.2
"""

from __future__ import annotations

from typing import Any

from sslobjectives.objectives import plugins
from sslobjectives.objectives.base import (
    LossOutput,
    NonFiniteLossError,
    Objective,
    TeacherTempSchedule,
    check_config_values,
    check_views,
    make_config,
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
from sslobjectives.objectives.plugins import check_objective
from sslobjectives.objectives.simdino import SimDINO, SimDinoConfig

REGISTRY: dict[str, type[Objective]] = {
    cls.name: cls for cls in (DINO, KLInversePrior, Sinkhorn, BITS, SimDINO)
}


def names() -> list[str]:
    """The objective names: built-ins, then installed plug-ins (entry-point group
    ``sslobjectives.objectives``). ``module:Class`` spellings are valid too (see
    :mod:`sslobjectives.objectives.plugins`)."""
    return [*REGISTRY, *sorted(k for k in plugins.entry_points() if k not in REGISTRY)]


def get(name: str) -> type[Objective]:
    """The objective class ``name`` names: a built-in, an installed plug-in's entry point or
    ``module:Class``; unknown names list the valid ones."""
    if not isinstance(name, str):
        raise ValueError(f"objective must be a name (a string), got {name!r}")
    if name in REGISTRY:
        return REGISTRY[name]
    cls = plugins.load(name)
    if cls is None:
        raise ValueError(
            f"unknown objective {name!r}{nearest_key(name, names())}. "
            f"Valid objectives: {', '.join(names())}, or 'module:Class' of your own "
            "Objective subclass"
        )
    return cls


def build(name: str, **cfg: Any) -> Objective:
    """Build the objective ``name`` with config keys ``cfg`` (unknown keys are errors)."""
    cls = get(name)
    if name not in REGISTRY:  # a plug-in's messages name it as spelled
        return cls(make_config(cls.Config, name, cfg))
    return cls.from_config(**cfg)


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
    "check_config_values",
    "check_objective",
    "check_views",
    "get",
    "names",
]
