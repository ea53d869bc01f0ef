"""Representation metrics on frozen features: weighted k-NN, linear probe, retrieval mAP.

Pure functions: torch tensors or numpy arrays in, Python floats out. Shapes: ``N`` training
(database) rows, ``M`` test (query) rows, ``D`` feature dimensions or bits.

Papers:
- [DINO] Caron et al., "Emerging Properties in Self-Supervised Vision Transformers",
  arXiv 2104.14294: temperature-weighted k-NN on cosine similarity (k = 20, T = 0.07).
- [CLIP] Radford et al., arXiv 2103.00020: linear probe as L-BFGS logistic regression on
  frozen features (here with a fixed C instead of a validation sweep).
- [BITS] Zaher et al., "Self-Supervised Learning as Discrete Communication",
  arXiv 2602.09764: retrieval mAP of the binary codes under Hamming distance.
- [MN08] McSherry & Najork, "Computing Information Retrieval Performance Measures
  Efficiently in the Presence of Tied Scores", ECIR 2008: tie-aware average precision.

Bad input raises :class:`ValueError` naming the argument and the problem.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from sslobjectives.eval import _checks
from sslobjectives.eval.information import (
    assignment_factor_mutual_information,
    bit_factor_mutual_information,
    bits_reused_across_classes,
)

__all__ = ["evaluate_representation", "knn_accuracy", "linear_probe", "retrieval_map"]

# Rows of a score chunk are sized so one chunk holds about this many elements (~16 MB float32).
_CHUNK_ELEMENTS = 1 << 22


def _chunk_rows(n_cols: int, chunk_size: int | None) -> int:
    if chunk_size is not None:
        return _checks.check_int(chunk_size, "chunk_size", 1)
    return max(1, _CHUNK_ELEMENTS // max(n_cols, 1))


# --------------------------------------------------------------------------- k-NN


def _top_k_stable(sim: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``k`` columns of a stable descending sort of each row of ``sim`` (c, N):
    values and column indices, equal values in order of their index.

    ``torch.topk`` finds the ``k`` largest values without sorting the row (the whole search
    takes about an eighth of the full sort's time for ``k = 20`` of 3,750 columns:
    ``python -m benchmarks.knn``), but leaves the order among equal values unspecified. Where
    no tie straddles the ``k``-th place its set is the stable sort's, which two small sorts
    of the ``k`` candidates put in the stable sort's order (by index, then stably by value);
    rows where a tie straddles it (the sort decides which of the tied columns enter) take
    the full stable sort. The result is exactly the full sort's.
    """
    n = sim.shape[1]
    if 4 * k >= n:  # topk saves nothing on short rows
        top, idx = torch.sort(sim, dim=1, descending=True, stable=True)
        return top[:, :k], idx[:, :k]
    vals, idx = torch.topk(sim, k, dim=1)
    idx, by_index = torch.sort(idx, dim=1)
    vals = torch.gather(vals, 1, by_index)
    top, order = torch.sort(vals, dim=1, descending=True, stable=True)
    idx = torch.gather(idx, 1, order)
    straddled = ((sim >= top[:, -1:]).sum(dim=1) > k).nonzero().flatten()
    if straddled.numel():
        t, i = torch.sort(sim[straddled], dim=1, descending=True, stable=True)
        top[straddled], idx[straddled] = t[:, :k], i[:, :k]
    return top, idx


def knn_accuracy(
    train_feats: Any,
    train_labels: Any,
    test_feats: Any,
    test_labels: Any,
    k: int = 20,
    temperature: float = 0.07,
    num_classes: int | None = None,
    *,
    chunk_size: int | None = None,
) -> float:
    """Top-1 accuracy of DINO's temperature-weighted k-NN classifier [DINO].

    Features are L2-normalised; for each test row the ``k`` training rows of highest cosine
    similarity ``s`` vote for their label with weight ``exp(s / T)``; votes are summed per
    class and the class with the largest total is predicted.

    Choices:
    - ``k > N`` is clamped to ``N`` (every training row votes).
    - ties between neighbours of equal similarity are broken by the lower training index
      (stable sort), ties between classes of equal vote by the smaller label (``argmax``
      returns the first maximum), so the result is deterministic.
    - weights are computed as ``exp((s - s_max) / T)`` per test row: the common factor
      ``exp(-s_max / T)`` leaves the argmax unchanged and avoids overflow for small ``T``.
    - all-zero rows normalise to zero (similarity 0 to everything).
    - test rows are processed in chunks (``chunk_size`` rows; default: about 4M similarity
      entries per chunk) to bound memory at ``O(chunk_size * N)``.

    Args:
        train_feats: ``(N, D)`` training features.
        train_labels: ``(N,)`` integer labels.
        test_feats: ``(M, D)`` test features.
        test_labels: ``(M,)`` integer labels.
        k: number of neighbours, ``>= 1``.
        temperature: ``T > 0`` of the vote weights.
        num_classes: if given, every label must lie in ``[0, num_classes)``; if ``None``,
            labels may be any integers.
        chunk_size: test rows per chunk (memory bound), ``None`` for automatic.

    Returns:
        Fraction of test rows whose predicted label equals ``test_labels``, in ``[0, 1]``.

    Example:
        >>> train = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
        >>> knn_accuracy(train, [0, 0, 1], [[1.0, 0.2], [0.1, 1.0]], [0, 1], k=1)
        1.0
    """
    xtr = _checks.as_matrix(train_feats, "train_feats")
    xte = _checks.as_matrix(test_feats, "test_feats")
    _checks.check_same_width(xtr, xte, "train_feats", "test_feats")
    ytr = _checks.as_labels(train_labels, "train_labels", xtr.shape[0], "train_feats")
    yte = _checks.as_labels(test_labels, "test_labels", xte.shape[0], "test_feats")
    k = _checks.check_int(k, "k", 1)
    temperature = _checks.check_positive(temperature, "temperature")

    if num_classes is None:
        _, inverse = np.unique(np.concatenate([ytr, yte]), return_inverse=True)
        ytr_idx, yte_idx = inverse[: len(ytr)], inverse[len(ytr) :]
        n_classes = int(inverse.max()) + 1
    else:
        n_classes = _checks.check_int(num_classes, "num_classes", 1)
        for y, name in ((ytr, "train_labels"), (yte, "test_labels")):
            if y.min() < 0 or y.max() >= n_classes:
                raise ValueError(
                    f"{name} must lie in [0, num_classes={n_classes}), "
                    f"got range [{y.min()}, {y.max()}]"
                )
        ytr_idx, yte_idx = ytr, yte

    dtype = torch.float64 if torch.float64 in (xtr.dtype, xte.dtype) else torch.float32
    xtr = F.normalize(xtr.to(dtype), dim=1)
    xte = F.normalize(xte.to(dtype), dim=1)
    ytr_t = torch.from_numpy(np.ascontiguousarray(ytr_idx, dtype=np.int64))
    yte_t = torch.from_numpy(np.ascontiguousarray(yte_idx, dtype=np.int64))
    n_train, k_eff = xtr.shape[0], min(k, xtr.shape[0])
    rows = _chunk_rows(n_train, chunk_size)

    correct = 0
    for start in range(0, xte.shape[0], rows):
        sim = xte[start : start + rows] @ xtr.T  # (c, N)
        top, idx = _top_k_stable(sim, k_eff)  # (c, k)
        weights = torch.exp((top - top[:, :1]) / temperature)  # (c, k), max weight 1
        votes = torch.zeros(sim.shape[0], n_classes, dtype=dtype)
        votes.scatter_add_(1, ytr_t[idx], weights)  # (c, C)
        pred = votes.argmax(dim=1)
        correct += int((pred == yte_t[start : start + rows]).sum())
    return correct / xte.shape[0]


# --------------------------------------------------------------------------- linear probe


def linear_probe(
    train_feats: Any,
    train_labels: Any,
    test_feats: Any,
    test_labels: Any,
    seed: int = 0,
) -> float:
    """Test accuracy of a linear classifier trained on frozen features (fixed protocol).

    Protocol (no hyperparameter search, so results are comparable across objectives):
    1. standardise every feature with the *training* mean and standard deviation (population
       std; features with std below ``1e-12`` are only centred);
    2. fit scikit-learn ``LogisticRegression(C=1.0, max_iter=1000, solver="lbfgs")`` —
       multinomial (softmax) logistic regression with an L2 penalty, as in [CLIP] but with a
       fixed ``C``; computed in float64;
    3. report top-1 accuracy on the test set.

    L-BFGS is deterministic, so the result depends only on the data; ``seed`` is forwarded
    as ``random_state`` (used by scikit-learn only for stochastic solvers) to keep the
    signature stable. If L-BFGS does not converge in 1000 iterations scikit-learn's
    ``ConvergenceWarning`` is left visible. BLAS runs single-threaded during the fit; about
    0.1 s for 1347 x 128 features and 10 classes.

    Args:
        train_feats: ``(N, D)``. train_labels: ``(N,)`` integers, at least two classes.
        test_feats: ``(M, D)``. test_labels: ``(M,)`` integers (a test label absent from
            training is simply never predicted).
        seed: forwarded to ``random_state``.

    Returns:
        Test accuracy in ``[0, 1]``.

    Example:
        >>> x = np.array([[-2.0], [-1.0], [1.0], [2.0]])
        >>> linear_probe(x, [0, 0, 1, 1], [[-1.5], [1.5]], [0, 1])
        1.0
    """
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    xtr = _checks.as_matrix(train_feats, "train_feats")
    xte = _checks.as_matrix(test_feats, "test_feats")
    _checks.check_same_width(xtr, xte, "train_feats", "test_feats")
    ytr = _checks.as_labels(train_labels, "train_labels", xtr.shape[0], "train_feats")
    yte = _checks.as_labels(test_labels, "test_labels", xte.shape[0], "test_feats")
    seed = _checks.check_int(seed, "seed", 0)
    if np.unique(ytr).size < 2:
        raise ValueError("linear_probe needs at least 2 classes in train_labels, got 1")

    a = xtr.numpy().astype(np.float64)
    b = xte.numpy().astype(np.float64)
    mean, std = a.mean(axis=0), a.std(axis=0)
    std = np.where(std > 1e-12, std, 1.0)
    clf = LogisticRegression(C=1.0, max_iter=1000, solver="lbfgs", random_state=seed)
    # Single-threaded BLAS: the problem is small, and OpenBLAS threads competing with torch's
    # on two busy cores made the fit 30x slower (2 s instead of 0.07 s for 1347 x 128).
    with threadpool_limits(limits=1, user_api="blas"):
        clf.fit((a - mean) / std, ytr)
        pred = clf.predict((b - mean) / std)
    return float(np.mean(pred == yte))


# --------------------------------------------------------------------------- retrieval mAP


def _average_precision(scores: torch.Tensor, rel: torch.Tensor, ties: str) -> torch.Tensor:
    """AP per row of ``scores`` (c, N) (lower = better) with relevance ``rel`` (c, N) bool.

    Rows without relevant items give NaN. See :func:`retrieval_map` for the tie rule.
    """
    c, n = scores.shape
    s_sorted, order = torch.sort(scores, dim=1, stable=True)  # ascending, ties by index
    r_sorted = torch.gather(rel, 1, order).to(torch.float64)  # (c, N)
    cum = torch.cumsum(r_sorted, dim=1)  # relevant items within the first p ranks
    n_rel = cum[:, -1]
    rank = torch.arange(1, n + 1, dtype=torch.float64)  # 1-based rank p
    if ties == "index":
        ap_sum = (r_sorted * cum / rank).sum(dim=1)
    else:
        # Tie groups: maximal runs of equal scores in the sorted row. For a group occupying
        # ranks s+1 .. s+g with r relevant items and R relevant items ranked before it, each
        # relevant item is equally likely at every position s+j, and given j the number of
        # other relevant items before it is hypergeometric with mean (j-1)(r-1)/(g-1). The
        # expected precision summed over the group's relevant items is therefore
        #   (r/g) * sum_j (R + 1 + (j-1)(r-1)/(g-1)) / (s+j),
        # which we accumulate position by position.
        pos = torch.arange(n).expand(c, n)
        first = torch.ones(c, n, dtype=torch.bool)
        first[:, 1:] = s_sorted[:, 1:] != s_sorted[:, :-1]
        last = torch.ones(c, n, dtype=torch.bool)
        last[:, :-1] = first[:, 1:]
        start = torch.cummax(torch.where(first, pos, 0), dim=1).values  # group's first index
        stop = torch.where(last, pos + 1, n).flip(1).cummin(dim=1).values.flip(1)  # exclusive
        cum0 = torch.cat([torch.zeros(c, 1, dtype=torch.float64), cum], dim=1)  # (c, N+1)
        before = torch.gather(cum0, 1, start)  # R
        r = torch.gather(cum0, 1, stop) - before
        g = (stop - start).to(torch.float64)
        spread = torch.where(g > 1, (r - 1) / (g - 1).clamp(min=1), torch.zeros_like(r))
        j_minus_1 = (pos - start).to(torch.float64)
        ap_sum = ((r / g) * (before + 1 + j_minus_1 * spread) / rank).sum(dim=1)
    return torch.where(n_rel > 0, ap_sum / n_rel.clamp(min=1), torch.full_like(n_rel, np.nan))


def retrieval_map(
    query_feats: Any,
    query_labels: Any,
    db_feats: Any,
    db_labels: Any,
    metric: str = "cosine",
    *,
    ties: str = "average",
    chunk_size: int | None = None,
) -> float:
    """Mean average precision over the whole ranked database (mAP@all).

    For each query the database is ranked by decreasing cosine similarity
    (``metric="cosine"``, L2-normalised features) or increasing Hamming distance
    (``metric="hamming"``, features are binary codes with entries 0/1, as in [BITS]). A
    database item is relevant iff its label equals the query's. With ``R`` relevant items at
    ranks ``p_1 < ... < p_R``, ``AP = (1/R) sum_i i / p_i`` (precision at each relevant
    rank); mAP is the mean AP over queries.

    Choices:
    - queries with no relevant database item have undefined AP and are skipped; if every
      query is skipped a ``ValueError`` is raised.
    - ties (equal scores; common with Hamming distances, which take only ``D + 1`` values):
      ``ties="average"`` (default) is tie-aware AP [MN08]: the expected AP when each group of
      tied items is in uniformly random order, computed exactly in closed form. It does not
      depend on the order of the database. ``ties="index"`` ranks tied items by database
      index (stable sort) — reproducible but order-dependent.
    - the query set and the database are separate: a query is not removed from the
      database (pass disjoint sets, e.g. test queries against a train database).
    - queries are processed in chunks (``chunk_size`` rows, default about 4M scores per
      chunk), each chunk sorted row-wise at once.

    Args:
        query_feats: ``(M, D)``. query_labels: ``(M,)`` integers.
        db_feats: ``(N, D)``. db_labels: ``(N,)`` integers.
        metric: ``"cosine"`` or ``"hamming"``.
        ties: ``"average"`` or ``"index"``.
        chunk_size: query rows per chunk, ``None`` for automatic.

    Returns:
        mAP in ``[0, 1]``.

    Example (relevant items at ranks 1 and 3 of 4: ``AP = (1/1 + 2/3) / 2``):
        >>> db = [[1.0, 0.0], [0.8, 0.6], [0.6, 0.8], [0.0, 1.0]]
        >>> round(retrieval_map([[1.0, 0.0]], [0], db, [0, 1, 0, 1]), 4)
        0.8333

        Hamming ties, tie-aware: distances 0, 1, 1 with the relevant item inside the tie at
        rank 2 or 3 with equal chance, ``AP = (1 + (1/2)(2/2 + 2/3)) / 2 = 11/12``:

        >>> codes = [[0, 0], [0, 1], [1, 0]]
        >>> round(retrieval_map([[0, 0]], [0], codes, [0, 0, 1], metric="hamming"), 4)
        0.9167
    """
    if metric not in ("cosine", "hamming"):
        raise ValueError(f"metric must be 'cosine' or 'hamming', got {metric!r}")
    if ties not in ("average", "index"):
        raise ValueError(f"ties must be 'average' or 'index', got {ties!r}")
    if metric == "hamming":
        q = _checks.as_codes(query_feats, "query_feats")
        db = _checks.as_codes(db_feats, "db_feats")
    else:
        q = _checks.as_matrix(query_feats, "query_feats")
        db = _checks.as_matrix(db_feats, "db_feats")
    _checks.check_same_width(q, db, "query_feats", "db_feats")
    yq = torch.from_numpy(
        _checks.as_labels(query_labels, "query_labels", q.shape[0], "query_feats")
    )
    ydb = torch.from_numpy(_checks.as_labels(db_labels, "db_labels", db.shape[0], "db_feats"))

    if metric == "hamming":
        # +-1 codes: s . t = D - 2 * hamming, exact in float32 for D < 2**24.
        q, db = 2 * q - 1, 2 * db - 1
        width = q.shape[1]
    else:
        dtype = torch.float64 if torch.float64 in (q.dtype, db.dtype) else torch.float32
        q, db = F.normalize(q.to(dtype), dim=1), F.normalize(db.to(dtype), dim=1)
    rows = _chunk_rows(db.shape[0], chunk_size)

    aps = []
    for start in range(0, q.shape[0], rows):
        dots = q[start : start + rows] @ db.T  # (c, N)
        scores = torch.round((width - dots) / 2) if metric == "hamming" else -dots
        rel = yq[start : start + rows, None] == ydb[None, :]  # (c, N)
        aps.append(_average_precision(scores, rel, ties))
    ap = torch.cat(aps)
    kept = ~torch.isnan(ap)
    if not bool(kept.any()):
        raise ValueError(
            "retrieval_map: no query has a relevant database item (no query label occurs in "
            "db_labels), so mAP is undefined"
        )
    return float(ap[kept].mean())


# --------------------------------------------------------------------------- everything at once


def _factor_mi_summary(
    codes: Any, factors: Any, names: Sequence[str], n_bins: int, discrete: Iterable[str] | None
) -> tuple[dict[str, dict[str, float | int]], float]:
    res = bit_factor_mutual_information(codes, factors, names, n_bins=n_bins, discrete=discrete)
    per_factor: dict[str, dict[str, float | int]] = {}
    for j, name in enumerate(names):
        col, ncol = res.mi[:, j], res.normalized[:, j]
        best = int(np.argmax(col))
        per_factor[name] = {
            "max_mi": float(col[best]),
            "best_bit": best,
            "max_nmi": float(ncol.max()),
            "mean_mi": float(col.mean()),
            "factor_entropy": float(res.factor_entropy[j]),
            "discrete": bool(res.discrete[j]),
        }
    mean_max = float(np.mean([v["max_mi"] for v in per_factor.values()]))
    return per_factor, mean_max


def evaluate_representation(
    train_feats: Any,
    train_labels: Any,
    test_feats: Any,
    test_labels: Any,
    *,
    codes_train: Any = None,
    codes_test: Any = None,
    factors_test: Any = None,
    factor_names: Sequence[str] | None = None,
    assign_test: Any = None,
    k: int = 20,
    temperature: float = 0.07,
    n_bins: int = 8,
    discrete: Iterable[str] | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Every evaluation metric of one frozen representation, as a JSON-serialisable dict.

    The test split is the query/evaluation set, the train split the k-NN memory, probe
    training set and retrieval database.

    Keys (always):
    - ``"knn"``: :func:`knn_accuracy` on the features (cosine, ``k``, ``temperature``).
    - ``"linear"``: :func:`linear_probe` on the features.
    - ``"map"``: :func:`retrieval_map` with cosine similarity, test queries vs train db.

    With ``codes_train`` and ``codes_test`` (0/1 codes ``(N, B)``, ``(M, B)``, given together):
    - ``"code_knn"``: :func:`knn_accuracy` with cosine similarity on the ``+-1`` codes
      ``2b - 1``; for ``+-1`` codes cosine equals ``1 - 2 * hamming / B``, so this is the
      weighted k-NN under Hamming distance.
    - ``"code_map"``: :func:`retrieval_map` with ``metric="hamming"`` (tie-aware AP).

    With ``codes_test`` and ``factors_test`` (``(M, F)``, columns named by ``factor_names``):
    - ``"code_factor_mi"``: per factor ``{"max_mi", "best_bit", "max_nmi", "mean_mi",
      "factor_entropy", "discrete"}`` from :func:`bit_factor_mutual_information` (bits).
    - ``"code_mean_max_mi"``: mean over factors of ``max_mi``.
    - ``"bits_reused"``: :func:`bits_reused_across_classes` with ``test_labels`` as classes,
      or ``{"error": message}`` when fewer than two classes have ``2 * n_bins`` samples.

    With ``assign_test`` (cluster assignments ``(M,)``) and ``factors_test``:
    - ``"assign_factor_mi"``: per factor ``{"mi", "nmi"}`` from
      :func:`assignment_factor_mutual_information`; ``"assign_mean_nmi"``: their mean nmi.

    Args:
        train_feats, test_feats: ``(N, D)``, ``(M, D)`` features.
        train_labels, test_labels: ``(N,)``, ``(M,)`` integer labels.
        codes_train, codes_test: optional binary codes.
        factors_test: optional latent factors of the test rows.
        factor_names: names of the factor columns (default ``factor_0`` ...).
        assign_test: optional integer cluster assignments of the test rows.
        k, temperature: k-NN parameters. n_bins, discrete: factor discretisation (see
            :func:`bit_factor_mutual_information`). seed: linear probe seed.

    Returns:
        ``dict[str, float | dict]`` with only Python floats, ints, bools, strings, lists and
        dicts inside.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> x, y = torch.randn(40, 8, generator=g), torch.arange(40) % 2
        >>> x[:, 0] += 6 * y
        >>> r = evaluate_representation(x[:30], y[:30], x[30:], y[30:], k=5,
        ...                             codes_train=x[:30] > 3, codes_test=x[30:] > 3)
        >>> sorted(r), r["knn"], r["code_map"]
        (['code_knn', 'code_map', 'knn', 'linear', 'map'], 1.0, 1.0)
    """
    out: dict[str, Any] = {
        "knn": knn_accuracy(train_feats, train_labels, test_feats, test_labels, k, temperature),
        "linear": linear_probe(train_feats, train_labels, test_feats, test_labels, seed=seed),
        "map": retrieval_map(test_feats, test_labels, train_feats, train_labels, "cosine"),
    }
    if (codes_train is None) != (codes_test is None):
        raise ValueError("codes_train and codes_test must be given together")
    if codes_test is not None:
        ctr = _checks.as_codes(codes_train, "codes_train")
        cte = _checks.as_codes(codes_test, "codes_test")
        out["code_knn"] = knn_accuracy(
            2 * ctr - 1, train_labels, 2 * cte - 1, test_labels, k, temperature
        )
        out["code_map"] = retrieval_map(cte, test_labels, ctr, train_labels, "hamming")
    if factors_test is None:
        if assign_test is not None:
            raise ValueError("assign_test needs factors_test (MI with the latent factors)")
        return out
    fac = _checks.as_matrix(factors_test, "factors_test")
    names = _checks.resolve_factor_names(factor_names, fac.shape[1])
    if codes_test is not None:
        out["code_factor_mi"], out["code_mean_max_mi"] = _factor_mi_summary(
            codes_test, fac, names, n_bins, discrete
        )
        try:
            out["bits_reused"] = bits_reused_across_classes(
                codes_test, test_labels, fac, names, n_bins=n_bins, discrete=discrete
            )
        except ValueError as err:  # inputs are valid here: too few classes large enough
            out["bits_reused"] = {"error": str(err)}
    if assign_test is not None:
        res = assignment_factor_mutual_information(
            assign_test, fac, names, n_bins=n_bins, discrete=discrete
        )
        out["assign_factor_mi"] = {
            name: {"mi": float(res.mi[j]), "nmi": float(res.normalized[j])}
            for j, name in enumerate(names)
        }
        out["assign_mean_nmi"] = float(np.mean(res.normalized))
    return out
