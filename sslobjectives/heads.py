"""Old home of the projection heads: they live in :mod:`sslobjectives.models.heads`."""

from sslobjectives.models.heads import (  # noqa: F401
    HEADS,
    BinaryHead,
    DINOHead,
    EmbeddingHead,
    MLPHead,
    ResetSchedule,
    build_head,
)
