"""``sslobj verify``: every theoretical claim behind the objectives, proved and checked.

Each claim is checked two ways:

- **symbolically** — its sympy derivation in ``proofs/<name>.py`` runs in this process and
  every step must hold (the file states where sympy proves a claim for any size and where
  only for symbolic entries at fixed small sizes);
- **numerically** — the library's *own* functions (:mod:`sslobjectives.functional`,
  :mod:`sslobjectives.diagnostics`), looked up at call time, are compared with independent
  numpy formulas on seeded random cases: batch sizes 1 to 300, 1 to 257 clusters, teacher
  temperatures from flat (1) to sharp (0.02), and the edge cases one-hot posteriors,
  identical samples, ``n < d``, empty batches. The checks run in float64, so the errors are
  rounding errors and the tolerance is 1e-9 (1e-5 for the bit diagnostics, which compute in
  float32).

It also measures how far centering is from inverse-prior normalisation — the mean Jensen gap
and the mean ``KL(inverse-prior || centered)`` — as the teacher temperature goes from 1 to
0.02 and the batch from 16 to 1024 (:func:`jensen_sweep`).
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import json
import math
import sys
import time
import types
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from sslobjectives import diagnostics as D
from sslobjectives import functional as F

PROOFS_DIR = Path(__file__).resolve().parents[1] / "proofs"
SWEEP_TEMPS = (1.0, 0.5, 0.3, 0.2, 0.1, 0.07, 0.04, 0.02)
SWEEP_BATCHES = (16, 64, 256, 1024)

# --------------------------------------------------------------------------- results


@dataclass
class Numeric:
    """Largest error over the cases tried; an error is a relative deviation from an
    independent formula (``|a - b| / max(1, |b|)``) or the size of a violated inequality."""

    tolerance: float
    cases: int = 0
    max_error: float = 0.0
    worst_case: str = ""
    notes: list[str] = field(default_factory=list)
    crash: str = ""

    def record(self, error: float, case: str) -> None:
        error = float(error)
        if math.isnan(error):
            error = math.inf
        if error > self.max_error or not self.worst_case:
            self.max_error, self.worst_case = max(error, self.max_error), case

    @property
    def ok(self) -> bool:
        return not self.crash and self.cases > 0 and self.max_error <= self.tolerance


@dataclass
class Symbolic:
    scope: str
    steps: list[tuple[str, bool]]
    crash: str = ""

    @property
    def ok(self) -> bool:
        return not self.crash and bool(self.steps) and all(holds for _, holds in self.steps)

    @property
    def summary(self) -> str:
        if self.crash:
            return "error (see below)"
        held = sum(holds for _, holds in self.steps)
        return f"{'proved' if self.ok else 'FAILED'} {held}/{len(self.steps)} steps"


@dataclass
class ClaimResult:
    id: int
    name: str
    title: str
    statement: str
    symbolic: Symbolic
    numeric: Numeric
    seconds: float

    @property
    def ok(self) -> bool:
        return self.symbolic.ok and self.numeric.ok

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "name": self.name,
            "proof": f"proofs/{self.name}.py",
            "title": self.title,
            "statement": self.statement,
            "ok": self.ok,
            "seconds": round(self.seconds, 3),
            "symbolic": {
                "ok": self.symbolic.ok,
                "scope": self.symbolic.scope,
                "summary": self.symbolic.summary,
                "steps": [{"step": s, "holds": h} for s, h in self.symbolic.steps],
                "error": self.symbolic.crash,
            },
            "numeric": {
                "ok": self.numeric.ok,
                **asdict(self.numeric),
                # JSON has no infinity: a non-finite error (NaN from the library) as a string
                "max_error": (
                    self.numeric.max_error
                    if math.isfinite(self.numeric.max_error)
                    else str(self.numeric.max_error)
                ),
            },
        }


# --------------------------------------------------------------------------- proofs


def load_proof(name: str, proofs_dir: Path = PROOFS_DIR) -> types.ModuleType:
    """Import ``proofs/<name>.py`` by path (``proofs/`` is not a package)."""
    path = proofs_dir / f"{name}.py"
    if not path.is_file():
        raise FileNotFoundError(f"proof file {path} not found (run from a source checkout)")
    spec = importlib.util.spec_from_file_location(f"sslobjectives_proofs.{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@functools.cache
def _proved(path: str, mtime: float) -> tuple[tuple[str, bool], ...]:
    """The derivation's steps, once per file version and process (sympy is the slow part)."""
    module = load_proof(Path(path).stem, Path(path).parent)
    return tuple((str(text), bool(holds)) for text, holds in module.prove())


def run_proof(name: str, proofs_dir: Path = PROOFS_DIR) -> tuple[types.ModuleType, Symbolic]:
    """Run one proof file's ``prove()``; a crash is a failed proof, not an exception."""
    module = load_proof(name, proofs_dir)
    path = proofs_dir / f"{name}.py"
    try:
        steps = list(_proved(str(path), path.stat().st_mtime))
        return module, Symbolic(module.SCOPE, steps)
    except Exception as exc:  # a proof that cannot run has failed
        return module, Symbolic(module.SCOPE, [], crash=f"{type(exc).__name__}: {exc}")


# --------------------------------------------------------------------------- numeric helpers


@contextlib.contextmanager
def single_threaded() -> Iterator[None]:
    """Thousands of tiny tensors: intra-op threads only contend (10x slower on a busy
    2-core machine), so torch and BLAS run on one thread here, restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        limits = contextlib.nullcontext()
    else:
        limits = threadpool_limits(1)
    try:
        with limits:
            yield
    finally:
        torch.set_num_threads(threads)


def _t(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64))


def _n(x: torch.Tensor) -> np.ndarray:
    return x.detach().numpy().astype(np.float64)


def _rel(a: np.ndarray | float, b: np.ndarray | float) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return math.inf
    if a.size == 0:
        return 0.0
    with np.errstate(invalid="ignore"):
        err = np.abs(a - b) / np.maximum(1.0, np.abs(b))
    both_inf = np.isinf(a) & np.isinf(b) & (np.sign(a) == np.sign(b))
    return float(np.where(both_inf, 0.0, np.nan_to_num(err, nan=math.inf)).max())


def _logsumexp(x: np.ndarray, axis: int) -> np.ndarray:
    m = x.max(axis=axis, keepdims=True)
    return (m + np.log(np.exp(x - m).sum(axis=axis, keepdims=True))).squeeze(axis)


def _log_softmax(x: np.ndarray) -> np.ndarray:
    return x - _logsumexp(x, 1)[:, None]


def _softmax(x: np.ndarray) -> np.ndarray:
    return np.exp(_log_softmax(x))


def _xlogy(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``x log y`` with ``0 log 0 = 0``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(x > 0, x * np.log(np.where(x > 0, y, 1.0)), 0.0)


def _unit_rows(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _logits(rng: np.random.Generator, kind: str, batch: int, k: int) -> np.ndarray:
    """Teacher logits of one kind: ``gaussian``; ``cosine`` (DINO-like, in [-1, 1]);
    ``one-hot`` (margin 50: one-hot posteriors); ``identical`` (every sample the same)."""
    if kind == "gaussian":
        return rng.normal(size=(batch, k)) * rng.choice([0.3, 1.0, 3.0])
    if kind == "cosine":
        protos = _unit_rows(rng.normal(size=(k, 16)))
        x = _unit_rows(protos[rng.integers(k, size=batch)] + rng.normal(size=(batch, 16)) / 4)
        return x @ protos.T
    if kind == "one-hot":
        z = np.zeros((batch, k))
        z[np.arange(batch), rng.integers(k, size=batch)] = 50.0
        return z
    if kind == "identical":
        return np.repeat(rng.normal(size=(1, k)), batch, axis=0)
    raise ValueError(f"unknown kind {kind!r}")


TEACHER_KINDS = ("gaussian", "cosine", "one-hot", "identical")


def teacher_cases(seed: int) -> Iterator[tuple[str, torch.Tensor, float]]:
    """Seeded (label, (B, K) float64 teacher logits, temperature) cases."""
    rng = np.random.default_rng(seed)
    for batch in (1, 3, 16, 300):
        for k in (1, 2, 64, 257):
            for temp in (1.0, 0.2, 0.04, 0.02):
                for kind in TEACHER_KINDS:
                    label = f"{kind} B={batch} K={k} T={temp}"
                    yield label, _t(_logits(rng, kind, batch, k)), temp


def _guard(check: Callable[[int, Numeric], None], tolerance: float) -> Callable[[int], Numeric]:
    """A library function that raises fails the claim (with its message) instead of verify."""

    @functools.wraps(check)
    def run(seed: int) -> Numeric:
        result = Numeric(tolerance)
        try:
            check(seed, result)
        except Exception as exc:
            result.crash = f"{type(exc).__name__}: {exc}"
        return result

    return run


# --------------------------------------------------------------------------- claim 1


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


# --------------------------------------------------------------------------- claim 2


def balanced_teacher_errors(z: torch.Tensor, temp: float, n_iter: int) -> float:
    """One Sinkhorn step from the posteriors (``start="posterior"``) = inverse-prior
    normalisation = ``(p/P)/sum(p/P)``; every iterate has
    the form ``log q_bk - log p_bk = -lambda_k - c_b`` (zero double-centred residual)."""
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


# --------------------------------------------------------------------------- claim 3


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


# --------------------------------------------------------------------------- claim 4


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


# --------------------------------------------------------------------------- claim 5


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


# --------------------------------------------------------------------------- claim 6


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


# --------------------------------------------------------------------------- claim 7


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


# --------------------------------------------------------------------------- the claims


@dataclass(frozen=True)
class Claim:
    id: int
    name: str  # proofs/<name>.py
    check: Callable[[int], Numeric]


CLAIMS: tuple[Claim, ...] = (
    Claim(1, "cross_entropy_kl", _guard(_check_cross_entropy, 1e-9)),
    Claim(2, "balanced_teacher_lagrange", _guard(_check_balanced, 1e-9)),
    Claim(3, "jensen_centering", _guard(_check_jensen, 1e-9)),
    Claim(4, "centering_geometric_mean", _guard(_check_geometric, 1e-9)),
    Claim(5, "map_decoding_bce_bound", _guard(_check_map_bce, 1e-9)),
    Claim(6, "coding_rate_bounds", _guard(_check_coding_rate, 1e-9)),
    # bit_marginal_entropy works in float32
    Claim(7, "channel_capacity", _guard(_check_channel, 1e-5)),
)


def run_claims(
    ids: list[int] | None = None,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
    proofs_dir: Path = PROOFS_DIR,
) -> list[ClaimResult]:
    """Every claim (or those in ``ids``), proved and checked; ``progress`` gets a line each."""
    chosen = [c for c in CLAIMS if ids is None or c.id in ids]
    results = []
    with single_threaded():
        for i, claim in enumerate(chosen, 1):
            start = time.perf_counter()
            if progress:
                progress(f"[{i}/{len(chosen)}] claim {claim.id} ({claim.name}): proof ...")
            try:
                module, symbolic = run_proof(claim.name, proofs_dir)
                title, statement = module.TITLE, module.STATEMENT
            except Exception as exc:  # the proof file is missing or does not import
                symbolic = Symbolic("", [], crash=f"{type(exc).__name__}: {exc}")
                title, statement = claim.name, "(proof file unavailable)"
            if progress:
                progress(f"[{i}/{len(chosen)}] claim {claim.id}: {symbolic.summary}; numeric ...")
            numeric = claim.check(seed)
            seconds = time.perf_counter() - start
            result = ClaimResult(claim.id, claim.name, title, statement, symbolic, numeric, seconds)
            if progress:
                verdict = "pass" if result.ok else "FAIL"
                progress(
                    f"[{i}/{len(chosen)}] claim {claim.id}: {numeric.cases} cases, max error "
                    f"{numeric.max_error:.1e} -> {verdict} ({seconds:.1f} s)"
                )
            results.append(result)
    return results


# --------------------------------------------------------------------------- Jensen sweep


def _cosine_teacher(rng: np.random.Generator, batch: int, n_clusters: int, dim: int) -> np.ndarray:
    """DINO-like teacher logits: cosines between samples drawn around random unit prototypes
    (``x = normalise(w_c + g / sqrt(dim))``, ``g`` standard normal) and every prototype."""
    protos = _unit_rows(rng.normal(size=(n_clusters, dim)))
    centre = protos[rng.integers(n_clusters, size=batch)]
    x = _unit_rows(centre + rng.normal(size=(batch, dim)) / math.sqrt(dim))
    return x @ protos.T


def jensen_sweep(
    temps: tuple[float, ...] = SWEEP_TEMPS,
    batches: tuple[int, ...] = SWEEP_BATCHES,
    n_clusters: int = 256,
    dim: int = 64,
    seeds: int = 3,
) -> dict:
    """Mean Jensen gap over clusters (``jensen_gap``) and mean ``KL(inverse-prior || centered)``
    over the batch (``diagnostics.centering_kl``, what the cluster objectives log), both in
    nats and averaged over ``seeds`` draws, per teacher temperature and batch size."""
    gap = np.zeros((len(temps), len(batches)))
    kl = np.zeros_like(gap)
    with single_threaded():
        for seed in range(seeds):
            rng = np.random.default_rng(1000 + seed)
            for j, batch in enumerate(batches):
                z = _t(_cosine_teacher(rng, batch, n_clusters, dim))
                for i, temp in enumerate(temps):
                    gap[i, j] += float(F.jensen_gap(z, temp).mean()) / seeds
                    kl[i, j] += float(D.centering_kl(z, temp)) / seeds
    return {
        "temperatures": list(temps),
        "batches": list(batches),
        "jensen_gap": gap.tolist(),
        "kl_inverse_prior_to_centered": kl.tolist(),
        "n_clusters": n_clusters,
        "seeds": seeds,
        "model": (
            f"cosine logits of samples around {n_clusters} random unit prototypes in "
            f"R^{dim} (x = normalise(w_c + g/sqrt({dim})))"
        ),
    }


def plot_sweep(sweep: dict, out_dir: Path) -> Path:
    """Write ``jensen_gap_kl.png`` (and the numbers as ``jensen_gap_kl.json``) to ``out_dir``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    out_dir.mkdir(parents=True, exist_ok=True)
    fig = Figure(figsize=(10, 4), layout="constrained")
    FigureCanvasAgg(fig)
    temps = sweep["temperatures"]
    panels = (
        ("jensen_gap", "mean Jensen gap log(P/G) over clusters (nats)"),
        ("kl_inverse_prior_to_centered", "mean KL(inverse-prior || centered) (nats)"),
    )
    for col, (key, ylabel) in enumerate(panels):
        ax = fig.add_subplot(1, 2, col + 1)
        values = np.asarray(sweep[key])
        for j, batch in enumerate(sweep["batches"]):
            ax.plot(temps, values[:, j], marker="o", label=f"batch {batch}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(temps, labels=[f"{t:g}" for t in temps])
        ax.minorticks_off()
        ax.invert_xaxis()
        ax.set_xlabel("teacher temperature (sharper ->)")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.suptitle(f"Centering vs inverse-prior normalisation: {sweep['model']}", fontsize=9)
    path = out_dir / "jensen_gap_kl.png"
    fig.savefig(path, dpi=120)
    (out_dir / "jensen_gap_kl.json").write_text(json.dumps(sweep, indent=2) + "\n")
    return path


# --------------------------------------------------------------------------- report


def format_table(results: list[ClaimResult]) -> str:
    """The claims table: id, statement, symbolic result, numeric cases, max error, verdict."""
    head = ("id", "claim", "symbolic", "cases", "max error", "result")
    rows = [
        (
            str(r.id),
            r.statement,
            r.symbolic.summary,
            str(r.numeric.cases),
            f"{r.numeric.max_error:.1e}" if not r.numeric.crash else "crash",
            "pass" if r.ok else "FAIL",
        )
        for r in results
    ]
    widths = [max(len(row[i]) for row in [head, *rows]) for i in range(len(head))]
    right = {0, 3, 4}

    def line(row: tuple[str, ...]) -> str:
        cells = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        return "  ".join(cells).rstrip()

    out = [line(head), line(tuple("-" * w for w in widths)), *map(line, rows)]
    details = []
    for r in results:
        scope = f"claim {r.id}: proofs/{r.name}.py — {r.title}; proved for {r.symbolic.scope}"
        details.append(scope)
        details += [f"    {note}" for note in r.numeric.notes]
        if r.symbolic.crash:
            details.append(f"    proof error: {r.symbolic.crash}")
        details += [f"    step fails: {s}" for s, h in r.symbolic.steps if not h]
        if r.numeric.crash:
            details.append(f"    numeric check raised {r.numeric.crash}")
        elif not r.numeric.ok:
            details.append(
                f"    numeric: max error {r.numeric.max_error:.2e} > tolerance "
                f"{r.numeric.tolerance:.0e} at {r.numeric.worst_case}"
            )
    return "\n".join(out + [""] + details)


def format_sweep(sweep: dict) -> str:
    """Jensen gap / KL per temperature (rows) and batch size (columns)."""
    batches = sweep["batches"]
    lines = [
        "Centering vs inverse-prior normalisation, per teacher temperature T and batch size:",
        "mean Jensen gap log(P/G) over clusters / mean KL(inverse-prior || centered), in nats",
        f"  teacher: {sweep['model']}; mean of {sweep['seeds']} draws",
        "T \\ batch" + "".join(f"{b:>20}" for b in batches),
    ]
    for i, temp in enumerate(sweep["temperatures"]):
        cells = [
            f"{sweep['jensen_gap'][i][j]:.3g} / {sweep['kl_inverse_prior_to_centered'][i][j]:.2g}"
            for j in range(len(batches))
        ]
        lines.append(f"{temp:<9g}" + "".join(f"{c:>20}" for c in cells))
    return "\n".join(lines)


def main(
    json_path: str | None = None,
    plot_dir: str | None = None,
    seed: int = 0,
    claims: list[int] | None = None,
) -> int:
    """Run ``sslobj verify``: print the table, write JSON / plot; 0 iff every claim passes."""
    start = time.perf_counter()
    unknown = sorted(set(claims or []) - {c.id for c in CLAIMS})
    if unknown:
        print(f"sslobj verify: no claim {unknown}; claims are 1-{len(CLAIMS)}", file=sys.stderr)
        return 2

    def progress(msg: str) -> None:
        print(f"verify: {msg}", file=sys.stderr, flush=True)

    results = run_claims(claims, seed=seed, progress=progress)
    progress("Jensen gap and KL sweep ...")
    sweep = jensen_sweep()
    print(format_table(results))
    print()
    print(format_sweep(sweep))
    ok = all(r.ok for r in results)
    seconds = time.perf_counter() - start
    print(f"\n{sum(r.ok for r in results)}/{len(results)} claims pass ({seconds:.1f} s)")
    if json_path:
        report = {
            "ok": ok,
            "seed": seed,
            "seconds": round(seconds, 2),
            "claims": [r.to_dict() for r in results],
            "sweep": sweep,
        }
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(report, indent=2) + "\n")
    if plot_dir:
        progress(f"plot -> {plot_sweep(sweep, Path(plot_dir))}")
    return 0 if ok else 1
