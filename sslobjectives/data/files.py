"""User data from files: an ``.npz`` array file (key ``x``, optionally ``y``, ``factors``,
``factor_names``) or a folder with one sub-folder of images per class (read with Pillow)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm"}
_GRAY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "F"}


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
