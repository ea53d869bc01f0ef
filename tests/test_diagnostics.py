"""Diagnostics against small cases computed by hand."""

import math

import pytest
import torch

from sslobjectives import diagnostics as D


def h2(p: float) -> float:
    """Binary entropy in bits."""
    return 0.0 if p in (0.0, 1.0) else -(p * math.log2(p) + (1 - p) * math.log2(1 - p))


PROBS = torch.tensor([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.0, 0.0, 1.0], [0.5, 0.5, 0.0]])
# marginal (0.5, 0.25, 0.25); per-sample entropies 0, log 2, 0, log 2


def test_marginal_and_sample_entropy_and_kl_to_uniform():
    marginal = -(0.5 * math.log(0.5) + 2 * 0.25 * math.log(0.25))  # 1.5 log 2
    assert math.isclose(float(D.marginal_entropy(PROBS)), marginal, rel_tol=1e-6)
    assert math.isclose(float(D.mean_sample_entropy(PROBS)), math.log(2) / 2, rel_tol=1e-6)
    assert math.isclose(float(D.kl_to_uniform(PROBS)), math.log(3) - marginal, rel_tol=1e-6)
    collapsed = torch.tensor([[0.0, 1.0, 0.0]]).repeat(5, 1)
    assert float(D.marginal_entropy(collapsed)) == 0.0
    assert math.isclose(float(D.kl_to_uniform(collapsed)), math.log(3), rel_tol=1e-6)
    stats = D.cluster_stats(PROBS)
    assert set(stats) == {"marginal_entropy", "sample_entropy", "kl_to_uniform"}
    assert math.isclose(float(stats["sample_entropy"]), math.log(2) / 2, rel_tol=1e-6)


def test_effective_rank_of_known_singular_values():
    # orthogonal factors around singular values (3, 1, 0): p = (3/4, 1/4)
    gen = torch.Generator().manual_seed(0)
    u, _ = torch.linalg.qr(torch.randn(6, 6, generator=gen, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(3, 3, generator=gen, dtype=torch.float64))
    m = u[:, :3] @ torch.diag(torch.tensor([3.0, 1.0, 0.0], dtype=torch.float64)) @ v.T
    expected = math.exp(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))
    assert math.isclose(float(D.effective_rank(m)), expected, rel_tol=1e-5)
    assert math.isclose(float(D.effective_rank(torch.eye(4) * 7)), 4.0, rel_tol=1e-5)
    rank_one = torch.outer(torch.arange(1.0, 6.0), torch.tensor([1.0, -2.0, 0.5]))
    assert math.isclose(float(D.effective_rank(rank_one)), 1.0, rel_tol=1e-5)
    assert float(D.effective_rank(torch.zeros(3, 4))) == 1.0


BITS = torch.tensor(
    [
        [1.0, 1.0, 0.0, 1.0, 0.0],
        [1.0, 0.0, 0.0, 1.0, 1.0],
        [0.0, 1.0, 1.0, 1.0, 0.0],
        [0.0, 0.0, 1.0, 1.0, 0.0],
    ]
)
# columns: a = (1,1,0,0), b = (1,0,1,0), c = 1 - a, d constant (dead), e = (0,1,0,0)


def test_bit_marginal_entropy_and_dead_bits():
    expected = torch.tensor([h2(0.5), h2(0.5), h2(0.5), 0.0, h2(0.25)])
    torch.testing.assert_close(D.bit_marginal_entropy(BITS), expected)
    assert math.isclose(float(D.dead_bit_fraction(BITS)), 1 / 5, rel_tol=1e-6)
    assert float(D.dead_bit_fraction(torch.ones(3, 4))) == 1.0
    assert float(D.dead_bit_fraction(torch.eye(3))) == 0.0


def test_mean_abs_bit_correlation_by_hand():
    # Pearson: |corr(a,b)| = 0, |corr(a,c)| = 1, |corr(a,e)| = |corr(c,e)| = 1/sqrt(3),
    # |corr(b,e)| = 1/sqrt(3); the dead column d is left out: mean over 4 * 3 / 2 = 6 pairs
    expected = (0 + 1 + 1 / math.sqrt(3) + 0 + 1 / math.sqrt(3) + 1 / math.sqrt(3)) / 6
    assert math.isclose(float(D.mean_abs_bit_correlation(BITS)), expected, rel_tol=1e-6)
    assert float(D.mean_abs_bit_correlation(BITS[:, [0, 1]])) == 0.0
    assert float(D.mean_abs_bit_correlation(BITS[:, [0, 3]])) == 0.0  # one live bit
    stats = D.bit_stats(BITS)
    assert set(stats) == {"bit_entropy", "dead_bits", "bit_correlation"}
    assert math.isclose(float(stats["bit_entropy"]), (3 + h2(0.25)) / 5, rel_tol=1e-6)


def test_bit_diagnostics_reject_non_binary_input():
    for fn in (D.bit_marginal_entropy, D.dead_bit_fraction, D.mean_abs_bit_correlation):
        with pytest.raises(ValueError, match="bits must contain only 0 and 1"):
            fn(torch.tensor([[0.0, 0.5]]))


def test_jensen_gap_summary():
    z = torch.tensor([[2.0, 0.0, 1.0], [0.0, 2.0, 1.0]], dtype=torch.float64)
    p = torch.softmax(z, dim=1)
    gap = torch.log(p.mean(0)) - torch.log(p).mean(0)
    summary = D.jensen_gap_summary(z, 1.0)
    assert math.isclose(float(summary["jensen_gap_mean"]), float(gap.mean()), rel_tol=1e-9)
    assert math.isclose(float(summary["jensen_gap_max"]), float(gap.max()), rel_tol=1e-9)


def test_diagnostics_are_detached():
    probs = torch.softmax(torch.randn(4, 3, requires_grad=True), dim=1)
    for fn in (D.marginal_entropy, D.mean_sample_entropy, D.kl_to_uniform, D.effective_rank):
        assert not fn(probs).requires_grad
