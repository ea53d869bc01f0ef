"""The image dataset every loader returns, and its recorded train/test split.

Images are float32 tensors ``(N, C, H, W)`` in ``[0, 1]``; ``split`` records exactly which
train/test split was used (seed, sizes and a hash of the train indices), so a result file can
name its data.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from sslobjectives.suggest import did_you_mean


class DataError(ValueError):
    """A problem with the user's data, said in one line naming the file, the key and the fix;
    the commands print it without a traceback and exit with status 2 (as argparse does)."""


def _reject_unknown(kwargs: dict[str, Any], valid: Sequence[str], where: str) -> None:
    for key in kwargs:
        if key not in valid:
            raise ValueError(
                f"unknown option {key!r} for {where}{did_you_mean(key, valid)}; "
                f"valid options: {sorted(valid)}"
            )


@dataclass(frozen=True, eq=False)
class ImageDataset:
    """A train/test split of images, labels and (optionally) latent factors.

    Attributes:
        name: short name of the source (``"digits"``, ``"shapes"``, file or folder name).
        x_train, x_test: float32 images ``(N, C, H, W)`` with values in ``[0, 1]``.
        y_train, y_test: int64 class labels ``(N,)``, or ``None`` for unlabelled data.
        factors_train, factors_test: float32 latent factors ``(N, F)`` or ``None``.
        factor_names: names of the ``F`` factor columns.
        split: JSON-able record of the split: ``seed``, ``test_fraction``, ``n_train``,
            ``n_test``, ``stratified`` and ``train_hash`` (sha256 prefix of the sorted
            train indices into the source order).
        class_names: names of the classes, index = label (empty if unknown).
        scaling: the min-max scaling that brought the source's values to ``[0, 1]``
            (``{"method": "min-max", "min": ..., "max": ...}``), or ``None`` when none was
            needed. Recorded in ``result.json``.

    ``(N, D)`` vectors are held as ``D`` channels of 1x1 images (:attr:`vectors`); only the
    ``mlp`` backbone reads them (:meth:`check_backbone`).
        source: the named source it was loaded from (a key of ``SOURCES``), ``""`` for a
            user's file or folder, whatever its name: the default augmentation is chosen
            by the source, never by the file's name.

    Example:
        >>> from sslobjectives.data import load_dataset
        >>> ds = load_dataset("digits")
        >>> ds.x_train.shape[1:], ds.in_channels, ds.image_size, ds.num_classes
        (torch.Size([1, 8, 8]), 1, 8, 10)
    """

    name: str
    x_train: Tensor
    y_train: Tensor | None
    x_test: Tensor
    y_test: Tensor | None
    factors_train: Tensor | None = None
    factors_test: Tensor | None = None
    factor_names: tuple[str, ...] = ()
    split: dict[str, Any] = field(default_factory=dict)
    class_names: tuple[str, ...] = ()
    scaling: dict[str, Any] | None = None
    source: str = ""

    def __post_init__(self) -> None:
        for part in ("train", "test"):
            x = getattr(self, f"x_{part}")
            y = getattr(self, f"y_{part}")
            f = getattr(self, f"factors_{part}")
            if x.dim() != 4 or x.dtype != torch.float32:
                raise ValueError(
                    f"x_{part} must be float32 (N, C, H, W), got {x.dtype} {tuple(x.shape)}"
                )
            if y is not None and (y.shape != (x.shape[0],) or y.dtype != torch.int64):
                raise ValueError(
                    f"y_{part} must be int64 ({x.shape[0]},), got {y.dtype} {tuple(y.shape)}"
                )
            if f is not None and (f.dim() != 2 or f.shape[0] != x.shape[0]):
                raise ValueError(f"factors_{part} must be (N, F), got {tuple(f.shape)}")
            if f is not None and f.shape[1] != len(self.factor_names):
                raise ValueError(
                    f"factors_{part} has {f.shape[1]} columns but "
                    f"{len(self.factor_names)} factor_names"
                )
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise ValueError(
                f"train and test image shapes differ: {tuple(self.x_train.shape[1:])} "
                f"vs {tuple(self.x_test.shape[1:])}"
            )

    @property
    def in_channels(self) -> int:
        """Number of image channels ``C``."""
        return int(self.x_train.shape[1])

    @property
    def image_size(self) -> int:
        """Side length of the images (the longer side if they are not square)."""
        return int(max(self.x_train.shape[2], self.x_train.shape[3]))

    @property
    def vectors(self) -> bool:
        """True for ``(N, D)`` vectors (held as ``(N, D, 1, 1)``), not images."""
        return tuple(self.x_train.shape[2:]) == (1, 1)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """``(C, H, W)`` of one image, or ``(D,)`` of one vector."""
        shape = tuple(int(n) for n in self.x_train.shape[1:])
        return shape[:1] if self.vectors else shape

    def check_backbone(self, backbone: str, source: str = "") -> None:
        """Vectors train only with the ``mlp`` backbone; a :class:`DataError` (naming
        ``source``, the file, else :attr:`name`) otherwise."""
        if self.vectors and backbone != "mlp":
            raise DataError(
                f"{source or self.name}: (N, {self.in_channels}) vectors are not images, backbone "
                f"{backbone!r} cannot read them; use the mlp backbone (--backbone mlp)"
            )

    @property
    def num_classes(self) -> int | None:
        """``max(label) + 1`` over train and test, or ``None`` for unlabelled data."""
        if self.y_train is None:
            return None
        labels = [y for y in (self.y_train, self.y_test) if y is not None and y.numel()]
        return int(max(int(y.max()) for y in labels)) + 1


# ----------------------------------------------------------------------------- splits


def _split_indices(
    n: int, y: np.ndarray | None, seed: int, test_fraction: float
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Sorted train/test indices, stratified by ``y`` when labels exist."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    rng = np.random.default_rng(seed)
    test: list[np.ndarray] = []
    groups = [np.flatnonzero(y == c) for c in np.unique(y)] if y is not None else [np.arange(n)]
    for idx in groups:
        perm = rng.permutation(idx)
        test.append(perm[: int(round(test_fraction * len(idx)))])
    test_idx = np.sort(np.concatenate(test)) if test else np.zeros(0, dtype=np.int64)
    train_idx = np.setdiff1d(np.arange(n), test_idx)
    if len(train_idx) == 0 or len(test_idx) == 0:
        raise ValueError(
            f"split of {n} samples with test_fraction={test_fraction} leaves an empty "
            f"{'train' if len(train_idx) == 0 else 'test'} set"
        )
    digest = hashlib.sha256(train_idx.astype(np.int64).tobytes()).hexdigest()[:16]
    split = {
        "seed": int(seed),
        "test_fraction": float(test_fraction),
        "n_train": int(len(train_idx)),
        "n_test": int(len(test_idx)),
        "stratified": y is not None,
        "train_hash": digest,
    }
    return train_idx, test_idx, split


def _make_dataset(
    name: str,
    x: Tensor,
    y: Tensor | None,
    factors: Tensor | None,
    factor_names: tuple[str, ...],
    seed: int,
    test_fraction: float,
    class_names: tuple[str, ...] = (),
    scaling: dict[str, Any] | None = None,
) -> ImageDataset:
    labels = y.numpy() if y is not None else None
    train, test, split = _split_indices(len(x), labels, seed, test_fraction)
    tr, te = torch.from_numpy(train), torch.from_numpy(test)

    def pick(t: Tensor | None, idx: Tensor) -> Tensor | None:
        return None if t is None else t[idx].contiguous()

    return ImageDataset(
        name=name,
        x_train=x[tr].contiguous(),
        y_train=pick(y, tr),
        x_test=x[te].contiguous(),
        y_test=pick(y, te),
        factors_train=pick(factors, tr),
        factors_test=pick(factors, te),
        factor_names=factor_names,
        split=split,
        class_names=class_names,
        scaling=scaling,
    )
