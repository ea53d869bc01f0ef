"""Groups of runs: selectors naming a group by its settings, and one planned run."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sslobjectives.sweep.spec import _show
from sslobjectives.values import parse_value

# ---------------------------------------------------------------------------- groups


def parse_selector(text: str) -> dict[str, Any]:
    """``"a=1, b=none"`` -> ``{"a": 1, "b": None}``; anything else names a label.

    >>> parse_selector("objective_cfg.beta=0.1, reset_period=none")
    {'objective_cfg.beta': 0.1, 'reset_period': None}
    >>> parse_selector("bits-reset")
    {'label': 'bits-reset'}
    """
    parts = [p.strip() for p in text.split(",")]
    if not all("=" in p for p in parts):
        return {"label": text}
    out = {}
    for part in parts:
        key, _, raw = part.partition("=")
        out[key.strip()] = parse_value(raw.strip())
    return out


def _equal(a: Any, b: Any) -> bool:
    if _is_number(a) and _is_number(b):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


@dataclass
class Run:
    """One planned run: its label, flattened config, state and result (when it has one).

    ``stale`` says why a finished run's result comes from other code than this one (None when
    it does not); such a run has status ``stale``, outside every table, figure and verdict,
    unless the report was asked to keep it (``--reuse-stale``: status ``done``)."""

    label: str
    seed: int
    config: dict[str, Any]  # flattened: "objective_cfg.beta" etc.
    status: str  # done | failed | missing | stale
    result: dict[str, Any] | None = None
    stale: str | None = None

    def value(self, key: str) -> Any:
        return self.label if key == "label" else self.config.get(key)

    def matches(self, selector: dict[str, Any]) -> bool:
        return all(_equal(self.value(k), v) for k, v in selector.items())


def group_name(values: dict[str, Any]) -> str:
    """How the report names a group: its label if the spec varies labels, else
    ``key=value, ...`` of the varied keys (what a claims selector matches)."""
    if "label" in values:
        return str(values["label"])
    return ", ".join(f"{k}={_show(v)}" for k, v in values.items())


def selector_problems(
    selectors: Iterable[str], runs: Sequence[Run], varied: Sequence[str]
) -> list[str]:
    """The selectors that name no run (or a key the spec does not vary)."""
    out = []
    for text in selectors:
        sel = parse_selector(text)
        unknown = [k for k in sel if k != "label" and k not in varied]
        if unknown:
            out.append(f"{text!r}: {', '.join(unknown)} is not a varied key ({', '.join(varied)})")
        elif not any(r.matches(sel) for r in runs):
            out.append(f"{text!r} matches no run")
    return out
