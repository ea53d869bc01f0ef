"""Data: bundled and procedural image datasets, user folders/arrays, multi-crop views.

>>> import torch
>>> from sslobjectives.data import default_augment, load_dataset
>>> ds = load_dataset("digits", seed=0)
>>> views = default_augment(ds)(ds.x_train[:4], torch.Generator().manual_seed(0))
>>> len(views), tuple(views[0].shape)
(2, (4, 1, 8, 8))
"""

from .augment import MultiCropAugment, default_augment
from .datasets import (
    DATASET_NAMES,
    SHAPE_FACTOR_RANGES,
    SHAPE_NAMES,
    ImageDataset,
    load_dataset,
    make_shapes,
)

__all__ = [
    "DATASET_NAMES",
    "SHAPE_FACTOR_RANGES",
    "SHAPE_NAMES",
    "ImageDataset",
    "MultiCropAugment",
    "default_augment",
    "load_dataset",
    "make_shapes",
]
