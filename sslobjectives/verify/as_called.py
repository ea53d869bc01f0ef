"""The claims checked through the objective classes, called as the trainer calls them.

:mod:`~sslobjectives.verify.checks` compares the functions of
:mod:`sslobjectives.functional` with independent formulas; a mistake in an objective class
(the centre over the wrong axis, the inverse prior dropped, the rate's sign flipped …) leaves
those functions right. Here every objective is built by name (``build(name, **cfg)``) and
called like the trainer does — student views (two global crops first, then local crops),
*distinct* teacher views of the global crops, a fractional ``epoch``, state carried from step
to step, in training mode — and its loss, its gradient with respect to every student view and
its state buffers are compared with numpy formulas written from the claims. Only the public
contract is used: ``objective(student, teacher, epoch=...) -> LossOutput`` and the buffers
``center`` (``dino``) and ``prior`` (``kl_inverse_prior`` with a running prior).

The teacher target an objective used is read back from the gradient: for the mean over
``P`` (student view, teacher view) pairs of ``CE(s_j, q_t)`` at student temperature ``T_s``,
``dL/ds_j = sum_{t != j} (softmax(s_j / T_s) - q_t) / (T_s B P)``; with two teacher views,
student view 0 predicts only teacher view 1, so ``q_1 = softmax(s_0/T_s) - T_s B P dL/ds_0``
(and likewise for BITS' bits, with ``sigmoid`` and no temperature).

Per claim:

1. every cluster objective's loss is the mean over view pairs of ``H(q_t) + KL(q_t || p_s)``
   with the target it used, every student view's gradient is ``(p_s - q_t) / (T_s B P)``
   summed over its teacher views, the targets are distributions, and no gradient reaches the
   teacher tensors;
2. ``kl_inverse_prior``'s target is ``(p/P) / sum(p/P)`` over the joined teacher views at the
   scheduled temperature (batch prior, or running prior ``P <- m P + (1-m) P_batch``, read
   back from ``prior``) and its loss the cross-entropy with that target; ``sinkhorn`` with
   ``start="posterior"`` is that after one iteration and Sinkhorn-Knopp from the posteriors
   after more; ``sinkhorn`` at its default is SwAV / DINOv2's iteration from ``exp(z/T)``;
3. ``dino``'s target is ``softmax((z - c)/T)`` with the centre from before the step; after
   it, ``center = m c + (1 - m) mean_b z`` over the joined teacher views (not in eval mode);
   with ``m = 0`` and the batch seen twice, the target is the inverse-prior normalisation
   with ``log P`` replaced by its Jensen bound ``mean_b log p``;
4. the same ``dino`` target is ``(p/G) / sum(p/G)``, ``G = exp(mean_b log p)``;
5. ``bits``' targets are the MAP bits ``1[a > 0]`` of the teacher's logits when
   ``targets="hard"`` and ``sigmoid(a / tau)`` when ``"soft"``; the loss is their mean BCE
   over view pairs and no gradient reaches the teacher;
6. the rate term — the loss minus the loss of the same objective with weight 0 — is
   ``-beta R`` (``bits``: ``R`` the mean rate of the *student's* normalised global views) or
   ``-w R`` (``simdino``: ``R`` of ``(s/|s| + t/|t|)/2`` per global view by default, of the
   student's views with ``rate_input="student"``; ``w = 1/n + 1/d`` or ``gamma``), and so is
   its gradient: the loss decreases as the student's rate increases.

The teacher temperature in 2 and 3 is the warm-up schedule recomputed here (linear from
``warmup_teacher_temp`` to ``teacher_temp`` over ``warmup_teacher_temp_epochs``, constant
after), at epochs inside, at the end of and after the warm-up. Everything runs in float64,
so the errors are rounding errors (tolerance 1e-9, as for the functions).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator

import numpy as np
import torch

from sslobjectives.objectives import build
from sslobjectives.verify.references import (
    _log_softmax,
    _logsumexp,
    _n,
    _rel,
    _softmax,
    _t,
)
from sslobjectives.verify.results import Numeric

N_TEACHER = 2  # the trainer's two global crops


# --------------------------------------------------------------------------- calling


def _call(obj, student: list[np.ndarray], teacher: list[np.ndarray], epoch, stats=None):
    """One step as the trainer takes it; returns loss, student gradients and the largest
    gradient that reached a teacher tensor (teacher tensors require grad here, so an
    objective that forgets to detach them is seen). ``stats=True`` is the trainer's call on
    the steps it logs: the diagnostics must not change the loss or the state."""
    s = [_t(v).requires_grad_(True) for v in student]
    t = [_t(v).requires_grad_(True) for v in teacher]
    out = obj(s, t, epoch=epoch, stats=stats)
    out.loss.backward()
    grads = [_n(v.grad) if v.grad is not None else np.zeros_like(student[0]) for v in s]
    leak = max(float(np.abs(_n(v.grad)).max()) if v.grad is not None else 0.0 for v in t)
    return float(out.loss.detach()), grads, leak


def _pairs(n_student: int) -> list[tuple[int, int]]:
    return [(j, t) for t in range(N_TEACHER) for j in range(n_student) if j != t]


def _teacher_temp(cfg: dict, epoch: float | None) -> float:
    """DINO's warm-up, written from its description: linear, then constant."""
    warm = cfg.get("warmup_teacher_temp", 0.04)
    final = cfg.get("teacher_temp", 0.07)
    length = cfg.get("warmup_teacher_temp_epochs", 30)
    if epoch is None or epoch >= length:
        return final
    return warm + (final - warm) * epoch / length


def _views(rng: np.random.Generator, n_views: int, batch: int, dim: int, scale: float):
    """Student views and distinct teacher views of the global crops (a noisy copy: related,
    as an EMA teacher's are, never equal)."""
    student = [rng.normal(size=(batch, dim)) * scale for _ in range(n_views)]
    teacher = [student[i] + rng.normal(size=(batch, dim)) * scale for i in range(N_TEACHER)]
    return student, teacher


# --------------------------------------------------------------------------- cluster references


def _recovered_targets(student, grads, student_temp: float) -> list[np.ndarray]:
    """The targets the objective used, read back from the gradients of views 0 and 1."""
    b, pairs = student[0].shape[0], len(_pairs(len(student)))
    factor = student_temp * b * pairs
    return [
        _softmax(student[1 - t] / student_temp) - grads[1 - t] * factor for t in range(N_TEACHER)
    ]


def _ce_reference(student, targets, student_temp: float):
    """Mean over view pairs of ``CE(q_t, softmax(s_j/T_s))`` and its gradient per view."""
    b, pairs = student[0].shape[0], _pairs(len(student))
    loss, grads = 0.0, [np.zeros_like(v) for v in student]
    for j, t in pairs:
        logp = _log_softmax(student[j] / student_temp)
        q = targets[t]
        loss += float(-(np.where(q > 0, q * logp, 0.0)).sum(1).mean())
        grads[j] += (np.exp(logp) - q) / (student_temp * b * len(pairs))
    return loss / len(pairs), grads


def _inverse_prior(logp: np.ndarray, log_prior: np.ndarray) -> np.ndarray:
    return _softmax(logp - log_prior)


def _batch_log_prior(logp: np.ndarray) -> np.ndarray:
    return _logsumexp(logp, 0) - math.log(logp.shape[0])


def _sinkhorn(log_start: np.ndarray, n_iter: int) -> np.ndarray:
    """SwAV's Algorithm 1 in log space: each cluster's column to mass B/K, then each row to
    1, ``n_iter`` times (the constant factors cancel in the last row normalisation)."""
    logq = log_start
    for _ in range(n_iter):
        logq = logq - _logsumexp(logq, 0)[None, :]
        logq = logq - _logsumexp(logq, 1)[:, None]
    return np.exp(logq)


class _ClusterRun:
    """A fresh objective and the references' own state (running centre / prior)."""

    def __init__(self, name: str, cfg: dict):
        self.name, self.cfg = name, cfg
        self.obj = build(name, **cfg)
        self.center: np.ndarray | None = None
        self.prior: np.ndarray | None = None
        self.training = True
        self.calls = 0

    def eval(self) -> None:
        """Evaluation mode: the objective and the references keep their state."""
        self.obj.eval()
        self.training = False

    def reference_targets(self, teacher: list[np.ndarray], temp: float) -> np.ndarray:
        """The joined (V_t B, K) target the claims give, updating the references' state."""
        z = np.concatenate(teacher)
        logp = _log_softmax(z / temp)
        if self.name == "dino":
            m = self.cfg.get("center_momentum", 0.9)
            c = np.zeros(z.shape[1]) if self.center is None else self.center
            q = _softmax((z - c) / temp)
            self.center = m * c + (1 - m) * z.mean(0) if self.training else c
            return q
        if self.name == "kl_inverse_prior":
            m = self.cfg.get("prior_momentum")
            if m is None:
                return _inverse_prior(logp, _batch_log_prior(logp))
            old = np.full(z.shape[1], 1 / z.shape[1]) if self.prior is None else self.prior
            prior = m * old + (1 - m) * np.exp(_batch_log_prior(logp))
            self.prior = prior if self.training else old
            return _inverse_prior(logp, np.log(prior))
        n_iter = self.cfg.get("n_iter", 3)
        start = logp if self.cfg.get("start", "exp") == "posterior" else z / temp
        return _sinkhorn(start, n_iter)

    def step(self, epoch, student, teacher, out: Numeric, label: str) -> list[np.ndarray]:
        """Call the objective once; record target, loss and gradients against the claims'
        references; return the reference targets."""
        temp = _teacher_temp(self.cfg, epoch)
        ts = self.cfg.get("student_temp", 0.1)
        self.calls += 1
        loss, grads, _ = _call(self.obj, student, teacher, epoch, stats=self.calls % 2 == 0 or None)
        ref = np.split(self.reference_targets(teacher, temp), N_TEACHER)
        got = _recovered_targets(student, grads, ts)
        ref_loss, ref_grads = _ce_reference(student, ref, ts)
        out.record(max(_rel(g, r) for g, r in zip(got, ref, strict=True)), f"{label} target")
        out.record(_rel(loss, ref_loss), f"{label} loss")
        out.record(max(_rel(g, r) for g, r in zip(grads, ref_grads, strict=True)), f"{label} grad")
        for buffer, expected in (("center", self.center), ("prior", self.prior)):
            if expected is not None:
                state = getattr(self.obj, buffer, None)
                value = _n(state) if isinstance(state, torch.Tensor) else np.full(1, np.nan)
                out.record(_rel(value, expected), f"{label} {buffer} after the step")
        out.cases += 1
        return ref


#: epochs a run steps through, as fractions of the warm-up: inside, at its end, after it
_EPOCHS = (0.0, 0.45, 1.0, 1.7)


def _cluster_runs(seed: int, configs: list[tuple[str, dict]]) -> Iterator[tuple]:
    """Runs of a few steps each: every config over batch sizes, cluster counts, multi-crop."""
    rng = np.random.default_rng(seed)
    for name, cfg in configs:
        for i, (batch, k) in enumerate((b, k) for b in (1, 7, 48) for k in (2, 65)):
            n_views = (2, 4)[i % 2]  # two global crops alone, and with two local crops
            scale = float(rng.choice([0.3, 1.0, 3.0]))
            run = _ClusterRun(name, cfg)
            length = cfg.get("warmup_teacher_temp_epochs", 30)
            label = f"{name} {cfg} B={batch} K={k} views={n_views}"
            steps = [(f * length, *_views(rng, n_views, batch, k, scale)) for f in _EPOCHS]
            yield run, label, steps


_SCHEDULES = (
    {},
    {"warmup_teacher_temp": 0.1, "teacher_temp": 0.3, "warmup_teacher_temp_epochs": 2},
)


def _through(what: str) -> Callable:
    """Counts a check's calls of the objectives in a note of the claim's report."""

    def wrap(check: Callable[[int, Numeric], None]) -> Callable[[int, Numeric], None]:
        @functools.wraps(check)
        def run(seed: int, out: Numeric) -> None:
            before = out.cases
            check(seed, out)
            out.notes.append(
                f"objectives as the trainer calls them: {out.cases - before} calls of {what}"
            )

        return run

    return wrap


# --------------------------------------------------------------------------- claims 1-4


@_through("dino, kl_inverse_prior, sinkhorn (loss and gradients; targets read back)")
def check_cross_entropy(seed: int, out: Numeric) -> None:
    """Claim 1 through ``dino``, ``kl_inverse_prior`` and ``sinkhorn``: the loss and every
    gradient are those of the cross-entropy with the target the objective used."""
    configs = [
        ("dino", {}),
        ("kl_inverse_prior", {"student_temp": 0.2, **_SCHEDULES[1]}),
        ("sinkhorn", {}),
    ]
    for run, label, steps in _cluster_runs(seed + 11, configs):
        ts = run.cfg.get("student_temp", 0.1)
        for epoch, student, teacher in steps:
            logged = epoch == steps[-1][0] or None  # the trainer's stats=True on a logged step
            loss, grads, leak = _call(run.obj, student, teacher, epoch, stats=logged)
            targets = _recovered_targets(student, grads, ts)
            ref_loss, ref_grads = _ce_reference(student, targets, ts)
            e = f"{label} epoch={epoch:g}"
            out.record(_rel(loss, ref_loss), f"{e} loss = mean of H(q) + KL(q || p_s) over pairs")
            # the local views (2, 3) were not used to read the targets back: a free check
            out.record(max(_rel(grads[j], ref_grads[j]) for j in range(len(student))), f"{e} grad")
            for q in targets:
                out.record(_rel(q.sum(1), np.ones(len(q))), f"{e} target rows sum to 1")
                out.record(max(0.0, -float(q.min())), f"{e} target >= 0")
            out.record(leak, f"{e} gradient reaching the teacher")
            out.cases += 1


@_through(
    "kl_inverse_prior (batch, running prior) and sinkhorn (posterior start, 1 and 3 iterations; "
    "exp start), epochs through the teacher-temperature warm-up"
)
def check_balanced(seed: int, out: Numeric) -> None:
    """Claim 2 through ``kl_inverse_prior`` (batch and running prior) and ``sinkhorn``
    (posterior start: one iteration = inverse prior, more = Sinkhorn; default exp start)."""
    configs = [
        ("kl_inverse_prior", {}),
        ("kl_inverse_prior", _SCHEDULES[1]),
        ("kl_inverse_prior", {"prior_momentum": 0.9}),
        ("kl_inverse_prior", {"prior_momentum": 0.5, **_SCHEDULES[1]}),
        ("sinkhorn", {"start": "posterior", "n_iter": 1}),
        ("sinkhorn", {"start": "posterior", "n_iter": 3, **_SCHEDULES[1]}),
        ("sinkhorn", {"n_iter": 5, **_SCHEDULES[1]}),
    ]
    for run, label, steps in _cluster_runs(seed + 12, configs):
        for epoch, student, teacher in steps:
            run.step(epoch, student, teacher, out, f"{label} epoch={epoch:g}")


def _dino_runs(seed: int, out: Numeric, claim: int) -> None:
    rng = np.random.default_rng(seed + 10 + claim)
    for schedule in _SCHEDULES:
        for batch in (1, 7, 48):
            for k in (2, 65):
                student, teacher = _views(rng, 4, batch, k, float(rng.choice([0.3, 1.0, 3.0])))
                length = schedule.get("warmup_teacher_temp_epochs", 30)
                epoch = float(rng.choice(_EPOCHS)) * length
                temp = _teacher_temp(schedule, epoch)
                label = f"dino m=0 {schedule} B={batch} K={k} epoch={epoch:g}"
                # m = 0: the first step sets the centre to this batch's mean, the second uses it
                run = _ClusterRun("dino", {"center_momentum": 0.0, **schedule})
                run.step(epoch, student, teacher, out, f"{label} first step")
                target = np.concatenate(run.step(epoch, student, teacher, out, f"{label} again"))
                logp = _log_softmax(np.concatenate(teacher) / temp)
                if claim == 3:  # log P replaced by its Jensen bound mean_b log p
                    expected = _inverse_prior(logp, logp.mean(0))
                else:  # divided by the geometric mean G
                    p, g = np.exp(logp), np.exp(logp.mean(0))
                    expected = (p / g) / (p / g).sum(1, keepdims=True)
                out.record(_rel(target, expected), f"{label} the claim's teacher")
                out.cases += 1


@_through(
    "dino (running centre, its update, eval mode; m = 0 batch centre), epochs through the warm-up"
)
def check_jensen(seed: int, out: Numeric) -> None:
    """Claim 3 through ``dino``: target with the centre from before the step, the centre's
    update, none in eval mode, and the Jensen form of the batch-centred teacher."""
    configs = [("dino", {}), ("dino", {"center_momentum": 0.5, **_SCHEDULES[1]})]
    for run, label, steps in _cluster_runs(seed + 13, configs):
        for epoch, student, teacher in steps:
            run.step(epoch, student, teacher, out, f"{label} epoch={epoch:g}")
        # eval mode: the same centre normalises, and it is not updated (step() compares it)
        run.eval()
        run.step(*steps[-1], out, f"{label} eval mode")
    _dino_runs(seed, out, claim=3)


@_through("dino (m = 0, the batch seen twice)")
def check_geometric(seed: int, out: Numeric) -> None:
    """Claim 4 through ``dino``: the batch-centred teacher is the geometric-mean one."""
    _dino_runs(seed, out, claim=4)


# --------------------------------------------------------------------------- claims 5-6 (bits)


def _binary_views(rng: np.random.Generator, batch: int, dim: int, scale: float):
    return _views(rng, int(rng.choice([2, 4])), batch, dim, scale)


@_through("bits (hard targets; soft targets at two tau)")
def check_bits_targets(seed: int, out: Numeric) -> None:
    """Claim 5 through ``bits`` (rate weight 0, so the gradient is the BCE's): hard targets
    are the MAP bits, soft ones ``sigmoid(a/tau)``; the loss is their mean BCE."""
    rng = np.random.default_rng(seed + 15)
    for cfg in (
        {},
        {"targets": "hard", "eps": 0.2},
        {"targets": "soft"},
        {"targets": "soft", "tau": 0.3},
    ):
        for batch in (1, 7, 48):
            for dim in (1, 16, 64):
                student, teacher = _binary_views(rng, batch, dim, float(rng.choice([0.01, 1, 5])))
                teacher[0].reshape(-1)[:3] = 0.0  # a logit of exactly 0 sends a 0 bit
                label = f"bits {cfg} B={batch} D={dim} views={len(student)}"
                obj = build("bits", **{**cfg, "beta": 0.0})
                loss, grads, leak = _call(obj, student, teacher, 1.5, stats=batch == 7 or None)
                pairs = _pairs(len(student))
                if cfg.get("targets", "hard") == "hard":
                    ref = [(a > 0).astype(np.float64) for a in teacher]
                else:
                    ref = [1 / (1 + np.exp(-a / cfg.get("tau", 1.0))) for a in teacher]
                factor = batch * len(pairs)
                sig = [1 / (1 + np.exp(-s)) for s in student]
                got = [sig[1 - t] - grads[1 - t] * factor for t in range(N_TEACHER)]
                out.record(
                    max(_rel(g, r) for g, r in zip(got, ref, strict=True)), f"{label} targets"
                )
                ref_loss = np.mean(
                    [
                        float((np.logaddexp(0, student[j]) - ref[t] * student[j]).sum(1).mean())
                        for j, t in pairs
                    ]
                )
                ref_grads = [np.zeros_like(s) for s in student]
                for j, t in pairs:
                    ref_grads[j] += (sig[j] - ref[t]) / factor
                out.record(_rel(loss, ref_loss), f"{label} loss")
                out.record(
                    max(_rel(g, r) for g, r in zip(grads, ref_grads, strict=True)), f"{label} grad"
                )
                out.record(leak, f"{label} gradient reaching the teacher")
                out.cases += 1


def _rate_and_grad(y: np.ndarray, eps: float, normalize: bool) -> tuple[float, np.ndarray]:
    """``R = 1/2 logdet(I + d/(n eps^2) XᵀX)`` and ``dR/dy`` (X the rows of y, normalised
    or not): ``dR/dX = a X (I + a XᵀX)^-1``, then through ``x = y/|y|``."""
    n, d = y.shape
    norm = np.linalg.norm(y, axis=1, keepdims=True)
    x = y / norm if normalize else y
    a = d / (n * eps * eps)
    m = np.eye(d) + a * x.T @ x
    rate = 0.5 * np.linalg.slogdet(m)[1]
    gx = a * x @ np.linalg.inv(m)
    if not normalize:
        return rate, gx
    return rate, (gx - x * (x * gx).sum(1, keepdims=True)) / norm


def _rate_term(name: str, cfg: dict, student, teacher) -> tuple[float, list[np.ndarray]]:
    """The claim's rate term (weight included, sign: subtracted) and its student gradient."""
    n, d = student[0].shape
    grads = [np.zeros_like(s) for s in student]
    rates = []
    for v in range(N_TEACHER):
        if name == "simdino" and cfg.get("rate_input", "mean") == "mean":
            s_norm = np.linalg.norm(student[v], axis=1, keepdims=True)
            xs = student[v] / s_norm
            xt = teacher[v] / np.linalg.norm(teacher[v], axis=1, keepdims=True)
            rate, gy = _rate_and_grad((xs + xt) / 2, cfg.get("eps", math.sqrt(0.5)), False)
            gx = gy / 2
            g = (gx - xs * (xs * gx).sum(1, keepdims=True)) / s_norm
        else:
            default_eps = math.sqrt(0.5) if name == "simdino" else 0.5
            rate, g = _rate_and_grad(student[v], cfg.get("eps", default_eps), True)
        rates.append(rate)
        grads[v] = g / N_TEACHER
    if name == "bits":
        weight = cfg.get("beta", 0.1)
    else:
        weight = cfg.get("gamma") if cfg.get("gamma") is not None else 1 / n + 1 / d
    return -weight * float(np.mean(rates)), [-weight * g for g in grads]


@_through("bits and simdino (SimDINO's defaults, the student-rate variant), each with weight 0")
def check_rate_terms(seed: int, out: Numeric) -> None:
    """Claim 6 through ``bits`` and ``simdino``: loss minus the loss at weight 0 is minus the
    weighted rate of the right input, in value and gradient."""
    rng = np.random.default_rng(seed + 16)
    configs = [
        ("bits", {}, "beta"),
        ("bits", {"beta": 0.3, "eps": 1.5, "targets": "soft"}, "beta"),
        ("simdino", {}, "gamma"),
        ("simdino", {"gamma": 0.01, "eps": 0.5, "rate_input": "student"}, "gamma"),
        ("simdino", {"gamma": 0.2, "rate_input": "mean"}, "gamma"),
    ]
    for name, cfg, weight_key in configs:
        for batch in (1, 3, 40):
            for dim in (2, 16, 64):
                student, teacher = _binary_views(rng, batch, dim, float(rng.choice([0.1, 1, 4])))
                label = f"{name} {cfg} B={batch} D={dim} views={len(student)}"
                logged = batch == 3 or None
                loss, grads, leak = _call(build(name, **cfg), student, teacher, 2.0, stats=logged)
                loss0, grads0, _ = _call(
                    build(name, **{**cfg, weight_key: 0.0}), student, teacher, 2.0
                )
                term, term_grads = _rate_term(name, cfg, student, teacher)
                out.record(_rel(loss - loss0, term), f"{label} rate term")
                diff = [g - g0 for g, g0 in zip(grads, grads0, strict=True)]
                out.record(
                    max(_rel(g, r) for g, r in zip(diff, term_grads, strict=True)),
                    f"{label} rate gradient",
                )
                out.record(leak, f"{label} gradient reaching the teacher")
                out.cases += 1
