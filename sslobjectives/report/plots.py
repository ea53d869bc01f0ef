"""The report's figures: scatter, claim metrics per group, paired differences."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sslobjectives.figures import headless_pyplot
from sslobjectives.report.claims import Difference, ExperimentClaims
from sslobjectives.report.experiments import Experiment
from sslobjectives.report.groups import group_name, parse_selector
from sslobjectives.report.verdicts import _is_history, _settings, metric_value
from sslobjectives.results import (
    mean_ci,
    plot_bit_usage,
    plot_curves,
)
from sslobjectives.sweep.spec import _show

# ---------------------------------------------------------------------------- figures


def plot_scatter(
    exp: Experiment, x: str, y: str, path: Path, reduce: str = "last"
) -> tuple[Path, str] | None:
    """Per-run ``y`` against ``x``: colour by the first grouping key, marker by the second;
    returns the path and a Spearman rank correlation over the runs."""
    plt = headless_pyplot()
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
    plt = headless_pyplot()

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
    plt = headless_pyplot()
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
