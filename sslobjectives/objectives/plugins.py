"""Objectives from the user's own package, by name, without editing this one.

Two spellings reach an objective that is not built in, wherever an objective is named
(``build``, a run config, ``sslobj compare --objectives``, a sweep spec, ``sslobj demo``):

- ``"module:Class"``: the class ``Class`` of the importable module ``module`` (a dotted
  path). As uvicorn and gunicorn do, the current directory is searched too, after
  ``sys.path``, so ``my_loss.py`` next to where ``sslobj`` runs is found.
- a name registered in the entry-point group ``sslobjectives.objectives`` by an installed
  distribution, e.g. in its ``pyproject.toml``::

      [project.entry-points."sslobjectives.objectives"]
      my_loss = "my_package.losses:MyLoss"

A plug-in subclasses :class:`~sslobjectives.objectives.Objective`, declares its ``Config``
(a frozen dataclass: its values are type- and finiteness-checked like the built-ins') and
``head_kind``, and implements ``compute``. Built-in names take precedence over entry points.
:func:`check_objective` runs the contract's checks on it (``sslobj verify --objective``).
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import os
import sys
from typing import Any, NamedTuple

import torch

from sslobjectives.objectives.base import Objective

ENTRY_POINT_GROUP = "sslobjectives.objectives"
HEAD_KINDS = ("cluster", "binary", "embedding")

_entry_points_cache: dict[tuple[str, ...], dict[str, importlib.metadata.EntryPoint]] = {}


def entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    """The group's entry points by name, scanned once per ``sys.path`` (a path added later,
    e.g. a freshly installed target directory, is scanned again)."""
    key = tuple(sys.path)
    if key not in _entry_points_cache:
        found = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
        _entry_points_cache.clear()
        _entry_points_cache[key] = {ep.name: ep for ep in found}
    return _entry_points_cache[key]


def load(name: str) -> type[Objective] | None:
    """The plug-in class ``name`` names (``module:Class`` or an entry point), or ``None``
    when it is neither; a name that is one but cannot be loaded is a ``ValueError``."""
    if ":" in name:
        return check_class(name, _import_spelled(name))
    ep = entry_points().get(name)
    if ep is None:
        return None
    try:
        cls = ep.load()
    except Exception as err:
        raise ValueError(
            f"objective {name!r}: entry point {ep.value!r} of group {ENTRY_POINT_GROUP!r} "
            f"cannot be loaded ({type(err).__name__}: {err})"
        ) from err
    return check_class(name, cls)


def _import_spelled(name: str) -> Any:
    module_name, _, attr = name.partition(":")
    if not module_name or not attr or ":" in attr:
        raise ValueError(f"objective {name!r}: expected 'module:Class', e.g. 'my_losses:MyLoss'")
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.append(cwd)
    try:
        module = importlib.import_module(module_name)
    except Exception as err:
        raise ValueError(
            f"objective {name!r}: cannot import module {module_name!r} "
            f"({type(err).__name__}: {err}); is it on PYTHONPATH or installed?"
        ) from err
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"objective {name!r}: module {module_name!r} has no {attr!r}")
        obj = getattr(obj, part)
    return obj


def check_class(name: str, cls: Any) -> type[Objective]:
    """``cls`` if it is a usable objective class, else a ``ValueError`` saying what is missing."""
    if not (isinstance(cls, type) and issubclass(cls, Objective)):
        raise ValueError(
            f"objective {name!r}: {cls!r} is not a subclass of sslobjectives.objectives.Objective"
        )
    if not (isinstance(cls.Config, type) and dataclasses.is_dataclass(cls.Config)):
        raise ValueError(f"objective {name!r}: {cls.__name__}.Config must be a dataclass")
    if cls.head_kind not in HEAD_KINDS:
        raise ValueError(
            f"objective {name!r}: {cls.__name__}.head_kind must be one of "
            f"{', '.join(HEAD_KINDS)}, got {cls.head_kind!r}"
        )
    if cls.compute is Objective.compute:
        raise ValueError(f"objective {name!r}: {cls.__name__} does not implement compute()")
    return cls


# --------------------------------------------------------------------------- checks


class Check(NamedTuple):
    """One contract check: what it states, whether it held, and what was seen."""

    claim: str
    passed: bool
    detail: str


def check_objective(
    objective: str | type[Objective] | Objective,
    *,
    batch: int = 8,
    dim: int = 16,
    n_global: int = 2,
    n_local: int = 2,
    seed: int = 0,
) -> list[Check]:
    """Run the objective contract's checks on a (plug-in) objective; one ``Check`` each.

    On random float32 logits, ``n_global + n_local`` student views and the first
    ``n_global`` as teacher views: the loss is a finite scalar of the input's dtype; the
    gradients reach every student view and are finite; the teacher side is detached (teacher
    tensors that require grad get none, and passing the student's own tensors as teacher
    gives the same student gradients as passing detached copies); the stats are detached
    scalars, and the deferred ones equal those of ``stats=True``.

    >>> from sslobjectives.objectives import DINO
    >>> all(c.passed for c in check_objective(DINO))
    True
    """
    from sslobjectives.objectives import build, get

    if isinstance(objective, str):
        get(objective)  # a name that names nothing is a ValueError, not a failed check
        make = lambda: build(objective)  # noqa: E731
    elif isinstance(objective, type):
        cls = check_class(objective.__name__, objective)
        make = cls  # its default config
    else:
        make = lambda: type(objective)(objective.config)  # noqa: E731
    gen = torch.Generator().manual_seed(seed)
    base = [torch.randn(batch, dim, generator=gen) for _ in range(n_global + n_local)]
    checks: list[Check] = []

    def record(claim: str, passed: bool, detail: str) -> None:
        checks.append(Check(claim, bool(passed), detail))

    student = [v.clone().requires_grad_() for v in base]
    teacher = [v.clone().requires_grad_() for v in base[:n_global]]
    try:
        out = make()(student, teacher, epoch=0, stats=True)
    except Exception as err:  # the report says why, instead of stopping at the first check
        record("the loss is a finite scalar", False, f"{type(err).__name__}: {err}")
        return checks
    loss = out.loss
    finite = isinstance(loss, torch.Tensor) and loss.dim() == 0 and bool(torch.isfinite(loss))
    record(
        "the loss is a finite scalar of the input's dtype",
        finite and loss.dtype == base[0].dtype,
        f"loss {loss!r}" if not finite else f"{float(loss.detach()):.6g} ({loss.dtype})",
    )
    if not finite or not loss.requires_grad:
        record("gradients reach every student view", False, "the loss has no gradient")
        return checks
    loss.backward()
    missing = [i for i, s in enumerate(student) if s.grad is None]
    bad = [i for i, s in enumerate(student) if s.grad is not None and not s.grad.isfinite().all()]
    record(
        "gradients reach every student view, finite",
        not missing and not bad,
        f"no gradient: views {missing}; non-finite: views {bad}" if missing or bad else "ok",
    )
    leaked = [i for i, t in enumerate(teacher) if t.grad is not None and t.grad.abs().sum() > 0]
    record(
        "no gradient reaches the teacher tensors",
        not leaked,
        f"teacher views {leaked} received gradients" if leaked else "ok",
    )
    shared = [v.clone().requires_grad_() for v in base]
    copies = [v.clone().requires_grad_() for v in base]
    g_shared = torch.autograd.grad(
        make()(shared, shared[:n_global], epoch=0, stats=False).loss, shared, allow_unused=True
    )
    g_copies = torch.autograd.grad(
        make()(copies, [c.detach() for c in copies[:n_global]], epoch=0, stats=False).loss,
        copies,
        allow_unused=True,
    )
    same = all(
        (a is None and b is None) or (a is not None and b is not None and torch.equal(a, b))
        for a, b in zip(g_shared, g_copies, strict=True)
    )
    record(
        "the teacher side is detached inside (student tensors passed as teacher)",
        same,
        "ok" if same else "student gradients change when the teacher shares their tensors",
    )
    stats = out.stats
    not_detached = [
        k for k, v in stats.items() if not isinstance(v, torch.Tensor) or v.requires_grad
    ]
    not_scalar = [k for k, v in stats.items() if isinstance(v, torch.Tensor) and v.numel() != 1]
    record(
        "the stats are detached scalar tensors",
        not not_detached and not not_scalar,
        f"not detached tensors: {not_detached}; not scalars: {not_scalar}"
        if not_detached or not_scalar
        else f"{len(stats)} stats",
    )
    deferred = make()(base, base[:n_global], epoch=0).stats
    eager = make()(base, base[:n_global], epoch=0, stats=True).stats
    equal = deferred.keys() == eager.keys() and all(
        torch.equal(deferred[k], eager[k]) for k in eager
    )
    record(
        "deferred stats (default call) equal stats=True",
        equal,
        "ok" if equal else f"deferred {sorted(deferred)} vs eager {sorted(eager)}",
    )
    return checks


def format_checks(name: str, checks: list[Check]) -> str:
    """One line per check and a summary line, for the command line."""
    lines = [f"{'PASS' if c.passed else 'FAIL'}  {c.claim}: {c.detail}" for c in checks]
    passed = sum(c.passed for c in checks)
    lines.append(f"objective {name!r}: {passed}/{len(checks)} checks pass")
    return "\n".join(lines)
