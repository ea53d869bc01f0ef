"""Claim 5 — MAP decoding, BCE as a sum of per-bit cross-entropies, and the information bound
[BITS].

1. The teacher's bit is the MAP decision of ``sigmoid(a)`` under a symmetric prior:
   ``sigmoid(a) > 1/2 <=> a > 0`` (``binary_message``).
2. Binary cross-entropy with hard targets is the cross-entropy of the whole message under the
   student's factorised model: ``-log prod_d Bern(t_d; sigmoid(s_d)) = sum_d BCE(s_d, t_d)``
   and ``BCE(s, t) = softplus(s) - t s`` (``binary_agreement_loss``).
3. For any model ``r(z | s)`` of the teacher's message ``Z1`` given the student's output ``S2``
   on the other view, ``E[-log r(Z1 | S2)] = H(Z1 | S2) + E_S2 KL(p(.|S2) || r(.|S2))
   >= H(Z1 | S2)``. So ``H(Z1) - E[BCE] <= H(Z1) - H(Z1 | S2) = I(Z1; S2)``: lowering the BCE
   while the coding rate keeps ``H(Z1)`` up raises a lower bound on the information the student
   has about the teacher's message.

Item 3 is checked exactly on small discrete joint distributions with rational probabilities
(teacher logits -> MAP bits, three student outputs with rational bit probabilities): the
identity is decided symbolically (logs of rationals), the inequalities to 30 digits.

Run ``python proofs/map_decoding_bce_bound.py`` to print the derivation.
"""

from __future__ import annotations

import itertools
import random

import sympy as sp

CLAIM = 5
TITLE = "MAP decoding and the BCE bound on I(Z1; S2)"
STATEMENT = "MAP bit = 1[a > 0]; E[BCE] >= H(Z1|S2); H(Z1) - E[BCE] <= I(Z1;S2)"
SCOPE = "general (identities); exact rational joints with 2 bits, 3 student outputs"
CONCLUSION = (
    "The BCE the student minimises is an upper bound on the teacher's conditional entropy "
    "given the student, so H(Z1) - BCE is a lower bound on the mutual information between "
    "the student's output and the teacher's message (in nats here)."
)

N_BITS, N_STATES = 2, 3


def _identities() -> list[tuple[str, bool]]:
    a, s = sp.symbols("a s", real=True)
    t = sp.Symbol("t")
    sigmoid = 1 / (1 + sp.exp(-a))
    region = sp.solve_univariate_inequality(sigmoid > sp.Rational(1, 2), a, relational=False)
    sig_s = 1 / (1 + sp.exp(-s))
    bce = -(t * sp.log(sig_s) + (1 - t) * sp.log(1 - sig_s))
    softplus_form = sp.log(1 + sp.exp(s)) - t * s
    bce_ok = (
        all(
            sp.simplify(sp.expand_log((bce - softplus_form).subs(t, v), force=True)) == 0
            for v in (0, 1, sp.Rational(1, 3))
        )
        and sp.simplify(sp.diff(bce - softplus_form, t, 2)) == 0
    )
    # The message's log-likelihood under the factorised student model is the sum over bits.
    ss = sp.symbols("s1:4", real=True)
    ts = sp.symbols("t1:4")
    pis = [1 / (1 + sp.exp(-v)) for v in ss]
    likelihood = sp.Mul(*[pi**tv * (1 - pi) ** (1 - tv) for pi, tv in zip(pis, ts, strict=True)])
    per_bit = sum(
        -(tv * sp.log(pi) + (1 - tv) * sp.log(1 - pi)) for pi, tv in zip(pis, ts, strict=True)
    )
    message_ok = sp.expand(sp.expand_log(-sp.log(likelihood) - per_bit, force=True)) == 0
    return [
        (
            f"sigmoid(a) > 1/2 exactly for a in {region}: MAP bit = 1[a > 0]",
            region == sp.Interval.open(0, sp.oo),
        ),
        (
            "BCE(s, t) = -[t log sigmoid(s) + (1-t) log(1 - sigmoid(s))] = softplus(s) - t s "
            "(affine in t; equal at t = 0, 1/3, 1)",
            bce_ok,
        ),
        (
            "[3 bits] -log prod_d sigmoid(s_d)^t_d (1 - sigmoid(s_d))^(1-t_d) "
            "= sum_d BCE(s_d, t_d)",
            message_ok,
        ),
    ]


def _entropy(probs: list[sp.Expr]) -> sp.Expr:
    return -sum(p * sp.log(p) for p in probs if p != 0)


def _map_bits(a1: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(int(v > 0) for v in a1)  # MAP decoding, claim 5.1


def _joint(rng: random.Random, kind: str) -> tuple[dict, list[list[sp.Rational]]]:
    """A rational joint ``P(Z1 = z, S2 = s)`` whose ``z`` are MAP bits of teacher logits, and
    the student's per-bit probabilities ``sigmoid(s_d)`` for each of its outputs ``s``.

    ``kind``: ``random``; ``independent`` (Z1 independent of S2); ``deterministic`` (Z1 a
    function of S2); ``fitted`` (random joint, the student predicts each bit's true
    conditional probability: the best factorised model); ``bayes`` (bits independent given
    S2 and the student predicts their true conditional probabilities).
    """
    logits = (-2, -1, 0, 1, 3)
    draw = lambda: tuple(rng.choice(logits) for _ in range(N_BITS))  # noqa: E731
    shared = [(draw(), rng.randint(1, 9)) for _ in range(3)]
    rows = []  # (teacher logits, student output, weight)
    for state in range(N_STATES):
        if kind == "independent":
            rows += [(a1, state, w) for a1, w in shared]
        elif kind == "deterministic":
            rows.append(((2 * (state % 2) - 1, 2 * (state // 2) - 1), state, 1))
        else:
            rows += [(draw(), state, rng.randint(1, 9)) for _ in range(3)]
    total = sum(w for _, _, w in rows)
    joint: dict[tuple[tuple[int, ...], int], sp.Rational] = {}
    for a1, state, w in rows:
        key = (_map_bits(a1), state)
        joint[key] = joint.get(key, 0) + sp.Rational(w, total)
    student = [[sp.Rational(rng.randint(1, 99), 100) for _ in range(N_BITS)] for _ in range(3)]
    if kind == "fitted":
        for state in range(N_STATES):
            mass = sum(v for (_, s), v in joint.items() if s == state)
            student[state] = [
                sum(v for (bits, s), v in joint.items() if s == state and bits[d]) / mass
                for d in range(N_BITS)
            ]
    if kind == "bayes":
        joint = {}
        for state in range(N_STATES):
            student[state] = [sp.Rational(rng.randint(1, 9), 10) for _ in range(N_BITS)]
            for bits in itertools.product((0, 1), repeat=N_BITS):
                pr = sp.Mul(*[m if b else 1 - m for m, b in zip(student[state], bits, strict=True)])
                joint[(bits, state)] = pr / N_STATES
    return joint, student


def _is_zero(expr: sp.Expr) -> bool:
    """Exact: a sum of rational multiples of logs of rationals, split into logs of primes."""
    return sp.expand(sp.expand_log(expr, force=True, factor=True)) == 0


def _check_joint(joint: dict, student: list[list[sp.Expr]]) -> dict[str, sp.Expr]:
    messages = list(itertools.product((0, 1), repeat=N_BITS))
    p_state = [sum(joint.get((z, s), 0) for z in messages) for s in range(N_STATES)]
    p_msg = [sum(joint.get((z, s), 0) for s in range(N_STATES)) for z in messages]
    h_z = _entropy(p_msg)
    h_z_given_s = sum(
        p_state[s] * _entropy([joint.get((z, s), 0) / p_state[s] for z in messages])
        for s in range(N_STATES)
        if p_state[s] != 0
    )
    bce = sum(  # the student's per-bit BCE, averaged over the joint
        pr * sum(-sp.log(pi if b else 1 - pi) for pi, b in zip(student[s], z, strict=True))
        for (z, s), pr in joint.items()
        if pr != 0
    )
    model = lambda z, s: sp.Mul(  # noqa: E731
        *[pi if b else 1 - pi for pi, b in zip(student[s], z, strict=True)]
    )
    kl = sum(
        pr * sp.log((pr / p_state[s]) / model(z, s)) for (z, s), pr in joint.items() if pr != 0
    )
    mutual = h_z - h_z_given_s
    return {"H": h_z, "H_cond": h_z_given_s, "BCE": bce, "KL": kl, "I": mutual}


def _exact_checks() -> list[tuple[str, bool]]:
    rng = random.Random(5)
    steps = []
    kinds = ["random"] * 3 + ["fitted"] * 2 + ["independent", "deterministic", "bayes"]
    for i, kind in enumerate(kinds):
        joint, student = _joint(rng, kind)
        v = _check_joint(joint, student)
        identity = _is_zero(v["BCE"] - v["H_cond"] - v["KL"])
        num = {key: sp.N(val, 30) for key, val in v.items()}
        bound = num["BCE"] >= num["H_cond"] and num["H"] - num["BCE"] <= num["I"] + 1e-28
        kl_ok = num["KL"] >= 0
        extra = ""
        if kind == "independent":
            extra = ", I = 0 exactly"
            bound = bound and _is_zero(v["I"])
        if kind == "deterministic":
            extra = ", H(Z1|S2) = 0 exactly"
            bound = bound and v["H_cond"] == 0
        if kind == "bayes":
            extra = ", Bayes-optimal student: E[BCE] = H(Z1|S2) exactly"
            bound = bound and _is_zero(v["BCE"] - v["H_cond"])
        steps.append(
            (
                f"joint #{i + 1} ({kind}): E[BCE] - H(Z1|S2) - E KL = 0 exactly; "
                f"H(Z1) = {num['H']:.6f}, H(Z1|S2) = {num['H_cond']:.6f}, "
                f"E[BCE] = {num['BCE']:.6f}, I = {num['I']:.6f} >= H - E[BCE] = "
                f"{num['H'] - num['BCE']:.6f}{extra}",
                identity and bound and kl_ok,
            )
        )
    return steps


def prove() -> list[tuple[str, bool]]:
    """The derivation, step by step: ``(statement, whether sympy confirms it)``."""
    return _identities() + _exact_checks()


if __name__ == "__main__":
    import sys

    from sslobjectives.derivation import run_as_script

    run_as_script(sys.modules[__name__])
