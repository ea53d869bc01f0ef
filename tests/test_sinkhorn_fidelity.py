"""``sinkhorn`` is DINOv2's / SwAV's teacher, and the README says what 3 iterations achieve.

The reference below is written from SwAV's Algorithm 1 (arXiv 2006.09882) as DINOv2
(arXiv 2304.07193) runs it: a K x B matrix ``Q = exp(z / T)^T`` scaled to total mass 1, then
``n_iter`` times: every prototype's row to mass ``1/K``, every sample's column to mass ``1/B``;
finally ``B Q`` so that each sample's assignment sums to 1. Plain loops over the matrix in
float64, no log space: independent of the library's log-space implementation.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as torch_f

from sslobjectives import functional as Fn
from sslobjectives.objectives import build

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def swav_reference(z: torch.Tensor, temp: float, n_iter: int) -> torch.Tensor:
    q = torch.exp(z.double() / temp).t()  # K x B
    k, b = q.shape
    q = q / q.sum()
    for _ in range(n_iter):
        q = q / q.sum(dim=1, keepdim=True) / k  # each prototype: total weight 1/K
        q = q / q.sum(dim=0, keepdim=True) / b  # each sample: total weight 1/B
    return (q * b).t()


@pytest.mark.parametrize("n_iter", [1, 2, 3, 5])
@pytest.mark.parametrize(("b", "k", "temp"), [(7, 5, 0.5), (32, 64, 0.07), (128, 256, 0.04)])
def test_default_sinkhorn_equals_the_dinov2_swav_teacher(b, k, temp, n_iter):
    g = torch.Generator().manual_seed(b * k + n_iter)
    z = torch.randn(b, k, generator=g, dtype=torch.float64) * 2.0
    ref = swav_reference(z, temp, n_iter)
    torch.testing.assert_close(Fn.sinkhorn_knopp(z, temp, n_iter), ref, rtol=1e-10, atol=1e-12)
    # float32 in: the same to float32 precision
    torch.testing.assert_close(
        Fn.sinkhorn_knopp(z.float(), temp, n_iter).double(), ref, rtol=2e-4, atol=1e-6
    )


def test_the_sinkhorn_objective_uses_the_dinov2_teacher_by_default():
    g = torch.Generator().manual_seed(0)
    student = [torch.randn(16, 32, generator=g, dtype=torch.float64) for _ in range(3)]
    teacher = [torch.randn(16, 32, generator=g, dtype=torch.float64) for _ in range(2)]
    obj = build("sinkhorn", teacher_temp=0.07, warmup_teacher_temp_epochs=0)
    q = swav_reference(torch.cat(teacher), 0.07, 3).chunk(2)
    pairs = [
        -(q[t] * torch.log_softmax(s / 0.1, -1)).sum(-1).mean()
        for t in range(2)
        for i, s in enumerate(student)
        if i != t
    ]
    torch.testing.assert_close(obj(student, teacher).loss, torch.stack(pairs).mean())


def test_the_posterior_start_is_a_different_teacher_at_three_iterations():
    """Why the option is named: from softmax(z/T) the iterates differ (same limit)."""
    z = trained_like_teacher(128, 256, seed=1, concentration=3.0)
    exp3 = Fn.sinkhorn_knopp(z, 0.04, 3)
    post3 = Fn.sinkhorn_knopp(z, 0.04, 3, start="posterior")
    assert float((exp3 - post3).abs().max()) > 0.1
    torch.testing.assert_close(
        Fn.sinkhorn_knopp(z, 0.5, 400), Fn.sinkhorn_knopp(z, 0.5, 400, start="posterior")
    )


def test_bad_start_is_an_error_naming_the_options():
    with pytest.raises(ValueError, match="start must be one of exp, posterior"):
        Fn.sinkhorn_knopp(torch.zeros(2, 2), 0.1, start="softmax")
    with pytest.raises(ValueError, match="start must be one of"):
        build("sinkhorn", start="uniform")


# --------------------------------------------------------------------------- README figure

SIZES = (256, 1024, 4096)
TEMPS = (0.04, 0.055, 0.07)
CONCENTRATIONS = (1.0, 3.0, 10.0)


def trained_like_teacher(
    b: int, k: int, *, d: int = 64, seed: int = 0, concentration: float = 3.0
) -> torch.Tensor:
    """Logits of a DINO-style head part-way through training: cosines between L2-normalised
    bottleneck features and K unit prototypes (d = 64, our ``bottleneck_dim``), each sample
    near one prototype (``concentration`` = signal-to-noise), prototype use skewed 1/rank."""
    g = torch.Generator().manual_seed(seed)
    w = torch_f.normalize(torch.randn(k, d, generator=g, dtype=torch.float64), dim=1)
    use = 1.0 / torch.arange(1, k + 1, dtype=torch.float64)
    c = torch.multinomial(use / use.sum(), b, replacement=True, generator=g)
    noise = torch.randn(b, d, generator=g, dtype=torch.float64)
    x = torch_f.normalize(w[c] * concentration + noise, dim=1)
    return x @ w.T


def worst_marginal_error(start: str | None, n_iter: int = 3) -> float:
    """Largest ``|cluster share - 1/K| * K`` over the grid, batch 128; ``start=None``: of the
    raw posterior ``softmax(z/T)``."""
    worst = 0.0
    for k in SIZES:
        for temp in TEMPS:
            for conc in CONCENTRATIONS:
                z = trained_like_teacher(128, k, concentration=conc)
                if start is None:
                    q = torch.softmax(z / temp, dim=1)
                else:
                    q = Fn.sinkhorn_knopp(z, temp, n_iter, start=start)
                worst = max(worst, float((q.mean(0) - 1.0 / k).abs().max() * k))
    return worst


def test_readme_states_the_measured_marginal_error_of_three_iterations():
    m = re.search(
        r"3 iterations leave the largest cluster share off `1/K` by up to ([0-9.]+) × `1/K` "
        r"\(from the posteriors: ([0-9.]+) ×\),\s+where the raw posterior is off by up to "
        r"([0-9]+) × `1/K`",
        README,
    )
    assert m, "README must state the measured marginal error of 3 Sinkhorn iterations"
    assert float(m.group(1)) == round(worst_marginal_error("exp"), 2)
    assert float(m.group(2)) == round(worst_marginal_error("posterior"), 2)
    assert int(m.group(3)) == round(worst_marginal_error(None))
    assert f"marginals within {m.group(1)} × `1/K`" in README  # the claim-2 row quotes it
    assert "exactly balanced" not in README
