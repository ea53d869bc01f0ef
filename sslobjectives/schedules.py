"""Every per-step schedule of a run, from one cosine and one linear warm-up, built once.

As DINOv2's ``build_schedulers`` (arXiv 2304.07193) does, a run builds its schedules once,
before its first step, as one value per step; the trainer then reads ``schedules.lr[step]``
instead of recomputing formulas inside the loop:

- learning rate: linear warm-up from ``lr / warm`` to ``lr`` over ``warmup_epochs``, then
  cosine decay to ``min_lr`` [SGDR, arXiv 1608.03983; DINO, arXiv 2104.14294];
- weight decay: cosine from ``weight_decay`` to ``weight_decay_end`` (DINO);
- EMA momentum: cosine from ``momentum_base`` to ``momentum_final`` [BYOL, arXiv 2006.07733];
- the prototype layer is frozen for the first ``freeze_last_layer_epochs`` epochs (DINO).

The teacher-temperature warm-up is the objective's own (``TeacherTempSchedule``): it is part of
the objective's config and state, and the trainer never knows which objective it runs.

>>> [round(cosine(s, 4, 1.0, 0.0), 3) for s in range(5)]
[1.0, 0.854, 0.5, 0.146, 0.0]
>>> warmup_cosine(0, 10, 2, 1.0, 0.0), warmup_cosine(1, 10, 2, 1.0, 0.0)
(0.5, 1.0)
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


def warmup_cosine(step: int, total: int, warmup: int, peak: float, end: float) -> float:
    """Linear warm-up to ``peak`` over the first ``warmup`` steps (``peak (step+1)/warmup``),
    then :func:`cosine` from ``peak`` to ``end`` over the remaining ``total - warmup``."""
    if step < warmup:
        return peak * (step + 1) / warmup
    return cosine(step - warmup, total - warmup, peak, end)


@dataclass(frozen=True)
class RunSchedules:
    """The per-step values of one run; index with the global step ``epoch * spe + it``.

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
        )

    @classmethod
    def for_run(cls, config, steps_per_epoch: int) -> RunSchedules:
        """The schedules of a :class:`~sslobjectives.train.config.RunConfig`."""
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
        )

    def freeze_last_layer(self, epoch: int) -> bool:
        """Whether the head's last layer is frozen during ``epoch`` (0-based)."""
        return epoch < self.freeze_last_layer_epochs

    def epoch_lr(self, epoch: int) -> float:
        """The learning rate of ``epoch``'s last step (what the history records)."""
        return self.lr[(epoch + 1) * self.steps_per_epoch - 1]
