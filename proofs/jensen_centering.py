"""Claim 3 — from inverse-prior normalisation to centering by Jensen's inequality [KAA].

``log P_k = log((1/B) sum_b p_bk) >= (1/B) sum_b log p_bk`` (``jensen_gap`` is the
difference), with equality iff ``p_bk`` is the same for every sample ``b``. Replacing
``log P_k`` in the inverse-prior normalisation ``q_bk ∝ exp(log p_bk - log P_k)`` by this lower
bound, and writing ``log p_bk = z_bk/tau - log Z_b``, the per-sample log-partition
``log Z_b`` is constant in ``k`` and cancels in the row normalisation, leaving DINO's
centering ``softmax((z - mean_b z)/tau)`` (``center_normalize``).

Run ``python proofs/jensen_centering.py`` to print the derivation.
"""

from __future__ import annotations

import sympy as sp

CLAIM = 3
TITLE = "Jensen's inequality turns inverse-prior normalisation into centering"
STATEMENT = "log mean_b p_bk >= mean_b log p_bk (= iff p_.k const): gives centering"
SCOPE = "general B, K; explicit check at B = 2, K = 3"
CONCLUSION = (
    "Centering is inverse-prior normalisation with log P_k replaced by a lower bound; the bound "
    "is tight only when a cluster's posterior is the same for every sample in the batch."
)


def _sum_over(expr: sp.Expr, b: sp.Symbol, n_b: sp.Symbol) -> sp.Expr:
    """``sum_{b=1..B} expr`` by linearity: factors free of ``b`` come out of each term."""
    expr = sp.expand(expr)
    out = sp.Integer(0)
    for term in expr.args if expr.is_Add else (expr,):
        const, dependent = term.as_independent(b, as_Add=False)
        out += const * sp.Sum(dependent, (b, 1, n_b)).doit()
    return out


def _jensen() -> list[tuple[str, bool]]:
    x, m, total = sp.symbols("x m S", positive=True)
    b, n_b = sp.symbols("b B", integer=True, positive=True)
    p = sp.IndexedBase("p", positive=True)
    # Tangent line of the concave log at m: f(x) = log m + (x - m)/m - log x >= 0.
    f = sp.log(m) + (x - m) / m - sp.log(x)
    tangent_ok = (
        f.subs(x, m) == 0
        and sp.simplify(sp.diff(f, x).subs(x, m)) == 0
        and sp.diff(f, x, 2).is_positive is True
        and sp.solve(sp.diff(f, x), x) == [m]
    )
    # S stands for sum_b p_b, so the mean is m = S / B.
    as_total = {sp.Sum(p[b], (b, 1, n_b)): total}
    mean = total / n_b
    deviations = _sum_over(p[b] - mean, b, n_b).subs(as_total)
    summed = _sum_over(f.subs({x: p[b], m: mean}), b, n_b).subs(as_total)
    gap = n_b * sp.log(mean) - sp.Sum(sp.log(p[b]), (b, 1, n_b))
    jensen_ok = sp.expand(sp.expand_log(summed - gap, force=True)) == 0
    a1, a2 = sp.symbols("a1 a2", positive=True)
    two = sp.log((a1 + a2) / 2) - (sp.log(a1) + sp.log(a2)) / 2
    two_ok = (
        sp.simplify(sp.expand_log(two - sp.log((a1 + a2) ** 2 / (4 * a1 * a2)) / 2, force=True))
        == 0
        and sp.factor((a1 + a2) ** 2 - 4 * a1 * a2) == (a1 - a2) ** 2
    )
    return [
        (
            f"f(x) = {f}: f(m) = 0, f'(m) = 0, f''(x) = {sp.diff(f, x, 2)} > 0, f'(x) = 0 only "
            "at x = m: f >= 0, = 0 iff x = m (log is concave)",
            tangent_ok,
        ),
        (f"with m = mean_b p_b: sum_b (p_b - m) = {deviations} (any B)", deviations == 0),
        (
            "sum_b f(p_b) = B (log mean_b p_b - mean_b log p_b) for any B: the Jensen gap "
            "is a sum of non-negative terms, 0 iff every p_b = m",
            jensen_ok,
        ),
        (
            "[B=2] log((a1+a2)/2) - (log a1 + log a2)/2 = 1/2 log((a1+a2)^2/(4 a1 a2)), "
            "(a1+a2)^2 - 4 a1 a2 = (a1-a2)^2 >= 0",
            two_ok,
        ),
    ]


def _substitution() -> list[tuple[str, bool]]:
    b, c, j, k = sp.symbols("b c j k", integer=True, positive=True)
    n_b, n_k = sp.symbols("B K", integer=True, positive=True)
    tau = sp.Symbol("tau", positive=True)
    z = sp.IndexedBase("z", real=True)
    log_z = sp.IndexedBase("L", real=True)  # L_b = log sum_j exp(z_bj / tau)
    log_p = lambda bb, kk: z[bb, kk] / tau - log_z[bb]  # noqa: E731
    bound = lambda kk: sp.Sum(log_p(c, kk), (c, 1, n_b)) / n_b  # noqa: E731  replaces log P_k
    z_bar = lambda kk: sp.Sum(z[c, kk], (c, 1, n_b)) / n_b  # noqa: E731
    q_bound = sp.exp(log_p(b, k) - bound(k)) / sp.Sum(sp.exp(log_p(b, j) - bound(j)), (j, 1, n_k))
    centered = sp.exp((z[b, k] - z_bar(k)) / tau) / sp.Sum(
        sp.exp((z[b, j] - z_bar(j)) / tau), (j, 1, n_k)
    )
    split = q_bound.replace(
        lambda e: isinstance(e, sp.Sum) and e.variables == (c,),
        lambda e: sp.Sum(sp.expand(e.function), *e.limits).expand(),
    )
    general = sp.simplify(centered - split) == 0

    # Explicit: B = 2, K = 3 with the true softmax posteriors (no abstract L_b);
    # z_bk = tau log e_bk, e_bk > 0, reaches every real z and makes the entries algebraic.
    e = sp.Matrix(2, 3, lambda bb, kk: sp.Symbol(f"e{bb + 1}{kk + 1}", positive=True))
    zs = e.applyfunc(lambda v: tau * sp.log(v))
    logp = sp.Matrix(
        2,
        3,
        lambda bb, kk: zs[bb, kk] / tau - sp.log(sum(sp.exp(zs[bb, jj] / tau) for jj in range(3))),
    )
    lower = [(logp[0, kk] + logp[1, kk]) / 2 for kk in range(3)]
    zbar = [(zs[0, kk] + zs[1, kk]) / 2 for kk in range(3)]
    explicit = True
    for bb in range(2):
        num = [sp.exp(logp[bb, kk] - lower[kk]) for kk in range(3)]
        cen = [sp.exp((zs[bb, kk] - zbar[kk]) / tau) for kk in range(3)]
        for kk in range(3):
            diff = sp.expand_log(num[kk] / sum(num) - cen[kk] / sum(cen), force=True)
            diff = sp.powsimp(sp.expand_power_base(diff, force=True))
            explicit = explicit and sp.cancel(diff) == 0
    return [
        (
            "log p_bk = z_bk/tau - L_b (log-softmax), so mean_b log p_bk = mean_b z_bk/tau - "
            "mean_b L_b; in q_bk ∝ exp(log p_bk - mean_b log p_bk) the factor "
            "exp(mean_b L_b - L_b) does not depend on k and cancels (any B, K)",
            general,
        ),
        (
            "[B=2, K=3, symbolic z, true softmax posteriors] q with log P_k replaced by its "
            "Jensen bound = softmax((z - mean_b z)/tau), entry by entry",
            explicit,
        ),
    ]


def prove() -> list[tuple[str, bool]]:
    """The derivation, step by step: ``(statement, whether sympy confirms it)``."""
    return _jensen() + _substitution()


if __name__ == "__main__":
    import sys

    from sslobjectives.derivation import run_as_script

    run_as_script(sys.modules[__name__])
