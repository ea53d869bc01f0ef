"""Baselines of a comparison: the floor and the ceiling every result is read against.

A comparison of objectives means something only next to what the same split gives without
them (DESIGN.md, "When a comparison means something"):

- ``baseline: raw``: the flattened pixels; ``baseline: raw-centred``: the same, minus the
  training images' mean. Deterministic (no seed), so they carry no confidence interval;
- ``baseline: untrained``: the run's backbone at its initialisation (same architecture,
  same init seed), its features extracted exactly like a trained run's teacher
  (:func:`sslobjectives.eval.run.extract`, eval mode), one value per seed of the runs;
  ``baseline: untrained-centred``: the same features minus their training mean. A CNN's
  ReLU + average-pooling features share one direction, which dominates the cosine of the
  k-NN: on the testbed centring alone lifts the untrained k-NN from 0.69 to 0.86
  (docs/TESTBED.md, "The untrained backbone, centred");
- ``reference: supervised``: the same backbone and views trained with cross-entropy on the
  labels (a linear classifier on the features, every view of the batch) with the run's
  optimiser, schedules, clipping and number of steps: the ceiling of the budget.

Every row has the table's metrics (k-NN, linear probe, retrieval mAP on the backbone
features of the test split). Each value is computed once and cached as a small JSON file in
``<results dir>/baselines/``, named by a hash of exactly what determines it (the data and
split, plus the backbone and init seed, plus for the supervised one the views and the
optimisation budget), so a comparison, a sweep collection and a report share them.

:func:`gate` says whether a group has *learned*: its k-NN and linear probe above the raw
input and the untrained backbone (each in either form) with disjoint 95% CIs.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sslobjectives.data import default_augment
from sslobjectives.eval.metrics import evaluate_representation
from sslobjectives.eval.run import extract
from sslobjectives.schedules import RunSchedules
from sslobjectives.train.clipping import clip_gradients
from sslobjectives.train.config import RunConfig
from sslobjectives.train.rundir import write_json_atomic

#: Row labels, in table order.
RAW, RAW_CENTRED, UNTRAINED, UNTRAINED_CENTRED, SUPERVISED = (
    "baseline: raw",
    "baseline: raw-centred",
    "baseline: untrained",
    "baseline: untrained-centred",
    "reference: supervised",
)
BASELINE_LABELS = (RAW, RAW_CENTRED, UNTRAINED, UNTRAINED_CENTRED, SUPERVISED)
#: What the rows report: the table's feature metrics.
METRICS = ("knn", "linear", "map")
#: A group has learned when it beats these (raw pixels and the untrained backbone, each as
#: it is and centred) on these metrics.
GATE_BASELINES = (RAW, RAW_CENTRED, UNTRAINED, UNTRAINED_CENTRED)
GATE_METRICS = ("knn", "linear")
#: Bumped when a baseline's procedure changes, so cached values are recomputed.
VERSION = 1

_DATA_KEYS = ("dataset", "dataset_kwargs", "data_seed", "knn_k")
_INIT_KEYS = ("backbone", "backbone_kwargs", "seed")
_BUDGET_KEYS = (
    "augment",
    "n_local",
    "epochs",
    "batch_size",
    "lr",
    "min_lr",
    "warmup_epochs",
    "weight_decay",
    "weight_decay_end",
    "clip_grad",
    "clip_mode",
)


def cache_key(kind: str, config: RunConfig) -> dict[str, Any]:
    """Everything that determines the baseline ``kind`` (``raw``, ``untrained``,
    ``untrained_centred`` or ``supervised``) of runs of ``config``."""
    init = _DATA_KEYS + _INIT_KEYS
    keys = {"raw": _DATA_KEYS, "untrained": init, "untrained_centred": init}.get(
        kind, init + _BUDGET_KEYS
    )
    d = config.to_dict()
    return {"kind": kind, "version": VERSION, **{k: d[k] for k in keys}}


def _digest(key: dict[str, Any]) -> str:
    blob = json.dumps(key, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def feature_metrics(f_tr, y_tr, f_te, y_te, k: int) -> dict[str, float]:
    """k-NN, linear probe and mAP of features, exactly as a run's final evaluation."""
    m = evaluate_representation(f_tr, y_tr, f_te, y_te, k=k)
    return {name: float(m[name]) for name in METRICS}


def raw_metrics(config: RunConfig) -> dict[str, dict[str, float]]:
    """``{RAW: ..., RAW_CENTRED: ...}``: the flattened pixels, and minus the train mean."""
    from sslobjectives.train.trainer import dataset_for

    data = dataset_for(config)
    x_tr, x_te = data.x_train.flatten(1), data.x_test.flatten(1)
    mean = x_tr.mean(0, keepdim=True)
    return {
        RAW: feature_metrics(x_tr, data.y_train, x_te, data.y_test, config.knn_k),
        RAW_CENTRED: feature_metrics(
            x_tr - mean, data.y_train, x_te - mean, data.y_test, config.knn_k
        ),
    }


def _student(config: RunConfig):
    from sslobjectives.train.trainer import build_run_student, dataset_for

    # the backbone's init does not depend on the head (it is drawn first), so a small
    # embedding head keeps this cheap and gives the run's initial backbone
    small = config.replace(objective="simdino", objective_cfg={}, head_kwargs={})
    return build_run_student(small, dataset_for(config), "embedding")


def untrained_metrics(config: RunConfig, centred: bool = False) -> dict[str, float]:
    """The backbone a run of ``config`` starts from, evaluated before any step (``centred``:
    its features minus their training mean, for every metric)."""
    from sslobjectives.train.trainer import dataset_for

    data = dataset_for(config)
    model = _student(config)
    device = torch.device("cpu")
    f_tr, _ = extract(model, data.x_train, device)
    f_te, _ = extract(model, data.x_test, device)
    if centred:
        mean = f_tr.mean(0, keepdim=True)
        f_tr, f_te = f_tr - mean, f_te - mean
    return feature_metrics(f_tr, data.y_train, f_te, data.y_test, config.knn_k)


def untrained_centred_metrics(config: RunConfig) -> dict[str, float]:
    """:func:`untrained_metrics` with centred features."""
    return untrained_metrics(config, centred=True)


def supervised_metrics(config: RunConfig) -> dict[str, float]:
    """The run's backbone and views trained with labels for the run's number of steps."""
    from sslobjectives.train.trainer import _generator, _param_groups, dataset_for

    data = dataset_for(config)
    if data.num_classes is None:
        raise ValueError(f"dataset {config.dataset!r} has no labels: no supervised reference")
    student = _student(config)
    model = nn.Sequential(student.backbone, nn.Linear(student.backbone.out_dim, data.num_classes))
    augment = default_augment(data, n_local=config.n_local, overrides=config.augment)
    optimizer = torch.optim.AdamW(_param_groups(model), lr=config.lr)
    steps = data.x_train.shape[0] // config.batch_size
    if steps < 1:
        raise ValueError(f"batch_size {config.batch_size} exceeds the training images")
    schedules = RunSchedules.for_run(config, steps)
    cpu = torch.device("cpu")
    model.train()
    for epoch in range(config.epochs):
        order = torch.randperm(
            data.x_train.shape[0], generator=_generator(config.seed, epoch, 0, cpu)
        )
        g_aug = _generator(config.seed, epoch, 1, cpu)
        for it in range(steps):
            step = epoch * steps + it
            for i, group in enumerate(optimizer.param_groups):
                group["lr"] = schedules.lr[step]
                if i == 0:
                    group["weight_decay"] = schedules.weight_decay[step]
            idx = order[it * config.batch_size : (it + 1) * config.batch_size]
            views = augment(data.x_train[idx], g_aug)
            y = data.y_train[idx]
            loss = sum(nn.functional.cross_entropy(model(v), y) for v in views) / len(views)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.clip_grad > 0:
                clip_gradients(model.parameters(), config.clip_grad, config.clip_mode)
            optimizer.step()
    f_tr, _ = extract(student, data.x_train, cpu)
    f_te, _ = extract(student, data.x_test, cpu)
    return feature_metrics(f_tr, data.y_train, f_te, data.y_test, config.knn_k)


_COMPUTE = {
    "raw": raw_metrics,
    "untrained": untrained_metrics,
    "untrained_centred": untrained_centred_metrics,
    "supervised": supervised_metrics,
}


def _cache_path(kind: str, config: RunConfig, cache_dir: str | Path) -> Path:
    return Path(cache_dir) / "baselines" / f"{kind}-{_digest(cache_key(kind, config))}.json"


def cached(kind: str, config: RunConfig, cache_dir: str | Path) -> Any:
    """The baseline ``kind`` of ``config``, read from ``cache_dir/baselines/`` or computed and
    written there (``<kind>-<hash>.json`` holding the key and the metrics)."""
    key = cache_key(kind, config)
    path = _cache_path(kind, config, cache_dir)
    if path.is_file():
        try:
            stored = json.loads(path.read_text())
            if stored.get("key") == json.loads(json.dumps(key, default=str)):
                return stored["metrics"]
        except (OSError, ValueError):
            pass  # unreadable: recompute and overwrite
    metrics = _COMPUTE[kind](config)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, {"key": key, "metrics": metrics})
    return metrics


def _compute_in_worker(kind: str, config: dict[str, Any], cache_dir: str) -> None:
    torch.set_num_threads(1)  # one core per worker, like the runs of a local pool
    cached(kind, RunConfig.from_dict(config), cache_dir)


def prefill(
    config: RunConfig,
    seeds: Iterable[int],
    cache_dir: str | Path,
    jobs: int = 1,
    supervised: bool = True,
) -> int:
    """Compute the untrained (as is and centred) and supervised baselines of ``seeds`` missing
    from the cache in ``jobs`` processes at once, so that :func:`baseline_rows` then only
    reads them; return how many were computed. The supervised reference trains a model per
    seed (about 100 s on the testbed): one after another they left a core of a 2-worker pool
    idle. The cache is the same as :func:`cached`'s, each entry written atomically by its own
    process."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    kinds = ["untrained", "untrained_centred"] + (["supervised"] if supervised else [])
    todo = [
        (kind, config.replace(seed=s).to_dict(), str(cache_dir))
        for kind in kinds
        for s in sorted(set(seeds))
        if not _cache_path(kind, config.replace(seed=s), cache_dir).is_file()
    ]
    if jobs <= 1 or len(todo) <= 1:
        return 0  # baseline_rows computes them where it reads them
    ctx = multiprocessing.get_context("spawn")  # no forked torch thread pools
    with ProcessPoolExecutor(min(jobs, len(todo)), mp_context=ctx) as pool:
        for future in [pool.submit(_compute_in_worker, *job) for job in todo]:
            future.result()  # a failure is raised here, naming its cause
    return len(todo)


def _mean_ci(values: Sequence[float]) -> tuple[float, float]:
    from sslobjectives.results import mean_ci

    return mean_ci(values)


def baseline_rows(
    config: RunConfig, seeds: Iterable[int], cache_dir: str | Path, supervised: bool = True
) -> list[dict[str, Any]]:
    """The labelled rows of the runs of ``config`` over ``seeds``: raw and raw-centred (one
    deterministic value each: ``n`` 1, ``<metric>_ci`` None), untrained and supervised (mean
    and 95% CI over ``seeds``, like a group of runs). ``supervised=False`` leaves out the
    reference (it trains one model per seed)."""
    seeds = sorted(set(seeds))
    rows: list[dict[str, Any]] = []
    for label, metrics in cached("raw", config, cache_dir).items():
        row: dict[str, Any] = {"baseline": label, "n": 1, "deterministic": True}
        for m in METRICS:
            row[m], row[f"{m}_ci"] = metrics[m], None
        rows.append(row)
    kinds = [("untrained", UNTRAINED), ("untrained_centred", UNTRAINED_CENTRED)]
    kinds += [("supervised", SUPERVISED)] if supervised else []
    for kind, label in kinds:
        per_seed = [cached(kind, config.replace(seed=s), cache_dir) for s in seeds]
        row = {"baseline": label, "n": len(per_seed), "deterministic": False}
        for m in METRICS:
            row[m], row[f"{m}_ci"] = _mean_ci([p[m] for p in per_seed])
        rows.append(row)
    return rows


def _interval(row: dict[str, Any], metric: str) -> tuple[float, float] | None:
    value = row.get(metric)
    if not isinstance(value, int | float) or not math.isfinite(value):
        return None
    half = row.get(f"{metric}_ci") or 0.0
    return value - half, value + half


def gate(row: dict[str, Any], baselines: Sequence[dict[str, Any]]) -> list[str]:
    """What the group ``row`` (mean and ``_ci`` per metric) does not beat: ``"<baseline>
    (<metric>)"`` for each gate baseline and metric where its 95% CI is not wholly above the
    baseline's (the raw rows are exact values); empty when the group has learned. A group
    of one run has a zero-width CI, and so can pass only by its value.

    >>> raw = {"baseline": RAW, "knn": 0.9, "knn_ci": None, "linear": 0.8, "linear_ci": None}
    >>> gate({"knn": 0.95, "knn_ci": 0.01, "linear": 0.85, "linear_ci": 0.01}, [raw])
    []
    >>> gate({"knn": 0.91, "knn_ci": 0.02, "linear": 0.85, "linear_ci": 0.01}, [raw])
    ['baseline: raw (knn)']
    """
    missing = []
    for base in baselines:
        if base.get("baseline") not in GATE_BASELINES:
            continue
        for m in GATE_METRICS:
            ours, theirs = _interval(row, m), _interval(base, m)
            if theirs is None:
                continue
            if ours is None or ours[0] <= theirs[1]:
                missing.append(f"{base['baseline']} ({m})")
    return missing


def learned(row: dict[str, Any], baselines: Sequence[dict[str, Any]]) -> bool:
    """Whether the group ``row`` beats every gate baseline (:func:`gate` is empty)."""
    return not gate(row, baselines)
