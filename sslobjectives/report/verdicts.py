"""Metric values, means with 95% CIs, and the verdict on each claimed pair."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sslobjectives.report.claims import AGREES, DISAGREES, INCONCLUSIVE, NO_DATA, TOO_FEW, Claim
from sslobjectives.report.experiments import Experiment
from sslobjectives.report.groups import Run, _is_number, group_name, parse_selector
from sslobjectives.results import apply_gate, mean_ci, summarize
from sslobjectives.sweep.spec import _show

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


#: ``validity(group name, runs)``: why the group cannot enter a verdict, or None.
Validity = Callable[[str, Sequence[Run]], str | None]


def validity_problem(
    name: str, runs: Sequence[Run], base_rows: Sequence[dict[str, Any]]
) -> str | None:
    """Why the group ``name`` cannot enter a verdict, or None when it has learned (DESIGN.md,
    "When a comparison means something"): ``"channel closed: <group>"`` when a binary
    channel of its runs ended with BCE >= 0.95 B ln 2, ``"invalid testbed: <group> does not
    beat <baseline>"`` when its k-NN or linear probe CI is not wholly above a baseline's
    (:func:`sslobjectives.baselines.gate`)."""
    done = [r.result for r in runs if r.status == "done" and r.result]
    if not done or not base_rows:
        return None
    row = summarize(done, by=())[0]
    apply_gate(row, base_rows)
    if row.get("channel_closed"):
        return f"channel closed: {name}"
    if row["not_beaten"]:
        names = dict.fromkeys(b.split(" (")[0] for b in row["not_beaten"])
        return f"invalid testbed: {name} does not beat {' and '.join(names)}"
    return None


@dataclass(frozen=True)
class Verdict:
    claim: Claim
    line: str  # markdown, without the leading "- "
    verdict: str


def _settings(
    exp: Experiment, named_by: Sequence[dict[str, Any]], seen_in: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The settings of the varied keys that no selector of ``named_by`` fixes (a label also
    fixes the other [zip] axes of its row, and the keys inside a [zip] column of tables:
    ``objective_cfg = [{beta = 0.5}, ...]`` varies ``objective_cfg.beta``), as they occur in
    runs matching one of ``seen_in``, in run order: a pair is compared within each of them."""
    named = set().union(*named_by)
    if "label" in named:
        zipped, grid = set(exp.zip_keys), set(exp.varied) - set(exp.zip_keys)
        named |= zipped | {k for k in exp.by if k.split(".")[0] in zipped and k not in grid}
    keys = [k for k in exp.by if k not in named]
    out: dict[tuple, dict[str, Any]] = {}
    for r in exp.runs:
        if any(r.matches(sel) for sel in seen_in):
            ctx = {k: r.value(k) for k in keys}
            out.setdefault(tuple(_show(v) for v in ctx.values()), ctx)
    return list(out.values())


def judge(claim: Claim, exp: Experiment, validity: Validity | None = None) -> list[Verdict]:
    """One verdict per claimed pair and context (or per group for expect / metrics). With
    ``validity`` (:func:`validity_problem` bound to the experiment's baselines), a pair or
    group involving a group that has not learned gets its problem ("invalid testbed: ...",
    "channel closed: ...") instead of agrees / disagrees / inconclusive."""
    valid = validity or (lambda name, runs: None)
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
                problem = valid(a_text, a_runs) or valid(b_text, b_runs)
                if problem:
                    verdict = problem
                    head = f"{where}{a_text} vs {b_text}"
                elif claim.source == "question":
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
        problem = valid(name, runs)
        if claim.expect is not None:
            op, value = claim.expect
            stat = Stat.of(runs, claim.metric, claim.reduce)
            verdict = problem or expect_verdict(stat, op, value)
            line = f"{name}: {stat} {op} {_fmt(value)}? → **{verdict}**"
        else:
            m_a, m_b = claim.metrics
            a, b = Stat.of(runs, m_a, claim.reduce), Stat.of(runs, m_b, claim.reduce)
            if problem:
                verdict = problem
            elif claim.source == "question":
                verdict = question_answer(a, b, m_a, m_b)
            else:
                verdict = pair_verdict(a, b, claim.better)
            line = f"{name}: {m_a} {a} vs {m_b} {b} → **{verdict}**"
        out.append(Verdict(claim, line, verdict))
    return out


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
