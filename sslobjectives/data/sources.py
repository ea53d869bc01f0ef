"""Dataset sources: one table, each named source with its loader and default augmentation.

Every loader returns an :class:`ImageDataset` whose images are float32 tensors
``(N, C, H, W)`` in ``[0, 1]`` and whose ``split`` records exactly which train/test split
was used (seed, sizes and a hash of the train indices), so a result file can name its data.

Sources, chosen by ``load_dataset(name)``:

- ``"digits"``: scikit-learn's bundled 8x8 handwritten digits (1797 images, no download).
- ``"shapes-hard"``: :func:`make_shapes` with wide nuisance ranges (``SHAPES_HARD_OPTIONS``).
- ``"shapes-colour"``: ``shapes-hard``'s shapes, white on a background of its own random hue
  per image (``SHAPES_COLOUR_OPTIONS``), with colour-distorted views; the testbed of
  ``sslobj compare`` (docs/TESTBED.md, "Colour").
- ``"shapes"``: :func:`make_shapes`, grayscale shapes whose generative factors (class, scale,
  position, rotation, intensity, noise) are known, to test what a representation encodes
  (BITS, arXiv 2602.09764, reports bits that track attributes shared across classes).
- a path to an ``.npz`` file with images (or ``(N, D)`` vectors) under ``x``, ``X`` or
  ``images`` (and optionally labels under ``y``, ``Y`` or ``labels``, ``factors``,
  ``factor_names``); floats outside ``[0, 1]`` are scaled min-max over the file;
- a path to a folder with one sub-folder of images per class (read with Pillow).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from sslobjectives.data.augment import MultiCropAugment
from sslobjectives.data.dataset import DataError, ImageDataset, _make_dataset, _reject_unknown
from sslobjectives.data.files import _load_folder, _load_npz
from sslobjectives.data.shapes import (
    SHAPE_FACTOR_RANGES,
    SHAPE_NAMES,
    SHAPES_COLOUR_OPTIONS,
    SHAPES_HARD_OPTIONS,
    make_shapes,
)
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


def _load_shapes_source(
    seed: int, test_fraction: float, kwargs: dict[str, Any], *, name: str = "shapes"
) -> ImageDataset:
    options = dict(SOURCES[name].options)
    _reject_unknown(kwargs, ("n", "size", *SHAPE_FACTOR_RANGES), name)
    options.update(kwargs)
    x, y, factors, names = make_shapes(seed=seed, **options)
    return _make_dataset(name, x, y, factors, names, seed, test_fraction, SHAPE_NAMES)


def _load_shapes_hard_source(
    seed: int, test_fraction: float, kwargs: dict[str, Any]
) -> ImageDataset:
    return _load_shapes_source(seed, test_fraction, kwargs, name="shapes-hard")


def _load_shapes_colour_source(
    seed: int, test_fraction: float, kwargs: dict[str, Any]
) -> ImageDataset:
    options = dict(SOURCES["shapes-colour"].options)
    _reject_unknown(kwargs, ("n", "size", *SHAPE_FACTOR_RANGES), "shapes-colour")
    options.update(kwargs)
    x, y, factors, names = make_shapes(seed=seed, colour=True, **options)
    return _make_dataset("shapes-colour", x, y, factors, names, seed, test_fraction, SHAPE_NAMES)


#: Settings every source's augmentation starts from: global views at the image size, local
#: views at half of it, flips on, no blur, noise or rotation (the generic augmentation).
GENERIC_AUGMENT: dict[str, Any] = {}


#: ``(N, D)`` vectors (1x1 images of D channels): no crop or flip has a meaning, so a view is
#: the vector rescaled by a random factor plus Gaussian noise.
VECTOR_AUGMENT: dict[str, Any] = {
    "global_size": 1,
    "local_size": 1,
    "global_scale": (1.0, 1.0),
    "local_scale": (1.0, 1.0),
    "ratio": (1.0, 1.0),
    "flip": False,
    "brightness": 0.2,
    "contrast": 0.0,
    "noise_std": 0.05,
}


@dataclass(frozen=True)
class Source:
    """A named dataset source.

    Attributes:
        load: ``load(seed, test_fraction, options) -> ImageDataset``.
        augment: the :class:`MultiCropAugment` settings its images need, as data (keys of
            ``MultiCropAugment``; the view sizes follow the image size unless given).
        options: the loader's default options (what ``load_dataset(name)`` uses when the
            caller sets none).
    """

    load: Callable[[int, float, dict[str, Any]], ImageDataset]
    augment: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)


_SHAPES_AUGMENT: dict[str, Any] = {
    "global_scale": (0.4, 1.0),
    "local_scale": (0.1, 0.4),
    "flip": True,
    "blur_prob": 0.5,
    "blur_sigma": (0.1, 1.5),
    "noise_std": 0.02,
}

#: Every named source; a new dataset is one entry (its loader, default augmentation and
#: loader options).
SOURCES: dict[str, Source] = {
    # digits are not mirror-symmetric: no flips; mild jitter, light blur
    "digits": Source(
        _load_digits_source,
        augment={
            "global_scale": (0.5, 1.0),
            "local_scale": (0.2, 0.5),
            "flip": False,
            "brightness": 0.3,
            "contrast": 0.3,
            "blur_prob": 0.2,
            "blur_sigma": (0.1, 0.6),
            "noise_std": 0.02,
        },
    ),
    "shapes": Source(_load_shapes_source, _SHAPES_AUGMENT, {"n": 5000, "size": 32}),
    # shapes whose nuisance factors are wide enough that pixels do not solve the class; its
    # views rotate (the class is rotation-invariant and the data turns a full turn) and are
    # not blurred (on 16 px shapes the supervised reference reached k-NN 0.881 with blur
    # and local views, 0.919 without either; docs/TESTBED.md)
    "shapes-hard": Source(
        _load_shapes_hard_source,
        {**_SHAPES_AUGMENT, "blur_prob": 0.0, "rotation": 180.0},
        SHAPES_HARD_OPTIONS,
    ),
    # shapes-hard in colour: its views add SimCLR's colour distortion (arXiv 2002.05709:
    # jitter with saturation and hue, grayscale with probability 0.2), without which two
    # views of an image share their colours and colour alone tells the images apart
    "shapes-colour": Source(
        _load_shapes_colour_source,
        {
            **_SHAPES_AUGMENT,
            "blur_prob": 0.0,
            "rotation": 180.0,
            "saturation": 0.8,
            "hue": 0.5,
            "grayscale_prob": 0.2,
        },
        SHAPES_COLOUR_OPTIONS,
    ),
}
DATASET_NAMES = tuple(SOURCES)


def load_dataset(
    name: str, seed: int = 0, test_fraction: float = 0.25, **kwargs: Any
) -> ImageDataset:
    """Load a dataset by name or path and split it into train and test.

    The split is stratified by class when labels exist, fixed by ``seed`` and recorded in
    ``ImageDataset.split`` together with a hash of the train indices.

    Args:
        name: ``"digits"``, ``"shapes"``, ``"shapes-hard"``, a path to an ``.npz`` file or
            to an image folder.
        seed: seed of the split (and, for ``"shapes"``, of the generator).
        test_fraction: fraction of each class held out for testing, in ``(0, 1)``.
        **kwargs: per source —
            ``"shapes"``: ``n`` (default 5000), ``size`` (default 32) and factor ranges of
            :func:`make_shapes`; ``"shapes-hard"``: the same options, defaults
            ``SHAPES_HARD_OPTIONS``;
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
        return dataclasses.replace(SOURCES[name].load(seed, test_fraction, kwargs), source=name)

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


def augment_settings(
    source: str,
    image_size: int,
    n_local: int = 0,
    overrides: dict[str, Any] | None = None,
    vectors: bool = False,
) -> dict[str, Any]:
    """The resolved :class:`MultiCropAugment` settings of a run: the source's defaults
    (``SOURCES[source].augment``; the generic ones for a user's file or folder;
    ``VECTOR_AUGMENT`` for ``(N, D)`` vectors), the view sizes of ``image_size``, ``n_local``,
    then ``overrides`` (keys of ``MultiCropAugment``; an unknown key is an error naming the
    nearest valid one).

    >>> s = augment_settings("digits", 8, 2, {"rotation": 90})
    >>> s["global_size"], s["flip"], s["rotation"], s["n_local"]
    (8, False, 90, 2)
    """
    valid = [f.name for f in dataclasses.fields(MultiCropAugment)]
    overrides = dict(overrides or {})
    unknown = [k for k in overrides if k not in valid]
    if unknown:
        raise ValueError(
            "augment: "
            + "; ".join(f"unknown setting {k!r}{did_you_mean(k, valid)}" for k in unknown)
            + f"; valid: {', '.join(valid)}"
        )
    settings = dataclasses.asdict(MultiCropAugment())
    settings.update(global_size=image_size, local_size=max(2, image_size // 2), n_local=n_local)
    base = SOURCES[source].augment if source in SOURCES else GENERIC_AUGMENT
    if vectors:  # (N, D) vectors, whatever their source
        base = VECTOR_AUGMENT
    settings.update(base)
    # JSON and --set give lists where the dataclass holds (low, high) tuples
    settings.update({k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()})
    return settings


def default_augment(
    dataset: ImageDataset, n_local: int = 0, overrides: dict[str, Any] | None = None
) -> MultiCropAugment:
    """Augmentation settings suited to ``dataset``, chosen by its source (``SOURCES``), with
    ``overrides`` on top (:func:`augment_settings`).

    - ``digits`` (8x8): global views 8x8 at area 0.5-1, local views 4x4 at area 0.2-0.5, no
      flips (digits are not mirror-symmetric), mild jitter, light blur (sigma 0.1-0.6),
      noise 0.02.
    - ``shapes`` (32x32): global 32x32 at area 0.4-1, local 16x16 at area 0.1-0.4, flips,
      jitter, blur with probability 0.5 (sigma 0.1-1.5), noise 0.02.
    - ``shapes-hard`` (16x16): as ``shapes`` but rotations up to 180 degrees either way and
      no blur.
    - ``shapes-colour`` (16x16 RGB): as ``shapes-hard`` plus SimCLR's colour distortion
      (with the jitter: saturation 0.8, any hue; grayscale with probability 0.2).
    - anything else (a user's ``.npz`` or folder, whatever its name): global = image size,
      local = half of it, flips on, no blur or noise.
    - ``(N, D)`` vectors: the vector scaled by a factor in 0.8-1.2 plus noise 0.05.

    Example:
        >>> from sslobjectives.data import load_dataset
        >>> aug = default_augment(load_dataset("digits"), n_local=2)
        >>> aug.global_size, aug.local_size, aug.flip
        (8, 4, False)
    """
    settings = augment_settings(
        dataset.source, dataset.image_size, n_local, overrides, vectors=dataset.vectors
    )
    return MultiCropAugment(**settings)
