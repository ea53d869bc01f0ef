"""Laws of ``sslobjectives.functional``, each checked against an independent formula.

Property tests (hypothesis) state a law over random shapes, temperatures and logits; example
tests pin the cases where the law is attained (bounds, equality conditions). References are
written here in numpy or plain torch, never by calling the function under test twice.
"""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import sslobjectives.functional as Fn

FAST = settings(max_examples=30, deadline=None)
SOME = settings(max_examples=20, deadline=None)

NORMALIZERS = {
    "inverse_prior": lambda z, t: Fn.inverse_prior_normalize(z, t),
    "center": lambda z, t: Fn.center_normalize(z, t),
    "sinkhorn_posterior": lambda z, t: Fn.sinkhorn_knopp(z, t, n_iter=3, start="posterior"),
}


# --------------------------------------------------------------------------- strategies


def finite(lo: float, hi: float):
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False, allow_subnormal=False)


@st.composite
def logits(draw, max_b: int = 8, max_k: int = 8, lo: float = -5.0, hi: float = 5.0):
    b = draw(st.integers(1, max_b))
    k = draw(st.integers(1, max_k))
    arr = draw(hnp.arrays(np.float64, (b, k), elements=finite(lo, hi)))
    return torch.from_numpy(arr)


temps = finite(0.02, 2.0)


# --------------------------------------------------------------------------- numpy references


def np_log_softmax(x: np.ndarray) -> np.ndarray:
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


def np_logmeanexp_rows(x: np.ndarray) -> np.ndarray:
    """log (1/B) sum_b exp(x_bk) -> (K,)."""
    m = x.max(axis=0)
    return m + np.log(np.exp(x - m).mean(axis=0))


def np_softmax(x: np.ndarray) -> np.ndarray:
    return np.exp(np_log_softmax(x))


def close(actual: torch.Tensor, expected, atol: float = 1e-9, rtol: float = 1e-7) -> None:
    expected = torch.as_tensor(np.asarray(expected), dtype=actual.dtype)
    torch.testing.assert_close(actual.detach(), expected, atol=atol, rtol=rtol)


# --------------------------------------------------------------------------- teacher normalisations


@pytest.mark.parametrize("name", list(NORMALIZERS))
@FAST
@given(z=logits(), temp=temps, shift_seed=st.integers(0, 2**16))
def test_normalised_teacher_rows_sum_to_one_and_ignore_per_sample_shift(name, z, temp, shift_seed):
    normalize = NORMALIZERS[name]
    q = normalize(z, temp)
    assert q.shape == z.shape and q.dtype == torch.float64
    assert bool((q >= 0).all())
    close(q.sum(dim=1), np.ones(z.shape[0]), atol=1e-12)
    shift = torch.randn(
        z.shape[0], 1, generator=torch.Generator().manual_seed(shift_seed), dtype=z.dtype
    )
    torch.testing.assert_close(normalize(z + 3 * shift, temp), q, atol=1e-9, rtol=1e-7)


@FAST
@given(z=logits(), temp=temps)
def test_sinkhorn_from_exp_rows_sum_to_one(z, temp):
    q = Fn.sinkhorn_knopp(z, temp)
    assert bool((q >= 0).all())
    close(q.sum(dim=1), np.ones(z.shape[0]), atol=1e-12)


@pytest.mark.parametrize("n_iter", [1, 3])
def test_sinkhorn_from_exp_depends_on_per_sample_shifts_unlike_the_posterior_start(n_iter):
    """DINOv2's start exp(z/T) scales a sample's row by exp(shift/T) *before* the first
    cluster scaling, so at a few iterations it is not invariant to a per-sample shift of the
    logits (only in the limit); the start from the posteriors is."""
    z = torch.randn(8, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    shift = torch.zeros(8, 1, dtype=z.dtype)
    shift[0] = 2.0
    for start, invariant in (("exp", False), ("posterior", True)):
        q = Fn.sinkhorn_knopp(z, 0.5, n_iter, start=start)
        moved = float((Fn.sinkhorn_knopp(z + shift, 0.5, n_iter, start=start) - q).abs().max())
        assert (moved < 1e-12) == invariant, (start, moved)


@FAST
@given(z=logits(), temp=temps)
def test_center_normalize_is_normalisation_by_geometric_mean_prior(z, temp):
    logp = np_log_softmax(z.numpy() / temp)
    log_g = logp.mean(axis=0)  # log of the geometric mean of the posteriors
    expected = np_softmax(logp - log_g)
    close(Fn.center_normalize(z, temp), expected)
    close(Fn.cluster_prior(z, temp, "geometric"), np.exp(log_g), atol=1e-12, rtol=1e-9)
    via_prior = Fn.inverse_prior_normalize(z, temp, prior=Fn.cluster_prior(z, temp, "geometric"))
    torch.testing.assert_close(via_prior, Fn.center_normalize(z, temp), atol=1e-9, rtol=1e-7)


@FAST
@given(z=logits(), temp=temps)
def test_inverse_prior_normalize_is_posterior_over_batch_prior(z, temp):
    logp = np_log_softmax(z.numpy() / temp)
    log_prior = np_logmeanexp_rows(logp)
    close(Fn.inverse_prior_normalize(z, temp), np_softmax(logp - log_prior))
    close(Fn.cluster_prior(z, temp), np.exp(log_prior), atol=1e-12, rtol=1e-9)


@SOME
@given(z=logits(lo=-2.0, hi=2.0), temp=finite(0.3, 2.0), data=st.data())
def test_inverse_prior_normalize_direct_ratio_and_running_prior(z, temp, data):
    p = np_softmax(z.numpy() / temp)
    big_p = p.mean(axis=0)
    expected = (p / big_p) / (p / big_p).sum(axis=1, keepdims=True)
    close(Fn.inverse_prior_normalize(z, temp), expected)

    raw = data.draw(hnp.arrays(np.float64, (z.shape[1],), elements=finite(0.01, 1.0)))
    running = raw / raw.sum()
    expected = (p / running) / (p / running).sum(axis=1, keepdims=True)
    close(Fn.inverse_prior_normalize(z, temp, prior=torch.from_numpy(running)), expected)


def test_inverse_prior_normalize_weights_rare_cluster_up_and_survives_underflow():
    z = torch.tensor([[50.0, 0.0, -200.0], [50.0, 1.0, -200.0]], dtype=torch.float64)
    q = Fn.inverse_prior_normalize(z, 0.05)  # cluster 2's posterior underflows to 0
    assert torch.isfinite(q).all()
    close(q.sum(dim=1), [1.0, 1.0])
    p = torch.softmax(z / 0.05, dim=1)
    assert q[:, 1].mean() > p[:, 1].mean()


def test_center_normalize_with_given_center_shapes():
    z = torch.tensor([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]], dtype=torch.float64)
    c = torch.tensor([0.5, -0.5, 1.0], dtype=torch.float64)
    expected = np_softmax((z.numpy() - c.numpy()) / 0.3)
    close(Fn.center_normalize(z, 0.3, center=c), expected)
    close(Fn.center_normalize(z, 0.3, center=c[None]), expected)


@FAST
@given(z=logits(), temp=temps)
def test_jensen_gap_is_log_arithmetic_over_geometric_prior_and_nonnegative(z, temp):
    gap = Fn.jensen_gap(z, temp)
    assert gap.shape == (z.shape[1],)
    assert bool((gap >= 0).all())
    logp = np_log_softmax(z.numpy() / temp)
    expected = np.maximum(np_logmeanexp_rows(logp) - logp.mean(axis=0), 0.0)
    close(gap, expected, atol=1e-9)


def test_jensen_gap_zero_for_identical_rows():
    row = torch.tensor([[0.3, -1.2, 2.0, 0.0]], dtype=torch.float64)
    gap = Fn.jensen_gap(row.repeat(5, 1), 0.2)
    close(gap, np.zeros(4), atol=1e-12)


@pytest.mark.parametrize("constant_cluster", [0, 1, 2])
def test_jensen_gap_zero_exactly_for_the_cluster_whose_posterior_is_constant(constant_cluster):
    temp = 0.5
    others = torch.tensor([[0.1, 0.4], [0.3, 0.2], [0.45, 0.05]], dtype=torch.float64)
    col = torch.full((3, 1), 0.5, dtype=torch.float64)
    posteriors = torch.cat([others[:, :constant_cluster], col, others[:, constant_cluster:]], 1)
    z = temp * posteriors.log()  # softmax(z / temp) == posteriors
    close(torch.softmax(z / temp, 1), posteriors.numpy())
    gap = Fn.jensen_gap(z, temp)
    assert abs(float(gap[constant_cluster])) < 1e-12
    varying = [k for k in range(3) if k != constant_cluster]
    assert bool((gap[varying] > 1e-3).all()), gap


# --------------------------------------------------------------------------- Sinkhorn


@SOME
@given(z=logits(max_b=12, max_k=6, lo=-1.0, hi=1.0), temp=finite(0.5, 2.0))
def test_sinkhorn_marginals_uniform_after_enough_iterations(z, temp):
    q = Fn.sinkhorn_knopp(z, temp, n_iter=300)
    k = z.shape[1]
    close(q.mean(dim=0), np.full(k, 1.0 / k), atol=1e-6)
    close(q.sum(dim=1), np.ones(z.shape[0]), atol=1e-12)


@FAST
@given(z=logits(), temp=temps)
def test_sinkhorn_one_iteration_is_inverse_prior_normalize(z, temp):
    torch.testing.assert_close(
        Fn.sinkhorn_knopp(z, temp, n_iter=1, start="posterior"),
        Fn.inverse_prior_normalize(z, temp),
    )


@SOME
@given(z=logits(lo=-2.0, hi=2.0), temp=finite(0.2, 2.0), n_iter=st.integers(1, 6))
def test_sinkhorn_is_a_diagonal_rescaling_of_the_posteriors(z, temp, n_iter):
    """q_bk = p_bk exp(-lambda_k - mu_b): log(q/p) is a row term plus a column term."""
    m = (Fn.sinkhorn_knopp(z, temp, n_iter).log() - torch.log_softmax(z / temp, 1)).numpy()
    double_centered = m - m.mean(0) - m.mean(1, keepdims=True) + m.mean()
    np.testing.assert_allclose(double_centered, 0.0, atol=1e-8)


def test_sinkhorn_converges_to_the_dinov2_balanced_assignment():
    """DINOv2's loop (starts from exp(z/T), column then row scaling) has the same limit."""
    z = torch.randn(10, 4, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    temp = 0.7
    q_ref = torch.exp(z / temp).t()
    q_ref = q_ref / q_ref.sum()
    k, b = q_ref.shape
    for _ in range(500):
        q_ref = q_ref / q_ref.sum(dim=1, keepdim=True) / k
        q_ref = q_ref / q_ref.sum(dim=0, keepdim=True) / b
    q_ref = (q_ref * b).t()
    torch.testing.assert_close(Fn.sinkhorn_knopp(z, temp, n_iter=500), q_ref)


@pytest.mark.parametrize("n_iter", [0, -1, 1.5, True, "3"])
def test_sinkhorn_rejects_bad_n_iter(n_iter):
    with pytest.raises(ValueError, match="n_iter"):
        Fn.sinkhorn_knopp(torch.zeros(2, 2), 0.1, n_iter=n_iter)


# --------------------------------------------------------------------------- cross-entropy


@FAST
@given(z=logits(), s=st.integers(0, 2**16), temp=temps, student_temp=finite(0.05, 2.0))
def test_gibbs_cross_entropy_at_least_teacher_entropy_equal_iff_student_is_teacher(
    z, s, temp, student_temp
):
    q = torch.softmax(z / temp, dim=1)
    q = (q + 1e-3) / (1 + 1e-3 * q.shape[1])  # strictly positive so log q is finite
    h = -(q * q.log()).sum(dim=1).numpy()
    student = torch.randn(z.shape, generator=torch.Generator().manual_seed(s), dtype=z.dtype)
    ce = Fn.cluster_cross_entropy(student, q, student_temp, reduction="none")
    p_student = np_softmax(student.numpy() / student_temp)
    kl = (q.numpy() * (np.log(q.numpy()) - np.log(p_student))).sum(axis=1)
    assert bool((ce.numpy() >= h - 1e-12).all())
    close(ce, h + kl, atol=1e-8)
    differs = np.abs(p_student - q.numpy()).max(axis=1) > 1e-4
    assert bool((ce.numpy()[differs] > h[differs]).all())
    matched = Fn.cluster_cross_entropy(q.log() * student_temp, q, student_temp, "none")
    close(matched, h, atol=1e-10)


def test_cluster_cross_entropy_reductions():
    s = torch.tensor([[1.0, 0.0], [0.0, 2.0], [0.5, 0.5]], dtype=torch.float64)
    q = torch.tensor([[0.2, 0.8], [1.0, 0.0], [0.5, 0.5]], dtype=torch.float64)
    per = -(q.numpy() * np_log_softmax(s.numpy() / 0.5)).sum(1)
    close(Fn.cluster_cross_entropy(s, q, 0.5, "none"), per)
    close(Fn.cluster_cross_entropy(s, q, 0.5, "sum"), per.sum())
    close(Fn.cluster_cross_entropy(s, q, 0.5), per.mean())
    with pytest.raises(ValueError, match="reduction"):
        Fn.cluster_cross_entropy(s, q, 0.5, "max")


# --------------------------------------------------------------------------- binary channel

bit_logit = st.one_of(st.just(0.0), st.just(-0.0), finite(1e-6, 60.0), finite(-60.0, -1e-6))


@FAST
@given(data=st.data(), b=st.integers(1, 6), d=st.integers(1, 10))
def test_binary_message_is_map_decoding_of_sigmoid(data, b, d):
    a = torch.from_numpy(data.draw(hnp.arrays(np.float64, (b, d), elements=bit_logit)))
    a.requires_grad_(True)
    bits = Fn.binary_message(a)
    assert bits.dtype == a.dtype and not bits.requires_grad
    assert torch.equal(bits, (torch.sigmoid(a.detach()) > 0.5).to(a.dtype))
    assert set(bits.unique().tolist()) <= {0.0, 1.0}


def np_bce(s: np.ndarray, t: np.ndarray) -> np.ndarray:
    sig = 1 / (1 + np.exp(-s))
    return -(t * np.log(sig) + (1 - t) * np.log(1 - sig)).sum(axis=1)


@FAST
@given(
    s=logits(lo=-10.0, hi=10.0),
    seed=st.integers(0, 2**16),
    soft=st.booleans(),
)
def test_binary_agreement_loss_is_bce_summed_over_bits_mean_over_batch(s, seed, soft):
    gen = torch.Generator().manual_seed(seed)
    if soft:
        t = torch.rand(s.shape, generator=gen, dtype=s.dtype)
    else:
        t = Fn.binary_message(torch.randn(s.shape, generator=gen, dtype=s.dtype))
    per = np_bce(s.numpy(), t.numpy())
    close(Fn.binary_agreement_loss(s, t), per.mean(), rtol=1e-6)
    close(Fn.binary_agreement_loss(s, t, reduction="sum"), per.sum(), rtol=1e-6)
    close(Fn.binary_agreement_loss(s, t, reduction="none"), per, rtol=1e-6)


def test_soft_message_is_tempered_sigmoid_and_detached():
    a = torch.tensor([[0.0, 2.0, -4.0]], dtype=torch.float64, requires_grad=True)
    m = Fn.soft_message(a, 2.0)
    close(m, 1 / (1 + np.exp(-np.array([[0.0, 1.0, -2.0]]))))
    assert not m.requires_grad


def test_binary_agreement_rejects_targets_outside_unit_interval_and_shape_mismatch():
    with pytest.raises(ValueError, match=r"teacher_bits must lie in \[0, 1\]"):
        Fn.binary_agreement_loss(torch.zeros(2, 3), torch.full((2, 3), 1.5))
    with pytest.raises(ValueError, match="differ in shape"):
        Fn.binary_agreement_loss(torch.zeros(2, 3), torch.zeros(2, 4))


# --------------------------------------------------------------------------- coding rate


def logdet_rate(z: torch.Tensor, eps: float, side: str) -> float:
    """1/2 logdet of the d x d (or n x n) matrix, built directly in float64."""
    x = z.double() / z.double().norm(dim=1, keepdim=True)
    n, d = x.shape
    alpha = d / (n * eps**2)
    if side == "d":
        return 0.5 * float(torch.logdet(torch.eye(d, dtype=x.dtype) + alpha * x.T @ x))
    return 0.5 * float(torch.logdet(torch.eye(n, dtype=x.dtype) + alpha * x @ x.T))


@pytest.mark.parametrize(("n", "d"), [(3, 8), (8, 3), (5, 5), (1, 4), (4, 1), (20, 7)])
@pytest.mark.parametrize("eps", [0.2, 0.5, 1.5])
def test_coding_rate_both_gram_routes_agree_with_direct_logdet(n, d, eps):
    z = torch.randn(n, d, generator=torch.Generator().manual_seed(n * 31 + d), dtype=torch.float64)
    rate = Fn.coding_rate(z, eps)
    assert rate.dtype == torch.float64 and rate.dim() == 0
    assert math.isclose(float(rate), logdet_rate(z, eps, "d"), rel_tol=1e-10, abs_tol=1e-12)
    assert math.isclose(float(rate), logdet_rate(z, eps, "n"), rel_tol=1e-10, abs_tol=1e-12)


@st.composite
def features(draw, max_n: int = 10, max_d: int = 8):
    n = draw(st.integers(1, max_n))
    d = draw(st.integers(1, max_d))
    seed = draw(st.integers(0, 2**16))
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@FAST
@given(z=features(), eps=finite(0.1, 2.0), seed=st.integers(0, 2**16))
def test_coding_rate_invariant_to_rotation_permutation_and_row_scale(z, eps, seed):
    gen = torch.Generator().manual_seed(seed)
    n, d = z.shape
    rotation, _ = torch.linalg.qr(torch.randn(d, d, generator=gen, dtype=z.dtype))
    perm = torch.randperm(n, generator=gen)
    scale = torch.rand(n, 1, generator=gen, dtype=z.dtype) * 10 + 0.1
    rate = Fn.coding_rate(z, eps)
    for other in (z @ rotation, z[perm], z * scale):
        torch.testing.assert_close(Fn.coding_rate(other, eps), rate, atol=1e-10, rtol=1e-10)


@FAST
@given(z=features(), eps=finite(0.1, 2.0))
def test_coding_rate_between_rank_one_and_equal_eigenvalue_bounds(z, eps):
    n, d = z.shape
    r = min(n, d)
    lower = 0.5 * math.log(1 + d / eps**2)
    upper = r / 2 * math.log(1 + d / (r * eps**2))
    rate = float(Fn.coding_rate(z, eps))
    assert lower - 1e-9 <= rate <= upper + 1e-9


@pytest.mark.parametrize(("n", "d"), [(1, 3), (4, 4), (6, 2), (5, 9)])
def test_coding_rate_lower_bound_attained_by_identical_rows(n, d):
    z = torch.randn(1, d, generator=torch.Generator().manual_seed(d), dtype=torch.float64)
    rate = Fn.coding_rate(z.repeat(n, 1), 0.5)
    assert math.isclose(float(rate), 0.5 * math.log(1 + d / 0.25), rel_tol=1e-10)


@pytest.mark.parametrize(("n", "d"), [(1, 3), (3, 3), (2, 7), (6, 3), (8, 4)])
def test_coding_rate_upper_bound_attained_by_orthonormal_rows(n, d):
    # n <= d: n orthonormal rows; n > d (a multiple of d): the basis repeated
    eye = torch.eye(d, dtype=torch.float64)
    z = eye[:n] if n <= d else eye.repeat(n // d, 1)
    rotation, _ = torch.linalg.qr(torch.randn(d, d, generator=torch.Generator().manual_seed(0)))
    z = z @ rotation.double()
    r = min(n, d)
    rate = Fn.coding_rate(z, 0.5)
    assert math.isclose(float(rate), r / 2 * math.log(1 + d / (r * 0.25)), rel_tol=1e-10)


def test_coding_rate_empty_batch_is_zero_with_gradient_path():
    z = torch.zeros(0, 5, requires_grad=True)
    rate = Fn.coding_rate(z, 0.5)
    assert float(rate.detach()) == 0.0 and rate.dtype == torch.float32
    rate.backward()
    assert z.grad is not None and z.grad.shape == (0, 5)


def test_coding_rate_zero_rows_do_not_produce_nan():
    z = torch.zeros(3, 4, dtype=torch.float64)
    z[0, 0] = 1.0
    assert math.isclose(float(Fn.coding_rate(z, 0.5)), 0.5 * math.log(1 + 4 / (3 * 0.25)))


def _degenerate(kind: str) -> torch.Tensor:
    gen = torch.Generator().manual_seed(7)
    if kind == "rank_one":  # one direction at different scales and signs
        return torch.randn(1, 16, generator=gen) * torch.tensor([[1.0], [2.5], [-3.0], [0.1]] * 8)
    if kind == "all_equal_rows":
        return torch.full((12, 6), 3.0)
    if kind == "one_row":
        return torch.randn(1, 32, generator=gen)
    return torch.randn(1, 64, generator=gen).repeat(5, 1)  # d > n, rank one


def _rank_one_rate(d: int, eps: float) -> float:
    """Every row on one line: the Gram matrix has the single eigenvalue n."""
    return 0.5 * math.log1p(d / eps**2)


@pytest.mark.parametrize("kind", ["rank_one", "all_equal_rows", "one_row", "d_gt_n_rank_one"])
@pytest.mark.parametrize("eps", [5e-3, 1e-3, 1e-4, 1e-6])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_coding_rate_degenerate_inputs_small_eps_exact_with_finite_gradients(kind, eps, dtype):
    # float32 Cholesky of I + a G raised LinAlgError on these inputs from eps <= 5e-3
    z = _degenerate(kind).to(dtype).requires_grad_()
    rate = Fn.coding_rate(z, eps)
    (grad,) = torch.autograd.grad(rate, z)
    rate = rate.detach()
    assert rate.dtype == dtype and math.isfinite(float(rate))
    assert bool(torch.isfinite(grad).all())
    assert math.isclose(float(rate), _rank_one_rate(z.shape[1], eps), rel_tol=1e-3)


@pytest.mark.parametrize(("n", "d"), [(64, 8), (6, 40), (1, 5), (10, 10)])
@pytest.mark.parametrize("eps", [5e-3, 1e-4])
def test_coding_rate_small_eps_full_rank_matches_float64_slogdet(n, d, eps):
    z = torch.randn(n, d, generator=torch.Generator().manual_seed(n + d))
    x = z.double().numpy()
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    gram = x @ x.T if n <= d else x.T @ x
    _, logdet = np.linalg.slogdet(np.eye(len(gram)) + d / (n * eps**2) * gram)
    rate = Fn.coding_rate(z.requires_grad_(), eps)
    assert math.isclose(float(rate.detach()), 0.5 * logdet, rel_tol=1e-5)
    (grad,) = torch.autograd.grad(rate, z)
    assert bool(torch.isfinite(grad).all())


def test_coding_rate_small_eps_route_agrees_with_cholesky_route():
    """Both sides of the switch give the same rate (float64, where both are accurate)."""
    z = torch.randn(9, 5, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    for d_over_eps2 in (0.5e-2 / 1.2e-7, 2e-2 / 1.2e-7):  # float32 Cholesky, then spectral
        eps = math.sqrt(5 / d_over_eps2)
        assert math.isclose(float(Fn.coding_rate(z, eps)), logdet_rate(z, eps, "n"), rel_tol=1e-9)
        assert math.isclose(
            float(Fn.coding_rate(z.float(), eps)), logdet_rate(z, eps, "n"), rel_tol=1e-4
        )


# --------------------------------------------------------------------------- multi-crop sums


def _views(n_views, b, k, seed, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(b, k, generator=gen, dtype=dtype).requires_grad_() for _ in range(n_views)]


def _targets(kind, n_teacher, b, k, seed):
    gen = torch.Generator().manual_seed(seed + 1000)
    raw = [torch.randn(b, k, generator=gen, dtype=torch.float64) for _ in range(n_teacher)]
    if kind == "probs":
        return [torch.softmax(r / 0.3, dim=1) for r in raw]
    if kind == "hard":
        return [Fn.binary_message(r) for r in raw]
    if kind == "soft":
        return [torch.sigmoid(r) for r in raw]
    return raw


def _cosine_pair(s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return (1 - torch.nn.functional.cosine_similarity(s, t.detach(), dim=1)).mean()


MULTICROP = {
    "cross_entropy": (
        lambda s, t: Fn.multicrop_cross_entropy(s, t, 0.1),
        lambda s, t: Fn.cluster_cross_entropy(s, t, 0.1),
        "probs",
    ),
    "binary_hard": (Fn.multicrop_binary_agreement, Fn.binary_agreement_loss, "hard"),
    "binary_soft": (Fn.multicrop_binary_agreement, Fn.binary_agreement_loss, "soft"),
    "cosine": (Fn.multicrop_cosine_distance, _cosine_pair, "raw"),
}


@pytest.mark.parametrize("kind", list(MULTICROP))
@pytest.mark.parametrize("n_views", [2, 3, 4, 5, 6])
@pytest.mark.parametrize("n_teacher", [1, 2])
def test_multicrop_equals_naive_double_loop_loss_and_gradients(kind, n_views, n_teacher):
    fast, pair, target_kind = MULTICROP[kind]
    b, k = 4, 5
    student = _views(n_views, b, k, seed=n_views * 10 + n_teacher)
    targets = _targets(target_kind, n_teacher, b, k, seed=n_views)
    loss = fast(student, targets)
    grads = torch.autograd.grad(loss, student, allow_unused=True, materialize_grads=True)

    ref_student = [s.detach().clone().requires_grad_() for s in student]
    terms = [
        pair(ref_student[si], targets[ti])
        for ti in range(n_teacher)
        for si in range(n_views)
        if si != ti
    ]
    ref = torch.stack(terms).mean()
    # with one teacher view, student view 0 has no pair: its gradient is zero
    ref_grads = torch.autograd.grad(ref, ref_student, allow_unused=True, materialize_grads=True)
    torch.testing.assert_close(loss, ref)
    for g, rg in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(g, rg)


def test_multicrop_cosine_distance_of_equal_and_opposite_views():
    v = torch.tensor([[1.0, 2.0], [-3.0, 0.5]], dtype=torch.float64)
    close(Fn.multicrop_cosine_distance([v, 2 * v], [v]), 0.0, atol=1e-12)
    close(Fn.multicrop_cosine_distance([v, -v], [v]), 2.0)


# --------------------------------------------------------------------------- gradcheck


def _tiny(seed: int, b: int = 3, k: int = 4) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(b, k, generator=gen, dtype=torch.float64).requires_grad_()


def _gradcheck_cases():
    q = torch.softmax(_tiny(9).detach() / 0.5, dim=1)
    bits = Fn.binary_message(_tiny(10).detach())
    soft = torch.sigmoid(_tiny(11).detach())
    prior = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64)
    return {
        "cluster_cross_entropy": (lambda s: Fn.cluster_cross_entropy(s, q, 0.3), 1),
        "binary_agreement_hard": (lambda s: Fn.binary_agreement_loss(s, bits), 1),
        "binary_agreement_soft": (lambda s: Fn.binary_agreement_loss(s, soft), 1),
        "coding_rate_n_lt_d": (lambda z: Fn.coding_rate(z, 0.5), 1),
        "coding_rate_n_gt_d": (lambda z: Fn.coding_rate(z.T, 0.5), 1),
        "inverse_prior_batch": (lambda z: Fn.inverse_prior_normalize(z, 0.5), 1),
        "inverse_prior_running": (lambda z: Fn.inverse_prior_normalize(z, 0.5, prior), 1),
        "center_batch": (lambda z: Fn.center_normalize(z, 0.5), 1),
        "center_given": (lambda z: Fn.center_normalize(z, 0.5, center=prior), 1),
        "cluster_prior": (lambda z: Fn.cluster_prior(z, 0.5), 1),
        "cluster_prior_geometric": (lambda z: Fn.cluster_prior(z, 0.5, "geometric"), 1),
        "sinkhorn": (lambda z: Fn.sinkhorn_knopp(z, 0.5, n_iter=3), 1),
        "jensen_gap": (lambda z: Fn.jensen_gap(z, 0.5), 1),
        "multicrop_cross_entropy": (
            lambda a, b, c: Fn.multicrop_cross_entropy([a, b, c], [q, q], 0.3),
            3,
        ),
        "multicrop_binary": (lambda a, b, c: Fn.multicrop_binary_agreement([a, b, c], [bits]), 3),
        "multicrop_cosine": (
            lambda a, b, c: Fn.multicrop_cosine_distance([a, b, c], [soft, q]),
            3,
        ),
    }


@pytest.mark.parametrize("name", list(_gradcheck_cases()))
def test_gradcheck_float64(name):
    fn, n_inputs = _gradcheck_cases()[name]
    inputs = tuple(_tiny(seed) for seed in range(n_inputs))
    assert torch.autograd.gradcheck(fn, inputs)


@pytest.mark.parametrize("transpose", [False, True], ids=["n_lt_d", "n_gt_d"])
def test_coding_rate_second_derivatives_are_exact(transpose):
    """Through the Gram autograd.Function and the Cholesky factorisation, Hessian-vector
    products of the coding rate stay right (both routes: n x n and d x d Gram)."""
    z = _tiny(12)
    assert torch.autograd.gradgradcheck(lambda x: Fn.coding_rate(x.T if transpose else x, 0.5), z)


# --------------------------------------------------------------------------- dtypes


def _dtype_calls(z: torch.Tensor):
    q = torch.softmax(z, dim=1)
    bits = (z > 0).to(z.dtype)
    return {
        "inverse_prior_normalize": lambda: Fn.inverse_prior_normalize(z, 0.1),
        "center_normalize": lambda: Fn.center_normalize(z, 0.1),
        "sinkhorn_knopp": lambda: Fn.sinkhorn_knopp(z, 0.1),
        "cluster_prior": lambda: Fn.cluster_prior(z, 0.1),
        "jensen_gap": lambda: Fn.jensen_gap(z, 0.1),
        "cluster_cross_entropy": lambda: Fn.cluster_cross_entropy(z, q, 0.1),
        "binary_message": lambda: Fn.binary_message(z),
        "soft_message": lambda: Fn.soft_message(z, 1.0),
        "binary_agreement_loss": lambda: Fn.binary_agreement_loss(z, bits),
        "coding_rate": lambda: Fn.coding_rate(z, 0.5),
        "multicrop_cross_entropy": lambda: Fn.multicrop_cross_entropy([z, z], [q], 0.1),
        "multicrop_binary_agreement": lambda: Fn.multicrop_binary_agreement([z, z], [bits]),
        "multicrop_cosine_distance": lambda: Fn.multicrop_cosine_distance([z, z], [z]),
    }


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", list(_dtype_calls(torch.zeros(1, 1))))
def test_output_dtype_is_input_dtype(dtype, name):
    z = torch.randn(6, 5, generator=torch.Generator().manual_seed(0)).to(dtype)
    out = _dtype_calls(z)[name]()
    assert out.dtype == dtype


@pytest.mark.parametrize("name", ["coding_rate", "sinkhorn_knopp", "inverse_prior_normalize"])
def test_autocast_bfloat16_still_computes_in_float32(name):
    z = torch.randn(12, 24, generator=torch.Generator().manual_seed(1))
    reference = _dtype_calls(z.double())[name]()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = _dtype_calls(z)[name]()
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.double(), reference, atol=1e-5, rtol=1e-5)


def test_bfloat16_input_is_computed_in_float32_and_returned_in_bfloat16():
    z = torch.randn(12, 24, generator=torch.Generator().manual_seed(2)).bfloat16()
    rate = Fn.coding_rate(z, 0.5)
    assert rate.dtype == torch.bfloat16
    expected = Fn.coding_rate(z.double(), 0.5)
    # only the final rounding to bfloat16 (8 bits of mantissa) separates the two
    assert abs(float(rate) - float(expected)) <= 2**-7 * abs(float(expected))
    q = Fn.sinkhorn_knopp(z, 0.1)
    assert q.dtype == torch.bfloat16
    torch.testing.assert_close(q.double(), Fn.sinkhorn_knopp(z.double(), 0.1), atol=4e-3, rtol=1e-2)


# --------------------------------------------------------------------------- bad input

GOOD = torch.zeros(2, 3)


def _all_teacher_fns():
    return {
        "inverse_prior_normalize": lambda z: Fn.inverse_prior_normalize(z, 0.1),
        "center_normalize": lambda z: Fn.center_normalize(z, 0.1),
        "sinkhorn_knopp": lambda z: Fn.sinkhorn_knopp(z, 0.1),
        "jensen_gap": lambda z: Fn.jensen_gap(z, 0.1),
        "cluster_prior": lambda z: Fn.cluster_prior(z, 0.1),
        "binary_message": Fn.binary_message,
        "coding_rate": lambda z: Fn.coding_rate(z, 0.5),
        "cluster_cross_entropy_student": lambda z: Fn.cluster_cross_entropy(z, GOOD, 0.1),
        "cluster_cross_entropy_teacher": lambda z: Fn.cluster_cross_entropy(GOOD, z, 0.1),
        "binary_agreement_student": lambda z: Fn.binary_agreement_loss(z, GOOD),
        "binary_agreement_teacher": lambda z: Fn.binary_agreement_loss(GOOD, z),
    }


@pytest.mark.parametrize("name", list(_all_teacher_fns()))
@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (torch.zeros(3), r"shape \(batch, dim\)"),
        (torch.zeros(2, 3, 1), r"shape \(batch, dim\)"),
        (torch.zeros(2, 0), "zero features"),
        (torch.zeros(2, 3, dtype=torch.long), "floating-point"),
        ([[0.0, 1.0]], "torch.Tensor"),
        (torch.tensor([[0.0, float("nan"), 1.0], [0.0, 0.0, 0.0]]), "non-finite"),
        (torch.tensor([[0.0, float("inf"), 1.0], [0.0, 0.0, 0.0]]), "non-finite"),
        (torch.tensor([[0.0, -float("inf"), 1.0], [0.0, 0.0, 0.0]]), "non-finite"),
    ],
)
def test_functions_reject_malformed_matrices(name, bad, match):
    with pytest.raises(ValueError, match=match):
        _all_teacher_fns()[name](bad)


@pytest.mark.parametrize("name", [n for n in _all_teacher_fns() if n != "coding_rate"])
def test_functions_reject_empty_batch(name):
    with pytest.raises(ValueError, match="empty batch"):
        _all_teacher_fns()[name](torch.zeros(0, 3))


@pytest.mark.parametrize("temp", [0, 0.0, -0.1, float("nan"), float("inf"), True, "0.1", None])
@pytest.mark.parametrize(
    "call",
    [
        lambda t: Fn.inverse_prior_normalize(GOOD, t),
        lambda t: Fn.center_normalize(GOOD, t),
        lambda t: Fn.sinkhorn_knopp(GOOD, t),
        lambda t: Fn.jensen_gap(GOOD, t),
        lambda t: Fn.cluster_prior(GOOD, t),
        lambda t: Fn.cluster_cross_entropy(GOOD, GOOD, t),
        lambda t: Fn.multicrop_cross_entropy([GOOD, GOOD], [GOOD], t),
        lambda t: Fn.soft_message(GOOD, t),
    ],
)
def test_temperatures_must_be_positive(temp, call):
    with pytest.raises(ValueError, match=r"(temp|tau) must be a (finite )?number > 0"):
        call(temp)


@pytest.mark.parametrize("eps", [0, -1.0, float("nan"), float("inf")])
def test_coding_rate_eps_must_be_positive(eps):
    with pytest.raises(ValueError, match="eps must be a"):
        Fn.coding_rate(GOOD, eps)


@pytest.mark.parametrize(
    "call",
    [
        lambda s, t: Fn.multicrop_cross_entropy(s, t, 0.1),
        Fn.multicrop_binary_agreement,
        Fn.multicrop_cosine_distance,
    ],
)
def test_multicrop_rejects_too_few_views_and_excess_teacher_views(call):
    with pytest.raises(ValueError, match="fewer than two views"):
        call([GOOD], [GOOD])
    with pytest.raises(ValueError, match="teacher views"):
        call([GOOD, GOOD], [GOOD, GOOD, GOOD])


def test_bad_priors_centers_means_and_shapes():
    z = torch.zeros(2, 3)
    with pytest.raises(ValueError, match=r"prior must be a tensor of shape \(3,\)"):
        Fn.inverse_prior_normalize(z, 0.1, prior=torch.ones(4))
    with pytest.raises(ValueError, match=r"prior must be a tensor of shape \(3,\), got list"):
        Fn.inverse_prior_normalize(z, 0.1, prior=[1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="strictly positive"):
        Fn.inverse_prior_normalize(z, 0.1, prior=torch.tensor([0.5, 0.5, 0.0]))
    with pytest.raises(ValueError, match="strictly positive"):
        Fn.inverse_prior_normalize(z, 0.1, prior=torch.tensor([0.5, 0.5, float("inf")]))
    with pytest.raises(ValueError, match="center must be a tensor with 3 elements"):
        Fn.center_normalize(z, 0.1, center=torch.zeros(2))
    with pytest.raises(ValueError, match="center must be a tensor with 3 elements"):
        Fn.center_normalize(z, 0.1, center=[0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="mean must be 'arithmetic' or 'geometric'"):
        Fn.cluster_prior(z, 0.1, "harmonic")
    with pytest.raises(ValueError, match="differ in shape"):
        Fn.cluster_cross_entropy(torch.zeros(2, 3), torch.zeros(3, 3), 0.1)
