"""The model: backbones, projection heads (one per ``head_kind``), the EMA teacher and the
student built from plain values, and exported backbones (``load_backbone``)."""

from .backbones import BACKBONE_NAMES, ConvNet, MLPNet, TinyViT, build_backbone
from .exported import backbone_payload, load_backbone
from .heads import (
    HEAD_OPTIONS,
    HEADS,
    BinaryHead,
    DINOHead,
    EmbeddingHead,
    MLPHead,
    ResetSchedule,
    build_head,
    head_options,
)
from .student import Student, build_student
from .teacher import EMATeacher, cosine_momentum

__all__ = [
    "BACKBONE_NAMES",
    "HEADS",
    "HEAD_OPTIONS",
    "BinaryHead",
    "ConvNet",
    "DINOHead",
    "EMATeacher",
    "EmbeddingHead",
    "MLPHead",
    "MLPNet",
    "ResetSchedule",
    "Student",
    "TinyViT",
    "backbone_payload",
    "build_backbone",
    "build_head",
    "build_student",
    "head_options",
    "cosine_momentum",
    "load_backbone",
]
