"""Dataset sources: one table, each named source with its loader and default augmentation.

Every loader returns an :class:`ImageDataset` whose images are float32 tensors
``(N, C, H, W)`` in ``[0, 1]`` and whose ``split`` records exactly which train/test split
was used (seed, sizes and a hash of the train indices), so a result file can name its data.

Sources, chosen by ``load_dataset(name)``:

- ``"digits"``: scikit-learn's bundled 8x8 handwritten digits (1797 images, no download).
- ``"shapes"``: :func:`make_shapes`, grayscale shapes whose generative factors (class, scale,
  position, rotation, intensity, noise) are known, to test what a representation encodes
  (BITS, arXiv 2602.09764, reports bits that track attributes shared across classes).
- a path to an ``.npz`` file with images (or ``(N, D)`` vectors) under ``x``, ``X`` or
  ``images`` (and optionally labels under ``y``, ``Y`` or ``labels``, ``factors``,
  ``factor_names``); floats outside ``[0, 1]`` are scaled min-max over the file;
- a path to a folder with one sub-folder of images per class (read with Pillow).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from sslobjectives.data.augment import MultiCropAugment
from sslobjectives.data.dataset import DataError, ImageDataset, _make_dataset, _reject_unknown
from sslobjectives.data.files import _load_folder, _load_npz
from sslobjectives.data.shapes import SHAPE_FACTOR_RANGES, SHAPE_NAMES, make_shapes
from sslobjectives.suggest import did_you_mean


def _load_digits() -> tuple[Tensor, Tensor]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.from_numpy(bunch.images.astype(np.float32) / 16.0)[:, None]
    return x, torch.from_numpy(bunch.target.astype(np.int64))


def _load_digits_source(seed: int, test_fraction: float, kwargs: dict[str, Any]) -> ImageDataset:
    _reject_unknown(kwargs, (), "digits")
    x, y = _load_digits()
    return _make_dataset("digits", x, y, None, (), seed, test_fraction, tuple("0123456789"))


def _load_shapes_source(seed: int, test_fraction: float, kwargs: dict[str, Any]) -> ImageDataset:
    options = {"n": 5000, "size": 32}
    _reject_unknown(kwargs, (*options, *SHAPE_FACTOR_RANGES), "shapes")
    options.update(kwargs)
    x, y, factors, names = make_shapes(seed=seed, **options)
    return _make_dataset("shapes", x, y, factors, names, seed, test_fraction, SHAPE_NAMES)


def _digits_augment(size: int, n_local: int) -> MultiCropAugment:
    return MultiCropAugment(
        global_size=size,
        local_size=max(2, size // 2),
        n_local=n_local,
        global_scale=(0.5, 1.0),
        local_scale=(0.2, 0.5),
        flip=False,
        brightness=0.3,
        contrast=0.3,
        blur_prob=0.2,
        blur_sigma=(0.1, 0.6),
        noise_std=0.02,
    )


def _shapes_augment(size: int, n_local: int) -> MultiCropAugment:
    return MultiCropAugment(
        global_size=size,
        local_size=max(2, size // 2),
        n_local=n_local,
        global_scale=(0.4, 1.0),
        local_scale=(0.1, 0.4),
        flip=True,
        blur_prob=0.5,
        blur_sigma=(0.1, 1.5),
        noise_std=0.02,
    )


def _generic_augment(size: int, n_local: int) -> MultiCropAugment:
    """Any other source: global = image size, local = half of it, flips on, no blur or noise."""
    return MultiCropAugment(global_size=size, local_size=max(2, size // 2), n_local=n_local)


def _vector_augment(size: int, n_local: int) -> MultiCropAugment:
    """``(N, D)`` vectors (1x1 images of D channels): no crop or flip has a meaning, so a view
    is the vector rescaled by a random factor plus Gaussian noise."""
    return MultiCropAugment(
        global_size=1,
        local_size=1,
        n_local=n_local,
        global_scale=(1.0, 1.0),
        local_scale=(1.0, 1.0),
        ratio=(1.0, 1.0),
        flip=False,
        brightness=0.2,
        contrast=0.0,
        noise_std=0.05,
    )


@dataclass(frozen=True)
class Source:
    """A named dataset source: ``load(seed, test_fraction, options)`` and the augmentation its
    images need, ``augment(image_size, n_local)``."""

    load: Callable[[int, float, dict[str, Any]], ImageDataset]
    augment: Callable[[int, int], MultiCropAugment]


#: Every named source; a new dataset is one entry (its loader and default augmentation).
SOURCES: dict[str, Source] = {
    "digits": Source(_load_digits_source, _digits_augment),
    "shapes": Source(_load_shapes_source, _shapes_augment),
}
DATASET_NAMES = tuple(SOURCES)


def load_dataset(
    name: str, seed: int = 0, test_fraction: float = 0.25, **kwargs: Any
) -> ImageDataset:
    """Load a dataset by name or path and split it into train and test.

    The split is stratified by class when labels exist, fixed by ``seed`` and recorded in
    ``ImageDataset.split`` together with a hash of the train indices.

    Args:
        name: ``"digits"``, ``"shapes"``, a path to an ``.npz`` file or to an image folder.
        seed: seed of the split (and, for ``"shapes"``, of the generator).
        test_fraction: fraction of each class held out for testing, in ``(0, 1)``.
        **kwargs: per source —
            ``"shapes"``: ``n`` (default 5000), ``size`` (default 32) and factor ranges of
            :func:`make_shapes`;
            image folder: ``resize=(H, W)`` (or an int) resizes every image bilinearly
            (antialiased);
            without it, folders whose images differ in size are refused.
            ``"digits"`` and ``.npz`` take no options.

    Returns:
        an :class:`ImageDataset`.

    Folder layout: ``root/<class>/<image>``; classes are the sorted sub-folder names.
    Images are read as grayscale (``"L"``) unless any of them is colour, in which case all
    are read as ``"RGB"``. Every non-hidden file in a class folder must be a readable image;
    otherwise the error lists all unreadable files.

    Example:
        >>> ds = load_dataset("shapes", n=40, size=16, seed=3)
        >>> ds.split["n_train"], ds.split["n_test"], ds.image_size, ds.factor_names[0]
        (30, 10, 16, 'scale')
    """
    if name in SOURCES:
        return SOURCES[name].load(seed, test_fraction, kwargs)

    path = Path(name).expanduser()
    if path.is_file() and path.suffix == ".npz":
        _reject_unknown(kwargs, (), ".npz datasets")
        a = _load_npz(path)
        return _make_dataset(
            path.stem,
            a["x"],
            a["y"],
            a["factors"],
            a["factor_names"],
            seed,
            test_fraction,
            scaling=a["scaling"],
        )
    if path.is_dir():
        _reject_unknown(kwargs, ("resize",), "image folders")
        x, y, classes = _load_folder(path, kwargs.get("resize"))
        return _make_dataset(path.name, x, y, None, (), seed, test_fraction, classes)
    hint = did_you_mean(name, DATASET_NAMES)
    raise DataError(
        f"unknown dataset {name!r}{hint}; valid names: {list(DATASET_NAMES)}, "
        "or the path of an existing .npz file or image folder (one sub-folder per class)"
    )


def default_augment(dataset: ImageDataset, n_local: int = 0) -> MultiCropAugment:
    """Augmentation settings suited to ``dataset``.

    - ``digits`` (8x8): global views 8x8 at area 0.5-1, local views 4x4 at area 0.2-0.5, no
      flips (digits are not mirror-symmetric), mild jitter, light blur (sigma 0.1-0.6),
      noise 0.02.
    - ``shapes`` (32x32): global 32x32 at area 0.4-1, local 16x16 at area 0.1-0.4, flips,
      jitter, blur with probability 0.5 (sigma 0.1-1.5), noise 0.02.
    - anything else: global = image size, local = half of it, flips on, no blur or noise.
    - ``(N, D)`` vectors: the vector scaled by a factor in 0.8-1.2 plus noise 0.05.

    Example:
        >>> from sslobjectives.data import load_dataset
        >>> aug = default_augment(load_dataset("digits"), n_local=2)
        >>> aug.global_size, aug.local_size, aug.flip
        (8, 4, False)
    """
    source = SOURCES.get(dataset.name)
    make = source.augment if source is not None else _generic_augment
    if dataset.vectors:
        make = _vector_augment
    return make(dataset.image_size, n_local)
