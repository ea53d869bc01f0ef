"""schedules.py: one cosine and one warm-up, built once per run, equal to the old per-step code."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sslobjectives.heads import BinaryHead, DINOHead
from sslobjectives.schedules import RunSchedules, cosine
from sslobjectives.teacher import cosine_momentum
from sslobjectives.train import RunConfig


# The trainer's and the teacher's per-step formulas before the schedules had one home, written
# out again here as the reference the precomputed schedules must reproduce bit for bit.
def _old_cosine(step, total, start, end):
    t = min(max(step, 0), total) / max(total, 1)
    return end + (start - end) * (1 + math.cos(math.pi * t)) / 2


def _old_lr_at(cfg, step, spe):
    warm, total = cfg.warmup_epochs * spe, cfg.epochs * spe
    if step < warm:
        return cfg.lr * (step + 1) / warm
    return _old_cosine(step - warm, total - warm, cfg.lr, cfg.min_lr)


def _old_momentum(step, total, base, final):
    t = min(max(step, 0), total) / total
    return final - (final - base) * (1 + math.cos(math.pi * t)) / 2


@settings(max_examples=40, deadline=None)
@given(
    epochs=st.integers(1, 12),
    spe=st.integers(1, 9),
    warmup=st.integers(0, 4),
    lr=st.floats(1e-5, 1.0),
    base=st.floats(0.5, 1.0),
)
def test_schedules_equal_the_old_per_step_values(epochs, spe, warmup, lr, base):
    cfg = RunConfig(epochs=epochs, warmup_epochs=min(warmup, epochs), lr=lr, momentum_base=base)
    s = RunSchedules.for_run(cfg, spe)
    total = epochs * spe
    assert len(s.lr) == len(s.weight_decay) == len(s.momentum) == total
    for step in range(total):
        assert s.lr[step] == _old_lr_at(cfg, step, spe)
        assert s.weight_decay[step] == _old_cosine(
            step, total, cfg.weight_decay, cfg.weight_decay_end
        )
        assert s.momentum[step] == _old_momentum(step, total, base, cfg.momentum_final)
        assert cosine_momentum(step, total, base, cfg.momentum_final) == s.momentum[step]
    for e in range(epochs):
        assert s.epoch_lr(e) == _old_lr_at(cfg, (e + 1) * spe - 1, spe)
        assert s.freeze_last_layer(e) == (e < cfg.freeze_last_layer_epochs)


def test_cosine_endpoints_and_clipping():
    assert cosine(0, 10, 2.0, 1.0) == 2.0 and cosine(10, 10, 2.0, 1.0) == 1.0
    assert cosine(-3, 10, 2.0, 1.0) == 2.0 and cosine(99, 10, 2.0, 1.0) == 1.0
    assert cosine(5, 10, 2.0, 1.0) == pytest.approx(1.5)


def test_bad_schedules_are_named():
    with pytest.raises(ValueError, match="steps_per_epoch must be >= 1"):
        RunSchedules.for_run(RunConfig(), 0)
    kw = dict(
        epochs=1,
        steps_per_epoch=1,
        lr=1,
        min_lr=0,
        warmup_epochs=0,
        weight_decay=0,
        weight_decay_end=0,
    )
    with pytest.raises(ValueError, match="momentum_base <= momentum_final"):
        RunSchedules.build(**kw, momentum_base=0.9, momentum_final=0.5)


def test_freeze_last_layer_is_a_head_method():
    head = DINOHead(4, 6, hidden_dim=8, bottleneck_dim=3)
    head(torch.randn(5, 4)).sum().backward()
    assert all(p.grad is not None for p in head.last_layer.parameters() if p.requires_grad)
    head.freeze_last_layer()
    assert all(p.grad is None for p in head.last_layer.parameters())
    assert all(p.grad is not None for p in head.mlp.parameters())
    mlp_head = BinaryHead(4, 3, hidden_dim=8)
    mlp_head(torch.randn(5, 4)).sum().backward()
    mlp_head.freeze_last_layer()  # no prototype layer: every gradient stays
    assert all(p.grad is not None for p in mlp_head.parameters())
