"""The k-NN monitor's neighbour search: ``python -m benchmarks.knn``.

Every epoch the trainer evaluates the teacher's features with DINO's weighted k-NN
(:func:`sslobjectives.eval.metrics.knn_accuracy`): a similarity matrix of the test rows
against the training rows, the ``k`` most similar training rows of each test row, their
votes. It used to take the neighbours from a full stable sort of every row; it now takes
them with ``torch.topk`` and two sorts of the ``k`` candidates (``_top_k_stable``: the same
neighbours in the same order, ties included, tested). This times both on the testbed's sizes
(1,250 test rows against 3,750 training rows of 128 features, ``k`` 20; one torch thread)
and reports the median of each and their ratio, pair by pair::

    ratio = median(topk search / full stable sort)          (target: < 0.5)

and the same for the whole ``knn_accuracy`` call (similarities, search and votes), against
the same call with the full sort put back. The result is the same in both (checked on every
round).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from sslobjectives.eval import metrics


def _full_sort(sim: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    top, idx = torch.sort(sim, dim=1, descending=True, stable=True)
    return top[:, :k], idx[:, :k]


def _time(fn, rounds: int) -> list[float]:
    fn()  # warm-up
    out = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def _median(values: list[float]) -> float:
    s = sorted(values)
    return s[len(s) // 2] if len(s) % 2 else (s[len(s) // 2 - 1] + s[len(s) // 2]) / 2


def run(n_test: int, n_train: int, dim: int, k: int, rounds: int) -> dict:
    g = torch.Generator().manual_seed(0)
    x_train, x_test = torch.randn(n_train, dim, generator=g), torch.randn(n_test, dim, generator=g)
    y_train = torch.randint(5, (n_train,), generator=g)
    y_test = torch.randint(5, (n_test,), generator=g)
    sim = torch.nn.functional.normalize(x_test, dim=1) @ torch.nn.functional.normalize(
        x_train, dim=1
    ).T
    fast, slow = metrics._top_k_stable(sim, k), _full_sort(sim, k)
    if not all(torch.equal(a, b) for a, b in zip(fast, slow, strict=True)):
        raise AssertionError("the topk search and the full sort disagree")
    search_fast = _time(lambda: metrics._top_k_stable(sim, k), rounds)
    search_slow = _time(lambda: _full_sort(sim, k), rounds)

    def call() -> float:
        return metrics.knn_accuracy(x_train, y_train, x_test, y_test, k=k)

    fast_acc = call()
    knn_fast = _time(call, rounds)
    original = metrics._top_k_stable
    metrics._top_k_stable = _full_sort  # the call as it was before the topk search
    try:
        slow_acc = call()
        knn_slow = _time(call, rounds)
    finally:
        metrics._top_k_stable = original
    if fast_acc != slow_acc:
        raise AssertionError(f"k-NN accuracy differs: {fast_acc} against {slow_acc}")
    return {
        "sizes": {"n_test": n_test, "n_train": n_train, "dim": dim, "k": k},
        "threads": torch.get_num_threads(),
        "rounds": rounds,
        "search_ms": {"topk": 1e3 * _median(search_fast), "full_sort": 1e3 * _median(search_slow)},
        "search_ratio": _median([a / b for a, b in zip(search_fast, search_slow, strict=True)]),
        "knn_ms": {"topk": 1e3 * _median(knn_fast), "full_sort": 1e3 * _median(knn_slow)},
        "knn_ratio": _median([a / b for a, b in zip(knn_fast, knn_slow, strict=True)]),
        "target_search_ratio": 0.5,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.knn", description=__doc__)
    parser.add_argument("--tiny", action="store_true", help="smoke run (sizes of no meaning)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--json", type=Path, default=None, help="also write the report here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    sizes = (60, 200, 16, 5) if args.tiny else (1250, 3750, 128, 20)
    report = run(*sizes, rounds=2 if args.tiny else args.rounds)
    print(
        f"k-NN neighbours of {sizes[0]} x {sizes[1]} similarities, k {sizes[3]}: "
        f"topk {report['search_ms']['topk']:.1f} ms, full sort "
        f"{report['search_ms']['full_sort']:.1f} ms, ratio {report['search_ratio']:.3f} "
        f"(target < {report['target_search_ratio']}); whole knn_accuracy "
        f"{report['knn_ms']['topk']:.1f} against {report['knn_ms']['full_sort']:.1f} ms, "
        f"ratio {report['knn_ratio']:.3f}"
    )
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
