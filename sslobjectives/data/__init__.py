"""Data: bundled and procedural image datasets, user folders/arrays, multi-crop views.

- :mod:`~sslobjectives.data.dataset`: :class:`ImageDataset` and its recorded split;
- :mod:`~sslobjectives.data.shapes`: the procedural shapes (:func:`make_shapes`);
- :mod:`~sslobjectives.data.files`: ``.npz`` arrays and image folders;
- :mod:`~sslobjectives.data.sources`: :data:`SOURCES`, one entry per named dataset with its
  loader and default augmentation; :func:`load_dataset` and :func:`default_augment`;
- :mod:`~sslobjectives.data.augment`: :class:`MultiCropAugment`.

>>> import torch
>>> from sslobjectives.data import default_augment, load_dataset
>>> ds = load_dataset("digits", seed=0)
>>> views = default_augment(ds)(ds.x_train[:4], torch.Generator().manual_seed(0))
>>> len(views), tuple(views[0].shape)
(2, (4, 1, 8, 8))
"""

from .augment import MultiCropAugment
from .dataset import DataError, ImageDataset
from .shapes import (
    SHAPE_FACTOR_RANGES,
    SHAPE_NAMES,
    SHAPES_COLOUR_OPTIONS,
    SHAPES_HARD_OPTIONS,
    make_shapes,
)
from .sources import (
    DATASET_NAMES,
    SOURCES,
    Source,
    augment_settings,
    default_augment,
    load_dataset,
)

__all__ = [
    "DATASET_NAMES",
    "SHAPE_FACTOR_RANGES",
    "SHAPE_NAMES",
    "SHAPES_COLOUR_OPTIONS",
    "SHAPES_HARD_OPTIONS",
    "SOURCES",
    "DataError",
    "ImageDataset",
    "MultiCropAugment",
    "Source",
    "augment_settings",
    "default_augment",
    "load_dataset",
    "make_shapes",
]
