"""Claim 4 — centering is normalisation by the geometric-mean prior, exactly.

``softmax((z - mean_b z)/tau)_bk = (p_bk / G_k) / sum_j (p_bj / G_j)`` with
``p = softmax(z/tau)`` and ``G_k = (prod_b p_bk)^(1/B)`` the geometric mean of cluster ``k``'s
posteriors over the batch (``center_normalize``; ``cluster_prior(..., mean="geometric")``).
Inverse-prior normalisation (``inverse_prior_normalize``) divides by the arithmetic mean
``P_k`` instead, and ``G_k <= P_k`` (AM >= GM). With ``r_k = P_k / G_k >= 1``
(``log r_k = jensen_gap``), the two teachers differ by

    q_center_bk / q_prior_bk = r_k / sum_j q_prior_bj r_j,

the same ``r_k`` for every sample divided by a per-sample constant, the ``q_prior_b``-weighted
mean of ``r``. Hence, relative to inverse-prior normalisation, centering weights **up** the
clusters with a larger ``P_k/G_k`` than that mean and **down** those with a smaller one; the
cluster with the largest ``P/G`` is weighted up (or kept) in every sample, the one with the
smallest ``P/G`` down (or kept). ``P/G`` is large for a cluster whose posterior varies a lot
over the batch (confident for a few samples, near 0 for the rest) and 1 for a cluster whose
posterior is the same for every sample: centering moves mass towards the selectively used
clusters and away from the evenly used ones.

Run ``python proofs/centering_geometric_mean.py`` to print the derivation.
"""

from __future__ import annotations

import sympy as sp

CLAIM = 4
TITLE = "Centering is geometric-mean normalisation"
STATEMENT = "centered = (p/G)/sum(p/G); centered/prior = r_k/E_q[r], r = P/G >= 1"
SCOPE = "general B, K; explicit check at B = 2, K = 3; ordering at K = 3"
CONCLUSION = (
    "Relative to inverse-prior normalisation, centering weights up the clusters with larger "
    "P_k/G_k (posteriors that vary over the batch) and down those with P_k/G_k near 1 "
    "(posteriors the same for every sample), by the same factor r_k in every row."
)


def _geometric_identity() -> list[tuple[str, bool]]:
    b, c, j, k = sp.symbols("b c j k", integer=True, positive=True)
    n_b, n_k = sp.symbols("B K", integer=True, positive=True)
    tau = sp.Symbol("tau", positive=True)
    z = sp.IndexedBase("z", real=True)
    log_z = sp.IndexedBase("L", real=True)  # L_b = log sum_j exp(z_bj / tau)
    log_p = lambda bb, kk: z[bb, kk] / tau - log_z[bb]  # noqa: E731
    log_g = lambda kk: sp.Sum(log_p(c, kk), (c, 1, n_b)) / n_b  # noqa: E731
    z_bar = lambda kk: sp.Sum(z[c, kk], (c, 1, n_b)) / n_b  # noqa: E731
    by_g = sp.exp(log_p(b, k) - log_g(k)) / sp.Sum(sp.exp(log_p(b, j) - log_g(j)), (j, 1, n_k))
    by_g = by_g.replace(
        lambda e: isinstance(e, sp.Sum) and e.variables == (c,),
        lambda e: sp.Sum(sp.expand(e.function), *e.limits).expand(),
    )
    centered = sp.exp((z[b, k] - z_bar(k)) / tau) / sp.Sum(
        sp.exp((z[b, j] - z_bar(j)) / tau), (j, 1, n_k)
    )
    general = sp.simplify(centered - by_g) == 0

    p3 = sp.symbols("p1:4", positive=True)
    geo = sp.exp(sum(sp.log(v) for v in p3) / 3)
    geo_ok = sp.simplify(geo - (p3[0] * p3[1] * p3[2]) ** sp.Rational(1, 3)) == 0

    a1, a2 = sp.symbols("a1 a2", positive=True)
    am_gm = sp.expand((a1 + a2) / 2 - sp.sqrt(a1 * a2) - (sp.sqrt(a1) - sp.sqrt(a2)) ** 2 / 2) == 0

    # Explicit B = 2, K = 3 with the true softmax posteriors; z_bk = tau log e_bk, e_bk > 0,
    # reaches every real z and makes every entry algebraic in e.
    e = sp.Matrix(2, 3, lambda bb, kk: sp.Symbol(f"e{bb + 1}{kk + 1}", positive=True))
    zs = e.applyfunc(lambda v: tau * sp.log(v))
    p = sp.Matrix(2, 3, lambda bb, kk: sp.exp(zs[bb, kk] / tau) / sum(e.row(bb)))
    g = [sp.exp((sp.log(p[0, kk]) + sp.log(p[1, kk])) / 2) for kk in range(3)]
    zbar = [(zs[0, kk] + zs[1, kk]) / 2 for kk in range(3)]
    explicit = True
    for bb in range(2):
        ratio = [p[bb, kk] / g[kk] for kk in range(3)]
        cen = [sp.exp((zs[bb, kk] - zbar[kk]) / tau) for kk in range(3)]
        for kk in range(3):
            diff = sp.expand_log(ratio[kk] / sum(ratio) - cen[kk] / sum(cen), force=True)
            diff = sp.powsimp(sp.expand_power_base(diff, force=True))
            explicit = explicit and sp.cancel(diff) == 0
    return [
        ("G_k = exp(mean_b log p_bk) = (prod_b p_bk)^(1/B)  [B=3]", geo_ok),
        (
            "(p_bk/G_k) / sum_j (p_bj/G_j) = softmax((z - mean_b z)/tau)_bk for any B, K "
            "(log p_bk = z_bk/tau - L_b; the factor exp(mean_b L_b - L_b) cancels)",
            general,
        ),
        (
            "[B=2, K=3, symbolic z, true softmax posteriors] (p/G)/sum(p/G) = "
            "softmax((z - mean_b z)/tau), G_k = sqrt(p_1k p_2k)",
            explicit,
        ),
        (
            "[B=2] P - G = (a1 + a2)/2 - sqrt(a1 a2) = (sqrt(a1) - sqrt(a2))^2 / 2 >= 0; any B: "
            "G_k <= P_k by claim 3 (proofs/jensen_centering.py), so r_k = P_k/G_k >= 1, "
            "log r_k = jensen_gap_k",
            am_gm,
        ),
    ]


def _ratio_law() -> list[tuple[str, bool]]:
    j, k = sp.symbols("j k", integer=True, positive=True)
    n_k = sp.Symbol("K", integer=True, positive=True)
    p = sp.IndexedBase("p", positive=True)  # one sample's posterior p_bk, b fixed
    prior = sp.IndexedBase("P", positive=True)
    r = sp.IndexedBase("r", positive=True)  # r_k = P_k / G_k, so 1/G_k = r_k / P_k
    q_prior = lambda kk: (p[kk] / prior[kk]) / sp.Sum(p[j] / prior[j], (j, 1, n_k))  # noqa: E731
    q_center = (p[k] * r[k] / prior[k]) / sp.Sum(p[j] * r[j] / prior[j], (j, 1, n_k))
    weighted_mean = sp.Sum(q_prior(j) * r[j], (j, 1, n_k))
    law = sp.simplify(q_center / q_prior(k) - r[k] / weighted_mean) == 0

    # K = 3: the per-sample constant c = sum_j q_j r_j lies between min r and max r.
    q1, q2 = sp.symbols("q1 q2", positive=True)
    qs = [q1, q2, 1 - q1 - q2]
    r3 = sp.symbols("r1:4", positive=True)
    c = sum(qv * rv for qv, rv in zip(qs, r3, strict=True))
    below_max = sp.expand(r3[2] - c - sum(qv * (r3[2] - rv) for qv, rv in zip(qs, r3, strict=True)))
    above_min = sp.expand(c - r3[0] - sum(qv * (rv - r3[0]) for qv, rv in zip(qs, r3, strict=True)))

    # An exact rational example: B = 2, K = 3, cluster 1 used evenly, clusters 2, 3 selectively.
    half = sp.Rational(1, 2)
    p_ex = sp.Matrix(
        [
            [half, sp.Rational(49, 100), sp.Rational(1, 100)],
            [half, sp.Rational(1, 100), sp.Rational(49, 100)],
        ]
    )
    arith = [sum(p_ex.col(kk)) / 2 for kk in range(3)]
    geo = [sp.sqrt(p_ex[0, kk] * p_ex[1, kk]) for kk in range(3)]
    ratio = [sp.nsimplify(a / g) for a, g in zip(arith, geo, strict=True)]

    def normalise(row: list[sp.Expr]) -> list[sp.Expr]:
        return [v / sum(row) for v in row]

    qp = normalise([p_ex[0, kk] / arith[kk] for kk in range(3)])
    qc = normalise([p_ex[0, kk] / geo[kk] for kk in range(3)])
    signs = [sp.sign(sp.nsimplify(qc[kk] - qp[kk])) for kk in range(3)]
    example_ok = ratio[0] == 1 and ratio[1] > 1 and signs == [-1, 1, 1]
    # The distance between the two teachers is a Jensen gap of r under q_prior (K = 3):
    # KL(q_prior || q_center) = log sum_j q_j r_j - sum_j q_j log r_j.
    q_center3 = [qv * rv / c for qv, rv in zip(qs, r3, strict=True)]
    kl = sum(qv * sp.log(qv / qc) for qv, qc in zip(qs, q_center3, strict=True))
    kl_form = sp.log(c) - sum(qv * sp.log(rv) for qv, rv in zip(qs, r3, strict=True))
    kl_ok = sp.simplify(sp.expand(sp.expand_log(kl - kl_form, force=True))) == 0
    return [
        (
            "q_center_bk / q_prior_bk = r_k / sum_j q_prior_bj r_j for any K "
            "(1/G_k = r_k/P_k): the same r_k in every row over a per-row constant",
            law,
        ),
        (
            "[K=3] with r_1 <= r_2 <= r_3: r_3 - c = sum_j q_j (r_3 - r_j) >= 0 and "
            "c - r_1 = sum_j q_j (r_j - r_1) >= 0, so the max-P/G cluster is weighted up and "
            "the min-P/G cluster down in every sample",
            below_max == 0 and above_min == 0,
        ),
        (
            "[K=3] KL(q_prior_b || q_center_b) = log sum_j q_prior_bj r_j - sum_j q_prior_bj "
            "log r_j: the Jensen gap of r under q_prior_b, 0 iff r is constant on the clusters "
            "the sample uses; the spread of P/G across clusters matters, not its size",
            kl_ok,
        ),
        (
            f"example p = {p_ex.tolist()}: P/G = {ratio}; row 1 centering - inverse-prior "
            f"has signs {signs}: the evenly used cluster 1 (P/G = 1) is weighted down, the "
            "selectively used clusters 2, 3 up",
            example_ok,
        ),
    ]


def prove() -> list[tuple[str, bool]]:
    """The derivation, step by step: ``(statement, whether sympy confirms it)``."""
    return _geometric_identity() + _ratio_law()


if __name__ == "__main__":
    import sys

    from sslobjectives.derivation import run_as_script

    run_as_script(sys.modules[__name__])
