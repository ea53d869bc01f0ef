"""``sslobj demo``: every objective on the same random multi-crop batch, one table.

A smoke view of the library: the loss terms and the diagnostics each objective reports.
"""

from __future__ import annotations

import torch

from sslobjectives.objectives import build, names
from sslobjectives.texttable import format_text_table


def run_demo(
    batch: int = 64,
    dim: int = 128,
    n_global: int = 2,
    n_local: int = 4,
    seed: int = 0,
    objectives: list[str] | None = None,
) -> list[dict[str, float]]:
    """Rows ``{"objective": ..., "loss": ..., <terms>, <stats>}`` for each objective
    (default: every built-in and installed plug-in; ``module:Class`` spellings work too)."""
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(batch, dim, generator=g)
    views = [base + 0.5 * torch.randn(batch, dim, generator=g) for _ in range(n_global + n_local)]
    rows = []
    for name in objectives or names():
        obj = build(name)
        out = obj(views, views[:n_global], epoch=0)
        rows.append({"objective": name, **out.scalars()})
    return rows


def format_table(rows: list[dict[str, float]]) -> str:
    """A plain-text table; a column missing for an objective shows ``-``.

    >>> print(format_table([{"objective": "a", "loss": 1.0}, {"objective": "b", "x": 2.0}]))
    objective  loss    x
    a          1.0000  -
    b          -       2.0000
    """
    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols]
    cells = [[_fmt(r.get(c)) for c in cols] for r in rows]
    return format_text_table(cols, cells)


def _fmt(v: object) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)
