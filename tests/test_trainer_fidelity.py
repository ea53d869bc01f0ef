"""The trainer does what the objectives' contract and the papers assume, checked by behaviour
through the public training API (a Trainer, its epochs, its optimiser and models):

- a projection-head reset clears exactly the head's optimiser state [BITS, arXiv 2602.09764]:
  stale Adam moments would undo the reset; nothing else may be cleared;
- the teacher's outputs reach the objective view by view in the student's order, so student
  view i is matched with teacher views j != i (the objective contract);
- the teacher is the EMA of the student [DINO, arXiv 2104.14294]: its forward runs the EMA
  weights, which differ from the student's after a step with momentum < 1 and equal them
  with momentum 0.

Each test was checked to fail on the one-line mistake it guards against.
"""

from __future__ import annotations

import copy

import pytest
import torch

from sslobjectives.train import RunConfig, Trainer

# 1347 digits training images: batch 600 gives 2 steps per epoch
SMALL = dict(
    dataset="digits",
    epochs=2,
    batch_size=600,
    n_local=1,
    head_dim=16,
    head_hidden=32,
    bottleneck_dim=8,
    warmup_epochs=0,
    freeze_last_layer_epochs=0,
    knn_k=5,
    device="cpu",
)


def trainer(tmp_path, **kw) -> Trainer:
    return Trainer(RunConfig(**{**SMALL, **kw}), tmp_path, progress=False)


class Recording:
    """Wraps the objective: records what the trainer passes to it, then computes as usual."""

    def __init__(self, objective):
        self.objective = objective
        self.calls: list[tuple[list[torch.Tensor], list[torch.Tensor]]] = []

    def __call__(self, student, teacher, **kw):
        self.calls.append(([s.detach().clone() for s in student], [t.clone() for t in teacher]))
        return self.objective(student, teacher, **kw)


def _state_snapshot(optimizer, params):
    return {
        id(p): {k: v.clone() for k, v in optimizer.state[p].items()} if p in optimizer.state else {}
        for p in params
    }


# --------------------------------------------------------------------------- head reset


def test_head_reset_clears_exactly_the_heads_optimiser_state(tmp_path):
    t = trainer(tmp_path, objective="bits", reset_period=1)
    head = list(t.student.head.parameters())
    head_ids = {id(p) for p in head}
    rest = [p for p in t.student.parameters() if id(p) not in head_ids]
    assert head and rest
    t.train_epoch(0)
    after_epoch0 = _state_snapshot(t.optimizer, rest)
    assert all(after_epoch0[id(p)] for p in rest) and all(t.optimizer.state[p] for p in head)

    seen = []
    real_step = t.optimizer.step

    def step_recording_state(*args, **kwargs):
        if not seen:  # the first step after the reset of epoch 1
            seen.append((_state_snapshot(t.optimizer, head), _state_snapshot(t.optimizer, rest)))
        return real_step(*args, **kwargs)

    t.optimizer.step = step_recording_state
    t.train_epoch(1)
    assert t.resets == [1]
    head_state, rest_state = seen[0]
    assert all(not head_state[id(p)] for p in head), "the head kept Adam moments across a reset"
    for p in rest:  # everything else keeps its moments, untouched
        assert rest_state[id(p)].keys() == after_epoch0[id(p)].keys()
        for k, v in after_epoch0[id(p)].items():
            torch.testing.assert_close(rest_state[id(p)][k], v, rtol=0, atol=0)


def test_no_reset_keeps_the_heads_optimiser_state(tmp_path):
    """The control: without a reset the head's moments carry over (so the test above is about
    the reset, not about the optimiser losing state between epochs)."""
    t = trainer(tmp_path, objective="bits", reset_period=None)
    head = list(t.student.head.parameters())
    t.train_epoch(0)
    steps = {id(p): float(t.optimizer.state[p]["step"]) for p in head}
    t.train_epoch(1)
    assert all(float(t.optimizer.state[p]["step"]) == steps[id(p)] + 2 for p in head)


# --------------------------------------------------------------------------- teacher views


@pytest.mark.parametrize("objective", ["dino", "bits", "simdino"])
def test_teacher_views_reach_the_objective_in_the_students_order(tmp_path, objective):
    """At the first step the teacher's weights are the student's, so teacher view i must be
    student view i: a swap would let a view predict its own teacher output."""
    t = trainer(tmp_path, objective=objective)
    rec = Recording(t.objective)
    t.objective = rec
    t.train_epoch(0)
    student, teacher = rec.calls[0]
    assert len(teacher) == 2 and len(student) == 3
    scale = max(float(v.abs().max()) for v in student)  # BITS' logits start near 1e-3
    for i, tv in enumerate(teacher):
        torch.testing.assert_close(tv, student[i], rtol=1e-4, atol=1e-5 * scale)
        other = student[1 - i]
        assert float((tv - other).abs().max()) > 0.1 * scale, "views too alike to tell order"


# --------------------------------------------------------------------------- EMA teacher


def _max_diff(a, b) -> float:
    pairs = zip(a.parameters(), b.parameters(), strict=True)
    return max(float((p.detach() - q.detach()).abs().max()) for p, q in pairs)


@pytest.mark.parametrize("momentum", [0.0, 0.5])
def test_teacher_weights_are_the_ema_of_the_student(tmp_path, momentum):
    t = trainer(tmp_path, momentum_base=momentum, momentum_final=momentum)
    before = copy.deepcopy(t.teacher.module)
    real_step = t.optimizer.step
    students = []

    def step_and_snapshot(*args, **kwargs):
        out = real_step(*args, **kwargs)
        students.append(copy.deepcopy(t.student))
        return out

    t.optimizer.step = step_and_snapshot
    t.train_epoch(0)
    expected = copy.deepcopy(before)
    with torch.no_grad():
        for s in students:  # theta_t <- m theta_t + (1 - m) theta_s after every step
            for pt, ps in zip(expected.parameters(), s.parameters(), strict=True):
                pt.mul_(momentum).add_(ps, alpha=1 - momentum)
    assert _max_diff(t.teacher.module, expected) < 1e-6
    if momentum == 0.0:
        assert _max_diff(t.teacher.module, t.student) == 0.0
    else:
        assert _max_diff(t.teacher.module, t.student) > 1e-4


def test_teacher_forward_runs_the_ema_weights(tmp_path):
    """With momentum 1 the teacher keeps its initial weights: at the second step the targets
    the objective receives are the initial model's outputs, not the (updated) student's."""
    t = trainer(tmp_path, momentum_base=1.0, momentum_final=1.0)
    initial = copy.deepcopy(t.student)
    inputs = []
    t.teacher.module.register_forward_pre_hook(lambda _m, args: inputs.append(args[0].clone()))
    rec = Recording(t.objective)
    t.objective = rec
    t.train_epoch(0)
    assert len(rec.calls) == len(inputs) == 2, "the teacher module did not run every step"
    x = inputs[1]  # the global views of step 2, as the teacher saw them
    with torch.no_grad():
        expected = list(initial(x).chunk(2))
        student_now = list(t.student(x).chunk(2))
    for got, want, wrong in zip(rec.calls[1][1], expected, student_now, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
        assert float((got - wrong).abs().max()) > 1e-4
