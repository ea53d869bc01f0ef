"""Claim 7 — channel capacity of a B-bit message [BITS].

The per-bit marginal entropy ``h(p) = -p log2 p - (1-p) log2(1-p)`` is at most 1 bit, with
equality iff the bit is balanced (``p = 1/2``) (``bit_marginal_entropy`` in
``sslobjectives.diagnostics``). The message entropy is at most the sum of its bits' entropies
(``sum_d H(Z_d) - H(Z) = KL(p(z) || prod_d p(z_d)) >= 0``, the total correlation), so a
B-bit message carries at most ``B`` bits, ``H(Z) = B`` iff its bits are balanced and
independent (the message is uniform over the ``2^B`` codes).

Run ``python proofs/channel_capacity.py`` to print the derivation.
"""

from __future__ import annotations

import itertools

import sympy as sp

CLAIM = 7
TITLE = "Channel capacity of a B-bit message"
STATEMENT = "h(bit) <= 1 bit, = iff balanced; H(message) <= sum_d h_d <= B bits"
SCOPE = "general p; subadditivity with symbolic joints of 2 and 3 bits; max H at 2^B = 4"
CONCLUSION = (
    "A B-bit code carries at most B bits about the image; it gets close only when every bit "
    "is used half of the time and the bits are not redundant (BITS reports ~0.9 bit per bit)."
)


def _binary_entropy() -> list[tuple[str, bool]]:
    p = sp.Symbol("p", positive=True)
    h = -(p * sp.log(p) + (1 - p) * sp.log(1 - p)) / sp.log(2)
    dh = sp.simplify(sp.diff(h, p))
    d2h = sp.simplify(sp.diff(h, p, 2))
    crit = sp.solve(sp.Eq(sp.expand_log(sp.diff(h, p) * sp.log(2), force=True), 0), p)
    d2_neg = sp.simplify(d2h + 1 / (p * (1 - p) * sp.log(2))) == 0
    return [
        (
            f"h'(p) = {dh}, zero only at p = {crit}; h''(p) = -1/(p (1-p) ln 2) < 0 on (0, 1): "
            "h is strictly concave, its maximum is at p = 1/2 alone",
            crit == [sp.Rational(1, 2)] and d2_neg,
        ),
        (
            f"h(1/2) = {sp.simplify(h.subs(p, sp.Rational(1, 2)))} bit; h(0+) = h(1-) = 0",
            sp.simplify(h.subs(p, sp.Rational(1, 2))) == 1
            and sp.limit(h, p, 0, "+") == 0
            and sp.limit(h, p, 1, "-") == 0,
        ),
    ]


def _subadditivity(n_bits: int) -> tuple[str, bool]:
    codes = list(itertools.product((0, 1), repeat=n_bits))
    probs = {c: sp.Symbol("p" + "".join(map(str, c)), positive=True) for c in codes}
    marg = [{v: sum(probs[c] for c in codes if c[d] == v) for v in (0, 1)} for d in range(n_bits)]
    h_joint = -sum(probs[c] * sp.log(probs[c]) for c in codes)
    h_bits = -sum(m[v] * sp.log(m[v]) for m in marg for v in (0, 1))
    indep = {c: sp.Mul(*[marg[d][c[d]] for d in range(n_bits)]) for c in codes}
    total_corr = sum(probs[c] * sp.log(probs[c] / indep[c]) for c in codes)
    diff = sp.expand(sp.expand_log(h_bits - h_joint - total_corr, force=True))
    return (
        f"[{n_bits} bits, symbolic joint] sum_d H(Z_d) - H(Z) - KL(p || prod_d p_d) = {diff} "
        "(total correlation >= 0 by Gibbs, claim 1), so H(Z) <= sum_d H(Z_d) <= B bits",
        diff == 0,
    )


def _max_entropy(n_bits: int = 2) -> tuple[str, bool]:
    """Maximise H over the 2^B messages with the probabilities summing to 1 (Lagrange)."""
    n_msg = 2**n_bits
    p, nu = sp.Symbol("p", positive=True), sp.Symbol("nu", real=True)
    # d/dp_m [-sum p log2 p - nu (sum p - 1)] is the same function of p_m for every message m:
    stationary = sp.diff(-p * sp.log(p) / sp.log(2) - nu * p, p)
    roots = sp.solve(stationary, p)
    # one root, the same for every m: all p_m equal, so p_m = 2^-B and H = B bits
    h_max = sp.simplify(-n_msg * (sp.log(sp.Rational(1, n_msg)) / n_msg) / sp.log(2))
    concave = sp.diff(-p * sp.log(p), p, 2) == -1 / p
    return (
        f"[B={n_bits}] stationarity of H - nu (sum p - 1) in each p_m: p_m = {roots}, the same "
        f"for all {n_msg} messages, so p_m = 1/{n_msg} and H = {h_max} bits = B; "
        "(-p log p)'' = -1/p < 0: the maximum",
        len(roots) == 1 and h_max == n_bits and concave,
    )


def prove() -> list[tuple[str, bool]]:
    """The derivation, step by step: ``(statement, whether sympy confirms it)``."""
    return _binary_entropy() + [_subadditivity(2), _subadditivity(3), _max_entropy()]


if __name__ == "__main__":
    import sys

    from sslobjectives.derivation import run_as_script

    run_as_script(sys.modules[__name__])
