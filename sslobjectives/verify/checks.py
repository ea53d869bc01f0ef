"""The numeric checks, one per claim: the library's own functions against the references."""

from __future__ import annotations

import math

import numpy as np
import torch

from sslobjectives import diagnostics as D
from sslobjectives import functional as F
from sslobjectives.verify.references import (
    _log_softmax,
    _logits,
    _logsumexp,
    _n,
    _rel,
    _softmax,
    _t,
    _unit_rows,
    _xlogy,
    teacher_cases,
)
from sslobjectives.verify.results import Numeric


def cross_entropy_errors(s: torch.Tensor, q: torch.Tensor, student_temp: float) -> float:
    """``cluster_cross_entropy`` against ``H(q) + KL(q || softmax(s/T))`` and its gradient
    against ``(softmax(s/T) - q) / (T B)``."""
    s = s.clone().requires_grad_(True)
    ce = F.cluster_cross_entropy(s, q, student_temp, reduction="none")
    qn, logp = _n(q), _log_softmax(_n(s) / student_temp)
    entropy = -_xlogy(qn, qn).sum(1)
    kl = (_xlogy(qn, qn) - np.where(qn > 0, qn * logp, 0.0)).sum(1)
    err = _rel(_n(ce), entropy + kl)
    F.cluster_cross_entropy(s, q, student_temp).backward()
    grad = (np.exp(logp) - qn) / (student_temp * qn.shape[0])
    return max(err, _rel(_n(s.grad), grad))


def _check_cross_entropy(seed: int, out: Numeric) -> None:
    rng = np.random.default_rng(seed + 1)
    for i, (label, z, temp) in enumerate(teacher_cases(seed)):
        b, k = z.shape
        s = _t(rng.normal(size=(b, k)) * rng.choice([0.5, 2.0, 10.0]))
        s_temp = float(rng.choice([0.05, 0.1, 1.0]))
        one_hot = torch.nn.functional.one_hot(z.argmax(1), k).double()
        teachers = {
            "inverse-prior": F.inverse_prior_normalize(z, temp),
            "centered": F.center_normalize(z, temp),
            "one-hot": one_hot,
        }
        for name, q in teachers.items():
            out.record(cross_entropy_errors(s, q, s_temp), f"{label} q={name}")
        # The student's minimum: s = T log q (q interior) gives CE = H(q), gradient 0.
        q = teachers["inverse-prior"]
        if float(q.min()) > 1e-200:
            s_star = (s_temp * torch.log(q)).requires_grad_(True)
            ce = F.cluster_cross_entropy(s_star, q, s_temp)
            ce.backward()
            qn = _n(q)
            out.record(_rel(ce.item(), -_xlogy(qn, qn).sum(1).mean()), f"{label} min")
            out.record(float(np.abs(_n(s_star.grad)).max()), f"{label} grad at min")
        if i % 8 == 0:  # multi-crop: the mean over (student, teacher) view pairs, s != t
            views = [_t(rng.normal(size=(b, k))) for _ in range(4)]
            targets = [F.center_normalize(_t(_logits(rng, "gaussian", b, k)), temp)] * 2
            pairs = [
                float(F.cluster_cross_entropy(sv, targets[t], s_temp))
                for t in range(2)
                for j, sv in enumerate(views)
                if j != t
            ]
            multi = float(F.multicrop_cross_entropy(views, targets, s_temp))
            out.record(_rel(multi, np.mean(pairs)), f"{label} multi-crop")
        out.cases += 1


def balanced_teacher_errors(z: torch.Tensor, temp: float, n_iter: int) -> float:
    """One Sinkhorn step from the posteriors (``start="posterior"``) = inverse-prior
    normalisation = ``(p/P)/sum(p/P)``; every iterate has the form
    ``log q_bk - log p_bk = -lambda_k - c_b`` (zero double-centred residual)."""
    logp = _log_softmax(_n(z) / temp)
    log_prior = _logsumexp(logp, 0) - math.log(logp.shape[0])
    expected = _softmax(logp - log_prior)
    err = max(
        _rel(_n(F.sinkhorn_knopp(z, temp, n_iter=1, start="posterior")), expected),
        _rel(_n(F.inverse_prior_normalize(z, temp)), expected),
    )
    q = _n(F.sinkhorn_knopp(z, temp, n_iter=n_iter, start="posterior"))
    err = max(err, _rel(q.sum(1), np.ones(q.shape[0])))
    if q.min() > 1e-250 and logp.min() > -500:
        m = np.log(q) - logp
        resid = m - m.mean(0) - m.mean(1, keepdims=True) + m.mean()
        err = max(err, float(np.abs(resid).max()) / max(1.0, float(np.abs(m).max())))
    return err


def _check_balanced(seed: int, out: Numeric) -> None:
    rng = np.random.default_rng(seed + 2)
    worst_marginal = 0.0
    for label, z, temp in teacher_cases(seed):
        n_iter = int(rng.integers(2, 12))
        out.record(balanced_teacher_errors(z, temp, n_iter), f"{label} n_iter={n_iter}")
        b, k = z.shape
        if b >= 16 and temp == 1.0 and label.startswith(("gaussian", "cosine")):
            # converged: balanced marginals
            q = _n(F.sinkhorn_knopp(z, temp, n_iter=200, start="posterior"))
            resid = float(np.abs(q.mean(0) - 1.0 / k).max() * k)
            worst_marginal = max(worst_marginal, resid)
            out.record(resid, f"{label} marginals after 200 iterations")
        out.cases += 1
    out.notes.append(
        f"converged Sinkhorn (200 iterations, B >= 16, T = 1): cluster marginals "
        f"within {worst_marginal:.1e} (relative) of 1/K"
    )


def jensen_errors(z: torch.Tensor, temp: float) -> float:
    """``jensen_gap`` = ``log mean_b p - mean_b log p >= 0``, 0 for a cluster whose posterior is
    the same for every sample; ``center_normalize`` = ``softmax((z - mean_b z)/T)`` = the
    inverse-prior normalisation with ``log P`` replaced by its Jensen bound."""
    zn = _n(z)
    logp = _log_softmax(zn / temp)
    gap_ref = _logsumexp(logp, 0) - math.log(zn.shape[0]) - logp.mean(0)
    gap = _n(F.jensen_gap(z, temp))
    err = max(_rel(gap, np.maximum(gap_ref, 0.0)), float(max(0.0, -gap.min())))
    spread = logp.max(0) - logp.min(0)
    err = max(err, float(np.where(spread == 0, gap, 0.0).max()))  # equality case
    strict = (spread > 1e-3) & (gap <= 0)  # unequal posteriors: strictly positive gap
    err = max(err, float(strict.any()))
    centered = _n(F.center_normalize(z, temp))
    err = max(err, _rel(centered, _softmax((zn - zn.mean(0)) / temp)))
    return max(err, _rel(centered, _softmax(logp - logp.mean(0))))


def _check_jensen(seed: int, out: Numeric) -> None:
    for label, z, temp in teacher_cases(seed):
        out.record(jensen_errors(z, temp), label)
        out.cases += 1


def geometric_mean_errors(z: torch.Tensor, temp: float) -> tuple[float, dict[str, int]]:
    """``center_normalize`` = ``(p/G)/sum(p/G)``; ``G <= P``; and
    ``q_center / q_prior = r_k / sum_j q_prior_j r_j`` with ``log r = jensen_gap``, so the
    cluster with the largest ``P/G`` gains weight in every row, the smallest loses, and
    ``KL(q_prior || q_center) = log E_q_prior[r] - E_q_prior[log r]``.

    Returns the error and counts for the report: rows, and rows where the max-``P/G``
    cluster was weighted up / the min-``P/G`` cluster down by more than rounding.
    """
    logp = _log_softmax(_n(z) / temp)
    log_g = logp.mean(0)
    centered = _n(F.center_normalize(z, temp))
    prior_q = _n(F.inverse_prior_normalize(z, temp))
    arith = _n(F.cluster_prior(z, temp))
    geo = _n(F.cluster_prior(z, temp, mean="geometric"))
    log_r = _n(F.jensen_gap(z, temp))
    err = _rel(centered, _softmax(logp - log_g))
    err = max(err, _rel(geo, np.exp(log_g)), _rel(arith, np.exp(_logsumexp(logp, 0)) / len(logp)))
    err = max(err, float(np.maximum(geo - arith, 0.0).max()))  # AM >= GM
    mask = (centered > 1e-250) & (prior_q > 1e-250)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_ratio = np.log(centered) - np.log(prior_q)
        expected = log_r - _logsumexp(np.log(prior_q) + log_r, 1)[:, None]
    if mask.any():
        err = max(err, _rel(np.where(mask, log_ratio, 0.0), np.where(mask, expected, 0.0)))
    # KL(q_prior || q_center) = log E_q[r] - E_q[log r] per row (where nothing underflows)
    rows = (mask | (prior_q == 0)).all(1)
    if rows.any():
        qp, qc = prior_q[rows], centered[rows]
        kl = (_xlogy(qp, qp) - _xlogy(qp, qc)).sum(1)
        with np.errstate(divide="ignore"):
            log_mean_r = _logsumexp(np.log(qp) + log_r, 1)
        err = max(err, _rel(kl, log_mean_r - qp @ log_r))
    k_max, k_min = int(np.argmax(log_r)), int(np.argmin(log_r))
    up = centered[:, k_max] - prior_q[:, k_max]
    down = prior_q[:, k_min] - centered[:, k_min]
    err = max(err, float(np.maximum(-up, 0.0).max()), float(np.maximum(-down, 0.0).max()))
    counts = {"rows": len(up), "up": int((up > 1e-12).sum()), "down": int((down > 1e-12).sum())}
    return err, counts


def _check_geometric(seed: int, out: Numeric) -> None:
    totals = {"rows": 0, "up": 0, "down": 0}
    for label, z, temp in teacher_cases(seed):
        err, counts = geometric_mean_errors(z, temp)
        out.record(err, label)
        totals = {key: totals[key] + counts[key] for key in totals}
        out.cases += 1
    out.notes.append(
        f"in all {totals['rows']} rows centering gave the largest-P/G cluster at least the "
        "inverse-prior weight and the smallest-P/G cluster at most; strictly more in "
        f"{totals['up']} rows, strictly less in {totals['down']} (the rest: equal, e.g. "
        "one-hot rows, identical samples)"
    )


def _map_bit(a: float) -> float:
    """MAP decision of ``sigmoid(a)`` in 50-digit arithmetic (independent of ``a > 0``)."""
    import mpmath

    with mpmath.workdps(50):
        return float(1 / (1 + mpmath.exp(-mpmath.mpf(a))) > mpmath.mpf(1) / 2)


def _log_sigmoid(x: np.ndarray) -> np.ndarray:
    return -np.logaddexp(0.0, -x)


def bce_bound_errors(rng: np.random.Generator, n_bits: int, n_states: int) -> float:
    """On a discrete joint ``P(Z1, S2)``, the library's expected BCE equals
    ``H(Z1|S2) + E KL`` and is ``>= H(Z1|S2)``; ``H(Z1) - E[BCE] <= I(Z1; S2)``."""
    messages = np.array(np.meshgrid(*[[0.0, 1.0]] * n_bits, indexing="ij")).reshape(n_bits, -1).T
    joint = rng.dirichlet(np.full(len(messages) * n_states, 0.3)).reshape(n_states, -1)
    logits = rng.normal(size=(n_states, n_bits)) * 3
    if rng.random() < 0.5:  # the best factorised student: true per-bit conditionals
        cond = joint / joint.sum(1, keepdims=True)
        p_one = np.clip(cond @ messages, 1e-12, 1 - 1e-12)
        logits = np.log(p_one) - np.log1p(-p_one)
    s = np.repeat(logits, len(messages), axis=0)
    t = np.tile(messages, (n_states, 1))
    bce = _n(F.binary_agreement_loss(_t(s), _t(t), reduction="none")).reshape(n_states, -1)
    expected_bce = float((joint * bce).sum())
    p_state = joint.sum(1, keepdims=True)
    cond = joint / p_state
    h_cond = float(-(p_state * _xlogy(cond, cond).sum(1, keepdims=True)).sum())
    model = np.exp((_log_sigmoid(s) * t + _log_sigmoid(-s) * (1 - t)).sum(1)).reshape(n_states, -1)
    kl = float((p_state * (_xlogy(cond, cond) - _xlogy(cond, model)).sum(1, keepdims=True)).sum())
    p_msg = joint.sum(0)
    h_msg = float(-_xlogy(p_msg, p_msg).sum())
    err = _rel(expected_bce, h_cond + kl)
    err = max(err, h_cond - expected_bce, (h_msg - expected_bce) - (h_msg - h_cond))
    return max(err, 0.0)


def _check_map_bce(seed: int, out: Numeric) -> None:
    rng = np.random.default_rng(seed + 5)
    edges = np.array([0.0, -0.0, 1e-12, -1e-12, 1e-6, -1e-6, 50.0, -50.0])
    for batch in (1, 2, 16, 64):
        for n_bits in (1, 3, 16, 64):
            for tau in (0.1, 1.0, 5.0):
                label = f"B={batch} D={n_bits} tau={tau}"
                a = rng.normal(size=(batch, n_bits)) * rng.choice([0.01, 1.0, 10.0])
                flat = a.reshape(-1)
                flat[: len(edges)] = edges[: flat.size]
                bits = _n(F.binary_message(_t(a)))
                ref = np.array([_map_bit(v) for v in a.reshape(-1)]).reshape(a.shape)
                out.record(float(np.abs(bits - ref).max()), f"{label} MAP bits")
                soft = _n(F.soft_message(_t(a), tau))
                out.record(_rel(soft, np.exp(_log_sigmoid(a / tau))), f"{label} soft targets")
                s = rng.normal(size=(batch, n_bits)) * rng.choice([0.1, 1.0, 30.0])
                for name, target in (("hard", bits), ("soft", soft)):
                    per_bit = -(target * _log_sigmoid(s) + (1 - target) * _log_sigmoid(-s))
                    bce = _n(F.binary_agreement_loss(_t(s), _t(target), reduction="none"))
                    out.record(_rel(bce, per_bit.sum(1)), f"{label} BCE {name}")
                views = [_t(rng.normal(size=(batch, n_bits))) for _ in range(3)]
                targets = [F.binary_message(v) for v in views[:2]]
                pairs = [
                    float(F.binary_agreement_loss(sv, targets[t]))
                    for t in range(2)
                    for j, sv in enumerate(views)
                    if j != t
                ]
                multi = float(F.multicrop_binary_agreement(views, targets))
                out.record(_rel(multi, np.mean(pairs)), f"{label} multi-crop")
                out.cases += 1
    for n_bits in (1, 2, 3, 4):
        for n_states in (1, 2, 5):
            for rep in range(4):
                label = f"joint {n_bits} bits x {n_states} student outputs #{rep}"
                out.record(bce_bound_errors(rng, n_bits, n_states), label)
                out.cases += 1


def coding_rate_errors(z: torch.Tensor, eps: float, kind: str, rotation: np.ndarray) -> float:
    """``coding_rate`` against ``1/2 sum log(1 + alpha mu)`` over the eigenvalues of the
    d x d Gram matrix (whatever Gram the library uses), its bounds, their attainment and
    rotation invariance."""
    n, d = z.shape
    rate = float(F.coding_rate(z, eps))
    if n == 0:
        return abs(rate)
    x = _unit_rows(_n(z))
    mu = np.clip(np.linalg.eigvalsh(x.T @ x), 0.0, None) * d / (n * eps * eps)
    err = _rel(rate, 0.5 * np.log1p(mu).sum())
    r = min(n, d)
    lower = 0.5 * math.log1p(d / eps**2)
    upper = 0.5 * r * math.log1p(d / (r * eps**2))
    err = max(err, (lower - rate) / max(1.0, lower), (rate - upper) / max(1.0, upper))
    if kind == "collapsed":
        err = max(err, _rel(rate, lower))
    if kind == "orthonormal" and (n <= d or n % d == 0):
        err = max(err, _rel(rate, upper))
    return max(err, _rel(float(F.coding_rate(_t(_n(z) @ rotation), eps)), rate))


def _rows(rng: np.random.Generator, kind: str, n: int, basis: np.ndarray) -> np.ndarray:
    d = len(basis)
    if kind == "gaussian":
        return rng.normal(size=(n, d))
    if kind == "collapsed":  # every row +-c u: rank one
        return (
            rng.choice([-1.0, 1.0], size=(n, 1))
            * rng.uniform(0.5, 2, (n, 1))
            * rng.normal(size=(1, d))
        )
    if kind == "low-rank":
        return rng.normal(size=(n, 2)) @ rng.normal(size=(2, d))
    if kind == "orthonormal":  # orthonormal rows (n <= d) or repeated bases (tight if d | n)
        return np.concatenate([basis] * (n // d + 1))[:n] if n > d else basis[:n]
    raise ValueError(f"unknown kind {kind!r}")


def _check_coding_rate(seed: int, out: Numeric) -> None:
    rng = np.random.default_rng(seed + 6)
    dims = (1, 2, 5, 32, 128)
    orthogonal = {d: np.linalg.qr(rng.normal(size=(d, d)))[0] for d in dims}
    for n in (0, 1, 2, 3, 10, 64, 200):
        for d in dims:
            for eps in (0.05, 0.5, 1.0, 2.0):
                for kind in ("gaussian", "collapsed", "low-rank", "orthonormal"):
                    z = _t(_rows(rng, kind, n, orthogonal[d]))
                    err = coding_rate_errors(z, eps, kind, orthogonal[d].T)
                    out.record(err, f"{kind} n={n} d={d} eps={eps}")
                    out.cases += 1


def _entropy_bits(p: np.ndarray) -> np.ndarray:
    return -(_xlogy(p, p) + _xlogy(1 - p, 1 - p)) / math.log(2)


def channel_errors(bits: torch.Tensor) -> float:
    """``bit_marginal_entropy`` = ``h(mean bit)`` <= 1; the message's empirical entropy
    ``<= sum_d h_d <= D`` bits."""
    b = _n(bits)
    h = _n(D.bit_marginal_entropy(bits))
    err = max(_rel(h, _entropy_bits(b.mean(0))), float(np.maximum(h - 1.0, 0.0).max()))
    _, counts = np.unique(b, axis=0, return_counts=True)
    freq = counts / counts.sum()
    h_msg = float(-(freq * np.log2(freq)).sum())
    return max(err, h_msg - h.sum(), h.sum() - b.shape[1], 0.0)


def _check_channel(seed: int, out: Numeric) -> None:
    rng = np.random.default_rng(seed + 7)
    for batch in (1, 2, 7, 64, 1000, 4096):
        for n_bits in (1, 2, 3, 8, 16):
            for kind in ("centred", "biased", "dead", "balanced"):
                a = rng.normal(size=(batch, n_bits))
                if kind == "biased":
                    a = a + rng.normal(size=n_bits) * 2
                if kind == "dead":
                    a[:, : max(1, n_bits // 2)] = -1.0
                if kind == "balanced":  # exactly half of the samples send 1 on every bit
                    a = (
                        np.stack([rng.permutation(batch) for _ in range(n_bits)], 1)
                        - batch / 2
                        + 0.5
                    )
                bits = F.binary_message(_t(a))
                label = f"{kind} B={batch} D={n_bits}"
                err = channel_errors(bits)
                h = _n(D.bit_marginal_entropy(bits))
                if kind == "balanced" and batch % 2 == 0:
                    err = max(err, float(np.abs(h - 1.0).max()))
                if kind == "dead":
                    err = max(err, float(np.abs(h[: max(1, n_bits // 2)]).max()))
                out.record(err, label)
                out.cases += 1
