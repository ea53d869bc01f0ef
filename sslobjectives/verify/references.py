"""Independent numpy references and seeded random cases the numeric checks compare with."""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable, Iterator

import numpy as np
import torch

from sslobjectives.verify.results import Numeric

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


def _guard(
    check: Callable[[int, Numeric], None], tolerance: float, *more: Callable[[int, Numeric], None]
) -> Callable[[int], Numeric]:
    """The checks of one claim into one result; a library function (or objective) that
    raises fails the claim with its message instead of stopping verify, and does not keep
    the claim's other checks from running."""

    @functools.wraps(check)
    def run(seed: int) -> Numeric:
        result = Numeric(tolerance)
        crashes = []
        for part in (check, *more):
            try:
                part(seed, result)
            except Exception as exc:
                crashes.append(f"{part.__name__}: {type(exc).__name__}: {exc}")
        result.crash = "; ".join(crashes)
        return result

    return run
