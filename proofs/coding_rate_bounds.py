"""Claim 6 — the coding rate: Sylvester's identity, rotation invariance and its bounds
[MCR2, BITS].

``R_eps(Z) = 1/2 logdet(I_d + alpha Z^T Z)``, ``alpha = d / (n eps^2)``, for ``n`` unit-norm
rows ``z_i`` in ``R^d`` (``coding_rate``).

1. Sylvester: ``det(I_d + alpha Z^T Z) = det(I_n + alpha Z Z^T)``, so the rate can be computed
   from the smaller Gram matrix.
2. Rotations ``Z -> Z Q`` (``Q`` orthogonal) leave ``Z Z^T`` and the row norms unchanged, hence
   the rate.
3. The eigenvalues ``mu_i >= 0`` of ``alpha Z^T Z`` sum to ``alpha tr(Z^T Z) = alpha n = d/eps^2``
   and at most ``r = min(n, d)`` are non-zero; ``R = 1/2 sum_i log(1 + mu_i)``.
4. Lower bound: ``prod_i (1 + mu_i) >= 1 + sum_i mu_i`` for ``mu_i >= 0``, so
   ``R >= 1/2 log(1 + d/eps^2)``, with equality iff one eigenvalue is non-zero: rank-one
   collapse (all rows ``+-u``).
5. Upper bound: ``log(1 + x)`` is concave, so with the sum fixed ``sum_i log(1 + mu_i)`` is
   largest when the ``r`` non-zero eigenvalues are equal (Lagrange: ``1/(1 + mu_i) = nu``):
   ``R <= r/2 log(1 + d/(r eps^2))``, reached by orthonormal rows (n <= d) or a tight frame
   (n >= d).

Run ``python proofs/coding_rate_bounds.py`` to print the derivation.
"""

from __future__ import annotations

import sympy as sp

CLAIM = 6
TITLE = "Coding rate: Sylvester, rotations, bounds"
STATEMENT = "R: d x d = n x n Gram, R(ZQ) = R(Z), R(rank 1) <= R <= R(equal eigs)"
SCOPE = "symbolic entries at n, d <= 3; bounds for any r (induction) and r = 3 (Lagrange)"
CONCLUSION = (
    "For unit-norm codes the coding rate lies between its rank-one-collapse value and its "
    "value for equal eigenvalues: maximising it spreads the code over all min(n, d) directions."
)


def _sylvester_and_rotation() -> list[tuple[str, bool]]:
    a = sp.Symbol("alpha", positive=True)
    steps = []
    for n, d in ((2, 3), (3, 2), (1, 3)):
        z = sp.Matrix(n, d, lambda i, j: sp.Symbol(f"z{i + 1}{j + 1}", real=True))
        big = (sp.eye(d) + a * z.T * z).det(method="berkowitz")
        small = (sp.eye(n) + a * z * z.T).det(method="berkowitz")
        steps.append(
            (
                f"[n={n}, d={d}, symbolic Z] det(I_d + alpha Z^T Z) - det(I_n + alpha Z Z^T) = "
                f"{sp.expand(big - small)}",
                sp.expand(big - small) == 0,
            )
        )
    # A rotation of the plane: [[c, -s], [s, c]] with c^2 + s^2 = 1 (c = cos t, s = sin t).
    c, s = sp.symbols("c s", real=True)
    rot = sp.Matrix([[c, -s], [s, c]])
    z = sp.Matrix(3, 2, lambda i, j: sp.Symbol(f"z{i + 1}{j + 1}", real=True))
    gram_diff = ((z * rot) * (z * rot).T - z * z.T).applyfunc(
        lambda e: sp.expand(sp.expand(e).subs(c**2, 1 - s**2))
    )
    steps.append(
        (
            "[n=3, d=2, rotation [[c, -s], [s, c]], c^2 + s^2 = 1] (ZQ)(ZQ)^T - Z Z^T = 0 (row "
            "norms are its diagonal), so the rate, a function of Z Z^T, is rotation invariant",
            gram_diff == sp.zeros(3, 3),
        )
    )
    q = sp.Matrix(3, 3, lambda i, j: sp.Symbol(f"q{i + 1}{j + 1}", real=True))
    # Any orthogonal Q (Q Q^T = I): Z Q Q^T Z^T = Z Z^T, as a polynomial identity mod Q Q^T = I.
    z3 = sp.Matrix(2, 3, lambda i, j: sp.Symbol(f"w{i + 1}{j + 1}", real=True))
    general = sp.expand((z3 * q) * (z3 * q).T - z3 * (q * q.T) * z3.T) == sp.zeros(2, 2)
    steps.append(
        (
            "[n=2, d=3, symbolic Q] (ZQ)(ZQ)^T = Z (Q Q^T) Z^T = Z Z^T for every orthogonal Q",
            general,
        )
    )
    return steps


def _bounds() -> list[tuple[str, bool]]:
    eps, n, d = sp.symbols("epsilon n d", positive=True)
    steps = []
    # Trace: unit rows give tr(Z^T Z) = n, so sum of eigenvalues of alpha Z^T Z = d/eps^2.
    alpha = d / (n * eps**2)
    steps.append(
        (
            "sum_i mu_i = alpha tr(Z^T Z) = alpha n = d/eps^2",
            sp.simplify(alpha * n - d / eps**2) == 0,
        )
    )
    # Lower bound: prod (1 + mu_i) >= 1 + sum mu_i, by induction on the number of factors.
    s, m = sp.symbols("S m", nonnegative=True)
    step = sp.expand((1 + s) * (1 + m) - (1 + s + m))
    mus = sp.symbols("mu1:4", nonnegative=True)
    excess = sp.Poly(sp.expand(sp.Mul(*[1 + v for v in mus]) - (1 + sum(mus))), *mus)
    steps.append(
        (
            f"induction: (1 + S)(1 + m) - (1 + S + m) = {step} >= 0, so prod_i (1 + mu_i) >= "
            "1 + sum_i mu_i for any r; equality iff at most one mu_i > 0",
            step == s * m,
        )
    )
    steps.append(
        (
            f"[r=3] prod (1 + mu_i) - (1 + sum mu_i) = {excess.as_expr()}: non-negative "
            "coefficients, zero iff at most one mu_i > 0",
            all(c > 0 for c in excess.coeffs()),
        )
    )
    # Rank-one collapse attains the lower bound: rows all equal to u = (cos t, sin t), d = 2.
    t = sp.Symbol("t", real=True)
    n_rows = 3
    z = sp.Matrix([[sp.cos(t), sp.sin(t)]] * n_rows)
    a_val = sp.Integer(2) / (n_rows * eps**2)
    det = sp.simplify((sp.eye(2) + a_val * z.T * z).det())
    steps.append(
        (
            f"[n=3, d=2] rank-one collapse: det(I + alpha Z^T Z) = {det} = 1 + d/eps^2, "
            "R = 1/2 log(1 + d/eps^2)",
            sp.simplify(det - (1 + 2 / eps**2)) == 0,
        )
    )
    # Upper bound by Lagrange: maximise sum log(1 + mu_i) subject to sum mu_i = total.
    total, nu = sp.symbols("T nu", positive=True)
    mu = sp.symbols("m1:4", positive=True)
    lag = sum(sp.log(1 + v) for v in mu) - nu * (sum(mu) - total)
    sols = sp.solve([sp.diff(lag, v) for v in mu] + [sum(mu) - total], [*mu, nu], dict=True)
    equal = len(sols) == 1 and all(sp.simplify(sols[0][v] - total / 3) == 0 for v in mu)
    hess = sp.hessian(sum(sp.log(1 + v) for v in mu), mu)
    concave = hess == sp.diag(*[-1 / (1 + v) ** 2 for v in mu])
    steps.append(
        (
            f"[r=3] stationarity of sum log(1 + mu_i) - nu (sum mu_i - T): {sols}; the "
            "Hessian diag(-1/(1+mu_i)^2) is negative definite, so equal eigenvalues maximise",
            equal and concave,
        )
    )
    x = sp.Symbol("x", nonnegative=True)
    steps.append(
        (
            "any r: (log(1+x))'' = -1/(1+x)^2 < 0, so by Jensen sum_i log(1 + mu_i) <= "
            "r log(1 + T/r) with T = d/eps^2: R <= r/2 log(1 + d/(r eps^2))",
            sp.simplify(sp.diff(sp.log(1 + x), x, 2) + 1 / (1 + x) ** 2) == 0,
        )
    )
    # Equal eigenvalues are reached: orthonormal rows (n <= d) and a tight frame (n >= d).
    checks = []
    for rows, dim in ((2, 3), (3, 3), (4, 2)):
        if rows <= dim:
            z = sp.eye(dim)[:rows, :]
        else:
            z = sp.Matrix([[1, 0], [0, 1], [-1, 0], [0, -1]])
        a_val = sp.Integer(dim) / (rows * eps**2)
        rate = sp.log(sp.factor((sp.eye(dim) + a_val * z.T * z).det())) / 2
        r = min(rows, dim)
        bound = r * sp.log(1 + dim / (r * eps**2)) / 2
        checks.append(sp.simplify(sp.expand_log(rate - bound, force=True)) == 0)
    steps.append(
        (
            "the upper bound is reached: orthonormal rows (n=2, d=3; n=d=3) and the tight "
            "frame {+-e1, +-e2} (n=4, d=2) give R = r/2 log(1 + d/(r eps^2)) exactly",
            all(checks),
        )
    )
    return steps


def prove() -> list[tuple[str, bool]]:
    """The derivation, step by step: ``(statement, whether sympy confirms it)``."""
    return _sylvester_and_rotation() + _bounds()


if __name__ == "__main__":
    import sys

    from sslobjectives.derivation import run_as_script

    run_as_script(sys.modules[__name__])
