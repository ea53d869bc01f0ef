"""What a claim's verification yields: the numeric and symbolic outcomes, the result."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

# --------------------------------------------------------------------------- results


@dataclass
class Numeric:
    """Largest error over the cases tried; an error is a relative deviation from an
    independent formula (``|a - b| / max(1, |b|)``) or the size of a violated inequality."""

    tolerance: float
    cases: int = 0
    max_error: float = 0.0
    worst_case: str = ""
    notes: list[str] = field(default_factory=list)
    crash: str = ""

    def record(self, error: float, case: str) -> None:
        error = float(error)
        if math.isnan(error):
            error = math.inf
        if error > self.max_error or not self.worst_case:
            self.max_error, self.worst_case = max(error, self.max_error), case

    @property
    def ok(self) -> bool:
        return not self.crash and self.cases > 0 and self.max_error <= self.tolerance


@dataclass
class Symbolic:
    scope: str
    steps: list[tuple[str, bool]]
    crash: str = ""

    @property
    def ok(self) -> bool:
        return not self.crash and bool(self.steps) and all(holds for _, holds in self.steps)

    @property
    def summary(self) -> str:
        if self.crash:
            return "error (see below)"
        held = sum(holds for _, holds in self.steps)
        return f"{'proved' if self.ok else 'FAILED'} {held}/{len(self.steps)} steps"


@dataclass
class ClaimResult:
    id: int
    name: str
    title: str
    statement: str
    symbolic: Symbolic
    numeric: Numeric
    seconds: float

    @property
    def ok(self) -> bool:
        return self.symbolic.ok and self.numeric.ok

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "name": self.name,
            "proof": f"proofs/{self.name}.py",
            "title": self.title,
            "statement": self.statement,
            "ok": self.ok,
            "seconds": round(self.seconds, 3),
            "symbolic": {
                "ok": self.symbolic.ok,
                "scope": self.symbolic.scope,
                "summary": self.symbolic.summary,
                "steps": [{"step": s, "holds": h} for s, h in self.symbolic.steps],
                "error": self.symbolic.crash,
            },
            "numeric": {
                "ok": self.numeric.ok,
                **asdict(self.numeric),
                # JSON has no infinity: a non-finite error (NaN from the library) as a string
                "max_error": (
                    self.numeric.max_error
                    if math.isfinite(self.numeric.max_error)
                    else str(self.numeric.max_error)
                ),
            },
        }
