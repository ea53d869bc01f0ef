"""The markdown report: one section per experiment, a summary table, ``write_results_report``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sslobjectives.report.claims import ExperimentClaims, load_claims
from sslobjectives.report.experiments import Experiment, load_experiment
from sslobjectives.report.plots import _claim_metrics, _figures, _slug
from sslobjectives.report.verdicts import (
    Stat,
    Verdict,
    _is_history,
    _pm,
    _run_name,
    judge,
    validity_problem,
)
from sslobjectives.results import (
    TABLE_METRICS,
    _baseline_context,
    _learned_text,
    apply_gate,
    baselines_for,
    check_comparable,
    stale_note,
    summarize,
)
from sslobjectives.sweep.spec import _show

# ---------------------------------------------------------------------------- markdown


def _table(
    exp: Experiment,
    extra: Sequence[str],
    base_for: Callable[[list[dict]], list[dict]] | None = None,
) -> str:
    rows, bases = [], []
    for values, runs in exp.groups():
        done = [r.result for r in runs if r.status == "done"]
        row = summarize(done, exp.by)[0] if done else {"n": 0, "collapsed": 0}
        if done and base_for is not None:
            b_rows = base_for(done)
            apply_gate(row, b_rows)
            bases += [b for b in b_rows if b not in bases]
        row["_values"] = values
        row["_failed"] = sum(r.status == "failed" for r in runs)
        row["_missing"] = sum(r.status == "missing" for r in runs)
        for m in extra:
            row[f"_x_{m}"] = Stat.of(runs, m)
        rows.append(row)
    metrics = [m for m in TABLE_METRICS if any(m in r for r in rows)]
    gated = base_for is not None
    header = [*exp.by, "n", *metrics, *extra, "collapsed", "failed", "not run"]
    header += ["learned"] if gated else []
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        cells = [_short(_show(r["_values"][k])) for k in exp.by] + [str(r["n"])]
        cells += [_pm(r[m], r[m + "_ci"]) if m in r else "–" for m in metrics]
        for m in extra:
            s = r[f"_x_{m}"]
            cells.append(_pm(s.mean, s.ci) if s.n else "–")
        cells += [str(r["collapsed"]), str(r["_failed"]), str(r["_missing"])]
        cells += [_learned_text(r) if "learned" in r else "–"] if gated else []
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    for b in bases:
        cells = [b["baseline"]] + [""] * (len(exp.by) - 1) + [str(b["n"])]
        for m in metrics:
            if m not in b:
                cells.append("–")
            elif b.get(m + "_ci") is None:
                cells.append(f"{b[m]:.3f} (exact)")
            else:
                cells.append(_pm(b[m], b[m + "_ci"]))
        cells += ["–"] * (len(header) - len(cells))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _baselines(exp: Experiment):
    """``(base_for, problem)``: the baseline rows of a list of results (cached per data,
    backbone and budget in the sweep directory), or None and why they cannot be computed."""
    cache: dict[str, list[dict]] = {}

    def base_for(results: list[dict]) -> list[dict]:
        ctx = _baseline_context(results[0])
        if ctx not in cache:
            cache[ctx] = baselines_for(results, exp.out)
        return cache[ctx]

    if not exp.done:
        return None, None
    try:
        base_for(exp.done)
    except ValueError as err:
        return None, str(err)
    return base_for, None


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
    exp: Experiment,
    claims: ExperimentClaims | None,
    md_dir: Path,
    fig_root: Path,
    gate: bool = True,
) -> tuple[str, list[Verdict]]:
    """The markdown of one experiment, and its verdicts."""
    lines = [f"## {exp.title or exp.name}", ""]
    n = {s: sum(r.status == s for r in exp.runs) for s in ("done", "failed", "missing")}
    collapsed = [r for r in exp.runs if r.status == "done" and r.result.get("collapsed")]
    runtime = sum(
        r.result.get("runtime_s") or 0 for r in exp.runs if r.result and r.status != "stale"
    )
    stale = [_run_name(exp, r) for r in exp.stale]
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
        f"{n['failed']} failed, {n['missing']} not run"
        + (f", {len(stale)} stale (excluded)" if stale and not exp.reuse_stale else ""),
        *([f"- **{stale_note(stale, exp.reuse_stale)}**"] if stale else []),
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
    base_for, problem = _baselines(exp) if gate else (None, None)
    lines += [
        "Mean ± 95% CI over seeds (t-distribution); failed runs have no metrics and are "
        "counted, collapsed runs are included. Baselines on the same split: raw pixels "
        "(deterministic, exact), the untrained backbone (as it is and with its features "
        "centred on their training mean) and the supervised reference (same backbone, views "
        "and steps) over the runs' seeds; a group has *learned* when its k-NN and "
        "linear-probe CIs lie wholly above the raw input and the untrained backbone, and "
        "only such groups enter a verdict (a bits group also needs its channel open: final "
        "BCE < 0.95 B ln 2).",
        "",
        _table(exp, _extra_columns(claims), base_for),
        "",
    ]
    if problem:
        lines += [f"**No baselines**: {problem}; the verdicts below are not gated.", ""]
    verdicts: list[Verdict] = []

    def validity(name: str, runs) -> str | None:
        done = [r.result for r in runs if r.status == "done" and r.result]
        if base_for is None or not done:
            return None
        return validity_problem(name, runs, base_for(done))

    if claims is None:
        lines += ["No claim for this experiment in the claims file.", ""]
    else:
        if claims.paper:
            lines += [f"**Paper**: {claims.paper}", ""]
        for claim in claims.claims:
            got = judge(claim, exp, validity)
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


def write_results_report(
    dirs: Sequence[str | Path],
    out: str | Path = "docs/RESULTS.md",
    *,
    claims: str | Path | None = None,
    experiments_dir: str | Path | None = None,
    command: str | None = None,
    gate: bool = True,
    reuse_stale: bool = False,
) -> dict[str, Any]:
    """Write the markdown report of the sweeps in ``dirs`` (a directory holding several
    sweep directories counts as all of them) and its figures; return the verdicts and
    ``stale_note`` (one line: the results of other code left out, or kept with
    ``reuse_stale``; ``""`` when there are none; each section says its own).
    ``gate=False`` leaves out the baselines and the validity gate (for results that are not
    runs of this package's configs, e.g. hand-made ones testing the verdict rules)."""
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
    exps = [load_experiment(d, experiments_dir, reuse_stale=reuse_stale) for d in sweep_dirs]
    order = {e.name: i for i, e in enumerate(exps)}
    exps.sort(key=lambda e: (Path(e.spec_path).name if e.spec_path else "~", order[e.name]))
    fig_root = md_dir / "figures"
    sections, summary, verdicts = [], [], {}
    for exp in exps:
        text, got = experiment_section(exp, all_claims.get(exp.name), md_dir, fig_root, gate)
        sections.append(text)
        verdicts[exp.name] = got
        counts = {k: sum(v.verdict.startswith(k) for v in got) for k in ("agrees", "disagrees")}
        invalid = sum(v.verdict.startswith(("invalid testbed", "channel closed")) for v in got)
        questions = sum(
            v.claim.source == "question"
            and not v.verdict.startswith(("invalid testbed", "channel closed"))
            for v in got
        )
        other = len(got) - counts["agrees"] - counts["disagrees"] - questions - invalid
        n_done = sum(r.status == "done" for r in exp.runs)
        summary.append(
            f"| {exp.name} | {n_done}/{len(exp.runs)} | "
            f"{sum(r.status == 'failed' for r in exp.runs)} | "
            f"{sum(r.status == 'done' and bool(r.result.get('collapsed')) for r in exp.runs)} | "
            f"{invalid} | {counts['agrees']} | {counts['disagrees']} | {other} | {questions} |"
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
        "Verdict per claimed pair: **invalid testbed** when a group in it has not learned (its "
        "k-NN or linear probe does not beat the raw input or the untrained backbone, either as "
        "it is or centred, with disjoint 95% CIs), **channel closed** when a bits group's "
        "channel stayed shut; "
        "otherwise **agrees** when ours ranks the pair the paper's way and the "
        "two 95% CIs (t-distribution over seeds) do not overlap, **disagrees** when ours ranks "
        "it the other way and they do not overlap, **inconclusive** otherwise. A disagreement "
        "is reported as measured. Claims: `experiments/claims.toml`; ImageNet-scale numbers "
        "of the papers are quoted for their direction only (our runs are small CNNs on "
        "digits and shapes).",
        "",
        "| experiment | runs done | failed | collapsed | invalid testbed or channel closed | "
        "agrees | disagrees | inconclusive or no data | questions |",
        "|---|---|---|---|---|---|---|---|---|",
        *summary,
        "",
    ]
    out.write_text("\n".join(head + sections).rstrip() + "\n")
    stale = [f"{e.name}: {_run_name(e, r)}" for e in exps for r in e.stale]
    return {
        "path": out,
        "experiments": [e.name for e in exps],
        "verdicts": verdicts,
        "stale_note": stale_note(stale, reuse_stale),
    }


def main(
    dirs: Sequence[str],
    out: str,
    claims: str | None = None,
    experiments_dir: str | None = None,
    reuse_stale: bool = False,
) -> int:
    command = "sslobj report " + " ".join(dirs) + f" -o {out}"
    command += " --reuse-stale" if reuse_stale else ""
    try:
        report = write_results_report(
            dirs,
            out,
            claims=claims,
            experiments_dir=experiments_dir,
            command=command,
            reuse_stale=reuse_stale,
        )
    except (ValueError, FileNotFoundError) as err:
        print(f"sslobj report: {err}", file=sys.stderr)
        return 2
    if report["stale_note"]:
        print(f"sslobj report: {report['stale_note']}", file=sys.stderr)
    for name, got in report["verdicts"].items():
        counts: dict[str, int] = {}
        for v in got:
            key = v.verdict if v.claim.source != "question" else "question"
            counts[key] = counts.get(key, 0) + 1
        shown = ", ".join(f"{n} {k}" for k, n in counts.items()) or "no claims"
        print(f"{name}: {shown}")
    print(f"wrote {report['path']} (figures in {Path(report['path']).parent / 'figures'})")
    return 0
