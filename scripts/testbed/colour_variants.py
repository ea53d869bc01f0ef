"""Colour variants of ``shapes-hard`` as ``.npz`` files, for the candidates measured in
docs/TESTBED.md ("Colour: a nuisance the random CNN does not discount"); ``shapes-colour``
(``make_shapes(colour=True)``) is the ``hue`` variant at chroma 0.25 built into the library.

    python scripts/testbed/colour_variants.py rgb /tmp/rgb.npz        # fg, bg anywhere in RGB
    python scripts/testbed/colour_variants.py luma /tmp/luma.npz      # same, luma apart >= 0.3
    python scripts/testbed/colour_variants.py dark-bg /tmp/bg.npz     # white on bg in [0, 0.6]^3
    python scripts/testbed/colour_variants.py hue /tmp/hue.npz --chroma 0.08

Then, e.g., ``python scripts/testbed/probe.py --set dataset='"/tmp/hue.npz"' --set
augment='{"rotation": 180, "saturation": 0.8, "hue": 0.5, "grayscale_prob": 0.2, ...}'``
(a user's file gets the generic views: give shapes-colour's augmentation explicitly).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from sslobjectives.data.augment import RGB_TO_YIQ
from sslobjectives.data.shapes import BACKGROUND_LUMA, SHAPES_COLOUR_OPTIONS, make_shapes

COLOUR_SEED = 123  # the colours' generator (the geometry is shapes-colour's, seed 0)


def colours(variant: str, n: int, chroma: float, gen: torch.Generator):
    """``(fg, bg)`` RGB colours ``(n, 3)`` of ``variant``."""
    if variant == "hue":
        hue = 2 * torch.pi * torch.rand(n, generator=gen)
        yiq = torch.stack([torch.full((n,), BACKGROUND_LUMA), chroma * torch.cos(hue),
                           chroma * torch.sin(hue)], 1)  # fmt: skip
        return torch.ones(n, 3), (yiq @ torch.linalg.inv(torch.tensor(RGB_TO_YIQ)).T).clamp(0, 1)
    if variant == "dark-bg":
        return torch.ones(n, 3), 0.6 * torch.rand(n, 3, generator=gen)
    fg, bg = torch.rand(n, 3, generator=gen), torch.rand(n, 3, generator=gen)
    luma = torch.tensor(RGB_TO_YIQ[0])

    def too_close(f: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if variant == "luma":
            return ((f - b) @ luma).abs() < 0.3
        return (f - b).norm(dim=1) < 0.4

    close = too_close(fg, bg)
    while close.any():
        fg[close] = torch.rand(int(close.sum()), 3, generator=gen)
        close = too_close(fg, bg)
    return fg, bg


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("variant", choices=["rgb", "luma", "dark-bg", "hue"])
    p.add_argument("out")
    p.add_argument("--chroma", type=float, default=0.25, help="hue variant: chroma length")
    args = p.parse_args(argv)
    x, y, _, _ = make_shapes(seed=0, **SHAPES_COLOUR_OPTIONS)  # white shapes, intensity 1
    fg, bg = colours(args.variant, len(x), args.chroma, torch.Generator().manual_seed(COLOUR_SEED))
    rgb = bg[:, :, None, None] * (1 - x) + fg[:, :, None, None] * x
    np.savez(args.out, x=rgb.numpy().astype(np.float32), y=y.numpy())
    print(f"{args.out}: {tuple(rgb.shape)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
