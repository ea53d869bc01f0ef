"""Every per-step schedule of a run, from one cosine and one linear warm-up, built once.

As DINOv2's ``build_schedulers`` (arXiv 2304.07193) does, a run builds its schedules once,
before its first step, as one value per step; the trainer then reads ``schedules.lr[step]``
instead of recomputing formulas inside the loop:

- learning rate: linear warm-up from ``lr / warm`` to ``lr`` over ``warmup_epochs``, then
  cosine decay to ``min_lr`` [SGDR, arXiv 1608.03983; DINO, arXiv 2104.14294];
- weight decay: cosine from ``weight_decay`` to ``weight_decay_end`` (DINO);
- EMA momentum: cosine from ``momentum_base`` to ``momentum_final`` [BYOL, arXiv 2006.07733];
- the prototype layer is frozen for the first ``freeze_last_layer_epochs`` epochs (DINO);
- teacher temperature: linear warm-up from ``warmup_teacher_temp`` to ``teacher_temp`` over
  ``warmup_teacher_temp_epochs``, then constant (DINO): :class:`TeacherTempSchedule`, built
  from the objective's config (``RunSchedules.for_run(config, spe, objective.config)``) and
  handed to the objective (``Objective.use_schedules``), so the trainer never knows which
  objective it runs. An objective used on its own builds the same schedule from its config.

Both warm-ups are :func:`linear_warmup`. The teacher temperature is evaluated at the
fractional epoch the caller passes (``epoch + it / steps_per_epoch``), as the objective
contract has it, rather than read from a per-step table.

>>> [round(cosine(s, 4, 1.0, 0.0), 3) for s in range(5)]
[1.0, 0.854, 0.5, 0.146, 0.0]
>>> warmup_cosine(0, 10, 2, 1.0, 0.0), warmup_cosine(1, 10, 2, 1.0, 0.0)
(0.5, 1.0)
>>> linear_warmup(1, 4, 0.0, 2.0), linear_warmup(9, 4, 0.0, 2.0)
(0.5, 2.0)
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def cosine(step: int, total: int, start: float, end: float) -> float:
    """Half a cosine from ``start`` (step 0) to ``end`` (step ``total`` and after).

    ``end + (start - end)(1 + cos(pi t / T)) / 2`` with ``t`` clipped to ``[0, T]``.
    """
    t = min(max(step, 0), total) / max(total, 1)
    return end + (start - end) * (1 + math.cos(math.pi * t)) / 2


def linear_warmup(t: float, length: float, start: float, end: float) -> float:
    """The straight line from ``start`` (``t = 0``) to ``end`` (``t = length``), then ``end``.

    ``start + (end - start) * t / length``, evaluated in that order (the lr and
    teacher-temperature values of earlier versions are reproduced bit for bit,
    ``tests/test_schedules.py``); ``t`` past ``length`` gives ``end``.
    """
    if t > length:
        return end
    return start + (end - start) * t / length


def warmup_cosine(step: int, total: int, warmup: int, peak: float, end: float) -> float:
    """:func:`linear_warmup` from 0 to ``peak`` over the first ``warmup`` steps (step ``s``
    gets ``peak (s+1)/warmup``), then :func:`cosine` from ``peak`` to ``end`` over the
    remaining ``total - warmup``."""
    if step < warmup:
        return linear_warmup(step + 1, warmup, 0.0, peak)
    return cosine(step - warmup, total - warmup, peak, end)


def _check_number(value: object, name: str, low: float, strict: bool) -> None:
    """One-line ``ValueError`` unless ``value`` is a finite number ``> low`` (``>=`` when
    not ``strict``); ``true``/``false`` are not numbers."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if value < low or (strict and value == low):
        raise ValueError(f"{name} must be {'>' if strict else '>='} {low:g}, got {value!r}")


@dataclass(frozen=True)
class TeacherTempSchedule:
    """Linear warm-up of the teacher temperature, then constant [DINO, arXiv 2104.14294].

    Defaults 0.04 -> 0.07 over 30 epochs are DINO's ViT recipe. ``epoch`` may be fractional
    (``step / steps_per_epoch``); ``None`` means after the warm-up. The value is
    :func:`linear_warmup` at the warm-up's progress ``epoch / warmup_epochs`` (length 1),
    rounded to 12 decimals.

    >>> TeacherTempSchedule(0.04, 0.07, 30)(15)
    0.055
    >>> TeacherTempSchedule(0.04, 0.07, 30)(None)
    0.07
    """

    warmup_teacher_temp: float = 0.04
    teacher_temp: float = 0.07
    warmup_epochs: float = 30

    def __post_init__(self) -> None:
        _check_number(self.warmup_teacher_temp, "warmup_teacher_temp", 0.0, strict=True)
        _check_number(self.teacher_temp, "teacher_temp", 0.0, strict=True)
        _check_number(self.warmup_epochs, "warmup_epochs", 0.0, strict=False)

    @classmethod
    def of(cls, config: object) -> TeacherTempSchedule | None:
        """The schedule of an objective config with ``warmup_teacher_temp``, ``teacher_temp``
        and ``warmup_teacher_temp_epochs`` (the clustering objectives'), or None."""
        keys = ("warmup_teacher_temp", "teacher_temp", "warmup_teacher_temp_epochs")
        if not all(hasattr(config, key) for key in keys):
            return None
        return cls(*(getattr(config, key) for key in keys))

    def __call__(self, epoch: float | None) -> float:
        if epoch is None or epoch >= self.warmup_epochs:
            return self.teacher_temp
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        progress = epoch / self.warmup_epochs
        return round(linear_warmup(progress, 1.0, self.warmup_teacher_temp, self.teacher_temp), 12)


@dataclass(frozen=True)
class RunSchedules:
    """The per-step values of one run; index with the global step ``epoch * spe + it``.

    ``teacher_temp`` is the run objective's :class:`TeacherTempSchedule` (None when its
    objective has no teacher temperature), called with the fractional epoch.

    >>> s = RunSchedules.build(epochs=2, steps_per_epoch=3, lr=1.0, min_lr=0.0, warmup_epochs=1,
    ...                        weight_decay=0.0, weight_decay_end=1.0, momentum_base=0.5,
    ...                        momentum_final=1.0, freeze_last_layer_epochs=1)
    >>> [round(v, 3) for v in s.lr]
    [0.333, 0.667, 1.0, 1.0, 0.75, 0.25]
    >>> s.weight_decay[0], s.momentum[0], s.freeze_last_layer(0), s.freeze_last_layer(1)
    (0.0, 0.5, True, False)
    """

    lr: tuple[float, ...]
    weight_decay: tuple[float, ...]
    momentum: tuple[float, ...]
    steps_per_epoch: int
    freeze_last_layer_epochs: int = 0
    teacher_temp: TeacherTempSchedule | None = None

    @classmethod
    def build(
        cls,
        *,
        epochs: int,
        steps_per_epoch: int,
        lr: float,
        min_lr: float,
        warmup_epochs: int,
        weight_decay: float,
        weight_decay_end: float,
        momentum_base: float,
        momentum_final: float,
        freeze_last_layer_epochs: int = 0,
        teacher_temp: TeacherTempSchedule | None = None,
    ) -> RunSchedules:
        if steps_per_epoch < 1:
            raise ValueError(f"steps_per_epoch must be >= 1, got {steps_per_epoch}")
        if not 0.0 <= momentum_base <= momentum_final <= 1.0:
            raise ValueError(
                f"need 0 <= momentum_base <= momentum_final <= 1, "
                f"got {momentum_base}, {momentum_final}"
            )
        total = epochs * steps_per_epoch
        warm = warmup_epochs * steps_per_epoch
        steps = range(total)
        return cls(
            lr=tuple(warmup_cosine(s, total, warm, lr, min_lr) for s in steps),
            weight_decay=tuple(cosine(s, total, weight_decay, weight_decay_end) for s in steps),
            momentum=tuple(cosine(s, total, momentum_base, momentum_final) for s in steps),
            steps_per_epoch=steps_per_epoch,
            freeze_last_layer_epochs=freeze_last_layer_epochs,
            teacher_temp=teacher_temp,
        )

    @classmethod
    def for_run(cls, config, steps_per_epoch: int, objective_config=None) -> RunSchedules:
        """The schedules of a :class:`~sslobjectives.train.config.RunConfig`; the teacher
        temperature's from ``objective_config``, the run objective's config built from
        ``config.resolved_objective_cfg()`` (whose warm-up length is
        ``teacher_temp_warmup_frac * epochs`` unless the objective config sets it)."""
        return cls.build(
            epochs=config.epochs,
            steps_per_epoch=steps_per_epoch,
            lr=config.lr,
            min_lr=config.min_lr,
            warmup_epochs=config.warmup_epochs,
            weight_decay=config.weight_decay,
            weight_decay_end=config.weight_decay_end,
            momentum_base=config.momentum_base,
            momentum_final=config.momentum_final,
            freeze_last_layer_epochs=config.freeze_last_layer_epochs,
            teacher_temp=TeacherTempSchedule.of(objective_config),
        )

    def freeze_last_layer(self, epoch: int) -> bool:
        """Whether the head's last layer is frozen during ``epoch`` (0-based)."""
        return epoch < self.freeze_last_layer_epochs

    def epoch_lr(self, epoch: int) -> float:
        """The learning rate of ``epoch``'s last step (what the history records)."""
        return self.lr[(epoch + 1) * self.steps_per_epoch - 1]
