"""The data a run reads, and its check before any run starts.

:func:`check_data` loads every distinct dataset of a plan once, in the parent process, and
checks it against each run (backbone, evaluation set), so a data problem is one line (a
:class:`~sslobjectives.data.DataError`) before any progress bar, not a traceback from a
worker minutes later. Loads are cached per process: in-process runs reuse them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import lru_cache

from sslobjectives.data import DataError, ImageDataset, load_dataset
from sslobjectives.train.config import RunConfig


@lru_cache(maxsize=8)
def _cached_dataset(name: str, data_seed: int, kwargs_json: str) -> ImageDataset:
    return load_dataset(name, seed=data_seed, **json.loads(kwargs_json))


def dataset_for(config: RunConfig) -> ImageDataset:
    """The run's dataset (cached in-process: a comparison loads it once)."""
    kwargs = json.dumps(config.dataset_kwargs, sort_keys=True)
    return _cached_dataset(config.dataset, config.data_seed, kwargs)


def eval_dataset_for(config: RunConfig, data: ImageDataset) -> ImageDataset:
    """Where the run's features are evaluated: ``eval_dataset`` when set (it must be labelled
    and hold samples of the training data's shape), else the training data's own test split
    (which may be unlabelled: then only label-free diagnostics are computed)."""
    if not config.eval_dataset:
        return data
    ev = _cached_dataset(config.eval_dataset, config.data_seed, "{}")
    if ev.y_train is None:
        raise DataError(
            f"{config.eval_dataset}: the evaluation set has no labels; save them under "
            "y, Y or labels (an image folder labels by sub-folder)"
        )
    if ev.sample_shape != data.sample_shape:
        raise DataError(
            f"{config.eval_dataset}: evaluation samples have shape {ev.sample_shape}, the "
            f"training data {config.dataset} has {data.sample_shape}; give an evaluation set "
            "of the same shape"
        )
    return ev


def check_data(configs: Iterable[RunConfig]) -> list[str]:
    """Load and check every run's data once; raise the first :class:`DataError`, else return
    the notes to print once (each min-max scaling applied, each run without labels)."""
    notes: dict[str, str] = {}
    for config in configs:
        data = dataset_for(config)
        data.check_backbone(config.backbone, config.dataset)
        ev = eval_dataset_for(config, data)
        for source, ds in {config.dataset: data, config.eval_dataset or config.dataset: ev}.items():
            if ds.scaling is not None:
                notes[source] = (
                    f"{source}: values in {ds.scaling['min']:.4g}..{ds.scaling['max']:.4g} "
                    "scaled min-max to [0, 1] (recorded in result.json)"
                )
        if ev.y_train is None:
            notes[f"{config.dataset} unlabelled"] = (
                f"{config.dataset}: no labels; runs report label-free diagnostics only "
                "(give a labelled evaluation set with --eval-dataset for k-NN and probes)"
            )
    return list(notes.values())
