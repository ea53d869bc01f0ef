"""``sslobj report``: collected sweeps next to the papers' claims, as one markdown file.

Per experiment (one sweep output directory each): what was run (spec, budget, seeds, runs
done / failed / collapsed / not run, measured run time), a table of mean ± 95% CI over seeds
per group (the keys the spec varies, :func:`sslobjectives.results.summarize`), figures (PNG
under ``figures/<sweep name>/`` beside the markdown), the paper's claim and, per claimed
pair of groups, a verdict:

- ``agrees``: ours ranks the pair the paper's way and the two 95% CIs do not overlap;
- ``disagrees``: ours ranks it the other way and the CIs do not overlap;
- ``inconclusive (CIs overlap)``: otherwise (also with fewer than two finished runs).

A disagreement is a result: it is reported as measured. The claims are data, in
``experiments/claims.toml`` (its header documents the format, the group selectors and the
metrics); :func:`load_claims` reads and checks it.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sslobjectives.results import (
    TABLE_METRICS,
    _flatten,
    check_comparable,
    mean_ci,
    plot_bit_usage,
    plot_curves,
    summarize,
)
from sslobjectives.sweep.spec import _show
from sslobjectives.train.rundir import RunDir, read_json

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
    """``experiments/claims.toml`` of the working directory, else of the source checkout."""
    local = Path("experiments") / "claims.toml"
    if local.exists():
        return local
    return Path(__file__).resolve().parents[1] / "experiments" / "claims.toml"


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
        out[key.strip()] = _parse_value(raw.strip())
    return out


def _parse_value(raw: str) -> Any:
    if raw == "none":
        return None
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def _equal(a: Any, b: Any) -> bool:
    if _is_number(a) and _is_number(b):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


@dataclass
class Run:
    """One planned run: its label, flattened config, state and result (when it has one)."""

    label: str
    seed: int
    config: dict[str, Any]  # flattened: "objective_cfg.beta" etc.
    status: str  # done | failed | missing
    result: dict[str, Any] | None = None

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


# ---------------------------------------------------------------------------- experiments


@dataclass
class Experiment:
    """One sweep directory, read for the report."""

    name: str
    out: Path
    by: list[str]
    varied: list[str]
    zip_keys: list[str]
    runs: list[Run]
    spec_path: str | None = None
    spec_hash: str | None = None
    budget: str = ""
    seeds: list[int] = field(default_factory=list)
    title: str = ""
    base: dict[str, Any] = field(default_factory=dict)
    wall_s: float | None = None  # summed per submission, up to its last result.json
    submissions: int = 0

    @property
    def done(self) -> list[dict]:
        return [r.result for r in self.runs if r.status == "done"]

    def groups(self) -> list[tuple[dict[str, Any], list[Run]]]:
        """``(values of the grouping keys, runs)`` in the spec's order."""
        out: dict[tuple, tuple[dict, list[Run]]] = {}
        for r in self.runs:
            values = {k: r.value(k) for k in self.by}
            key = tuple(_show(v) for v in values.values())
            out.setdefault(key, (values, []))[1].append(r)
        return list(out.values())


def load_experiment(out: str | Path, experiments_dir: str | Path | None = None) -> Experiment:
    """Read a sweep directory: its manifest (or, without one, the spec of the same name in
    ``experiments_dir`` and every ``result.json`` below ``out``)."""
    out = Path(out)
    manifest = read_json(out / "manifest.json")
    if manifest is not None:
        return _from_manifest(out, manifest)
    return _from_results(out, Path(experiments_dir or default_claims_path().parent))


def _from_manifest(out: Path, m: dict[str, Any]) -> Experiment:
    runs = []
    for run in m.get("runs", []):
        files = RunDir(out / run["dir"])
        result = files.result()
        status = "missing" if result is None else result.get("status")
        status = status if status in ("done", "missing") else "failed"
        if result is not None:
            result["_path"] = str(files.result_path)
        runs.append(Run(run["label"], run["seed"], _flatten(run["config"]), status, result))
    spec = m.get("spec") or {}
    subs = m.get("submissions") or []
    return Experiment(
        name=m.get("name", out.name),
        out=out,
        by=list(m.get("by") or ["label"]),
        varied=list(m.get("varied") or []),
        zip_keys=list(_flatten(spec.get("zip", {}))),
        runs=runs,
        spec_path=m.get("spec_path"),
        spec_hash=m.get("spec_hash"),
        budget=m.get("budget", ""),
        seeds=list(spec.get("sweep", {}).get("seeds", [])),
        title=_title(m.get("spec_text") or ""),
        base=spec.get("base", {}),
        wall_s=_wall_seconds(subs, [r.result["_path"] for r in runs if r.result]),
        submissions=sum(bool(s.get("jobs")) for s in subs),
    )


def _wall_seconds(submissions: list[dict], result_paths: list[str]) -> float | None:
    """Wall-clock seconds the sweep's runs took: per submission that started runs, from its
    time to the newest ``result.json`` (mtime) written before the next such submission;
    summed. A sweep submitted once is timed from submission to its last result; one grown
    later (more seeds) is not charged the time between its submissions."""
    try:
        starts = sorted(
            datetime.strptime(s["time"], "%Y-%m-%dT%H:%M:%S%z").timestamp()
            for s in submissions
            if s.get("jobs")
        )
        ends = [Path(p).stat().st_mtime for p in result_paths]
    except (KeyError, ValueError, OSError):  # an odd timestamp, a vanished result
        return None
    total, timed = 0.0, False
    for i, start in enumerate(starts):
        stop = starts[i + 1] if i + 1 < len(starts) else float("inf")
        window = [e for e in ends if start <= e < stop]
        if window:
            total, timed = total + max(window) - start, True
    return total if timed else None


def _from_results(out: Path, experiments_dir: Path) -> Experiment:
    from sslobjectives.results import load_results
    from sslobjectives.sweep.spec import load_spec

    spec = None
    for path in sorted(experiments_dir.glob("*.toml")):
        try:
            candidate = load_spec(path)
        except ValueError:
            continue
        if candidate.name == out.name:
            spec = candidate
            break
    results = load_results([out], status=None)
    runs = [
        Run(
            r.get("label", ""),
            r.get("seed", 0),
            _flatten(r["config"]),
            "done" if r.get("status") == "done" else "failed",
            r,
        )
        for r in results
    ]
    if spec is None:
        return Experiment(out.name, out, ["label"], [], [], runs)
    return Experiment(
        name=spec.name,
        out=out,
        by=spec.group_by,
        varied=spec.varied,
        zip_keys=list(spec.zip),
        runs=runs,
        spec_path=spec.source,
        spec_hash=spec.spec_hash,
        budget=spec.budget,
        seeds=list(spec.seeds),
        title=_title(Path(spec.source).read_text()),
        base=spec.base,
    )


def _title(spec_text: str) -> str:
    """The first comment line of a spec, without its ``#``."""
    for line in spec_text.splitlines():
        if line.startswith("#"):
            return line.lstrip("#").strip()
        if line.strip():
            break
    return ""


# ---------------------------------------------------------------------------- metrics


def metric_value(result: dict[str, Any], metric: str, reduce: str = "last") -> float | None:
    """A run's value of ``metric`` (see the header of ``experiments/claims.toml``)."""
    if metric == "collapsed":
        c = result.get("collapsed")
        return None if c is None else float(bool(c))
    if not metric.startswith("history."):
        v: Any = result.get("final") or {}
        for part in metric.split("."):
            v = v.get(part) if isinstance(v, dict) else None
        if v is not None:
            return float(v) if _is_number(v) else None
    key = metric.removeprefix("history.")
    series = [float(h[key]) for h in result.get("history", []) if _is_number(h.get(key))]
    if not series:
        return None
    if reduce == "mean":
        return sum(series) / len(series)
    return {"last": series[-1], "max": max(series), "min": min(series)}[reduce]


@dataclass(frozen=True)
class Stat:
    """Mean and 95% CI half-width over ``n`` runs."""

    mean: float
    ci: float
    n: int

    @property
    def lo(self) -> float:
        return self.mean - self.ci

    @property
    def hi(self) -> float:
        return self.mean + self.ci

    def __str__(self) -> str:
        if self.n == 0:
            return "no runs"
        return f"{_pm(self.mean, self.ci)} (n={self.n})"

    @classmethod
    def of(cls, runs: Iterable[Run], metric: str, reduce: str = "last") -> Stat:
        vals = [metric_value(r.result, metric, reduce) for r in runs if r.status == "done"]
        vals = [v for v in vals if v is not None]
        m, h = mean_ci(vals)
        return cls(m, h, len(vals))


def _pm(mean: float, ci: float) -> str:
    """``mean ± ci`` at the precision of the mean."""
    if math.isfinite(mean) and mean != 0 and abs(mean) < 0.01:
        return f"{mean:.2e} ± {ci:.1e}"
    return f"{mean:.3f} ± {ci:.3f}"


def _fmt(x: float) -> str:
    if not math.isfinite(x):
        return str(x)
    if x == 0 or abs(x) >= 0.01:
        return f"{x:.3f}"
    return f"{x:.2e}"


def pair_verdict(above: Stat, below: Stat, better: str = "higher") -> str:
    """The verdict on "``above`` ranks above ``below``" (the module docstring).

    >>> pair_verdict(Stat(0.6, 0.05, 3), Stat(0.4, 0.05, 3))
    'agrees'
    >>> pair_verdict(Stat(0.6, 0.05, 3), Stat(0.4, 0.05, 3), better="lower")
    'disagrees'
    >>> pair_verdict(Stat(0.6, 0.15, 3), Stat(0.4, 0.1, 3))
    'inconclusive (CIs overlap)'
    """
    if above.n == 0 or below.n == 0:
        return NO_DATA
    if above.n < 2 or below.n < 2:
        return TOO_FEW
    if above.lo <= below.hi and below.lo <= above.hi:
        return INCONCLUSIVE
    ranks_above = above.mean > below.mean if better == "higher" else above.mean < below.mean
    return AGREES if ranks_above else DISAGREES


def expect_verdict(stat: Stat, op: str, value: float) -> str:
    """The verdict on "the mean is ``op value``": the whole CI on the claimed side agrees,
    the whole CI on the other side disagrees.

    >>> expect_verdict(Stat(0.9, 0.05, 3), ">=", 0.8), expect_verdict(Stat(0.5, 0.1, 3), ">=", 0.8)
    ('agrees', 'disagrees')
    """
    if stat.n == 0:
        return NO_DATA
    if stat.n < 2:
        return TOO_FEW
    lo, hi = stat.lo, stat.hi
    holds = {">": lo > value, ">=": lo >= value, "<": hi < value, "<=": hi <= value}[op]
    fails = {">": hi <= value, ">=": hi < value, "<": lo >= value, "<=": lo > value}[op]
    if holds:
        return AGREES
    if fails:
        return DISAGREES
    return "inconclusive (CI contains the threshold)"


def question_answer(a: Stat, b: Stat, name_a: str, name_b: str) -> str:
    """What we measured for a pair the paper states no direction for."""
    verdict = pair_verdict(a, b)
    if verdict == AGREES:
        return f"measured: {name_a} higher"
    if verdict == DISAGREES:
        return f"measured: {name_b} higher"
    return "measured: no difference resolved" + verdict.removeprefix("inconclusive")


@dataclass(frozen=True)
class Verdict:
    claim: Claim
    line: str  # markdown, without the leading "- "
    verdict: str


def _settings(
    exp: Experiment, named_by: Sequence[dict[str, Any]], seen_in: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The settings of the varied keys that no selector of ``named_by`` fixes (a label also
    fixes the other [zip] axes of its row), as they occur in runs matching one of
    ``seen_in``, in run order: a pair is compared within each of them."""
    named = set().union(*named_by)
    if "label" in named:
        named |= set(exp.zip_keys)
    keys = [k for k in exp.by if k not in named]
    out: dict[tuple, dict[str, Any]] = {}
    for r in exp.runs:
        if any(r.matches(sel) for sel in seen_in):
            ctx = {k: r.value(k) for k in keys}
            out.setdefault(tuple(_show(v) for v in ctx.values()), ctx)
    return list(out.values())


def judge(claim: Claim, exp: Experiment) -> list[Verdict]:
    """One verdict per claimed pair and context (or per group for expect / metrics)."""
    out = []
    if claim.pairs:
        for a_text, b_text in claim.pairs:
            a_sel, b_sel = parse_selector(a_text), parse_selector(b_text)
            for ctx in _settings(exp, (a_sel, b_sel), (a_sel, b_sel)) or [{}]:
                a_runs = [r for r in exp.runs if r.matches({**a_sel, **ctx})]
                b_runs = [r for r in exp.runs if r.matches({**b_sel, **ctx})]
                a = Stat.of(a_runs, claim.metric, claim.reduce)
                b = Stat.of(b_runs, claim.metric, claim.reduce)
                where = f"[{group_name(ctx)}] " if ctx else ""
                rel = ">" if claim.better == "higher" else "<"
                if claim.source == "question":
                    verdict = question_answer(a, b, a_text, b_text)
                    head = f"{where}{a_text} vs {b_text}"
                else:
                    verdict = pair_verdict(a, b, claim.better)
                    head = f"{where}{a_text} {rel} {b_text}"
                out.append(Verdict(claim, f"{head}: {a} vs {b} → **{verdict}**", verdict))
        return out
    for values, runs in exp.groups():
        name = group_name(values)
        if claim.groups and not any(
            r.matches(parse_selector(g)) for g in claim.groups for r in runs
        ):
            continue
        if claim.expect is not None:
            op, value = claim.expect
            stat = Stat.of(runs, claim.metric, claim.reduce)
            verdict = expect_verdict(stat, op, value)
            line = f"{name}: {stat} {op} {_fmt(value)}? → **{verdict}**"
        else:
            m_a, m_b = claim.metrics
            a, b = Stat.of(runs, m_a, claim.reduce), Stat.of(runs, m_b, claim.reduce)
            if claim.source == "question":
                verdict = question_answer(a, b, m_a, m_b)
            else:
                verdict = pair_verdict(a, b, claim.better)
            line = f"{name}: {m_a} {a} vs {m_b} {b} → **{verdict}**"
        out.append(Verdict(claim, line, verdict))
    return out


# ---------------------------------------------------------------------------- figures


def plot_scatter(
    exp: Experiment, x: str, y: str, path: Path, reduce: str = "last"
) -> tuple[Path, str] | None:
    """Per-run ``y`` against ``x``: colour by the first grouping key, marker by the second;
    returns the path and a Spearman rank correlation over the runs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.stats import spearmanr

    points = []
    for r in exp.runs:
        if r.status != "done":
            continue
        xv, yv = metric_value(r.result, x, reduce), metric_value(r.result, y, reduce)
        if xv is not None and yv is not None:
            points.append((r, xv, yv))
    if len(points) < 2:
        return None
    colour_key = exp.by[0]
    marker_key = exp.by[1] if len(exp.by) > 1 else None
    colours = list(dict.fromkeys(_show(r.value(colour_key)) for r, _, _ in points))
    markers = (
        list(dict.fromkeys(_show(r.value(marker_key)) for r, _, _ in points)) if marker_key else []
    )
    shapes = "osD^vP*X"
    fig, ax = plt.subplots(figsize=(7.2, 4.0))
    seen = set()
    for r, xv, yv in points:
        c = _show(r.value(colour_key))
        mk = _show(r.value(marker_key)) if marker_key else ""
        label = f"{c}, {mk}" if marker_key else c
        ax.scatter(
            xv,
            yv,
            color=f"C{colours.index(c) % 10}",
            marker=shapes[markers.index(mk) % len(shapes)] if marker_key else "o",
            label=None if label in seen else label,
            alpha=0.8,
        )
        seen.add(label)
    rho, p = spearmanr([p[1] for p in points], [p[2] for p in points])
    history = [m for m in (x, y) if _is_history(exp, m)]
    ax.set_xlabel(x + (f" ({reduce} epoch)" if x in history else ""))
    ax.set_ylabel(y + (f" ({reduce} epoch)" if y in history else ""))
    ax.set_title(f"Spearman ρ = {rho:.2f} over {len(points)} runs", fontsize=9)
    title = f"{colour_key}, {marker_key}" if marker_key else colour_key
    ax.legend(
        fontsize=7, title=title, title_fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5)
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    note = f"Spearman ρ({x}, {y}) = {rho:.2f} over {len(points)} runs (p = {p:.2g})"
    return path, note


def plot_claim_metrics(
    exp: Experiment, metrics: Sequence[tuple[str, str]], path: Path
) -> Path | None:
    """One panel per ``(metric, reduce)``: every group's runs (dots, one per seed) and its
    mean with the 95% CI the verdicts use (bar), groups in the spec's order."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = exp.groups()
    panels = []
    for metric, reduce in metrics:
        rows = []
        for values, runs in groups:
            vals = [metric_value(r.result, metric, reduce) for r in runs if r.status == "done"]
            name = (
                str(values["label"])
                if "label" in values
                else "\n".join(
                    _show(v) if k == "objective" else f"{k.rsplit('.', 1)[-1]}={_show(v)}"
                    for k, v in values.items()
                )
            )
            rows.append((name, [v for v in vals if v is not None]))
        if any(vals for _, vals in rows):
            panels.append((metric, reduce, rows))
    if not panels:
        return None
    n_groups = len(groups)
    lines = max(name.count("\n") + 1 for name, _ in panels[0][2])
    rotate = lines == 1 and n_groups > 5
    width = min(18.0, max(5.5, (0.95 if lines > 1 else 0.6) * n_groups + 1.5))
    fig, axes = plt.subplots(
        len(panels), 1, figsize=(width, (2.2 + 0.25 * lines) * len(panels)), squeeze=False
    )
    jitter = [-0.18 + 0.06 * k for k in range(7)]  # seeds spread around the group
    for ax, (metric, reduce, rows) in zip(axes[:, 0], panels, strict=True):
        for i, (_, vals) in enumerate(rows):
            if not vals:
                continue
            xs = [i + jitter[k % len(jitter)] for k in range(len(vals))]
            ax.scatter(xs, vals, s=10, color="0.55", zorder=2)
            m, h = mean_ci(vals)
            ax.errorbar(i, m, yerr=h, fmt="o", color="C0", capsize=4, zorder=3)
        history = _is_history(exp, metric)
        ax.set_ylabel(metric + (f"\n({reduce} epoch)" if history else ""), fontsize=8)
        ax.set_xticks(range(len(rows)))
        ax.set_xticklabels(
            [name for name, _ in rows],
            rotation=30 if rotate else 0,
            ha="right" if rotate else "center",
            fontsize=7 if lines == 1 else 6,
        )
        ax.grid(axis="y", alpha=0.3)
    axes[0, 0].set_title("per group: runs (grey), mean ± 95% CI over seeds (blue)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def paired_differences(
    exp: Experiment, diff: Difference
) -> list[tuple[dict[str, Any], float, list[float]]]:
    """Per setting of the varied keys that neither selector names: ``(setting, mean of x
    over b's runs, [metric(a) - metric(b) for each seed both finished])``."""
    a_sel, b_sel = parse_selector(diff.a), parse_selector(diff.b)
    out = []
    for ctx in _settings(exp, (a_sel, b_sel), (b_sel,)):

        def by_seed(sel: dict[str, Any], metric: str, ctx=ctx) -> dict[int, float]:
            got = {}
            for r in exp.runs:
                if r.status == "done" and r.matches({**sel, **ctx}):
                    v = metric_value(r.result, metric, diff.reduce)
                    if v is not None:
                        got[r.seed] = v
            return got

        a_vals, b_vals = by_seed(a_sel, diff.metric), by_seed(b_sel, diff.metric)
        xs = list(by_seed(b_sel, diff.x).values())
        deltas = [a_vals[s] - b_vals[s] for s in sorted(set(a_vals) & set(b_vals))]
        if xs and deltas:
            out.append((ctx, sum(xs) / len(xs), deltas))
    return out


def plot_difference(exp: Experiment, diff: Difference, path: Path) -> tuple[Path, str] | None:
    """Mean paired difference (± 95% CI over seeds) per setting against ``x``; the note
    gives Spearman's rho over the settings and how many differences the CI resolves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.stats import spearmanr

    rows = paired_differences(exp, diff)
    if len(rows) < 2:
        return None
    fig, ax = plt.subplots(figsize=(7.2, 4.0))
    means, resolved = [], 0
    for i, (ctx, x, deltas) in enumerate(rows):
        m, h = mean_ci(deltas)
        means.append(m)
        resolved += bool(len(deltas) > 1 and (m - h > 0 or m + h < 0))
        ax.errorbar(x, m, yerr=h, fmt="o", color=f"C{i % 10}", capsize=4, label=group_name(ctx))
    ax.axhline(0.0, color="0.5", lw=0.8)
    xs = [x for _, x, _ in rows]
    if min(xs) > 0 and max(xs) > 100 * min(xs):  # gaps span decades across temperatures
        ax.set_xscale("log")
    history = _is_history(exp, diff.x)
    ax.set_xlabel(f"{diff.x}" + (f" ({diff.reduce} epoch)" if history else "") + f" of {diff.b}")
    ax.set_ylabel(f"{diff.metric}: {diff.a} − {diff.b}\n(paired by seed)", fontsize=8)
    rho, p = spearmanr(xs, means)
    ax.set_title(f"Spearman ρ = {rho:.2f} over {len(rows)} settings", fontsize=9)
    ax.legend(fontsize=6, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    note = (
        f"{diff.metric}({diff.a}) − {diff.metric}({diff.b}), paired by seed, against "
        f"{diff.x} of {diff.b}: Spearman ρ = {rho:.2f} over {len(rows)} settings "
        f"(p = {p:.2g}); the 95% CI excludes 0 in {resolved} of {len(rows)} settings"
    )
    return path, note


def _claim_metrics(claims: ExperimentClaims | None) -> list[tuple[str, str]]:
    """The metrics the claims judge, once each, in order (``collapsed`` is a count, left
    to the table)."""
    out: list[tuple[str, str]] = []
    for c in claims.claims if claims else ():
        for m in c.metrics or (c.metric,):
            if m and m != "collapsed" and (m, c.reduce) not in out:
                out.append((m, c.reduce))
    return out


def _figures(
    exp: Experiment, claims: ExperimentClaims | None, fig_dir: Path
) -> list[tuple[Path, str]]:
    done = exp.done
    if not done:
        return []
    fig_dir.mkdir(parents=True, exist_ok=True)
    figs: list[tuple[Path, str]] = []
    metrics = _claim_metrics(claims)
    if metrics and len(exp.groups()) > 1:
        p = plot_claim_metrics(exp, metrics, fig_dir / "claims.png")
        if p:
            figs.append((p, "the claims' metrics per group: runs and mean ± 95% CI"))
    p = plot_curves(done, fig_dir / "curves.png", exp.by)
    if p:
        figs.append((p, "per-epoch curves, mean over seeds (shaded: min-max)"))
    p = plot_bit_usage(done, fig_dir / "bit_usage.png", exp.by)
    if p:
        figs.append((p, "per-bit marginal entropy of the test codes (all seeds)"))
    if claims and claims.curves:
        p = plot_curves(done, fig_dir / "diagnostics.png", exp.by, curves=claims.curves)
        if p:
            figs.append((p, "per-epoch " + ", ".join(claims.curves)))
    for d in claims.differences if claims else ():
        name = f"diff_{_slug(d.metric)}_{_slug(d.a)}_minus_{_slug(d.b)}_vs_{_slug(d.x)}.png"
        got = plot_difference(exp, d, fig_dir / name)
        if got:
            figs.append(got)
    for x, y in claims.scatter if claims else ():
        got = plot_scatter(exp, x, y, fig_dir / f"{_slug(x)}_vs_{_slug(y)}.png")
        if got:
            figs.append(got)
    return figs


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text)


# ---------------------------------------------------------------------------- markdown


def _table(exp: Experiment, extra: Sequence[str]) -> str:
    rows = []
    for values, runs in exp.groups():
        done = [r.result for r in runs if r.status == "done"]
        row = summarize(done, exp.by)[0] if done else {"n": 0, "collapsed": 0}
        row["_values"] = values
        row["_failed"] = sum(r.status == "failed" for r in runs)
        row["_missing"] = sum(r.status == "missing" for r in runs)
        for m in extra:
            row[f"_x_{m}"] = Stat.of(runs, m)
        rows.append(row)
    metrics = [m for m in TABLE_METRICS if any(m in r for r in rows)]
    header = [*exp.by, "n", *metrics, *extra, "collapsed", "failed", "not run"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        cells = [_short(_show(r["_values"][k])) for k in exp.by] + [str(r["n"])]
        cells += [_pm(r[m], r[m + "_ci"]) if m in r else "–" for m in metrics]
        for m in extra:
            s = r[f"_x_{m}"]
            cells.append(_pm(s.mean, s.ci) if s.n else "–")
        cells += [str(r["collapsed"]), str(r["_failed"]), str(r["_missing"])]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


def _short(text: str, width: int = 32) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _extra_columns(claims: ExperimentClaims | None) -> list[str]:
    if claims is None:
        return []
    out = list(claims.columns)
    for m, _ in _claim_metrics(claims):
        if m not in TABLE_METRICS and m not in out:
            out.append(m)
    return out


def git_commit(cwd: Path | None = None) -> str:
    """``git rev-parse HEAD`` of the source checkout (marked when the tree has changes)."""
    cwd = cwd or Path(__file__).resolve().parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return head + (" (with uncommitted changes)" if dirty else "")


def _rel(path: str | Path | None, start: Path) -> str:
    """``path`` relative to ``start`` when it lies below it, else absolute."""
    if not path:
        return "-"
    path = Path(path).resolve()
    try:
        rel = os.path.relpath(path, start.resolve())
    except ValueError:  # another drive
        return str(path)
    return str(path) if rel.startswith("..") else rel


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 60 else f"{seconds / 60:.1f} min"


def experiment_section(
    exp: Experiment, claims: ExperimentClaims | None, md_dir: Path, fig_root: Path
) -> tuple[str, list[Verdict]]:
    """The markdown of one experiment, and its verdicts."""
    lines = [f"## {exp.title or exp.name}", ""]
    n = {s: sum(r.status == s for r in exp.runs) for s in ("done", "failed", "missing")}
    collapsed = [r for r in exp.runs if r.status == "done" and r.result.get("collapsed")]
    runtime = sum(r.result.get("runtime_s") or 0 for r in exp.runs if r.result)
    cwd = Path.cwd()
    lines += [
        f"- sweep `{exp.name}`: spec `{_rel(exp.spec_path, cwd)}` (hash {exp.spec_hash or '-'}), "
        f"results `{_rel(exp.out, cwd)}`",
        f"- budget (spec): {exp.budget or '-'}; measured: "
        + (
            f"{_duration(exp.wall_s)} wall clock (submission to last result"
            + (f", summed over {exp.submissions} submissions" if exp.submissions > 1 else "")
            + "), "
            if exp.wall_s is not None
            else ""
        )
        + f"{_duration(runtime)} of training summed over runs",
        f"- seeds {', '.join(map(str, exp.seeds)) or '-'}; grouped by "
        f"{', '.join(f'`{k}`' for k in exp.by)}; base settings: "
        + (", ".join(f"{k} = {json.dumps(v)}" for k, v in exp.base.items()) or "defaults"),
        f"- runs: {len(exp.runs)} planned: {n['done']} done ({len(collapsed)} collapsed), "
        f"{n['failed']} failed, {n['missing']} not run",
        "",
    ]
    for r in exp.runs:
        if r.status == "failed":
            err = (r.result or {}).get("error", "failed")
            lines.append(f"- FAILED {_run_name(exp, r)}: {err}")
    for r in collapsed:
        lines.append(f"- collapsed: {_run_name(exp, r)}: {r.result.get('collapse_reason')}")
    if n["failed"] or collapsed:
        lines.append("")
    done = exp.done
    if len(done) > 1:
        try:
            check_comparable(done, exp.varied)
        except ValueError as err:
            lines += [f"**Warning**: {err}", ""]
    lines += [
        "Mean ± 95% CI over seeds (t-distribution); failed runs have no metrics and are "
        "counted, collapsed runs are included.",
        "",
        _table(exp, _extra_columns(claims)),
        "",
    ]
    verdicts: list[Verdict] = []
    if claims is None:
        lines += ["No claim for this experiment in the claims file.", ""]
    else:
        if claims.paper:
            lines += [f"**Paper**: {claims.paper}", ""]
        for claim in claims.claims:
            got = judge(claim, exp)
            verdicts += got
            how = claim.metric or " vs ".join(claim.metrics or ())
            if claim.metric and _is_history(exp, claim.metric):
                how += f" ({claim.reduce} epoch)"
            side = (
                "" if claim.source == "question" or claim.expect else f", {claim.better} is better"
            )
            kind = "**Question**" if claim.source == "question" else f"**Claim** ({claim.source})"
            lines.append(f"{kind}: {claim.text} — `{how}`{side}")
            lines += [f"- {v.line}" for v in got] + [""]
    figs = _figures(exp, claims, fig_root / _slug(exp.name))
    for path, caption in figs:
        lines += [f"![{caption}]({_rel(path, md_dir)})", "", f"*{caption}*", ""]
    return "\n".join(lines), verdicts


def _run_name(exp: Experiment, r: Run) -> str:
    """A run as the table names its group, and its seed: ``objective_cfg.beta=0.05 s1``."""
    return f"{group_name({k: r.value(k) for k in exp.by})} s{r.seed}"


def _is_history(exp: Experiment, metric: str) -> bool:
    """Whether ``metric`` is read from the per-epoch history (not the final evaluation)."""
    if metric.startswith("history."):
        return True
    if metric == "collapsed":
        return False
    top = metric.split(".")[0]
    finals = [r.result.get("final") or {} for r in exp.runs if r.status == "done"]
    return bool(finals) and not any(top in f for f in finals)


def write_results_report(
    dirs: Sequence[str | Path],
    out: str | Path = "docs/RESULTS.md",
    *,
    claims: str | Path | None = None,
    experiments_dir: str | Path | None = None,
    command: str | None = None,
) -> dict[str, Any]:
    """Write the markdown report of the sweeps in ``dirs`` (a directory holding several
    sweep directories counts as all of them) and its figures; return the verdicts."""
    out = Path(out)
    md_dir = out.parent
    commit = git_commit()  # before this report rewrites its own files in a checkout
    md_dir.mkdir(parents=True, exist_ok=True)
    all_claims = load_claims(claims)
    sweep_dirs = []
    for d in dirs:
        d = Path(d)
        if not d.is_dir():
            raise ValueError(f"{d} is not a directory")
        if (d / "manifest.json").exists() or not any(d.glob("*/manifest.json")):
            sweep_dirs.append(d)
        else:
            sweep_dirs += sorted(p.parent for p in d.glob("*/manifest.json"))
    exps = [load_experiment(d, experiments_dir) for d in sweep_dirs]
    order = {e.name: i for i, e in enumerate(exps)}
    exps.sort(key=lambda e: (Path(e.spec_path).name if e.spec_path else "~", order[e.name]))
    fig_root = md_dir / "figures"
    sections, summary, verdicts = [], [], {}
    for exp in exps:
        text, got = experiment_section(exp, all_claims.get(exp.name), md_dir, fig_root)
        sections.append(text)
        verdicts[exp.name] = got
        counts = {k: sum(v.verdict.startswith(k) for v in got) for k in ("agrees", "disagrees")}
        questions = sum(v.claim.source == "question" for v in got)
        other = len(got) - counts["agrees"] - counts["disagrees"] - questions
        n_done = sum(r.status == "done" for r in exp.runs)
        summary.append(
            f"| {exp.name} | {n_done}/{len(exp.runs)} | "
            f"{sum(r.status == 'failed' for r in exp.runs)} | "
            f"{sum(r.status == 'done' and bool(r.result.get('collapsed')) for r in exp.runs)} | "
            f"{counts['agrees']} | {counts['disagrees']} | {other} | {questions} |"
        )
    versions = next((e.done[0].get("versions") for e in exps if e.done), None) or {}
    head = [
        "# Results: the papers' claims at small scale",
        "",
        f"Generated by `{command or 'sslobj report'}` on {time.strftime('%Y-%m-%d')} at commit "
        f"{commit}"
        + (f"; torch {versions.get('torch')}, python {versions.get('python')}" if versions else "")
        + ".",
        "",
        "Verdict per claimed pair: **agrees** when ours ranks the pair the paper's way and the "
        "two 95% CIs (t-distribution over seeds) do not overlap, **disagrees** when ours ranks "
        "it the other way and they do not overlap, **inconclusive** otherwise. A disagreement "
        "is reported as measured. Claims: `experiments/claims.toml`; ImageNet-scale numbers "
        "of the papers are quoted for their direction only (our runs are small CNNs on "
        "digits and shapes).",
        "",
        "| experiment | runs done | failed | collapsed | agrees | disagrees | "
        "inconclusive or no data | questions |",
        "|---|---|---|---|---|---|---|---|",
        *summary,
        "",
    ]
    out.write_text("\n".join(head + sections).rstrip() + "\n")
    return {"path": out, "experiments": [e.name for e in exps], "verdicts": verdicts}


def main(
    dirs: Sequence[str],
    out: str,
    claims: str | None = None,
    experiments_dir: str | None = None,
) -> int:
    command = "sslobj report " + " ".join(dirs) + f" -o {out}"
    try:
        report = write_results_report(
            dirs, out, claims=claims, experiments_dir=experiments_dir, command=command
        )
    except (ValueError, FileNotFoundError) as err:
        print(f"sslobj report: {err}", file=sys.stderr)
        return 2
    for name, got in report["verdicts"].items():
        counts: dict[str, int] = {}
        for v in got:
            key = v.verdict if v.claim.source != "question" else "question"
            counts[key] = counts.get(key, 0) + 1
        shown = ", ".join(f"{n} {k}" for k, n in counts.items()) or "no claims"
        print(f"{name}: {shown}")
    print(f"wrote {report['path']} (figures in {Path(report['path']).parent / 'figures'})")
    return 0
