"""The objective contract, shared by every objective family.

``objective(student: list[Tensor], teacher: list[Tensor], epoch=None) -> LossOutput``:
each tensor is (batch, dim) logits; the teacher views are the first ``len(teacher)``
student views (the global crops); every student view predicts every teacher view except
itself; the teacher is detached inside. See ``DESIGN.md``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import nn

from sslobjectives import _dist
from sslobjectives.schedules import RunSchedules, TeacherTempSchedule  # noqa: F401 (its old home)
from sslobjectives.suggest import did_you_mean


class LossOutput:
    """What an objective returns.

    Attributes:
        loss: scalar to back-propagate.
        terms: named scalar parts of the loss (e.g. ``bce``, ``rate``), not detached.
        stats: detached diagnostics (marginal entropy, Jensen gap, bit usage ...), empty when
            the objective was called with ``stats=False``. An objective may hand over a
            function of detached tensors instead of the dict (the default call does): it runs
            under ``no_grad`` the first time ``stats`` is read, so a caller that never reads
            them never pays for them.

    >>> out = LossOutput(torch.tensor(1.0), stats=lambda: {"x": torch.tensor(2.0)})
    >>> out.stats_pending, float(out.stats["x"]), out.stats_pending
    (True, 2.0, False)
    """

    def __init__(
        self,
        loss: torch.Tensor,
        terms: dict[str, torch.Tensor] | None = None,
        stats: dict[str, torch.Tensor] | Callable[[], dict[str, torch.Tensor]] | None = None,
    ):
        self.loss = loss
        self.terms = dict(terms or {})
        self.stats = stats if stats is not None else {}

    @property
    def stats(self) -> dict[str, torch.Tensor]:
        if callable(self._stats):
            compute, self._stats = self._stats, {}
            with torch.no_grad():
                self._stats = dict(compute())
        return self._stats

    @stats.setter
    def stats(self, value: dict[str, torch.Tensor] | Callable[[], dict]) -> None:
        self._stats = value if callable(value) else dict(value)

    @property
    def stats_pending(self) -> bool:
        """True while the diagnostics are a deferred function not yet run."""
        return callable(self._stats)

    def __repr__(self) -> str:
        stats = "<deferred>" if self.stats_pending else self._stats
        return f"LossOutput(loss={self.loss!r}, terms={self.terms!r}, stats={stats!r})"

    def scalars(self) -> dict[str, float]:
        """Loss, terms and stats as plain floats (one host sync), for logs and JSON.

        Reads ``stats``, so deferred diagnostics are computed here."""
        out = {"loss": float(self.loss.detach())}
        out.update({k: float(v.detach()) for k, v in self.terms.items()})
        out.update({k: float(v) for k, v in self.stats.items()})
        return out


class NonFiniteLossError(ValueError):
    """The loss (or one of its terms) is NaN or infinite although the inputs were finite."""

    def __init__(self, objective: str, term: str, value: float):
        self.term = term
        super().__init__(f"{objective}: loss term {term!r} is not finite ({value})")


def nearest_key(key: str, valid: list[str] | tuple[str, ...]) -> str:
    """``" (did you mean 'x'?)"`` for the closest valid key, or ``""``."""
    return did_you_mean(key, valid)


def make_config(cls: type, name: str, cfg: dict[str, Any]) -> Any:
    """Build the frozen dataclass ``cls`` from ``cfg``; unknown keys name the nearest valid.

    The values are checked by :func:`check_config_values` (also for a plug-in's Config
    that does not call it itself), then by the Config's own range checks."""
    valid = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in cfg if k not in valid]
    if unknown:
        problems = "; ".join(f"unknown key {k!r}{nearest_key(k, valid)}" for k in unknown)
        raise ValueError(f"objective {name!r}: {problems}. Valid keys: {', '.join(valid)}")
    problems = value_problems(cls, cfg)
    if problems:
        raise ValueError(f"objective {name!r}: {'; '.join(problems)}")
    return cls(**cfg)


def _allowed_types(hint: Any) -> tuple[type, ...]:
    """Runtime types of an annotation (``float | None`` -> ``(float, NoneType)``)."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = typing.get_args(hint)
    else:
        args = (hint,)
    return tuple(
        typing.get_origin(a) or a for a in args if isinstance(a, type) or typing.get_origin(a)
    )


def _describe_types(allowed: tuple[type, ...]) -> str:
    names = {int: "an integer", float: "a finite number", bool: "true or false", str: "a string"}
    return " or ".join(names.get(t, "None" if t is type(None) else t.__name__) for t in allowed)


def value_problem(key: str, value: Any, allowed: tuple[type, ...]) -> str | None:
    """Why ``value`` does not fit the annotation types ``allowed`` of ``key``, or None.

    ``true``/``false`` are not numbers, an integer is a valid float, a float is not an
    integer, and a float must be finite (NaN would slip through every ``<`` range check).

    >>> value_problem("beta", True, (float,))
    'beta must be a finite number, got True'
    >>> value_problem("clip_grad", float("nan"), (float,))
    'clip_grad must be a finite number, got nan'
    >>> value_problem("n_iter", 3, (int,)) is None
    True
    """
    if not allowed:
        return None
    ok = isinstance(value, allowed) and not (isinstance(value, bool) and bool not in allowed)
    if not ok and float in allowed and isinstance(value, int) and not isinstance(value, bool):
        ok = True
    if ok and isinstance(value, float) and not math.isfinite(value):
        ok = False
    if ok:
        return None
    return f"{key} must be {_describe_types(allowed)}, got {value!r}"


@functools.cache
def _field_types(cls: type) -> dict[str, tuple[type, ...]]:
    """Allowed runtime types per annotated field of ``cls``, resolved once per class (configs
    are checked every time one is built)."""
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # a plug-in's unresolvable annotation: its own checks decide
        return {}
    return {key: _allowed_types(hint) for key, hint in hints.items()}


def value_problems(cls: type, values: dict[str, Any]) -> list[str]:
    """Type and finiteness problems of ``values`` for the dataclass ``cls``'s annotations."""
    types_of = _field_types(cls)
    out = []
    for key, value in values.items():
        if key in types_of:
            problem = value_problem(key, value, types_of[key])
            if problem:
                out.append(problem)
    return out


def check_config_values(config: Any) -> None:
    """Raise ``ValueError`` naming every field of the dataclass ``config`` whose value has
    the wrong type or is not finite (call it first in a Config's ``__post_init__``).

    Skipped while ``torch.compile`` traces: a config built inside a compiled call derives
    from one already checked when it was built."""
    if torch.compiler.is_compiling():
        return
    values = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
    problems = value_problems(type(config), values)
    if problems:
        raise ValueError("; ".join(problems))


def check_views(student: object, teacher: object) -> tuple[list, list]:
    """Validate the view lists of the contract; return them as lists."""
    for name, views in (("student", student), ("teacher", teacher)):
        if not isinstance(views, (list, tuple)) or not views:
            raise ValueError(f"{name} must be a non-empty list of (batch, dim) tensors")
    student, teacher = list(student), list(teacher)
    if len(student) < 2:
        raise ValueError(f"fewer than two views: got {len(student)} student view(s)")
    if len(teacher) > len(student):
        raise ValueError(
            f"{len(teacher)} teacher views but {len(student)} student views: teacher views "
            "must be the first student views"
        )
    ref = None
    for name, views in (("student", student), ("teacher", teacher)):
        for i, v in enumerate(views):
            where = f"{name}[{i}]"
            if not isinstance(v, torch.Tensor) or not v.is_floating_point():
                raise ValueError(f"{where} must be a floating-point torch.Tensor")
            if v.dim() != 2:
                raise ValueError(f"{where} must have shape (batch, dim), got {tuple(v.shape)}")
            if v.shape[0] == 0:
                raise ValueError(f"{where} is an empty batch")
            if ref is None:
                ref = (where, v.shape)
            elif v.shape != ref[1]:
                raise ValueError(
                    f"{where} has shape {tuple(v.shape)} but {ref[0]} has {tuple(ref[1])}: "
                    "all views must share batch size and dim"
                )
    return student, teacher


class Objective(nn.Module):
    """Base of every objective: validates views, checks the loss, leaves maths to subclasses.

    Subclasses set ``name``, ``Config`` (a frozen dataclass) and ``head_kind`` (the output
    the objective reads: ``"cluster"`` logits over K prototypes, ``"binary"`` logits of B
    bits, or an ``"embedding"``; the trainer builds the matching head from it) and implement
    :meth:`compute`. State (running center, prior) lives in buffers, so it is saved with
    ``state_dict`` and moved with ``.to()``; it is updated only in training mode.
    """

    name: ClassVar[str] = ""
    Config: ClassVar[type] = object
    head_kind: ClassVar[str] = ""

    def __init__(self, config: Any = None):
        super().__init__()
        self.config = config if config is not None else self.Config()

    @classmethod
    def from_config(cls, **cfg: Any) -> Objective:
        return cls(make_config(cls.Config, cls.name, cfg))

    def forward(
        self,
        student: list[torch.Tensor],
        teacher: list[torch.Tensor],
        epoch: float | None = None,
        stats: bool | None = None,
    ) -> LossOutput:
        """Loss, terms and diagnostics of one multi-crop batch.

        ``stats``: ``None`` (default) defers the diagnostics until ``out.stats`` is first
        read, so a training loop that only back-propagates ``out.loss`` does not compute
        them; ``True`` computes them in this call (the trainer, on the steps it logs);
        ``False`` leaves them out. Deferred and eager diagnostics are the same numbers: both
        are computed from the detached tensors of this call (so read them before changing
        those tensors in place). Under ``torch.distributed`` they are computed in the call
        even when deferred: they contain collectives, which every rank must enter together
        (a read on one rank only would hang). Under ``torch.compile`` the deferred function
        is returned from the graph and runs eagerly when read (the diagnostics' value checks
        would otherwise break a ``fullgraph`` graph).
        """
        student, teacher = check_views(student, teacher)
        want = stats is None or bool(stats)
        out = self.compute(student, teacher, epoch, want)
        if not want:
            out.stats = {}
        elif stats or _dist.world_size() > 1:
            _ = out.stats  # run a deferred computation now
        if not torch.compiler.is_compiling():
            self._check_finite(out, student, teacher)
        return out

    def use_schedules(self, schedules: RunSchedules) -> None:
        """Take the run's schedules, built once per run with the lr, weight decay and EMA
        momentum (``RunSchedules.for_run(config, spe, objective.config)``); the trainer calls
        it once before the first step. An objective without a scheduled value ignores them
        (the default); one used on its own keeps what it built from its config."""

    def compute(
        self, student: list, teacher: list, epoch: float | None, stats: bool
    ) -> LossOutput:  # pragma: no cover - abstract
        """The loss of validated views. When ``stats`` is true, set ``out.stats`` to a dict
        or, better, to a function of *detached* tensors returning it: :meth:`forward` runs it
        at once when the caller asked for ``stats=True`` and defers it otherwise."""
        raise NotImplementedError

    def _check_finite(
        self, out: LossOutput, student: list[torch.Tensor], teacher: list[torch.Tensor]
    ) -> None:
        value = float(out.loss.detach())
        if math.isfinite(value):
            return
        for name, views in (("student", student), ("teacher", teacher)):
            for i, v in enumerate(views):
                if not bool(torch.isfinite(v).all()):
                    raise ValueError(f"{self.name}: {name}[{i}] has non-finite values (NaN or inf)")
        for term, t in out.terms.items():
            if not math.isfinite(float(t.detach())):
                raise NonFiniteLossError(self.name, term, float(t.detach()))
        raise NonFiniteLossError(self.name, "loss", value)

    def extra_repr(self) -> str:
        return repr(self.config)

    # -- end-of-run evaluation: what this family adds, as ``stats`` does per step --------

    def final_codes(
        self, train_out: torch.Tensor, test_out: torch.Tensor, with_factors: bool
    ) -> dict[str, torch.Tensor]:
        """Discrete codes of the (N, dim) head outputs that the end-of-run evaluation scores
        (keyword arguments of ``evaluate_representation``); none by default."""
        return {}

    def final_stats(self, test_out: torch.Tensor) -> dict[str, Any]:
        """End-of-run diagnostics of the (N, dim) test head outputs, JSON-ready; none by
        default."""
        return {}
