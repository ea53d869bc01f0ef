"""Small backbones ``f`` for SSL on tiny images: ``(B, C, H, W) -> (B, out_dim)``.

Every backbone accepts views of any spatial size, because multi-crop local views are smaller
than global ones: the CNN pools globally, the MLP resizes its input to ``image_size``, the
ViT interpolates its positional embeddings to the patch grid of the input.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sslobjectives.suggest import did_you_mean

__all__ = ["BACKBONE_NAMES", "ConvNet", "MLPNet", "TinyViT", "build_backbone"]

BACKBONE_NAMES = ("cnn", "mlp", "vit", "timm:<name>")


class ConvNet(nn.Module):
    """Plain CNN: 3x3 stride-2 conv + norm + ReLU blocks, then global average pooling.

    Every block halves the resolution. The default widths are ``(32, 64, 128)`` for images
    up to 16x16 (8x8 digits: 8 -> 4 -> 2 -> 1) and ``(16, 32, 64, 128)`` above (32x32
    shapes: 32 -> 16 -> 8 -> 4 -> 2), which keeps a training step on 8x8 digits at a few
    milliseconds on a CPU. GroupNorm is the default so that features do not depend on the
    batch (a multi-process run then equals one process without SyncBatchNorm);
    ``norm="batch"`` switches to BatchNorm.

    Args:
        in_channels: image channels ``C``.
        image_size: side of the global views (chooses the default widths).
        widths: channels of the blocks; ``out_dim = widths[-1]``.
        norm: ``"group"`` (up to 8 groups) or ``"batch"``.
        strides: stride of each block's convolution (default 2 for every block); a
            stride-1 first block keeps the full resolution for the next ones, at about
            four times the cost of that block.
        pool_grid: the last feature map is average-pooled to a ``pool_grid x pool_grid``
            grid and flattened (``out_dim = widths[-1] * pool_grid**2``). 1, the default,
            is global average pooling, which makes the features invariant to where a
            pattern is before any training; a grid keeps coarse positions, so the
            invariance has to be learned.

    Shapes: ``(B, C, H, W) -> (B, widths[-1] * pool_grid**2)`` for any ``H, W >= 1``.

    Example:
        >>> net = ConvNet(1, 8)
        >>> net(torch.rand(3, 1, 8, 8)).shape, net(torch.rand(3, 1, 4, 4)).shape
        (torch.Size([3, 128]), torch.Size([3, 128]))
    """

    def __init__(
        self,
        in_channels: int,
        image_size: int,
        widths: Sequence[int] | None = None,
        norm: str = "group",
        strides: Sequence[int] | None = None,
        pool_grid: int = 1,
    ) -> None:
        super().__init__()
        if isinstance(pool_grid, bool) or not isinstance(pool_grid, int) or pool_grid < 1:
            raise ValueError(f"pool_grid must be a positive int, got {pool_grid!r}")
        if norm not in ("group", "batch"):
            raise ValueError(f"norm must be 'group' or 'batch', got {norm!r}")
        if widths is None:
            widths = (32, 64, 128) if image_size <= 16 else (16, 32, 64, 128)
        if len(widths) < 1:
            raise ValueError("widths must name at least one block")
        strides = tuple(strides) if strides is not None else (2,) * len(widths)
        if len(strides) != len(widths) or not all(
            isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in strides
        ):
            raise ValueError(
                f"strides must be one positive int per block ({len(widths)}), got {strides!r}"
            )
        layers: list[nn.Module] = []
        prev = in_channels
        for width, stride in zip(widths, strides, strict=True):
            layers += [
                nn.Conv2d(prev, width, 3, stride=stride, padding=1, bias=False),
                nn.GroupNorm(math.gcd(8, width), width)
                if norm == "group"
                else nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
            ]
            prev = width
        self.features = nn.Sequential(*layers)
        self.pool_grid = pool_grid
        self.out_dim = int(widths[-1]) * pool_grid**2

    def forward(self, x: Tensor) -> Tensor:
        if self.pool_grid == 1:
            return self.features(x).mean(dim=(2, 3))
        return F.adaptive_avg_pool2d(self.features(x), self.pool_grid).flatten(1)


class MLPNet(nn.Module):
    """MLP on flattened pixels; inputs of another size are first resized to ``image_size``.

    Resizing uses bilinear ``F.interpolate`` (``align_corners=False``, antialiased when
    shrinking), so a 4x4 local crop of an 8x8 image is upsampled to 8x8 before flattening.

    Args:
        in_channels: image channels ``C``.
        image_size: side the input is resized to.
        hidden: width of the hidden layers.
        depth: number of hidden Linear + LayerNorm + GELU layers.
        out_dim: output features.

    Shapes: ``(B, C, H, W) -> (B, out_dim)``.

    Example:
        >>> MLPNet(1, 8)(torch.rand(2, 1, 4, 4)).shape
        torch.Size([2, 128])
    """

    def __init__(
        self,
        in_channels: int,
        image_size: int,
        hidden: int = 512,
        depth: int = 2,
        out_dim: int = 128,
    ) -> None:
        super().__init__()
        self.image_size = image_size
        layers: list[nn.Module] = [nn.Flatten()]
        prev = in_channels * image_size * image_size
        for _ in range(depth):
            layers += [nn.Linear(prev, hidden), nn.LayerNorm(hidden), nn.GELU()]
            prev = hidden
        layers.append(nn.Linear(prev, out_dim))
        self.net = nn.Sequential(*layers)
        self.out_dim = int(out_dim)

    def forward(self, x: Tensor) -> Tensor:
        size = (self.image_size, self.image_size)
        if tuple(x.shape[2:]) != size:
            shrink = x.shape[2] > size[0] or x.shape[3] > size[1]
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=shrink)
        return self.net(x)


def _default_patch_size(image_size: int) -> int:
    # Smallest patch giving a grid of at most 8x8 tokens: 8 -> 2, 32 -> 4, 224 -> 16.
    for patch in (2, 4, 8, 16):
        if image_size <= 8 * patch:
            return patch
    return 16


class TinyViT(nn.Module):
    """A small Vision Transformer (arXiv 2010.11929) with a CLS token, written out by hand.

    Patches are embedded by a strided convolution; learned positional embeddings for the
    ``image_size / patch_size`` grid are bicubically interpolated to the grid of smaller (or
    larger) inputs, as in DINO (arXiv 2104.14294). Pre-norm encoder layers; the output is the
    final-LayerNorm CLS token. Input sides that are not multiples of ``patch_size`` lose
    their last partial patch.

    Args:
        in_channels: image channels ``C``.
        image_size: side of the global views (sets the positional-embedding grid).
        patch_size: patch side; ``None`` = 2 for images up to 16, 4 up to 32, 8 up to 64,
            else 16.
        dim: token width (``out_dim``). depth: encoder layers. heads: attention heads.
        mlp_ratio: width of the feed-forward layer relative to ``dim``.

    Shapes: ``(B, C, H, W) -> (B, dim)`` for ``H, W >= patch_size``.

    Example:
        >>> vit = TinyViT(1, 8)
        >>> vit(torch.rand(2, 1, 8, 8)).shape, vit(torch.rand(2, 1, 4, 4)).shape
        (torch.Size([2, 64]), torch.Size([2, 64]))
    """

    def __init__(
        self,
        in_channels: int,
        image_size: int,
        patch_size: int | None = None,
        dim: int = 64,
        depth: int = 4,
        heads: int = 4,
        mlp_ratio: float = 2.0,
    ) -> None:
        super().__init__()
        self.patch_size = patch_size or _default_patch_size(image_size)
        if image_size < self.patch_size:
            raise ValueError(f"image_size {image_size} is smaller than patch {self.patch_size}")
        if dim % heads:
            raise ValueError(f"dim {dim} must be divisible by heads {heads}")
        self.grid = image_size // self.patch_size
        self.patch_embed = nn.Conv2d(in_channels, dim, self.patch_size, stride=self.patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + self.grid * self.grid, dim))
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(
                dim,
                heads,
                dim_feedforward=int(dim * mlp_ratio),
                dropout=0.0,
                activation="gelu",
                batch_first=True,
                norm_first=True,
            )
            for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim)
        self.out_dim = int(dim)

    def _pos_embed(self, h: int, w: int) -> Tensor:
        cls_pos, grid_pos = self.pos_embed[:, :1], self.pos_embed[:, 1:]
        if (h, w) != (self.grid, self.grid):
            dim = grid_pos.shape[-1]
            grid_pos = grid_pos.reshape(1, self.grid, self.grid, dim).permute(0, 3, 1, 2)
            grid_pos = F.interpolate(grid_pos, size=(h, w), mode="bicubic", align_corners=False)
            grid_pos = grid_pos.permute(0, 2, 3, 1).reshape(1, h * w, dim)
        return torch.cat([cls_pos, grid_pos], dim=1)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[2] < self.patch_size or x.shape[3] < self.patch_size:
            raise ValueError(
                f"input {tuple(x.shape[2:])} is smaller than the patch size {self.patch_size}"
            )
        tokens = self.patch_embed(x)  # (B, dim, h, w)
        h, w = tokens.shape[2:]
        tokens = tokens.flatten(2).transpose(1, 2)  # (B, h*w, dim)
        tokens = torch.cat([self.cls_token.expand(len(x), -1, -1), tokens], dim=1)
        tokens = tokens + self._pos_embed(h, w)
        for block in self.blocks:
            tokens = block(tokens)
        return self.norm(tokens[:, 0])


_BUILDERS: dict[str, type[nn.Module]] = {"cnn": ConvNet, "mlp": MLPNet, "vit": TinyViT}


def _build_timm(model_name: str, in_channels: int, **kwargs: Any) -> nn.Module:
    try:
        import timm
    except ImportError as err:
        raise ImportError(
            f"backbone 'timm:{model_name}' needs timm: pip install sslobjectives[timm]"
        ) from err
    # Weights are never downloaded implicitly; pass pretrained=True explicitly to opt in.
    kwargs.setdefault("pretrained", False)
    model = timm.create_model(model_name, num_classes=0, in_chans=in_channels, **kwargs)
    model.out_dim = int(model.num_features)
    return model


def build_backbone(name: str, in_channels: int, image_size: int, **kwargs: Any) -> nn.Module:
    """Build a backbone by name; the returned module has an int attribute ``out_dim``.

    Args:
        name: ``"cnn"`` (:class:`ConvNet`), ``"mlp"`` (:class:`MLPNet`), ``"vit"``
            (:class:`TinyViT`) or ``"timm:<model>"`` (needs the ``timm`` extra; built with
            ``num_classes=0``, ``in_chans=in_channels``; for ViTs pass
            ``dynamic_img_size=True`` so that smaller local crops are accepted).
        in_channels: image channels ``C``.
        image_size: side of the global views.
        **kwargs: options of the chosen class; unknown options are errors.

    Returns:
        a module mapping ``(B, C, H, W)`` to ``(B, out_dim)``. Initialisation draws from
        torch's global RNG, so it is fixed by ``torch.manual_seed``.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> net = build_backbone("cnn", in_channels=1, image_size=8)
        >>> net.out_dim, net(torch.rand(4, 1, 8, 8)).shape
        (128, torch.Size([4, 128]))
    """
    if in_channels < 1 or image_size < 1:
        raise ValueError(f"need in_channels, image_size >= 1, got {in_channels}, {image_size}")
    if name.startswith("timm:"):
        return _build_timm(name[len("timm:") :], in_channels, **kwargs)
    if name not in _BUILDERS:
        hint = did_you_mean(name, _BUILDERS)
        raise ValueError(f"unknown backbone {name!r}{hint}; valid names: {list(BACKBONE_NAMES)}")
    cls = _BUILDERS[name]
    valid = list(inspect.signature(cls).parameters)[2:]  # after in_channels, image_size
    for key in kwargs:
        if key not in valid:
            hint = did_you_mean(key, valid)
            raise ValueError(f"unknown option {key!r} for backbone {name!r}{hint}; valid: {valid}")
    return cls(in_channels, image_size, **kwargs)
