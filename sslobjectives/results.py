"""Collect run results into tables and plots: mean ± 95% CI over seeds, per group.

Used by ``sslobj compare`` and ``sslobj sweep collect``. Runs are aggregated only when they
are comparable: every setting that is not one of the grouping keys (or the seed) must agree,
otherwise :func:`check_comparable` names the key that differs.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sslobjectives.eval.run import channel_health
from sslobjectives.figures import headless_pyplot
from sslobjectives.texttable import format_text_table
from sslobjectives.train.rundir import RESULT_FILE, read_result_file

#: Final metrics shown in tables, in order; a column is kept when some run has it.
TABLE_METRICS = (
    "knn",
    "linear",
    "map",
    "code_knn",
    "code_map",
    "effective_rank",
    "posterior_marginal_entropy",
    "bit_entropy",
    "dead_bits",
    "logit_scale",
    "bce_ratio",
)
#: The range each metric can take: a confidence interval is clipped to it (accuracies, mAP
#: and the mean per-bit entropy in bits lie in [0, 1]; counts, ranks and entropies are >= 0).
METRIC_RANGES = {
    "knn": (0.0, 1.0),
    "linear": (0.0, 1.0),
    "map": (0.0, 1.0),
    "code_knn": (0.0, 1.0),
    "code_map": (0.0, 1.0),
    "bit_entropy": (0.0, 1.0),
    "effective_rank": (0.0, math.inf),
    "posterior_marginal_entropy": (0.0, math.inf),
    "dead_bits": (0.0, math.inf),
}
#: Fewer seeds than this: the group's row is flagged (a t interval over 2 values is 12.7
#: standard errors wide, over 1 value there is none).
MIN_SEEDS = 3
#: Columns where lower is better (the best mark goes to the minimum).
LOWER_IS_BETTER = {"dead_bits"}
#: Settings that name what is compared rather than how: they may differ between groups.
METHOD_KEYS = (
    "objective",
    "objective_cfg",
    "label",
    "reset_period",
    "reset_teacher",
    "head_kwargs",
)


#: How many stale runs a note names before "and N more".
STALE_NAMES_SHOWN = 4


def stale_note(names: Sequence[str], included: bool, why: str = "--reuse-stale") -> str:
    """One line on the finished runs whose result was written by other code than this one
    (:func:`~sslobjectives.train.rundir.stale_reason`): left out of every table, CSV, figure
    and verdict by default, kept with ``--reuse-stale``; ``""`` when there are none.
    ``why`` says how included results got in (the flag, or what else kept them).

    >>> print(stale_note(["dino s0", "bits s1"], included=False))
    2 stale results (written by other code) excluded: dino s0, bits s1; --reuse-stale includes them
    >>> for part in stale_note(["a s0", "a s1", "a s2", "b s0", "b s1"], True).split(": "):
    ...     print(part)
    5 stale results (written by other code) included (--reuse-stale)
    a s0, a s1, a s2, b s0 and 1 more
    >>> print(stale_note(["a s0"], True, why="the package changed while they trained"))
    1 stale result (written by other code) included (the package changed while they trained): a s0
    """
    if not names:
        return ""
    shown = ", ".join(names[:STALE_NAMES_SHOWN])
    more = len(names) - STALE_NAMES_SHOWN
    shown += f" and {more} more" if more > 0 else ""
    what = f"{len(names)} stale result{'s' if len(names) != 1 else ''} (written by other code)"
    if included:
        return f"{what} included ({why}): {shown}"
    return f"{what} excluded: {shown}; --reuse-stale includes them"


def load_results(paths: Iterable[str | Path], status: str | None = "done") -> list[dict]:
    """Every ``result.json`` under the given directories (or the files themselves)."""
    out = []
    for p in paths:
        p = Path(p)
        files = [p] if p.is_file() else sorted(p.rglob(RESULT_FILE))
        for f in files:
            r = read_result_file(f)
            if r is None:
                raise ValueError(f"{f} is not a readable result (JSON object)")
            if status is None or r.get("status") == status:
                r["_path"] = str(f)
                out.append(r)
    return out


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            flat.update(_flatten(v, key + "."))
        else:
            flat[key] = v
    return flat


def check_comparable(results: Sequence[dict], varied: Iterable[str] = ()) -> None:
    """Raise ``ValueError`` naming the first setting that differs between runs.

    Allowed to differ: the seed, the method keys (:data:`METHOD_KEYS`) and ``varied`` (the
    keys a sweep varies on purpose, dotted for nested ones: ``objective_cfg.beta``).
    """
    allowed = {"seed", *METHOD_KEYS, *varied}
    if not results:
        raise ValueError("no finished runs to aggregate")
    ref = _flatten(results[0]["config"])
    ref_split = results[0].get("split", {}).get("train_hash")
    for r in results[1:]:
        cfg = _flatten(r["config"])
        for key in sorted(set(ref) | set(cfg)):
            top = key.split(".")[0]
            if key in allowed or top in allowed:
                continue
            if ref.get(key) != cfg.get(key):
                raise ValueError(
                    f"runs are not comparable: setting {key!r} differs "
                    f"({ref.get(key)!r} in {results[0].get('_path', 'first run')} vs "
                    f"{cfg.get(key)!r} in {r.get('_path', 'another run')})"
                )
        split = r.get("split", {}).get("train_hash")
        if split != ref_split:
            raise ValueError(f"runs are not comparable: train/test split differs ({split})")


def t_factor(n: int, confidence: float = 0.95) -> float:
    """The factor of a t-interval over ``n`` values: Student's t quantile at
    ``0.5 + confidence / 2`` with ``n - 1`` degrees of freedom (nan below two values).

    >>> round(t_factor(3), 3), round(t_factor(5), 3)
    (4.303, 2.776)
    """
    if n < 2:
        return math.nan
    from scipy import stats

    return float(stats.t.ppf(0.5 + confidence / 2, df=n - 1))


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """Mean and half-width of the t-distribution confidence interval (0 for one value).

    >>> m, h = mean_ci([1.0, 2.0, 3.0])
    >>> round(m, 3), round(h, 3)
    (2.0, 2.484)
    """
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if x.size == 0:
        return math.nan, math.nan
    if x.size == 1:
        return float(x[0]), 0.0
    half = t_factor(x.size, confidence) * x.std(ddof=1) / math.sqrt(x.size)
    return float(x.mean()), float(half)


def clipped_ci(metric: str, mean: float, half: float) -> tuple[float, float]:
    """The interval ``mean ± half`` clipped to the metric's range (:data:`METRIC_RANGES`).

    >>> clipped_ci("knn", 0.5, 1.271)
    (0.0, 1.0)
    >>> clipped_ci("effective_rank", 3.0, 1.0)
    (2.0, 4.0)
    """
    low, high = METRIC_RANGES.get(metric, (-math.inf, math.inf))
    return max(low, mean - half), min(high, mean + half)


def group_key(result: dict, by: Sequence[str]) -> tuple:
    cfg = _flatten(result["config"])
    return tuple(result.get("label") if k == "label" else cfg.get(k) for k in by)


def channel_of(result: dict) -> dict[str, Any]:
    """A binary-channel run's ``bce_ratio`` and ``channel_closed`` (stored in ``final`` since
    they exist; computed from the history for older results); empty for other objectives."""
    final = result.get("final") or {}
    if "bce_ratio" in final:
        return {k: final[k] for k in ("bce_ratio", "channel_closed") if k in final}
    bits = (result.get("config") or {}).get("head_dim", 0)
    return channel_health(result.get("history") or [], bits)


def summarize(results: Sequence[dict], by: Sequence[str] = ("label",)) -> list[dict[str, Any]]:
    """One row per group: the group's keys, ``n`` seeds, ``metric`` / ``metric_ci`` (half-width)
    and ``metric_lo`` / ``metric_hi`` (the interval clipped to the metric's range)."""
    groups: dict[tuple, list[dict]] = {}
    for r in results:
        groups.setdefault(group_key(r, by), []).append(r)
    rows = []
    for key, runs in groups.items():
        row: dict[str, Any] = dict(zip(by, key, strict=True))
        row["n"] = len(runs)
        row["collapsed"] = sum(bool(r.get("collapsed")) for r in runs)
        # a run without labels writes final["labels"] in place of its label metrics
        row["unlabelled"] = sum("labels" in (r.get("final") or {}) for r in runs)
        finals = [{**channel_of(r), **r["final"]} for r in runs]
        if any("channel_closed" in f for f in finals):
            row["channel_closed"] = sum(bool(f.get("channel_closed")) for f in finals)
        for m in TABLE_METRICS:
            vals = [f.get(m) for f in finals if isinstance(f.get(m), (int, float))]
            if vals:
                row[m], row[f"{m}_ci"] = mean_ci(vals)
                row[f"{m}_lo"], row[f"{m}_hi"] = clipped_ci(m, row[m], row[f"{m}_ci"])
        rows.append(row)
    return rows


def format_table(rows: Sequence[dict[str, Any]], by: Sequence[str] = ("label",)) -> str:
    """Text table of :func:`summarize` rows: ``mean ± CI``, best per column marked ``*``;
    then the baseline rows (:mod:`sslobjectives.baselines`, the ``baseline`` key) when
    given, and the ``learned`` column of the validity gate when the groups carry it.

    Honest about small samples: a group of fewer than :data:`MIN_SEEDS` seeds has its ``n``
    flagged ``!``, and an interval that leaves the metric's range is shown clipped, as
    ``mean [low, high]``. Deterministic baselines show one exact value.
    """
    groups = [r for r in rows if "baseline" not in r]
    bases = [r for r in rows if "baseline" in r]
    metrics = [m for m in TABLE_METRICS if any(m in r for r in rows)]
    best = {}
    for m in metrics:
        vals = [r[m] for r in groups if m in r and math.isfinite(r[m])]
        if len(vals) > 1:
            best[m] = min(vals) if m in LOWER_IS_BETTER else max(vals)
    gated = any("learned" in r for r in groups)
    header = [*by, "n", *metrics, "collapsed", *(["learned"] if gated else [])]
    lines = []
    few = clipped = False
    for r in groups + bases:
        is_base = "baseline" in r
        small = not is_base and r["n"] < MIN_SEEDS
        few |= small
        n_text = f"{r['n']}!" if small else str(r["n"])
        if is_base:
            cells = [r["baseline"]] + [""] * (len(by) - 1) + [n_text]
        else:
            cells = [str(r.get(k)) for k in by] + [n_text]
        for m in metrics:
            if m not in r or not isinstance(r[m], int | float) or not math.isfinite(r[m]):
                cells.append("-")
                continue
            mark = "*" if best.get(m) == r[m] and not is_base else " "
            half = r.get(m + "_ci")
            if half is None:  # a deterministic baseline: one exact value, no interval
                cells.append(f"{r[m]:.3f} (exact)")
                continue
            low, high = clipped_ci(m, r[m], half)
            if math.isfinite(half) and (low > r[m] - half or high < r[m] + half):
                clipped = True
                cells.append(f"{r[m]:.3f} [{low:.3f}, {high:.3f}]{mark}")
            else:
                cells.append(f"{r[m]:.3f} ± {half:.3f}{mark}")
        cells.append("-" if is_base else f"{r['collapsed']}/{r['n']}")
        if gated:
            cells.append("-" if is_base else _learned_text(r))
        lines.append(cells)
    notes = ["mean ± 95% CI over seeds (t-distribution); * best in column"]
    if clipped:
        notes.append("[low, high]: the 95% CI clipped to the metric's range")
    if few:
        notes.append(
            f"! fewer than {MIN_SEEDS} seeds: the CI says little (none for one seed); "
            "run more seeds before reading a difference"
        )
    unlabelled = [str(r.get(by[0])) for r in rows if r.get("unlabelled")]
    if unlabelled:
        notes.append(
            f"label metrics need labels (k-NN, linear probe, mAP): {', '.join(unlabelled)} "
            "trained and evaluated without labels; --eval-dataset gives a labelled evaluation set"
        )
    if bases:
        notes.append(
            "baseline: raw and raw-centred (flattened pixels) are deterministic: one exact "
            "value, no CI; untrained (the runs' backbone at init; -centred: its features minus "
            "their training mean) and supervised (same backbone, views and steps, "
            "cross-entropy on labels) over the runs' seeds"
        )
    if gated:
        notes.append(
            "learned: k-NN and linear probe CIs wholly above the raw input and the untrained "
            "backbone (each in either form); bits: channel closed when the final BCE >= 0.95 "
            "B ln 2"
        )
    return format_text_table(header, lines) + "\n" + "\n".join(notes)


def _learned_text(row: dict[str, Any]) -> str:
    if row.get("learned"):
        return "yes"
    reasons = []
    if row.get("channel_closed"):
        reasons.append("channel closed")
    if row.get("not_beaten"):
        names = [b.removeprefix("baseline: ").split(" (")[0] for b in row["not_beaten"]]
        reasons.append("under " + ", ".join(dict.fromkeys(names)))
    return "no" + (f" ({'; '.join(reasons)})" if reasons else "")


def write_runs_csv(results: Sequence[dict], path: str | Path) -> None:
    """One row per run: label, seed, run id, status, collapse flag and scalar final metrics."""
    rows = []
    for r in results:
        row = {"label": r.get("label"), "seed": r.get("seed"), "run_id": r.get("run_id")}
        row.update({"status": r.get("status"), "collapsed": r.get("collapsed")})
        row["runtime_s"] = r.get("runtime_s")
        row.update({k: v for k, v in (r.get("final") or {}).items() if isinstance(v, (int, float))})
        rows.append(row)
    _write_csv(rows, path)


def write_summary_csv(rows: Sequence[dict], path: str | Path) -> None:
    _write_csv(rows, path)


def _write_csv(rows: Sequence[dict], path: str | Path) -> None:
    fields: list[str] = []
    for r in rows:
        fields += [k for k in r if k not in fields]
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


CURVES = ("loss", "knn", "marginal_entropy", "bit_entropy", "effective_rank")


def plot_curves(
    results: Sequence[dict],
    path: str | Path,
    by: Sequence[str] = ("label",),
    curves: Sequence[str] = CURVES,
    baselines: Sequence[dict[str, Any]] = (),
) -> Path | None:
    """Per-epoch curves (default: loss, k-NN, marginal/bit entropy, effective rank; any keys
    of the per-epoch history with ``curves``), one line per group (mean over seeds, shaded
    min-max); the k-NN panel draws the ``baselines`` rows' k-NN as dashed lines."""
    plt = headless_pyplot()

    present = [c for c in curves if any(c in h for r in results for h in r["history"])]
    if not present:
        return None
    fig, axes = plt.subplots(1, len(present), figsize=(4.2 * len(present), 3.4), squeeze=False)
    groups: dict[tuple, list[dict]] = {}
    for r in results:
        groups.setdefault(group_key(r, by), []).append(r)
    # more than 10 groups (experiment 6 has 18): 20 distinct colours instead of a repeating 10
    colours = plt.cm.tab20(np.arange(len(groups)) % 20) if len(groups) > 10 else None
    for ax, curve in zip(axes[0], present, strict=True):
        for i, (key, runs) in enumerate(groups.items()):
            series = [[h.get(curve, np.nan) for h in r["history"]] for r in runs]
            length = min(len(s) for s in series)
            arr = np.array([s[:length] for s in series], dtype=float)
            if np.isnan(arr).all():
                continue
            epochs = np.arange(1, length + 1)
            name = ", ".join(str(k) for k in key)
            colour = colours[i] if colours is not None else f"C{i % 10}"
            marker = "o" if length < 3 else None  # a line of one point draws nothing
            ax.plot(epochs, np.nanmean(arr, axis=0), label=name, color=colour, marker=marker)
            ax.fill_between(
                epochs, np.nanmin(arr, axis=0), np.nanmax(arr, axis=0), alpha=0.15, color=colour
            )
        if curve == "knn":
            for j, b in enumerate(baselines):
                if isinstance(b.get("knn"), int | float):
                    ax.axhline(
                        b["knn"], ls="--", lw=1, color=f"0.{2 + 2 * (j % 4)}", label=b["baseline"]
                    )
        ax.set_title(curve)
        if curve == "loss":  # objectives' losses differ by orders of magnitude
            ax.set_yscale("symlog")
        ax.set_xlabel("epoch")
    handles: dict[str, Any] = {}
    for ax in axes[0]:
        for handle, name in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(name, handle)
    if len(handles) <= 6:
        axes[0][0].legend(list(handles.values()), list(handles), fontsize=7)
        fig.tight_layout()
    else:  # below the panels, where it hides no curve
        ncol = max(2, min(6, len(present) * 2))
        rows = math.ceil(len(handles) / ncol)
        height = 3.4 + 0.22 * rows
        fig.set_size_inches(4.2 * len(present), height)
        fig.legend(list(handles.values()), list(handles), fontsize=7, ncol=ncol, loc="lower center")
        fig.tight_layout(rect=(0, (0.22 * rows + 0.1) / height, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def plot_bit_usage(
    results: Sequence[dict], path: str | Path, by: Sequence[str] = ("label",)
) -> Path | None:
    """Histogram of per-bit marginal entropy (test set) for each binary-code group."""
    plt = headless_pyplot()

    groups: dict[tuple, list[float]] = {}
    for r in results:
        ent = (r.get("final") or {}).get("bit_entropy_per_bit")
        if ent:
            groups.setdefault(group_key(r, by), []).extend(ent)
    if not groups:
        return None
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    bins = np.linspace(0, 1, 21)
    for key, ent in groups.items():
        ax.hist(ent, bins=bins, alpha=0.5, label=", ".join(str(k) for k in key))
    ax.set_xlabel("per-bit marginal entropy (bits)")
    ax.set_ylabel("bits (all seeds)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def baselines_for(
    results: Sequence[dict], cache_dir: str | Path, supervised: bool = True
) -> list[dict[str, Any]]:
    """The baseline rows of ``results`` (:func:`sslobjectives.baselines.baseline_rows`: one
    config's data, backbone and budget, over the results' seeds), cached in ``cache_dir``."""
    from sslobjectives.baselines import baseline_rows
    from sslobjectives.train.config import RunConfig

    config = RunConfig.from_dict(results[0]["config"])
    seeds = [int(r.get("seed", 0)) for r in results]
    return baseline_rows(config, seeds, cache_dir, supervised=supervised)


def apply_gate(row: dict[str, Any], base_rows: Sequence[dict[str, Any]]) -> None:
    """Mark a group row ``learned`` (and ``not_beaten``: the baselines it does not beat)
    by the validity gate; a closed binary channel in any of its runs fails it too."""
    from sslobjectives.baselines import gate

    row["not_beaten"] = gate(row, base_rows)
    row["learned"] = not row["not_beaten"] and not row.get("channel_closed")


def _baseline_context(result: dict) -> str:
    from sslobjectives.baselines import cache_key
    from sslobjectives.train.config import RunConfig

    key = cache_key("supervised", RunConfig.from_dict({**result["config"], "seed": 0}))
    return json.dumps(key, sort_keys=True, default=str)


def gated_rows(
    results: Sequence[dict],
    by: Sequence[str],
    cache_dir: str | Path,
    supervised: bool = True,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """:func:`summarize` rows with the validity gate applied, and the baseline rows. Groups
    whose data, backbone or budget differ (a sweep varying ``epochs``) get their own
    baselines; their rows then name the first group they belong to."""
    rows = summarize(results, by)
    contexts: dict[str, list[dict]] = {}
    of_group: dict[tuple, str] = {}
    for r in results:
        ctx = _baseline_context(r)
        contexts.setdefault(ctx, []).append(r)
        of_group.setdefault(group_key(r, by), ctx)
    computed = {ctx: baselines_for(runs, cache_dir, supervised) for ctx, runs in contexts.items()}
    base_rows: list[dict[str, Any]] = []
    for ctx, b_rows in computed.items():
        if len(computed) > 1:
            first = next(k for k, c in of_group.items() if c == ctx)
            where = ", ".join(f"{k}={v}" for k, v in zip(by, first, strict=True))
            b_rows = [{**b, "baseline": f"{b['baseline']} [{where}]"} for b in b_rows]
        base_rows += b_rows
    for row in rows:
        key = tuple(row.get(k) for k in by)
        ctx_rows = computed[of_group[key]]
        apply_gate(row, ctx_rows)
    return rows, base_rows


def write_report(
    results: Sequence[dict],
    out_dir: str | Path,
    by: Sequence[str] = ("label",),
    varied: Iterable[str] = (),
    baselines: bool = True,
    supervised: bool = True,
    notes: Sequence[str] = (),
) -> dict[str, Any]:
    """Check comparability, then write ``runs.csv``, ``summary.csv`` (with the baseline rows),
    ``table.txt`` and the PNG plots into ``out_dir``; return the rows, the baseline rows and
    the table text. ``baselines`` adds the raw, untrained and (with ``supervised``) supervised
    rows, computed once and cached in ``out_dir/baselines/``, and the validity gate. ``notes``
    (e.g. :func:`stale_note`) are lines under the table, each starting ``note:``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    check_comparable(results, varied)
    note = ""
    rows, base_rows = summarize(results, by), []
    if baselines:
        try:
            rows, base_rows = gated_rows(results, by, out_dir, supervised)
        except ValueError as err:  # e.g. a plug-in objective that no longer loads
            note = f"\nno baselines: these results' config cannot be rebuilt ({err})"
    table = format_table([*rows, *base_rows], by) + note
    table += "".join(f"\nnote: {n}" for n in notes if n)
    write_runs_csv(results, out_dir / "runs.csv")
    write_summary_csv(
        [{**r, "not_beaten": "; ".join(r.get("not_beaten", []))} for r in rows] + base_rows,
        out_dir / "summary.csv",
    )
    (out_dir / "table.txt").write_text(table + "\n")
    plots = [
        plot_curves(results, out_dir / "curves.png", by, baselines=base_rows),
        plot_bit_usage(results, out_dir / "bit_usage.png", by),
    ]
    return {
        "rows": rows,
        "baselines": base_rows,
        "table": table,
        "plots": [str(p) for p in plots if p],
    }
