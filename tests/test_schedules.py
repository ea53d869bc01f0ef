"""schedules.py: one cosine and one warm-up, built once per run, equal to the old per-step code."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sslobjectives.heads import BinaryHead, DINOHead
from sslobjectives.objectives import build
from sslobjectives.schedules import RunSchedules, TeacherTempSchedule, cosine
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


def _old_teacher_temp(warm, final, length, epoch):
    """The objective's own TeacherTempSchedule before it was built in schedules.py."""
    if epoch is None or epoch >= length:
        return final
    frac = epoch / length
    return round(warm + frac * (final - warm), 12)


_TEMPS = st.floats(1e-3, 1.0)


@settings(max_examples=60, deadline=None)
@given(
    warm=_TEMPS,
    final=_TEMPS,
    length=st.one_of(st.sampled_from([0, 1, 30, 0.3, 0.9, 2.4]), st.floats(0.0, 100.0)),
    spe=st.integers(1, 64),
    epochs=st.integers(1, 40),
)
def test_teacher_temp_equals_the_old_values_bit_for_bit(warm, final, length, spe, epochs):
    sched = TeacherTempSchedule(warm, final, length)
    epochs_seen = [e + it / spe for e in range(epochs) for it in range(spe)]
    for epoch in [*epochs_seen, length, length / 2, None]:
        assert sched(epoch) == _old_teacher_temp(warm, final, length, epoch), epoch


@pytest.mark.parametrize("objective", ["dino", "kl_inverse_prior", "sinkhorn"])
@pytest.mark.parametrize(
    ("epochs", "frac", "spe"), [(10, 0.3, 7), (3, 0.3, 25), (5, 0.5, 3), (20, 1.0, 1), (4, 0.0, 9)]
)
def test_the_run_schedules_teacher_temp_is_the_objectives_old_one(objective, epochs, frac, spe):
    """RunConfig's teacher_temp_warmup_frac path: the run's schedules (built once, handed to
    the objective) give the temperature the objective computed itself before, at every step."""
    cfg = RunConfig(objective=objective, epochs=epochs, teacher_temp_warmup_frac=frac)
    obj = build(objective, **cfg.resolved_objective_cfg())
    s = RunSchedules.for_run(cfg, spe, obj.config)
    obj.use_schedules(s)
    assert obj.teacher_temp is s.teacher_temp
    length = round(frac * epochs, 6)
    assert s.teacher_temp == TeacherTempSchedule(0.04, 0.07, length)
    views = [torch.randn(4, 8, generator=torch.Generator().manual_seed(i)) for i in range(3)]
    for step in range(epochs * spe):
        epoch = step // spe + (step % spe) / spe  # as the trainer passes it
        old = _old_teacher_temp(0.04, 0.07, length, epoch)
        assert s.teacher_temp(epoch) == old
        if step % spe == 0:
            out = obj(views, views[:2], epoch=epoch, stats=True)
            assert float(out.stats["teacher_temp"]) == float(torch.tensor(old))
    assert obj.final_stats(torch.randn(6, 8))["teacher_temp"] == 0.07


def test_objectives_without_a_teacher_temperature_have_none_in_the_run_schedules():
    for name in ("bits", "simdino"):
        cfg = RunConfig(objective=name)
        obj = build(name, **cfg.resolved_objective_cfg())
        s = RunSchedules.for_run(cfg, 3, obj.config)
        assert s.teacher_temp is None
        obj.use_schedules(s)  # ignored
    assert RunSchedules.for_run(RunConfig(), 3).teacher_temp is None


def test_an_objective_on_its_own_builds_its_schedule_once_from_its_config():
    obj = build("dino", warmup_teacher_temp=0.02, teacher_temp=0.06, warmup_teacher_temp_epochs=4)
    assert obj.teacher_temp == TeacherTempSchedule(0.02, 0.06, 4)
    views = [torch.randn(4, 8) for _ in range(2)]
    out = obj(views, views, epoch=2, stats=True)
    assert float(out.stats["teacher_temp"]) == pytest.approx(0.04)


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
