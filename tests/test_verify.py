"""``sslobj verify``: the table, the JSON, the plot, the exit status, and that it catches a
broken library function."""

import contextlib
import functools
import io
import json
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as torch_f
from hypothesis import given, settings
from hypothesis import strategies as st

import sslobjectives.functional as F
from sslobjectives import cli, verify
from sslobjectives.objectives import (
    BITS,
    DINO,
    ClusterConfig,
    KLInversePrior,
    LossOutput,
    SimDINO,
    Sinkhorn,
    TeacherTempSchedule,
)
from sslobjectives.objectives.cluster import ClusterObjective
from sslobjectives.verify import as_called
from sslobjectives.verify import cli as verify_cli

SOME = settings(max_examples=15, deadline=None)


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """One full ``sslobj verify --json --plot`` for the module (proof runs are cached)."""
    out = tmp_path_factory.mktemp("verify")
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = cli.main(["verify", "--json", str(out / "verify.json"), "--plot", str(out)])
    return {
        "code": code,
        "out": out,
        "stdout": stdout.getvalue(),
        "stderr": stderr.getvalue(),
        "report": json.loads((out / "verify.json").read_text()),
    }


def test_every_claim_passes_and_exit_status_is_zero(full_run):
    assert full_run["code"] == 0
    report = full_run["report"]
    assert report["ok"] is True
    assert [c["id"] for c in report["claims"]] == [1, 2, 3, 4, 5, 6, 7]
    for claim in report["claims"]:
        assert claim["ok"], claim
        assert claim["symbolic"]["ok"] and claim["symbolic"]["steps"]
        assert claim["numeric"]["cases"] >= 90
        assert claim["numeric"]["max_error"] <= claim["numeric"]["tolerance"] <= 1e-5


def test_claims_about_objectives_are_checked_through_the_objective_classes(full_run):
    """Claims 1-6 say what an objective computes: each also ran through the classes."""
    for claim in full_run["report"]["claims"]:
        through = [n for n in claim["numeric"]["notes"] if n.startswith("objectives as the")]
        if claim["id"] == 7:  # bit_marginal_entropy is a diagnostic, no objective's loss
            assert not through
            continue
        (note,) = through
        assert int(note.split(": ")[1].split()[0]) >= 30, note
    table = full_run["stdout"]
    assert "calls of dino" in table and "calls of bits and simdino" in table


def test_the_report_says_how_long_it_took(full_run):
    report = full_run["report"]
    assert report["seconds"] > 0 and all(c["seconds"] > 0 for c in report["claims"])
    last = full_run["stdout"].splitlines()[-1]
    shown = re.search(r"\((\d+\.\d) s\)$", last)
    assert shown, last  # the printed total and the report's are read a moment apart
    assert abs(float(shown.group(1)) - report["seconds"]) <= 0.2, (last, report["seconds"])


def test_table_has_a_row_per_claim(full_run):
    lines = full_run["stdout"].splitlines()
    head = lines[0].split()
    assert head[:2] == ["id", "claim"] and head[-3:] == ["max", "error", "result"]
    for claim, row in zip(full_run["report"]["claims"], lines[2:9], strict=True):
        assert row.split()[0] == str(claim["id"])
        assert claim["statement"] in row
        assert "proved" in row and row.rstrip().endswith("pass")
    assert "7/7 claims pass" in full_run["stdout"]


def test_progress_goes_to_stderr(full_run):
    progress = [line for line in full_run["stderr"].splitlines() if line.startswith("verify:")]
    assert any("[1/7]" in line for line in progress)
    assert any("[7/7]" in line and "pass" in line for line in progress)


def test_sweep_table_json_and_plot(full_run):
    sweep = full_run["report"]["sweep"]
    assert sweep["temperatures"][0] == 1.0 and sweep["temperatures"][-1] == 0.02
    assert sweep["batches"] == [16, 64, 256, 1024]
    gap = np.array(sweep["jensen_gap"])
    kl = np.array(sweep["kl_inverse_prior_to_centered"])
    assert gap.shape == kl.shape == (len(sweep["temperatures"]), 4)
    assert (gap > 0).all() and (kl >= 0).all()
    # The bound is tight for flat teachers and loose for sharp ones.
    assert (gap[-1] > 100 * gap[0]).all() and (kl[-1] > 100 * kl[0]).all()
    assert "Jensen gap" in full_run["stdout"] and "1024" in full_run["stdout"]
    png = full_run["out"] / "jensen_gap_kl.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((full_run["out"] / "jensen_gap_kl.json").read_text()) == sweep


# --------------------------------------------------------------------------- broken functions


def _center_wrong_axis(teacher_logits, temp, center=None):
    """Subtracts each *sample's* mean over clusters: a no-op under softmax."""
    return torch.softmax((teacher_logits - teacher_logits.mean(1, keepdim=True)) / temp, -1)


def test_a_centering_over_the_wrong_axis_fails_verify(monkeypatch, tmp_path):
    monkeypatch.setattr(F, "center_normalize", _center_wrong_axis)
    path = tmp_path / "verify.json"
    code = cli.main(["verify", "--claims", "3", "4", "--json", str(path)])
    assert code != 0
    claims = {c["id"]: c for c in json.loads(path.read_text())["claims"]}
    for claim_id in (3, 4):
        assert not claims[claim_id]["ok"]
        assert claims[claim_id]["symbolic"]["ok"]  # the maths is right, the code is not
        assert not claims[claim_id]["numeric"]["ok"]
        assert claims[claim_id]["numeric"]["max_error"] > 1e-3


def _without_prior(teacher_logits, temp, prior=None):
    return torch.softmax(teacher_logits / temp, -1)


def _sinkhorn_column_last(teacher_logits, temp, n_iter=3, start="exp"):
    logq = torch.log_softmax(teacher_logits / temp, -1)
    for _ in range(n_iter):
        logq = logq - torch.logsumexp(logq, -1, keepdim=True)
        logq = logq - torch.logsumexp(logq, 0)
    return torch.exp(logq)


def _gap_of_probabilities(teacher_logits, temp):
    p = torch.softmax(teacher_logits / temp, -1)
    return p.mean(0) - torch.exp(torch.log(p).mean(0))


def _message_at_least_half(logits):
    return (logits >= 0).to(logits.dtype)


def _bce_mean_over_bits(student_logits, teacher_bits, reduction="mean"):
    per = torch_f.binary_cross_entropy_with_logits(student_logits, teacher_bits, reduction="none")
    per = per.mean(-1)
    return per if reduction == "none" else per.mean()


def _rate_without_n(z, eps):
    x = torch_f.normalize(z, dim=-1)
    d = z.shape[1]
    eye = torch.eye(d, dtype=z.dtype)
    return 0.5 * torch.logdet(eye + d / eps**2 * x.T @ x) if len(z) else z.sum() * 0


def _ce_without_student_temp(student_logits, teacher_probs, student_temp, reduction="mean"):
    per = -(teacher_probs * torch.log_softmax(student_logits, -1)).sum(-1)
    return per if reduction == "none" else per.mean()


@pytest.mark.parametrize(
    ("name", "broken", "claim_id"),
    [
        ("inverse_prior_normalize", _without_prior, 2),
        ("sinkhorn_knopp", _sinkhorn_column_last, 2),
        ("jensen_gap", _gap_of_probabilities, 3),
        ("binary_message", _message_at_least_half, 5),
        ("binary_agreement_loss", _bce_mean_over_bits, 5),
        ("coding_rate", _rate_without_n, 6),
        ("cluster_cross_entropy", _ce_without_student_temp, 1),
    ],
)
def test_a_broken_function_fails_its_claim(monkeypatch, name, broken, claim_id):
    monkeypatch.setattr(F, name, broken)
    (result,) = verify.run_claims([claim_id])
    assert result.symbolic.ok
    assert not result.numeric.ok and not result.ok
    assert result.numeric.max_error > 1e-6 or result.numeric.crash


def test_a_failing_proof_fails_its_claim(tmp_path):
    (tmp_path / "channel_capacity.py").write_text(
        "CLAIM, TITLE, STATEMENT, SCOPE = 7, 't', 's', 'none'\n"
        "def prove():\n    return [('a step that does not hold', False)]\n"
    )
    (result,) = verify.run_claims([7], proofs_dir=tmp_path)
    assert result.numeric.ok and not result.symbolic.ok and not result.ok
    assert "step fails: a step that does not hold" in verify.format_table([result])


def test_a_crashing_proof_is_a_failure_not_an_exception(tmp_path):
    (tmp_path / "channel_capacity.py").write_text(
        "CLAIM, TITLE, STATEMENT, SCOPE = 7, 't', 's', 'none'\n"
        "def prove():\n    raise ZeroDivisionError('sympy gave up')\n"
    )
    (result,) = verify.run_claims([7], proofs_dir=tmp_path)
    assert not result.ok and "ZeroDivisionError: sympy gave up" in result.symbolic.crash


def test_unknown_claim_ids_are_an_error(capsys):
    assert cli.main(["verify", "--claims", "8"]) == 2
    assert "no claim [8]" in capsys.readouterr().err


# --------------------------------------------------------------------------- laws (hypothesis)


def _logits(draw_seed: int, batch: int, k: int, scale: float) -> torch.Tensor:
    rng = np.random.default_rng(draw_seed)
    return torch.from_numpy(rng.normal(size=(batch, k)) * scale)


shapes = st.tuples(st.integers(1, 40), st.integers(1, 30))
temps = st.sampled_from([1.0, 0.5, 0.1, 0.04, 0.02])
scales = st.sampled_from([0.01, 1.0, 10.0])


@SOME
@given(shape=shapes, temp=temps, scale=scales, seed=st.integers(0, 2**16))
def test_centering_is_geometric_mean_normalisation(shape, temp, scale, seed):
    with verify.single_threaded():
        err, counts = verify.geometric_mean_errors(_logits(seed, *shape, scale), temp)
    assert err <= 1e-9
    assert counts["up"] <= counts["rows"] and counts["down"] <= counts["rows"]


@SOME
@given(shape=shapes, temp=temps, scale=scales, seed=st.integers(0, 2**16))
def test_jensen_gap_and_centering(shape, temp, scale, seed):
    with verify.single_threaded():
        assert verify.jensen_errors(_logits(seed, *shape, scale), temp) <= 1e-9


@SOME
@given(shape=shapes, temp=temps, scale=scales, seed=st.integers(0, 2**16), n_iter=st.integers(1, 9))
def test_sinkhorn_form_and_one_step(shape, temp, scale, seed, n_iter):
    z = _logits(seed, *shape, scale)
    with verify.single_threaded():
        assert verify.balanced_teacher_errors(z, temp, n_iter) <= 1e-9


@SOME
@given(
    n=st.integers(0, 12),
    d=st.integers(1, 12),
    eps=st.sampled_from([0.1, 0.5, 1.0, 3.0]),
    seed=st.integers(0, 2**16),
)
def test_coding_rate_against_eigenvalues_and_bounds(n, d, eps, seed):
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    z = torch.from_numpy(rng.normal(size=(n, d)))
    with verify.single_threaded():
        assert verify.coding_rate_errors(z, eps, "gaussian", q) <= 1e-9


# --------------------------------------------------------------------------- broken objectives
# Each is a one-line mistake in an objective class; the functions of functional.py stay right,
# so only the checks that call the objectives as the trainer does can see it.


def _dino_scalar_centre(self, teacher):
    """The centre's mean taken over the clusters too: a scalar, a no-op under softmax."""
    m = self.config.center_momentum
    self.center.mul_(m).add_(teacher.mean(dim=1).mean(), alpha=1 - m)


def _dino_centre_per_sample(self, teacher, temp):
    """Each sample centred over its own clusters (the wrong axis) instead of by the centre."""
    if self.center.numel() != teacher.shape[1]:
        self.center = teacher.new_zeros(teacher.shape[1])
    if self.training:
        self._update_center(teacher)
    return torch.softmax((teacher - teacher.mean(dim=1, keepdim=True)) / temp, -1)


def _dino_centre_updated_first(self, teacher, temp):
    """The centre updated with this batch before it normalises it (DINO uses the old one)."""
    if self.center.numel() != teacher.shape[1]:
        self.center = teacher.new_zeros(teacher.shape[1])
    if self.training:
        self._update_center(teacher)
    return F.center_normalize(teacher, temp, center=self.center)


def _dino_momentum_swapped(self, teacher):
    m = self.config.center_momentum
    self.center.mul_(1 - m).add_(teacher.mean(dim=0), alpha=m)


def _inverse_prior_dropped(self, teacher, temp):
    return torch.softmax(teacher / temp, -1)


def _running_prior_frozen(self, teacher, temp):
    """The running prior computed but never stored: every step uses the uniform start."""
    m = self.config.prior_momentum
    if m is None:
        return F.inverse_prior_normalize(teacher, temp)
    k = teacher.shape[1]
    if self.prior.numel() != k:
        self.prior = teacher.new_full((k,), 1.0 / k)
    prior = m * self.prior + (1 - m) * F.cluster_prior(teacher, temp)
    return F.inverse_prior_normalize(teacher, temp, prior=prior)


def _sinkhorn_start_ignored(self, teacher, temp):
    return F.sinkhorn_knopp(teacher, temp, self.config.n_iter)


def _no_warmup(self):
    return TeacherTempSchedule(
        self.teacher_temp, self.teacher_temp, self.warmup_teacher_temp_epochs
    )


def _targets_from_the_student(compute):
    """The cluster objective normalising the student's global views instead of the teacher's."""

    def broken(self, student, teacher, epoch, stats):
        return compute(self, student, [s.detach() for s in student[: len(teacher)]], epoch, stats)

    return broken


def _soft_when_hard(self, teacher_logits):
    return F.soft_message(teacher_logits, self.config.tau)


def _soft_without_tau(self, teacher_logits):
    if self.config.targets == "hard":
        return F.binary_message(teacher_logits)
    return torch.sigmoid(teacher_logits)


def _bits_compute(rate_of, sign=-1.0):
    """BITS' loss with the rate taken of ``rate_of(student, teacher)`` and added with ``sign``."""

    def compute(self, student, teacher, epoch, stats):
        cfg = self.config
        targets = [self.message(t.detach()) for t in teacher]
        bce = F.multicrop_binary_agreement(student, targets)
        views = rate_of(student, teacher)
        rate = torch.stack([F.coding_rate(v, cfg.eps) for v in views]).mean()
        return LossOutput(loss=bce + sign * cfg.beta * rate, terms={"bce": bce, "rate": rate})

    return compute


def _simdino_compute(rate_of, weight=None):
    """SimDINO's loss with the rate of ``rate_of(student, teacher)`` (unit rows) and weight."""

    def compute(self, student, teacher, epoch, stats):
        cfg = self.config
        align = F.multicrop_cosine_distance(student, teacher)
        views = rate_of(student, teacher)
        rate = torch.stack([F.coding_rate(v, cfg.eps) for v in views]).mean()
        w = weight if weight is not None else self.rate_weight(len(student[0]), student[0].shape[1])
        return LossOutput(loss=align - w * rate, terms={"align": align, "rate": rate})

    return compute


def _globals(student, teacher):
    return student[: len(teacher)]


def _teacher_views(student, teacher):
    return [t.detach() for t in teacher]


def _detached_globals(student, teacher):
    return [s.detach() for s in student[: len(teacher)]]


#: name -> (class, attribute, replacement, the claims that must fail)
OBJECTIVE_MISTAKES = {
    # the six of issue 12
    "dino centre over the wrong axis": (DINO, "_update_center", _dino_scalar_centre, {3}),
    "inverse prior dropped": (KLInversePrior, "teacher_probs", _inverse_prior_dropped, {2}),
    "bits coding-rate sign flipped": (BITS, "compute", _bits_compute(_globals, +1.0), {6}),
    "bits soft targets when hard are asked": (BITS, "message", _soft_when_hard, {5}),
    "bits rate on the teacher": (BITS, "compute", _bits_compute(_teacher_views), {6}),
    "no teacher-temperature warm-up": (ClusterConfig, "schedule", property(_no_warmup), {2, 3}),
    # more
    "dino samples centred over their clusters": (
        DINO,
        "teacher_probs",
        _dino_centre_per_sample,
        {3, 4},
    ),
    "dino centre updated before use": (DINO, "teacher_probs", _dino_centre_updated_first, {3}),
    "dino centre momentum swapped": (DINO, "_update_center", _dino_momentum_swapped, {3}),
    "running prior never stored": (KLInversePrior, "teacher_probs", _running_prior_frozen, {2}),
    "sinkhorn ignores start": (Sinkhorn, "teacher_probs", _sinkhorn_start_ignored, {2}),
    "cluster targets from the student": (
        ClusterObjective,
        "compute",
        _targets_from_the_student(ClusterObjective.compute),
        {2, 3},
    ),
    "bits soft targets ignore tau": (BITS, "message", _soft_without_tau, {5}),
    "bits rate without gradient": (BITS, "compute", _bits_compute(_detached_globals), {6}),
    "simdino rate of the student alone": (SimDINO, "compute", _simdino_compute(_globals), {6}),
    "simdino fixed weight 0.01": (SimDINO, "compute", _simdino_compute(_globals, 0.01), {6}),
}


@pytest.fixture
def small_sweep(monkeypatch):
    """The Jensen sweep is not what these tests are about: a small one keeps them fast."""
    small = functools.partial(verify.jensen_sweep, temps=(1.0, 0.02), batches=(16,), seeds=1)
    monkeypatch.setattr(verify_cli, "jensen_sweep", small)


@pytest.mark.parametrize("mistake", list(OBJECTIVE_MISTAKES))
def test_a_broken_objective_fails_its_claim(monkeypatch, small_sweep, tmp_path, mistake):
    cls, attribute, broken, claim_ids = OBJECTIVE_MISTAKES[mistake]
    monkeypatch.setattr(cls, attribute, broken)
    path = tmp_path / "verify.json"
    args = ["verify", "--claims", *map(str, sorted(claim_ids)), "--json", str(path)]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        code = cli.main(args)
    assert code != 0
    claims = {c["id"]: c for c in json.loads(path.read_text())["claims"]}
    assert set(claims) == claim_ids
    for claim in claims.values():
        numeric = claim["numeric"]
        assert not claim["ok"] and claim["symbolic"]["ok"] and not numeric["ok"]
        # a wrong number, caught where the objective is called, not a crash
        assert not numeric["crash"] and float(numeric["max_error"]) > 1e-6
        assert numeric["worst_case"].split()[0] in (
            "dino",
            "kl_inverse_prior",
            "sinkhorn",
            "bits",
            "simdino",
        )


@pytest.mark.parametrize(
    ("mistake", "claim_ids"),
    [
        ("inverse prior dropped", (1, 2, 3, 4)),
        ("bits soft targets when hard are asked", (5, 6)),
        ("bits rate on the teacher", (5, 6)),
    ],
)
def test_a_broken_objective_fails_only_its_claim(monkeypatch, mistake, claim_ids):
    """The table says which claim a mistake breaks: the neighbouring claims still pass."""
    cls, attribute, broken, failing = OBJECTIVE_MISTAKES[mistake]
    monkeypatch.setattr(cls, attribute, broken)
    results = verify.run_claims(list(claim_ids))
    assert {r.id for r in results if not r.ok} == failing


def test_the_objective_checks_pass_on_the_unmodified_library():
    """Each claim's objective part on the unmodified library, with enough cases to mean
    something. (Its cost is not asserted here: timing goals belong to benchmarks/.)"""
    parts = (
        as_called.check_cross_entropy,
        as_called.check_balanced,
        as_called.check_jensen,
        as_called.check_geometric,
        as_called.check_bits_targets,
        as_called.check_rate_terms,
    )
    with verify.single_threaded():
        for part in parts:
            out = verify.Numeric(1e-9)
            part(0, out)
            assert out.ok and out.cases >= 30, (part.__name__, out.max_error, out.worst_case)
