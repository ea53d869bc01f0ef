"""``sslobj verify``: the table, the JSON, the plot, the exit status, and that it catches a
broken library function."""

import contextlib
import io
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as torch_f
from hypothesis import given, settings
from hypothesis import strategies as st

import sslobjectives.functional as F
from sslobjectives import cli, verify

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


def test_it_finishes_in_under_a_minute(full_run):
    assert full_run["report"]["seconds"] < 60


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
