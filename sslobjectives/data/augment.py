"""Batched multi-crop augmentation on tensors (no torchvision).

Multi-crop (SwAV, arXiv 2006.09882; DINO, arXiv 2104.14294) turns each image into
``n_global`` large views and ``n_local`` small views. Teachers see the global views,
students all of them. Every random choice is made per sample but drawn as one tensor per
view, so a view costs a handful of batched kernels whatever the batch size, and runs on the
device of the input images.

Per view, in order: random resized crop with optional horizontal flip and rotation (one
``affine_grid`` + ``grid_sample``), colour jitter (brightness, contrast and, for RGB images,
saturation and hue), random grayscale (RGB), Gaussian blur (separable, per-sample sigma),
additive Gaussian noise, clamp to ``[0, 1]``.

The colour distortion is SimCLR's (arXiv 2002.05709, section 3 and appendix A: colour
jitter with probability 0.8 and grayscale with probability 0.2, which DINO keeps), written on
tensors. One deliberate difference from torchvision's ``ColorJitter``, which its authors
used: hue is turned by rotating the chroma plane of YIQ (luma unchanged), not by shifting the
HSV hue, and the four jitters are applied in a fixed order, not a random one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["RGB_TO_YIQ", "MultiCropAugment"]


def _check_range(name: str, lo_hi: tuple[float, float], low: float, high: float) -> None:
    lo, hi = lo_hi
    if not low <= lo <= hi <= high:
        raise ValueError(f"{name}={lo_hi!r} must satisfy {low} <= low <= high <= {high}")


@dataclass(frozen=True)
class MultiCropAugment:
    """Multi-crop view generator for batches of images in ``[0, 1]``.

    Attributes:
        global_size: side of the global views; ``None`` = the input's longer side.
        local_size: side of the local views; ``None`` = half the global size (at least 2).
        n_global: number of global views (returned first; teachers see these).
        n_local: number of local views.
        global_scale, local_scale: range of the crop area as a fraction of the image area.
        ratio: range of the crop aspect ratio ``w / h`` (sampled log-uniformly).
        flip: allow horizontal flips (off for data that is not mirror-symmetric, e.g. digits).
        flip_prob: probability of a flip when ``flip`` is on.
        brightness: multiplicative brightness factor drawn from ``[1 - b, 1 + b]``.
        contrast: contrast factor drawn from ``[1 - c, 1 + c]`` around each image's mean.
        jitter_prob: probability that a sample gets brightness/contrast jitter.
        blur_prob: probability that a sample is blurred.
        blur_sigma: range of the blur standard deviation, in output pixels.
        noise_std: standard deviation of additive Gaussian noise (0 disables it).
        rotation: maximum rotation in degrees; each view is rotated by an angle drawn
            uniformly from ``[-rotation, rotation]`` about its crop centre (0 disables it
            and draws no random numbers, so views without rotation are unchanged).
        saturation: saturation factor drawn from ``[1 - s, 1 + s]``: the view is blended
            with its luma (0 = gray, 1 = unchanged); RGB images only, applied with the
            brightness/contrast jitter (``jitter_prob``).
        hue: maximum hue turn, as a fraction of the colour circle (``0.5`` = any hue):
            the chroma plane of YIQ is rotated by an angle drawn from
            ``[-2 pi hue, 2 pi hue]``; RGB only, applied with the jitter.
        grayscale_prob: probability that a view is replaced by its luma in every channel
            (RGB only).

    ``saturation``, ``hue`` and ``grayscale_prob`` at 0 (their defaults) draw no random
    numbers, so the views of a config without them are unchanged; on images that do not
    have 3 channels they are an error.

    The crop uses ``align_corners=True`` semantics: with area scale 1, ratio 1, an output
    size equal to the input size and every other augmentation off, a view reproduces the
    input (up to float rounding).

    Example:
        >>> aug = MultiCropAugment(global_size=8, local_size=4, n_local=2, flip=False)
        >>> views = aug(torch.rand(5, 1, 8, 8), torch.Generator().manual_seed(0))
        >>> [tuple(v.shape) for v in views]
        [(5, 1, 8, 8), (5, 1, 8, 8), (5, 1, 4, 4), (5, 1, 4, 4)]
    """

    global_size: int | None = None
    local_size: int | None = None
    n_global: int = 2
    n_local: int = 0
    global_scale: tuple[float, float] = (0.4, 1.0)
    local_scale: tuple[float, float] = (0.1, 0.4)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip: bool = True
    flip_prob: float = 0.5
    brightness: float = 0.4
    contrast: float = 0.4
    jitter_prob: float = 0.8
    blur_prob: float = 0.0
    blur_sigma: tuple[float, float] = (0.1, 1.0)
    noise_std: float = 0.0
    rotation: float = 0.0
    saturation: float = 0.0
    hue: float = 0.0
    grayscale_prob: float = 0.0

    @property
    def colour(self) -> bool:
        """Whether a colour-only setting (saturation, hue, grayscale) is on."""
        return self.saturation > 0 or self.hue > 0 or self.grayscale_prob > 0

    def __post_init__(self) -> None:
        for name in ("global_size", "local_size"):
            size = getattr(self, name)
            if size is not None and size < 1:
                raise ValueError(f"{name} must be a positive int or None, got {size}")
        if self.n_global < 1 or self.n_local < 0:
            raise ValueError(
                f"need n_global >= 1 and n_local >= 0, got {self.n_global}, {self.n_local}"
            )
        _check_range("global_scale", self.global_scale, 1e-6, 1.0)
        _check_range("local_scale", self.local_scale, 1e-6, 1.0)
        _check_range("ratio", self.ratio, 1e-6, math.inf)
        _check_range("blur_sigma", self.blur_sigma, 0.0, math.inf)
        for name in ("flip_prob", "jitter_prob", "blur_prob", "grayscale_prob"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)}")
        for name in ("brightness", "contrast", "saturation"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} strength must lie in [0, 1], got {getattr(self, name)}")
        if self.noise_std < 0:
            raise ValueError(f"noise_std must be >= 0, got {self.noise_std}")
        if not 0 <= self.rotation <= 180:
            raise ValueError(f"rotation must lie in [0, 180] degrees, got {self.rotation}")
        if not 0 <= self.hue <= 0.5:
            raise ValueError(f"hue must lie in [0, 0.5] (a fraction of the circle), got {self.hue}")

    def sizes(self, image_size: int) -> tuple[int, int]:
        """``(global_size, local_size)`` resolved for images of side ``image_size``."""
        global_size = self.global_size or image_size
        local_size = self.local_size or max(2, global_size // 2)
        return global_size, local_size

    def __call__(self, x: Tensor, generator: torch.Generator) -> list[Tensor]:
        """Make the views of a batch.

        Args:
            x: images ``(B, C, H, W)``, floating point, values in ``[0, 1]``.
            generator: source of all randomness; the same seed gives identical views.

        Returns:
            ``n_global`` tensors ``(B, C, Gs, Gs)`` followed by ``n_local`` tensors
            ``(B, C, Ls, Ls)``, each clamped to ``[0, 1]``.
        """
        if not isinstance(generator, torch.Generator):
            raise ValueError(f"generator must be a torch.Generator, got {type(generator)}")
        if x.dim() != 4:
            raise ValueError(f"expected images (B, C, H, W), got shape {tuple(x.shape)}")
        if not x.is_floating_point():
            raise ValueError(f"expected floating-point images in [0, 1], got {x.dtype}")
        if x.shape[0] == 0 or min(x.shape[1:]) < 1:
            raise ValueError(f"empty batch or image: shape {tuple(x.shape)}")
        if self.colour and x.shape[1] != 3:
            raise ValueError(
                "saturation, hue and grayscale_prob need RGB images (3 channels), got "
                f"{x.shape[1]} channel(s): set them to 0 for this data"
            )
        global_size, local_size = self.sizes(max(x.shape[2], x.shape[3]))
        specs = [(global_size, self.global_scale)] * self.n_global
        specs += [(local_size, self.local_scale)] * self.n_local
        return [self._view(x, size, scale, generator) for size, scale in specs]

    def _view(
        self, x: Tensor, size: int, scale: tuple[float, float], generator: torch.Generator
    ) -> Tensor:
        b = x.shape[0]

        def uniform(lo: float, hi: float) -> Tensor:
            draw = torch.rand(b, generator=generator, device=generator.device)
            return lo + (hi - lo) * draw.to(x.device, x.dtype)

        area = uniform(*scale)
        log_ratio = uniform(math.log(self.ratio[0]), math.log(self.ratio[1]))
        # Half-extents of the crop in normalised coordinates [-1, 1] (1 = whole image).
        half_w = torch.sqrt(area * torch.exp(log_ratio)).clamp(max=1.0)
        half_h = torch.sqrt(area / torch.exp(log_ratio)).clamp(max=1.0)
        cx = uniform(-1, 1) * (1 - half_w)
        cy = uniform(-1, 1) * (1 - half_h)
        flipped = (uniform(0, 1) < self.flip_prob) & self.flip
        sign = 1.0 - 2.0 * flipped.to(x.dtype)
        zero = torch.zeros_like(half_w)
        theta = torch.stack(
            [torch.stack([half_w * sign, zero, cx], 1), torch.stack([zero, half_h, cy], 1)], 1
        )
        if self.rotation > 0:
            # Rotate the sampling grid about the crop centre: theta's linear part becomes
            # R @ diag(half_w * sign, half_h). Drawn only when on, so that the random
            # stream (and every view) of a config without rotation stays as it was.
            angle = uniform(-self.rotation, self.rotation) * (math.pi / 180)
            cos, sin = torch.cos(angle), torch.sin(angle)
            theta = torch.stack(
                [
                    torch.stack([cos * half_w * sign, -sin * half_h, cx], 1),
                    torch.stack([sin * half_w * sign, cos * half_h, cy], 1),
                ],
                1,
            )
        if size == 1 and tuple(x.shape[2:]) == (1, 1):
            # (N, D) vectors as 1x1 images: every crop of one pixel is that pixel (and
            # affine_grid warns on unit-size grids)
            out = x
        else:
            grid = F.affine_grid(theta, [b, x.shape[1], size, size], align_corners=True)
            out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=True)

        jitter = uniform(0, 1) < self.jitter_prob
        bright = uniform(1 - self.brightness, 1 + self.brightness)
        contr = uniform(1 - self.contrast, 1 + self.contrast)
        if self.jitter_prob > 0 and (self.brightness > 0 or self.contrast > 0):
            bright = torch.where(jitter, bright, 1.0)[:, None, None, None]
            contr = torch.where(jitter, contr, 1.0)[:, None, None, None]
            out = (out * bright).clamp(0, 1)
            mean = out.mean(dim=(1, 2, 3), keepdim=True)
            out = ((out - mean) * contr + mean).clamp(0, 1)
        if self.saturation > 0:
            sat = uniform(1 - self.saturation, 1 + self.saturation)
            sat = torch.where(jitter, sat, 1.0)[:, None, None, None]
            gray = _luma(out)
            out = (gray + sat * (out - gray)).clamp(0, 1)
        if self.hue > 0:
            turn = uniform(-self.hue, self.hue) * (2 * math.pi)
            out = _rotate_hue(out, torch.where(jitter, turn, 0.0)).clamp(0, 1)
        if self.grayscale_prob > 0:
            to_gray = (uniform(0, 1) < self.grayscale_prob)[:, None, None, None]
            out = torch.where(to_gray, _luma(out).expand_as(out), out)

        blur = uniform(0, 1) < self.blur_prob
        sigma = uniform(*self.blur_sigma)
        if self.blur_prob > 0 and self.blur_sigma[1] > 0:
            out = torch.where(blur[:, None, None, None], _gaussian_blur(out, sigma), out)

        if self.noise_std > 0:
            noise = torch.randn(out.shape, generator=generator, device=generator.device)
            out = out + self.noise_std * noise.to(out)
        return out.clamp(0, 1)


#: RGB -> YIQ: ITU-R BT.601 luma weights (Y), and NTSC's chroma rows I and Q.
RGB_TO_YIQ = (
    (0.299, 0.587, 0.114),
    (0.595716, -0.274453, -0.321263),
    (0.211456, -0.522591, 0.311135),
)


def _luma(x: Tensor) -> Tensor:
    """Luma ``(B, 1, H, W)`` of RGB images ``(B, 3, H, W)``."""
    w = x.new_tensor(RGB_TO_YIQ[0])[None, :, None, None]
    return (x * w).sum(dim=1, keepdim=True)


def _rotate_hue(x: Tensor, angle: Tensor) -> Tensor:
    """Turn the hue of RGB images ``(B, 3, H, W)`` by ``angle`` radians each ``(B,)``: the
    (I, Q) chroma plane of YIQ is rotated and Y kept, so gray pixels stay as they are."""
    to_yiq = x.new_tensor(RGB_TO_YIQ)
    cos, sin = torch.cos(angle), torch.sin(angle)
    one, zero = torch.ones_like(angle), torch.zeros_like(angle)
    rot = torch.stack(
        [torch.stack([one, zero, zero], 1), torch.stack([zero, cos, -sin], 1),
         torch.stack([zero, sin, cos], 1)], 1
    )  # fmt: skip
    # per sample: RGB -> YIQ -> rotate -> RGB, as one (B, 3, 3) matrix
    m = torch.linalg.inv(to_yiq)[None] @ rot @ to_yiq[None]
    return torch.einsum("bij,bjhw->bihw", m, x)


def _gaussian_blur(x: Tensor, sigma: Tensor) -> Tensor:
    """Separable Gaussian blur of ``x`` ``(B, C, H, W)`` with per-sample ``sigma`` ``(B,)``.

    One grouped convolution per axis; borders are replicated so any image size works.
    """
    b, c, h, w = x.shape
    radius = max(1, math.ceil(3 * float(sigma.max())))
    offsets = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    kernel = torch.exp(-(offsets**2) / (2 * sigma.clamp(min=1e-3)[:, None] ** 2))
    kernel = (kernel / kernel.sum(1, keepdim=True)).repeat_interleave(c, 0)  # (B*C, K)
    flat = x.reshape(1, b * c, h, w)
    flat = F.pad(flat, (radius, radius, radius, radius), mode="replicate")
    flat = F.conv2d(flat, kernel[:, None, :, None], groups=b * c)
    flat = F.conv2d(flat, kernel[:, None, None, :], groups=b * c)
    return flat.reshape(b, c, h, w)
