"""Input validation shared by the evaluation functions.

Every evaluation function accepts torch tensors (any device, detached here) or numpy arrays
(or nested lists) and raises :class:`ValueError` naming the argument and the problem: missing
(``None``), wrong number of dimensions, empty, non-finite, mismatched lengths or widths,
non-integer labels, non-binary codes, bad hyperparameters.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
import torch

__all__ = [
    "as_codes",
    "as_labels",
    "as_matrix",
    "check_int",
    "check_positive",
    "check_same_width",
    "check_subset",
    "resolve_factor_names",
]


def _to_numpy(x: object, name: str) -> np.ndarray:
    if x is None:
        raise ValueError(f"{name} is missing (got None)")
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        if x.dtype == torch.bfloat16:
            x = x.float()
        return x.numpy()
    try:
        arr = np.asarray(x)
    except (TypeError, ValueError) as err:  # ragged nested lists
        raise ValueError(f"{name} cannot be converted to an array: {err}") from err
    return arr


def _check_real(arr: np.ndarray, name: str) -> None:
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} must hold real numbers, got dtype {arr.dtype}")


def as_matrix(x: object, name: str) -> torch.Tensor:
    """``x`` as a finite CPU float tensor ``(N, D)`` with ``N, D >= 1``.

    float64 input stays float64; everything else (float16/32, ints, bools) becomes float32.
    """
    arr = _to_numpy(x, name)
    _check_real(arr, name)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (N, D), got shape {tuple(arr.shape)}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {tuple(arr.shape)})")
    dtype = np.float64 if arr.dtype == np.float64 else np.float32
    t = torch.from_numpy(np.ascontiguousarray(arr, dtype=dtype))
    if not bool(torch.isfinite(t).all()):
        bad = int((~torch.isfinite(t)).sum())
        raise ValueError(f"{name} has {bad} non-finite value(s) (NaN or inf)")
    return t


def as_codes(x: object, name: str) -> torch.Tensor:
    """Binary codes ``(N, D)`` with entries exactly 0 or 1, as a float32 tensor."""
    t = as_matrix(x, name)
    if not bool(((t == 0) | (t == 1)).all()):
        bad = int(((t != 0) & (t != 1)).sum())
        raise ValueError(
            f"{name} must be binary codes with entries 0 or 1, found {bad} other value(s) "
            "(threshold logits with `logits > 0` first)"
        )
    return t.to(torch.float32)


def as_labels(y: object, name: str, n: int, n_name: str) -> np.ndarray:
    """Integer labels ``(n,)`` as int64; float labels must be integral."""
    arr = _to_numpy(y, name)
    _check_real(arr, name)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D (N,), got shape {tuple(arr.shape)}")
    if arr.shape[0] != n:
        raise ValueError(f"{name} has {arr.shape[0]} entries but {n_name} has {n} rows")
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all():
            raise ValueError(f"{name} has non-finite value(s)")
        if not np.array_equal(arr, np.round(arr)):
            raise ValueError(f"{name} must be integer class labels, got non-integer values")
    return arr.astype(np.int64)


def check_same_width(a: torch.Tensor, b: torch.Tensor, name_a: str, name_b: str) -> None:
    if a.shape[1] != b.shape[1]:
        raise ValueError(
            f"dimension mismatch: {name_a} has {a.shape[1]} columns, {name_b} has {b.shape[1]}"
        )


def check_int(value: object, name: str, minimum: int) -> int:
    """``value`` as an int ``>= minimum`` (bools are refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_positive(value: object, name: str) -> float:
    """``value`` as a finite float ``> 0``."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a number > 0, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def resolve_factor_names(factor_names: Sequence[str] | None, n_factors: int) -> list[str]:
    """Names for the ``n_factors`` factor columns (``factor_0`` ... when ``None``)."""
    if factor_names is None:
        return [f"factor_{i}" for i in range(n_factors)]
    if isinstance(factor_names, str):
        raise ValueError("factor_names must be a sequence of names, not a single string")
    names = [str(n) for n in factor_names]
    if len(names) != n_factors:
        raise ValueError(f"factors have {n_factors} columns but {len(names)} factor_names given")
    if len(set(names)) != len(names):
        raise ValueError(f"factor_names must be unique, got {names}")
    return names


def check_subset(items: Iterable[str] | None, allowed: Sequence[str], name: str) -> set[str] | None:
    """``items`` as a set, every element one of ``allowed`` (``None`` passes through)."""
    if items is None:
        return None
    if isinstance(items, str):
        items = [items]
    chosen = {str(i) for i in items}
    unknown = sorted(chosen - set(allowed))
    if unknown:
        raise ValueError(f"{name} names unknown factor(s) {unknown}; known: {list(allowed)}")
    return chosen
