"""Procedural shapes with known latent factors (class, scale, position, rotation,
intensity, noise; in colour, the background's hue), to test what a representation encodes
(BITS, arXiv 2602.09764, reports bits that track attributes shared across classes)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from sslobjectives.data.augment import RGB_TO_YIQ
from sslobjectives.data.dataset import _reject_unknown

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


#: ``"shapes-hard"``: shapes whose nuisance factors are wide enough that pixels do not solve
#: the class (any rotation, positions over half the image, a 3x intensity range), at 16 px
#: so that a run is cheap. The class is invariant to exactly what its views change (crop
#: position and scale, rotation, brightness); docs/TESTBED.md has the measurements.
SHAPES_HARD_OPTIONS: dict[str, object] = {
    "n": 5000,
    "size": 16,
    "rotation": (0.0, 2 * math.pi),
    "pos_x": (-0.5, 0.5),
    "pos_y": (-0.5, 0.5),
    "intensity": (0.3, 1.0),
    "scale": (0.25, 0.5),
}

#: ``"shapes-colour"``: ``shapes-hard``'s shapes, white on a coloured background. Each image
#: has its own background hue (luma :data:`BACKGROUND_LUMA`, chroma
#: :data:`BACKGROUND_CHROMA`), a nuisance a random CNN is sensitive to (its untrained k-NN,
#: centred, falls from 0.86 on ``shapes-hard`` to 0.35) and exactly what the views' hue
#: jitter changes; the shape's intensity is fixed at 1. docs/TESTBED.md has the measurements.
SHAPES_COLOUR_OPTIONS: dict[str, object] = {**SHAPES_HARD_OPTIONS, "intensity": (1.0, 1.0)}

#: The background's luma (YIQ's Y) and the length of its chroma (I, Q) in ``colour`` images.
BACKGROUND_LUMA, BACKGROUND_CHROMA = 0.35, 0.25

#: The factor column a colour image adds (before ``"shape"``): the background's hue angle in
#: the (I, Q) plane, radians in ``[0, 2 pi)``.
COLOUR_FACTOR_NAMES = ("hue",)


def _background(hue: Tensor) -> Tensor:
    """RGB ``(n, 3)`` of the backgrounds of hue angles ``hue`` ``(n,)``: luma
    :data:`BACKGROUND_LUMA`, chroma :data:`BACKGROUND_CHROMA`, clamped to the RGB cube (a
    few hues fall slightly outside it)."""
    yiq = torch.stack(
        [
            torch.full_like(hue, BACKGROUND_LUMA),
            BACKGROUND_CHROMA * torch.cos(hue),
            BACKGROUND_CHROMA * torch.sin(hue),
        ],
        dim=1,
    )
    return (yiq @ torch.linalg.inv(torch.tensor(RGB_TO_YIQ)).T).clamp(0, 1)


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
    n: int,
    size: int = 32,
    seed: int = 0,
    colour: bool = False,
    **factor_ranges: float | Sequence[float],
) -> tuple[Tensor, Tensor, Tensor, tuple[str, ...]]:
    """Render ``n`` grayscale (or coloured) shapes with known latent factors.

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
        colour: RGB images, white shapes on a coloured background: each image's grayscale
            value ``g`` becomes ``bg + (1 - bg) * g``, with a background of its own hue
            (drawn uniformly over the circle after everything else, so the geometry is that
            of the grayscale images of the same seed; see :func:`_background`).
        **factor_ranges: ``scale``, ``pos_x``, ``pos_y``, ``rotation``, ``intensity``,
            ``noise`` as ``(low, high)`` or a scalar.

    Returns:
        ``(x, y, factors, factor_names)``: images ``(n, 1, size, size)`` float32, shape
        class ``(n,)`` int64, factors ``(n, 7)`` float32 with columns ``factor_names`` =
        ``("scale", "pos_x", "pos_y", "rotation", "intensity", "noise", "shape")``. With
        ``colour``: images ``(n, 3, size, size)`` and 8 factor columns, the background's
        hue (:data:`COLOUR_FACTOR_NAMES`) before ``"shape"``.

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
    if not colour:
        return x[:, None].float(), y.long(), factors.float(), names
    hue = 2 * math.pi * torch.rand(n, generator=gen)
    bg = _background(hue)[:, :, None, None]
    rgb = bg + (1 - bg) * x[:, None]
    names = (*SHAPE_FACTOR_RANGES, *COLOUR_FACTOR_NAMES, "shape")
    factors = torch.cat([factors[:, :-1], hue[:, None], factors[:, -1:]], dim=1)
    return rgb.float(), y.long(), factors.float(), names
