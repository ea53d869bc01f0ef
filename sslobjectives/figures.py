"""Figures drawn without a display: pyplot on the non-interactive Agg backend.

Every plotting function gets pyplot from :func:`headless_pyplot`, so that a report written
on a cluster node or in CI never needs a display, and the backend is chosen in one place.
"""

from __future__ import annotations

from typing import Any


def headless_pyplot() -> Any:
    """``matplotlib.pyplot`` with the Agg backend selected (imported on first use: plotting
    is optional and slow to import)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
