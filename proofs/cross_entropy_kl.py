"""Claim 1 — cross-entropy = entropy + KL: the supervised-learning analogy [KAA].

With the teacher distribution ``q`` fixed, the student's cross-entropy
``H(q, p_s) = -sum_k q_k log p_s,k`` (``cluster_cross_entropy``) equals ``H(q) + KL(q || p_s)``.
``H(q)`` does not depend on the student, so minimising the cross-entropy over the student is
minimising the KL, exactly as a supervised classifier minimises the KL to its labels.

Run ``python proofs/cross_entropy_kl.py`` to print the derivation; :func:`prove` returns it.
"""

from __future__ import annotations

import sympy as sp

CLAIM = 1
TITLE = "Cross-entropy = entropy + KL"
STATEMENT = "CE(q, p_s) = H(q) + KL(q||p_s): teacher fixed, min CE = min KL"
SCOPE = "general K; gradient and Hessian at K = 3"
CONCLUSION = (
    "The gradient vanishes iff softmax(s) = q and CE is convex in s, so the student's minimum "
    "is CE = H(q), KL = 0: with the teacher fixed, the cross-entropy loss is a KL divergence "
    "to the teacher plus a constant."
)


def _gradient_and_hessian(n_clusters: int) -> list[tuple[str, bool]]:
    """CE(s) = -sum_k q_k log softmax(s)_k at K = ``n_clusters`` with symbolic s and q.

    Derivatives of the log-sum-exp are rational in ``e_k = exp(s_k)``; substituting the
    symbols ``e_k`` lets ``cancel`` decide each identity exactly (and fast).
    """
    s = sp.symbols(f"s1:{n_clusters + 1}", real=True)
    e = sp.symbols(f"e1:{n_clusters + 1}", positive=True)
    q_free = sp.symbols(f"q1:{n_clusters}", positive=True)
    q = [*q_free, 1 - sum(q_free)]  # q on the simplex
    log_partition = sp.log(sum(sp.exp(v) for v in s))
    ce = -sum(qk * (sk - log_partition) for qk, sk in zip(q, s, strict=True))
    kl = sum(qk * (sp.log(qk) - (sk - log_partition)) for qk, sk in zip(q, s, strict=True))
    p = [ek / sum(e) for ek in e]
    as_rational = {sp.exp(sk): ek for sk, ek in zip(s, e, strict=True)}

    def zero(expr: sp.Expr) -> bool:
        return sp.cancel(expr.subs(as_rational)) == 0

    indices = range(n_clusters)
    same_grad = all(zero(sp.diff(ce, s[k]) - sp.diff(kl, s[k])) for k in indices)
    grad_ok = all(zero(sp.diff(ce, s[k]) - (p[k] - q[k])) for k in indices)
    hess_ok = all(
        zero(sp.diff(ce, s[i], s[j]) - ((p[i] if i == j else 0) - p[i] * p[j]))
        for i in indices
        for j in range(i, n_clusters)
    )
    # v^T (diag p - p p^T) v = sum_k p_k (v_k - sum_j p_j v_j)^2 >= 0: a variance.
    v = sp.symbols(f"v1:{n_clusters + 1}", real=True)
    mean = sum(pk * vk for pk, vk in zip(p, v, strict=True))
    quad = sum(pk * vk**2 for pk, vk in zip(p, v, strict=True)) - mean**2
    var = sum(pk * (vk - mean) ** 2 for pk, vk in zip(p, v, strict=True))
    psd_ok = sp.cancel(quad - var) == 0
    k = f"[K={n_clusters}, symbolic s, q]"
    return [
        (f"{k} dCE/ds_k = dKL(q||softmax(s))/ds_k: the entropy term has no gradient", same_grad),
        (f"{k} dCE/ds_k = softmax(s)_k - q_k", grad_ok),
        (f"{k} d2CE/ds_i ds_j = p_i [i=j] - p_i p_j", hess_ok),
        (f"{k} v^T H v = sum_k p_k (v_k - E_p v)^2 >= 0: CE is convex in s", psd_ok),
    ]


def prove() -> list[tuple[str, bool]]:
    """The derivation, step by step: ``(statement, whether sympy confirms it)``."""
    k, n_k = sp.symbols("k K", integer=True, positive=True)
    q = sp.IndexedBase("q", positive=True)
    p = sp.IndexedBase("p", positive=True)
    steps: list[tuple[str, bool]] = []

    ce = -q[k] * sp.log(p[k])
    entropy = -q[k] * sp.log(q[k])
    kl = q[k] * sp.log(q[k] / p[k])
    summand = sp.expand(sp.expand_log(ce - (entropy + kl), force=True))
    # By linearity, sum_k CE_k - sum_k H_k - sum_k KL_k = sum_k (CE_k - H_k - KL_k).
    total = sp.Sum(summand, (k, 1, n_k)).doit()
    steps.append(
        (
            f"summand: ({ce}) - ({entropy}) - ({kl}) = {summand}; "
            f"summed over k = 1..K (any K): {total}",
            summand == 0 and total == 0,
        )
    )

    # Gibbs: log x <= x - 1 with equality only at x = 1, so KL >= 0, = 0 iff p = q.
    x = sp.Symbol("x", positive=True)
    f = x - 1 - sp.log(x)
    gibbs_ok = (
        f.subs(x, 1) == 0
        and sp.diff(f, x).subs(x, 1) == 0
        and sp.diff(f, x, 2).is_positive is True
        and sp.solve(sp.diff(f, x), x) == [1]
    )
    steps.append(
        (
            f"f(x) = {f}: f(1) = 0, f'(1) = 0, f''(x) = {sp.diff(f, x, 2)} > 0, so f >= 0 "
            "with equality only at x = 1 (log x <= x - 1)",
            gibbs_ok,
        )
    )
    kl_bound = sp.simplify((kl - (q[k] - p[k])) - q[k] * f.subs(x, p[k] / q[k]))
    steps.append(
        (
            "KL summand = (q_k - p_k) + q_k f(p_k/q_k) "
            f"(difference {kl_bound}); sum_k (q_k - p_k) = 1 - 1 = 0 on the simplex, "
            "so KL(q||p) = sum_k q_k f(p_k/q_k) >= 0, = 0 iff p = q",
            kl_bound == 0,
        )
    )
    steps.extend(_gradient_and_hessian(3))
    return steps


if __name__ == "__main__":
    import sys

    from sslobjectives.derivation import run_as_script

    run_as_script(sys.modules[__name__])
