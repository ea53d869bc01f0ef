"""Objectives against independent references written here from the papers' formulas, their
state (running center / prior), the teacher detach, the registry and bad input."""

import math

import pytest
import torch
import torch.nn.functional as F

from sslobjectives.objectives import (
    BITS,
    DINO,
    KLInversePrior,
    LossOutput,
    NonFiniteLossError,
    SimDINO,
    Sinkhorn,
    TeacherTempSchedule,
    build,
    get,
    names,
)

ALL = ("dino", "kl_inverse_prior", "sinkhorn", "bits", "simdino")


def make_views(n_views, b, k, seed, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    return [3 * torch.randn(b, k, generator=gen, dtype=dtype) for _ in range(n_views)]


def leaves(views):
    return [v.detach().clone().requires_grad_() for v in views]


def distinct_teacher(views, n_teacher, seed):
    """Teacher outputs of the first ``n_teacher`` views: the student's global views plus an
    independent perturbation as large as the views, so that an objective taking its targets
    from the student instead of the teacher fails the numeric comparison."""
    gen = torch.Generator().manual_seed(10_000 + seed)
    return [
        v.detach() + 3 * torch.randn(v.shape, generator=gen, dtype=v.dtype)
        for v in views[:n_teacher]
    ]


# --------------------------------------------------------------------------- DINO reference


class PaperDINO:
    """DINO (arXiv 2104.14294, Algorithm 1 and Sec. 3.1), written from the paper.

    The teacher temperature warms up linearly from ``t0`` at epoch 0 to ``t1`` at epoch
    ``warmup`` and stays at ``t1``; the center starts at 0.
    """

    def __init__(self, k, student_temp, t0, t1, warmup, momentum):
        self.center = torch.zeros(1, k, dtype=torch.float64)
        self.student_temp, self.t0, self.t1 = student_temp, t0, t1
        self.warmup, self.momentum = warmup, momentum

    def teacher_temp(self, epoch):
        if epoch >= self.warmup:
            return self.t1
        return self.t0 + (self.t1 - self.t0) * epoch / self.warmup

    def __call__(self, student, teacher, epoch):
        tt = self.teacher_temp(epoch)
        q = [F.softmax((t.detach() - self.center) / tt, dim=-1) for t in teacher]
        total, n_terms = 0.0, 0
        for iq, qi in enumerate(q):
            for v, s in enumerate(student):
                if v == iq:
                    continue
                total = total + torch.sum(-qi * F.log_softmax(s / self.student_temp, -1), -1).mean()
                n_terms += 1
        loss = total / n_terms
        teacher_output = torch.cat([t.detach() for t in teacher])
        batch_center = teacher_output.sum(dim=0, keepdim=True) / len(teacher_output)
        self.center = self.center * self.momentum + batch_center * (1 - self.momentum)
        return loss


@pytest.mark.parametrize("batch", [1, 4, 16])
@pytest.mark.parametrize("n_local", [0, 2, 4])
@pytest.mark.parametrize("temps", [(0.04, 0.07), (0.02, 0.05)])
@pytest.mark.parametrize("epoch", [0, 7.5, 10, 50])
def test_dino_equals_paper_reference(batch, n_local, temps, epoch):
    k, warmup, momentum = 12, 10, 0.9
    obj = build(
        "dino",
        warmup_teacher_temp=temps[0],
        teacher_temp=temps[1],
        warmup_teacher_temp_epochs=warmup,
        center_momentum=momentum,
    )
    ref = PaperDINO(k, 0.1, temps[0], temps[1], warmup, momentum)
    for step in range(2):
        views = make_views(2 + n_local, batch, k, seed=100 * step + batch + n_local)
        teacher = distinct_teacher(views, 2, seed=step)
        student, ref_student = leaves(views), leaves(views)
        out = obj(student, [v.clone() for v in teacher], epoch=epoch)
        ref_loss = ref(ref_student, teacher, epoch)
        torch.testing.assert_close(out.loss, ref_loss)
        torch.testing.assert_close(obj.center, ref.center.reshape(-1))
        out.loss.backward()
        ref_loss.backward()
        for s, r in zip(student, ref_student, strict=True):
            torch.testing.assert_close(s.grad, r.grad)
        assert math.isclose(float(out.stats["teacher_temp"]), ref.teacher_temp(epoch), rel_tol=1e-6)


def test_teacher_temp_schedule_is_linear_then_constant():
    sched = TeacherTempSchedule(0.04, 0.07, 30)
    for epoch in (0, 1, 10, 29.5):
        assert math.isclose(sched(epoch), 0.04 + 0.03 * epoch / 30, rel_tol=1e-9)
    for epoch in (30, 31, 1000, None):
        assert sched(epoch) == 0.07
    assert TeacherTempSchedule(0.04, 0.07, 0)(0) == 0.07
    with pytest.raises(ValueError, match="epoch must be >= 0"):
        sched(-1)
    with pytest.raises(ValueError, match="warmup_epochs must be >= 0"):
        TeacherTempSchedule(0.04, 0.07, -1)
    with pytest.raises(ValueError, match="teacher_temp must be"):
        TeacherTempSchedule(0.04, 0.0, 5)


# --------------------------------------------------------------------------- other references


def ref_cross_entropy(student, q, student_temp):
    terms = [
        (-(q[t] * F.log_softmax(student[s] / student_temp, -1)).sum(-1)).mean()
        for t in range(len(q))
        for s in range(len(student))
        if s != t
    ]
    return torch.stack(terms).mean()


def ref_rate(z, eps):
    x = z / z.norm(dim=1, keepdim=True)
    n, d = x.shape
    return 0.5 * torch.logdet(torch.eye(d, dtype=x.dtype) + d / (n * eps**2) * x.T @ x)


def check_against(obj, ref_fn, n_views=4, n_teacher=2, b=6, k=5, seed=0, steps=1, **kw):
    """obj's loss and student-input gradients equal ref_fn's, step after step."""
    for step in range(steps):
        views = make_views(n_views, b, k, seed + step)
        teacher = distinct_teacher(views, n_teacher, seed + step)
        student, ref_student = leaves(views), leaves(views)
        out = obj(student, [v.clone() for v in teacher], **kw)
        ref_loss = ref_fn(ref_student, [v.clone() for v in teacher])
        torch.testing.assert_close(out.loss, ref_loss)
        out.loss.backward()
        ref_loss.backward()
        for s, r in zip(student, ref_student, strict=True):
            # a view with no pair (view 0 with one teacher view) has no reference gradient
            expected = torch.zeros_like(s) if r.grad is None else r.grad
            torch.testing.assert_close(s.grad, expected)
    return out


@pytest.mark.parametrize("epoch", [0, None])
def test_kl_inverse_prior_batch_prior_equals_reference(epoch):
    # temperatures where no posterior underflows, so the plain ratio p / P is exact
    obj = build("kl_inverse_prior", teacher_temp=0.7, warmup_teacher_temp=0.4)
    temp = 0.4 if epoch == 0 else 0.7

    def ref(student, teacher):
        p = torch.softmax(torch.cat(teacher) / temp, dim=1)
        q = p / p.mean(dim=0)
        q = q / q.sum(dim=1, keepdim=True)
        return ref_cross_entropy(student, q.chunk(len(teacher)), 0.1)

    check_against(obj, ref, epoch=epoch, steps=2)
    assert obj.prior.numel() == 0  # the batch prior keeps no state


@pytest.mark.parametrize("n_teacher", [1, 2])
def test_kl_inverse_prior_running_prior_equals_reference(n_teacher):
    m, temp, k = 0.8, 0.5, 5
    obj = build("kl_inverse_prior", prior_momentum=m, teacher_temp=temp)
    state = {"prior": torch.full((k,), 1.0 / k, dtype=torch.float64)}

    def ref(student, teacher):
        p = torch.softmax(torch.cat(teacher) / temp, dim=1)
        state["prior"] = m * state["prior"] + (1 - m) * p.mean(dim=0)
        q = p / state["prior"]
        q = q / q.sum(dim=1, keepdim=True)
        return ref_cross_entropy(student, q.chunk(len(teacher)), 0.1)

    check_against(obj, ref, n_teacher=n_teacher, k=k, steps=3)
    torch.testing.assert_close(obj.prior, state["prior"])


@pytest.mark.parametrize("start", ["exp", "posterior"])
@pytest.mark.parametrize("n_iter", [1, 3, 10])
def test_sinkhorn_objective_equals_reference(n_iter, start):
    """``start="exp"`` (default): SwAV / DINOv2 start from exp(z/T); ``"posterior"``: from
    softmax(z/T)."""
    temp = 0.5
    obj = build("sinkhorn", n_iter=n_iter, teacher_temp=temp, start=start)

    def ref(student, teacher):
        z = torch.cat(teacher) / temp
        q = torch.exp(z) if start == "exp" else torch.softmax(z, dim=1)
        b, k = q.shape
        for _ in range(n_iter):
            q = q / q.sum(dim=0) * (b / k)  # every cluster gets B/K of the mass
            q = q / q.sum(dim=1, keepdim=True)
        return ref_cross_entropy(student, q.chunk(len(teacher)), 0.1)

    check_against(obj, ref, n_views=5, steps=2)


def ref_bce(s, t):
    sig = torch.sigmoid(s)
    return -(t * torch.log(sig) + (1 - t) * torch.log(1 - sig)).sum(dim=1).mean()


@pytest.mark.parametrize("targets", ["hard", "soft"])
@pytest.mark.parametrize(("n_views", "n_teacher"), [(2, 2), (4, 2), (3, 1)])
def test_bits_equals_bce_minus_beta_rate(targets, n_views, n_teacher):
    beta, eps, tau = 0.3, 0.7, 2.0
    obj = build("bits", beta=beta, eps=eps, targets=targets, tau=tau)

    def ref(student, teacher):
        if targets == "hard":
            msg = [(torch.sigmoid(t) > 0.5).double() for t in teacher]
        else:
            msg = [torch.sigmoid(t / tau) for t in teacher]
        pairs = [
            ref_bce(student[s], msg[t])
            for t in range(len(teacher))
            for s in range(len(student))
            if s != t
        ]
        rate = torch.stack([ref_rate(student[v], eps) for v in range(len(teacher))]).mean()
        return torch.stack(pairs).mean() - beta * rate

    out = check_against(obj, ref, n_views=n_views, n_teacher=n_teacher, k=8)
    torch.testing.assert_close(out.loss, out.terms["bce"] - beta * out.terms["rate"])
    assert set(out.stats) == {"bit_entropy", "dead_bits", "bit_correlation"}


def test_bits_default_hyperparameters():
    cfg = build("bits").config
    assert (cfg.beta, cfg.eps, cfg.targets, cfg.tau) == (0.1, 0.5, "hard", 1.0)


def ref_cosine_pairs(student, teacher):
    """SimDINO's compression term: mean cosine similarity over (teacher t, student s != t)."""
    sims = [
        F.cosine_similarity(teacher[t], student[s], dim=-1).mean()
        for t in range(len(teacher))
        for s in range(len(student))
        if s != t
    ]
    return torch.stack(sims).mean()


def simdino_paper_loss(student, teacher, eps=0.5):
    """SimDINO (arXiv 2502.10385) at its reference defaults, written from the paper: maximise
    the cosine similarity of student and teacher views and the coding rate
    ``R = 1/2 logdet(I + d/(n eps) Z^T Z)`` of ``Z = (z_s + z_t)/2`` per global view (the
    unit-norm head outputs averaged; SimDINO's ``eps`` multiplies as our ``eps^2``), the rate
    weighted by ``(d + n)/(d n)``. Returns SimDINO's loss ``-cos - w R``."""
    zs = [F.normalize(v, dim=-1) for v in student]
    zt = [F.normalize(v.detach(), dim=-1) for v in teacher]
    n, d = zs[0].shape
    rates = []
    for i in range(len(teacher)):
        z = (zs[i] + zt[i]) / 2
        rates.append(0.5 * torch.logdet(torch.eye(d, dtype=z.dtype) + d / (n * eps) * z.T @ z))
    return -ref_cosine_pairs(student, teacher) - (d + n) / (d * n) * torch.stack(rates).mean()


@pytest.mark.parametrize(("n_views", "n_teacher"), [(2, 2), (4, 2), (3, 1)])
@pytest.mark.parametrize(("b", "k"), [(6, 8), (12, 5)])
def test_simdino_equals_simdino_loss_at_its_defaults(n_views, n_teacher, b, k):
    """Our loss is SimDINO's plus the constant 1 (distance ``1 - cos`` for ``-cos``)."""
    obj = build("simdino")
    out = check_against(
        obj,
        lambda s, t: 1.0 + simdino_paper_loss(s, t),
        n_views=n_views,
        n_teacher=n_teacher,
        b=b,
        k=k,
        steps=2,
    )
    assert set(out.terms) == {"align", "rate"} and "effective_rank" in out.stats
    assert math.isclose(float(out.stats["rate_weight"]), (k + b) / (k * b), rel_tol=1e-6)


def test_simdino_weight_at_our_sizes_is_simdinos():
    """0.0117 at the default run's n = 128, d = 256 (the old fixed gamma was 0.01)."""
    assert math.isclose(build("simdino").rate_weight(128, 256), 0.01171875)
    assert build("simdino", gamma=0.01).rate_weight(128, 256) == 0.01


@pytest.mark.parametrize(("n_views", "n_teacher"), [(2, 2), (4, 2), (3, 1)])
def test_simdino_student_rate_variant_equals_reference(n_views, n_teacher):
    """``rate_input="student"`` with a fixed gamma: the variant used before (SimDINO's
    ``expa_type = 0``)."""
    gamma, eps = 0.05, 0.5
    obj = build("simdino", gamma=gamma, eps=eps, rate_input="student")

    def ref(student, teacher):
        pairs = [
            0.5
            * (F.normalize(student[s], dim=1) - F.normalize(teacher[t], dim=1)).pow(2).sum(1).mean()
            for t in range(len(teacher))
            for s in range(len(student))
            if s != t
        ]
        rate = torch.stack([ref_rate(student[v], eps) for v in range(len(teacher))]).mean()
        return torch.stack(pairs).mean() - gamma * rate

    out = check_against(obj, ref, n_views=n_views, n_teacher=n_teacher, k=8)
    assert set(out.terms) == {"align", "rate"} and "effective_rank" in out.stats


# --------------------------------------------------------------------------- contract and state


@pytest.mark.parametrize("name", ALL)
def test_teacher_is_detached_even_when_it_requires_grad(name):
    views = make_views(3, 6, 5, seed=1)
    student = leaves(views)
    teacher = leaves(views[:2])
    out = build(name)(student, teacher, epoch=0)
    out.loss.backward()
    assert all(t.grad is None for t in teacher)
    assert all(s.grad is not None and s.grad.abs().sum() > 0 for s in student)
    assert all(not v.requires_grad for v in out.stats.values())


@pytest.mark.parametrize("name", ALL)
def test_objective_contract_output(name):
    views = make_views(3, 6, 5, seed=2, dtype=torch.float32)
    out = build(name)(views, views[:2])
    assert isinstance(out, LossOutput) and out.loss.dim() == 0
    assert out.loss.dtype == torch.float32 and out.terms and out.stats
    scalars = out.scalars()
    assert scalars["loss"] == float(out.loss) and set(out.terms) <= set(scalars)
    assert not build(name)(views, views[:2], stats=False).stats


@pytest.mark.parametrize("name", ALL)
def test_default_call_defers_diagnostics_until_read(name, monkeypatch):
    from sslobjectives import diagnostics

    def refuse(*args, **kwargs):
        raise AssertionError("diagnostics computed although nobody read them")

    views = leaves(make_views(3, 6, 5, seed=4, dtype=torch.float32))
    with monkeypatch.context() as patch:
        for fn in ("cluster_stats", "bit_stats", "effective_rank", "jensen_gap_summary"):
            patch.setattr(diagnostics, fn, refuse)
        out = build(name)(views, [v.detach() for v in views[:2]], epoch=1)
        out.loss.backward()
        assert out.stats_pending and "<deferred>" in repr(out)
    assert out.stats and not out.stats_pending  # computed on the first read, then kept
    assert all(not v.requires_grad for v in out.stats.values())
    eager = build(name)(views, [v.detach() for v in views[:2]], epoch=1, stats=True)
    assert not eager.stats_pending and eager.stats


@pytest.mark.parametrize("name", ALL)
def test_deferred_diagnostics_equal_the_eager_ones_of_the_same_call(name):
    """The trainer asks for ``stats=True`` on its logged steps; the default call's deferred
    diagnostics, read after later calls changed the running state, are the same numbers."""
    lazy_obj, eager_obj = build(name), build(name)
    lazy, eager = [], []
    for step in range(3):
        views = make_views(4, 6, 5, seed=10 + step, dtype=torch.float32)
        lazy.append(lazy_obj(views, views[:2], epoch=step))
        eager.append(eager_obj(views, views[:2], epoch=step, stats=True).stats)
    for out, ref in zip(lazy, eager, strict=True):
        assert out.stats_pending
        assert out.stats.keys() == ref.keys()
        for key, value in ref.items():
            assert torch.equal(out.stats[key], value), key


@pytest.mark.parametrize("name", ALL)
def test_compiled_default_call_returns_deferred_diagnostics(name):
    torch._dynamo.reset()
    views = make_views(3, 6, 5, seed=6, dtype=torch.float32)
    compiled = torch.compile(build(name), fullgraph=True, backend="eager")
    out = compiled(views, views[:2], epoch=1)
    eager = build(name)(views, views[:2], epoch=1, stats=True)
    assert out.stats_pending
    assert torch.allclose(out.loss, eager.loss)
    assert out.stats.keys() == eager.stats.keys()
    for key, value in eager.stats.items():
        assert torch.allclose(out.stats[key], value), key


@pytest.mark.parametrize("shape", [(4, 4), (2, 2), (8, 16), (16, 256), (1, 3)])
@pytest.mark.parametrize("scale", [6e-8, 3e-7, 1e-6, 1e-5])
def test_simdino_float16_tiny_inputs_finite_loss_and_gradients(shape, scale):
    # the exact gradient of s/|s| is 1/|s|: beyond float16's range for rows of norm 3e-7
    gen = torch.Generator().manual_seed(int(scale * 1e9) + shape[1])
    views = [(torch.randn(*shape, generator=gen) * scale).half().requires_grad_() for _ in "abcd"]
    out = build("simdino")(views, [v.detach() for v in views[:2]])
    grads = torch.autograd.grad(out.loss, views)
    assert out.loss.dtype == torch.float16 and math.isfinite(float(out.loss.detach()))
    assert all(bool(torch.isfinite(g).all()) for g in grads)


@pytest.mark.parametrize("name", ["simdino", "bits"])
def test_coding_rate_objectives_compute_in_float32_under_autocast(name):
    views = make_views(3, 8, 6, seed=5, dtype=torch.float32)
    plain = build(name)(views, views[:2], stats=False).loss
    with torch.autocast("cpu", dtype=torch.bfloat16):
        cast = build(name)(views, views[:2], stats=False).loss
    assert cast.dtype == torch.float32
    assert torch.equal(cast, plain)
    half = build(name)([v.half() for v in views], [v.half() for v in views[:2]]).loss
    assert half.dtype == torch.float16
    assert math.isclose(float(half), float(plain), rel_tol=1e-2, abs_tol=1e-2)


def _train_steps(obj, n=2, seed=0):
    for i in range(n):
        views = make_views(3, 6, 5, seed=seed + i)
        obj(views, views[:2], epoch=0)


@pytest.mark.parametrize(
    ("name", "buffer", "cfg"),
    [("dino", "center", {}), ("kl_inverse_prior", "prior", {"prior_momentum": 0.9})],
)
def test_state_updates_only_in_training_mode(name, buffer, cfg):
    obj = build(name, **cfg)
    _train_steps(obj)
    before = getattr(obj, buffer).clone()
    assert before.abs().sum() > 0
    obj.eval()
    _train_steps(obj, seed=50)
    torch.testing.assert_close(getattr(obj, buffer), before, rtol=0, atol=0)
    obj.train()
    _train_steps(obj, n=1, seed=60)
    assert not torch.equal(getattr(obj, buffer), before)


@pytest.mark.parametrize(
    ("name", "buffer", "cfg"),
    [("dino", "center", {}), ("kl_inverse_prior", "prior", {"prior_momentum": 0.9})],
)
def test_state_dict_round_trip_into_a_fresh_objective(name, buffer, cfg):
    obj = build(name, **cfg)
    _train_steps(obj, n=3)
    fresh = build(name, **cfg)
    fresh.load_state_dict(obj.state_dict())
    torch.testing.assert_close(getattr(fresh, buffer), getattr(obj, buffer), rtol=0, atol=0)
    views = make_views(3, 6, 5, seed=99)
    torch.testing.assert_close(fresh(views, views[:2]).loss, obj(views, views[:2]).loss)
    torch.testing.assert_close(getattr(fresh, buffer), getattr(obj, buffer))


def test_dino_center_follows_the_module_dtype_and_resizes_to_k():
    obj = DINO()
    views = make_views(2, 4, 7, seed=0)
    obj(views, views)
    assert obj.center.shape == (7,) and obj.center.dtype == torch.float64
    views = make_views(2, 4, 3, seed=0)
    obj(views, views)
    assert obj.center.shape == (3,)


def test_dino_eval_without_training_uses_zero_center():
    obj = DINO().eval()
    views = make_views(3, 5, 4, seed=4)
    teacher = distinct_teacher(views, 2, seed=4)
    q = F.softmax(torch.cat(teacher) / 0.07, dim=1)
    torch.testing.assert_close(obj(views, teacher).loss, ref_cross_entropy(views, q.chunk(2), 0.1))
    torch.testing.assert_close(obj.center, torch.zeros(4, dtype=torch.float64))


def test_cluster_stats_describe_the_normalised_teacher():
    views = make_views(3, 8, 4, seed=5)
    out = build("sinkhorn", n_iter=200, teacher_temp=1.0)(views, views[:2])
    assert abs(float(out.stats["kl_to_uniform"])) < 1e-6  # balanced clusters
    assert math.isclose(float(out.stats["marginal_entropy"]), math.log(4), rel_tol=1e-6)
    assert {"sample_entropy", "jensen_gap_mean", "jensen_gap_max", "teacher_temp"} <= set(out.stats)


# --------------------------------------------------------------------------- registry and configs


def test_registry_names_and_classes():
    assert sorted(names()) == sorted(ALL)
    classes = (DINO, KLInversePrior, Sinkhorn, BITS, SimDINO)
    for name, cls in zip(ALL, classes, strict=True):
        assert get(name) is cls and isinstance(build(name), cls)


def test_unknown_objective_lists_valid_names_and_suggests_nearest():
    with pytest.raises(
        ValueError, match=r"unknown objective 'dnio' \(did you mean 'dino'\?\)"
    ) as e:
        build("dnio")
    for name in ALL:
        assert name in str(e.value)
    with pytest.raises(ValueError, match="Valid objectives: dino"):
        build("zzzzzz")


@pytest.mark.parametrize(
    ("name", "cfg", "nearest"),
    [
        ("bits", {"bta": 0.1}, "beta"),
        ("dino", {"center_momentun": 0.9}, "center_momentum"),
        ("kl_inverse_prior", {"prior_momentm": 0.9}, "prior_momentum"),
        ("sinkhorn", {"n_iters": 3}, "n_iter"),
        ("simdino", {"gama": 0.1}, "gamma"),
    ],
)
def test_unknown_config_key_names_nearest_valid_key(name, cfg, nearest):
    key = next(iter(cfg))
    with pytest.raises(ValueError, match=rf"unknown key '{key}' \(did you mean '{nearest}'\?\)"):
        build(name, **cfg)


@pytest.mark.parametrize(
    ("name", "cfg", "match"),
    [
        ("dino", {"student_temp": 0}, "student_temp must be"),
        ("dino", {"teacher_temp": -0.1}, "teacher_temp must be"),
        ("dino", {"warmup_teacher_temp": 0.0}, "warmup_teacher_temp must be"),
        ("dino", {"center_momentum": 1.0}, "center_momentum must be in"),
        ("kl_inverse_prior", {"prior_momentum": 1.5}, "prior_momentum must be None or in"),
        ("sinkhorn", {"n_iter": 0}, "n_iter must be an integer >= 1"),
        ("sinkhorn", {"teacher_temp": 0}, "teacher_temp must be"),
        ("bits", {"eps": 0}, "eps must be"),
        ("bits", {"eps": -1.0}, "eps must be"),
        ("bits", {"beta": -0.1}, "beta must be a number >= 0"),
        ("bits", {"tau": 0}, "tau must be"),
        ("bits", {"targets": "fuzzy"}, "targets must be 'hard' or 'soft'"),
        ("simdino", {"eps": 0.0}, "eps must be"),
        ("simdino", {"gamma": -1}, "gamma must be None .* or a number >= 0"),
        ("simdino", {"rate_input": "teacher"}, "rate_input must be one of mean, student"),
    ],
)
def test_bad_hyperparameters(name, cfg, match):
    with pytest.raises(ValueError, match=match):
        build(name, **cfg)


# --------------------------------------------------------------------------- bad input


def _bad_view_cases():
    v = torch.randn(4, 5)
    return {
        "wrong rank": ([v, v.reshape(-1)], [v], r"student\[1\] must have shape \(batch, dim\)"),
        "rank 3": ([v[None], v[None]], [v[None]], r"must have shape \(batch, dim\)"),
        "dim mismatch": ([v, torch.randn(4, 6)], [v], "all views must share batch size and dim"),
        "batch mismatch": ([v, torch.randn(3, 5)], [v], "all views must share batch size"),
        "teacher dim": ([v, v], [torch.randn(4, 6)], r"teacher\[0\] has shape"),
        "one view": ([v], [v], "fewer than two views"),
        "teacher excess": ([v, v], [v, v, v], "3 teacher views but 2 student views"),
        "empty list": ([], [v], "student must be a non-empty list"),
        "no teacher": ([v, v], [], "teacher must be a non-empty list"),
        "not a list": (v, [v], "student must be a non-empty list"),
        "empty batch": ([v[:0], v[:0]], [v[:0]], r"student\[0\] is an empty batch"),
        "integer": ([v, v.long()], [v], r"student\[1\] must be a floating-point"),
        "not tensor": ([v, [[1.0]]], [v], r"student\[1\] must be a floating-point"),
    }


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("case", list(_bad_view_cases()))
def test_bad_views_raise_value_error_naming_the_problem(name, case):
    student, teacher, match = _bad_view_cases()[case]
    with pytest.raises(ValueError, match=match):
        build(name)(student, teacher)


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("where", ["student_global", "student_local", "teacher"])
@pytest.mark.parametrize("stats", [True, False])
def test_non_finite_logits_raise_value_error_naming_them(name, value, where, stats):
    views = make_views(3, 4, 6, seed=7, dtype=torch.float32)
    student, teacher = [v.clone() for v in views], [v.clone() for v in views[:2]]
    target = {"student_global": student[0], "student_local": student[2], "teacher": teacher[1]}
    target[where][1, 2] = value
    with pytest.raises(ValueError, match="non-finite") as e:
        build(name)(student, teacher, stats=stats)
    assert not isinstance(e.value, NonFiniteLossError)


def test_finite_inputs_that_overflow_raise_non_finite_loss_error():
    teacher = torch.randn(2, 3)
    overflowing = torch.tensor([[3e38, -3e38, 0.0], [0.0, 3e38, -3e38]])  # s / 0.1 overflows
    with pytest.raises(NonFiniteLossError, match="dino: loss term 'cross_entropy' is not finite"):
        build("dino")([teacher, overflowing], [teacher])


def test_repr_shows_the_config():
    assert "beta=0.1" in repr(build("bits"))


def test_non_finite_loss_with_finite_terms_is_reported_as_loss():
    class Broken(DINO):
        name = "broken"

        def compute(self, student, teacher, epoch, stats):
            return LossOutput(loss=torch.tensor(float("nan")))

    views = make_views(2, 3, 4, seed=0)
    with pytest.raises(NonFiniteLossError, match="broken: loss term 'loss' is not finite"):
        Broken()(views, views)
