"""Where the top-level ``proofs/`` and ``experiments/`` folders are read from.

They stay top-level in the source tree (one readable, runnable file a claim or experiment);
the wheel carries the same files inside the package, mapped by ``package-dir`` in
``pyproject.toml`` to ``sslobjectives/_proofs`` and ``sslobjectives/_experiments``. Nothing is
copied in the source tree, so a checkout and a wheel built from it read the same files.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
# name in the source tree -> name inside the installed package (see pyproject.toml)
SHIPPED = {"proofs": "_proofs", "experiments": "_experiments"}


def resource_dir(name: str) -> Path:
    """``proofs`` or ``experiments``: inside the installed package when the wheel carries it,
    else beside the package (a source checkout or an editable install)."""
    if name not in SHIPPED:
        raise ValueError(f"unknown resource folder {name!r}; known: {', '.join(SHIPPED)}")
    inside = _PACKAGE / SHIPPED[name]
    if inside.is_dir():
        return inside
    return _PACKAGE.parent / name
