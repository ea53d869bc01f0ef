"""The claims file (``experiments/claims.toml``): what each paper claims per experiment,
read and checked."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sslobjectives.resources import resource_dir

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib


AGREES = "agrees"
DISAGREES = "disagrees"
INCONCLUSIVE = "inconclusive (CIs overlap)"
TOO_FEW = "inconclusive (fewer than 2 finished runs)"
NO_DATA = "no data"
SOURCES = ("paper", "theory", "question")
OPS = (">", ">=", "<", "<=")
REDUCE = ("last", "mean", "max", "min")
CLAIM_KEYS = (
    "text",
    "source",
    "metric",
    "better",
    "reduce",
    "pairs",
    "expect",
    "groups",
    "metrics",
)
EXPERIMENT_KEYS = ("paper", "claims", "curves", "scatter", "columns", "differences")


# ---------------------------------------------------------------------------- claims


@dataclass(frozen=True)
class Claim:
    """One claim about an experiment (see the header of ``experiments/claims.toml``)."""

    text: str
    metric: str = ""
    source: str = "paper"
    better: str = "higher"
    reduce: str = "last"
    pairs: tuple[tuple[str, str], ...] = ()
    expect: tuple[str, float] | None = None
    groups: tuple[str, ...] = ()
    metrics: tuple[str, str] | None = None

    def selectors(self) -> list[str]:
        """Every group selector the claim names."""
        return [s for pair in self.pairs for s in pair] + list(self.groups)


@dataclass(frozen=True)
class ExperimentClaims:
    name: str
    paper: str = ""
    claims: tuple[Claim, ...] = ()
    curves: tuple[str, ...] = ()
    scatter: tuple[tuple[str, str], ...] = ()
    columns: tuple[str, ...] = ()
    differences: tuple[Difference, ...] = ()


@dataclass(frozen=True)
class Difference:
    """``metric(a) - metric(b)`` paired by seed, per setting of the other varied keys,
    against ``x`` measured on ``b``'s runs (see the header of ``experiments/claims.toml``)."""

    x: str
    metric: str
    a: str
    b: str
    reduce: str = "last"


def default_claims_path() -> Path:
    """``experiments/claims.toml`` of the working directory, else the one shipped with the
    package (beside it in a checkout)."""
    local = Path("experiments") / "claims.toml"
    if local.exists():
        return local
    return resource_dir("experiments") / "claims.toml"


def load_claims(path: str | Path | None = None) -> dict[str, ExperimentClaims]:
    """Read and check a claims file; a ``ValueError`` lists every problem at once."""
    path = Path(path) if path else default_claims_path()
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise ValueError(f"{path}: cannot read the claims: {err}") from None
    problems: list[str] = []
    out = {}
    for name, table in data.items():
        if not isinstance(table, dict):
            problems.append(f"[{name}] must be a table")
            continue
        out[name] = _parse_experiment(name, table, problems)
    if problems:
        raise ValueError(
            f"{path}: {len(problems)} problem(s):\n" + "\n".join(f"  - {p}" for p in problems)
        )
    return out


def _parse_experiment(name: str, table: dict, problems: list[str]) -> ExperimentClaims:
    problems += [f"[{name}]: unknown key {k!r}" for k in table if k not in EXPERIMENT_KEYS]
    claims = []
    for i, c in enumerate(table.get("claims", [])):
        where = f"[{name}] claim {i + 1}"
        if not isinstance(c, dict):
            problems.append(f"{where} must be a table")
            continue
        problems += [f"{where}: unknown key {k!r}" for k in c if k not in CLAIM_KEYS]
        kinds = [k for k in ("pairs", "expect", "metrics") if k in c]
        if len(kinds) != 1:
            problems.append(f"{where}: needs exactly one of pairs, expect, metrics (got {kinds})")
        if "metrics" not in c and not isinstance(c.get("metric"), str):
            problems.append(f"{where}: needs a metric")
        if c.get("source", "paper") not in SOURCES:
            problems.append(f"{where}: source must be one of {SOURCES}")
        if c.get("better", "higher") not in ("higher", "lower"):
            problems.append(f"{where}: better must be 'higher' or 'lower'")
        if c.get("reduce", "last") not in REDUCE:
            problems.append(f"{where}: reduce must be one of {REDUCE}")
        pairs = c.get("pairs", [])
        if not all(
            isinstance(p, list) and len(p) == 2 and all(isinstance(s, str) for s in p)
            for p in pairs
        ):
            problems.append(f"{where}: pairs must be [[above, below], ...] of group names")
            pairs = []
        expect = c.get("expect")
        if expect is not None:
            if (
                not isinstance(expect, dict)
                or expect.get("op") not in OPS
                or not isinstance(expect.get("value"), int | float)
            ):
                problems.append(f"{where}: expect must be {{op = one of {OPS}, value = number}}")
                expect = None
            else:
                expect = (expect["op"], float(expect["value"]))
        metrics = c.get("metrics")
        if metrics is not None and not (
            isinstance(metrics, list)
            and len(metrics) == 2
            and all(isinstance(m, str) for m in metrics)
        ):
            problems.append(f"{where}: metrics must be two metric names")
            metrics = None
        claims.append(
            Claim(
                text=str(c.get("text", "")),
                metric=c.get("metric", "") if isinstance(c.get("metric"), str) else "",
                source=c.get("source", "paper"),
                better=c.get("better", "higher"),
                reduce=c.get("reduce", "last"),
                pairs=tuple(tuple(p) for p in pairs),
                expect=expect,
                groups=tuple(str(g) for g in c.get("groups", [])),
                metrics=tuple(metrics) if metrics else None,
            )
        )
    scatter = table.get("scatter", [])
    if not all(isinstance(s, list) and len(s) == 2 for s in scatter):
        problems.append(f"[{name}] scatter must be [[x_metric, y_metric], ...]")
        scatter = []
    differences = []
    for i, d in enumerate(table.get("differences", [])):
        between = d.get("between") if isinstance(d, dict) else None
        if (
            not isinstance(d, dict)
            or not isinstance(d.get("x"), str)
            or not isinstance(d.get("metric"), str)
            or not (isinstance(between, list) and len(between) == 2)
        ):
            problems.append(
                f"[{name}] differences[{i}] must be {{x = metric, metric = metric, "
                'between = ["selector a", "selector b"]}'
            )
            continue
        differences.append(
            Difference(
                d["x"], d["metric"], str(between[0]), str(between[1]), d.get("reduce", "last")
            )
        )
    return ExperimentClaims(
        name=name,
        paper=str(table.get("paper", "")).strip(),
        differences=tuple(differences),
        claims=tuple(claims),
        curves=tuple(table.get("curves", [])),
        scatter=tuple(tuple(s) for s in scatter),
        columns=tuple(table.get("columns", [])),
    )
