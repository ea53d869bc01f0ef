"""User data from files: an ``.npz`` array file (images under ``x``, ``X`` or ``images``;
optionally labels under ``y``, ``Y`` or ``labels``, ``factors``, ``factor_names``) or a folder
with one sub-folder of images per class (read with Pillow).

Every problem is a :class:`DataError`: one line naming the file, the key and the fix."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from sslobjectives.data.dataset import DataError

_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm"}
_GRAY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "F"}


#: the keys an ``.npz`` may use for its images and its labels, in the order they are tried
X_KEYS = ("x", "X", "images")
Y_KEYS = ("y", "Y", "labels")
_CHANNELS = (1, 3)


def _nchw(x: np.ndarray, source: str, key: str) -> np.ndarray:
    """``(N, D)`` vectors, ``(N, H, W)``, ``(N, H, W, C)`` or ``(N, C, H, W)`` -> ``(N, C, H, W)``.

    Vectors become ``D`` channels of a 1x1 image (the ``mlp`` backbone reads them whole). A
    4-d array with 1 or 3 channels first and not last is PyTorch's channel-first layout; one
    with 1 or 3 channels in both places is refused rather than guessed."""
    fix = "save images as (N, H, W), (N, H, W, C) or (N, C, H, W) with C = 1 or 3"
    if x.ndim == 2:
        return x[:, :, None, None]
    if x.ndim == 3:
        return x[:, None]
    if x.ndim != 4:
        raise DataError(f"{source}: key {key!r} has shape {x.shape}; {fix}, or vectors as (N, D)")
    first, last = x.shape[1] in _CHANNELS, x.shape[3] in _CHANNELS
    if first and last and x.shape[1:] != (1, 1, 1):
        raise DataError(
            f"{source}: key {key!r} has shape {x.shape}, channel-first or channel-last is "
            f"ambiguous; {fix} where H, W are not 1 or 3, or transpose to (N, H, W, C)"
        )
    return x if first and not last else x.transpose(0, 3, 1, 2)


def _scale(x: np.ndarray, source: str, key: str) -> tuple[np.ndarray, dict[str, Any] | None]:
    """Pixels to ``[0, 1]``: integers in 0..255 divided by 255, floats in ``[0, 1]`` kept, any
    other finite range scaled min-max over the whole array (the record of it, else None)."""
    if x.dtype == np.bool_:
        return x.astype(np.float32), None
    if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise DataError(f"{source}: key {key!r} has dtype {x.dtype}; save it as uint8 or float")
    if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
        raise DataError(
            f"{source}: key {key!r} holds NaN or inf values; replace them before saving"
        )
    lo, hi = x.min(), x.max()
    if np.issubdtype(x.dtype, np.integer) and 0 <= lo and hi <= 255:
        return x.astype(np.float32) / 255.0, None
    if np.issubdtype(x.dtype, np.floating) and 0 <= lo and hi <= 1:
        return x.astype(np.float32), None
    if lo == hi:
        raise DataError(
            f"{source}: key {key!r} is constant ({lo}), nothing to learn; check the array saved"
        )
    scaled = (x.astype(np.float64) - lo) / (float(hi) - float(lo))
    return scaled.astype(np.float32), {"method": "min-max", "min": float(lo), "max": float(hi)}


def _images_from_array(
    x: np.ndarray, source: str, key: str = "x"
) -> tuple[Tensor, dict[str, Any] | None]:
    """An image (or vector) array -> float32 ``(N, C, H, W)`` in ``[0, 1]`` and the min-max
    scaling applied to it (None when none was needed)."""
    if x.ndim >= 1 and x.shape[0] == 0:
        raise DataError(f"{source}: key {key!r} holds no samples")
    x = _nchw(x, source, key)
    x, scaling = _scale(x, source, key)
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), scaling


def _labels_from_array(y: np.ndarray, n: int, source: str, key: str = "y") -> Tensor:
    if y.ndim != 1 or len(y) != n:
        raise DataError(
            f"{source}: key {key!r} has shape {y.shape}, the images need ({n},); "
            "save one integer label per image"
        )
    if np.issubdtype(y.dtype, np.floating):
        if not np.isfinite(y).all():
            raise DataError(f"{source}: key {key!r} holds NaN or inf; save integer labels")
        if not np.all(y == np.round(y)):
            raise DataError(f"{source}: key {key!r} holds fractions; save integer class labels")
    elif not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{source}: key {key!r} has dtype {y.dtype}; save integer class labels")
    if len(y) and y.min() < 0:
        raise DataError(
            f"{source}: key {key!r} has negative labels (min {y.min()}); number classes 0..K-1"
        )
    return torch.from_numpy(y.astype(np.int64))


def _find_key(files: Sequence[str], keys: Sequence[str], path: Path) -> str | None:
    found = [k for k in keys if k in files]
    if len(found) > 1:
        raise DataError(f"{path}: keys {found} all look like the same array; keep one of them")
    return found[0] if found else None


def _load_npz(path: Path) -> dict[str, Any]:
    """``x``, ``y``, ``factors``, ``factor_names`` and ``scaling`` of an ``.npz`` file."""
    try:
        archive = np.load(path, allow_pickle=False)
    except Exception as err:
        raise DataError(
            f"{path}: cannot read as .npz ({type(err).__name__}); write it with numpy.savez"
        ) from None
    with archive:
        x_key = _find_key(archive.files, X_KEYS, path)
        if x_key is None:
            raise DataError(
                f"{path}: no image key (found keys {sorted(archive.files)}); name the images "
                f"one of {', '.join(X_KEYS)}, e.g. numpy.savez(path, x=images, y=labels)"
            )
        x, scaling = _images_from_array(archive[x_key], str(path), x_key)
        y_key = _find_key(archive.files, Y_KEYS, path)
        y = None if y_key is None else _labels_from_array(archive[y_key], len(x), str(path), y_key)
        factors, names = None, ()
        if "factors" in archive:
            f = archive["factors"]
            if f.ndim != 2 or len(f) != len(x) or not np.isfinite(f).all():
                raise DataError(
                    f"{path}: key 'factors' has shape {f.shape}; save finite factors of shape "
                    f"({len(x)}, F)"
                )
            factors = torch.from_numpy(f.astype(np.float32))
            if "factor_names" in archive:
                names = tuple(str(s) for s in archive["factor_names"])
            else:
                names = tuple(f"factor_{i}" for i in range(f.shape[1]))
    return {"x": x, "y": y, "factors": factors, "factor_names": names, "scaling": scaling}


def _load_folder(path: Path, resize: int | Sequence[int] | None) -> tuple[Tensor, Tensor, tuple]:
    from PIL import Image, UnidentifiedImageError

    class_dirs = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise DataError(f"{path}: no class sub-folders; put each class's images in path/<class>/")
    files: list[tuple[Path, int]] = []
    for label, folder in enumerate(class_dirs):
        found = sorted(
            p
            for p in folder.rglob("*")
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
        )
        if not found:
            raise DataError(
                f"{path}: class folder {folder.name!r} holds no images; add or remove it"
            )
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
        shown = "; ".join(unreadable[:3]) + ("; ..." if len(unreadable) > 3 else "")
        raise DataError(
            f"{path}: {len(unreadable)} unreadable file(s) ({shown}); remove or convert them"
        )

    sizes = Counter((im.height, im.width) for im in images)
    if len(sizes) > 1 and resize is None:
        found = ", ".join(f"{h}x{w}: {c}" for (h, w), c in sizes.most_common())
        raise DataError(
            f"{path}: images have different sizes (HxW: count) {found}; "
            "pass resize=(H, W) to load_dataset (dataset_kwargs) to resize them all"
        )
    colour = any(_is_colour(im) for im in images)
    arrays = [_pixels(im, colour) for im in images]
    if resize is not None:
        size = (resize, resize) if isinstance(resize, int) else tuple(resize)
        arrays = [_resize(a, size) for a in arrays]
    y = torch.tensor([label for _, label in files], dtype=torch.int64)
    x, _ = _images_from_array(np.stack(arrays), str(path))  # already in [0, 1]: never scaled
    return x, y, tuple(d.name for d in class_dirs)


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
