"""Image datasets: bundled digits, procedural shapes with known latent factors, user data.

Every loader returns an :class:`ImageDataset` whose images are float32 tensors
``(N, C, H, W)`` in ``[0, 1]`` and whose ``split`` records exactly which train/test split
was used (seed, sizes and a hash of the train indices), so a result file can name its data.

Sources, chosen by ``load_dataset(name)``:

- ``"digits"``: scikit-learn's bundled 8x8 handwritten digits (1797 images, no download).
- ``"shapes"``: :func:`make_shapes`, grayscale shapes whose generative factors (class, scale,
  position, rotation, intensity, noise) are known, to test what a representation encodes
  (BITS, arXiv 2602.09764, reports bits that track attributes shared across classes).
- a path to an ``.npz`` file with key ``x`` (and optionally ``y``, ``factors``,
  ``factor_names``);
- a path to a folder with one sub-folder of images per class (read with Pillow).
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from sslobjectives.suggest import did_you_mean

__all__ = [
    "DATASET_NAMES",
    "SHAPE_FACTOR_RANGES",
    "SHAPE_NAMES",
    "ImageDataset",
    "load_dataset",
    "make_shapes",
]

DATASET_NAMES = ("digits", "shapes")
SHAPE_NAMES = ("square", "circle", "triangle", "cross", "ellipse")

# Rotation covers a quarter turn: a square or cross is symmetric under 90 degrees, so a
# wider range would make the rotation factor ambiguous. Position is the shape centre in
# image coordinates [-1, 1]; scale is the half-extent of the shape in the same units.
SHAPE_FACTOR_RANGES: dict[str, tuple[float, float]] = {
    "scale": (0.3, 0.6),
    "pos_x": (-0.3, 0.3),
    "pos_y": (-0.3, 0.3),
    "rotation": (0.0, math.pi / 2),
    "intensity": (0.6, 1.0),
    "noise": (0.0, 0.0),
}

_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm"}
_GRAY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "F"}


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

    Example:
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
    def num_classes(self) -> int | None:
        """``max(label) + 1`` over train and test, or ``None`` for unlabelled data."""
        if self.y_train is None:
            return None
        labels = [y for y in (self.y_train, self.y_test) if y is not None and y.numel()]
        return int(max(int(y.max()) for y in labels)) + 1


# ----------------------------------------------------------------------------- shapes


def _box_sdf(u: Tensor, v: Tensor, bx: float, by: float) -> Tensor:
    qx, qy = u.abs() - bx, v.abs() - by
    outside = torch.sqrt(qx.clamp(min=0) ** 2 + qy.clamp(min=0) ** 2)
    return outside + torch.maximum(qx, qy).clamp(max=0)


def _triangle_sdf(u: Tensor, v: Tensor) -> Tensor:
    # Exact signed distance to an equilateral triangle of circumradius 1 pointing up
    # (Inigo Quilez's formula), in image coordinates where y grows downwards.
    k = math.sqrt(3.0)
    r = k / 2  # half side, so the circumradius is 1
    px, py = u.abs() - r, -v + r / k
    fold = px + k * py > 0
    px, py = (
        torch.where(fold, (px - k * py) / 2, px),
        torch.where(fold, (-k * px - py) / 2, py),
    )
    px = px - px.clamp(-2 * r, 0)
    return -torch.sqrt(px**2 + py**2) * torch.sign(py)


def _ellipse_sdf(u: Tensor, v: Tensor) -> Tensor:
    # Approximate distance (exact on the axes) to an ellipse with semi-axes 1 and 0.5.
    return (torch.sqrt(u**2 + (v / 0.5) ** 2) - 1) * 0.5


def _cross_sdf(u: Tensor, v: Tensor) -> Tensor:
    return torch.minimum(_box_sdf(u, v, 1.0, 0.3), _box_sdf(u, v, 0.3, 1.0))


# Unit shapes in SHAPE_NAMES order: signed distance in units of the shape's scale.
_SHAPE_SDFS = (
    lambda u, v: _box_sdf(u, v, 0.8, 0.8),
    lambda u, v: torch.sqrt(u**2 + v**2) - 0.9,
    _triangle_sdf,
    _cross_sdf,
    _ellipse_sdf,
)


def _as_range(name: str, value: float | Sequence[float]) -> tuple[float, float]:
    lo, hi = (value, value) if isinstance(value, int | float) else tuple(value)
    if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
        raise ValueError(f"factor range {name}={value!r} must be finite with low <= high")
    return float(lo), float(hi)


def make_shapes(
    n: int, size: int = 32, seed: int = 0, **factor_ranges: float | Sequence[float]
) -> tuple[Tensor, Tensor, Tensor, tuple[str, ...]]:
    """Render ``n`` grayscale shapes with known latent factors.

    Each image shows one of ``SHAPE_NAMES`` (square, circle, triangle, cross, ellipse) on a
    black background, rendered from its signed distance function with one-pixel
    anti-aliasing, then ``intensity * coverage + noise * N(0, 1)`` clamped to ``[0, 1]``.
    Every factor is drawn uniformly from its range; ranges default to
    ``SHAPE_FACTOR_RANGES`` and can be narrowed or shifted (e.g. ``intensity=(0.3, 0.6)``,
    ``scale=(0.5, 0.8)``, ``noise=0.1``) to build domain-shifted data. A scalar fixes the
    factor. Positions and scale are in image coordinates ``[-1, 1]``; rotation in radians.

    Args:
        n: number of images.
        size: image side in pixels.
        seed: seed of the ``torch.Generator`` that draws every factor and the noise.
        **factor_ranges: ``scale``, ``pos_x``, ``pos_y``, ``rotation``, ``intensity``,
            ``noise`` as ``(low, high)`` or a scalar.

    Returns:
        ``(x, y, factors, factor_names)``: images ``(n, 1, size, size)`` float32, shape
        class ``(n,)`` int64, factors ``(n, 7)`` float32 with columns ``factor_names`` =
        ``("scale", "pos_x", "pos_y", "rotation", "intensity", "noise", "shape")``.

    Example:
        >>> x, y, factors, names = make_shapes(6, size=16, seed=1)
        >>> x.shape, y.shape, factors.shape, names[-1]
        (torch.Size([6, 1, 16, 16]), torch.Size([6]), torch.Size([6, 7]), 'shape')
        >>> bool(torch.equal(x, make_shapes(6, size=16, seed=1)[0]))
        True
    """
    _reject_unknown(factor_ranges, tuple(SHAPE_FACTOR_RANGES), "make_shapes")
    if n < 0 or size < 2:
        raise ValueError(f"make_shapes needs n >= 0 and size >= 2, got n={n}, size={size}")
    ranges = {k: _as_range(k, factor_ranges.get(k, v)) for k, v in SHAPE_FACTOR_RANGES.items()}
    if ranges["scale"][0] <= 0:
        raise ValueError(f"scale must be positive, got {ranges['scale']}")
    if ranges["noise"][0] < 0:
        raise ValueError(f"noise must be >= 0, got {ranges['noise']}")
    if not 0 <= ranges["intensity"][0] <= ranges["intensity"][1] <= 1:
        raise ValueError(f"intensity must lie in [0, 1], got {ranges['intensity']}")

    gen = torch.Generator().manual_seed(seed)
    y = torch.randint(len(SHAPE_NAMES), (n,), generator=gen)
    cont = {}
    for key, (lo, hi) in ranges.items():
        cont[key] = lo + (hi - lo) * torch.rand(n, generator=gen)

    coords = torch.linspace(-1, 1, size)
    gy, gx = torch.meshgrid(coords, coords, indexing="ij")  # (size, size)
    dx = gx - cont["pos_x"][:, None, None]
    dy = gy - cont["pos_y"][:, None, None]
    cos = torch.cos(cont["rotation"])[:, None, None]
    sin = torch.sin(cont["rotation"])[:, None, None]
    scale = cont["scale"][:, None, None]
    u = (cos * dx + sin * dy) / scale
    v = (-sin * dx + cos * dy) / scale
    sdf = torch.empty_like(u)  # (n, size, size), in units of the shape scale
    for k, shape_sdf in enumerate(_SHAPE_SDFS):
        mask = y == k
        sdf[mask] = shape_sdf(u[mask], v[mask])
    pixel = 2.0 / (size - 1)
    coverage = (0.5 - sdf * scale / pixel).clamp(0, 1)
    x = cont["intensity"][:, None, None] * coverage
    noise = torch.randn(n, size, size, generator=gen)
    x = (x + cont["noise"][:, None, None] * noise).clamp(0, 1)

    names = (*SHAPE_FACTOR_RANGES, "shape")
    factors = torch.stack([*cont.values(), y.float()], dim=1)
    return x[:, None].float(), y.long(), factors.float(), names


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
    )


# ----------------------------------------------------------------------------- sources


def _load_digits() -> tuple[Tensor, Tensor]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.from_numpy(bunch.images.astype(np.float32) / 16.0)[:, None]
    return x, torch.from_numpy(bunch.target.astype(np.int64))


def _images_from_array(x: np.ndarray, source: str) -> Tensor:
    """``(N, H, W)`` or ``(N, H, W, C)`` array, uint8 or float in [0, 1] -> (N, C, H, W)."""
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4:
        raise ValueError(f"{source}: x must have shape (N, H, W) or (N, H, W, C), got {x.shape}")
    if x.shape[0] == 0:
        raise ValueError(f"{source}: x holds no images")
    if np.issubdtype(x.dtype, np.integer) or x.dtype == np.bool_:
        if x.min() < 0 or x.max() > 255:
            raise ValueError(
                f"{source}: integer x must lie in 0..255, got range {x.min()}..{x.max()}"
            )
        x = x.astype(np.float32) / 255.0
    elif np.issubdtype(x.dtype, np.floating):
        if not np.isfinite(x).all():
            raise ValueError(f"{source}: x contains non-finite values (NaN or inf)")
        if x.min() < 0 or x.max() > 1:
            raise ValueError(
                f"{source}: float x must lie in [0, 1], got range {x.min():.4g}..{x.max():.4g}"
            )
    else:
        raise ValueError(f"{source}: x has unsupported dtype {x.dtype}; use uint8 or float")
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2), dtype=np.float32))


def _labels_from_array(y: np.ndarray, n: int, source: str) -> Tensor:
    if y.ndim != 1 or len(y) != n:
        raise ValueError(f"{source}: y must have shape ({n},) to match x, got {y.shape}")
    if np.issubdtype(y.dtype, np.floating):
        if not np.isfinite(y).all():
            raise ValueError(f"{source}: y contains non-finite values")
        if not np.all(y == np.round(y)):
            raise ValueError(f"{source}: y must hold integer class labels")
    elif not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{source}: y has unsupported dtype {y.dtype}; use integers")
    if len(y) and y.min() < 0:
        raise ValueError(f"{source}: y must be non-negative, got min {y.min()}")
    return torch.from_numpy(y.astype(np.int64))


def _load_npz(path: Path) -> tuple[Tensor, Tensor | None, Tensor | None, tuple[str, ...]]:
    try:
        archive = np.load(path, allow_pickle=False)
    except Exception as err:
        raise ValueError(f"{path}: cannot read as .npz ({err})") from err
    with archive:
        if "x" not in archive.files:
            raise ValueError(f"{path}: missing key 'x' (found keys {sorted(archive.files)})")
        x = _images_from_array(archive["x"], str(path))
        y = _labels_from_array(archive["y"], len(x), str(path)) if "y" in archive else None
        factors, names = None, ()
        if "factors" in archive:
            f = archive["factors"]
            if f.ndim != 2 or len(f) != len(x) or not np.isfinite(f).all():
                raise ValueError(
                    f"{path}: factors must be finite with shape ({len(x)}, F), got {f.shape}"
                )
            factors = torch.from_numpy(f.astype(np.float32))
            if "factor_names" in archive:
                names = tuple(str(s) for s in archive["factor_names"])
            else:
                names = tuple(f"factor_{i}" for i in range(f.shape[1]))
    return x, y, factors, names


def _load_folder(path: Path, resize: int | Sequence[int] | None) -> tuple[Tensor, Tensor, tuple]:
    from PIL import Image, UnidentifiedImageError

    class_dirs = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise ValueError(f"{path}: no class sub-folders found (expected one folder per class)")
    files: list[tuple[Path, int]] = []
    for label, folder in enumerate(class_dirs):
        found = sorted(
            p
            for p in folder.rglob("*")
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
        )
        if not found:
            raise ValueError(f"{path}: class folder {folder.name!r} contains no images")
        files.extend((p, label) for p in found)

    images, unreadable = [], []
    for file, _ in files:
        try:
            with Image.open(file) as im:
                im.load()
                images.append(im.copy())
        except (UnidentifiedImageError, OSError, ValueError) as err:
            unreadable.append(f"{file} ({type(err).__name__})")
    if unreadable:
        raise ValueError(
            f"{path}: {len(unreadable)} unreadable file(s):\n  " + "\n  ".join(unreadable)
        )

    sizes = Counter((im.height, im.width) for im in images)
    if len(sizes) > 1 and resize is None:
        found = ", ".join(f"{h}x{w}: {c}" for (h, w), c in sizes.most_common())
        raise ValueError(
            f"{path}: images have different sizes (HxW: count) {found}; "
            "pass resize=(H, W) to load_dataset to resize them all"
        )
    colour = any(_is_colour(im) for im in images)
    arrays = [_pixels(im, colour) for im in images]
    if resize is not None:
        size = (resize, resize) if isinstance(resize, int) else tuple(resize)
        arrays = [_resize(a, size) for a in arrays]
    y = torch.tensor([label for _, label in files], dtype=torch.int64)
    return _images_from_array(np.stack(arrays), str(path)), y, tuple(d.name for d in class_dirs)


def _is_colour(im: Any) -> bool:
    if im.mode in _GRAY_MODES:
        return False
    if im.mode == "P":  # a palette image is colour only if its palette is
        rgb = np.asarray(im.convert("RGB"))
        return not (
            np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2])
        )
    return True


def _pixels(im: Any, colour: bool) -> np.ndarray:
    """Float32 ``(H, W, C)`` in [0, 1]; 16-bit and float grayscale keep their precision."""
    if im.mode.startswith("I"):  # Pillow's convert("L") would clip 16-bit values at 255
        gray = np.asarray(im, dtype=np.float32) / 65535.0
    elif im.mode == "F":
        gray = np.asarray(im, dtype=np.float32)
    else:
        pixels = np.asarray(im.convert("RGB" if colour else "L"), dtype=np.float32) / 255.0
        return pixels if colour else pixels[..., None]
    gray = gray[..., None]
    return np.repeat(gray, 3, axis=-1) if colour else gray


def _resize(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear (antialiased) resize of ``(H, W, C)`` to ``size = (H', W')``."""
    if pixels.shape[:2] == tuple(size):
        return pixels
    t = torch.from_numpy(pixels).permute(2, 0, 1)[None]
    t = torch.nn.functional.interpolate(
        t, size=tuple(size), mode="bilinear", align_corners=False, antialias=True
    )
    return t[0].permute(1, 2, 0).clamp(0, 1).numpy()


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
    if name == "digits":
        _reject_unknown(kwargs, (), "digits")
        x, y = _load_digits()
        return _make_dataset("digits", x, y, None, (), seed, test_fraction, tuple("0123456789"))
    if name == "shapes":
        options = {"n": 5000, "size": 32}
        _reject_unknown(kwargs, (*options, *SHAPE_FACTOR_RANGES), "shapes")
        options.update(kwargs)
        x, y, factors, names = make_shapes(seed=seed, **options)
        return _make_dataset("shapes", x, y, factors, names, seed, test_fraction, SHAPE_NAMES)

    path = Path(name).expanduser()
    if path.is_file() and path.suffix == ".npz":
        _reject_unknown(kwargs, (), ".npz datasets")
        x, y, factors, names = _load_npz(path)
        return _make_dataset(path.stem, x, y, factors, names, seed, test_fraction)
    if path.is_dir():
        _reject_unknown(kwargs, ("resize",), "image folders")
        x, y, classes = _load_folder(path, kwargs.get("resize"))
        return _make_dataset(path.name, x, y, None, (), seed, test_fraction, classes)
    hint = did_you_mean(name, DATASET_NAMES)
    raise ValueError(
        f"unknown dataset {name!r}{hint}; valid names: {list(DATASET_NAMES)}, "
        "or a path to an existing .npz file or image folder (one sub-folder per class)"
    )
