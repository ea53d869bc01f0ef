"""Claim 2 — the balanced teacher by Lagrange multipliers [KAA, SwAV].

Problem: ``min_q sum_b KL(q_b || p_b)`` over (B, K) matrices ``q`` with rows summing to 1 and
cluster marginals ``(1/B) sum_b q_bk = 1/K`` (balanced clusters: no collapse). Its stationary
points have the Sinkhorn form ``q_bk = p_bk exp(-lambda_k) / sum_j p_bj exp(-lambda_j)``; the
problem is convex, so the stationary point is the minimiser (``sinkhorn_knopp``). One cluster
scaling step from ``lambda = 0`` followed by the row normalisation gives ``q ∝ p / P`` with
``P_k = (1/B) sum_b p_bk``: the inverse-cluster-prior normalisation
(``inverse_prior_normalize``).

Run ``python proofs/balanced_teacher_lagrange.py`` to print the derivation.
"""

from __future__ import annotations

import sympy as sp

CLAIM = 2
TITLE = "Balanced teacher by Lagrange multipliers"
STATEMENT = "balanced min sum KL(q_b||p_b): q_bk ∝ p_bk exp(-lambda_k); 1 step = p/P"
SCOPE = "B = K = 3 symbolic entries; one-step identity for any B, K"
CONCLUSION = (
    "Sinkhorn-Knopp computes the balanced (collapse-free) teacher exactly; the inverse-prior "
    "normalisation is its first step, so it is balanced only approximately."
)

B, K = 3, 3


def _stationarity() -> list[tuple[str, bool]]:
    p = sp.Matrix(B, K, lambda b, k: sp.Symbol(f"p{b + 1}{k + 1}", positive=True))
    q = sp.Matrix(B, K, lambda b, k: sp.Symbol(f"q{b + 1}{k + 1}", positive=True))
    alpha = sp.symbols(f"alpha1:{B + 1}", real=True)
    lam = sp.symbols(f"lambda1:{K + 1}", real=True)
    objective = sum(q[b, k] * sp.log(q[b, k] / p[b, k]) for b in range(B) for k in range(K))
    rows = sum(alpha[b] * (sum(q.row(b)) - 1) for b in range(B))
    cols = sum(lam[k] * (sum(q.col(k)) - sp.Rational(B, K)) for k in range(K))
    lagrangian = objective + rows + cols

    grad = sp.Matrix(B, K, lambda b, k: sp.expand_log(sp.diff(lagrangian, q[b, k]), force=True))
    expected = sp.Matrix(
        B, K, lambda b, k: sp.log(q[b, k]) - sp.log(p[b, k]) + 1 + alpha[b] + lam[k]
    )
    steps = [
        (
            f"[B={B}, K={K}] dL/dq_bk = {grad[0, 0]} (each entry: log(q_bk/p_bk) + 1 + alpha_b "
            "+ lambda_k)",
            sp.expand(grad - expected) == sp.zeros(B, K),
        )
    ]
    # Every entry has the same form, so one solve covers them all.
    qs, ps = sp.symbols("q p", positive=True)
    a_s, l_s = sp.symbols("alpha lambda", real=True)
    roots = sp.solve(sp.log(qs) - sp.log(ps) + 1 + a_s + l_s, qs)
    steps.append(
        (
            f"solving log(q/p) + 1 + alpha + lambda = 0 for q: {roots} (unique root)",
            len(roots) == 1 and sp.expand(roots[0] - ps * sp.exp(-1 - a_s - l_s)) == 0,
        )
    )
    form = {
        q[b, k]: roots[0].subs({ps: p[b, k], a_s: alpha[b], l_s: lam[k]})
        for b in range(B)
        for k in range(K)
    }
    # The row constraint fixes alpha_b; it enters only through t_b = exp(-1 - alpha_b) > 0.
    row_ok = True
    for b in range(B):
        t_b = sp.Symbol(f"t{b + 1}", positive=True)
        row = [
            form[q[b, k]].subs(sp.exp(-1 - alpha[b] - lam[k]), t_b * sp.exp(-lam[k]))
            for k in range(K)
        ]
        t_sol = sp.solve(sum(row) - 1, t_b)
        norm = sum(p[b, j] * sp.exp(-lam[j]) for j in range(K))
        row_ok = (
            row_ok
            and len(t_sol) == 1
            and all(
                sp.cancel(r.subs(t_b, t_sol[0]) - p[b, k] * sp.exp(-lam[k]) / norm) == 0
                for k, r in enumerate(row)
            )
        )
    steps.append(
        (
            "rows summing to 1 fix alpha_b: q_bk = p_bk exp(-lambda_k) / "
            "sum_j p_bj exp(-lambda_j) (the Sinkhorn form)",
            row_ok,
        )
    )
    hess = sp.hessian(objective, list(q))
    diag = sp.diag(*[1 / v for v in q])
    steps.append(
        (
            "Hessian of the objective = diag(1/q_bk), positive definite; constraints linear: "
            "convex problem, the stationary point is the unique minimiser",
            hess - diag == sp.zeros(B * K, B * K),
        )
    )
    return steps


def _one_step() -> list[tuple[str, bool]]:
    b, c, j, k = sp.symbols("b c j k", integer=True, positive=True)
    n_b, n_k = sp.symbols("B K", integer=True, positive=True)
    p = sp.IndexedBase("p", positive=True)
    prior = lambda kk: sp.Sum(p[c, kk], (c, 1, n_b)) / n_b  # noqa: E731
    # lambda = 0 gives q = p; scaling cluster k to marginal 1/K: exp(-lambda_k) = 1/(K P_k).
    scaled = lambda bb, kk: p[bb, kk] / (n_k * prior(kk))  # noqa: E731
    one_step = scaled(b, k) / sp.Sum(scaled(b, j), (j, 1, n_k))
    inverse_prior = (p[b, k] / prior(k)) / sp.Sum(p[b, j] / prior(j), (j, 1, n_k))
    general = sp.simplify(one_step - inverse_prior) == 0
    marginal = sp.simplify(sp.Sum(scaled(c, k), (c, 1, n_b)) / n_b - 1 / n_k) == 0

    # One step is not yet balanced: a rational counterexample, exact.
    p_ex = sp.Matrix(
        [
            [sp.Rational(7, 10), sp.Rational(2, 10), sp.Rational(1, 10)],
            [sp.Rational(6, 10), sp.Rational(3, 10), sp.Rational(1, 10)],
            [sp.Rational(1, 10), sp.Rational(1, 10), sp.Rational(8, 10)],
        ]
    )
    pri = [sum(p_ex.col(kk)) / 3 for kk in range(3)]
    q_ex = sp.Matrix(3, 3, lambda bb, kk: p_ex[bb, kk] / pri[kk])
    q_ex = sp.Matrix(3, 3, lambda bb, kk: q_ex[bb, kk] / sum(q_ex.row(bb)))
    marg = [sp.nsimplify(sum(q_ex.col(kk)) / 3) for kk in range(3)]
    return [
        (
            "column step from lambda = 0: exp(-lambda_k) = 1/(K P_k) gives cluster marginals "
            "exactly 1/K (any B, K)",
            marginal,
        ),
        (
            "then the row normalisation: q_bk = (p_bk/P_k) / sum_j (p_bj/P_j), the "
            "inverse-prior normalisation (any B, K; the 1/K cancels)",
            general,
        ),
        (
            f"one step is not balanced in general: p = {p_ex.tolist()} gives marginals "
            f"{marg} != 1/3 — Sinkhorn iterates",
            any(m != sp.Rational(1, 3) for m in marg),
        ),
    ]


def prove() -> list[tuple[str, bool]]:
    """The derivation, step by step: ``(statement, whether sympy confirms it)``."""
    return _stationarity() + _one_step()


if __name__ == "__main__":
    import sys

    from sslobjectives.derivation import run_as_script

    run_as_script(sys.modules[__name__])
