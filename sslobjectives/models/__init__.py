"""Backbones: ``build_backbone(name, in_channels, image_size, **kwargs)``."""

from .backbones import BACKBONE_NAMES, ConvNet, MLPNet, TinyViT, build_backbone

__all__ = ["BACKBONE_NAMES", "ConvNet", "MLPNet", "TinyViT", "build_backbone"]
